"""Limits: runaway loops, huge values and slow renders stop with a TemplateError."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.workflows.templates.context import CONTEXT
from workflows.errors import TemplateError
from workflows.templates import render


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('{{ "x" * 100000000 }}', "repeats a value past"),
        ('{{ 100000000 * "x" }}', "repeats a value past"),
        ("{{ [1] * 100000000 }}", "repeats a value past"),
        ("{{ 2 ** 100000000 }}", "raises to a power"),
        ("{{ 10 ** 10000 }}", "raises to a power"),
        ("{{ (2 ** 2000) * (2 ** 2000) * (2 ** 2000) }}", "multiplies past"),
        ("{{ range(1000000) | list }}", "Range too big"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "loop iterations and calls",
        ),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "more than",
        ),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "Recursion"),
        ("{{ 'x' | center(1000000000) }}", "width"),
        ("{{ 'x'.ljust(1000000000) }}", "width"),
        ("{{ '%0999999999d' % 1 }}", "width"),
        ("{{ '%0999999999d' | format(1) }}", "width"),
        ("{{ '{:>999999999}'.format(1) }}", "width"),
        ("{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}", "more than 1048576"),
        ("{{ 'x' * 1000000 + 'y' * 1000000 }}", "longer than"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
            "longer than",
        ),
        ("{{ ('x' * 1000) | replace('', 'y' * 2000) }}", "longer than"),
        ("{{ ('x' * 1000).replace('x', 'y' * 2000) }}", "longer than"),
        ("{{ ('\n' * 100000) | indent(1000) }}", "longer than"),
        ("{{ ('\t' * 100000).expandtabs(1000) }}", "longer than"),
    ],
)
def test_runaway_templates_stop_with_template_error(template: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError, match=message):
        render(template, CONTEXT)
    assert time.monotonic() - started < 5


def test_a_huge_json_result_stops_at_the_value_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workflows.templates.limits.MAX_VALUES", 1000)
    assert len(render("{{ [.input.address] * 400 }}", CONTEXT)) == 400
    with pytest.raises(TemplateError, match="more than 1000 JSON values"):
        render("{{ [.input] * 500 }}", CONTEXT)


def test_a_slow_render_stops_at_the_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workflows.templates.limits.MAX_SECONDS", 0.0)
    with pytest.raises(TemplateError, match="takes longer than 0s to render"):
        render("{% for i in range(1000) %}{{ i }}{% endfor %}", CONTEXT)


def test_deeply_nested_values_are_refused() -> None:
    deep: Any = "bottom"
    for _ in range(150):
        deep = {"a": deep}
    with pytest.raises(TemplateError, match="nested more than 100 levels"):
        render("{{ .input }}", {"input": deep})


def test_limits_apply_per_render_not_per_process() -> None:
    loop = "{% for i in range(60000) %}{% endfor %}ok"
    assert render(loop, CONTEXT) == "ok"
    assert render(loop, CONTEXT) == "ok"
