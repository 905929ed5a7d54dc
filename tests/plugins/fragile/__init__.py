"""A test family that fails where its settings say: in ``blueprints`` or in ``startup``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict
from quart import Blueprint

from core import LoadedPlugin, PluginInfo, hookimpl
from core.hookspecs import ReadinessCheck
from tests.plugins.fragile.routes import blueprint

PLUGIN = PluginInfo(version="1.0.0", description="Fails on purpose.")


class FragileSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fail_in: Literal["nothing", "blueprints", "startup"] = "nothing"


@hookimpl
def settings_model() -> type[FragileSettings]:
    return FragileSettings


@hookimpl
def blueprints(plugin: LoadedPlugin) -> Iterable[Blueprint]:
    if plugin.settings.fail_in == "blueprints":
        raise RuntimeError("blueprints exploded")
    return [blueprint]


@hookimpl
async def startup(plugin: LoadedPlugin) -> None:
    if plugin.settings.fail_in == "startup":
        raise RuntimeError("startup exploded")


@hookimpl
def readiness_checks(plugin: LoadedPlugin) -> Mapping[str, ReadinessCheck]:
    async def failure_mode() -> str:
        return f"fails in {plugin.settings.fail_in}"

    return {"failure_mode": failure_mode}
