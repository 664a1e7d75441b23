"""The worker's batches: several engine tasks claimed and run together, successes written in one UPDATE,
leases still guarding every row, and runs handed back (not stranded) on SIGTERM or behind a slow one."""

import datetime as dt
import time

import psycopg
import pytest
import time_machine
from django.db import connection
from django.tasks import task
from django.test.utils import CaptureQueriesContext
from django_tasks_db.models import DBTaskResult

from automations import executor
from automations.models import AutomationEvent, AutomationLog, AutomationRule, RunStatus
from automations.worker import Waker
from records import services
from tests.factories import AutomationRuleFactory

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
OTHER_TASK_CALLS = []


@task(queue_name="automations")
def other_task(value: int) -> int:
    """A task that is not the engine's: the worker runs it through django-tasks-db's run_task."""
    OTHER_TASK_CALLS.append(value)
    return value * 2


def echo_name(ctx):
    return {"name": ctx.record["data"]["name"], "attempt": ctx.attempt}


def claimed_runs(count, entity):
    for i in range(count):
        services.record_create(entity=entity, data={"name": f"L{i}"})
    return executor.claim_and_match(AutomationEvent.objects.values_list("id", flat=True))


def log_updates(queries):
    return [q["sql"] for q in queries if q["sql"].startswith('UPDATE "automations_automationlog"')]


@pytest.mark.django_db(transaction=True)
def test_one_batch_logs_every_run_with_its_own_result_and_closes_its_tasks(entity, make_rule, scripted, worker):
    make_rule()
    scripted.outcomes = [echo_name] * 20
    for i in range(20):
        services.record_create(entity=entity, data={"name": f"L{i}"})
    with CaptureQueriesContext(connection) as queries:
        assert worker() == 20
    logs = list(AutomationLog.objects.all())
    assert len(logs) == 20 and {log.status for log in logs} == {RunStatus.SUCCESS}
    for log in logs:  # each row got its own values, not a neighbour's
        assert log.result == {"name": log.record_snapshot["data"]["name"], "attempt": 1}
        assert log.finished_at and log.executed_at == log.finished_at and log.lease_until is None
    if connection.vendor == "postgresql":  # one claim of all 20 tasks, one UPDATE for all 20 successes
        assert len(log_updates(queries.captured_queries)) == 1
    tasks = list(DBTaskResult.objects.all())
    assert {t.status for t in tasks} == {"SUCCESSFUL"}
    assert sorted(t.return_value for t in tasks) == [1] * 20  # runs started for the task's event


@pytest.mark.django_db(transaction=True)
def test_other_tasks_in_the_queue_still_run_through_django_tasks(entity, make_rule, scripted, worker):
    OTHER_TASK_CALLS.clear()
    make_rule()
    result = other_task.enqueue(value=21)
    services.record_create(entity=entity, data={"name": "Ada"})
    worker()
    assert OTHER_TASK_CALLS == [21]
    assert DBTaskResult.objects.get(pk=result.id).return_value == 42
    assert AutomationLog.objects.get().status == RunStatus.SUCCESS


@pytest.mark.django_db(transaction=True)
def test_a_bulk_success_never_overwrites_a_run_whose_lease_another_worker_took(entity, make_rule, scripted):
    make_rule()
    runs = claimed_runs(3, entity)
    taken = runs[1][0]
    other_lease = taken.lease_until + dt.timedelta(seconds=30)
    AutomationLog.objects.filter(pk=taken.pk).update(lease_until=other_lease)  # recovered elsewhere
    assert executor.execute_runs(runs) == 3
    statuses = dict(AutomationLog.objects.values_list("pk", "status"))
    assert statuses[taken.pk] == RunStatus.RUNNING
    assert AutomationLog.objects.get(pk=taken.pk).lease_until == other_lease
    assert sorted(statuses.values()) == [RunStatus.RUNNING, RunStatus.SUCCESS, RunStatus.SUCCESS]


