"""The user record: our id for a Firebase identity, and the caller's preferences."""

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
