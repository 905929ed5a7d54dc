from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('users', '0002_profiles_devices_notifications')]

    initial = True

    operations = [
        ops.CreateModel(
            name='Route',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('share_id', fields.CharField(unique=True, max_length=32)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name='public_routes', on_delete=OnDelete.CASCADE)),
                ('title', fields.CharField(max_length=120)),
                ('locale', fields.CharField(max_length=8)),
                ('source', fields.CharField(max_length=16)),
                ('points', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('distance_m', fields.FloatField()),
                ('gain_m', fields.FloatField()),
                ('loss_m', fields.FloatField()),
                ('trail_ratio', fields.FloatField(null=True)),
                ('duration_s', fields.IntField(null=True)),
                ('content_hash', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'public_routes_route', 'app': 'public_routes', 'indexes': [Index(fields=['user_id', 'created_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
