from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('users', '0002_profiles_devices_notifications')]

    initial = True

    operations = [
        ops.CreateModel(
            name='Challenge',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('challenge', fields.CharField(unique=True, max_length=64)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='attestation_challenges', on_delete=OnDelete.CASCADE)),
                ('purpose', fields.CharField(max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'attestation_challenge', 'app': 'attestation', 'pk_attr': 'id', 'table_description': 'A one-time challenge: used once (``used_at`` set by a conditional UPDATE).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Device',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='attested_devices', on_delete=OnDelete.CASCADE)),
                ('platform', fields.CharField(max_length=8)),
                ('key_id', fields.CharField(null=True, unique=True, max_length=64)),
                ('public_key', fields.BinaryField(null=True)),
                ('receipt', fields.BinaryField(null=True)),
                ('app_id', fields.CharField(max_length=255)),
                ('environment', fields.CharField(max_length=16)),
                ('counter', fields.BigIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'attestation_device', 'app': 'attestation', 'pk_attr': 'id', 'table_description': 'A device whose app instance was verified: an App Attest key, or a Play-verified app.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProbeNonce',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('probe_id', fields.CharField(max_length=64)),
                ('nonce', fields.CharField(max_length=64)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'attestation_probe_nonce', 'app': 'attestation', 'unique_together': (('probe_id', 'nonce'),), 'pk_attr': 'id', 'table_description': 'A nonce of a probe request, kept while its timestamp is inside the window.'},
            bases=['Model'],
        ),
    ]
