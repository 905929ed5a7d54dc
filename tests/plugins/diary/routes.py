"""``POST /diary/entries``: store an entry and, in the same transaction, record it for hare."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from quart import Blueprint
from tortoise.transactions import in_transaction

from core import ApiError, SourceEvent, User, current_platform, endpoint, utcnow
from tests.plugins.diary.models import DiaryEntry

blueprint = Blueprint("diary", __name__)


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    surface: str = "board_reply"
    refuse: bool = False  # fail after recording the source event, inside the transaction


class EntryOut(BaseModel):
    id: int
    text: str


def source_event(entry: DiaryEntry) -> SourceEvent:
    """The entry as a source event; the same key every time (recording, backfill)."""
    return SourceEvent(
        idempotency_key=f"diary:entry:{entry.id}",
        surface=entry.surface,
        text=entry.text,
        written_at=entry.written_at,
        reference_type="diary_entry",
        reference_id=str(entry.id),
        language="en",
    )


@blueprint.post("/diary/entries")
@endpoint(body=EntryIn, response=EntryOut, status=201, errors=(400, 409))
async def add_entry(body: EntryIn, user: User) -> DiaryEntry:
    """Write a diary entry; hare gets it once the entry is stored."""
    try:
        async with in_transaction():
            entry = await DiaryEntry.create(
                user_id=user.id, surface=body.surface, text=body.text, written_at=utcnow()
            )
            await current_platform().call_each(
                "record_source_event", user=user, event=source_event(entry)
            )
            if body.refuse:
                raise ApiError(409, "refused", "Refused after recording the source event.")
    except ValueError as error:
        raise ApiError(400, "invalid_entry", str(error)) from error
    return entry


@blueprint.get("/diary/entries")
@endpoint(response=list[EntryOut])
async def list_entries(user: User) -> list[DiaryEntry]:
    """The caller's entries, oldest first."""
    return await DiaryEntry.filter(user_id=user.id).order_by("id")
