"""No route of any enabled family reveals or changes another user's data.

One app with every family of the checked-in plugins.toml (siblings on their fakes). Driven by
the app's own spec and route map, so a route added later is covered without a line here:
A creates data through every body-less or example-carrying POST/PUT/PATCH route, A's ids are
read back from A's own responses, then B calls every authenticated route that takes a path
parameter with them. A route the test cannot find an id of A's for fails it, by name.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from tortoise import Tortoise

from core import utcnow
from core.emulator import AuthEmulator
from core.endpoints import declared_endpoint
from core.openapi import openapi_path
from tests.fakes.alice import FakeAlice
from tests.fakes.cheshire import API_KEY as CHESHIRE_KEY
from tests.fakes.cheshire import FakeCheshire
from tests.fakes.fcm import FakeFcm
from tests.fakes.terra import FakeTerra
from tests.support import PASSWORD, bearer, new_account, runtime_of
from tests.support.rows import all_rows, user_rows
from tests.support.servers import default_plugins_with_fakes
from tests.support.sse import DeclaredStream

WRITES = {"POST", "PUT", "PATCH"}
PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")
JSON = "application/json"
JSON_ACCEPT = {"Accept": JSON}  # streaming routes answer one JSON document
WORD = re.compile(r"^[a-z0-9_]+$")  # an enum value ("not_connected"), everyone's alike
PASSES = 3  # a route whose parent is made by another route succeeds on a later pass


# Path parameters that are not a user's object: the route acts on the caller's own data,
# named by a catalogue value. B calls them too (nothing of A's may come back or change), with
# the value taken from where the app lists them.
CALLER_SCOPED: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    # /health-providers/<provider>...: B's own connection to a provider of the public list.
    "provider": lambda listed: [item["name"] for item in listed["/health-providers"]["providers"]],
}


async def _seed_link(user_id: int, alice: FakeAlice) -> str | None:
    """A chat identity linked to A: only a chat app's webhook makes one (docs/families/
    channels.md); GET /channel_associations then lists it like any other of A's objects."""
    identity = Tortoise.apps["channels"]["ChannelIdentity"]
    await identity.create(
        channel="whatsapp", address="14155550123", user_id=user_id, linked_at=utcnow()
    )
    return None


async def _seed_reference(user_id: int, alice: FakeAlice) -> str | None:
    """A message reference to A: only another family's message makes one, and no route
    lists them, so its id is returned here."""
    reference = Tortoise.apps["channels"]["MessageReference"]
    row = await reference.create(
        id="a" * 32,
        user_id=user_id,
        sender="home",
        subject="Did the long run go well?",
        text="Reply yes or no",
        expires_at=utcnow() + timedelta(days=1),
    )
    return str(row.id)


async def _seed_activity(user_id: int, alice: FakeAlice) -> str | None:
    """An activity alice holds for A: it comes from A's provider, through alice."""
    start = (utcnow() - timedelta(days=1)).isoformat()
    run = {"id": "act-of-a", "sport": "run", "start_time": start, "duration_s": 3600.0}
    alice.seed(user_id, "garmin", "activities", [{**run, "distance_m": 12000.0}])
    return "act-of-a"


async def _seed_route(user_id: int, alice: FakeAlice) -> str | None:
    """A route of A's: a GPX upload makes one, and the spec has no example of a GPX body."""
    route = Tortoise.apps["public_routes"]["Route"]
    made = await route.create(
        share_id="route-of-a",
        user_id=user_id,
        title="Loop of A",
        locale="en",
        source="gpx",
        points=[[6.1, 45.9, 450.0], [6.2, 45.95, 500.0]],
        distance_m=9000.0,
        gain_m=50.0,
        loss_m=0.0,
        content_hash="0" * 64,
    )
    return str(made.share_id)


# Objects no route of A's can create from the spec alone: (path parameter) -> a seed of A's
# row as the outside world (or an upload the spec cannot give an example of) would make it.
# Keep this small: anything a route creates from a spec example comes from the spec.
SEEDS: dict[str, Callable[[int, FakeAlice], Awaitable[str | None]]] = {
    "link_id": _seed_link,
    "reference_id": _seed_reference,
    "activity_id": _seed_activity,
    "share_id": _seed_route,
}


