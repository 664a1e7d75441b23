"""The one place that writes records and tasks. Every write runs in a transaction; the automation
engine hooks in through ``post_save``/``post_delete`` and ``records_bulk_created`` (records never
imports automations). Record create/update and task create validate first and then write without a
savepoint when called inside a transaction (an automation's step): nothing in the write is expected to
fail, and the two round trips a savepoint costs are a good part of an action's time."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from config.text import counted
from workspaces.exceptions import SchemaConflict
from workspaces.field_types import clean_record_data
from workspaces.models import Entity

from . import sql
from .exceptions import RecordDataInvalid
from .models import Record, Task
from .signals import records_bulk_created

BULK_MAX = 1000
# How many failing records a schema change names in its error.
SCHEMA_ERROR_EXAMPLES = 5


def _clean(entity: Entity, data: Any, *, partial: bool = False) -> dict:
    cleaned, errors = clean_record_data(entity.fields, data, partial=partial)
    if errors:
        raise RecordDataInvalid(errors={"data": errors} if "data" not in errors else errors)
    return cleaned


def record_create(*, entity: Entity, data: Any, actor=None) -> Record:
    """Validate ``data`` against the entity's fields and insert the record (and its automation event)."""
    record = Record(
        workspace_id=entity.workspace_id, entity=entity, data=_clean(entity, data), created_by=actor, updated_by=actor
    )
    record.actor = actor
    with transaction.atomic(savepoint=False):  # validated before: nothing in here is expected to fail
        sql.insert_record(record)
    return record


def record_locked(record_id) -> Record | None:
    """The record, locked for a change until the caller's transaction ends; None if it is gone."""
    return sql.record_for_update(record_id)


def record_update(*, record: Record, data: Any, actor=None, merge: bool = True) -> Record:
    """PATCH (``merge=True``): given keys replace theirs. PUT (``merge=False``): ``data`` replaces all.
    A write that changes nothing saves nothing (and so fires nothing)."""
    entity = record.entity
    cleaned = _clean(entity, data, partial=merge)
    new_data = {**(record.data or {}), **cleaned} if merge else cleaned
    if new_data == record.data:
        return record
    record.data = new_data
    record.updated_by = actor
    record.actor = actor
    with transaction.atomic(savepoint=False):
        record.save(update_fields=["data", "updated_by", "updated_at"])
    return record


@transaction.atomic
def record_delete(*, record: Record, actor=None) -> None:
    """Delete a record (its automations see the deleted snapshot; its tasks stay, unlinked)."""
    record.actor = actor
    record.delete()


@transaction.atomic
def record_bulk_create(*, entity: Entity, items: list, actor=None) -> list[Record]:
    """Create up to ``BULK_MAX`` records in one transaction: all or nothing; errors name the index."""
    if not isinstance(items, list) or not items:
        raise RecordDataInvalid(errors={"records": ["A non-empty list of records is required."]})
    if len(items) > BULK_MAX:
        raise RecordDataInvalid(errors={"records": [f"At most {BULK_MAX} records per request."]})
    errors: dict[str, Any] = {}
    records: list[Record] = []
    now = timezone.now()
    for index, item in enumerate(items):
        data = item.get("data") if isinstance(item, dict) and set(item) == {"data"} else item
        cleaned, item_errors = clean_record_data(entity.fields, data)
        if item_errors:
            errors[str(index)] = {"data": item_errors}
            continue
        records.append(
            Record(
                workspace_id=entity.workspace_id,
                entity=entity,
                data=cleaned,
                created_by=actor,
                updated_by=actor,
                created_at=now,
                updated_at=now,
            )
        )
    if errors:
        raise RecordDataInvalid(errors={"records": errors})
    Record.objects.bulk_create(records, batch_size=500)
    for record in records:
        record.previous_data = dict(record.data)
    records_bulk_created.send(sender=Record, records=records, actor=actor)
    return records


TASK_FIELDS = ("title", "description", "status", "assignee", "due_date", "record")


def task_create(
    *, workspace, title: str, actor=None, created_by_rule_id=None, created_by_run_id=None, **fields
) -> Task:
    """Create a task (``TASK_FIELDS``; ``workspace`` may be given by its id); created done, it is
    completed now."""
    task = Task(
        workspace_id=getattr(workspace, "pk", workspace),
        title=title,
        created_by=actor,
        created_by_rule_id=created_by_rule_id,
        created_by_run_id=created_by_run_id,
        **{k: v for k, v in fields.items() if k in TASK_FIELDS},
    )
    if task.status == Task.Status.DONE:
        task.completed_at = timezone.now()
    with transaction.atomic(savepoint=False):
        sql.insert_task(task)
    return task


def task_step_state(*, run_id, record_id) -> tuple[Task | None, bool]:
    """For an automation run's task step, in one query while the step has made nothing yet: the task it
    made (with its assignee; a retry after a crash finds it), and whether the record still exists."""
    made_id, record_exists = sql.task_step_lookup(run_id, record_id)
    made = Task.objects.select_related("assignee").get(pk=made_id) if made_id is not None else None
    return made, record_exists


@transaction.atomic
def task_update(*, task: Task, actor=None, **changes) -> Task:
    """Change a task's fields (``TASK_FIELDS``); a status change sets or clears ``completed_at``."""
    for key, value in changes.items():
        if key in TASK_FIELDS:
            setattr(task, key, value)
    if "status" in changes:
        task.completed_at = timezone.now() if task.status == Task.Status.DONE else None
    task.save()
    return task


@transaction.atomic
def task_delete(*, task: Task, actor=None) -> None:
    task.delete()


@transaction.atomic
def records_fit_fields(*, entity: Entity, new_fields: list[dict], apply: bool) -> int:
    """Check every record of ``entity`` against ``new_fields`` (already validated): values convert to the
    new types, values of removed fields are dropped. If any record does not fit (a new required field
    without a value, an option removed that is still used, a value that cannot be converted), raises
    ``SchemaConflict`` naming up to ``SCHEMA_ERROR_EXAMPLES`` of them. With ``apply`` the converted data
    is saved (no automation fires: the records' values mean the same). Returns how many records change.

    The records app's answer to ``workspaces.signals.entity_fields_changing``."""
    names = {spec["name"] for spec in new_fields}
    problems: list[str] = []
    updates: list[Record] = []
    failing = 0
    for record in Record.objects.filter(entity=entity).only("id", "data").iterator(chunk_size=1000):
        kept = {k: v for k, v in (record.data or {}).items() if k in names}
        cleaned, errors = clean_record_data(new_fields, kept)
        if errors:
            failing += 1
            if len(problems) < SCHEMA_ERROR_EXAMPLES:
                detail = "; ".join(f"{field}: {msgs[0]}" for field, msgs in errors.items())
                problems.append(f"record {record.id}: {detail}")
            continue
        if cleaned != record.data:
            record.data = cleaned
            updates.append(record)
    if failing:
        fit = "does not fit" if failing == 1 else "do not fit"
        message = f"{counted(failing, 'existing record')} {fit} the new fields: " + " | ".join(problems)
        raise SchemaConflict(message, errors={"fields": [message]})
    if apply and updates:
        Record.objects.bulk_update(updates, ["data"], batch_size=500)
    return len(updates)
