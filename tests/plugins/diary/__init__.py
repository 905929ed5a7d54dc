"""A test family that stores what users write and records each message for hare.

It calls ``record_source_event`` in the transaction of each entry, and implements
``stored_source_events`` (optionally: it works without ``hare``) so a backfill can
replay its entries with the keys it recorded them with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from quart import Blueprint

from core import PluginInfo, User, hookimpl
from tests.plugins.diary.models import DiaryEntry
from tests.plugins.diary.routes import blueprint, source_event

PLUGIN = PluginInfo(version="1.0.0", description="Diary entries.", requires=("users",))


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["tests.plugins.diary.models"]


@hookimpl(optionalhook=True)
async def stored_source_events(
    since: datetime | None, user_id: int | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    query = DiaryEntry.all()
    if since is not None:
        query = query.filter(written_at__gte=since)
    if user_id is not None:
        query = query.filter(user_id=user_id)
    if after is not None:
        query = query.filter(id__gt=int(after))
    entries = await query.order_by("id").limit(limit)
    return [
        {"user_id": entry.user_id, "event": source_event(entry), "cursor": str(entry.id)}
        for entry in entries
    ]


@hookimpl
async def account_deleted(user: User) -> None:
    await DiaryEntry.filter(user_id=user.id).delete()


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    entries = await DiaryEntry.filter(user_id=user.id).order_by("id")
    return {"entries": [entry.text for entry in entries]}
