"""Templates: JSON types kept, strict missing keys, dashed task ids, sandbox and limits."""

from __future__ import annotations

import time
from types import MappingProxyType
from typing import Any

import pytest

from workflows.errors import TemplateError
from workflows.templates import check_syntax, references, render

CONTEXT: dict[str, Any] = {
    "input": {
        "orderId": "ord-1",
        "customerId": "cus-7",
        "name": "ada",
        "amount": 12.5,
        "count": 3,
        "paid": True,
        "note": None,
        "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}],
        "address": {"city": "Oslo"},
    },
    "tasks": {
        "check-inventory": {"output": {"ok": True, "missing": []}, "status": "succeeded"},
        "validate": {"output": "fine", "status": "succeeded", "error": None},
    },
    "error": {"type": "tool_error", "message": "card declined"},
    "event": {"id": "evt_1", "name": "order.created", "received_at": "2026-11-26T00:00:00Z"},
    "workflow": {"id": "order-processor", "version": "1"},
    "execution": {"id": "exe_1"},
}


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


# -- paths, dashed ids, filters ------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ .tasks.check-inventory.output.ok }}", True),
        ("{{ .tasks.check-inventory.status }}", "succeeded"),
        ("{{ .input.items.1.sku }}", "b"),
        ("{{ .input.items[0].sku }}", "a"),
        ("{{ .event.name }}", "order.created"),
        ("{{ .workflow.id }}@{{ .workflow.version }}", "order-processor@1"),
        ("{{ .input.name | upper }}", "ADA"),
        ("{{ .input.items | length }}", 2),
        ("{{ .input.count - 1 }}", 2),
        ("{{ 1.5 + .input.amount }}", 14.0),
        ("{{ .input.nickname | default('friend') }}", "friend"),
        ("{{ 'yes' if .tasks.check-inventory.output.ok else 'no' }}", "yes"),
        ("{% if .error is defined %}{{ .error.message }}{% endif %}", "card declined"),
        (
            "{% for item in .input.items %}{{ item.sku }}{{ ',' if not loop.last }}{% endfor %}",
            "a,b",
        ),
        ("{{ '.input.name' }}", ".input.name"),
        ("{% raw %}{{ .input.name }}{% endraw %}", "{{ .input.name }}"),
        ("{# .input.nope #}{{ .input.name }}", "ada"),
        ("{{ {'a': {'b': .input.count}} }}", {"a": {"b": 3}}),
        ("{{ .input.items | selectattr('qty', 'gt', 1) | map(attribute='sku') | first }}", "b"),
    ],
)
def test_paths_and_jinja_expressions(template: str, expected: Any) -> None:
    assert render(template, CONTEXT) == expected


def test_the_items_key_is_a_key_not_the_dict_method() -> None:
    assert render("{{ .input.items | length }}", CONTEXT) == 2


