"""The step path's SQL, counted: statements and round trips per step of a 3-step run.

The figures are load-independent (what reaches the server, not how long it
takes), so the bounds hold on a busy machine and a change that adds a
statement to every step fails here.
"""

from __future__ import annotations

from benchmarks.counting import count_sql
from tests.workers.conftest import accept, drain
from workers import tasks
from workers.runtime import Runtime
from workflows.model import ExecutionStatus
from workflows.store.models import Execution

#: upper bounds per step of a plain tool step (claim, run, settle and queue the next),
#: averaged over the run (the first step also starts the execution, the last finishes it)
MAX_STATEMENTS_PER_STEP = 2
MAX_ROUND_TRIPS_PER_STEP = 2


def test_a_three_step_run_stays_within_its_statements_and_round_trips_per_step(
    rt: Runtime,
) -> None:
    event_id, (execution_id,) = accept(rt.sessions, rt.project, "engine.dup", {})
    tasks.dispatch(rt, event_id)
    with count_sql(rt.engine) as counted:
        steps = drain(rt)

    with rt.sessions() as session:
        execution = session.get(Execution, execution_id)
        assert execution is not None and execution.status == ExecutionStatus.SUCCEEDED.value
    assert steps == 3
    assert len(counted.statements) <= MAX_STATEMENTS_PER_STEP * steps, counted.summary()
    assert counted.round_trips <= MAX_ROUND_TRIPS_PER_STEP * steps, counted.summary()
