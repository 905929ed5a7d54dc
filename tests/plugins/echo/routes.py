from __future__ import annotations

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
