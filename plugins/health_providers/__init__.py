"""The ``health_providers`` family: the provider catalogue and connections, through alice."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pluggy
from quart import Blueprint

from core import LoadedPlugin, Platform, PluginInfo, hookimpl
from core.clients import ServiceClient
from core.hookspecs import ReadinessCheck
from plugins.health_providers import hookspecs, service
from plugins.health_providers.clients import ALICE, AliceClient, AliceEvents
from plugins.health_providers.hookspecs import ProviderSpec
from plugins.health_providers.routes import build_blueprint
from plugins.health_providers.schemas import HealthProvidersSettings
from plugins.users.models import User

PLUGIN = PluginInfo(
    version="1.0.0",
    description="Health-provider catalogue and connections; alice runs OAuth and holds the data.",
    requires=("users",),
)


@hookimpl
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def settings_model() -> type[HealthProvidersSettings]:
    return HealthProvidersSettings


@hookimpl
def health_providers() -> Iterable[ProviderSpec]:
    return service.BUILT_IN


@hookimpl
def blueprints(plugin: LoadedPlugin, platform: Platform) -> Iterable[Blueprint]:
    plugin.state.providers = service.build_registry(platform)
    return [build_blueprint(plugin.state.providers)]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.health_providers.models"]


@hookimpl
async def startup(plugin: LoadedPlugin, platform: Platform) -> None:
    settings: HealthProvidersSettings = plugin.settings
    plugin.state.alice = AliceClient(
        ServiceClient(
            ALICE,
            str(settings.alice_url),
            connect_timeout=settings.alice_connect_timeout,
            read_timeout=settings.alice_read_timeout,
            retries=settings.alice_retries,
        )
    )
    plugin.state.events = None
    if settings.redis_url:
        plugin.state.events = AliceEvents(
            settings.redis_url,
            settings.event_channel_prefix,
            service.EventHandler(platform, plugin.state.providers),
        )
        plugin.state.events.start()


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    if plugin.state.events is not None:
        await plugin.state.events.stop()
    await plugin.state.alice.http.aclose()


@hookimpl
def readiness_checks(plugin: LoadedPlugin) -> Mapping[str, ReadinessCheck]:
    async def alice() -> str:
        return await plugin.state.alice.check()

    async def events() -> str:
        if plugin.state.events is None:
            return "off: no redis_url, alice events are not handled"
        return plugin.state.events.status()

    return {"alice": alice, "events": events}


@hookimpl
async def account_deleted(plugin: LoadedPlugin, user: User) -> None:
    await service.forget_user(plugin.state.alice, plugin.state.providers, user)


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    return await service.export_user(user)
