"""A test family that asks users questions over their chat channels.

It sends through the ``channels`` family's ``send_channel_message`` hook (never importing
``channels``) and learns each answer through ``channel_reference_answered``; the answers
it heard are in :data:`ANSWERS`, and ``fail_next`` makes the next answer raise.
"""

from __future__ import annotations

from typing import Any

from core import LoadedPlugin, Platform, PluginInfo, User, hookimpl

PLUGIN = PluginInfo(version="1.0.0", description="Asks questions over chat.", requires=("users",))

ANSWERS: list[dict[str, Any]] = []
STATE = {"fail_next": False}


async def ask(
    platform: Platform, user: User, text: str, subject: str, ttl: int | None = None
) -> Any:
    """Send ``text`` with a reference; what ``channels`` answered."""
    [(_, result)] = await platform.call_each(
        "send_channel_message",
        user=user,
        text=text,
        sender="pager",
        reference_subject=subject,
        reference_ttl_seconds=ttl,
    )
    return result


@hookimpl(optionalhook=True)
async def channel_reference_answered(
    plugin: LoadedPlugin, user: User, reference_id: str, subject: str, answer: str
) -> None:
    if STATE["fail_next"]:
        STATE["fail_next"] = False
        raise RuntimeError("pager could not take the answer")
    ANSWERS.append(
        {
            "family": plugin.name,
            "user_id": user.id,
            "reference_id": reference_id,
            "subject": subject,
            "answer": answer,
        }
    )
