from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('users', '0001_initial')]

    initial = True

    operations = [
        ops.CreateModel(
            name='Connection',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='health_connections', on_delete=OnDelete.CASCADE)),
                ('provider', fields.CharField(max_length=32)),
                ('status', fields.CharField(max_length=16)),
                ('connected_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_sync_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('backfill_completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'health_providers_connection', 'app': 'health_providers', 'unique_together': (('user', 'provider'),), 'pk_attr': 'id', 'table_description': 'A user connection to one provider, as alice last reported it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HandledEvent',
            fields=[
                ('event_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('type', fields.CharField(max_length=40)),
                ('handled_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'health_providers_handled_event', 'app': 'health_providers', 'pk_attr': 'event_id', 'table_description': 'An alice event already handled. The primary key makes handling happen once.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OAuthState',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('state_hash', fields.CharField(unique=True, max_length=64)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='health_oauth_states', on_delete=OnDelete.CASCADE)),
                ('provider', fields.CharField(max_length=32)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('consumed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'health_providers_oauth_state', 'app': 'health_providers', 'pk_attr': 'id', 'table_description': 'A pending authorization, found by the hash of its one-time state.'},
            bases=['Model'],
        ),
    ]
