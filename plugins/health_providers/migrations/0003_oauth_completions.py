from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('health_providers', '0002_handled_events_move_to_core'), ('users', '0002_profiles_devices_notifications')]

    initial = False

    operations = [
        ops.AddField(
            model_name='OAuthState',
            name='completed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='OAuthState',
            name='completion_expires_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='OAuthState',
            name='completion_hash',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
        ops.AddField(
            model_name='OAuthState',
            name='sealed',
            field=fields.TextField(null=True, unique=False),
        ),
    ]
