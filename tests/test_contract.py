"""Schemathesis against the live app, from its own /openapi.json: no 5xx, no schema mismatch."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.emulator import AuthEmulator
from core.testing import write_plugins_file
from tests.conftest import ROOT, free_port
from tests.fakes.alice import FakeAlice
from tests.fakes.terra import FakeTerra

pytestmark = pytest.mark.schemathesis


def _default_plugins_with_fakes(alice: FakeAlice, terra: FakeTerra) -> dict[str, Any]:
    """The checked-in plugins.toml, with sibling services pointed at their fakes."""
    plugins = tomllib.loads((ROOT / "plugins.toml").read_text())["plugins"]
    plugins["health_providers"]["settings"]["alice_url"] = alice.url
    plugins["health_providers"]["settings"]["redis_url"] = ""
    plugins["terra"]["settings"].update(
        base_url=terra.url, dev_id=terra.dev_id, api_key=terra.api_key
    )
    return plugins


@pytest.fixture
def live_server(
    tmp_path: Path,
    database_url: str,
    auth_emulator: AuthEmulator,
    fake_alice: FakeAlice,
    fake_terra: FakeTerra,
) -> Iterator[str]:
    """``imperfect serve`` with every default family, siblings faked on real sockets."""
    port = free_port()
    plugins_file = write_plugins_file(
        tmp_path / "plugins.toml", _default_plugins_with_fakes(fake_alice, fake_terra)
    )
    env = {
        **os.environ,
        "IMPERFECT_PLUGINS_FILE": str(plugins_file),
        "DATABASE_URL": database_url,
        "IMPERFECT_AUTO_MIGRATE": "1",
        "FIREBASE_PROJECT_ID": auth_emulator.project_id,
    }
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/imperfect"), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
        log.close()


def test_schemathesis_finds_no_server_error_or_schema_mismatch(
    live_server: str, auth_emulator: AuthEmulator, tmp_path: Path
) -> None:
    account = auth_emulator.sign_up(f"contract-{uuid.uuid4().hex[:8]}@example.com", "pass-word-1")
    bearer = f"Bearer {account.id_token}"
    assert httpx.post(f"{live_server}/users", headers={"Authorization": bearer}).status_code == 201
    result = subprocess.run(
        [
            str(ROOT / ".venv/bin/schemathesis"),
            "run",
            f"{live_server}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--generation-deterministic",
            "--header",
            f"Authorization: {bearer}",
            # DELETE /account would delete the Firebase user whose token the run uses
            # (tests/test_users_lifecycle.py covers it).
            "--exclude-operation-id",
            "delete_account_account_delete",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "generated" in output and " failed" not in output.split("SUMMARY")[-1], output
