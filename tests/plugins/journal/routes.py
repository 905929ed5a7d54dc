"""``POST /journal/entries``: store an entry and, in the same transaction, ask for a push."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from quart import Blueprint
from tortoise.transactions import in_transaction

from core import ApiError, PushMessage, current_platform, endpoint
from tests.plugins.journal.models import Entry

blueprint = Blueprint("journal", __name__)


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    refuse: bool = False  # fail after asking for the push, inside the transaction


class EntryOut(BaseModel):
    id: int
    text: str


@blueprint.post("/journal/entries")
@endpoint(body=EntryIn, response=EntryOut, status=201, errors=(409,))
async def add_entry(body: EntryIn, user: Any) -> Entry:
    async with in_transaction():
        entry = await Entry.create(user_id=user.id, text=body.text)
        push = PushMessage(title="Journal", body=body.text, category="journal")
        await current_platform().call_each("send_push", user=user, push=push)
        if body.refuse:
            raise ApiError(409, "refused", "Refused after asking for the push.")
    return entry
