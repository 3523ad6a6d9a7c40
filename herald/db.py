"""`herald db upgrade`: migrate the database named by HERALD_DATABASE_URL (and set up a role)."""

from __future__ import annotations

import os

import click
from psycopg import Error as PsycopgError
from sqlalchemy.exc import SQLAlchemyError

from workflows.errors import HeraldError
from workflows.settings import Settings
from workflows.store import db
from workflows.store.roles import grant_app_role


@click.group("db")
def command() -> None:
    """Manage herald's database schema."""


@command.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Migrate to this revision.")
@click.option(
    "--app-role",
    default=None,
    metavar="NAME",
    help="Then create or update this login role (password: HERALD_DB_APP_PASSWORD) with "
    "read/write rights on herald's tables only, for the API and workers to run as.",
)
def upgrade(revision: str, app_role: str | None) -> None:
    """Create or migrate herald's tables (safe to run again)."""
    settings = Settings.from_env()
    try:
        db.upgrade(settings.database_url, revision)
        if app_role is not None:
            engine = db.make_engine(settings.database_url)
            try:
                grant_app_role(engine, app_role, os.environ.get("HERALD_DB_APP_PASSWORD", ""))
            finally:
                engine.dispose()
    except HeraldError as exc:
        raise click.ClickException(exc.message) from None
    except (SQLAlchemyError, PsycopgError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise click.ClickException(f"cannot set up role {app_role!r}: {reason}") from None
    click.echo(f"database migrated to {revision} ({_safe(settings.database_url)})")
    if app_role is not None:
        click.echo(f"role {app_role!r} may read and write herald's tables (no superuser, no DDL)")


def _safe(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(db.normalize_url(url)).render_as_string(hide_password=True)
