"""The one metric both sides move: executions finished, wherever they end.

An execution ends when its last step settles or the sweep gives up on it (a
worker), when a wait it ends with is resumed by an accepted event or it is
cancelled (the API). Each process counts what its own transactions committed
(:func:`workflows.store.executions.finished_in`); Prometheus adds up the API's
and the workers' series (``sum by (workflow, status)``). The counter lives here,
in the core both import, so that ``herald dev``, which runs both in one process,
registers it once.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter

EXECUTIONS_FINISHED = Counter(
    "herald_executions_finished",
    "Executions that ended (last step settled, cancelled, resumed or timed-out wait, "
    "given up by the sweep), by workflow and status.",
    ["workflow", "status"],
)


def executions_finished(finished: Iterable[tuple[str, str]]) -> None:
    """Count executions whose end committed (call after the commit)."""
    for workflow, status in finished:
        EXECUTIONS_FINISHED.labels(workflow=workflow, status=status).inc()
