"""cheshire, as docs/services/cheshire.md describes it: a question in, an answer out; a
route request in, a route plan out.

:meth:`CheshireClient.answer` returns the whole answer; :meth:`CheshireClient.stream`
yields cheshire's events one by one as they arrive (parsed from its Server-Sent Events,
never read whole). Failures before an answer starts are :class:`~core.ApiError` (502, 504,
or 400 ``question_refused``); failures after are :class:`~core.UpstreamStreamError`.
:meth:`CheshireClient.route_plan` returns a plan (400 ``request_refused`` when cheshire
will not plan it); its waypoints are passed on as cheshire wrote them, for the caller to
validate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from core import ApiError, ServiceClient, UpstreamStream, UpstreamStreamError

log = logging.getLogger("imperfect.cheshire")

CHESHIRE = "cheshire"
"""The service's name, as logs and errors say it."""

ANSWERS = "/v1/answers"
ROUTE_PLANS = "/v1/route-plans"


class UpstreamChart(BaseModel):
    title: str = ""
    spec: dict[str, Any]


class UpstreamAnswer(BaseModel):
    answer_id: str
    text: str
    charts: list[UpstreamChart] = []


class UpstreamProgress(BaseModel):
    stage: str


class UpstreamDelta(BaseModel):
    text: str


class UpstreamDone(BaseModel):
    answer_id: str


class UpstreamError(BaseModel):
    code: str = "unknown"


class UpstreamPlannedRoute(BaseModel):
    title: str | None = None
    waypoints: list[Any]  # written by a model: the caller validates them


class UpstreamRoutePlan(BaseModel):
    plan_id: str
    paraphrase: str | None = None
    routes: list[UpstreamPlannedRoute] = Field(min_length=1)


UPSTREAM_EVENTS: dict[str, type[BaseModel]] = {
    "progress": UpstreamProgress,
    "delta": UpstreamDelta,
    "chart": UpstreamChart,
    "done": UpstreamDone,
    "error": UpstreamError,
}
UpstreamEvent = UpstreamProgress | UpstreamDelta | UpstreamChart | UpstreamDone | UpstreamError


class CheshireClient:
    """The typed client the family's service calls; ``http`` is core's ServiceClient."""

    def __init__(self, http: ServiceClient, *, chunk_timeout: float) -> None:
        self.http = http
        self.chunk_timeout = chunk_timeout

    async def answer(self, question: str, uid: str) -> UpstreamAnswer:
        """The whole answer (``Accept: application/json``); never retried (it costs)."""
        response = await self.http.request(
            "POST", ANSWERS, json={"question": question, "user_id": uid}, retries=0
        )
        if response.status_code != 200:
            raise _refused(response.status_code, response.content)
        return self.http.parse(response, UpstreamAnswer)

    async def route_plan(
        self, request: str, uid: str, locale: str, near: Mapping[str, float] | None
    ) -> UpstreamRoutePlan:
        """A route plan for a request in the user's words; never retried (it costs)."""
        body: dict[str, Any] = {"request": request, "user_id": uid, "locale": locale}
        if near is not None:
            body["near"] = {"lat": near["lat"], "lng": near["lng"]}
        response = await self.http.request("POST", ROUTE_PLANS, json=body, retries=0)
        if response.status_code != 200:
            raise _refused(response.status_code, response.content)
        return self.http.parse(response, UpstreamRoutePlan)

    @asynccontextmanager
    async def stream(self, question: str, uid: str) -> AsyncIterator[AsyncIterator[UpstreamEvent]]:
        """``async with client.stream(q, uid) as events:`` cheshire's events as they come.

        Leaving the block closes the connection, so cheshire stops working on the answer.
        """
        async with self.http.stream(
            "POST",
            ANSWERS,
            json={"question": question, "user_id": uid},
            headers={"Accept": "text/event-stream"},
            chunk_timeout=self.chunk_timeout,
        ) as upstream:
            if upstream.status_code != 200:
                raise _refused(upstream.status_code, await upstream.read(2000))
            yield _events(upstream)


def _refused(status: int, body: bytes) -> ApiError:
    """A 4xx before the answer started: a refused question or route request, or our own
    misconfiguration."""
    code = ""
    with suppress(ValueError, KeyError, TypeError):
        code = json.loads(body)["error"]["code"]
    if status == 400 and code == "question_refused":
        return ApiError(
            400,
            "question_refused",
            "cheshire cannot answer this question; ask about your own training.",
        )
    if status == 400 and code == "request_refused":
        return ApiError(
            400,
            "request_refused",
            "This request cannot be planned as a route; say where, and how long or how far.",
        )
    log.error("cheshire answered HTTP %s (%s): check base_url and the service key", status, code)
    return ApiError(502, "upstream_invalid", "cheshire refused the request.")


async def _events(upstream: UpstreamStream) -> AsyncIterator[UpstreamEvent]:
    """Server-Sent Events (HTML's parsing rules) as typed events, unknown names skipped."""
    name, data = "", []
    async for line in upstream.lines():
        if line:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            continue  # comments (keep-alives), id and retry carry nothing we use
        if data and name in UPSTREAM_EVENTS:
            yield _parse(name, "\n".join(data))
        name, data = "", []


def _parse(name: str, data: str) -> UpstreamEvent:
    try:
        return UPSTREAM_EVENTS[name].model_validate_json(data)  # type: ignore[return-value]
    except ValidationError as error:
        log.warning("cheshire sent a %s event that does not parse: %s", name, error)
        raise UpstreamStreamError(
            502, "upstream_invalid", "cheshire sent an event that does not parse.", service=CHESHIRE
        ) from error
