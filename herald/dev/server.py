"""The embedded runner behind ``herald dev``: API, worker, broker and database in one process.

Nothing to install or start: the database is SQLite at ``<project>/.herald/herald.db``
(migrated at start), the broker is kombu's in-process ``memory://`` transport
(shared by every thread of the process), the worker is a Celery ``WorkController``
on a thread pool, and the API is served by werkzeug's threaded server.

Work in the database outlives a restart: the in-process broker starts empty, so
the first recovery pass re-publishes every accepted event and queued step at once,
and re-queues the steps the stopped process was running; then the sweep runs
periodically as in production. Workflow files are polled:
an edit that loads is swapped in whole (API and worker), a broken one keeps the
previous definitions and every problem is printed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask

from herald.dev.worker import WORKER_THREADS, EmbeddedWorker, dev_celery, node_name, recover
from herald.preflight import preflight
from workflows.errors import DefinitionError, HeraldError
from workflows.registry import Definitions
from workflows.settings import Settings, parse_tokens

#: the token the seed's curl uses (``Authorization: Bearer test-token``) when none is configured
DEV_TOKENS = "dev:test-token"
#: seconds between two looks at the workflow files
RELOAD_POLL_SECONDS = 1.0
#: directories never searched for workflow files (as the loader's discovery rule)
SKIPPED_DIRS = frozenset({".venv", "venv", "node_modules", "__pycache__"})
#: a file that holds an event to send, used for the ready-to-paste curl
SAMPLE_EVENT = "event.json"

if TYPE_CHECKING:
    from workers.runtime import Runtime

Say = Callable[[str], None]


class DevServerError(HeraldError):
    """``herald dev`` cannot start (the port is taken, the worker did not come up...).."""


def dev_settings(project_dir: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings for one process on a laptop: SQLite in the project, in-process broker.

    Other ``HERALD_*`` variables apply as usual; ``HERALD_DATABASE_URL`` and
    ``HERALD_BROKER_URL`` do not (``herald dev`` never touches a shared database).
    """
    env = os.environ if environ is None else environ
    project = project_dir.resolve()
    return Settings.from_env(
        env,
        project_dir=project,
        database_url=f"sqlite:///{project / '.herald' / 'herald.db'}",
        broker_url="memory://",
        api_tokens=parse_tokens(env.get("HERALD_API_TOKENS") or DEV_TOKENS),
    )


def _say(line: str) -> None:
    print(line, flush=True)


