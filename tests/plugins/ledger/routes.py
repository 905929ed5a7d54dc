from __future__ import annotations

from pydantic import BaseModel
from quart import Blueprint

from core import endpoint
from tests.plugins.ledger.models import Entry

blueprint = Blueprint("ledger", __name__)


class LedgerCount(BaseModel):
    entries: int


@blueprint.get("/ledger/entries")
@endpoint(response=LedgerCount, auth="public")
async def count_entries() -> LedgerCount:
    return LedgerCount(entries=await Entry.all().count())


@blueprint.delete("/ledger/entries")
@endpoint(auth="admin", status=204)
async def clear_entries() -> None:
    """Admins only: empty the ledger."""
    await Entry.all().delete()
