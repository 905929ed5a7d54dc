"""public_routes served by ``imperfect serve``: the public page in a real headless browser
(Debian's chromium, JavaScript off), and two instances on one Redis spending one budget."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.support import ROOT
from tests.support.gpx import loop, track
from tests.support.ports import free_port
from tests.support.servers import serving_processes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
GPX = {"Content-Type": "application/gpx+xml"}


def plugins(public_url: str) -> dict[str, Any]:
    return {
        "users": {"module": "plugins.users"},
        "public_routes": {
            "module": "plugins.public_routes",
            "settings": {"public_url": public_url},
        },
    }


def environment(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "IMPERFECT_AUTO_MIGRATE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **extra,
    }


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"test-pr-{uuid.uuid4().hex[:12]}"
    yield prefix
    with redis.Redis.from_url(redis_url) as client:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def test_the_public_page_in_a_headless_browser_without_javascript(
    tmp_path: Path, database_url: str
) -> None:
    if not os.path.exists(CHROMIUM):
        missing = f"no chromium at {CHROMIUM}: `apt-get install -y chromium` (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(missing)  # CI must run the browser test
        pytest.skip(missing)
    from playwright import sync_api as playwright  # the test extra

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving_processes(tmp_path, plugins(base), [port], environment(database_url)):
        created = httpx.post(
            f"{base}/routes/anonymous/gpx",
            params={"title": "Tour du lac 14.1 mi", "locale": "fr"},
            content=track(loop(300)),
            headers=GPX,
        )
        assert created.status_code == 201, created.text
        route = created.json()
        canonical = f"{base}/r/{route['share_id']}/tour-du-lac"
        assert route["url"] == canonical
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(
                    java_script_enabled=False, viewport={"width": 1000, "height": 900}
                )
                answer = page.goto(f"{base}/r/{route['share_id']}/tour-du-lac-14-1-mi")
                assert answer is not None and answer.status == 200
                assert page.url == canonical  # the wrong slug landed on the canonical page
                assert page.title() == "Tour du lac 14.1 mi"
                assert page.locator("html").get_attribute("lang") == "fr"
                assert page.locator("h1").inner_text() == "Tour du lac 14.1 mi"
                distance = page.locator("[data-stat=distance]").inner_text()
                assert distance.endswith(" km") and "," in distance  # French decimals
                assert page.locator("[data-stat=gain]").inner_text().endswith(" m")
                og = {
                    name: page.locator(f'meta[property="og:{name}"]').get_attribute("content")
                    for name in ("title", "description", "image", "url")
                }
                assert og["title"] == "Tour du lac 14.1 mi" and og["url"] == canonical
                assert og["image"].startswith(f"{canonical.rsplit('/', 1)[0]}/preview.jpg?v=")
                assert page.locator('meta[name="twitter:card"]').get_attribute("content") == (
                    "summary_large_image"
                )
                assert page.locator("main").count() == 1 and page.locator("header").count() == 1
                image = page.locator("main img")
                assert image.get_attribute("alt")
                # the preview loaded and decoded in the browser
                assert page.locator("main img").evaluate("i => i.naturalWidth") == 1200
                links = page.locator("footer a")
                assert links.count() == 2
                for href in links.evaluate_all("as => as.map(a => a.href)"):
                    assert httpx.get(href).status_code == 200
                screenshot = tmp_path / "public-page.png"
                page.screenshot(path=str(screenshot), full_page=True)
                print(f"screenshot of the public page: {screenshot}")
                assert screenshot.stat().st_size > 10_000
            finally:
                browser.close()


def test_two_instances_on_one_redis_share_one_planning_budget(
    tmp_path: Path, database_url: str, redis_url: str, key_prefix: str
) -> None:
    env = environment(
        database_url,
        IMPERFECT_RATE_LIMIT_REDIS_URL=redis_url,
        IMPERFECT_RATE_LIMIT_KEY_PREFIX=key_prefix,
    )
    ports = [free_port(), free_port()]
    with serving_processes(tmp_path, plugins("http://127.0.0.1"), ports, env) as (a, b):
        body = track(loop(20))
        codes = [
            httpx.post(f"{base}/routes/anonymous/gpx", content=body, headers=GPX).status_code
            for base in (a, b, a, b, a)
        ]
        assert codes == [201] * 5  # five a minute per address, whichever instance serves
        for base in (a, b):
            refused = httpx.post(f"{base}/routes/anonymous/gpx", content=body, headers=GPX)
            assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    with redis.Redis.from_url(redis_url) as client:
        keys = {key.decode() for key in client.scan_iter(f"{key_prefix}:*")}
    assert any("create_anonymous_route" in key for key in keys), keys
