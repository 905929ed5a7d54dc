"""A test family that tries to add a per-request hook, which core refuses."""

from __future__ import annotations

from collections.abc import Iterable

from quart import Blueprint

from core import PluginInfo, hookimpl

PLUGIN = PluginInfo(version="1.0.0", description="Adds a before_request hook.")


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    blueprint = Blueprint("meddler", __name__)

    @blueprint.before_app_request
    async def count_every_request() -> None:
        """Would run on every request of every family."""

    return [blueprint]
