from __future__ import annotations

from pydantic import BaseModel
from quart import Blueprint

from core import endpoint

blueprint = Blueprint("fragile", __name__)


class Pong(BaseModel):
    pong: bool


@blueprint.get("/fragile/ping")
@endpoint(response=Pong, auth="public")
async def ping() -> Pong:
    return Pong(pong=True)
