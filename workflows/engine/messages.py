"""What the engine asks its caller to publish once the transaction has committed.

The engine never publishes: each state change returns these values, and the
caller (a worker, the sweep, the API) sends them after its commit, so that a
message never names work the database does not hold yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from workflows.model import Project, Task

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
    #: what the step is a visit of, when the publisher knows: a hint the claim checks
    #: (a worker takes the one-statement claim of :mod:`workflows.engine.steppath` with it)
    workflow_id: str | None = None
    task_id: str | None = None


@dataclass(frozen=True)
class Dispatch:
    """An accepted event's dispatch message."""

    event_id: str


#: anything the engine returns to publish
Message = Publish | Dispatch


def run_message(
    step_id: str, task: Task, countdown: float = 0.0, *, workflow_id: str | None = None
) -> Publish:
    """The run message of step ``step_id`` (a visit of ``task`` of workflow ``workflow_id``)."""
    task_id = task.id if workflow_id is not None else None
    return Publish(step_id, task.uses, task.step_timeout, countdown, workflow_id, task_id)


def lease_seconds(task: Task) -> float:
    """How long a claim of ``task``'s step holds before the sweep presumes its worker lost."""
    return task.step_timeout + HARD_LIMIT_GRACE + LEASE_MARGIN


def due_message(
    step_id: str,
    task: Task,
    *,
    not_before: datetime | None,
    now: datetime,
    workflow_id: str | None = None,
) -> list[Publish]:
    """A queued step's run message: at once, with a countdown to ``not_before``, or none.

    A step due more than :data:`MAX_COUNTDOWN` seconds from now is not put on
    the broker (long ETAs there are unsafe): it waits in the database, and the
    sweep releases it when it is due.
    """
    if not_before is None:
        return [run_message(step_id, task, workflow_id=workflow_id)]
    wait = (not_before - now).total_seconds()
    if wait > MAX_COUNTDOWN:
        return []
    return [run_message(step_id, task, countdown=max(wait, 0.0), workflow_id=workflow_id)]


def longest_lease(project: Project) -> float:
    """The longest lease any step of ``project`` may hold (0 without tasks).

    A parallel task's children and the task a collection runs per item are steps too.
    """
    tasks = [task for workflow in project.workflows.values() for task in _steps_of(workflow.tasks)]
    return max((lease_seconds(task) for task in tasks), default=0.0)


def _steps_of(tasks: Iterable[Task]) -> Iterator[Task]:
    for task in tasks:
        yield task
        if task.parallel is not None:
            yield from _steps_of(task.parallel.children)
        if task.collection is not None:
            yield from _steps_of([task.collection.task])


def visibility_timeout(project: Project, floor: float) -> float:
    """Seconds Redis may keep a delivered message unacknowledged before it hands it out again.

    A message stays unacknowledged from its delivery until its task returns:
    a countdown of up to :data:`MAX_COUNTDOWN`, then possibly a wait for a free
    pool process behind the longest step, then its own run, each bounded by the
    longest lease. Below that, Redis would hand a message out again while its
    step legitimately runs, so ``floor`` (``HERALD_VISIBILITY_TIMEOUT``) is
    raised to it when the project has long steps.
    """
    return max(floor, MAX_COUNTDOWN + 2 * longest_lease(project))
