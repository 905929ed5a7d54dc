"""Deployment configuration: core settings from the environment and ``plugins.toml``.

Core settings come from environment variables only (documented in
``config/env.template``). ``plugins.toml`` says which route families load and
with which settings; a setting written as ``{ env = "NAME" }`` is read from the
environment at load time, so secrets never sit in the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

OnFailure = Literal["abort", "skip"]
ENTRY_POINT_GROUP = "imperfect.plugins"
RESERVED_NAME = "core"  # core's own Tortoise app, tables and owner name

Environment = Literal["production", "staging", "development", "test"]
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)
ENVIRONMENT_ALIASES = {
    "prod": "production",
    "live": "production",
    "stage": "staging",
    "dev": "development",
    "local": "development",
    "testing": "test",
    "tests": "test",
}
EMULATOR_HOST_ENV = "FIREBASE_AUTH_EMULATOR_HOST"
# The only environments in which the Auth Emulator (which signs nothing) may be used.
EMULATOR_ENVIRONMENTS = frozenset({"development", "test"})


def check_emulator_allowed(environment: str, env: Mapping[str, str] | None = None) -> None:
    """Refuse ``FIREBASE_AUTH_EMULATOR_HOST`` outside an explicit development/test environment.

    firebase-admin reads that variable itself, from the process environment, whenever it
    verifies a token: while it is set, any hand-made unsigned token for any uid verifies.
    """
    host = (os.environ if env is None else env).get(EMULATOR_HOST_ENV, "")
    if host and environment not in EMULATOR_ENVIRONMENTS:
        raise ConfigError(
            f"{EMULATOR_HOST_ENV} is set while IMPERFECT_ENV={environment}: firebase-admin "
            "would accept unsigned tokens for any user; the Auth Emulator is allowed only "
            "with IMPERFECT_ENV=development or IMPERFECT_ENV=test (unset means production)"
        )


def _normalised_origin(value: str) -> str:
    """``https://App.example:443`` -> ``https://app.example``; anything else is an error."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or port == -1
        or parts.username is not None
        or parts.path
        or parts.query
        or parts.fragment
        or value != value.strip()
    ):
        raise ValueError(
            f"{value!r} is not an origin (scheme://host[:port], no path, no trailing slash)"
        )
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _comma_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


