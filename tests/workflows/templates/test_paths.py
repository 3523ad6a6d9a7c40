"""Leading-dot paths: dashed task ids, list indexes, Jinja expressions around them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workflows.templates.context import CONTEXT
from workflows.templates import render


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
