"""The outside services of the ``users`` family: FCM (push) and Firebase Authentication.

Pushes go to FCM's public HTTP v1 API (``POST /v1/projects/{project}/messages:send``)
through core's :class:`~core.ServiceClient`: explicit timeouts, and a POST is sent once
(retrying is the outbox's job, so a push is not sent twice by a retry here). The bearer
token is an OAuth2 access token of the deployment's Google credential, from google-auth;
refreshing it is blocking, so it runs in a worker thread, and only when the token is
missing or about to expire. A local FCM-compatible server (``fcm_url`` not on
``googleapis.com``) gets a fixed token and needs no credential.

Deleting a Firebase user goes through firebase-admin (synchronous, in a worker thread).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests
import httpx
from pydantic import BaseModel

from core import ApiError, ServiceClient, StashKey

log = logging.getLogger("imperfect.users.fcm")

GOOGLE_FCM = "https://fcm.googleapis.com"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
LOCAL_FCM_TOKEN = "local-fcm-token"  # what a local FCM-compatible server is sent
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
# Asks for FCM's v1 error format (the FcmError details below), as Google's SDKs do.
FCM_HEADERS = {"X-GOOG-API-FORMAT-VERSION": "2"}
REJECTED = frozenset({"INVALID_ARGUMENT", "SENDER_ID_MISMATCH"})  # retrying cannot help


@dataclass(frozen=True)
class Push:
    """One notification for one device token.

    ``collapse_id`` (the notification's id) makes a repeat of the same notification
    replace the first on the phone instead of showing twice: Android's notification
    ``tag`` and APNs' ``apns-collapse-id``.
    """

    token: str
    title: str
    body: str
    data: Mapping[str, str]
    collapse_id: str | None = None


class TokenUnregistered(Exception):
    """FCM says the token is stale (``UNREGISTERED``): the app was uninstalled or reset."""


class PushRejected(Exception):
    """FCM refused the message for good (bad token format, sender mismatch, bad payload)."""


class FcmUnavailable(Exception):
    """FCM could not take the push now (5xx, 429, timeout, unreachable, auth); retry later."""


class PushUnavailable(Exception):
    """This deployment cannot reach FCM at all (no credential); retrying later may help."""


class PushSender(Protocol):
    """Sends one push. Raises :class:`TokenUnregistered` or :class:`PushRejected` when
    retrying cannot help; any other exception is worth retrying later."""

    async def send(self, push: Push) -> str:
        """Send ``push``; return FCM's message name."""
        ...

    async def aclose(self) -> None: ...


PUSH_SENDER: StashKey[PushSender] = StashKey("push_sender")


class GoogleProject(Protocol):
    """What the sender needs of core's Firebase (``current_runtime(app).auth``)."""

    @property
    def project_id(self) -> str: ...

    def google_credentials(self) -> google.auth.credentials.Credentials: ...


# --- access tokens ---------------------------------------------------------------------


class AccessTokens(Protocol):
    async def current(self) -> str:
        """A bearer token that is valid now."""
        ...

    def reject(self, token: str) -> None:
        """FCM refused ``token`` (401): get a new one next time."""

    def close(self) -> None: ...


class FixedToken:
    """For a local FCM-compatible server, which needs no Google account."""

    async def current(self) -> str:
        return LOCAL_FCM_TOKEN

    def reject(self, token: str) -> None:
        return None

    def close(self) -> None:
        return None


class GoogleAccessTokens:
    """OAuth2 access tokens of a Google credential, refreshed off the event loop.

    A token is refreshed only when google-auth says it is not valid (missing, or expiring
    within a few minutes) or FCM refused it; concurrent sends wait for one refresh.
    """

    def __init__(self, credentials: google.auth.credentials.Credentials, timeout: float) -> None:
        self._credentials = google.auth.credentials.with_scopes_if_required(
            credentials, [FCM_SCOPE]
        )
        self._request = _TimedRequest(timeout)
        self._lock = asyncio.Lock()
        self._rejected: str | None = None

    @property
    def credentials(self) -> google.auth.credentials.Credentials:
        """The credential, scoped for FCM if it needed scopes."""
        return self._credentials

    async def current(self) -> str:
        credentials = self._credentials
        if self._usable():
            return credentials.token
        async with self._lock:
            if not self._usable():  # another send may have refreshed it meanwhile
                try:
                    await asyncio.to_thread(credentials.refresh, self._request)
                except google.auth.exceptions.GoogleAuthError as error:
                    raise FcmUnavailable(f"no FCM access token: {error}") from error
                self._rejected = None
            return credentials.token

    def _usable(self) -> bool:
        credentials = self._credentials
        return bool(credentials.valid and credentials.token != self._rejected)

    def reject(self, token: str) -> None:
        self._rejected = token

    def close(self) -> None:
        self._request.session.close()


class _TimedRequest(google.auth.transport.requests.Request):
    """google-auth's transport, with the send's time limit instead of its 120 s default."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        return super().__call__(url, method, body, headers, timeout or self._timeout, **kwargs)


# --- FCM -------------------------------------------------------------------------------


class _Sent(BaseModel):
    name: str


@dataclass(eq=False)
class _Channel:
    """A client that sends one bearer token; retired (and closed once idle) on a new one."""

    client: ServiceClient
    token: str
    sending: int = 0
    retired: bool = False
    closed: bool = False


class FcmPushSender:
    """FCM's HTTP v1 ``messages:send``, one POST per push, through :class:`ServiceClient`."""

    def __init__(self, project_id: str, base_url: str, timeout: float, tokens: AccessTokens):
        self.base_url = base_url
        self.timeout = timeout
        self._path = f"/v1/projects/{project_id}/messages:send"
        self._tokens = tokens
        self._channel: _Channel | None = None

    async def send(self, push: Push) -> str:
        channel = await self._open_channel()
        channel.sending += 1
        try:
            response = await channel.client.request(
                "POST", self._path, json={"message": fcm_message(push)}, retries=0
            )
            if response.is_success:
                return channel.client.parse(response, _Sent).name
        except ApiError as error:  # 5xx, timeout, unreachable, unexpected body
            raise FcmUnavailable(f"{error.code}: {error.detail}") from error
        finally:
            channel.sending -= 1
            await self._close_if_idle(channel)
        if response.status_code == 401:
            self._tokens.reject(channel.token)
        raise fcm_failure(response)

    async def _open_channel(self) -> _Channel:
        token = await self._tokens.current()
        current = self._channel
        if current is not None and current.token == token:
            return current
        self._channel = _Channel(
            ServiceClient(
                "FCM",
                self.base_url,
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                retries=0,
                headers={"Authorization": f"Bearer {token}", **FCM_HEADERS},
            ),
            token,
        )
        if current is not None:
            current.retired = True
            await self._close_if_idle(current)
        return self._channel

    async def _close_if_idle(self, channel: _Channel) -> None:
        if channel.retired and not channel.sending and not channel.closed:
            channel.closed = True
            await channel.client.aclose()

    async def aclose(self) -> None:
        if self._channel is not None:
            self._channel.retired = True
            await self._close_if_idle(self._channel)
            self._channel = None
        self._tokens.close()


def fcm_message(push: Push) -> dict[str, Any]:
    """The v1 ``Message`` of ``push``: a notification to one registration token."""
    message: dict[str, Any] = {
        "token": push.token,
        "notification": {"title": push.title, "body": push.body},
        "data": dict(push.data),
    }
    if push.collapse_id:
        message["android"] = {"notification": {"tag": push.collapse_id}}
        message["apns"] = {"headers": {"apns-collapse-id": push.collapse_id}}
    return message


def fcm_failure(response: httpx.Response) -> Exception:
    """FCM's error answer as the exception the outbox handler acts on.

    ``{"error": {"code", "message", "status", "details": [{"@type": FcmError,
    "errorCode"}]}}``: ``UNREGISTERED`` is a stale token; ``INVALID_ARGUMENT`` and
    ``SENDER_ID_MISMATCH`` (or any 400) are the message's fault; anything else (429
    ``QUOTA_EXCEEDED``, 401, 403 without a sender mismatch, ...) may pass later.
    """
    status, error_code, message = _error_of(response)
    code = error_code or status or f"HTTP {response.status_code}"
    text = f"{code}: {message}" if message else code
    if error_code == "UNREGISTERED":
        return TokenUnregistered(text)
    if error_code in REJECTED or (error_code is None and response.status_code == 400):
        return PushRejected(text)
    log.warning("FCM answered HTTP %s: %s", response.status_code, text)
    return FcmUnavailable(f"HTTP {response.status_code} {text}")


def _error_of(response: httpx.Response) -> tuple[str | None, str | None, str]:
    """(Google status, FCM error code, message) of an error answer, as far as it parses."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return None, None, response.text[:200]
    error_code = None
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE:
            error_code = detail.get("errorCode")
    status = error.get("status")
    return (
        status if isinstance(status, str) else None,
        error_code if isinstance(error_code, str) else None,
        str(error.get("message") or ""),
    )


def is_google(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "googleapis.com" or host.endswith(".googleapis.com")


# --- when there is no FCM to be had ----------------------------------------------------


class UnconfiguredPushSender:
    """Stands in when no Google credential is available and no local ``fcm_url`` is set."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def send(self, push: Push) -> str:
        # Not the message's fault: it stays queued and is retried like an FCM outage.
        raise PushUnavailable(f"push is not configured: {self.reason}")

    async def aclose(self) -> None:
        return None


async def push_sender(firebase: GoogleProject, fcm_url: str, timeout: float) -> PushSender:
    """The sender for this deployment: FCM, or one that says why it cannot send.

    Google's FCM (no ``fcm_url``, or one on ``googleapis.com``) needs the deployment's
    Google credential; finding it may block (Application Default Credentials may ask the
    metadata server), so it runs in a worker thread.
    """
    base = fcm_url or GOOGLE_FCM
    if not is_google(base):
        return FcmPushSender(firebase.project_id, base, timeout, FixedToken())
    try:
        credentials = await asyncio.to_thread(firebase.google_credentials)
    except (RuntimeError, google.auth.exceptions.GoogleAuthError) as error:
        return UnconfiguredPushSender(str(error))
    return FcmPushSender(
        firebase.project_id, base, timeout, GoogleAccessTokens(credentials, timeout)
    )
