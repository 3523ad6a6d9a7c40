"""The tool runtime: Python tools run in the worker process, anything else as a subprocess.

``execute: ./tools/x.py`` is imported once per worker process (cached by path
and modification time) and its ``run(input)`` or ``run(input, context)`` is
called. Any other executable gets the rendered ``with`` as JSON on stdin and
must print JSON on stdout; it runs with a clean environment, in its own
directory, with a timeout (the whole process group is killed) and an output cap.
Its stdin is fed without blocking while stdout and stderr are read, so a tool
that writes before it reads cannot stall the worker, under any pool.

Input and output schemas are checked with jsonschema_rs (:mod:`workers.schemas`):
compiled once, with regular expressions that run in linear time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from workers.schemas import UncompilableSchema, mismatches
from workflows.errors import InvalidStepIO, StepFailed, StepTimedOut, ToolError
from workflows.jsonpointer import pointer
from workflows.model import JSON, Tool

#: the most a subprocess tool may print on stdout
MAX_OUTPUT_BYTES = 1024 * 1024
#: how much of stderr is kept in an error
STDERR_TAIL_BYTES = 2000
#: schema errors listed in an InvalidStepIO (with the count of all)
MAX_SCHEMA_ERRORS = 20

_modules: dict[Path, tuple[float, ModuleType]] = {}
_modules_lock = threading.Lock()


@dataclass(frozen=True)
class ToolContext:
    """What a tool may want to know about the step it runs for."""

    #: ``<execution_id>:<task_id>:<visit>``: the same across attempts and redeliveries
    idempotency_key: str
    execution_id: str
    task_id: str
    visit: int
    attempt: int

    def as_dict(self) -> dict[str, Any]:
        """The context as the plain mapping a Python tool receives."""
        return asdict(self)


def run_tool(tool: Tool, value: JSON, context: ToolContext, *, timeout: float) -> JSON:
    """Run ``tool`` on ``value`` and return its JSON output, or raise a :class:`StepFailed`."""
    check_schema(tool.input_schema, value, f"tool {tool.id!r} input")
    if tool.is_python:
        output = _run_python(tool, value, context)
    else:
        output = _run_subprocess(tool, value, context, timeout=timeout)
    check_schema(tool.output_schema, output, f"tool {tool.id!r} output")
    return output


def check_schema(schema: Mapping[str, Any] | None, value: JSON, what: str) -> None:
    """Raise :class:`InvalidStepIO` naming the places (the first 20, and how many) where
    ``value`` breaks ``schema``."""
    if schema is None:
        return
    try:
        found, count = mismatches(schema, value, limit=MAX_SCHEMA_ERRORS)
    except UncompilableSchema as exc:
        raise InvalidStepIO(
            f"{what} schema cannot be compiled: {exc.message}", details={"schema_path": exc.path}
        ) from None
    if found:
        problems = [{"path": pointer(m.path) or "/", "message": m.message} for m in found]
        summary = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5])
        raise InvalidStepIO(
            f"{what} does not match its schema: {summary}",
            details={"errors": problems, "error_count": count},
        )


# --- Python tools ----------------------------------------------------------------------


def _run_python(tool: Tool, value: JSON, context: ToolContext) -> JSON:
    run = _entry_point(tool)
    takes_context = len(inspect.signature(run).parameters) >= 2
    try:
        output = run(value, context.as_dict()) if takes_context else run(value)
    except SoftTimeLimitExceeded:
        raise StepTimedOut(f"tool {tool.id!r} was stopped: it outlived its timeout") from None
    except StepFailed:
        raise
    except Exception as exc:
        raise ToolError(
            f"tool {tool.id!r} raised {type(exc).__name__}: {exc}",
            details={"exception": type(exc).__name__},
        ) from exc
    _require_json(tool, output)
    return output


def _entry_point(tool: Tool) -> Callable[..., Any]:
    """The tool's ``run`` function, importing (or re-importing a changed) file once."""
    path = tool.path.resolve()
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise ToolError(f"tool {tool.id!r}: cannot read {path}: {exc.strerror}") from None
    with _modules_lock:
        cached = _modules.get(path)
        if cached is None or cached[0] != mtime:
            _modules[path] = (mtime, _import(tool, path))
        module = _modules[path][1]
    run = getattr(module, "run", None)
    if not callable(run):
        raise ToolError(f"tool {tool.id!r}: {tool.execute} defines no run(input) function")
    return run  # type: ignore[no-any-return]


