"""`herald dev`: everything in one process on a laptop (SQLite, in-process broker and worker)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from workflows.errors import DefinitionError, HeraldError


@click.command("dev")
@click.option(
    "--project",
    "project",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The project directory (default: HERALD_PROJECT_DIR, else the current directory).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="Port of the API on 127.0.0.1.",
)
def command(project: Path | None, port: int) -> None:
    """Run the API, a worker, the broker and the database in this one process.

    Needs no PostgreSQL, Redis or Docker: the database is SQLite at
    <project>/.herald/herald.db, the broker lives in memory. Workflow files are
    reloaded when they change; unfinished work is picked up again after a restart.
    """
    from herald.dev.server import DevServer, dev_settings

    root = project or Path(os.environ.get("HERALD_PROJECT_DIR") or Path.cwd())
    if not root.is_dir():
        raise click.ClickException(f"project directory {root} does not exist")
    try:
        DevServer(dev_settings(root), port=port).run()
    except DefinitionError as exc:
        click.echo(exc.message, err=True)
        click.echo("herald dev: fix the definitions above and start again.", err=True)
        sys.exit(1)
    except HeraldError as exc:
        raise click.ClickException(exc.message) from None
