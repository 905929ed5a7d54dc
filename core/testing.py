"""Helpers for testing plugins through the real HTTP app (used by scaffolded tests too)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import tomli_w
from quart import Quart
from quart.testing import QuartClient

from core.app import create_app
from core.config import CoreSettings
from core.emulator import Account, AuthEmulator

__all__ = [
    "Account",
    "AuthEmulator",
    "client_for",
    "serving",
    "settings_for",
    "write_plugins_file",
]


def write_plugins_file(path: Path, plugins: Mapping[str, Any]) -> Path:
    """Write a ``plugins.toml`` holding ``plugins`` (``{name: {module: ..., ...}}``)."""
    path.write_text(tomli_w.dumps({"plugins": dict(plugins)}))
    return path


def settings_for(
    directory: Path, plugins: Mapping[str, Any], database_url: str | None = None, **overrides: Any
) -> CoreSettings:
    """Core settings for a test app: its own plugins file and SQLite file, auto-migrating."""
    values: dict[str, Any] = {
        "plugins_file": write_plugins_file(directory / "plugins.toml", plugins),
        "database_url": database_url or f"sqlite://{directory}/test.sqlite3",
        "auto_migrate": True,
        "environment": "test",
    }
    values.update(overrides)
    return CoreSettings(**values)


@asynccontextmanager
async def serving(app: Quart) -> AsyncIterator[QuartClient]:
    """Start ``app`` (database, start-up hooks) and yield a test client; stop it after."""
    async with app.test_app() as test_app:
        yield cast(QuartClient, test_app.test_client())


@asynccontextmanager
async def client_for(
    directory: Path, plugins: Mapping[str, Any], **overrides: Any
) -> AsyncIterator[QuartClient]:
    """``async with client_for(tmp_path, {...}) as client:`` — a started app for ``plugins``."""
    async with serving(create_app(settings_for(directory, plugins, **overrides))) as client:
        yield client
