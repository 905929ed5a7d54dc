"""How the suite and the benchmark start the Firebase Auth Emulator (firebase-tools)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support import ROOT
from tests.support.ports import free_port

FIREBASE_BIN = Path(
    os.environ.get("IMPERFECT_FIREBASE_BIN", ROOT / ".tools/node_modules/.bin/firebase")
)
EMULATOR_ENV = {"NO_UPDATE_NOTIFIER": "1", "CI": "true"}


def emulator_command(directory: Path, project: str) -> tuple[list[str], int]:
    """Write ``firebase.json`` into ``directory`` (the auth emulator, its hub and logging
    on free ports, no UI); the command to run there, and the auth emulator's port."""
    port = free_port()
    config = {
        "emulators": {
            "auth": {"host": "127.0.0.1", "port": port},
            "hub": {"host": "127.0.0.1", "port": free_port()},
            "logging": {"host": "127.0.0.1", "port": free_port()},
            "ui": {"enabled": False},
        }
    }
    (directory / "firebase.json").write_text(json.dumps(config))
    command = [str(FIREBASE_BIN), "emulators:start", "--only", "auth", "--project", project]
    return command, port
