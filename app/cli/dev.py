"""`herald dev`: not built yet."""

from __future__ import annotations

import click


@click.command("dev")
def command() -> None:
    """Not built yet."""
    raise click.ClickException("herald dev is not built yet")
