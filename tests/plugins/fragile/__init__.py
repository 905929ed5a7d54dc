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

    fail_in: Literal["nothing", "blueprints", "startup", "readiness_checks"] = "nothing"


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


SHUT_DOWN: list[str] = []


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    SHUT_DOWN.append(plugin.settings.fail_in)


@hookimpl
def readiness_checks(plugin: LoadedPlugin) -> Mapping[str, ReadinessCheck]:
    if plugin.settings.fail_in == "readiness_checks":
        raise RuntimeError("readiness checks exploded")

    async def failure_mode() -> str:
        return f"fails in {plugin.settings.fail_in}"

    return {"failure_mode": failure_mode}
