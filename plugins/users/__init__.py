"""The ``users`` family: user records, athlete profiles, push notifications, the account."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from quart import Blueprint, Quart

from core import (
    Identity,
    LoadedPlugin,
    OutboxHandler,
    OutboxItem,
    PluginInfo,
    PushMessage,
    ReadinessCheck,
    current_runtime,
    hookimpl,
)
from plugins.users import service
from plugins.users.clients import PUSH_SENDER, UnconfiguredPushSender, push_sender
from plugins.users.models import User
from plugins.users.routes import attestable_blueprint, blueprint
from plugins.users.schemas import ProfileIn, ProfilePatch, UsersSettings

PLUGIN = PluginInfo(
    version="1.2.0",
    description="User records synced from Firebase identities, athlete profiles, device push "
    "tokens and notifications, account deletion and export.",
)


@hookimpl
def settings_model() -> type[UsersSettings]:
    return UsersSettings


@hookimpl
def blueprints(plugin: LoadedPlugin) -> Iterable[Blueprint]:
    settings: UsersSettings = plugin.settings
    return [blueprint, attestable_blueprint(settings.require_attestation_for)]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.users.models"]


@hookimpl
def outbox_handlers(plugin: LoadedPlugin) -> Mapping[str, OutboxHandler]:
    async def deliver(item: OutboxItem) -> None:
        await service.deliver(plugin.stash[PUSH_SENDER], item)

    return {service.PUSH_KIND: deliver}


@hookimpl
async def startup(plugin: LoadedPlugin, app: Quart) -> None:
    auth = current_runtime(app).auth
    assert auth is not None  # core starts Firebase before any family
    settings: UsersSettings = plugin.settings
    plugin.stash[PUSH_SENDER] = await push_sender(
        auth, settings.fcm_url, settings.fcm_timeout_seconds
    )


@hookimpl
def readiness_checks(plugin: LoadedPlugin) -> Mapping[str, ReadinessCheck]:
    async def push() -> str | None:
        sender = plugin.stash[PUSH_SENDER]
        if isinstance(sender, UnconfiguredPushSender):
            return f"not configured: {sender.reason}; pushes are retried with backoff"
        return None

    return {"push": push}


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    sender = plugin.stash.get(PUSH_SENDER)
    if sender is not None:
        del plugin.stash[PUSH_SENDER]
        await sender.aclose()


@hookimpl
async def resolve_user(identity: Identity) -> User:
    return await service.find_registered_user(identity)


@hookimpl
async def send_push(user: User, push: PushMessage) -> None:
    await service.notify(user, push)


@hookimpl
async def account_deleted(user: User) -> None:
    await service.erase(user)


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    return await service.export(user)


@hookimpl(optionalhook=True)
async def athlete_profile_filled(user: User, profile: Mapping[str, Any]) -> None:
    """A completed onboarding intake: create the profile for its sport, or update it."""
    data = ProfileIn.model_validate(dict(profile))
    existing = next((p for p in await service.list_profiles(user) if p.sport == data.sport), None)
    if existing is None:
        await service.create_profile(user, data)
    else:
        patch = ProfilePatch.model_validate(data.model_dump(exclude_unset=True))
        await service.update_profile(user, existing.id, patch)
