"""The examples: their definitions load, the seed's event fits them, their tools do what they say.

The tools are called directly here (as the worker's Python tool runtime calls
them: ``run(input, context)``); ``tests/herald/test_dev.py`` runs them through herald.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sqlite3
from collections.abc import Callable
from email import message_from_bytes
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support import SEED_ORDER
from workflows.registry import Definitions

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: the seed's "Complete Order Processing System" event, verbatim
SEED_EVENT: dict[str, Any] = {
    "name": "order.created",
    "payload": SEED_ORDER,
}


def tool(relative: str) -> ModuleType:
    """Import an example tool from its file, as the worker does."""
    path = EXAMPLES / relative
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ctx(key: str) -> dict[str, Any]:
    """The context the worker passes to a Python tool."""
    return {
        "idempotency_key": key,
        "execution_id": "exe_1",
        "task_id": "t",
        "visit": 1,
        "attempt": 1,
    }


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private outbox for the tools (through ``EXAMPLES_OUTBOX``)."""
    monkeypatch.setenv("EXAMPLES_OUTBOX", str(tmp_path / "outbox"))
    return tmp_path / "outbox"


# --- definitions ---------------------------------------------------------------------------


def test_examples_load_and_both_subscribe_to_order_created() -> None:
    defs = Definitions.load(EXAMPLES)
    assert set(defs.project.workflows) == {"order-processor", "notification-sender"}
    assert defs.project.warnings == ()
    subscribers = {s.workflow.id for s in defs.registry.subscribers("order.created")}
    assert subscribers == {"order-processor", "notification-sender"}
    assert defs.project.models["gpt-4o"].provider == "mock"


def test_the_seed_event_fits_every_subscriber() -> None:
    defs = Definitions.load(EXAMPLES)
    assert defs.registry.validate("order.created", SEED_EVENT["payload"]) == []


@pytest.mark.parametrize(
    ("change", "workflow", "path"),
    [
        (lambda p: p.pop("customerEmail"), "order-processor", "/customerEmail"),
        (lambda p: p.pop("customerEmail"), "notification-sender", "/customerEmail"),
        (lambda p: p.pop("shippingAddress"), "order-processor", "/shippingAddress"),
        (lambda p: p.update(customerEmail="not-an-email"), "order-processor", "/customerEmail"),
        (lambda p: p["items"][0].update(quantity=0), "order-processor", "/items/0/quantity"),
        (lambda p: p.update(items=[]), "order-processor", "/items"),
    ],
)
def test_a_bad_order_is_refused_naming_the_field(
    change: Callable[[dict[str, Any]], Any], workflow: str, path: str
) -> None:
    payload = copy.deepcopy(SEED_EVENT["payload"])
    change(payload)
    errors = Definitions.load(EXAMPLES).registry.validate("order.created", payload)
    assert (workflow, path) in {(e.workflow_id, e.path) for e in errors}


