"""Per-process state of a worker: settings, database engine, definitions, Celery app.

``herald worker`` calls :func:`configure` in the main process before the pool
starts (definitions are loaded and checked there, once). A prefork child builds
its own database engine in ``worker_process_init``, after the fork, so that no
connection is shared between processes; other pools build it on first use.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from celery import Celery
from celery.signals import worker_process_init
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from workers.celery_app import make_celery
from workflows.errors import ConfigError
from workflows.model import Project
from workflows.settings import Settings
from workflows.store import db


@dataclass
class Runtime:
    """What the engine functions need in one process."""

    settings: Settings
    project: Project
    engine: Engine
    sessions: sessionmaker[Session]
    celery: Celery
    #: recorded on the steps this process runs
    hostname: str = field(default_factory=socket.gethostname)
    #: the ``workers`` row of this worker (the main process beats for its pool processes)
    worker_id: str | None = None

    @classmethod
    def create(
        cls,
        settings: Settings,
        project: Project,
        *,
        celery: Celery | None = None,
        hostname: str | None = None,
        pool_size: int = 2,
        worker_id: str | None = None,
    ) -> Runtime:
        """A runtime with a fresh engine (and a fresh Celery app unless one is given)."""
        engine = db.make_engine(settings.database_url, pool_size=pool_size)
        return cls(
            settings=settings,
            project=project,
            engine=engine,
            sessions=db.make_sessionmaker(engine),
            celery=celery if celery is not None else make_celery(settings),
            hostname=hostname or socket.gethostname(),
            worker_id=worker_id,
        )

    def close(self) -> None:
        """Close the database connections of this process."""
        self.engine.dispose()


@dataclass(frozen=True)
class Configuration:
    """What :func:`configure` was given."""

    settings: Settings
    project: Project
    celery: Celery | None
    hostname: str | None
    #: database connections kept per process (a threads pool needs one per thread)
    pool_size: int = 2
    #: the ``workers`` row of this worker, recorded on every step it claims
    worker_id: str | None = None


_lock = threading.Lock()
_config: Configuration | None = None
_current: Runtime | None = None


def configure(
    settings: Settings,
    project: Project,
    *,
    celery: Celery | None = None,
    hostname: str | None = None,
    pool_size: int = 2,
    worker_id: str | None = None,
) -> None:
    """Say what this worker runs with; the runtime itself is built lazily (after any fork).

    Pool processes forked later inherit this, ``worker_id`` included.
    """
    global _config, _current
    with _lock:
        _config = Configuration(settings, project, celery, hostname, pool_size, worker_id)
        _current = None
    worker_process_init.connect(_after_fork, weak=False, dispatch_uid="herald.runtime")


def configuration() -> Configuration | None:
    """What this process was configured with, or None."""
    return _config


def current() -> Runtime:
    """This process's runtime, built on first use."""
    global _current
    with _lock:
        if _current is None:
            if _config is None:
                raise ConfigError(
                    "the worker runtime was not configured (start it with herald worker)"
                )
            _current = Runtime.create(
                _config.settings,
                _config.project,
                celery=_config.celery,
                hostname=_config.hostname,
                pool_size=_config.pool_size,
                worker_id=_config.worker_id,
            )
        return _current


def _after_fork(**_: object) -> None:
    """A new pool process: forget any engine inherited from the parent, build our own."""
    global _current
    with _lock:
        inherited, _current = _current, None
    if inherited is not None:
        # close=False: the parent's connections stay open for the parent.
        inherited.engine.dispose(close=False)
    if _config is not None:
        current()
