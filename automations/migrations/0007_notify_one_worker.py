"""The NOTIFY on event inserts carries a number (the inserting transaction's id), so that one idle worker
answers it rather than all of them: worker i of n live ones wakes for the numbers with ``number % n == i``
(``automations.worker.Waker``); the others find it at their next poll if that one is busy or gone."""

from django.db import migrations

NOTIFY_ONE = """
CREATE OR REPLACE FUNCTION automations_notify_events() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('automations_events', (txid_current() %% 1000003)::text);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""
NOTIFY_ALL = """
CREATE OR REPLACE FUNCTION automations_notify_events() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('automations_events', '');
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NOTIFY_ONE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NOTIFY_ALL)


class Migration(migrations.Migration):
    dependencies = [("automations", "0006_running_lease_index")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
