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
            name='Board',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='home_boards', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharField(default='generating', max_length=12)),
                ('writer', fields.CharField(max_length=20)),
                ('sections', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('errors', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('narrative', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'home_board', 'app': 'home', 'indexes': [Index(fields=['user_id', 'id'])], 'pk_attr': 'id', 'table_description': 'A board: made once, from the sections ready when it was generated.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='BoardEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('board', fields.ForeignKeyField('home.Board', source_field='board_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('seq', fields.IntField()),
                ('event', fields.CharField(max_length=20)),
                ('data', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'home_board_event', 'app': 'home', 'unique_together': (('board', 'seq'),), 'pk_attr': 'id', 'table_description': 'One event of the stream of a board, stored as it is produced, so a client that dropped'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CheckIn',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='home_check_ins', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
                ('mood', fields.SmallIntField()),
                ('energy', fields.SmallIntField(null=True)),
                ('soreness', fields.SmallIntField(null=True)),
                ('sleep_quality', fields.SmallIntField(null=True)),
                ('text', fields.TextField(null=True, unique=False)),
                ('written_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'home_check_in', 'app': 'home', 'indexes': [Index(fields=['user_id', 'day'])], 'pk_attr': 'id', 'table_description': 'How the user felt on ``day`` (their calendar day), in their words if they wrote any.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Feedback',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='home_feedback', on_delete=OnDelete.CASCADE)),
                ('target', fields.CharField(max_length=10)),
                ('board_id', fields.IntField(null=True)),
                ('section', fields.CharField(null=True, max_length=40)),
                ('activity_id', fields.CharField(null=True, max_length=128)),
                ('rating', fields.CharField(null=True, max_length=4)),
                ('text', fields.TextField(null=True, unique=False)),
                ('written_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'home_feedback', 'app': 'home', 'pk_attr': 'id', 'table_description': 'A reaction the user wrote to a board, a section of one, or an activity.'},
            bases=['Model'],
        ),
    ]
