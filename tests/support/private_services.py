"""A PostgreSQL of a test's own, on its own port, to kill and restart.

Fault tests must not touch the machine's shared services, so they start a private one:
``initdb`` into a temporary folder (run as the ``postgres`` user when the tests run as
root, since PostgreSQL refuses to run as root), stopped with its process group at the end
of the test.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.ports import free_port


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.skip(f"PostgreSQL server binaries ({name}) are not installed")
    return found[-1]


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class PrivatePostgres:
    """One PostgreSQL cluster in a folder of its own, listening on its own port.

    The folder is made directly under the system's temporary directory (not pytest's, whose
    parents only root may enter) and given to the ``postgres`` user when running as root.
    """

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="imperfect-pg-"))
        self.data = self.directory / "pgdata"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    _postgres_bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        log = (self.directory / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            _as_postgres(
                [
                    _postgres_bin("postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.directory),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=50",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_for_port(self.port, 30)

    def kill(self) -> None:
        """Stop at once, as a crash would (``SIGQUIT``: immediate shutdown)."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGQUIT)
            self.process.wait(timeout=30)
            self.process = None


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.directory, ignore_errors=True)
