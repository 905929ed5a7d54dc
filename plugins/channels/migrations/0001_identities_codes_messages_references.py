from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('users', '0002_profiles_devices_notifications')]

    initial = True

    operations = [
        ops.CreateModel(
            name='ChannelIdentity',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('channel', fields.CharField(max_length=32)),
                ('address', fields.CharField(max_length=128)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name='channel_identities', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharField(default='active', max_length=16)),
                ('linked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('hinted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('wrong_codes', fields.IntField(default=0)),
                ('last_inbound_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'channels_identity', 'app': 'channels', 'unique_together': (('channel', 'address'),), 'pk_attr': 'id', 'table_description': 'One sender on one channel (a WhatsApp number, a Heylo member), linked to a user or not.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LinkCode',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='channel_link_codes', on_delete=OnDelete.CASCADE)),
                ('channel', fields.CharField(max_length=32)),
                ('identity', fields.ForeignKeyField('channels.ChannelIdentity', source_field='identity_id', null=True, db_constraint=True, to_field='id', related_name='codes', on_delete=OnDelete.CASCADE)),
                ('code_hash', fields.CharField(db_index=True, max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('attempts', fields.IntField(default=0)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'channels_link_code', 'app': 'channels', 'pk_attr': 'id', 'table_description': 'A one-time code that links a chat identity to ``user``, stored as its SHA-256.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MessageReference',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='channel_references', on_delete=OnDelete.CASCADE)),
                ('sender', fields.CharField(max_length=100)),
                ('subject', fields.CharField(max_length=200)),
                ('text', fields.TextField(unique=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('answer', fields.CharField(null=True, max_length=16)),
                ('answered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'channels_message_reference', 'app': 'channels', 'pk_attr': 'id', 'table_description': 'A question a message of another family asked the user, answered once in the app.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboundMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('identity', fields.ForeignKeyField('channels.ChannelIdentity', source_field='identity_id', db_constraint=True, to_field='id', related_name='outbound', on_delete=OnDelete.CASCADE)),
                ('purpose', fields.CharField(max_length=16)),
                ('text', fields.TextField(unique=False)),
                ('reply_to', fields.CharField(null=True, max_length=200)),
                ('reference', fields.ForeignKeyField('channels.MessageReference', source_field='reference_id', null=True, db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.SET_NULL)),
                ('status', fields.CharField(default='queued', max_length=16)),
                ('status_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('external_id', fields.CharField(null=True, unique=True, max_length=200)),
                ('via_template', fields.BooleanField(default=False)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'channels_outbound_message', 'app': 'channels', 'pk_attr': 'id', 'table_description': 'A message we send, queued in the outbox.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ReceivedMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('identity', fields.ForeignKeyField('channels.ChannelIdentity', source_field='identity_id', db_constraint=True, to_field='id', related_name='inbound', on_delete=OnDelete.CASCADE)),
                ('external_id', fields.CharField(max_length=200)),
                ('kind', fields.CharField(max_length=16)),
                ('text', fields.TextField(unique=False)),
                ('reply_to', fields.CharField(null=True, max_length=200)),
                ('reacted_to', fields.CharField(null=True, max_length=200)),
                ('sent_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('handled_as', fields.CharField(null=True, max_length=16)),
            ],
            options={'table': 'channels_inbound_message', 'app': 'channels', 'pk_attr': 'id', 'table_description': 'A message an identity sent, stored once per chat-app id.'},
            bases=['Model'],
        ),
    ]
