"""The write path's only job: capture each record change as an ``AutomationEvent`` and enqueue its
processing, inside the writer's transaction. A constant number of queries (two inserts per write, two
per bulk chunk) whatever the number of rules: matching happens in the worker."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends

from .causation import chain_for_new_event
from .models import AutomationEvent, EventType


def _backend_is_transactional() -> bool:
    """True when enqueueing writes to our own database (django-tasks-db): the task row then commits or
    rolls back with the record. Any other backend is enqueued after commit (the event row is durable
    either way; recovery picks up an event whose enqueue was lost)."""
    try:
        from django_tasks_db.backend import DatabaseBackend
    except ImportError:  # pragma: no cover
        return False
    return isinstance(task_backends[DEFAULT_TASK_BACKEND_ALIAS], DatabaseBackend)


def _enqueue(event_ids: list[str]) -> None:
    from .tasks import process_events

    if _backend_is_transactional():
        process_events.enqueue(event_ids=event_ids)
    else:
        transaction.on_commit(lambda: process_events.enqueue(event_ids=event_ids))


def _event(record, event_type: str, old_data, actor, chain, depth, batch_id=None) -> AutomationEvent:
    return AutomationEvent(
        id=uuid.uuid4(),
        event_type=event_type,
        workspace_id=record.workspace_id,
        entity_id=record.entity_id,
        record_id=record.id,
        record=record.as_snapshot(),
        old_data=old_data,
        actor_id=getattr(actor, "pk", None),
        chain=chain,
        chain_depth=depth,
        batch_id=batch_id,
    )


def record_changed(record, *, created: bool, actor=None) -> None:
    """Called after a record is inserted or updated (post_save)."""
    old = None if created else record.previous_data
    if not created and old is not None and old == record.data:
        return  # a save that changes nothing fires nothing
    chain, depth = chain_for_new_event()
    event = _event(record, EventType.CREATED if created else EventType.UPDATED, old, actor, chain, depth)
    event.save(force_insert=True)
    _enqueue([str(event.id)])


def record_deleted(record, *, actor=None) -> None:
    chain, depth = chain_for_new_event()
    event = _event(record, EventType.DELETED, None, actor, chain, depth)
    event.save(force_insert=True)
    _enqueue([str(event.id)])


def records_created(records: Iterable, *, actor=None) -> None:
    """Bulk create: one event per record, inserted in batches, one task per chunk of events."""
    records = list(records)
    if not records:
        return
    chain, depth = chain_for_new_event()
    batch_id = uuid.uuid4()
    events = [_event(r, EventType.CREATED, None, actor, chain, depth, batch_id) for r in records]
    AutomationEvent.objects.bulk_create(events, batch_size=500)
    size = max(1, settings.AUTOMATIONS_EVENTS_PER_TASK)
    for start in range(0, len(events), size):
        _enqueue([str(e.id) for e in events[start : start + size]])
