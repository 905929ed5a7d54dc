"""No user reads or changes another user's data, and bad input changes nothing.

Both tests enumerate the family's routes from the live app, so a route added later without a
case here fails them.
"""

from __future__ import annotations

import re
from typing import Any

from core.emulator import AuthEmulator
from core.endpoints import declared_endpoint
from tests.support import bearer, dispatcher_of, fcm_token, new_account, runtime_of, users_family
from tests.support.rows import all_rows, user_rows

HUGE = "x" * 200_000  # well under the 1 MiB body limit: a validation error, not a 413
MISSING_ID = 2**31 - 1
TOO_BIG_ID = 10**20
_ID = re.compile(r"<int:(\w+)>")

# Every users route that takes an id: (method, rule) -> the JSON body it is sent with.
ID_ROUTES: dict[tuple[str, str], Any] = {
    ("GET", "/users_profiles/<int:profile_id>"): None,
    ("PATCH", "/users_profiles/<int:profile_id>"): {"level": "elite", "goals": ["Take over"]},
    ("DELETE", "/users_profiles/<int:profile_id>"): None,
    ("DELETE", "/notifications/devices/<int:device_id>"): None,
    ("GET", "/notifications/<int:notification_id>"): None,
}
NOUNS = {"profile_id": "profile", "device_id": "device", "notification_id": "notification"}

VALID_PROFILE = {"sport": "cycling", "level": "advanced"}
# Every users route with a body or a query: (method, rule) -> inputs that must be refused.
BAD_INPUT: dict[tuple[str, str], list[Any]] = {
    ("PATCH", "/users/me"): [
        {"display_name": 5},
        {"display_name": ""},
        {"display_name": HUGE},
        {"display_name": "tab\there"},
        {"display_name": "nul\x00"},
        {"locale": None},
        {"locale": "English"},
        {"timezone": "Mars/Olympus_Mons"},
        {"units": "cubits"},
        {"nickname": "unknown field"},
        [],
        "a string",
    ],
    ("POST", "/users_profiles"): [
        {},
        {"sport": "running"},
        {"sport": "chess", "level": "elite"},
        {**VALID_PROFILE, "weekly_hours": -1},
        {**VALID_PROFILE, "weekly_hours": 40.5},
        {**VALID_PROFILE, "weekly_hours": "many"},
        {**VALID_PROFILE, "weekly_hours": False},
        {**VALID_PROFILE, "birth_year": 1899},
        {**VALID_PROFILE, "birth_year": 2101},
        {**VALID_PROFILE, "birth_year": True},
        {**VALID_PROFILE, "birth_year": "1990"},
        {**VALID_PROFILE, "birth_year": 1990.5},
        {**VALID_PROFILE, "max_heart_rate": 300},
        {**VALID_PROFILE, "goals": "sub-3"},
        {**VALID_PROFILE, "goals": ["g"] * 11},
        {**VALID_PROFILE, "goals": [HUGE]},
        {**VALID_PROFILE, "goals": ["  "]},
        {**VALID_PROFILE, "sport": HUGE},
        {**VALID_PROFILE, "user_id": 1},
    ],
    ("PATCH", "/users_profiles/<int:profile_id>"): [
        {"sport": None},
        {"level": None},
        {"goals": None},
        {"sport": "chess"},
        {"weekly_hours": 100},
        {"birth_year": [1990]},
        {"max_heart_rate": 99},
        {"goals": [HUGE]},
        {"id": 7},
    ],
    ("POST", "/notifications/devices"): [
        {},
        {"token": fcm_token()},
        {"token": "too-short", "platform": "ios"},
        {"token": fcm_token(), "platform": "symbian"},
        {"token": "has spaces in it, which tokens do not", "platform": "ios"},
        {"token": "T" * 513, "platform": "ios"},
        {"token": HUGE, "platform": "android"},
        {"token": 1234567890123456789012, "platform": "ios"},
        {"token": fcm_token(), "platform": "ios", "user_id": 1},
    ],
    ("PATCH", "/notifications/preferences"): [
        {"push_enabled": "sometimes"},
        {"push_enabled": 0},
        {"push_enabled": None},
        {"muted_categories": "events"},
        {"muted_categories": ["Not A Category"]},
        {"muted_categories": [f"c{i}" for i in range(51)]},
        {"muted_categories": [HUGE]},
        {"user_id": 1},
    ],
    ("GET", "/notifications"): [
        "limit=0",
        "limit=101",
        "limit=ten",
        f"limit={'9' * 5000}",
        "before=0",
        f"before={TOO_BIG_ID}",
        "before=latest",
        "page=2",
    ],
}


def plugins(fake_fcm) -> dict[str, Any]:
    return {"users": users_family(fake_fcm.url)}


