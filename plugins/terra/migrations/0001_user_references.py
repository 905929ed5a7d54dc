from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('users', '0001_initial'), ('users', '0002_profiles_devices_notifications')]

    initial = True

    operations = [
        ops.CreateModel(
            name='TerraReference',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.OneToOneField('users.User', source_field='user_id', db_constraint=True, to_field='id', related_name='terra_reference', on_delete=OnDelete.CASCADE)),
                ('reference_id', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'terra_reference', 'app': 'terra', 'pk_attr': 'id', 'table_description': 'The ``reference_id`` that the Terra sessions and SDK tokens of one user carry.'},
            bases=['Model'],
        ),
    ]
