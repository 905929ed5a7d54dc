"""A fake FCM HTTP v1 server on a real socket, driven by tests.

It follows the contract in shared/reference/external-services.md §1.4:
``POST /v1/projects/{project}/messages:send`` with an OAuth bearer token and
``{"message": {...}}``, answering ``{"name": "projects/{project}/messages/{id}"}``; errors
are ``{"error": {code, message, status, details: [FcmError]}}`` with FCM's statuses. Tests
make it fail (``fail_next``), declare tokens stale (``unregister``), slow it down
(``delay``) and read what it accepted (``messages``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAYLOAD_LIMIT = 4096
ERRORS = {  # FCM error code -> (HTTP status, Google status)
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED"),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED"),
    "UNREGISTERED": (404, "NOT_FOUND"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED"),
    "INTERNAL": (500, "INTERNAL"),
    "UNAVAILABLE": (503, "UNAVAILABLE"),
}


@dataclass
class Received:
    """A request the fake answered: what came in, and what it said."""

    path: str
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class FakeFcm:
    """The server's state; every method is safe to call from the test's thread."""

    project_id: str = "demo-imperfect"
    url: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)  # accepted messages
    requests: list[Received] = field(default_factory=list)  # everything answered
    delay: float = 0.0
    _failures: list[str] = field(default_factory=list)
    _unregistered: set[str] = field(default_factory=set)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, times: int, error: str = "UNAVAILABLE") -> None:
        """Answer the next ``times`` sends with FCM's ``error`` (e.g. 503 UNAVAILABLE)."""
        with self._lock:
            self._failures.extend([error] * times)

    def unregister(self, token: str) -> None:
        """From now on, sends to ``token`` answer 404 UNREGISTERED."""
        with self._lock:
            self._unregistered.add(token)

    def received_by(self, token: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages if m.get("token") == token]

    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        if self.delay:
            time.sleep(self.delay)
        status, body = self._decide(path, headers, raw)
        with self._lock:
            self.requests.append(Received(path, headers, _json_or_none(raw), status))
        return status, body

    def _decide(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        if path != f"/v1/projects/{self.project_id}/messages:send":
            return _google_error(404, "NOT_FOUND", f"Unknown path {path}.")
        if not headers.get("authorization", "").startswith("Bearer "):
            return _google_error(401, "UNAUTHENTICATED", "Request is missing a bearer token.")
        body = _json_or_none(raw)
        message = body.get("message") if isinstance(body, dict) else None
        problem = _invalid(message)
        if problem:
            return _fcm_error("INVALID_ARGUMENT", problem)
        with self._lock:
            if self._failures:
                return _fcm_error(self._failures.pop(0), "Injected failure.")
            if message.get("token") in self._unregistered:
                return _fcm_error("UNREGISTERED", "Requested entity was not found.")
            self.messages.append(message)
            name = f"projects/{self.project_id}/messages/0:{next(self._ids)}"
        return 200, {"name": name}


# The fields of a v1 Message and of the parts this platform sends; FCM refuses any other
# ("Invalid JSON payload received. Unknown name ...").
MESSAGE_FIELDS = {
    "message": {
        "name", "data", "notification", "android", "webpush", "apns", "fcm_options",
        "token", "topic", "condition",
    },
    "notification": {"title", "body", "image"},
    "android": {
        "collapse_key", "priority", "ttl", "restricted_package_name", "data", "notification",
        "fcm_options", "direct_boot_ok",
    },
    "apns": {"headers", "payload", "fcm_options", "live_activity_token"},
}  # fmt: skip


def _invalid(message: Any) -> str | None:
    if not isinstance(message, dict):
        return 'The body must be {"message": {...}}.'
    for part, fields in MESSAGE_FIELDS.items():
        value = message if part == "message" else message.get(part, {})
        if not isinstance(value, dict):
            return f"{part} must be an object."
        unknown = sorted(set(value) - fields)
        if unknown:
            return f"Invalid JSON payload received. Unknown name {unknown[0]!r} at {part!r}."
    targets = [key for key in ("token", "topic", "condition") if message.get(key)]
    if len(targets) != 1:
        return "A message needs exactly one of token, topic or condition."
    for part, maps in (("data", message), ("headers", message.get("apns", {}))):
        values = maps.get(part, {})
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            return f"{part} values must be strings."
    if len(message.get("apns", {}).get("headers", {}).get("apns-collapse-id", "")) > 64:
        return "apns-collapse-id is at most 64 bytes."
    notification = message.get("android", {}).get("notification", {})
    if not isinstance(notification, dict) or not isinstance(notification.get("tag", ""), str):
        return "android.notification.tag must be a string."
    if len(json.dumps(message).encode()) > PAYLOAD_LIMIT:
        return "Message is too big."
    return None


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _google_error(code: int, status: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {"error": {"code": code, "message": message, "status": status}}


def _fcm_error(error_code: str, message: str) -> tuple[int, dict[str, Any]]:
    code, status = ERRORS[error_code]
    detail = {
        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
        "errorCode": error_code,
    }
    return code, {
        "error": {"code": code, "message": message, "status": status, "details": [detail]}
    }


@contextmanager
def serve_fake_fcm(project_id: str = "demo-imperfect") -> Iterator[FakeFcm]:
    """Run a fake FCM on 127.0.0.1 (a free port) for the duration of the block."""
    fake = FakeFcm(project_id=project_id)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, body = fake.answer(self.path, headers, raw)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-fcm", daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
