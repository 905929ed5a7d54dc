"""Every error the platform returns or raises, and the JSON they become.

Validation errors answer 422 in FastAPI's shape
``{"detail": [{"type", "loc", "msg", "input"}]}``; every other error answers
``{"detail": "<sentence>", "code": "<machine_code>"}``. No HTML page and no
stack trace ever reaches a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pydantic import BaseModel
from quart import Quart, Response
from werkzeug.exceptions import HTTPException

log = logging.getLogger("imperfect.errors")


class ConfigError(Exception):
    """plugins.toml, a plugin's settings or the plugin graph is invalid."""


class ConflictError(ConfigError):
    """Two plugins claim the same route, operationId, component, table or command."""


class PluginLoadError(ConfigError):
    """A plugin could not be imported, validated or started."""

    def __init__(self, plugin: str, cause: str) -> None:
        super().__init__(f"plugin '{plugin}': {cause}")
        self.plugin = plugin
        self.cause = cause


class ContributionError(PluginLoadError):
    """A family's contribution to another family's registry is invalid: the author is blamed."""


class StartupError(Exception):
    """The app could not start serving: a dependency is unreachable, a family's start-up failed."""


class ApiError(Exception):
    """An error a handler raises to answer ``{"detail", "code"}`` with ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


class RequestValidationError(Exception):
    """Input did not match the declared model; ``errors`` are FastAPI-style items."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("request validation failed")
        self.errors = errors


class ErrorResponse(BaseModel):
    """The body of every non-validation error."""

    detail: str
    code: str


class ValidationError(BaseModel):
    """One validation problem, as FastAPI reports it."""

    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class HTTPValidationError(BaseModel):
    """The body of a 422 answer."""

    detail: list[ValidationError]


def pydantic_errors(errors: list[Any], location: str) -> list[dict[str, Any]]:
    """Turn pydantic's error list into FastAPI's 422 items, prefixing ``loc``.

    A body that is not JSON (or not UTF-8) is echoed as text with undecodable
    bytes replaced, so the error itself always serialises.
    """
    items = []
    for error in errors:
        given = error.get("input")
        if isinstance(given, bytes | bytearray):
            given = bytes(given).decode("utf-8", "replace")
        item = {
            "type": error["type"],
            "loc": [location, *error["loc"]],
            "msg": error["msg"],
            "input": given,
        }
        if error.get("ctx"):
            item["ctx"] = {key: str(value) for key, value in error["ctx"].items()}
        items.append(item)
    return items


# Codes for the statuses Werkzeug raises on its own (routing, body limits).
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}

_HTTP_DETAILS = {
    404: "No route matches this URL.",
    405: "This method is not allowed on this URL.",
    413: "The request body is larger than this server accepts.",
}


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    body = ErrorResponse(detail=detail, code=code).model_dump_json()
    return Response(body, status=status, content_type="application/json", headers=headers)


def install_error_handlers(app: Quart) -> None:
    """Make every error JSON: ours, Werkzeug's, validation errors and crashes."""

    @app.errorhandler(ApiError)
    async def _api_error(error: ApiError) -> Response:
        return error_response(error.status, error.code, error.detail, error.headers)

    @app.errorhandler(RequestValidationError)
    async def _validation_error(error: RequestValidationError) -> Response:
        body = HTTPValidationError.model_validate({"detail": error.errors})
        return Response(
            body.model_dump_json(exclude_unset=True), status=422, content_type="application/json"
        )

    @app.errorhandler(HTTPException)
    async def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        headers = {}
        allowed = getattr(error, "valid_methods", None)
        if status == 405 and allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
        detail = _HTTP_DETAILS.get(status) or error.description or error.name
        return error_response(status, _HTTP_CODES.get(status, "http_error"), detail, headers)

    @app.errorhandler(Exception)
    async def _crash(error: Exception) -> Response:
        failure = note_dependency_failure(error)
        if failure is not None:
            return failure.response()
        log.exception("unhandled error", exc_info=error)
        return error_response(500, "internal_error", "The server failed to handle this request.")

    @app.after_serving
    async def _end_outages() -> None:
        await OUTAGES.close()


# --- outages: a dependency that is down answers 503, logged once per outage -------------

RETRY_AFTER_SECONDS = 5
"""The ``Retry-After`` of a 503 answered because a dependency (the database) is down."""