class CoreSettings(BaseSettings):
    """Settings of the platform itself; every field is one environment variable."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    plugins_file: Path = Field(
        Path("plugins.toml"), validation_alias=AliasChoices("IMPERFECT_PLUGINS_FILE")
    )
    environment: Environment = Field("production", validation_alias=AliasChoices("IMPERFECT_ENV"))
    database_url: str = Field(
        "sqlite://./data/imperfect.sqlite3", validation_alias=AliasChoices("DATABASE_URL")
    )
    auto_migrate: bool = Field(False, validation_alias=AliasChoices("IMPERFECT_AUTO_MIGRATE"))
    disable: str = Field("", validation_alias=AliasChoices("IMPERFECT_DISABLE"))
    enable: str = Field("", validation_alias=AliasChoices("IMPERFECT_ENABLE"))
    firebase_project_id: str = Field(
        "demo-imperfect",
        validation_alias=AliasChoices("FIREBASE_PROJECT_ID", "GOOGLE_CLOUD_PROJECT"),
    )
    check_revoked: bool = Field(True, validation_alias=AliasChoices("IMPERFECT_CHECK_REVOKED"))
    admin_claim: str = Field("admin", validation_alias=AliasChoices("IMPERFECT_ADMIN_CLAIM"))
    max_body_bytes: int = Field(
        1_048_576, ge=1024, validation_alias=AliasChoices("IMPERFECT_MAX_BODY_BYTES")
    )
    readiness_timeout: float = Field(
        2.0, gt=0, validation_alias=AliasChoices("IMPERFECT_READINESS_TIMEOUT")
    )
    # Seconds between `: heartbeat` comments on an idle Server-Sent Events stream.
    sse_heartbeat_seconds: float = Field(
        15.0, gt=0, le=3600, validation_alias=AliasChoices("IMPERFECT_SSE_HEARTBEAT_SECONDS")
    )
    # CORS: exact origins (comma-separated); empty means CORS is off.
    cors_origins: str = Field("", validation_alias=AliasChoices("IMPERFECT_CORS_ORIGINS"))
    cors_methods: str = Field(
        "GET,POST,PUT,PATCH,DELETE", validation_alias=AliasChoices("IMPERFECT_CORS_METHODS")
    )
    cors_headers: str = Field(
        "Authorization,Content-Type,X-Request-ID",
        validation_alias=AliasChoices("IMPERFECT_CORS_HEADERS"),
    )
    cors_expose_headers: str = Field(
        "X-Request-ID,Retry-After,RateLimit,RateLimit-Policy",
        validation_alias=AliasChoices("IMPERFECT_CORS_EXPOSE_HEADERS"),
    )
    cors_credentials: bool = Field(
        False, validation_alias=AliasChoices("IMPERFECT_CORS_CREDENTIALS")
    )
    cors_max_age: int = Field(
        600, ge=0, le=86400, validation_alias=AliasChoices("IMPERFECT_CORS_MAX_AGE")
    )
    outbox_dispatcher: bool = Field(
        True, validation_alias=AliasChoices("IMPERFECT_OUTBOX_DISPATCHER")
    )
    outbox_interval: float = Field(
        1.0, gt=0, validation_alias=AliasChoices("IMPERFECT_OUTBOX_INTERVAL")
    )
    outbox_batch_size: int = Field(
        50, ge=1, le=1000, validation_alias=AliasChoices("IMPERFECT_OUTBOX_BATCH_SIZE")
    )
    outbox_concurrency: int = Field(
        8, ge=1, le=200, validation_alias=AliasChoices("IMPERFECT_OUTBOX_CONCURRENCY")
    )
    outbox_max_attempts: int = Field(
        12, ge=1, validation_alias=AliasChoices("IMPERFECT_OUTBOX_MAX_ATTEMPTS")
    )
    outbox_lease: float = Field(60.0, gt=0, validation_alias=AliasChoices("IMPERFECT_OUTBOX_LEASE"))
    outbox_retry_base: float = Field(
        2.0, ge=0, validation_alias=AliasChoices("IMPERFECT_OUTBOX_RETRY_BASE")
    )
    outbox_retry_max: float = Field(
        3600.0, ge=0, validation_alias=AliasChoices("IMPERFECT_OUTBOX_RETRY_MAX")
    )
    outbox_keep_days: float = Field(
        7.0, gt=0, validation_alias=AliasChoices("IMPERFECT_OUTBOX_KEEP_DAYS")
    )

    @classmethod
    def from_env(cls) -> CoreSettings:
        """Read the environment; a bad value is a :class:`ConfigError` naming the variable."""
        try:
            return cls()
        except PydanticValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                for e in error.errors()
            )
            raise ConfigError(f"invalid environment: {problems}") from error

    @property
    def disabled_names(self) -> set[str]:
        return {name.strip() for name in self.disable.split(",") if name.strip()}

    @property
    def enabled_names(self) -> set[str]:
        return {name.strip() for name in self.enable.split(",") if name.strip()}

    @field_validator("environment", mode="before")
    @classmethod
    def _normalise_environment(cls, value: Any) -> Any:
        """Strip and lowercase; ``prod``/``dev``/... name their environment; empty is unset."""
        if not isinstance(value, str):
            return value
        name = value.strip().lower()
        return ENVIRONMENT_ALIASES.get(name, name) or "production"

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        return ",".join(_normalised_origin(origin) for origin in _comma_list(value))

    @field_validator("cors_methods")
    @classmethod
    def _check_methods(cls, value: str) -> str:
        methods = [method.upper() for method in _comma_list(value)]
        bad = [m for m in methods if not m.isascii() or not m.isalpha()]
        if bad:
            raise ValueError(f"not HTTP methods: {', '.join(bad)}")
        return ",".join(methods)

    @field_validator("cors_headers", "cors_expose_headers")
    @classmethod
    def _check_headers(cls, value: str) -> str:
        names = _comma_list(value)
        bad = [n for n in names if not n.isascii() or not all(c.isalnum() or c in "-_" for c in n)]
        if bad:
            raise ValueError(f"not header names: {', '.join(bad)}")
        return ",".join(names)

    @model_validator(mode="after")
    def _emulator_only_in_development(self) -> CoreSettings:
        # A ConfigError (not a ValueError) leaves pydantic as it is: one line, no wrapping.
        check_emulator_allowed(self.environment)
        return self

    @property
    def cors_origin_set(self) -> frozenset[str]:
        return frozenset(_comma_list(self.cors_origins))


@dataclass(frozen=True)
class PluginEntry:
    """One ``[plugins.<name>]`` table of ``plugins.toml``, before loading."""

    name: str
    module: str | None
    entry_point: str | None
    enabled: bool
    on_failure: OnFailure
    requires: tuple[str, ...]
    raw_settings: dict[str, Any] = field(default_factory=dict)
    disabled_by: str | None = None

    @property
    def source(self) -> str:
        if self.module:
            return f"module {self.module}"
        return f"entry point {ENTRY_POINT_GROUP}:{self.entry_point}"


class _PluginTable(BaseModel):
    """One ``[plugins.<name>]`` table as written in ``plugins.toml``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    module: str | None = Field(None, min_length=1)
    entry_point: str | None = Field(None, min_length=1)
    enabled: bool = True
    on_failure: OnFailure = "abort"
    requires: list[str] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> _PluginTable:
        if bool(self.module) == bool(self.entry_point):
            raise ValueError("give exactly one of 'module' or 'entry_point'")
        return self