# -- missing keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "context", "message"),
    [
        (
            "{{ .input.customerId }}",
            {"input": {}},
            'template "{{ .input.customerId }}": key "customerId" not found in .input',
        ),
        ("{{ .input.x }}", {}, 'key "input" not found'),
        (
            "{{ .tasks.validate.output }}",
            {"tasks": {}},
            'key "validate" not found in .tasks (task "validate" has not run',
        ),
        ("{{ .error.message }}", {"input": {}}, 'key "error" not found'),
        ("{{ .event.name }}", {"event": {"id": "e"}}, 'key "name" not found in .event'),
        ("{{ .workflow.id }}", {}, 'key "workflow" not found'),
        ("{{ .execution.id }}", {"execution": {}}, 'key "id" not found in .execution'),
        (
            "{{ .input.address.zip }}",
            {"input": {"address": {}}},
            'key "zip" not found in .input.address',
        ),
        (
            "{{ .tasks.check-inventory.output.ok }}",
            {"tasks": {"check-inventory": {"output": {}}}},
            'key "ok" not found in .tasks.check-inventory.output',
        ),
        (
            "{{ .input.items.2 }}",
            {"input": {"items": [1, 2]}},
            "index 2 out of range in .input.items (it has 2 items)",
        ),
        ("{{ .input.items[5] }}", {"input": {"items": [1]}}, "no element 5"),
        ("{{ .input.n.x }}", {"input": {"n": 4}}, 'key "x" not found in .input.n (a int)'),
        ("{{ .error.type }}", {"error": None}, 'key "type" not found in .error (a null)'),
        (
            "Hello {{ .input.name }}, order {{ .input.orderId }}",
            {"input": {"name": "x"}},
            'template "Hello {{ .input.name }}, order {{ .input.orderId }}": key "orderId"',
        ),
        ("{% for i in .input.rows %}{% endfor %}", {"input": {}}, 'key "rows" not found'),
        ("{{ .input.name | upper }}", {"input": {}}, 'key "name" not found in .input'),
    ],
)
def test_missing_key_is_an_error_naming_template_and_key(
    template: str, context: dict[str, Any], message: str
) -> None:
    with pytest.raises(TemplateError) as raised:
        render({"field": template}, context)
    assert message in str(raised.value)
    assert f'template "{template}"' in str(raised.value)


def test_a_missing_key_never_renders_as_empty_text() -> None:
    with pytest.raises(TemplateError, match='key "nope"'):
        render("before {{ .input.nope }} after", CONTEXT)


# -- sandbox -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ .input.__class__.__mro__ }}",
        "{{ .input.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ self }}",
        "text {{ self }}",
        "{{ self.__init__.__globals__ }}",
        "{{ range.__self__ }}",
        "{{ dict.__base__ }}",
        "{{ namespace }}",
        "{{ (.input.items | first).items }}",
        "{{ self | string }}",
        "{{ self | pprint }}",
        "{{ range(3) }}",
        "{{ config }}",
        "{{ request }}",
        "{{ .input.items.append(1) }}",
        "{{ .input.address.update({'x': 1}) }}",
        "{{ ''.format.__globals__ }}",
        "{{ '{0.__class__}'.format(.input) }}",
        "{% set x = ''.__class__ %}{{ x }}",
        "{{ .input | attr('__class__') }}",
        "{{ 'x' ~ ''.upper }}",
        "{{ 'x' ~ self }}",
        "{{ [self, 1] | join(',') }}",
        "{{ [range] | join }}",
        "{{ '%s' % self }}",
        "{{ '%s' % (range,) }}",
        "{{ '%s' | format(self) }}",
        "{{ '{}'.format(self) }}",
        "{{ '{x}'.format_map({'x': dict}) }}",
        "{% include 'secrets.txt' %}",
        "{% extends '/etc/passwd' %}",
        "{% import 'os' as os %}{{ os }}",
        "{% from 'x' import y %}{{ y }}",
        "{{ lipsum(1000000000) }}",
    ],
)
def test_sandbox_escapes_raise_template_error(template: str) -> None:
    with pytest.raises(TemplateError) as raised:
        render(template, CONTEXT)
    message = str(raised.value)
    assert "<class" not in message
    assert " at 0x" not in message


def test_no_python_repr_leaks_into_text() -> None:
    with pytest.raises(TemplateError, match="not a JSON value"):
        render("value: {{ cycler if false else self }}", CONTEXT)


# -- limits --------------------------------------------------------------------------------


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
    monkeypatch.setattr("workflows.template_limits.MAX_VALUES", 1000)
    assert len(render("{{ [.input.address] * 400 }}", CONTEXT)) == 400
    with pytest.raises(TemplateError, match="more than 1000 JSON values"):
        render("{{ [.input] * 500 }}", CONTEXT)


def test_a_slow_render_stops_at_the_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workflows.template_limits.MAX_SECONDS", 0.0)
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
