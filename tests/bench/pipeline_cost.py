"""CPU per request of the platform's pipeline against bare Quart, with no server and no load.

``python -m tests.bench.pipeline_cost`` builds both apps in this one process (the platform
exactly as ``make bench`` configures it: every family of ``plugins.toml`` plus the ``bench``
family), starts them, and calls each app's ASGI entry point directly, ``--requests`` times
per round, for ``GET /``, ``POST /bench/echo`` and ``GET /healthz``. A round's figure is the
process CPU time it took divided by its requests; each figure printed is the median over
``--rounds`` rounds, whose order of apps alternates. No socket, parser or load generator is
involved, so what is left is the app's own pipeline, and a busy machine moves the figures far
less than it moves a throughput: the number to watch when the platform's per-request work
changes. Every answer is checked (status 200, the same JSON from both apps) before timing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.bench.run import ROOT, TARGETS, Target, prepare

ASGIApp = Callable[..., Awaitable[None]]


def _scope(target: Target) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"pipeline-cost"),
        (b"accept", b"*/*"),
    ]
    if target.body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(target.body.encode())).encode()),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": target.method,
        "scheme": "http",
        "path": target.path,
        "raw_path": target.path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }


async def call(app: ASGIApp, target: Target) -> tuple[int, bytes]:
    """One request through ``app``'s ASGI interface: its status and body."""
    body = target.body.encode()
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Future()  # the client stays connected; cancelled when the answer is sent
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(_scope(target), receive, send)
    return status, b"".join(chunks)


async def cpu_per_request(app: ASGIApp, target: Target, requests: int) -> float:
    """Microseconds of this process's CPU per request, over ``requests`` calls."""
    started = time.process_time()
    for _ in range(requests):
        await call(app, target)
    return (time.process_time() - started) / requests * 1e6


async def measure(requests: int, rounds: int, plugins: Path) -> dict[str, dict[str, float]]:
    workdir = Path(tempfile.mkdtemp(prefix="pipeline-cost-"))
    os.environ.update(prepare(workdir, plugins))
    sys.path.insert(0, str(Path(__file__).parent / "hooks"))
    from tests.bench.apps import platform_app, quart_app

    platform = platform_app()
    await platform.startup()
    try:
        status, root = await call(platform, TARGETS[0])
        if status != 200:
            raise SystemExit(f"platform GET / answered {status}: {root[:300]!r}")
        (workdir / "root.json").write_bytes(root)
        bare = quart_app(workdir / "root.json")
        await bare.startup()
        apps: dict[str, ASGIApp] = {"platform": platform, "quart": bare}
        for target in TARGETS:
            answers = {}
            for name, app in apps.items():
                status, body = await call(app, target)
                if status != 200:
                    raise SystemExit(f"{name} {target.label} answered {status}: {body[:300]!r}")
                answers[name] = json.loads(body)
            if answers["platform"] != answers["quart"]:
                raise SystemExit(f"{target.label}: the apps answer different JSON")
        samples: dict[str, dict[str, list[float]]] = {
            t.label: {name: [] for name in apps} for t in TARGETS
        }
        gc.collect()
        gc.freeze()
        for target in TARGETS:
            for app in apps.values():  # warm up: caches, lazily built children
                await cpu_per_request(app, target, max(requests // 10, 10))
            for round_ in range(rounds):
                order = list(apps.items()) if round_ % 2 == 0 else list(apps.items())[::-1]
                for name, app in order:
                    samples[target.label][name].append(await cpu_per_request(app, target, requests))
        await bare.shutdown()
    finally:
        await platform.shutdown()
    return {
        label: {name: statistics.median(values) for name, values in by_app.items()}
        for label, by_app in samples.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (the median is printed)")
    parser.add_argument(
        "--plugins",
        type=Path,
        default=ROOT / "plugins.toml",
        help="the families to serve (default: the repository's plugins.toml)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line instead")
    args = parser.parse_args()
    results = asyncio.run(measure(args.requests, args.rounds, args.plugins))
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{'endpoint':<20}{'platform µs':>13}{'quart µs':>10}{'gap µs':>9}{'ratio':>7}")
    for label, by_app in results.items():
        platform, bare = by_app["platform"], by_app["quart"]
        print(
            f"{label:<20}{platform:>13.1f}{bare:>10.1f}{platform - bare:>9.1f}"
            f"{bare / platform:>7.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
