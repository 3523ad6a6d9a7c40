"""`herald validate`: prints the project on success, every error as file:line: path: message."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from herald.cli import cli

WORKFLOW = """\
id: wf
tools:
  - {id: t, execute: ./run.sh}
tasks:
  - id: a
    $use: tool(local::tools.#(id=="t"))
    on_success: {next: b}
  - id: b
    $use: tool(local::tools.#(id=="t"))
    final: true
  - id: orphan
    $use: tool(local::tools.#(id=="t"))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "run.sh").write_text("#!/bin/sh\necho '{}'\n")
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    return tmp_path


def test_validate_prints_workflows_triggers_tasks_and_exits_0(seed_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "--project", str(seed_dir)])

    assert result.exit_code == 0, result.output
    assert "workflow ecommerce-order-flow 1.0.0  (ecommerce-order-flow.yaml:1)" in result.output
    assert "  trigger signal order.created (with schema)" in result.output
    assert (
        "  task validate-order: agent order-processor action default"
        "  [success -> check-inventory, error -> send-error-notification]"
    ) in result.output
    assert "  task send-confirmation: tool send-email (./tools/send_email.ts)  [final]" in (
        result.output
    )
    assert result.output.rstrip().endswith("OK: 6 workflow(s), 0 warning(s)")


def test_validate_shows_warnings_and_still_succeeds(project: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "--project", str(project)])

    assert result.exit_code == 0, result.output
    assert (
        "wf.yaml:11: tasks[2]: warning: task 'orphan' is never reached from the first task 'a'"
    ) in result.output
    assert "OK: 1 workflow(s), 1 warning(s)" in result.output


def test_validate_prints_every_error_and_exits_1(project: Path) -> None:
    (project / "wf.yaml").write_text(
        WORKFLOW.replace("{next: b}", "{next: c}").replace("final: true", "final: yes please")
    )

    result = CliRunner().invoke(cli, ["validate", "--project", str(project)])

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "wf.yaml:7: tasks[0].on_success.next: next names no task: 'c' (tasks: a, b, orphan)" in (
        lines
    )
    assert "wf.yaml:10: tasks[1].final: must be true or false, not a string ('yes please')" in lines
    assert lines[-1] == f"2 error(s) in {project}: nothing loaded"


def test_validate_reads_the_project_dir_from_the_environment(seed_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["validate"], env={"HERALD_PROJECT_DIR": str(seed_dir)})

    assert result.exit_code == 0, result.output
    assert "OK: 6 workflow(s)" in result.output


def test_validate_defaults_to_the_current_directory(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.delenv("HERALD_PROJECT_DIR", raising=False)

    result = CliRunner().invoke(cli, ["validate"])

    assert result.exit_code == 0, result.output
    assert f"project {project.resolve()} (1 file(s))" in result.output


FLOW_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "flow"


def test_validate_prints_flow_tasks_with_where_they_lead() -> None:
    result = CliRunner().invoke(cli, ["validate", "--project", str(FLOW_DIR)])

    assert result.exit_code == 0, result.output
    assert (
        "  task route: router on input.country"
        "  [US -> ship-us, CA -> ship-ca, default -> ship-intl]"
    ) in result.output
    assert (
        "  task pick: router on input.flag  [true -> accepted, default -> error]" in result.output
    )


def test_validate_prints_sleeps_delays_and_signals() -> None:
    result = CliRunner().invoke(cli, ["validate", "--project", str(FLOW_DIR)])

    assert result.exit_code == 0, result.output
    assert "  task wait-a-week: sleep 7d  [success -> wake]" in result.output
    assert "  task remind: tool ok (./tools/ok.py) after 1h30m  [success -> pick]" in result.output
    assert (
        "  task request-invoice: signal flow.invoice.requested"
        "  [success -> done, error -> invoice-refused]"
    ) in result.output


def test_validate_prints_a_wait_with_its_event_condition_and_timeout() -> None:
    result = CliRunner().invoke(cli, ["validate", "--project", str(FLOW_DIR)])

    assert result.exit_code == 0, result.output
    assert (
        "  task await-payment: wait for flow.payment.confirmed"
        " where event.payload.orderId == input.orderId for 1h"
        "  [success -> ship, timeout -> cancel-order]"
    ) in result.output
