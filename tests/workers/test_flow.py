"""Flow-control steps (router...) on the real database: in-process runs, then real workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from tests.workers.conftest import (
    RecordingCelery,
    WorkerProcess,
    accept,
    all_finished,
    drain,
    snapshot,
    wait_for,
)
from workers import tasks
from workers.runtime import Runtime
from workflows.loading.loader import load_project
from workflows.model import Project
from workflows.settings import Settings
from workflows.store import db
from workflows.store.models import Execution, Step

FLOW_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "flow"


@pytest.fixture(scope="module")
def flow_project() -> Project:
    return load_project(FLOW_DIR)


@pytest.fixture
def frt(pg_url: str, clean_db: Engine, flow_project: Project) -> Iterator[Runtime]:
    """A runtime on the flow project whose publishes are recorded, not sent."""
    yield Runtime(
        settings=Settings(project_dir=FLOW_DIR, database_url=pg_url, broker_url="memory://"),
        project=flow_project,
        engine=clean_db,
        sessions=db.make_sessionmaker(clean_db),
        celery=RecordingCelery(),  # type: ignore[arg-type]
        hostname="test-host",
    )


def _run(rt: Runtime, name: str, payload: dict[str, Any]) -> str:
    event_id, (execution_id,) = accept(rt.sessions, rt.project, name, payload)
    tasks.dispatch(rt, event_id)
    drain(rt)
    return execution_id


def _rows(sessions: sessionmaker[Session], execution_id: str) -> tuple[Execution, list[Step]]:
    with sessions() as session:
        execution = session.get(Execution, execution_id)
        assert execution is not None
        steps = session.scalars(
            select(Step).where(Step.execution_id == execution_id).order_by(Step.seq)
        ).all()
        return execution, list(steps)


# -- router, in process -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "taken", "carrier", "default"),
    [
        ("US", "ship-us", "usps", False),
        ("CA", "ship-ca", "canada-post", False),
        ("JP", "ship-intl", "dhl", True),
    ],
)
def test_a_router_goes_where_its_value_routes_it(
    frt: Runtime, country: str, taken: str, carrier: str, default: bool
) -> None:
    execution, (route, shipped) = _rows(frt.sessions, _run(frt, "flow.route", {"country": country}))

    assert execution.status == "succeeded"
    assert (route.task_id, route.status, route.attempts) == ("route", "succeeded", 1)
    assert route.input == {"condition": "input.country"}
    assert route.output == {"value": country, "route": taken, "default": default}
    assert (shipped.task_id, shipped.output["carrier"]) == (taken, carrier)
    if default:  # a later task reads the router's output
        assert shipped.input["routed"] == route.output


def test_a_router_reads_earlier_tasks_outputs(frt: Runtime) -> None:
    _, steps = _rows(frt.sessions, _run(frt, "flow.route-strict", {"amount": 500, "size": "x"}))
    assert [s.task_id for s in steps] == ["measure", "size", "large"]
    assert steps[1].output["value"] == "large"


def test_a_value_with_no_route_and_no_default_goes_down_on_error_naming_the_value(
    frt: Runtime,
) -> None:
    execution, steps = _rows(
        frt.sessions, _run(frt, "flow.route-strict", {"amount": 5, "size": "huge"})
    )

    assert [s.task_id for s in steps] == ["measure", "size", "unrouted"]
    size = steps[1]
    assert (size.status, size.error["type"], size.error["value"]) == ("failed", "no_route", "huge")
    assert size.error["message"] == (
        "router 'size': value 'huge' has no route and there is no default (routes: large, small)"
    )
    assert steps[2].input["error"] == size.error  # {{ .error }} in the on_error target
    assert execution.status == "succeeded"


def test_a_value_with_no_route_and_no_on_error_fails_the_execution(frt: Runtime) -> None:
    execution, (pick,) = _rows(frt.sessions, _run(frt, "flow.route-bare", {"flag": False}))

    assert pick.status == "failed" and execution.status == "failed"
    assert execution.error["type"] == "no_route"
    assert "value 'false' has no route" in execution.error["message"]


def test_a_condition_that_cannot_evaluate_is_a_step_error(frt: Runtime) -> None:
    # input.size is missing: CEL has no such key
    execution, steps = _rows(frt.sessions, _run(frt, "flow.route-strict", {"amount": 5}))

    assert steps[1].error["type"] == "expression_error"
    assert "no key 'size'" in steps[1].error["message"]
    assert steps[2].task_id == "unrouted" and execution.status == "succeeded"


def test_a_duplicated_router_message_leaves_the_rows_of_one_delivery(frt: Runtime) -> None:
    event_id, ids = accept(frt.sessions, frt.project, "flow.route", {"country": "US"})
    tasks.dispatch(frt, event_id)
    celery: RecordingCelery = frt.celery  # type: ignore[assignment]
    (router_message,) = celery.sent
    celery.sent.append(router_message)  # the broker delivers it twice
    drain(frt)
    once = snapshot(frt.sessions, ids)

    assert tasks.run_step(frt, router_message.args[0], worker="late", redelivered=True) in (
        "dropped",
        "republished",
    )
    drain(frt)
    assert snapshot(frt.sessions, ids) == once
    assert [s[2] for s in once["steps"]] == ["route", "ship-us"]


# -- real workers -------------------------------------------------------------------------

WorkerStarter = Callable[..., WorkerProcess]


@pytest.fixture
def flow_worker(start_worker: WorkerStarter) -> WorkerStarter:
    """``herald worker`` on the flow project."""

    def start(**options: Any) -> WorkerProcess:
        return start_worker(
            env={"HERALD_PROJECT_DIR": str(FLOW_DIR), **options.pop("env", {})}, **options
        )

    return start


@pytest.fixture
def sessions(clean_db: Engine) -> sessionmaker[Session]:
    return db.make_sessionmaker(clean_db)


def _send(worker_env: dict[str, str], event_id: str) -> None:
    from workers.celery_app import DISPATCH_TASK, make_celery

    settings = Settings(
        broker_url=worker_env["HERALD_BROKER_URL"],
        queue_prefix=worker_env["HERALD_QUEUE_PREFIX"],
        database_url=worker_env["HERALD_DATABASE_URL"],
    )
    make_celery(settings).send_task(DISPATCH_TASK, args=[event_id])


@pytest.mark.integration
def test_routers_with_and_without_default_on_real_workers(
    flow_worker: WorkerStarter,
    worker_env: dict[str, str],
    sessions: sessionmaker[Session],
    flow_project: Project,
) -> None:
    flow_worker(concurrency=2)
    sent = {
        "us": ("flow.route", {"country": "US"}),
        "default": ("flow.route", {"country": "JP"}),
        "no-route": ("flow.route-strict", {"amount": 1, "size": "huge"}),
        "bare": ("flow.route-bare", {"flag": True}),
    }
    ids: dict[str, str] = {}
    for key, (name, payload) in sent.items():
        event_id, (ids[key],) = accept(sessions, flow_project, name, payload)
        _send(worker_env, event_id)

    wait_for(lambda: all_finished(sessions, list(ids.values())), what="the routed executions")

    tasks_run = {key: [s.task_id for s in _rows(sessions, i)[1]] for key, i in ids.items()}
    assert tasks_run == {
        "us": ["route", "ship-us"],
        "default": ["route", "ship-intl"],
        "no-route": ["measure", "size", "unrouted"],
        "bare": ["pick", "accepted"],
    }
    statuses = {key: _rows(sessions, i)[0].status for key, i in ids.items()}
    assert statuses == dict.fromkeys(ids, "succeeded")
    _, (route, _) = _rows(sessions, ids["default"])
    assert route.worker is not None and route.worker.startswith("test-")  # a worker settled it
