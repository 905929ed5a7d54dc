"""``imperfect serve --server hypercorn|uvicorn|granian --workers N``, as real processes.

Every server runs the same app factory and lifespan with the same deployment settings
(no ``server`` header, the escaped access line with the request id, a graceful stop on
SIGTERM); workers bind their own ``SO_REUSEPORT`` sockets, so new connections are spread
over them; a message queued while two workers' outbox dispatchers poll is handled once.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from core import serving
from core.emulator import AuthEmulator
from core.errors import ConfigError
from tests.fakes.alice import FakeAlice
from tests.fakes.fcm import FakeFcm
from tests.fakes.terra import FakeTerra
from tests.support import ROOT, bearer, fcm_token, new_account, users_family
from tests.support.ports import free_port
from tests.support.servers import default_plugins_with_fakes, serving_processes, stop_process_group

IMPERFECT = ROOT / ".venv/bin/imperfect"
SERVE = [str(IMPERFECT), "serve"]
CHATTY = '[plugins.chatty]\nmodule = "tests.plugins.chatty"\n'
SERVERS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            name != "hypercorn" and importlib.util.find_spec(name) is None,
            reason=f"{name} is not installed (the servers extra)",
        ),
    )
    for name in serving.SERVERS
]


def _env(workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "PYTHONPATH": str(ROOT),  # tests.plugins.chatty
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": f"sqlite://{workdir}/serve.sqlite3",
        **extra,
    }


@contextmanager
def served(
    workdir: Path, server: str, workers: int, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``imperfect serve --migrate`` of the chatty family; (base URL, process, log file)."""
    (workdir / "plugins.toml").write_text(CHATTY)
    port = free_port()
    log_path = workdir / f"serve-{server}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                *SERVE,
                "--migrate",
                "--port",
                str(port),
                "--server",
                server,
                "--workers",
                str(workers),
            ],
            cwd=workdir,
            env=_env(workdir, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        started: set[int] = set()
        while len(started) < workers:  # every worker answers before the test starts
            try:
                with httpx.Client() as client:
                    started.add(client.get(f"{base}/chatty/hello", timeout=1).json()["pid"])
            except httpx.HTTPError:
                time.sleep(0.1)
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start:\n{log_path.read_text()}")
        yield base, process, log_path
    finally:
        if process.poll() is None:
            stop_process_group(process)


@pytest.mark.parametrize("server", SERVERS)
def test_every_server_serves_the_same_app_with_the_same_settings(
    tmp_path: Path, server: str
) -> None:
    with served(tmp_path, server, 2) as (base, process, log_path):
        answer = httpx.get(f"{base}/chatty/hello", headers={"X-Request-ID": "req-123"})
        assert answer.status_code == 200 and answer.headers["x-request-id"] == "req-123"
        if server != "granian":  # granian always names itself (docs/deploying.md)
            assert "server" not in answer.headers
        escaped = httpx.get(f"{base}/chatty/%0Afake", timeout=5)
        assert escaped.status_code == 404
        access = '"GET /chatty/hello 1.1" 200'
        deadline = time.monotonic() + 10
        while True:
            output = log_path.read_text()
            lines = [x for x in output.splitlines() if access in x and "rid=req-123" in x]
            if lines and "\\x0afake" in output:
                break
            assert time.monotonic() < deadline, output
            time.sleep(0.1)
        assert "/chatty/\\x0afake" in output and "\nfake" not in output
        assert "configuration checked in a child process" in output
        os.killpg(process.pid, signal.SIGTERM)  # the whole group, as a process manager may
        assert process.wait(timeout=30) == 0, log_path.read_text()
        assert "Traceback" not in log_path.read_text()


@pytest.mark.parametrize("server", SERVERS)
def test_workers_share_new_connections(tmp_path: Path, server: str) -> None:
    with served(tmp_path, server, 2) as (base, _, _):
        counts: collections.Counter[int] = collections.Counter()
        for _ in range(80):  # a new connection each time
            with httpx.Client() as client:
                counts[client.get(f"{base}/chatty/hello", timeout=5).json()["pid"]] += 1
        assert len(counts) == 2, counts
        assert min(counts.values()) >= 16, counts  # each worker takes at least a fifth


def test_which_workers_are_pinned_to_a_cpu_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {2, 5, 7})
    assert serving.worker_cpus("auto", "granian", 2) == (2, 5)
    assert serving.worker_cpus("auto", "granian", 3) == (2, 5, 7)
    assert serving.worker_cpus("auto", "granian", 4) == ()  # not a CPU each: the kernel decides
    assert serving.worker_cpus("auto", "granian", 1) == ()
    assert serving.worker_cpus("auto", "uvicorn", 2) == ()
    assert serving.worker_cpus("on", "hypercorn", 2) == (2, 5)
    assert serving.worker_cpus("off", "granian", 2) == ()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin two workers")
