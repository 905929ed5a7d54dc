"""A scripted HTTP/1.1 server for streaming tests: each byte, pause and cut under test control.

The Quart fakes (:mod:`tests.fakes.server`) answer whole bodies; a streaming
client has to be tested against a server that sends a chunk, then *holds* the
next one until the test says so, stalls, or cuts the TCP connection in the
middle of a chunked body, and that notices when its client goes away. That is
a few dozen lines of raw HTTP on :func:`asyncio.start_server`, run in its own
thread and event loop like :class:`~tests.fakes.server.FakeServer`, so a stalled
script never stalls the test and the client talks to a real socket.

A script is a status, headers, and a body of ``bytes`` (each sent as one HTTP
chunk) and ``threading.Event`` (wait until the test sets it), then an ending:
``"end"`` (the terminating chunk), ``"cut"`` (close the connection mid-body) or
``"stall"`` (send nothing more until the client disconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

Ending = Literal["end", "cut", "stall"]


@dataclass
class Script:
    """What the server answers on one path."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: list[bytes | threading.Event] = field(default_factory=list)
    ending: Ending = "end"


@dataclass
class Seen:
    """A request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


class StreamingServer:
    """``with StreamingServer() as server:`` serves ``server.scripts`` at ``server.url``.

    ``server.requests`` lists what arrived; ``server.disconnected`` is set as soon as
    a client closes its connection before its script finished (a cancelled or
    abandoned stream), which is what the cancellation tests wait for.
    """

    def __init__(self) -> None:
        self.url = ""
        self.scripts: dict[str, Script] = {}
        self.requests: list[Seen] = []
        self.disconnected = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._port = 0
        self._error: BaseException | None = None

    def __enter__(self) -> StreamingServer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"streaming server did not start: {self._error!r}")
        self.url = f"http://127.0.0.1:{self._port}"
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:
            self._error = error
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        handlers: set[asyncio.Task[None]] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await self._answer(reader, writer)
            finally:
                handlers.discard(task)
                writer.close()

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        path = target.split("?", 1)[0]
        self.requests.append(Seen(method, path, headers, body))
        script = self.scripts.get(path, Script(status=404, body=[b"no script"]))

        gone = asyncio.Event()

        async def watch() -> None:
            # The client sends nothing after its request: any read returning is EOF.
            with contextlib.suppress(ConnectionError):
                await reader.read(1)
            gone.set()

        watcher = asyncio.create_task(watch())
        finished = False
        try:
            reason = REASONS.get(script.status, "Whatever")
            # One request per connection keeps the server simple; the client's pool copes.
            lines = [f"HTTP/1.1 {script.status} {reason}", "Transfer-Encoding: chunked"]
            lines.append("Connection: close")
            lines += [f"{name}: {value}" for name, value in script.headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            for part in script.body:
                if isinstance(part, threading.Event):
                    while not part.is_set() and not gone.is_set():
                        await asyncio.sleep(0.005)
                elif not gone.is_set():
                    writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    await writer.drain()
                if gone.is_set():
                    return
            if script.ending == "end":
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                finished = True
            elif script.ending == "cut":
                finished = True
                writer.transport.abort()
            else:
                await gone.wait()
        except ConnectionError:
            pass
        finally:
            watcher.cancel()
            if gone.is_set() and not finished:
                self.disconnected.set()
