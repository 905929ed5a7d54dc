"""Hooks the ``channels`` family defines: chat apps as plugins, and messages other families send.

A **channel** is a chat app users write to us from (WhatsApp, Heylo, anything a plugin
adds). A family adds one by implementing :func:`channels`, returning instances of a
:class:`Channel` subclass: the channel checks an inbound webhook against its raw body,
parses it into :class:`InboundMessage` and :class:`StatusUpdate` items, sends text
(optionally as a reply), and says what it can do (:attr:`Channel.capabilities`). The
``channels`` family does everything else the same way for every channel: the webhook
routes, deduplication, linking a chat identity to a user, handing messages to hare, the
outbox that sends, and message references. Mark the implementation
``@hookimpl(optionalhook=True)`` unless the family requires ``channels``.

A family sends a user a chat message with :func:`send_channel_message` (implemented by
``channels``) and, when that message carries a reference the user answers in the app,
learns the answer through its own :func:`channel_reference_answered`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from core import LoadedPlugin, Platform, User, hookspec

NAME = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
"""What a channel's name must look like: it is a path segment and a hare surface part."""

Capability = Literal["receive", "send", "reply", "reactions", "statuses", "templates"]
InboundKind = Literal["text", "reaction", "other"]
DeliveryStatus = Literal["sent", "delivered", "read", "failed"]


