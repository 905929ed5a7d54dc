"""Schemathesis against the live app, from its own /openapi.json: no 5xx, no schema mismatch."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.emulator import AuthEmulator
from tests.conftest import free_port
from tests.fakes.alice import FakeAlice
from tests.fakes.terra import FakeTerra
from tests.support import ROOT
from tests.support.servers import default_plugins_with_fakes, serving_processes

pytestmark = pytest.mark.schemathesis


@pytest.fixture
def live_server(
    tmp_path: Path,
    database_url: str,
    auth_emulator: AuthEmulator,
    fake_alice: FakeAlice,
    fake_terra: FakeTerra,
) -> Iterator[str]:
    """``imperfect serve`` with every default family, siblings faked on real sockets."""
    env = {
        "DATABASE_URL": database_url,
        "IMPERFECT_AUTO_MIGRATE": "1",
        "FIREBASE_PROJECT_ID": auth_emulator.project_id,
        # Rate limits would answer most generated calls of a limited route with 429 and
        # leave its logic untested; tests/test_rate_limits.py covers the limits.
        "IMPERFECT_RATE_LIMITS": "0",
    }
    plugins = default_plugins_with_fakes(fake_alice.url, fake_terra)
    with serving_processes(tmp_path, plugins, [free_port()], env) as [base]:
        yield base


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
        # Time zones that fit the documented pattern are drawn from the server's zone
        # database, so the run exercises PATCH /users/me beyond its 422.
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(ROOT / "tests/clients/schemathesis_hooks.py")},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "generated" in output and " failed" not in output.split("SUMMARY")[-1], output
