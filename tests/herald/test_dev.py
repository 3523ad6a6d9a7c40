"""`herald dev` as a user meets it: a real subprocess on a copy of the examples.

No PostgreSQL, Redis or Docker: the subprocess keeps SQLite in the project copy
and its broker in memory. Each test polls a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support import free_port, wait_for
from tests.test_examples import EXAMPLES, SEED_EVENT

HERALD = Path(sys.executable).with_name("herald")
TOKEN = "test-token"  # the dev default, as the seed's curl uses it
T = TypeVar("T")

pytestmark = pytest.mark.timeout(180)


@dataclass
class Dev:
    """A running ``herald dev``: its project, outbox, URL and everything it printed."""

    project: Path
    outbox: Path
    url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def output(self) -> str:
        return "".join(self.lines)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {TOKEN}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def execution(self, execution_id: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/api/v1/executions/{execution_id}")
        assert status == 200, body
        return body.get("data", body)  # type: ignore[no-any-return]

    def finished(self, execution_id: str) -> dict[str, Any] | None:
        """The execution once it has finished; None while it runs or is not created yet (404)."""
        status, body = self.call("GET", f"/api/v1/executions/{execution_id}")
        if status == 404:  # a recovered event is dispatched by the sweep, a moment after start
            return None
        assert status == 200, body
        execution: dict[str, Any] = body.get("data", body)
        return execution if execution["status"] in ("succeeded", "failed", "cancelled") else None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.reader is not None:
            self.reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


def copy_examples(tmp: Path) -> Path:
    project = tmp / "examples"
    shutil.copytree(EXAMPLES, project, ignore=shutil.ignore_patterns(".outbox", ".herald"))
    return project


def start_dev(project: Path, outbox: Path, **env: str) -> Dev:
    """Start ``herald dev`` on ``project`` and wait until the API answers."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    environ.update(EXAMPLES_OUTBOX=str(outbox), PYTHONUNBUFFERED="1", **env)
    process = subprocess.Popen(
        [str(HERALD), "dev", "--project", str(project), "--port", str(port)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    dev = Dev(project, outbox, f"http://127.0.0.1:{port}", process)
    assert process.stdout is not None
    dev.reader = threading.Thread(target=lambda: dev.lines.extend(process.stdout), daemon=True)
    dev.reader.start()

    def ready() -> bool:
        if process.poll() is not None:
            dev.stop()
            pytest.fail(f"herald dev exited with {process.returncode}:\n{dev.output()}")
        try:
            with urllib.request.urlopen(dev.url + "/health", timeout=2):
                return True
        except (OSError, urllib.error.URLError):
            return False

    wait_for("herald dev to answer /health", ready)
    return dev


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """One ``herald dev`` on a private copy of the examples, stopped after the module."""
    tmp = tmp_path_factory.mktemp("dev")
    server = start_dev(copy_examples(tmp), tmp / "outbox")
    yield server
    code = server.stop()
    assert code == 0, server.output()


def test_it_prints_the_url_the_token_and_a_curl_to_paste(dev: Dev) -> None:
    printed = wait_for("the banner", lambda: "Ctrl-C stops" in dev.output() and dev.output())
    assert dev.url in printed
    assert f"token     {TOKEN}" in printed
    assert f"curl -X POST {dev.url}/api/v1/events -H 'Authorization: Bearer {TOKEN}'" in printed
    assert f"@{dev.project / 'order-processor' / 'event.json'}" in printed
    assert str(dev.project / ".herald" / "herald.db") in printed


def test_the_seed_curl_runs_both_examples_to_the_outbox(dev: Dev) -> None:
    status, answer = dev.call("POST", "/api/v1/events", SEED_EVENT)

    assert status == 202, answer
    runs = {w["workflow_id"]: w["execution_id"] for w in answer["data"]["workflows"]}
    assert set(runs) == {"order-processor", "notification-sender"}
    for workflow, execution_id in runs.items():
        done = wait_for(f"{workflow} to finish", lambda e=execution_id: dev.finished(e))
        assert done["status"] == "succeeded", done
    steps = [s["task_id"] for s in dev.execution(runs["order-processor"])["steps"]]
    assert steps == [
        "validate-order",
        "reserve-stock",
        "reserve-stock[0]",
        "route-shipping",
        "arrange-shipping",
        "process-payment-step",
        "compose-confirmation",
        "send-confirmation",
    ]

    emails = {}
    for path in (dev.outbox / "email").glob("*.eml"):
        mail = message_from_bytes(path.read_bytes())
        emails[mail["Subject"]] = mail
    confirmation = emails["Order Confirmation - order_12345"]
    assert confirmation["To"] == "customer@example.com"
    body = confirmation.get_payload(decode=True).decode()
    assert "order_12345" in body and "Wireless Headphones" in body
    assert "We received your order order_12345" in emails
    [sms] = [json.loads(p.read_text()) for p in (dev.outbox / "sms").glob("*.json")]
    [push] = [json.loads(p.read_text()) for p in (dev.outbox / "push").glob("*.json")]
    assert sms["to"] == "customer_67890" and "order_12345" in sms["text"]
    assert push["data"] == {"orderId": "order_12345"}


def test_a_failing_stage_sends_its_error_email(dev: Dev) -> None:
    event = json.loads(json.dumps(SEED_EVENT))
    event["payload"]["orderId"] = "order_sold_out"
    event["payload"]["items"][0]["productId"] = "prod_003"

    status, answer = dev.call("POST", "/api/v1/events", event)

    assert status == 202, answer
    [run] = [w for w in answer["data"]["workflows"] if w["workflow_id"] == "order-processor"]
    done = wait_for("the sold-out order to finish", lambda: dev.finished(run["execution_id"]))
    assert [s["task_id"] for s in done["steps"]][-1] == "send-inventory-error"
    [path] = (dev.outbox / "email").glob("inventory_error-*.eml")
    body = message_from_bytes(path.read_bytes()).get_payload(decode=True).decode()
    assert "prod_003 (wanted 1, 0 in stock)" in body


def test_an_order_abroad_reserves_each_item_and_declares_customs(dev: Dev) -> None:
    event = json.loads(json.dumps(SEED_EVENT))
    event["payload"]["orderId"] = "order_de"
    event["payload"]["shippingAddress"]["country"] = "DE"
    cable = {"productId": "prod_002", "name": "USB-C Cable", "quantity": 2, "price": 9.5}
    event["payload"]["items"].append(cable)

    status, answer = dev.call("POST", "/api/v1/events", event)

    assert status == 202, answer
    [run] = [w for w in answer["data"]["workflows"] if w["workflow_id"] == "order-processor"]
    done = wait_for("the order to Germany to finish", lambda: dev.finished(run["execution_id"]))
    assert done["status"] == "succeeded", done
    steps = [s["task_id"] for s in done["steps"]]
    assert steps[:6] == [
        "validate-order",
        "reserve-stock",
        "reserve-stock[0]",
        "reserve-stock[1]",
        "route-shipping",
        "prepare-customs",
    ]
    customs = (dev.outbox / "customs" / "order_de.txt").read_text()
    assert "DESTINATION DE" in customs and "2 x USB-C Cable: 19.00" in customs
    label = (dev.outbox / "shipping" / "order_de.txt").read_text()
    assert label.splitlines()[-1] == "DE"


def test_a_broken_edit_keeps_the_old_definitions_and_a_good_one_is_loaded(dev: Dev) -> None:
    workflow = dev.project / "notification-sender" / "workflow.yaml"
    original = workflow.read_text()
    extra = dev.project / "order-shipped.yaml"
    try:
        workflow.write_text(original.replace("next: send-push", "next: send-pidgeon", 1))
        wait_for("the reload to be refused", lambda: "NOT reloaded" in dev.output())
        printed = dev.output()
        assert "notification-sender/workflow.yaml:" in printed and "send-pidgeon" in printed
        status, answer = dev.call("GET", "/api/v1/workflows/notification-sender")
        assert status == 200, answer

        workflow.write_text(original)
        extra.write_text(
            "id: shipment-tracker\n"
            "triggers: [{type: signal, name: order.shipped}]\n"
            "tasks:\n"
            "  - id: tell\n"
            '    $use: tool(global::tools.#(id=="send-email"))\n'
            "    with: {recipient: a@b.example, subject: shipped, template: order_notification}\n"
        )
        wait_for("the reload", lambda: "reloaded 3 workflow(s)" in dev.output())
        status, answer = dev.call("POST", "/api/v1/events", {"name": "order.shipped"})
        assert status == 202, answer
        [run] = answer["data"]["workflows"]
        assert run["workflow_id"] == "shipment-tracker"
        # the worker has the new definitions too: it runs the workflow it did not know
        done = wait_for("the new workflow to run", lambda: dev.finished(run["execution_id"]))
        assert done["status"] == "succeeded", done
    finally:
        workflow.write_text(original)
        extra.unlink(missing_ok=True)


def test_work_left_in_the_database_is_finished_after_a_restart(tmp_path: Path) -> None:
    """An event accepted by a run that stopped before dispatching it runs on the next start."""
    from sqlalchemy import insert

    from workflows.ids import new_id
    from workflows.store import db
    from workflows.store.models import Event

    project = copy_examples(tmp_path)
    url = f"sqlite:///{project / '.herald' / 'herald.db'}"
    db.upgrade(url)
    execution_id = new_id("exe")
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(Event).values(
                id=new_id("evt"),
                name="order.created",
                payload=SEED_EVENT["payload"],
                status="accepted",
                routes=[
                    {
                        "workflow_id": "notification-sender",
                        "version": "1.0.0",
                        "execution_id": execution_id,
                    }
                ],
                token_name="dev",
                publish_count=0,
            )
        )
    engine.dispose()

    server = start_dev(project, tmp_path / "outbox")
    try:
        done = wait_for("the recovered execution to finish", lambda: server.finished(execution_id))
        assert done["status"] == "succeeded", done
        assert "recovered 1 unfinished item(s)" in server.output()
        assert list((tmp_path / "outbox" / "push").glob("*.json"))
    finally:
        assert server.stop() == 0, server.output()


SLOW_PROJECT = {
    "slow.yaml": (
        "id: slow-job\n"
        "triggers: [{type: signal, name: job.created}]\n"
        "tools:\n"
        "  - id: slow\n"
        "    execute: ./slow.py\n"
        "tasks:\n"
        "  - id: work\n"
        '    $use: tool(local::tools.#(id=="slow"))\n'
        "    timeout: 300\n"
        '    with: {marker: "{{ .input.marker }}"}\n'
    ),
    # The first attempt marks that it started, then hangs (until killed); the next one returns.
    "slow.py": (
        "import pathlib, time\n"
        "def run(input, context=None):\n"
        "    marker = pathlib.Path(input['marker'])\n"
        "    if not marker.exists():\n"
        "        marker.write_text('started')\n"
        "        time.sleep(600)\n"
        "    return {'resumed': True}\n"
    ),
}


def test_a_step_running_when_the_process_died_runs_again_at_the_next_start(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name, content in SLOW_PROJECT.items():
        (project / name).write_text(content)
    marker = tmp_path / "started"
    first = start_dev(project, tmp_path / "outbox")
    status, answer = first.call(
        "POST", "/api/v1/events", {"name": "job.created", "payload": {"marker": str(marker)}}
    )
    assert status == 202, answer
    [run] = answer["data"]["workflows"]
    wait_for("the step to start", marker.exists)
    first.process.kill()  # SIGKILL: no shutdown, the step stays "running" in the database
    first.stop()

    second = start_dev(project, tmp_path / "outbox")
    try:
        # its lease (timeout 300 s) is not waited out: the new process knows it is alone
        done = wait_for(
            "the step to run again", lambda: second.finished(run["execution_id"]), timeout=30
        )
        assert done["status"] == "succeeded", done
        [step] = done["steps"]
        assert step["output"] == {"resumed": True} and step["attempts"] == 2
    finally:
        assert second.stop() == 0, second.output()


def test_a_project_that_does_not_load_is_refused_with_every_problem(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("id: broken\ntasks:\n  - id: a\n    type: fancy\n")
    result = subprocess.run(
        [str(HERALD), "dev", "--project", str(tmp_path), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "broken.yaml:4" in result.stderr and "fix the definitions" in result.stderr


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(HERALD), "dev", "--project", str(copy_examples(tmp_path)), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


# --- the pieces, in process ---------------------------------------------------------------------


def test_dev_settings_use_sqlite_in_the_project_and_the_seed_token(tmp_path: Path) -> None:
    from herald.dev.server import dev_settings

    settings = dev_settings(
        tmp_path,
        {
            "HERALD_DATABASE_URL": "postgresql://elsewhere/db",
            "HERALD_BROKER_URL": "redis://elsewhere",
        },
    )
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / '.herald' / 'herald.db'}"
    assert settings.broker_url == "memory://"
    assert [(t.name, t.secret) for t in settings.api_tokens] == [("dev", TOKEN)]


def test_dev_settings_take_the_tokens_from_the_environment(tmp_path: Path) -> None:
    from herald.dev.server import dev_settings

    settings = dev_settings(tmp_path, {"HERALD_API_TOKENS": "me:s3cret,ci:other"})
    assert [(t.name, t.secret) for t in settings.api_tokens] == [("me", "s3cret"), ("ci", "other")]


def test_the_watcher_sees_workflow_files_but_not_hidden_or_virtualenv_ones(tmp_path: Path) -> None:
    from herald.dev.server import snapshot

    for name in (
        "a.yaml",
        "sub/b.yml",
        ".hidden/c.yaml",
        ".venv/d.yaml",
        "node_modules/e.yaml",
        "tools/f.py",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert sorted(Path(p).relative_to(tmp_path).as_posix() for p in snapshot(tmp_path)) == [
        "a.yaml",
        "sub/b.yml",
    ]


def test_without_a_sample_event_the_curl_sends_the_first_trigger(tmp_path: Path) -> None:
    from herald.dev.server import sample_curl
    from workflows.registry import Definitions

    (tmp_path / "wf.yaml").write_text(
        "id: greeter\ntriggers: [{type: signal, name: user.created}]\n"
        'tasks:\n  - id: hi\n    $use: tool(local::tools.#(id=="hi"))\n'
        "tools:\n  - id: hi\n    execute: ./hi.py\n"
    )
    (tmp_path / "hi.py").write_text("def run(input):\n    return {}\n")
    curl = sample_curl("http://127.0.0.1:8080", "t0k", Definitions.load(tmp_path))
    assert curl == (
        "curl -X POST http://127.0.0.1:8080/api/v1/events -H 'Authorization: Bearer t0k' "
        '-H \'Content-Type: application/json\' -d \'{"name": "user.created", "payload": {}}\''
    )


def test_the_embedded_worker_is_in_the_fleet(dev: Dev) -> None:
    status, body = dev.call("GET", "/api/v1/workers?state=alive")
    assert status == 200, body
    (worker,) = body["data"]["workers"]
    assert (worker["pool"], worker["state"], worker["hostname"]) == (
        "threads",
        "alive",
        f"herald-dev@{socket.gethostname()}",
    )
