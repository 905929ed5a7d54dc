"""The benchmark: the platform against bare Quart and FastAPI, written to docs/benchmarks.md.

``make bench`` runs this script. Each app (see ``apps.py``) is served by
hypercorn, one worker, in its own process, one app at a time on 127.0.0.1;
the apps take turns in rounds (the order rotates every round) so slow
moments of the machine fall on all of them alike. Each endpoint is loaded by
``wrk`` when it is installed, else by ``loadgen.py``. The run also times the
platform's start-up (process spawn to the first 200 from ``GET /healthz``) and
``create_app`` with its OpenAPI build (``spec_timing.py``), then rewrites the
results section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import tomli_w

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
APPS = ("platform", "quart", "fastapi")
APP_TITLES = {"platform": "platform", "quart": "bare Quart", "fastapi": "FastAPI"}
BENCH_PLUGIN = ("bench", {"module": "tests.bench.echo", "enabled": True})
WORKOUT = {
    "name": "Tuesday track session",
    "sport": "run",
    "tags": ["intervals", "track", "vo2max"],
    "splits": [{"km": 1.0, "seconds": 230 + 3 * lap} for lap in range(8)],
}


@dataclass(frozen=True)
class Target:
    """One benchmarked request."""

    label: str
    method: str
    path: str
    body: str = ""


TARGETS = (
    Target("GET /", "GET", "/"),
    Target("POST /bench/echo", "POST", "/bench/echo", json.dumps(WORKOUT)),
    Target("GET /healthz", "GET", "/healthz"),
)


class BenchError(RuntimeError):
    """The benchmark cannot produce trustworthy numbers (a server failed, a request erred)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port: int, target: Target, timeout: float = 5.0) -> tuple[int, bytes]:
    """One request over a fresh connection, for readiness polls and checks."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if target.body else {}
        connection.request(target.method, target.path, body=target.body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- the environment every server and helper process gets --------------------------------


def prepare(workdir: Path) -> dict[str, str]:
    """Write the benchmark's plugins.toml and return the environment for child processes.

    The file holds every family of the repository's ``plugins.toml`` as configured
    there, plus the ``echo`` family. A setting read from an unset environment
    variable gets a placeholder, so families needing secrets still load; the
    benchmark never reaches the services those secrets are for.
    """
    document = tomllib.loads((ROOT / "plugins.toml").read_text())
    families = dict(document.get("plugins", {}))
    name, table = BENCH_PLUGIN
    if name in families:
        raise BenchError(f"plugins.toml already has a family named {name!r}")
    families[name] = table
    plugins_file = workdir / "plugins.toml"
    plugins_file.write_text(tomli_w.dumps({"plugins": families}))

    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPERFECT_")}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        IMPERFECT_PLUGINS_FILE=str(plugins_file),
        IMPERFECT_ENV="development",
        IMPERFECT_AUTO_MIGRATE="1",
        DATABASE_URL=f"sqlite://{workdir / 'bench.sqlite3'}",
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


# --- servers ---------------------------------------------------------------------------


@contextmanager
def server(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[float]:
    """Spawn a server, yield seconds from spawn to its first 200 on /healthz, stop it after."""
    health = Target("GET /healthz", "GET", "/healthz")
    with log.open("ab") as output:
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
                try:
                    status, _ = request(port, health, timeout=1.0)
                    if status == 200:
                        break
                except OSError:
                    pass
                if time.perf_counter() - started > 60:
                    raise BenchError(f"{' '.join(command)} did not answer in 60 s:\n{_tail(log)}")
                time.sleep(0.005)
            yield time.perf_counter() - started
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (graceful), then SIGKILL to the process group this script created."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def app_command(app: str, port: int, root_document: Path) -> list[str]:
    return [sys.executable, "-m", "tests.bench.serve", app, str(port), str(root_document)]


def cli_command(port: int) -> list[str]:
    """``imperfect serve``, as deployers run it (hypercorn supervisor plus one worker)."""
    imperfect = Path(sys.executable).with_name("imperfect")
    return [str(imperfect), "serve", "--host", "127.0.0.1", "--port", str(port)]


# --- correctness and warm-up -----------------------------------------------------------


def check_and_warm(port: int, expected: dict[str, Any], requests: int) -> None:
    """Every target answers 200 with the expected JSON; also warms the server up."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for target in TARGETS:
            headers = {"Content-Type": "application/json"} if target.body else {}
            for _ in range(requests):
                connection.request(
                    target.method, target.path, body=target.body or None, headers=headers
                )
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    raise BenchError(f"{target.label} answered {response.status}: {body[:300]!r}")
            if json.loads(body) != expected[target.label]:
                raise BenchError(f"{target.label} answered different JSON: {body[:300]!r}")
    finally:
        connection.close()


