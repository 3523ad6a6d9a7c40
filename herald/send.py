"""`herald send NAME [JSON|@file]`: POST an event to a running API and print the answer.

`--dry-run` asks what would run without storing anything; `--batch FILE.jsonl`
sends one event per line (`{"name": ..., "payload": ..., "id": ...}`) through
`POST /api/v1/events/batch`, at most `--batch-size` a request.
"""

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


def read_batch(path: str) -> list[dict[str, Any]]:
    """The events of a JSON Lines file (``-``: standard input), one object a line."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    events = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"{path}:{number}: not valid JSON: {exc}") from None
        if not isinstance(event, dict):
            raise click.BadParameter(f"{path}:{number}: each line must be a JSON object")
        events.append(event)
    if not events:
        raise click.BadParameter(f"{path}: no events in the file")
    return events


def post_event(
    url: str, token: str | None, body: Any, path: str = "/api/v1/events"
) -> tuple[int, Any]:
    """POST ``body`` to ``url`` + ``path``; the status and the decoded answer."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url.rstrip("/") + path,
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
@click.argument("name", required=False)
@click.argument("payload", required=False)
@click.option("--url", default=None, help=f"The API's base URL [HERALD_URL, else {DEFAULT_URL}].")
@click.option("--token", default=None, help="Bearer token [HERALD_TOKEN, else HERALD_API_TOKENS].")
@click.option("--id", "key", default=None, help="Idempotency key: sending it again is a no-op.")
@click.option(
    "--dry-run", is_flag=True, help="Validate and route only: what would run, nothing stored."
)
@click.option(
    "--batch",
    "batch_file",
    default=None,
    help="Send the events of a JSON Lines file (- for stdin), one object a line.",
)
@click.option(
    "--batch-size", default=500, show_default=True, type=click.IntRange(1), help="Events a request."
)
def command(
    name: str | None,
    payload: str | None,
    url: str | None,
    token: str | None,
    key: str | None,
    dry_run: bool,
    batch_file: str | None,
    batch_size: int,
) -> None:
    """Send event NAME with PAYLOAD (JSON, @file or @- for stdin) and print the answer."""
    if batch_file is not None and (name or payload or key or dry_run):
        raise click.UsageError("--batch takes its events from the file: no NAME, PAYLOAD, --id")
    if batch_file is None and not name:
        raise click.UsageError("give the event's NAME (or --batch FILE.jsonl)")
    try:
        secret = token or default_token()
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    base = url or os.environ.get("HERALD_URL") or DEFAULT_URL
    if batch_file is not None:
        events = read_batch(batch_file)
        failed = False
        for start in range(0, len(events), batch_size):
            chunk = {"events": events[start : start + batch_size]}
            status, answer = _post(base, secret, chunk, "/api/v1/events/batch")
            _echo(status, answer)
            refused = isinstance(answer, dict) and answer.get("data", {}).get("refused", 0)
            failed = failed or not 200 <= status < 300 or bool(refused)
        if failed:
            sys.exit(1)
        return
    assert name is not None
    body: dict[str, Any] = {"name": name, "payload": read_payload(payload)}
    if key is not None:
        body["id"] = key
    path = "/api/v1/events?dry_run=true" if dry_run else "/api/v1/events"
    status, answer = _post(base, secret, body, path)
    _echo(status, answer)
    if not 200 <= status < 300:
        sys.exit(1)


def _post(base: str, secret: str | None, body: Any, path: str) -> tuple[int, Any]:
    try:
        return post_event(base, secret, body, path)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(f"cannot reach the herald API at {base}: {reason}") from None


def _echo(status: int, answer: Any) -> None:
    text = answer if isinstance(answer, str) else json.dumps(answer, indent=2)
    click.echo(f"HTTP {status}")
    click.echo(text)
