"""An OpenAI-compatible chat-completions API, streamed: the narrative writer's model.

The contract we use (``POST {base_url}/chat/completions`` with ``"stream": true``): the
answer is Server-Sent Events, each ``data: {json}`` carrying the next text in
``choices[0].delta.content``, ending with ``data: [DONE]``. A stream that ends without
``[DONE]`` was cut.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence

from core import ApiError, ServiceClient, UpstreamStreamError

log = logging.getLogger("imperfect.home")

LLM = "llm"


class ChatClient:
    """Streams one completion at a time, token by token."""

    def __init__(self, http: ServiceClient, model: str, max_tokens: int) -> None:
        self.http = http
        self.model = model
        self.max_tokens = max_tokens

    async def complete(self, messages: Sequence[Mapping[str, str]]) -> AsyncIterator[str]:
        """The completion's text pieces as they arrive.

        Raises :class:`core.ApiError` (502/504) when the service cannot be reached, refuses
        or is slow to start, and :class:`core.UpstreamStreamError` when the stream breaks,
        stalls or is cut short after it started.
        """
        body = {
            "model": self.model,
            "messages": list(messages),
            "stream": True,
            "max_tokens": self.max_tokens,
        }
        async with self.http.stream("POST", "chat/completions", json=body) as upstream:
            if upstream.status_code != 200:
                detail = (await upstream.read(500)).decode(upstream.encoding, errors="replace")
                log.warning("llm refused a completion: HTTP %s %s", upstream.status_code, detail)
                raise ApiError(
                    502,
                    "upstream_rejected",
                    f"{LLM} refused the completion (HTTP {upstream.status_code}).",
                )
            async for line in upstream.lines():
                if not line.startswith("data:"):
                    continue  # comments, event names, blank separators
                payload = line[5:].strip()
                if payload == "[DONE]":
                    return
                piece = _content(payload)
                if piece:
                    yield piece
        raise UpstreamStreamError(
            502, "upstream_unavailable", f"{LLM} ended the stream early.", service=LLM
        )


def _content(payload: str) -> str:
    """``choices[0].delta.content`` of one chunk ('' when it carries none, e.g. the role)."""
    try:
        chunk = json.loads(payload)
        content = chunk["choices"][0]["delta"].get("content") if chunk.get("choices") else ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise UpstreamStreamError(
            502, "upstream_invalid", f"{LLM} sent a chunk that is not a completion.", service=LLM
        ) from error
    return content if isinstance(content, str) else ""
