"""How ``imperfect serve`` runs hypercorn: its settings, and application logging in workers.

Hypercorn's settings start from the defaults shipped in the package
(``core/defaults/hypercorn.toml``), overridden key by key by one deployment file: the path
in ``IMPERFECT_HYPERCORN_CONFIG``, else ``config/hypercorn.toml`` in the working directory
when it exists.

Hypercorn runs the app in worker processes it spawns (even with one worker), which start
with Python's logging unconfigured: only hypercorn's own loggers have handlers there. The
workers therefore build the app through :func:`worker_app`, which first sends application
loggers (the root logger: ``imperfect.*`` and every family's ``logging.getLogger(__name__)``)
to stderr at ``IMPERFECT_LOG_LEVEL`` (default ``INFO``).

Access log lines escape control characters (the logged path is percent-decoded, so a request
for ``/%0Afake`` would otherwise write a line of its choosing). :func:`run` starts the
workers itself instead of ``hypercorn.run.run``, which returns 0 even when a worker could not
start: here a refused start-up ends every worker and returns non-zero, with its cause as one
line.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import tomllib
from collections.abc import Mapping
from importlib.resources import files
from multiprocessing import get_context
from multiprocessing.connection import wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypercorn.logging import AccessLogAtoms, Logger
from hypercorn.statsd import StatsdLogger

from core.errors import ConfigError, StartupError

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess
    from multiprocessing.queues import SimpleQueue
    from multiprocessing.synchronize import Event

    from hypercorn.config import Config, Sockets
    from quart import Quart

CONFIG_ENV = "IMPERFECT_HYPERCORN_CONFIG"
LOG_LEVEL_ENV = "IMPERFECT_LOG_LEVEL"
DEPLOYMENT_CONFIG = Path("config/hypercorn.toml")
WORKER_APPLICATION = "core.serving:worker_app()"
LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"
LOG_DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"  # hypercorn's, so the two logs read alike
_SET_BY_SERVE = frozenset({"bind", "workers", "application_path"})


def default_settings() -> dict[str, Any]:
    """The hypercorn settings shipped with the package."""
    text = files("core").joinpath("defaults/hypercorn.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def deployment_config_path() -> Path | None:
    """The deployment's override file: ``$IMPERFECT_HYPERCORN_CONFIG``, else
    ``config/hypercorn.toml`` if it exists, else none."""
    named = os.environ.get(CONFIG_ENV, "")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={named}: no such file")
        return path
    return DEPLOYMENT_CONFIG if DEPLOYMENT_CONFIG.is_file() else None


def _read_overrides(path: Path) -> dict[str, Any]:
    from hypercorn.config import Config

    try:
        overrides = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: cannot read hypercorn settings: {error}") from error
    unknown = sorted(key for key in overrides if not hasattr(Config, key))
    if unknown:
        raise ConfigError(f"{path}: unknown hypercorn setting(s): {', '.join(unknown)}")
    return overrides


def hypercorn_settings() -> dict[str, Any]:
    """The shipped defaults, overridden key by key by the deployment file (if any)."""
    settings = default_settings()
    path = deployment_config_path()
    if path is not None:
        settings.update(_read_overrides(path))
    return settings


def hypercorn_config(host: str, port: int, workers: int) -> Config:
    """The complete hypercorn configuration ``imperfect serve`` runs with."""
    from hypercorn.config import Config

    settings = {k: v for k, v in hypercorn_settings().items() if k not in _SET_BY_SERVE}
    config = Config.from_mapping(settings)
    config.bind = [f"{host}:{port}"]
    config.workers = workers
    config.application_path = WORKER_APPLICATION
    config.logger_class = EscapingStatsdLogger if config.statsd_host else EscapingLogger
    return config


# --- the access log: one request, one line ---------------------------------------------

_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f\u2028\u2029"\\]')


def _escape_character(match: re.Match[str]) -> str:
    character = match.group()
    if character in '"\\':
        return "\\" + character
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_log_value(value: str) -> str:
    """Control characters (line breaks above all), quotes and backslashes, escaped."""
    return _UNSAFE.sub(_escape_character, value)


class _EscapedAtoms(AccessLogAtoms):
    """Hypercorn's access-log atoms, each string escaped as it is written."""

    def __getitem__(self, key: str) -> str:
        value = super().__getitem__(key)
        return escape_log_value(value) if isinstance(value, str) else value


class _EscapingAccessLog:
    def atoms(self, request: Any, response: Any, request_time: float) -> Mapping[str, str]:
        return _EscapedAtoms(request, response, request_time)


class EscapingLogger(_EscapingAccessLog, Logger):
    """Hypercorn's logger, with access lines whose values cannot break the line."""


class EscapingStatsdLogger(_EscapingAccessLog, StatsdLogger):
    """The same, for a deployment that sends hypercorn's metrics to statsd."""


