"""A fake cheshire: the contract of docs/services/cheshire.md, on a real socket.

``POST /v1/answers`` checks the key and the body, then answers from the question: a text
(``Here is what I found about: <question>``, streamed word by word as ``delta`` events)
and one Vega-Lite bar chart, with ``progress`` events whose ``detail`` holds cheshire's
internals (SQL naming an internal host) that callers must never pass on.

``POST /v1/route-plans`` answers a route request with a plan: a loop of four waypoints
around ``near`` (or :data:`DEFAULT_NEAR`), ``alternatives`` shorter loops, and a paraphrase
of the request. A test that needs cheshire to answer something else (a plan a model got
wrong) sets ``route_plan`` to the body to answer.

Tests choose how it behaves with ``mode``:

- ``"answer"``: the normal answer;
- ``"refuse"``: ``400 question_refused`` (a route request: ``400 request_refused``);
  ``"down"``: ``503``;
- ``"slow"``: ``delay`` seconds before the headers;
- ``"stall"``: the first events, then nothing at all (no keep-alive) until the client goes;
- ``"cut"``: the first events, then the connection is broken mid-body;
- ``"error"``: the first events, then an ``error`` event full of internals (a route
  request, or a JSON answer: a ``500`` with a trace);
- ``"endless"``: keep-alives and deltas forever, until the client goes;
- ``"bad_chart"``: the chart is not valid Vega-Lite;
- ``"timed"``: ``count`` deltas ``interval`` seconds apart, each text the
  ``time.perf_counter()`` of its yield (for tests/bench/sse_latency.py), then ``done``.

``hold`` (a ``threading.Event``) stops a normal stream after its first delta, sending
keep-alives, until the test sets it. ``disconnected`` is set when a client closed a
stream before it ended (the caller cancelled its request); ``calls`` lists the requests.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from quart import Quart, Response, request

from tests.fakes.server import FakeServer

API_KEY = "test-cheshire-service-key"
INTERNAL = "SELECT pace FROM activities@db-internal-7.cheshire.svc:5432 WHERE uid = $1"
TRACE = 'Traceback (most recent call last):\n  File "/srv/cheshire/agent.py", line 88'
KEEP_ALIVE = b": keep-alive\n\n"
DEFAULT_NEAR = {"lat": 45.899, "lng": 6.129}


def chart(title: str = "Long runs, pace") -> dict[str, Any]:
    """A valid Vega-Lite v5 bar chart."""
    return {
        "title": title,
        "spec": {
            "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "data": {"values": [{"week": "W1", "km": 32}, {"week": "W2", "km": 41}]},
            "mark": "bar",
            "encoding": {
                "x": {"field": "week", "type": "nominal"},
                "y": {"field": "km", "type": "quantitative"},
            },
        },
    }


BAD_CHART = {"title": "Broken", "spec": {"mark": "sparkle", "encoding": "everything"}}


@dataclass
class Call:
    accept: str
    authorization: str
    body: Any
    path: str


@dataclass
class FakeCheshire:
    api_key: str = API_KEY
    mode: str = "answer"
    delay: float = 0.0
    hold: threading.Event | None = None
    count: int = 100
    interval: float = 0.002
    alternatives: int = 1
    route_plan: Any = None
    calls: list[Call] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def __post_init__(self) -> None:
        self._server = FakeServer(_build_app(self))

    def start(self) -> FakeCheshire:
        self._server.start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        self._server.stop()

    def plan(self, request: str, near: dict[str, float] | None) -> dict[str, Any]:
        """The plan the fake answers for ``request`` near ``near``."""
        lat, lng = (near or DEFAULT_NEAR)["lat"], (near or DEFAULT_NEAR)["lng"]
        loops = [("Lakeside loop", 0.02)] + [
            (f"Shorter loop {n}", 0.02 / (n + 1)) for n in range(1, self.alternatives + 1)
        ]
        return {
            "plan_id": f"plan_{len(self.calls)}",
            "paraphrase": f"A loop near {lat:.3f}, {lng:.3f}, as you asked: {request}",
            "routes": [
                {
                    "title": title,
                    "waypoints": [
                        {"lat": lat, "lng": lng},
                        {"lat": round(lat + size / 2, 6), "lng": round(lng + size, 6)},
                        {"lat": round(lat + size, 6), "lng": lng},
                        {"lat": lat, "lng": lng},
                    ],
                }
                for title, size in loops
            ],
        }

    def words(self, question: str) -> list[str]:
        text = f"Here is what I found about: {question}"
        parts = text.split(" ")
        return [part + (" " if n < len(parts) - 1 else "") for n, part in enumerate(parts)]


def _frame(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}})
    return Response(body, status=status, content_type="application/json")


async def _received(fake: FakeCheshire) -> tuple[Any, Response | None]:
    """The request's JSON body, recorded as a call; and a 401 to answer when it lacks the
    service key (else None)."""
    body = await request.get_json(silent=True)
    authorization = request.headers.get("Authorization", "")
    fake.calls.append(
        Call(
            accept=request.headers.get("Accept", ""),
            authorization=authorization,
            body=body,
            path=request.path,
        )
    )
    if authorization != f"Bearer {fake.api_key}":
        return body, _error(401, "unauthorized", "bad service key")
    return body, None


def _build_app(fake: FakeCheshire) -> Quart:
    app = Quart("fake_cheshire")

    @app.post("/v1/route-plans")
    async def route_plans() -> Response:
        body, refused = await _received(fake)
        if refused is not None:
            return refused
        asked = body.get("request") if isinstance(body, dict) else None
        if not isinstance(asked, str) or not 1 <= len(asked) <= 500:
            return _error(400, "invalid_body", "request must be 1 to 500 characters")
        if not isinstance(body.get("user_id"), str):
            return _error(400, "invalid_body", "user_id is required")
        near = body.get("near")
        if near is not None and not (
            isinstance(near, dict)
            and all(isinstance(near.get(k), int | float) for k in ("lat", "lng"))
        ):
            return _error(400, "invalid_body", "near is {lat, lng}")
        if fake.mode == "refuse":
            return _error(400, "request_refused", f"not a route; {INTERNAL}")
        if fake.mode == "down":
            return _error(503, "overloaded", f"pool exhausted at {INTERNAL}")
        if fake.mode == "error":
            return _error(500, "agent_crashed", TRACE)
        if fake.mode == "slow":
            await asyncio.sleep(fake.delay)
        plan = fake.plan(asked, near) if fake.route_plan is None else fake.route_plan
        return Response(json.dumps(plan), content_type="application/json")

    @app.post("/v1/answers")
    async def answers() -> Response:
        body, refused = await _received(fake)
        if refused is not None:
            return refused
        question = body.get("question") if isinstance(body, dict) else None
        if not isinstance(question, str) or not 1 <= len(question) <= 2000:
            return _error(400, "invalid_body", "question must be 1 to 2000 characters")
        if not isinstance(body.get("user_id"), str):
            return _error(400, "invalid_body", "user_id is required")
        if fake.mode == "refuse":
            return _error(400, "question_refused", f"cannot answer; {INTERNAL}")
        if fake.mode == "down":
            return _error(503, "overloaded", f"pool exhausted at {INTERNAL}")
        if fake.mode == "slow":
            await asyncio.sleep(fake.delay)
        charts = [BAD_CHART if fake.mode == "bad_chart" else chart()]
        if "text/event-stream" not in request.headers.get("Accept", ""):
            if fake.mode == "error":
                return _error(500, "agent_crashed", TRACE)
            text = "".join(fake.words(question))
            answer = {"answer_id": f"ans_{len(fake.calls)}", "text": text, "charts": charts}
            return Response(json.dumps(answer), content_type="application/json")
        response = Response(_stream(fake, question, charts), content_type="text/event-stream")
        response.timeout = None
        return response

    return app


async def _stream(fake: FakeCheshire, question: str, charts: list[Any]) -> AsyncIterator[bytes]:
    finished = False
    try:
        if fake.mode == "timed":
            for _ in range(fake.count):
                yield _frame("delta", {"text": f"{time.perf_counter():.9f}"})
                await asyncio.sleep(fake.interval)
            yield _frame("done", {"answer_id": "ans_timed"})
            finished = True
            return
        words = fake.words(question)
        yield _frame("progress", {"stage": "planning", "detail": INTERNAL})
        yield _frame("delta", {"text": words[0]})
        if fake.mode == "stall":
            await asyncio.Event().wait()
        if fake.mode == "cut":
            raise ConnectionResetError("cheshire worker died")
        if fake.mode == "error":
            yield _frame("error", {"code": "agent_crashed", "message": INTERNAL, "trace": TRACE})
            finished = True
            return
        if fake.mode == "endless":
            while True:
                yield KEEP_ALIVE
                yield _frame("delta", {"text": "and more "})
                await asyncio.sleep(0.02)
        while fake.hold is not None and not fake.hold.is_set():
            yield KEEP_ALIVE
            await asyncio.sleep(0.02)
        yield b": keep-alive\n\n"
        yield _frame("progress", {"stage": "dreaming", "detail": "an unknown stage"})
        for word in words[1:]:
            yield _frame("delta", {"text": word})
        yield _frame("progress", {"stage": "charting", "detail": "alt.Chart(df).mark_bar()"})
        for item in charts:
            yield _frame("chart", item)
        yield _frame("future_event", {"anything": True})
        yield _frame("done", {"answer_id": "ans_streamed"})
        finished = True
    finally:
        if not finished:
            fake.disconnected.set()
