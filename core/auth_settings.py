"""Settings of the authentication path (``core/auth.py``), one environment variable each.

Kept apart from :class:`core.config.CoreSettings` so that the auth path owns its own
knobs; documented in ``config/env.template`` and docs/architecture.md ("Authentication").
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

GOOGLE_CERTS_URL = (
    "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
)
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class AuthSettings(BaseSettings):
    """How ID tokens are verified, cached and checked for revocation."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # Google's public keys (x509 certificates by key id), refreshed in the background.
    certs_url: str = Field(
        GOOGLE_CERTS_URL, validation_alias=AliasChoices("IMPERFECT_FIREBASE_CERTS_URL")
    )
    certs_timeout: float = Field(
        10.0, gt=0, le=120, validation_alias=AliasChoices("IMPERFECT_FIREBASE_CERTS_TIMEOUT")
    )
    # Never fetch more often than this (refresh schedule floor, unknown-kid refreshes).
    certs_min_interval: float = Field(
        30.0, ge=0, validation_alias=AliasChoices("IMPERFECT_FIREBASE_CERTS_MIN_INTERVAL")
    )
    # Used when the answer carries no Cache-Control max-age.
    certs_default_max_age: float = Field(
        3600.0, gt=0, validation_alias=AliasChoices("IMPERFECT_FIREBASE_CERTS_DEFAULT_MAX_AGE")
    )
    certs_retry_initial: float = Field(
        1.0, gt=0, validation_alias=AliasChoices("IMPERFECT_FIREBASE_CERTS_RETRY_INITIAL")
    )
    certs_retry_max: float = Field(
        300.0, gt=0, validation_alias=AliasChoices("IMPERFECT_FIREBASE_CERTS_RETRY_MAX")
    )
    clock_skew: int = Field(
        5, ge=0, le=60, validation_alias=AliasChoices("IMPERFECT_AUTH_CLOCK_SKEW")
    )
    # Verified tokens kept (by SHA-256 of the token) until their exp; 0 turns the cache off.
    token_cache_size: int = Field(
        10_000, ge=0, validation_alias=AliasChoices("IMPERFECT_AUTH_TOKEN_CACHE_SIZE")
    )
    # Seconds a user's revocation state (valid-after time, disabled, deleted) is trusted:
    # a revoked token may be accepted for at most this long; 0 looks it up every request.
    revocation_window: float = Field(
        300.0, ge=0, validation_alias=AliasChoices("IMPERFECT_REVOCATION_WINDOW")
    )
    revocation_cache_size: int = Field(
        100_000, ge=1, validation_alias=AliasChoices("IMPERFECT_REVOCATION_CACHE_SIZE")
    )
    # The bulkhead: threads for firebase-admin's blocking calls (get_user, delete_user, ...).
    threads: int = Field(4, ge=1, le=64, validation_alias=AliasChoices("IMPERFECT_AUTH_THREADS"))
    # Where revocations/deletions made here are announced to the other instances.
    redis_url: str = Field(
        "",
        validation_alias=AliasChoices("IMPERFECT_AUTH_REDIS_URL", "IMPERFECT_RATE_LIMIT_REDIS_URL"),
    )
    redis_channel: str = Field(
        "imperfect:auth:invalidate",
        min_length=1,
        validation_alias=AliasChoices("IMPERFECT_AUTH_REDIS_CHANNEL"),
    )

    @field_validator("certs_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(_REDIS_SCHEMES):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @classmethod
    def from_env(cls) -> AuthSettings:
        """Read the environment; a bad value is a :class:`ConfigError` naming the variable."""
        try:
            return cls()
        except PydanticValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                for e in error.errors()
            )
            raise ConfigError(f"invalid auth settings: {problems}") from error