_DATABASE_MODULES = ("asyncpg", "tortoise", "aiosqlite", "sqlite3", "pypika")
# SQLite's primary result codes (and, for old Pythons, the messages) that mean the
# database cannot serve right now, with the short phrase that names the cause.
_SQLITE_CODES = {
    "SQLITE_BUSY": "busy (locked by another writer)",
    "SQLITE_LOCKED": "busy (locked by another writer)",
    "SQLITE_IOERR": "disk I/O error",
    "SQLITE_FULL": "disk full",
    "SQLITE_READONLY": "read-only",
    "SQLITE_CANTOPEN": "cannot open the database file",
    "SQLITE_NOMEM": "out of memory",
}
_SQLITE_MESSAGES = (
    ("database is locked", "SQLITE_BUSY"),
    ("database table is locked", "SQLITE_LOCKED"),
    ("disk i/o error", "SQLITE_IOERR"),
    ("database or disk is full", "SQLITE_FULL"),
    ("readonly database", "SQLITE_READONLY"),
    ("unable to open database file", "SQLITE_CANTOPEN"),
)
_WRITE_REFUSED = frozenset({"SQLITE_FULL", "SQLITE_READONLY"})
# Errors of the machine rather than of the code: out of disk, a read-only or failing
# disk, out of file descriptors.
_RESOURCE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EMFILE, errno.ENFILE}
)


@dataclass(frozen=True)
class DependencyFailure:
    """An error that means a dependency is down, not that the code is wrong."""

    dependency: str  # "database", or "storage" for the disk outside the database
    reason: str  # a short fixed phrase: "unreachable", "read-only", "disk full", ...
    write_refused: bool = False  # the database reads but refuses writes (SQLite)

    @property
    def code(self) -> str:
        return f"{self.dependency}_unavailable"

    def response(self) -> Response:
        """``503 <dependency>_unavailable`` with ``Retry-After``."""
        return error_response(
            503,
            self.code,
            f"The {self.dependency} is unavailable right now ({self.reason}); "
            f"retry in {RETRY_AFTER_SECONDS} seconds.",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then its causes and contexts (each once, at most eight deep)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending and len(seen) < 8:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        # tortoise wraps a driver error as OperationalError(exc), without `from`
        pending += [a for a in current.args[:1] if isinstance(a, BaseException)]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]


def _raised_in_database_code(error: BaseException) -> bool:
    tb: TracebackType | None = error.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.split(".", 1)[0] in _DATABASE_MODULES:
            return True
        tb = tb.tb_next
    return False


def _sqlite_failure(error: BaseException) -> DependencyFailure | None:
    name = getattr(error, "sqlite_errorname", "") or ""
    primary = next((code for code in _SQLITE_CODES if name.startswith(code)), "")
    if not primary:
        text = str(error).lower()
        primary = next((code for message, code in _SQLITE_MESSAGES if message in text), "")
    if not primary:
        return None
    return DependencyFailure("database", _SQLITE_CODES[primary], primary in _WRITE_REFUSED)


def _postgres_failure(error: BaseException) -> DependencyFailure | None:
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return None
    if isinstance(error, asyncpg.TooManyConnectionsError):
        return DependencyFailure("database", "too many connections")
    if isinstance(error, asyncpg.CannotConnectNowError):
        return DependencyFailure("database", "starting up or shutting down")
    if isinstance(error, asyncpg.OperatorInterventionError):  # admin/crash shutdown
        return DependencyFailure("database", "shut down")
    if isinstance(error, asyncpg.PostgresConnectionError):
        return DependencyFailure("database", "connection lost")
    if isinstance(error, asyncpg.InsufficientResourcesError):  # disk full, out of memory
        return DependencyFailure("database", "out of resources")
    if isinstance(error, asyncpg.ReadOnlySQLTransactionError):
        return DependencyFailure("database", "read-only", write_refused=True)
    if isinstance(error, asyncpg.InterfaceError):
        text = str(error).lower()
        if "closed" in text or ("connection" in text and "another operation" not in text):
            return DependencyFailure("database", "connection lost")
    return None


def _os_failure(error: OSError, in_database: bool) -> DependencyFailure | None:
    if in_database:
        if isinstance(error, TimeoutError):
            return DependencyFailure("database", "timed out")
        if isinstance(error, ConnectionRefusedError):
            return DependencyFailure("database", "unreachable: connection refused")
        return DependencyFailure("database", "unreachable")
    if error.errno in _RESOURCE_ERRNOS:
        reasons = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk full", errno.EROFS: "read-only"}
        return DependencyFailure("storage", reasons.get(error.errno, "unavailable"))
    return None


