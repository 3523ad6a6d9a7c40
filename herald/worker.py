"""`herald worker`: run a Celery worker for herald's dispatch, step and agent queues.

It refuses to start on an unmigrated database or on invalid definitions (every
problem printed). Each worker gets a unique node name, so several may run on
one host; each one sweeps (recovers lost work) when it starts and periodically,
beats in the ``workers`` table, and on SIGTERM lets its running steps finish
for ``HERALD_SHUTDOWN_GRACE`` seconds before it hands the rest back. With
``--metrics-port`` it serves the node's Prometheus metrics (all its pool
processes added up, through a directory of its own) on that port.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import uuid

import click

from herald import multiproc
from herald.preflight import preflight
from workflows.errors import DefinitionError, HeraldError
from workflows.settings import Settings

QUEUE_NAMES = ("dispatch", "steps", "agents")


@click.command("worker")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Pool processes or threads (default: the number of CPUs).",
)
@click.option(
    "-Q",
    "--queues",
    default=",".join(QUEUE_NAMES),
    show_default=True,
    help="Which of herald's queues to consume, comma-separated.",
)
@click.option(
    "-P",
    "--pool",
    type=click.Choice(["prefork", "threads", "solo"]),
    default="prefork",
    show_default=True,
    help="Celery execution pool.",
)
@click.option("-l", "--loglevel", default=None, help="Log level (default: HERALD_LOG_LEVEL).")
@click.option(
    "-n",
    "--hostname",
    default=None,
    help="Node name (default: herald-<random>@<host>, unique per process).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    envvar="HERALD_WORKER_METRICS_PORT",
    help="Serve this node's Prometheus metrics on this port (default: off).",
)
def command(
    concurrency: int | None,
    queues: str,
    pool: str,
    loglevel: str | None,
    hostname: str | None,
    metrics_port: int | None,
) -> None:
    """Run a worker: dispatch events, run steps, sweep for lost work."""
    # before anything records a metric: the node's processes share this directory
    metrics_dir = multiproc.fresh_dir("herald-worker-metrics-") if metrics_port else None
    from celery import Celery
    from celery.signals import worker_process_shutdown, worker_ready
    from celery.utils.nodenames import default_nodename, host_format

    from workers import logs, metrics, runtime
    from workers.agents import check_providers
    from workers.celery_app import Queues, make_celery
    from workers.heartbeat import HeartbeatStep
    from workers.sweep import SweepStep
    from workflows.engine.messages import visibility_timeout
    from workflows.ids import new_id

    try:
        settings = Settings.from_env()
    except HeraldError as exc:
        raise click.ClickException(exc.message) from None
    level = (loglevel or settings.log_level).upper()
    selected = _queues(queues, Queues.for_prefix(settings.queue_prefix))
    try:
        project = preflight(settings).project
    except DefinitionError as exc:
        click.echo(exc.message, err=True)
        sys.exit(1)
    except HeraldError as exc:
        raise click.ClickException(exc.message) from None

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logs.configure(level)
    for line in check_providers(project):
        logs.log_event("worker.agent_unavailable", level=logging.WARNING, problem=line)
    # never below what the project's longest step needs (docs/engine.md, "visibility timeout")
    visibility = visibility_timeout(project, settings.visibility_timeout_seconds)
    celery: Celery = make_celery(settings, visibility_timeout=visibility)
    celery.steps["worker"].add(HeartbeatStep)
    celery.steps["worker"].add(SweepStep)
    node = host_format(default_nodename(hostname or f"herald-{uuid.uuid4().hex[:8]}@%h"))
    # a threads pool shares one engine between its threads: one connection each
    pool_size = (concurrency or os.cpu_count() or 2) if pool == "threads" else 2
    worker_id = new_id("wkr")
    runtime.configure(settings, project, celery=celery, pool_size=pool_size, worker_id=worker_id)
    ready = functools.partial(_ready, worker_id=worker_id, visibility_timeout=visibility)
    worker_ready.connect(ready, weak=False, dispatch_uid="herald.worker.ready")
    worker = celery.Worker(
        hostname=node,
        pool_cls=pool,
        concurrency=concurrency,
        queues=selected,
        loglevel=level,
        without_mingle=True,
        without_gossip=True,
    )
    if metrics_port is not None and metrics_dir is not None:
        try:
            metrics.start_exporter(metrics_port)
        except OSError as exc:
            multiproc.remove_dir(metrics_dir)
            raise click.ClickException(
                f"cannot serve metrics on port {metrics_port}: {exc.strerror or exc}"
            ) from None
        worker_process_shutdown.connect(metrics.mark_dead, weak=False, dispatch_uid="herald.mx")
        logs.log_event("worker.metrics", port=metrics_port)
    main = os.getpid()
    try:
        worker.start()
    finally:
        if metrics_dir is not None and os.getpid() == main:  # never from a pool process
            multiproc.remove_dir(metrics_dir)
    sys.exit(worker.exitcode)


def _queues(raw: str, queues: object) -> list[str]:
    """Full queue names for ``dispatch,steps,agents``; a misspelt name is a usage error."""
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in QUEUE_NAMES]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown queue(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(QUEUE_NAMES)}",
            param_hint="--queues",
        )
    return [getattr(queues, name) for name in names]


def _ready(
    sender: object = None, *, worker_id: str, visibility_timeout: float, **_: object
) -> None:
    """Log that the worker consumes its queues (tests and operators wait for this line)."""
    from workers.logs import log_event

    log_event(
        "worker.ready",
        hostname=getattr(sender, "hostname", None),
        worker_id=worker_id,
        visibility_timeout=visibility_timeout,
    )
