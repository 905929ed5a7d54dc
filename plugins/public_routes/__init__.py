"""The ``public_routes`` family: routes planned from GPX files, each with a public share
(``/r/{share_id}/...``: a page, a manifest, GeoJSON, GPX and a preview image) that works
for anyone on the open internet without signing in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from quart import Blueprint

from core import LoadedPlugin, PluginInfo, ServiceClient, User, hookimpl
from plugins.public_routes import service
from plugins.public_routes.clients import RoutingClient
from plugins.public_routes.routes import blueprint
from plugins.public_routes.schemas import ROUTING, PublicRoutesSettings

PLUGIN = PluginInfo(
    version="0.1.0",
    description="Routes from GPX uploads, their public shares, pages and link previews.",
    requires=("users",),
)


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


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    routing = plugin.stash.get(ROUTING)
    if routing is not None:
        del plugin.stash[ROUTING]
        await routing.http.aclose()


@hookimpl
async def account_deleted(user: User) -> None:
    await service.erase(user)


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    return await service.export(user)
