"""Serve one benchmarked app with hypercorn: one process, one worker, asyncio loop.

Run as ``python -m tests.bench.serve APP PORT [ROOT_DOCUMENT]``. The server runs
in this process (no supervisor, no worker fork), so the process the benchmark
spawns is the one that serves, and SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from tests.bench import apps


def build(name: str, root_document: Path | None) -> Any:
    """The ASGI app called ``name``."""
    if name == "platform":
        return apps.platform_app()
    if root_document is None:
        raise SystemExit(f"{name} needs the GET / document")
    if name == "quart":
        app = apps.quart_app(root_document)
    elif name == "fastapi":
        app = apps.fastapi_app(root_document)
    else:
        raise SystemExit(f"unknown app {name!r}")
    if "core" in sys.modules or "plugins" in sys.modules:
        raise SystemExit(f"the bare {name} app must not import the platform")
    return app


async def main(app: Any, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (lifespan included)."""
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=["platform", "quart", "fastapi"])
    parser.add_argument("port", type=int)
    parser.add_argument("root_document", type=Path, nargs="?")
    args = parser.parse_args()
    try:
        asyncio.run(main(build(args.app, args.root_document), args.port))
    except Exception:
        # A failed start-up can leave non-daemon threads (database drivers) behind;
        # exit anyway so the benchmark reports the failure instead of waiting.
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
