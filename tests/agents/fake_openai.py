"""A scriptable Chat Completions server on loopback, for testing the openai provider.

``FakeOpenAI`` runs a tiny ``http.server`` in a thread and answers
``POST /v1/chat/completions`` in the OpenAI wire format. Each test scripts the
replies it needs (``server.script(Reply(status=429), Reply(content="{}"))``);
when the script is empty, ``server.default`` answers (by default: an assistant
message ``"ok"``). Every request is recorded with its headers and JSON body.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    #: the assistant's message content (for a 200)
    content: str = "ok"
    #: the error message (for a non-200), sent as ``{"error": {"message": ...}}``
    error: str = "scripted failure"
    #: a whole JSON body that replaces the generated one
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds to wait before answering (cut short when the server closes)
    delay: float = 0.0
    prompt_tokens: int = 11
    completion_tokens: int = 7


@dataclass(frozen=True)
class Recorded:
    """A request the server received."""

    path: str
    #: header names in lower case
    headers: dict[str, str]
    body: Any


class FakeOpenAI:
    """The server; use as a context manager or call :meth:`close`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.default: Callable[[Any], Reply] = lambda body: Reply()
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        """The ``base_url`` to configure a model with."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order."""
        with self._lock:
            self._script.extend(replies)

    def next_reply(self, body: Any) -> Reply:
        """The scripted reply, or the default one when the script is used up."""
        with self._lock:
            if self._script:
                return self._script.popleft()
        return self.default(body)

    def wait(self, seconds: float) -> None:
        """Hang for ``seconds``, or until the server closes."""
        self._closing.wait(seconds)

    def close(self) -> None:
        """Release hanging requests, stop serving, free the port."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def completion_body(model: str, reply: Reply) -> dict[str, Any]:
    """A ``chat.completion`` object carrying ``reply.content``."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


def _handler_for(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            body = json.loads(raw) if raw else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append(Recorded(self.path, headers, body))
            reply = server.next_reply(body)
            if reply.delay:
                server.wait(reply.delay)
            if reply.body is not None:
                payload: Any = reply.body
            elif reply.status == 200:
                payload = completion_body(str((body or {}).get("model", "")), reply)
            else:
                payload = {"error": {"message": reply.error, "type": "fake", "code": None}}
            data = json.dumps(payload).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (its timeout); nothing to answer to

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: tests read ``server.requests`` instead."""

    return Handler
