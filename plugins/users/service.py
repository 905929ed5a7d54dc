"""User records: create once per Firebase identity, find, update."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from core import ApiError, Identity
from plugins.users.models import User
from plugins.users.schemas import UserPatch


async def find_registered_user(identity: Identity) -> User:
    """The caller's record; 403 until ``POST /users`` has created it."""
    user = await User.get_or_none(firebase_uid=identity.uid)
    if user is None:
        raise ApiError(
            403, "user_not_registered", "No user record for this identity yet: call POST /users."
        )
    return user


async def register(identity: Identity) -> tuple[User, bool]:
    """The caller's record, created on first call; concurrent first calls make one row."""
    user = await User.get_or_none(firebase_uid=identity.uid)
    if user is not None:
        return user, False
    try:
        user = await User.create(
            firebase_uid=identity.uid,
            email=identity.email,
            display_name=identity.claims.get("name"),
        )
    except IntegrityError:
        return await User.get(firebase_uid=identity.uid), False
    return user, True


async def update(user: User, patch: UserPatch) -> User:
    changes = patch.model_dump(exclude_unset=True)
    if changes:
        await user.update_from_dict(changes).save(update_fields=[*changes, "updated_at"])
    return user