def read_plugins_file(path: Path, settings: CoreSettings) -> list[PluginEntry]:
    """Parse ``plugins.toml`` into entries, applying env enable/disable overrides."""
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"plugins file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"plugins file {path} is not valid TOML: {exc}") from exc
    unknown_top = set(document) - {"plugins"}
    if unknown_top:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown_top)}")
    tables = document.get("plugins", {})
    known = set(tables)
    for name in (settings.disabled_names | settings.enabled_names) - known:
        raise ConfigError(
            f"IMPERFECT_DISABLE/IMPERFECT_ENABLE name unknown plugin '{name}' "
            f"(known: {', '.join(sorted(known))})"
        )
    return [_entry_from_table(name, table, settings) for name, table in tables.items()]


def _entry_from_table(name: str, table: Any, settings: CoreSettings) -> PluginEntry:
    where = f"plugin '{name}'"
    if name == RESERVED_NAME:
        raise ConfigError(f"{where}: the name '{RESERVED_NAME}' is reserved for the platform")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [plugins.{name}] must be a table")
    try:
        parsed = _PluginTable.model_validate(table)
    except PydanticValidationError as error:
        problems = "; ".join(
            (f"key '{'.'.join(str(p) for p in e['loc'])}': " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ")
            for e in error.errors()
        )
        raise ConfigError(f"{where}: [plugins.{name}]: {problems}") from error
    enabled, disabled_by = parsed.enabled, None
    if name in settings.disabled_names:
        enabled, disabled_by = False, "IMPERFECT_DISABLE"
    elif name in settings.enabled_names:
        enabled = True
    elif not enabled:
        disabled_by = "plugins.toml"
    return PluginEntry(
        name=name,
        module=parsed.module,
        entry_point=parsed.entry_point,
        enabled=enabled,
        on_failure=parsed.on_failure,
        requires=tuple(parsed.requires),
        raw_settings=parsed.settings,
        disabled_by=disabled_by,
    )


def resolve_secrets(raw: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Replace every ``{ env = "NAME" }`` value with the environment variable's value.

    ``{ env = "NAME", default = ... }`` falls back to ``default`` when ``NAME`` is
    unset, so a file can name the variable that configures an optional feature and
    still load on a machine that does not set it.
    """
    resolved: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{path}{key}"
        if isinstance(value, dict) and "env" in value and set(value) <= {"env", "default"}:
            env_name = value["env"]
            if env_name in os.environ:
                resolved[key] = os.environ[env_name]
            elif "default" in value:
                resolved[key] = value["default"]
            else:
                raise ConfigError(
                    f"setting '{dotted}' reads environment variable {env_name}, which is not set"
                )
        elif isinstance(value, dict):
            resolved[key] = resolve_secrets(value, f"{dotted}.")
        else:
            resolved[key] = value
    return resolved
