"""Server-Sent Events as tests read them: every event checked against the spec as it is read.

The only way a test gets a streaming route's events is through a :class:`DeclaredStream`,
made from the spec document and the route's path (and method, when not POST), so an event
the spec does not describe fails the test that reads it, whichever form it came in:

- ``await stream.read(response)``: a finished response, the ``text/event-stream`` wire form
  or the ``{"events": [...]}`` JSON fallback (``Accept: application/json``);
- ``stream.reader(connection)``: frames off a Quart test connection as they arrive;
- ``stream.socket_reader(response)``: frames off an httpx response on a real socket.

Wire frames are ``{"event", "id", "data"}`` (``data`` parsed); the wire form is checked as
the spec describes it (``data`` the JSON text, its ``contentSchema`` the event's model).
Comments (``: heartbeat``) are not events: readers return them as ``{"comment": ...}``
unchecked, and :meth:`DeclaredStream.read` leaves them out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

SSE = "text/event-stream"
JSON = "application/json"


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """``schema`` with the document's components beside it, so its ``$ref``s resolve."""
    return Draft202012Validator(
        {**schema, "components": document["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


class DeclaredStream:
    """A streaming route's 200 as ``document`` declares it, for ``method`` ``path``."""

    def __init__(self, document: dict[str, Any], path: str, method: str = "post") -> None:
        self.where = f"{method.upper()} {path}"
        operation = document["paths"][path][method.lower()]
        content = operation["responses"]["200"]["content"]
        assert set(content) == {SSE, JSON}, f"{self.where} declares no event stream"
        item = content[SSE]["schema"]
        variants = {v["properties"]["event"]["const"]: v for v in item.get("oneOf", [item])}
        self._wire = _validator(document, item)
        self._data = {
            name: _validator(document, v["properties"]["data"]["contentSchema"])
            for name, v in variants.items()
        }
        self._document = _validator(document, content[JSON]["schema"])

    async def read(self, response: Any) -> list[dict[str, Any]]:
        """The events of a finished 200 answer (a Quart test response), each checked."""
        body = await response.get_data()
        assert response.status_code == 200, (self.where, response.status_code, body)
        if response.mimetype == JSON:
            return self.json_events(json.loads(body))
        assert response.mimetype == SSE, (self.where, response.mimetype)
        frames = []
        blocks = _Blocks()
        blocks.feed(body.decode())
        for block in blocks.complete():
            frame = self._checked(block)
            if "comment" not in frame:
                frames.append(frame)
        assert blocks.rest == "", f"{self.where} ended inside a frame: {blocks.rest!r}"
        return frames

    def json_events(self, document: Any) -> list[dict[str, Any]]:
        """The events of a JSON fallback document, checked against its declared schema."""
        self._check(self._document, document, "the JSON fallback")
        events: list[dict[str, Any]] = document["events"]
        return events

    def reader(self, connection: Any) -> Reader:
        """Frames off a Quart test connection (``client.request(...)``) as they arrive."""
        return Reader(connection, self)

    def socket_reader(self, response: httpx.Response) -> SocketReader:
        """Frames off a streamed httpx response (``http.stream(...)``) as they arrive."""
        return SocketReader(response, self)

    def _checked(self, block: str) -> dict[str, Any]:
        """One frame: a comment, or an event valid on the wire and in its data's model."""
        fields = _fields(block)
        if set(fields) == {"comment"}:
            return fields
        self._check(self._wire, fields, "the wire")
        data = json.loads(fields["data"])
        self._check(self._data[fields["event"]], data, f"its {fields['event']!r} data")
        return {**fields, "data": data}

    def _check(self, validator: Draft202012Validator, value: Any, what: str) -> None:
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        assert not errors, (
            f"{self.where}: {value!r} is not what the spec declares for {what}: "
            + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
        )


class Reader:
    """Reads frames off a Quart test connection as they arrive, each event checked."""

    def __init__(self, connection: Any, stream: DeclaredStream) -> None:
        self.connection, self.stream, self._blocks = connection, stream, _Blocks()

    @property
    def raw(self) -> str:
        """Everything received so far, as sent."""
        return self._blocks.raw

    async def frame(self, timeout: float = 2) -> dict[str, Any]:
        """The next frame (an event, or a ``{"comment"}``), waiting up to ``timeout``."""
        while not self._blocks.ready:
            chunk = await asyncio.wait_for(self.connection.receive(), timeout)
            self._blocks.feed(chunk.decode())
        return self.stream._checked(self._blocks.take())

    async def until_done(self, timeout: float = 5) -> list[dict[str, Any]]:
        """Events up to and including ``done`` (heartbeats skipped)."""
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1]["event"] != "done":
            frame = await self.frame(timeout)
            if "comment" not in frame:
                frames.append(frame)
        return frames


class SocketReader:
    """Reads frames off an httpx response streamed from a served app, each event checked."""

    def __init__(self, response: httpx.Response, stream: DeclaredStream) -> None:
        self.stream, self._blocks = stream, _Blocks()
        self._chunks: Iterator[str] = response.iter_text()

    def frame(self) -> dict[str, Any]:
        """The next frame (an event, or a ``{"comment"}``); the client's timeout bounds it."""
        while not self._blocks.ready:
            self._blocks.feed(next(self._chunks))
        return self.stream._checked(self._blocks.take())


class _Blocks:
    """Text received so far, cut into frames (blocks ending in a blank line)."""

    def __init__(self) -> None:
        self.raw = self.rest = ""

    def feed(self, text: str) -> None:
        self.raw += text
        self.rest += text

    @property
    def ready(self) -> bool:
        return "\n\n" in self.rest

    def take(self) -> str:
        block, self.rest = self.rest.split("\n\n", 1)
        return block

    def complete(self) -> Iterator[str]:
        while self.ready:
            yield self.take()


def _fields(block: str) -> dict[str, Any]:
    """One frame's fields as written (``data`` still JSON text); a comment as ``{"comment"}``.

    Strict about what core writes: one line per field, no field twice, nothing else.
    """
    fields: dict[str, Any] = {}
    for line in block.split("\n"):
        name, colon, value = line.partition(":")
        assert colon, f"not an SSE field line: {line!r}"
        key = name or "comment"
        assert key in ("comment", "id", "event", "data"), f"unexpected SSE field: {line!r}"
        assert key not in fields, f"{key} twice in one frame: {block!r}"
        fields[key] = value.removeprefix(" ")
    assert "comment" not in fields or len(fields) == 1, f"a comment inside an event: {block!r}"
    return fields


async def declared(client: Any, path: str, method: str = "post") -> DeclaredStream:
    """The stream of ``method`` ``path`` as the app behind ``client`` declares it."""
    response = await client.get("/openapi.json")
    return DeclaredStream(json.loads(await response.get_data()), path, method)
