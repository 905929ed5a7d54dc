"""Garmin route-send through the real HTTP app against a fake Garmin on a socket
(tests/fakes/garmin.py): the consent journey, sends with a stored (or refreshed) token,
every failure ending on a clear page that writes nothing wrong, account deletion and
export, rate limits, and the resampler that makes a route a Garmin course."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from tortoise import connections

from core import current_platform, utcnow
from plugins.public_routes import garmin
from plugins.public_routes.models import GarminSend, GarminState, GarminToken, Route
from plugins.users.models import User
from tests.fakes.garmin import FakeGarmin, challenge_of, course_problem, metres
from tests.support import bearer, new_account
from tests.support.gpx import loop, track

GPX = {"Content-Type": "application/gpx+xml"}
PUBLIC_URL = "https://routes.example.org"
KEY = Fernet.generate_key().decode()


@pytest.fixture
def fake_garmin() -> Iterator[FakeGarmin]:
    fake = FakeGarmin().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def limits_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IMPERFECT_RATE_LIMITS", "IMPERFECT_RATE_LIMIT_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)


def plugins(fake: FakeGarmin | None, **settings: Any) -> dict[str, Any]:
    garmin_settings = {**fake.settings(), "garmin_token_keys": KEY} if fake else {}
    return {
        "users": {"module": "plugins.users"},
        "public_routes": {
            "module": "plugins.public_routes",
            "settings": {"public_url": PUBLIC_URL, **garmin_settings, **settings},
        },
    }


def local(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL, url
    return parts.path + (f"?{parts.query}" if parts.query else "")


class Browser:
    """One browser: a signed-in user's token and the route-send cookie it was given."""

    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers
        self.cookie: str | None = None
        self.set_cookie = ""

    async def start(self, share_id: str) -> dict[str, Any]:
        answer = await self.client.post(
            "/route-send/garmin/start", json={"share_id": share_id}, headers=self._with_cookie()
        )
        assert answer.status_code == 200, await answer.get_data()
        self.set_cookie = answer.headers["Set-Cookie"]
        self.cookie = SimpleCookie(self.set_cookie)[garmin.COOKIE].value
        return await answer.get_json()

    def _with_cookie(self, headers: dict[str, str] | None = None) -> dict[str, str]:
        out = dict(self.headers if headers is None else headers)
        if self.cookie:
            out["Cookie"] = f"{garmin.COOKIE}={self.cookie}"
        return out

    async def visit(self, url: str) -> Any:
        """Navigate to one of this API's URLs (no bearer token: a plain navigation)."""
        return await self.client.get(local(url), headers=self._with_cookie({}))


async def browser(client: Any, auth_emulator: Any) -> Browser:
    client.cookie_jar = None  # each Browser carries its own cookie
    headers = bearer(new_account(auth_emulator))
    assert (await client.post("/users", headers=headers)).status_code == 201
    return Browser(client, headers)


async def user_of(who: Browser) -> User:
    me = await (await who.client.get("/users/me", headers=who.headers)).get_json()
    return await User.get(id=me["id"])


async def upload(client: Any, points: list[tuple[float, float, float]], title: str) -> str:
    answer = await client.post(
        "/routes/anonymous/gpx?locale=en", data=track(points, title), headers=GPX
    )
    assert answer.status_code == 201, await answer.get_data()
    return (await answer.get_json())["share_id"]


