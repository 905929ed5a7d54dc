"""What the models cannot say: the full-text index of the catalogue and "one active goal
per user", both in the database itself.

- Full-text search over ``events_event.search_text`` (written normalised by the service):
  on PostgreSQL a GIN index on ``to_tsvector('simple', search_text)``, which discovery's
  ``@@ to_tsquery('simple', ...)`` uses; on SQLite an external-content FTS5 table,
  ``events_event_fts``, kept in step with the events table by triggers.
- A partial unique index on ``events_user_event (user_id) WHERE status = 'active'``: the
  same SQL on both databases.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

SQL = {
    "postgres": [
        "CREATE INDEX events_event_search_gin ON events_event "
        "USING GIN (to_tsvector('simple', search_text))",
    ],
    "sqlite": [
        "CREATE VIRTUAL TABLE events_event_fts USING fts5(search_text, "
        "content='events_event', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
        "CREATE TRIGGER events_event_fts_insert AFTER INSERT ON events_event BEGIN "
        "INSERT INTO events_event_fts (rowid, search_text) VALUES (new.id, new.search_text); "
        "END",
        "CREATE TRIGGER events_event_fts_delete AFTER DELETE ON events_event BEGIN "
        "INSERT INTO events_event_fts (events_event_fts, rowid, search_text) "
        "VALUES ('delete', old.id, old.search_text); END",
        "CREATE TRIGGER events_event_fts_update AFTER UPDATE OF search_text ON events_event "
        "BEGIN INSERT INTO events_event_fts (events_event_fts, rowid, search_text) "
        "VALUES ('delete', old.id, old.search_text); "
        "INSERT INTO events_event_fts (rowid, search_text) VALUES (new.id, new.search_text); "
        "END",
        "INSERT INTO events_event_fts (events_event_fts) VALUES ('rebuild')",
    ],
}
REVERSE = {
    "postgres": ["DROP INDEX IF EXISTS events_event_search_gin"],
    "sqlite": [
        "DROP TRIGGER IF EXISTS events_event_fts_update",
        "DROP TRIGGER IF EXISTS events_event_fts_delete",
        "DROP TRIGGER IF EXISTS events_event_fts_insert",
        "DROP TABLE IF EXISTS events_event_fts",
    ],
}
ONE_ACTIVE = (
    "CREATE UNIQUE INDEX events_user_event_one_active ON events_user_event (user_id) "
    "WHERE status = 'active'"
)


class DialectSQL(ops.RunSQL):
    """RunSQL with one list of statements per database dialect."""

    def __init__(self, sql, reverse_sql):
        super().__init__(sql, reverse_sql=reverse_sql)

    @staticmethod
    def _for(state_editor, statements):
        dialect = state_editor.client.capabilities.dialect
        if dialect not in statements:
            raise NotImplementedError(f"no full-text search SQL for {dialect}")
        return statements[dialect]

    @staticmethod
    async def _run(state_editor, statements):
        # One statement at a time, whole: SQLite's schema editor splits a script at every
        # ';', which would cut a trigger's body apart.
        for statement in statements:
            if state_editor.collect_sql:
                state_editor.collected_sql.append(statement)
            else:
                await state_editor.client.execute_query(statement)

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor:
            await self._run(state_editor, self._for(state_editor, self.sql))

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor:
            await self._run(state_editor, self._for(state_editor, self.reverse_sql))


class Migration(migrations.Migration):
    dependencies = [("events", "0001_catalogue_translations_and_goals")]

    initial = False

    operations = [
        DialectSQL(SQL, REVERSE),
        ops.RunSQL(ONE_ACTIVE, reverse_sql="DROP INDEX IF EXISTS events_user_event_one_active"),
    ]
