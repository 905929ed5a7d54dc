"""A test family that stores rows about users and asks ``users`` for pushes through hooks.

Its foreign key to ``users.User`` does not cascade, so deleting an account fails unless
its own ``account_deleted`` erased its rows first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from quart import Blueprint

from core import PluginInfo, hookimpl
from tests.plugins.journal.models import Entry
from tests.plugins.journal.routes import blueprint

PLUGIN = PluginInfo(version="1.0.0", description="Journal entries.", requires=("users",))


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["tests.plugins.journal.models"]


@hookimpl
async def account_deleted(user: Any) -> None:
    await Entry.filter(user_id=user.id).delete()


@hookimpl
async def account_export(user: Any) -> Mapping[str, Any]:
    return {"entries": [entry.text for entry in await Entry.filter(user_id=user.id).order_by("id")]}