def test_herald_validate_accepts_the_examples() -> None:
    from herald.cli import cli

    result = CliRunner().invoke(cli, ["validate", "--project", str(EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert "order-processor" in result.output
    assert "notification-sender" in result.output


# --- the seed's curl, everywhere it is shown ------------------------------------------------


def curl_bodies(markdown: Path) -> list[Any]:
    """The JSON bodies (``-d '...'``) of the curls in a README."""
    return [json.loads(body) for body in re.findall(r"-d '(\{.*?\})'", markdown.read_text(), re.S)]


@pytest.mark.parametrize(
    "readme",
    ["README.md", "examples/order-processor/README.md", "examples/notification-sender/README.md"],
)
def test_every_readme_shows_the_seed_curl(readme: str) -> None:
    text = (ROOT / readme).read_text()
    assert "curl -X POST http://localhost:8080/api/v1/events" in text
    assert '-H "Authorization: Bearer test-token"' in text
    assert curl_bodies(ROOT / readme) == [SEED_EVENT]


def test_the_sample_event_file_is_the_seed_event() -> None:
    sample = EXAMPLES / "order-processor" / "event.json"
    assert json.loads(sample.read_text()) == SEED_EVENT


# --- tools ------------------------------------------------------------------------------------


def test_email_is_written_as_eml_once_per_idempotency_key(outbox: Path) -> None:
    send_email = tool("tools/send_email.py")
    given = {
        "recipient": "customer@example.com",
        "subject": "Order Confirmation - order_12345",
        "template": "order_confirmation",
        "message": "See you soon.",
        "items": SEED_EVENT["payload"]["items"],
        "data": {"tracking": "HRLD1"},
    }
    first = send_email.run(given, ctx("exe_1:send-confirmation:1"))
    again = send_email.run(given, ctx("exe_1:send-confirmation:1"))
    files = list((outbox / "email").glob("*.eml"))
    assert len(files) == 1 and first["path"] == again["path"] == str(files[0])
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    mail = message_from_bytes(files[0].read_bytes())
    assert mail["To"] == "customer@example.com"
    assert mail["Subject"] == "Order Confirmation - order_12345"
    body = mail.get_payload(decode=True).decode()
    assert "See you soon." in body and "Wireless Headphones" in body and "HRLD1" in body


def test_email_shows_the_error_that_led_to_it(outbox: Path) -> None:
    send_email = tool("tools/send_email.py")
    item_error = {
        "type": "tool_error",
        "message": "tool 'reserve-item' raised OutOfStock: not enough stock for prod_003",
        "exception": "OutOfStock",
    }
    error = {  # the reserve-stock collection's error: each failed item's
        "type": "collection_failed",
        "message": "collection 'reserve-stock': 1 of 2 item(s) failed (indexes 1)",
        "failed": {"1": item_error},
    }
    result = send_email.run(
        {
            "recipient": "a@b.example",
            "subject": "Inventory Issue",
            "template": "inventory_error",
            "error": error,
        },
        ctx("k"),
    )
    body = message_from_bytes(Path(result["path"]).read_bytes()).get_payload(decode=True)
    assert "What went wrong: not enough stock for prod_003\n" in body.decode()  # no internals


def test_email_with_an_unknown_template_is_an_error(outbox: Path) -> None:
    with pytest.raises(ValueError, match="unknown email template 'nope'"):
        tool("tools/send_email.py").run(
            {"recipient": "a@b.example", "subject": "s", "template": "nope"}, ctx("k")
        )


def test_with_outbox_overrides_the_environment(outbox: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    tool("notification-sender/tools/send_sms.py").run(
        {"to": "customer_1", "text": "hi", "outbox": str(elsewhere)}, ctx("k")
    )
    assert list((elsewhere / "sms").glob("*.json")) and not outbox.exists()


def test_the_default_outbox_is_examples_dot_outbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXAMPLES_OUTBOX", raising=False)
    for relative in (
        "tools/send_email.py",
        "order-processor/tools/reserve_item.py",
        "notification-sender/tools/send_push.py",
    ):
        assert tool(relative).outbox_dir({}) == EXAMPLES / ".outbox"


def stock(outbox: Path, product: str) -> int:
    with sqlite3.connect(outbox / "stock.sqlite3") as conn:
        row = conn.execute("SELECT on_hand FROM stock WHERE product_id = ?", (product,)).fetchone()
    return int(row[0])


def test_inventory_reserves_each_item_once_and_releases_the_order(outbox: Path) -> None:
    reserve = tool("order-processor/tools/reserve_item.py")
    release = tool("order-processor/tools/release_inventory.py")
    first = {"order_id": "o_1", "product_id": "prod_001", "quantity": 2}
    second = {"order_id": "o_1", "product_id": "prod_002", "quantity": 3}
    reserve.run(first, ctx("exe_1:reserve-stock[0]:1"))
    reserve.run(first, ctx("exe_1:reserve-stock[0]:1"))  # a retry: no second reservation
    reserve.run(second, ctx("exe_1:reserve-stock[1]:1"))
    assert (stock(outbox, "prod_001"), stock(outbox, "prod_002")) == (23, 97)
    released = release.run({"order_id": "o_1", "reason": "no ship"}, ctx("r"))
    release.run({"order_id": "o_1"}, ctx("r"))  # twice: given back once
    assert len(released["released"]) == 2 and released["reason"] == "no ship"
    assert (stock(outbox, "prod_001"), stock(outbox, "prod_002")) == (25, 100)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"product_id": "prod_003", "quantity": 1}, r"prod_003 \(wanted 1, 0 in stock\)"),
        ({"product_id": "prod_999", "quantity": 1}, r"prod_999 \(wanted 1, 0 in stock\)"),
        ({"product_id": "prod_001", "quantity": 26}, r"prod_001 \(wanted 26, 25 in stock\)"),
    ],
)
def test_inventory_refuses_an_item_it_cannot_reserve_and_reserves_nothing(
    outbox: Path, item: dict[str, Any], message: str
) -> None:
    reserve = tool("order-processor/tools/reserve_item.py")
    with pytest.raises(reserve.OutOfStock, match=message):
        reserve.run({"order_id": "o", **item}, ctx("k"))
    assert stock(outbox, "prod_001") == 25


def test_customs_declares_every_item_with_its_value(outbox: Path) -> None:
    customs = tool("order-processor/tools/prepare_customs.py")
    items = [{"productId": "p", "name": "Cable", "quantity": 2, "price": 5.5}]
    done = customs.run({"order_id": "o_de", "country": "de", "items": items}, ctx("k"))
    assert done["value"] == 11.0
    text = (outbox / "customs" / "o_de.txt").read_text()
    assert "DESTINATION DE" in text and "2 x Cable: 11.00" in text


