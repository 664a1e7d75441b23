"""The record write path's insert, the task insert, the locked read of a record an automation step changes
and the task step's lookup, as fixed SQL for PostgreSQL beside the ORM statements they replace
(``config.sql.Statement``): compiling the ORM query costs about as much as running it, on every API write
and every automation step that writes. ``tests/records/test_sql.py`` runs both forms on PostgreSQL and
compares what they return, the rows they leave and the signals they send."""

from __future__ import annotations

import copy
import functools
import uuid

from django.db import connection
from django.db.models.signals import post_save, pre_save

from config.sql import Statement, insert_row, model_from_row, quote, select_list, table

from .models import Record, Task


def _insert_record_orm(record: Record) -> None:
    """Insert a new record (``Model.save``: ``pre_save``, the insert, ``post_save`` with ``created``)."""
    record.save(force_insert=True)


def _saved_as_new(obj) -> None:
    """What ``Model.save(force_insert=True)`` does, in one fixed statement: the same signals around it (the
    automation engine hooks a record's ``post_save``), the same field preparation."""
    model, alias = type(obj), connection.alias
    pre_save.send(sender=model, instance=obj, raw=False, using=alias, update_fields=None)
    insert_row(obj)
    post_save.send(sender=model, instance=obj, created=True, update_fields=None, raw=False, using=alias)


def _insert_record_postgresql(record: Record) -> None:
    _saved_as_new(record)
    record.previous_data = copy.deepcopy(record.data)  # as Record.save leaves it


insert_record = Statement(_insert_record_orm, _insert_record_postgresql)


def _uuid(value) -> uuid.UUID | None:
    """An id as the driver binds a ``uuid`` column (a string would be sent as text)."""
    return uuid.UUID(str(value)) if value else None


def _record_for_update_orm(record_id) -> Record | None:
    """The record, locked until the caller's transaction ends (``SELECT ... FOR UPDATE``); None if it is gone."""
    return next(iter(Record.objects.filter(pk=record_id).order_by().select_for_update()[:1]), None)


def _record_for_update_postgresql(record_id) -> Record | None:
    with connection.cursor() as cursor:
        cursor.execute(_record_for_update_sql(), [_uuid(record_id)])
        row = cursor.fetchone()
    return None if row is None else model_from_row(Record, row, connection.alias)


@functools.cache
def _record_for_update_sql() -> str:
    name = table(Record)
    pk = quote(Record._meta.pk.column)
    return f"SELECT {select_list(Record, name)} FROM {name} WHERE {name}.{pk} = %s FOR UPDATE"  # noqa: S608


record_for_update = Statement(_record_for_update_orm, _record_for_update_postgresql)


def _insert_task_orm(task: Task) -> None:
    """Insert a new task (``Model.save``: ``pre_save``, the insert, ``post_save`` with ``created``)."""
    task.save(force_insert=True)


insert_task = Statement(_insert_task_orm, _saved_as_new)


def _task_step_lookup_orm(run_id, record_id) -> tuple:
    """For an automation run's task step: the id of the task that step already made (None if none yet), and
    whether the record still exists."""
    made = Task.objects.filter(created_by_run_id=run_id).values_list("id", flat=True).first() if run_id else None
    return made, bool(record_id) and Record.objects.filter(pk=record_id).exists()


def _task_step_lookup_postgresql(run_id, record_id) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(_task_step_lookup_sql(), [_uuid(run_id), _uuid(record_id)])
        made, exists = cursor.fetchone()
    return made, exists


@functools.cache
def _task_step_lookup_sql() -> str:
    tasks, records = table(Task), table(Record)
    run = quote(Task._meta.get_field("created_by_run_id").column)
    return (
        f"SELECT (SELECT t.{quote(Task._meta.pk.column)} FROM {tasks} t WHERE t.{run} = %s LIMIT 1), "  # noqa: S608
        f"EXISTS (SELECT 1 FROM {records} r WHERE r.{quote(Record._meta.pk.column)} = %s)"
    )  # identifiers from the models' metadata


task_step_lookup = Statement(_task_step_lookup_orm, _task_step_lookup_postgresql)
