"""`herald worker`: not built yet."""

from __future__ import annotations

import click


@click.command("worker")
def command() -> None:
    """Not built yet."""
    raise click.ClickException("herald worker is not built yet")
