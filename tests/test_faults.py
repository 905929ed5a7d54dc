"""Outages injected into real servers: a dependency down is a 503 naming it, never a 500.

- PostgreSQL killed for five seconds under steady signed-in and public load against
  ``imperfect serve``: every refused request is ``503 database_unavailable`` with
  ``Retry-After``, none is a 500, the service recovers without a restart, and the log
  says so in about a line a second (no traceback per request).
- A start-up that cannot reach its database, or whose SQLite folder is read-only, exits
  non-zero with one line naming the cause.
- alice down: ``/readyz`` stays 200 (``degraded``), alice's routes answer 502 naming it,
  and the routes that do not need alice work.

Each test runs well under a minute; the private PostgreSQL is the test's own
(:mod:`tests.support.private_services`), never the machine's shared one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from core.emulator import AuthEmulator
from tests.fakes.alice import FakeAlice
from tests.fakes.terra import FakeTerra
from tests.health_support import families, member
from tests.support import ROOT, bearer, new_account
from tests.support.ports import free_port
from tests.support.private_services import private_postgres
from tests.support.servers import default_plugins_with_fakes, serving_processes

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

IMPERFECT = Path(sys.executable).parent / "imperfect"
OUTAGE_SECONDS = 5.0


@dataclass
class Answer:
    at: float
    route: str
    status: int
    retry_after: str | None = None
    code: str | None = None


@dataclass
class Load:
    """Threads sending requests in a loop, recording every answer (or a transport error)."""

    base: str
    headers: dict[str, str]
    answers: list[Answer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def routes(self) -> list[tuple[str, dict[str, str]]]:
        callback = "/health-providers/garmin/callback?state=" + "s" * 32 + "&code=c"
        return [("/users/me", self.headers), (callback, {})]

    def _run(self, route: str, headers: dict[str, str]) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self.stop.is_set():
                try:
                    response = client.get(route, headers=headers)
                except httpx.HTTPError as error:
                    self.errors.append(f"{route}: {error!r}")
                    time.sleep(0.05)
                    continue
                code = None
                if response.headers.get("content-type", "").startswith("application/json"):
                    body = response.json()
                    code = body.get("code") if isinstance(body, dict) else None
                self.answers.append(
                    Answer(
                        time.monotonic(),
                        route.split("?")[0],
                        response.status_code,
                        response.headers.get("Retry-After"),
                        code,
                    )
                )
                time.sleep(0.01)

    @contextlib.contextmanager
    def running(self, per_route: int = 2) -> Iterator[Load]:
        threads = [
            threading.Thread(target=self._run, args=route, daemon=True)
            for route in self.routes()
            for _ in range(per_route)
        ]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(15)

    def since(self, moment: float) -> list[Answer]:
        return [a for a in self.answers if a.at >= moment]


def _succeeded(answer: Answer) -> bool:
    return answer.status in (200, 302)


def _until(predicate, timeout: float, what: str, log: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            lines = log.read_text().splitlines() if log is not None else []
            tail = "\n".join([line for line in lines if '] "GET /' not in line][-40:])
            pytest.fail(f"not within {timeout}s: {what}\n{tail}")
        time.sleep(0.1)


def test_postgres_killed_under_load_answers_503_and_recovers_without_a_restart(
    tmp_path: Path,
    auth_emulator: AuthEmulator,
    fake_alice: FakeAlice,
    fake_terra: FakeTerra,
) -> None:
    started = time.monotonic()
    with private_postgres() as postgres:
        plugins = default_plugins_with_fakes(fake_alice.url, fake_terra)
        env = {
            "DATABASE_URL": postgres.url,
            "IMPERFECT_AUTO_MIGRATE": "1",
            "FIREBASE_PROJECT_ID": auth_emulator.project_id,
            "IMPERFECT_OUTBOX_INTERVAL": "0.2",  # the dispatcher polls the database too
        }
        port = free_port()
        with serving_processes(tmp_path, plugins, [port], env) as [base]:
            headers = bearer(new_account(auth_emulator))
            assert httpx.post(f"{base}/users", headers=headers).status_code == 201
            load = Load(base, headers)
            with load.running():
                _until(lambda: len(load.answers) > 20, 10, "the load runs")
                killed = time.monotonic()
                postgres.kill()
                time.sleep(OUTAGE_SECONDS / 2)
                ready = httpx.get(f"{base}/readyz", timeout=10)
                time.sleep(OUTAGE_SECONDS / 2)
                postgres.start()
                restarted = time.monotonic()
                _until(
                    lambda: sum(_succeeded(a) for a in load.since(restarted)) > 10,
                    20,
                    "requests succeed again after PostgreSQL restarts",
                )
                recovered = time.monotonic()
                server_log = tmp_path / f"serve-{port}.log"
                _until(
                    lambda: "database available again" in server_log.read_text(),
                    15,
                    "the recovery is logged",
                    server_log,
                )
                time.sleep(0.5)  # and requests go on succeeding
            after = httpx.get(f"{base}/readyz", timeout=10)
        log = (tmp_path / f"serve-{port}.log").read_text()

    answers = load.answers
    assert not load.errors, load.errors[:5]
    statuses = {a.status for a in answers}
    assert 500 not in statuses, [a for a in answers if a.status == 500][:5]
    refused = [a for a in answers if not _succeeded(a)]
    assert len(refused) > 10, "the outage was not seen"
    for answer in refused:
        assert answer.status == 503, answer
        assert answer.code == "database_unavailable", answer
        assert answer.retry_after is not None and 1 <= int(answer.retry_after) <= 10, answer
    assert {a.route for a in refused} == {"/users/me", "/health-providers/garmin/callback"}
    assert all(_succeeded(a) for a in answers if a.at < killed)
    assert all(_succeeded(a) for a in answers if a.at > recovered + 0.5)

    # /readyz during the outage: 503 with the database failing, no host or port in the body
    assert ready.status_code == 503 and ready.headers["Retry-After"]
    report = ready.json()
    assert report["ready"] is False and report["status"] == "not_ready"
    assert report["database"]["ok"] is False
    assert str(postgres.port) not in ready.text and "127.0.0.1" not in ready.text
    assert after.status_code == 200 and after.json()["database"]["ok"] is True, after.text

    # the log: no traceback, and about one line a second about the outage
    application = [line for line in log.splitlines() if '] "GET /' not in line]
    assert "Traceback" not in log, "\n".join(application[-80:])
    lines = [line for line in application if "database unavailable" in line]
    assert "database unavailable (" in lines[0] and "Error" in lines[0], lines[0]  # the cause
    outage = recovered - killed
    assert 2 <= len(lines) <= outage + 3, (len(lines), outage, lines)
    assert any("requests refused in the last" in line for line in lines), lines
    assert sum("database available again" in line for line in log.splitlines()) == 1
    assert time.monotonic() - started < 60


def _serve_once(workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``imperfect serve`` that is expected to refuse to start."""
    environment = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        "IMPERFECT_PLUGINS_FILE": str(ROOT / "plugins.toml"),
        "IMPERFECT_ENV": "test",
        "IMPERFECT_AUTO_MIGRATE": "1",
        **env,
    }
    return subprocess.run(
        [str(IMPERFECT), "serve", "--port", str(free_port())],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=50,
    )


