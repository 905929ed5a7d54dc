"""Two instances of one deployment side by side on one database.

They start together on a fresh database (one applies the migrations, the other waits
for the migration lock), a connection started on one comes back to the other's callback
and is redeemed on the first (the OAuth state and the completion live in the database),
and a push queued on one is delivered once while both instances' outbox dispatchers run.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx

from core.emulator import AuthEmulator
from tests.fakes.alice import FakeAlice
from tests.fakes.fcm import FakeFcm
from tests.fakes.terra import FakeTerra
from tests.support import bearer, fcm_token, new_account, users_family
from tests.support.ports import free_port
from tests.support.servers import default_plugins_with_fakes, serving_processes


def test_two_instances_share_migrations_oauth_state_and_the_outbox(
    tmp_path: Path,
    database_url: str,
    auth_emulator: AuthEmulator,
    fake_alice: FakeAlice,
    fake_terra: FakeTerra,
    fake_fcm: FakeFcm,
) -> None:
    port_a, port_b = free_port(), free_port()
    plugins = default_plugins_with_fakes(fake_alice.url, fake_terra)
    plugins["health_providers"]["settings"]["public_url"] = f"http://127.0.0.1:{port_b}"
    plugins["users"] = users_family(fake_fcm.url)
    env = {
        "DATABASE_URL": database_url,
        "IMPERFECT_AUTO_MIGRATE": "1",
        "FIREBASE_PROJECT_ID": auth_emulator.project_id,
        "IMPERFECT_OUTBOX_INTERVAL": "0.1",
    }
    with serving_processes(tmp_path, plugins, [port_a, port_b], env) as (a, b):
        headers = bearer(new_account(auth_emulator))
        assert httpx.post(f"{a}/users", headers=headers).status_code == 201
        assert httpx.post(f"{b}/users", headers=headers).status_code == 200

        started = httpx.post(f"{a}/health-providers/garmin/connect", headers=headers)
        assert started.status_code == 200, started.text
        consent = httpx.get(started.json()["authorize_url"], follow_redirects=False)
        callback = consent.headers["Location"]
        assert callback.startswith(f"{b}/health-providers/garmin/callback?")
        finished = httpx.get(callback, follow_redirects=False)
        assert finished.status_code == 302
        app_url = urlsplit(finished.headers["Location"])
        returned = dict(parse_qsl(app_url.query))
        assert returned["status"] == "pending", returned
        redeemed = httpx.post(
            f"{a}/health-providers/garmin/complete",
            json={"completion": returned["completion"]},
            headers=headers,
        )  # the app, back on the first instance
        assert redeemed.status_code == 200, redeemed.text
        status = httpx.get(f"{a}/health-providers/garmin", headers=headers).json()
        assert status["status"] == "connected"

        token = fcm_token()
        device = {"token": token, "platform": "android"}
        assert (
            httpx.post(f"{b}/notifications/devices", json=device, headers=headers).status_code
            == 201
        )
        assert httpx.post(f"{a}/notifications/test", headers=headers).status_code == 202
        deadline = time.monotonic() + 15
        while not fake_fcm.received_by(token) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # ten more polls of each dispatcher: a second delivery would show
        assert len(fake_fcm.received_by(token)) == 1
