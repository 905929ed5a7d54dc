from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('users', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AthleteProfile',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='profiles', on_delete=OnDelete.CASCADE)),
                ('sport', fields.CharField(max_length=32)),
                ('level', fields.CharField(max_length=16)),
                ('weekly_hours', fields.FloatField(null=True)),
                ('goals', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('birth_year', fields.IntField(null=True)),
                ('max_heart_rate', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'users_profile', 'app': 'users', 'unique_together': (('user', 'sport'),), 'pk_attr': 'id', 'table_description': 'How a user trains in one sport, at most one profile per sport.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Device',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='devices', on_delete=OnDelete.CASCADE)),
                ('token', fields.CharField(unique=True, max_length=512)),
                ('platform', fields.CharField(max_length=8)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('registered_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'users_device', 'app': 'users', 'pk_attr': 'id', 'table_description': 'A device push token (FCM), registered by the user signed in on that device.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.CASCADE)),
                ('category', fields.CharField(max_length=40)),
                ('title', fields.CharField(max_length=200)),
                ('body', fields.TextField(unique=False)),
                ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharField(max_length=12)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'users_notification', 'app': 'users', 'pk_attr': 'id', 'table_description': 'A push notification asked for by some family, as the user is told about it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NotificationPreferences',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.OneToOneField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='notification_preferences', on_delete=OnDelete.CASCADE)),
                ('push_enabled', fields.BooleanField(default=True)),
                ('muted_categories', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'users_notification_preferences', 'app': 'users', 'pk_attr': 'id', 'table_description': 'Which pushes a user wants. No row means the defaults (everything on).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PushDelivery',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('notification', fields.ForeignKeyField('users.Notification', source_field='notification_id', db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.CASCADE)),
                ('device', fields.ForeignKeyField('users.Device', source_field='device_id', null=True, db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.SET_NULL)),
                ('platform', fields.CharField(max_length=8)),
                ('status', fields.CharField(default='pending', max_length=8)),
                ('error', fields.CharField(null=True, max_length=200)),
                ('message_id', fields.CharField(null=True, max_length=200)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'users_push_delivery', 'app': 'users', 'pk_attr': 'id', 'table_description': 'One notification to one device: the unit the outbox sends, retries and records.'},
            bases=['Model'],
        ),
    ]
