"""The database role the API and the workers run as: not a superuser, no DDL.

``herald db upgrade --app-role NAME`` migrates as the (privileged) user of
``HERALD_DATABASE_URL`` and then makes sure role NAME exists with a password,
may log in, and may read and write herald's tables and nothing more: no
superuser, no CREATEDB or CREATEROLE, not the owner of any table (so no DDL).
Default privileges cover the tables later migrations create.
"""

from __future__ import annotations

from psycopg import sql
from sqlalchemy import Engine

from workflows.errors import ConfigError

#: what the application role may do on herald's tables
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def grant_app_role(engine: Engine, role: str, password: str) -> None:
    """Create or update ``role`` with ``password`` and the rights herald needs, no more."""
    if engine.dialect.name != "postgresql":
        raise ConfigError("an application role is a PostgreSQL feature (this is SQLite)")
    if not role or len(role) > 63:
        raise ConfigError("the application role needs a name of 1 to 63 characters")
    if not password:
        raise ConfigError("set HERALD_DB_APP_PASSWORD: the application role needs a password")
    name = sql.Identifier(role)
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert connection is not None
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user, current_database()")
            row = cursor.fetchone()
            assert row is not None
            current, database = row
            if current == role:
                raise ConfigError(
                    f"the application role {role!r} is the user that migrates; name another"
                )
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            verb = "ALTER" if cursor.fetchone() else "CREATE"
            cursor.execute(
                sql.SQL(
                    "{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                    "NOBYPASSRLS PASSWORD {}"
                ).format(sql.SQL(verb), name, sql.Literal(password))
            )
            for statement in (
                "GRANT CONNECT ON DATABASE {db} TO {role}",
                "GRANT USAGE ON SCHEMA public TO {role}",
                f"GRANT {TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA public TO {{role}}",
                "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                f"GRANT {TABLE_PRIVILEGES} ON TABLES TO {{role}}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                "GRANT USAGE, SELECT ON SEQUENCES TO {role}",
            ):
                cursor.execute(sql.SQL(statement).format(db=sql.Identifier(database), role=name))
        connection.commit()
    finally:
        raw.close()
