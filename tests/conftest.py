"""Shared fixtures: the Firebase Auth Emulator, a fresh database per app, app builders.

The suite runs on SQLite by default; with ``DATABASE_URL=postgres://...`` every
app gets its own fresh PostgreSQL database instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from tortoise.connection import get_connection

from core import create_app
from core.config import CoreSettings
from core.emulator import AuthEmulator
from core.testing import serving, settings_for, write_plugins_file
from tests.fakes.alice import FakeAlice
from tests.fakes.cheshire import FakeCheshire
from tests.fakes.fcm import FakeFcm, serve_fake_fcm
from tests.fakes.terra import FakeTerra
from tests.support import ROOT
from tests.support.emulator import EMULATOR_ENV, FIREBASE_BIN, emulator_command
from tests.support.servers import stop_process_group

PROJECT_ID = "demo-imperfect"
ENV_VAR = "IMPERFECT_ENV"
BASE_DATABASE_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRES = BASE_DATABASE_URL.startswith(("postgres://", "postgresql://"))

DEFAULT_PLUGINS: dict[str, Any] = {"root": {"module": "plugins.root"}}
# Redis for tests of event subscribers. When IMPERFECT_TEST_REDIS_URL is set (CI sets it),
# a Redis that does not answer fails those tests; otherwise they are skipped, with the reason.
REDIS_URL = os.environ.get("IMPERFECT_TEST_REDIS_URL", "")


@pytest.fixture(scope="session")
def auth_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthEmulator]:
    """A real Firebase Auth Emulator (firebase-tools, pure Node) for the whole session."""
    if not FIREBASE_BIN.exists():
        pytest.fail(f"firebase-tools is not installed at {FIREBASE_BIN}: run `make test`")
    workdir = tmp_path_factory.mktemp("firebase")
    command, port = emulator_command(workdir, PROJECT_ID)
    log = (workdir / "emulator.log").open("w")
    process = subprocess.Popen(
        command,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **EMULATOR_ENV},
        start_new_session=True,
    )
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://{host}/", timeout=1).json()["authEmulator"]["ready"]:
                break
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process_group(process)
            pytest.fail(
                f"Firebase Auth Emulator did not start:\n{(workdir / 'emulator.log').read_text()}"
            )
        time.sleep(0.25)
    # The emulator is refused outside an explicit development or test environment, so the
    # suite declares itself one for as long as the variable is set (settings built directly
    # with CoreSettings(...) read it from the environment too).
    previous = {name: os.environ.get(name) for name in ("FIREBASE_AUTH_EMULATOR_HOST", ENV_VAR)}
    os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = host
    os.environ[ENV_VAR] = "test"
    client = AuthEmulator(host, PROJECT_ID)
    try:
        yield client
    finally:
        client.close()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        stop_process_group(process)
        log.close()


@pytest.fixture
def fake_fcm() -> Iterator[FakeFcm]:
    """A fake FCM HTTP v1 server on a real socket (point ``fcm_url`` at ``fake_fcm.url``)."""
    with serve_fake_fcm(PROJECT_ID) as fake:
        yield fake


def _postgres_admin_dsn() -> str:
    return BASE_DATABASE_URL.replace("postgres://", "postgresql://", 1)


async def _postgres_database(action: str, name: str) -> None:
    connection = await asyncpg.connect(_postgres_admin_dsn())
    try:
        if action == "create":
            await connection.execute(f'CREATE DATABASE "{name}"')
        else:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database for one test: a SQLite file, or a new PostgreSQL database."""
    if not ON_POSTGRES:
        yield f"sqlite://{tmp_path}/test.sqlite3"
        return
    name = f"imperfect_test_{uuid.uuid4().hex[:12]}"
    await _postgres_database("create", name)
    base, _, _ = BASE_DATABASE_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        await _postgres_database("drop", name)


@pytest.fixture
def core_settings(tmp_path: Path, database_url: str) -> Callable[..., CoreSettings]:
    """Build core settings for a test: its plugins table, a fresh database, auto-migrate on."""

    def build(plugins: Mapping[str, Any] | None = None, **overrides: Any) -> CoreSettings:
        overrides.setdefault("firebase_project_id", PROJECT_ID)
        # Tests dispatch the outbox themselves, one deterministic pass at a time
        # (``runtime.outbox.run_once()``); the background loop has a test of its own.
        overrides.setdefault("outbox_dispatcher", False)
        return settings_for(tmp_path, plugins or DEFAULT_PLUGINS, database_url, **overrides)

    return build


