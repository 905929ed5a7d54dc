"""The app started without serving, for CLI commands that need the database and the families.

A family's command (the ``cli_commands`` hook) gets the loaded :class:`~core.plugins.Platform`
but no app and no database. ``async with running(platform) as runtime:`` builds the app for
that platform, starts it as a server would (database, migrations check, every family's
``startup``), but with the outbox dispatcher off, so the command never handles the queue of a
serving instance behind its back. Inside the block an app context is pushed, so a family's
``FAMILY.settings`` and ``FAMILY.stash`` work as in a request; on leaving, every family's
``shutdown`` runs and the database is closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.app import Runtime, create_app, runtime_of
from core.plugins import Platform


@asynccontextmanager
async def running(platform: Platform) -> AsyncIterator[Runtime]:
    """Start the app of ``platform`` without serving it; yield its :class:`Runtime`.

    Start-up fails as ``imperfect serve`` would, with :class:`core.StartupError` (unapplied
    migrations when ``IMPERFECT_AUTO_MIGRATE`` is off, a family whose ``startup`` raised) or
    :class:`core.ConfigError`; nothing is left open then.
    """
    original = platform.core
    platform.core = original.model_copy(update={"outbox_dispatcher": False})
    try:
        app = create_app(platform.core, platform)
        await app.startup()
        try:
            async with app.app_context():
                yield runtime_of(app)
        finally:
            await app.shutdown()
    finally:
        platform.core = original
