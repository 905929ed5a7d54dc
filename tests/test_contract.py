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
from tests.fakes.alice import FakeAlice
from tests.fakes.cheshire import FakeCheshire
from tests.fakes.play_integrity import FakePlayIntegrity
from tests.fakes.terra import FakeTerra
from tests.support import ROOT
from tests.support.ports import free_port
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
    """``imperfect serve`` with every default family, and the families configured for
    tests (attestation), siblings faked on real sockets (alice, Terra, Play Integrity,
    cheshire)."""
    env = {
        "DATABASE_URL": database_url,
        "IMPERFECT_AUTO_MIGRATE": "1",
        "FIREBASE_PROJECT_ID": auth_emulator.project_id,
        # Rate limits would answer most generated calls of a limited route with 429 and
        # leave its logic untested; tests/test_rate_limits.py covers the limits.
        "IMPERFECT_RATE_LIMITS": "0",
    }
    play_integrity, cheshire = FakePlayIntegrity().start(), FakeCheshire().start()
    try:
        plugins = default_plugins_with_fakes(
            fake_alice.url, fake_terra, play_integrity=play_integrity, cheshire=cheshire
        )
        with serving_processes(tmp_path, plugins, [free_port()], env) as [base]:
            yield base
    finally:
        play_integrity.stop()
        cheshire.stop()


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
        # The hooks draw time zones, phone numbers and GPX uploads that the server can
        # accept (see the hooks' docstring); they import from tests/, hence the path.
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": str(ROOT / "tests/clients/schemathesis_hooks.py"),
            "PYTHONPATH": str(ROOT),
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.split("SUMMARY")[-1]
    # Warnings are not failures: "Authentication failed" is schemathesis's note that a
    # route answered only 401/403, as the routes taking a signed proof (the attestation and
    # health-probe routes) do to generated data; tests/test_attestation.py passes them.
    assert "generated" in summary, output
    assert "Failures:" not in summary and "Errors:" not in summary, output
