"""A fake alice: the contract of docs/services/alice.md, in memory, on a real socket.

It also plays the provider's consent page (``/oauth/<provider>/authorize``): opening
an authorize URL redirects the browser to the ``redirect_uri`` with ``code`` and
``state``, as a provider would. A code belongs to the authorization it was issued
for, so completing another authorization with it fails (``invalid_grant``), as
PKCE makes it fail at a real provider.

Tests control it: ``delay`` (seconds before every answer), ``fail_with`` (answer
every API call with this status), ``supported`` (the providers it knows: others get
``400 unsupported_provider`` when connecting, reading or disconnecting them), and
read ``calls``. ``publish`` sends an event on Redis the way alice does: signed with
``signing_key`` (``<hex HMAC-SHA256 of the event JSON>.<event JSON>``), and records it in
``published``, the log its change feed (``GET /v1/connections/changes``) serves, whether
anyone was subscribed or not (without ``redis_url`` it only records it: an event published
while nobody listened); ``publish_raw`` sends any bytes, signed or not, on Redis only (it
plays someone else publishing on alice's channels). ``discard_published(n)`` forgets the
oldest ``n`` events, as alice's retention does: a cursor before them answers
``410 cursor_expired``. ``terra_references`` holds the Terra references the
terra family registered (``PUT /v1/terra/references/{reference_id}``), each with its user.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import redis
from quart import Quart, Response, redirect, request

from tests.fakes.server import FakeServer

RESOURCES = ("activities", "dailies", "sleep")
EVENT_SIGNING_KEY = "test-alice-event-signing-key-0123456789abcdef"
"""The key the fake signs its events with; tests give it to ``health_providers``."""


def sign(key: str, event: bytes) -> bytes:
    """A signed message as alice publishes it: ``<hex HMAC-SHA256>.<event bytes>``."""
    return hmac.new(key.encode(), event, hashlib.sha256).hexdigest().encode() + b"." + event


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class Authorization:
    user_id: str
    provider: str
    state: str
    redirect_uri: str
    code: str | None = None
    completed: bool = False


@dataclass
class FakeAlice:
    redis_url: str | None = None
    channel_prefix: str = "alice."
    supported: set[str] | None = None
    delay: float = 0.0
    fail_with: int | None = None
    page_size: int = 100
    signing_key: str = EVENT_SIGNING_KEY
    terra_references: dict[str, str] = field(default_factory=dict)
    published: list[dict[str, Any]] = field(default_factory=list)
    discarded: int = 0
    calls: list[Call] = field(default_factory=list)
    authorizations: dict[str, Authorization] = field(default_factory=dict)
    connections: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    url: str = ""

    def __post_init__(self) -> None:
        self.app = _build_app(self)
        self._server = FakeServer(self.app)

    def start(self) -> FakeAlice:
        self._server.start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        self._server.stop()

    # --- what tests set up and look at ---------------------------------------------------

    def api_calls(self, method: str | None = None, path_prefix: str = "/v1/") -> list[Call]:
        return [
            c
            for c in self.calls
            if c.path.startswith(path_prefix) and (method is None or c.method == method)
        ]

    def seed(self, user_id: int, provider: str, resource: str, items: list[dict[str, Any]]) -> None:
        """Data alice holds for a user and provider (``resource``: activities, dailies, sleep)."""
        assert resource in RESOURCES
        self.data[(str(user_id), provider, resource)] = [{"provider": provider, **i} for i in items]

    def publish(self, event_type: str, user_id: int, provider: str, **extra: Any) -> str:
        """Publish one event as alice does; returns its event id (pass ``event_id`` to reuse).

        The event joins the change feed's log first; it goes out on Redis when the fake has
        one (and is lost there when nobody is subscribed, as pub/sub loses it).
        """
        event = {
            "event_id": extra.pop("event_id", None) or uuid.uuid4().hex,
            "type": event_type,
            "occurred_at": extra.pop("occurred_at", None) or datetime.now(UTC).isoformat(),
            "user_id": str(user_id),
            "provider": provider,
            **extra,
        }
        published_at = datetime.now(UTC)
        self.published.append({"published_at": published_at, "event": event})
        if self.redis_url:
            self.publish_raw(f"{self.channel_prefix}{event_type}", json.dumps(event).encode())
        return event["event_id"]

    def discard_published(self, count: int) -> None:
        """Forget the oldest ``count`` events of the log, as alice's retention would."""
        self.discarded += count

    def publish_raw(self, channel: str, payload: bytes, *, signed: bool = True) -> None:
        """Publish ``payload`` on ``channel``, signed as alice signs (or not at all)."""
        assert self.redis_url, "this fake alice has no Redis"
        client = redis.Redis.from_url(self.redis_url)
        try:
            client.publish(channel, sign(self.signing_key, payload) if signed else payload)
        finally:
            client.close()

    def revoke_at_provider(self, user_id: int, provider: str, event_id: str | None = None) -> str:
        """The user removed our app at the provider: alice marks it and publishes the event."""
        connection = self.connections.get((str(user_id), provider))
        if connection is not None:
            connection["status"] = "revoked"
        return self.publish(
            "connection.revoked", user_id, provider, event_id=event_id, reason="provider_revoked"
        )


