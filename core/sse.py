"""Server-Sent Events: typed events a handler yields, written to the socket one by one.

::

    @bp.post("/boards")
    @endpoint(stream=EventStream({"section": Section, "done": Done}))
    async def create_board(user: User) -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent("section", Section(...), id="1")
        yield ServerSentEvent("done", Done(...), id="2")

The handler's first event is awaited before the response starts, so an
:class:`~core.errors.ApiError` raised before it is the usual JSON error with its status
(a 502 or 504 for a sibling that is down). After that, every event is checked against the
declaration and written as one ``id:``/``event:``/``data:`` frame, handed to the server
at once (no buffering between the generator and the socket); while the generator is idle
a ``: heartbeat`` comment goes out every ``sse_heartbeat_seconds`` so proxies keep the
connection open. A client that goes away closes the generator (its ``finally`` runs,
anything it awaits is cancelled). An exception after the first event is logged and ends
the stream: a handler that wants the client to know yields its own ``error`` event.

A client that cannot stream sends ``Accept: application/json``: the generator is drained
and the events come back as one document ``{"events": [{"event", "id", "data"}, ...]}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from quart import Response, request, stream_with_context

log = logging.getLogger("imperfect.sse")

MEDIA_TYPE = "text/event-stream"
HEARTBEAT = b": heartbeat\n\n"
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx and others: do not hold frames back
}


@dataclass(frozen=True)
class ServerSentEvent:
    """One event: its declared name, its data (an instance of the declared model), an id.

    ``id`` is what a reconnecting client sends back as ``Last-Event-ID``.
    """

    event: str
    data: BaseModel
    id: str | None = None

    def __post_init__(self) -> None:
        if self.id is not None and any(c in self.id for c in "\r\n\0"):
            raise ValueError("a Server-Sent Event id cannot hold CR, LF or NUL")


class EventStream:
    """Declares a route's SSE response: event name -> the pydantic model of its data."""

    def __init__(self, events: Mapping[str, type[BaseModel]], *, description: str = "") -> None:
        if not events:
            raise TypeError("EventStream declares no event")
        for name, model in events.items():
            if not _EVENT_NAME.match(name):
                raise TypeError(
                    f"EventStream event name {name!r} must be lower case letters, digits, "
                    "'_', '.' or '-', starting with a letter"
                )
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise TypeError(f"EventStream event {name!r} must map to a pydantic model")
        self.events: dict[str, type[BaseModel]] = dict(events)
        self.description = description

    def check(self, event: Any) -> ServerSentEvent:
        """``event`` if it is declared with data of its declared model; else a TypeError."""
        if not isinstance(event, ServerSentEvent):
            raise TypeError(f"a streaming handler yielded {type(event).__name__}, not an event")
        model = self.events.get(event.event)
        if model is None:
            raise TypeError(f"event {event.event!r} is not declared by this route's EventStream")
        if not isinstance(event.data, model):
            raise TypeError(
                f"event {event.event!r} carries {type(event.data).__name__}, "
                f"not its declared {model.__name__}"
            )
        return event

    def frame(self, event: ServerSentEvent) -> bytes:
        """The event as one SSE frame (JSON never spans lines, so one ``data:`` line)."""
        self.check(event)
        head = f"id: {event.id}\n" if event.id is not None else ""
        return (
            f"{head}event: {event.event}\ndata: ".encode()
            + event.data.model_dump_json().encode()
            + b"\n\n"
        )


def wants_json() -> bool:
    """Whether the caller prefers one JSON document to a stream (``Accept``)."""
    accept = request.accept_mimetypes
    return bool(accept) and accept["application/json"] > accept[MEDIA_TYPE]


async def respond(
    stream: EventStream, events: AsyncGenerator[Any, None], heartbeat: float
) -> Response:
    """The response for a streaming handler's generator (see the module docstring)."""
    if wants_json():
        return await _drained(stream, events)
    try:
        first = stream.check(await anext(events))
    except StopAsyncIteration:
        first = None
    except BaseException:
        await events.aclose()
        raise
    body = stream_with_context(_frames)(stream, events, first, heartbeat)
    response = Response(body, status=200, content_type=MEDIA_TYPE, headers=STREAM_HEADERS)
    response.timeout = None  # a stream lasts as long as it has events (and heartbeats)
    return response


async def _drained(stream: EventStream, events: AsyncGenerator[Any, None]) -> Response:
    collected = []
    try:
        async for item in events:
            event = stream.check(item)
            collected.append(
                {"event": event.event, "id": event.id, "data": event.data.model_dump(mode="json")}
            )
    finally:
        await events.aclose()
    return Response(
        json.dumps({"events": collected}, separators=(",", ":")),
        status=200,
        content_type="application/json",
    )


async def _frames(
    stream: EventStream,
    events: AsyncGenerator[Any, None],
    first: ServerSentEvent | None,
    heartbeat: float,
) -> AsyncIterator[bytes]:
    """Frames as the generator makes them, heartbeats while it is idle; closes it at the end.

    The generator's next event is awaited in a task of its own, so a heartbeat never
    interrupts it (a timeout would cancel whatever the handler awaits).
    """
    pending: asyncio.Task[Any] | None = None
    try:
        if first is None:
            return
        yield stream.frame(first)
        while True:
            pending = asyncio.ensure_future(_next(events))
            while not (await asyncio.wait({pending}, timeout=heartbeat))[0]:
                yield HEARTBEAT
            event, pending = pending.result(), None
            if event is _END:
                return
            yield stream.frame(event)
    except Exception:
        log.exception("a streaming handler failed after its stream started; closing it")
    finally:
        if pending is not None:  # the client went away while the handler was working
            pending.cancel()
            await asyncio.wait({pending})
        await events.aclose()


_END = object()


async def _next(events: AsyncGenerator[Any, None]) -> Any:
    """The next event, or ``_END`` (a task cannot end with StopAsyncIteration cleanly)."""
    return await anext(events, _END)
