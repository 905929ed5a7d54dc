"""The storage of the ``attestation`` family: challenges, attested devices, probe nonces.

Challenges and devices belong to one user and go when they delete their account
(``account_deleted``); the foreign keys cascade as a second line of defence. Probe nonces
belong to no user: they are pruned once their window has passed.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from core import USER_MODEL


class Challenge(Model):
    """A one-time challenge: used once (``used_at`` set by a conditional UPDATE)."""

    id = fields.IntField(primary_key=True)
    challenge = fields.CharField(max_length=64, unique=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="attestation_challenges", on_delete=fields.CASCADE
    )
    user_id: int
    purpose = fields.CharField(max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(db_index=True)
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "attestation_challenge"


class Device(Model):
    """A device whose app instance was verified: an App Attest key, or a Play-verified app."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="attested_devices", on_delete=fields.CASCADE
    )
    user_id: int
    platform = fields.CharField(max_length=8)
    key_id = fields.CharField(max_length=64, null=True, unique=True)  # ios: base64 SHA-256
    public_key = fields.BinaryField(null=True)  # ios: SubjectPublicKeyInfo DER
    receipt = fields.BinaryField(null=True)  # ios: Apple's receipt, for the fraud metric
    app_id = fields.CharField(max_length=255)
    environment = fields.CharField(max_length=16)
    counter = fields.BigIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "attestation_device"


class ProbeNonce(Model):
    """A nonce of a probe request, kept while its timestamp is inside the window."""

    id = fields.IntField(primary_key=True)
    probe_id = fields.CharField(max_length=64)
    nonce = fields.CharField(max_length=64)
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "attestation_probe_nonce"
        unique_together = (("probe_id", "nonce"),)
