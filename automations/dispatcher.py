"""The write path's only job: capture each record change as an ``AutomationEvent`` inside the writer's
transaction (the event row is the message: it commits or rolls back with the record). One insert per
write, one per 500 records of a bulk create, whatever the number of rules: matching happens in the worker.
With a distributed task backend the events are also enqueued at commit (``tasks.enqueue_events``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from . import sql
from .causation import chain_for_new_event
from .models import AutomationEvent, EventType
from .tasks import enqueue_events


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
    sql.insert_event(event)
    enqueue_events([str(event.id)])


def record_deleted(record, *, actor=None) -> None:
    chain, depth = chain_for_new_event()
    event = _event(record, EventType.DELETED, None, actor, chain, depth)
    sql.insert_event(event)
    enqueue_events([str(event.id)])


def records_created(records: Iterable, *, actor=None) -> None:
    """Bulk create: one event per record, inserted in batches (a message per chunk of events, see
    ``tasks.enqueue_events``)."""
    records = list(records)
    if not records:
        return
    chain, depth = chain_for_new_event()
    batch_id = uuid.uuid4()
    events = [_event(r, EventType.CREATED, None, actor, chain, depth, batch_id) for r in records]
    AutomationEvent.objects.bulk_create(events, batch_size=500)
    enqueue_events([str(e.id) for e in events])
