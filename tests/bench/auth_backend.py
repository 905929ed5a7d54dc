"""The auth backend of the benchmark, faked on real sockets in a process of its own.

Run as ``python -m tests.bench.auth_backend STATE_FILE [--emulator HOST] [--uid UID ...]``.
It serves, and counts every request it answers:

- Google's token-signing certificates, the way Google's endpoint serves them (cache
  headers included): :class:`tests.fakes.google_keys.FakeGoogleKeys`, reused;
- Identity Toolkit's ``POST /v1/projects/<project>/accounts:lookup``, the call
  firebase-admin's ``get_user`` makes (and so ``verify_id_token(check_revoked=True)``):
  every uid is an enabled user whose tokens are valid since the epoch;
- Google's OAuth token endpoint (``POST /token``), where a service account's credential
  (the ``token_uri`` of the key file written here) trades its signed assertion for an
  access token, as google-auth does before calling Identity Toolkit;
- with ``--emulator``, a counting proxy in front of the Firebase Auth Emulator
  (``/identitytoolkit.googleapis.com/...``; point ``FIREBASE_AUTH_EMULATOR_HOST`` here),
  so calls to the emulator are counted too.

``GET /counts`` answers the counters as JSON. The state file (JSON) says where each
endpoint is, holds an RS256 token per ``--uid`` signed by the served key, and names the
service account key file; it is written once everything listens.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from quart import Quart, Response, request

from tests.fakes.google_keys import FakeGoogleKeys
from tests.fakes.server import FakeServer

PROJECT_ID = "bench-imperfect"
JSON = "application/json"


def backend_app(counts: Counter[str], keys: FakeGoogleKeys, emulator: str | None) -> Quart:
    """Identity Toolkit's lookup, the OAuth token endpoint and the emulator proxy, counted."""
    app = Quart("bench_auth_backend")
    proxy = httpx.AsyncClient(base_url=f"http://{emulator}", timeout=10) if emulator else None

    @app.post("/v1/projects/<project>/accounts:lookup")
    async def lookup(project: str) -> Response:
        counts["lookup"] += 1
        body = await request.get_json(force=True, silent=True) or {}
        users = [
            {
                "localId": uid,
                "email": f"{uid}@example.com",
                "emailVerified": True,
                "disabled": False,
                "validSince": "0",
                "createdAt": "0",
                "lastLoginAt": "0",
            }
            for uid in body.get("localId") or []
        ]
        return Response(
            json.dumps({"kind": "identitytoolkit#GetAccountInfoResponse", "users": users}),
            content_type=JSON,
        )

    @app.post("/token")
    async def token() -> Response:
        counts["oauth_token"] += 1
        document = {
            "access_token": f"bench-{time.time_ns()}",
            "expires_in": 3600,
            "token_type": "Bearer",
        }
        return Response(json.dumps(document), content_type=JSON)

    @app.get("/counts")
    async def read_counts() -> Response:
        return Response(json.dumps({**counts, "certs": keys.requests}), content_type=JSON)

    @app.route("/identitytoolkit.googleapis.com/<path:rest>", methods=["GET", "POST", "DELETE"])
    async def emulated(rest: str) -> Response:
        if proxy is None:
            return Response(b'{"error":"no emulator"}', status=404, content_type=JSON)
        counts["emulator"] += 1
        answer = await proxy.request(
            request.method,
            f"/identitytoolkit.googleapis.com/{rest}",
            params=request.args,
            content=await request.get_data(),
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        )
        headers = {
            k: v
            for k, v in answer.headers.items()
            if k.lower() not in {"content-length", "transfer-encoding", "connection"}
        }
        return Response(answer.content, status=answer.status_code, headers=headers)

    return app


def service_account(path: Path, token_uri: str) -> None:
    """A service account key file whose credential trades assertions at ``token_uri``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    document = {
        "type": "service_account",
        "project_id": PROJECT_ID,
        "private_key_id": "bench",
        "private_key": pem,
        "client_email": f"bench@{PROJECT_ID}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(document))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("state", type=Path)
    parser.add_argument("--emulator", help="host:port of a Firebase Auth Emulator to proxy")
    parser.add_argument("--uid", action="append", default=[])
    args = parser.parse_args()

    counts: Counter[str] = Counter()
    keys = FakeGoogleKeys()
    with keys, FakeServer(backend_app(counts, keys, args.emulator)) as backend:
        account_file = args.state.with_suffix(".service-account.json")
        service_account(account_file, f"{backend.url}/token")
        state = {
            "project_id": PROJECT_ID,
            "certs_url": keys.url,
            "identity_toolkit_url": f"{backend.url}/v1",
            "counts_url": f"{backend.url}/counts",
            "emulator_host": backend.url.removeprefix("http://") if args.emulator else None,
            "service_account_file": str(account_file),
            "tokens": {uid: keys.signer.mint(uid, PROJECT_ID) for uid in args.uid},
        }
        args.state.write_text(json.dumps(state))
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()


if __name__ == "__main__":
    main()
