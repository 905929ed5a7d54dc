"""The outside services of the ``users`` family: FCM (push) and Firebase Authentication.

Both are reached through firebase-admin, which is synchronous: every call runs in a worker
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import firebase_admin
import google.auth.credentials
import requests.adapters
from firebase_admin import auth as firebase_auth
from firebase_admin import exceptions as firebase_errors
from firebase_admin import messaging
from google.auth.exceptions import GoogleAuthError
from urllib3.util.retry import Retry

GOOGLE_FCM = "https://fcm.googleapis.com"


@dataclass(frozen=True)
class Push:
    """One notification for one device token."""

    token: str
    title: str
    body: str
    data: Mapping[str, str]


class TokenUnregistered(Exception):
    """FCM says the token is stale (``UNREGISTERED``): the app was uninstalled or reset."""


class PushRejected(Exception):
    """FCM refused the message for good (bad token format, sender mismatch, bad payload)."""


class PushSender(Protocol):
    """Sends one push. Raises :class:`TokenUnregistered` or :class:`PushRejected` when
    retrying cannot help; any other exception is worth retrying later."""

    async def send(self, push: Push) -> str:
        """Send ``push``; return FCM's message name."""
        ...

    def close(self) -> None: ...


class FirebasePushSender:
    """firebase-admin's FCM client (HTTP v1) for our Firebase app.

    It holds its own messaging service for the app, built from the app's project and
    credential, so that it can (1) send to ``fcm_url`` when that is set: firebase-admin
    hard-codes Google's URL, so the service's URL is replaced, and for a URL that is not
    Google's the service gets a fixed offline token instead of the app's credential; and
    (2) leave retries to the outbox: firebase-admin would retry a 500/503 up to four times
    with sleeps in the worker thread, and retry a POST after a read error, which can send
    a push twice. Both touch firebase-admin internals (``_MessagingService``), which is
    why ``firebase-admin`` is pinned below 8; the push tests exercise them against a fake
    FCM server over a real socket.
    """

    def __init__(self, app: firebase_admin.App, fcm_url: str = "", timeout: float = 10.0) -> None:
        base = fcm_url or GOOGLE_FCM
        credential = app.credential if _is_google(base) else _OfflineCredential()
        self._service = messaging._MessagingService(
            _AppView(app.project_id, {"httpTimeout": timeout}, credential)
        )
        self._service._fcm_url = f"{base}/v1/projects/{app.project_id}/messages:send"
        no_retries = Retry(total=None, connect=1, read=0, redirect=0, status=0, other=0)
        self._service._client.session.mount(
            base, requests.adapters.HTTPAdapter(max_retries=no_retries)
        )

    async def send(self, push: Push) -> str:
        message = messaging.Message(
            token=push.token,
            notification=messaging.Notification(title=push.title, body=push.body),
            data=dict(push.data),
        )
        try:
            return await asyncio.to_thread(self._service.send, message)
        except messaging.UnregisteredError as error:
            raise TokenUnregistered(str(error)) from error
        except (messaging.SenderIdMismatchError, firebase_errors.InvalidArgumentError) as error:
            raise PushRejected(f"{error.code}: {error}") from error

    def close(self) -> None:
        self._service._client.close()


def _is_google(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "googleapis.com" or host.endswith(".googleapis.com")


class _AppView:
    """What ``_MessagingService`` reads from a Firebase app: project, options, credential."""

    def __init__(self, project_id: str | None, options: dict[str, Any], credential: Any) -> None:
        self.project_id = project_id
        self.options = options
        self.credential = credential


class _OfflineCredential(firebase_admin.credentials.Base):
    """A credential for a local FCM-compatible server, which needs no Google account."""

    def get_credential(self) -> google.auth.credentials.Credentials:
        return _FixedToken()


class _FixedToken(google.auth.credentials.Credentials):
    def __init__(self) -> None:
        super().__init__()
        self.token = "local-fcm-token"

    def refresh(self, request: Any) -> None:
        self.token = "local-fcm-token"


class PushUnavailable(Exception):
    """This deployment cannot reach FCM at all (no credential); retrying later may help."""


class UnconfiguredPushSender:
    """Stands in when no Google credential is available and no ``fcm_url`` is set."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def send(self, push: Push) -> str:
        # Not the message's fault: it stays queued and is retried like an FCM outage.
        raise PushUnavailable(f"push is not configured: {self.reason}")

    def close(self) -> None:
        return None


def push_sender(app: firebase_admin.App, fcm_url: str, timeout: float) -> PushSender:
    """The sender for this deployment: FCM, or one that says why it cannot send."""
    try:
        return FirebasePushSender(app, fcm_url, timeout)
    except (RuntimeError, GoogleAuthError) as error:  # no Google credential to be had
        return UnconfiguredPushSender(str(error))


class IdentityUnavailable(Exception):
    """Firebase Authentication could not delete the user; retrying may help."""


async def delete_firebase_user(app: firebase_admin.App, uid: str) -> None:
    """Delete the Firebase user ``uid``; a user already gone counts as deleted."""

    def delete() -> None:
        try:
            firebase_auth.delete_user(uid, app=app)
        except firebase_auth.UserNotFoundError:
            return
        except firebase_errors.FirebaseError as error:
            raise IdentityUnavailable(f"{error.code}: {error}") from error

    await asyncio.to_thread(delete)
