"""The contract of the ``attestation`` family: its settings, requests and responses.

Also the family's handle on itself (:data:`FAMILY`) and the keys of its run-time state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    RootModel,
    SecretStr,
    model_validator,
)

from core import Family, StashKey, WholeNumber, request_body
from plugins.attestation.clients import PlayIntegrityClient

Purpose = Literal["attestation", "assertion"]
Platform = Literal["ios", "android"]
B64URL = r"^[A-Za-z0-9_-]+$"
# base64 (standard or URL-safe, padded or not) that decodes: no length of 1 mod 4
BASE64 = r"^(?:[A-Za-z0-9+/_-]{4})*(?:[A-Za-z0-9+/_-]{2}(?:==)?|[A-Za-z0-9+/_-]{3}=?)?$"
KEY_ID = r"^[A-Za-z0-9+/_-]{43}=?$"  # base64 of 32 bytes
APP_VERDICTS = Literal["PLAY_RECOGNIZED", "UNRECOGNIZED_VERSION", "UNEVALUATED"]
DEVICE_VERDICTS = Literal[
    "MEETS_DEVICE_INTEGRITY",
    "MEETS_BASIC_INTEGRITY",
    "MEETS_STRONG_INTEGRITY",
    "MEETS_VIRTUAL_INTEGRITY",
]


class AttestationSettings(BaseModel):
    """``[plugins.attestation.settings]``.

    Without ``apple_team_id`` and ``apple_bundle_ids`` iOS verification answers 503
    ``app_attest_not_configured``; without ``play_package_name`` and a credential Android
    verification answers 503 ``play_integrity_not_configured``; without ``probe_token_key``
    and a probe key the health-probe routes answer 503 ``probes_not_configured``.
    """

    model_config = ConfigDict(extra="forbid")

    challenge_ttl_seconds: int = Field(300, ge=30, le=3600, description="a challenge's life")
    apple_team_id: str = Field("", pattern=r"^([A-Z0-9]{10})?$")
    apple_bundle_ids: list[str] = Field(
        default_factory=list, description="bundle ids; the app id is <team id>.<bundle id>"
    )
    apple_environment: Literal["development", "production"] = "production"
    apple_root_ca: str = Field(
        "", description="PEM of the root to trust; empty: Apple's App Attestation Root CA"
    )
    play_package_name: str = Field("", pattern=r"^([A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+)?$")
    play_integrity_url: HttpUrl = HttpUrl("https://playintegrity.googleapis.com")
    play_integrity_bearer: SecretStr = Field(
        SecretStr(""), description="a bearer token for decodeIntegrityToken (tests, proxies)"
    )
    play_integrity_service_account: str = Field(
        "",
        description="path to a service-account JSON key; its OAuth token is minted and "
        "refreshed with the playintegrity scope",
    )
    play_app_verdicts: list[APP_VERDICTS] = Field(
        default_factory=lambda: list[APP_VERDICTS](["PLAY_RECOGNIZED"]),
        description="appRecognitionVerdict values accepted",
    )
    play_device_verdicts: list[DEVICE_VERDICTS] = Field(
        default_factory=lambda: list[DEVICE_VERDICTS](["MEETS_DEVICE_INTEGRITY"]),
        description="deviceRecognitionVerdict values that must all be present",
    )
    play_require_licensed: bool = Field(False, description="require appLicensingVerdict LICENSED")
    play_max_token_age_seconds: int = Field(120, ge=10, le=3600)
    play_connect_timeout: float = Field(2.0, gt=0)
    play_read_timeout: float = Field(5.0, gt=0)
    probe_keys: dict[str, str] = Field(
        default_factory=dict,
        description="probe id -> public key PEM (Ed25519 or P-256); an empty PEM is ignored",
    )
    probe_token_key: SecretStr = Field(
        SecretStr(""), description="HMAC-SHA256 key of probe identities, at least 32 characters"
    )
    probe_token_ttl_seconds: int = Field(60, ge=5, le=900)
    probe_window_seconds: int = Field(
        60, ge=5, le=600, description="how far a probe request's timestamp may be from now"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        key = self.probe_token_key.get_secret_value()
        if key and len(key) < 32:
            raise ValueError("probe_token_key must be at least 32 characters")
        for probe_id in self.probe_keys:
            if not probe_id or len(probe_id) > 64:
                raise ValueError(f"probe id {probe_id!r} must be 1 to 64 characters")
        return self

    @property
    def app_ids(self) -> list[str]:
        return [f"{self.apple_team_id}.{bundle}" for bundle in self.apple_bundle_ids]

    @property
    def probe_public_keys(self) -> dict[str, str]:
        return {probe: pem for probe, pem in self.probe_keys.items() if pem.strip()}


FAMILY = Family(__package__, AttestationSettings)
"""This family in the running app, whatever ``plugins.toml`` calls it."""

PLAY_INTEGRITY = StashKey[PlayIntegrityClient]("play_integrity")
"""The Play Integrity API, set at start-up when a package name and a credential are set."""


EXAMPLE_CHALLENGE = "q3Jx0yO2m1cPZ7b9F4kLwT8eN5vR6sA0dH2gU1iYcXo"


class ChallengeIn(BaseModel):
    """What the challenge is for: ``attestation`` (``POST /attest/verify``) or
    ``assertion`` (the ``X-Attest-Challenge`` of one guarded request)."""

    model_config = request_body({"purpose": "attestation"}, {"purpose": "assertion"})

    purpose: Purpose


class ChallengeOut(BaseModel):
    challenge: str = Field(description="32 random bytes, base64url without padding; one use")
    purpose: Purpose
    expires_in: int = Field(description="seconds")
    expires_at: datetime


IOS_EXAMPLE: dict[str, Any] = {
    "platform": "ios",
    "challenge": EXAMPLE_CHALLENGE,
    "key_id": "3Pc5cFhT5t3m8G1v0H1Kq9yWQm2t5xvJ0Qe4o2cZbXk=",
    "attestation": "o2NmbXRvYXBwbGUtYXBwYXR0ZXN0Z2F0dFN0bXSiY3g1Y4JZAuEwggLd",
}
ANDROID_EXAMPLE: dict[str, Any] = {
    "platform": "android",
    "challenge": EXAMPLE_CHALLENGE,
    "integrity_token": "eyJhbGciOiJBMjU2S1ciLCJlbmMiOiJBMjU2R0NNIn0.example",
}

Challenge = Annotated[
    str,
    Field(
        min_length=43,
        max_length=43,
        pattern=B64URL,
        description="a challenge of purpose `attestation` from `POST /attest/challenge`",
    ),
]


class IosVerifyIn(BaseModel):
    """An App Attest attestation object from ``attestKey(keyId, SHA256(challenge bytes))``."""

    model_config = request_body(IOS_EXAMPLE)

    platform: Literal["ios"]
    challenge: Challenge
    key_id: str = Field(
        pattern=KEY_ID, description="the App Attest key id: base64 of SHA256(public key)"
    )
    attestation: str = Field(
        min_length=4,
        max_length=20000,
        pattern=BASE64,
        description="base64 of the attestation object (Apple's CBOR)",
    )


class AndroidVerifyIn(BaseModel):
    """A Play Integrity token whose ``nonce`` or ``requestHash`` is the challenge."""

    model_config = request_body(ANDROID_EXAMPLE)

    platform: Literal["android"]
    challenge: Challenge
    integrity_token: str = Field(
        max_length=20000,
        pattern=r"^[A-Za-z0-9._=+/-]+$",
        description="the token from the Play Integrity API, as the app received it",
    )


class VerifyIn(
    RootModel[Annotated[IosVerifyIn | AndroidVerifyIn, Field(discriminator="platform")]]
):
    """An iOS App Attest attestation or an Android Play Integrity token, for a challenge of
    purpose ``attestation``: one shape per ``platform``, each with exactly its fields."""

    model_config = ConfigDict(json_schema_extra={"examples": [IOS_EXAMPLE, ANDROID_EXAMPLE]})


class AttestedDeviceOut(BaseModel):
    """A device whose app this API verified; ``device_id`` goes in ``X-Attest-Device``."""

    device_id: int = Field(validation_alias=AliasChoices("id", "device_id"))
    platform: Platform
    environment: str = Field(description="ios: development or production; android: play")
    app_id: str = Field(description="ios: <team id>.<bundle id>; android: the package name")
    counter: int = Field(description="ios: the last assertion counter seen")
    created_at: datetime
    last_used_at: datetime | None


class ProbeTokenIn(BaseModel):
    """A synthetic monitor's signed request for a probe identity.

    ``signature`` is base64url of the probe key's signature (Ed25519, or ECDSA P-256 with
    SHA-256, DER) over ``imperfect-health-probe-v1\\n{probe_id}\\n{timestamp}\\n{nonce}``.
    """

    model_config = request_body(
        {
            "probe_id": "synthetic-monitor",
            "timestamp": 1767225600,
            "nonce": "b7tq2S0xM3s1Yk8uVZp9cQ",
            "signature": "r0oQ8F9mR3cJt0l4Y3G9yq2nY8sZ0V1b6a5nFh2o3Wc9sPqZ1T4uXyB7kLmN0pQrS",
        }
    )

    probe_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    timestamp: Annotated[int, WholeNumber] = Field(ge=0, le=2**42, description="Unix seconds")
    nonce: str = Field(min_length=16, max_length=64, pattern=B64URL, description="one use")
    signature: str = Field(min_length=16, max_length=200, pattern=B64URL)


class ProbeTokenOut(BaseModel):
    token: str = Field(description="send as Authorization: Bearer; accepted by probe routes only")
    token_type: Literal["probe"] = "probe"
    expires_in: int
    expires_at: datetime


class ProbeStep(BaseModel):
    ok: bool
    detail: str


class ProbeCheckOut(BaseModel):
    """The auth chain, proved without a real user."""

    ok: bool
    probe_id: str
    checked_at: datetime
    steps: dict[str, ProbeStep]
