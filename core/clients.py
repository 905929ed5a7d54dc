"""HTTP clients for outside services: timeouts, bounded retries, errors that name the service.

A family creates one :class:`ServiceClient` per service in its ``startup`` hook,
keeps it in ``plugin.stash`` (under a ``StashKey``) and closes it in ``shutdown``; its own
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

:meth:`ServiceClient.stream` is the same client for answers that arrive over
time (a sibling's Server-Sent Events, an LLM's tokens): the same rules until the
response headers arrive, then each chunk waited for within its own timeout, and
failures after that point raised as :class:`UpstreamStreamError`, because by
then the caller may already be answering its own client and can only end its
stream with an error event.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import random
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from typing import Any, TypeVar, cast

import httpx
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from core import tracing
from core.errors import ApiError
from core.metrics import observe_upstream, upstream_outcome

log = logging.getLogger("imperfect.clients")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({502, 503, 504})

Model = TypeVar("Model", bound=BaseModel)

# How much of a failing answer's body is logged; enough to see the error, bounded
# so a 5xx that streams forever is not read forever.
LOGGED_BODY = 500

# Line ends as Server-Sent Events define them: CRLF, LF or a lone CR. Not
# str.splitlines, which also splits on form feeds, U+2028 and friends.
_LINE_END = re.compile(r"\r\n|\r|\n")


class UpstreamStreamError(ApiError):
    """A stream that had started failed: no chunk in time (504) or the connection broke (502).

    A subclass so a proxy that has already sent its own status and some events can
    catch exactly this and end its stream with an error event, while an
    :class:`~core.errors.ApiError` raised before the stream started still becomes
    an ordinary error response.
    """

    def __init__(self, status: int, code: str, detail: str, *, service: str) -> None:
        super().__init__(status, code, detail)
        self.service = service


class UpstreamStream:
    """An outside service's answer as it arrives; the body of ``async with client.stream(...)``.

    Read the body once, with one of :meth:`chunks`, :meth:`lines` or :meth:`read`.
    Every wait for the next piece is bounded by ``chunk_timeout``; a wait that runs
    out or a connection that breaks closes the response at once (the connection is
    not returned to the pool half-read) and raises :class:`UpstreamStreamError`.
    """

    def __init__(
        self, client: ServiceClient, response: httpx.Response, *, chunk_timeout: float
    ) -> None:
        self._client = client
        self._response = response
        self.chunk_timeout = chunk_timeout

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    @property
    def encoding(self) -> str:
        """The charset the service declared, else UTF-8 (what SSE and JSON lines use)."""
        return self._response.charset_encoding or "utf-8"

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body's bytes as they arrive, one network read at a time.

        Content-Encoding (gzip...) is undone, so a proxy can pass the bytes on
        without the upstream's encoding headers; nothing else is buffered.
        """
        service = self._client.service
        method = self._response.request.method
        path = self._response.request.url.path
        pieces = cast(AsyncGenerator[bytes, None], self._response.aiter_bytes())
        try:
            while True:
                try:
                    async with asyncio.timeout(self.chunk_timeout):
                        chunk = await anext(pieces)
                except StopAsyncIteration:
                    return
                except (TimeoutError, httpx.TimeoutException) as error:
                    await self.aclose()
                    log.warning(
                        "%s %s %s: no chunk within %gs",
                        service,
                        method,
                        path,
                        self.chunk_timeout,
                    )
                    raise UpstreamStreamError(
                        504,
                        "upstream_timeout",
                        f"{service} stopped sending for {self.chunk_timeout:g}s.",
                        service=service,
                    ) from error
                except httpx.TransportError as error:
                    await self.aclose()
                    log.warning("%s %s %s broke mid-stream: %r", service, method, path, error)
                    raise UpstreamStreamError(
                        502,
                        "upstream_unavailable",
                        f"{service} closed the connection mid-stream.",
                        service=service,
                    ) from error
                except httpx.DecodingError as error:
                    await self.aclose()
                    log.warning(
                        "%s %s %s sent an undecodable body: %r", service, method, path, error
                    )
                    raise UpstreamStreamError(
                        502,
                        "upstream_invalid",
                        f"{service} sent a stream that could not be decoded.",
                        service=service,
                    ) from error
                if chunk:
                    yield chunk
        finally:
            await pieces.aclose()

    async def lines(self) -> AsyncGenerator[str, None]:
        """The body as text lines without their line ends, each as soon as it is complete.

        Lines end at CRLF, LF or a lone CR (the Server-Sent Events rule), also when a
        chunk boundary falls between the CR and the LF. Bytes that are not valid in
        :attr:`encoding` become U+FFFD rather than failing the whole stream. The
        timeout bounds each chunk, not each line.
        """
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="replace")
        pending = ""
        async with aclosing(self.chunks()) as chunks:
            async for chunk in chunks:
                pending += decoder.decode(chunk)
                start = 0
                for end in _LINE_END.finditer(pending):
                    if end.group() == "\r" and end.end() == len(pending):
                        break  # maybe the first half of a CRLF: wait for the next chunk
                    yield pending[start : end.start()]
                    start = end.end()
                pending = pending[start:]
        pending += decoder.decode(b"", final=True)
        if pending:  # a last line without its line end, or the lone CR that ended one
            yield pending.removesuffix("\r")

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (or its first ``limit`` bytes), for a 4xx the caller interprets."""
        body = bytearray()
        async with aclosing(self.chunks()) as chunks:
            async for chunk in chunks:
                body += chunk
                if limit is not None and len(body) >= limit:
                    break
        return bytes(body if limit is None else body[:limit])

    async def aclose(self) -> None:
        """Close the response now; its connection is dropped if the body was not read to the end."""
        await self._response.aclose()


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
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retries: int | None = None,
    ) -> httpx.Response:
        """Send a request and return any response below 500.

        ``data`` is a form-encoded body (OAuth token endpoints), ``headers`` are this
        request's own (a per-user ``Authorization``), on top of the client's.
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
                response = await self._attempt(method, path, params, json, data, headers)
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

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One exchange with the service, counted (and traced, when tracing is on)."""
        tracer = tracing.active()
        span, headers = (None, dict(extra) if extra else None)
        if tracer is not None:
            span, traced = tracer.start_upstream(self.service, method, path)
            headers = {**(headers or {}), **traced}
        started = time.perf_counter()
        status: int | None = None
        outcome = "unreachable"
        try:
            response = await self._http.request(
                method, path, params=params, json=json, data=data, headers=headers
            )
            status = response.status_code
            outcome = upstream_outcome(status)
            return response
        except httpx.TimeoutException:
            outcome = "timeout"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"  # our own caller went away: not the service's doing
            raise
        finally:
            if outcome != "cancelled":
                observe_upstream(self.service, method, outcome, time.perf_counter() - started)
            if tracer is not None:
                tracer.end_upstream(span, status, outcome)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        chunk_timeout: float | None = None,
    ) -> AsyncIterator[UpstreamStream]:
        """``async with client.stream("GET", "/events") as upstream:`` an answer read as it arrives.

        Until the response headers arrive this is :meth:`request`'s error mapping
        (unreachable → 502, timeout → 504, a 5xx → 502 with the start of its body
        logged, a 4xx yielded for the caller), except that nothing is retried: a
        stream may have side effects (an LLM call costs money) and a caller that
        wants a retry can open the stream again.

        ``chunk_timeout`` (default the client's read timeout) bounds each wait for
        the next chunk, the first included. A stream expected to be quiet for long
        (heartbeats every 30s) passes a longer one; the wait for the headers is
        then bounded by that longer timeout too, since a service slow to send its
        first token is usually also slow to send its headers.

        Leaving the block, normally, by an exception, or because the consuming
        task was cancelled (our own client went away), closes the response at
        once, so the upstream sees the disconnect and stops producing, and the
        half-read connection is dropped instead of returned to the pool.
        """
        method = method.upper()
        per_chunk = self.read_timeout if chunk_timeout is None else chunk_timeout
        wait = max(self.read_timeout, per_chunk)
        tracer = tracing.active()
        span = None
        if tracer is not None:
            span, carrier = tracer.start_upstream(self.service, method, path)
            headers = {**(headers or {}), **carrier}
        outgoing = self._http.build_request(
            method,
            path,
            params=params,
            json=json,
            headers=headers,
            # httpx's read timeout is per socket read, so it bounds the headers and is
            # the backstop behind each chunk's own asyncio timeout, never shorter than it.
            timeout=httpx.Timeout(self.read_timeout, connect=self.connect_timeout, read=wait),
        )
        started = time.perf_counter()
        status: int | None = None
        outcome = "unreachable"
        try:
            response = await self._http.send(outgoing, stream=True)
            status = response.status_code
            outcome = upstream_outcome(status)
        except httpx.TimeoutException as error:
            outcome = "timeout"
            raise self._timed_out(method, path, error, read_limit=wait) from error
        except httpx.TransportError as error:
            raise self._unreachable(method, path, error) from error
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            # a stream is measured up to its headers; what follows is the caller's pace
            if outcome != "cancelled":
                observe_upstream(self.service, method, outcome, time.perf_counter() - started)
            if tracer is not None:
                tracer.end_upstream(span, status, outcome)
        upstream = UpstreamStream(self, response, chunk_timeout=per_chunk)
        try:
            if response.status_code >= 500:
                try:
                    body = await upstream.read(LOGGED_BODY)
                except UpstreamStreamError:
                    body = b""  # the status is what matters; a body that does not come is no loss
                log.warning(
                    "%s %s %s answered HTTP %s: %s",
                    self.service,
                    method,
                    path,
                    response.status_code,
                    body.decode(upstream.encoding, errors="replace"),
                )
                raise ApiError(
                    502,
                    "upstream_unavailable",
                    f"{self.service} failed to answer (HTTP {response.status_code}).",
                )
            yield upstream
        finally:
            await response.aclose()

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

    def _timed_out(
        self,
        method: str,
        path: str,
        error: httpx.TimeoutException,
        *,
        read_limit: float | None = None,
    ) -> ApiError:
        if isinstance(error, httpx.ConnectTimeout):
            limit = self.connect_timeout
        else:
            limit = self.read_timeout if read_limit is None else read_limit
        log.warning("%s %s %s timed out after %gs: %r", self.service, method, path, limit, error)
        return ApiError(
            504, "upstream_timeout", f"{self.service} did not answer within {limit:g}s."
        )

    def _unreachable(self, method: str, path: str, error: httpx.TransportError) -> ApiError:
        log.warning("%s %s %s failed: %r", self.service, method, path, error)
        return ApiError(502, "upstream_unavailable", f"{self.service} could not be reached.")
