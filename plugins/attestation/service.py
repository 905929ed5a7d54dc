"""Challenges, device verification (App Attest, Play Integrity), the ``attested`` guard,
erasure and export. No HTTP here beyond the request a guard check reads."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from quart import Request
from tortoise.exceptions import IntegrityError

from core import ApiError, RequirementContext, User, current_runtime, utcnow
from plugins.attestation import appattest
from plugins.attestation.clients import PlayIntegrityClient, TokenPayload
from plugins.attestation.models import Challenge, Device
from plugins.attestation.schemas import (
    FAMILY,
    PLAY_INTEGRITY,
    AndroidVerifyIn,
    AttestationSettings,
    AttestedDeviceOut,
    ChallengeOut,
    IosVerifyIn,
    Purpose,
)

log = logging.getLogger(__name__)

DEVICE_HEADER = "X-Attest-Device"
CHALLENGE_HEADER = "X-Attest-Challenge"
ASSERTION_HEADER = "X-Attest-Assertion"
CLIENT_DATA_PREFIX = "imperfect-attest-v1"
PRUNE_AFTER = timedelta(hours=1)  # expired challenges are kept this long, then deleted


def refuse(code: str, detail: str) -> ApiError:
    """A refused proof, unreadable ones (``*_malformed``) included: 403 with its reason.

    Request bodies are held to their schema (422) before this family sees them; what a
    schema cannot say (Apple's CBOR inside the base64, a Play token's verdicts, the
    guard's headers) is the proof's to fail."""
    return ApiError(403, code, detail)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(value: str, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not."""
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise refuse(f"{what}_malformed", f"The {what.replace('_', ' ')} is not base64.") from error


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- challenges -----------------------------------------------------------------------


async def issue_challenge(user: User, purpose: Purpose, ttl: int) -> ChallengeOut:
    """32 random bytes, bound to the caller and ``purpose``, usable once before ``ttl``."""
    now = utcnow()
    await Challenge.filter(expires_at__lt=now - PRUNE_AFTER).delete()
    value = b64url(secrets.token_bytes(32))
    expires_at = now + timedelta(seconds=ttl)
    await Challenge.create(challenge=value, user_id=user.id, purpose=purpose, expires_at=expires_at)
    return ChallengeOut(challenge=value, purpose=purpose, expires_in=ttl, expires_at=expires_at)


async def consume_challenge(user: User, value: str, purpose: Purpose) -> bytes:
    """Use the caller's challenge ``value`` of ``purpose`` once; returns its 32 bytes.

    The use is one conditional UPDATE (``used_at IS NULL AND expires_at > now``), so of
    two requests racing with one challenge, on any number of instances, one wins."""
    now = utcnow()
    row = await Challenge.get_or_none(challenge=value)
    if row is None or row.user_id != user.id:  # someone else's looks like none at all
        raise refuse("challenge_unknown", "This challenge was not issued to you.")
    if row.purpose != purpose:
        raise refuse("challenge_wrong_purpose", f"This challenge is not for {purpose}.")
    if row.used_at is not None:
        raise refuse("challenge_used", "This challenge was used already; ask for a new one.")
    if _aware(row.expires_at) <= now:
        raise refuse("challenge_expired", "This challenge expired; ask for a new one.")
    won = await Challenge.filter(id=row.id, used_at__isnull=True, expires_at__gt=now).update(
        used_at=now
    )
    if won != 1:
        raise refuse("challenge_used", "This challenge was used already; ask for a new one.")
    return b64decode(value, "challenge")


# --- verification -----------------------------------------------------------------------


def _root(settings: AttestationSettings) -> Any:
    return appattest.load_root(settings.apple_root_ca or appattest.apple_root_pem())


async def verify_device(user: User, body: IosVerifyIn | AndroidVerifyIn) -> Device:
    """Verify an attestation made for the caller's challenge and store the device."""
    settings: AttestationSettings = FAMILY.settings
    if isinstance(body, IosVerifyIn):
        return await _verify_ios(user, body, settings)
    return await _verify_android(user, body, settings)


async def _verify_ios(user: User, body: IosVerifyIn, settings: AttestationSettings) -> Device:
    if not settings.apple_team_id or not settings.apple_bundle_ids:
        raise ApiError(
            503, "app_attest_not_configured", "App Attest is not configured on this deployment."
        )
    key_id = b64decode(body.key_id, "key_id")  # 32 bytes: the schema's pattern says so
    raw = b64decode(body.attestation, "attestation")
    challenge = await consume_challenge(user, body.challenge, "attestation")
    try:
        verified = appattest.verify_attestation(
            raw,
            challenge=challenge,
            key_id=key_id,
            app_ids=settings.app_ids,
            environment=settings.apple_environment,
            root=_root(settings),
            now=utcnow(),
        )
    except appattest.Refused as refused:
        raise refuse(refused.code, refused.detail) from refused
    try:
        return await Device.create(
            user_id=user.id,
            platform="ios",
            key_id=base64.b64encode(key_id).decode(),
            public_key=verified.public_key_der,
            receipt=verified.receipt,
            app_id=verified.app_id,
            environment=verified.environment,
            counter=0,
        )
    except IntegrityError as error:
        raise ApiError(
            409, "device_already_attested", "This App Attest key is attested already."
        ) from error


def _play(settings: AttestationSettings) -> PlayIntegrityClient:
    client = FAMILY.stash.get(PLAY_INTEGRITY)
    if client is None or not settings.play_package_name:
        raise ApiError(
            503,
            "play_integrity_not_configured",
            "Play Integrity is not configured on this deployment.",
        )
    return client


def check_integrity(
    payload: TokenPayload, expected: str, settings: AttestationSettings, now: datetime
) -> None:
    """Package, nonce or request hash, freshness, then the verdicts the settings require."""
    details = payload.request_details
    package = settings.play_package_name
    app_package = payload.app_integrity.package_name
    if details.request_package_name != package or app_package not in (None, package):
        raise refuse("integrity_package_mismatch", f"The token is not for {package}.")
    if expected not in (details.nonce, details.request_hash):
        raise refuse(
            "integrity_nonce_mismatch", "The token's nonce or request hash is not this request's."
        )
    age = now.timestamp() - details.timestamp_millis / 1000
    if not -30 <= age <= settings.play_max_token_age_seconds:
        raise refuse(
            "integrity_token_stale",
            f"The token is not fresh (within {settings.play_max_token_age_seconds}s).",
        )
    verdict = payload.app_integrity.app_recognition_verdict
    if verdict not in settings.play_app_verdicts:
        raise refuse(
            "integrity_app_unrecognized", f"Google Play does not recognise the app ({verdict})."
        )
    missing = set(settings.play_device_verdicts) - set(
        payload.device_integrity.device_recognition_verdict
    )
    if missing:
        raise refuse(
            "integrity_device_failed",
            f"The device does not meet {', '.join(sorted(missing))}.",
        )
    if (
        settings.play_require_licensed
        and payload.account_details.app_licensing_verdict != "LICENSED"
    ):
        raise refuse("integrity_unlicensed", "The app is not licensed to this account.")


async def _verify_android(
    user: User, body: AndroidVerifyIn, settings: AttestationSettings
) -> Device:
    client = _play(settings)
    await consume_challenge(user, body.challenge, "attestation")
    payload = await client.decode(body.integrity_token)
    check_integrity(payload, body.challenge, settings, utcnow())
    return await Device.create(
        user_id=user.id,
        platform="android",
        app_id=settings.play_package_name,
        environment="play",
        counter=0,
    )


async def list_devices(user: User) -> list[Device]:
    return await Device.filter(user_id=user.id).order_by("id")


async def forget_device(user: User, device_id: int) -> None:
    if not await Device.filter(id=device_id, user_id=user.id).delete():
        raise ApiError(404, "device_not_found", f"You have no attested device {device_id}.")


# --- the guard ----------------------------------------------------------------------------


def client_data(method: str, target: str, challenge: str, body: bytes) -> bytes:
    """What an assertion or a guarded integrity token signs for one request::

    imperfect-attest-v1\\n{METHOD}\\n{path[?query]}\\n{challenge}\\n{hex SHA256(body)}
    """
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join([CLIENT_DATA_PREFIX, method.upper(), target, challenge, digest]).encode()


def request_target(request: Request) -> str:
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


async def check_attested(context: RequirementContext) -> None:
    """The ``attested`` requirement: a device verified for the caller, and a fresh
    assertion (App Attest) or integrity token (Play Integrity) for this very request."""
    if context.identity is None:
        raise ApiError(401, "missing_token", "An attested route needs a signed-in caller.")
    user = context.user
    if not isinstance(user, User):
        user = await current_runtime().resolve_user(context.identity)
        if not isinstance(user, User):
            raise refuse("device_not_attested", "Attested routes need a registered user.")
    headers = context.request.headers
    device_header = headers.get(DEVICE_HEADER, "")
    challenge = headers.get(CHALLENGE_HEADER, "")
    assertion = headers.get(ASSERTION_HEADER, "")
    if not (device_header and challenge and assertion):
        raise refuse(
            "attestation_required",
            f"This route needs {DEVICE_HEADER}, {CHALLENGE_HEADER} and {ASSERTION_HEADER}.",
        )
    if not device_header.isascii() or not device_header.isdigit() or len(device_header) > 10:
        raise refuse("device_not_attested", "You have no such attested device.")
    device = await Device.get_or_none(id=int(device_header), user_id=user.id)
    if device is None:
        raise refuse("device_not_attested", "You have no such attested device.")
    body = await context.request.get_data(cache=True)
    assert isinstance(body, bytes)
    digest = hashlib.sha256(
        client_data(context.request.method, request_target(context.request), challenge, body)
    ).digest()
    settings: AttestationSettings = FAMILY.settings
    if device.platform == "ios":
        await _check_assertion(user, device, challenge, assertion, digest)
    else:
        client = _play(settings)
        await consume_challenge(user, challenge, "assertion")
        payload = await client.decode(assertion)
        check_integrity(payload, b64url(digest), settings, utcnow())
        await Device.filter(id=device.id).update(last_used_at=utcnow())


async def _check_assertion(
    user: User, device: Device, challenge: str, assertion: str, client_data_hash: bytes
) -> None:
    raw = b64decode(assertion, "assertion")
    await consume_challenge(user, challenge, "assertion")
    assert device.public_key is not None
    try:
        verified = appattest.verify_assertion(
            raw,
            client_data_hash=client_data_hash,
            public_key_der=bytes(device.public_key),
            app_id=device.app_id,
        )
    except appattest.Refused as refused:
        raise refuse(refused.code, refused.detail) from refused
    # strictly increasing, and stored in the same statement: a replay loses the race
    moved = await Device.filter(id=device.id, counter__lt=verified.counter).update(
        counter=verified.counter, last_used_at=utcnow()
    )
    if moved != 1:
        raise refuse(
            "assertion_counter_not_increasing",
            "The assertion's counter is not above the last one seen: a replayed assertion.",
        )


# --- the account ----------------------------------------------------------------------


async def erase(user: User) -> None:
    await Challenge.filter(user_id=user.id).delete()
    await Device.filter(user_id=user.id).delete()


async def export(user: User) -> dict[str, Any]:
    devices = await list_devices(user)
    challenges = await Challenge.filter(user_id=user.id).order_by("id")
    return {
        "devices": [
            {
                **AttestedDeviceOut.model_validate(device, from_attributes=True).model_dump(
                    mode="json"
                ),
                "key_id": device.key_id,
            }
            for device in devices
        ],
        "challenges": [
            {
                "purpose": row.purpose,
                "created_at": _aware(row.created_at).isoformat(),
                "expires_at": _aware(row.expires_at).isoformat(),
                "used_at": _aware(row.used_at).isoformat() if row.used_at else None,
            }
            for row in challenges
        ],
    }
