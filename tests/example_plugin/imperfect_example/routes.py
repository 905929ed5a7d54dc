from __future__ import annotations

from quart import Blueprint

from core import Identity, endpoint
from imperfect_example.schemas import FAMILY, NoteIn, NoteOut
from imperfect_example.service import add_note, list_notes

blueprint = Blueprint("example", __name__, url_prefix="/example")


@blueprint.post("/notes")
@endpoint(body=NoteIn, response=NoteOut, status=201, errors=(409,))
async def create_note(body: NoteIn, identity: Identity) -> NoteOut:
    """Store a note for the caller."""
    return await add_note(identity.uid, body.text, FAMILY.settings.max_notes)


@blueprint.get("/notes")
@endpoint(response=list[NoteOut])
async def read_notes(identity: Identity) -> list[NoteOut]:
    """The caller's notes, oldest first."""
    return await list_notes(identity.uid)
