"""How ``imperfect serve`` runs the app: hypercorn, uvicorn or granian, N worker processes.

Settings start from the defaults shipped in the package (``core/defaults/hypercorn.toml``),
overridden key by key by one deployment file: the path in ``IMPERFECT_HYPERCORN_CONFIG``,
else ``config/hypercorn.toml`` in the working directory when it exists. The file holds
hypercorn's own settings plus a few of ours (:data:`OWN_SETTINGS`: header and body
timeouts, the connection cap, the event loop, the file-descriptor limit, pinning workers
to CPUs), and each server
gets the same deployment settings translated into its own terms (:class:`Limits`).

One supervisor, whichever the server (:func:`run`):

- it checks the configuration by building the app once in a child process
  (:func:`check_in_child`), so a configuration error fails with one line before any
  worker starts, and the supervisor never holds a built app (its RSS is reported);
- it raises the soft file-descriptor limit to the hard one (``raise_nofile``);
- it spawns ``--workers`` processes, each pinned to a CPU of its own where
  :func:`worker_cpus` says so (granian's, by default). Each worker binds **its own**
  listening socket with ``SO_REUSEPORT`` (:func:`bind_socket`), so the Linux kernel
  spreads new connections across the workers; one socket shared by every worker
  (hypercorn's and uvicorn's own supervisors) lets whichever worker wakes first accept
  most connections;
- each worker builds the app once (:func:`worker_app`: application logging first), runs
  the ASGI lifespan (start-up, outbox dispatcher, subscribers; shutdown) through its
  server, and reports a refused start-up to the supervisor, which stops the others and
  returns the cause as one line.

Workers start with Python's logging unconfigured, so :func:`worker_app` first sends
application loggers (the root logger: ``imperfect.*`` and every family's
``logging.getLogger(__name__)``) to stderr at ``IMPERFECT_LOG_LEVEL`` (default ``INFO``).

Access log lines escape control characters (the logged path is percent-decoded, so a request
for ``/%0Afake`` would otherwise write a line of its choosing). Hypercorn writes them through
:class:`EscapingLogger`; under uvicorn and granian, whose own access logs lack the response
headers (the request id), :class:`AccessLog` writes the same lines through the same logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import resource
import signal
import socket
import sys
import threading
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.util import find_spec
from multiprocessing import get_context
from multiprocessing.connection import wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypercorn.logging import AccessLogAtoms, Logger
from hypercorn.statsd import StatsdLogger

from core.errors import ConfigError, StartupError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess
    from multiprocessing.queues import SimpleQueue
    from multiprocessing.synchronize import Event

    from hypercorn.config import Config
    from quart import Quart

CONFIG_ENV = "IMPERFECT_HYPERCORN_CONFIG"
LOG_LEVEL_ENV = "IMPERFECT_LOG_LEVEL"
DEPLOYMENT_CONFIG = Path("config/hypercorn.toml")
WORKER_APPLICATION = "core.serving:worker_app()"
SERVERS = ("hypercorn", "uvicorn", "granian")
# Set by `imperfect serve` itself: a value in the file has no effect.
_SET_BY_SERVE = frozenset({"bind", "workers", "application_path", "worker_class"})
# Our own settings, the same for every server (see core/defaults/hypercorn.toml).
OWN_SETTINGS = frozenset(
    {
        "header_timeout",
        "body_timeout",
        "max_connections",
        "event_loop",
        "raise_nofile",
        "pin_workers",
    }
)
_EVENT_LOOPS = ("auto", "asyncio", "uvloop")
_PIN_WORKERS = ("auto", "on", "off")

log = logging.getLogger("imperfect.serve")


def default_settings() -> dict[str, Any]:
    """The server settings shipped with the package."""
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
    unknown = sorted(
        key for key in overrides if not hasattr(Config, key) and key not in OWN_SETTINGS
    )
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


def _hypercorn_config(settings: Mapping[str, Any], host: str, port: int, workers: int) -> Config:
    from hypercorn.config import Config

    mapping = {
        k: v for k, v in settings.items() if k not in _SET_BY_SERVE and k not in OWN_SETTINGS
    }
    for key in ("accesslog", "errorlog"):
        if mapping.get(key) is False:  # `accesslog = false`: no access log at all
            mapping[key] = None
    config = Config.from_mapping(mapping)
    config.bind = [f"{host}:{port}"]
    config.workers = workers
    config.application_path = WORKER_APPLICATION
    config.logger_class = EscapingStatsdLogger if config.statsd_host else EscapingLogger
    return config


def hypercorn_config(host: str, port: int, workers: int) -> Config:
    """The complete hypercorn configuration ``imperfect serve`` runs with."""
    return _hypercorn_config(hypercorn_settings(), host, port, workers)


@dataclass(frozen=True)
class Limits:
    """The deployment settings every server gets, each in its own terms."""

    keep_alive_timeout: float  # idle connection, before a request and between requests
    header_timeout: float  # from a request's first byte to the end of its headers
    body_timeout: float  # reading a request body (Quart's BODY_TIMEOUT, any server)
    graceful_timeout: float  # in-flight requests' time to finish on SIGTERM
    backlog: int
    max_connections: int  # per worker; 0 for no cap
    server_header: bool
    event_loop: str  # "asyncio" or "uvloop", resolved from "auto"
    raise_nofile: bool
    pin_workers: str  # "auto", "on" or "off" (see worker_cpus)


def _number(settings: Mapping[str, Any], key: str, minimum: float = 0) -> float:
    value = settings.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"server setting {key} = {value!r}: expected a number >= {minimum}")
    return float(value)


def limits_from(settings: Mapping[str, Any]) -> Limits:
    """Check and resolve the server-neutral settings."""
    loop = settings.get("event_loop", "auto")
    if loop not in _EVENT_LOOPS:
        raise ConfigError(f"server setting event_loop = {loop!r}: expected one of {_EVENT_LOOPS}")
    pin = settings.get("pin_workers", "auto")
    if pin not in _PIN_WORKERS:
        raise ConfigError(f"server setting pin_workers = {pin!r}: expected one of {_PIN_WORKERS}")
    if loop == "auto":
        loop = "uvloop" if find_spec("uvloop") is not None else "asyncio"
    elif loop == "uvloop" and find_spec("uvloop") is None:
        raise ConfigError("server setting event_loop = 'uvloop', but uvloop is not installed")
    return Limits(
        keep_alive_timeout=_number(settings, "keep_alive_timeout", 1),
        header_timeout=_number(settings, "header_timeout", 1),
        body_timeout=_number(settings, "body_timeout", 1),
        graceful_timeout=_number(settings, "graceful_timeout"),
        backlog=int(_number(settings, "backlog", 1)),
        max_connections=int(_number(settings, "max_connections")),
        server_header=bool(settings.get("include_server_header", False)),
        event_loop=loop,
        raise_nofile=bool(settings.get("raise_nofile", True)),
        pin_workers=pin,
    )


def worker_cpus(pin_workers: str, server: str, workers: int) -> tuple[int, ...]:
    """The CPU each worker is pinned to, by worker slot; empty when none is pinned.

    Only when every worker can have a CPU of its own (of those this process may use).
    ``auto`` pins granian's workers: each is two busy threads (its Rust I/O runtime and
    the Python event loop), and left to the scheduler they spread over every core and
    hand each request across cores (docs/benchmarks.md: CPU per request 164 µs unpinned,
    138 µs pinned, two workers on two cores). ``on`` pins under any server.
    """
    if pin_workers == "off" or (pin_workers == "auto" and server != "granian"):
        return ()
    if workers < 2 or not hasattr(os, "sched_getaffinity"):
        return ()
    usable = sorted(os.sched_getaffinity(0))
    return tuple(usable[:workers]) if workers <= len(usable) else ()


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs: the server, where to listen, and its settings."""

    server: str
    host: str
    port: int
    workers: int
    config: Config  # hypercorn's (its logger serves every server's access log)
    limits: Limits
    cpus: tuple[int, ...] = ()  # the CPU of each worker slot (worker_cpus); empty: unpinned