def _import(tool: Tool, path: Path) -> ModuleType:
    name = f"herald_tool_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ToolError(f"tool {tool.id!r}: {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ToolError(
            f"tool {tool.id!r}: importing {tool.execute} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _require_json(tool: Tool, output: Any) -> None:
    try:
        json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ToolError(f"tool {tool.id!r} returned something that is not JSON: {exc}") from None


# --- subprocess tools ------------------------------------------------------------------


def tool_environment(context: ToolContext) -> dict[str, str]:
    """The clean environment of a subprocess tool: no inherited secrets."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "HERALD_IDEMPOTENCY_KEY": context.idempotency_key,
        "HERALD_EXECUTION_ID": context.execution_id,
        "HERALD_TASK_ID": context.task_id,
        "HERALD_VISIT": str(context.visit),
        "HERALD_ATTEMPT": str(context.attempt),
    }


def _run_subprocess(tool: Tool, value: JSON, context: ToolContext, *, timeout: float) -> JSON:
    path = tool.path.resolve()
    try:
        proc = subprocess.Popen(
            [str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=path.parent,
            env=tool_environment(context),
            start_new_session=True,
        )
    except OSError as exc:
        hint = " (is it executable? chmod +x)" if isinstance(exc, PermissionError) else ""
        raise ToolError(
            f"tool {tool.id!r}: cannot run {tool.execute}: {exc.strerror}{hint}"
        ) from None
    try:
        stdout, stderr, overflow = _communicate(proc, json.dumps(value).encode(), timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise StepTimedOut(
            f"tool {tool.id!r} was killed after its timeout of {timeout:g}s"
        ) from None
    except SoftTimeLimitExceeded:
        _kill(proc)
        raise StepTimedOut(f"tool {tool.id!r} was killed: it outlived its timeout") from None
    finally:
        if proc.poll() is None:
            _kill(proc)
        _close(proc)
    tail = stderr[-STDERR_TAIL_BYTES:].decode(errors="replace")
    if overflow:
        raise ToolError(
            f"tool {tool.id!r} printed more than {MAX_OUTPUT_BYTES} bytes on stdout",
            details={"stderr": tail},
        )
    if proc.returncode != 0:
        raise ToolError(
            f"tool {tool.id!r} exited with status {proc.returncode}",
            details={"exit_code": proc.returncode, "stderr": tail},
        )
    try:
        return json.loads(stdout)
    except ValueError as exc:
        raise ToolError(
            f"tool {tool.id!r} printed something that is not JSON on stdout: {exc}",
            details={"stderr": tail},
        ) from None


def _communicate(
    proc: subprocess.Popen[bytes], data: bytes, timeout: float
) -> tuple[bytes, bytes, bool]:
    """Feed stdin, read stdout (capped) and stderr (tail) until exit or the deadline.

    stdin is written without blocking: a blocking write of a chunk larger than the
    room left in the pipe waits for the tool to read, while the tool may be waiting
    for us to read its stderr; and nothing (no soft time limit under the threads
    pool) would end that wait. A write takes what fits and the loop reads on.
    """
    assert proc.stdin and proc.stdout and proc.stderr
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    pending = memoryview(data)
    with selectors.DefaultSelector() as sel:
        if pending:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            for key, _ in sel.select(left):
                if key.fileobj is proc.stdin:
                    try:
                        written = os.write(proc.stdin.fileno(), pending[:65536])
                    except BlockingIOError:  # the pipe filled up meanwhile
                        written = 0
                    except BrokenPipeError:  # the tool stopped reading: it has what it takes
                        written = len(pending)
                    pending = pending[written:]
                    if not pending:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.fileobj is proc.stdout:
                    out += chunk
                    if len(out) > MAX_OUTPUT_BYTES:
                        _kill(proc)
                        return bytes(out), bytes(err), True
                else:
                    err = (err + chunk)[-STDERR_TAIL_BYTES * 2 :]
    try:
        proc.wait(max(deadline - time.monotonic(), 0.01))
    except subprocess.TimeoutExpired:
        raise subprocess.TimeoutExpired(proc.args, timeout) from None
    return bytes(out), bytes(err), False


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the tool and everything it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _close(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None and not stream.closed:
            stream.close()
