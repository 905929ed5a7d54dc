"""The storage of the ``users`` family: the user record and everything hanging off it.

Every row here belongs to one user and goes when they delete their account
(``account_deleted``); the foreign keys cascade as a second line of defence.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class User(Model):
    """One row per Firebase user. The user-owned rows of every other family point here."""

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


class AthleteProfile(Model):
    """How a user trains in one sport, at most one profile per sport."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "users.User", related_name="profiles", on_delete=fields.CASCADE
    )
    user_id: int  # Tortoise adds the key's column attribute
    sport = fields.CharField(max_length=32)
    level = fields.CharField(max_length=16)
    weekly_hours = fields.FloatField(null=True)
    goals: fields.JSONField[list[str]] = fields.JSONField(default=list)
    birth_year = fields.IntField(null=True)
    max_heart_rate = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "users_profile"
        unique_together = (("user", "sport"),)


class Device(Model):
    """A device push token (FCM), registered by the user signed in on that device."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "users.User", related_name="devices", on_delete=fields.CASCADE
    )
    user_id: int
    token = fields.CharField(max_length=512, unique=True)
    platform = fields.CharField(max_length=8)
    created_at = fields.DatetimeField(auto_now_add=True)
    registered_at = fields.DatetimeField()

    class Meta:
        table = "users_device"


class NotificationPreferences(Model):
    """Which pushes a user wants. No row means the defaults (everything on)."""

    id = fields.IntField(primary_key=True)
    user: fields.OneToOneRelation[User] = fields.OneToOneField(
        "users.User", related_name="notification_preferences", on_delete=fields.CASCADE
    )
    user_id: int
    push_enabled = fields.BooleanField(default=True)
    muted_categories: fields.JSONField[list[str]] = fields.JSONField(default=list)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "users_notification_preferences"


class Notification(Model):
    """A push notification asked for by some family, as the user is told about it."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "users.User", related_name="notifications", on_delete=fields.CASCADE
    )
    user_id: int
    category = fields.CharField(max_length=40)
    title = fields.CharField(max_length=200)
    body = fields.TextField()
    data: fields.JSONField[dict[str, str]] = fields.JSONField(default=dict)
    status = fields.CharField(max_length=12)
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "users_notification"


class PushDelivery(Model):
    """One notification to one device: the unit the outbox sends, retries and records."""

    id = fields.IntField(primary_key=True)
    notification: fields.ForeignKeyRelation[Notification] = fields.ForeignKeyField(
        "users.Notification", related_name="deliveries", on_delete=fields.CASCADE
    )
    notification_id: int
    device: fields.ForeignKeyNullableRelation[Device] = fields.ForeignKeyField(
        "users.Device", related_name="deliveries", null=True, on_delete=fields.SET_NULL
    )
    platform = fields.CharField(max_length=8)
    status = fields.CharField(max_length=8, default="pending")
    error = fields.CharField(max_length=200, null=True)
    message_id = fields.CharField(max_length=200, null=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "users_push_delivery"
