from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('users', '0001_initial'), ('users', '0002_profiles_devices_notifications')]

    initial = True

    operations = [
        ops.CreateModel(
            name='BackfillCheckpoint',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('family', fields.CharField(max_length=100)),
                ('scope', fields.CharField(max_length=200)),
                ('cursor', fields.CharField(max_length=500)),
                ('sent', fields.IntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'hare_backfill_checkpoint', 'app': 'hare', 'unique_together': (('family', 'scope'),), 'pk_attr': 'id', 'table_description': 'How far ``imperfect hare backfill`` got through the stored events of one family.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PendingSourceEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='hare_source_events', on_delete=OnDelete.CASCADE)),
                ('idempotency_key', fields.CharField(unique=True, max_length=200)),
                ('surface', fields.CharField(max_length=81)),
                ('text', fields.TextField(unique=False)),
                ('written_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('reference_type', fields.CharField(max_length=64)),
                ('reference_id', fields.CharField(max_length=200)),
                ('language', fields.CharField(null=True, max_length=35)),
                ('status', fields.CharField(default='pending', max_length=8)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('queued_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'hare_source_event', 'app': 'hare', 'pk_attr': 'id', 'table_description': 'A source event recorded in the transaction of its writer, not yet delivered to hare.'},
            bases=['Model'],
        ),
    ]
