"""A test family that adds a health provider to the catalogue from outside health_providers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from core import LoadedPlugin, PluginInfo, hookimpl

PLUGIN = PluginInfo(version="1.0.0", description="Adds a provider to the catalogue.")


class ExtraProviderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "decathlon"
    display_name: str = "Decathlon Coach"
    fail: bool = False  # the hook raises instead of contributing


@hookimpl
def settings_model() -> type[ExtraProviderSettings]:
    return ExtraProviderSettings


@hookimpl(optionalhook=True)
def health_providers(plugin: LoadedPlugin) -> Iterable[Mapping[str, Any]]:
    settings = plugin.settings
    if settings.fail:
        raise RuntimeError("the provider catalogue is out of reach")
    return [{"name": settings.name, "display_name": settings.display_name, "kind": "app"}]
