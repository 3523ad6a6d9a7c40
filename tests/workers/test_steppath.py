"""The one-statement claim and settle (PostgreSQL): the same rows as the general path,
and every case they do not match left unchanged for the general path to handle."""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text, update

from benchmarks.counting import count_sql
from tests.workers.conftest import accept, drain, wait_for
from workers import sweep, tasks
from workers.attempts import execute
from workers.runtime import Runtime
from workers.steps import settle_attempt
from workflows.engine import control, steppath
from workflows.engine.attempt import Attempt
from workflows.engine.claim import Claim, claim
from workflows.engine.progress import settle_claim
from workflows.store import db
from workflows.store.executions import cancel, lock_execution
from workflows.store.models import Execution, Step, utcnow


def _rows(rt: Runtime, ids: list[str]) -> dict[str, Any]:
    """What a run left, without ids, times and durations (they differ from run to run)."""
    with rt.sessions() as session:
        executions = session.query(Execution).filter(Execution.id.in_(ids)).all()
        steps = session.query(Step).filter(Step.execution_id.in_(ids)).all()
        return {
            "executions": sorted(
                (e.workflow_id, e.status, e.step_count, e.output, e.error, e.started_at is not None)
                for e in executions
            ),
            "steps": sorted(
                (
                    ids.index(s.execution_id), s.seq, s.task_id, s.visit, s.status,
                    s.attempts, s.lost, s.input, s.output, s.error, s.cause,
                    sorted(s.usage or {}), s.publish_count, s.worker, s.not_before is None,
                    s.lease_until, s.finished_at is not None,
                )
                for s in steps
            ),
        }  # fmt: skip


def _runs(rt: Runtime, tmp_path: Path, *, named: bool) -> tuple[list[str], int]:
    """The fixtures' linear workflows, run to their end: what they left, and the statements."""
    events = [
        ("engine.chain", {"value": 7}),
        ("engine.fail", {"message": "no luck"}),
        ("engine.flaky", {"counter": str(tmp_path / f"counter-{named}")}),
        ("engine.dup", {}),
    ]
    shown, statements = [], 0
    for name, payload in events:
        event_id, ids = accept(rt.sessions, rt.project, name, payload)
        tasks.dispatch(rt, event_id)
        with count_sql(rt.engine) as counted:
            drain(rt, named=named)
        statements += len(counted.statements)
        text = json.dumps(_rows(rt, ids), sort_keys=True, default=str)
        for index, execution_id in enumerate(ids):
            text = text.replace(execution_id, f"exe_{index}")
        shown.append(text.replace(f"counter-{named}", "counter"))
    return shown, statements


def test_named_messages_leave_the_rows_bare_messages_leave(rt: Runtime, tmp_path: Path) -> None:
    named, fast = _runs(rt, tmp_path, named=True)
    bare, general = _runs(rt, tmp_path, named=False)
    assert named == bare
    assert fast < general / 2, (fast, general)  # the named run did take the short path


def _first_step(rt: Runtime, name: str = "engine.chain") -> tuple[str, str]:
    event_id, ids = accept(rt.sessions, rt.project, name, {"value": 1})
    tasks.dispatch(rt, event_id)
    rt.celery.sent.clear()  # type: ignore[attr-defined]
    with rt.sessions() as session:
        step = session.query(Step).filter(Step.execution_id == ids[0]).one()
        return ids[0], step.id


def _claim_fast(rt: Runtime, step_id: str, **said: Any) -> Claim | None:
    said = {"workflow_id": "chain", "task_id": "first", **said}
    with db.autocommit(rt.engine) as connection:
        return steppath.claim(connection, rt.project, step_id, worker="fast", now=utcnow(), **said)


def _step(rt: Runtime, step_id: str) -> Step:
    with rt.sessions() as session:
        found = session.get(Step, step_id)
        assert found is not None
        return found


def _settle_fast(rt: Runtime, taken: Claim) -> Any:
    result = Attempt.succeeded({"ok": 1}, input={}, usage={})
    with db.autocommit(rt.engine) as connection:
        return steppath.settle(connection, taken, result, now=utcnow())


def test_a_claim_named_for_another_task_or_workflow_takes_nothing(rt: Runtime) -> None:
    _, step_id = _first_step(rt)
    assert _claim_fast(rt, step_id, task_id="second") is None
    assert _claim_fast(rt, step_id, workflow_id="chain-executable", task_id="echo") is None
    assert _claim_fast(rt, step_id, workflow_id="nobody") is None
    assert (_step(rt, step_id).status, _step(rt, step_id).attempts) == ("queued", 0)


