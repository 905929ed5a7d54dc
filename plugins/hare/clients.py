"""hare, as docs/services/hare.md describes it: record a source event, erase a user, health.

Every call is bounded as a whole (connect + read timeout, plus a second), so an outbox
handler using this client always ends well within its time limit, whatever hare does:
answers slowly, drips bytes, or hangs. hare's answers become one of three failures, which
say what the caller should do: :class:`HareRejected` (hare understood and refused: retrying
cannot help), :class:`HareMisconfigured` (our key or URL is wrong: retrying helps once a
person fixes it) and :class:`HareUnavailable` (hare is down, slow, overloaded or answered
garbage: retry later).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from core import ApiError, ServiceClient, SourceEvent

HARE = "hare"
"""The service's name, as logs and errors say it."""

REJECTED_STATUSES = frozenset({400, 409, 413, 422})
MISCONFIGURED_STATUSES = frozenset({401, 403, 404, 405})


class HareError(Exception):
    """A call to hare that did not succeed; ``status`` is hare's HTTP status, if it answered."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class HareRejected(HareError):
    """hare refused this request for good (400, 409, 413, 422): sending it again cannot help."""


class HareMisconfigured(HareError):
    """Our side is wrong (no key, a key hare refuses, a wrong base URL): a person must fix it."""


class HareUnavailable(HareError):
    """hare is unreachable, slow, overloaded (429) or failing (5xx), or answered garbage."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


# --- hare's bodies -----------------------------------------------------------------------


class _HareModel(BaseModel):
    """hare may add fields; we read the ones the contract names."""

    model_config = ConfigDict(extra="ignore")


class Recorded(_HareModel):
    """hare's answer to ``POST /v1/source-events`` (201 the first time, 200 for a repeat)."""

    id: str
    idempotency_key: str
    recorded_at: datetime


class Erased(_HareModel):
    user_id: str
    deleted: int


class HareErrorBody(_HareModel):
    error: str = "unknown"
    message: str = ""


def timestamp(moment: datetime) -> str:
    """``written_at`` as hare receives it: UTC, milliseconds, ``Z`` (the same every replay)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_body(user_id: int, event: SourceEvent) -> dict[str, Any]:
    """The JSON body of ``POST /v1/source-events`` for one of our user's events."""
    return {
        "idempotency_key": event.idempotency_key,
        "user_id": str(user_id),
        "surface": event.surface,
        "text": event.text,
        "written_at": timestamp(event.written_at),
        "reference": {"type": event.reference_type, "id": event.reference_id},
        "language": event.language,
    }


# --- the HTTP API ------------------------------------------------------------------------


class HareClient:
    """The calls imperfect-api makes to hare; user ids are ours, as decimal strings."""

    def __init__(self, http: ServiceClient, *, configured: bool) -> None:
        self.http = http
        self.configured = configured
        # The whole call, however hare answers: connect, send, headers, body.
        self.deadline = http.connect_timeout + http.read_timeout + 1.0

    async def record(self, user_id: int, event: SourceEvent) -> tuple[Recorded, bool]:
        """Record one event; ``(answer, True)`` when hare stored it now, ``False`` when it
        had it already (the same idempotency key with the same content)."""
        key = event.idempotency_key
        response = await self._call(
            "POST", "/v1/source-events", f"record {key}", event_body(user_id, event)
        )
        if response.status_code not in (200, 201):
            raise self._failure(response, f"record {key}")
        try:
            answer = Recorded.model_validate_json(response.content)
        except PydanticValidationError as error:
            raise HareUnavailable(
                f"hare answered HTTP {response.status_code} to record {key} with a body "
                f"that is not the contract's ({error.error_count()} problem(s))",
                status=response.status_code,
                code="invalid_body",
            ) from error
        if answer.idempotency_key != key:
            raise HareUnavailable(
                f"hare answered the record of {key} with the key {answer.idempotency_key!r}",
                status=response.status_code,
                code="invalid_body",
            )
        return answer, response.status_code == 201

    async def erase_user(self, user_id: int) -> int:
        """Erase every event hare holds for ``user_id``; how many there were (idempotent)."""
        what = f"erase the events of user {user_id}"
        response = await self._call("DELETE", f"/v1/users/{user_id}/source-events", what)
        if response.status_code == 204:
            return 0
        if response.status_code != 200:
            raise self._failure(response, what)
        try:
            return Erased.model_validate_json(response.content).deleted
        except PydanticValidationError as error:
            raise HareUnavailable(
                f"hare answered HTTP 200 to {what} with a body that is not the contract's",
                status=200,
                code="invalid_body",
            ) from error

    async def check(self) -> str:
        """``reachable`` when ``GET /health`` answers 200; raises otherwise (no URL in it)."""
        response = await self._call("GET", "/health", "answer /health", require_key=False)
        if response.status_code != 200:
            raise HareUnavailable(
                f"hare answered HTTP {response.status_code} on /health",
                status=response.status_code,
            )
        return "reachable"

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        body: Any = None,
        *,
        require_key: bool = True,
    ) -> httpx.Response:
        if require_key and not self.configured:
            raise HareMisconfigured(
                f"hare is not configured (no api_key; set HARE_API_KEY): cannot {what}",
                code="not_configured",
            )
        try:
            async with asyncio.timeout(self.deadline):
                return await self.http.request(method, path, json=body, retries=0)
        except TimeoutError as error:
            raise HareUnavailable(
                f"hare did not answer within {self.deadline:g}s to {what}", code="timeout"
            ) from error
        except ApiError as error:  # unreachable, timed out, or a 5xx (ServiceClient's mapping)
            raise HareUnavailable(
                f"hare could not {what}: {error.detail}", code=error.code
            ) from error

    def _failure(self, response: httpx.Response, what: str) -> HareError:
        """A 4xx (or an unexpected 1xx-3xx) from hare, as the failure it means."""
        status = response.status_code
        try:
            body = HareErrorBody.model_validate_json(response.content)
        except PydanticValidationError:
            body = HareErrorBody()
        reason = f": {body.message}" if body.message else ""
        message = f"hare refused to {what} (HTTP {status}, {body.error}){reason}"
        if status in REJECTED_STATUSES:
            return HareRejected(message, status=status, code=body.error)
        if status in MISCONFIGURED_STATUSES:
            hint = (
                " - check the hare api_key (HARE_API_KEY)"
                if status in (401, 403)
                else (" - check the hare base_url")
            )
            return HareMisconfigured(message + hint, status=status, code=body.error)
        if status == 429:
            retry_after = _seconds(response.headers.get("Retry-After"))
            after = f", Retry-After {retry_after:g}s" if retry_after is not None else ""
            return HareUnavailable(
                f"hare is rate limiting us (HTTP 429{after}): cannot {what} now",
                status=status,
                code=body.error,
                retry_after=retry_after,
            )
        return HareUnavailable(message, status=status, code=body.error)


def _seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (hare sends a number of seconds)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
