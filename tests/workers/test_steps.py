"""Step runs in-process on the real database: transitions, retries, fencing, two transactions."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from benchmarks.counting import count_sql
from tests.workers.conftest import accept, claim_step, drain, snapshot
from workers import tasks
from workers.runtime import Runtime
from workflows.model import ExecutionStatus, StepStatus
from workflows.store.models import Execution, Step


def _run(rt: Runtime, name: str, payload: dict[str, object]) -> list[str]:
    event_id, ids = accept(rt.sessions, rt.project, name, payload)
    tasks.dispatch(rt, event_id)
    drain(rt)
    return ids


def _execution(rt: Runtime, execution_id: str) -> tuple[Execution, list[Step]]:
    with rt.sessions() as session:
        execution = session.get(Execution, execution_id)
        assert execution is not None
        rows = session.scalars(
            select(Step).where(Step.execution_id == execution_id).order_by(Step.seq)
        ).all()
        return execution, list(rows)


def test_a_chain_runs_to_completion_and_later_tasks_see_earlier_outputs(rt: Runtime) -> None:
    chain, executable = _run(rt, "engine.chain", {"value": 42})

    execution, (first, second) = _execution(rt, chain)
    assert execution.status == ExecutionStatus.SUCCEEDED.value
    assert execution.output == {"result": 42}  # the workflow's outputs map, rendered
    assert execution.started_at and execution.finished_at
    assert (first.task_id, first.status, first.attempts) == ("first", "succeeded", 1)
    assert first.input == {"value": 42}
    assert first.output["key"] == f"{chain}:first:1"  # the idempotency key
    assert second.input["previous"] == first.output
    assert second.input["event"] == "engine.chain"
    assert first.worker == "test-worker" and first.usage["duration_ms"] >= 0

    execution, (echo,) = _execution(rt, executable)
    assert execution.status == "succeeded"
    assert execution.output == echo.output  # no outputs map: the last task's output
    assert echo.output == {
        "input": {"value": 42},
        "key": f"{executable}:echo:1",
        "execution": executable,
        "task": "echo",
    }


def test_a_failing_tool_goes_down_on_error_with_the_error_rendered(rt: Runtime) -> None:
    (execution_id,) = _run(rt, "engine.fail", {"message": "card declined"})

    execution, (boom, handle) = _execution(rt, execution_id)
    assert (boom.status, boom.error["type"]) == ("failed", "tool_error")
    assert "card declined" in boom.error["message"]
    assert handle.cause == boom.error
    assert handle.input["error"] == boom.error  # {{ .error }} keeps its JSON type
    assert handle.input["reason"] == boom.error["message"]
    assert execution.status == "succeeded"  # the error was handled


def test_a_tool_failing_twice_succeeds_on_its_third_attempt(rt: Runtime, tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    (execution_id,) = _run(rt, "engine.flaky", {"counter": str(counter)})

    execution, (step,) = _execution(rt, execution_id)
    assert (execution.status, step.status, step.attempts) == ("succeeded", "succeeded", 3)
    assert step.output == {"calls": 3}
    assert counter.read_text() == "3"


def test_a_retry_waits_for_its_backoff(rt: Runtime, tmp_path: Path) -> None:
    event_id, (execution_id,) = accept(
        rt.sessions, rt.project, "engine.flaky", {"counter": str(tmp_path / "c")}
    )
    tasks.dispatch(rt, event_id)
    message = rt.celery.sent.pop()  # type: ignore[attr-defined]
    assert tasks.run_step(rt, message.args[0], worker="w") == StepStatus.RETRYING.value

    retry = rt.celery.sent[-1]  # type: ignore[attr-defined]
    assert retry.args == message.args and retry.options["countdown"] == pytest.approx(0.1)
    _, (step,) = _execution(rt, execution_id)
    assert step.status == "retrying" and step.not_before is not None
    assert step.error["message"] == "tool 'flaky' raised RuntimeError: flaky failure number 1"


def test_a_duplicate_run_message_leaves_the_rows_one_delivery_leaves(rt: Runtime) -> None:
    event_id, ids = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    tasks.dispatch(rt, event_id)
    first_messages = list(rt.celery.sent)  # type: ignore[attr-defined]
    drain(rt)
    once = snapshot(rt.sessions, ids)

    for message in first_messages:  # delivered again, after the run finished
        assert tasks.run_step(rt, message.args[0], worker="late") == "dropped"
    tasks.dispatch(rt, event_id)
    drain(rt)

    assert snapshot(rt.sessions, ids) == once


def test_a_stale_worker_cannot_overwrite_a_newer_attempt(rt: Runtime) -> None:
    event_id, (chain, _) = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    tasks.dispatch(rt, event_id)
    _, (step,) = _execution(rt, chain)
    claim = claim_step(rt, step.id, worker="old")
    assert claim is not None
    # the old worker is presumed dead; a redelivery reclaims the step (attempt 2)
    assert tasks.run_step(rt, step.id, worker="new", redelivered=True) == "succeeded"

    from workflows.engine.attempt import Attempt
    from workflows.engine.progress import settle
    from workflows.store.models import utcnow

    with rt.sessions.begin() as session:
        outcome = settle(
            session,
            step=claim.step,
            attempt=claim.attempt,
            workflow=claim.workflow,
            task=claim.task,
            result=Attempt(ok=False, error={"type": "tool_error", "message": "stale"}),
            context=claim.context,
            now=utcnow(),
        )
    assert outcome.fenced and outcome.publish == []  # fenced off
    _, rows = _execution(rt, chain)
    assert (rows[0].status, rows[0].attempts, rows[0].lost, rows[0].worker) == (
        "succeeded",
        2,
        1,
        "new",
    )


@pytest.mark.parametrize("named", [True, False], ids=["message names its task", "bare message"])
def test_a_step_takes_at_most_two_transactions(rt: Runtime, named: bool) -> None:
    event_id, (chain, _) = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    tasks.dispatch(rt, event_id)
    _, (step,) = _execution(rt, chain)
    said = {"workflow_id": "chain", "task_id": step.task_id} if named else {}
    with count_sql(rt.engine) as counted:
        tasks.run_step(rt, step.id, worker="w", **said)
    # named: one claim statement and one settle statement, each its own transaction;
    # bare: the general claim (read, claim, results, start the execution), the same settle
    assert counted.transactions == 2, counted.summary()
    assert len(counted.statements) == (2 if named else 5), counted.summary()
    _, rows = _execution(rt, chain)
    assert [(s.task_id, s.status) for s in rows] == [("first", "succeeded"), ("second", "queued")]


def test_a_cancelled_execution_cancels_its_queued_step(rt: Runtime) -> None:
    event_id, (chain, _) = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    tasks.dispatch(rt, event_id)
    with rt.sessions.begin() as session:
        execution = session.get(Execution, chain)
        assert execution is not None
        execution.status = ExecutionStatus.CANCELLED.value
    _, (step,) = _execution(rt, chain)

    assert tasks.run_step(rt, step.id, worker="w") == "dropped"
    _, (step,) = _execution(rt, chain)
    assert step.status == "cancelled" and step.attempts == 0


def test_a_redelivery_past_the_cap_fails_the_step_with_worker_lost(rt: Runtime) -> None:
    event_id, (chain, _) = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    tasks.dispatch(rt, event_id)
    _, (step,) = _execution(rt, chain)
    with rt.sessions.begin() as session:
        row = session.get(Step, step.id)
        assert row is not None
        row.status, row.lost = "running", rt.settings.redelivery_cap
    labels = {"workflow": "chain", "status": "failed"}
    before = REGISTRY.get_sample_value("herald_executions_finished_total", labels) or 0.0

    tasks.run_step(rt, step.id, worker="w", redelivered=True)
    execution, (row,) = _execution(rt, chain)
    assert (row.status, row.error["type"], row.lost) == ("failed", "worker_lost", 4)
    assert execution.status == "failed"
    # no attempt settled, yet the execution the claim failed is counted
    assert REGISTRY.get_sample_value("herald_executions_finished_total", labels) == before + 1
    assert "lost its worker 4 times" in execution.error["message"]


def test_a_task_with_a_bad_template_fails_with_the_template_named(rt: Runtime) -> None:
    (execution_id,) = _run(rt, "engine.flaky", {})  # no counter in the input

    execution, (step,) = _execution(rt, execution_id)
    assert (step.status, step.attempts, step.error["type"]) == ("failed", 1, "template_error")
    assert "counter" in step.error["message"] and "'flaky'" in step.error["message"]
    assert execution.status == "failed"


def test_a_redelivered_message_of_a_finished_step_republishes_its_queued_successor(
    rt: Runtime,
) -> None:
    event_id, (chain, _) = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    tasks.dispatch(rt, event_id)
    _, (first,) = _execution(rt, chain)
    tasks.run_step(rt, first.id, worker="w")
    rt.celery.sent.clear()  # type: ignore[attr-defined]  # the worker died before publishing

    assert tasks.run_step(rt, first.id, worker="w", redelivered=True) == "republished"

    _, (_, second) = _execution(rt, chain)
    assert [m.args for m in rt.celery.sent] == [[second.id]]  # type: ignore[attr-defined]
    assert second.publish_count == 2
    assert tasks.run_step(rt, first.id, worker="w", redelivered=False) == "dropped"
