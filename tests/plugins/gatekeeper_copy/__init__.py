"""A second family defining the ``stamped`` requirement: a conflict with ``gatekeeper``."""

from __future__ import annotations

from collections.abc import Iterable

from core import PluginInfo, RouteRequirement, hookimpl
from tests.plugins.gatekeeper import check_stamp

PLUGIN = PluginInfo(version="1.0.0", description="Another stamp office.")


@hookimpl
def route_requirements() -> Iterable[RouteRequirement]:
    return [RouteRequirement(name="stamped", check=check_stamp, description="A copy.")]
