"""`herald validate`: not built yet."""

from __future__ import annotations

import click


@click.command("validate")
def command() -> None:
    """Not built yet."""
    raise click.ClickException("herald validate is not built yet")
