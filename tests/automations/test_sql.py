"""Every raw SQL statement of the engine (``automations.sql``) against the ORM statement it replaces: both
forms run on the same PostgreSQL data (each in a transaction that is rolled back) and must return the same
rows and leave the tables in the same state. The ORM forms also run on SQLite in the rest of the suite."""

import datetime as dt

import pytest
import time_machine
from django.db import connection, transaction

from automations import matching, sql
from automations.models import (
    AutomationEvent,
    AutomationLog,
    AutomationRule,
    DueTime,
    RuleSchedule,
    RunStatus,
    WorkerProcess,
)
from records import services
from tests.factories import AutomationRuleFactory

T0 = dt.datetime(2026, 2, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the raw statements are PostgreSQL's; elsewhere only the ORM form runs")


class _Rollback(Exception):
    pass


def in_both_forms(statement: sql.Statement, call, observe):
    """``call(form)`` then ``observe()`` for each form, each in a transaction rolled back afterwards."""
    seen = {}
    for name in ("orm", "postgresql"):
        try:
            with transaction.atomic():
                returned = call(getattr(statement, name))
                seen[name] = (returned, observe())
                raise _Rollback
        except _Rollback:
            pass
    return seen["orm"], seen["postgresql"]


def rows(model, **filters):
    """Every column of every row, sorted by primary key."""
    fields = [f.attname for f in model._meta.concrete_fields]
    found = [{name: getattr(obj, name) for name in fields} for obj in model.objects.filter(**filters)]
    return sorted(found, key=lambda row: str(row[model._meta.pk.attname]))


def event_ids(count, entity):
    for i in range(count):
        services.record_create(entity=entity, data={"name": f"L{i}"})
    return list(AutomationEvent.objects.order_by("created_at").values_list("id", flat=True))


def test_take_events(entity):
    ids = event_ids(6, entity)
    AutomationEvent.objects.filter(id=ids[0]).update(processed_at=T0)  # already done: never taken
    cutoff = AutomationEvent.objects.get(id=ids[4]).created_at
    for kwargs in (
        {"ids": None, "limit": 3},
        {"ids": ids[:3] + ids[5:], "limit": 10},
        {"ids": None, "limit": 10, "created_before": cutoff},
    ):
        orm, raw = in_both_forms(
            sql.take_events,
            lambda form, kwargs=kwargs: [e.id for e in form(now=T0, **kwargs)],
            lambda: rows(AutomationEvent),
        )
        assert orm == raw and orm[0], kwargs


def test_load_active_rules(entity, make_rule, other_workspace):
    make_rule(name="a", conditions={"match": "all", "rules": [{"field": "name", "op": "eq", "value": "Ada"}]})
    make_rule(name="b", trigger_type="record_updated", action_config={"note": "x"}, max_runs_per_minute=5)
    make_rule(name="off", is_active=False)
    make_rule(name="other trigger", trigger_type="record_deleted")
    AutomationRuleFactory(entity=other_workspace["entity"], workspace=other_workspace["workspace"])
    names = ["record_created", "record_updated"]
    orm = sorted(sql.load_active_rules.orm([entity.id], names), key=lambda r: r.name)
    raw = sorted(sql.load_active_rules.postgresql([entity.id], names), key=lambda r: r.name)
    assert [r.name for r in raw] == ["a", "b"]
    fields = [f.attname for f in AutomationRule._meta.concrete_fields]
    for got, want in zip(raw, orm, strict=True):
        assert {f: getattr(got, f) for f in fields} == {f: getattr(want, f) for f in fields}
        assert got.entity.fields == want.entity.fields and got.entity.pk == entity.pk
        assert got.entity.workspace_id == entity.workspace_id and got._state.adding is False
    assert raw[0].entity is raw[1].entity  # decoded once per entity


def test_insert_runs(entity, make_rule, owner):
    make_rule(name="created")
    make_rule(name="throttled", max_runs_per_minute=1)
    for i in range(3):
        services.record_create(entity=entity, data={"name": f"L{i}", "email": "x@example.com"}, actor=owner)
    events = list(AutomationEvent.objects.all())

    def insert(form):
        logs, _ = matching.runs_for(events, T0)
        form(logs, T0)
        return sorted(str(log.pk) for log in logs)

    with time_machine.travel(T0, tick=False):  # bulk_create stamps created_at itself (auto_now_add)
        orm, raw = in_both_forms(sql.insert_runs, insert, lambda: rows(AutomationLog))
    assert orm == raw
    statuses = sorted(row["status"] for row in raw[1])
    assert statuses == [RunStatus.PENDING] * 2 + [RunStatus.RUNNING] * 4  # the throttle's waits are stored too


def _runs_in_every_state(entity, make_rule):
    make_rule()
    for i in range(8):
        services.record_create(entity=entity, data={"name": f"L{i}"})
    matching.take_and_match(limit=100)
    logs = list(AutomationLog.objects.order_by("id"))
    WorkerProcess.objects.create(id="gone", started_at=T0, last_seen_at=T0, stopped_at=T0)
    WorkerProcess.objects.create(id="alive", started_at=T0, last_seen_at=T0)
    later = T0 + dt.timedelta(minutes=5)
    states = [
        {"status": RunStatus.PENDING, "next_attempt_at": T0},  # due
        {"status": RunStatus.RETRYING, "next_attempt_at": T0 - dt.timedelta(seconds=1)},  # due, older
        {"status": RunStatus.RETRYING, "next_attempt_at": later},  # not yet
        {"status": RunStatus.RUNNING, "lease_until": T0 - dt.timedelta(seconds=1), "worker_id": "alive"},  # expired
        {"status": RunStatus.RUNNING, "lease_until": later, "worker_id": "gone"},  # holder dead
        {"status": RunStatus.RUNNING, "lease_until": later, "worker_id": "alive"},  # held
        {"status": RunStatus.SUCCESS, "next_attempt_at": None, "lease_until": None},
        {"status": RunStatus.ERROR, "next_attempt_at": T0},
    ]
    for log, state in zip(logs, states, strict=True):
        AutomationLog.objects.filter(pk=log.pk).update(**state)
    return [log.pk for log in logs]


@pytest.mark.parametrize(("due", "expected"), [(True, [1, 0]), (False, [3, 4])])
def test_claim_runs(entity, make_rule, due, expected):
    pks = _runs_in_every_state(entity, make_rule)
    lease = T0 + dt.timedelta(minutes=2)
    for kwargs in ({"ids": None, "limit": 10}, {"ids": pks[:2] + pks[3:5], "limit": 1}):
        orm, raw = in_both_forms(
            sql.claim_runs,
            lambda form, kwargs=kwargs: [
                log.pk for log in form(now=T0, lease=lease, worker_id="me", due=due, **kwargs)
            ],
            lambda: rows(AutomationLog),
        )
        assert orm == raw, kwargs
    assert raw[0] == [pks[i] for i in expected][:1]
    claimed = [row for row in raw[1] if row["worker_id"] == "me"]
    assert [(row["status"], row["lease_until"], row["started_at"]) for row in claimed] == [
        (RunStatus.RUNNING, lease, T0)
    ]


def test_claim_runs_due_before(entity, make_rule):
    pks = _runs_in_every_state(entity, make_rule)
    lease = T0 + dt.timedelta(minutes=2)
    orm, raw = in_both_forms(
        sql.claim_runs,
        lambda form: [
            log.pk
            for log in form(
                ids=None, limit=10, now=T0, lease=lease, worker_id="me", due_before=T0 - dt.timedelta(seconds=1)
            )
        ],
        lambda: rows(AutomationLog),
    )
    assert orm == raw and raw[0] == [pks[1]]  # only the run overdue by the margin


def test_finish_successes(entity, make_rule):
    make_rule()
    for i in range(4):
        services.record_create(entity=entity, data={"name": f"L{i}"})
    runs = matching.take_and_match(limit=10).runs
    lease = runs[0][0].lease_until
    AutomationLog.objects.filter(pk=runs[3][0].pk).update(lease_until=lease + dt.timedelta(seconds=5))  # taken over
    group = [
        (log, {"result": {"n": i, "text": "é\"'"}, "finished_at": T0, "executed_at": T0, "duration_ms": i * 10})
        for i, (log, _) in enumerate(runs)
    ]
    group[1][1]["result"] = None
    orm, raw = in_both_forms(sql.finish_successes, lambda form: form(group, lease), lambda: rows(AutomationLog))
    assert orm == raw and raw[0] == 3
    assert sorted(row["status"] for row in raw[1]) == [RunStatus.RUNNING] + [RunStatus.SUCCESS] * 3


def test_take_due_times(entity, make_rule):
    rule = make_rule(trigger_type="date_reached", trigger_config={"field": "name"})
    records = [services.record_create(entity=entity, data={"name": f"L{i}"}) for i in range(5)]
    for i, record in enumerate(records):
        DueTime.objects.create(rule=rule, record_id=record.pk, due_at=T0 + dt.timedelta(minutes=i - 2))
    orm, raw = in_both_forms(
        sql.take_due_times, lambda form: [(d.record_id, d.due_at) for d in form(limit=2, now=T0)], lambda: rows(DueTime)
    )
    assert orm == raw and [r for r, _ in raw[0]] == [records[0].pk, records[1].pk] and len(raw[1]) == 3


def test_insert_event(entity):
    record = services.record_create(entity=entity, data={"name": "Ada"})
    AutomationEvent.objects.all().delete()

    def insert(form):
        event = AutomationEvent(
            event_type="updated",
            workspace_id=record.workspace_id,
            entity_id=record.entity_id,
            record_id=record.pk,
            record=record.as_snapshot(),
            old_data={"name": "Grace", "n": [1, 2]},
            chain=[{"rule_id": "r", "record_id": str(record.pk)}],
            chain_depth=1,
        )
        form(event)
        return event.pk

    with time_machine.travel(T0, tick=False):
        orm, raw = in_both_forms(sql.insert_event, insert, lambda: [dict(r, id=None) for r in rows(AutomationEvent)])
    assert orm[1] == raw[1] and len(raw[1]) == 1 and raw[1][0]["old_data"] == {"name": "Grace", "n": [1, 2]}


@pytest.mark.parametrize(
    "make_due",
    [
        None,
        lambda rule, record: AutomationLog.objects.filter(pk=_waiting_run(rule, record)).update(next_attempt_at=T0),
        lambda rule, record: DueTime.objects.filter(rule=rule).update(due_at=T0),
        lambda rule, record: RuleSchedule.objects.create(rule=rule, next_fire_at=T0),
        lambda rule, record: RuleSchedule.objects.create(rule=rule, firing_at=T0 + dt.timedelta(days=1)),
        lambda rule, record: RuleSchedule.objects.create(rule=rule, rebuilding=True),
    ],
    ids=["nothing", "waiting run", "due time", "schedule to fire", "schedule firing", "schedule rebuilding"],
)
def test_anything_due(entity, make_rule, make_due):
    rule = make_rule()
    record = services.record_create(entity=entity, data={"name": "Ada"})
    # Not due yet: a run waiting until later, a due time and a schedule in the future.
    AutomationLog.objects.filter(pk=_waiting_run(rule, record)).update(next_attempt_at=T0 + dt.timedelta(seconds=1))
    DueTime.objects.create(rule=rule, record_id=record.pk, due_at=T0 + dt.timedelta(seconds=1))
    if make_due is not None:
        make_due(rule, record)
    orm, raw = in_both_forms(sql.anything_due, lambda form: form(now=T0), lambda: None)
    assert orm == raw and raw[0] is (make_due is not None)


def _waiting_run(rule, record):
    return AutomationLog.objects.create(
        automation=rule,
        workspace_id=record.workspace_id,
        entity_id=record.entity_id,
        record_id=record.pk,
        event_type="created",
        trigger_type=rule.trigger_type,
        action_type=rule.action_type,
        status=RunStatus.RETRYING,
    ).pk


def test_every_statement_is_covered_here():
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert set(sql.STATEMENTS) <= tested


def test_update_held(entity, make_rule):
    make_rule()
    for i in range(3):
        services.record_create(entity=entity, data={"name": f"L{i}"})
    runs = matching.take_and_match(limit=10).runs
    held, taken, unleased = (log for log, _ in runs)
    AutomationLog.objects.filter(pk=taken.pk).update(lease_until=taken.lease_until + dt.timedelta(seconds=5))
    AutomationLog.objects.filter(pk=unleased.pk).update(lease_until=None)
    states = [{"index": 0, "status": "success", "result": {"text": "é\"'"}}]
    writes = [
        (held, {"current_step": 1, "step_states": states, "attempts": 1, "result": {"n": 1}}),
        (held, {"status": RunStatus.SUCCESS, "result": None, "error": "", "finished_at": T0, "lease_until": None}),
        (taken, {"status": RunStatus.ERROR, "error": "lost"}),  # another worker's now: not written
        (unleased, {"result": [1, "two"], "next_attempt_at": T0}),  # held without a lease (IS NULL)
    ]

    def observe():
        return rows(AutomationLog)

    for log, fields in writes:
        lease = None if log is unleased else held.lease_until
        orm, raw = in_both_forms(
            sql.update_held, lambda form, pk=log.pk, lease=lease, fields=fields: form(pk, lease, fields), observe
        )
        assert orm == raw
        assert raw[0] == (0 if log is taken else 1)
