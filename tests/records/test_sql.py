"""The record insert as fixed SQL (``records.sql``) against ``Model.save`` it replaces, on PostgreSQL: the
same row, the same signals (the automation engine's event comes from ``post_save``), the same instance
state afterwards. The ORM form runs on SQLite through the rest of the suite."""

import contextlib
import datetime as dt
import uuid

import pytest
import time_machine
from django.db import connection, transaction
from django.db.models.signals import post_save, pre_save

from automations.models import AutomationEvent
from records import sql
from records.models import Record, Task
from tests.factories import UserFactory

T0 = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the fixed statement is PostgreSQL's; elsewhere only the ORM form runs")


class _Rollback(Exception):
    pass


@contextlib.contextmanager
def connected(model, pre, post):
    """Inside the block, ``pre`` and ``post`` receive the model's ``pre_save`` and ``post_save`` signals."""
    pre_save.connect(pre, sender=model, dispatch_uid="test-pre")
    post_save.connect(post, sender=model, dispatch_uid="test-post")
    try:
        yield
    finally:
        pre_save.disconnect(dispatch_uid="test-pre", sender=model)
        post_save.disconnect(dispatch_uid="test-post", sender=model)


def columns(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_insert_record(entity):
    actor = UserFactory()
    record_id = uuid.uuid4()
    seen = {}
    for form in ("orm", "postgresql"):
        signals = []

        def pre(sender, instance, signals=signals, **kwargs):
            signals.append(("pre_save", instance.pk, sorted(kwargs.items(), key=str)))

        def post(sender, instance, signals=signals, **kwargs):
            signals.append(("post_save", instance.pk, sorted((k, v) for k, v in kwargs.items() if k != "signal")))

        try:
            with connected(Record, pre, post), time_machine.travel(T0, tick=False), transaction.atomic():
                record = Record(
                    id=record_id,
                    workspace_id=entity.workspace_id,
                    entity=entity,
                    data={"name": "Ada", "n": [1, 2]},
                    created_by=actor,
                    updated_by=actor,
                )
                record.actor = actor
                getattr(sql.insert_record, form)(record)
                event = AutomationEvent.objects.get(record_id=record_id)
                seen[form] = {
                    "row": columns(Record.objects.get(pk=record_id)),
                    "instance": columns(record),
                    "state": (record._state.adding, record._state.db, record.previous_data),
                    "signals": [(name, pk, [kv for kv in kwargs if kv[0] != "signal"]) for name, pk, kwargs in signals],
                    "event": {k: v for k, v in columns(event).items() if k != "id"},
                }
                raise _Rollback
        except _Rollback:
            pass
    assert seen["orm"] == seen["postgresql"]
    assert seen["postgresql"]["row"]["created_at"] == T0 and seen["postgresql"]["state"][0] is False
    assert [name for name, _, _ in seen["postgresql"]["signals"]] == ["pre_save", "post_save"]
    assert seen["postgresql"]["event"]["event_type"] == "created"
    assert not Record.objects.filter(pk=record_id).exists()


def test_record_for_update(entity):
    actor = UserFactory()
    record = Record.objects.create(
        workspace_id=entity.workspace_id, entity=entity, data={"name": "Ada", "n": [1, 2]}, created_by=actor
    )
    seen = {}
    for form in ("orm", "postgresql"):
        with transaction.atomic():
            found = getattr(sql.record_for_update, form)(str(record.pk))
            missing = getattr(sql.record_for_update, form)(uuid.uuid4())
            seen[form] = (columns(found), found.previous_data, found._state.adding, found._state.db, missing)
    assert seen["orm"] == seen["postgresql"]
    assert seen["postgresql"][0]["data"] == {"name": "Ada", "n": [1, 2]} and seen["postgresql"][4] is None
    assert seen["postgresql"][1] == {"name": "Ada", "n": [1, 2]} and seen["postgresql"][2] is False


@pytest.mark.django_db(transaction=True)
def test_record_for_update_holds_the_row_lock(entity):
    """Another connection cannot lock the row while the caller's transaction holds it."""
    import psycopg

    record = Record.objects.create(workspace_id=entity.workspace_id, entity=entity, data={"name": "Ada"})
    db = connection.settings_dict
    other = psycopg.connect(
        dbname=db["NAME"], user=db["USER"] or None, host=db["HOST"] or None, port=db["PORT"] or None, autocommit=True
    )
    lock = f"SELECT 1 FROM {Record._meta.db_table} WHERE id = %s FOR UPDATE NOWAIT"  # noqa: S608
    try:
        with transaction.atomic():
            assert sql.record_for_update(record.pk).pk == record.pk
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute(lock, [record.pk])
        assert other.execute(lock, [record.pk]).fetchone() == (1,)  # released at the commit
    finally:
        other.close()


def test_insert_task(entity):
    record = Record.objects.create(workspace_id=entity.workspace_id, entity=entity, data={"name": "Ada"})
    task_id, run_id, rule_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    seen = {}
    for form in ("orm", "postgresql"):
        signals = []

        def saved(sender, instance, signals=signals, **kwargs):
            signals.append((kwargs["signal"] is post_save, kwargs.get("created"), instance.pk))

        try:
            with connected(Task, saved, saved), time_machine.travel(T0, tick=False), transaction.atomic():
                task = Task(
                    id=task_id,
                    workspace_id=entity.workspace_id,
                    record=Record(pk=record.pk),
                    title="Call Ada",
                    due_date=dt.date(2026, 3, 3),
                    created_by_rule_id=rule_id,
                    created_by_run_id=run_id,
                )
                getattr(sql.insert_task, form)(task)
                seen[form] = (columns(Task.objects.get(pk=task_id)), columns(task), task._state.adding, signals)
                raise _Rollback
        except _Rollback:
            pass
    assert seen["orm"] == seen["postgresql"]
    row = seen["postgresql"][0]
    assert row["created_at"] == T0 and row["record_id"] == record.pk and row["status"] == Task.Status.OPEN
    assert seen["postgresql"][3] == [(False, None, task_id), (True, True, task_id)]


def test_task_step_lookup(entity):
    record = Record.objects.create(workspace_id=entity.workspace_id, entity=entity, data={"name": "Ada"})
    run_id = uuid.uuid4()
    cases = [
        (run_id, record.pk),
        (None, record.pk),
        (run_id, uuid.uuid4()),
        (run_id, None),
        (str(run_id), str(record.pk)),
    ]

    def both():
        return [(sql.task_step_lookup.orm(*case), sql.task_step_lookup.postgresql(*case)) for case in cases]

    before = both()
    assert all(orm == raw for orm, raw in before)
    assert [raw for _, raw in before] == [(None, True), (None, True), (None, False), (None, False), (None, True)]
    made = Task.objects.create(workspace_id=entity.workspace_id, title="Call", created_by_run_id=run_id)
    after = both()
    assert all(orm == raw for orm, raw in after)
    assert [raw for _, raw in after] == [
        (made.pk, True),
        (None, True),
        (made.pk, False),
        (made.pk, False),
        (made.pk, True),
    ]
