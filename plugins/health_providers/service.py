"""Health-provider connections: the registry, connect/callback/disconnect, insights, events.

alice does the OAuth work and keeps the tokens and the data; this module decides
who may do what, keeps each user's connection state, and turns alice's data into
what onboarding shows. Nothing here knows about HTTP requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core import (
    ApiError,
    Platform,
    PushMessage,
    Registry,
    Subscription,
    User,
    handled_once,
    prune_handled,
    utcnow,
)
from plugins.health_providers.clients import (
    AliceActivity,
    AliceClient,
    AliceConnection,
    AliceDaily,
    AliceEvent,
    AliceSleep,
    EventType,
    UnsignedEvent,
    event_channels,
    parse_event,
    verify_event,
)
from plugins.health_providers.hookspecs import ProviderSpec
from plugins.health_providers.models import CONNECTED, REVOKED, Connection, OAuthState
from plugins.health_providers.schemas import (
    CallbackQuery,
    CatalogueEntry,
    ConnectionOut,
    ConnectOut,
    EventCounters,
    HealthProvidersSettings,
    Insights,
    LongestSession,
    RestingHeartRate,
    SleepSummary,
    SportVolume,
    TrainingVolume,
    TypicalWeek,
)

log = logging.getLogger("imperfect.health_providers")

EVENT_CONSUMER = "health_providers.alice_events"  # its ids in core_handled_message
STALE_STATES = timedelta(days=1)
COMPLETION_TTL = timedelta(minutes=5)  # from the callback to the app's redeem
SEAL_CONTEXT = b"imperfect.health_providers.completion-seal\0"
HANDLED_EVENT_RETENTION = timedelta(days=7)
PRUNE_EVERY = timedelta(hours=1)
MAX_EVENT_AGE = HANDLED_EVENT_RETENTION - timedelta(days=1)  # older ones may be replays
REFUSAL_LOG_EVERY = 60.0  # seconds between log lines about refused events
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# --- the registry ------------------------------------------------------------------------

BUILT_IN: tuple[ProviderSpec, ...] = (
    ProviderSpec(name="garmin", display_name="Garmin", kind="device"),
    ProviderSpec(name="oura", display_name="Oura", kind="device"),
    ProviderSpec(name="whoop", display_name="WHOOP", kind="device"),
    ProviderSpec(name="strava", display_name="Strava", kind="app"),
    ProviderSpec(name="polar", display_name="Polar", kind="device"),
    ProviderSpec(name="fitbit", display_name="Fitbit", kind="device"),
    ProviderSpec(name="withings", display_name="Withings", kind="device"),
)


def build_registry(platform: Platform) -> Registry[ProviderSpec]:
    """Every contributed provider by name, in the order families contributed them.

    Core validates each contribution as a :class:`ProviderSpec` and blames an invalid one
    on the family that made it; a name two families contribute stops start-up.
    """
    return platform.collect("health_providers", ProviderSpec, key=lambda spec: spec.name)


def connect_path(provider: ProviderSpec) -> str:
    return provider.connect_path or f"/health-providers/{provider.name}/connect"


# --- connect and callback ----------------------------------------------------------------


def _now() -> datetime:
    return utcnow()


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def callback_url(settings: HealthProvidersSettings, provider: ProviderSpec) -> str:
    """Where the provider sends the browser back: this API's public callback route."""
    return f"{str(settings.public_url).rstrip('/')}/health-providers/{provider.name}/callback"


async def start_authorization(
    alice: AliceClient, settings: HealthProvidersSettings, user: User, provider: ProviderSpec
) -> ConnectOut:
    """Ask alice for an authorize URL under a fresh one-time state, then remember the state.

    The state is stored only after alice answered, so a failing alice leaves nothing
    behind. Only its hash is stored: a leaked table cannot finish anyone's flow.
    """
    if provider.connect != "oauth":
        raise ApiError(
            409,
            "connect_elsewhere",
            f"{provider.display_name} is connected through POST {provider.connect_path}.",
        )
    state = secrets.token_urlsafe(32)
    started = await alice.start_authorization(
        user.id, provider.name, state, callback_url(settings, provider)
    )
    now = _now()
    expires_at = now + timedelta(seconds=settings.state_ttl_seconds)
    await OAuthState.create(
        state_hash=_hash(state), user_id=user.id, provider=provider.name, expires_at=expires_at
    )
    await OAuthState.filter(expires_at__lt=now - STALE_STATES).delete()
    return ConnectOut(
        provider=provider.name,
        authorize_url=str(started.authorize_url),
        state=state,
        expires_at=expires_at,
    )


