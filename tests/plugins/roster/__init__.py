"""A test family that resolves the local user without the ``users`` family.

Members are kept in memory (a test needs no table for this): the first request of a uid
enrols it with the next id. It shows that any family may answer ``resolve_user`` with an
object satisfying :class:`core.User`, and that handlers taking ``user`` receive it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel
from quart import Blueprint

from core import Family, Identity, LoadedPlugin, PluginInfo, StashKey, User, endpoint, hookimpl

PLUGIN = PluginInfo(version="1.0.0", description="Members known by their Firebase uid.")

FAMILY: Family[None] = Family(__package__)
blueprint = Blueprint("roster", __name__)


@dataclass(frozen=True)
class Member:
    id: int
    firebase_uid: str
    email: str | None
    display_name: str | None = None
    locale: str = "en"
    timezone: str = "UTC"
    units: str = "metric"


MEMBERS = StashKey[dict[str, Member]]("members")


class MemberOut(BaseModel):
    id: int
    firebase_uid: str
    email: str | None


@blueprint.get("/roster/me")
@endpoint(response=MemberOut)
async def read_member(user: User) -> User:
    """The caller, as this family resolved them."""
    return user


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def startup(plugin: LoadedPlugin) -> None:
    plugin.stash[MEMBERS] = {}


@hookimpl
def resolve_user(identity: Identity) -> Member:
    members = FAMILY.stash[MEMBERS]
    if identity.uid not in members:
        members[identity.uid] = Member(len(members) + 1, identity.uid, identity.email)
    return members[identity.uid]