def serving_plan(server: str, host: str, port: int, workers: int) -> Plan:
    """What ``imperfect serve --server ... --workers ...`` runs; a bad setting fails here."""
    if server not in SERVERS:
        raise ConfigError(f"unknown server {server!r}: expected one of {', '.join(SERVERS)}")
    if server != "hypercorn" and find_spec(server) is None:
        raise ConfigError(
            f"--server {server}: {server} is not installed; "
            "install the servers extra: pip install 'imperfect-api[servers]'"
        )
    settings = hypercorn_settings()
    limits = limits_from(settings)
    config = _hypercorn_config(settings, host, port, workers)
    config.worker_class = limits.event_loop
    cpus = worker_cpus(limits.pin_workers, server, workers)
    return Plan(server, host, port, workers, config, limits, cpus)


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


ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class AccessLog:
    """ASGI middleware writing hypercorn's access line (format, escaping) for other servers."""

    def __init__(self, app: ASGIApp, logger: Logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        response: MutableMapping[str, Any] | None = None

        async def sending(message: MutableMapping[str, Any]) -> None:
            nonlocal response
            if message["type"] == "http.response.start":
                response = message
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            await self.logger.access(scope, response, time.perf_counter() - started)  # type: ignore[arg-type]


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

    One handler on the root logger, installed once per process, formatting records as
    ``IMPERFECT_LOG_FORMAT`` says (``text``, the default, or ``json``: see
    :mod:`core.logs`); every record carries the id of the request it was logged for.
    Hypercorn's loggers keep their own handlers (from ``accesslog``/``errorlog``), so they
    stop propagating here instead of printing every line twice.
    """
    from core import logs

    level = log_level()
    kind = logs.log_format(os.environ.get(logs.LOG_FORMAT_ENV))
    logs.install()
    root = logging.getLogger()
    root.setLevel(level)
    ours: list[logging.Handler] = [h for h in root.handlers if getattr(h, "_imperfect", False)]
    if not ours:
        stream = logging.StreamHandler(sys.stderr)
        stream._imperfect = True  # type: ignore[attr-defined]
        root.addHandler(stream)
        ours = [stream]
    for handler in ours:
        handler.setFormatter(logs.formatter(kind))
    logging.getLogger("hypercorn").propagate = False


_served: list[Quart] = []  # the app this worker process serves, for its start-up failure
_worker_limits: list[Limits] = []  # set by the worker before its server loads the app


def worker_app() -> Quart:
    """The app factory each worker runs: logging first, then the app (once per worker)."""
    from core.app import create_app

    configure_logging()
    app = create_app()
    if _worker_limits:
        app.config["BODY_TIMEOUT"] = _worker_limits[-1].body_timeout
    _served.append(app)
    return app


# --- process limits, sockets ---------------------------------------------------------------


def raise_nofile() -> tuple[int, int]:
    """Raise this process's soft file-descriptor limit to its hard limit; (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard_target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < hard_target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard_target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_port_free(host: str, port: int) -> None:
    """Refuse to start where something already listens.

    Workers bind with ``SO_REUSEPORT``, which would let a second deployment (an old one
    still running) silently share the port: a plain bind first says so instead.
    """
    probe = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host.strip("[]"), port))
    except OSError as error:
        reason = "address already in use" if error.errno == errno.EADDRINUSE else str(error)
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from error
    finally:
        probe.close()