@pytest.mark.django_db(transaction=True)
def test_stopping_hands_unstarted_runs_back_and_they_run_once_with_the_same_id(entity, make_rule, scripted, worker):
    make_rule()
    runs = claimed_runs(3, entity)
    answers = iter([True, False])
    assert executor.execute_runs(runs, keep_going=lambda: next(answers)) == 1
    handed_back = AutomationLog.objects.filter(status=RunStatus.PENDING)
    assert handed_back.count() == 2
    assert {(log.attempts, log.lease_until, log.started_at) for log in handed_back} == {(0, None, None)}
    ids = set(handed_back.values_list("pk", flat=True))
    worker()  # the tasks enqueued for them run them, as any free worker would
    assert AutomationLog.objects.filter(status=RunStatus.SUCCESS).count() == 3
    assert set(AutomationLog.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {1}
    assert len(scripted.calls) == 3


@pytest.mark.django_db(transaction=True)
def test_a_slow_run_hands_the_rest_of_its_batch_back(entity, make_rule, scripted, settings, worker):
    settings.AUTOMATIONS_WORKER_SLOW_RUN_SECONDS = 0.05

    def slow(ctx):
        time.sleep(0.1)
        return {"slow": True}

    make_rule()
    scripted.outcomes = [slow]
    runs = claimed_runs(3, entity)
    assert executor.execute_runs(runs) == 1
    assert AutomationLog.objects.filter(status=RunStatus.PENDING).count() == 2
    worker()
    assert AutomationLog.objects.filter(status=RunStatus.SUCCESS).count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_long_batch_renews_its_leases_and_drops_runs_it_lost(entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_RUN_LEASE_SECONDS = 60
    settings.AUTOMATIONS_WEBHOOK_TOTAL_TIMEOUT = 30  # renew when less than min(30 + 15, 60 / 2) = 30 s are left
    make_rule()
    with time_machine.travel(T0, tick=False) as clock:
        runs = claimed_runs(3, entity)
        lost = runs[2][0]
        AutomationLog.objects.filter(pk=lost.pk).update(lease_until=T0 + dt.timedelta(seconds=999))

        def later(ctx):
            clock.shift(35)  # the first run took 35 s: 25 s of lease left for the others
            return {"ok": True}

        scripted.outcomes = [later]
        assert executor.execute_runs(runs) == 2
    renewed = AutomationLog.objects.get(pk=runs[1][0].pk)
    assert renewed.status == RunStatus.SUCCESS
    assert AutomationLog.objects.get(pk=lost.pk).status == RunStatus.RUNNING  # left to its new owner
    assert len(scripted.calls) == 2


@pytest.mark.django_db(transaction=True)
def test_a_lease_shorter_than_the_webhook_timeout_is_renewed_once_per_run_not_forever(
    entity, make_rule, scripted, settings
):
    settings.AUTOMATIONS_RUN_LEASE_SECONDS = 3  # as in the fault tests: far below the 30 s webhook timeout
    make_rule()
    asked = []

    def keep_going():
        asked.append(1)
        assert len(asked) < 20, "execute_runs keeps renewing instead of running"
        return True

    with time_machine.travel(T0, tick=False) as clock:
        runs = claimed_runs(3, entity)

        def slowish(ctx):
            clock.shift(2)  # 1 s of lease left for the next run: renew (margin: half the lease)
            return {"ok": True}

        scripted.outcomes = [slowish, slowish, slowish]
        assert executor.execute_runs(runs, keep_going=keep_going) == 3
    assert AutomationLog.objects.filter(status=RunStatus.SUCCESS).count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_waker_reports_notifications_received_since_the_last_claim():
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    from automations.worker import NOTIFY_CHANNEL

    waker = Waker()
    waker.wait(0.01)  # connects and LISTENs
    assert waker.listening and waker.drain() is False
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"] or None, host=db["HOST"] or None, port=db["PORT"] or None, autocommit=True
    ) as other:
        other.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    deadline = time.monotonic() + 5
    while not waker.drain():
        assert time.monotonic() < deadline, "the notification never arrived"
        time.sleep(0.01)
    assert waker.drain() is False  # consumed
    waker.close()


@pytest.mark.django_db(transaction=True)
def test_a_logged_run_copies_its_event_field_for_field(entity, make_rule, scripted, owner):
    """The worker's INSERT ... SELECT (PostgreSQL) and bulk_create (elsewhere) store the same row."""
    make_rule(trigger_type="record_updated")
    record = services.record_create(entity=entity, data={"name": "Ada"}, actor=owner)
    AutomationEvent.objects.update(processed_at=T0)  # only the update below matters
    services.record_update(record=record, data={"name": "Grace"}, actor=owner)
    event = AutomationEvent.objects.get(processed_at__isnull=True)
    ((log, rule),) = executor.claim_and_match([event.id])
    stored = AutomationLog.objects.get()
    assert stored.pk == log.pk == executor.run_id_for(event.id, rule.id)
    assert (stored.workspace_id, stored.entity_id, stored.record_id) == (
        event.workspace_id,
        event.entity_id,
        event.record_id,
    )
    assert stored.record_snapshot == event.record and stored.record_snapshot["data"] == {"name": "Grace"}
    assert stored.old_data == event.old_data == {"name": "Ada"}
    assert (stored.event_type, stored.chain, stored.chain_depth, stored.batch_id, stored.actor_id) == (
        "updated",
        [],
        0,
        None,
        owner.pk,
    )
    assert (stored.trigger_type, stored.action_type, stored.status, stored.attempts) == (
        "record_updated",
        "scripted",
        RunStatus.RUNNING,
        1,
    )
    assert stored.lease_until == log.lease_until and stored.started_at == log.started_at
    assert stored.is_test is False and stored.result is None and stored.error == ""
    assert stored.created_at == log.created_at and stored.event_id == event.id


@pytest.mark.django_db
def test_the_hot_rule_lookup_returns_what_the_orm_query_returns(entity, make_rule, other_workspace):
    """load_active_rules (SQL on PostgreSQL) == list(active_rules_for(...)) with the entity attached."""
    make_rule(name="a", conditions={"match": "all", "rules": [{"field": "name", "op": "eq", "value": "Ada"}]})
    make_rule(name="b", trigger_type="record_updated", action_config={"note": "x"}, max_runs_per_minute=5)
    make_rule(name="off", is_active=False)
    make_rule(name="other trigger", trigger_type="record_deleted")
    AutomationRuleFactory(entity=other_workspace["entity"], workspace=other_workspace["workspace"])
    names = ["record_created", "record_updated"]
    fast = sorted(executor.load_active_rules([entity.id], names), key=lambda r: r.name)
    orm = sorted(executor.active_rules_for([entity.id], names), key=lambda r: r.name)
    assert [r.name for r in fast] == ["a", "b"]
    fields = [f.attname for f in AutomationRule._meta.concrete_fields]
    for got, want in zip(fast, orm, strict=True):
        assert {f: getattr(got, f) for f in fields} == {f: getattr(want, f) for f in fields}
        assert got.entity.fields == want.entity.fields and got.entity.pk == entity.pk
        assert got.entity.workspace_id == entity.workspace_id and got._state.adding is False
    if connection.vendor == "postgresql":
        assert fast[0].entity is fast[1].entity  # decoded once per entity
