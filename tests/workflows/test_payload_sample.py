"""A bounded sample of a payload: what it keeps, where it was cut, which errors it trusts."""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from workflows.payload_sample import has_conditionals, take


def errors_of(schema: dict[str, Any], instance: Any) -> list[jsonschema_rs.ValidationError]:
    return list(jsonschema_rs.Draft202012Validator(schema).iter_errors(instance))


def test_a_small_payload_is_its_own_sample() -> None:
    payload = {"a": [1, 2, {"b": "c"}], "d": None}
    sample = take(payload, per_container=3, budget=100)
    assert sample.value is payload and not sample.cut


def test_members_past_the_bounds_are_cut_and_the_places_above_marked() -> None:
    payload = {"keep": {"x": 1}, "items": [{"n": i} for i in range(1000)]}

    sample = take(payload, per_container=3, budget=100)

    assert sample.value == {"keep": {"x": 1}, "items": [{"n": 0}, {"n": 1}, {"n": 2}]}
    assert sample.partial == {(), ("items",)}
    assert payload["items"][3] == {"n": 3}  # the payload itself is left alone


def test_the_budget_bounds_the_whole_sample() -> None:
    payload = [[[i, i] for i in range(10)] for _ in range(10)]

    sample = take(payload, per_container=10, budget=30)

    def count(value: Any) -> int:
        inner = value if isinstance(value, list) else []
        return 1 + sum(count(v) for v in inner)

    assert count(sample.value) <= 30
    assert len(sample.value) == 10 and len(sample.value[0]) == 10  # breadth first: top first


def test_errors_inside_whole_subtrees_hold() -> None:
    schema = {"items": {"required": ["id"]}}
    payload = [{"x": 1}] * 10
    sample = take(payload, per_container=2, budget=100)

    found = errors_of(schema, sample.value)

    assert [list(e.instance_path) for e in found] == [[0], [1]]
    assert all(sample.holds(e, conditional=False) for e in found)


def test_what_cutting_makes_up_does_not_hold() -> None:
    payload = {"tags": list(range(10)), "a": 1, "b": 2, "c": 3}
    schema = {"required": ["c", "z"], "properties": {"tags": {"minItems": 5}}}
    sample = take(payload, per_container=3, budget=100)  # keeps tags, a, b: c is cut

    held = [e for e in errors_of(schema, sample.value) if sample.holds(e, conditional=False)]

    # "c" is missing from the sample only, and 3 tags are too few only in the sample
    assert [(list(e.instance_path), e.kind.property) for e in held] == [([], "z")]


def test_a_conditional_schema_trusts_no_cut_sample() -> None:
    schema = {"if": {"minProperties": 3}, "then": {"required": ["big"]}}
    assert has_conditionals(schema) and not has_conditionals({"properties": {"a": {}}})
    payload = {"a": 1, "b": 2, "c": 3}
    sample = take(payload, per_container=2, budget=100)
    (error,) = errors_of({"required": ["zz"]}, sample.value)
    assert not sample.holds(error, conditional=True)
    assert sample.holds(error, conditional=False)


def test_a_deep_payload_is_sampled_without_recursion() -> None:
    payload: Any = 1
    for _ in range(5000):
        payload = [payload]
    sample = take(payload, per_container=5, budget=100)
    assert sample.cut and () in sample.partial