def test_a_second_claim_and_a_claim_of_a_step_not_due_take_nothing(rt: Runtime) -> None:
    execution_id, step_id = _first_step(rt)
    taken = _claim_fast(rt, step_id)
    assert taken is not None and taken.attempt == 1 and taken.step_count == 1
    assert taken.context["input"] == {"value": 1} and taken.context["tasks"] == {}
    assert taken.context["event"]["name"] == "engine.chain"
    with rt.sessions() as session:
        execution = session.get(Execution, execution_id)
        assert execution is not None and execution.status == "running" and execution.started_at
    assert _claim_fast(rt, step_id) is None  # a duplicate message
    with rt.sessions.begin() as session:  # a retry not due yet
        session.execute(
            update(Step)
            .where(Step.id == step_id)
            .values(status="retrying", not_before=utcnow().replace(year=2100))
        )
    assert _claim_fast(rt, step_id) is None
    assert _step(rt, step_id).attempts == 1


def test_a_stale_attempt_settles_nothing_and_the_general_path_fences_it(rt: Runtime) -> None:
    _, step_id = _first_step(rt)
    stale = _claim_fast(rt, step_id)
    assert stale is not None
    with rt.sessions.begin() as session:  # its message redelivered: reclaimed, attempt 2
        again = claim(
            session,
            rt.project,
            step_id,
            worker="new",
            redelivered=True,
            redelivery_cap=5,
            now=utcnow(),
        )
    assert again.claim is not None and again.claim.attempt == 2
    assert _settle_fast(rt, stale) is None
    row = _step(rt, step_id)
    assert (row.status, row.attempts, row.worker, row.output) == ("running", 2, "new", None)
    result = Attempt.succeeded({"ok": 1}, input={}, usage={})
    with rt.sessions.begin() as session:
        general = settle_claim(session, stale, result, now=utcnow())
    assert general.fenced and general.publish == []


def test_a_settle_on_a_changed_or_cancelled_execution_changes_nothing(rt: Runtime) -> None:
    execution_id, step_id = _first_step(rt)
    taken = _claim_fast(rt, step_id)
    assert taken is not None
    with rt.sessions.begin() as session:  # another step was added meanwhile
        session.execute(update(Execution).where(Execution.id == execution_id).values(step_count=2))
    assert _settle_fast(rt, taken) is None
    with rt.sessions.begin() as session:
        session.execute(update(Execution).where(Execution.id == execution_id).values(step_count=1))
        execution = lock_execution(session, execution_id)
        assert execution is not None
        cancel(session, execution, now=utcnow())
    assert _settle_fast(rt, taken) is None
    assert _step(rt, step_id).status == "running"  # left for the general path: it records it


def test_a_cancelled_run_records_its_step_and_starts_nothing(rt: Runtime) -> None:
    execution_id, step_id = _first_step(rt)
    taken = _claim_fast(rt, step_id)
    assert taken is not None
    with rt.sessions.begin() as session:
        execution = lock_execution(session, execution_id)
        assert execution is not None
        cancel(session, execution, now=utcnow())
    result = Attempt.succeeded({"ok": 1}, input={}, usage={})
    settled, finished, short = settle_attempt(rt, taken, result)
    assert (settled.status.value, settled.publish, finished) == ("succeeded", [], None)
    assert not short  # the general settle recorded it
    with rt.sessions() as session:
        rows = session.query(Step).filter(Step.execution_id == execution_id).all()
        assert [(s.task_id, s.status) for s in rows] == [("first", "succeeded")]
        execution = session.get(Execution, execution_id)
        assert execution is not None and execution.status == "cancelled"