@dataclass(frozen=True)
class CallbackOutcome:
    """How a callback ended: a ``completion`` for the app, or the ``reason`` it failed."""

    provider: str
    reason: str | None = None
    completion: str | None = None


async def _claim_state(state: str, provider: ProviderSpec) -> OAuthState | str:
    """Spend the one-time state: its row, or why it cannot be used.

    One conditional UPDATE decides, so of two callbacks racing with the same state
    exactly one wins, on any instance.
    """
    now = _now()
    row = await OAuthState.get_or_none(state_hash=_hash(state), provider=provider.name)
    if row is None:
        return "unknown_state"
    claimed = await OAuthState.filter(id=row.id, consumed_at=None, expires_at__gt=now).update(
        consumed_at=now
    )
    if claimed == 1:
        return row
    if row.consumed_at is None and row.expires_at <= now:
        return "state_expired"
    return "state_used"


def _keystream(completion: str, length: int) -> bytes:
    return hashlib.shake_256(SEAL_CONTEXT + completion.encode()).digest(length)


def seal(completion: str, state: str, code: str) -> str:
    """``state`` and ``code``, readable only with ``completion`` (which is never stored).

    The completion is 256 fresh random bits used for one seal only, so XOR with a
    SHAKE-256 keystream derived from it is a one-time pad; looking the row up by the
    completion's hash is what authenticates the holder.
    """
    plain = json.dumps({"state": state, "code": code}).encode()
    box = bytes(a ^ b for a, b in zip(plain, _keystream(completion, len(plain)), strict=True))
    return base64.urlsafe_b64encode(box).decode()


def unseal(completion: str, sealed: str) -> tuple[str, str]:
    box = base64.urlsafe_b64decode(sealed)
    plain = bytes(a ^ b for a, b in zip(box, _keystream(completion, len(box)), strict=True))
    values = json.loads(plain)
    return values["state"], values["code"]


async def finish_callback(provider: ProviderSpec, query: CallbackQuery) -> CallbackOutcome:
    """The provider sent the browser back: spend the state, keep the result for the app.

    The browser carries no token, so nothing is linked here (RFC 9700 §4.7): whoever
    opened the authorize URL may not be who started the flow. A malformed callback (no
    state, or neither code nor error) is refused before anything else. Then the state is
    checked and spent (even when the provider reports an error), as OAuth asks. With a
    code, the callback leaves a one-time completion (valid :data:`COMPLETION_TTL`) that
    only the user who started the flow can redeem (:func:`redeem_completion`).
    """
    if not query.state or not (query.code or query.error):
        return CallbackOutcome(provider.name, "invalid_request")
    claimed = await _claim_state(query.state, provider)
    if isinstance(claimed, str):
        return CallbackOutcome(provider.name, claimed)
    if query.error or not query.code:
        reason = "access_denied" if query.error == "access_denied" else "provider_error"
        return CallbackOutcome(provider.name, reason)
    completion = secrets.token_urlsafe(32)
    await OAuthState.filter(id=claimed.id).update(
        completion_hash=_hash(completion),
        completion_expires_at=_now() + COMPLETION_TTL,
        sealed=seal(completion, query.state, query.code),
    )
    return CallbackOutcome(provider.name, completion=completion)


def _no_completion(provider: ProviderSpec) -> ApiError:
    return ApiError(
        404,
        "unknown_completion",
        f"You have no pending {provider.display_name} connection with this completion.",
    )


