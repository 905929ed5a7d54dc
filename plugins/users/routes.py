"""``/users``: the caller's own record."""

from __future__ import annotations

from quart import Blueprint

from core import Identity, endpoint
from plugins.users.models import User
from plugins.users.schemas import UserOut, UserPatch
from plugins.users.service import register, update

blueprint = Blueprint("users", __name__, url_prefix="/users")


@blueprint.post("")
@endpoint(response=UserOut, status=201, auth="user", responses={200: UserOut})
async def create_user(identity: Identity) -> tuple[User, int]:
    """Create the caller's record from their Firebase identity (201), or return it (200)."""
    user, created = await register(identity)
    return user, 201 if created else 200


@blueprint.get("/me")
@endpoint(response=UserOut, errors=(403,))
async def read_me(user: User) -> User:
    """The caller's record."""
    return user


@blueprint.patch("/me")
@endpoint(body=UserPatch, response=UserOut, errors=(403,))
async def update_me(body: UserPatch, user: User) -> User:
    """Change display name, locale, time zone or units."""
    return await update(user, body)
