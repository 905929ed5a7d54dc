from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('public_routes', '0001_routes_and_shares'), ('users', '0001_initial'), ('users', '0002_profiles_devices_notifications')]

    initial = False

    operations = [
        ops.CreateModel(
            name='GarminSend',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='garmin_sends', on_delete=OnDelete.CASCADE)),
                ('share_id', fields.CharField(max_length=32)),
                ('course_id', fields.BigIntField()),
                ('course_name', fields.CharField(max_length=120)),
                ('points', fields.IntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'public_routes_garmin_send', 'app': 'public_routes', 'indexes': [Index(fields=['user_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A course created in the Garmin Connect of a user, from a share.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='GarminState',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('state_hash', fields.CharField(unique=True, max_length=64)),
                ('session_hash', fields.CharField(max_length=64)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='garmin_states', on_delete=OnDelete.CASCADE)),
                ('share_id', fields.CharField(max_length=32)),
                ('consent', fields.BooleanField()),
                ('verifier', fields.TextField(unique=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('consumed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'public_routes_garmin_state', 'app': 'public_routes', 'pk_attr': 'id', 'table_description': 'A pending send, found by the hash of its one-time ``state``.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='GarminToken',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.OneToOneField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='garmin_token', on_delete=OnDelete.CASCADE)),
                ('garmin_user_id', fields.CharField(max_length=64)),
                ('access_token', fields.TextField(unique=False)),
                ('refresh_token', fields.TextField(unique=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'public_routes_garmin_token', 'app': 'public_routes', 'pk_attr': 'id', 'table_description': 'The Garmin Connect tokens of a user, each Fernet-encrypted (never stored or logged plain).'},
            bases=['Model'],
        ),
    ]
