"""The benchmark's own machinery: its fake auth backend, firebase-admin pointed at it, and
the results region of docs/benchmarks.md (seconds; the benchmark itself is ``make bench``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import firebase_admin
import httpx
import pytest
from firebase_admin import _token_gen, _user_mgt, auth, credentials

from tests.bench import run
from tests.bench.auth_backend import PROJECT_ID, backend_app, service_account
from tests.bench.firebase_urls import point_firebase_admin
from tests.fakes.google_keys import FakeGoogleKeys
from tests.fakes.server import FakeServer


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[tuple[FakeGoogleKeys, str, Path]]:
    counts: Counter[str] = Counter()
    keys = FakeGoogleKeys()
    with keys, FakeServer(backend_app(counts, keys, None)) as server:
        account = tmp_path / "account.json"
        service_account(account, f"{server.url}/token")
        yield keys, server.url, account


def test_the_fastapi_way_makes_one_lookup_per_request_at_the_fake(
    backend: tuple[FakeGoogleKeys, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, url, account = backend
    # set to themselves first, so that the test restores what point_firebase_admin changes
    monkeypatch.setattr(_token_gen, "ID_TOKEN_CERT_URI", _token_gen.ID_TOKEN_CERT_URI)
    monkeypatch.setattr(
        _user_mgt.UserManager, "ID_TOOLKIT_URL", _user_mgt.UserManager.ID_TOOLKIT_URL
    )
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("BENCH_FIREBASE_CERTS_URL", keys.url)
    monkeypatch.setenv("BENCH_IDENTITY_TOOLKIT_URL", f"{url}/v1")
    point_firebase_admin()
    app = firebase_admin.initialize_app(
        credentials.Certificate(str(account)), {"projectId": PROJECT_ID}, name="bench-harness"
    )
    try:
        token = keys.signer.mint("runner-1", PROJECT_ID)
        for _ in range(3):
            claims = auth.verify_id_token(token, app=app, check_revoked=True)
            assert claims["uid"] == "runner-1"
        with pytest.raises(auth.InvalidIdTokenError):
            auth.verify_id_token(keys.signer.mint("x", "another-project"), app=app)
    finally:
        firebase_admin.delete_app(app)
    counts = httpx.get(f"{url}/counts").json()
    # certificates once (their Cache-Control honoured), one access token, a lookup per call
    assert counts == {"certs": 1, "oauth_token": 1, "lookup": 3}


def test_results_are_written_between_the_markers_only(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    after = "\n## Event discovery\n\nanother section, kept as it is\n"
    doc.write_text(f"# Benchmarks\n\nprose\n\n{run.START}\nold numbers\n{run.END}\n{after}")
    run.write_report("new numbers", doc)
    assert doc.read_text() == (
        f"# Benchmarks\n\nprose\n\n{run.START}\nnew numbers\n{run.END}\n{after}"
    )
    doc.write_text("# Benchmarks\n\nno markers\n")
    with pytest.raises(run.BenchError):
        run.write_report("new numbers", doc)
    assert doc.read_text() == "# Benchmarks\n\nno markers\n"
