"""Firebase ID-token authentication, off the event loop.

firebase-admin is synchronous (it may block on a certificate download or, with
revocation checking, on a ``get_user`` call), so every verification runs in a
worker thread. Set ``FIREBASE_AUTH_EMULATOR_HOST`` to verify against the
Firebase Auth Emulator.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import firebase_admin
import google.auth.credentials
from firebase_admin import auth as firebase_auth
from firebase_admin.exceptions import FirebaseError
from google.auth.exceptions import GoogleAuthError

from core.config import EMULATOR_HOST_ENV, CoreSettings, check_emulator_allowed
from core.errors import ApiError

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="imperfect"'}


@dataclass(frozen=True)
class Identity:
    """A caller whose Firebase ID token verified: the uid and every claim."""

    uid: str
    claims: Mapping[str, Any]

    @property
    def email(self) -> str | None:
        return self.claims.get("email")

    @property
    def auth_time(self) -> int | None:
        value = self.claims.get("auth_time")
        return value if type(value) is int else None


def unauthenticated(code: str, detail: str) -> ApiError:
    return ApiError(401, code, detail, headers=BEARER_CHALLENGE)


class FirebaseAuth:
    """Verifies ID tokens with firebase-admin, with its own named Firebase app."""

    def __init__(self, core: CoreSettings) -> None:
        self.core = core
        # Checked when the settings were built; again here, because firebase-admin reads
        # the variable from the process environment, which may have changed since.
        check_emulator_allowed(core.environment)
        self._app = firebase_admin.initialize_app(
            credential=_credential(),
            options={"projectId": core.firebase_project_id},
            name=f"imperfect-{uuid.uuid4().hex}",
        )

    @property
    def firebase_app(self) -> firebase_admin.App:
        return self._app

    @property
    def project_id(self) -> str:
        """The Firebase (Google Cloud) project whose tokens this service accepts."""
        return self.core.firebase_project_id

    def google_credentials(self) -> google.auth.credentials.Credentials:
        """The Google credential of this deployment, for calling other Google APIs (FCM).

        Raises ``RuntimeError`` or ``google.auth.exceptions.DefaultCredentialsError`` when
        there is none (the emulator, or no Application Default Credentials).
        """
        return self._app.credential.get_credential()

    def close(self) -> None:
        firebase_admin.delete_app(self._app)

    async def delete_user(self, uid: str) -> None:
        """Delete the Firebase user ``uid``; one already gone counts as deleted.

        Raises ``firebase_admin.exceptions.FirebaseError`` (or a credential error) when
        Firebase could not do it; the caller retries later.
        """

        def delete() -> None:
            try:
                firebase_auth.delete_user(uid, app=self._app)
            except firebase_auth.UserNotFoundError:
                return

        await asyncio.to_thread(delete)

    async def identify(self, authorization: str | None) -> Identity:
        """Turn an ``Authorization`` header into an :class:`Identity`, or raise 401."""
        if not authorization:
            raise unauthenticated(
                "missing_token",
                "This route needs a Firebase ID token: send 'Authorization: Bearer <token>'.",
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated(
                "invalid_authorization",
                "The Authorization header must be 'Bearer <Firebase ID token>'.",
            )
        claims = await asyncio.to_thread(self._verify, token)
        return Identity(uid=claims["uid"], claims=checked_claims(claims))

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            return firebase_auth.verify_id_token(
                token, app=self._app, check_revoked=self.core.check_revoked
            )
        except firebase_auth.RevokedIdTokenError as error:
            raise unauthenticated(
                "token_revoked", "This ID token has been revoked; sign in again."
            ) from error
        except firebase_auth.ExpiredIdTokenError as error:
            raise unauthenticated(
                "token_expired", "This ID token has expired; refresh it and retry."
            ) from error
        except firebase_auth.UserDisabledError as error:
            raise unauthenticated("user_disabled", "This Firebase user is disabled.") from error
        except firebase_auth.UserNotFoundError as error:
            raise unauthenticated(
                "user_not_found", "The Firebase user of this ID token no longer exists."
            ) from error
        except firebase_auth.CertificateFetchError as error:
            raise ApiError(
                503,
                "auth_unavailable",
                "Firebase Authentication could not be reached to verify the token.",
            ) from error
        except (firebase_auth.InvalidIdTokenError, ValueError) as error:
            raise unauthenticated("invalid_token", _invalid_reason(str(error))) from error
        except (FirebaseError, GoogleAuthError) as error:
            # Credentials missing or Firebase unreachable during the revocation lookup:
            # the token may be fine, we cannot tell, so this is our outage, not a 401.
            raise ApiError(
                503,
                "auth_unavailable",
                f"Firebase Authentication could not verify the token: {type(error).__name__}.",
            ) from error
        except (TypeError, KeyError, AttributeError, OverflowError) as error:
            # A claim of the wrong type that firebase-admin itself trips over (it compares
            # and indexes claims before we see them): the token is malformed, not our crash.
            raise unauthenticated("invalid_token", _INVALID_CLAIMS) from error


_INVALID_CLAIMS = "This ID token's claims are not those of a Firebase ID token."
_MAX_UID = 128  # Firebase's own limit on a uid


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is a subclass of int; a JSON true is not a time


def checked_claims(claims: Mapping[str, Any]) -> Mapping[str, Any]:
    """The verified token's claims, checked like any input: else ``401 invalid_token``.

    firebase-admin checks the signature (outside the emulator), ``aud``, ``iss`` and the
    times, but not the types of the claims core and families rely on: ``sub``/``uid`` a
    non-empty string of at most 128 characters, ``auth_time``, ``iat`` and ``exp``
    integers (seconds), ``email`` a string when present.
    """
    uid, sub = claims.get("uid"), claims.get("sub")
    valid = (
        isinstance(uid, str)
        and 0 < len(uid) <= _MAX_UID
        and uid == sub
        and all(_is_int(claims.get(name)) for name in ("auth_time", "iat", "exp"))
        and ("email" not in claims or isinstance(claims["email"], str))
    )
    if not valid:
        raise unauthenticated("invalid_token", _INVALID_CLAIMS)
    return claims


def _invalid_reason(message: str) -> str:
    if '"aud"' in message or '"iss"' in message:
        return "This ID token was issued for another Firebase project."
    return "This is not a valid Firebase ID token."


def _credential() -> Any:
    """None for the emulator; otherwise Application Default Credentials, loaded lazily
    (a key file from GOOGLE_APPLICATION_CREDENTIALS, or the platform's metadata server)."""
    if os.environ.get(EMULATOR_HOST_ENV):
        return _NoCredential()
    return firebase_admin.credentials.ApplicationDefault()


class _NoCredential(firebase_admin.credentials.Base):
    """The Auth Emulator needs no Google credential (it accepts its own admin token);
    anything else that asks for one fails with a clear message."""

    def get_credential(self) -> Any:
        raise RuntimeError(
            "No Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to call Firebase services"
        )


def require_admin(identity: Identity, claim: str) -> None:
    if identity.claims.get(claim) is not True:
        raise ApiError(403, "admin_required", f"This route needs the '{claim}' custom claim.")


def require_recent_sign_in(identity: Identity, max_age_seconds: int) -> None:
    """Refuse a token whose sign-in is older than ``max_age_seconds`` (or in the future)."""
    now = time.time()
    auth_time = identity.auth_time
    if auth_time is None or auth_time > now + 60 or now - auth_time > max_age_seconds:
        raise unauthenticated(
            "recent_sign_in_required",
            f"This action needs a sign-in within the last {max_age_seconds} seconds; "
            "sign in again and retry.",
        )
