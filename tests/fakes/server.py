"""Serve a fake service's Quart app on a real socket, from a thread with its own event loop.

Every fake (alice, Terra, ...) is a small Quart app served this way, so the
platform's clients talk to it exactly as they would to the real service: over
TCP, with real timeouts and real connection errors. The server runs in its own
thread and loop, so a test that blocks (the Auth Emulator client is synchronous)
never stalls it, and a fake told to be slow is slow without slowing the test.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart


class FakeServer:
    """``with FakeServer(app) as server:`` serves ``app`` at ``server.url`` until the block ends."""

    def __init__(self, app: Quart) -> None:
        self.app = app
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> FakeServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{listener.detach()}"]  # bound already: no port race
        config.graceful_timeout = 0.2
        config.accesslog = None
        config.errorlog = None
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self._run, args=(config,), daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"fake server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, config: Config) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stop = asyncio.Event()

        @self.app.before_serving
        async def _announce() -> None:
            self._ready.set()

        try:
            loop.run_until_complete(serve(self.app, config, shutdown_trigger=self._stop.wait))
        except BaseException as error:
            self._error = error
            self._ready.set()
        finally:
            loop.close()
