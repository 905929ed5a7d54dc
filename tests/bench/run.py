"""The benchmark: the platform against bare Quart and the FastAPI way, into docs/benchmarks.md.

``make bench`` runs this module (``python -m tests.bench.run``). Three suites, each in rounds
whose order of apps rotates, so slow moments of the machine fall on all apps alike:

- ``frameworks``: ``GET /``, ``POST /bench/echo`` and ``GET /healthz`` for the platform
  (``imperfect serve --server S --workers 1``) and bare Quart on every server, FastAPI on
  uvicorn;
- ``users``: the authenticated, database-backed ``GET /users/me`` and ``PATCH /users/me``,
  the platform on every server against the same endpoints written the FastAPI way on
  uvicorn (``fastapi_users.py``), on SQLite and PostgreSQL, with production-shaped tokens
  (RS256, signed by the fake key server of ``auth_backend.py``) and with Auth Emulator
  tokens; outbound calls to the auth backend are counted at the fakes, per request;
- ``workers``: ``GET /`` on 1 and 2 workers of ``imperfect serve`` on every server, with
  start-up time (spawn to first 200) and the RSS of the supervisor and of each worker.

Servers run on CPU 0 and the load generator and fakes on CPU 1 (``taskset``), except in the
workers suite, where one worker and ``wrk`` share CPU 0 and two workers and ``wrk`` share
CPUs 0-1: twice the cores for twice the workers, the load generator's cost included in both.
The run then rewrites the results section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import tomli_w

from tests.support.emulator import EMULATOR_ENV, FIREBASE_BIN, emulator_command
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
SERVERS = ("hypercorn", "uvicorn", "granian")
SUITES = ("frameworks", "users", "workers")
APP_TITLES = {
    "platform": "platform",
    "quart": "bare Quart",
    "fastapi": "FastAPI",
    "fastapi_users": "FastAPI way",
}
BENCH_PLUGIN = ("bench", {"module": "tests.bench.echo", "enabled": True})
WORKOUT = {
    "name": "Tuesday track session",
    "sport": "run",
    "tags": ["intervals", "track", "vo2max"],
    "splits": [{"km": 1.0, "seconds": 230 + 3 * lap} for lap in range(8)],
}
POSTGRES_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
POSTGRES_DB = "imperfect_bench"
EMULATOR_PROJECT = "demo-imperfect"
BENCH_UID = "bench-runner"


@dataclass(frozen=True)
class Target:
    """One benchmarked request; ``auth`` requests carry the run's ID token."""

    label: str
    method: str
    path: str
    body: str = ""
    auth: bool = False


TARGETS = (
    Target("GET /", "GET", "/"),
    Target("POST /bench/echo", "POST", "/bench/echo", json.dumps(WORKOUT)),
    Target("GET /healthz", "GET", "/healthz"),
)
USER_TARGETS = (
    Target("GET /users/me", "GET", "/users/me", auth=True),
    Target(
        "PATCH /users/me",
        "PATCH",
        "/users/me",
        json.dumps({"display_name": "Ana Runner", "locale": "fr-FR"}),
        auth=True,
    ),
)
HEALTH = Target("GET /healthz", "GET", "/healthz")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The benchmark cannot produce trustworthy numbers (a server failed, a request erred)."""


def _headers(target: Target, token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"} if target.body else {}
    if target.auth and token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def request(
    port: int, target: Target, token: str | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """One request over a fresh connection, for readiness polls and checks."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            target.method, target.path, body=target.body or None, headers=_headers(target, token)
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- CPUs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cpus:
    """Where servers and the load run (``taskset`` CPU lists; empty: unpinned)."""

    server: str
    load: str
    one: str  # the workers suite, 1 worker and its load
    two: str  # ... 2 workers and their load

    @classmethod
    def detect(cls) -> Cpus:
        cores = sorted(os.sched_getaffinity(0))
        if shutil.which("taskset") is None or len(cores) < 2:
            return cls("", "", "", "")
        first, second = str(cores[0]), str(cores[1])
        return cls(first, second, first, f"{first},{second}")


def pinned(command: list[str], cpus: str) -> list[str]:
    return ["taskset", "-c", cpus, *command] if cpus else command


# --- the environment every server and helper process gets --------------------------------


def prepare(workdir: Path, plugins: Path = ROOT / "plugins.toml") -> dict[str, str]:
    """Write the benchmark's plugins.toml and server config; the children's environment.

    The plugins file holds every family of the repository's ``plugins.toml`` as configured
    there, plus the ``echo`` family. A setting read from an unset environment variable gets
    a placeholder, so families needing secrets still load; the benchmark never reaches the
    services those secrets are for. ``imperfect serve`` runs with the shipped settings
    except the access log, off (as for the bare apps).
    """
    document = tomllib.loads(plugins.read_text())
    families = dict(document.get("plugins", {}))
    name, table = BENCH_PLUGIN
    if name in families:
        raise BenchError(f"plugins.toml already has a family named {name!r}")
    families[name] = table
    plugins_file = workdir / "plugins.toml"
    plugins_file.write_text(tomli_w.dumps({"plugins": families}))
    server_config = workdir / "hypercorn.toml"
    server_config.write_text("accesslog = false\n")

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMPERFECT_", "BENCH_", "FIREBASE_", "GOOGLE_"))
        and k != "DATABASE_URL"
    }
    env.update(
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(ROOT), str(HERE / "hooks"), os.environ.get("PYTHONPATH")])
        ),
        IMPERFECT_PLUGINS_FILE=str(plugins_file),
        IMPERFECT_HYPERCORN_CONFIG=str(server_config),
        IMPERFECT_ENV="development",
        IMPERFECT_AUTO_MIGRATE="1",
        IMPERFECT_LOG_LEVEL="WARNING",
        DATABASE_URL=f"sqlite://{workdir / 'bench.sqlite3'}",
        FIREBASE_AUTH_EMULATOR_HOST="127.0.0.1:1",  # no auth call in the frameworks suite
        FIREBASE_PROJECT_ID=EMULATOR_PROJECT,
    )
    for variable in _secret_variables(families):
        env.setdefault(variable, f"bench-placeholder-{variable.lower()}")
    return env


