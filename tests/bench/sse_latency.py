"""Server-Sent Events latency: from a generator's yield to the client reading the event.

Run ``python -m tests.bench.sse_latency`` (``--events``, ``--interval``, ``--rounds``).
Three streams, each served by hypercorn (one worker) in a process of its own, take turns
in rounds so slow moments of the machine fall on all of them alike:

- ``bare Quart``: a Quart handler returning an async generator of hand-written frames
  (this module, ``bare``);
- ``our SSE path``: ``imperfect serve`` with the ``ticker`` test family
  (``@endpoint(stream=EventStream(...))``: event checks, pydantic serialisation, heartbeat
  task);
- ``cheshire proxy``: ``POST /cheshire/questions/stream`` of the same ``imperfect serve``,
  proxying the fake cheshire (``mode="timed"``, in this process), with a token from the
  Firebase Auth Emulator. Its time runs from the *fake's* yield, so it holds two hops (the
  fake to the platform, the platform to the client) and the parsing in between.

Every event carries ``time.perf_counter()`` of its yield (one clock for every process on
Linux: CLOCK_MONOTONIC); the client (httpx, in this process) stamps each data line as it
reads it. The p50/p99 of the difference, in milliseconds, are printed as a Markdown table,
with each stream's p50 beside bare Quart's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from core.emulator import sign_in_or_up
from tests.bench.run import auth_emulator, server
from tests.fakes.cheshire import API_KEY, FakeCheshire
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def bare(port: int) -> None:
    """Serve the bare Quart stream on ``port`` (run in its own process)."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    from quart import Quart, Response, request

    app = Quart("bare_sse")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response('{"status":"ok"}', content_type="application/json")

    @app.post("/ticker/stream")
    async def ticks() -> Response:
        body = await request.get_json()

        async def frames() -> Any:
            for n in range(1, body["count"] + 1):
                data = json.dumps({"n": n, "at": time.perf_counter()})
                yield f"id: {n}\nevent: tick\ndata: {data}\n\n".encode()
                await asyncio.sleep(body["interval"])

        response = Response(frames(), content_type="text/event-stream")
        response.timeout = None
        return response

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    asyncio.run(serve(app, config))  # type: ignore[arg-type]


def measure(
    base: str, path: str, body: dict[str, Any], headers: dict[str, str], stamp: Callable[..., float]
) -> list[float]:
    """Milliseconds from each event's yield to this client reading its data line."""
    delays = []
    with (
        httpx.Client(base_url=base, timeout=30) as client,
        client.stream(
            "POST", path, json=body, headers={"Accept": "text/event-stream", **headers}
        ) as response,
    ):
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.read()!r}")
        event = ""
        for line in response.iter_lines():
            read = time.perf_counter()
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event in ("tick", "delta"):
                delays.append((read - stamp(json.loads(line.removeprefix("data: ")))) * 1000)
    return delays


def summary(delays: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(delays, n=100, method="inclusive")
    return statistics.median(delays), cuts[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300, help="events per stream and round")
    parser.add_argument("--interval", type=float, default=0.002, help="seconds between events")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sse-bench-"))
    log = workdir / "bench.log"
    cheshire = FakeCheshire(mode="timed", count=args.events, interval=args.interval).start()
    plugins = {
        "users": {"module": "plugins.users"},
        "ticker": {"module": "tests.plugins.ticker"},
        "cheshire": {
            "module": "plugins.cheshire",
            "settings": {"base_url": cheshire.url, "api_key": API_KEY},
        },
    }
    plugins_file = workdir / "plugins.toml"
    plugins_file.write_text(tomli_w.dumps({"plugins": plugins}))
    with auth_emulator(workdir, "", log) as emulator:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("IMPERFECT_")},
            "PYTHONPATH": str(ROOT),
            "IMPERFECT_PLUGINS_FILE": str(plugins_file),
            "IMPERFECT_ENV": "test",
            "IMPERFECT_AUTO_MIGRATE": "1",
            "IMPERFECT_LOG_LEVEL": "WARNING",
            "DATABASE_URL": f"sqlite://{workdir / 'bench.sqlite3'}",
            "FIREBASE_AUTH_EMULATOR_HOST": emulator,
            "FIREBASE_PROJECT_ID": "demo-imperfect",
        }
        ours, bare_port = free_port(), free_port()
        imperfect = str(Path(sys.executable).with_name("imperfect"))
        platform = [imperfect, "serve", "--server", "hypercorn", "--port", str(ours)]
        bare_cmd = [sys.executable, "-m", "tests.bench.sse_latency", "--bare", str(bare_port)]
        with server(platform, env, ours, log), server(bare_cmd, env, bare_port, log):
            account = sign_in_or_up(emulator, "bench-sse@example.com", "bench-password")
            token = {"Authorization": f"Bearer {account.id_token}"}
            httpx.post(f"http://127.0.0.1:{ours}/users", headers=token, timeout=10)
            ticks = {"key": "bench", "count": args.events, "interval": args.interval}
            streams: dict[str, Callable[[], list[float]]] = {
                "bare Quart": lambda: measure(
                    f"http://127.0.0.1:{bare_port}",
                    "/ticker/stream",
                    ticks,
                    {},
                    lambda data: data["at"],
                ),
                "our SSE path": lambda: measure(
                    f"http://127.0.0.1:{ours}", "/ticker/stream", ticks, {}, lambda d: d["at"]
                ),
                "cheshire proxy": lambda: measure(
                    f"http://127.0.0.1:{ours}",
                    "/cheshire/questions/stream",
                    {"question": "How fast is this?"},
                    token,
                    lambda data: float(data["text"]),
                ),
            }
            results: dict[str, list[float]] = {name: [] for name in streams}
            for run in streams.values():
                run()  # warm-up: connections, imports, the first query
            for round_number in range(args.rounds):
                names = list(streams)
                names = names[round_number % 3 :] + names[: round_number % 3]
                for name in names:
                    results[name] += streams[name]()
    cheshire.stop()
    base_p50, _ = summary(results["bare Quart"])
    print(f"{args.rounds} rounds x {args.events} events, {args.interval * 1000:g} ms apart\n")
    print("| stream | p50 (ms) | p99 (ms) | p50 added to bare Quart (ms) |")
    print("|---|---|---|---|")
    for name, delays in results.items():
        p50, p99 = summary(delays)
        print(f"| {name} | {p50:.3f} | {p99:.3f} | {p50 - base_p50:+.3f} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare":
        bare(int(sys.argv[2]))
    else:
        main()
