"""The routes of the ``users`` family: ``/users``, ``/users_profiles``, ``/notifications``,
``/account``. Thin: parse, call the service, shape the response."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from quart import Blueprint

from core import (
    ApiError,
    DeletionState,
    Identity,
    account_deletion_state,
    endpoint,
    export_user_data,
    request_account_deletion,
)
from plugins.users import service
from plugins.users.models import (
    AthleteProfile,
    Device,
    Notification,
    NotificationPreferences,
    User,
)
from plugins.users.schemas import (
    FAMILY,
    AccountDeletionOut,
    AccountExport,
    AttestableRoute,
    DeviceIn,
    DeviceOut,
    NotificationOut,
    NotificationPage,
    NotificationQuery,
    PreferencesOut,
    PreferencesPatch,
    ProfileIn,
    ProfileOut,
    ProfilePatch,
    UserOut,
    UserPatch,
)

blueprint = Blueprint("users", __name__)


def recent_sign_in_window() -> int:
    return FAMILY.settings.recent_sign_in_seconds


# --- /users ----------------------------------------------------------------------------


@blueprint.post("/users")
@endpoint(response=UserOut, status=201, responses={200: UserOut})
async def create_user(identity: Identity) -> tuple[User, int]:
    """Create the caller's record from their Firebase identity (201), or return it (200)."""
    user, created = await service.register(identity)
    return user, 201 if created else 200


@blueprint.get("/users/me")
@endpoint(response=UserOut)
async def read_me(user: User) -> User:
    """The caller's record."""
    return user


@blueprint.patch("/users/me")
@endpoint(body=UserPatch, response=UserOut)
async def update_me(body: UserPatch, user: User) -> User:
    """Change display name, locale, time zone or units."""
    return await service.update(user, body)


# --- /users_profiles -------------------------------------------------------------------


@blueprint.post("/users_profiles")
@endpoint(body=ProfileIn, response=ProfileOut, status=201, errors=(409,))
async def create_profile(body: ProfileIn, user: User) -> AthleteProfile:
    """Add an athlete profile for a sport (one per sport)."""
    return await service.create_profile(user, body)


@blueprint.get("/users_profiles")
@endpoint(response=list[ProfileOut])
async def list_profiles(user: User) -> list[AthleteProfile]:
    """The caller's athlete profiles."""
    return await service.list_profiles(user)


@blueprint.get("/users_profiles/<int:profile_id>")
@endpoint(response=ProfileOut, errors=(404,))
async def read_profile(profile_id: int, user: User) -> AthleteProfile:
    """One of the caller's athlete profiles."""
    return await service.owned(AthleteProfile, profile_id, user, "profile")


@blueprint.patch("/users_profiles/<int:profile_id>")
@endpoint(body=ProfilePatch, response=ProfileOut, errors=(404, 409))
async def update_profile(profile_id: int, body: ProfilePatch, user: User) -> AthleteProfile:
    """Change the fields sent; null clears an optional field."""
    return await service.update_profile(user, profile_id, body)


@blueprint.delete("/users_profiles/<int:profile_id>")
@endpoint(status=204, errors=(404,))
async def delete_profile(profile_id: int, user: User) -> None:
    """Delete one of the caller's athlete profiles."""
    await service.delete_profile(user, profile_id)


# --- /notifications --------------------------------------------------------------------


# POST /notifications/devices: declared per app by attestable_blueprint (the end of the file)
async def register_device(body: DeviceIn, user: User) -> tuple[Device, int]:
    """Register this device's FCM token for the caller's pushes.

    201 when the token is new to the caller, 200 when they had registered it already.
    A token registered by another account moves to the caller.
    """
    device, new = await service.register_device(user, body, FAMILY.settings.max_devices)
    return device, 201 if new else 200


@blueprint.get("/notifications/devices")
@endpoint(response=list[DeviceOut])
async def list_devices(user: User) -> list[Device]:
    """The caller's registered devices."""
    return await service.list_devices(user)


@blueprint.delete("/notifications/devices/<int:device_id>")
@endpoint(status=204, errors=(404,))
async def unregister_device(device_id: int, user: User) -> None:
    """Stop sending pushes to this device (for example at sign-out)."""
    await service.delete_device(user, device_id)


