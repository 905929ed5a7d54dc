"""Terra's API, as shared/reference/external-services.md section 2 describes it."""

from __future__ import annotations

import json
import logging
from typing import Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict

from core import ApiError, ServiceClient

log = logging.getLogger("imperfect.terra")

TERRA = "Terra"


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
        for key in ("detail", "message", "title"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key][:200]
    return "no details"
