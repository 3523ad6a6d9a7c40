"""`herald send NAME [JSON|@file]`: POST an event to a running API and print the answer."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from workflows.errors import ConfigError
from workflows.settings import parse_tokens

DEFAULT_URL = "http://127.0.0.1:8080"


def default_token(environ: dict[str, str] | None = None) -> str | None:
    """``HERALD_TOKEN``, else the first entry of ``HERALD_API_TOKENS``."""
    env = dict(os.environ) if environ is None else environ
    if env.get("HERALD_TOKEN"):
        return env["HERALD_TOKEN"]
    if env.get("HERALD_API_TOKENS"):
        tokens = parse_tokens(env["HERALD_API_TOKENS"])
        return tokens[0].secret if tokens else None
    return None


def read_payload(arg: str | None) -> Any:
    """The payload argument: inline JSON, ``@file`` or ``@-`` (standard input); ``{}`` if none."""
    if arg is None:
        return {}
    if arg.startswith("@"):
        source = arg[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(f"cannot read {source}: {exc.strerror}") from None
    else:
        text = arg
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"the payload is not valid JSON: {exc}") from None


def post_event(url: str, token: str | None, body: dict[str, Any]) -> tuple[int, Any]:
    """POST ``body`` to ``url``/api/v1/events; the status and the decoded answer."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url.rstrip("/") + "/api/v1/events",
        data=json.dumps(body).encode("utf-8"),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _decode(exc.read())


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


@click.command("send")
@click.argument("name")
@click.argument("payload", required=False)
@click.option("--url", default=None, help=f"The API's base URL [HERALD_URL, else {DEFAULT_URL}].")
@click.option("--token", default=None, help="Bearer token [HERALD_TOKEN, else HERALD_API_TOKENS].")
@click.option("--id", "key", default=None, help="Idempotency key: sending it again is a no-op.")
def command(
    name: str, payload: str | None, url: str | None, token: str | None, key: str | None
) -> None:
    """Send event NAME with PAYLOAD (JSON, @file or @- for stdin) and print the answer."""
    body: dict[str, Any] = {"name": name, "payload": read_payload(payload)}
    if key is not None:
        body["id"] = key
    try:
        secret = token or default_token()
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    base = url or os.environ.get("HERALD_URL") or DEFAULT_URL
    try:
        status, answer = post_event(base, secret, body)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(f"cannot reach the herald API at {base}: {reason}") from None
    text = answer if isinstance(answer, str) else json.dumps(answer, indent=2)
    click.echo(f"HTTP {status}")
    click.echo(text)
    if not 200 <= status < 300:
        sys.exit(1)
