from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='OutboxMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=100)),
                ('payload', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('dedupe_key', fields.CharField(null=True, unique=True, max_length=200)),
                ('status', fields.CharField(default='pending', max_length=8)),
                ('attempts', fields.IntField(default=0)),
                ('available_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('locked_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('locked_by', fields.CharField(null=True, max_length=64)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'core_outbox', 'app': 'core', 'indexes': [Index(fields=['status', 'available_at'])], 'pk_attr': 'id', 'table_description': 'A side effect queued in the transaction that caused it, carried out by the dispatcher.'},
            bases=['Model'],
        ),
    ]
