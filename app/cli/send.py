"""`herald send`: not built yet."""

from __future__ import annotations

import click


@click.command("send")
def command() -> None:
    """Not built yet."""
    raise click.ClickException("herald send is not built yet")
