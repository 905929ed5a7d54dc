"""A fake OpenAI-compatible chat-completions API on a real socket, streaming as scripted.

``POST /v1/chat/completions`` with ``"stream": true`` answers Server-Sent Events the way
OpenAI-compatible servers do: ``data: {"choices": [{"delta": {"content": ...}}]}`` per
token, then ``data: [DONE]``. Built on :class:`~tests.fakes.streaming.StreamingServer`, so a
test can hold the stream after any token (slow), stall it, cut the connection mid-stream,
or answer an error status.
"""

from __future__ import annotations

import json
import threading
from types import TracebackType
from typing import Any

from tests.fakes.streaming import Ending, Script, Seen, StreamingServer

PATH = "/v1/chat/completions"
MODEL = "coach-small"


def chunk(content: str | None = None, *, role: str | None = None) -> bytes:
    """One streamed completion chunk as an SSE frame."""
    delta: dict[str, Any] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


class FakeLlm:
    """``with FakeLlm() as llm:`` serves at ``llm.base_url`` (…/v1); script with :meth:`answer`."""

    def __init__(self) -> None:
        self.server = StreamingServer()
        self.base_url = ""

    def __enter__(self) -> FakeLlm:
        self.server.__enter__()
        self.base_url = f"{self.server.url}/v1"
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.__exit__(kind, error, traceback)

    def answer(
        self,
        tokens: list[str],
        *,
        hold_after: int | None = None,
        ending: Ending = "end",
        status: int = 200,
    ) -> threading.Event:
        """Stream ``tokens``; after ``hold_after`` of them wait until the returned event is
        set. ``ending``: ``end`` (then ``[DONE]``), ``cut`` (the connection drops, no
        ``[DONE]``) or ``stall`` (nothing more is sent). A ``status`` other than 200 answers
        an OpenAI-style error body instead."""
        hold = threading.Event()
        if status != 200:
            error = {"error": {"message": "told to fail", "type": "server_error"}}
            body: list[bytes | threading.Event] = [json.dumps(error).encode()]
            self.server.scripts[PATH] = Script(
                status=status, headers={"Content-Type": "application/json"}, body=body
            )
            return hold
        body = [chunk(role="assistant")]
        for index, token in enumerate(tokens):
            if index == hold_after:
                body.append(hold)
            body.append(chunk(token))
        if ending == "end":
            body.append(DONE)
        self.server.scripts[PATH] = Script(
            headers={"Content-Type": "text/event-stream"}, body=body, ending=ending
        )
        return hold

    def requests(self) -> list[Seen]:
        return [seen for seen in self.server.requests if seen.path == PATH]
