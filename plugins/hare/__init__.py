"""The ``hare`` family: the bridge to hare, the append-only log of what users write.

Any family records a user-written message (a *source event*) by calling the
``record_source_event`` hook inside its own transaction; this family stores it and delivers
it through the outbox, in order per user and exactly once in effect (hare drops a repeated
idempotency key). ``imperfect hare backfill`` replays what families stored. It serves no
public routes, so it has no ``routes.py``. See docs/families/hare.md and
docs/services/hare.md.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import click
import pluggy

from core import (
    LoadedPlugin,
    OutboxHandler,
    Platform,
    PluginInfo,
    ReadinessCheck,
    ServiceClient,
    SourceEvent,
    User,
    hookimpl,
)
from plugins.hare import hookspecs, service
from plugins.hare.clients import HARE as SERVICE
from plugins.hare.clients import HareClient
from plugins.hare.schemas import HARE, HareSettings

PLUGIN = PluginInfo(
    version="1.0.0",
    description="Delivers what users write (source events) to hare, in order, exactly once.",
    requires=("users",),
)


@hookimpl
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def settings_model() -> type[HareSettings]:
    return HareSettings


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.hare.models"]


@hookimpl
def outbox_handlers() -> Mapping[str, OutboxHandler]:
    return {service.RECORD_KIND: service.deliver, service.ERASE_KIND: service.erase_user}


@hookimpl
async def startup(plugin: LoadedPlugin, platform: Platform) -> None:
    settings: HareSettings = plugin.settings
    key = settings.api_key.get_secret_value()
    http = ServiceClient(
        SERVICE,
        str(settings.base_url),
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries=0,  # the outbox retries, with its backoff
        headers={"Authorization": f"Bearer {key}"} if key else None,
    )
    client = HareClient(http, configured=bool(key))
    limit = platform.core.outbox_lease / 2
    if client.deadline >= limit:
        await http.aclose()
        raise ValueError(
            f"connect_timeout + read_timeout + 1s ({client.deadline:g}s) must stay under the "
            f"outbox handler limit ({limit:g}s, half of IMPERFECT_OUTBOX_LEASE)"
        )
    plugin.stash[HARE] = client


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    client = plugin.stash.get(HARE)
    if client is not None:
        del plugin.stash[HARE]
        await client.http.aclose()


@hookimpl
def readiness_checks(plugin: LoadedPlugin) -> Mapping[str, ReadinessCheck]:
    async def hare() -> str:
        return await service.reachability(plugin.stash[HARE])

    async def backlog() -> str:
        return await service.backlog(plugin.settings)

    return {"hare": hare, "backlog": backlog}


@hookimpl
async def record_source_event(user: User, event: SourceEvent) -> None:
    await service.record(user, event)


@hookimpl
async def account_deleted(user: User) -> None:
    await service.forget_user(user)


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    return await service.export_user(user)


@hookimpl
def cli_commands(plugin: LoadedPlugin, platform: Platform) -> Iterable[click.Command]:
    group = click.Group(name=plugin.name, help="The bridge to hare, the log of what users write.")

    @group.command(name="backfill")
    @click.option(
        "--since",
        type=click.DateTime(formats=("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z")),
        help="Only events written at or after this date (UTC unless it has an offset).",
    )
    @click.option("--user", "user_id", type=click.IntRange(min=1), help="Only this user id's.")
    @click.option("--dry-run", is_flag=True, help="Count what would be sent; send nothing.")
    @click.option("--restart", is_flag=True, help="Ignore the checkpoints: start from the top.")
    def backfill(since: datetime | None, user_id: int | None, dry_run: bool, restart: bool) -> None:
        """Replay every family's stored source events into hare.

        Events go with the idempotency keys they were recorded with, so hare keeps one of
        each however often this runs. Progress is checkpointed per family: a run that stops
        (hare down, interrupted) continues where it stopped when run again.
        """
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        asyncio.run(
            service.backfill_from_cli(
                platform,
                plugin,
                since=since,
                user_id=user_id,
                dry_run=dry_run,
                restart=restart,
                progress_bar=sys.stdout.isatty(),
            )
        )

    return [group]
