"""Wildcard trigger names: what each pattern matches, and routing as an index walk."""

from __future__ import annotations

import pytest

from tests.workflows.conftest import MakeProject
from workflows.errors import DefinitionError
from workflows.registry import Definitions
from workflows.routing import TRIGGER_NAME, PatternIndex

MATCHES = [
    ("order.*", "order.created", True),
    ("order.*", "order.item.added", False),
    ("order.*", "user.created", False),
    ("*.created", "order.created", True),
    ("*.created", "order.created.v2", False),
    ("*.created", "a.b.created", False),
    ("order.**", "order.created", True),
    ("order.**", "order.item.added", True),
    ("order.**", "orders.created", False),
    ("a.**.z", "a.z", True),
    ("a.**.z", "a.b.c.z", True),
    ("a.**.z", "a.b.c", False),
    ("**", "any.thing.at.all", True),
    ("**.deleted", "user.deleted", True),
    ("**.deleted", "user.deleted.late", False),
    ("*.*", "order.created", True),
    ("*.*", "order.item.added", False),
    ("order.created", "order.created", True),
]


@pytest.mark.parametrize(("pattern", "name", "matches"), MATCHES)
def test_a_pattern_matches_exactly_the_names_documented(
    pattern: str, name: str, matches: bool
) -> None:
    index = PatternIndex([(pattern, "hit")])
    assert (index.match(name).values == ["hit"]) is matches


@pytest.mark.parametrize("name", ["ord*.x", "order.*x", "order..x", "***", "order.*?"])
def test_a_segment_mixing_a_wildcard_with_letters_is_not_a_trigger_name(name: str) -> None:
    assert TRIGGER_NAME.fullmatch(name) is None


def test_routing_walks_the_index_and_never_scans_every_trigger() -> None:
    # 3,000 patterns: a scan would look at each one; the walk looks at a few trie nodes
    index: PatternIndex[int] = PatternIndex()
    for n in range(1000):
        index.add(f"tenant{n}.*", n)
        index.add(f"tenant{n}.orders.**", n)
        index.add(f"*.tenant{n}", n)
    found = index.match("tenant7.orders.created")
    assert found.values == [7]
    assert found.visited <= 12
    assert index.match("nobody.listens").visited <= 4


WILDCARD_PROJECT = """\
id: {id}
triggers:
  - type: signal
    name: "{name}"
    schema: {{type: object, required: [{field}]}}
tasks:
  - id: a
    type: basic
    $use: tool(global::tools.#(id=="notify"))
"""


def test_the_registry_merges_exact_and_wildcard_subscribers_and_all_their_schemas(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            "exact.yaml": WILDCARD_PROJECT.format(id="exact", name="order.created", field="a"),
            "star.yaml": WILDCARD_PROJECT.format(id="star", name="order.*", field="b"),
            "deep.yaml": WILDCARD_PROJECT.format(id="deep", name="**.created", field="c"),
        }
    )
    registry = Definitions.load(root).registry

    subs = registry.subscribers("order.created")
    assert [(s.workflow.id, s.trigger.name) for s in subs] == [
        ("deep", "**.created"),
        ("exact", "order.created"),
        ("star", "order.*"),
    ]
    assert [s.workflow.id for s in registry.subscribers("order.paid")] == ["star"]
    refusing = {e.workflow_id for e in registry.validate("order.created", {})}
    assert refusing == {"exact", "star", "deep"}
    assert registry.validate("order.created", {"a": 1, "b": 2, "c": 3}) == []


def test_a_mixed_segment_is_refused_at_load_with_its_place(make_project: MakeProject) -> None:
    root = make_project({"wf.yaml": WILDCARD_PROJECT.format(id="w", name="ord*.x", field="a")})
    with pytest.raises(DefinitionError) as refused:
        Definitions.load(root)
    assert "wf.yaml:4: triggers[0].name" in str(refused.value)
    assert "* (one segment) or ** (any number of segments)" in str(refused.value)
