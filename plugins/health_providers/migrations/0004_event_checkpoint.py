from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('health_providers', '0003_oauth_completions'), ('users', '0001_initial'), ('users', '0002_profiles_devices_notifications')]

    initial = False

    operations = [
        ops.CreateModel(
            name='EventCheckpoint',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('cursor', fields.TextField(null=True, unique=False)),
                ('version', fields.IntField(default=0)),
                ('last_event_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('swept_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'health_providers_event_checkpoint', 'app': 'health_providers', 'pk_attr': 'name', 'table_description': 'How far the reconciliation sweep has read the change feed of alice, for all instances.'},
            bases=['Model'],
        ),
    ]