def test_shipping_writes_a_label_with_a_stable_tracking_number(outbox: Path) -> None:
    ship = tool("order-processor/tools/arrange_shipping.py")
    given = {
        "order_id": "order_12345",
        "address": SEED_EVENT["payload"]["shippingAddress"],
        "items": SEED_EVENT["payload"]["items"],
    }
    first, again = ship.run(given, ctx("k")), ship.run(given, ctx("k2"))
    assert first["tracking"] == again["tracking"] and first["cost"] == 0.0  # free above 50 in US
    label = (outbox / "shipping" / "order_12345.txt").read_text()
    assert first["tracking"] in label and "123 Main St" in label


@pytest.mark.parametrize(
    ("address", "message"),
    [
        (
            {"street": "1 Chome", "city": "Tokyo", "zipCode": "100", "country": "JP"},
            "we do not ship to JP",
        ),
        (
            {"street": "", "city": "Paris", "zipCode": "75001", "country": "FR"},
            "the shipping address has no street",
        ),
    ],
)
def test_shipping_refuses_an_address_it_cannot_serve(
    outbox: Path, address: dict[str, str], message: str
) -> None:
    ship = tool("order-processor/tools/arrange_shipping.py")
    with pytest.raises(ship.CannotShip, match=message):
        ship.run({"order_id": "o", "address": address, "items": []}, ctx("k"))


def test_payment_is_recorded_once_per_idempotency_key(outbox: Path) -> None:
    pay = tool("order-processor/tools/process_payment.py")
    given = {"amount": 99.99, "customer_id": "customer_67890", "order_id": "order_12345"}
    first = pay.run(given, ctx("exe_1:process-payment-step:1"))
    again = pay.run(given, ctx("exe_1:process-payment-step:1"))
    assert first["payment_id"] == again["payment_id"] and again["duplicate"] is True
    with sqlite3.connect(outbox / "payments.sqlite3") as conn:
        assert conn.execute("SELECT count(*), sum(amount) FROM payments").fetchone() == (1, 99.99)


@pytest.mark.parametrize(("amount", "message"), [(9999, "card declined"), (0, "must be positive")])
def test_payment_declines(outbox: Path, amount: float, message: str) -> None:
    pay = tool("order-processor/tools/process_payment.py")
    with pytest.raises(pay.PaymentDeclined, match=message):
        pay.run({"amount": amount, "customer_id": "c", "order_id": "o"}, ctx("k"))


def test_sms_and_push_land_in_their_outboxes(outbox: Path) -> None:
    sms = tool("notification-sender/tools/send_sms.py")
    push = tool("notification-sender/tools/send_push.py")
    sms.run({"to": "customer_67890", "text": "Order received."}, ctx("a"))
    push.run(
        {
            "user": "customer_67890",
            "title": "Order received",
            "body": "b",
            "data": {"orderId": "order_12345"},
        },
        ctx("b"),
    )
    [text] = [json.loads(p.read_text()) for p in (outbox / "sms").glob("*.json")]
    [note] = [json.loads(p.read_text()) for p in (outbox / "push").glob("*.json")]
    assert text == {"to": "customer_67890", "text": "Order received."}
    assert note["data"] == {"orderId": "order_12345"} and note["title"] == "Order received"


def test_sms_longer_than_one_message_is_refused(outbox: Path) -> None:
    with pytest.raises(ValueError, match="an SMS holds 160 characters; this one has 161"):
        tool("notification-sender/tools/send_sms.py").run({"to": "c", "text": "x" * 161}, ctx("k"))


# --- the README names only what exists ----------------------------------------------------------


def test_the_readme_names_only_make_targets_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    named = set(re.findall(r"`make ([a-z-]+)", readme)) | set(
        re.findall(r"^make ([a-z-]+)", readme, re.M)
    )
    assert {"dev", "test"} <= named
    assert named <= targets, f"README names missing targets: {named - targets}"


def test_the_readme_names_only_herald_commands_that_exist() -> None:
    from herald.cli import cli

    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`(?:\.venv/bin/)?herald (db upgrade|[a-z]+)", readme))
    commands = set(cli.commands) | {"db upgrade"}
    assert {"dev", "serve", "worker", "sweep", "validate", "db upgrade"} <= named
    assert named <= commands, f"README names missing commands: {named - commands}"


@pytest.mark.parametrize(
    "markdown",
    [
        "README.md",
        "docs/deploy.md",
        "examples/order-processor/README.md",
        "examples/notification-sender/README.md",
    ],
)
def test_local_links_point_at_files_that_exist(markdown: str) -> None:
    source = ROOT / markdown
    links = re.findall(r"\]\(([^)#]+)\)", source.read_text())
    local = [link for link in links if "://" not in link]
    missing = [link for link in local if not (source.parent / link).exists()]
    assert not missing, f"{markdown} links to missing files: {missing}"
