"""The write path: events captured in the writer's transaction, constant queries, nothing on no-op."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tasks_db.models import DBTaskResult

from automations.models import AutomationEvent
from records import services
from records.models import Record


def tasks():
    return DBTaskResult.objects.filter(task_path="automations.tasks.process_events")


def test_create_update_delete_each_capture_one_event(entity):
    record = services.record_create(entity=entity, data={"name": "Ada", "status": "New"})
    services.record_update(record=record, data={"status": "Contacted"})
    snapshot_id = record.id
    services.record_delete(record=Record.objects.get(pk=record.pk))

    created, updated, deleted = AutomationEvent.objects.order_by("created_at")
    assert (created.event_type, updated.event_type, deleted.event_type) == ("created", "updated", "deleted")
    assert created.old_data is None and created.record["data"] == {"name": "Ada", "status": "New"}
    assert updated.old_data == {"name": "Ada", "status": "New"}
    assert updated.record["data"] == {"name": "Ada", "status": "Contacted"}
    assert deleted.record_id == snapshot_id and deleted.record["data"]["status"] == "Contacted"
    assert tasks().count() == 3
    assert tasks().first().args_kwargs["kwargs"]["event_ids"]


def test_a_save_that_changes_nothing_fires_nothing(entity):
    record = services.record_create(entity=entity, data={"name": "Ada", "status": "New"})
    before = AutomationEvent.objects.count()
    services.record_update(record=record, data={"status": "New"})  # same value
    services.record_update(record=record, data={"name": "Ada", "status": "New"}, merge=False)
    fresh = Record.objects.get(pk=record.pk)
    fresh.save()  # admin-style save without changes
    assert AutomationEvent.objects.count() == before


def test_rollback_fires_nothing(entity):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.record_create(entity=entity, data={"name": "Ada"})
        raise RuntimeError("boom")
    assert AutomationEvent.objects.count() == 0
    assert tasks().count() == 0


def test_bulk_create_captures_every_record_in_chunks(entity, settings):
    settings.AUTOMATIONS_EVENTS_PER_TASK = 25
    records = services.record_bulk_create(entity=entity, items=[{"data": {"name": f"L{i}"}} for i in range(60)])
    events = AutomationEvent.objects.all()
    assert events.count() == 60
    assert {e.record_id for e in events} == {r.id for r in records}
    assert len({e.batch_id for e in events}) == 1
    assert tasks().count() == 3


def _count_queries(fn):
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


@pytest.mark.parametrize("trigger", ["record_created", "record_updated"])
def test_write_path_queries_do_not_depend_on_rules(entity, make_rule, trigger):
    record = services.record_create(entity=entity, data={"name": "warm-up"})
    create0 = _count_queries(lambda: services.record_create(entity=entity, data={"name": "A"}))
    update0 = _count_queries(lambda: services.record_update(record=record, data={"name": "B"}))
    bulk0 = _count_queries(lambda: services.record_bulk_create(entity=entity, items=[{"name": "x"}] * 20))
    for i in range(50):
        make_rule(name=f"r{i}", trigger_type=trigger, action_type="create_task", action_config={"title": "t"})
    create50 = _count_queries(lambda: services.record_create(entity=entity, data={"name": "C"}))
    update50 = _count_queries(lambda: services.record_update(record=record, data={"name": "D"}))
    bulk50 = _count_queries(lambda: services.record_bulk_create(entity=entity, items=[{"name": "x"}] * 20))
    assert (create0, update0, bulk0) == (create50, update50, bulk50)
    # insert record + insert event + insert task (+ savepoint pair from the service's atomic block)
    assert create0 <= 5


def test_bulk_write_path_is_constant_in_records(entity):
    small = _count_queries(lambda: services.record_bulk_create(entity=entity, items=[{"name": "x"}] * 10))
    large = _count_queries(lambda: services.record_bulk_create(entity=entity, items=[{"name": "x"}] * 400))
    # one more task insert per chunk of AUTOMATIONS_EVENTS_PER_TASK events, nothing per record
    assert large - small <= 400 // 25