async def redeem_completion(
    alice: AliceClient,
    settings: HealthProvidersSettings,
    user: User,
    provider: ProviderSpec,
    completion: str,
) -> ConnectionOut:
    """The app redeems the callback's completion with the token of its user.

    It succeeds once, within :data:`COMPLETION_TTL`, and only for the user who started the
    flow; only then does alice exchange the code and the connection get written. Another
    user's completion is spent and answered exactly like an unknown one (404
    ``unknown_completion``), so a flow started by one user and consented to in another's
    browser connects no one. Any outcome spends the completion.
    """
    now = _now()
    row = await OAuthState.get_or_none(completion_hash=_hash(completion), provider=provider.name)
    if row is None:
        raise _no_completion(provider)
    spend = OAuthState.filter(id=row.id, completed_at=None)
    if row.user_id != user.id:
        await spend.update(completed_at=now, sealed=None)
        log.warning(
            "refused a %s completion redeemed by user %s for another user's authorization",
            provider.name,
            user.id,
        )
        raise _no_completion(provider)
    claimed = await spend.filter(completion_expires_at__gt=now).update(
        completed_at=now, sealed=None
    )
    if claimed != 1:  # spent already (perhaps a moment ago, by a racing redeem) or expired
        if await spend.update(completed_at=now, sealed=None) == 1:
            raise ApiError(410, "completion_expired", "This completion has expired: connect again.")
        raise ApiError(409, "completion_used", "This completion was already redeemed.")
    assert row.sealed is not None
    state, code = unseal(completion, row.sealed)
    try:
        connection = await alice.complete_authorization(
            user.id, provider.name, state, code, callback_url(settings, provider)
        )
    except ApiError as error:
        if error.code == "upstream_rejected":
            raise ApiError(
                502,
                "authorization_failed",
                f"alice could not complete the {provider.display_name} authorization: "
                "connect again.",
            ) from error
        if error.status == 504:
            raise ApiError(504, "alice_timeout", "alice did not answer in time.") from error
        raise ApiError(502, "alice_unavailable", "alice failed to answer.") from error
    mirrored = await _mirror(user.id, provider.name, connection, new=True)
    return _connection_out(provider.name, mirrored)