@dataclass
class DevServer:
    """herald in one process; :meth:`run` blocks until Ctrl-C or SIGTERM."""

    settings: Settings
    host: str = "127.0.0.1"
    port: int = 8080
    say: Say = _say
    threads: int = WORKER_THREADS
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def run(self) -> None:
        """Start everything, print how to use it, serve until interrupted, then stop cleanly."""
        from werkzeug.serving import make_server

        from app import create_app
        from app.state import EXTENSION, HeraldState
        from workers import logs as worker_logs
        from workers import runtime
        from workers.heartbeat import Heartbeat, describe
        from workers.sweep import Sweeper, sweep_runtime
        from workflows.ids import new_id
        from workflows.store import db

        settings = self.settings
        definitions = preflight(settings, schema=False)  # it migrates once it holds the port
        listener = _listen(self.host, self.port)  # first: a taken port changes nothing
        with listener:  # make_server keeps a duplicate of it
            db.upgrade(settings.database_url)
            app = create_app(settings)
            state: HeraldState = app.extensions[EXTENSION]
            # No Flower in dev: task events would only go to an exchange nobody listens to.
            state.publisher.celery.conf.task_send_sent_event = False
            worker_logs.configure(settings.log_level)

            celery = dev_celery(settings)
            worker_id = new_id("wkr")
            runtime.configure(
                settings,
                definitions.project,
                celery=celery,
                hostname=node_name(),
                worker_id=worker_id,
            )
            rt = runtime.current()
            recovered = recover(settings, definitions, celery)

            server = make_server(self.host, self.port, app, threaded=True, fd=listener.fileno())

        worker = EmbeddedWorker(celery, threads=self.threads)
        sweeper = Sweeper(sweep_runtime(settings, definitions.project, celery), _interval(settings))
        # the embedded worker beats too, so that GET /api/v1/workers shows it
        heartbeat = Heartbeat(
            db.make_unpooled_engine(settings.database_url),
            describe(worker.controller, worker_id),
            interval=settings.heartbeat_interval_seconds,
            dead_after=settings.worker_dead_after_seconds,
        )
        holders = _Holders(app=app, runtime=rt, sweeper_runtime=sweeper.rt)
        reloader = threading.Thread(
            target=self._watch, args=(holders,), name="herald-reload", daemon=True
        )
        try:
            heartbeat.start()
            worker.start()
            sweeper.start()
            reloader.start()
            self._banner(definitions, recovered)
            with _stop_on_sigterm():
                server.serve_forever(poll_interval=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.say("herald dev: stopping")
            self._stop.set()
            server.server_close()
            worker.stop()
            heartbeat.stop()
            sweeper.stop()
            reloader.join(timeout=5)
            rt.close()
            state.engine.dispose()

    # --- reloading -----------------------------------------------------------------------

    def _watch(self, holders: _Holders) -> None:
        """Poll the workflow files; load and swap on change, keep the old ones on error."""
        from workers.agents import check_providers

        root = self.settings.project_dir
        seen = snapshot(root)
        while not self._stop.wait(RELOAD_POLL_SECONDS):
            now = snapshot(root)
            if now == seen:
                continue
            seen = now
            try:
                loaded = Definitions.load(root)
            except DefinitionError as exc:
                self.say(f"herald dev: NOT reloaded, keeping the previous definitions.\n{exc}")
                continue
            except HeraldError as exc:
                self.say(f"herald dev: NOT reloaded, keeping the previous definitions: {exc}")
                continue
            holders.swap(loaded)
            names = ", ".join(loaded.project.workflows) or "none"
            self.say(f"herald dev: reloaded {len(loaded.project.workflows)} workflow(s): {names}")
            for warning in loaded.project.warnings:
                self.say(f"  {warning}")
            for problem in check_providers(loaded.project):
                self.say(f"  agents: {problem}")

    # --- what the user sees ----------------------------------------------------------------

    def _banner(self, definitions: Definitions, recovered: int) -> None:
        """The URL, the token, the database, any agent that cannot work, a curl to paste."""
        from workers.agents import check_providers

        settings = self.settings
        url = f"http://{self.host}:{self.port}"
        token = settings.api_tokens[0]
        workflows = definitions.project.workflows
        names = ", ".join(workflows) or "none yet"
        lines = [
            f"herald dev: {len(workflows)} workflow(s) from {settings.project_dir}: {names}",
            f"  API       {url}  (health: {url}/health)",
            f"  token     {token.secret}  (as '{token.name}'; set HERALD_API_TOKENS to change it)",
            f"  database  {settings.database_url}",
            f"  worker    in this process, {self.threads} threads, in-process broker",
        ]
        lines += [f"  warning   {w}" for w in definitions.project.warnings]
        lines += [f"  agents    {problem}" for problem in check_providers(definitions.project)]
        if recovered:
            lines.append(f"  recovered {recovered} unfinished item(s) from the last run")
        lines += [
            "Send an event:",
            "  " + sample_curl(url, token.secret, definitions),
            "Then follow it:",
            f"  curl -s -H 'Authorization: Bearer {token.secret}' {url}/api/v1/executions",
            "Workflow files are watched and reloaded on change. Ctrl-C stops.",
        ]
        self.say("\n".join(lines))


@dataclass
class _Holders:
    """Everything that holds the definitions; :meth:`swap` replaces them everywhere at once."""

    app: Flask
    runtime: Runtime
    sweeper_runtime: Runtime

    def swap(self, definitions: Definitions) -> None:
        """API requests and worker steps started from now on see ``definitions``."""
        from app.state import EXTENSION

        self.app.extensions[EXTENSION].definitions = definitions
        self.runtime.project = definitions.project
        self.sweeper_runtime.project = definitions.project


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a :class:`DevServerError` saying why not."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise DevServerError(
                f"port {port} on {host} is already in use; stop what uses it or pass --port"
            ) from None
        raise DevServerError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _interval(settings: Settings) -> float:
    return max(settings.sweep_interval_seconds, 0.5)


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt in the main thread, for a clean stop."""

    def _interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``{path: (mtime_ns, size)}`` of every YAML file the loader could read below ``root``."""
    found: dict[str, tuple[int, int]] = {}
    for path in _yaml_files(root):
        try:
            stat = path.stat()
        except OSError:
            continue  # removed between listing and stat: the next poll sees it gone
        found[str(path)] = (stat.st_mtime_ns, stat.st_size)
    return found


def _yaml_files(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS]
        for name in files:
            if name.endswith((".yaml", ".yml")):
                yield Path(folder) / name


def sample_curl(url: str, token: str, definitions: Definitions) -> str:
    """A curl to paste: the project's first ``event.json`` if it has one, else an empty event."""
    root = definitions.project.root
    samples = sorted(
        p
        for p in root.rglob(SAMPLE_EVENT)
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if samples:
        body = "@" + str(samples[0])
    else:
        names = definitions.registry.names()
        body = json.dumps({"name": names[0] if names else "example.created", "payload": {}})
    return (
        f"curl -X POST {url}/api/v1/events -H {shlex.quote('Authorization: Bearer ' + token)} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )
