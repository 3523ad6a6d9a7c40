"""A fresh ``PROMETHEUS_MULTIPROC_DIR`` for a process tree: the API's or a worker node's.

gunicorn's workers and Celery's pool processes are forked from one main
process; each writes its metrics to files in that directory, and a scrape adds
them up (prometheus_client's multiprocess mode). It must be set before any
metric records a value, so the commands call :func:`fresh_dir` first.
"""

from __future__ import annotations

import os
import shutil
import tempfile

ENV = "PROMETHEUS_MULTIPROC_DIR"


def fresh_dir(prefix: str) -> str:
    """Make an empty directory, point this process (and its children) at it; its path."""
    path = tempfile.mkdtemp(prefix=prefix)
    use_dir(path)
    return path


def use_dir(path: str) -> None:
    """Record metrics in ``path`` from now on, even if prometheus_client is imported already."""
    os.environ[ENV] = path
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def remove_dir(path: str) -> None:
    """Remove a directory :func:`fresh_dir` made, once its processes stopped."""
    shutil.rmtree(path, ignore_errors=True)
