"""``imperfect serve`` processes on real ports, for contract and multi-instance tests.

They run the server named by ``IMPERFECT_TEST_SERVER`` (``hypercorn``, the default,
``uvicorn`` or ``granian``), so CI runs the same HTTP tests against more than one server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric import ed25519

from core.testing import write_plugins_file
from tests.support import ROOT
from tests.support.app_attest import FakeAppleCA, attestation_settings
from tests.support.ports import free_port

TEST_SERVER_ENV = "IMPERFECT_TEST_SERVER"


def test_server() -> str:
    """The server the suite's ``imperfect serve`` processes run (default hypercorn)."""
    return os.environ.get(TEST_SERVER_ENV, "") or "hypercorn"


def default_plugins_with_fakes(
    alice_url: str, terra: Any, *, play_integrity: Any = None, cheshire: Any = None
) -> dict[str, Any]:
    """The checked-in plugins.toml, with sibling services pointed at their fakes.

    Webhook secrets get test values (an unconfigured webhook answers 503). A family that
    is off by default but configured for tests here (given its fake) is turned on, one
    statement per family, so the contract test covers it too.
    """
    plugins = tomllib.loads((ROOT / "plugins.toml").read_text())["plugins"]
    plugins["health_providers"]["settings"]["alice_url"] = alice_url
    plugins["health_providers"]["settings"]["redis_url"] = ""
    plugins["terra"]["settings"].update(
        base_url=terra.url, dev_id=terra.dev_id, api_key=terra.api_key, alice_url=alice_url
    )
    channels = plugins["channels"]["settings"]
    channels["whatsapp"].update(app_secret="test-app-secret", verify_token="test-verify-token")
    channels["heylo"]["webhook_secret"] = "test-heylo-webhook-secret-0123456789"
    # Garmin route-send answers 503 unconfigured. Nothing here can reach Garmin (every call
    # to it follows a consent on its screen), so it points at a closed port.
    plugins["public_routes"]["settings"].update(
        garmin_client_id="test-garmin-client",
        garmin_client_secret="test-garmin-secret",
        garmin_token_keys=Fernet.generate_key().decode(),
        garmin_token_url="http://127.0.0.1:9/di-oauth2-service/oauth/token",
        garmin_api_url="http://127.0.0.1:9",
    )
    if cheshire is not None:
        plugins["cheshire"]["settings"].update(base_url=cheshire.url, api_key=cheshire.api_key)
    if play_integrity is not None:
        plugins["attestation"] |= {
            "enabled": True,
            "settings": plugins["attestation"]["settings"]
            | attestation_settings(
                FakeAppleCA(), play_integrity, ed25519.Ed25519PrivateKey.generate()
            ),
        }
    return plugins


@contextmanager
def serving_processes(
    workdir: Path,
    plugins: Mapping[str, Any],
    ports: list[int],
    env: Mapping[str, str],
    timeout: float = 60,
    workers: int = 1,
) -> Iterator[list[str]]:
    """Start one ``imperfect serve`` per port at the same moment; yield their base URLs.

    They share the plugins file and ``env`` (database, Firebase project...), so they
    are instances of one deployment. Each is stopped (its process group) afterwards.
    """
    plugins_file = write_plugins_file(workdir / "plugins.toml", plugins)
    environment = {
        **os.environ,
        "IMPERFECT_PLUGINS_FILE": str(plugins_file),
        "IMPERFECT_ENV": "test",  # the suite's Auth Emulator is refused anywhere else
        **env,
    }
    with ExitStack() as stack:
        servers = []
        for port in ports:
            log = stack.enter_context((workdir / f"serve-{port}.log").open("w"))
            server = subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/imperfect"),
                    "serve",
                    "--port",
                    str(port),
                    "--server",
                    test_server(),
                    "--workers",
                    str(workers),
                ],
                cwd=workdir,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            stack.callback(stop_process_group, server)
            servers.append((port, server))
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + timeout
        for (port, server), base in zip(servers, bases, strict=True):
            wait_until_healthy(base, server, workdir / f"serve-{port}.log", deadline)
        yield bases


@contextmanager
def imperfect_serve(
    workdir: Path, arguments: list[str], env: Mapping[str, str], timeout: float = 60
) -> Iterator[tuple[str, Path]]:
    """``imperfect serve --port P *arguments`` in ``workdir`` with exactly ``env``, until
    ``/healthz`` answers; yields its base URL and log file, and stops it afterwards."""
    port = free_port()
    log_path = workdir / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/imperfect"), "serve", "--port", str(port), *arguments],
            cwd=workdir,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, server, log_path, time.monotonic() + timeout)
        yield base, log_path
    finally:
        stop_process_group(server)


def wait_until_healthy(
    base: str, process: subprocess.Popen[bytes], log_path: Path, deadline: float
) -> None:
    """Poll ``{base}/healthz`` until it answers 200; the server's log in the error when the
    process ends first or ``deadline`` (``time.monotonic()``) passes."""
    while not _healthy(base):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server at {base} did not start:\n{log_path.read_text()}")
        time.sleep(0.2)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process started with ``start_new_session``, and its children; then SIGKILL.

    A group already gone (the server failed to start) is fine: the caller reports why.
    """
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        process.wait()
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
