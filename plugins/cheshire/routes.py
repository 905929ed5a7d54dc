"""``/cheshire/questions``: ask (a JSON answer, or a stream), the history, one answer.
Thin: parse, call the service, shape the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

from quart import Blueprint

from core import ServerSentEvent, User, endpoint
from plugins.cheshire import service
from plugins.cheshire.schemas import (
    ANSWER_STREAM,
    CHESHIRE_CLIENT,
    FAMILY,
    HistoryQuery,
    QuestionIn,
    QuestionOut,
    QuestionPage,
)

blueprint = Blueprint("cheshire", __name__)

# Each question costs cheshire a model run: a budget per user.
QUESTION_LIMITS = ("20/minute", "500/day")


@blueprint.post("/cheshire/questions")
@endpoint(
    body=QuestionIn,
    response=QuestionOut,
    status=201,
    errors=(400, 502, 504),
    rate_limits=QUESTION_LIMITS,
)
async def ask_question(body: QuestionIn, user: User) -> QuestionOut:
    """Ask cheshire and wait for the whole answer (text and charts).

    The question is stored first: when cheshire is down (502) or slow (504) it stays in
    the history as `failed`. 400 `question_refused`: cheshire will not answer it."""
    return await service.answer(FAMILY.stash[CHESHIRE_CLIENT], user, body.question)


@blueprint.post("/cheshire/questions/stream")
@endpoint(
    body=QuestionIn,
    stream=ANSWER_STREAM,
    errors=(400, 502, 504),
    rate_limits=QUESTION_LIMITS,
)
async def stream_question(body: QuestionIn, user: User) -> AsyncIterator[ServerSentEvent]:
    """Ask cheshire and receive the answer as it is made (Server-Sent Events).

    cheshire down or slow before it starts: a JSON 502/504. Failing after: an `error`
    event ends the stream. Either way the question (and what arrived) is stored; leaving
    mid-stream stops cheshire and keeps the answer as `interrupted`."""
    async for event in service.stream(FAMILY.stash[CHESHIRE_CLIENT], user, body.question):
        yield event


@blueprint.get("/cheshire/questions")
@endpoint(query=HistoryQuery, response=QuestionPage)
async def list_questions(query: HistoryQuery, user: User) -> QuestionPage:
    """The caller's questions, newest first; `next_before` continues."""
    return await service.history(user, query)


@blueprint.get("/cheshire/questions/<int:question_id>")
@endpoint(response=QuestionOut, errors=(404,))
async def read_question(question_id: int, user: User) -> QuestionOut:
    """One of the caller's questions with its stored answer, charts included."""
    return await service.read(user, question_id)
