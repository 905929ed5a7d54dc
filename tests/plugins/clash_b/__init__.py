"""A test family that collides with ``clash_a`` in the way its ``kind`` setting names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import click
from quart import Blueprint

from core import LoadedPlugin, PluginInfo, hookimpl
from tests.plugins import clashing

PLUGIN = PluginInfo(version="1.0.0", description="Collides on purpose.")
SIDE = "b"


@hookimpl
def settings_model() -> type[clashing.ClashSettings]:
    return clashing.ClashSettings


@hookimpl
def blueprints(plugin: LoadedPlugin) -> Iterable[Blueprint]:
    return [clashing.blueprint(SIDE, plugin.settings.kind)]


@hookimpl
def model_modules(plugin: LoadedPlugin) -> Iterable[str]:
    return clashing.model_modules(SIDE, plugin.settings.kind)


@hookimpl
def spec_fragments(plugin: LoadedPlugin) -> Mapping[str, Any]:
    return clashing.fragment(SIDE, plugin.settings.kind)


@hookimpl
def cli_commands(plugin: LoadedPlugin) -> Iterable[click.Command]:
    return clashing.commands(plugin.settings.kind)


@hookimpl
def outbox_handlers(plugin: LoadedPlugin) -> Mapping[str, Any]:
    return clashing.outbox_handlers(plugin.settings.kind)
