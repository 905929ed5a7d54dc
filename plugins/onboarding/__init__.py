"""The ``onboarding`` family: the step-by-step intake that fills the athlete profile, and
race recommendations ranked from it and the events catalogue."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pluggy
from quart import Blueprint

from core import PluginInfo, User, hookimpl
from plugins.onboarding import hookspecs, service
from plugins.onboarding.routes import blueprint
from plugins.onboarding.schemas import IntakeLocation, OnboardingSettings

PLUGIN = PluginInfo(
    version="1.0.0",
    description="The intake questionnaire that fills the athlete profile, and race "
    "recommendations from it; accepting one makes it the active event.",
    requires=("users", "events"),
)


@hookimpl
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def settings_model() -> type[OnboardingSettings]:
    return OnboardingSettings


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def spec_fragments() -> Mapping[str, Any]:
    """The location answer of the intake, which the request body refers to by name."""
    return {"components": {"schemas": {"IntakeLocation": IntakeLocation.model_json_schema()}}}


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.onboarding.models"]


@hookimpl(optionalhook=True)
async def stored_source_events(
    since: datetime | None, user_id: int | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    return await service.stored_events(since, user_id, after, limit)


@hookimpl
async def account_deleted(user: User) -> None:
    await service.erase(user)


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    return await service.export(user)
