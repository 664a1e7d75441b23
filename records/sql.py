"""The record write path's insert, and the locked read of a record an automation step changes, as fixed SQL
for PostgreSQL beside the ORM statements they replace (``config.sql.Statement``): compiling the ORM query
costs about as much as running it, on every API write and every field-update step. ``tests/records/
test_sql.py`` runs both forms on PostgreSQL and compares what they return, the rows they leave and the
signals they send."""

from __future__ import annotations

import copy
import functools
import uuid

from django.db import connection
from django.db.models.signals import post_save, pre_save

from config.sql import Statement, insert_row, model_from_row, quote, select_list, table

from .models import Record


def _insert_record_orm(record: Record) -> None:
    """Insert a new record (``Model.save``: ``pre_save``, the insert, ``post_save`` with ``created``)."""
    record.save(force_insert=True)


def _insert_record_postgresql(record: Record) -> None:
    """What ``Model.save(force_insert=True)`` does for a record, in one fixed statement: the same signals
    around it (the automation engine hooks ``post_save``), the same field preparation."""
    alias = connection.alias
    pre_save.send(sender=Record, instance=record, raw=False, using=alias, update_fields=None)
    insert_row(record)
    post_save.send(sender=Record, instance=record, created=True, update_fields=None, raw=False, using=alias)
    record.previous_data = copy.deepcopy(record.data)  # as Record.save leaves it


insert_record = Statement(_insert_record_orm, _insert_record_postgresql)


def _record_for_update_orm(record_id) -> Record | None:
    """The record, locked until the caller's transaction ends (``SELECT ... FOR UPDATE``); None if it is gone."""
    return next(iter(Record.objects.filter(pk=record_id).order_by().select_for_update()[:1]), None)


def _record_for_update_postgresql(record_id) -> Record | None:
    with connection.cursor() as cursor:
        cursor.execute(_record_for_update_sql(), [uuid.UUID(str(record_id))])
        row = cursor.fetchone()
    return None if row is None else model_from_row(Record, row, connection.alias)


@functools.cache
def _record_for_update_sql() -> str:
    name = table(Record)
    pk = quote(Record._meta.pk.column)
    return f"SELECT {select_list(Record, name)} FROM {name} WHERE {name}.{pk} = %s FOR UPDATE"  # noqa: S608


record_for_update = Statement(_record_for_update_orm, _record_for_update_postgresql)