@pytest.mark.parametrize(
    ("server", "pin", "pinned"),
    [
        pytest.param(
            "granian",
            "auto",
            True,
            marks=pytest.mark.skipif(
                importlib.util.find_spec("granian") is None, reason="granian is not installed"
            ),
        ),
        ("hypercorn", "auto", False),
        ("hypercorn", "on", True),
    ],
)
def test_pinned_workers_each_run_on_a_cpu_of_their_own(
    tmp_path: Path, server: str, pin: str, pinned: bool
) -> None:
    named = tmp_path / "server.toml"
    named.write_text(f"pin_workers = {pin!r}\n")
    with served(tmp_path, server, 2, IMPERFECT_HYPERCORN_CONFIG=str(named)) as (base, _, log):
        pids: set[int] = set()
        while len(pids) < 2:  # a new connection each time, until both workers answered
            with httpx.Client() as client:
                pids.add(client.get(f"{base}/chatty/hello", timeout=5).json()["pid"])
        affinities = [os.sched_getaffinity(pid) for pid in pids]
        usable = sorted(os.sched_getaffinity(0))
        if pinned:
            assert sorted(affinities, key=min) == [{usable[0]}, {usable[1]}]
            assert f"workers pinned to CPUs: {usable[0]},{usable[1]}" in log.read_text()
        else:
            assert affinities == [set(usable), set(usable)]
            assert "workers pinned to CPUs: no" in log.read_text()


def test_a_start_up_refused_under_another_server_is_one_line(tmp_path: Path) -> None:
    server = "uvicorn" if importlib.util.find_spec("uvicorn") else "hypercorn"
    (tmp_path / "plugins.toml").write_text(CHATTY)
    result = subprocess.run(  # no --migrate, no IMPERFECT_AUTO_MIGRATE: workers refuse
        [*SERVE, "--port", str(free_port()), "--server", server, "--workers", "2"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [result.stderr.splitlines()[-1]]
    assert errors[0].startswith("error: start-up failed: unapplied migrations: core.0001")
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "plugins.toml").write_text(CHATTY)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(IMPERFECT), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr == f"error: cannot listen on 127.0.0.1:{port}: address already in use\n"


def test_own_settings_are_checked_and_the_file_limit_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = tmp_path / "server.toml"
    named.write_text("header_timeout = 3\nmax_connections = 7\nevent_loop = 'asyncio'\n")
    monkeypatch.setenv(serving.CONFIG_ENV, str(named))
    plan = serving.serving_plan("hypercorn", "127.0.0.1", 9000, 2)
    assert plan.limits.header_timeout == 3 and plan.limits.max_connections == 7
    assert plan.config.worker_class == "asyncio" and plan.config.keep_alive_timeout == 75
    named.write_text("header_timeout = 'soon'\n")
    with pytest.raises(ConfigError, match="header_timeout"):
        serving.serving_plan("hypercorn", "127.0.0.1", 9000, 1)
    with pytest.raises(ConfigError, match="unknown server"):
        serving.serving_plan("gunicorn", "127.0.0.1", 9000, 1)
    import resource

    soft, hard = serving.raise_nofile()
    assert (soft, hard) == resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == hard or hard == resource.RLIM_INFINITY


def test_two_workers_handle_a_queued_message_once(
    tmp_path: Path,
    database_url: str,
    auth_emulator: AuthEmulator,
    fake_alice: FakeAlice,
    fake_terra: FakeTerra,
    fake_fcm: FakeFcm,
) -> None:
    """Both workers' outbox dispatchers poll every 0.1 s; the push is delivered once."""
    plugins = default_plugins_with_fakes(fake_alice.url, fake_terra)
    plugins["users"] = users_family(fake_fcm.url)
    env = {
        "DATABASE_URL": database_url,
        "IMPERFECT_AUTO_MIGRATE": "1",
        "FIREBASE_PROJECT_ID": auth_emulator.project_id,
        "IMPERFECT_OUTBOX_INTERVAL": "0.1",
    }
    with serving_processes(tmp_path, plugins, [free_port()], env, workers=2) as [base]:
        headers = bearer(new_account(auth_emulator))
        assert httpx.post(f"{base}/users", headers=headers).status_code == 201
        token = fcm_token()
        device = {"token": token, "platform": "android"}
        registered = httpx.post(f"{base}/notifications/devices", json=device, headers=headers)
        assert registered.status_code == 201, registered.text
        assert httpx.post(f"{base}/notifications/test", headers=headers).status_code == 202
        deadline = time.monotonic() + 15
        while not fake_fcm.received_by(token) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # ten more polls of each worker's dispatcher: a second send would show
        assert len(fake_fcm.received_by(token)) == 1
