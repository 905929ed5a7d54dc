"""The board's narrative: a few sentences over its sections, from a pluggable writer.

The ``rules`` writer (the default) is deterministic: the same sections always give the same
text. The ``llm`` writer asks an OpenAI-compatible model (``llm_base_url``), and its text
arrives token by token. Either way the board's stream gets the text as ``narrative`` events.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

from plugins.home.clients import ChatClient
from plugins.home.schemas import BoardSection

SYSTEM = (
    "You are a running and endurance coach. Write two to four short sentences for the "
    "athlete's Home board from the sections below. Use only the facts given; no lists, "
    "no headings, no medical advice."
)


class RulesWriter:
    """One sentence per section, in board order, from what each section says of itself."""

    name = "rules"

    async def write(self, sections: Sequence[BoardSection]) -> AsyncIterator[str]:
        if not sections:
            yield "Nothing new to show yet: connect a provider or set a goal to fill your board."
            return
        for index, section in enumerate(sections):
            summary = section.summary.strip()
            if summary[-1] not in ".!?":
                summary += "."
            yield ("" if index == 0 else " ") + f"{section.title}: {summary}"


class LlmWriter:
    """The sections, as JSON, to the model; its answer streamed as it comes."""

    name = "llm"

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    async def write(self, sections: Sequence[BoardSection]) -> AsyncIterator[str]:
        facts = [s.model_dump(include={"title", "summary", "metrics"}) for s in sections]
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": json.dumps(facts, ensure_ascii=False)},
        ]
        async for piece in self.client.complete(messages):
            yield piece
