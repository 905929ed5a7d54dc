from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('public_routes', '0002_garmin')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Route',
            name='elevation_source',
            field=fields.CharField(null=True, max_length=8),
        ),
        ops.AddField(
            model_name='Route',
            name='request_paraphrase',
            field=fields.CharField(null=True, max_length=300),
        ),
        ops.AddField(
            model_name='Route',
            name='plan_id',
            field=fields.CharField(null=True, db_index=True, max_length=32),
        ),
    ]
