"""A test family that queues one outbox message per parcel, in the parcel's own transaction."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

from quart import Blueprint

from core import LoadedPlugin, OutboxHandler, PluginInfo, hookimpl
from tests.plugins.courier.routes import SCRIPT, Script, blueprint, deliver

PLUGIN = PluginInfo(version="1.0.0", description="Parcels delivered through the outbox.")


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["tests.plugins.courier.models"]


@hookimpl
def outbox_handlers(plugin: LoadedPlugin) -> Mapping[str, OutboxHandler]:
    return {"courier.deliver": functools.partial(deliver, plugin)}


@hookimpl
def startup(plugin: LoadedPlugin) -> None:
    plugin.stash[SCRIPT] = Script()