def bind_socket(host: str, port: int, backlog: int) -> socket.socket:
    """One worker's listening socket, with ``SO_REUSEPORT``: the kernel balances new
    connections across the workers' sockets (by a hash of the client's address and port)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process (Linux ``/proc``), 0 where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


# --- failures ------------------------------------------------------------------------------

STARTUP_FAILED = 3  # a worker's exit status when its app refused to start


def one_line(error: BaseException) -> str:
    """The cause of a failed start-up, as one line (our own errors say it without a type)."""
    text = str(error) if isinstance(error, ConfigError | StartupError) else ""
    if not text:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return " ".join(text.split())


def _served_failure() -> str | None:
    from core.app import runtime_of

    cause = runtime_of(_served[-1]).start_failure if _served else None
    return one_line(cause) if cause is not None else None


def _failure(error: BaseException) -> str:
    from hypercorn.utils import LifespanFailureError, LifespanTimeoutError

    if isinstance(error, LifespanTimeoutError):
        return "the app did not finish starting within startup_timeout (hypercorn settings)"
    cause = _served_failure()
    if cause is not None:
        return cause
    if isinstance(error, LifespanFailureError):
        message = str(error).removeprefix("Lifespan failure in startup. ")
        return " ".join(message.strip("'").split()) or "the app failed to start"
    return one_line(error)


# --- the configuration check, in a child process -------------------------------------------


def _check(migrate: bool, results: Connection) -> None:
    """Child process: build the app (and apply migrations); send back the outcome and RSS."""
    try:
        from core.app import create_app

        configure_logging()
        create_app()
        if migrate:
            from core.cli import _migrate_all

            _migrate_all()
        results.send(("ok", rss_bytes()))
    except ConfigError as error:
        results.send(("config", str(error)))
    except BaseException as error:
        results.send(("error", one_line(error)))
    finally:
        results.close()


def check_in_child(migrate: bool) -> int:
    """Build the app once in a child process; its RSS, or the :class:`ConfigError` it met.

    The supervisor thereby fails early with a clear message, but holds no built app itself.
    An error other than a configuration error is raised as a :class:`StartupError`.
    """
    context = get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=_check, args=(migrate, sending), name="imperfect-check")
    process.start()
    sending.close()
    try:
        outcome, value = receiving.recv()
    except EOFError:
        process.join()
        raise StartupError(
            f"the configuration check exited with status {process.exitcode}"
        ) from None
    process.join()
    if outcome == "config":
        raise ConfigError(value)
    if outcome == "error":
        raise StartupError(value)
    return int(value)


# --- the workers -------------------------------------------------------------------------


def _stop_when(shutdown_event: Event, stop: Callable[[], None]) -> None:
    """Call ``stop`` (from a thread) once the supervisor sets ``shutdown_event`` or dies."""
    parent = os.getppid()

    def watch() -> None:
        # Polled, never waited on: a process that exits while waiting on a multiprocessing
        # Event leaves the supervisor's ``set()`` waiting for it forever.
        while not shutdown_event.is_set() and os.getppid() == parent:
            time.sleep(0.2)
        stop()

    threading.Thread(target=watch, name="imperfect-shutdown", daemon=True).start()


def _worker(plan: Plan, slot: int, shutdown_event: Event, failures: SimpleQueue) -> None:
    """One worker process: its own socket, its app, its server; a refused start reported.

    ``slot`` (0 to workers - 1) picks its CPU when the plan pins workers; the threads its
    server starts afterwards inherit that affinity.

    SIGINT and SIGTERM are the supervisor's: it stops every worker through
    ``shutdown_event`` (so a signal to the whole process group still shuts down gracefully).
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if plan.cpus:
        os.sched_setaffinity(0, {plan.cpus[slot]})
    _worker_limits.append(plan.limits)
    try:
        sock = bind_socket(plan.host, plan.port, plan.limits.backlog)
        serve = {
            "hypercorn": _serve_hypercorn,
            "uvicorn": _serve_uvicorn,
            "granian": _serve_granian,
        }[plan.server]
        started = serve(plan, sock, shutdown_event)
    except (Exception, SystemExit) as error:  # uvicorn exits when the lifespan fails
        cause = _served_failure() if isinstance(error, SystemExit) else None
        _refused(failures, cause or _failure(error))
    if not started:
        _refused(failures, _served_failure() or "the app failed to start")


