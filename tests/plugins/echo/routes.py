from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint

from core import endpoint

blueprint = Blueprint("echo", __name__)


class EchoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=10_000)
    count: int = Field(1, ge=1, le=10)


class EchoOut(BaseModel):
    text: str
    count: int


class SearchQuery(BaseModel):
    q: str = Field(min_length=1)
    limit: int = Field(10, ge=1, le=50)


@blueprint.post("/echo")
@endpoint(body=EchoIn, response=EchoOut, auth="public")
async def echo(body: EchoIn) -> EchoOut:
    return EchoOut(text=body.text, count=body.count)


@blueprint.get("/echo/search")
@endpoint(query=SearchQuery, response=SearchQuery, auth="public")
async def search(query: SearchQuery) -> SearchQuery:
    return query


@blueprint.get("/echo/crash")
@endpoint(auth="public")
async def crash() -> None:
    raise RuntimeError("secret internals")


class RawOut(BaseModel):
    size: int
    sha256: str


@blueprint.post("/echo/raw")
@endpoint(response=RawOut, auth="public", raw_body="application/json")
async def echo_raw(raw_body: bytes) -> RawOut:
    """The digest of exactly the bytes sent, as a webhook's signature check needs them."""
    return RawOut(size=len(raw_body), sha256=hashlib.sha256(raw_body).hexdigest())
