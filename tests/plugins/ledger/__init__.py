"""A test family with a table of its own: it keeps serving while others are left out."""

from __future__ import annotations

from collections.abc import Iterable

from quart import Blueprint

from core import PluginInfo, hookimpl
from tests.plugins.ledger.routes import blueprint

PLUGIN = PluginInfo(version="1.0.0", description="A count of ledger entries.")


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["tests.plugins.ledger.models"]
