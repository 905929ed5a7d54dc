"""The ``root`` family: ``GET /`` describes this deployment."""

from __future__ import annotations

from collections.abc import Iterable

from quart import Blueprint

from core import PluginInfo, hookimpl
from plugins.root.routes import blueprint
from plugins.root.schemas import RootSettings

PLUGIN = PluginInfo(version="1.0.0", description="Service metadata: what this deployment serves.")


@hookimpl
def settings_model() -> type[RootSettings]:
    return RootSettings


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]
