"""OpenTelemetry export through real processes: with HERALD_OTEL_EXPORTER=console the API
and the worker print one span per request, dispatch and step, in the event's trace."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.app.conftest import order
from tests.support import wait_for
from tests.workers.conftest import API_TOKEN, WorkerStarter

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api_env() -> dict[str, str]:
    return {"HERALD_OTEL_EXPORTER": "console"}


def spans(output: str) -> list[dict[str, object]]:
    """The console exporter's JSON spans in a process's output."""
    found, decoder, at = [], json.JSONDecoder(), 0
    while (at := output.find('{\n    "name"', at)) != -1:
        span, end = decoder.raw_decode(output, at)
        found.append(span)
        at = end
    return found


def test_one_span_per_request_dispatch_and_step_in_the_events_trace(
    api: str,
    start_worker: WorkerStarter,
    seed_dir: Path,
    clean_db: Engine,
    tmp_path: Path,
) -> None:
    worker = start_worker(
        concurrency=1, env={"HERALD_PROJECT_DIR": str(seed_dir), "HERALD_OTEL_EXPORTER": "console"}
    )
    request = urllib.request.Request(
        api + "/api/v1/events",
        data=json.dumps({"name": "order.created", "payload": order()}).encode(),
        headers={
            "Authorization": f"Bearer {API_TOKEN}",
            "Content-Type": "application/json",
            "traceparent": f"00-{TRACE}-{CALLER_SPAN}-01",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.load(response)
        echoed = response.headers["traceparent"]
    assert answer["trace_id"] == TRACE

    def steps_done() -> int | None:
        """The number of steps once the four executions succeeded."""
        with clean_db.connect() as conn:
            rows = conn.execute(text("SELECT status FROM executions")).scalars().all()
            if len(rows) != 4 or set(rows) != {"succeeded"}:
                return None
            return int(conn.execute(text("SELECT count(*) FROM steps")).scalar_one())

    step_count = wait_for("the seed's executions to succeed", steps_done, timeout=60)

    api_spans = spans((tmp_path / "serve.log").read_text())
    post = [s for s in api_spans if s["name"] == "POST /api/v1/events"]
    assert len(post) == 1
    context = post[0]["context"]
    assert isinstance(context, dict)
    assert context["trace_id"] == f"0x{TRACE}"
    assert f"-{context['span_id'][2:]}-" in echoed  # the header names the exported span
    assert post[0]["parent_id"] == f"0x{CALLER_SPAN}"

    def worker_spans() -> list[dict[str, object]] | None:
        found = spans(worker.output())
        return (
            found if len([s for s in found if s["name"] == "herald.step"]) == step_count else None
        )

    exported = wait_for("a span for every step", worker_spans, timeout=20)
    names = sorted({str(s["name"]) for s in exported})
    assert names == ["herald.dispatch", "herald.step"]
    assert {s["context"]["trace_id"] for s in exported} == {f"0x{TRACE}"}  # type: ignore[index]


def test_herald_runs_without_opentelemetry_when_not_configured() -> None:
    script = (
        "import os, sys\n"
        "os.environ.pop('HERALD_OTEL_EXPORTER', None)\n"
        "sys.modules['opentelemetry'] = None  # not installed: any import of it fails\n"
        "from app import create_app\n"
        "import workers.tasks\n"
        "from workflows import otel, tracing\n"
        "with otel.exported(tracing.child_of(None), 'x'):\n"
        "    print('ran')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ran"


def test_a_configured_exporter_without_opentelemetry_says_what_to_install() -> None:
    script = (
        "import os, sys\n"
        "os.environ['HERALD_OTEL_EXPORTER'] = 'console'\n"
        "sys.modules['opentelemetry'] = None\n"
        "from workflows import otel, tracing\n"
        "with otel.exported(tracing.child_of(None), 'x'):\n"
        "    pass\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0
    assert "pip install 'herald[otel]'" in done.stderr
