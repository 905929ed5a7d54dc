from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Parcel',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('label', fields.CharField(max_length=100)),
                ('delivered', fields.IntField(default=0)),
            ],
            options={'table': 'courier_parcel', 'app': 'courier', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
