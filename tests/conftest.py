"""Fixtures shared by every test: real services, a fresh database per run, settings.

Integration tests ask for ``pg_url`` / ``redis_url``. On a laptop without the
service they skip; under ``CI=true`` they fail, so CI cannot pass by skipping.

Services are found through ``HERALD_TEST_DATABASE_URL`` (a server URL whose
database part is ignored; default ``postgresql://postgres@127.0.0.1:5432/postgres``)
and ``HERALD_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from tests.support import scratch_database
from workflows.settings import ApiToken, Settings
from workflows.store import db
from workflows.store.models import Base

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SEED_DIR = Path(__file__).parent / "fixtures" / "seed"
TEST_TOKEN = "test-token"


def unavailable(what: str) -> None:
    """Skip on a developer's machine; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"{what} is not available, and CI=true requires it")
    pytest.skip(f"{what} is not available")


def _server_url() -> str:
    raw = os.environ.get(
        "HERALD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    return db.normalize_url(raw)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A freshly created, migrated Postgres database for this test run, dropped after."""
    server = _server_url()
    probe = create_engine(make_url(server).set(database="postgres"))
    try:
        with probe.connect():
            pass
    except Exception as exc:  # any failure to reach the server means: not available
        unavailable(f"PostgreSQL ({exc.__class__.__name__})")
    finally:
        probe.dispose()
    with scratch_database(server, "herald_test") as url:
        yield url


@pytest.fixture
def empty_database(pg_url: str) -> Iterator[str]:
    """A new database with no herald schema at all (for a migration to create), dropped after."""
    with scratch_database(pg_url, "herald_empty", migrate=False) as url:
        yield url


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine on the run's database."""
    engine = db.make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clean_db(pg_engine: Engine) -> Iterator[Engine]:
    """The run's database, emptied after the test so tests do not see each other's rows."""
    yield pg_engine
    with pg_engine.begin() as conn:
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis; tests isolate themselves with their own queue prefix."""
    import redis

    url = os.environ.get("HERALD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis ({exc.__class__.__name__})")
    return url


@pytest.fixture
def queue_prefix() -> str:
    """Queue names no other test run (or developer) shares."""
    return f"t{os.getpid()}x{uuid.uuid4().hex[:6]}"


@pytest.fixture
def seed_dir() -> Path:
    """The seed document's workflows, as a project directory."""
    return SEED_DIR


@pytest.fixture
def test_token() -> ApiToken:
    """The bearer token the seed's curl uses."""
    return ApiToken(name="test", secret=TEST_TOKEN)


@pytest.fixture
def sqlite_settings(tmp_path: Path, test_token: ApiToken) -> Settings:
    """Settings on a SQLite file in a temporary directory (unit tests only)."""
    return Settings(
        project_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'herald.db'}",
        broker_url="memory://",
        api_tokens=(test_token,),
    )
