"""The transition function: every rule of what runs next and how the execution ends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from workflows.model import ExecutionStatus, Task, Tool, Workflow
from workflows.transitions import STEP_LIMIT, UNKNOWN_TASK, Decision, Outcome, decide

TOOL = Tool(id="noop", execute="./tools/noop.py", path=Path("tools/noop.py"))
ERROR = {"type": "tool_error", "message": "card declined"}


def task(task_id: str, **fields: Any) -> Task:
    """A tool task with the given transitions."""
    return Task(id=task_id, uses="tool", tool=TOOL, **fields)


WORKFLOW = Workflow(
    id="order-processor",
    max_steps=10,
    tasks=(
        task("validate", on_success="charge", on_error="report"),
        task("charge", on_success="confirm", on_error="refund"),
        task("confirm", final=True),
        task("final-with-handler", final=True, on_error="report"),
        task("final-and-next", final=True, on_success="report"),
        task("last"),
        task("only-success", on_success="confirm"),
        task("only-error", on_error="report"),
        task("retry-loop", on_success="retry-loop", on_error="retry-loop"),
        task("dangling", on_success="removed-task", on_error="gone-too"),
        task("report", final=True),
        task("refund", on_success="report"),
    ),
)

OK = Outcome(ok=True, output={"valid": True})
FAILED = Outcome(ok=False, error=ERROR)
RUNNING = ExecutionStatus.RUNNING
SUCCEEDED = ExecutionStatus.SUCCEEDED
FAILED_STATUS = ExecutionStatus.FAILED


@dataclass(frozen=True)
class Case:
    """One row of the rules table."""

    task: str
    outcome: Outcome
    steps_taken: int
    next_task: str | None
    status: ExecutionStatus
    cause: dict[str, Any] | None = None
    error_type: str | None = None


CASES = {
    "success follows on_success": Case("validate", OK, 1, "charge", RUNNING),
    "success on a final task ends succeeded": Case("confirm", OK, 3, None, SUCCEEDED),
    "a final task with on_error ends succeeded on success": Case(
        "final-with-handler", OK, 2, None, SUCCEEDED
    ),
    "final wins over on_success": Case("final-and-next", OK, 2, None, SUCCEEDED),
    "success with no next ends succeeded": Case("last", OK, 1, None, SUCCEEDED),
    "success with only on_error set ends succeeded": Case("only-error", OK, 1, None, SUCCEEDED),
    "error follows on_error with the cause": Case("validate", FAILED, 1, "report", RUNNING, ERROR),
    "error follows on_error even from a final task": Case(
        "final-with-handler", FAILED, 2, "report", RUNNING, ERROR
    ),
    "error with no on_error ends failed": Case(
        "last", FAILED, 1, None, FAILED_STATUS, error_type="tool_error"
    ),
    "error on a final task without handler ends failed": Case(
        "confirm", FAILED, 3, None, FAILED_STATUS, error_type="tool_error"
    ),
    "error with only on_success set ends failed": Case(
        "only-success", FAILED, 1, None, FAILED_STATUS, error_type="tool_error"
    ),
    "handled error then success at the end ends succeeded": Case("report", OK, 2, None, SUCCEEDED),
    "handled error path continues on success": Case("refund", OK, 3, "report", RUNNING),
    "a loop is allowed under the step limit": Case("retry-loop", OK, 9, "retry-loop", RUNNING),
    "an error loop is allowed under the step limit": Case(
        "retry-loop", FAILED, 9, "retry-loop", RUNNING, ERROR
    ),
    "next at the step limit ends failed": Case(
        "retry-loop", OK, 10, None, FAILED_STATUS, error_type=STEP_LIMIT
    ),
    "on_error at the step limit ends failed": Case(
        "retry-loop", FAILED, 10, None, FAILED_STATUS, error_type=STEP_LIMIT
    ),
    "past the step limit ends failed": Case(
        "validate", OK, 11, None, FAILED_STATUS, error_type=STEP_LIMIT
    ),
    "the end needs no step budget": Case("confirm", OK, 10, None, SUCCEEDED),
    "an unhandled error at the limit keeps its own error": Case(
        "last", FAILED, 10, None, FAILED_STATUS, error_type="tool_error"
    ),
    "on_success to a vanished task ends failed": Case(
        "dangling", OK, 1, None, FAILED_STATUS, error_type=UNKNOWN_TASK
    ),
    "on_error to a vanished task ends failed": Case(
        "dangling", FAILED, 1, None, FAILED_STATUS, error_type=UNKNOWN_TASK
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decide(case: Case) -> None:
    decision = decide(WORKFLOW, WORKFLOW.task(case.task), case.outcome, case.steps_taken)
    assert decision.next_task == case.next_task
    assert decision.status == case.status
    assert decision.cause == case.cause
    if case.error_type is None:
        assert decision.error is None
    else:
        assert decision.error is not None
        assert decision.error["type"] == case.error_type
    assert (decision.next_task is not None) == (decision.status is RUNNING)


def test_unhandled_error_is_the_steps_own_error() -> None:
    decision = decide(WORKFLOW, WORKFLOW.task("last"), FAILED, 1)
    assert decision.error == ERROR


def test_failure_without_an_error_record_still_says_which_task() -> None:
    decision = decide(WORKFLOW, WORKFLOW.task("last"), Outcome(ok=False), 1)
    assert decision == Decision(
        next_task=None,
        status=FAILED_STATUS,
        error={"type": "step_failed", "message": 'task "last" failed', "task": "last"},
    )


def test_step_limit_error_says_what_was_reached() -> None:
    decision = decide(WORKFLOW, WORKFLOW.task("retry-loop"), OK, 10)
    assert decision.error is not None
    message = str(decision.error["message"])
    assert "step limit reached" in message
    assert "max_steps" in message
    assert "retry-loop" in message


def test_step_limit_on_the_error_path_keeps_the_step_error_as_cause() -> None:
    decision = decide(WORKFLOW, WORKFLOW.task("retry-loop"), FAILED, 10)
    assert decision.error is not None
    assert decision.error["cause"] == ERROR


def test_vanished_task_error_names_both_tasks() -> None:
    decision = decide(WORKFLOW, WORKFLOW.task("dangling"), OK, 1)
    assert decision.error is not None
    message = str(decision.error["message"])
    assert '"dangling"' in message
    assert '"removed-task"' in message
    assert "on_success" in message


def test_a_task_from_an_older_definition_is_decided_against_the_current_workflow() -> None:
    old = task("validate", on_success="legacy-step")
    decision = decide(WORKFLOW, old, OK, 1)
    assert decision.status is FAILED_STATUS
    assert decision.error is not None
    assert decision.error["type"] == UNKNOWN_TASK


# -- a router's choice --------------------------------------------------------------------


def test_a_router_success_follows_the_route_it_chose() -> None:
    decision = decide(WORKFLOW, task("validate"), Outcome(ok=True, route="refund"), 1)
    assert decision == Decision(next_task="refund", status=ExecutionStatus.RUNNING)


def test_a_route_is_bounded_by_the_step_limit_and_must_name_a_task() -> None:
    limited = decide(WORKFLOW, task("validate"), Outcome(ok=True, route="refund"), 10)
    assert limited.status is ExecutionStatus.FAILED and limited.error is not None
    assert limited.error["type"] == STEP_LIMIT
    assert "validate route -> refund not run" in limited.error["message"]

    gone = decide(WORKFLOW, task("validate"), Outcome(ok=True, route="vanished"), 1)
    assert gone.error is not None and gone.error["type"] == UNKNOWN_TASK
    assert 'task "validate" route names task "vanished"' in gone.error["message"]
