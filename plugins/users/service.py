"""Users, athlete profiles, devices and notifications; erasing and exporting them. No HTTP here.

Every lookup of an object by id goes through :func:`owned`, which filters by the caller,
so another user's object and a missing one are the same 404.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from datetime import timedelta
from typing import Any, TypeVar

from tortoise.exceptions import IntegrityError
from tortoise.models import Model
from tortoise.transactions import in_transaction

from core import (
    ApiError,
    Identity,
    OutboxItem,
    PermanentFailure,
    PushMessage,
    enqueue,
    utcnow,
)
from plugins.users.clients import (
    Push,
    PushRejected,
    PushSender,
    TokenUnregistered,
)
from plugins.users.models import (
    AthleteProfile,
    Device,
    Notification,
    NotificationPreferences,
    PushDelivery,
    User,
)
from plugins.users.schemas import (
    DeviceIn,
    DeviceOut,
    NotificationOut,
    PreferencesOut,
    PreferencesPatch,
    ProfileIn,
    ProfileOut,
    ProfilePatch,
    UserPatch,
)

PUSH_KIND = "users.push"
TEST_PUSH = PushMessage(
    title="Test notification",
    body="Push notifications reach this device.",
    category="test",
)
TEST_PUSHES_PER_HOUR = 5
MAX_ID = 2**31 - 1  # ids are 32-bit integer columns
FCM_PAYLOAD_LIMIT = 4096  # bytes, FCM's limit for a message's notification and data
_CATEGORY = re.compile(r"^[a-z][a-z0-9_.-]{0,39}$")
# FCM's reserved keys, and the one this family adds to every push
_RESERVED_DATA_KEYS = re.compile(
    r"^(from|message_type|collapse_key|google\..*|gcm\..*|notification_id)$"
)

M = TypeVar("M", bound=Model)


# --- records ---------------------------------------------------------------------------


async def find_registered_user(identity: Identity) -> User:
    """The caller's record; 403 until ``POST /users`` has created it."""
    user = await User.get_or_none(firebase_uid=identity.uid)
    if user is None:
        raise ApiError(
            403, "user_not_registered", "No user record for this identity yet: call POST /users."
        )
    return user


MAX_DISPLAY_NAME = 100  # users_user.display_name
MAX_EMAIL = 320  # users_user.email


def _claimed_text(value: object, max_length: int, *, clean: bool) -> str | None:
    """A token claim as text we may store, or ``None``: claims are input like any field.

    Only a string is kept. ``clean``: control and lone-surrogate characters are dropped
    (PostgreSQL refuses NUL), whitespace runs become one space, and the text is cut to
    ``max_length``; otherwise a string with such characters or too long is refused.
    """
    if not isinstance(value, str):
        return None
    if clean:
        kept = "".join(
            ch for ch in value if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cs")
        )
        value = " ".join(kept.split())[:max_length].strip()
    elif len(value) > max_length or any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        return None
    return value or None


async def register(identity: Identity) -> tuple[User, bool]:
    """The caller's record, created on first call; concurrent first calls make one row.

    The token's ``name`` and ``email`` claims are untrusted input (a user sets their
    Firebase display name freely): ``name`` is cleaned into a display name, an ``email``
    that is not a plain string of at most 320 characters is not kept.
    """
    user = await User.get_or_none(firebase_uid=identity.uid)
    if user is not None:
        return user, False
    try:
        user = await User.create(
            firebase_uid=identity.uid,
            email=_claimed_text(identity.claims.get("email"), MAX_EMAIL, clean=False),
            display_name=_claimed_text(identity.claims.get("name"), MAX_DISPLAY_NAME, clean=True),
        )
    except IntegrityError:
        return await User.get(firebase_uid=identity.uid), False
    return user, True


async def update(user: User, patch: UserPatch) -> User:
    changes = patch.model_dump(exclude_unset=True)
    if changes:
        await user.update_from_dict(changes).save(update_fields=[*changes, "updated_at"])
    return user


