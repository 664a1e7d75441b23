"""The write path: events captured in the writer's transaction, constant queries, nothing on no-op; with a
distributed backend, messages at commit (the writes of one transaction share them)."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from automations.models import AutomationEvent
from automations.tasks import process_events
from records import services
from records.models import Record

DUMMY_TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend", "QUEUES": ["automations"]}}


@pytest.fixture
def distributed(settings):
    """A distributed task backend that keeps what it is sent (Django's dummy backend)."""
    settings.AUTOMATIONS_EMBEDDED_QUEUE = False
    settings.TASKS = DUMMY_TASKS  # Django rebuilds its task backends when TASKS changes
    backend = process_events.get_backend()
    backend.clear()
    return backend


def sent(backend, path="automations.tasks.process_events"):
    return [r for r in backend.results if r.task.module_path == path]


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


def test_the_embedded_queue_needs_no_message_beside_the_event(entity, settings, django_capture_on_commit_callbacks):
    settings.AUTOMATIONS_EMBEDDED_QUEUE = True
    with django_capture_on_commit_callbacks() as callbacks:
        services.record_create(entity=entity, data={"name": "Ada"})
    assert callbacks == [] and AutomationEvent.objects.filter(processed_at__isnull=True).count() == 1


def test_a_distributed_backend_gets_one_message_per_write_at_commit(
    entity, distributed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        record = services.record_create(entity=entity, data={"name": "Ada"})
    assert sent(distributed) == []  # nothing before the commit
    for callback in callbacks:
        callback()
    (message,) = sent(distributed)
    assert message.kwargs == {"event_ids": [str(AutomationEvent.objects.get(record_id=record.id).id)]}


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


def test_rollback_sends_nothing_to_a_distributed_backend(entity, distributed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        services.record_create(entity=entity, data={"name": "Ada"})
        raise RuntimeError("boom")
    assert sent(distributed) == []


def test_bulk_create_captures_every_record_in_chunks(entity, settings, distributed, django_capture_on_commit_callbacks):
    settings.AUTOMATIONS_EVENTS_PER_TASK = 25
    with django_capture_on_commit_callbacks(execute=True):
        records = services.record_bulk_create(entity=entity, items=[{"data": {"name": f"L{i}"}} for i in range(60)])
    events = AutomationEvent.objects.all()
    assert events.count() == 60
    assert {e.record_id for e in events} == {r.id for r in records}
    assert len({e.batch_id for e in events}) == 1
    assert [len(m.kwargs["event_ids"]) for m in sent(distributed)] == [25, 25, 10]


def test_the_writes_of_one_transaction_share_messages(
    entity, settings, distributed, django_capture_on_commit_callbacks
):
    """A broker's cost per message is several times a run's: 60 records written one by one in one
    transaction are sent as 3 messages, not 60, and only once it commits."""
    settings.AUTOMATIONS_EVENTS_PER_TASK = 25
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        records = [services.record_create(entity=entity, data={"name": f"L{i}"}) for i in range(60)]
    assert sent(distributed) == []
    for callback in callbacks:
        callback()
    messages = sent(distributed)
    assert [len(m.kwargs["event_ids"]) for m in messages] == [25, 25, 10]
    ids = [event_id for m in messages for event_id in m.kwargs["event_ids"]]
    assert ids == [str(AutomationEvent.objects.get(record_id=r.id).id) for r in records]


def test_a_rolled_back_savepoint_drops_its_events_and_later_writes_are_still_sent(
    entity, distributed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            services.record_create(entity=entity, data={"name": "rolled back"})
            raise RuntimeError("boom")
        with transaction.atomic():
            kept = services.record_create(entity=entity, data={"name": "kept"})
            with pytest.raises(RuntimeError), transaction.atomic():
                services.record_create(entity=entity, data={"name": "inner, rolled back"})
                raise RuntimeError("boom")
            also_kept = services.record_create(entity=entity, data={"name": "also kept"})
    sent_ids = {event_id for m in sent(distributed) for event_id in m.kwargs["event_ids"]}
    existing = {str(e.id) for e in AutomationEvent.objects.all()}
    assert {str(AutomationEvent.objects.get(record_id=r.id).id) for r in (kept, also_kept)} <= sent_ids
    assert existing <= sent_ids  # every stored event is sent
    assert len(sent_ids - existing) <= 1  # at most the inner savepoint's id, which process_events skips


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
    # insert record, insert event (inside a transaction, as here, without a savepoint): the event row is
    # the only extra write
    assert create0 == 2


def test_bulk_write_path_is_constant_in_records(entity):
    small = _count_queries(lambda: services.record_bulk_create(entity=entity, items=[{"name": "x"}] * 10))
    large = _count_queries(lambda: services.record_bulk_create(entity=entity, items=[{"name": "x"}] * 400))
    # records and events are inserted 500 per statement: nothing per record
    assert large == small
