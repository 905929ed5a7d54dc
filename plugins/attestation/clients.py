"""Google's Play Integrity API: ``POST /v1/{packageName}:decodeIntegrityToken``
(shared/reference/external-services.md section 5.2)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core import ApiError, ServiceClient

log = logging.getLogger(__name__)

PLAY_INTEGRITY = "Google Play Integrity"
SCOPE = "https://www.googleapis.com/auth/playintegrity"
RETRY_AFTER = "30"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class RequestDetails(_Loose):
    request_package_name: str = Field("", alias="requestPackageName")
    nonce: str | None = None
    request_hash: str | None = Field(None, alias="requestHash")
    timestamp_millis: int = Field(0, alias="timestampMillis")


class AppIntegrity(_Loose):
    app_recognition_verdict: str = Field("UNEVALUATED", alias="appRecognitionVerdict")
    package_name: str | None = Field(None, alias="packageName")


class DeviceIntegrity(_Loose):
    device_recognition_verdict: list[str] = Field(
        default_factory=list, alias="deviceRecognitionVerdict"
    )


class AccountDetails(_Loose):
    app_licensing_verdict: str = Field("UNEVALUATED", alias="appLicensingVerdict")


class TokenPayload(_Loose):
    request_details: RequestDetails = Field(alias="requestDetails")
    app_integrity: AppIntegrity = Field(default_factory=AppIntegrity, alias="appIntegrity")
    device_integrity: DeviceIntegrity = Field(
        default_factory=DeviceIntegrity, alias="deviceIntegrity"
    )
    account_details: AccountDetails = Field(default_factory=AccountDetails, alias="accountDetails")


class DecodeAnswer(_Loose):
    token_payload_external: TokenPayload = Field(alias="tokenPayloadExternal")


def unavailable(why: str) -> ApiError:
    return ApiError(
        503,
        "play_integrity_unavailable",
        f"{PLAY_INTEGRITY} could not decode the integrity token ({why}); try again later.",
        headers={"Retry-After": RETRY_AFTER},
    )


class BearerSource:
    """Where the ``Authorization`` of a decode comes from: a fixed bearer token, or a
    service account's OAuth token (minted and refreshed in a worker thread, so the event
    loop never waits on Google's token endpoint)."""

    def __init__(self, bearer: str = "", service_account_file: str = "") -> None:
        self.bearer = bearer
        self._credentials: Any = None
        if service_account_file and not bearer:
            from google.oauth2 import service_account

            self._credentials = service_account.Credentials.from_service_account_file(
                service_account_file, scopes=[SCOPE]
            )
        self._expires = float("inf") if bearer else 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if time.time() < self._expires - 60:
            return self.bearer
        async with self._lock:
            if time.time() >= self._expires - 60:
                await asyncio.to_thread(self._refresh)
        return self.bearer

    def _refresh(self) -> None:
        from google.auth.transport.requests import Request

        self._credentials.refresh(Request())
        self.bearer = self._credentials.token
        expiry = self._credentials.expiry  # naive UTC
        self._expires = expiry.replace(tzinfo=UTC).timestamp() if expiry else time.time() + 300


class PlayIntegrityClient:
    """Decodes integrity tokens for one package, through Google's API."""

    def __init__(
        self,
        base_url: str,
        package_name: str,
        bearer: BearerSource,
        *,
        connect_timeout: float,
        read_timeout: float,
        make_http: Callable[..., ServiceClient] = ServiceClient,
    ) -> None:
        self.base_url, self.package_name, self.bearer = base_url, package_name, bearer
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self._make_http = make_http
        self._token = ""
        self.http: ServiceClient | None = None

    async def _client(self) -> ServiceClient:
        token = await self.bearer.token()
        if self.http is None or token != self._token:
            old, self._token = self.http, token
            self.http = self._make_http(
                PLAY_INTEGRITY,
                self.base_url,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                retries=0,
                headers={"Authorization": f"Bearer {token}"},
            )
            if old is not None:
                await old.aclose()
        return self.http

    async def decode(self, integrity_token: str) -> TokenPayload:
        """The token's payload. A token Google cannot decode is 403
        ``integrity_token_invalid``; Google unreachable, slow, failing or refusing our
        credential is 503 ``play_integrity_unavailable``, naming it."""
        try:
            http = await self._client()
            response = await http.request(
                "POST",
                f"/v1/{self.package_name}:decodeIntegrityToken",
                json={"integrityToken": integrity_token},
            )
        except ApiError as error:
            raise unavailable(error.detail) from error
        except Exception as error:  # the service account's token could not be minted
            log.warning("Play Integrity credential refresh failed: %r", error)
            raise unavailable("its OAuth token could not be obtained") from error
        if response.status_code == 400:
            raise ApiError(
                403, "integrity_token_invalid", "Google Play could not decode the integrity token."
            )
        if response.status_code in (401, 403):
            log.warning("Play Integrity refused our credential: HTTP %s", response.status_code)
            raise unavailable(f"it refused this API's credential, HTTP {response.status_code}")
        if response.status_code != 200:
            raise unavailable(f"HTTP {response.status_code}")
        try:
            return DecodeAnswer.model_validate_json(response.content).token_payload_external
        except ValueError as error:
            raise unavailable("its answer did not have the documented shape") from error

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()
