"""``POST /ticker/stream`` streams ``tick`` events, then ``done``.

A stream is named by its ``key``: with ``hold_after`` it stops after that many ticks until
``POST /ticker/release/<key>`` (so a test reads events while the generator is blocked,
even through a served app in another process); ``GET /ticker/closed/<key>`` says whether
the generator's ``finally`` has run (the client went away, or it ended).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Literal

from pydantic import BaseModel, Field
from quart import Blueprint

from core import ApiError, EventStream, ServerSentEvent, endpoint

blueprint = Blueprint("ticker", __name__)

GATES: dict[str, asyncio.Event] = {}
CLOSED: set[str] = set()


class TickIn(BaseModel):
    key: str = Field(min_length=1, max_length=64)
    count: int = Field(3, ge=1, le=100_000)
    hold_after: int | None = Field(None, ge=0)
    fail: Literal["before", "after", "stray"] | None = None
    interval: float = Field(0, ge=0, le=1, description="seconds between two ticks")


class Tick(BaseModel):
    n: int
    at: float = Field(description="time.perf_counter() when the tick was yielded")


class Ticked(BaseModel):
    count: int
    last_event_id: str | None


class Closed(BaseModel):
    closed: bool


TICKS = EventStream({"tick": Tick, "done": Ticked}, description="Ticks, then done.")


@blueprint.post("/ticker/stream")
@endpoint(body=TickIn, auth="public", stream=TICKS, errors=(502,))
async def ticks(body: TickIn, last_event_id: str | None) -> AsyncIterator[ServerSentEvent]:
    gate = GATES.setdefault(body.key, asyncio.Event())
    try:
        if body.fail == "before":
            raise ApiError(502, "upstream_unavailable", "The ticker's source is down.")
        start = int(last_event_id) if last_event_id else 0
        for n in range(start + 1, body.count + 1):
            if body.hold_after is not None and n == body.hold_after + 1:
                await gate.wait()
            yield ServerSentEvent("tick", Tick(n=n, at=time.perf_counter()), id=str(n))
            if body.interval:
                await asyncio.sleep(body.interval)
            if body.fail == "after":
                raise RuntimeError("the ticker broke")
            if body.fail == "stray":
                yield ServerSentEvent("stray", Closed(closed=False))
        yield ServerSentEvent("done", Ticked(count=body.count, last_event_id=last_event_id))
    finally:
        CLOSED.add(body.key)


@blueprint.post("/ticker/release/<key>")
@endpoint(auth="public", status=204)
async def release(key: str) -> None:
    GATES.setdefault(key, asyncio.Event()).set()


@blueprint.get("/ticker/closed/<key>")
@endpoint(auth="public", response=Closed)
async def closed(key: str) -> Closed:
    return Closed(closed=key in CLOSED)
