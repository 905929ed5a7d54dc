"""The ``home`` family: the Home screen's state, boards streamed as they are made, activity
details, feedback and check-ins. Other families fill it through the hooks of
``hookspecs.py``. See docs/families/home.md."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pluggy
from quart import Blueprint

from core import LoadedPlugin, Platform, PluginInfo, ReadinessCheck, ServiceClient, User, hookimpl
from plugins.home import hookspecs, service
from plugins.home.clients import LLM, ChatClient
from plugins.home.hookspecs import SectionSpec
from plugins.home.narrative import LlmWriter, RulesWriter
from plugins.home.routes import blueprint
from plugins.home.runtime import Generations
from plugins.home.schemas import GENERATIONS, SECTIONS, WRITER, HomeSettings

PLUGIN = PluginInfo(
    version="1.0.0",
    description="The Home screen: its state, boards streamed as they are made, check-ins.",
    requires=("users",),
)

CHECK_INS = SectionSpec(name="check_ins", title="How you felt", order=50)


@hookimpl
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def settings_model() -> type[HomeSettings]:
    return HomeSettings


@hookimpl
def blueprints(plugin: LoadedPlugin, platform: Platform) -> Iterable[Blueprint]:
    plugin.stash[SECTIONS] = platform.collect("board_sections", SectionSpec, key=lambda s: s.name)
    return [blueprint]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.home.models"]


@hookimpl
async def startup(plugin: LoadedPlugin) -> None:
    settings: HomeSettings = plugin.settings
    plugin.stash[GENERATIONS] = Generations()
    if settings.llm_base_url is None:
        plugin.stash[WRITER] = RulesWriter()
        return
    key = settings.llm_api_key.get_secret_value()
    http = ServiceClient(
        LLM,
        str(settings.llm_base_url),
        connect_timeout=settings.llm_connect_timeout,
        read_timeout=settings.llm_chunk_timeout,
        retries=0,
        headers={"Authorization": f"Bearer {key}"} if key else None,
    )
    plugin.stash[WRITER] = LlmWriter(ChatClient(http, settings.llm_model, settings.llm_max_tokens))


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    generations = plugin.stash.get(GENERATIONS)
    if generations is not None:
        await generations.stop()  # boards cut short are marked lost
    writer = plugin.stash.get(WRITER)
    if isinstance(writer, LlmWriter):
        await writer.client.http.aclose()


@hookimpl
def readiness_checks(plugin: LoadedPlugin) -> Mapping[str, ReadinessCheck]:
    async def narrative() -> str:
        writer = plugin.stash[WRITER]
        if isinstance(writer, LlmWriter):
            return f"llm writer, model {writer.client.model!r} (not called by readiness)"
        return "rules writer (no llm_base_url)"

    return {"narrative": narrative}


@hookimpl
async def home_parts(user: User) -> Mapping[str, Any]:
    return await service.own_parts(user)


@hookimpl
def board_sections() -> Iterable[SectionSpec]:
    return [CHECK_INS]


@hookimpl
async def board_section(user: User, name: str) -> Mapping[str, Any] | None:
    return await service.check_in_section(user) if name == CHECK_INS.name else None


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
