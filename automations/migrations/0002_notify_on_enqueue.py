"""PostgreSQL only: NOTIFY automations_tasks whenever a task row is inserted, so idle workers that
LISTEN wake at commit instead of waiting for their next poll. Other databases keep polling."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION automations_notify_task() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('automations_tasks', NEW.queue_name);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS automations_notify_task ON django_tasks_database_dbtaskresult;
CREATE TRIGGER automations_notify_task AFTER INSERT ON django_tasks_database_dbtaskresult
  FOR EACH ROW EXECUTE FUNCTION automations_notify_task();
"""

DROP = """
DROP TRIGGER IF EXISTS automations_notify_task ON django_tasks_database_dbtaskresult;
DROP FUNCTION IF EXISTS automations_notify_task();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0001_initial"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
