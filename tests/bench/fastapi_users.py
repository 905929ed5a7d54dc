"""``GET /users/me`` and ``PATCH /users/me`` written the FastAPI way, for the benchmark.

This is how a FastAPI service usually does it, and how the original service did:

- the ID token is verified by firebase-admin, ``auth.verify_id_token(token,
  check_revoked=True)``, in a plain ``def`` dependency, which FastAPI runs in its
  thread pool (anyio's, 40 threads). ``check_revoked=True`` makes firebase-admin call
  Identity Toolkit's ``accounts:lookup`` (``get_user``) on every request; its
  certificates come through its own HTTP cache (``google.auth.transport.requests``
  with CacheControl), honouring their ``Cache-Control`` headers;
- the user row is read with Tortoise ORM (``User.get_or_none(firebase_uid=...)``), the
  change written with ``save(update_fields=...)``, as the platform's service does;
- the response goes through a pydantic ``response_model``, the body through a pydantic
  model with the platform's constraints.

It reads the platform's own table (``users_user``, migrated by the platform), from
``DATABASE_URL``, and never imports ``core``. Pointed at the benchmark's auth backend by
``tests/bench/firebase_urls.py`` (see there), or at the Auth Emulator by
``FIREBASE_AUTH_EMULATOR_HOST``.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import available_timezones

import firebase_admin
from fastapi import Depends, FastAPI, Header, HTTPException
from firebase_admin import auth, credentials
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from tortoise import Tortoise, fields
from tortoise.models import Model

from tests.bench.firebase_urls import point_firebase_admin

TIMEZONES = frozenset(available_timezones())


class User(Model):
    """The platform's ``users_user`` row, as the FastAPI service would declare it."""

    id = fields.IntField(primary_key=True)
    firebase_uid = fields.CharField(max_length=128, unique=True)
    email = fields.CharField(max_length=320, null=True)
    display_name = fields.CharField(max_length=100, null=True)
    locale = fields.CharField(max_length=35, default="en")
    timezone = fields.CharField(max_length=64, default="UTC")
    units = fields.CharField(max_length=8, default="metric")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "users_user"


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    firebase_uid: str
    email: str | None
    display_name: str | None
    locale: str
    timezone: str
    units: Literal["metric", "imperial"]
    created_at: datetime
    updated_at: datetime


def _known_timezone(value: str) -> str:
    if value not in TIMEZONES:
        raise ValueError("not an IANA time zone name")
    return value


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[^\r\n]*$")
    locale: str = Field(None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)
    timezone: Annotated[str, AfterValidator(_known_timezone)] = Field(None)
    units: Literal["metric", "imperial"] = Field(None)


def _firebase_app() -> firebase_admin.App:
    point_firebase_admin()
    project = os.environ["FIREBASE_PROJECT_ID"]
    key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    credential = credentials.Certificate(key_file) if key_file else None
    return firebase_admin.initialize_app(credential, {"projectId": project}, name="bench")


def create_app() -> FastAPI:
    """The FastAPI service: Tortoise opened in the lifespan, firebase-admin built once."""
    firebase = _firebase_app()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await Tortoise.init(
            db_url=os.environ["DATABASE_URL"],
            modules={"models": ["tests.bench.fastapi_users"]},
            _enable_global_fallback=True,  # requests run outside the lifespan's context
        )
        yield
        await Tortoise.close_connections()

    app = FastAPI(title="bench-users", lifespan=lifespan)

    def verified_uid(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "Bearer token required")
        try:
            claims = auth.verify_id_token(token, app=firebase, check_revoked=True)
        except (ValueError, auth.InvalidIdTokenError, auth.UserDisabledError) as error:
            raise HTTPException(401, str(error)) from error
        uid: str = claims["uid"]
        return uid

    async def current_user(uid: Annotated[str, Depends(verified_uid)]) -> User:
        user = await User.get_or_none(firebase_uid=uid)
        if user is None:
            raise HTTPException(404, "no such user")
        return user

    @app.get("/healthz")
    async def liveness() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/users/me", response_model=UserOut)
    async def read_me(user: Annotated[User, Depends(current_user)]) -> User:
        return user

    @app.patch("/users/me", response_model=UserOut)
    async def update_me(body: UserPatch, user: Annotated[User, Depends(current_user)]) -> User:
        changes = body.model_dump(exclude_unset=True)
        if changes:
            await user.update_from_dict(changes).save(update_fields=[*changes, "updated_at"])
        return user

    return app
