"""The contract and logic of ``POST /bench/echo``, shared by all three benchmarked apps.

It imports pydantic only: the bare Quart and FastAPI apps use it without
loading anything of the platform, and the ``echo`` family serves it through
core's ``@endpoint``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Split(BaseModel):
    """One lap of a workout."""

    model_config = ConfigDict(extra="forbid")

    km: float = Field(gt=0, le=100)
    seconds: int = Field(gt=0, le=86_400)


class WorkoutIn(BaseModel):
    """A small but realistic request body: strings, an enum, bounds, a nested list."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    sport: Literal["run", "ride", "swim"]
    tags: list[str] = Field(default_factory=list, max_length=10)
    splits: list[Split] = Field(min_length=1, max_length=100)


class WorkoutOut(BaseModel):
    """The echoed workout plus totals computed from it."""

    name: str
    sport: str
    tags: list[str]
    splits: list[Split]
    distance_km: float
    duration_s: int
    pace_s_per_km: float


def summarise(workout: WorkoutIn) -> WorkoutOut:
    """Echo ``workout`` with its totals, so every handler does the same bit of real work."""
    distance = sum(split.km for split in workout.splits)
    duration = sum(split.seconds for split in workout.splits)
    return WorkoutOut(
        name=workout.name,
        sport=workout.sport,
        tags=workout.tags,
        splits=workout.splits,
        distance_km=round(distance, 3),
        duration_s=duration,
        pace_s_per_km=round(duration / distance, 2),
    )
