"""The record write path's insert as fixed SQL for PostgreSQL, beside the ORM statement it replaces
(``config.sql.Statement``): compiling ``Model.save`` costs about as much as the insert itself, on every API
write. ``tests/records/test_sql.py`` runs both forms on PostgreSQL and compares the rows they leave and the
signals they send."""

from __future__ import annotations

import copy

from django.db import connection
from django.db.models.signals import post_save, pre_save

from config.sql import Statement, insert_row

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
