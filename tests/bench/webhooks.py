"""Signed WhatsApp webhook deliveries one worker accepts per second (verify + enqueue).

Run ``python -m tests.bench.webhooks`` (``--seconds``, ``--connections``, ``--rounds``,
``--databases``, ``--no-write``). Servers, each hypercorn with one worker on CPU 0 (the
load generator, this process, on CPU 1), take turns in rounds so slow moments of the
machine fall on all of them alike:

- ``bare Quart``: a handler that reads the raw body, checks ``X-Hub-Signature-256`` with
  ``hmac.compare_digest`` and answers 200: the least any webhook receiver does;
- ``the platform``: ``imperfect serve`` with the ``channels`` family: ``POST
  /whatsapp_webhooks`` checks the signature over the raw body, parses the envelope, records
  the message id (deduplication in the database) and queues its handling in the outbox, in
  one transaction, then answers 200. The outbox dispatcher is held back
  (``IMPERFECT_OUTBOX_INTERVAL``) so that only accepting is measured.

Every request carries a text message of its own (a fresh ``wamid``), signed as Meta signs
it; the requests are built before the clock starts. After each platform run the outbox
rows are counted: every 200 must have left one. The result section replaces its own in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import tomli_w

from tests.bench.loadgen import read_response
from tests.bench.run import (
    BenchError,
    Cpus,
    fresh_postgres,
    pinned,
    postgres_available,
    server,
    write_doc_section,
)
from tests.fakes import whatsapp
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Webhooks (signed WhatsApp deliveries, one worker)"
SECRET = "bench-app-secret"


def bare(port: int) -> None:
    """Serve the bare Quart receiver on ``port`` (run in its own process)."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    from quart import Quart, Response, request

    app = Quart("bare_webhooks")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response('{"status":"ok"}', content_type="application/json")

    @app.post("/whatsapp_webhooks")
    async def receive() -> Response:
        body = await request.get_data()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""), expected):
            return Response('{"code":"invalid_signature"}', status=401)
        return Response('{"messages":1,"new":1,"statuses":0}', content_type="application/json")

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    asyncio.run(serve(app, config))  # type: ignore[arg-type]


def deliveries(port: int, count: int) -> list[bytes]:
    """``count`` raw HTTP requests, each one signed delivery of a message of its own."""
    requests = []
    for n in range(count):
        body = whatsapp.envelope([whatsapp.text_message("14155552671", f"Ran {n % 40} km")])
        signature = whatsapp.sign(body, SECRET)["X-Hub-Signature-256"]
        head = (
            f"POST /whatsapp_webhooks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"X-Hub-Signature-256: {signature}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


async def _drive(
    port: int, requests: list[bytes], connections: int, seconds: float
) -> tuple[list[float], int]:
    """Closed loop: each connection sends its next delivery once the last was answered."""
    latencies: list[float] = []
    refused = 0
    pending = iter(requests)
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal refused
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in pending:
                if time.perf_counter() >= deadline:
                    return
                sent = time.perf_counter()
                writer.write(request)
                try:
                    status = await read_response(reader)
                except asyncio.IncompleteReadError:
                    # The server ended the keep-alive connection (hypercorn does after
                    # keep_alive_max_requests) before reading this one: send it again anew.
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    sent = time.perf_counter()
                    writer.write(request)
                    status = await read_response(reader)
                if status == 200:
                    latencies.append(time.perf_counter() - sent)
                else:
                    refused += 1
            raise BenchError("ran out of prepared deliveries: raise their number")
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return latencies, refused


def measure(port: int, connections: int, seconds: float, rate_guess: int) -> dict[str, Any]:
    requests = deliveries(port, int(rate_guess * seconds * 1.5) + 1000)
    latencies, refused = asyncio.run(_drive(port, requests, connections, seconds))
    if refused:
        raise BenchError(f"{refused} deliveries were not answered 200")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "rps": len(latencies) / seconds,
        "accepted": len(latencies),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": cuts[98] * 1000,
    }


async def _outbox_rows(database_url: str) -> int:
    if database_url.startswith("sqlite://"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite://")) as db:
            return int(db.execute("SELECT count(*) FROM core_outbox").fetchone()[0])
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM core_outbox"))
    finally:
        await connection.close()


def platform_env(workdir: Path, database_url: str) -> dict[str, str]:
    plugins = {
        "root": {"module": "plugins.root"},
        "users": {"module": "plugins.users"},
        "channels": {
            "module": "plugins.channels",
            "settings": {
                "whatsapp": {"app_secret": SECRET, "verify_token": "bench-verify-token"},
                "heylo": {"webhook_secret": "bench-heylo-secret-0123456789abcdef"},
            },
        },
    }
    plugins_file = workdir / "plugins.toml"
    plugins_file.write_text(tomli_w.dumps({"plugins": plugins}))
    (workdir / "hypercorn.toml").write_text("accesslog = false\n")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("IMPERFECT_")},
        "PYTHONPATH": str(ROOT),
        "IMPERFECT_PLUGINS_FILE": str(plugins_file),
        "IMPERFECT_HYPERCORN_CONFIG": str(workdir / "hypercorn.toml"),
        "IMPERFECT_ENV": "test",
        "IMPERFECT_AUTO_MIGRATE": "1",
        "IMPERFECT_LOG_LEVEL": "WARNING",
        "IMPERFECT_RATE_LIMITS": "0",
        "IMPERFECT_OUTBOX_INTERVAL": "3600",
        "DATABASE_URL": database_url,
        "FIREBASE_PROJECT_ID": "demo-imperfect",
    }