@pytest.fixture
def app_client(
    core_settings: Callable[..., CoreSettings], auth_emulator: AuthEmulator
) -> Callable[..., Any]:
    """``async with app_client(plugins) as client:`` — a started app for these plugins.

    Always with the suite's Auth Emulator in the environment: an app built before any test
    of this worker had started it would find no way to verify tokens, and its /readyz
    would depend on the order tests run in.
    """

    @asynccontextmanager
    async def build(plugins: Mapping[str, Any] | None = None, **overrides: Any):
        async with serving(create_app(core_settings(plugins, **overrides))) as client:
            yield client

    return build


async def _table_names() -> set[str]:
    """The tables in the serving app's database, on SQLite or PostgreSQL."""
    connection = get_connection("default")
    if connection.capabilities.dialect == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        query = (
            "SELECT table_name AS name FROM information_schema.tables "
            "WHERE table_schema = current_schema()"
        )
    return {row["name"] for row in await connection.execute_query_dict(query)}


@pytest.fixture
def table_names() -> Callable[[], Awaitable[set[str]]]:
    """``await table_names()`` inside ``app_client``: the tables that exist right now."""
    return _table_names


# Variables a test's own settings must not inherit from the shell running the suite.
_CLI_ISOLATED = ("IMPERFECT_PLUGINS_FILE", "IMPERFECT_DISABLE", "IMPERFECT_ENABLE", "DATABASE_URL")


@pytest.fixture
def imperfect(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real ``imperfect`` console script in a subprocess.

    ``plugins`` (a ``{name: table}`` mapping) is written to a temporary
    ``plugins.toml``; without it the checked-in ``plugins.toml`` is used. The
    database is a temporary SQLite file. The repository root is put on
    ``PYTHONPATH`` so module-path test families (``tests.plugins.*``) import.
    ``IMPERFECT_ENV`` is ``test``; ``env`` overrides any variable (``None`` unsets it).
    """

    def run(
        *args: str,
        plugins: Mapping[str, Any] | None = None,
        env: Mapping[str, str | None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        environment = {k: v for k, v in os.environ.items() if k not in _CLI_ISOLATED}
        environment["PYTHONPATH"] = str(ROOT)
        environment["DATABASE_URL"] = f"sqlite://{tmp_path}/cli.sqlite3"
        environment[ENV_VAR] = "test"  # the session's Auth Emulator is allowed in tests only
        if plugins is not None:
            path = write_plugins_file(tmp_path / "cli-plugins.toml", plugins)
            environment["IMPERFECT_PLUGINS_FILE"] = str(path)
        for name, value in (env or {}).items():  # None: unset it
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        return subprocess.run(
            [str(Path(sys.executable).parent / "imperfect"), *args],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis server that answers (``redis://127.0.0.1:6379/0`` unless configured)."""
    import redis

    url = REDIS_URL or "redis://127.0.0.1:6379/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        if REDIS_URL:
            pytest.fail(f"Redis at {url} does not answer: {error}")
        pytest.skip(f"no Redis at {url} ({error}); set IMPERFECT_TEST_REDIS_URL to require one")
    finally:
        client.close()
    return url


@pytest.fixture
def channel_prefix() -> str:
    """A Redis channel prefix of this test's own, so concurrent runs never cross."""
    return f"test-{uuid.uuid4().hex[:12]}.alice."


@pytest.fixture
def fake_alice() -> Iterator[FakeAlice]:
    """A fake alice on a real socket, without Redis (see ``fake_alice_events``)."""
    alice = FakeAlice().start()
    try:
        yield alice
    finally:
        alice.stop()


@pytest.fixture
def fake_alice_events(redis_url: str, channel_prefix: str) -> Iterator[FakeAlice]:
    """A fake alice that also publishes its events on Redis, under this test's prefix."""
    alice = FakeAlice(redis_url=redis_url, channel_prefix=channel_prefix).start()
    try:
        yield alice
    finally:
        alice.stop()


@pytest.fixture
def fake_terra() -> Iterator[FakeTerra]:
    """A fake Terra API on a real socket."""
    terra = FakeTerra().start()
    try:
        yield terra
    finally:
        terra.stop()


@pytest.fixture
def fake_cheshire() -> Iterator[FakeCheshire]:
    cheshire = FakeCheshire().start()
    try:
        yield cheshire
    finally:
        cheshire.stop()
