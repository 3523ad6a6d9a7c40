"""The tool runtime: in-process Python tools and subprocess executables."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from workers import tools
from workers.tools import ToolContext, run_tool
from workflows.errors import InvalidStepIO, StepTimedOut, ToolError
from workflows.model import Tool

CONTEXT = ToolContext(
    idempotency_key="exe_1:t:1", execution_id="exe_1", task_id="t", visit=1, attempt=1
)


def _tool(path: Path, **extra: Any) -> Tool:
    return Tool(id=path.stem, execute=f"./{path.name}", path=path, **extra)


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(0o755)
    return path


def test_a_python_tool_gets_its_input_and_the_context(tmp_path: Path) -> None:
    path = _script(tmp_path, "ctx.py", "def run(input, context):\n    return [input, context]\n")
    value, context = run_tool(_tool(path), {"a": 1}, CONTEXT, timeout=5)
    assert value == {"a": 1}
    assert context == {
        "idempotency_key": "exe_1:t:1",
        "execution_id": "exe_1",
        "task_id": "t",
        "visit": 1,
        "attempt": 1,
    }


def test_a_python_tool_is_imported_once_and_again_when_it_changes(tmp_path: Path) -> None:
    path = _script(
        tmp_path,
        "counter.py",
        "calls = []\ndef run(input):\n    calls.append(1)\n    return len(calls)\n",
    )
    tool = _tool(path)
    assert [run_tool(tool, {}, CONTEXT, timeout=5) for _ in range(3)] == [1, 2, 3]
    path.write_text("def run(input):\n    return 'new'\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert run_tool(tool, {}, CONTEXT, timeout=5) == "new"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def run(input):\n    raise ValueError('bad sku')\n", "raised ValueError: bad sku"),
        ("def run(input):\n    return {1, 2}\n", "returned something that is not JSON"),
        ("x = 1\n", "defines no run(input) function"),
        ("def run(input:\n", "importing ./broken.py failed: SyntaxError"),
    ],
    ids=["raises", "not-json", "no-run", "syntax-error"],
)
def test_a_python_tool_failure_is_a_tool_error(tmp_path: Path, body: str, message: str) -> None:
    path = _script(tmp_path, "broken.py", body)
    with pytest.raises(ToolError) as caught:
        run_tool(_tool(path), {}, CONTEXT, timeout=5)
    assert message in caught.value.message and "'broken'" in caught.value.message


@pytest.mark.parametrize(
    ("value", "schema_key", "fragment"),
    [
        (
            {"sku": 5},
            "input_schema",
            'input does not match its schema: /sku: 5 is not of type "string"',
        ),
        ({}, "input_schema", '"sku" is a required property'),
        ({"sku": "a"}, "output_schema", "output does not match its schema"),
    ],
)
def test_declared_schemas_are_checked_and_not_retried(
    tmp_path: Path, value: dict[str, Any], schema_key: str, fragment: str
) -> None:
    path = _script(tmp_path, "echo.py", "def run(input):\n    return input\n")
    schema = {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}
    if schema_key == "output_schema":
        schema = {"type": "object", "required": ["price"]}
    with pytest.raises(InvalidStepIO) as caught:
        run_tool(_tool(path, **{schema_key: schema}), value, CONTEXT, timeout=5)
    assert fragment in caught.value.message
    assert caught.value.retryable is False


def test_an_executable_gets_json_on_stdin_and_a_clean_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("HERALD_API_TOKENS", "a:b")
    path = _script(
        tmp_path,
        "env.sh",
        '#!/bin/sh\nin=$(cat)\nprintf \'{"in": %s, "cwd": "%s", "env": "%s"}\' '
        '"$in" "$(pwd)" "$(env | cut -d= -f1 | sort | tr \'\\n\' \' \')"\n',
    )
    output = run_tool(_tool(path), {"n": [1, 2]}, CONTEXT, timeout=5)
    assert output["in"] == {"n": [1, 2]}
    assert output["cwd"] == str(tmp_path)
    names = set(output["env"].split())
    assert {"HERALD_IDEMPOTENCY_KEY", "HERALD_EXECUTION_ID", "HERALD_TASK_ID", "PATH"} <= names
    assert "OPENAI_API_KEY" not in names and "HERALD_API_TOKENS" not in names


@pytest.mark.parametrize(
    ("body", "message", "stderr"),
    [
        ("echo 'no stock for sku-1' >&2; exit 3", "exited with status 3", "no stock for sku-1"),
        ("echo 'not json'", "printed something that is not JSON", ""),
        ("head -c 1100000 /dev/zero | tr '\\0' 'x'", "printed more than 1048576 bytes", ""),
    ],
    ids=["exit-code", "bad-json", "too-much-output"],
)
def test_an_executable_failure_carries_the_stderr_tail(
    tmp_path: Path, body: str, message: str, stderr: str
) -> None:
    path = _script(tmp_path, "bad.sh", f"#!/bin/sh\ncat >/dev/null\n{body}\n")
    with pytest.raises(ToolError) as caught:
        run_tool(_tool(path), {}, CONTEXT, timeout=5)
    assert message in caught.value.message
    assert stderr in str(caught.value.details.get("stderr", ""))


def test_an_executable_that_outlives_its_timeout_is_killed(tmp_path: Path) -> None:
    pidfile, marker = tmp_path / "pid", tmp_path / "marker"
    path = _script(
        tmp_path,
        "slow.sh",
        f"#!/bin/sh\ncat >/dev/null\necho $$ > {pidfile}\nsleep 30\ntouch {marker}\necho '{{}}'\n",
    )
    started = time.monotonic()
    with pytest.raises(StepTimedOut) as caught:
        run_tool(_tool(path), {}, CONTEXT, timeout=0.3)
    assert time.monotonic() - started < 5.0
    assert "killed after its timeout of 0.3s" in caught.value.message
    # The tool's process is gone (so it can never finish its work), not merely abandoned.
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)
    assert not marker.exists()


def test_a_file_that_is_not_executable_says_so(tmp_path: Path) -> None:
    path = tmp_path / "plain.sh"
    path.write_text("#!/bin/sh\necho '{}'\n")
    with pytest.raises(ToolError) as caught:
        run_tool(_tool(path), {}, CONTEXT, timeout=5)
    assert "chmod +x" in caught.value.message


def test_the_module_cache_is_per_path(tmp_path: Path) -> None:
    a = _script(tmp_path, "a.py", "def run(input):\n    return 'a'\n")
    (tmp_path / "sub").mkdir()
    b = _script(tmp_path / "sub", "a.py", "def run(input):\n    return 'b'\n")
    assert run_tool(_tool(a), {}, CONTEXT, timeout=5) == "a"
    assert run_tool(_tool(b), {}, CONTEXT, timeout=5) == "b"
    assert a.resolve() in tools._modules and b.resolve() in tools._modules


def _in_a_thread(tmp_path: Path, call: Any, pidfile: Path, limit: float = 30.0) -> Any:
    """Run ``call`` in a thread, as the threads pool does (no soft time limit to rescue it);
    if it is still running after ``limit``, kill the tool (pid in ``pidfile``) and fail."""
    import threading

    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        if pidfile.exists():
            os.killpg(int(pidfile.read_text()), 9)
        thread.join(10)
        pytest.fail(f"run_tool was still blocked after {limit:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_tool_that_writes_lots_to_stderr_before_reading_stdin_finishes(
    tmp_path: Path,
) -> None:
    import sys

    pidfile = tmp_path / "pid"
    path = _script(
        tmp_path,
        "chatty",
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
        "os.write(2, b'e' * 1_100_000)\n"  # 1.1 MB before reading anything
        "read = 0\n"
        "while chunk := os.read(0, 4096):\n"  # then more with each bit of stdin
        "    read += len(chunk)\n"
        "    os.write(2, b'e' * 8192)\n"
        "json.dump({'read': read}, sys.stdout)\n",
    )
    value = {"blob": "x" * 1_500_000}  # 1.5 MB on stdin

    output = _in_a_thread(
        tmp_path, lambda: run_tool(_tool(path), value, CONTEXT, timeout=20), pidfile
    )

    assert output == {"read": len(json.dumps(value))}


def test_a_tool_that_never_reads_stdin_is_killed_at_its_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    path = _script(tmp_path, "deaf.sh", f"#!/bin/sh\necho $$ > {pidfile}\nsleep 30\n")

    started = time.monotonic()
    with pytest.raises(StepTimedOut):
        _in_a_thread(
            tmp_path,
            lambda: run_tool(_tool(path), {"blob": "x" * 1_000_000}, CONTEXT, timeout=0.5),
            pidfile,
        )
    assert time.monotonic() - started < 10


@pytest.mark.timeout(20)  # Python's backtracking engine needs minutes (2^32 steps) here
@pytest.mark.parametrize("schema_key", ["input_schema", "output_schema"])
def test_schema_patterns_run_in_linear_time(tmp_path: Path, schema_key: str) -> None:
    path = _script(tmp_path, "echo.py", "def run(input):\n    return input\n")
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}}}
    hostile = {"name": "a" * 32 + "!"}

    with pytest.raises(InvalidStepIO) as caught:
        run_tool(_tool(path, **{schema_key: schema}), hostile, CONTEXT, timeout=5)

    assert "does not match" in caught.value.message
    assert run_tool(_tool(path, **{schema_key: schema}), {"name": "aaa"}, CONTEXT, timeout=5)


def test_a_schema_is_compiled_once(tmp_path: Path) -> None:
    from types import MappingProxyType

    from workers import schemas

    schema = {"type": "object", "required": ["a"]}
    first = schemas.validator(MappingProxyType(dict(schema)))
    assert schemas.validator(MappingProxyType(dict(schema))) is first  # a copy finds it too
    assert schemas.validator({"type": "object"}) is not first


def test_a_pattern_jsonschema_rs_cannot_compile_is_a_clear_error(tmp_path: Path) -> None:
    path = _script(tmp_path, "echo.py", "def run(input):\n    return input\n")
    schema = {"type": "string", "pattern": "^a\\Z"}  # Python's syntax, not ECMA-262's
    with pytest.raises(InvalidStepIO) as caught:
        run_tool(_tool(path, input_schema=schema), "a", CONTEXT, timeout=5)
    assert "input schema cannot be compiled" in caught.value.message
