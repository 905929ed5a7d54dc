from __future__ import annotations

from core import ApiError
from imperfect_example.models import Note


async def add_note(owner_uid: str, text: str, max_notes: int) -> Note:
    if await Note.filter(owner_uid=owner_uid).count() >= max_notes:
        raise ApiError(409, "too_many_notes", f"At most {max_notes} notes per user.")
    return await Note.create(owner_uid=owner_uid, text=text)


async def list_notes(owner_uid: str) -> list[Note]:
    return await Note.filter(owner_uid=owner_uid).order_by("id")


async def count_notes() -> int:
    return await Note.all().count()
