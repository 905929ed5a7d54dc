"""Clients generated from docs/openapi.json with their generators' defaults, against the app.

- Python: openapi-python-client (the test extra) generates a client with zero warnings,
  which drives a signed-in journey, unchanged, against ``imperfect serve`` on the emulator.
- TypeScript: openapi-typescript (tools/package.json) generates types, and
  tests/clients/journey.ts type-checks against them with ``tsc --noEmit --strict``.

Outside CI each skips, saying why, when its generator is not installed; in CI (``CI`` set,
as .ci/run does after ``npm ci --prefix tools``) a missing generator fails.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from core.emulator import AuthEmulator
from tests.fakes.alice import FakeAlice
from tests.fakes.terra import FakeTerra
from tests.support import PASSWORD, ROOT
from tests.support.ports import free_port
from tests.support.servers import default_plugins_with_fakes, serving_processes

pytestmark = pytest.mark.clients

SPEC = ROOT / "docs" / "openapi.json"
VENV_BIN = Path(sys.executable).parent
TOOLS_BIN = ROOT / "tools" / "node_modules" / ".bin"
PACKAGE = "imperfect_api_client"


def require(path: Path, how: str) -> Path:
    """``path``, or a skip naming ``how`` to install it (a failure in CI)."""
    if not path.exists():
        message = f"{path.relative_to(ROOT)} is missing: {how}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must run the client generators)")
        pytest.skip(message)
    return path


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


# --- Python ----------------------------------------------------------------------------------


@pytest.fixture
def python_client(tmp_path: Path) -> Iterator[ModuleType]:
    """The client openapi-python-client generates (docs/clients.md's configuration), imported."""
    generator = require(
        VENV_BIN / "openapi-python-client", "pip install -e '.[test]' (openapi-python-client)"
    )
    result = run(
        [
            str(generator),
            "generate",
            "--path",
            str(SPEC),
            "--output-path",
            "client",
            "--config",
            str(ROOT / "tests/clients/openapi-python-client.yaml"),
        ],
        tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output  # zero warnings, post-hooks included
    sys.path.insert(0, str(tmp_path / "client"))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path / "client"))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


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
    }
    plugins = default_plugins_with_fakes(fake_alice.url, fake_terra)
    workdir = tmp_path / "server"
    workdir.mkdir()
    with serving_processes(workdir, plugins, [free_port()], env) as [base]:
        yield base


def module(client: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{client.__name__}.{name}")


def test_generated_python_client_drives_a_signed_in_journey(
    python_client: ModuleType, live_server: str, auth_emulator: AuthEmulator
) -> None:
    users = "api.users."
    create_user = module(python_client, users + "create_user_users_post")
    read_me = module(python_client, users + "read_me_users_me_get")
    update_me = module(python_client, users + "update_me_users_me_patch")
    create_profile = module(python_client, users + "create_profile_users_profiles_post")
    list_profiles = module(python_client, users + "list_profiles_users_profiles_get")
    list_providers = module(
        python_client, "api.health_providers.list_providers_health_providers_get"
    )
    readiness = module(python_client, "api.core.readiness_readyz_get")
    models = module(python_client, "models")

    account = auth_emulator.sign_up(f"client-{uuid.uuid4().hex[:10]}@example.com", PASSWORD)
    signed_in = python_client.AuthenticatedClient(base_url=live_server, token=account.id_token)
    anonymous = python_client.Client(base_url=live_server)

    created = create_user.sync_detailed(client=signed_in)
    assert created.status_code == 201
    assert isinstance(created.parsed, models.UserOut)
    me = read_me.sync(client=signed_in)
    assert isinstance(me, models.UserOut) and me.firebase_uid == account.uid

    # The time zone a response holds can be sent back as it is; only what is set is sent.
    patch = models.UserPatch(display_name="Ana Runner", timezone=me.timezone)
    patch.units = models.Units.IMPERIAL
    updated = update_me.sync(client=signed_in, body=patch)
    assert isinstance(updated, models.UserOut)
    assert (updated.display_name, updated.timezone, updated.units) == (
        "Ana Runner",
        me.timezone,
        models.Units.IMPERIAL,
    )
    assert updated.locale == me.locale

    profile = create_profile.sync(
        client=signed_in,
        body=models.ProfileIn(sport=models.Sport.RUNNING, level=models.Level.BEGINNER),
    )
    assert isinstance(profile, models.ProfileOut) and profile.sport is models.Sport.RUNNING
    assert [p.id for p in list_profiles.sync(client=signed_in)] == [profile.id]

    catalogue = list_providers.sync(client=signed_in)
    assert isinstance(catalogue, models.Catalogue)
    offered = {entry.name for entry in catalogue.providers}
    assert offered <= {provider.value for provider in models.HealthProvider}

    # Errors are typed too: {detail, code}, and FastAPI's 422.
    refused = read_me.sync_detailed(client=anonymous)
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.ErrorResponse)
    assert refused.parsed.code == "missing_token"
    invalid = update_me.sync_detailed(client=signed_in, body=models.UserPatch(timezone="Mars/Base"))
    assert invalid.status_code == 422
    assert isinstance(invalid.parsed, models.HTTPValidationError)
    assert invalid.parsed.detail[0].loc == ["body", "timezone"]

    report = readiness.sync(client=anonymous)
    assert isinstance(report, models.Readiness)
    assert report.auth.ok and report.auth.detail.startswith("emulator")


# --- TypeScript ------------------------------------------------------------------------------


def test_typescript_journey_type_checks_against_generated_types(tmp_path: Path) -> None:
    generator = require(TOOLS_BIN / "openapi-typescript", "run `npm ci --prefix tools`")
    tsc = require(TOOLS_BIN / "tsc", "run `npm ci --prefix tools`")
    shutil.copy(ROOT / "tests" / "clients" / "journey.ts", tmp_path / "journey.ts")
    generated = run([str(generator), str(SPEC), "-o", "api.d.ts"], tmp_path)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "warn" not in (generated.stdout + generated.stderr).lower(), generated.stderr
    checked = run(
        [
            str(tsc),
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "es2022",
            "--moduleResolution",
            "bundler",
            "--lib",
            "es2022,dom",
            "journey.ts",
        ],
        tmp_path,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
