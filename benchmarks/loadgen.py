"""The load generator: ``concurrency`` keep-alive HTTP clients POSTing events for a while.

It runs as its own process (``python -m benchmarks.loadgen``), so the API is
measured from outside, as a client sees it. Plain asyncio streams keep the
client's own cost per request small on a machine it shares with the server.
Latency is measured per request from writing it (or connecting, when the server
closed the connection) to having read the whole answer.

Output (``--out``, JSON): ``latencies_ms`` of the requests that finished inside
the measured window, ``statuses`` counted over the whole run (warm-up included:
that is what the database must hold), ``errors`` and ``seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Tally:
    """What the clients saw."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def build_request(url: str, token: str, body: bytes) -> tuple[str, int, bytes]:
    """Host, port and the bytes of one ``POST`` to ``url``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the load generator speaks plain http, not {url!r}")
    port = parts.port or 80
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\n"
        f"Host: {parts.hostname}:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return parts.hostname, port, head.encode("ascii") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    keep = version == "HTTP/1.1" and headers.get("connection") != "close"
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    else:
        await reader.read()
        keep = False
    return int(status), keep


async def client(
    host: str, port: int, request: bytes, window: tuple[float, float], tally: Tally
) -> None:
    """Send requests one after the other until the window closes."""
    measure_from, until = window
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while (start := time.perf_counter()) < until:
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            status, keep = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.errors[type(exc).__name__] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        end = time.perf_counter()
        tally.statuses[status] += 1
        if start >= measure_from and end <= until:
            tally.latencies_ms.append((end - start) * 1000)
        if not keep:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def generate(
    url: str, token: str, body: bytes, concurrency: int, seconds: float, warmup: float
) -> Tally:
    """Run ``concurrency`` clients for ``warmup + seconds``; latencies from after the warm-up."""
    host, port, request = build_request(url, token, body)
    tally = Tally()
    now = time.perf_counter()
    window = (now + warmup, now + warmup + seconds)
    await asyncio.gather(*(client(host, port, request, window, tally) for _ in range(concurrency)))
    return tally


def main(argv: Sequence[str] | None = None) -> None:
    """Generate load and write what the clients saw as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    parser.add_argument("--url", required=True, help="http://host:port/api/v1/events")
    parser.add_argument("--token", required=True)
    parser.add_argument("--body", required=True, help="the JSON request body")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    body = args.body.encode()
    tally = asyncio.run(
        generate(args.url, args.token, body, args.concurrency, args.seconds, args.warmup)
    )
    result = {
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "latencies_ms": tally.latencies_ms,
        "statuses": {str(k): v for k, v in tally.statuses.items()},
        "errors": dict(tally.errors),
    }
    args.out.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
