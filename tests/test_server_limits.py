"""Server limits under ``imperfect serve``, on every server: slow clients do not starve others.

600 connections from one client that send nothing or dribble a request line leave another
client's requests answered within a second; a request whose headers arrive too slowly is
disconnected (``header_timeout``; hypercorn: its idle timer, ``keep_alive_timeout``); and
beyond ``max_connections`` per worker a new connection is refused with a 503.
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core import serving
from tests.support import ROOT
from tests.support.ports import free_port
from tests.support.servers import stop_process_group

IMPERFECT = ROOT / ".venv/bin/imperfect"
SLOW_CONNECTIONS = 600
LIMITS = "header_timeout = 2\nkeep_alive_timeout = 4\nmax_connections = 1000\n"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(
    params=[
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                name != "hypercorn" and importlib.util.find_spec(name) is None,
                reason=f"{name} is not installed (the servers extra)",
            ),
        )
        for name in serving.SERVERS
    ]
)
def server_name(request: pytest.FixtureRequest) -> str:
    return request.param


def _serve(workdir: Path, server: str, settings: str) -> tuple[subprocess.Popen[bytes], int]:
    (workdir / "plugins.toml").write_text("")
    (workdir / "server.toml").write_text(settings)
    port = free_port()
    log = (workdir / "serve.log").open("w")
    process = subprocess.Popen(
        [str(IMPERFECT), "serve", "--migrate", "--port", str(port), "--server", server],
        cwd=workdir,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(workdir),
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": f"sqlite://{workdir}/limits.sqlite3",
            serving.CONFIG_ENV: str(workdir / "server.toml"),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process_group(process)
            raise RuntimeError((workdir / "serve.log").read_text())
        time.sleep(0.2)


@pytest.fixture
def limited(tmp_path: Path, server_name: str) -> Iterator[tuple[str, int]]:
    process, port = _serve(tmp_path, server_name, LIMITS)
    try:
        yield server_name, port
    finally:
        stop_process_group(process)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(False)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slow_connections_do_not_starve_another_client(limited: tuple[str, int]) -> None:
    _, port = limited
    slow = [_connect(port) for _ in range(SLOW_CONNECTIONS)]
    stop = threading.Event()

    def dribble() -> None:  # every other connection: a request line, one byte at a time
        line = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        sent = 0
        while not stop.wait(0.25) and sent < len(line):
            for sock in slow[::2]:
                with contextlib.suppress(OSError):
                    sock.send(line[sent : sent + 1])
            sent += 1

    thread = threading.Thread(target=dribble, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        for _ in range(10):
            started = time.monotonic()
            with httpx.Client() as other:  # a new connection each time
                answer = other.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            assert answer.status_code == 200
            assert time.monotonic() - started < 1.0
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join()
        for sock in slow:
            sock.close()


def test_a_request_whose_headers_dribble_is_disconnected(limited: tuple[str, int]) -> None:
    server, port = limited
    bound = 4 if server == "hypercorn" else 2  # hypercorn: keep_alive_timeout bounds headers
    sock = _connect(port)
    started = time.monotonic()
    try:
        line = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        for index in range(len(line)):
            if _closed_by_server(sock):
                break
            try:
                sock.send(line[index : index + 1])
            except OSError:
                break
            time.sleep(0.1)
            assert time.monotonic() - started < bound + 3, "still open"
        assert time.monotonic() - started < bound + 3
    finally:
        sock.close()


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(
    limited: tuple[str, int],
) -> None:
    server, port = limited
    bound = 2 if server == "granian" else 4  # granian: header_read_timeout, also when idle
    sock = _connect(port)
    started = time.monotonic()
    try:
        while not _closed_by_server(sock):
            assert time.monotonic() - started < bound + 3, "still open"
            time.sleep(0.1)
        assert time.monotonic() - started >= bound - 0.5
    finally:
        sock.close()


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
def test_connections_beyond_the_cap_get_503(tmp_path: Path, server: str) -> None:
    if importlib.util.find_spec(server) is None:
        pytest.skip(f"{server} is not installed")
    process, port = _serve(tmp_path, server, "max_connections = 20\n")
    held = [_connect(port) for _ in range(25)]
    try:
        time.sleep(0.5)
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert answer.status_code == 503
    finally:
        for sock in held:
            sock.close()
        stop_process_group(process)
    # once they are gone, new connections are served again