def _secret_variables(value: Any) -> list[str]:
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            return [value["env"]]
        return [name for item in value.values() for name in _secret_variables(item)]
    return []


# --- processes -------------------------------------------------------------------------


@dataclass
class Started:
    """A served app: seconds from spawn to its first 200, and its process."""

    seconds: float
    pid: int


@contextmanager
def server(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[Started]:
    """Spawn a server, wait for its first 200 on /healthz, stop it after."""
    with log.open("ab") as output:
        output.write(f"\n$ {' '.join(command)}\n".encode())
        output.flush()
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while True:
                if process.poll() is not None:
                    raise BenchError(f"{' '.join(command)} exited; see its log:\n{_tail(log)}")
                with suppress(OSError):
                    status, _ = request(port, HEALTH, timeout=1.0)
                    if status == 200:
                        break
                if time.perf_counter() - started > 90:
                    raise BenchError(f"{' '.join(command)} did not answer in 90 s:\n{_tail(log)}")
                time.sleep(0.005)
            yield Started(time.perf_counter() - started, process.pid)
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (graceful), then SIGKILL to the process group this script created."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # leftovers (a worker, a resource tracker)


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def bare_command(app: str, port: int, root_document: Path, server_name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.bench.serve",
        app,
        str(port),
        str(root_document),
        "--server",
        server_name,
    ]


def platform_command(port: int, server_name: str, workers: int) -> list[str]:
    """``imperfect serve``, as deployers run it (a supervisor and its workers)."""
    imperfect = Path(sys.executable).with_name("imperfect")
    return [
        str(imperfect),
        "serve",
        "--server",
        server_name,
        "--workers",
        str(workers),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def workers_of(supervisor: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError, IndexError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
            if int(stat[1]) == supervisor and b"resource_tracker" not in cmdline:
                found.append(int(entry.name))
    return sorted(found)


# --- correctness and warm-up -----------------------------------------------------------


def check_and_warm(
    port: int, targets: tuple[Target, ...], requests: int, token: str | None = None
) -> dict[str, Any]:
    """Every target answers 200 with JSON; also warms the server up. The last bodies."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    answers: dict[str, Any] = {}
    try:
        for target in targets:
            for _ in range(requests):
                connection.request(
                    target.method,
                    target.path,
                    body=target.body or None,
                    headers=_headers(target, token),
                )
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    raise BenchError(f"{target.label} answered {response.status}: {body[:300]!r}")
            answers[target.label] = json.loads(body)
    finally:
        connection.close()
    return answers


def same_shape(expected: Any, got: Any) -> bool:
    """The same keys (user records differ in timestamps, so not the same values)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        return set(expected) == set(got)
    return expected == got


# --- load ------------------------------------------------------------------------------


def wrk_version() -> str | None:
    if shutil.which("wrk") is None:
        return None
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    first = (result.stdout or result.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"


@dataclass
class Load:
    """How load is generated."""

    tool: str  # "wrk" or "python"
    connections: int
    duration: int
    token: str | None = None


def load(spec: Load, port: int, target: Target, cpus: str) -> dict[str, Any]:
    """Run the load generator against one target; its JSON summary plus req/s."""
    url = f"http://127.0.0.1:{port}{target.path}"
    authorization = f"Bearer {spec.token}" if target.auth and spec.token else ""
    if spec.tool == "wrk":
        command = [
            "wrk",
            "-t1",
            f"-c{spec.connections}",
            f"-d{spec.duration}s",
            "--timeout",
            "5s",
            "-s",
            str(HERE / "report.lua"),
            url,
        ]
        env = {
            **os.environ,
            "BENCH_METHOD": target.method,
            "BENCH_BODY": target.body,
            "BENCH_AUTHORIZATION": authorization,
        }
    else:
        command = [
            sys.executable,
            str(HERE / "loadgen.py"),
            url,
            "--method",
            target.method,
            "--body",
            target.body,
            "--connections",
            str(spec.connections),
            "--duration",
            str(spec.duration),
            "--authorization",
            authorization,
        ]
        env = dict(os.environ)
    result = subprocess.run(
        pinned(command, cpus), capture_output=True, text=True, env=env, timeout=spec.duration + 60
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if result.returncode != 0 or not lines:
        raise BenchError(f"{command[0]} failed:\n{result.stdout}\n{result.stderr}")
    summary = json.loads(lines[-1].removeprefix("BENCH_JSON "))
    failed = {kind: count for kind, count in summary["errors"].items() if count}
    if failed:
        raise BenchError(f"{target.label} on port {port}: failed requests {failed}")
    summary["rps"] = summary["requests"] / (summary["duration_us"] / 1_000_000)
    return summary


def measured(spec: Load, port: int, target: Target, cpus: str, pids: list[int]) -> dict[str, Any]:
    """:func:`load`, plus the CPU time the server's processes spent per request served.

    CPU per request barely moves when other work shares the machine, where requests per
    second do: on a busy machine, compare apps by ``cpu_us``.
    """
    before = sum(cpu_ticks(pid) for pid in pids)
    summary = load(spec, port, target, cpus)
    ticks = sum(cpu_ticks(pid) for pid in pids) - before
    summary["cpu_us"] = ticks * 1_000_000 / CLOCK_TICKS / max(1, summary["requests"])
    return summary


def serving_pids(started: Started) -> list[int]:
    """The processes that serve: ``imperfect serve``'s workers, or the one bare process."""
    return workers_of(started.pid) or [started.pid]


def rotate(items: tuple[Any, ...] | list[Any], by: int) -> list[Any]:
    by %= len(items)
    return [*items[by:], *items[:by]]


def _say(*parts: object) -> None:
    print(*parts, flush=True)


def _line(prefix: str, target: Target, summary: dict[str, Any], extra: str = "") -> None:
    _say(
        f"{prefix:<44} {target.label:<17} {summary['rps']:8.0f} req/s  "
        f"p50 {summary['p50_us'] / 1000:6.2f} ms  p99 {summary['p99_us'] / 1000:6.2f} ms  "
        f"CPU {summary.get('cpu_us', 0):5.0f} us/req{extra}"
    )


# --- the auth backend and the emulator -----------------------------------------------------


@contextmanager
def auth_backend(
    workdir: Path, env: dict[str, str], cpus: str, emulator: str | None, log: Path
) -> Iterator[dict[str, Any]]:
    """``auth_backend.py`` in a process of its own; yields its state (URLs, tokens)."""
    state_file = workdir / f"backend-{time.time_ns()}.json"
    command = [sys.executable, "-m", "tests.bench.auth_backend", str(state_file)]
    command += ["--uid", BENCH_UID] + (["--emulator", emulator] if emulator else [])
    with log.open("ab") as output:
        process = subprocess.Popen(
            pinned(command, cpus),
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not state_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the auth backend did not start:\n{_tail(log)}")
            time.sleep(0.05)
        time.sleep(0.05)  # the file is written whole, but let the writer close it
        yield json.loads(state_file.read_text())
    finally:
        _stop(process)


def backend_counts(state: dict[str, Any]) -> dict[str, int]:
    connection = http.client.HTTPConnection(state["counts_url"].split("/")[2], timeout=5)
    try:
        connection.request("GET", "/counts")
        counts: dict[str, int] = json.loads(connection.getresponse().read())
        return counts
    finally:
        connection.close()


@contextmanager
def auth_emulator(workdir: Path, cpus: str, log: Path) -> Iterator[str]:
    """The Firebase Auth Emulator (firebase-tools), as the test suite starts it; its host."""
    directory = workdir / "firebase"
    directory.mkdir()
    command, port = emulator_command(directory, EMULATOR_PROJECT)
    with log.open("ab") as output:
        process = subprocess.Popen(
            pinned(command, cpus),
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **EMULATOR_ENV},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            with suppress(OSError, ValueError, KeyError):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", "/")
                if json.loads(connection.getresponse().read())["authEmulator"]["ready"]:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the Auth Emulator did not start:\n{_tail(log)}")
            time.sleep(0.25)
        yield f"127.0.0.1:{port}"
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def emulator_token(host: str) -> tuple[str, str]:
    """A signed-up emulator account's (uid, ID token)."""
    from core.emulator import AuthEmulator

    emulator = AuthEmulator(host, EMULATOR_PROJECT)
    try:
        account = emulator.sign_up(f"bench-{time.time_ns()}@example.com", "bench-password-1")
    finally:
        emulator.close()
    return account.uid, account.id_token


def write_doc_section(heading: str, section: str, path: Path = DOC) -> None:
    """Replace the section under ``heading`` in ``docs/benchmarks.md`` (up to the next
    ``## `` heading), or append it: each standalone benchmark keeps its own section."""
    text = path.read_text()
    if heading not in text:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    rest = text[end + 1 :] if end != -1 else ""
    path.write_text(text[:start] + section + ("\n" + rest if rest else ""))


def postgres_available() -> bool:
    import asyncpg

    async def probe() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def fresh_postgres() -> str:
    """A new, empty database of the benchmark's own; its URL."""
    import asyncpg

    async def recreate() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{POSTGRES_DB}" WITH (FORCE)')
            await connection.execute(f'CREATE DATABASE "{POSTGRES_DB}"')
        finally:
            await connection.close()

    asyncio.run(recreate())
    return POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{POSTGRES_DB}"


# --- the suites --------------------------------------------------------------------------


@dataclass
class Results:
    """Every measurement, as plain data for the report."""

    args: dict[str, Any]
    tool: str
    cpus: Cpus
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # (server, app, endpoint) -> summaries
    frameworks: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    # (database, tokens, server, app, endpoint) -> summaries (with "calls" per request)
    users: dict[tuple[str, str, str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    users_skipped: list[str] = field(default_factory=list)
    # (server, workers) -> summaries (with "split", CPU share of each worker)
    workers: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    # (what, server, workers) -> start-up seconds
    startup: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    # (server, workers) -> {"supervisor": KiB, "workers": [KiB, ...]}
    memory: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)


def reference_run(env: dict[str, str], workdir: Path, log: Path) -> dict[str, Any]:
    """Serve the platform once (applies migrations); its answers to the framework targets."""
    port = free_port()
    with server(platform_command(port, "hypercorn", 1), env, port, log):
        expected: dict[str, Any] = {}
        for target in TARGETS:
            status, body = request(port, target)
            if status != 200:
                raise BenchError(f"platform {target.label} answered {status}: {body[:300]!r}")
            expected[target.label] = json.loads(body)
    return expected


def memory_of(supervisor: int) -> dict[str, Any]:
    return {
        "supervisor": rss_kib(supervisor),
        "workers": [rss_kib(pid) for pid in workers_of(supervisor)],
    }


def suite_frameworks(
    results: Results, env: dict[str, str], spec: Load, workdir: Path, log: Path
) -> None:
    root_document = workdir / "root.json"
    expected = json.loads((workdir / "expected.json").read_text())
    cpus = results.cpus
    apps = [(s, a) for s in results.args["servers"] for a in ("platform", "quart")]
    if "uvicorn" in results.args["servers"]:
        apps.append(("uvicorn", "fastapi"))
    for round_number in range(results.args["rounds"]):
        for server_name, app in rotate(apps, round_number):
            port = free_port()
            if app == "platform":
                command = pinned(platform_command(port, server_name, 1), cpus.server)
            else:
                command = pinned(bare_command(app, port, root_document, server_name), cpus.server)
            with server(command, env, port, log) as started:
                results.startup.setdefault((app, server_name, 1), []).append(started.seconds)
                answers = check_and_warm(port, TARGETS, results.args["warmup"])
                for label, body in answers.items():
                    if body != expected[label]:
                        raise BenchError(f"{app} {label} answered different JSON: {body!r:.300}")
                if app == "platform":
                    results.memory.setdefault((server_name, 1), []).append(memory_of(started.pid))
                pids = serving_pids(started)
                for target in rotate(list(TARGETS), round_number):
                    summary = measured(spec, port, target, cpus.load, pids)
                    results.frameworks.setdefault((server_name, app, target.label), []).append(
                        summary
                    )
                    _line(
                        f"frameworks {round_number + 1} {APP_TITLES[app]}/{server_name}",
                        target,
                        summary,
                    )


def suite_workers(results: Results, env: dict[str, str], spec: Load, log: Path) -> None:
    cpus = results.cpus
    target = TARGETS[0]
    runs = [(s, n) for s in results.args["servers"] for n in (1, 2)]
    for round_number in range(results.args["rounds"]):
        for server_name, workers in rotate(runs, round_number):
            where = cpus.one if workers == 1 else cpus.two
            port = free_port()
            command = pinned(platform_command(port, server_name, workers), where)
            with server(command, env, port, log) as started:
                results.startup.setdefault(("platform", server_name, workers), []).append(
                    started.seconds
                )
                check_and_warm(port, (target,), results.args["warmup"])
                pids = workers_of(started.pid)
                if len(pids) != workers:
                    raise BenchError(f"{server_name}: {len(pids)} workers, expected {workers}")
                results.memory.setdefault((server_name, workers), []).append(memory_of(started.pid))
                before = [cpu_ticks(pid) for pid in pids]
                summary = load(spec, port, target, where)
                used = [cpu_ticks(pid) - tick for pid, tick in zip(pids, before, strict=True)]
                summary["cpu_us"] = (
                    sum(used) * 1_000_000 / CLOCK_TICKS / max(1, summary["requests"])
                )
                summary["split"] = [u / max(1, sum(used)) for u in used]
                results.workers.setdefault((server_name, workers), []).append(summary)
                split = "/".join(f"{share:.0%}" for share in summary["split"])
                _line(
                    f"workers {round_number + 1} {server_name} x{workers} (CPUs {where})",
                    target,
                    summary,
                    f"  split {split}",
                )


def suite_users(
    results: Results, env: dict[str, str], spec: Load, workdir: Path, log: Path
) -> None:
    args = results.args
    cpus = results.cpus
    databases = list(args["databases"])
    if "postgres" in databases and not postgres_available():
        results.users_skipped.append(f"PostgreSQL: nothing answers at {POSTGRES_ADMIN}")
        databases.remove("postgres")
    tokens_kinds = list(args["tokens"])
    if "emulator" in tokens_kinds and not FIREBASE_BIN.exists():
        results.users_skipped.append(f"emulator tokens: firebase-tools not at {FIREBASE_BIN}")
        tokens_kinds.remove("emulator")
    emulator: AbstractContextManager[str | None] = (
        auth_emulator(workdir, cpus.load, log) if "emulator" in tokens_kinds else nullcontext()
    )
    with emulator as emulator_host:
        for database in databases:
            for tokens in tokens_kinds:
                _users_config(results, env, spec, workdir, log, database, tokens, emulator_host)


def register_user(env: dict[str, str], log: Path, token: str, attempts: int = 2) -> Any:
    """Serve the platform once: it migrates the database, then creates the caller's record.

    Retried once: on a shared PostgreSQL, another job may end connections mid-migration.
    """
    for attempt in range(attempts):
        port = free_port()
        try:
            with server(platform_command(port, "hypercorn", 1), env, port, log):
                status, body = request(
                    port, Target("POST /users", "POST", "/users", auth=True), token
                )
        except BenchError:
            if attempt + 1 == attempts:
                raise
            _say("the platform did not start; once more")
            continue
        if status not in (200, 201):
            raise BenchError(f"POST /users answered {status}: {body[:300]!r}")
        return json.loads(body)
    raise AssertionError("unreachable")


def _users_config(
    results: Results,
    base_env: dict[str, str],
    spec: Load,
    workdir: Path,
    log: Path,
    database: str,
    tokens: str,
    emulator_host: str | None,
) -> None:
    cpus = results.cpus
    args = results.args
    env = dict(base_env)
    del env["FIREBASE_AUTH_EMULATOR_HOST"]
    if database == "postgres":
        env["DATABASE_URL"] = fresh_postgres()
    else:
        env["DATABASE_URL"] = f"sqlite://{workdir / f'users-{tokens}.sqlite3'}"
    backend_emulator = emulator_host if tokens == "emulator" else None
    with auth_backend(workdir, env, cpus.load, backend_emulator, log) as state:
        if tokens == "emulator":
            assert emulator_host is not None
            _, token = emulator_token(emulator_host)
            env.update(
                FIREBASE_AUTH_EMULATOR_HOST=state["emulator_host"],  # the counting proxy
                FIREBASE_PROJECT_ID=EMULATOR_PROJECT,
            )
        else:
            token = state["tokens"][BENCH_UID]
            env.update(
                FIREBASE_PROJECT_ID=state["project_id"],
                GOOGLE_APPLICATION_CREDENTIALS=state["service_account_file"],
                IMPERFECT_FIREBASE_CERTS_URL=state["certs_url"],
                BENCH_FIREBASE_CERTS_URL=state["certs_url"],
                BENCH_IDENTITY_TOOLKIT_URL=state["identity_toolkit_url"],
            )
        expected = register_user(env, log, token)
        spec = Load(spec.tool, spec.connections, spec.duration, token)
        apps = [(s, "platform") for s in args["servers"]] + [("uvicorn", "fastapi_users")]
        for round_number in range(args["rounds"]):
            for server_name, app in rotate(apps, round_number):
                port = free_port()
                if app == "platform":
                    command = platform_command(port, server_name, 1)
                else:
                    command = bare_command(app, port, workdir / "root.json", server_name)
                with server(pinned(command, cpus.server), env, port, log) as started:
                    answers = check_and_warm(port, USER_TARGETS, args["warmup"], token)
                    for label, answer in answers.items():
                        if not same_shape(expected, answer):
                            raise BenchError(f"{app} {label} answered {answer!r:.300}")
                    calls = counted_calls(port, state, token, args["counted"])
                    pids = serving_pids(started)
                    for target in rotate(list(USER_TARGETS), round_number):
                        summary = measured(spec, port, target, cpus.load, pids)
                        summary["calls"] = calls[target.label]
                        key = (database, tokens, server_name, app, target.label)
                        results.users.setdefault(key, []).append(summary)
                        _line(
                            f"users {round_number + 1} {database}/{tokens} "
                            f"{APP_TITLES[app]}/{server_name}",
                            target,
                            summary,
                            f"  calls/req {calls[target.label]:.2f}",
                        )


def counted_calls(port: int, state: dict[str, Any], token: str, requests: int) -> dict[str, float]:
    """Outbound calls to the auth backend per request, in steady state (after the warm-up).

    ``requests`` requests per endpoint, one at a time, between two readings of the fakes'
    counters: exact, unlike a count over a load run, which ends with requests in flight.
    """
    calls = {}
    for target in USER_TARGETS:
        before = sum(backend_counts(state).values())
        check_and_warm(port, (target,), requests, token)
        calls[target.label] = (sum(backend_counts(state).values()) - before) / requests
    return calls


def spec_timing(env: dict[str, str], repeat: int) -> dict[str, Any]:
    spec = subprocess.run(
        [sys.executable, "-m", "tests.bench.spec_timing", "--repeat", str(repeat)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    spec_lines = [ln for ln in spec.stdout.splitlines() if ln.startswith("BENCH_JSON ")]
    if spec.returncode != 0 or not spec_lines:
        raise BenchError(f"spec timing failed:\n{spec.stdout}\n{spec.stderr}")
    timing: dict[str, Any] = json.loads(spec_lines[-1].removeprefix("BENCH_JSON "))
    return timing


def run(args: argparse.Namespace) -> Results:
    """Every measurement of the suites asked for."""
    tool_version = wrk_version()
    tool = args.loadgen
    if tool == "auto":
        tool = "wrk" if tool_version else "python"
    if tool == "wrk" and tool_version is None:
        raise BenchError("wrk is not installed (apt-get install wrk), use --loadgen python")
    tool_name = tool_version if tool == "wrk" else "tests/bench/loadgen.py (asyncio)"
    results = Results(
        args=vars(args), tool=tool_name, cpus=Cpus.detect(), load_before=os.getloadavg()
    )
    _say(f"load generator: {tool_name}; CPUs {results.cpus}")

    with tempfile.TemporaryDirectory(prefix="imperfect-bench-") as tmp:
        workdir = Path(tmp)
        env = prepare(workdir, args.plugins)
        log = workdir / "servers.log"
        try:
            _say("reference run of the platform (applies migrations, records GET / JSON)")
            expected = reference_run(env, workdir, log)
            (workdir / "root.json").write_text(json.dumps(expected["GET /"]))
            (workdir / "expected.json").write_text(json.dumps(expected))
            _say("timing create_app and build_spec")
            results.spec = spec_timing(env, args.spec_repeat)
            results.plugins = results.spec["plugins"]
            spec = Load(tool, args.connections, args.duration)
            if "frameworks" in args.suites:
                suite_frameworks(results, env, spec, workdir, log)
            if "workers" in args.suites:
                suite_workers(results, env, spec, log)
            if "users" in args.suites:
                suite_users(results, env, spec, workdir, log)
        except BenchError:
            if args.keep_log:
                shutil.copy(log, args.keep_log)
            raise
        if args.keep_log:
            shutil.copy(log, args.keep_log)
    results.load_after = os.getloadavg()
    return results


# --- the report ------------------------------------------------------------------------


def _versions() -> str:
    names = [
        "quart",
        "werkzeug",
        "hypercorn",
        "uvicorn",
        "granian",
        "uvloop",
        "pydantic",
        "tortoise-orm",
        "firebase-admin",
        "fastapi",
        "starlette",
    ]
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def _cpu_model() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _commit() -> str:
    """The commit measured, flagged when core, plugins or plugins.toml differ from it."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if not head:
        return "`unknown`"
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", "core", "plugins", "plugins.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"`{head}`" + (" with uncommitted changes to core/plugins" if changed else "")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _rps(runs: list[dict[str, Any]]) -> float:
    return _median([s["rps"] for s in runs])


def _range(runs: list[dict[str, Any]]) -> str:
    rps = [s["rps"] for s in runs]
    return f"{min(rps):,.0f} to {max(rps):,.0f}"


def _verdict(ratio: float, target: float) -> str:
    return "meets the target" if ratio >= target else "**misses the target**"


def _loadavg(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def render(results: Results) -> str:
    """The generated results section (Markdown), from ``run``'s data."""
    args = results.args
    cpus = results.cpus
    pinning = (
        f"servers on CPU {cpus.server}, the load generator and the fakes on CPU {cpus.load}; "
        f"workers suite: 1 worker and the load generator on CPU {cpus.one}, 2 workers and the "
        f"load generator on CPUs {cpus.two}"
        if cpus.server
        else "nothing pinned (taskset missing or one CPU)"
    )
    lines = [
        f"Generated by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"at commit {_commit()}; suites: {', '.join(args['suites'])}.",
        "",
        f"- Machine: {os.cpu_count()} cores ({_cpu_model()}), {platform.platform()}, "
        f"Python {platform.python_version()}; load average (1/5/15 min) "
        f"{_loadavg(results.load_before)} before the run, {_loadavg(results.load_after)} "
        "after (other work on the machine shows up as noise).",
        f"- Cores used: {pinning} (`taskset`).",
        f"- Packages: {_versions()}.",
        f"- Load generator: **{results.tool}**, 1 thread, {args['connections']} keep-alive "
        f"connections, {args['duration']} s per measurement, {args['rounds']} round(s) "
        f"(app order rotated every round), after {args['warmup']} checked warm-up requests "
        "per endpoint. Tables show the median round; the range is the lowest and highest.",
        "- Servers: the platform through `imperfect serve --server S --workers N` (shipped "
        "settings, access log off), the bare apps in one process (`tests/bench/serve.py`); "
        "every server on uvloop.",
        f"- Platform families loaded: {', '.join(results.plugins)}.",
    ]
    if results.frameworks:
        lines += _render_frameworks(results)
    if results.users or results.users_skipped:
        lines += _render_users(results)
    if results.workers:
        lines += _render_workers(results)
    lines += _render_startup(results)
    if results.spec:
        lines += _render_spec(results.spec)
    return "\n".join(lines)


def _cpu(runs: list[dict[str, Any]]) -> float:
    return _median([s.get("cpu_us", 0.0) for s in runs])


def _render_frameworks(results: Results) -> list[str]:
    data = results.frameworks
    lines = [
        "",
        "### The platform against bare Quart, on each server",
        "",
        "One worker. Target: the platform keeps at least 0.90 of bare Quart's throughput on "
        "the same server. *CPU/req* is the CPU time the serving process spent per request "
        "(it moves far less than req/s when other work shares the machine); *by CPU* is bare "
        "Quart's CPU per request over the platform's.",
        "",
        "| server | endpoint | platform req/s | bare Quart req/s | platform CPU/req "
        "| bare CPU/req | platform p99 | bare p99 | ÷ bare Quart | by CPU |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    verdicts = []
    for server_name in results.args["servers"]:
        for target in TARGETS:
            mine = data.get((server_name, "platform", target.label))
            bare = data.get((server_name, "quart", target.label))
            if not mine or not bare:
                continue
            ratio = _rps(mine) / _rps(bare)
            by_cpu = _cpu(bare) / _cpu(mine) if _cpu(mine) else 0.0
            p99 = _median([s["p99_us"] for s in mine]) / 1000
            bare_p99 = _median([s["p99_us"] for s in bare]) / 1000
            lines.append(
                f"| {server_name} | `{target.label}` | {_rps(mine):,.0f} ({_range(mine)}) | "
                f"{_rps(bare):,.0f} ({_range(bare)}) | {_cpu(mine):,.0f} µs | "
                f"{_cpu(bare):,.0f} µs | {p99:.1f} ms | {bare_p99:.1f} ms | {ratio:.2f} | "
                f"{by_cpu:.2f} |"
            )
            if target.label != "GET /healthz":
                verdicts.append(
                    f"- {server_name}, `{target.label}`: {ratio:.2f} ({by_cpu:.2f} by CPU); "
                    f"{_verdict(ratio, 0.9)}."
                )
    fastapi = [
        f"`{t.label}` {_rps(data[('uvicorn', 'fastapi', t.label)]):,.0f} req/s, "
        f"{_cpu(data[('uvicorn', 'fastapi', t.label)]):,.0f} µs CPU/req"
        for t in TARGETS
        if ("uvicorn", "fastapi", t.label) in data
    ]
    lines += ["", "Target 2 (at least 0.90 of bare Quart, `GET /` and the validated `POST`):", ""]
    lines += verdicts
    if fastapi:
        lines += ["", f"FastAPI on uvicorn: {'; '.join(fastapi)}."]
    return lines


def _render_users(results: Results) -> list[str]:
    data = results.users
    lines = [
        "",
        "### Authenticated, database-backed: `GET /users/me` and `PATCH /users/me`",
        "",
        "One worker each. The FastAPI way verifies with firebase-admin's "
        "`verify_id_token(token, check_revoked=True)` in FastAPI's thread pool (an Identity "
        "Toolkit `accounts:lookup` per request), reads with Tortoise and answers through a "
        "pydantic `response_model`; the platform verifies in the event loop with cached keys "
        "and checks revocation against a per-user state cached for "
        "`IMPERFECT_REVOCATION_WINDOW` (300 s by default). *Calls/req*: requests the auth "
        "backend's fakes (certificates, `accounts:lookup`, OAuth token, the emulator behind "
        "a counting proxy) answered while the server, warmed up, served one request at a time "
        f"({results.args['counted']} per endpoint), divided by those requests.",
        "",
    ]
    for note in results.users_skipped:
        lines.append(f"- Not measured: {note}.")
    configs = [
        (database, tokens)
        for database in results.args["databases"]
        for tokens in results.args["tokens"]
        if any(k[:2] == (database, tokens) for k in data)
    ]
    verdicts = []
    for database, tokens in configs:
        kind = "production-shaped RS256 tokens" if tokens == "production" else "emulator tokens"
        lines += [
            "",
            f"**{'PostgreSQL' if database == 'postgres' else 'SQLite'}, {kind}**",
            "",
            "| app / server | endpoint | req/s | CPU/req | p50 | p99 | calls/req "
            "| ÷ FastAPI way | by CPU |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for target in USER_TARGETS:
            base = data.get((database, tokens, "uvicorn", "fastapi_users", target.label))
            base_rps = _rps(base) if base else 0.0
            base_cpu = _cpu(base) if base else 0.0
            best: tuple[float, str] | None = None
            rows = [(s, "platform") for s in results.args["servers"]]
            for server_name, app in [*rows, ("uvicorn", "fastapi_users")]:
                runs = data.get((database, tokens, server_name, app, target.label))
                if not runs:
                    continue
                ratio = _rps(runs) / base_rps if base_rps else 0.0
                by_cpu = base_cpu / _cpu(runs) if _cpu(runs) else 0.0
                calls = _median([s["calls"] for s in runs])
                lines.append(
                    f"| {APP_TITLES[app]} / {server_name} | `{target.label}` | "
                    f"{_rps(runs):,.0f} ({_range(runs)}) | {_cpu(runs):,.0f} µs | "
                    f"{_median([s['p50_us'] for s in runs]) / 1000:.1f} ms | "
                    f"{_median([s['p99_us'] for s in runs]) / 1000:.1f} ms | {calls:.2f} | "
                    f"{ratio:.2f} | {by_cpu:.2f} |"
                )
                if app == "platform" and (best is None or ratio > best[0]):
                    best = (ratio, server_name)
            if best and target.label == "GET /users/me":
                goal = 1.25 if tokens == "production" else 1.0
                verdicts.append(
                    f"- {database}, {kind}: the platform on {best[1]} (its fastest) "
                    f"{best[0]:.2f} x the FastAPI way (target {goal:.2f} x); "
                    f"{_verdict(best[0], goal)}."
                )
    lines += ["", "Target 1 (`GET /users/me`, the platform's fastest server):", "", *verdicts]
    return lines


def _render_workers(results: Results) -> list[str]:
    cpus = results.cpus
    lines = [
        "",
        "### Workers: `GET /` on 1 and 2 workers",
        "",
        f"`imperfect serve --workers N`. One worker and `wrk` share CPU {cpus.one or '(any)'}; "
        f"two workers and `wrk` share CPUs {cpus.two or '(any)'}: twice the cores for twice "
        "the workers, the load generator's cost included in both. *Split* is each worker's "
        "share of the CPU time the workers used during the measurement. Target: 2 workers "
        "at least 1.6 x one.",
        "",
        "| server | 1 worker req/s | 2 workers req/s | CPU/req (1 / 2) | split (2 workers) "
        "| 2 ÷ 1 | verdict |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for server_name in results.args["servers"]:
        one = results.workers.get((server_name, 1))
        two = results.workers.get((server_name, 2))
        if not one or not two:
            continue
        ratio = _rps(two) / _rps(one)
        split = "/".join(
            f"{_median([s['split'][i] for s in two]):.0%}" for i in range(len(two[0]["split"]))
        )
        lines.append(
            f"| {server_name} | {_rps(one):,.0f} ({_range(one)}) | {_rps(two):,.0f} "
            f"({_range(two)}) | {_cpu(one):,.0f} / {_cpu(two):,.0f} µs | {split} | "
            f"{ratio:.2f} | {_verdict(ratio, 1.6)} |"
        )
    return lines


def _render_startup(results: Results) -> list[str]:
    lines = [
        "",
        "### Start-up and memory",
        "",
        "Spawn to the first 200 from `GET /healthz` (medians), and resident memory after the "
        "warm-up (the supervisor of `imperfect serve` builds no app: it checks the "
        "configuration in a child process that exits).",
        "",
        "| what | server | workers | start-up | supervisor RSS | RSS per worker |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for (app, server_name, workers), values in sorted(results.startup.items()):
        memory = results.memory.get((server_name, workers)) if app == "platform" else None
        supervisor = per_worker = "n/a"
        if memory:
            supervisor = f"{_median([m['supervisor'] for m in memory]) / 1024:.0f} MiB"
            sizes = [size for m in memory for size in m["workers"]]
            per_worker = f"{_median(sizes) / 1024:.0f} MiB" if sizes else "n/a"
        elif app != "platform":
            per_worker = "(one process)"
        title = "`imperfect serve`" if app == "platform" else APP_TITLES[app]
        lines.append(
            f"| {title} | {server_name} | {workers} | {_ms(_median(values))} | {supervisor} | "
            f"{per_worker} |"
        )
    return lines


def _render_spec(spec: dict[str, Any]) -> list[str]:
    warm = spec["repeat"] - 1
    return [
        "",
        "### Building the app and its OpenAPI document",
        "",
        "Timed in a fresh interpreter (`tests/bench/spec_timing.py`): `create_app()` as a whole, "
        "and the `core.openapi.build_spec` call inside it (wrapped by a timer, same arguments). "
        f"The first call also imports every family; the warm figure is the median of {warm} "
        "further calls.",
        "",
        "| step | first call | warm |",
        "|---|--:|--:|",
        f"| `import core.app` | {_ms(spec['import_s'])} | n/a |",
        f"| `create_app()` | {_ms(spec['create_app_first_s'])} | "
        f"{_ms(spec['create_app_warm_s'])} |",
        f"| of which `build_spec` | {_ms(spec['build_spec_first_s'])} | "
        f"{_ms(spec['build_spec_warm_s'])} |",
        "",
        f"The document: {spec['paths']} paths, {spec['operations']} operations, "
        f"{spec['schemas']} component schemas, {spec['spec_bytes']:,} bytes.",
    ]


def write_report(section: str, path: Path = DOC) -> None:
    """Replace the text between the result markers of ``path``; nothing outside them changes."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n## Results\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        raise BenchError(f"{path} has no {START} ... {END} region to write the results into")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{section}\n{END}{tail}")


def _list(choices: tuple[str, ...]) -> Any:
    def parse(value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = set(names) - set(choices)
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"expected some of {', '.join(choices)}")
        return names

    return parse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=3, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=100, help="checked requests per endpoint")
    parser.add_argument(
        "--counted", type=int, default=50, help="requests per endpoint for calls/request"
    )
    parser.add_argument("--spec-repeat", type=int, default=7)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--suites", type=_list(SUITES), default=list(SUITES))
    parser.add_argument("--servers", type=_list(SERVERS), default=list(SERVERS))
    parser.add_argument(
        "--databases", type=_list(("sqlite", "postgres")), default=["sqlite", "postgres"]
    )
    parser.add_argument(
        "--tokens", type=_list(("production", "emulator")), default=["production", "emulator"]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a quick look: 1 round of 2 s, 50 warm-up requests, docs untouched",
    )
    parser.add_argument("--keep-log", type=Path, help="copy the servers' log here")
    parser.add_argument(
        "--plugins",
        type=Path,
        default=ROOT / "plugins.toml",
        help="the deployment's families (default: the repository's plugins.toml)",
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not touch docs/")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.warmup, args.no_write = 1, 2, 50, True
    started = time.perf_counter()
    try:
        results = run(args)
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    section = render(results)
    print("\n" + section)
    if not args.no_write:
        write_report(section)
        print(f"\nwrote {DOC.relative_to(ROOT)}")
    print(f"benchmark took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