class WebhookRefused(Exception):
    """An inbound request the channel does not accept: answered ``status`` with ``code``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class SendFailure(Exception):
    """Sending failed for good (the chat app refused this message): it is not retried."""

    def __init__(self, detail: str, *, code: int | str | None = None) -> None:
        super().__init__(detail)
        self.code = code


class RetryLater(SendFailure):
    """The chat app is throttling or failing: send again after a backoff (or ``retry_after``)."""

    def __init__(
        self, detail: str, *, code: int | str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(detail, code=code)
        self.retry_after = retry_after


class TemplateRequired(SendFailure):
    """Free text is not allowed now (WhatsApp's 24-hour window): send it as a template."""


class Undeliverable(SendFailure):
    """This identity cannot receive messages (not on the app, blocked us): stop sending."""


class ChannelUnauthorized(SendFailure):
    """Our credentials were refused: nothing can be sent until a person fixes them."""


@dataclass(frozen=True)
class InboundMessage:
    """One message a chat identity sent us."""

    external_id: str  # the chat app's id (WhatsApp's wamid): the deduplication key
    sender: str  # the chat identity: WhatsApp's wa_id, Heylo's member id, ...
    kind: InboundKind
    text: str  # the text; a reaction's emoji; empty for other kinds
    sent_at: datetime
    reply_to: str | None = None  # external id of the message this one quotes
    reacted_to: str | None = None  # external id of the message a reaction is about


@dataclass(frozen=True)
class StatusUpdate:
    """What became of a message we sent (statuses may arrive out of order)."""

    external_id: str
    status: DeliveryStatus
    at: datetime
    error_code: str | None = None


@dataclass(frozen=True)
class Inbound:
    """Everything one webhook delivery carries."""

    messages: tuple[InboundMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()


@dataclass(frozen=True)
class OutboundText:
    """A text to send: to a chat identity, optionally quoting one of their messages."""

    to: str
    text: str
    reply_to: str | None = None


class Channel(ABC):
    """A chat app, as the ``channels`` family drives it. Subclass it and set the three
    class attributes; ``verify`` and ``parse`` run in the webhook request (keep them quick,
    no I/O), ``send`` in an outbox handler."""

    name: str
    display_name: str
    capabilities: frozenset[Capability] = frozenset({"receive"})

    def configured(self) -> bool:
        """Whether the deployment gave the channel its secrets; unconfigured, its webhook
        answers 503 and nothing is sent through it."""
        return True

    def handshake(self, args: Mapping[str, str]) -> str:
        """Answer a ``GET`` verification of the webhook URL (WhatsApp's ``hub.challenge``):
        the text to echo. Raise :class:`WebhookRefused` to refuse it."""
        raise WebhookRefused(405, "method_not_allowed", f"{self.display_name} sends no GET.")

    @abstractmethod
    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        """Accept a webhook only if it is signed over exactly ``body``; else raise
        :class:`WebhookRefused` (401 for a missing or wrong signature)."""

    @abstractmethod
    def parse(self, body: bytes) -> Inbound:
        """The messages and statuses of a verified body; ``ValueError`` if it is malformed."""

    async def send(self, message: OutboundText, *, as_template: bool = False) -> str:
        """Send ``message``; return the chat app's id for it. Raise a :class:`SendFailure`
        subclass for what the app answered; any other exception is retried later."""
        raise SendFailure(f"{self.display_name} cannot send messages")

    def ready(self) -> str:
        """A readiness check: the channel's state in a short public phrase, or raise
        ``RuntimeError`` while it cannot work (credentials refused)."""
        return "configured" if self.configured() else "off: not configured"

    async def open(self) -> None:  # noqa: B027 (optional: most channels need nothing)
        """Start what the channel needs (HTTP clients); called at the app's start-up."""

    async def close(self) -> None:  # noqa: B027
        """Release what :meth:`open` started; called at shutdown."""


@hookspec
def channels(plugin: LoadedPlugin, platform: Platform) -> Iterable[Channel]:
    """Return the chat channels this family adds.

    Runs: once, when the app is built (``channels`` gathers its registry with
    ``Platform.collect`` in its ``blueprints`` hook).
    Gets: ``plugin`` (the contributing family, whose settings the channel may read),
    ``platform``.
    Returns: instances of :class:`Channel` subclasses, each with a ``name`` matching
    :data:`NAME`. Each name becomes a value of ``{channel}`` in ``/channel_webhooks/{channel}``
    and ``/channel_associations``. Anything that is not a :class:`Channel`, or an
    implementation that raises, is the contributing family's failure (by its
    ``on_failure``); a name two families contribute stops start-up naming both.
    May be async: no.
    """


@hookspec
def send_channel_message(
    plugin: LoadedPlugin,
    platform: Platform,
    user: User,
    text: str,
    sender: str,
    reference_subject: str | None,
    reference_ttl_seconds: int | None,
) -> Mapping[str, Any]:
    """Send ``text`` to every chat identity ``user`` linked, through the outbox.

    Runs: when a family calls ``await platform.call_each("send_channel_message", ...)``,
    ideally inside the transaction of the change that causes the message.
    Gets: ``plugin``, ``platform``, ``user``, ``text`` (1-4096 characters), ``sender``
    (the calling family's name: its ``plugin.name``), ``reference_subject`` (a short
    string of the caller's own, such as ``"goal:42"``; with it the message carries a
    reference the user answers in the app)
    and ``reference_ttl_seconds`` (how long the reference may be answered; default the
    family's setting).
    Returns: ``{"queued": <messages queued>, "reference_id": <id or None>}``. The
    reference's answer reaches the sender's :func:`channel_reference_answered`.
    May be async: yes.
    """


@hookspec
def channel_reference_answered(
    plugin: LoadedPlugin,
    platform: Platform,
    user: User,
    reference_id: str,
    subject: str,
    answer: str,
) -> None:
    """Learn that ``user`` answered a reference this family sent.

    Runs: once per reference, inside the transaction of ``POST
    /channels/message-references/{reference_id}/confirm``, only for the family named as
    ``sender`` when the message was sent.
    Gets: ``plugin`` (the sending family), ``platform``, ``user``, ``reference_id``,
    ``subject`` (as the family gave it) and ``answer``
    (``"confirmed"`` or ``"declined"``).
    Returns: nothing; raising rolls the answer back (the user sees a 502 and may retry).
    May be async: yes.
    """