@blueprint.get("/notifications/preferences")
@endpoint(response=PreferencesOut)
async def read_preferences(user: User) -> NotificationPreferences:
    """Which pushes the caller wants."""
    return await service.preferences(user)


@blueprint.patch("/notifications/preferences")
@endpoint(body=PreferencesPatch, response=PreferencesOut)
async def update_preferences(body: PreferencesPatch, user: User) -> NotificationPreferences:
    """Turn pushes on or off, or mute categories of them."""
    return await service.update_preferences(user, body)


@blueprint.get("/notifications")
@endpoint(query=NotificationQuery, response=NotificationPage)
async def list_notifications(query: NotificationQuery, user: User) -> dict[str, Any]:
    """The pushes sent (or held back) for the caller, newest first."""
    items, next_before = await service.list_notifications(user, query.limit, query.before)
    return {"items": items, "next_before": next_before}


@blueprint.get("/notifications/<int:notification_id>")
@endpoint(response=NotificationOut, errors=(404,))
async def read_notification(notification_id: int, user: User) -> Notification:
    """One notification and how each device delivery went."""
    return await service.find_notification(user, notification_id)


@blueprint.post("/notifications/test")
@endpoint(response=NotificationOut, status=202, errors=(409, 429), rate_limits=("10/minute",))
async def send_test_push(user: User) -> Notification:
    """Queue a test push to every device of the caller; poll the notification to see it go."""
    return await service.send_test_push(user)


# --- /account --------------------------------------------------------------------------


# DELETE /account: declared per app by attestable_blueprint (the end of the file)
async def delete_account(identity: Identity) -> tuple[DeletionState, int] | None:
    """Erase the caller everywhere: every enabled family's data, then the Firebase user.

    Needs a recent sign-in. 204 when everything is erased; once the Firebase user is
    deleted its ID tokens no longer verify (401 ``user_not_found``). 202 with the
    deletion's state when a family cannot erase its part yet (its sibling service is
    down): the platform carries on until it can, and ``GET /account/deletion`` shows
    how far it got. Repeating the request returns the same deletion.
    """
    state = await request_account_deletion(identity)
    return None if state.status == "done" else (state, 202)


@blueprint.get("/account/deletion")
@endpoint(response=AccountDeletionOut, errors=(404,))
async def read_account_deletion(identity: Identity) -> DeletionState:
    """How far the caller's account deletion got: which families erased their part."""
    state = await account_deletion_state(identity)
    if state is None:
        raise ApiError(404, "no_account_deletion", "You have not asked to delete your account.")
    return state


@blueprint.get("/account/export")
@endpoint(response=AccountExport)
async def export_account(user: User) -> dict[str, Any]:
    """Everything every enabled family holds about the caller, as one JSON document."""
    return {**await export_user_data(user), "user": user}


# --- routes a deployment may guard with attestation -------------------------------------


def attestable_blueprint(attested: Collection[AttestableRoute]) -> Blueprint:
    """``POST /notifications/devices`` and ``DELETE /account``, declared for one app.

    Each requires the ``attested`` route requirement (a verified device and a fresh proof
    from it; the ``attestation`` family defines it) when ``require_attestation_for`` names
    it. The declaration is made per app because a requirement no enabled family defines
    stops start-up: guarding them unconditionally would break every deployment without
    attestation, which is the default.
    """
    guarded = Blueprint("users_attestable", __name__)

    def requires(route: AttestableRoute) -> tuple[str, ...]:
        return ("attested",) if route in attested else ()

    guarded.post("/notifications/devices")(
        endpoint(
            body=DeviceIn,
            response=DeviceOut,
            status=201,
            responses={200: DeviceOut},
            rate_limits=("20/minute", "100/hour"),
            requires=requires("device_registration"),
        )(register_device)
    )
    guarded.delete("/account")(
        endpoint(
            status=204,
            responses={202: AccountDeletionOut},
            recent_sign_in=recent_sign_in_window,
            requires=requires("account_deletion"),
        )(delete_account)
    )
    return guarded
