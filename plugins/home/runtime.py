"""The family's run-time state on one instance: its board generations and narrative writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from plugins.home.schemas import BoardSection


@dataclass
class Generations:
    """This instance's generation tasks, and the wake-ups of the streams that follow them."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    wakeups: dict[int, asyncio.Event] = field(default_factory=dict)

    def waiter(self, board_id: int) -> asyncio.Event:
        return self.wakeups.setdefault(board_id, asyncio.Event())

    def wake(self, board_id: int) -> None:
        event = self.wakeups.pop(board_id, None)
        if event is not None:
            event.set()

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class Writer(Protocol):
    """A narrative writer: the board's text over its sections, piece by piece."""

    name: str

    def write(self, sections: Sequence[BoardSection]) -> AsyncIterator[str]: ...
