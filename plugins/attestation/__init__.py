"""The ``attestation`` family: one-time challenges, Apple App Attest and Google Play
Integrity verification, the ``attested`` route requirement, and synthetic health probes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from quart import Blueprint

from core import LoadedPlugin, PluginInfo, ReadinessCheck, RouteRequirement, User, hookimpl
from plugins.attestation import probes, service
from plugins.attestation.clients import BearerSource, PlayIntegrityClient
from plugins.attestation.routes import blueprint
from plugins.attestation.schemas import PLAY_INTEGRITY, AttestationSettings

PLUGIN = PluginInfo(
    version="1.0.0",
    description="Device attestation (Apple App Attest, Google Play Integrity) with one-time "
    "challenges, the `attested` route requirement, and authenticated synthetic health probes.",
    requires=("users",),
)


@hookimpl
def settings_model() -> type[AttestationSettings]:
    return AttestationSettings


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.attestation.models"]


@hookimpl
def route_requirements() -> Iterable[RouteRequirement]:
    return [
        RouteRequirement(
            name="attested",
            check=service.check_attested,
            description=(
                "A device of the caller verified with `POST /attest/verify`, and proof from it "
                f"for this request: `{service.DEVICE_HEADER}` (the device id), "
                f"`{service.CHALLENGE_HEADER}` (an unused challenge of purpose `assertion`) and "
                f"`{service.ASSERTION_HEADER}` (iOS: base64url App Attest assertion over "
                "SHA256(clientData); Android: a Play Integrity token whose requestHash is "
                "base64url SHA256(clientData)), where clientData is "
                "`imperfect-attest-v1\\n{METHOD}\\n{path[?query]}\\n{challenge}\\n"
                "{hex SHA256(body)}`. Refused with 403 and a precise `code`; 503 when Google's "
                "decode service is unavailable."
            ),
            security_scheme={
                "type": "apiKey",
                "in": "header",
                "name": service.ASSERTION_HEADER,
                "description": (
                    f"Sent with `{service.DEVICE_HEADER}` and `{service.CHALLENGE_HEADER}`; "
                    "see docs/families/attestation.md."
                ),
            },
            errors=(403, 503),
        ),
        RouteRequirement(
            name="health_probe",
            check=probes.check_probe,
            description=(
                "A probe identity from `POST /auth/health-probe/token` as "
                "`Authorization: Bearer`; refused with 401. It is not a Firebase ID token "
                "and no signed-in route accepts it."
            ),
            # no security scheme: the route is public as far as Firebase is concerned, and
            # the spec's public operations carry `security: []`; the description says it all
            errors=(401, 503),
        ),
    ]


@hookimpl
async def startup(plugin: LoadedPlugin) -> None:
    settings: AttestationSettings = plugin.settings
    bearer = settings.play_integrity_bearer.get_secret_value()
    if settings.play_package_name and (bearer or settings.play_integrity_service_account):
        plugin.stash[PLAY_INTEGRITY] = PlayIntegrityClient(
            str(settings.play_integrity_url).rstrip("/"),
            settings.play_package_name,
            BearerSource(bearer, settings.play_integrity_service_account),
            connect_timeout=settings.play_connect_timeout,
            read_timeout=settings.play_read_timeout,
        )


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    client = plugin.stash.get(PLAY_INTEGRITY)
    if client is not None:
        del plugin.stash[PLAY_INTEGRITY]
        await client.aclose()


@hookimpl
def readiness_checks(plugin: LoadedPlugin) -> Mapping[str, ReadinessCheck]:
    settings: AttestationSettings = plugin.settings

    async def app_attest() -> str:
        if not settings.app_ids:
            return "not configured: iOS verification answers 503"
        return f"{len(settings.app_ids)} app id(s), {settings.apple_environment}"

    async def play_integrity() -> str:
        if PLAY_INTEGRITY not in plugin.stash:
            return "not configured: Android verification answers 503"
        return "configured"

    async def health_probes() -> str:
        if not settings.probe_token_key.get_secret_value() or not settings.probe_public_keys:
            return "not configured: probe routes answer 503"
        return f"{len(settings.probe_public_keys)} probe(s) registered"

    return {"app_attest": app_attest, "play_integrity": play_integrity, "probes": health_probes}


@hookimpl
async def account_deleted(user: User) -> None:
    await service.erase(user)


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    return await service.export(user)
