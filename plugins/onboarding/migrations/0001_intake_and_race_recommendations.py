from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('users', '0001_initial'), ('users', '0002_profiles_devices_notifications')]

    initial = True

    operations = [
        ops.CreateModel(
            name='IntakeSession',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.OneToOneField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='intake_session', on_delete=OnDelete.CASCADE)),
                ('version', fields.CharField(max_length=20)),
                ('status', fields.CharField(default='in_progress', max_length=12)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'onboarding_intake_session', 'app': 'onboarding', 'pk_attr': 'id', 'table_description': 'The intake of one user, on the questionnaire version it started on.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='IntakeAnswer',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('session', fields.ForeignKeyField('onboarding.IntakeSession', source_field='session_id', db_constraint=True, to_field='id', related_name='answers', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='intake_answers', on_delete=OnDelete.CASCADE)),
                ('version', fields.CharField(max_length=20)),
                ('step', fields.CharField(max_length=40)),
                ('value', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('skipped', fields.BooleanField(default=False)),
                ('free_text', fields.BooleanField(default=False)),
                ('active', fields.BooleanField(default=True)),
                ('written_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'onboarding_intake_answer', 'app': 'onboarding', 'pk_attr': 'id', 'table_description': 'One answer (or skip) to one step, kept when the user goes back or starts over.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RecommendationSet',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='recommendation_sets', on_delete=OnDelete.CASCADE)),
                ('inputs', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'onboarding_recommendation_set', 'app': 'onboarding', 'pk_attr': 'id', 'table_description': 'One ranking of the catalogue for a user, with the inputs it was made from.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Recommendation',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('set', fields.ForeignKeyField('onboarding.RecommendationSet', source_field='set_id', db_constraint=True, to_field='id', related_name='items', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='recommendations', on_delete=OnDelete.CASCADE)),
                ('rank', fields.IntField()),
                ('event_id', fields.IntField()),
                ('event_name', fields.CharField(max_length=200)),
                ('event_date', fields.DateField()),
                ('distance_id', fields.IntField(null=True)),
                ('distance_km', fields.FloatField()),
                ('score', fields.FloatField()),
                ('factors', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('accepted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'onboarding_recommendation', 'app': 'onboarding', 'pk_attr': 'id', 'table_description': 'One recommended event (and distance) in a ranking, with its explained score.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RecommendationReply',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('recommendation', fields.ForeignKeyField('onboarding.Recommendation', source_field='recommendation_id', db_constraint=True, to_field='id', related_name='replies', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='recommendation_replies', on_delete=OnDelete.CASCADE)),
                ('text', fields.TextField(unique=False)),
                ('written_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'onboarding_recommendation_reply', 'app': 'onboarding', 'pk_attr': 'id', 'table_description': 'What a user wrote back about a recommendation (sent to hare).'},
            bases=['Model'],
        ),
    ]
