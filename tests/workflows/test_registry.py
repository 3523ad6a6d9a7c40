"""The trigger registry: subscribers per event name, payload validation with formats asserted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.workflows.conftest import MakeProject
from workflows import registry as registry_module
from workflows.errors import DefinitionError
from workflows.registry import Definitions, PayloadError, TriggerRegistry

VALID_ORDER: dict[str, Any] = {
    "orderId": "order_12345",
    "customerId": "customer_67890",
    "customerEmail": "customer@example.com",
    "items": [{"productId": "prod_001", "quantity": 1, "price": 99.99}],
    "totalAmount": 99.99,
}


@pytest.fixture
def seed_registry(seed_dir: Path) -> TriggerRegistry:
    return Definitions.load(seed_dir).registry


def test_every_workflow_subscribed_to_a_name_is_listed_in_a_stable_order(
    seed_registry: TriggerRegistry,
) -> None:
    subscribers = seed_registry.subscribers("order.created")

    assert [s.workflow.id for s in subscribers] == [
        "ecommerce-order-flow",
        "inventory-updater",
        "notification-sender",
        "order-processor",
    ]
    assert all(s.trigger.name == "order.created" for s in subscribers)
    assert seed_registry.names() == ("order.created", "product.updated", "user.created")


def test_a_name_nobody_subscribes_to_has_no_subscribers_and_no_errors(
    seed_registry: TriggerRegistry,
) -> None:
    assert seed_registry.subscribers("order.deleted") == ()
    assert seed_registry.validate("order.deleted", {"anything": 1}) == []


def test_the_seed_curl_payload_is_valid(seed_registry: TriggerRegistry) -> None:
    payload = {
        **VALID_ORDER,
        "items": [{**VALID_ORDER["items"][0], "name": "Wireless Headphones"}],
        "shippingAddress": {"street": "123 Main St", "city": "New York"},
    }

    assert seed_registry.validate("order.created", payload) == []


def test_every_error_of_every_subscriber_is_returned(seed_registry: TriggerRegistry) -> None:
    payload = {"orderId": "o_1", "items": [{"productId": "p", "quantity": 0}]}

    errors = seed_registry.validate("order.created", payload)

    assert sorted((e.workflow_id, e.path) for e in errors) == [
        ("ecommerce-order-flow", "/customerEmail"),
        ("ecommerce-order-flow", "/customerId"),
        ("ecommerce-order-flow", "/items/0/quantity"),
        ("ecommerce-order-flow", "/totalAmount"),
        ("order-processor", "/customerId"),
    ]
    by_path = {(e.workflow_id, e.path): e.message for e in errors}
    assert by_path[("order-processor", "/customerId")] == "customerId: required field is missing"
    assert by_path[("ecommerce-order-flow", "/items/0/quantity")] == (
        "items[0].quantity: 0 is less than the minimum of 1"
    )


def test_a_payload_of_the_wrong_type_is_an_error_at_the_root(
    seed_registry: TriggerRegistry,
) -> None:
    errors = seed_registry.validate("product.updated", ["not", "an", "object"])

    assert errors == [
        PayloadError("product-updater", "", "payload: must be an object, not an array")
    ]


def test_one_of_failures_show_the_best_match_and_long_values_are_cut(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            "wf.yaml": """\
                id: wf
                triggers:
                  - type: signal
                    name: pay.made
                    schema:
                      type: object
                      properties:
                        method:
                          oneOf:
                            - {type: object, properties: {card: {type: string}}, required: [card]}
                            - {type: object, properties: {iban: {type: string}}, required: [iban]}
                        note: {type: string, maxLength: 5}
                tasks:
                  - id: a
                    $use: tool(global::tools.#(id=="notify"))
                """
        }
    )
    registry = Definitions.load(root).registry

    errors = registry.validate("pay.made", {"method": {"card": 4}, "note": "x" * 10_000})

    assert [(e.path, e.message) for e in errors] == [
        ("/method/iban", "method.iban: required field is missing"),  # jsonschema's best match
        ("/note", errors[1].message),
    ]
    assert errors[1].message.startswith('note: "xxxx') and errors[1].message.endswith("...")
    assert len(errors[1].message) <= 210


def test_the_seed_email_format_is_asserted(seed_registry: TriggerRegistry) -> None:
    errors = seed_registry.validate("order.created", {**VALID_ORDER, "customerEmail": "nope"})

    assert [(e.workflow_id, e.path) for e in errors] == [("ecommerce-order-flow", "/customerEmail")]
    assert errors[0].message == 'customerEmail: "nope" is not a "email"'


FORMATS = [
    ("email", "customer@example.com", "customer@"),
    ("email", "a.b+c@mail.example.org", "no at sign"),
    ("email", "a@example.com", "a@b@example.com"),
    ("email", "a@mail.example", "a@localhost"),  # herald's check: the domain is dotted
    ("idn-email", "ü@example.com", "ü"),
    ("date-time", "2024-05-01T10:00:00Z", "2024-05-01 10:00"),
    ("date", "2024-05-01", "2024-13-01"),
    ("time", "10:00:00+02:00", "25:00"),
    ("duration", "P1DT2H", "1 day"),
    ("uri", "https://example.com/a?b=c", "example.com/no-scheme"),
    ("uri-reference", "/a/b#c", "\\\\bad"),
    ("iri", "https://例え.jp/パス", "no scheme"),
    ("iri-reference", "/パス#a", "\\\\bad"),
    ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567"),
    ("ipv4", "192.168.0.1", "192.168.0.256"),
    ("ipv6", "::1", "1:2:3"),
    ("hostname", "api.example.com", "-bad-.example.com"),
    ("idn-hostname", "例え.jp", "a" * 64 + ".jp"),
    ("json-pointer", "/items/0", "items/0"),
    ("relative-json-pointer", "0/items", "/items"),
    ("uri-template", "/orders/{id}", "/orders/{id"),
    ("regex", "^prod_[a-z]+$", "[unclosed"),
]


@pytest.mark.parametrize(("fmt", "good", "bad"), FORMATS, ids=[f"{f[0]}:{f[2]}" for f in FORMATS])
def test_format_is_asserted(make_project: MakeProject, fmt: str, good: str, bad: str) -> None:
    root = make_project(
        {
            "wf.yaml": f"""\
                id: wf
                triggers:
                  - type: signal
                    name: fmt.check
                    schema:
                      type: object
                      properties:
                        value: {{type: string, format: {fmt}}}
                tasks:
                  - id: a
                    $use: tool(global::tools.#(id=="notify"))
                """
        }
    )
    registry = Definitions.load(root).registry

    assert registry.validate("fmt.check", {"value": good}) == []
    (error,) = registry.validate("fmt.check", {"value": bad})
    assert (error.workflow_id, error.path) == ("wf", "/value")
    assert f'is not a "{fmt}"' in error.message


def test_every_format_python_jsonschema_checks_is_tested() -> None:
    # what the registry asserted before jsonschema_rs; email and idn-email are herald's own
    python_formats = set(Draft202012Validator.FORMAT_CHECKER.checkers) | {"email", "idn-email"}

    assert python_formats == {fmt for fmt, _, _ in FORMATS}


def test_unexpected_fields_are_pointed_at(make_project: MakeProject) -> None:
    root = make_project(
        {
            "wf.yaml": """\
                id: wf
                triggers:
                  - type: signal
                    name: strict.thing
                    schema:
                      type: object
                      properties: {a: {type: string}}
                      patternProperties: {"^x-": {}}
                      additionalProperties: false
                tasks:
                  - id: a
                    $use: tool(global::tools.#(id=="notify"))
                """
        }
    )
    registry = Definitions.load(root).registry

    errors = registry.validate("strict.thing", {"a": "ok", "x-trace": 1, "b": 2, "c": 3})

    assert errors == [
        PayloadError("wf", "/b", "b: unexpected field"),
        PayloadError("wf", "/c", "c: unexpected field"),
    ]


def test_pointer_segments_are_escaped(make_project: MakeProject) -> None:
    root = make_project(
        {
            "wf.yaml": """\
                id: wf
                triggers:
                  - type: signal
                    name: odd.keys
                    schema:
                      type: object
                      required: ["a/b~c"]
                tasks:
                  - id: a
                    $use: tool(global::tools.#(id=="notify"))
                """
        }
    )
    registry = Definitions.load(root).registry

    (error,) = registry.validate("odd.keys", {})

    assert error.path == "/a~1b~0c"


def test_validators_are_compiled_once_at_build(
    seed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[object] = []
    original = registry_module.compile_payload_schema

    def counting(schema: Any) -> Any:
        built.append(schema)
        return original(schema)

    monkeypatch.setattr(registry_module, "compile_payload_schema", counting)
    registry = Definitions.load(seed_dir).registry
    after_build = len(built)

    for _ in range(3):
        registry.validate("order.created", VALID_ORDER)
        registry.validate("order.created", {})

    assert after_build == 4  # one per trigger with a schema in the seed
    assert len(built) == after_build


def test_definitions_load_refuses_a_bad_project(make_project: MakeProject) -> None:
    root = make_project({"wf.yaml": "id: wf\ntasks: []\n"})

    with pytest.raises(DefinitionError):
        Definitions.load(root)


def test_definitions_bundle_the_project_and_its_registry(seed_dir: Path) -> None:
    definitions = Definitions.load(seed_dir)

    assert set(definitions.project.workflows) >= {"order-processor", "ecommerce-order-flow"}
    assert (
        definitions.registry.subscribers("product.updated")[0].workflow
        is (definitions.project.workflows["product-updater"])
    )


def test_refs_inside_a_trigger_schema_are_followed(make_project: MakeProject) -> None:
    root = make_project(
        {
            "wf.yaml": """\
                id: wf
                triggers:
                  - type: signal
                    name: cart.updated
                    schema:
                      type: object
                      properties:
                        items: {type: array, items: {$ref: "#/$defs/item"}}
                      $defs:
                        item:
                          type: object
                          properties: {quantity: {type: integer, minimum: 1}}
                tasks:
                  - id: a
                    $use: tool(global::tools.#(id=="notify"))
                """
        }
    )
    registry = Definitions.load(root).registry

    assert registry.validate("cart.updated", {"items": [{"quantity": 2}]}) == []
    assert registry.validate("cart.updated", {"items": [{"quantity": 0}]}) == [
        PayloadError(
            "wf", "/items/0/quantity", "items[0].quantity: 0 is less than the minimum of 1"
        )
    ]


def _one_trigger_project(make_project: MakeProject, schema_yaml: str) -> Path:
    """A project whose workflow ``wf`` (in ``wf.yaml``) has one trigger on ``thing.done``."""
    schema = "\n".join("      " + line for line in schema_yaml.strip().splitlines())
    return make_project(
        {
            "wf.yaml": (
                "id: wf\n"
                "triggers:\n"
                "  - type: signal\n"
                "    name: thing.done\n"
                "    schema:\n"
                f"{schema}\n"
                "tasks:\n"
                "  - id: a\n"
                '    $use: tool(global::tools.#(id=="notify"))\n'
            )
        }
    )


ANY_OF = [
    # (schema, value, path, message)
    (
        "{anyOf: [{type: string, format: email}, {type: 'null'}]}",
        "nope",
        "/value",
        'value: "nope" is not a "email"',  # the branch of the value's type, not "must be null"
    ),
    (
        "{oneOf: [{type: string}, {type: [integer, 'null']}]}",
        [1],
        "/value",
        "value: must be a string or an integer or null, not an array",  # every branch's type
    ),
    (
        "{anyOf: [{type: object, required: [a]}, {type: string, minLength: 3}]}",
        {"b": 1},
        "/value/a",
        "value.a: required field is missing",
    ),
]


@pytest.mark.parametrize(("schema", "value", "path", "message"), ANY_OF)
def test_any_of_failures_explain_the_branch_the_value_came_closest_to(
    make_project: MakeProject, schema: str, value: object, path: str, message: str
) -> None:
    root = _one_trigger_project(make_project, f"type: object\nproperties:\n  value: {schema}")
    registry = Definitions.load(root).registry

    assert registry.validate("thing.done", {"value": value}) == [PayloadError("wf", path, message)]


def test_unevaluated_fields_are_pointed_at_like_unexpected_ones(make_project: MakeProject) -> None:
    root = _one_trigger_project(
        make_project,
        "allOf: [{properties: {a: {type: string}}}]\nunevaluatedProperties: false",
    )
    registry = Definitions.load(root).registry

    assert registry.validate("thing.done", {"a": "ok", "b": 1}) == [
        PayloadError("wf", "/b", "b: unexpected field")
    ]


# patterns Python's re (the meta-schema's "regex" check) accepts, in no ECMA-262 dialect
UNCOMPILABLE = [r"^p_\d+\Z", "^a{,3}$", "(?>ab)c"]


@pytest.mark.parametrize("pattern", UNCOMPILABLE)
def test_a_schema_the_payload_validator_cannot_compile_is_a_load_error_with_its_line(
    make_project: MakeProject, pattern: str
) -> None:
    root = _one_trigger_project(
        make_project,
        f"type: object\nproperties:\n  sku:\n    type: string\n    pattern: '{pattern}'",
    )

    with pytest.raises(DefinitionError) as caught:
        Definitions.load(root)

    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == ("wf.yaml", 10)  # the `pattern:` line
    assert problem.path == "triggers[0].schema.properties.sku.pattern"
    assert 'is not a "regex"' in problem.message and "ECMA-262" in problem.message


def test_build_refuses_a_schema_it_cannot_compile_naming_the_trigger(seed_dir: Path) -> None:
    project = Definitions.load(seed_dir).project
    workflow = project.workflows["product-updater"]
    (trigger,) = workflow.triggers
    bad = replace(trigger, schema={"properties": {"sku": {"pattern": "a{,3}"}}})
    broken = replace(
        project, workflows={**project.workflows, workflow.id: replace(workflow, triggers=(bad,))}
    )

    with pytest.raises(DefinitionError) as caught:
        TriggerRegistry.build(broken)

    (problem,) = caught.value.problems
    assert trigger.location is not None
    assert (problem.file, problem.line) == (trigger.location.file, trigger.location.line)
    assert problem.path == "triggers[0].schema.properties.sku.pattern"


ITEMS_WORKFLOW = """\
    id: wf
    triggers:
      - type: signal
        name: cart.checked
        schema:
          type: object
          required: [cartId]
          properties:
            items:
              type: array
              items:
                type: object
                required: [productId, quantity, price]
                properties:
                  price: {type: number, minimum: 0}
    tasks:
      - id: a
        $use: tool(global::tools.#(id=="notify"))
    """


#: the most values a sample of a refused payload holds (4 x max(HERALD_MAX_ERRORS, 50))
SAMPLE_VALUES = 200
#: the most errors the validator builds to explain one, for this schema: 3 per value, + cartId
MOST_EXAMINED = SAMPLE_VALUES * 3 + 1


@pytest.fixture
def items_registry(make_project: MakeProject) -> TriggerRegistry:
    return Definitions.load(make_project({"wf.yaml": ITEMS_WORKFLOW})).registry


def test_30000_empty_items_give_20_errors_and_bounded_work(
    items_registry: TriggerRegistry,
) -> None:
    payload = {"items": [{} for _ in range(30_000)]}  # 90,001 errors in all

    (refusal,) = items_registry.refusals("cart.checked", payload)

    assert len(refusal.errors) == 20
    assert refusal.errors[0] == PayloadError("wf", "/cartId", "cartId: required field is missing")
    assert refusal.errors[1].path == "/items/0/productId"
    assert refusal.more > 0 and refusal.exact is False  # "at least this many more"
    assert refusal.examined <= MOST_EXAMINED  # the sample's errors, not the payload's 90,001


def test_a_small_payload_is_counted_exactly(items_registry: TriggerRegistry) -> None:
    payload = {"cartId": "c", "items": [{} for _ in range(10)]}  # 30 errors

    (refusal,) = items_registry.refusals("cart.checked", payload, max_errors=5)

    assert len(refusal.errors) == 5
    assert (refusal.more, refusal.exact, refusal.examined) == (25, True, 30)
    assert items_registry.validate("cart.checked", payload, max_errors=5) == list(refusal.errors)


def test_an_error_past_the_sample_is_still_found(items_registry: TriggerRegistry) -> None:
    fine = {"productId": "p", "quantity": 1, "price": 1}
    payload = {"cartId": "c", "items": [fine] * 29_999 + [{**fine, "price": -1}]}

    (refusal,) = items_registry.refusals("cart.checked", payload)

    assert [e.path for e in refusal.errors] == ["/items/29999/price"]
    assert refusal.exact is False and refusal.examined <= MOST_EXAMINED


def test_a_cut_object_reports_no_required_field_it_has(make_project: MakeProject) -> None:
    root = make_project(
        {
            "wf.yaml": ITEMS_WORKFLOW.replace("required: [cartId]", "required: [k99, missing]"),
        }
    )
    registry = Definitions.load(root).registry
    payload = {f"k{i}": i for i in range(120)}  # more keys than a sample keeps

    (refusal,) = registry.refusals("cart.checked", payload)

    assert [e.path for e in refusal.errors] == ["/missing"]


def test_a_conditional_schema_trusts_no_cut_sample(make_project: MakeProject) -> None:
    # whether `then` applies depends on the whole list: a sample could say otherwise
    conditional = ITEMS_WORKFLOW.replace(
        "required: [cartId]",
        "required: [cartId]\n          if: {properties: {items: {minItems: 100}}}\n"
        "          then: {required: [bulkDiscount]}",
    )
    registry = Definitions.load(make_project({"wf.yaml": conditional})).registry
    fine = {"productId": "p", "quantity": 1, "price": 1}

    small = registry.validate("cart.checked", {"cartId": "c", "items": [fine] * 60})
    large = registry.refusals("cart.checked", {"cartId": "c", "items": [fine] * 150})

    assert small == []  # 60 items: `then` does not apply
    (refusal,) = large
    assert [e.path for e in refusal.errors] == ["/bulkDiscount"]


def test_long_keys_are_cut_in_paths_and_messages(items_registry: TriggerRegistry) -> None:
    key = "k" * 50_000
    (refusal,) = items_registry.refusals("cart.checked", {"cartId": "c", "items": {key: 1}})
    (error,) = refusal.errors
    assert error.path == "/items" and len(error.message) <= 300
