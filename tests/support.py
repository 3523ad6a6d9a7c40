"""Helpers shared by the tests that drive real processes: the seed's event, polling, ports."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

#: the payload of the seed's "Complete Order Processing System" curl, verbatim
SEED_ORDER: dict[str, Any] = {
    "orderId": "order_12345",
    "customerId": "customer_67890",
    "customerEmail": "customer@example.com",
    "items": [
        {"productId": "prod_001", "name": "Wireless Headphones", "quantity": 1, "price": 99.99}
    ],
    "totalAmount": 99.99,
    "shippingAddress": {
        "street": "123 Main St",
        "city": "New York",
        "zipCode": "10001",
        "country": "US",
    },
}


def wait_for(
    what: str, check: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.1
) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(
    env: dict[str, str], log: Path, *, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    """`herald serve` as a real process on a free port, logging to ``log``; its URL once it
    answers /health. The caller terminates the process."""
    import sys
    import urllib.request

    port = free_port()
    herald = Path(sys.executable).parent / "herald"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(herald), "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"herald serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_for("herald serve to answer /health", healthy, timeout=30)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, url


@contextmanager
def scratch_database(server_url: str, prefix: str, *, migrate: bool = True) -> Iterator[str]:
    """A new database on ``server_url``'s server (migrated unless ``migrate`` is false), its
    URL yielded; dropped afterwards, whoever still holds a connection to it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from workflows.store import db

    server = make_url(db.normalize_url(server_url))
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = server.set(database=name).render_as_string(hide_password=False)
        if migrate:
            db.upgrade(url)
        yield url
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def drop_role(database_url: str, role: str) -> None:
    """Drop a login role a test created, with what it was granted in ``database_url``."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    for url in (database_url, make_url(database_url).set(database="postgres")):
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                found = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
                if found.first() is not None:
                    conn.execute(text(f'DROP OWNED BY "{role}"'))
                    if url != database_url:
                        conn.execute(text(f'DROP ROLE "{role}"'))
                conn.commit()
        finally:
            engine.dispose()


class RedisServer:
    """A redis-server of one test's own, on a free port, without persistence.

    For tests that stop, restart or tune Redis: the machine's shared Redis is never
    touched. A restart loses every message, as a broker that crashed would.
    """

    def __init__(self, cwd: Path) -> None:
        self.port = free_port()
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its ``redis://`` URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        """A redis-py client on it."""
        import redis

        return redis.Redis(port=self.port, socket_connect_timeout=1)

    def start(self) -> None:
        """Start it and wait until it answers."""
        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.cwd,
        )
        client = self.client()

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for("the private redis-server", answers, timeout=10, interval=0.05)

    def stop(self) -> None:
        """Stop it (its messages are gone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """Stop it, then start it again on the same port, empty."""
        self.stop()
        self.start()
