"""Helpers shared by the test modules of several families."""

from __future__ import annotations

import uuid
from pathlib import Path

from quart.testing import QuartClient

from core import Runtime
from core.emulator import Account, AuthEmulator
from core.outbox import Dispatcher

PASSWORD = "pass-word-1"
ROOT = Path(__file__).resolve().parents[2]  # the repository


def runtime_of(client: QuartClient) -> Runtime:
    """The :class:`~core.Runtime` of the app behind a test client."""
    return client.app.extensions["imperfect"]


def dispatcher_of(client: QuartClient) -> Dispatcher:
    """The started app's outbox dispatcher, to run deterministic passes with."""
    dispatcher = runtime_of(client).outbox
    assert dispatcher is not None, "the app is not serving"
    return dispatcher


def bearer(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.id_token}"}


def new_account(emulator: AuthEmulator) -> Account:
    """A fresh Firebase user, signed up in the Auth Emulator."""
    return emulator.sign_up(f"athlete-{uuid.uuid4().hex[:10]}@example.com", PASSWORD)


def fcm_token() -> str:
    """A token shaped like an FCM registration token."""
    return f"{uuid.uuid4().hex[:11]}:APA91b{uuid.uuid4().hex}{uuid.uuid4().hex}"


def users_family(fcm_url: str = "", **settings: object) -> dict[str, object]:
    """The ``plugins.toml`` table of the users family, sending pushes to ``fcm_url``."""
    return {"module": "plugins.users", "settings": {"fcm_url": fcm_url, **settings}}
