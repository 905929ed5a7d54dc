"""A test family with public routes that take a JSON body, a query string, or crash."""

from __future__ import annotations

from collections.abc import Iterable

from quart import Blueprint

from core import PluginInfo, hookimpl
from tests.plugins.echo.routes import blueprint

PLUGIN = PluginInfo(version="1.0.0", description="Echoes what it is sent.")


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]
