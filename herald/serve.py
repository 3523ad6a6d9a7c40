"""`herald serve`: run the API under gunicorn, after checking the schema and the definitions.

It refuses to start on a database that was never migrated (run `herald db
upgrade`) or on invalid workflow definitions (every problem is printed), so a
bad deployment fails at once with a message instead of on the first request.

Its metrics add up over gunicorn's workers: without ``PROMETHEUS_MULTIPROC_DIR``
it makes a fresh directory for them (removed when it exits), and a worker that
exits is marked dead in it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click
from gunicorn.app.base import BaseApplication

from herald import multiproc
from herald.preflight import preflight
from workflows.errors import ConfigError, DefinitionError, StoreError
from workflows.settings import Settings

if TYPE_CHECKING:
    from flask import Flask


class ApiServer(BaseApplication):  # type: ignore[misc]
    """gunicorn running ``create_app(settings)`` in each worker process."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        """Hand our options to gunicorn."""
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Build the app in the worker (after the fork: no shared connections)."""
        from app import create_app

        return create_app(self.settings)


def _child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: a worker exited; drop its live values from the metrics directory."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def warn_without_tokens(settings: Settings) -> None:
    """Warn on stderr when no API token is configured: the API would refuse every request."""
    from app.auth import load_tokens

    if not len(load_tokens(settings.api_tokens, settings.tokens_file, None)):
        click.echo(
            "warning: no API tokens configured (HERALD_API_TOKENS or HERALD_TOKENS_FILE); "
            "every request will be refused with 401",
            err=True,
        )


@click.command("serve")
@click.option("--bind", default="127.0.0.1:8080", show_default=True, help="Address to listen on.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1), help="Processes.")
@click.option(
    "--threads",
    default=16,
    show_default=True,
    type=click.IntRange(1),
    # the POSTs a process serves at once share one commit (app.groupcommit): more threads,
    # larger groups, fewer commits under load
    help="Threads per process.",
)
def command(bind: str, workers: int, threads: int) -> None:
    """Run the HTTP API (configured by HERALD_* variables) under gunicorn."""
    try:
        settings = Settings.from_env()
        preflight(settings)
        warn_without_tokens(settings)
    except DefinitionError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(
            f"refusing to start: {len(exc.problems)} problem(s) in the workflow definitions "
            f"of {settings.project_dir}"
        ) from None
    except (StoreError, ConfigError) as exc:
        raise click.ClickException(f"refusing to start: {exc.message}") from None
    # before gunicorn forks: every worker inherits the directory
    made = None if os.environ.get(multiproc.ENV) else multiproc.fresh_dir("herald-api-metrics-")
    options: dict[str, Any] = {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": None,
        "timeout": 30,
        "graceful_timeout": 10,
        "child_exit": _child_exit,
    }
    click.echo(f"herald API on http://{bind} ({workers} worker(s) x {threads} thread(s))")
    if made is not None:
        options["on_exit"] = lambda server: multiproc.remove_dir(made)
    ApiServer(settings, options).run()
