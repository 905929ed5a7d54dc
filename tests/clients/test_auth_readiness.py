"""``/readyz`` says whether signed-in routes can verify tokens (``auth``)."""

from __future__ import annotations

USERS = {"users": {"module": "plugins.users"}}


async def test_readyz_reports_the_emulator(app_client, auth_emulator):
    async with app_client(USERS) as client:
        response = await client.get("/readyz")
        report = await response.get_json()
    assert response.status_code == 200, report
    assert report["ready"] is True
    assert report["auth"]["ok"] is True
    host = auth_emulator.base.removeprefix("http://")
    # the public body names no host (an admin token or IMPERFECT_READINESS_DETAIL=1 shows it)
    assert report["auth"]["detail"] == "emulator at <host> (tokens are not signature-checked)"
    assert host not in str(report)


async def test_without_credentials_signed_in_routes_make_readyz_not_ready(app_client, monkeypatch):
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    async with app_client(USERS) as client:
        ready = await client.get("/readyz")
        report = await ready.get_json()
    assert ready.status_code == 503
    assert report["ready"] is False and report["database"]["ok"] is True
    assert report["auth"]["ok"] is False
    assert report["auth"]["error"].startswith("not configured: no Google credentials")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in report["auth"]["error"]


async def test_a_deployment_without_signed_in_routes_needs_no_credentials(app_client, monkeypatch):
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    async with app_client({"root": {"module": "plugins.root"}}) as client:
        ready = await client.get("/readyz")
        report = await ready.get_json()
    assert ready.status_code == 200, report
    assert report["auth"] == {
        "ok": True,
        "error": None,
        "detail": "not needed: no route takes a token",
    }
