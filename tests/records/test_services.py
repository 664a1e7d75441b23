"""records.services: the one place that writes records (and what it tells signal receivers)."""

import pytest
from django.db.models.signals import post_delete, post_save

from records import services
from records.exceptions import RecordDataInvalid
from records.models import Record, Task
from tests.factories import RecordFactory
from workspaces import services as workspace_services
from workspaces.exceptions import SchemaConflict


@pytest.fixture
def saved():
    events = []

    def on_save(sender, instance, created, **kwargs):
        events.append(("save", created, instance.previous_data, dict(instance.data), getattr(instance, "actor", None)))

    def on_delete(sender, instance, **kwargs):
        events.append(("delete", instance.pk))

    post_save.connect(on_save, sender=Record)
    post_delete.connect(on_delete, sender=Record)
    yield events
    post_save.disconnect(on_save, sender=Record)
    post_delete.disconnect(on_delete, sender=Record)


def test_create_update_delete_tell_receivers_the_old_and_new_data(entity, owner, saved):
    record = services.record_create(entity=entity, data={"name": "Ada", "status": "New"}, actor=owner)
    assert saved[-1] == ("save", True, None, {"name": "Ada", "status": "New"}, owner)
    assert record.previous_data == {"name": "Ada", "status": "New"}

    services.record_update(record=record, data={"status": "Contacted"}, actor=owner)
    assert saved[-1] == ("save", False, {"name": "Ada", "status": "New"}, {"name": "Ada", "status": "Contacted"}, owner)

    loaded = Record.objects.get(pk=record.pk)
    assert loaded.previous_data == loaded.data
    services.record_update(record=loaded, data={"status": "Contacted"}, actor=owner)
    assert len(saved) == 2  # nothing changed, nothing saved

    pk = record.pk
    services.record_delete(record=loaded, actor=owner)
    assert saved[-1] == ("delete", pk)


def test_update_with_invalid_data_leaves_the_record_alone(entity):
    record = RecordFactory(entity=entity, data={"name": "Ada"})
    with pytest.raises(RecordDataInvalid):
        services.record_update(record=record, data={"amount": "many"})
    record.refresh_from_db()
    assert record.data == {"name": "Ada"}


def test_snapshot_shape(entity):
    record = RecordFactory(entity=entity)
    snapshot = record.as_snapshot()
    assert snapshot["id"] == str(record.id) and snapshot["entity_id"] == str(entity.id)
    assert snapshot["workspace_id"] == str(entity.workspace_id) and snapshot["data"] == record.data
    assert snapshot["created_at"] and snapshot["updated_at"]


def test_bulk_sets_previous_data_and_rejects_a_non_list(entity):
    records = services.record_bulk_create(entity=entity, items=[{"name": "A"}, {"name": "B"}])
    assert [r.previous_data for r in records] == [{"name": "A"}, {"name": "B"}]
    with pytest.raises(RecordDataInvalid):
        services.record_bulk_create(entity=entity, items={"name": "A"})


def test_task_create_and_update(workspace, owner):
    task = services.task_create(workspace=workspace, title="Follow up", actor=owner, status="done")
    assert task.completed_at is not None and task.created_by == owner
    task = services.task_update(task=task, status=Task.Status.OPEN)
    assert task.completed_at is None


def test_records_answer_an_entity_schema_change_through_the_workspaces_signal(entity):
    """workspaces never imports records: it asks through ``entity_fields_changing``; records checks and
    converts its stored values."""
    record = RecordFactory(entity=entity, data={"name": "Ada", "amount": 12})
    as_text = [{**f, "type": "text"} if f["name"] == "amount" else f for f in entity.fields]
    workspace_services.entity_fields_check(entity=entity, new_fields=as_text)  # fits: nothing raised
    record.refresh_from_db()
    assert record.data["amount"] == 12  # a check converts nothing

    required_phone = [*entity.fields, {"name": "phone", "type": "text", "required": True}]
    with pytest.raises(SchemaConflict) as info:
        workspace_services.entity_fields_check(entity=entity, new_fields=required_phone)
    assert info.value.message.startswith("1 existing record does not fit the new fields: ")
    assert info.value.errors == {"fields": [info.value.message]}

    workspace_services.entity_update(entity=entity, fields=as_text)
    record.refresh_from_db()
    assert record.data["amount"] == "12"
