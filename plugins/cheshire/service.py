"""Asking cheshire: store the question, call cheshire, keep the answer as it arrives.

The question is written before cheshire is called, so nothing the user wrote is lost
when cheshire is down, slow or cut off; the row then says how the answer ended. A
stream is passed on event by event as our own events: cheshire's progress details,
error messages and traces (SQL, code, hostnames) are dropped here, and its charts are
passed on only when they are valid Vega-Lite v5.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator  # type: ignore[import-untyped]

from core import ApiError, ServerSentEvent, UpstreamStreamError, User, utcnow
from plugins.cheshire.clients import (
    CheshireClient,
    UpstreamChart,
    UpstreamDelta,
    UpstreamDone,
    UpstreamError,
    UpstreamProgress,
)
from plugins.cheshire.models import Question
from plugins.cheshire.schemas import (
    AnswerDelta,
    AnswerDone,
    AnswerError,
    AnswerProgress,
    CheshireChart,
    HistoryQuery,
    QuestionAccepted,
    QuestionOut,
    QuestionPage,
    QuestionSummary,
    Stage,
    StreamErrorCode,
)

log = logging.getLogger("imperfect.cheshire")
MAX_ID = 2**31 - 1  # question ids are 32-bit integer columns

STAGES: frozenset[Stage] = frozenset({"planning", "querying", "charting", "writing"})
SAVED = "Your question is saved; ask again later."
MESSAGES: Mapping[str, str] = {
    "upstream_unavailable": f"cheshire stopped answering. {SAVED}",
    "upstream_timeout": f"cheshire took too long to answer. {SAVED}",
    "upstream_invalid": f"cheshire could not finish this answer. {SAVED}",
}


@functools.cache
def vega_lite() -> Draft7Validator:
    """The Vega-Lite v5 JSON schema, as shipped in the ``altair`` wheel (never downloaded).

    Found without importing altair (which pulls in its dataframe machinery).
    """
    spec = importlib.util.find_spec("altair")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the altair package (which ships the Vega-Lite schema) is missing")
    path = Path(spec.submodule_search_locations[0]) / "vegalite/v5/schema/vega-lite-schema.json"
    return Draft7Validator(json.loads(path.read_text()))


def valid_chart(chart: UpstreamChart) -> CheshireChart | None:
    """The chart if its spec is valid Vega-Lite v5; None (and a log line) if not."""
    error = next(iter(vega_lite().iter_errors(chart.spec)), None)
    if error is not None:
        log.warning("cheshire sent a chart that is not valid Vega-Lite: %s", error.message[:200])
        return None
    return CheshireChart(title=chart.title[:200], spec=chart.spec)


async def valid_charts(charts: list[UpstreamChart]) -> list[CheshireChart]:
    """The valid ones, checked off the event loop (the schema is large)."""
    checked = await asyncio.to_thread(lambda: [valid_chart(chart) for chart in charts])
    return [chart for chart in checked if chart is not None]


def question_out(question: Question) -> QuestionOut:
    return QuestionOut(
        id=question.id,
        question=question.question,
        status=question.status,
        text=question.text,
        charts=[CheshireChart.model_validate(chart) for chart in question.charts],
        error=question.error,
        asked_at=question.asked_at,
        answered_at=question.answered_at,
    )


async def answer(client: CheshireClient, user: User, text: str) -> QuestionOut:
    """Ask and wait for the whole answer; a failure is stored on the question, then raised."""
    question = await Question.create(user_id=user.id, question=text)
    try:
        reply = await client.answer(text, user.firebase_uid)
    except ApiError as error:
        await _end(question, "failed", error.code)
        raise
    question.text = reply.text
    question.charts = [chart.model_dump() for chart in await valid_charts(reply.charts)]
    await _end(question, "answered", None)
    return question_out(question)


async def stream(client: CheshireClient, user: User, text: str) -> AsyncIterator[ServerSentEvent]:
    """Ask and pass the answer on as it arrives (see the module docstring).

    An ApiError before cheshire's stream starts propagates (a JSON 502/504/400, the
    question stored as failed); after that, a failure is our ``error`` event. A client
    that goes away closes this generator, which closes the upstream request; the row
    keeps what arrived, as ``interrupted``.
    """
    question = await Question.create(user_id=user.id, question=text)
    parts: list[str] = []
    charts: list[dict[str, Any]] = []
    status, code = "interrupted", None
    try:
        async with client.stream(text, user.firebase_uid) as events:
            yield ServerSentEvent("question", QuestionAccepted(question_id=question.id))
            async for event in events:
                if isinstance(event, UpstreamProgress):
                    stage: Stage = event.stage if event.stage in STAGES else "working"
                    yield ServerSentEvent("progress", AnswerProgress(stage=stage))
                elif isinstance(event, UpstreamDelta):
                    parts.append(event.text)
                    yield ServerSentEvent("delta", AnswerDelta(text=event.text))
                elif isinstance(event, UpstreamChart):
                    for chart in await valid_charts([event]):
                        charts.append(chart.model_dump())
                        yield ServerSentEvent("chart", chart)
                elif isinstance(event, UpstreamDone):
                    status = "answered"
                    yield ServerSentEvent("done", AnswerDone(question_id=question.id))
                    return
                elif isinstance(event, UpstreamError):
                    log.warning("cheshire failed mid-answer (%s)", event.code)
                    status, code = "failed", "upstream_invalid"
                    yield _error("upstream_invalid")
                    return
            log.warning("cheshire ended its stream without done or error")
            status, code = "failed", "upstream_unavailable"
            yield _error("upstream_unavailable")
    except UpstreamStreamError as error:
        status, code = "failed", _stream_code(error.code)
        yield _error(code)
    except ApiError as error:
        status, code = "failed", error.code
        raise
    finally:
        question.text = "".join(parts)
        question.charts = charts
        await _end(question, status, code)


def _stream_code(code: str) -> StreamErrorCode:
    return code if code in MESSAGES else "upstream_unavailable"  # type: ignore[return-value]


def _error(code: StreamErrorCode) -> ServerSentEvent:
    return ServerSentEvent("error", AnswerError(code=code, message=MESSAGES[code]))


async def _end(question: Question, status: str, code: str | None) -> None:
    question.status, question.error = status, code
    question.answered_at = utcnow() if status == "answered" else None
    await question.save(update_fields=["status", "error", "text", "charts", "answered_at"])


async def route_plan(
    client: CheshireClient,
    user: User,
    request: str,
    locale: str,
    near: Mapping[str, float] | None,
) -> dict[str, Any]:
    """A route request as ``public_routes``' plan (its ``interpret_route_request`` hook):
    cheshire's first route is the one asked for, the others its alternatives. The
    waypoints go on as cheshire wrote them; ``public_routes`` validates the plan."""
    plan = await client.route_plan(request, user.firebase_uid, locale, near)
    first, *others = plan.routes
    return {
        "title": first.title,
        "waypoints": first.waypoints,
        "paraphrase": plan.paraphrase,
        "alternatives": [{"title": r.title, "waypoints": r.waypoints} for r in others],
    }


async def read(user: User, question_id: int) -> QuestionOut:
    question = None
    if question_id <= MAX_ID:  # larger ids exist nowhere, and overflow the integer column
        question = await Question.get_or_none(id=question_id, user_id=user.id)
    if question is None:  # another user's question is as missing as one never asked
        raise ApiError(404, "question_not_found", "No such question.")
    return question_out(question)


async def history(user: User, query: HistoryQuery) -> QuestionPage:
    rows = Question.filter(user_id=user.id)
    if query.before is not None:
        rows = rows.filter(id__lt=query.before)
    found = await rows.order_by("-id").limit(query.limit + 1)
    page = found[: query.limit]
    return QuestionPage(
        items=[
            QuestionSummary(
                id=q.id,
                question=q.question,
                status=q.status,
                asked_at=q.asked_at,
                answered_at=q.answered_at,
            )
            for q in page
        ],
        next_before=page[-1].id if len(found) > query.limit else None,
    )


async def erase(user: User) -> None:
    await Question.filter(user_id=user.id).delete()


async def export(user: User) -> dict[str, Any]:
    questions = await Question.filter(user_id=user.id).order_by("id")
    return {"questions": [question_out(q).model_dump(mode="json") for q in questions]}
