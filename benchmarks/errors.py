"""What can stop a benchmark run: a service that does not answer, a process that dies."""

from __future__ import annotations

from workflows.errors import HeraldError


class BenchmarkError(HeraldError):
    """The benchmark cannot go on: a service is missing, a process failed, work never finished."""
