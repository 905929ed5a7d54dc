"""Terra's API, as shared/reference/external-services.md section 2 describes it, and the
alice calls that map our Terra references to users (docs/services/alice.md)."""

from __future__ import annotations

import json
import logging
from typing import Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict

from core import ApiError, ServiceClient

log = logging.getLogger("imperfect.terra")

TERRA = "Terra"
ALICE = "alice"


class _TerraBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["success"]


Body = TypeVar("Body", bound=_TerraBody)


class TerraWidgetSession(_TerraBody):
    session_id: str
    url: str
    expires_in: int


class TerraAuthToken(_TerraBody):
    token: str
    expires_in: int


class TerraClient:
    """The two calls imperfect-api makes; ``dev-id`` and ``x-api-key`` go on every one."""

    def __init__(self, http: ServiceClient) -> None:
        self.http = http

    async def widget_session(
        self,
        reference_id: str,
        providers: list[str],
        language: str,
        success_url: str,
        failure_url: str,
    ) -> TerraWidgetSession:
        body = {
            "reference_id": reference_id,
            "language": language,
            "auth_success_redirect_url": success_url,
            "auth_failure_redirect_url": failure_url,
        }
        if providers:
            body["providers"] = ",".join(providers)
        response = await self.http.request("POST", "/auth/generateWidgetSession", json=body)
        return self._success(response, TerraWidgetSession)

    async def auth_token(self) -> TerraAuthToken:
        response = await self.http.request("POST", "/auth/generateAuthToken")
        return self._success(response, TerraAuthToken)

    def _success(self, response: httpx.Response, model: type[Body]) -> Body:
        if response.status_code != 200:
            raise refusal(response)
        return self.http.parse(response, model)


class AliceReferences:
    """alice's calls for Terra references (docs/services/alice.md): which user each is."""

    def __init__(self, http: ServiceClient) -> None:
        self.http = http

    async def register(self, reference_id: str, user_id: int) -> None:
        """Tell alice that ``reference_id`` stands for ``user_id``; idempotent (a ``PUT``)."""
        response = await self.http.request(
            "PUT", f"/v1/terra/references/{reference_id}", json={"user_id": str(user_id)}
        )
        if response.status_code not in (200, 201, 204):
            raise self._refused(response, "record a Terra reference")

    async def forget(self, reference_id: str) -> None:
        """alice forgets the reference; done too when it never knew it (``404``)."""
        response = await self.http.request("DELETE", f"/v1/terra/references/{reference_id}")
        if response.status_code not in (204, 404):
            raise self._refused(response, "forget a Terra reference")

    def _refused(self, response: httpx.Response, what: str) -> ApiError:
        message = _message(response)
        log.warning("alice refused to %s: HTTP %s: %s", what, response.status_code, message)
        return ApiError(
            502,
            "upstream_rejected",
            f"alice refused to {what} (HTTP {response.status_code}: {message}).",
        )


def refusal(response: httpx.Response) -> ApiError:
    """A 4xx from Terra, in either of its error shapes, as an error naming Terra.

    Current endpoints answer ``application/problem+json`` (``title``, ``detail``);
    older and widget endpoints ``{"status": "error", "message"}``.
    """
    status = response.status_code
    message = _message(response)
    log.warning("Terra refused %s: HTTP %s: %s", response.request.url.path, status, message)
    if status in (401, 403):
        return ApiError(
            502,
            "terra_credentials_rejected",
            f"Terra refused our credentials (HTTP {status}: {message}); "
            "check the terra family's dev_id and api_key.",
        )
    return ApiError(502, "terra_rejected", f"Terra refused the request (HTTP {status}: {message}).")


def _message(response: httpx.Response) -> str:
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("detail", "message", "title", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key][:200]
    return "no details"
