"""`herald serve`: not built yet."""

from __future__ import annotations

import click


@click.command("serve")
def command() -> None:
    """Not built yet."""
    raise click.ClickException("herald serve is not built yet")
