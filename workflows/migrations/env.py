"""Alembic environment: migrates the database named by the config or HERALD_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context

from workflows.store.db import make_engine
from workflows.store.models import Base

config = context.config
url = (
    context.get_x_argument(as_dictionary=True).get("url")
    or config.get_main_option("sqlalchemy.url")
    or os.environ.get("HERALD_DATABASE_URL", "")
)
if not url:
    raise SystemExit("set HERALD_DATABASE_URL (or -x url=...) to say which database to migrate")

engine = make_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