def run_rounds(args: argparse.Namespace, workdir: Path, cpus: Cpus) -> dict[str, Any]:
    """Median round of each receiver on each database, with the outbox count checked."""
    results: dict[str, list[dict[str, Any]]] = {}
    for database in args.databases:
        if database == "postgres" and not postgres_available():
            raise BenchError("PostgreSQL is not reachable at BENCH_POSTGRES_URL")
        database_url = (
            fresh_postgres() if database == "postgres" else f"sqlite://{workdir / 'bench.sqlite3'}"
        )
        rounds_on(database, database_url, args, workdir, cpus, results)
    return {
        name: sorted(rounds, key=lambda r: r["rps"])[len(rounds) // 2]
        | {"low": min(r["rps"] for r in rounds), "high": max(r["rps"] for r in rounds)}
        for name, rounds in results.items()
    }


def rounds_on(
    database: str,
    database_url: str,
    args: argparse.Namespace,
    workdir: Path,
    cpus: Cpus,
    results: dict[str, list[dict[str, Any]]],
) -> None:
    """Bare Quart and the platform (on ``database_url``) in turns; each round into ``results``."""
    log = workdir / "bench.log"
    ours, bare_port = free_port(), free_port()
    imperfect = str(Path(sys.executable).with_name("imperfect"))
    platform = [imperfect, "serve", "--server", "hypercorn", "--port", str(ours)]
    bare_cmd = [sys.executable, "-m", "tests.bench.webhooks", "--bare", str(bare_port)]
    env = platform_env(workdir, database_url)
    with (
        server(pinned(platform, cpus.server), env, ours, log),
        server(pinned(bare_cmd, cpus.server), env, bare_port, log),
    ):
        receivers = {f"bare Quart ({database})": bare_port, f"the platform ({database})": ours}
        for port in receivers.values():
            measure(port, args.connections, 1, 3000)  # warm-up
        for round_number in range(args.rounds):
            names = list(receivers)
            for name in names[round_number % 2 :] + names[: round_number % 2]:
                before = asyncio.run(_outbox_rows(database_url))
                summary = measure(receivers[name], args.connections, args.seconds, 6000)
                queued = asyncio.run(_outbox_rows(database_url)) - before
                if name.startswith("the platform") and queued != summary["accepted"]:
                    raise BenchError(f"{summary['accepted']} deliveries accepted, {queued} queued")
                results.setdefault(name, []).append(summary)
                print(
                    f"round {round_number + 1} {name:28} {summary['rps']:8.0f} req/s "
                    f"p50 {summary['p50_ms']:6.2f} ms  p99 {summary['p99_ms']:6.2f} ms"
                )


def render(medians: dict[str, Any], args: argparse.Namespace, loadavg: tuple[float, ...]) -> str:
    measured_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        HEADING,
        "",
        f"`tests/bench/webhooks.py` (`.venv/bin/python -m tests.bench.webhooks`), {measured_at}: "
        f"{args.rounds} rounds of {args.seconds} s, {args.connections} keep-alive connections, "
        "each delivery a new message signed with `X-Hub-Signature-256`; hypercorn, one worker, "
        "on CPU 0, the load generator on CPU 1; load average before the run "
        f"{' / '.join(f'{x:.2f}' for x in loadavg)}. *Accepted* is answered 200 (for the "
        "platform: verified, deduplicated and queued, and the outbox rows counted to match). "
        "Median round; the range is the lowest and highest.",
        "",
        "| receiver | accepted/s | p50 | p99 | ÷ bare Quart |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, result in medians.items():
        database = name.rsplit("(", 1)[1].rstrip(")")
        base = medians[f"bare Quart ({database})"]["rps"]
        lines.append(
            f"| {name} | {result['rps']:,.0f} ({result['low']:,.0f} to {result['high']:,.0f}) "
            f"| {result['p50_ms']:.2f} ms | {result['p99_ms']:.2f} ms "
            f"| {result['rps'] / base:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--no-write", action="store_true", help="print, leave the docs alone")
    args = parser.parse_args()
    args.databases = args.databases.split(",")
    cpus = Cpus.detect()
    if cpus.load:
        os.sched_setaffinity(0, {int(cpus.load)})
    loadavg = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="webhooks-bench-") as workdir:
        medians = run_rounds(args, Path(workdir), cpus)
    section = render(medians, args, loadavg)
    print(section)
    if not args.no_write:
        write_doc_section(HEADING, section)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare":
        bare(int(sys.argv[2]))
    else:
        sys.exit(main())