def _refused(failures: SimpleQueue, cause: str) -> None:
    """Report a refused start-up and end this worker (its app has closed what it opened)."""
    failures.put(cause)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(STARTUP_FAILED)  # no wait for threads a half-started library may have left


def _serve_hypercorn(plan: Plan, sock: socket.socket, shutdown_event: Event) -> bool:
    from hypercorn.config import Sockets

    _cap_hypercorn_connections(plan.limits.max_connections)
    if plan.config.worker_class == "uvloop":
        from hypercorn.asyncio.run import uvloop_worker as worker
    else:
        from hypercorn.asyncio.run import asyncio_worker as worker
    sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
    _stop_when(shutdown_event, shutdown_event.set)  # hypercorn polls it; set if orphaned
    worker(plan.config, sockets, shutdown_event)  # a refused start-up raises
    return True


_BUSY_BODY = (
    b'{"detail":"This server has too many open connections; retry shortly.","code":"server_busy"}'
)
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\nconnection: close\r\n"
    + f"content-length: {len(_BUSY_BODY)}\r\n\r\n".encode()
    + _BUSY_BODY
)


def _cap_hypercorn_connections(cap: int) -> None:
    """Hypercorn has no connection cap: answer connections beyond ``cap`` with a 503 and close.

    Hypercorn's asyncio worker creates one ``TCPServer`` per accepted connection, through
    the module-level name this replaces (in this worker process only).
    """
    if cap <= 0:
        return
    import hypercorn.asyncio.run as hypercorn_run
    from hypercorn.asyncio.tcp_server import TCPServer

    class CappedTCPServer(TCPServer):
        open = 0

        async def run(self) -> None:
            if CappedTCPServer.open >= cap:
                with contextlib.suppress(OSError, RuntimeError):
                    self.writer.write(_BUSY)
                    await asyncio.wait_for(self.writer.drain(), 1)
                    self.writer.close()
                return
            CappedTCPServer.open += 1
            try:
                await super().run()
            finally:
                CappedTCPServer.open -= 1

    hypercorn_run.TCPServer = CappedTCPServer  # type: ignore[misc]


