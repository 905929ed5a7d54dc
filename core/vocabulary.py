"""Words every family means the same by: a sport, an athlete's level, units of measure.

Each is one named component of the merged spec, so an event's sport, a profile's sport and
an intake answer are one type for clients, and a family that needs one never copies (or
imports) another family's declaration.
"""

from __future__ import annotations

from typing import Annotated, Literal

from core.openapi import SpecComponent

Sport = Annotated[
    Literal[
        "running",
        "trail_running",
        "cycling",
        "mountain_biking",
        "triathlon",
        "swimming",
        "rowing",
        "other",
    ],
    SpecComponent("Sport", "The sport of an athlete profile."),
]
Level = Annotated[
    Literal["beginner", "intermediate", "advanced", "elite"],
    SpecComponent("Level", "The athlete's level in a sport."),
]
Units = Annotated[
    Literal["metric", "imperial"], SpecComponent("Units", "How distances and weights are shown.")
]