def _refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def test_a_start_up_that_cannot_reach_its_database_exits_with_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = _serve_once(tmp_path, {"DATABASE_URL": f"postgres://app:secret@127.0.0.1:{port}/app"})
    line = _refusal(result)
    assert line == (
        f"error: start-up failed: the database at postgres://127.0.0.1:{port}/app "
        "is unreachable: connection refused"
    )
    assert "secret" not in result.stdout + result.stderr


@contextlib.contextmanager
def read_only_folder() -> Iterator[Path]:
    """A folder nobody can write to: permissions, or a read-only bind mount for root."""
    base = Path(tempfile.mkdtemp(prefix="imperfect-ro-"))
    source, folder = base / "source", base / "data"
    source.mkdir()
    folder.mkdir()
    mounted = False
    try:
        if os.geteuid() == 0:  # root writes through permissions
            mount = shutil.which("mount")
            done = mount and subprocess.run(
                [mount, "--bind", "-o", "ro", str(source), str(folder)], capture_output=True
            )
            if not done or done.returncode != 0:
                pytest.skip("running as root without mount: cannot make a read-only folder")
            mounted = True
        else:
            folder.chmod(0o555)
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=False)
        folder.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_a_start_up_on_a_read_only_sqlite_folder_exits_with_one_line(tmp_path: Path) -> None:
    with read_only_folder() as folder:
        result = _serve_once(tmp_path, {"DATABASE_URL": f"sqlite://{folder}/imperfect.sqlite3"})
    assert _refusal(result) == f"error: start-up failed: the SQLite folder {folder} is read-only"


async def test_alice_down_degrades_readiness_and_only_alice_routes_fail(
    app_client, auth_emulator: AuthEmulator
) -> None:
    fake_alice = FakeAlice().start()
    stopped = False
    try:
        async with app_client(families(fake_alice.url)) as client:
            ann = await member(client, auth_emulator)
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and (await ready.get_json())["status"] == "ready"

            fake_alice.stop()
            stopped = True
            ready = await client.get("/readyz")
            report = await ready.get_json()
            assert ready.status_code == 200, report
            assert report["ready"] is True and report["status"] == "degraded"
            assert report["degraded"] == ["health_providers"]
            alice = report["plugins"]["health_providers"]["checks"]["alice"]
            assert alice == {"ok": False, "error": "unreachable", "detail": None}
            port = fake_alice.url.rsplit(":", 1)[1]
            assert port not in str(report) and "127.0.0.1" not in str(report)

            garmin = await client.get("/health-providers/garmin", headers=ann.headers)
            assert garmin.status_code in (502, 503, 504)
            assert "alice" in (await garmin.get_json())["detail"]
            me = await client.get("/users/me", headers=ann.headers)
            assert me.status_code == 200
            catalogue = await client.get("/health-providers", headers=ann.headers)
            assert catalogue.status_code == 200
            assert {p["name"] for p in (await catalogue.get_json())["providers"]} >= {"garmin"}
    finally:
        if not stopped:
            fake_alice.stop()
