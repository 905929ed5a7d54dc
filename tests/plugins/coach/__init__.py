"""A test family for ``home``: a part of the Home screen and board sections whose timing and
failures the test controls.

Its sections are its ``sections`` setting. ``countdown`` and ``volume`` answer (after
waiting for ``GATES[name]`` when the test put an event there); ``broken`` raises with
internals in its message (which must not reach the client); ``sleepy`` never answers;
``shapeless`` returns something that is not a section. Its ``active_goal`` part answers,
fails or hangs as ``part`` says. This is the shape the ``events`` family's own part and
countdown section take (docs/families/home.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from core import LoadedPlugin, PluginInfo, User, hookimpl

PLUGIN = PluginInfo(version="1.0.0", description="Board sections on a test's schedule.")

RACE_DAY = date(2030, 4, 21)
GATES: dict[str, asyncio.Event] = {}
"""Section name -> an event the section waits on before it answers (set by the test)."""
STARTED: dict[str, asyncio.Event] = {}
"""Section name -> set when the section started computing."""


class CoachSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sections: list[str] = ["countdown", "volume"]
    part: Literal["ok", "fail", "hang"] = "ok"


@hookimpl
def settings_model() -> type[CoachSettings]:
    return CoachSettings


@hookimpl
def board_sections(plugin: LoadedPlugin) -> Iterable[Mapping[str, Any]]:
    return [
        {"name": name, "title": name.replace("_", " ").title(), "order": 10 + index}
        for index, name in enumerate(plugin.settings.sections)
    ]


@hookimpl
async def board_section(user: User, name: str) -> Mapping[str, Any] | None:
    STARTED.setdefault(name, asyncio.Event()).set()
    gate = GATES.get(name)
    if gate is not None:
        await gate.wait()
    if name == "broken":
        raise RuntimeError("connection to db-internal.example:5432 refused")
    if name == "sleepy":
        await asyncio.Event().wait()
    if name == "shapeless":
        return {"headline": 42}
    if name == "countdown":
        days = (RACE_DAY - date.today()).days
        return {
            "summary": f"{days} days to go to the Coach Marathon",
            "metrics": [{"label": "days to go", "value": days, "unit": "days"}],
            "data": {"user_id": user.id},
        }
    return {
        "summary": "42 km this week",
        "metrics": [{"label": "distance", "value": 42, "unit": "km"}],
        "data": {"user_id": user.id},
    }


@hookimpl
async def home_parts(plugin: LoadedPlugin, user: User) -> Mapping[str, Any]:
    if plugin.settings.part == "fail":
        raise RuntimeError("the goal store is down")
    if plugin.settings.part == "hang":
        await asyncio.Event().wait()
    days = (RACE_DAY - date.today()).days
    return {"active_goal": {"event": "Coach Marathon", "days_to_go": days, "user_id": user.id}}
