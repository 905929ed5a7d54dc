"""``/user_states/*``: thin handlers that parse, call the service and shape the answer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from quart import Blueprint

from core import ApiError, EventStream, ServerSentEvent, User, current_platform, endpoint
from plugins.home import boards, service
from plugins.home.models import Board, CheckIn, Feedback
from plugins.home.schemas import (
    ACTIVITY_ID,
    BOARD_EVENTS,
    FAMILY,
    GENERATIONS,
    SECTIONS,
    WRITER,
    Activity,
    BoardOut,
    BoardPage,
    BoardQuery,
    CheckInIn,
    CheckInOut,
    FeedbackIn,
    FeedbackOut,
    HomeState,
)

blueprint = Blueprint("home", __name__, url_prefix="/user_states/me")
TAGS = ("home",)
_ACTIVITY_ID = re.compile(ACTIVITY_ID)

BOARD_STREAM = EventStream(
    BOARD_EVENTS,
    description=(
        "`board` first (the board's id and the sections it waits for), then a `section` "
        "as each is ready and an `error` for each that failed or ran out of time, the "
        "`narrative` piece by piece, and `done` once the board is stored. Each event's id "
        "is `<board id>-<n>`: send the last one as `Last-Event-ID` to resume."
    ),
)


@blueprint.get("")
@endpoint(response=HomeState, tags=TAGS)
async def read_home_state(user: User) -> HomeState:
    """Everything the Home screen shows, in one call: each enabled family's parts (the
    active goal, the connection summary, the latest board, the check-in); a family that
    failed or was too slow is listed under `unavailable` and the rest still arrive."""
    return await service.home_state(current_platform(), user, FAMILY.settings.part_timeout_seconds)


async def _stream(board: Board, after: int) -> AsyncIterator[ServerSentEvent]:
    stash = FAMILY.of(current_platform()).stash
    async for seq, name, data in boards.follow(stash[GENERATIONS], FAMILY.settings, board, after):
        yield ServerSentEvent(name, data, id=boards.event_id(board.id, seq))


@blueprint.post("/boards")
@endpoint(stream=BOARD_STREAM, tags=TAGS, errors=(400, 404))
async def create_board(user: User, last_event_id: str | None) -> AsyncIterator[ServerSentEvent]:
    """Generate a board and stream it as it is made. The board is generated and stored
    whether or not the client stays; a client that dropped resumes with `Last-Event-ID`
    (here, or on `GET /user_states/me/boards/{board_id}/events`) and gets exactly the
    events it missed, then the rest."""
    if last_event_id:
        board_id, after = boards.parse_last_event_id(last_event_id)
        board = await boards.find(user, board_id)
    else:
        stash = FAMILY.of(current_platform()).stash
        board = await boards.start(
            stash[GENERATIONS],
            current_platform(),
            stash[SECTIONS],
            stash[WRITER],
            FAMILY.settings,
            user,
        )
        after = 0
    async for event in _stream(board, after):
        yield event


@blueprint.get("/boards/<int:board_id>/events")
@endpoint(stream=BOARD_STREAM, tags=TAGS, errors=(400, 404))
async def board_events(
    board_id: int, user: User, last_event_id: str | None
) -> AsyncIterator[ServerSentEvent]:
    """A board's stream from the start, or after `Last-Event-ID`: a board still being
    made streams on until `done`; a finished one replays what it streamed."""
    board = await boards.find(user, board_id)
    after = 0
    if last_event_id:
        resumed, after = boards.parse_last_event_id(last_event_id)
        if resumed != board_id:
            raise ApiError(
                400, "invalid_last_event_id", f"Last-Event-ID is not an event of board {board_id}."
            )
    async for event in _stream(board, after):
        yield event


@blueprint.get("/boards")
@endpoint(query=BoardQuery, response=BoardPage, tags=TAGS)
async def list_boards(query: BoardQuery, user: User) -> BoardPage:
    """The caller's boards, newest first; pass `next_before` as `before` for the next page."""
    return await boards.page(user, query.limit, query.before)


@blueprint.get("/boards/latest")
@endpoint(response=BoardOut, tags=TAGS, errors=(404,))
async def read_latest_board(user: User) -> BoardOut:
    """The caller's latest finished board."""
    return boards.board_out(await boards.latest(user))


@blueprint.get("/boards/<int:board_id>")
@endpoint(response=BoardOut, tags=TAGS, errors=(404,))
async def read_board(board_id: int, user: User) -> BoardOut:
    """One of the caller's boards, as stored (also while it is being made)."""
    return boards.board_out(await boards.find(user, board_id))


@blueprint.get("/activities/<activity_id>")
@endpoint(response=Activity, tags=TAGS, errors=(404, 502, 503, 504))
async def read_activity(activity_id: str, user: User) -> Activity:
    """One of the caller's activities, as the health-data service holds it."""
    if not _ACTIVITY_ID.match(activity_id):
        raise ApiError(404, "activity_not_found", "No activity has such an id.")
    return await service.activity(current_platform(), user, activity_id)


@blueprint.post("/feedback")
@endpoint(body=FeedbackIn, response=FeedbackOut, status=201, tags=TAGS, errors=(400, 404))
async def create_feedback(body: FeedbackIn, user: User) -> Feedback:
    """React to a board, a section of one, or an activity: a rating, words, or both."""
    return await service.add_feedback(current_platform(), user, body)


@blueprint.post("/check-ins")
@endpoint(body=CheckInIn, response=CheckInOut, status=201, tags=TAGS, errors=(400,))
async def create_check_in(body: CheckInIn, user: User) -> CheckIn:
    """How the caller feels today; several a day are kept, the day is the caller's own."""
    return await service.add_check_in(current_platform(), user, body)
