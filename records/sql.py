"""The record write path's insert as fixed SQL for PostgreSQL, beside the ORM statement it replaces
(``config.sql.Statement``): compiling ``Model.save`` costs about as much as the insert itself, on every API
write. ``tests/records/test_sql.py`` runs both forms on PostgreSQL and compares the rows they leave and the
signals they send."""

from __future__ import annotations

import copy
import functools

from django.db import connection
from django.db.models.signals import post_save, pre_save

from config.sql import Statement, quote, table

from .models import Record


def _insert_record_orm(record: Record) -> None:
    """Insert a new record (``Model.save``: ``pre_save``, the insert, ``post_save`` with ``created``)."""
    record.save(force_insert=True)


@functools.cache
def _insert_record_sql() -> str:
    fields = Record._meta.concrete_fields
    return (
        f"INSERT INTO {table(Record)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )  # identifiers from the model's metadata


def _insert_record_postgresql(record: Record) -> None:
    """What ``Model.save(force_insert=True)`` does for a record, in one fixed statement: the same signals
    around it (the automation engine hooks ``post_save``), the same field preparation."""
    alias = connection.alias
    pre_save.send(sender=Record, instance=record, raw=False, using=alias, update_fields=None)
    values = [f.get_db_prep_save(f.pre_save(record, True), connection) for f in Record._meta.concrete_fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_record_sql(), values)
    record._state.adding = False
    record._state.db = alias
    post_save.send(sender=Record, instance=record, created=True, update_fields=None, raw=False, using=alias)
    record.previous_data = copy.deepcopy(record.data)  # as Record.save leaves it


insert_record = Statement(_insert_record_orm, _insert_record_postgresql)
