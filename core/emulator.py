"""A small client of the Firebase Auth Emulator's REST API, for development and tests.

It speaks the same endpoints as production Identity Toolkit, under the
emulator's host prefix; the emulator accepts any API key and, as admin
credential, the bearer token ``owner``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

API_KEY = "fake-api-key"


class EmulatorError(Exception):
    """The emulator refused a call or could not be reached."""


@dataclass(frozen=True)
class Account:
    uid: str
    email: str
    id_token: str
    refresh_token: str


class AuthEmulator:
    """Client for one emulator (``host:port``) and project."""

    def __init__(self, host: str, project_id: str = "demo-imperfect") -> None:
        self.base = f"http://{host}"
        self.project_id = project_id
        self._http = httpx.Client(timeout=10)

    def close(self) -> None:
        self._http.close()

    def _call(self, path: str, body: dict[str, Any], admin: bool = False) -> dict[str, Any]:
        headers = {"Authorization": "Bearer owner"} if admin else {}
        try:
            response = self._http.post(
                f"{self.base}/identitytoolkit.googleapis.com/v1/{path}",
                params={"key": API_KEY},
                json=body,
                headers=headers,
            )
        except httpx.HTTPError as error:
            raise EmulatorError(
                f"Firebase Auth Emulator at {self.base} unreachable: {error}"
            ) from error
        data = response.json()
        if response.status_code != 200:
            message = data.get("error", {}).get("message", response.text)
            raise EmulatorError(f"Firebase Auth Emulator refused {path}: {message}")
        return data

    def _account(self, data: dict[str, Any]) -> Account:
        return Account(data["localId"], data["email"], data["idToken"], data["refreshToken"])

    def sign_up(self, email: str, password: str) -> Account:
        body = {"email": email, "password": password, "returnSecureToken": True}
        return self._account(self._call("accounts:signUp", body))

    def sign_in(self, email: str, password: str) -> Account:
        body = {"email": email, "password": password, "returnSecureToken": True}
        return self._account(self._call("accounts:signInWithPassword", body))

    def set_claims(self, uid: str, claims: dict[str, Any]) -> None:
        body = {"localId": uid, "customAttributes": json.dumps(claims)}
        self._call(f"projects/{self.project_id}/accounts:update", body, admin=True)

    def revoke(self, uid: str) -> None:
        """Revoke refresh tokens: ID tokens issued before now stop verifying."""
        body = {"localId": uid, "validSince": str(int(time.time()))}
        self._call(f"projects/{self.project_id}/accounts:update", body, admin=True)

    def delete(self, uid: str) -> None:
        self._call(f"projects/{self.project_id}/accounts:delete", {"localId": uid}, admin=True)

    def lookup(self, uid: str) -> dict[str, Any] | None:
        data = self._call(f"projects/{self.project_id}/accounts:lookup", {"localId": [uid]}, True)
        users = data.get("users") or []
        return users[0] if users else None


def sign_in_or_up(host: str, email: str, password: str) -> Account:
    """An ID token for ``email``: sign in, or sign up when the account is new."""
    emulator = AuthEmulator(host)
    try:
        try:
            return emulator.sign_in(email, password)
        except EmulatorError as error:
            if "EMAIL_NOT_FOUND" not in str(error) and "INVALID_LOGIN" not in str(error):
                raise
            return emulator.sign_up(email, password)
    finally:
        emulator.close()