def classify_dependency_failure(error: BaseException) -> DependencyFailure | None:
    """What dependency ``error`` says is down, or ``None`` for anything else (a bug).

    The database: asyncpg's connection errors (a lost or refused connection, too many
    connections, a server starting up or shutting down), tortoise's ``DBConnectionError``,
    SQLite's busy, I/O, full, read-only and cannot-open errors (tortoise's
    ``OperationalError`` around them), and an ``OSError`` or timeout raised inside the
    database driver (a refused connect, a pool acquire that timed out). Outside the
    database: an ``OSError`` of the machine (no space, a read-only or failing disk, out of
    file descriptors). A syntax error or a constraint violation is a bug, not an outage.
    """
    from tortoise.exceptions import DBConnectionError

    in_database = _raised_in_database_code(error)
    for current in _chain(error):
        if isinstance(current, ApiError | HTTPException):
            return None  # answered on purpose
        if isinstance(current, DBConnectionError):
            return DependencyFailure("database", "unreachable")
        if isinstance(current, sqlite3.Error):
            found = _sqlite_failure(current)
        elif type(current).__module__.startswith("asyncpg"):
            found = _postgres_failure(current)
        elif type(current).__name__ == "OperationalError" and in_database:
            found = _sqlite_failure(current)
        elif isinstance(current, OSError):
            found = _os_failure(current, in_database)
        else:
            found = None
        if found is not None:
            return found
    return None


