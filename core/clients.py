"""HTTP clients for outside services: timeouts, bounded retries, errors that name the service.

A family creates one :class:`ServiceClient` per service in its ``startup`` hook,
keeps it on ``plugin.state`` and closes it in ``shutdown``; its own
``clients.py`` wraps it in a typed client (``AliceClient``, ``TerraClient``)
that knows the service's paths and bodies. What every such client needs is here,
so each family does not reinvent it differently:

- explicit connect and read timeouts;
- retries only where repeating a request cannot do harm: idempotent methods,
  after a refused connection or a 502/503/504, a few times with a short backoff;
- failures as :class:`~core.errors.ApiError` naming the service: a timeout is
  ``504 upstream_timeout``, an unreachable service or a 5xx is
  ``502 upstream_unavailable``, a body that does not parse is
  ``502 upstream_invalid``. A 4xx is returned for the typed client to interpret.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from core.errors import ApiError

log = logging.getLogger("imperfect.clients")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({502, 503, 504})

Model = TypeVar("Model", bound=BaseModel)


class ServiceClient:
    """One outside service: a shared ``httpx.AsyncClient`` and the platform's error rules."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        retries: int = 2,
        backoff: float = 0.1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.service = service
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retries: int | None = None,
    ) -> httpx.Response:
        """Send a request and return any response below 500.

        An idempotent method is sent again (``retries`` times at most, default
        the client's) after a refused connection or a 502/503/504; a timeout is
        never retried, so a slow service costs one timeout, not several.
        """
        method = method.upper()
        allowed = (
            (self.retries if retries is None else retries) if method in IDEMPOTENT_METHODS else 0
        )
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, params=params, json=json)
            except httpx.TimeoutException as error:
                raise self._timed_out(method, path, error) from error
            except httpx.ConnectError as error:
                if attempt < allowed:
                    attempt += 1
                    await self._pause(attempt, method, path, repr(error))
                    continue
                raise self._unreachable(method, path, error) from error
            except httpx.TransportError as error:
                raise self._unreachable(method, path, error) from error
            if response.status_code in RETRY_STATUSES and attempt < allowed:
                attempt += 1
                await self._pause(attempt, method, path, f"HTTP {response.status_code}")
                continue
            if response.status_code >= 500:
                log.warning(
                    "%s %s %s answered HTTP %s: %s",
                    self.service,
                    method,
                    path,
                    response.status_code,
                    response.text[:500],
                )
                raise ApiError(
                    502,
                    "upstream_unavailable",
                    f"{self.service} failed to answer (HTTP {response.status_code}).",
                )
            return response

    def parse(self, response: httpx.Response, model: type[Model]) -> Model:
        """The response body as ``model``; a body that does not fit is a 502 naming the service."""
        try:
            return model.model_validate_json(response.content)
        except PydanticValidationError as error:
            log.warning(
                "%s answered %s %s with an unexpected body: %s",
                self.service,
                response.request.method,
                response.request.url.path,
                error,
            )
            raise ApiError(
                502, "upstream_invalid", f"{self.service} answered with an unexpected body."
            ) from error

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _pause(self, attempt: int, method: str, path: str, why: str) -> None:
        delay = self.backoff * 2 ** (attempt - 1) * (0.5 + random.random())
        log.info("%s %s %s: %s, retry %d in %.2fs", self.service, method, path, why, attempt, delay)
        await asyncio.sleep(delay)

    def _timed_out(self, method: str, path: str, error: httpx.TimeoutException) -> ApiError:
        limit = (
            self.connect_timeout if isinstance(error, httpx.ConnectTimeout) else self.read_timeout
        )
        log.warning("%s %s %s timed out after %gs: %r", self.service, method, path, limit, error)
        return ApiError(
            504, "upstream_timeout", f"{self.service} did not answer within {limit:g}s."
        )

    def _unreachable(self, method: str, path: str, error: httpx.TransportError) -> ApiError:
        log.warning("%s %s %s failed: %r", self.service, method, path, error)
        return ApiError(502, "upstream_unavailable", f"{self.service} could not be reached.")
