from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('users', '0002_profiles_devices_notifications')]

    initial = True

    operations = [
        ops.CreateModel(
            name='Entry',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='journal', on_delete=OnDelete.RESTRICT)),
                ('text', fields.CharField(max_length=200)),
            ],
            options={'table': 'journal_entry', 'app': 'journal', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
