"""The ``terra`` family: Terra widget sessions and SDK tokens, and Terra-backed providers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from quart import Blueprint

from core import LoadedPlugin, PluginInfo, ReadinessCheck, ServiceClient, User, hookimpl
from plugins.terra import service
from plugins.terra.clients import ALICE, TERRA, AliceReferences, TerraClient
from plugins.terra.routes import blueprint
from plugins.terra.schemas import ALICE_CLIENT, TERRA_CLIENT, TerraSettings

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


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.terra.models"]


@hookimpl(optionalhook=True)
def health_providers(plugin: LoadedPlugin) -> Iterable[Mapping[str, str]]:
    """Terra-backed providers for the catalogue, when ``health_providers`` is enabled."""
    return service.catalogue_entries(plugin.settings)


@hookimpl
async def startup(plugin: LoadedPlugin) -> None:
    settings: TerraSettings = plugin.settings
    plugin.stash[ALICE_CLIENT] = AliceReferences(
        ServiceClient(
            ALICE,
            str(settings.alice_url).rstrip("/"),
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        )
    )
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
    alice = plugin.stash.get(ALICE_CLIENT)
    if alice is not None:
        del plugin.stash[ALICE_CLIENT]
        await alice.http.aclose()


@hookimpl
def readiness_checks(plugin: LoadedPlugin) -> Mapping[str, ReadinessCheck]:
    async def credentials() -> str:
        if TERRA_CLIENT not in plugin.stash:
            return "not configured: set TERRA_DEV_ID and TERRA_API_KEY; /session answers 503"
        return "configured"

    return {"terra": credentials}


@hookimpl
async def account_deleted(plugin: LoadedPlugin, user: User) -> None:
    await service.forget_user(plugin.stash[ALICE_CLIENT], user)


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    return await service.export_user(user)
