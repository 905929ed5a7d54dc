"""A small closed-loop HTTP/1.1 load generator, used when ``wrk`` is not installed.

``CONNECTIONS`` keep-alive connections each send one request, read the whole
response, and send the next, for ``DURATION`` seconds: the same model as wrk
with one thread. It prints one JSON line in the shape ``run.py`` reads from
wrk, so the two are interchangeable. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Tally:
    """What every connection records; latencies in seconds."""

    latencies: list[float] = field(default_factory=list)
    status_errors: int = 0
    read_errors: int = 0
    connect_errors: int = 0


def build_request(method: str, path: str, port: int, body: bytes, authorization: str = "") -> bytes:
    """The raw request, built once and sent as-is on every iteration."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: */*"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response completely (Content-Length or chunked) and return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def connection(port: int, request: bytes, deadline: float, tally: Tally) -> None:
    """One keep-alive connection, requesting until ``deadline``."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        tally.connect_errors += 1
        return
    try:
        while True:
            start = time.perf_counter()
            if start >= deadline:
                break
            writer.write(request)
            try:
                status = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                tally.read_errors += 1
                break
            tally.latencies.append(time.perf_counter() - start)
            if not 200 <= status < 400:
                tally.status_errors += 1
    finally:
        writer.close()


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


async def run(
    url: str, method: str, body: bytes, connections: int, duration: float, authorization: str = ""
) -> dict:
    """Drive the load and summarise it like wrk's ``done`` callback does."""
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise SystemExit("the load generator only talks to 127.0.0.1")
    port = parts.port or 80
    request = build_request(method, parts.path or "/", port, body, authorization)
    tally = Tally()
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(connection(port, request, deadline, tally) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    ordered = sorted(tally.latencies)
    us = 1_000_000
    return {
        "requests": len(ordered),
        "duration_us": int(elapsed * us),
        "p50_us": int(percentile(ordered, 0.50) * us),
        "p90_us": int(percentile(ordered, 0.90) * us),
        "p99_us": int(percentile(ordered, 0.99) * us),
        "max_us": int((ordered[-1] if ordered else 0.0) * us),
        "errors": {
            "connect": tally.connect_errors,
            "read": tally.read_errors,
            "write": 0,
            "status": tally.status_errors,
            "timeout": 0,
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--authorization", default="", help="an Authorization header value")
    args = parser.parse_args()
    summary = asyncio.run(
        run(
            args.url,
            args.method,
            args.body.encode(),
            args.connections,
            args.duration,
            args.authorization,
        )
    )
    print("BENCH_JSON " + json.dumps(summary))