def test_a_claim_lost_in_a_database_crash_runs_its_step_again(rt: Runtime) -> None:
    """The claim commits asynchronously: a crash may lose it (not what came before it)."""
    execution_id, step_id = _first_step(rt)
    with rt.sessions() as session:
        before = {
            column.key: getattr(session.get(Step, step_id), column.key) for column in _COLUMNS
        }
    taken = _claim_fast(rt, step_id)
    assert taken is not None
    result = execute(taken)  # the tool ran; then the database crashed and lost the claim
    with rt.sessions.begin() as session:
        session.execute(update(Step).where(Step.id == step_id).values(**before))
        session.execute(
            update(Execution)
            .where(Execution.id == execution_id)
            .values(status="pending", started_at=None)
        )

    settled, finished, _ = settle_attempt(rt, taken, result)
    assert settled.fenced and settled.publish == [] and finished is None
    assert _step(rt, step_id).status == "queued"  # accepted work is still there, queued
    later = utcnow() + timedelta(seconds=rt.settings.step_deadline_seconds + 1)
    assert step_id in sweep.sweep(rt, now=later).queued  # its message: published again
    drain(rt)
    with rt.sessions() as session:
        execution = session.get(Execution, execution_id)
        assert execution is not None and execution.status == "succeeded"
        rows = session.query(Step).filter(Step.execution_id == execution_id).all()
        assert [(s.task_id, s.status, s.attempts) for s in rows] == [
            ("first", "succeeded", 1),
            ("second", "succeeded", 1),
        ]


_COLUMNS = [
    column
    for column in Step.__table__.columns  # type: ignore[attr-defined]
    if column.key not in ("id", "execution_id")
]


def test_claims_racing_cancels_never_deadlock_nor_take_a_cancelled_step(rt: Runtime) -> None:
    """The claim locks the execution before the step, as a cancel does: one waits."""
    runs: list[tuple[str, str]] = []
    for n in range(30):
        event_id, (chain, _) = accept(rt.sessions, rt.project, "engine.chain", {"value": n})
        tasks.dispatch(rt, event_id)
        with rt.sessions() as session:
            step = session.query(Step).filter(Step.execution_id == chain).one()
            runs.append((chain, step.id))

    def cancelling(execution_id: str) -> None:
        with rt.sessions.begin() as session:
            control.cancel(session, execution_id, now=utcnow())

    with ThreadPoolExecutor(max_workers=8) as pool:
        claims: list[Future[Claim | None]] = []
        cancels: list[Future[None]] = []
        for n, (execution_id, step_id) in enumerate(runs):  # half the cancels go first
            if n % 2:
                cancels.append(pool.submit(cancelling, execution_id))
            claims.append(pool.submit(_claim_fast, rt, step_id))
            if not n % 2:
                cancels.append(pool.submit(cancelling, execution_id))
        taken = [future.result(timeout=60) for future in claims]  # raises on a deadlock
        for future in cancels:
            future.result(timeout=60)

    assert any(claimed is None for claimed in taken), "no cancel came first: no race"
    with rt.sessions() as session:
        for (execution_id, step_id), claimed in zip(runs, taken, strict=True):
            row = session.get(Step, step_id)
            execution = session.get(Execution, execution_id)
            assert row is not None and execution is not None
            assert execution.status == "cancelled"
            # claimed before the cancel: it runs on (its settle starts nothing); else cancelled
            expected = ("running", 1) if claimed is not None else ("cancelled", 0)
            assert (row.status, row.attempts) == expected


def test_a_duplicate_waiting_for_the_settle_that_ends_the_run_leaves_its_step_alone(
    rt: Runtime,
) -> None:
    """A claim reads the step before it waits for the execution's lock: read it again.

    A duplicate message's claim starts while a settle holds the execution: the
    settle commits the step succeeded and the execution with it; the claim then
    finds the execution finished, and must not cancel the step it read as running.
    """
    execution_id, step_id = _first_step(rt, "engine.dup")
    done = utcnow()
    settling = rt.sessions()
    settling.begin()
    assert lock_execution(settling, execution_id) is not None
    settling.execute(update(Step).where(Step.id == step_id).values(status="succeeded"))
    settling.execute(
        update(Execution)
        .where(Execution.id == execution_id)
        .values(status="succeeded", finished_at=done)
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        # a message that does not name its task: the general claim (the short one would
        # wait in its own statement, and find the execution finished once locked)
        duplicate = pool.submit(tasks.run_step, rt, step_id, worker="dup")
        wait_for(lambda: _waiting_for_a_lock(rt), timeout=10, what="the claim to wait")
        settling.commit()
        settling.close()
        assert duplicate.result(timeout=30) == "dropped"
    assert _step(rt, step_id).status == "succeeded"


def _waiting_for_a_lock(rt: Runtime) -> bool:
    with rt.engine.connect() as connection:
        return bool(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
        )