def consent(fake: FakeGarmin, authorize_url: str) -> str:
    """Garmin's consent screen in the browser: where it sends the browser back."""
    answer = httpx.get(authorize_url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


async def page(answer: Any) -> str:
    assert answer.headers["Content-Type"].startswith("text/html")
    assert answer.headers["Cache-Control"] == "no-store"
    return (await answer.get_data()).decode()


def outcome(html: str) -> str:
    return html.split('data-outcome="', 1)[1].split('"', 1)[0]


async def raw_token_row(user_id: int) -> dict[str, Any]:
    rows = await connections.get("default").execute_query_dict(
        "SELECT * FROM public_routes_garmin_token WHERE user_id = " + str(int(user_id))
    )
    [row] = rows
    return row


SPARSE = loop(40)  # an ~11 km loop with points ~280 m apart: resampling must add points


async def test_the_full_journey_creates_a_course_and_stores_encrypted_tokens(
    app_client, auth_emulator, fake_garmin, caplog
):
    caplog.set_level(logging.DEBUG)
    async with app_client(plugins(fake_garmin)) as client:
        share_id = await upload(client, SPARSE, "Tour du lac")
        ann = await browser(client, auth_emulator)
        started = await ann.start(share_id)

        assert started["consent"] is True
        cookie = SimpleCookie(ann.set_cookie)[garmin.COOKIE]
        assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"
        assert cookie["path"] == "/route-send/garmin" and cookie["max-age"] == "600"
        url = urlsplit(started["authorize_url"])
        assert f"{url.scheme}://{url.netloc}{url.path}" == fake_garmin.authorize_url
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
        assert query["client_id"] == fake_garmin.client_id
        assert query["redirect_uri"] == f"{PUBLIC_URL}/route-send/garmin/callback"
        assert len(query["state"]) >= 43
        [state_row] = await GarminState.all()
        assert state_row.state_hash != query["state"] and query["state"] not in state_row.verifier

        back = consent(fake_garmin, started["authorize_url"])
        answer = await ann.visit(back)
        html = await page(answer)
        assert answer.status_code == 200 and outcome(html) == "sent", html
        assert "Tour du lac" in html and "Courses menu" in html
        assert f'href="{PUBLIC_URL}/r/{share_id}/tour-du-lac"' in html

        # what Garmin was sent: a token exchange with PKCE, then a course
        [exchange] = fake_garmin.token_requests
        assert exchange["grant_type"] == "authorization_code"
        assert challenge_of(exchange["code_verifier"]) == query["code_challenge"]
        assert exchange["redirect_uri"] == query["redirect_uri"]
        [course] = fake_garmin.courses.values()
        assert course_problem({k: v for k, v in course.items() if k not in GARMIN_SET}) is None
        route = await Route.get(share_id=share_id)
        points = course["geoPoints"]
        gaps = [
            metres((a["latitude"], a["longitude"]), (b["latitude"], b["longitude"]))
            for a, b in itertools.pairwise(points)
        ]
        assert max(gaps) <= 100.0 and len(points) <= 10_000
        assert len(points) > len(SPARSE) * 2  # densified from ~280 m to under 100 m
        first, last = route.points[0], route.points[-1]
        assert (points[0]["longitude"], points[0]["latitude"]) == (first[0], first[1])
        assert (points[-1]["longitude"], points[-1]["latitude"]) == (last[0], last[1])
        assert all("elevation" in p for p in points)
        assert min(p["elevation"] for p in points) >= min(e for _, _, e in SPARSE) - 0.1
        assert course["courseName"] == "Tour du lac" and course["activityType"] == "OTHER"
        assert course["coordinateSystem"] == "WGS84"
        assert course["distance"] == route.distance_m
        assert (course["elevationGain"], course["elevationLoss"]) == (route.gain_m, route.loss_m)

        # what is stored: the send, and the tokens only encrypted
        ann_user = await user_of(ann)
        [send] = await GarminSend.all()
        assert (send.user_id, send.share_id, send.course_id) == (
            ann_user.id,
            share_id,
            course["courseId"],
        )
        raw = await raw_token_row(ann_user.id)
        tokens = fake_garmin.issued_access_tokens()
        assert raw["garmin_user_id"] == fake_garmin.user
        for column in ("access_token", "refresh_token"):
            assert not any(t in str(raw[column]) for t in tokens)
            assert str(raw[column]).startswith("gAAAA")  # a Fernet token
        assert Fernet(KEY).decrypt(raw["access_token"].encode()).decode() == tokens[0]
        assert (await GarminState.get(id=state_row.id)).consumed_at is not None

        # the same callback again: the state is spent, nothing more happens
        replayed = await ann.visit(back)
        assert replayed.status_code == 409 and outcome(await page(replayed)) == "state_used"
        assert len(fake_garmin.courses) == 1 and len(fake_garmin.token_requests) == 1

        # the export lists the send, never a token
        platform = current_platform(client.app)
        exported = dict(
            (p.name, data) for p, data in await platform.call_each("account_export", user=ann_user)
        )["public_routes"]
        assert exported["garmin_sends"] == [
            {
                "share_id": share_id,
                "course_id": course["courseId"],
                "course_name": "Tour du lac",
                "points": len(points),
                "created_at": send.created_at.isoformat(),
            }
        ]
        assert not any(t in repr(exported) for t in tokens)
        assert not any(t in caplog.text for t in tokens)  # never logged


GARMIN_SET = {"courseId", "userId", "elapsedSeconds"}


async def test_a_second_send_skips_consent_and_an_ending_token_is_refreshed(
    app_client, auth_emulator, fake_garmin
):
    fake_garmin.access_ttl = 30  # within the app's refresh margin: the next send refreshes
    async with app_client(plugins(fake_garmin)) as client:
        share_id = await upload(client, SPARSE, "Tour du lac")
        ann = await browser(client, auth_emulator)
        started = await ann.start(share_id)
        assert (await ann.visit(consent(fake_garmin, started["authorize_url"]))).status_code == 200
        before = (await GarminToken.get()).refresh_token
        fake_garmin.calls.clear()

        again = await ann.start(share_id)
        assert again["consent"] is False
        assert again["authorize_url"].startswith(f"{PUBLIC_URL}/route-send/garmin/send?state=")
        answer = await ann.visit(again["authorize_url"])
        assert answer.status_code == 200 and outcome(await page(answer)) == "sent"
        assert ("GET", "/oauth2Confirm") not in fake_garmin.calls
        assert fake_garmin.token_requests[-1]["grant_type"] == "refresh_token"
        assert fake_garmin.calls == [
            ("POST", "/di-oauth2-service/oauth/token"),
            ("POST", "/training-api/courses/v1/course"),
        ]
        assert (await GarminToken.get()).refresh_token != before  # rotated
        assert await GarminSend.all().count() == 2 and len(fake_garmin.courses) == 2

        # the send link is one-time too, and bound to this browser
        assert (await ann.visit(again["authorize_url"])).status_code == 409


async def test_two_sends_racing_to_refresh_one_grant_both_go_through(
    app_client, auth_emulator, fake_garmin
):
    """A refresh token is good once: the send that loses the race uses the token the winner
    stored, instead of dropping the grant and asking for consent again."""
    fake_garmin.access_ttl = 30  # within the refresh margin: both sends refresh
    async with app_client(plugins(fake_garmin)) as client:
        share_id = await upload(client, SPARSE, "Tour du lac")
        ann = await browser(client, auth_emulator)
        started = await ann.start(share_id)
        assert (await ann.visit(consent(fake_garmin, started["authorize_url"]))).status_code == 200
        fake_garmin.access_ttl = 3600
        # The winner's refresh answers late, so the other send reads the same, spent grant.
        fake_garmin.refresh_delay = 0.5
        links = [(await ann.start(share_id))["authorize_url"] for _ in range(2)]
        answers = await asyncio.gather(*(ann.visit(link) for link in links))
        assert [a.status_code for a in answers] == [200, 200]
        assert [outcome(await page(a)) for a in answers] == ["sent", "sent"]
        refreshes = [r for r in fake_garmin.token_requests if r["grant_type"] == "refresh_token"]
        assert len(refreshes) == 2  # both tried; one was refused, and still sent
        assert await GarminToken.all().count() == 1
        assert await GarminSend.all().count() == 3 and len(fake_garmin.courses) == 3


async def test_a_refused_refresh_goes_back_through_consent(app_client, auth_emulator, fake_garmin):
    fake_garmin.access_ttl = 30
    async with app_client(plugins(fake_garmin)) as client:
        share_id = await upload(client, SPARSE, "Tour du lac")
        ann = await browser(client, auth_emulator)
        started = await ann.start(share_id)
        assert (await ann.visit(consent(fake_garmin, started["authorize_url"]))).status_code == 200
        fake_garmin.forget_grants()  # the user revoked the app on Garmin's side

        again = await ann.start(share_id)
        answer = await ann.visit(again["authorize_url"])
        assert answer.status_code == 302
        assert answer.headers["Location"].startswith(fake_garmin.authorize_url)
        assert await GarminToken.all().count() == 0  # the dead grant is forgotten
        back = consent(fake_garmin, answer.headers["Location"])
        done = await ann.visit(back)
        assert done.status_code == 200 and outcome(await page(done)) == "sent"
        assert await GarminToken.all().count() == 1 and await GarminSend.all().count() == 2


async def test_a_user_who_declines_gets_a_page_and_nothing_is_stored(
    app_client, auth_emulator, fake_garmin
):
    fake_garmin.deny = True
    async with app_client(plugins(fake_garmin)) as client:
        share_id = await upload(client, SPARSE, "Tour du lac")
        ann = await browser(client, auth_emulator)
        back = consent(fake_garmin, (await ann.start(share_id))["authorize_url"])
        assert "error=access_denied" in back
        answer = await ann.visit(back)
        html = await page(answer)
        assert answer.status_code == 403 and outcome(html) == "denied"
        assert "did not allow" in html
        assert fake_garmin.token_requests == [] and fake_garmin.courses == {}
        assert await GarminToken.all().count() == 0 and await GarminSend.all().count() == 0
        assert (await GarminState.get()).consumed_at is not None


async def test_another_browser_or_no_cookie_links_nothing(app_client, auth_emulator, fake_garmin):
    """The attack: Mallory starts a send and gets Ann to consent. Ann's browser lacks
    Mallory's cookie (or has its own), so nothing is linked to anyone, and the state is
    spent."""
    async with app_client(plugins(fake_garmin)) as client:
        share_id = await upload(client, SPARSE, "Tour du lac")
        mallory, ann = await browser(client, auth_emulator), await browser(client, auth_emulator)
        lure = (await mallory.start(share_id))["authorize_url"]
        await ann.start(share_id)  # Ann has a cookie of her own
        back = consent(fake_garmin, lure)

        answer = await ann.visit(back)
        html = await page(answer)
        assert answer.status_code == 403 and outcome(html) == "wrong_browser"
        assert "another browser" in html
        assert fake_garmin.token_requests == []
        assert await GarminToken.all().count() == 0 and await GarminSend.all().count() == 0
        spent = await mallory.visit(back)  # even the starter cannot use it now
        assert spent.status_code == 409

        lure = (await mallory.start(share_id))["authorize_url"]
        back = consent(fake_garmin, lure)
        cookieless = await client.get(local(back))
        assert cookieless.status_code == 403 and outcome(await page(cookieless)) == "wrong_browser"
        assert fake_garmin.token_requests == [] and await GarminToken.all().count() == 0


async def test_unknown_missing_and_expired_states_end_on_a_page(
    app_client, auth_emulator, fake_garmin
):
    async with app_client(plugins(fake_garmin)) as client:
        share_id = await upload(client, SPARSE, "Tour du lac")
        ann = await browser(client, auth_emulator)
        for path in ("/route-send/garmin/callback?code=abc", "/route-send/garmin/send"):
            assert (await ann.visit(PUBLIC_URL + path)).status_code == 422  # no state at all
        for path in (
            "/route-send/garmin/callback?code=abc&state=" + "x" * 43,
            "/route-send/garmin/send?state=" + "x" * 43,
        ):
            answer = await ann.visit(PUBLIC_URL + path)
            assert (answer.status_code, outcome(await page(answer))) == (404, "state_unknown")
        # a real state without a code (nor an error): an incomplete link, and spent
        back = consent(fake_garmin, (await ann.start(share_id))["authorize_url"])
        state = parse_qs(urlsplit(back).query)["state"][0]
        answer = await ann.visit(f"{PUBLIC_URL}/route-send/garmin/callback?state={state}")
        assert (answer.status_code, outcome(await page(answer))) == (400, "invalid")
        assert (await ann.visit(back)).status_code == 409

        back = consent(fake_garmin, (await ann.start(share_id))["authorize_url"])
        await GarminState.all().update(expires_at=utcnow())
        answer = await ann.visit(back)
        assert answer.status_code == 410 and outcome(await page(answer)) == "state_expired"
        assert fake_garmin.token_requests == [] and await GarminToken.all().count() == 0


@pytest.mark.parametrize(
    ("switch", "status", "why", "words"),
    [
        ("course_import", 403, "no_course_import", "allow this app to import courses"),
        ("quota_exceeded", 429, "quota", "try again later"),
    ],
)
async def test_garmin_refusing_the_course_ends_on_a_page_that_explains(
    app_client, auth_emulator, fake_garmin, switch, status, why, words
):
    setattr(fake_garmin, switch, switch != "course_import")
    async with app_client(plugins(fake_garmin)) as client:
        share_id = await upload(client, SPARSE, "Tour du lac")
        ann = await browser(client, auth_emulator)
        answer = await ann.visit(consent(fake_garmin, (await ann.start(share_id))["authorize_url"]))
        html = await page(answer)
        assert answer.status_code == status and outcome(html) == why
        assert words in html.lower()
        if status == 429:
            assert answer.headers["Retry-After"] == "60"
        assert fake_garmin.courses == {} and await GarminSend.all().count() == 0
        assert await GarminToken.all().count() == 1  # the user did link: the next try is direct


async def test_garmin_down_on_the_callback_stores_nothing(app_client, auth_emulator, fake_garmin):
    async with app_client(plugins(fake_garmin)) as client:
        share_id = await upload(client, SPARSE, "Tour du lac")
        ann = await browser(client, auth_emulator)
        back = consent(fake_garmin, (await ann.start(share_id))["authorize_url"])
        fake_garmin.down = True
        answer = await ann.visit(back)
        html = await page(answer)
        assert answer.status_code == 503 and outcome(html) == "garmin_down"
        assert answer.headers["Retry-After"] == "60"
        assert await GarminToken.all().count() == 0 and await GarminSend.all().count() == 0
        assert (await GarminState.get()).consumed_at is not None


async def test_a_route_too_long_for_garmin_is_refused_before_consent(
    app_client, auth_emulator, fake_garmin
):
    long_line = [(40.0, -3.7, 600.0), (50.0, -3.7, 20.0)]  # ~1,100 km
    async with app_client(plugins(fake_garmin)) as client:
        share_id = await upload(client, long_line, "Madrid to the Channel")
        ann = await browser(client, auth_emulator)
        answer = await client.post(
            "/route-send/garmin/start", json={"share_id": share_id}, headers=ann.headers
        )
        assert answer.status_code == 409, await answer.get_data()
        body = await answer.get_json()
        assert body["code"] == "route_too_long" and "990 km" in body["detail"]
        assert "Set-Cookie" not in answer.headers
        assert fake_garmin.calls == []  # not even the consent screen
        assert await GarminState.all().count() == 0 and await GarminSend.all().count() == 0


async def test_unconfigured_garmin_answers_503_and_readiness_says_so(app_client, auth_emulator):
    async with app_client(plugins(None)) as client:
        share_id = await upload(client, SPARSE, "Tour du lac")
        ann = await browser(client, auth_emulator)
        answer = await client.post(
            "/route-send/garmin/start", json={"share_id": share_id}, headers=ann.headers
        )
        assert answer.status_code == 503
        assert (await answer.get_json())["code"] == "garmin_not_configured"
        assert "Set-Cookie" not in answer.headers
        callback = await client.get("/route-send/garmin/callback?code=a&state=b")
        assert callback.status_code == 503 and outcome(await page(callback)) == "not_configured"
        ready = await (await client.get("/readyz")).get_json()
        assert "garmin" in repr(ready) and "off: no garmin_client_id" in repr(ready)
        assert await GarminState.all().count() == 0


async def test_start_refuses_an_unknown_share(app_client, auth_emulator, fake_garmin):
    async with app_client(plugins(fake_garmin)) as client:
        ann = await browser(client, auth_emulator)
        answer = await client.post(
            "/route-send/garmin/start", json={"share_id": "nope"}, headers=ann.headers
        )
        assert answer.status_code == 404 and "Set-Cookie" not in answer.headers
        assert await GarminState.all().count() == 0
        anonymous = await client.post("/route-send/garmin/start", json={"share_id": "nope"})
        assert anonymous.status_code == 401


async def test_account_deletion_deregisters_at_garmin_and_waits_when_it_is_down(
    app_client, auth_emulator, fake_garmin
):
    async with app_client(plugins(fake_garmin)) as client:
        platform = current_platform(client.app)
        share_id = await upload(client, SPARSE, "Tour du lac")
        ann = await browser(client, auth_emulator)
        await ann.visit(consent(fake_garmin, (await ann.start(share_id))["authorize_url"]))
        user = await user_of(ann)

        fake_garmin.down = True
        with pytest.raises(Exception) as raised:
            await platform.call_each("account_deleted", reverse=True, user=user)
        assert getattr(raised.value, "status", None) == 502
        assert await GarminToken.filter(user_id=user.id).count() == 1  # kept for the retry

        fake_garmin.down = False
        deleted = await client.delete("/account", headers=ann.headers)
        assert deleted.status_code == 204, await deleted.get_data()
        assert fake_garmin.deregistered == [fake_garmin.user]
        assert ("DELETE", "/wellness-api/rest/user/registration") in fake_garmin.calls
        assert fake_garmin.live_tokens(fake_garmin.user) == 0
        for model in (GarminToken, GarminSend, GarminState):
            assert await model.filter(user_id=user.id).count() == 0


async def test_start_and_the_browser_steps_are_rate_limited(app_client, auth_emulator, fake_garmin):
    async with app_client(plugins(fake_garmin)) as client:
        spec = await (await client.get("/openapi.json")).get_json()
        for path, method in (
            ("/route-send/garmin/start", "post"),
            ("/route-send/garmin/callback", "get"),
            ("/route-send/garmin/send", "get"),
        ):
            assert "429" in spec["paths"][path][method]["responses"]
        share_id = await upload(client, SPARSE, "Tour du lac")
        ann = await browser(client, auth_emulator)
        codes = [
            (
                await client.post(
                    "/route-send/garmin/start", json={"share_id": share_id}, headers=ann.headers
                )
            ).status_code
            for _ in range(11)
        ]
        assert codes == [200] * 10 + [429]  # 10 a minute per user
        assert await GarminState.all().count() == 10
        pages = [
            (await client.get("/route-send/garmin/callback?state=x")).status_code for _ in range(21)
        ]
        assert pages == [404] * 20 + [429]  # 20 a minute per address


# --- the resampler and the activity mapping ----------------------------------------------


def _line(count: int, step_deg: float, ele: float | None = 100.0) -> list[list[float | None]]:
    return [[6.0 + i * step_deg, 45.0, None if ele is None else ele + i] for i in range(count)]


def test_resampling_spaces_points_at_most_100_m_and_keeps_the_ends():
    points = [[6.0, 45.0, 400.0], [6.05, 45.02, 500.0], [6.06, 45.0, None], [6.1, 45.01, 450.0]]
    out = garmin.resample(points)
    gaps = [metres((a[1], a[0]), (b[1], b[0])) for a, b in itertools.pairwise(out)]
    assert max(gaps) <= 100.0 and min(gaps) > 90.0
    assert out[0][:3] == (6.0, 45.0, 400.0) and out[-1][:3] == (6.1, 45.01, 450.0)
    along = sum(metres((a[1], a[0]), (b[1], b[0])) for a, b in itertools.pairwise(points))
    # the distance along the track (gpxpy's Earth radius is 0.1 % larger than ours)
    assert out[-1][3] == pytest.approx(along, rel=2e-3)
    assert all(e is not None and 400.0 <= e <= 500.0 for _, _, e, _ in out)

    dense = _line(5_000, 0.00001)  # points under a metre apart: thinned, not kept
    assert len(garmin.resample(dense)) < 50

    bare = garmin.resample(_line(3, 0.01, ele=None))
    assert all(e is None for _, _, e, _ in bare)


def test_resampling_refuses_a_course_past_10000_points():
    limit_deg = garmin.MAX_COURSE_M / (math.pi / 180 * 6_371_000 * math.cos(math.radians(45)))
    fits = garmin.resample([[6.0, 45.0, None], [6.0 + limit_deg * 0.999, 45.0, None]])
    assert len(fits) <= 10_000
    with pytest.raises(garmin.CourseTooLong):
        garmin.resample([[6.0, 45.0, None], [6.0 + limit_deg * 1.01, 45.0, None]])


async def test_activity_types_come_from_the_routing_profile(app_client, fake_garmin):
    for profile, trail, expected in (
        ("foot", None, "RUNNING"),
        ("foot", 0.7, "TRAIL_RUNNING"),
        ("hiking", 0.7, "HIKING"),
        ("bike", None, "ROAD_CYCLING"),
        ("mtb", None, "MOUNTAIN_BIKING"),
        ("car", None, "OTHER"),
    ):
        async with (
            app_client(plugins(fake_garmin, osrm_profile=profile)) as client,
            client.app.app_context(),
        ):
            planned = Route(source="osrm", trail_ratio=trail)
            assert garmin.activity_type(planned) == expected
            assert garmin.activity_type(Route(source="gpx", trail_ratio=trail)) == "OTHER"
