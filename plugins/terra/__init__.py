"""The ``terra`` family: Terra widget sessions and SDK tokens, and Terra-backed providers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from quart import Blueprint

from core import LoadedPlugin, PluginInfo, ReadinessCheck, ServiceClient, hookimpl
from plugins.terra import service
from plugins.terra.clients import TERRA, TerraClient
from plugins.terra.routes import blueprint
from plugins.terra.schemas import TERRA_CLIENT, TerraSettings

PLUGIN = PluginInfo(
    version="1.0.0",
    description="Terra widget sessions and mobile SDK tokens for SDK-based sources.",
    requires=("users",),
)


@hookimpl
def settings_model() -> type[TerraSettings]:
    return TerraSettings


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl(optionalhook=True)
def health_providers(plugin: LoadedPlugin) -> Iterable[Mapping[str, str]]:
    """Terra-backed providers for the catalogue, when ``health_providers`` is enabled."""
    return service.catalogue_entries(plugin.settings)


@hookimpl
async def startup(plugin: LoadedPlugin) -> None:
    settings: TerraSettings = plugin.settings
    if settings.configured:
        plugin.stash[TERRA_CLIENT] = TerraClient(
            ServiceClient(
                TERRA,
                str(settings.base_url).rstrip("/"),
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                headers={
                    "dev-id": settings.dev_id,
                    "x-api-key": settings.api_key.get_secret_value(),
                },
            )
        )


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    terra = plugin.stash.get(TERRA_CLIENT)
    if terra is not None:
        del plugin.stash[TERRA_CLIENT]
        await terra.http.aclose()


@hookimpl
def readiness_checks(plugin: LoadedPlugin) -> Mapping[str, ReadinessCheck]:
    async def credentials() -> str:
        if TERRA_CLIENT not in plugin.stash:
            return "not configured: set TERRA_DEV_ID and TERRA_API_KEY; /session answers 503"
        return "configured"

    return {"terra": credentials}