async def owned(model: type[M], object_id: int, user: User, noun: str) -> M:
    """The caller's ``model`` row ``object_id``; someone else's is exactly as missing (404)."""
    found = None
    if object_id <= MAX_ID:  # larger ids exist nowhere, and overflow the database's integer
        found = await model.get_or_none(id=object_id, user_id=user.id)
    if found is None:
        raise ApiError(404, f"{noun}_not_found", f"You have no {noun} {object_id}.")
    return found


# --- athlete profiles ------------------------------------------------------------------


def _profile_exists(sport: str) -> ApiError:
    return ApiError(409, "profile_exists", f"You already have a {sport} profile; change that one.")


async def create_profile(user: User, data: ProfileIn) -> AthleteProfile:
    try:
        return await AthleteProfile.create(user_id=user.id, **data.model_dump())
    except IntegrityError as error:
        raise _profile_exists(data.sport) from error


async def list_profiles(user: User) -> list[AthleteProfile]:
    return await AthleteProfile.filter(user_id=user.id).order_by("id")


async def update_profile(user: User, profile_id: int, patch: ProfilePatch) -> AthleteProfile:
    profile = await owned(AthleteProfile, profile_id, user, "profile")
    changes = patch.model_dump(exclude_unset=True)
    if changes:
        try:
            await profile.update_from_dict(changes).save(update_fields=[*changes, "updated_at"])
        except IntegrityError as error:
            raise _profile_exists(changes["sport"]) from error
    return profile


async def delete_profile(user: User, profile_id: int) -> None:
    await (await owned(AthleteProfile, profile_id, user, "profile")).delete()


# --- devices ---------------------------------------------------------------------------


async def register_device(user: User, data: DeviceIn, max_devices: int) -> tuple[Device, bool]:
    """Upsert the device by token; ``True`` when the token is new to the caller.

    A token registered by another user moves to the caller: the device is signed in to
    another account now, and its pushes must follow. Past ``max_devices`` the caller's
    least recently registered devices are dropped.
    """
    try:
        return await _upsert_device(user, data, max_devices)
    except IntegrityError:  # the same token was registered concurrently; now it exists
        return await _upsert_device(user, data, max_devices)


async def _upsert_device(user: User, data: DeviceIn, max_devices: int) -> tuple[Device, bool]:
    now = utcnow()
    async with in_transaction():
        device = await Device.filter(token=data.token).select_for_update().first()
        if device is None:
            device = await Device.create(
                user_id=user.id, token=data.token, platform=data.platform, registered_at=now
            )
            new_to_caller = True
        else:
            new_to_caller = device.user_id != user.id
            device.user_id, device.platform, device.registered_at = user.id, data.platform, now
            await device.save(update_fields=["user_id", "platform", "registered_at"])
        newest_first = await Device.filter(user_id=user.id).order_by("-registered_at", "-id")
        stale = [d.id for d in newest_first[max_devices:]]
        if stale:
            await Device.filter(id__in=stale).delete()
    return device, new_to_caller


async def list_devices(user: User) -> list[Device]:
    return await Device.filter(user_id=user.id).order_by("id")


async def delete_device(user: User, device_id: int) -> None:
    await (await owned(Device, device_id, user, "device")).delete()


# --- preferences -----------------------------------------------------------------------


async def preferences(user: User) -> NotificationPreferences:
    """The caller's preferences; the defaults (not stored) until they change one."""
    stored = await NotificationPreferences.get_or_none(user_id=user.id)
    return stored or NotificationPreferences(user_id=user.id)


async def update_preferences(user: User, patch: PreferencesPatch) -> NotificationPreferences:
    changes = patch.model_dump(exclude_unset=True)
    if "muted_categories" in changes:
        changes["muted_categories"] = sorted(set(changes["muted_categories"]))
    try:
        return await _save_preferences(user, changes)
    except IntegrityError:  # a concurrent first change stored them; change those
        return await _save_preferences(user, changes)