def _cause(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Outage:
    """One dependency's outage: how many requests it refused, and when it ends."""

    def __init__(self, failure: DependencyFailure, error: BaseException) -> None:
        now = time.monotonic()
        self.failure = failure
        self.started = now
        self.last_failure = now
        self.refused = 0  # requests refused since the last summary
        self.refused_total = 0
        self.summarised = now
        self.cause = _cause(error)
        self.monitor: asyncio.Task[None] | None = None


class OutageLog:
    """Logs a dependency outage once with its cause, then at most a line a second.

    The first failure is logged with its cause; while the outage lasts, a monitor logs
    ``<dependency> unavailable: N requests refused in the last Xs`` at most once a
    second, and ``<dependency> available again`` once its probe passes with no failure
    for a second. A database that reads but refused a write (a read-only or full SQLite
    file) is remembered for :attr:`WRITE_REFUSED_WINDOW` seconds for ``/readyz``.
    """

    SUMMARY_INTERVAL = 1.0
    QUIET = 1.0  # seconds without a failure before the probe may end the outage
    PROBE_TIMEOUT = 2.0
    WRITE_REFUSED_WINDOW = 30.0

    def __init__(self) -> None:
        self.active: dict[str, _Outage] = {}
        self.probes: dict[str, Callable[[], Awaitable[object]]] = {}
        self.write_refused: tuple[float, str] | None = None  # (monotonic, reason)

    def set_probe(self, dependency: str, probe: Callable[[], Awaitable[object]]) -> None:
        """``probe()`` passes (returns) once ``dependency`` answers again."""
        self.probes[dependency] = probe

    def failed(
        self, failure: DependencyFailure, error: BaseException, *, request: bool = True
    ) -> None:
        now = time.monotonic()
        if failure.write_refused:
            self.write_refused = (now, failure.reason)
        outage = self.active.get(failure.dependency)
        if outage is None:
            outage = self.active[failure.dependency] = _Outage(failure, error)
            log.error(
                "%s unavailable (%s): %s; answering 503 %s until it recovers",
                failure.dependency,
                failure.reason,
                outage.cause,
                failure.code,
            )
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to monitor
                outage.monitor = asyncio.get_running_loop().create_task(
                    self._monitor(failure.dependency, outage),
                    context=contextvars.Context(),  # not the first refused request's
                )
        outage.last_failure = now
        if request:
            outage.refused += 1
            outage.refused_total += 1

    def recent_write_refusal(self) -> str | None:
        """The reason a write was refused within the last ``WRITE_REFUSED_WINDOW`` seconds."""
        if self.write_refused is None:
            return None
        at, reason = self.write_refused
        return reason if time.monotonic() - at < self.WRITE_REFUSED_WINDOW else None

    def _summarise(self, dependency: str, outage: _Outage) -> None:
        now = time.monotonic()
        if outage.refused:
            log.warning(
                "%s unavailable: %d requests refused in the last %.1fs",
                dependency,
                outage.refused,
                now - outage.summarised,
            )
        outage.refused, outage.summarised = 0, now

    async def _probe(self, dependency: str) -> bool:
        probe = self.probes.get(dependency)
        if probe is None:
            return True
        try:
            await asyncio.wait_for(probe(), self.PROBE_TIMEOUT)
        except Exception:
            return False
        return True

    async def _monitor(self, dependency: str, outage: _Outage) -> None:
        while True:
            await asyncio.sleep(self.SUMMARY_INTERVAL)
            if time.monotonic() - outage.summarised >= self.SUMMARY_INTERVAL:
                self._summarise(dependency, outage)
            quiet = time.monotonic() - outage.last_failure >= self.QUIET
            if quiet and await self._probe(dependency):
                if time.monotonic() - outage.last_failure < self.QUIET:
                    continue  # it failed again while the probe ran
                self._summarise(dependency, outage)
                log.warning(
                    "%s available again after %.1fs (%d requests refused)",
                    dependency,
                    time.monotonic() - outage.started,
                    outage.refused_total,
                )
                self.active.pop(dependency, None)
                return

    async def close(self) -> None:
        """Stop monitoring (the app stops serving); forget the outages."""
        for outage in list(self.active.values()):
            if outage.monitor is not None and not outage.monitor.done():
                outage.monitor.cancel()
                with contextlib.suppress(BaseException):
                    await outage.monitor
        self.active.clear()
        self.write_refused = None


OUTAGES = OutageLog()
"""The process's outages (one app serves per process)."""


class OutageLogFilter(logging.Filter):
    """Drops a driver's own record of a dependency failure (asyncpg's pool logs a traceback
    each time it cannot restore its connections): :data:`OUTAGES` logs the outage instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        failure = classify_dependency_failure(error) if error is not None else None
        if error is None or failure is None:
            return True
        OUTAGES.failed(failure, error, request=False)
        return False


def quiet_driver_outage_logs(*names: str) -> None:
    """Route these loggers' dependency-failure records through :data:`OUTAGES` (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OutageLogFilter) for f in logger.filters):
            logger.addFilter(OutageLogFilter())


def note_dependency_failure(
    error: BaseException, *, request: bool = True
) -> DependencyFailure | None:
    """Classify ``error``; a dependency failure is recorded in :data:`OUTAGES` and returned.

    ``request=False`` for background work (the outbox dispatcher): it keeps the outage
    open without counting as a refused request. ``None``: not an outage (log it as a bug).
    """
    failure = classify_dependency_failure(error)
    if failure is not None:
        OUTAGES.failed(failure, error, request=request)
    return failure


# --- what a readiness check may show publicly -----------------------------------------

_SCRUB = (
    (re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+"), "<url>"),
    (re.compile(r"\[[0-9a-fA-F:.]+\](?::\d+)?"), "<host>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<host>"),
    (re.compile(r"\b(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+:\d{2,5}\b"), "<host>"),
    (re.compile(r"\b(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}\b(?!\()"), "<host>"),
    (re.compile(r"\bport \d+"), "port <port>"),
    (re.compile(r"(?<![\w<>])(?:~|\.{1,2})?/(?:[\w.@%+-]+/)+[\w.@%+-]*"), "<path>"),
    (re.compile(r"(?<![\w<>])\.{1,2}/[\w.@%+-]+"), "<path>"),
)
_UPSTREAM_STATUS = re.compile(r"\(HTTP (\d{3})\)")
PUBLIC_TEXT_LIMIT = 200


def scrub(text: str) -> str:
    """``text`` without URLs, hostnames, IP addresses, ports and paths, on one short line."""
    for pattern, replacement in _SCRUB:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    return text if len(text) <= PUBLIC_TEXT_LIMIT else text[: PUBLIC_TEXT_LIMIT - 1] + "…"


def public_failure(error: BaseException) -> str:
    """A failed check, as ``/readyz`` shows it to anyone: a short fixed phrase.

    A timeout is ``timed out``; a dependency failure its reason (``unreachable``,
    ``read-only``...); a :class:`ServiceClient` error ``unreachable``, ``timed out`` or
    ``refused: HTTP 503``; any other ``OSError`` ``unreachable``. A ``RuntimeError`` is
    the check's own sentence (the convention for a failing check), shown with any URL,
    host, port or path removed; anything else only by its type (``failed: KeyError``).
    """
    if isinstance(error, TimeoutError) and not _raised_in_database_code(error):
        return "timed out"
    failure = classify_dependency_failure(error)
    if failure is not None:
        return failure.reason
    if isinstance(error, ApiError):
        if error.status == 504 or error.code.endswith("_timeout"):
            return "timed out"
        status = _UPSTREAM_STATUS.search(error.detail)
        if status:
            return f"refused: HTTP {status.group(1)}"
        if error.code == "upstream_invalid":
            return "invalid answer"
        if error.status == 502:
            return "unreachable"
        return scrub(error.detail)
    if isinstance(error, ConnectionError | OSError):
        return "unreachable"
    if isinstance(error, RuntimeError) and str(error):
        return scrub(str(error))
    return f"failed: {type(error).__name__}"