def _error(status: int, code: str, message: str) -> Response:
    return Response(
        json.dumps({"error": code, "message": message}),
        status=status,
        content_type="application/json",
    )


def _build_app(alice: FakeAlice) -> Quart:
    app = Quart("fake_alice")

    @app.before_request
    async def _record_and_misbehave() -> Response | None:
        body = await request.get_json(silent=True)
        alice.calls.append(Call(request.method, request.path, dict(request.args), body))
        if alice.delay:
            await asyncio.sleep(alice.delay)
        if alice.fail_with and request.path.startswith("/v1/"):
            return _error(alice.fail_with, "failure", "told to fail")
        return None

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/authorizations")
    async def start() -> Response | tuple[dict[str, Any], int]:
        body = await request.get_json(silent=True) or {}
        if not all(isinstance(body.get(k), str) and body[k] for k in _START_FIELDS):
            return _error(400, "invalid_request", f"required: {', '.join(_START_FIELDS)}")
        provider = body["provider"]
        if alice.supported is not None and provider not in alice.supported:
            return _error(400, "unsupported_provider", f"alice cannot connect {provider}")
        authorization_id = uuid.uuid4().hex
        alice.authorizations[authorization_id] = Authorization(
            body["user_id"], provider, body["state"], body["redirect_uri"]
        )
        authorize_url = f"{alice.url}/oauth/{provider}/authorize?" + urlencode(
            {"client_id": "imperfect", "state": body["state"], "code_challenge": "x" * 43}
        )
        expires_at = datetime.now(UTC) + timedelta(minutes=10)
        return {
            "authorization_id": authorization_id,
            "authorize_url": authorize_url,
            "expires_at": expires_at.isoformat(),
        }, 201

    @app.get("/oauth/<provider>/authorize")
    async def consent_page(provider: str) -> Response:
        """The provider's consent page: the user approves (or denies, with ``?deny=1``)."""
        state = request.args.get("state", "")
        found = _by_state(alice, state)
        if found is None or found.provider != provider:
            return Response("unknown authorization", status=400)
        if request.args.get("deny"):
            params = {"error": "access_denied", "state": state}
        else:
            found.code = secrets.token_urlsafe(16)
            params = {"code": found.code, "state": state}
        return redirect(f"{found.redirect_uri}?{urlencode(params)}", 302)

    @app.post("/v1/authorizations/complete")
    async def complete() -> Response | dict[str, Any]:
        body = await request.get_json(silent=True) or {}
        found = _by_state(alice, body.get("state", ""))
        if (
            found is None
            or found.user_id != body.get("user_id")
            or found.provider != body.get("provider")
        ):
            return _error(404, "unknown_authorization", "no such authorization")
        if found.completed:
            return _error(409, "already_completed", "this authorization is already complete")
        if found.code is None or body.get("code") != found.code:
            return _error(400, "invalid_grant", "the provider refused the code")
        if body.get("redirect_uri") != found.redirect_uri:
            return _error(400, "invalid_grant", "redirect_uri differs from the authorization's")
        found.completed = True
        connection = {
            "user_id": found.user_id,
            "provider": found.provider,
            "status": "connected",
            "connected_at": datetime.now(UTC).isoformat(),
            "last_sync_at": None,
        }
        alice.connections[(found.user_id, found.provider)] = connection
        return connection

    @app.route("/v1/users/<user_id>/connections/<provider>", methods=["GET", "DELETE"])
    async def connection(user_id: str, provider: str) -> Response | dict[str, Any]:
        key = (user_id, provider)
        if alice.supported is not None and provider not in alice.supported:
            return _error(400, "unsupported_provider", f"alice does not know {provider}")
        if key not in alice.connections:
            return _error(404, "not_connected", f"user {user_id} has no {provider} connection")
        if request.method == "DELETE":
            del alice.connections[key]
            return Response(b"", status=204)
        return alice.connections[key]

    @app.route("/v1/terra/references/<reference_id>", methods=["PUT", "DELETE"])
    async def terra_reference(reference_id: str) -> Response | dict[str, Any]:
        """Which of our users a Terra ``reference_id`` stands for; idempotent."""
        if request.method == "DELETE":
            if alice.terra_references.pop(reference_id, None) is None:
                return _error(404, "unknown_reference", "no such reference")
            return Response(b"", status=204)
        body = await request.get_json(silent=True) or {}
        user_id = body.get("user_id")
        if not isinstance(user_id, str) or not user_id.isdigit():
            return _error(400, "invalid_request", "user_id: a decimal string is required")
        known = alice.terra_references.setdefault(reference_id, user_id)
        if known != user_id:
            return _error(409, "reference_conflict", "this reference belongs to another user")
        return {"reference_id": reference_id, "user_id": user_id}

    @app.get("/v1/connections/changes")
    async def changes() -> Response | dict[str, Any]:
        """The change feed: the events published, in order, from ``cursor`` or ``since``."""
        args = request.args
        try:
            limit = int(args.get("limit", 100))
            if not 1 <= limit <= 1000:
                raise ValueError("limit")
            since = datetime.fromisoformat(args["since"]) if "since" in args else None
        except ValueError:
            return _error(400, "invalid_request", "limit is 1 to 1000, since a time")
        if since is not None and since.tzinfo is None:
            return _error(400, "invalid_request", "since needs an offset")
        limit = min(limit, alice.page_size)
        if "cursor" in args:
            cursor = args["cursor"]
            if not cursor.startswith("c") or not cursor[1:].isdigit():
                return _error(400, "invalid_cursor", "not a cursor of this feed")
            start = int(cursor[1:])
            if start > len(alice.published):
                return _error(400, "invalid_cursor", "not a cursor of this feed")
            if start < alice.discarded:
                return _error(410, "cursor_expired", "the events after this cursor are gone")
        else:
            start = next(
                (
                    index
                    for index, entry in enumerate(alice.published)
                    if index >= alice.discarded
                    and (since is None or entry["published_at"] >= since)
                ),
                len(alice.published),
            )
        page = [entry["event"] for entry in alice.published[start : start + limit]]
        end = start + len(page)
        return {"items": page, "next_cursor": f"c{end}", "has_more": end < len(alice.published)}

    @app.get("/v1/users/<user_id>/activities/<activity_id>")
    async def read_activity(user_id: str, activity_id: str) -> Response | dict[str, Any]:
        for (owner, _, resource), items in alice.data.items():
            if owner == user_id and resource == "activities":
                for item in items:
                    if item.get("id") == activity_id:
                        return item
        return _error(404, "not_found", "no such activity")

    @app.get("/v1/users/<user_id>/<resource>")
    async def read_data(user_id: str, resource: str) -> Response | dict[str, Any]:
        if resource not in RESOURCES:
            return _error(404, "not_found", "no such resource")
        args = request.args
        try:
            start, end = date.fromisoformat(args["start"]), date.fromisoformat(args["end"])
            limit = min(int(args.get("limit", 100)), alice.page_size)
            offset = int(args.get("cursor", 0))
        except (KeyError, ValueError):
            return _error(400, "invalid_request", "start and end are required dates")
        items = [
            item
            for item in alice.data.get((user_id, args.get("provider", ""), resource), [])
            if start <= _item_date(item) <= end
        ]
        page = items[offset : offset + limit]
        more = offset + limit < len(items)
        return {"items": page, "next_cursor": str(offset + limit) if more else None}

    return app


_START_FIELDS = ("user_id", "provider", "state", "redirect_uri")


def _by_state(alice: FakeAlice, state: str) -> Authorization | None:
    return next((a for a in alice.authorizations.values() if a.state == state), None)


def _item_date(item: dict[str, Any]) -> date:
    if "start_time" in item:
        return datetime.fromisoformat(item["start_time"]).astimezone(UTC).date()
    return date.fromisoformat(item["date"])