def log_level() -> int:
    """``IMPERFECT_LOG_LEVEL`` (a name such as ``INFO`` or ``DEBUG``) as a logging level."""
    name = os.environ.get(LOG_LEVEL_ENV, "") or "INFO"
    level = logging.getLevelNamesMapping().get(name.upper())
    if level is None:
        raise ConfigError(
            f"invalid environment: {LOG_LEVEL_ENV}={name} is not a log level "
            "(DEBUG, INFO, WARNING, ERROR, CRITICAL)"
        )
    return level


def configure_logging() -> None:
    """Send application log records to stderr at ``IMPERFECT_LOG_LEVEL``.

    One handler on the root logger, installed once per process. Hypercorn's loggers keep
    their own handlers (from ``accesslog``/``errorlog``), so they stop propagating here
    instead of printing every line twice.
    """
    level = log_level()
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(h, "_imperfect", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
        handler._imperfect = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    logging.getLogger("hypercorn").propagate = False


_served: list[Quart] = []  # the app this worker process serves, for its start-up failure


def worker_app() -> Quart:
    """The app factory each hypercorn worker runs: logging first, then the app."""
    from core.app import create_app

    configure_logging()
    app = create_app()
    _served.append(app)
    return app


# --- running hypercorn's workers -----------------------------------------------------------

STARTUP_FAILED = 3  # a worker's exit status when its app refused to start


def one_line(error: BaseException) -> str:
    """The cause of a failed start-up, as one line (our own errors say it without a type)."""
    text = str(error) if isinstance(error, ConfigError | StartupError) else ""
    if not text:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return " ".join(text.split())


def _failure(error: BaseException) -> str:
    from hypercorn.utils import LifespanFailureError, LifespanTimeoutError

    from core.app import runtime_of

    if isinstance(error, LifespanTimeoutError):
        return "the app did not finish starting within startup_timeout (hypercorn settings)"
    cause = runtime_of(_served[-1]).start_failure if _served else None
    if cause is not None:
        return one_line(cause)
    if isinstance(error, LifespanFailureError):
        message = str(error).removeprefix("Lifespan failure in startup. ")
        return " ".join(message.strip("'").split()) or "the app failed to start"
    return one_line(error)


def _worker(config: Config, sockets: Sockets, shutdown_event: Event, failures: SimpleQueue) -> None:
    """One worker process: hypercorn's worker, reporting a refused start-up to the parent."""
    if config.worker_class == "uvloop":
        from hypercorn.asyncio.run import uvloop_worker as worker
    elif config.worker_class == "trio":
        from hypercorn.trio.run import trio_worker as worker
    else:
        from hypercorn.asyncio.run import asyncio_worker as worker
    try:
        worker(config, sockets, shutdown_event)
    except Exception as error:
        failures.put(_failure(error))
        sys.exit(STARTUP_FAILED)


def run(config: Config) -> str | None:
    """Serve with ``config.workers`` worker processes until SIGINT/SIGTERM.

    Like ``hypercorn.run.run`` (without its reloader), except that a worker that exits
    with an error ends the server: the others are told to stop, and the return value is
    the cause, as one line (``None`` after a clean shutdown).
    """
    from hypercorn.utils import write_pid_file

    if config.pid_path is not None:
        write_pid_file(config.pid_path)
    sockets = config.create_sockets()
    context = get_context("spawn")
    shutdown_event = context.Event()
    failures: SimpleQueue = context.SimpleQueue()
    processes: list[BaseProcess] = []
    stopping = False
    failure: str | None = None

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        shutdown_event.set()

    def populate() -> None:
        # SIGINT ignored while spawning, so that the workers inherit it: the parent stops them.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while len(processes) < config.workers:
            process = context.Process(
                target=_worker,
                kwargs={
                    "config": config,
                    "sockets": sockets,
                    "shutdown_event": shutdown_event,
                    "failures": failures,
                },
            )
            process.daemon = config.daemon
            process.start()
            processes.append(process)
        for name in ("SIGINT", "SIGTERM"):
            signal.signal(getattr(signal, name), stop)

    try:
        populate()
        while processes and not stopping:
            wait([process.sentinel for process in processes], timeout=1)
            for process in [p for p in processes if p.exitcode is not None]:
                processes.remove(process)
                if process.exitcode != 0 and not stopping:
                    failure = (
                        failures.get()
                        if not failures.empty()
                        else f"a worker exited with status {process.exitcode}"
                    )
                    stop()
            if not stopping:
                populate()  # a worker that finished cleanly (max_requests) is replaced
    finally:
        shutdown_event.set()
        deadline = config.graceful_timeout + config.shutdown_timeout
        for process in processes:
            process.join(timeout=deadline)
            if process.is_alive():
                process.terminate()
                process.join()
        for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
            sock.close()
    return failure
