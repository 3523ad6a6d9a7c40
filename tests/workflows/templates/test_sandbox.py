"""The sandbox: strict missing keys naming what is missing, no way out to Python internals."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workflows.templates.context import CONTEXT
from workflows.errors import TemplateError
from workflows.templates import render

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
