"""A fake Google Play Integrity API (shared/reference/external-services.md section 5.2).

``POST /v1/{packageName}:decodeIntegrityToken`` with ``{"integrityToken": "..."}`` and an
``Authorization: Bearer`` credential answers ``{"tokenPayloadExternal": {...}}`` for a token
the test issued with :meth:`FakePlayIntegrity.issue`, Google's 400 ``INVALID_ARGUMENT``
for any other token, and 401 ``UNAUTHENTICATED`` for a wrong credential. ``status`` makes
every call answer with that HTTP status instead; ``calls`` records every call.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from quart import Quart, request

from tests.fakes.server import FakeServer


@dataclass
class FakePlayIntegrity:
    bearer: str = "play-integrity-test-bearer"
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (package, token)
    status: int | None = None
    url: str = ""

    def __post_init__(self) -> None:
        self.app = _build_app(self)
        self._server = FakeServer(self.app)
        self._stopped = False

    def start(self) -> FakePlayIntegrity:
        self._server.start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        """Stop serving (a test may stop it early, to take the service down); idempotent."""
        if not self._stopped:
            self._stopped = True
            self._server.stop()

    def issue(
        self,
        package: str,
        *,
        nonce: str | None = None,
        request_hash: str | None = None,
        timestamp_millis: int | None = None,
        app_verdict: str = "PLAY_RECOGNIZED",
        device_verdicts: tuple[str, ...] = ("MEETS_DEVICE_INTEGRITY", "MEETS_BASIC_INTEGRITY"),
        licensing: str = "LICENSED",
        app_package: str | None = None,
    ) -> str:
        """A token whose decoded payload has these fields, as Google's documents them."""
        details: dict[str, Any] = {
            "requestPackageName": package,
            "timestampMillis": str(
                int(time.time() * 1000) if timestamp_millis is None else timestamp_millis
            ),
        }
        if nonce is not None:
            details["nonce"] = nonce
        if request_hash is not None:
            details["requestHash"] = request_hash
        payload = {
            "requestDetails": details,
            "appIntegrity": {
                "appRecognitionVerdict": app_verdict,
                "packageName": app_package or package,
                "certificateSha256Digest": ["6a6a1474b5cbbb2b1aa57e0bc3"],
                "versionCode": "42",
            },
            "deviceIntegrity": {
                "deviceRecognitionVerdict": list(device_verdicts),
                "recentDeviceActivity": {"deviceActivityLevel": "LEVEL_1"},
            },
            "accountDetails": {"appLicensingVerdict": licensing},
            "environmentDetails": {"playProtectVerdict": "NO_ISSUES"},
        }
        token = f"fake.{secrets.token_urlsafe(24)}"
        self.tokens[token] = payload
        return token


def _error(code: int, status: str, message: str) -> tuple[dict[str, Any], int]:
    return {"error": {"code": code, "message": message, "status": status}}, code


def _build_app(fake: FakePlayIntegrity) -> Quart:
    app = Quart("fake_play_integrity")

    @app.post("/v1/<path:target>")
    async def decode(target: str) -> Any:
        package, _, method = target.partition(":")
        if method != "decodeIntegrityToken":
            return _error(404, "NOT_FOUND", "unknown method")
        body = await request.get_json(force=True, silent=True) or {}
        token = str(body.get("integrityToken", ""))
        fake.calls.append((package, token))
        if fake.status is not None:
            return _error(fake.status, "UNAVAILABLE", "The service is currently unavailable.")
        if request.headers.get("Authorization") != f"Bearer {fake.bearer}":
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        payload = fake.tokens.get(token)
        if payload is None:
            return _error(400, "INVALID_ARGUMENT", "Integrity token cannot be decoded.")
        return {"tokenPayloadExternal": payload}

    return app
