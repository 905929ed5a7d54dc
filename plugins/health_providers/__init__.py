"""The ``health_providers`` family: the provider catalogue and connections, through alice."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pluggy
from quart import Blueprint

from core import (
    LoadedPlugin,
    Platform,
    PluginInfo,
    ReadinessCheck,
    ServiceClient,
    User,
    hookimpl,
)
from plugins.health_providers import home, hookspecs, service
from plugins.health_providers.clients import ALICE, AliceClient
from plugins.health_providers.hookspecs import ProviderSpec
from plugins.health_providers.reconcile import RECONCILER, Reconciler
from plugins.health_providers.routes import build_blueprint
from plugins.health_providers.schemas import (
    ALICE_CLIENT,
    EVENT_COUNTERS,
    EVENTS,
    PROVIDERS,
    EventCounters,
    HealthProvidersSettings,
)

log = logging.getLogger("imperfect.health_providers")

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
    providers = plugin.stash[PROVIDERS] = service.build_registry(platform)
    return [build_blueprint(providers)]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.health_providers.models"]


@hookimpl
async def startup(plugin: LoadedPlugin, platform: Platform) -> None:
    settings: HealthProvidersSettings = plugin.settings
    alice = plugin.stash[ALICE_CLIENT] = AliceClient(
        ServiceClient(
            ALICE,
            str(settings.alice_url),
            connect_timeout=settings.alice_connect_timeout,
            read_timeout=settings.alice_read_timeout,
            retries=settings.alice_retries,
        )
    )
    if settings.redis_url:
        providers = plugin.stash[PROVIDERS]
        counters = plugin.stash[EVENT_COUNTERS] = EventCounters()
        if not settings.event_signing_key.get_secret_value():
            log.warning(
                "health_providers: redis_url is set but event_signing_key is empty: "
                "every alice event will be refused"
            )
        handler = service.event_handler(settings, platform, providers, counters)
        reconciler = None
        if settings.reconcile_interval_seconds > 0:
            reconciler = Reconciler(alice, handler, settings.reconcile_interval_seconds)
            plugin.stash[RECONCILER] = reconciler
        events = service.event_subscription(
            settings,
            platform,
            providers,
            handler=handler,
            on_connect=reconciler.on_connect if reconciler is not None else None,
        )
        plugin.stash[EVENTS] = events
        events.start()
        if reconciler is not None:
            reconciler.start()  # sweeps now, then on each (re)connect and every interval


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    reconciler = plugin.stash.get(RECONCILER)
    if reconciler is not None:
        await reconciler.stop()
        del plugin.stash[RECONCILER]
    events = plugin.stash.get(EVENTS)
    if events is not None:
        await events.stop()
        del plugin.stash[EVENTS]
    alice = plugin.stash.get(ALICE_CLIENT)
    if alice is not None:
        await alice.http.aclose()


@hookimpl
def readiness_checks(plugin: LoadedPlugin) -> Mapping[str, ReadinessCheck]:
    async def alice() -> str:
        return await plugin.stash[ALICE_CLIENT].check()

    async def events() -> str:
        subscription = plugin.stash.get(EVENTS)
        if subscription is None:
            return "off: no redis_url, alice events are not handled"
        status = subscription.status()
        refused = plugin.stash[EVENT_COUNTERS].refused
        if not plugin.settings.event_signing_key.get_secret_value():
            return f"{status}; refusing every event: no event_signing_key; {refused} refused"
        return f"{status}; {refused} refused (unsigned or mis-signed)"

    async def reconcile() -> str:
        reconciler = plugin.stash.get(RECONCILER)
        if reconciler is not None:
            return reconciler.status()
        if not plugin.settings.redis_url:
            return "off: no redis_url, alice events are not handled"
        return "off: reconcile_interval_seconds is 0, missed alice events stay missed"

    return {"alice": alice, "events": events, "reconcile": reconcile}


@hookimpl
async def account_deleted(plugin: LoadedPlugin, user: User) -> None:
    await service.forget_user(plugin.stash[ALICE_CLIENT], user)


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    return await service.export_user(user)


# --- the home family's hooks (optional: home may be disabled) -----------------------------


@hookimpl(optionalhook=True)
async def home_parts(user: User) -> Mapping[str, Any]:
    return await home.connection_summary(user)


@hookimpl(optionalhook=True)
def board_sections() -> Iterable[Mapping[str, Any]]:
    return [home.TRAINING_LOAD]


@hookimpl(optionalhook=True)
async def board_section(plugin: LoadedPlugin, user: User, name: str) -> Mapping[str, Any] | None:
    if name != home.TRAINING_LOAD["name"]:
        return None
    return await home.training_load(plugin.stash[ALICE_CLIENT], user)


@hookimpl(optionalhook=True)
async def home_activity(
    plugin: LoadedPlugin, user: User, activity_id: str
) -> Mapping[str, Any] | None:
    return await home.activity(plugin.stash[ALICE_CLIENT], user, activity_id)
