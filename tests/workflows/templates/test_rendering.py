"""Rendering: JSON types kept, strings rendered, check_syntax and references, the compile cache."""

from __future__ import annotations

import time
from types import MappingProxyType
from typing import Any

import pytest

from tests.workflows.templates.context import CONTEXT
from workflows.errors import TemplateError
from workflows.templates import check_syntax, references, render

# -- type preservation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ .input.address }}", {"city": "Oslo"}),
        ("{{ .input.items }}", [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]),
        ("{{ .input.amount }}", 12.5),
        ("{{ .input.count }}", 3),
        ("{{ .input.paid }}", True),
        ("{{ .input.note }}", None),
        ("{{ .input.orderId }}", "ord-1"),
        ("{{ .input }}", CONTEXT["input"]),
        ("{{ .error }}", {"type": "tool_error", "message": "card declined"}),
        ("{{ .tasks.check-inventory.output.missing }}", []),
        ("{{ .input.count * 2 }}", 6),
        ("  {{ .input.count }}  ", 3),
        ("{{ .input.count }}\n", 3),
        ("{{- .input.count -}}", 3),
        ("{{ .input.items | map(attribute='sku') | list }}", ["a", "b"]),
        ("{{ .input.items | map(attribute='sku') }}", ["a", "b"]),
    ],
)
def test_whole_value_template_keeps_its_json_type(template: str, expected: Any) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "Validate order {{ .input.orderId }} for customer {{ .input.customerId }}",
            "Validate order ord-1 for customer cus-7",
        ),
        ("total: {{ .input.amount }}", "total: 12.5"),
        ("count={{ .input.count }}", "count=3"),
        ("paid={{ .input.paid }} note={{ .input.note }}", "paid=true note=null"),
        ("at {{ .input.address }}", 'at {"city": "Oslo"}'),
        ("items: {{ .input.items }}", 'items: [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]'),
        ("{{ .input.orderId }}{{ .input.count }}", "ord-13"),
        ("{{ .input.address | string }}", '{"city": "Oslo"}'),
        ("{{ 'at ' ~ .input.address }}", 'at {"city": "Oslo"}'),
        ("{{ .input.paid ~ '/' ~ .input.note }}", "true/null"),
        ("{{ .input.items | map(attribute='sku') | join(', ') }}", "a, b"),
        ("{{ .input.items | join(';', attribute='qty') }}", "1;2"),
        ("{{ [.input.address, 1] | join(' ') }}", '{"city": "Oslo"} 1'),
        ("{{ '%s-%05d' % (.input.name, .input.count) }}", "ada-00003"),
        ("{{ '{}:{}'.format(.input.name, .input.count) }}", "ada:3"),
        ("line\n", "line\n"),
        ("{{ .input.name }}!\n", "ada!\n"),
    ],
)
def test_text_around_a_template_renders_a_string(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_render_walks_dicts_and_lists_and_leaves_keys_alone() -> None:
    value = {
        "order_data": "{{ .input }}",
        "{{ .input.name }}": ["{{ .input.count }}", "id {{ .execution.id }}", 5, None, True],
        "nested": {"city": "{{ .input.address.city }}"},
    }
    assert render(value, CONTEXT) == {
        "order_data": CONTEXT["input"],
        "{{ .input.name }}": [3, "id exe_1", 5, None, True],
        "nested": {"city": "Oslo"},
    }


def test_a_tasks_frozen_with_mapping_renders_to_plain_json() -> None:
    with_ = MappingProxyType({"ids": ("{{ .input.orderId }}", 2), "city": "{{ .input.address }}"})
    assert render(with_, CONTEXT) == {"ids": ["ord-1", 2], "city": {"city": "Oslo"}}


def test_plain_strings_and_scalars_come_back_untouched() -> None:
    assert render("no templates {here} }}", {}) == "no templates {here} }}"
    assert render(42, {}) == 42
    assert render(None, {}) is None


def test_whole_value_result_is_a_copy_of_the_context() -> None:
    result = render("{{ .input.address }}", CONTEXT)
    result["city"] = "Bergen"
    assert CONTEXT["input"]["address"] == {"city": "Oslo"}


# -- check_syntax and references -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "plain text",
        "{{ .input.orderId }}",
        "Subject - {{ .input.orderId }}",
        "{{ .tasks.check-inventory.output.ok | default(false) }}",
        "{% for i in .input.items %}{{ i.sku }}{% endfor %}",
        "{# a comment #}",
        "{{ .error }}",
    ],
)
def test_check_syntax_accepts_valid_templates(text: str) -> None:
    assert check_syntax(text) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ .input.orderId", "{{ is never closed with }}"),
        ("{% if .input.paid %}yes", "endif"),
        ("{{ .input.name | nofilter }}", "No filter named 'nofilter'"),
        ("{{ 'open }}", "string opened with ' is never closed"),
        ("{% for %}{% endfor %}", "line 1"),
        ("{{ }}", "line 1"),
        ("{{ .input.a .input.b }}", "line 1"),
        ("{% raw %}{{ x }}", "endraw"),
        ("{{ x }} {# unclosed", "never closed"),
    ],
)
def test_check_syntax_reports_errors_naming_the_template(text: str, message: str) -> None:
    problem = check_syntax(text)
    assert problem is not None
    assert message in problem
    assert problem.startswith(f'template "{text}"')
    with pytest.raises(TemplateError):
        render(text, CONTEXT)


def test_check_syntax_shortens_long_templates() -> None:
    text = "x" * 300 + "{{ .input.a"
    problem = check_syntax(text)
    assert problem is not None
    assert len(problem) < 200


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", set()),
        ("{{ .tasks.check-inventory.output }}", {("tasks", "check-inventory", "output")}),
        (
            "{{ .input.a | default(.input.b) }} {% if .error %}{% endif %}",
            {("input", "a"), ("input", "b"), ("error",)},
        ),
        ("{{ 'x.y' }} {{ item.sku }} {{ 1.5 }}", set()),
        ("{{ .input.items.0.sku }}", {("input", "items", "0", "sku")}),
        ("{{ .input.a", set()),
    ],
)
def test_references_lists_the_paths_a_template_reads(
    text: str, expected: set[tuple[str, ...]]
) -> None:
    assert references(text) == expected


def test_rendering_a_cached_template_is_fast() -> None:
    value = {"task": "Validate order {{ .input.orderId }}", "data": "{{ .input }}", "n": 1}
    render(value, CONTEXT)
    started = time.perf_counter()
    for _ in range(1000):
        render(value, CONTEXT)
    per_render = (time.perf_counter() - started) / 1000
    assert per_render < 0.002
