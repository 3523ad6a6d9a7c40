"""The recovery sweep: stale events and steps re-published, lost steps reclaimed or failed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text

from tests.workers.conftest import accept, claim_step, drain, wait_for
from workers import sweep, tasks
from workers.celery_app import DISPATCH_TASK, STEP_TASK
from workers.runtime import Runtime
from workflows.engine.recovery import LOCK_KEY
from workflows.store.models import Event, Execution, Step, utcnow


def _steps(rt: Runtime, execution_id: str) -> list[Step]:
    with rt.sessions() as session:
        return list(
            session.scalars(
                select(Step).where(Step.execution_id == execution_id).order_by(Step.seq)
            )
        )


def test_an_event_never_dispatched_is_published_again_after_the_deadline(rt: Runtime) -> None:
    event_id, ids = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    deadline = rt.settings.dispatch_deadline_seconds

    assert sweep.sweep(rt).events == []  # too young
    report = sweep.sweep(rt, now=utcnow() + timedelta(seconds=deadline + 1))

    assert report.events == [event_id]
    assert [(m.name, m.args) for m in rt.celery.sent] == [(DISPATCH_TASK, [event_id])]  # type: ignore[attr-defined]
    # published once now: the next publish waits twice as long
    assert sweep.sweep(rt, now=utcnow() + timedelta(seconds=deadline + 1)).events == []
    drain(rt)
    with rt.sessions() as session:
        statuses = session.scalars(select(Execution.status).where(Execution.id.in_(ids))).all()
    assert sorted(statuses) == ["succeeded", "succeeded"]


def test_a_step_queued_but_never_started_is_published_again(rt: Runtime) -> None:
    event_id, (chain, _) = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    tasks.dispatch(rt, event_id)
    rt.celery.sent.clear()  # type: ignore[attr-defined]  # the messages were lost
    later = utcnow() + timedelta(seconds=rt.settings.step_deadline_seconds + 1)

    report = sweep.sweep(rt, now=later)

    assert len(report.queued) == 2
    assert {m.name for m in rt.celery.sent} == {STEP_TASK}  # type: ignore[attr-defined]
    (step,) = _steps(rt, chain)
    assert step.publish_count == 2 and step.queued_at == later


def test_a_running_step_whose_lease_passed_is_requeued_with_lost_counted(rt: Runtime) -> None:
    event_id, (chain, _) = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    tasks.dispatch(rt, event_id)
    (step,) = _steps(rt, chain)
    claim = claim_step(rt, step.id, worker="dead")
    assert claim is not None
    rt.celery.sent.clear()  # type: ignore[attr-defined]

    report = sweep.sweep(rt, now=utcnow() + timedelta(hours=1))

    assert report.lost == [step.id]
    (step,) = _steps(rt, chain)
    assert (step.status, step.lost, step.attempts) == ("queued", 1, 1)
    drain(rt)
    first, second = _steps(rt, chain)
    assert (first.status, first.attempts, first.lost) == ("succeeded", 2, 1)
    assert second.status == "succeeded"


def test_a_step_lost_past_the_cap_fails_down_its_error_path(rt: Runtime) -> None:
    event_id, (execution_id,) = accept(rt.sessions, rt.project, "engine.fail", {"message": "m"})
    tasks.dispatch(rt, event_id)
    (step,) = _steps(rt, execution_id)
    with rt.sessions.begin() as session:
        row = session.get(Step, step.id)
        assert row is not None
        row.status, row.lost, row.lease_until = "running", rt.settings.redelivery_cap, utcnow()
    rt.celery.sent.clear()  # type: ignore[attr-defined]

    report = sweep.sweep(rt, now=utcnow() + timedelta(seconds=1))

    assert report.failed == [step.id]
    boom, handle = _steps(rt, execution_id)
    assert (boom.status, boom.error["type"]) == ("failed", "worker_lost")
    assert handle.cause["type"] == "worker_lost" and handle.status == "queued"
    drain(rt)
    assert _steps(rt, execution_id)[1].input["reason"].startswith("step lost its worker 4 times")


def test_an_execution_the_sweep_gives_up_on_is_counted_finished(rt: Runtime) -> None:
    event_id, (chain, _) = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    tasks.dispatch(rt, event_id)
    (step,) = _steps(rt, chain)
    with rt.sessions.begin() as session:
        row = session.get(Step, step.id)
        assert row is not None
        row.status, row.lost, row.lease_until = "running", rt.settings.redelivery_cap, utcnow()
    labels = {"workflow": "chain", "status": "failed"}
    before = REGISTRY.get_sample_value("herald_executions_finished_total", labels) or 0.0

    assert sweep.sweep(rt, now=utcnow() + timedelta(seconds=1)).failed == [step.id]

    with rt.sessions() as session:
        execution = session.get(Execution, chain)
        assert execution is not None and execution.status == "failed"  # no on_error: it ends
    after = REGISTRY.get_sample_value("herald_executions_finished_total", labels)
    assert after == before + 1


def test_a_long_retry_is_released_by_the_sweep_once_due(rt: Runtime) -> None:
    event_id, (chain,) = accept(rt.sessions, rt.project, "engine.flaky", {"counter": "/tmp/x"})
    tasks.dispatch(rt, event_id)
    (step,) = _steps(rt, chain)
    now = utcnow()
    with rt.sessions.begin() as session:
        row = session.get(Step, step.id)
        assert row is not None
        row.status, row.queued_at, row.not_before = "retrying", now, now + timedelta(minutes=5)
    rt.celery.sent.clear()  # type: ignore[attr-defined]

    assert sweep.sweep(rt, now=now + timedelta(minutes=4)).retries == []
    assert sweep.sweep(rt, now=now + timedelta(minutes=5, seconds=1)).retries == [step.id]
    assert [m.args for m in rt.celery.sent] == [[step.id]]  # type: ignore[attr-defined]


def test_only_one_sweep_runs_at_a_time(rt: Runtime) -> None:
    with rt.engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
        try:
            assert sweep.sweep(rt).skipped is True
        finally:
            other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            other.commit()
    assert sweep.sweep(rt).skipped is False


def test_an_unrouted_or_dispatched_event_is_left_alone(rt: Runtime) -> None:
    accept(rt.sessions, rt.project, "nobody.listens", {})
    event_id, _ = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    tasks.dispatch(rt, event_id)
    report = sweep.sweep(rt, now=utcnow() + timedelta(seconds=5))
    assert report.events == []
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 2


def test_a_crashing_pass_does_not_end_the_sweeper_thread(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes: list[str] = []

    def flaky(_rt: Runtime, **_: object) -> None:
        passes.append("crash" if not passes else "ok")
        if len(passes) == 1:
            raise RuntimeError("a bug in one pass")

    monkeypatch.setattr(sweep, "run_once_logged", flaky)
    sweeper = sweep.Sweeper(rt, interval=0.01)
    sweeper.start()
    try:
        wait_for(lambda: len(passes) >= 2, timeout=5, what="a second sweep pass")
    finally:
        sweeper._stop.set()
        sweeper._thread.join(5)
    assert passes[:2] == ["crash", "ok"]


@pytest.mark.parametrize("short", [False, True], ids=["general settle", "one-statement settle"])
def test_the_sweep_and_settling_workers_on_the_same_steps_never_deadlock(
    rt: Runtime, short: bool
) -> None:
    """Lock order: the sweep locks executions before steps, as claims and settles do.

    Workers presumed dead (leases long past) finish their attempts at the very
    moment the sweep reclaims the same steps. With the sweep locking steps first
    and executions second, PostgreSQL kills one side with a deadlock error. The
    one-statement settle (:mod:`workflows.engine.steppath`) keeps the same order.
    """
    from concurrent.futures import ThreadPoolExecutor

    from workers.steps import settle_attempt
    from workflows.engine.attempt import Attempt
    from workflows.engine.claim import Claim
    from workflows.engine.progress import settle

    claims: list[Claim] = []
    for n in range(40):
        event_id, _ = accept(rt.sessions, rt.project, "engine.chain", {"value": n})
        tasks.dispatch(rt, event_id)
    with rt.sessions() as session:
        queued = session.scalars(select(Step.id).where(Step.status == "queued")).all()
    claims = [claim_step(rt, step_id, worker="dead") for step_id in queued]
    later = utcnow() + timedelta(hours=1)

    def finish(claim: Claim) -> str:
        if short:
            result = Attempt.succeeded({"result": 1}, input={}, usage={})
            done, _, _ = settle_attempt(rt, claim, result)
            return "fenced" if done.fenced else done.status.value
        with rt.sessions.begin() as session:
            settled = settle(
                session,
                step=claim.step,
                attempt=claim.attempt,
                workflow=claim.workflow,
                task=claim.task,
                result=Attempt.succeeded({"result": 1}, input={}, usage={}),
                context=claim.context,
                now=utcnow(),
            )
        return "fenced" if settled.fenced else settled.status.value

    with ThreadPoolExecutor(max_workers=8) as pool:
        settling = [pool.submit(finish, claim) for claim in claims]
        report = sweep.sweep(rt, now=later)  # raises on a deadlock
        outcomes = [future.result(timeout=60) for future in settling]  # so would these

    # each step was either settled by its worker or reclaimed by the sweep, never both
    reclaimed = set(report.lost)
    assert sorted(outcomes).count("succeeded") + len(reclaimed) == len(claims)
    with rt.sessions() as session:
        rows = {s.id: s for s in session.scalars(select(Step).where(Step.id.in_(queued)))}
    for claim, outcome in zip(claims, outcomes, strict=True):
        row = rows[claim.step.id]
        if outcome == "fenced":
            assert claim.step.id in reclaimed and (row.status, row.lost) == ("queued", 1)
        else:
            assert claim.step.id not in reclaimed and row.status == "succeeded"


def test_a_failed_publish_does_not_push_an_events_next_try_further_out(rt: Runtime) -> None:
    from kombu.exceptions import OperationalError

    event_id, _ = accept(rt.sessions, rt.project, "engine.chain", {"value": 1})
    late = utcnow() + timedelta(seconds=rt.settings.dispatch_deadline_seconds + 1)

    def refused(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    rt.celery.send_task = refused  # type: ignore[method-assign]
    assert sweep.sweep(rt, now=late).events == [event_id]
    with rt.sessions() as session:
        assert session.get(Event, event_id).publish_count == 0  # type: ignore[union-attr]
    del rt.celery.send_task  # the recording one again

    assert sweep.sweep(rt, now=late).events == [event_id]  # due at once, not after a backoff
    assert [m.args for m in rt.celery.sent] == [[event_id]]  # type: ignore[attr-defined]


def test_the_sweep_prunes_rejections_past_their_time_to_live(rt: Runtime) -> None:
    from workflows.store.models import Rejection

    ttl = rt.settings.rejection_ttl_seconds
    now = utcnow()
    with rt.sessions.begin() as session:
        for age, code in ((ttl + 60, "expired"), (ttl - 60, "kept")):
            session.add(
                Rejection(
                    at=now - timedelta(seconds=age),
                    status_code=422,
                    code=code,
                    message="refused",
                )
            )

    report = sweep.sweep(rt, now=now)

    assert report.pruned == 1
    with rt.sessions() as session:
        assert session.scalars(select(Rejection.code)).all() == ["kept"]
