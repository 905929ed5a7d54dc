"""The ``users`` family: the local user record behind every Firebase identity."""

from __future__ import annotations

from collections.abc import Iterable

from quart import Blueprint

from core import Identity, PluginInfo, hookimpl
from plugins.users.models import User
from plugins.users.routes import blueprint
from plugins.users.service import find_registered_user

PLUGIN = PluginInfo(
    version="1.0.0",
    description="User records synced from Firebase identities.",
)


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.users.models"]


@hookimpl
async def resolve_user(identity: Identity) -> User:
    return await find_registered_user(identity)
