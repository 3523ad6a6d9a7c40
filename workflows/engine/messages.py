"""What the engine asks its caller to publish once the transaction has committed.

The engine never publishes: each state change returns these values, and the
caller (a worker, the sweep, the API) sends them after its commit, so that a
message never names work the database does not hold yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workflows.model import Task

#: the longest countdown put on the broker; longer delays wait in the database
MAX_COUNTDOWN = 60.0
#: seconds a step may overrun its soft time limit before its pool process is killed
HARD_LIMIT_GRACE = 30.0
#: seconds added to a step's lease beyond its hard time limit
LEASE_MARGIN = 10.0


@dataclass(frozen=True)
class Publish:
    """A step's run message."""

    step_id: str
    #: ``tool`` or ``agent``: which task (and queue) runs it
    uses: str
    timeout: float
    countdown: float = 0.0


@dataclass(frozen=True)
class Dispatch:
    """An accepted event's dispatch message."""

    event_id: str


#: anything the engine returns to publish
Message = Publish | Dispatch


def run_message(step_id: str, task: Task, countdown: float = 0.0) -> Publish:
    """The run message of step ``step_id`` (a visit of ``task``)."""
    return Publish(step_id, task.uses, task.step_timeout, countdown)


def lease_seconds(task: Task) -> float:
    """How long a claim of ``task``'s step holds before the sweep presumes its worker lost."""
    return task.step_timeout + HARD_LIMIT_GRACE + LEASE_MARGIN


def due_message(
    step_id: str, task: Task, *, not_before: datetime | None, now: datetime
) -> list[Publish]:
    """A queued step's run message: at once, with a countdown to ``not_before``, or none.

    A step due more than :data:`MAX_COUNTDOWN` seconds from now is not put on
    the broker (long ETAs there are unsafe): it waits in the database, and the
    sweep releases it when it is due.
    """
    if not_before is None:
        return [run_message(step_id, task)]
    wait = (not_before - now).total_seconds()
    if wait > MAX_COUNTDOWN:
        return []
    return [run_message(step_id, task, countdown=max(wait, 0.0))]
