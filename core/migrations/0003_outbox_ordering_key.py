from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('core', '0002_handled_messages_account_deletions')]

    initial = False

    operations = [
        ops.AddField(
            model_name='OutboxMessage',
            name='ordering_key',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.AddIndex(
            model_name='OutboxMessage',
            index=Index(fields=['ordering_key', 'status']),
        ),
    ]
