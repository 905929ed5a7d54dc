"""The ``channels`` family: chat bridges (WhatsApp, Heylo, and channels plugins add),
linking a chat identity to a user, and message references. See docs/families/channels.md,
docs/services/whatsapp.md and docs/services/heylo.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pluggy
from quart import Blueprint

from core import (
    LoadedPlugin,
    OutboxHandler,
    Platform,
    PluginInfo,
    ReadinessCheck,
    User,
    hookimpl,
    outbox_backlog,
)
from plugins.channels import hookspecs, service
from plugins.channels.heylo import Heylo
from plugins.channels.hookspecs import Channel
from plugins.channels.routes import build_blueprint
from plugins.channels.schemas import ALERTS, CHANNELS, ChannelsSettings
from plugins.channels.whatsapp import WhatsApp

PLUGIN = PluginInfo(
    version="1.0.0",
    description="Chat bridges (WhatsApp, Heylo, plugin channels): signed webhooks, linking a "
    "chat identity to a user, messages to hare, message references.",
    requires=("users",),
)


@hookimpl
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def settings_model() -> type[ChannelsSettings]:
    return ChannelsSettings


@hookimpl
def channels(plugin: LoadedPlugin) -> Iterable[Channel]:
    settings: ChannelsSettings = plugin.settings
    return [WhatsApp(settings.whatsapp), Heylo(settings.heylo)]


@hookimpl
def blueprints(plugin: LoadedPlugin, platform: Platform) -> Iterable[Blueprint]:
    registry = plugin.stash[CHANNELS] = service.build_registry(platform)
    plugin.stash[ALERTS] = {}
    return [build_blueprint(registry)]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.channels.models"]


@hookimpl
def outbox_handlers() -> Mapping[str, OutboxHandler]:
    return {
        service.INBOUND_KIND: service.handle_inbound,
        service.SEND_KIND: service.deliver,
        service.HEYLO_REMOVE_KIND: service.remove_heylo_member,
    }


@hookimpl
async def startup(plugin: LoadedPlugin) -> None:
    for channel in plugin.stash[CHANNELS].values():
        await channel.open()


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    for channel in plugin.stash[CHANNELS].values():
        await channel.close()


@hookimpl
def readiness_checks(plugin: LoadedPlugin) -> Mapping[str, ReadinessCheck]:
    def check(channel: Channel) -> ReadinessCheck:
        async def ready() -> str:
            alert = plugin.stash[ALERTS].get(channel.name)
            if alert is not None:
                raise RuntimeError(f"{channel.display_name}: {alert}; nothing is sent")
            return channel.ready()

        return ready

    async def backlog() -> str:
        count, age = await outbox_backlog(service.KIND_PREFIX)
        return f"{count} message(s) waiting, the oldest for {age:.0f}s"

    checks = {name: check(channel) for name, channel in plugin.stash[CHANNELS].items()}
    return {**checks, "backlog": backlog}


@hookimpl
async def send_channel_message(
    user: User,
    text: str,
    sender: str,
    reference_subject: str | None,
    reference_ttl_seconds: int | None,
) -> Mapping[str, Any]:
    return await service.send_to_user(user, text, sender, reference_subject, reference_ttl_seconds)


@hookimpl
async def account_deleted(user: User) -> None:
    await service.forget_user(user)


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    return await service.export_user(user)
