"""alice, as docs/services/alice.md describes it: its HTTP API and its Redis events."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import date, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from pydantic import ValidationError as PydanticValidationError

from core import ApiError, ServiceClient

log = logging.getLogger("imperfect.health_providers")

ALICE = "alice"
PAGE_SIZE = 200
MAX_PAGES = 20

# --- alice's bodies ---------------------------------------------------------------------


class _AliceModel(BaseModel):
    """alice may add fields; we read the ones the contract names."""

    model_config = ConfigDict(extra="ignore")


class AliceAuthorization(_AliceModel):
    authorization_id: str
    authorize_url: HttpUrl
    expires_at: datetime


class AliceConnection(_AliceModel):
    provider: str
    status: Literal["connected", "revoked"]
    connected_at: datetime
    last_sync_at: datetime | None = None


class AliceActivity(_AliceModel):
    id: str
    provider: str
    sport: str
    start_time: datetime
    duration_s: float = Field(ge=0)
    distance_m: float | None = Field(None, ge=0)


class AliceActivityDetail(AliceActivity):
    """One activity with the details alice keeps when the provider sent them."""

    average_heart_rate: int | None = Field(None, gt=0)
    max_heart_rate: int | None = Field(None, gt=0)
    elevation_gain_m: float | None = Field(None, ge=0)
    calories: float | None = Field(None, ge=0)


class AliceDaily(_AliceModel):
    date: date
    provider: str
    steps: int | None = None
    resting_heart_rate: int | None = Field(None, gt=0)


class AliceSleep(_AliceModel):
    date: date
    provider: str
    duration_s: float = Field(ge=0)


class AliceError(_AliceModel):
    error: str = "unknown"
    message: str = ""


Item = TypeVar("Item", bound=_AliceModel)


class _Page(_AliceModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


class AliceChanges(_AliceModel):
    """One page of alice's change feed: events in the order alice published them.

    ``items`` are left as mappings: each is read like a published event, and one that does
    not fit is dropped alone. ``next_cursor`` is where the next page starts (also after the
    last page: asking with it later returns what was published since).
    """

    items: list[dict[str, Any]]
    next_cursor: str = Field(min_length=1)
    has_more: bool = False


class CursorExpired(Exception):
    """alice no longer keeps the events after this cursor (or cannot read it)."""


# --- the HTTP API ------------------------------------------------------------------------


class AliceClient:
    """The calls imperfect-api makes to alice; user ids are ours, as decimal strings."""

    def __init__(self, http: ServiceClient) -> None:
        self.http = http

    async def start_authorization(
        self, user_id: int, provider: str, state: str, redirect_uri: str
    ) -> AliceAuthorization:
        response = await self.http.request(
            "POST",
            "/v1/authorizations",
            json={
                "user_id": str(user_id),
                "provider": provider,
                "state": state,
                "redirect_uri": redirect_uri,
            },
        )
        if response.status_code != 201:
            raise self._refused(response, f"start an authorization for {provider}")
        return self.http.parse(response, AliceAuthorization)

    async def complete_authorization(
        self, user_id: int, provider: str, state: str, code: str, redirect_uri: str
    ) -> AliceConnection:
        response = await self.http.request(
            "POST",
            "/v1/authorizations/complete",
            json={
                "user_id": str(user_id),
                "provider": provider,
                "state": state,
                "code": code,
                "redirect_uri": redirect_uri,
            },
        )
        if response.status_code != 200:
            raise self._refused(response, f"complete the {provider} authorization")
        return self.http.parse(response, AliceConnection)

    async def connection(self, user_id: int, provider: str) -> AliceConnection | None:
        """The user's connection to ``provider``, or ``None`` when alice has none."""
        response = await self.http.request("GET", f"/v1/users/{user_id}/connections/{provider}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._refused(response, f"report the {provider} connection")
        return self.http.parse(response, AliceConnection)

    async def revoke(self, user_id: int, provider: str) -> bool:
        """Revoke at the provider and forget the tokens; ``False`` if there was nothing."""
        response = await self.http.request("DELETE", f"/v1/users/{user_id}/connections/{provider}")
        if response.status_code == 404:
            return False
        if response.status_code != 204:
            raise self._refused(response, f"revoke the {provider} connection")
        return True

    async def activities(
        self, user_id: int, provider: str, start: date, end: date
    ) -> list[AliceActivity]:
        return await self._read_all(user_id, "activities", provider, start, end, AliceActivity)

    async def activity(self, user_id: int, activity_id: str) -> AliceActivityDetail | None:
        """One of the user's activities, or ``None`` when alice has none with that id."""
        response = await self.http.request(
            "GET", f"/v1/users/{user_id}/activities/{quote(activity_id, safe='')}"
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._refused(response, "read the activity")
        return self.http.parse(response, AliceActivityDetail)

    async def dailies(
        self, user_id: int, provider: str, start: date, end: date
    ) -> list[AliceDaily]:
        return await self._read_all(user_id, "dailies", provider, start, end, AliceDaily)

    async def sleep(self, user_id: int, provider: str, start: date, end: date) -> list[AliceSleep]:
        return await self._read_all(user_id, "sleep", provider, start, end, AliceSleep)

    async def changes(
        self, *, cursor: str | None = None, since: datetime | None = None, limit: int = PAGE_SIZE
    ) -> AliceChanges:
        """One page of alice's change feed: after ``cursor``, or from ``since`` without one.

        Raises :class:`CursorExpired` when alice answers ``410 cursor_expired`` or
        ``400 invalid_cursor``: the caller starts again from a time.
        """
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        elif since is not None:
            params["since"] = since.isoformat()
        response = await self.http.request("GET", "/v1/connections/changes", params=params)
        if response.status_code in (400, 410) and cursor is not None:
            body = self._error_body(response)
            if body.error in ("cursor_expired", "invalid_cursor"):
                raise CursorExpired(f"{body.error}: {body.message}")
        if response.status_code != 200:
            raise self._refused(response, "list the connection changes")
        return self.http.parse(response, AliceChanges)

    async def check(self) -> str:
        response = await self.http.request("GET", "/health", retries=0)
        if response.status_code != 200:
            raise RuntimeError(f"alice answered HTTP {response.status_code} on /health")
        return "reachable"

    async def _read_all(
        self,
        user_id: int,
        resource: str,
        provider: str,
        start: date,
        end: date,
        model: type[Item],
    ) -> list[Item]:
        """Every page of one data resource for ``[start, end]``."""
        params: dict[str, Any] = {
            "provider": provider,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "limit": PAGE_SIZE,
        }
        items: list[Item] = []
        for _ in range(MAX_PAGES):
            response = await self.http.request(
                "GET", f"/v1/users/{user_id}/{resource}", params=params
            )
            if response.status_code != 200:
                raise self._refused(response, f"read {resource}")
            page = self.http.parse(response, _Page)
            try:
                items.extend(model.model_validate(item) for item in page.items)
            except PydanticValidationError as error:
                log.warning("alice sent an unexpected %s item: %s", resource, error)
                raise ApiError(
                    502, "upstream_invalid", "alice answered with an unexpected body."
                ) from error
            if page.next_cursor is None:
                return items
            params["cursor"] = page.next_cursor
        raise ApiError(
            502, "upstream_invalid", f"alice returned more than {MAX_PAGES} pages of {resource}."
        )

    @staticmethod
    def _error_body(response: Any) -> AliceError:
        try:
            return AliceError.model_validate_json(response.content)
        except PydanticValidationError:
            return AliceError()

    def _refused(self, response: Any, what: str) -> ApiError:
        """A 4xx from alice: it understood us and said no."""
        body = self._error_body(response)
        log.warning("alice refused to %s: HTTP %s %s", what, response.status_code, body)
        reason = f": {body.message}" if body.message else ""
        return ApiError(
            502,
            "upstream_rejected",
            f"alice refused to {what} (HTTP {response.status_code}, {body.error}){reason}",
        )


# --- the Redis events --------------------------------------------------------------------

EventType = Literal["connection.revoked", "ingestion.completed", "backfill.completed"]
EVENT_TYPES: tuple[EventType, ...] = (
    "connection.revoked",
    "ingestion.completed",
    "backfill.completed",
)


class AliceEvent(_AliceModel):
    """One event alice published; ``event_id`` is the same each time alice republishes it."""

    event_id: str = Field(min_length=1, max_length=64)
    type: EventType
    occurred_at: datetime
    user_id: str
    provider: str


def event_channels(prefix: str) -> dict[str, EventType]:
    """alice's channels (``<prefix><type>``), each with the one event type it carries."""
    return {f"{prefix}{kind}": kind for kind in EVENT_TYPES}


SIGNATURE_LENGTH = 64  # hex characters of an HMAC-SHA256


class UnsignedEvent(ValueError):
    """A message without a valid signature: refused before anything reads its content."""


def event_signature(key: bytes, event: bytes) -> str:
    """The signature alice puts before an event: HMAC-SHA256 over its bytes, in hex."""
    return hmac.new(key, event, hashlib.sha256).hexdigest()


def verify_event(key: bytes, message: bytes) -> bytes:
    """The event JSON bytes of a signed message ``<hex signature>.<event JSON>``.

    The signature covers exactly the bytes after the first ``.``; it is compared in
    constant time. Raises :class:`UnsignedEvent` when there is no signature, it does not
    match, or there is no key to check it with.
    """
    if not key:
        raise UnsignedEvent("no event_signing_key is configured")
    signature, dot, event = message.partition(b".")
    if not dot or len(signature) != SIGNATURE_LENGTH:
        raise UnsignedEvent("unsigned")
    expected = event_signature(key, event).encode()
    if not hmac.compare_digest(signature, expected):
        raise UnsignedEvent("wrong signature")
    return event


def parse_event(channels: dict[str, EventType], channel: str, data: bytes) -> AliceEvent:
    """One message as an :class:`AliceEvent`; ``ValueError`` when it is not a valid one."""
    event = AliceEvent.model_validate(json.loads(data))  # ValidationError is a ValueError
    if event.type != channels.get(channel):
        raise ValueError(f"type {event.type} on the wrong channel")
    return event
