"""Bearer tokens: authentication, scopes, event-name patterns and the tokens file."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.auth import Tokens, load_tokens, read_tokens_file, require_event, require_scope
from app.errors import Forbidden, Unauthorized
from workflows.errors import ConfigError
from workflows.settings import ApiToken

TOKENS = Tokens.of(
    [
        ApiToken("ci", "ci-secret"),
        ApiToken("orders", "orders-secret", frozenset({"events:write"}), ("order.*",)),
    ]
)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Bearer ci-secret", "ci"),
        ("bearer orders-secret", "orders"),
        ("Bearer   ci-secret  ", "ci"),
    ],
)
def test_authenticate_finds_the_token(header: str, name: str) -> None:
    assert TOKENS.authenticate(header).name == name


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing bearer token"),
        ("", "missing bearer token"),
        ("Bearer", "missing bearer token"),
        ("Basic ci-secret", "missing bearer token"),
        ("Bearer ci-secre", "invalid bearer token"),
        ("Bearer ci-secret-and-more", "invalid bearer token"),
    ],
)
def test_authenticate_refuses(header: str | None, message: str) -> None:
    with pytest.raises(Unauthorized, match=message) as caught:
        TOKENS.authenticate(header)
    assert caught.value.headers()["WWW-Authenticate"].startswith("Bearer")
    assert "secret" not in caught.value.message


def test_scopes_and_event_patterns() -> None:
    orders = TOKENS.authenticate("Bearer orders-secret")
    require_scope(orders, "events:write")
    require_event(orders, "order.created")
    with pytest.raises(Forbidden, match="events:read"):
        require_scope(orders, "events:read")
    with pytest.raises(Forbidden, match=r"user\.created"):
        require_event(orders, "user.created")
    everything = TOKENS.authenticate("Bearer ci-secret")
    require_scope(everything, "executions:write")
    require_event(everything, "anything.at.all")


def test_tokens_file_yaml_with_env_secret(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "- name: shop\n"
        "  token_env: SHOP_TOKEN\n"
        "  scopes: [events:write, events:read]\n"
        "  events: ['order.*', 'payment.*']\n"
        "- name: dash\n"
        "  token: dash-secret\n"
        "  scopes: [workflows:read]\n"
    )

    tokens = load_tokens([ApiToken("ci", "ci-secret")], path, {"SHOP_TOKEN": "shop-secret"})

    assert len(tokens) == 3
    shop = tokens.authenticate("Bearer shop-secret")
    assert shop.scopes == frozenset({"events:write", "events:read"})
    assert shop.events == ("order.*", "payment.*")
    assert tokens.authenticate("Bearer dash-secret").name == "dash"


def test_a_tokens_file_entry_without_scopes_may_only_send_events(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text("- {name: sender, token: s}\n")

    (sender,) = read_tokens_file(path, {})

    assert sender.scopes == frozenset({"events:write"})
    require_scope(sender, "events:write")
    for scope in ["events:read", "executions:read", "executions:write", "workflows:read"]:
        with pytest.raises(Forbidden, match=scope):
            require_scope(sender, scope)


def test_read_all_holds_read() -> None:
    auditor = ApiToken("auditor", "s", frozenset({"events:read:all", "executions:read:all"}))
    require_scope(auditor, "events:read")
    require_scope(auditor, "executions:read")
    with pytest.raises(Forbidden):
        require_scope(auditor, "executions:write")


def test_tokens_file_json(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text('[{"name": "a", "token": "s", "scopes": ["*"]}]')
    assert [t.name for t in read_tokens_file(path, {})] == ["a"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: x", "expected a list"),
        ("- just-a-string", "expected a mapping"),
        ("- {name: a, token: s, colour: red}", "unknown key.*colour"),
        ("- {token: s}", "`name` must be"),
        ("- {name: a}", "exactly one of `token` and `token_env`"),
        ("- {name: a, token: s, token_env: X}", "exactly one of"),
        ("- {name: a, token_env: UNSET_VARIABLE}", "token_env"),
        ("- {name: a, token: s, scopes: [events:delete]}", "unknown scope.*events:delete"),
        ("- {name: a, token: s, events: order.*}", "`events` must be a list"),
        ("- {name: a, token: s}\n- {name: a, token: t}", "configured twice"),
        ("- [unclosed", "not valid YAML"),
        ("- {name: " + "n" * 101 + ", token: s}", "longer than 100"),
        ("- {name: a, token: s, events: ['order.[ab]']}", r"pattern\(s\) 'order.\[ab\]'"),
    ],
)
def test_tokens_file_errors_say_what_and_where(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as caught:
        load_tokens([], path, {})
    message_names_the_file = str(path) in caught.value.message
    assert message_names_the_file or "token name" in caught.value.message


def test_missing_tokens_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the tokens file"):
        load_tokens([], tmp_path / "absent.yaml", {})


def test_token_repr_hides_the_secret() -> None:
    assert "ci-secret" not in repr(TOKENS)