# --- load ------------------------------------------------------------------------------


def wrk_version() -> str | None:
    if shutil.which("wrk") is None:
        return None
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    first = (result.stdout or result.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"


def load(tool: str, port: int, target: Target, connections: int, duration: int) -> dict[str, Any]:
    """Run the load generator against one target; its JSON summary plus req/s."""
    url = f"http://127.0.0.1:{port}{target.path}"
    if tool == "wrk":
        command = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            "-s",
            str(HERE / "report.lua"),
            url,
        ]
        env = {**os.environ, "BENCH_METHOD": target.method, "BENCH_BODY": target.body}
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
            str(connections),
            "--duration",
            str(duration),
        ]
        env = dict(os.environ)
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=duration + 60)
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if result.returncode != 0 or not lines:
        raise BenchError(f"{command[0]} failed:\n{result.stdout}\n{result.stderr}")
    summary = json.loads(lines[-1].removeprefix("BENCH_JSON "))
    failed = {kind: count for kind, count in summary["errors"].items() if count}
    if failed:
        raise BenchError(f"{target.label} on port {port}: failed requests {failed}")
    summary["rps"] = summary["requests"] / (summary["duration_us"] / 1_000_000)
    return summary


# --- the run ---------------------------------------------------------------------------


def rotate(items: tuple[str, ...] | list[Any], by: int) -> list[Any]:
    by %= len(items)
    return [*items[by:], *items[:by]]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement, as plain data for the report."""
    load_before = os.getloadavg()[0]
    tool = args.loadgen
    tool_version = wrk_version()
    if tool == "auto":
        tool = "wrk" if tool_version else "python"
    if tool == "wrk" and tool_version is None:
        raise BenchError("wrk is not installed (apt-get install wrk), use --loadgen python")
    tool_name = tool_version if tool == "wrk" else "tests/bench/loadgen.py (asyncio)"
    print(f"load generator: {tool_name}", flush=True)

    with tempfile.TemporaryDirectory(prefix="imperfect-bench-") as tmp:
        workdir = Path(tmp)
        env = prepare(workdir)
        log = workdir / "servers.log"
        root_document = workdir / "root.json"

        print("reference run of the platform (applies migrations, records GET / JSON)")
        port = free_port()
        with server(app_command("platform", port, root_document), env, port, log):
            expected: dict[str, Any] = {}
            for target in TARGETS:
                status, body = request(port, target)
                if status != 200:
                    raise BenchError(f"platform {target.label} answered {status}: {body[:300]!r}")
                expected[target.label] = json.loads(body)
        root_document.write_text(json.dumps(expected["GET /"]))

        print("timing create_app and build_spec")
        spec = subprocess.run(
            [sys.executable, "-m", "tests.bench.spec_timing", "--repeat", str(args.spec_repeat)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        spec_lines = [ln for ln in spec.stdout.splitlines() if ln.startswith("BENCH_JSON ")]
        if spec.returncode != 0 or not spec_lines:
            raise BenchError(f"spec timing failed:\n{spec.stdout}\n{spec.stderr}")
        spec_timing = json.loads(spec_lines[-1].removeprefix("BENCH_JSON "))

        samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
        startup: dict[str, list[float]] = {app: [] for app in (*APPS, "cli")}
        for round_number in range(args.rounds):
            for app in rotate(APPS, round_number):
                port = free_port()
                with server(app_command(app, port, root_document), env, port, log) as seconds:
                    startup[app].append(seconds)
                    check_and_warm(port, expected, args.warmup)
                    for target in rotate(list(TARGETS), round_number):
                        summary = load(tool, port, target, args.connections, args.duration)
                        samples.setdefault((app, target.label), []).append(summary)
                        print(
                            f"round {round_number + 1}/{args.rounds} {APP_TITLES[app]:>10} "
                            f"{target.label:<17} {summary['rps']:8.0f} req/s  "
                            f"p50 {summary['p50_us'] / 1000:6.2f} ms  "
                            f"p99 {summary['p99_us'] / 1000:6.2f} ms",
                            flush=True,
                        )
            port = free_port()
            with server(cli_command(port), env, port, log) as seconds:
                startup["cli"].append(seconds)
            latest = ", ".join(f"{key} {_ms(values[-1])}" for key, values in startup.items())
            print(f"round {round_number + 1}/{args.rounds} start-up: {latest}", flush=True)

    return {
        "load_before": load_before,
        "tool": tool_name,
        "tool_kind": tool,
        "args": vars(args),
        "samples": samples,
        "startup": startup,
        "spec": spec_timing,
        "plugins": spec_timing["plugins"],
    }


# --- the report ------------------------------------------------------------------------


def _versions() -> str:
    names = ["quart", "werkzeug", "hypercorn", "pydantic", "pluggy", "fastapi", "starlette"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
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
    return f"{seconds * 1000:.1f} ms"


def _median(values: list[float]) -> float:
    return statistics.median(values)


def render(results: dict[str, Any]) -> str:
    """The generated results section (Markdown), from ``run``'s data."""
    args = results["args"]
    samples = results["samples"]
    rounds = args["rounds"]
    lines = [
        f"Generated by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"at commit {_commit()}.",
        "",
        f"- Machine: {os.cpu_count()} cores ({_cpu_model()}), {platform.platform()}, "
        f"Python {platform.python_version()}; load average "
        f"{results['load_before']:.2f} before the run, {os.getloadavg()[0]:.2f} after "
        "(other work on the machine shows up as noise).",
        f"- Packages: {_versions()}.",
        f"- Load generator: **{results['tool']}**, 1 thread, {args['connections']} keep-alive "
        f"connections, {args['duration']} s per measurement, {rounds} round(s) "
        f"(app order rotated every round), after {args['warmup']} checked warm-up requests "
        "per endpoint.",
        "- Server: hypercorn, one process, one worker, asyncio event loop, access log off.",
        f"- Platform families loaded: {', '.join(results['plugins'])}.",
        "",
        "### Throughput and latency",
        "",
        f"Medians over {rounds} round(s); the range is the lowest and highest round. "
        "Latencies are measured under that full load (closed loop), so they include queueing.",
        "",
        "| endpoint | app | req/s | req/s range | p50 latency | p99 latency | vs bare Quart |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    ratios: dict[str, float] = {}
    for target in TARGETS:
        bare = _median([s["rps"] for s in samples[("quart", target.label)]])
        for app in APPS:
            runs = samples[(app, target.label)]
            rps = [s["rps"] for s in runs]
            ratio = _median(rps) / bare
            if app == "platform":
                ratios[target.label] = ratio
            lines.append(
                f"| `{target.label}` | {APP_TITLES[app]} | {_median(rps):,.0f} | "
                f"{min(rps):,.0f} to {max(rps):,.0f} | "
                f"{_median([s['p50_us'] for s in runs]) / 1000:.2f} ms | "
                f"{_median([s['p99_us'] for s in runs]) / 1000:.2f} ms | {ratio:.2f} |"
            )
    lines += ["", "Platform throughput as a share of bare Quart's (target: at least 0.90):", ""]
    for label, ratio in ratios.items():
        if ratio >= 1:
            lines.append(f"- `{label}`: {ratio:.2f}, no measurable cost; meets the target.")
        else:
            verdict = "meets the target" if ratio >= 0.90 else "**misses the target**"
            lines.append(f"- `{label}`: {ratio:.2f}, a {1 - ratio:.0%} cost; {verdict}.")

    startup = results["startup"]
    lines += [
        "",
        "### Start-up",
        "",
        "Process spawn to the first 200 from `GET /healthz`, one sample per round.",
        "",
        "| server | median | min | max |",
        "|---|--:|--:|--:|",
    ]
    rows = [
        ("platform (`python -m tests.bench.serve platform`)", "platform"),
        ("platform via `imperfect serve` (supervisor + 1 worker)", "cli"),
        ("bare Quart", "quart"),
        ("FastAPI", "fastapi"),
    ]
    for title, key in rows:
        values = startup[key]
        lines.append(
            f"| {title} | {_ms(_median(values))} | {_ms(min(values))} | {_ms(max(values))} |"
        )

    spec = results["spec"]
    warm = spec["repeat"] - 1
    lines += [
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
    return "\n".join(lines)


def write_report(section: str, path: Path = DOC) -> None:
    """Replace the text between the result markers of ``path`` (create it if missing)."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n## Results\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n## Results\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{section}\n{END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=3, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=200, help="checked requests per endpoint")
    parser.add_argument("--spec-repeat", type=int, default=7)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch docs/")
    args = parser.parse_args()
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
