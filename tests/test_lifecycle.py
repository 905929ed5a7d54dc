"""Start-up and shutdown: failures under ``skip``, shutdown for every started family,
and handler declarations checked when they are made."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from core import endpoint
from tests.plugins import closer

ROOT_FAMILY = {"module": "plugins.root"}
FRAGILE = {"module": "tests.plugins.fragile", "settings": {"fail_in": "startup"}}


async def test_startup_failure_under_skip_leaves_out_the_family_and_its_dependents(app_client):
    plugins = {
        "root": ROOT_FAMILY,
        "fragile": {**FRAGILE, "on_failure": "skip"},
        "noticeboard": {
            "module": "tests.plugins.noticeboard",
            "requires": ["fragile"],
            "on_failure": "skip",
        },
    }
    async with app_client(plugins) as client:
        info = await (await client.get("/")).get_json()
        left = {item["name"]: item for item in info["left_out"]}
        assert left["fragile"]["status"] == "skipped"
        assert "startup exploded" in left["fragile"]["reason"]
        assert left["noticeboard"]["reason"] == "requires 'fragile', which was left out"
        assert [f["name"] for f in info["families"]] == ["root"]
        for path in ("/fragile/ping", "/notices"):
            response = await client.get(path)
            assert response.status_code == 503
            assert (await response.get_json())["code"] == "plugin_unavailable"
        assert (await client.get("/healthz")).status_code == 200


async def test_required_family_failing_at_startup_aborts_an_abort_dependent(core_settings):
    from core import create_app

    plugins = {
        "fragile": {**FRAGILE, "on_failure": "skip"},
        "noticeboard": {"module": "tests.plugins.noticeboard", "requires": ["fragile"]},
    }
    app = create_app(core_settings(plugins))
    with pytest.raises(Exception, match="noticeboard"):
        async with app.test_app():
            pass


async def test_family_without_startup_is_still_shut_down(app_client):
    closer.CLOSED.clear()
    async with app_client({"closer": {"module": "tests.plugins.closer"}}) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert closer.CLOSED == []
    assert closer.CLOSED == ["closed"]


class _Body(BaseModel):
    text: str


@pytest.mark.parametrize(
    ("declaration", "handler_source", "message"),
    [
        ({"body": _Body}, "async def h(): ...", "declares body= but takes no 'body'"),
        ({}, "async def h(body): ...", "takes 'body' but declares no body="),
        ({"auth": "public"}, "async def h(user): ...", "is public, so it cannot take"),
        ({}, "def h(): ...", "must be async def"),
    ],
)
def test_handler_declaration_mistakes_fail_when_declared(declaration, handler_source, message):
    namespace: dict = {}
    exec(handler_source, namespace)
    with pytest.raises(TypeError, match=message):
        endpoint(**declaration)(namespace["h"])


def test_a_family_cannot_add_per_request_hooks(core_settings):
    from core import create_app
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="plugin 'meddler' adds per-request hooks"):
        create_app(core_settings({"meddler": {"module": "tests.plugins.meddler"}}))


async def test_family_failing_after_its_startup_is_shut_down_and_reported(app_client):
    from tests.plugins import fragile

    fragile.SHUT_DOWN.clear()
    plugins = {
        "root": ROOT_FAMILY,
        "fragile": {
            "module": "tests.plugins.fragile",
            "settings": {"fail_in": "readiness_checks"},
            "on_failure": "skip",
        },
        "closer": {"module": "tests.plugins.closer"},
    }
    async with app_client(plugins) as client:
        assert fragile.SHUT_DOWN == ["readiness_checks"]  # closed as soon as it failed
        report = await (await client.get("/readyz")).get_json()
        assert report["ready"] is True and report["status"] == "degraded"  # a family: degraded
        assert report["degraded"] == ["fragile"]
        assert (
            "readiness checks exploded"
            in report["plugins"]["fragile"]["checks"]["startup"]["error"]
        )
        assert report["plugins"]["closer"]["ok"] is True
    assert fragile.SHUT_DOWN == ["readiness_checks"]  # and not a second time


async def test_hook_raising_while_loading_follows_skip(app_client):
    plugins = {
        "root": ROOT_FAMILY,
        "broken": {"module": "tests.plugins.bad_settings_model", "on_failure": "skip"},
    }
    async with app_client(plugins) as client:
        info = await (await client.get("/")).get_json()
        [left] = info["left_out"]
        assert left["name"] == "broken" and left["status"] == "skipped"
        assert (
            left["reason"] == "hook settings_model failed: RuntimeError('settings model exploded')"
        )


def test_hook_raising_while_loading_aborts_naming_the_family(core_settings):
    from core import create_app
    from core.errors import PluginLoadError

    with pytest.raises(PluginLoadError, match="plugin 'broken': hook settings_model failed"):
        create_app(core_settings({"broken": {"module": "tests.plugins.bad_settings_model"}}))


async def test_routeless_family_failing_at_startup_is_in_readyz(app_client):
    plugins = {
        "root": ROOT_FAMILY,
        "stalled": {"module": "tests.plugins.stalled", "on_failure": "skip"},
    }
    async with app_client(plugins) as client:
        response = await client.get("/readyz")
        assert response.status_code == 200  # a family failing is degraded, not unready
        check = (await response.get_json())["plugins"]["stalled"]["checks"]["startup"]
        assert check["ok"] is False and "queue broker unreachable" in check["error"]
