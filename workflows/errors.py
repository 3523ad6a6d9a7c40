"""The one exception tree of herald.

Every error herald raises on purpose derives from :class:`HeraldError`. The HTTP
side maps the API sub-tree (``app.errors``) to the JSON error envelope in one
place; the engine turns :class:`StepFailed` into a recorded step error.
"""

from __future__ import annotations

from dataclasses import dataclass


class HeraldError(Exception):
    """Root of every error herald raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(HeraldError):
    """A setting (``HERALD_*`` variable, tokens file) is missing or malformed."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition, located as ``file:line: path: message``."""

    file: str
    line: int
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        kind = "warning: " if self.warning else ""
        return f"{where}: {self.path or '<root>'}: {kind}{self.message}"


class DefinitionError(HeraldError):
    """A project's workflow definitions are invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if not p.warning]
        lines = "\n".join(str(p) for p in errors)
        super().__init__(f"{len(errors)} error(s) in workflow definitions:\n{lines}")


class TemplateError(HeraldError):
    """A template could not be rendered: a missing key, a sandbox violation or a limit."""


class StoreError(HeraldError):
    """The state store cannot do what was asked."""


class DatabaseUnavailable(StoreError):
    """The database cannot be reached."""


class SchemaNotMigrated(StoreError):
    """The database schema is missing or older than this code; run `herald db upgrade`."""


class EngineError(HeraldError):
    """An operation on an execution that its state does not allow."""

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


class UnknownExecution(EngineError):
    """No execution has this id (nor is one planned under it)."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(
            f"no execution with id {execution_id!r}", details={"execution_id": execution_id}
        )


class ExecutionConflict(EngineError):
    """The execution's state does not allow the operation (finished, not failed...)."""


class StepFailed(HeraldError):
    """A step's tool or agent failed; the engine records it and follows on_error."""

    #: short machine-readable kind recorded on the step (``tool_error``, ``timeout``...)
    kind = "step_failed"
    #: whether another attempt may succeed (a bad definition will not)
    retryable = True

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}

    def as_record(self) -> dict[str, object]:
        """The JSON form stored on the step and exposed as ``{{ .error }}``."""
        return {"type": self.kind, "message": self.message, **self.details}


class StepTimedOut(StepFailed):
    """A step ran longer than its timeout and was stopped."""

    kind = "timeout"


class ToolError(StepFailed):
    """A tool raised, exited non-zero or answered something that is not JSON."""

    kind = "tool_error"


class AgentError(StepFailed):
    """An agent's provider failed or answered something that does not fit."""

    kind = "agent_error"


class InvalidStepIO(StepFailed):
    """A tool's or agent's input or output does not satisfy its declared JSON Schema."""

    kind = "invalid_io"
    retryable = False
