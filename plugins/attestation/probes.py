"""Authenticated synthetic health probes.

A probe (a synthetic monitor) holds a key pair whose public half is in the settings. It
signs ``imperfect-health-probe-v1\\n{probe_id}\\n{timestamp}\\n{nonce}`` and trades that,
once, for a short-lived *probe identity*: a JWS (HS256, this family's ``probe_token_key``)
that only the probe routes accept. It is not a Firebase ID token, so core refuses it on
every signed-in route.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from quart import g
from tortoise.exceptions import IntegrityError

from core import ApiError, RequirementContext, utcnow
from plugins.attestation.models import ProbeNonce
from plugins.attestation.schemas import FAMILY, AttestationSettings, ProbeTokenIn, ProbeTokenOut

SIGNED_PREFIX = "imperfect-health-probe-v1"
ISSUER = AUDIENCE = "imperfect-health-probe"
HEADER = {"alg": "HS256", "typ": "JWT", "kid": "health-probe"}


def signed_text(probe_id: str, timestamp: int, nonce: str) -> bytes:
    return f"{SIGNED_PREFIX}\n{probe_id}\n{timestamp}\n{nonce}".encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _not_configured() -> ApiError:
    return ApiError(
        503,
        "probes_not_configured",
        "Health probes are not configured on this deployment (probe_token_key, probe_keys).",
    )


def _token_key(settings: AttestationSettings) -> bytes:
    key = settings.probe_token_key.get_secret_value()
    if not key or not settings.probe_public_keys:
        raise _not_configured()
    return key.encode()


def _verify_signature(pem: str, signature: bytes, message: bytes) -> bool:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        return False  # a bad PEM in the settings accepts nothing
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _refused(code: str, detail: str) -> ApiError:
    return ApiError(401, code, detail)


async def issue_token(body: ProbeTokenIn) -> ProbeTokenOut:
    """Check the signed request (known probe, fresh timestamp, signature, unused nonce),
    record its nonce, and return a probe identity."""
    settings: AttestationSettings = FAMILY.settings
    key = _token_key(settings)
    pem = settings.probe_public_keys.get(body.probe_id)
    if pem is None:
        raise _refused("probe_unknown", "No probe is registered under this id.")
    now = utcnow()
    window = settings.probe_window_seconds
    if abs(now.timestamp() - body.timestamp) > window:
        raise _refused(
            "probe_request_stale", f"The request's timestamp is more than {window}s from now."
        )
    try:
        signature = _unb64(body.signature)
    except (binascii.Error, ValueError) as error:
        raise _refused("probe_signature_invalid", "The signature is not base64url.") from error
    if not _verify_signature(
        pem, signature, signed_text(body.probe_id, body.timestamp, body.nonce)
    ):
        raise _refused(
            "probe_signature_invalid",
            "The signature does not verify with the probe's registered key.",
        )
    ttl = settings.probe_token_ttl_seconds
    expires_at = now + timedelta(seconds=ttl)
    # keep the nonce while its timestamp is acceptable, and while the token lives
    keep_until = max(datetime.fromtimestamp(body.timestamp + window, UTC), expires_at) + timedelta(
        seconds=1
    )
    await ProbeNonce.filter(expires_at__lt=now).delete()
    try:
        await ProbeNonce.create(probe_id=body.probe_id, nonce=body.nonce, expires_at=keep_until)
    except IntegrityError as error:
        raise _refused("probe_request_replayed", "This probe request was used already.") from error
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": body.probe_id,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": body.nonce,
    }
    return ProbeTokenOut(token=_sign(claims, key), expires_in=ttl, expires_at=expires_at)


def _sign(claims: dict[str, Any], key: bytes) -> str:
    head = _b64(json.dumps(HEADER, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


@dataclass(frozen=True)
class ProbeIdentity:
    probe_id: str
    nonce: str
    expires_at: datetime


def verify_token(authorization: str | None, settings: AttestationSettings) -> ProbeIdentity:
    """A probe identity from ``Authorization: Bearer``; 401 for anything else."""
    key = _token_key(settings)
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _refused("probe_token_missing", "Send the probe identity as Authorization: Bearer.")
    parts = token.split(".")
    bad = _refused("probe_token_invalid", "The probe identity is not valid.")
    if len(parts) != 3:
        raise bad
    head, body, mac = parts
    expected = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), expected):
            raise bad
        header, claims = json.loads(_unb64(head)), json.loads(_unb64(body))
    except (binascii.Error, ValueError) as error:
        raise bad from error
    if header != HEADER or not isinstance(claims, dict):
        raise bad
    if claims.get("iss") != ISSUER or claims.get("aud") != AUDIENCE:
        raise bad
    expires = claims.get("exp")
    if not isinstance(expires, int) or expires <= utcnow().timestamp():
        raise _refused("probe_token_expired", "The probe identity expired; ask for a new one.")
    probe_id, nonce = claims.get("sub"), claims.get("jti")
    if not isinstance(probe_id, str) or probe_id not in settings.probe_public_keys:
        raise bad  # the probe was unregistered since
    if not isinstance(nonce, str):
        raise bad
    return ProbeIdentity(probe_id, nonce, datetime.fromtimestamp(expires, UTC))


async def check_probe(context: RequirementContext) -> None:
    """The ``health_probe`` requirement: a valid probe identity (kept for the handler)."""
    g.probe_identity = verify_token(context.request.headers.get("Authorization"), FAMILY.settings)


def current_probe() -> ProbeIdentity:
    identity: ProbeIdentity = g.probe_identity
    return identity


async def database_round_trip(identity: ProbeIdentity) -> str:
    """Read back the nonce recorded when the identity was issued (a write, then a read,
    possibly on another instance)."""
    found = await ProbeNonce.filter(probe_id=identity.probe_id, nonce=identity.nonce).exists()
    if not found:
        raise RuntimeError("the nonce recorded at issuance is not in the database")
    return "the nonce written at issuance was read back"
