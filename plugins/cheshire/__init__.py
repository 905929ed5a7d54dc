"""The ``cheshire`` family: natural-language questions to cheshire, answered as JSON or
streamed (Server-Sent Events) with text and Vega-Lite charts, and each user's history;
and, for ``public_routes`` (its ``interpret_route_request`` hook), route requests in the
user's words planned by cheshire. See docs/families/cheshire.md and docs/services/cheshire.md."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from quart import Blueprint

from core import LoadedPlugin, PluginInfo, ServiceClient, User, hookimpl
from plugins.cheshire import service
from plugins.cheshire.clients import CHESHIRE, CheshireClient
from plugins.cheshire.routes import blueprint
from plugins.cheshire.schemas import CHESHIRE_CLIENT, CheshireSettings

PLUGIN = PluginInfo(
    version="1.0.0",
    description="Questions to cheshire: JSON answers or streamed text and charts, and history.",
    requires=("users",),
)


@hookimpl
def settings_model() -> type[CheshireSettings]:
    return CheshireSettings


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.cheshire.models"]


@hookimpl
async def startup(plugin: LoadedPlugin) -> None:
    settings: CheshireSettings = plugin.settings
    key = settings.api_key.get_secret_value()
    http = ServiceClient(
        CHESHIRE,
        str(settings.base_url),
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries=0,  # an answer costs a model run: never sent twice
        headers={
            "Accept": "application/json",
            **({"Authorization": f"Bearer {key}"} if key else {}),
        },
    )
    plugin.stash[CHESHIRE_CLIENT] = CheshireClient(http, chunk_timeout=settings.chunk_timeout)
    # The Vega-Lite schema (about 1 MB of JSON) is read once here, off the loop, so no
    # request pays for it and a missing altair stops start-up instead of the first chart.
    await asyncio.to_thread(service.vega_lite)


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    client = plugin.stash.get(CHESHIRE_CLIENT)
    if client is not None:
        del plugin.stash[CHESHIRE_CLIENT]
        await client.http.aclose()


@hookimpl(optionalhook=True)
async def interpret_route_request(
    plugin: LoadedPlugin,
    user: User,
    request_text: str,
    locale: str,
    near: Mapping[str, float] | None,
) -> Mapping[str, Any]:
    """``public_routes``' hook: a route request in the user's words, planned by cheshire."""
    client = plugin.stash[CHESHIRE_CLIENT]
    return await service.route_plan(client, user, request_text, locale, near)


@hookimpl
async def account_deleted(user: User) -> None:
    await service.erase(user)


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    return await service.export(user)
