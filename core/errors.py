"""Every error the platform returns or raises, and the JSON they become.

Validation errors answer 422 in FastAPI's shape
``{"detail": [{"type", "loc", "msg", "input"}]}``; every other error answers
``{"detail": "<sentence>", "code": "<machine_code>"}``. No HTML page and no
stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
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
        log.exception("unhandled error", exc_info=error)
        return error_response(500, "internal_error", "The server failed to handle this request.")
