"""CEL expressions: compiled once, unknown variables refused, evaluation errors named."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.expressions import (
    ExpressionError,
    ExpressionFailed,
    compile_expression,
    route_key,
    task_reads,
)

ALL = ("input", "tasks", "event", "error", "item", "index")


@pytest.mark.parametrize(
    ("source", "context", "expected"),
    [
        ("input.country", {"input": {"country": "US"}}, "US"),
        ("input.amount > 100.0", {"input": {"amount": 150.0}}, True),
        (
            'tasks["check-inventory"].output.ok',
            {"tasks": {"check-inventory": {"output": {"ok": 1}}}},
            1,
        ),
        (
            "tasks.validate.status == 'succeeded'",
            {"tasks": {"validate": {"status": "succeeded"}}},
            True,
        ),
        ("item.qty * index", {"item": {"qty": 3}, "index": 2}, 6),
        (
            "event.payload.orderId == input.orderId",
            {"event": {"payload": {"orderId": "o"}}, "input": {"orderId": "o"}},
            True,
        ),
        (
            "input.items.filter(i, i.q > 0).map(i, i.sku)",
            {"input": {"items": [{"q": 1, "sku": "a"}, {"q": 0, "sku": "b"}]}},
            ["a"],
        ),
        ("has(input.x) ? input.x : 'none'", {"input": {}}, "none"),
        ("error.type", {"error": {"type": "tool_error"}}, "tool_error"),
        ("{'n': [1, null, true]}", {}, {"n": [1, None, True]}),
        ("timestamp('2024-01-01T00:00:00Z')", {}, "2024-01-01T00:00:00+00:00"),
    ],
)
def test_an_expression_evaluates_to_json_data(
    source: str, context: dict[str, Any], expected: Any
) -> None:
    assert compile_expression(source, ALL).evaluate(context) == expected


def test_only_the_variables_read_are_handed_over() -> None:
    expression = compile_expression("input.a + 1", ALL)
    assert expression.variables == ("input",)
    # a context with other variables the expression does not read: not needed, not converted
    assert expression.evaluate({"input": {"a": 1}, "tasks": object()}) == 2


@pytest.mark.parametrize(
    ("source", "allowed", "message"),
    [
        ("input.orderId ==", ALL, "expression syntax error at column 17: mismatched input '<EOF>'"),
        (
            "inputs.orderId",
            ALL,
            "unknown variable 'inputs' in expression 'inputs.orderId' (variables here: input",
        ),
        ("item.sku", ("input", "tasks", "event", "error"), "unknown variable 'item'"),
        ("", ALL, "empty expression"),
        ("input.a = 1", ALL, "expression syntax error at column 9"),
    ],
)
def test_a_bad_expression_is_refused_when_it_compiles(
    source: str, allowed: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source, allowed)
    assert message in caught.value.message


def test_a_macro_variable_is_not_an_unknown_variable() -> None:
    expression = compile_expression(
        "input.items.all(x, x > 0) && input.items.exists(y, y > 2)", ("input",)
    )
    assert expression.variables == ("input",)
    assert expression.evaluate({"input": {"items": [1, 3]}}) is True


@pytest.mark.parametrize(
    ("source", "context", "message"),
    [
        ("input.missing", {"input": {}}, "expression 'input.missing': no key 'missing'"),
        ("input.a + 1", {"input": {"a": "x"}}, "expression 'input.a + 1': "),
        ("1 / input.n", {"input": {"n": 0}}, "division by zero"),
        ("error.message", {"input": {}}, "'error' is not set here"),
    ],
)
def test_an_evaluation_error_names_the_expression(
    source: str, context: dict[str, Any], message: str
) -> None:
    with pytest.raises(ExpressionFailed) as caught:
        compile_expression(source, ALL).evaluate(context)
    assert message in caught.value.message


def test_task_reads_finds_dotted_and_indexed_ids() -> None:
    assert task_reads('tasks.a.output && tasks["b-c"].status == "x" || tasks[\'d\'].output') == {
        "a",
        "b-c",
        "d",
    }
    assert task_reads("input.tasks.a") == set()


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("US", "US"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (2, "2"),
        (2.0, "2"),
        (2.5, "2.5"),
    ],
)
def test_route_keys(value: Any, key: str) -> None:
    assert route_key(value) == key