def answer_for(step: dict[str, Any]) -> dict[str, Any]:
    """A valid answer to an intake step, from the step's own declaration."""
    kind, options = step["type"], step.get("options") or []
    if step.get("optional"):
        return {"step": step["id"], "action": "skip"}
    answers: dict[str, Any] = {
        "single_choice": options[0] if options else None,
        "multi_choice": options[:1],
        "number": step.get("min") if step.get("min") is not None else 1,
        "boolean": True,
        "text": "Mostly easy runs before work.",
        "location": {"lat": 48.8566, "lng": 2.3522},
    }
    return {"step": step["id"], "answer": answers[kind]}


async def finish_intake(client: Any, headers: dict[str, str]) -> None:
    """The intake is a questionnaire walked one step at a time (its example answers only the
    first step); race recommendations need it finished."""
    for _ in range(50):
        state = await (await client.get("/onboarding/intake", headers=headers)).get_json()
        if state.get("status") != "in_progress":
            return
        response = await client.post(
            "/onboarding/intake", json=answer_for(state["step"]), headers=headers
        )
        assert response.status_code < 300, (state["step"], await response.get_data())
    raise AssertionError("the intake never finished")


# Steps a generic pass cannot take, run as A before each pass over the write routes.
PREPARE: dict[str, Callable[[Any, dict[str, str]], Awaitable[None]]] = {
    "onboarding": finish_intake,
}


@pytest.fixture(autouse=True)
def unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every route is called many times in a row; tests/test_rate_limits.py covers limits."""
    monkeypatch.setenv("IMPERFECT_RATE_LIMITS", "0")


def every_family(
    alice: FakeAlice, terra: FakeTerra, fcm: FakeFcm, cheshire: FakeCheshire
) -> dict[str, Any]:
    """plugins.toml as checked in, siblings pointed at their fakes."""
    plugins = default_plugins_with_fakes(alice.url, terra)
    plugins["users"]["settings"]["fcm_url"] = fcm.url
    plugins["cheshire"]["settings"].update(base_url=cheshire.url, api_key=CHESHIRE_KEY)
    return plugins


class Route:
    """One authenticated (method, rule) of the live app, with its spec operation."""

    def __init__(
        self, method: str, rule: str, owner: str, operation: dict[str, Any], streams: bool
    ) -> None:
        self.method, self.rule, self.owner = method, rule, owner
        # A stream's errors come before its first event, as JSON, whichever the client asked.
        self.accepts = (JSON, "text/event-stream") if streams else (JSON,)
        self.streams = streams
        self.parameters = PARAMETER.findall(rule)
        self.integers = set(re.findall(r"<int:(\w+)>", rule))
        # Each parameter's rule up to it: the route whose responses hold its ``id``s.
        self.prefixes = {
            match.group(1): rule[: match.start()].rstrip("/") for match in PARAMETER.finditer(rule)
        }
        self.body = operation.get("requestBody", {}).get("content", {}).get("application/json")

    def __repr__(self) -> str:
        return f"{self.method} {self.rule} ({self.owner})"

    def path(self, values: dict[str, str]) -> str:
        return PARAMETER.sub(lambda match: values[match.group(1)], self.rule)


def user_routes(client: Any, spec: dict[str, Any], auth: str = "user") -> list[Route]:
    """Every route of this ``auth`` level: a signed-in user's (not public webhooks, not
    admin routes, whose objects are the shared catalogue rather than a user's)."""
    app = client.app
    routes = []
    for rule in app.url_map.iter_rules():
        declared = declared_endpoint(app.view_functions[rule.endpoint])
        if declared is None or declared.auth != auth:
            continue
        owner = runtime_of(client).blueprint_owners.get(rule.endpoint.rpartition(".")[0], "?")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = spec["paths"][openapi_path(rule.rule)][method.lower()]
            routes.append(Route(method, rule.rule, owner, operation, declared.stream is not None))
    return sorted(routes, key=lambda route: (route.rule, route.method))


def admin_routes(client: Any, spec: dict[str, Any]) -> list[Route]:
    """Admin writes without a path parameter: what makes the shared catalogue."""
    routes = user_routes(client, spec, auth="admin")
    return [route for route in routes if route.method in WRITES and not route.parameters]


