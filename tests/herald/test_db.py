"""`herald db upgrade --app-role`: the API and workers run as a role that cannot do DDL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from tests.support import drop_role
from workflows.store import db

HERALD = Path(sys.executable).with_name("herald")


@pytest.fixture
def role(empty_database: str) -> Iterator[str]:
    """A role name no other run uses, dropped after the test with what it was granted."""
    name = f"herald_app_{uuid.uuid4().hex[:8]}"
    yield name
    drop_role(empty_database, name)


def _upgrade(url: str, *args: str, password: str | None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/"),
        "HERALD_DATABASE_URL": url,
    }
    if password is not None:
        env["HERALD_DB_APP_PASSWORD"] = password
    return subprocess.run(
        [str(HERALD), "db", "upgrade", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_app_role_reads_and_writes_herald_tables_but_is_no_superuser_and_cannot_do_ddl(
    empty_database: str, role: str
) -> None:
    done = _upgrade(empty_database, "--app-role", role, password="s3cret'\"pw")
    assert done.returncode == 0, done.stderr
    assert f"role {role!r} may read and write" in done.stdout
    assert "s3cret" not in done.stdout + done.stderr

    as_app = create_engine(make_url(db.normalize_url(empty_database)).set(username=role))
    try:
        with as_app.connect() as conn:
            flags = conn.execute(
                text(
                    "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = :r"
                ),
                {"r": role},
            ).one()
            assert tuple(flags) == (False, False, False)
            conn.execute(
                text(
                    "INSERT INTO rejections (at, status_code, code, message) "
                    "VALUES (now(), 400, 'validation_error', 'test')"
                )
            )
            assert conn.execute(text("SELECT count(*) FROM rejections")).scalar() == 1
            conn.execute(text("DELETE FROM rejections"))
            conn.commit()
            with pytest.raises(ProgrammingError, match=r"permission denied|must be owner"):
                conn.execute(text("DROP TABLE events"))
            conn.rollback()
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text("CREATE TABLE intruder (id int)"))
    finally:
        as_app.dispose()

    again = _upgrade(empty_database, "--app-role", role, password="another")  # safe to re-run
    assert again.returncode == 0, again.stderr


def test_an_app_role_without_a_password_is_refused(empty_database: str, role: str) -> None:
    done = _upgrade(empty_database, "--app-role", role, password=None)
    assert done.returncode == 1
    assert "HERALD_DB_APP_PASSWORD" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_head_revision_the_processes_check_is_alembic_s_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(db.alembic_config("sqlite://"))  # type: ignore[arg-type]
    assert script.get_heads() == [db.HEAD_REVISION]  # a new migration updates HEAD_REVISION


def test_a_started_process_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'herald.db'}"
    db.upgrade(url)
    probe = (
        "import sys; from workflows.store import db; "
        f"db.check_schema(db.make_engine({url!r})); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_database_one_migration_behind_is_refused_naming_both_revisions(tmp_path: Path) -> None:
    from workflows.errors import SchemaNotMigrated

    url = f"sqlite:///{tmp_path / 'herald.db'}"
    db.upgrade(url, "0008")
    with pytest.raises(SchemaNotMigrated) as refused:
        db.check_schema(db.make_engine(url))
    assert f"is at revision 0008; this herald needs revision {db.HEAD_REVISION}" in str(
        refused.value
    )
