"""`herald sweep`: run the recovery sweep standalone (workers also sweep on their own)."""

from __future__ import annotations

import contextlib

import click

from herald.preflight import preflight
from workflows.errors import HeraldError
from workflows.settings import Settings


@click.command("sweep")
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds between passes (default: HERALD_SWEEP_INTERVAL).",
)
def command(once: bool, interval: float | None) -> None:
    """Re-publish work that was accepted but never picked up; reclaim lost steps."""
    from workers import logs
    from workers.sweep import Sweeper, sweep, sweep_runtime

    try:
        settings = Settings.from_env()
        project = preflight(settings).project
    except HeraldError as exc:
        raise click.ClickException(exc.message) from None
    logs.configure(settings.log_level)
    rt = sweep_runtime(settings, project)
    if once:
        try:
            report = sweep(rt)
        except HeraldError as exc:
            raise click.ClickException(exc.message) from None
        finally:
            rt.close()
        click.echo(
            f"swept: {len(report.events)} event(s), {len(report.queued)} queued, "
            f"{len(report.retries)} retrying, {len(report.lost)} lost, "
            f"{len(report.failed)} failed"
            + (" (another sweep held the lock)" if report.skipped else "")
        )
        return
    sweeper = Sweeper(rt, interval or settings.sweep_interval_seconds)
    sweeper.start()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            sweeper.wait()
    finally:
        sweeper.stop()
