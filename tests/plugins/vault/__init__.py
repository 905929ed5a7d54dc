"""A test family whose route declares a requirement another family (gatekeeper) defines."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel
from quart import Blueprint

from core import Family, Identity, LoadedPlugin, PluginInfo, StashKey, endpoint, hookimpl

PLUGIN = PluginInfo(version="1.0.0", description="A vault behind a stamp.")

FAMILY: Family[None] = Family(__package__)
blueprint = Blueprint("vault", __name__)


@dataclass
class Opened:
    times: int = 0


OPENED = StashKey[Opened]("opened")


class VaultOut(BaseModel):
    uid: str
    opened: int


@blueprint.get("/vault")
@endpoint(response=VaultOut, requires=("stamped",))
async def open_vault(identity: Identity) -> VaultOut:
    """What is in the vault: only for stamped requests."""
    opened = FAMILY.stash[OPENED]
    opened.times += 1
    return VaultOut(uid=identity.uid, opened=opened.times)


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def startup(plugin: LoadedPlugin) -> None:
    plugin.stash[OPENED] = Opened()
