"""`herald db upgrade`: migrate the database named by HERALD_DATABASE_URL."""

from __future__ import annotations

import click

from workflows.errors import HeraldError
from workflows.settings import Settings
from workflows.store import db


@click.group("db")
def command() -> None:
    """Manage herald's database schema."""


@command.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Migrate to this revision.")
def upgrade(revision: str) -> None:
    """Create or migrate herald's tables (safe to run again)."""
    settings = Settings.from_env()
    try:
        db.upgrade(settings.database_url, revision)
    except HeraldError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"database migrated to {revision} ({_safe(settings.database_url)})")


def _safe(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(db.normalize_url(url)).render_as_string(hide_password=True)
