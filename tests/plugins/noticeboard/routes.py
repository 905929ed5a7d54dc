from __future__ import annotations

from pydantic import BaseModel
from quart import Blueprint

from core import current_platform, endpoint

blueprint = Blueprint("noticeboard", __name__)


class Board(BaseModel):
    notices: list[str]


@blueprint.get("/notices")
@endpoint(response=Board, auth="public")
async def read_notices() -> Board:
    results = await current_platform().call_each("notices")
    return Board(notices=[notice for _, items in results for notice in items])