def example_of(spec: dict[str, Any], route: Route) -> Any:
    """The request body's first spec example, or None (no body, or a model still without
    one: tests/test_errors_and_spec.py names those; here the route is then only called
    without a body, and an object only it could make shows up as not covered)."""
    if route.body is None:
        return None
    schema = route.body["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return (schema.get("examples") or [None])[0]


async def call(client: Any, route: Route, path: str, headers: dict[str, str], body: Any) -> Any:
    headers = {**JSON_ACCEPT, **headers}
    if body is None:
        return await client.open(path, method=route.method, headers=headers)
    return await client.open(path, method=route.method, headers=headers, json=body)


def ids_in(document: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(field, value) of every ``id``/``<noun>_id`` of a response, objects and their lists."""
    if isinstance(document, list):
        for item in document:
            yield from ids_in(item, depth)
    elif isinstance(document, dict) and depth <= 2:
        for key, value in document.items():
            if (key == "id" or key.endswith("_id")) and isinstance(value, int | str):
                yield key, value
            elif isinstance(value, dict | list):
                yield from ids_in(value, depth + 1)


def strings_in(document: Any) -> Iterator[str]:
    """Every string of a response long enough to be A's own data rather than a word."""
    if isinstance(document, dict):
        for value in document.values():
            yield from strings_in(value)
    elif isinstance(document, list):
        for item in document:
            yield from strings_in(item)
    elif isinstance(document, str) and len(document) >= 12 and not WORD.match(document):
        yield document


async def test_no_route_of_any_family_reveals_or_changes_another_users_data(
    app_client: Any,
    auth_emulator: AuthEmulator,
    fake_alice: FakeAlice,
    fake_terra: FakeTerra,
    fake_fcm: FakeFcm,
    fake_cheshire: FakeCheshire,
) -> None:
    async with app_client(every_family(fake_alice, fake_terra, fake_fcm, fake_cheshire)) as client:
        spec = json.loads(await (await client.get("/openapi.json")).get_data())
        routes = user_routes(client, spec)
        a_account = new_account(auth_emulator)
        a, b = bearer(a_account), bearer(new_account(auth_emulator))
        a_id = (await (await client.post("/users", headers=a)).get_json())["id"]
        assert (await client.post("/users", headers=b)).status_code == 201
        taken = {name for route in routes for name in route.parameters}  # families that are on
        seeded = {
            name: await seed(a_id, fake_alice) for name, seed in SEEDS.items() if name in taken
        }

        # The catalogue A's goals point at is an admin's: every admin write without a path
        # parameter, with its example (POST /events makes event 1 of the example goals).
        boss = new_account(auth_emulator)
        auth_emulator.set_claims(boss.uid, {"admin": True})
        admin = bearer(auth_emulator.sign_in(boss.email, PASSWORD))
        for route in admin_routes(client, spec):
            response = await call(client, route, route.rule, admin, example_of(spec, route))
            assert response.status_code < 500, (route, await response.get_data())

        # 1. A writes through every route without a path parameter, with the spec's example.
        answers: dict[str, list[Any]] = {}
        pending = [r for r in routes if r.method in WRITES and not r.parameters]
        pending = [r for r in pending if r.rule != "/users"]  # A exists already
        for _ in range(PASSES):
            for family, prepare in PREPARE.items():
                if family in runtime_of(client).platform.plugins:
                    await prepare(client, a)
            failed = []
            for route in pending:
                response = await call(client, route, route.rule, a, example_of(spec, route))
                assert response.status_code < 500, (route, await response.get_data())
                if response.status_code < 300:
                    if route.streams:  # its {"events": [...]}, checked like any test's
                        stream = DeclaredStream(spec, openapi_path(route.rule), route.method)
                        await stream.read(response)
                    answers.setdefault(route.rule, []).append(await response.get_json())
                else:
                    failed.append(route)
            pending = failed

        # 2. A reads every route without a path parameter.
        listed: dict[str, Any] = {}
        for route in routes:
            if route.method == "GET" and not route.parameters:
                response = await call(client, route, route.rule, a, None)
                assert response.status_code < 500, (route, await response.get_data())
                if response.status_code == 200:  # 404: A has none (GET /account/deletion)
                    listed[route.rule] = await response.get_json()
                    answers.setdefault(route.rule, []).append(listed[route.rule])

        own_ids: dict[str, set[str]] = {}  # path parameter or route prefix -> A's ids
        for rule, documents in answers.items():
            for key, value in ids_in(documents):
                own_ids.setdefault(key if key != "id" else rule, set()).add(str(value))
        # A's data: what A's responses hold that B's own reads of the same routes do not
        # (the provider catalogue, questionnaire prompts... are everyone's).
        secrets = {text for documents in answers.values() for text in strings_in(documents)}
        for rule in listed:
            secrets -= set(strings_in(await (await client.get(rule, headers=b)).get_json()))
        secrets |= {a_account.uid, a_account.email}
        # A's ids that are strings ("act-of-a"); an error may echo the id B asked for, no other.
        string_ids = {v for found in own_ids.values() for v in found if not v.isdigit()}
        string_ids |= {str(v) for v in seeded.values() if v}

        def values_for(route: Route) -> list[dict[str, str]]:
            """A's ids for the route's path parameters: a field of the parameter's name, or
            an ``id`` of the route the rule extends there (``/users_profiles`` for
            ``/users_profiles/<int:profile_id>``); one call per combination found."""
            choices = []
            for name in route.parameters:
                found = own_ids.get(name, set()) | own_ids.get(route.prefixes[name], set())
                if seeded.get(name):
                    found.add(str(seeded[name]))
                if name in route.integers:  # <int:board_id> takes no event id such as "1-2"
                    found = {value for value in found if value.isdigit()}
                choices.append(sorted(found))
            combinations = itertools.product(*choices)
            return [dict(zip(route.parameters, combo, strict=True)) for combo in combinations]

        # 3. B calls every route with a path parameter, with A's ids.
        with_ids = [r for r in routes if r.parameters]
        missing = []
        before = await all_rows()
        a_before = await user_rows(a_id)
        tried: list[tuple[Route, str]] = []
        for route in with_ids:
            if route.parameters[-1] in CALLER_SCOPED:
                continue
            candidates = values_for(route)
            if not candidates:
                missing.append(route)
                continue
            for values, accept in itertools.product(candidates, route.accepts):
                path = route.path(values)
                headers = {**b, "Accept": accept}
                response = await call(client, route, path, headers, example_of(spec, route))
                text = (await response.get_data()).decode()
                where = f"B {route.method} {path} Accept: {accept} ({route.owner})"
                assert response.status_code in (403, 404), (where, response.status_code, text)
                assert response.content_type == "application/json", (where, text)
                body = json.loads(text)
                assert set(body) == {"code", "detail"}, (where, body)
                others = {v for v in string_ids if v not in values.values()}
                leaked = [s for s in secrets | others if s in text]
                assert not leaked, (where, "shows A's data", leaked)
                tried.append((route, path))
        assert await all_rows() == before, "B's calls on A's ids wrote something"

        for route in with_ids:  # B's own, by construction: nothing of A's comes back
            name = route.parameters[-1]
            if name not in CALLER_SCOPED:
                continue
            for value in CALLER_SCOPED[name](listed):
                path = route.path({name: value})
                response = await call(client, route, path, b, example_of(spec, route))
                text = (await response.get_data()).decode()
                assert response.status_code < 500, (route, text)
                assert not [s for s in secrets if s in text], (f"B {route.method} {path}", text)
        assert await user_rows(a_id) == a_before, "B's calls changed A's rows"

        # 4. Coverage, and A still reaches its own objects.
        assert not missing, (
            "no id of A's found for these routes: give the route that creates the object a "
            f"request example, or add its path parameter to SEEDS: {missing}"
        )
        # A field of the same name elsewhere (a hare reference_id...) may not be the
        # route's object: each GET route needs one id that A, its owner, reads with a 200.
        readable: dict[str, list[int]] = {}
        for route, path in tried:
            if route.method == "GET":
                response = await call(client, route, path, a, None)
                readable.setdefault(route.rule, []).append(response.status_code)
        unread = {rule: codes for rule, codes in readable.items() if 200 not in codes}
        assert not unread, f"A cannot read its own objects on these routes: {unread}"
