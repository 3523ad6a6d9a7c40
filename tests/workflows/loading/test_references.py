"""References: parsing local::/global:: paths, JSON pointers, and $ref replacement."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.loading.references import (
    Reference,
    Resolver,
    Selector,
    UnresolvedReference,
    in_schema_body,
    is_herald_ref,
    locate,
    parse_reference,
    parse_use,
    pointer,
)


@pytest.mark.parametrize(
    ("text", "scope", "segments"),
    [
        ('local::agents.#(id=="x")', "local", ("agents", Selector("id", "x"))),
        ('global::models.#(id=="gpt-4.1")', "global", ("models", Selector("id", "gpt-4.1"))),
        ("global::defaults.retry", "global", ("defaults", "retry")),
        ('local::tools.#(description=="a b")', "local", ("tools", Selector("description", "a b"))),
    ],
)
def test_parse_reference(text: str, scope: str, segments: tuple[Any, ...]) -> None:
    assert parse_reference(text) == Reference(text, scope, segments)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("agents.0", "is not of the form local::path or global::path"),
        ('remote::agents.#(id=="x")', "unknown scope 'remote'; use local:: or global::"),
        ("local::agents.0", "unsupported path segment '0' (select list items with"),
        ("local::agents[0]", "expected '.' at '[0]'"),
        ("local::agents.#(id='x')", "unsupported path segment \"#(id='x')\""),
        ("local::", "unsupported path segment '<empty>'"),
        ("local::agents.", "unsupported path segment '<empty>'"),
    ],
)
def test_malformed_references_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(UnresolvedReference) as caught:
        parse_reference(text)

    assert message in caught.value.message
    assert repr(text) in caught.value.message


@pytest.mark.parametrize(
    ("text", "kind"),
    [('agent(local::agents.#(id=="a"))', "agent"), ('tool(global::tools.#(id=="t"))', "tool")],
)
def test_parse_use(text: str, kind: str) -> None:
    assert parse_use(text)[0] == kind


@pytest.mark.parametrize("text", ["task(local::x)", 'agent local::agents.#(id=="a")', "tool()"])
def test_malformed_use_is_refused(text: str) -> None:
    with pytest.raises(UnresolvedReference):
        parse_use(text)


LOCAL = {"agents": [{"id": "a", "config": {}}], "tools": [{"id": "t"}]}
SHARED = {"agents": [{"id": "b"}], "models": [{"id": "m", "provider": "mock"}]}


def test_local_looks_in_the_document_first_then_in_herald_yaml() -> None:
    assert locate(parse_reference('local::agents.#(id=="a")'), LOCAL, SHARED)[:2] == (
        "local",
        ("agents", 0),
    )
    assert locate(parse_reference('local::agents.#(id=="b")'), LOCAL, SHARED)[:2] == (
        "global",
        ("agents", 0),
    )
    assert locate(parse_reference('local::models.#(id=="m")'), LOCAL, SHARED)[0] == "global"


@pytest.mark.parametrize(
    ("text", "shared", "message"),
    [
        ('local::agents.#(id=="z")', SHARED, '#(id=="z") matches nothing in this document or in'),
        ('global::agents.#(id=="a")', SHARED, '#(id=="a") matches nothing in herald.yaml'),
        ('global::models.#(id=="m")', None, "needs a herald.yaml, and there is none"),
        ('local::agents.#(id=="z")', None, "(there is no herald.yaml)"),
        ("global::models.id", SHARED, "no key 'id'"),
    ],
)
def test_unresolved_references_say_why(text: str, shared: Any, message: str) -> None:
    with pytest.raises(UnresolvedReference, match=r".*") as caught:
        locate(parse_reference(text), LOCAL, shared)

    assert message in caught.value.message


def test_json_pointer_with_escapes() -> None:
    data = {"a/b": {"c~d": [10, 20]}}

    assert pointer(data, "#/a~1b/c~0d/1") == (("a/b", "c~d", 1), 20)
    assert pointer(data, "#") == ((), data)
    with pytest.raises(UnresolvedReference, match="a JSON pointer starts with '#/'"):
        pointer(data, "#a")
    with pytest.raises(UnresolvedReference, match="nothing at '2' under a/b/c~d"):
        pointer(data, "#/a~1b/c~0d/2")


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        (("triggers", 0, "schema"), False),
        (("triggers", 0, "schema", "properties"), True),
        (("config", "input"), False),
        (("config", "input", "$defs", "x"), True),
        (("agents", 1, "actions", 0, "output", "items"), True),
        (("tools", 0, "input", "properties"), True),
        (("tasks", 0, "with", "x"), False),
    ],
)
def test_in_schema_body(path: tuple[str | int, ...], inside: bool) -> None:
    assert in_schema_body(path) is inside


@pytest.mark.parametrize(
    ("path", "ref", "herald"),
    [
        (("agents", 0, "config"), 'global::models.#(id=="m")', True),
        (("tasks", 0, "with", "x"), "anything", True),
        (("config", "input"), "#/triggers/0/schema", True),
        (("config", "input"), 'global::schemas.#(id=="order")', True),
        (("config", "input"), "https://example.com/order.json", False),
        (("triggers", 0, "schema", "properties", "a"), "#/$defs/a", False),
    ],
)
def test_which_refs_herald_resolves(path: tuple[str | int, ...], ref: str, herald: bool) -> None:
    assert is_herald_ref(path, ref) is herald


def test_resolver_replaces_refs_and_merges_siblings() -> None:
    doc: dict[str, Any] = {
        "triggers": [{"schema": {"type": "object"}}],
        "config": {"input": {"$ref": "#/triggers/0/schema", "title": "x"}},
        "agents": [{"id": "a", "config": {"$ref": 'global::models.#(id=="m")'}}],
    }
    resolver = Resolver(doc, SHARED)

    data = resolver.resolve()

    assert resolver.problems == []
    assert data["config"]["input"] == {"type": "object", "title": "x"}
    assert data["agents"][0]["config"] == {"id": "m", "provider": "mock"}
    assert doc["config"]["input"] == {"$ref": "#/triggers/0/schema", "title": "x"}  # untouched


def test_resolver_reports_cycles_and_non_mapping_merges() -> None:
    doc = {"a": {"$ref": "#/b"}, "b": {"$ref": "#/a"}, "c": {"$ref": "#/d", "x": 1}, "d": [1]}
    resolver = Resolver(doc, None)

    resolver.resolve()

    messages = dict(resolver.problems)
    assert "refers to itself (a cycle)" in messages[("a", "$ref")]
    assert "keys beside $ref need a mapping to merge into" in messages[("c", "$ref")]
