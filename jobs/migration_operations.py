"""A migration operation for the apps that took over models the jobs app once held (accounts,
contacts, reports, examples). Until the split, their tables were jobs_<model>."""
from django.db import migrations

MOVE_CONTENT_TYPE = """
UPDATE django_content_type SET app_label = %s
WHERE app_label = %s AND model = %s
  AND NOT EXISTS (SELECT 1 FROM django_content_type WHERE app_label = %s AND model = %s)
"""


class CreateModelOrTakeOver(migrations.CreateModel):
    """CreateModel; on a database migrated before the split, the model's old jobs_<model> table is
    renamed instead, rows and all, and its content type (so its permissions) moves with it."""

    old_app_label = "jobs"

    def old_table(self) -> str:
        return f"{self.old_app_label}_{self.name_lower}"

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.name)
        if self.old_table() not in schema_editor.connection.introspection.table_names():
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        schema_editor.alter_db_table(model, self.old_table(), model._meta.db_table)
        schema_editor.execute(MOVE_CONTENT_TYPE, [app_label, self.old_app_label, self.name_lower,
                                                  app_label, self.name_lower])

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        # Back to the jobs app's table, which the jobs app's older migrations describe: no row lost.
        model = from_state.apps.get_model(app_label, self.name)
        schema_editor.alter_db_table(model, model._meta.db_table, self.old_table())
        schema_editor.execute(MOVE_CONTENT_TYPE, [self.old_app_label, app_label, self.name_lower,
                                                  self.old_app_label, self.name_lower])

    def describe(self):
        return f"Create model {self.name}, or take over the table {self.old_table()}"
