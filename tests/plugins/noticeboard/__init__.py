"""A test family that defines a hook of its own for other families to implement."""

from __future__ import annotations

from collections.abc import Iterable

from quart import Blueprint

from core import PluginInfo, hookimpl
from tests.plugins.noticeboard import hookspecs
from tests.plugins.noticeboard.routes import blueprint

PLUGIN = PluginInfo(version="1.0.0", description="Notices gathered from other families.")


@hookimpl
def add_hookspecs(pm) -> None:  # type: ignore[no-untyped-def]
    pm.add_hookspecs(hookspecs)


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]