def _access_logged(app: Any, plan: Plan) -> Any:
    logger = plan.config.log
    return AccessLog(app, logger) if logger.access_logger is not None else app


def _uvicorn_protocol(limits: Limits) -> Any:
    """uvicorn's httptools protocol with a header timeout (uvicorn has none of its own).

    uvicorn arms its keep-alive timer only after a response; here it is armed on a new
    connection too, so a connection that never sends is closed after keep_alive_timeout,
    and a request must complete its headers within header_timeout of its first byte.
    """
    if find_spec("httptools") is None:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

        def data_received(self, data: bytes) -> None:
            if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._head_timer = self.loop.call_later(limits.header_timeout, self._head_late)
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._cancel_head_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_late(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


def _serve_uvicorn(plan: Plan, sock: socket.socket, shutdown_event: Event) -> bool:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the supervisor stops the workers (shutdown_event), not their signals

    limits = plan.limits
    config = uvicorn.Config(
        _access_logged(worker_app(), plan),
        lifespan="on",
        loop=limits.event_loop,
        http=_uvicorn_protocol(limits),
        ws="none",
        log_config=None,
        access_log=False,
        server_header=limits.server_header,
        proxy_headers=False,  # like hypercorn: X-Forwarded-* are the app's to judge
        timeout_keep_alive=int(limits.keep_alive_timeout),
        timeout_graceful_shutdown=int(limits.graceful_timeout),
        backlog=limits.backlog,
        limit_concurrency=limits.max_connections or None,
        h11_max_incomplete_event_size=plan.config.h11_max_incomplete_size,
    )
    server = Server(config)

    def stop() -> None:
        server.should_exit = True

    _stop_when(shutdown_event, stop)
    server.run(sockets=[sock])
    return bool(server.started)


class _NoTraceback(logging.Filter):
    """granian logs a refused start-up with its traceback; the supervisor says it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("ASGI lifespan startup failed"):
            return False
        record.exc_info = None
        return True


def _serve_granian(plan: Plan, sock: socket.socket, shutdown_event: Event) -> bool:
    from granian._granian import SocketHolder
    from granian.http import HTTP1Settings
    from granian.server.embed import Server

    limits = plan.limits
    app = _access_logged(worker_app(), plan)
    level = logging.getLevelName(logging.getLogger().level).lower()

    class OwnSocketServer(Server):
        def _init_shared_socket(self) -> None:
            self._ssp = None
            # granian's stub gives SocketHolder no arguments; the class takes these three
            self._shd = SocketHolder(sock.fileno(), False, limits.backlog)  # type: ignore[call-arg,assignment]
            self._sfd = sock.fileno()  # type: ignore[assignment]

    server = OwnSocketServer(
        app,
        address=plan.host,
        port=plan.port,
        interface="asgi",  # type: ignore[arg-type]
        http="1",  # type: ignore[arg-type]
        websockets=False,
        backlog=limits.backlog,
        backpressure=limits.max_connections or None,
        http1_settings=HTTP1Settings(
            header_read_timeout=int(limits.header_timeout * 1000), keep_alive=True
        ),
        log_dictconfig={"loggers": {"_granian": {"level": level.upper(), "propagate": True}}},
        log_access=False,
    )
    server.workers_kill_timeout = max(1, int(limits.graceful_timeout))
    logging.getLogger("_granian").addFilter(_NoTraceback())
    started: list[bool] = []
    app_started = _lifespan_started(plan)

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            loop.call_soon_threadsafe(server.stop)

        _stop_when(shutdown_event, stop)
        await server.serve()
        started.append(app_started())

    if limits.event_loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
    return bool(started and started[0])


def _lifespan_started(plan: Plan) -> Callable[[], bool]:
    """Whether the served app's start-up succeeded (granian does not say)."""

    def check() -> bool:
        from core.app import runtime_of

        return bool(_served) and runtime_of(_served[-1]).start_failure is None

    return check


# --- the supervisor ------------------------------------------------------------------------


def run(plan: Plan) -> str | None:
    """Serve with ``plan.workers`` worker processes until SIGINT/SIGTERM.

    A worker that exits with an error ends the server: the others are told to stop, and
    the return value is the cause, as one line (``None`` after a clean shutdown).
    """
    from hypercorn.utils import write_pid_file

    from core import metrics

    config = plan.config
    if config.pid_path is not None:
        write_pid_file(config.pid_path)
    metrics.prepare_workers()  # workers inherit PROMETHEUS_MULTIPROC_DIR: one /metrics total
    context = get_context("spawn")
    shutdown_event = context.Event()
    failures: SimpleQueue = context.SimpleQueue()
    processes: dict[BaseProcess, int] = {}  # each live worker and its slot
    stopping = False
    failure: str | None = None

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        shutdown_event.set()

    def populate() -> None:
        # SIGINT ignored while spawning, so that the workers inherit it: the parent stops them.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for slot in sorted(set(range(plan.workers)) - set(processes.values())):
            process = context.Process(
                target=_worker,
                kwargs={
                    "plan": plan,
                    "slot": slot,
                    "shutdown_event": shutdown_event,
                    "failures": failures,
                },
                name=f"imperfect-{plan.server}-worker",
            )
            process.daemon = config.daemon
            process.start()
            processes[process] = slot
        for name in ("SIGINT", "SIGTERM"):
            signal.signal(getattr(signal, name), stop)

    try:
        populate()
        while processes and not stopping:
            wait([process.sentinel for process in processes], timeout=1)
            for process in [p for p in processes if p.exitcode is not None]:
                del processes[process]
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
    return failure


def serve(server: str, host: str, port: int, workers: int, migrate: bool) -> str | None:
    """``imperfect serve``: check, then supervise; the cause of a refused start, or None."""
    plan = serving_plan(server, host, port, workers)  # a bad file fails before the app
    configure_logging()
    check_port_free(host, port)
    nofile = raise_nofile() if plan.limits.raise_nofile else None
    app_rss = check_in_child(migrate)  # a configuration error fails here, in one line
    log.info(
        "serving with %s, %d worker(s) on %s:%d (SO_REUSEPORT per worker); configuration "
        "checked in a child process (a built app: %s RSS, freed); supervisor: %s RSS; "
        "open files limit: %s; workers pinned to CPUs: %s",
        server,
        workers,
        host,
        port,
        _mib(app_rss),
        _mib(rss_bytes()),
        "/".join(str(n) for n in nofile) if nofile else "unchanged",
        ",".join(str(cpu) for cpu in plan.cpus) or "no",
    )
    return run(plan)
