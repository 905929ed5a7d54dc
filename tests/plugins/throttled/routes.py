from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict
from quart import Blueprint

from core import ApiError, Identity, RateLimit, endpoint

blueprint = Blueprint("throttled", __name__, url_prefix="/throttled")

CALLS: Counter[str] = Counter()
"""How many times each handler ran, by handler name."""


class Caller(BaseModel):
    uid: str | None = None


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str


@blueprint.get("/mine")
@endpoint(response=Caller, rate_limits=("3/minute", "5/hour"))
async def mine(identity: Identity) -> Caller:
    """Two windows of the caller's own budget."""
    CALLS["mine"] += 1
    return Caller(uid=identity.uid)


@blueprint.get("/ip")
@endpoint(response=Caller, auth="public", rate_limits=("3/minute",), rate_limit_by="ip")
async def by_ip() -> Caller:
    """A budget per client address."""
    CALLS["ip"] += 1
    return Caller()


@blueprint.get("/shared")
@endpoint(response=Caller, auth="public", rate_limits=(RateLimit("4/minute", per="route"),))
async def shared() -> Caller:
    """One budget for every caller."""
    CALLS["shared"] += 1
    return Caller()


@blueprint.post("/notes")
@endpoint(body=NoteIn, status=204, auth="public", rate_limits=(RateLimit("2/minute", per="ip"),))
async def note(body: NoteIn) -> None:
    """Limited before its body is read; refuses ``"no"`` with 409."""
    CALLS["notes"] += 1
    if body.text == "no":
        raise ApiError(409, "refused", "No.")


@blueprint.get("/mixed")
@endpoint(
    response=Caller,
    rate_limits=(RateLimit("2/minute", per="user"), RateLimit("3/minute", per="route")),
)
async def mixed(identity: Identity) -> Caller:
    """Two per user, and three for everyone together."""
    CALLS["mixed"] += 1
    return Caller(uid=identity.uid)


@blueprint.get("/burst")
@endpoint(
    response=Caller, auth="public", rate_limits=("2 per 1 second", "3/minute"), rate_limit_by="ip"
)
async def burst() -> Caller:
    """A short window inside a longer one."""
    CALLS["burst"] += 1
    return Caller()
