"""Log records that carry the request id, written as text lines or JSON lines.

Core's request pipeline sets :data:`REQUEST_ID` for every request (the same id the
response carries in ``X-Request-ID``) before anything else runs, so every record logged
while the request is handled, by core, by a handler or by a family's
``logging.getLogger(__name__)``, carries it as ``record.request_id`` (``None`` outside a
request). :func:`install` adds the attribute through the log record factory, so it reaches
every handler, pytest's ``caplog`` included, not only the one ``imperfect serve`` installs.

``IMPERFECT_LOG_FORMAT`` chooses how ``imperfect serve`` writes application logs:
``text`` (the default, for people reading a terminal) or ``json`` (one JSON object per
line, for a log collector; see :class:`JsonFormatter`).
"""

from __future__ import annotations

import json
import logging
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from core.errors import ConfigError
from core.tracing import current_ids

LOG_FORMAT_ENV = "IMPERFECT_LOG_FORMAT"
LogFormat = Literal["text", "json"]

REQUEST_ID: ContextVar[str | None] = ContextVar("imperfect_request_id", default=None)
"""The id of the request being handled in this task (``X-Request-ID``), else ``None``."""

TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"
TEXT_DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"  # hypercorn's, so the two logs read alike

_installed = False


def current_request_id() -> str | None:
    """The id of the request being handled, if any."""
    return REQUEST_ID.get()


def install() -> None:
    """Give every log record a ``request_id`` attribute (idempotent, process-wide)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = REQUEST_ID.get()
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def log_format(value: str | None) -> LogFormat:
    """``IMPERFECT_LOG_FORMAT`` (``text`` or ``json``; empty means ``text``)."""
    name = (value or "text").strip().lower()
    if name == "text":
        return "text"
    if name == "json":
        return "json"
    raise ConfigError(f"invalid environment: {LOG_FORMAT_ENV}={value} is not 'text' or 'json'")


class TextFormatter(logging.Formatter):
    """The human format; a record logged during a request ends with `` rid=<request id>``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, TEXT_DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return line
        first, newline, rest = line.partition("\n")  # after the message, before a traceback
        return f"{first} rid={request_id}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line.

    Keys: ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``,
    ``request_id`` (``null`` outside a request), ``process``; ``exception`` (the formatted
    traceback) when the record has exception info, ``stack`` when it has stack info, and
    ``trace_id``/``span_id`` when an OpenTelemetry span is current. Line breaks inside
    values are escaped by JSON, so a record is always one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        ids = current_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(kind: LogFormat) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else TextFormatter()