def app_redirect(settings: HealthProvidersSettings, outcome: CallbackOutcome) -> str:
    """The app URL with ``status`` (``pending`` or ``error``), ``provider`` and either the
    ``completion`` to redeem or the failure's ``reason``."""
    parts = urlsplit(settings.app_redirect_url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    params += [("status", "error" if outcome.reason else "pending")]
    params += [("provider", outcome.provider)]
    if outcome.reason:
        params += [("reason", outcome.reason)]
    if outcome.completion:
        params += [("completion", outcome.completion)]
    return urlunsplit(parts._replace(query=urlencode(params)))


# --- connection state --------------------------------------------------------------------


async def _mirror(
    user_id: int, provider: str, remote: AliceConnection | None, *, new: bool = False
) -> Connection | None:
    """Make the local row say what alice says (alice is the source of truth).

    ``new``: alice just completed an authorization, so a backfill starts over.
    """
    if remote is None:
        await Connection.filter(user_id=user_id, provider=provider).delete()
        return None
    values: dict[str, Any] = {
        "status": remote.status,
        "connected_at": remote.connected_at,
        "revoked_at": _now() if remote.status == REVOKED else None,
    }
    if new:
        values["backfill_completed_at"] = None
    if remote.last_sync_at is not None:
        values["last_sync_at"] = remote.last_sync_at
    mine = Connection.filter(user_id=user_id, provider=provider)
    try:
        async with in_transaction():
            row = await mine.select_for_update().first()
            if row is None:
                return await Connection.create(user_id=user_id, provider=provider, **values)
            if row.status == REVOKED and remote.status == REVOKED:
                values["revoked_at"] = row.revoked_at
            await row.update_from_dict(values).save()
            return row
    except IntegrityError:  # a concurrent request created the row first: update it
        row = await mine.get()
        await row.update_from_dict(values).save()
        return row


def _connection_out(provider: str, row: Connection | None) -> ConnectionOut:
    if row is None:
        return ConnectionOut(provider=provider, status="not_connected")
    return ConnectionOut.model_validate(row, from_attributes=True)


async def catalogue(providers: Mapping[str, ProviderSpec], user: User) -> list[CatalogueEntry]:
    """Every provider with the caller's connection state as last known here."""
    rows = {row.provider: row for row in await Connection.filter(user_id=user.id)}
    return [
        CatalogueEntry(
            name=spec.name,
            display_name=spec.display_name,
            kind=spec.kind,
            connect=spec.connect,
            connect_path=connect_path(spec),
            connection=_connection_out(spec.name, rows.get(spec.name)),
        )
        for spec in providers.values()
    ]


async def read_connection(alice: AliceClient, user: User, provider: ProviderSpec) -> ConnectionOut:
    """The connection as alice reports it now, recorded here for the catalogue."""
    remote = await alice.connection(user.id, provider.name)
    return _connection_out(provider.name, await _mirror(user.id, provider.name, remote))


async def disconnect(alice: AliceClient, user: User, provider: ProviderSpec) -> None:
    """alice revokes at the provider; then the local row goes. Safe to repeat.

    If alice cannot be reached the row stays: the tokens still exist, so the
    connection is not gone.
    """
    await alice.revoke(user.id, provider.name)
    await Connection.filter(user_id=user.id, provider=provider.name).delete()


# --- onboarding insights -----------------------------------------------------------------


async def insights(
    alice: AliceClient, settings: HealthProvidersSettings, user: User, provider: ProviderSpec
) -> Insights:
    """What onboarding shows from the provider's recent data, read from alice."""
    row = await Connection.get_or_none(user_id=user.id, provider=provider.name, status=CONNECTED)
    if row is None:
        raise ApiError(409, "provider_not_connected", f"Connect {provider.display_name} first.")
    zone = ZoneInfo(user.timezone)
    end = datetime.now(zone).date()
    start = end - timedelta(days=settings.insights_days - 1)
    activities = await alice.activities(user.id, provider.name, start, end)
    dailies = await alice.dailies(user.id, provider.name, start, end)
    nights = await alice.sleep(user.id, provider.name, start, end)
    return summarise(
        provider.name,
        start,
        end,
        zone,
        activities,
        dailies,
        nights,
        backfill_complete=row.backfill_completed_at is not None,
    )


def summarise(
    provider: str,
    start: date,
    end: date,
    zone: ZoneInfo,
    activities: Iterable[AliceActivity],
    dailies: Iterable[AliceDaily],
    nights: Iterable[AliceSleep],
    *,
    backfill_complete: bool,
) -> Insights:
    """Training volume, longest session, typical week, resting heart rate and sleep.

    Activities are placed on the user's local calendar (``zone``); only those, days and
    nights within ``[start, end]`` count.
    """
    days = (end - start).days + 1
    window = activities_between(activities, start, end, zone)
    return Insights(
        provider=provider,
        start=start,
        end=end,
        days=days,
        training_volume=training_volume(window),
        longest_session=longest_session(window),
        typical_week=typical_week(window, zone, weeks=days / 7),
        resting_heart_rate=resting_heart_rate(dailies, start, end),
        sleep=sleep_summary(nights, start, end),
        backfill_complete=backfill_complete,
    )


def _local_date(activity: AliceActivity, zone: ZoneInfo) -> date:
    return activity.start_time.astimezone(zone).date()


def activities_between(
    activities: Iterable[AliceActivity], start: date, end: date, zone: ZoneInfo
) -> list[AliceActivity]:
    """The activities that started on ``[start, end]`` of the user's calendar."""
    return [a for a in activities if start <= _local_date(a, zone) <= end]


def volume_by_sport(window: Sequence[AliceActivity]) -> list[SportVolume]:
    """Sessions, time and distance per sport, the sport trained longest first."""
    by_sport: dict[str, list[AliceActivity]] = defaultdict(list)
    for activity in window:
        by_sport[activity.sport].append(activity)
    return sorted(
        (
            SportVolume(
                sport=sport,
                sessions=len(items),
                duration_s=round(sum(a.duration_s for a in items)),
                distance_m=round(sum(a.distance_m or 0 for a in items)),
            )
            for sport, items in by_sport.items()
        ),
        key=lambda volume: (-volume.duration_s, volume.sport),
    )


def training_volume(window: Sequence[AliceActivity]) -> TrainingVolume:
    """Everything done in the window, in total and by sport."""
    return TrainingVolume(
        sessions=len(window),
        duration_s=round(sum(a.duration_s for a in window)),
        distance_m=round(sum(a.distance_m or 0 for a in window)),
        by_sport=volume_by_sport(window),
    )


def longest_session(window: Sequence[AliceActivity]) -> LongestSession | None:
    """The longest activity (the later one on a tie), or ``None`` without any."""
    longest = max(window, key=lambda a: (a.duration_s, a.start_time), default=None)
    if longest is None:
        return None
    return LongestSession(
        sport=longest.sport,
        start_time=longest.start_time,
        duration_s=round(longest.duration_s),
        distance_m=None if longest.distance_m is None else round(longest.distance_m),
    )


def typical_week(window: Sequence[AliceActivity], zone: ZoneInfo, *, weeks: float) -> TypicalWeek:
    """Averages per week over ``weeks``, and the weekdays trained in at least half of them."""
    active_dates = {_local_date(a, zone) for a in window}
    weeks_per_weekday = Counter(WEEKDAYS[day.weekday()] for day in active_dates)
    return TypicalWeek(
        sessions=round(len(window) / weeks, 1),
        duration_s=round(sum(a.duration_s for a in window) / weeks),
        distance_m=round(sum(a.distance_m or 0 for a in window) / weeks),
        active_days=round(len(active_dates) / weeks, 1),
        usual_training_days=[d for d in WEEKDAYS if weeks_per_weekday[d] >= weeks / 2],
    )


def resting_heart_rate(
    dailies: Iterable[AliceDaily], start: date, end: date
) -> RestingHeartRate | None:
    """Average and latest resting heart rate over the days that report one."""
    rested = sorted(
        (d for d in dailies if d.resting_heart_rate and start <= d.date <= end),
        key=lambda d: d.date,
    )
    if not rested:
        return None
    return RestingHeartRate(
        average_bpm=round(sum(d.resting_heart_rate or 0 for d in rested) / len(rested)),
        latest_bpm=rested[-1].resting_heart_rate or 0,
        latest_date=rested[-1].date,
        days_with_data=len(rested),
    )


def sleep_summary(nights: Iterable[AliceSleep], start: date, end: date) -> SleepSummary | None:
    """Average sleep over the nights with any, or ``None`` without any."""
    slept = [n for n in nights if start <= n.date <= end and n.duration_s > 0]
    if not slept:
        return None
    return SleepSummary(
        average_duration_s=round(sum(n.duration_s for n in slept) / len(slept)),
        nights=len(slept),
    )


# --- alice events ------------------------------------------------------------------------


def event_handler(
    settings: HealthProvidersSettings,
    platform: Platform,
    providers: Mapping[str, ProviderSpec],
    counters: EventCounters | None = None,
) -> EventHandler:
    """What applies alice's events, from her channels and from her change feed alike."""
    channels = event_channels(settings.event_channel_prefix)
    key = settings.event_signing_key.get_secret_value().encode()
    return EventHandler(platform, providers, channels, key, counters or EventCounters())


def event_subscription(
    settings: HealthProvidersSettings,
    platform: Platform,
    providers: Mapping[str, ProviderSpec],
    counters: EventCounters | None = None,
    *,
    handler: EventHandler | None = None,
    on_connect: Callable[[], Awaitable[object]] | None = None,
) -> Subscription:
    """The subscription to alice's three channels, each event going to :class:`EventHandler`.

    ``on_connect`` is awaited each time Redis confirms the channels (the reconciliation
    sweep is woken there, see :mod:`plugins.health_providers.reconcile`).
    """
    handler = handler or event_handler(settings, platform, providers, counters)
    return Subscription(
        "alice", settings.redis_url, handler.channels, handler, on_connect=on_connect
    )


class EventHandler:
    """Applies each alice event exactly once across every instance sharing the database.

    Only signed events are read (``<hex HMAC-SHA256>.<event JSON>``, see
    docs/services/alice.md): anything else is refused, counted in ``counters.refused``
    and logged at most once per :data:`REFUSAL_LOG_EVERY`. Without a key every message is
    refused. An event older than :data:`MAX_EVENT_AGE` is refused as a replay: its id may
    no longer be remembered.

    The event id is recorded as handled (core's ``handled_once``, consumer
    :data:`EVENT_CONSUMER`) in the same transaction as the change it causes and the push
    it queues: one transaction wins, the others see it handled and skip it.
    """

    def __init__(
        self,
        platform: Platform,
        providers: Mapping[str, ProviderSpec],
        channels: Mapping[str, EventType],
        key: bytes,
        counters: EventCounters,
    ) -> None:
        self.platform = platform
        self.providers = providers
        self.channels = dict(channels)
        self.key = key
        self.counters = counters
        self._pruned_at: datetime | None = None
        self._refusals_logged_at: float | None = None
        self._refused_since_log = 0

    async def __call__(self, channel: str, data: bytes) -> bool:
        """One message off a channel: a refused or malformed one is dropped, never fatal."""
        try:
            body = verify_event(self.key, data)
        except UnsignedEvent as error:
            self._refused(channel, str(error))
            return False
        try:
            event = parse_event(self.channels, channel, body)
        except ValueError as error:
            log.warning("dropped a malformed alice event on %s: %s", channel, error)
            return False
        return await self.receive(event)

    async def receive(self, event: AliceEvent) -> bool:
        """A well-formed event, off a channel or out of alice's change feed: the one path.

        ``True`` when this call applied it; ``False`` when it was handled before (here or
        on another instance), is not for us, or is older than :data:`MAX_EVENT_AGE`.
        """
        if event.occurred_at < _now() - MAX_EVENT_AGE:
            log.warning("dropped a stale alice event %s (a replay?)", event.event_id)
            return False
        try:
            return await self.handle(event)
        except Exception as error:
            error.add_note(f"while handling alice event {event.event_id} ({event.type})")
            raise

    def _refused(self, channel: str, why: str) -> None:
        """Count a refused message; log the first, then at most one line a minute."""
        self.counters.refused += 1
        self._refused_since_log += 1
        now = time.monotonic()
        last = self._refusals_logged_at
        if last is not None and now - last < REFUSAL_LOG_EVERY:
            return
        log.warning(
            "refused %d alice event(s) not signed with event_signing_key (last on %s: %s)",
            self._refused_since_log,
            channel,
            why,
        )
        self._refusals_logged_at, self._refused_since_log = now, 0

    async def handle(self, event: AliceEvent) -> bool:
        """Handle one event; ``False`` when it was already handled (or is not for us)."""
        provider = self.providers.get(event.provider)
        if provider is None or not event.user_id.isdigit():
            log.info("ignored alice event %s for %s", event.event_id, event.provider)
            return False
        async with handled_once(EVENT_CONSUMER, event.event_id) as first:
            if first:
                await self._apply(event, int(event.user_id), provider)
        if not first:
            log.info("alice event %s was already handled", event.event_id)
            return False
        await self._prune()
        return True

    async def _apply(self, event: AliceEvent, user_id: int, provider: ProviderSpec) -> None:
        mine = Connection.filter(user_id=user_id, provider=provider.name, status=CONNECTED)
        if event.type == "connection.revoked":
            # A revocation that occurred before this connection was made (found late, in
            # the change feed or republished) ended an earlier connection, not this one.
            mine = mine.filter(connected_at__lte=event.occurred_at)
            row = await mine.select_related("user").first()
            if row is None:
                return
            await mine.update(status=REVOKED, revoked_at=event.occurred_at)
            await self.platform.call_each(
                "send_push",
                user=row.user,
                push=PushMessage(
                    title=f"{provider.display_name} is disconnected",
                    body=(
                        f"{provider.display_name} stopped sharing your data. "
                        "Reconnect it to keep your training up to date."
                    ),
                    category="health_provider_revoked",
                    data={"provider": provider.name},
                ),
            )
            return
        newer = Q(last_sync_at__isnull=True) | Q(last_sync_at__lt=event.occurred_at)
        await mine.filter(newer).update(last_sync_at=event.occurred_at)
        if event.type == "backfill.completed":
            await mine.update(backfill_completed_at=event.occurred_at)

    async def _prune(self) -> None:
        """Forget handled ids once alice can no longer republish them (hourly at most)."""
        now = _now()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        await prune_handled(EVENT_CONSUMER, HANDLED_EVENT_RETENTION)


# --- account deletion and export ---------------------------------------------------------


async def providers_of(user: User) -> list[str]:
    """The providers the user has anything for here: a connection or a pending authorization.

    Only these can have tokens at alice through this API: alice holds a provider's tokens
    only after an authorization this API started.
    """
    connected = {row.provider for row in await Connection.filter(user_id=user.id)}
    pending = {row.provider for row in await OAuthState.filter(user_id=user.id)}
    return sorted(connected | pending)


async def forget_user(alice: AliceClient, user: User) -> None:
    """Revoke at alice what the user connected, then delete the user's rows. Safe to repeat.

    alice's 404 (nothing held) counts as revoked. A refusal or an outage raises before
    anything local is deleted, so the deletion can be retried.
    """
    for name in await providers_of(user):
        await alice.revoke(user.id, name)
    await Connection.filter(user_id=user.id).delete()
    await OAuthState.filter(user_id=user.id).delete()


async def export_user(user: User) -> dict[str, Any]:
    rows = await Connection.filter(user_id=user.id).order_by("provider")
    return {
        "connections": [
            {
                "provider": row.provider,
                "status": row.status,
                "connected_at": row.connected_at.isoformat(),
                "last_sync_at": row.last_sync_at and row.last_sync_at.isoformat(),
                "backfill_completed_at": row.backfill_completed_at
                and row.backfill_completed_at.isoformat(),
                "revoked_at": row.revoked_at and row.revoked_at.isoformat(),
            }
            for row in rows
        ]
    }
