from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('core', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AccountDeletion',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('firebase_uid', fields.CharField(unique=True, max_length=128)),
                ('user_id', fields.IntField(null=True)),
                ('status', fields.CharField(default='pending', max_length=12)),
                ('erased', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('requested_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('locked_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'core_account_deletion', 'app': 'core', 'pk_attr': 'id', 'table_description': 'A request to erase an account, carried out family by family until it is done.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HandledMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('consumer', fields.CharField(max_length=64)),
                ('message_id', fields.CharField(max_length=128)),
                ('handled_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'core_handled_message', 'app': 'core', 'unique_together': (('consumer', 'message_id'),), 'pk_attr': 'id', 'table_description': 'A message from outside (an event on Redis, a webhook) already handled by a consumer.'},
            bases=['Model'],
        ),
    ]
