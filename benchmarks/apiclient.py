"""A small keep-alive client for the run's own requests (the load itself is ``loadgen``'s)."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from benchmarks.errors import BenchmarkError


class EventsClient:
    """``POST /api/v1/events`` over one reused connection."""

    def __init__(self, events_url: str, token: str) -> None:
        parts = urlsplit(events_url)
        self.path = parts.path
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._conn: http.client.HTTPConnection | None = None

    def send(self, name: str, payload: dict[str, Any]) -> list[str]:
        """Send one event; the execution ids it started. Anything but a 202 is an error."""
        body = json.dumps({"name": name, "payload": payload})
        for attempt in (1, 2):  # a keep-alive connection the server closed is opened again
            conn = self._conn or http.client.HTTPConnection(self.host, self.port, timeout=30)
            self._conn = conn
            try:
                conn.request("POST", self.path, body=body, headers=self.headers)
                response = conn.getresponse()
                answer = response.read()
            except (http.client.HTTPException, ConnectionError) as exc:
                self.close()
                if attempt == 2:
                    raise BenchmarkError(f"POST {self.path} failed: {exc}") from None
                continue
            if response.will_close:
                self.close()
            break
        if response.status != 202:
            raise BenchmarkError(f"POST {self.path} answered {response.status}: {answer[:300]!r}")
        data = json.loads(answer)["data"]
        return [route["execution_id"] for route in data["workflows"]]

    def close(self) -> None:
        """Close the connection (a new one opens on the next send)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
