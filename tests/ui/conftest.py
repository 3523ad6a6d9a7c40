"""Fixtures of the browser tests: a real herald (serve + worker) and a headless Chromium.

Once per module: a project made of the examples and ``tests/ui/project`` (a workflow
that runs until released, one that fails until fixed), a database of its own, a
``herald serve`` and a ``herald worker`` on it, and Debian's chromium driven by
Playwright. Each test gets a fresh browser context (no cookie from another test).
Without chromium or Playwright the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unavailable
from tests.support import scratch_database, start_serve, wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
EXTRA = Path(__file__).resolve().parent / "project"
CHROMIUM = Path("/usr/bin/chromium")
#: the flags every launch uses: no sandbox (root in CI), nothing fetched from the network
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "ui-test-token"
#: how long a page may take to show what the worker did (the worker is real, the machine busy)
PATIENCE_MS = 30_000


@dataclass
class Herald:
    """The running herald the browser talks to."""

    url: str
    project: Path
    database_url: str

    def send(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST an event to the API as a client would; the 202's ``data``."""
        answer = self.call("POST", "/api/v1/events", {"name": name, "payload": payload})
        assert answer["success"], answer
        data: dict[str, Any] = answer["data"]
        return data

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """One API request with the bearer token; its JSON answer."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def execution(self, execution_id: str) -> dict[str, Any]:
        """The API's view of an execution."""
        data: dict[str, Any] = self.call("GET", f"/api/v1/executions/{execution_id}")["data"]
        return data


@pytest.fixture(scope="module")
def ui_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples and the browser tests' own workflows, as one project directory."""
    project = tmp_path_factory.mktemp("ui") / "project"
    shutil.copytree(EXAMPLES, project, ignore=shutil.ignore_patterns(".outbox", ".herald"))
    shutil.copytree(EXTRA, project, dirs_exist_ok=True)
    return project


@pytest.fixture(scope="module")
def ui_database(pg_url: str) -> Iterator[str]:
    """A database of this module's own, migrated; dropped after the module."""
    with scratch_database(pg_url, "herald_ui") as url:
        yield url


@pytest.fixture(scope="module")
def herald(
    ui_project: Path, ui_database: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Herald]:
    """`herald serve` and one `herald worker` on the module's project and database."""
    logs = tmp_path_factory.mktemp("ui-logs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(
        HERALD_PROJECT_DIR=str(ui_project),
        HERALD_DATABASE_URL=ui_database,
        HERALD_BROKER_URL=redis_url,
        HERALD_QUEUE_PREFIX=f"ui{os.getpid()}x{uuid.uuid4().hex[:6]}",
        HERALD_API_TOKENS=f"ui:{TOKEN}",
        HERALD_AGENT_PROVIDER="mock",
        HERALD_HEARTBEAT_INTERVAL="1",
        HERALD_WORKER_DEAD_AFTER="5",
        HERALD_SHUTDOWN_GRACE="2",
        EXAMPLES_OUTBOX=str(logs / "outbox"),
    )
    serve, url = start_serve(env, logs / "serve.log")
    worker_log = logs / "worker.log"
    with worker_log.open("wb") as sink:
        worker = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "herald"),
                "worker",
                "-c",
                "2",
                "-n",
                "ui@localhost",
            ],
            env=env,
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def ready() -> bool:
            if worker.poll() is not None:
                pytest.fail(f"herald worker exited: {worker_log.read_text()[-2000:]}")
            return '"worker.ready"' in worker_log.read_text(errors="replace")

        wait_for("the worker to be ready", ready, timeout=30)
        yield Herald(url=url, project=ui_project, database_url=ui_database)
    finally:
        for process in (worker, serve):
            process.send_signal(signal.SIGTERM)
        for process in (worker, serve):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(ProcessLookupError):  # a pool child that outlived it
            os.killpg(worker.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright (never a downloaded browser)."""
    if not CHROMIUM.exists():
        unavailable(f"chromium ({CHROMIUM}; apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright (pip install -e '.[dev]')")
    from playwright.sync_api import expect

    expect.set_options(timeout=PATIENCE_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, herald: Herald) -> Iterator[Any]:
    """A page in a fresh browser context (its own cookies), 1280x800, at herald's URL."""
    context = browser.new_context(base_url=herald.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(PATIENCE_MS)
    opened = context.new_page()
    yield opened
    context.close()


def log_in(page: Any, token: str = TOKEN) -> None:
    """Log in through the form, as a person pasting the token does."""
    page.goto("/ui/login")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
