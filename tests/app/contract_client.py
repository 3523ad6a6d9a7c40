"""A client written only from the Events API contract (DESIGN.md), on the standard library.

It knows nothing of herald's code: if it works against a real server, the
server keeps the contract that existing clients rely on.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ApiFailure(Exception):
    """A non-2xx answer: its status, the envelope's error code, message, details, headers."""

    status: int
    code: str
    message: str
    details: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class EventsClient:
    """POST /api/v1/events and the read side, with a bearer token."""

    base_url: str
    token: str | None

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        sent = {"Accept": "application/json", **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=sent, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            envelope = json.loads(exc.read())
            assert envelope["success"] is False
            error = envelope["error"]
            raise ApiFailure(
                exc.code, error["code"], error["message"], error["details"], dict(exc.headers)
            ) from None

    def send(
        self,
        name: str,
        payload: dict[str, Any] | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send an event; the 202 answer (``event_id``, ``data.workflows``, ``data.duplicate``)."""
        body: dict[str, Any] = {"name": name}
        if payload is not None:
            body["payload"] = payload
        if key is not None:
            body["id"] = key
        status, _, answer = self._request("POST", "/api/v1/events", body, headers)
        assert status == 202 and answer["success"] is True
        assert answer["event_id"] == answer["data"]["event_id"]
        result: dict[str, Any] = answer
        return result

    def send_raw(self, raw: bytes, content_type: str) -> dict[str, Any]:
        """Send a body as is (to check the refusals of malformed input)."""
        _, _, answer = self._request(
            "POST", "/api/v1/events", raw=raw, headers={"Content-Type": content_type}
        )
        result: dict[str, Any] = answer
        return result

    def event(self, event_id: str) -> dict[str, Any]:
        """GET /api/v1/events/<id>: the event."""
        _, _, answer = self._request("GET", f"/api/v1/events/{urllib.parse.quote(event_id)}")
        result: dict[str, Any] = answer["data"]
        return result

    def events(self, **filters: Any) -> list[dict[str, Any]]:
        """Every event matching ``filters``, following ``next_cursor`` page by page."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**filters, **({"cursor": cursor} if cursor else {})}
            path = "/api/v1/events?" + urllib.parse.urlencode(query)
            _, _, answer = self._request("GET", path)
            found += answer["data"]["events"]
            cursor = answer["data"]["next_cursor"]
            if not cursor:
                return found

    def health(self) -> tuple[int, dict[str, Any]]:
        """GET /health: status code and body (a 503 is an answer, not a failure)."""
        try:
            status, _, body = self._request("GET", "/health")
        except ApiFailure as exc:
            return exc.status, {}
        return status, body