async def _save_preferences(user: User, changes: dict[str, Any]) -> NotificationPreferences:
    current = await preferences(user)
    await current.update_from_dict(changes).save()
    return current


# --- notifications ---------------------------------------------------------------------


async def notify(user: User, push: PushMessage, respect_preferences: bool = True) -> Notification:
    """Record ``push`` for ``user`` and queue one delivery per device, all in one transaction.

    Called inside the caller's transaction, it joins it: nothing is sent unless the
    caller's change commits. Pushes the user muted are recorded as ``muted`` and not sent.
    """
    _check_push(push)
    async with in_transaction():
        settings = await preferences(user)
        devices = await Device.filter(user_id=user.id).order_by("id")
        muted = respect_preferences and (
            not settings.push_enabled or push.category in settings.muted_categories
        )
        status = "muted" if muted else "queued" if devices else "no_devices"
        notification = await Notification.create(
            user_id=user.id,
            category=push.category,
            title=push.title,
            body=push.body,
            data=dict(push.data),
            status=status,
        )
        if status == "queued":
            for device in devices:
                delivery = await PushDelivery.create(
                    notification_id=notification.id, device_id=device.id, platform=device.platform
                )
                await enqueue(PUSH_KIND, {"delivery_id": delivery.id})
    return notification


def _check_push(push: PushMessage) -> None:
    """Refuse, in the calling family, a push that FCM would refuse later."""
    problems = []
    if not 1 <= len(push.title) <= 200:
        problems.append("title must be 1-200 characters")
    if not _CATEGORY.match(push.category):
        problems.append(f"category must match {_CATEGORY.pattern}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in push.data.items()):
        problems.append("data keys and values must be strings")
    elif any(_RESERVED_DATA_KEYS.match(key) for key in push.data):
        problems.append("data uses a reserved key")
    size = len(json.dumps({"title": push.title, "body": push.body, "data": dict(push.data)}))
    if size > FCM_PAYLOAD_LIMIT:
        problems.append(f"the push is {size} bytes; FCM takes at most {FCM_PAYLOAD_LIMIT}")
    if problems:
        raise ValueError("invalid push: " + "; ".join(problems))


async def send_test_push(user: User) -> Notification:
    """A push to every device of the caller, whatever their preferences say."""
    async with in_transaction():
        if not await Device.exists(user_id=user.id):
            raise ApiError(
                409, "no_devices", "Register a device (POST /notifications/devices) first."
            )
        now = utcnow()
        recent = (
            await Notification.filter(
                user_id=user.id, category="test", created_at__gte=now - timedelta(hours=1)
            )
            .order_by("-created_at")
            .values_list("created_at", flat=True)
        )
        if len(recent) >= TEST_PUSHES_PER_HOUR:
            # The hour frees a slot when the oldest push that still counts leaves it.
            frees_at = recent[TEST_PUSHES_PER_HOUR - 1] + timedelta(hours=1)  # type: ignore[operator]
            wait = max(1, math.ceil((frees_at - now).total_seconds()))
            raise ApiError(
                429,
                "too_many_test_pushes",
                f"At most {TEST_PUSHES_PER_HOUR} test pushes an hour.",
                headers={"Retry-After": str(wait)},
            )
        notification = await notify(user, TEST_PUSH, respect_preferences=False)
    await notification.fetch_related("deliveries")
    return notification


async def list_notifications(
    user: User, limit: int, before: int | None
) -> tuple[list[Notification], int | None]:
    """A page of the caller's notifications, newest first, and the cursor of the next."""
    query = Notification.filter(user_id=user.id)
    if before is not None:
        query = query.filter(id__lt=before)
    page = await query.order_by("-id").limit(limit + 1).prefetch_related("deliveries")
    more = len(page) > limit
    page = page[:limit]
    return page, page[-1].id if more else None


async def find_notification(user: User, notification_id: int) -> Notification:
    notification = await owned(Notification, notification_id, user, "notification")
    await notification.fetch_related("deliveries")
    return notification


async def deliver(sender: PushSender, item: OutboxItem) -> None:
    """The outbox handler of ``users.push``: send one delivery, record what FCM said."""
    delivery = await PushDelivery.get_or_none(id=item.payload["delivery_id"]).prefetch_related(
        "notification", "device"
    )
    if delivery is None or delivery.status != "pending":
        return  # erased with its user, or already handled
    device, notification = delivery.device, delivery.notification
    if device is None or device.user_id != notification.user_id:
        await _settle(delivery, "skipped", error="the device was unregistered or changed hands")
        return
    # The ids let the app open the notification, and drop the rare repeat (see core.outbox).
    data = {**notification.data, "notification_id": str(notification.id)}
    # A repeat of the same notification replaces the first on the phone (collapse id).
    push = Push(
        device.token,
        notification.title,
        notification.body,
        data,
        collapse_id=str(notification.id),
    )
    try:
        message_id = await sender.send(push)
    except TokenUnregistered:
        await Device.filter(id=device.id, token=device.token).delete()
        await _settle(delivery, "failed", error="FCM: the token is no longer registered")
        return
    except PushRejected as error:
        await _settle(delivery, "failed", error=f"FCM refused the push: {error}")
        raise PermanentFailure(str(error)) from error
    except Exception as error:
        if item.final:
            await _settle(delivery, "failed", error=f"FCM unreachable: {type(error).__name__}")
        raise
    await _settle(delivery, "sent", message_id=message_id)


async def _settle(
    delivery: PushDelivery, status: str, error: str | None = None, message_id: str | None = None
) -> None:
    """Record a delivery's outcome and the notification's status that follows from all."""
    now = utcnow()
    async with in_transaction():
        # Lock the notification: deliveries of one notification settle one at a time.
        notification = (
            await Notification.filter(id=delivery.notification_id).select_for_update().first()
        )
        if notification is None:
            return  # erased with its user meanwhile
        await PushDelivery.filter(id=delivery.id, status="pending").update(
            status=status,
            error=error[:200] if error else None,
            message_id=message_id,
            sent_at=now if status == "sent" else None,
        )
        statuses: list[str] = await PushDelivery.filter(
            notification_id=notification.id
        ).values_list("status", flat=True)  # type: ignore[assignment]  # flat: one column
        if "pending" in statuses:
            notification.status = "queued"
        elif "sent" in statuses:
            notification.status = "sent"
        else:
            notification.status = "failed"
        if status == "sent" and notification.sent_at is None:
            notification.sent_at = now
        await notification.save(update_fields=["status", "sent_at"])


# --- the whole account -----------------------------------------------------------------


async def erase(user: User) -> None:
    """Delete every row this family holds for ``user``, the user record last."""
    async with in_transaction():
        await Device.filter(user_id=user.id).delete()  # first: no push reaches them any more
        await NotificationPreferences.filter(user_id=user.id).delete()
        await Notification.filter(user_id=user.id).delete()  # and its deliveries (cascade)
        await AthleteProfile.filter(user_id=user.id).delete()
        await User.filter(id=user.id).delete()


async def export(user: User) -> dict[str, Any]:
    """This family's part of the caller's export (the user record itself is exported apart)."""
    notifications = (
        await Notification.filter(user_id=user.id).order_by("id").prefetch_related("deliveries")
    )
    settings = await preferences(user)
    return {
        "profiles": [_json(ProfileOut, p) for p in await list_profiles(user)],
        "devices": [_json(DeviceOut, d) for d in await list_devices(user)],
        "notification_preferences": _json(PreferencesOut, settings),
        "notifications": [_json(NotificationOut, n) for n in notifications],
    }


def _json(model: type[Any], value: Any) -> dict[str, Any]:
    return model.model_validate(value, from_attributes=True).model_dump(mode="json")
