"""``/attest/*`` and ``/auth/health-probe/*``: thin handlers over the service."""

from __future__ import annotations

from quart import Blueprint

from core import User, endpoint, readiness_report, utcnow
from plugins.attestation import probes, service
from plugins.attestation.models import Device
from plugins.attestation.schemas import (
    FAMILY,
    AttestedDeviceOut,
    ChallengeIn,
    ChallengeOut,
    ProbeCheckOut,
    ProbeStep,
    ProbeTokenIn,
    ProbeTokenOut,
    VerifyIn,
)

blueprint = Blueprint("attestation", __name__)


@blueprint.post("/attest/challenge")
@endpoint(
    body=ChallengeIn,
    response=ChallengeOut,
    status=201,
    rate_limits=("30/minute", "300/hour"),
)
async def create_challenge(body: ChallengeIn, user: User) -> ChallengeOut:
    """A one-time challenge for the caller: 32 random bytes, base64url, valid for
    ``challenge_ttl_seconds`` (default 300), usable once and only for its ``purpose``."""
    return await service.issue_challenge(user, body.purpose, FAMILY.settings.challenge_ttl_seconds)


@blueprint.post("/attest/verify")
@endpoint(
    body=VerifyIn,
    response=AttestedDeviceOut,
    status=201,
    errors=(403, 409, 503),
    rate_limits=("10/minute", "100/hour"),
)
async def verify_device(body: VerifyIn, user: User) -> Device:
    """Verify this app instance and store the device.

    iOS: an App Attest attestation object for ``key_id``, made with ``clientDataHash =
    SHA256(challenge bytes)``. Android: a Play Integrity token whose ``nonce`` (classic)
    or ``requestHash`` (standard) is the challenge string. The challenge (purpose
    ``attestation``) is used up first, whatever the outcome. Each refused check (an
    unknown, used or expired challenge; an attestation object that is not Apple's CBOR or
    fails a check; a token Google cannot decode or whose verdicts fall short) is a 403
    with its own ``code``; 409 for a key attested already; 503 when the platform is not
    configured or Google's decode service is unavailable."""
    return await service.verify_device(user, body.root)


@blueprint.get("/attest/devices")
@endpoint(response=list[AttestedDeviceOut])
async def list_devices(user: User) -> list[Device]:
    """The caller's verified devices."""
    return await service.list_devices(user)


@blueprint.delete("/attest/devices/<int:device_id>")
@endpoint(status=204, requires=("attested",), errors=(404,))
async def delete_device(device_id: int, user: User) -> None:
    """Stop trusting one of the caller's devices. Requires a fresh assertion from an
    attested device of the caller (the same one or another), so a stolen ID token alone
    cannot change which devices are trusted."""
    await service.forget_device(user, device_id)


@blueprint.post("/auth/health-probe/token")
@endpoint(
    body=ProbeTokenIn,
    response=ProbeTokenOut,
    status=201,
    auth="public",
    errors=(401, 503),
    rate_limits=("30/minute", "600/hour"),
    rate_limit_by="ip",
)
async def create_probe_token(body: ProbeTokenIn) -> ProbeTokenOut:
    """A short-lived probe identity for a registered synthetic monitor, for a request it
    signed. A stale timestamp (outside ``probe_window_seconds``), a reused nonce, an
    unknown probe or a bad signature is a 401 with its own ``code``."""
    return await probes.issue_token(body)


@blueprint.get("/auth/health-probe/check")
@endpoint(
    response=ProbeCheckOut,
    responses={503: ProbeCheckOut},
    auth="public",
    requires=("health_probe",),
)
async def probe_check() -> tuple[ProbeCheckOut, int]:
    """The auth chain end to end, without a real user: the probe identity verified, a
    database round trip (the nonce written when the identity was issued, read back), and
    `/readyz`'s checks: Firebase token verification, migrations, every enabled family.
    503 with the same body when a step of the chain fails; a failing family is reported
    (`families`, `ok: false`) but, as on `/readyz`, leaves the answer 200."""
    identity = probes.current_probe()
    left = int((identity.expires_at - utcnow()).total_seconds())
    steps = {
        "probe_identity": ProbeStep(
            ok=True, detail=f"probe {identity.probe_id} verified, valid {left}s more"
        )
    }
    try:
        steps["database"] = ProbeStep(ok=True, detail=await probes.database_round_trip(identity))
    except Exception as error:  # any failure is the report's to show, not a 500
        steps["database"] = ProbeStep(ok=False, detail=type(error).__name__)
    readiness = await readiness_report()
    for name, check in (
        ("token_verification", readiness.auth),
        ("migrations", readiness.migrations),
    ):
        steps[name] = ProbeStep(ok=check.ok, detail=check.detail or check.error or "ok")
    ok = all(step.ok for step in steps.values())
    families = sorted(readiness.plugins)
    steps["families"] = ProbeStep(
        ok=not readiness.degraded,
        detail=f"degraded: {', '.join(readiness.degraded)}"
        if readiness.degraded
        else f"all {len(families)} ready: {', '.join(families)}",
    )
    report = ProbeCheckOut(ok=ok, probe_id=identity.probe_id, checked_at=utcnow(), steps=steps)
    return report, 200 if ok else 503
