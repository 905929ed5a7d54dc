from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('users', '0001_initial'), ('users', '0002_profiles_devices_notifications')]

    initial = True

    operations = [
        ops.CreateModel(
            name='Event',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('source_id', fields.CharField(null=True, unique=True, max_length=128)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(default='', unique=False)),
                ('sport', fields.CharField(max_length=32)),
                ('date', fields.DateField()),
                ('start_time', fields.CharField(max_length=5)),
                ('timezone', fields.CharField(max_length=64)),
                ('place_name', fields.CharField(max_length=200)),
                ('country', fields.CharField(db_index=True, max_length=2)),
                ('latitude', fields.FloatField()),
                ('longitude', fields.FloatField()),
                ('organiser_url', fields.CharField(null=True, max_length=500)),
                ('default_language', fields.CharField(max_length=35)),
                ('search_text', fields.TextField(default='', unique=False)),
                ('retired_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'events_event', 'app': 'events', 'indexes': [Index(fields=['date', 'id'])], 'pk_attr': 'id', 'table_description': 'A race in the catalogue. Retired events stay (goals point at them) but are not listed.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='EventDistance',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('event', fields.ForeignKeyField('events.Event', source_field='event_id', db_constraint=True, to_field='id', related_name='distances', on_delete=OnDelete.CASCADE)),
                ('km', fields.FloatField(db_index=True)),
                ('label', fields.CharField(default='', max_length=60)),
            ],
            options={'table': 'events_distance', 'app': 'events', 'pk_attr': 'id', 'table_description': 'One distance an event offers (a marathon and a 10 km on the same day).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='EventTranslation',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('event', fields.ForeignKeyField('events.Event', source_field='event_id', db_constraint=True, to_field='id', related_name='translations', on_delete=OnDelete.CASCADE)),
                ('language', fields.CharField(max_length=35)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(default='', unique=False)),
            ],
            options={'table': 'events_translation', 'app': 'events', 'unique_together': (('event', 'language'),), 'pk_attr': 'id', 'table_description': 'The name and description of an event in one language.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UserEvent',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='user_events', on_delete=OnDelete.CASCADE)),
                ('event', fields.ForeignKeyField('events.Event', source_field='event_id', db_constraint=True, to_field='id', related_name='goals', on_delete=OnDelete.CASCADE)),
                ('distance', fields.ForeignKeyField('events.EventDistance', source_field='distance_id', null=True, db_constraint=True, to_field='id', related_name='goals', on_delete=OnDelete.SET_NULL)),
                ('target_time_seconds', fields.IntField(null=True)),
                ('status', fields.CharField(default='active', db_index=True, max_length=12)),
                ('source', fields.CharField(default='user', max_length=20)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'events_user_event', 'app': 'events', 'pk_attr': 'id', 'table_description': 'The goal of a user: an event, one of its distances and a target time.'},
            bases=['Model'],
        ),
    ]
