"""The ``public_routes`` family: routes planned from GPX files, each with a public share
(``/r/{share_id}/...``: a page, a manifest, GeoJSON, GPX and a preview image) that works
for anyone on the open internet without signing in, and sent to Garmin Connect as courses
(``/route-send/garmin/*``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pluggy
from quart import Blueprint

from core import LoadedPlugin, PluginInfo, ReadinessCheck, ServiceClient, User, hookimpl
from plugins.public_routes import garmin, hookspecs, service
from plugins.public_routes.clients import ElevationClient, GarminClient, RoutingClient
from plugins.public_routes.routes import blueprint
from plugins.public_routes.schemas import (
    ELEVATION,
    GARMIN,
    GARMIN_CIPHER,
    ROUTING,
    PublicRoutesSettings,
    garmin_fernet,
)

PLUGIN = PluginInfo(
    version="0.1.0",
    description="Routes from GPX uploads, their public shares, pages and link previews.",
    requires=("users",),
)


@hookimpl
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def settings_model() -> type[PublicRoutesSettings]:
    return PublicRoutesSettings


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.public_routes.models"]


@hookimpl
async def startup(plugin: LoadedPlugin) -> None:
    settings: PublicRoutesSettings = plugin.settings
    if settings.osrm_url:
        http = ServiceClient(
            "routing engine",
            settings.osrm_url,
            connect_timeout=settings.osrm_connect_timeout,
            read_timeout=settings.osrm_read_timeout,
        )
        plugin.stash[ROUTING] = RoutingClient(http, settings.osrm_profile)
    if settings.elevation_url and settings.elevation_dataset:
        timeout = settings.elevation_timeout_seconds
        elevation = ServiceClient(
            "elevation service",
            settings.elevation_url,
            connect_timeout=min(2.0, timeout),
            read_timeout=timeout,
        )
        plugin.stash[ELEVATION] = ElevationClient(elevation, settings.elevation_dataset)
    if settings.garmin_client_id:
        plugin.stash[GARMIN_CIPHER] = garmin_fernet(settings)
        plugin.stash[GARMIN] = GarminClient(
            ServiceClient(
                "Garmin Connect",
                settings.garmin_api_url,
                connect_timeout=settings.garmin_connect_timeout,
                read_timeout=settings.garmin_read_timeout,
            ),
            settings.garmin_token_url,
            settings.garmin_client_id,
            settings.garmin_client_secret.get_secret_value(),
        )


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    for key in (ROUTING, ELEVATION, GARMIN):  # each client of an outside service started
        client = plugin.stash.get(key)
        if client is not None:
            del plugin.stash[key]
            await client.http.aclose()


@hookimpl
def readiness_checks(plugin: LoadedPlugin) -> Mapping[str, ReadinessCheck]:
    async def garmin_send() -> str:
        if plugin.stash.get(GARMIN) is None:
            return "off: no garmin_client_id, /route-send/garmin/* answers 503"
        return "configured (Garmin has no health endpoint: not called)"

    async def routing_engine() -> str:
        engine = plugin.stash.get(ROUTING)
        if engine is None:
            return "off: no osrm_url, planning answers 503 routing_not_configured"
        return await engine.check()

    async def elevation_service() -> str:
        return await plugin.stash[ELEVATION].check()

    checks: dict[str, ReadinessCheck] = {"garmin": garmin_send, "routing_engine": routing_engine}
    if ELEVATION in plugin.stash:  # without one, elevation is the track's: nothing to check
        checks["elevation_service"] = elevation_service
    return checks


@hookimpl
async def account_deleted(plugin: LoadedPlugin, user: User) -> None:
    # Garmin first: when it is down this raises, and core retries the whole deletion.
    await garmin.forget(plugin.stash, user)
    await service.erase(user)


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    return {**await service.export(user), "garmin_sends": await garmin.export(user)}
