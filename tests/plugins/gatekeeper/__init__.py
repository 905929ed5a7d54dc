"""A test family that defines a per-route requirement other families declare: a stamp.

A request to a route declaring ``requires=("stamped",)`` must carry ``X-Stamp`` with the
value from this family's settings; the check counts what it saw, so tests can tell that a
refused request never reached the handler.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from core import (
    ApiError,
    Family,
    LoadedPlugin,
    PluginInfo,
    RequirementContext,
    RouteRequirement,
    StashKey,
    hookimpl,
)

PLUGIN = PluginInfo(version="1.0.0", description="Stamps that some routes require.")


class GatekeeperSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stamp: str = "approved"


@dataclass
class Seen:
    checked: int = 0
    refused: int = 0


FAMILY = Family(__package__, GatekeeperSettings)
SEEN = StashKey[Seen]("seen")


async def check_stamp(context: RequirementContext) -> None:
    seen = FAMILY.stash[SEEN]
    seen.checked += 1
    if context.identity is None:
        raise AssertionError("a stamped route is authenticated first")
    if context.request.headers.get("X-Stamp") != FAMILY.settings.stamp:
        seen.refused += 1
        raise ApiError(403, "stamp_required", "This route needs a valid X-Stamp header.")


@hookimpl
def settings_model() -> type[GatekeeperSettings]:
    return GatekeeperSettings


@hookimpl
def route_requirements() -> Iterable[RouteRequirement]:
    return [
        RouteRequirement(
            name="stamped",
            check=check_stamp,
            description="An `X-Stamp` header carrying this deployment's stamp.",
            security_scheme={"type": "apiKey", "in": "header", "name": "X-Stamp"},
            errors=(403,),
        )
    ]


@hookimpl
def startup(plugin: LoadedPlugin) -> None:
    plugin.stash[SEEN] = Seen()
