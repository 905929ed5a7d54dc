"""Helpers shared by the test modules of several families."""

from __future__ import annotations

from quart.testing import QuartClient

from core import Runtime
from core.outbox import Dispatcher


def runtime_of(client: QuartClient) -> Runtime:
    """The :class:`~core.Runtime` of the app behind a test client."""
    return client.app.extensions["imperfect"]


def dispatcher_of(client: QuartClient) -> Dispatcher:
    """The started app's outbox dispatcher, to run deterministic passes with."""
    dispatcher = runtime_of(client).outbox
    assert dispatcher is not None, "the app is not serving"
    return dispatcher
