"""What the run reads from herald's database: counts, finished executions, step timings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from workflows.model import ExecutionStatus
from workflows.store.models import Base, Event, Execution, Step


@dataclass(frozen=True)
class StepTimes:
    """One step's timestamps, as seconds since the epoch."""

    execution_id: str
    seq: int
    started: float | None
    finished: float | None


def count_events(session: Session, name: str) -> int:
    """Committed events of this name."""
    return session.scalar(select(func.count()).select_from(Event).where(Event.name == name)) or 0


def count_finished(session: Session, execution_ids: Sequence[str]) -> int:
    """How many of these executions will run no more steps."""
    finished = [s.value for s in ExecutionStatus if s.finished]
    query = select(func.count()).where(
        Execution.id.in_(execution_ids), Execution.status.in_(finished)
    )
    return session.scalar(query) or 0


def execution_results(
    session: Session, execution_ids: Sequence[str]
) -> dict[str, tuple[str, float]]:
    """Status and finish time of each execution."""
    rows = session.execute(
        select(Execution.id, Execution.status, Execution.finished_at).where(
            Execution.id.in_(execution_ids)
        )
    )
    return {id_: (status, _ts(done) or 0.0) for id_, status, done in rows}


def step_times(session: Session, execution_ids: Sequence[str]) -> list[StepTimes]:
    """The timings of these executions' steps, in execution and step order."""
    query = (
        select(Step.execution_id, Step.seq, Step.started_at, Step.finished_at)
        .where(Step.execution_id.in_(execution_ids))
        .order_by(Step.execution_id, Step.seq)
    )
    return [
        StepTimes(execution_id, seq, _ts(started), _ts(finished))
        for execution_id, seq, started, finished in session.execute(query)
    ]


def truncate(engine: Engine) -> None:
    """Empty every herald table, so that the next phase starts from nothing."""
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def _ts(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()