def routes_of_users(client, keep) -> set[tuple[str, str]]:
    """(method, rule) of every users route whose rule and declaration ``keep`` accepts."""
    app = client.app
    found = set()
    for rule in app.url_map.iter_rules():
        owner = runtime_of(client).blueprint_owners.get(rule.endpoint.rpartition(".")[0])
        declared = declared_endpoint(app.view_functions[rule.endpoint])
        if owner != "users" or not keep(rule.rule, declared):
            continue
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            found.add((method, rule.rule))
    return found


async def two_users(client, auth_emulator: AuthEmulator) -> tuple[dict, dict, dict[str, int]]:
    """A with a profile, a device and a sent notification; B with a profile of their own."""
    a, b = bearer(new_account(auth_emulator)), bearer(new_account(auth_emulator))
    await client.post("/users", headers=a)
    await client.post("/users", headers=b)
    profile = await client.post("/users_profiles", json=VALID_PROFILE, headers=a)
    await client.post("/users_profiles", json=VALID_PROFILE, headers=b)
    device = await client.post(
        "/notifications/devices", json={"token": fcm_token(), "platform": "android"}, headers=a
    )
    notification = await client.post("/notifications/test", headers=a)
    await dispatcher_of(client).run_once()
    ids = {
        "profile_id": (await profile.get_json())["id"],
        "device_id": (await device.get_json())["id"],
        "notification_id": (await notification.get_json())["id"],
    }
    return a, b, ids


async def request(client, method: str, path: str, headers: dict, body: Any = None):
    if body is None:
        return await client.open(path, method=method, headers=headers)
    return await client.open(path, method=method, headers=headers, json=body)


async def test_another_users_object_is_404_like_a_missing_one(
    app_client, auth_emulator: AuthEmulator, fake_fcm
):
    async with app_client(plugins(fake_fcm)) as client:
        assert routes_of_users(client, lambda rule, _: "<" in rule) == set(ID_ROUTES)
        a, b, ids = await two_users(client, auth_emulator)
        a_id = (await (await client.get("/users/me", headers=a)).get_json())["id"]
        before = await user_rows(a_id)

        for (method, rule), body in ID_ROUTES.items():
            name = _ID.search(rule).group(1)
            for object_id in (ids[name], MISSING_ID, TOO_BIG_ID):
                path = _ID.sub(str(object_id), rule)
                response = await request(client, method, path, b, body)
                assert response.status_code == 404, (method, path)
                assert await response.get_json() == {
                    "code": f"{NOUNS[name]}_not_found",
                    "detail": f"You have no {NOUNS[name]} {object_id}.",
                }

        assert await user_rows(a_id) == before
        for (method, rule), _ in ID_ROUTES.items():  # A still reaches every object
            if method == "GET":
                path = _ID.sub(str(ids[_ID.search(rule).group(1)]), rule)
                assert (await client.get(path, headers=a)).status_code == 200


async def test_a_patch_with_fields_that_are_not_writable_is_422_and_changes_nothing(
    app_client, auth_emulator: AuthEmulator, fake_fcm
):
    async with app_client(plugins(fake_fcm)) as client:
        a, _, ids = await two_users(client, auth_emulator)
        profile = f"/users_profiles/{ids['profile_id']}"
        before = await all_rows()
        for path, field in [
            ("/users/me", "firebase_uid"),
            ("/users/me", "id"),
            ("/users/me", "email"),
            ("/users/me", "created_at"),
            (profile, "id"),
            (profile, "user_id"),
            (profile, "updated_at"),
            ("/notifications/preferences", "user_id"),
        ]:
            body = {field: "2020-01-01T00:00:00Z" if field.endswith("_at") else 1}
            if path == profile:
                body["level"] = "elite"  # a writable field next to it changes nothing either
            response = await client.patch(path, json=body, headers=a)
            assert response.status_code == 422, (path, field)
            problems = (await response.get_json())["detail"]
            assert {"type": "extra_forbidden", "loc": ["body", field]}.items() <= problems[
                0
            ].items()
        assert await all_rows() == before


async def test_bad_input_on_every_route_is_a_422_that_writes_nothing(
    app_client, auth_emulator: AuthEmulator, fake_fcm
):
    async with app_client(plugins(fake_fcm)) as client:
        taking_input = routes_of_users(
            client, lambda _, declared: bool(declared.body or declared.query)
        )
        assert taking_input == set(BAD_INPUT)
        a, _, ids = await two_users(client, auth_emulator)
        before = await all_rows()
        for (method, rule), cases in BAD_INPUT.items():
            path = _ID.sub(lambda m: str(ids[m.group(1)]), rule)
            for case in cases:
                if method == "GET":
                    response = await client.get(f"{path}?{case}", headers=a)
                else:
                    response = await request(client, method, path, a, case)
                where = f"{method} {path} {str(case)[:80]}"
                assert response.status_code == 422, where
                body = await response.get_json()
                assert set(body) == {"detail"} and body["detail"], where
                for item in body["detail"]:
                    assert {"type", "loc", "msg", "input"} <= set(item), where
                    assert item["loc"][0] == ("query" if method == "GET" else "body"), where
        assert await all_rows() == before
