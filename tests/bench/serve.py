"""Serve one benchmarked app: one process, one worker, on hypercorn, uvicorn or granian.

Run as ``python -m tests.bench.serve APP PORT [ROOT_DOCUMENT] [--server NAME]``. The server
runs in this process (no supervisor, no worker fork), so the process the benchmark spawns
is the one that serves, and SIGTERM stops it cleanly. The event loop is uvloop when it is
installed, as ``imperfect serve`` chooses with its default ``event_loop = "auto"``; the
access log is off, as in the benchmark's configuration of ``imperfect serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from tests.bench import apps

SERVERS = ("hypercorn", "uvicorn", "granian")
UVLOOP = find_spec("uvloop") is not None


def build(name: str, root_document: Path | None) -> Any:
    """The ASGI app called ``name``."""
    if name == "platform":
        return apps.platform_app()
    if name == "fastapi_users":
        from tests.bench.fastapi_users import create_app

        app = create_app()
    elif root_document is None:
        raise SystemExit(f"{name} needs the GET / document")
    elif name == "quart":
        app = apps.quart_app(root_document)
    elif name == "fastapi":
        app = apps.fastapi_app(root_document)
    else:
        raise SystemExit(f"unknown app {name!r}")
    if "core" in sys.modules or "plugins" in sys.modules:
        raise SystemExit(f"the bare {name} app must not import the platform")
    return app


def _on_signals(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)


async def _hypercorn(app: Any, port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    stop = asyncio.Event()
    _on_signals(stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)


async def _uvicorn(app: Any, port: int) -> None:
    import uvicorn

    http = "httptools" if find_spec("httptools") else "h11"
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=http,
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        ws="none",
    )
    await uvicorn.Server(config).serve()  # handles SIGTERM itself


async def _granian(app: Any, port: int) -> None:
    from granian.server.embed import Server

    server = Server(
        app,
        address="127.0.0.1",
        port=port,
        interface="asgi",  # type: ignore[arg-type]
        http="1",
        websockets=False,
        log_access=False,  # type: ignore[arg-type]
    )
    loop = asyncio.get_running_loop()
    _on_signals(lambda: loop.call_soon(server.stop))
    await server.serve()


RUNNERS: dict[str, Callable[[Any, int], Coroutine[Any, Any, None]]] = {
    "hypercorn": _hypercorn,
    "uvicorn": _uvicorn,
    "granian": _granian,
}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=["platform", "quart", "fastapi", "fastapi_users"])
    parser.add_argument("port", type=int)
    parser.add_argument("root_document", type=Path, nargs="?")
    parser.add_argument("--server", choices=SERVERS, default="hypercorn")
    args = parser.parse_args()
    try:
        if UVLOOP:
            import uvloop

            uvloop.install()
        main = RUNNERS[args.server]
        asyncio.run(main(build(args.app, args.root_document), args.port))
    except Exception:
        # A failed start-up can leave non-daemon threads (database drivers) behind;
        # exit anyway so the benchmark reports the failure instead of waiting.
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
