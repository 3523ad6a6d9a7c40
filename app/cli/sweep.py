"""`herald sweep`: not built yet."""

from __future__ import annotations

import click


@click.command("sweep")
def command() -> None:
    """Not built yet."""
    raise click.ClickException("herald sweep is not built yet")
