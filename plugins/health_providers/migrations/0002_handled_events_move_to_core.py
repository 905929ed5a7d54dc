from tortoise import migrations
from tortoise.migrations import operations as ops

# The alice events already handled are recorded in core's core_handled_message now
# (consumer 'health_providers.alice_events'). The ids still kept move there first, so an
# event alice republishes across the upgrade is not applied twice.
COPY_TO_CORE = (
    "INSERT INTO core_handled_message (consumer, message_id, handled_at) "
    "SELECT 'health_providers.alice_events', event_id, handled_at "
    "FROM health_providers_handled_event"
)
COPY_BACK = (
    "INSERT INTO health_providers_handled_event (event_id, type, handled_at) "
    "SELECT message_id, 'unknown', handled_at FROM core_handled_message "
    "WHERE consumer = 'health_providers.alice_events'"
)

class Migration(migrations.Migration):
    dependencies = [
        ('health_providers', '0001_initial'),
        ('core', '0002_handled_messages_account_deletions'),
    ]

    initial = False

    operations = [
        ops.RunSQL(COPY_TO_CORE, reverse_sql=COPY_BACK),
        ops.DeleteModel(name='HandledEvent'),
    ]
