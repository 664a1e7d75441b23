"""The worker's batches: many events taken and matched together, successes written in one UPDATE, leases
still guarding every row, and runs handed back (not stranded) on SIGTERM or behind a slow one."""

import datetime as dt
import time

import psycopg
import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from automations import batches, heartbeats, matching, tasks
from automations.models import AutomationEvent, AutomationLog, RunStatus, WorkerProcess
from automations.worker import Waker
from records import services

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def echo_name(ctx):
    return {"name": ctx.record["data"]["name"], "attempt": ctx.attempt}


def claimed_runs(count, entity):
    for i in range(count):
        services.record_create(entity=entity, data={"name": f"L{i}"})
    return matching.take_and_match(limit=count).runs


def executed(outcome):
    return len(outcome.executed)


def log_updates(queries):
    return [q["sql"] for q in queries if q["sql"].startswith('UPDATE "automations_automationlog"')]


@pytest.mark.django_db(transaction=True)
def test_one_batch_logs_every_run_with_its_own_result(entity, make_rule, scripted, worker):
    make_rule()
    scripted.outcomes = [echo_name] * 20
    for i in range(20):
        services.record_create(entity=entity, data={"name": f"L{i}"})
    with CaptureQueriesContext(connection) as queries:
        worker()
    logs = list(AutomationLog.objects.all())
    assert len(logs) == 20 and {log.status for log in logs} == {RunStatus.SUCCESS}
    for log in logs:  # each row got its own values, not a neighbour's
        assert log.result == {"name": log.record_snapshot["data"]["name"], "attempt": 1}
        assert log.finished_at and log.executed_at == log.finished_at and log.lease_until is None
    if connection.vendor == "postgresql" and settings.AUTOMATIONS_EMBEDDED_QUEUE:
        # one take of all 20 events, one UPDATE for all 20 successes (on RQ each write is its own message)
        assert len(log_updates(queries.captured_queries)) == 1
    assert not AutomationEvent.objects.filter(processed_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_a_bulk_success_never_overwrites_a_run_whose_lease_another_worker_took(entity, make_rule, scripted):
    make_rule()
    runs = claimed_runs(3, entity)
    taken = runs[1][0]
    other_lease = taken.lease_until + dt.timedelta(seconds=30)
    AutomationLog.objects.filter(pk=taken.pk).update(lease_until=other_lease)  # recovered elsewhere
    assert executed(batches.execute_runs(runs)) == 3
    statuses = dict(AutomationLog.objects.values_list("pk", "status"))
    assert statuses[taken.pk] == RunStatus.RUNNING
    assert AutomationLog.objects.get(pk=taken.pk).lease_until == other_lease
    assert sorted(statuses.values()) == [RunStatus.RUNNING, RunStatus.SUCCESS, RunStatus.SUCCESS]


@pytest.mark.django_db(transaction=True)
def test_stopping_hands_unstarted_runs_back_and_they_run_once_with_the_same_id(entity, make_rule, scripted, worker):
    make_rule()
    runs = claimed_runs(3, entity)
    answers = iter([True, False])
    outcome = batches.execute_runs(runs, keep_going=lambda: next(answers))
    assert executed(outcome) == 1
    tasks.schedule(outcome.released)  # as the orchestrator does (a message each on a distributed queue)
    handed_back = AutomationLog.objects.filter(status=RunStatus.PENDING)
    assert handed_back.count() == 2
    assert {(log.attempts, log.lease_until, log.started_at) for log in handed_back} == {(0, None, None)}
    ids = set(handed_back.values_list("pk", flat=True))
    worker()  # they are due at once: any free worker runs them
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
    outcome = batches.execute_runs(runs)
    assert executed(outcome) == 1
    assert AutomationLog.objects.filter(status=RunStatus.PENDING).count() == 2
    tasks.schedule(outcome.released)
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
        assert executed(batches.execute_runs(runs)) == 2
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
        assert executed(batches.execute_runs(runs, keep_going=keep_going)) == 3
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


def _notify(payload: str) -> None:
    from automations.worker import NOTIFY_CHANNEL

    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"] or None, host=db["HOST"] or None, port=db["PORT"] or None, autocommit=True
    ) as other:
        other.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, payload])


@pytest.mark.django_db(transaction=True)
def test_a_worker_wakes_only_for_the_notifications_of_its_slot():
    """Two idle workers: each new-event notification wakes one of them (payload modulo the live workers),
    so the other does not pay a claim that finds nothing; a notification without a number wakes both."""
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    waker = Waker()
    waker.slot = (1, 2)
    waker.wait(0.01)  # connects and LISTENs
    assert waker.drain() is False
    _notify("40")  # 40 % 2 == 0: the other worker's
    started = time.monotonic()
    waker.wait(0.4)
    assert time.monotonic() - started >= 0.35  # not woken: it waited for its poll interval
    assert waker.drain() is False
    _notify("41")  # its own
    started = time.monotonic()
    waker.wait(5)
    assert time.monotonic() - started < 2
    _notify("")  # no number (e.g. a worker asking for help with a backlog): everyone's
    started = time.monotonic()
    waker.wait(5)
    assert time.monotonic() - started < 2
    _notify("40")
    _notify("43")
    deadline = time.monotonic() + 5
    while not waker.drain():  # drain reports the one of its slot among the two
        assert time.monotonic() < deadline, "its notification never arrived"
        time.sleep(0.01)
    waker.slot = None  # not among the live workers: wakes for every notification
    _notify("40")
    started = time.monotonic()
    waker.wait(5)
    assert time.monotonic() - started < 2
    waker.close()


@pytest.mark.django_db(transaction=True)
def test_a_worker_with_a_backlog_wakes_every_idle_worker_whatever_its_slot():
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    idle, busy = Waker(), Waker()
    idle.slot, busy.slot = (1, 2), (0, 2)
    for waker in (idle, busy):
        waker.wait(0.01)  # connects and LISTENs
    busy.wake_all()
    started = time.monotonic()
    idle.wait(5)
    assert time.monotonic() - started < 2
    for waker in (idle, busy):
        waker.close()


@pytest.mark.django_db(transaction=True)
def test_a_listening_connection_cut_by_the_server_falls_back_to_polling_then_listens_again():
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    waker = Waker()
    waker.wait(0.01)
    pid = waker.conn.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    woken = False
    while waker.listening:  # the cut is seen at a read, as a wake-up (claim now, poll meanwhile)
        assert time.monotonic() < deadline, "the cut connection was never noticed"
        woken = waker.drain()
        time.sleep(0.01)
    assert woken
    started = time.monotonic()
    waker.wait(0.2)  # polling: a plain sleep
    assert 0.15 <= time.monotonic() - started < 2
    waker._retry_at = 0.0  # the 5 s back-off is over
    waker.wait(0.01)
    assert waker.listening and waker.conn.info.backend_pid != pid
    _notify("")
    started = time.monotonic()
    waker.wait(5)
    assert time.monotonic() - started < 2
    waker.close()


@pytest.mark.django_db
def test_a_workers_slot_is_its_place_among_the_live_workers_of_its_queue():
    now = timezone.now()
    for worker_id, seen, stopped, queue in [
        ("b", now, None, "database"),
        ("a", now, None, "database"),
        ("c", now - dt.timedelta(minutes=5), None, "database"),  # silent: dead
        ("d", now, now, "database"),  # stopped
        ("e", now, None, "rq"),  # another queue
    ]:
        WorkerProcess.objects.create(
            id=worker_id, hostname="h", pid=1, queue=queue, started_at=now, last_seen_at=seen, stopped_at=stopped
        )
    assert heartbeats.wake_slot("a", "database") == (0, 2)
    assert heartbeats.wake_slot("b", "database") == (1, 2)
    assert heartbeats.wake_slot("c", "database") is None
    assert heartbeats.wake_slot("e", "rq") == (0, 1)


@pytest.mark.django_db(transaction=True)
def test_a_logged_run_copies_its_event_field_for_field(entity, make_rule, scripted, owner):
    """The worker's INSERT ... SELECT (PostgreSQL) and bulk_create (elsewhere) store the same row."""
    make_rule(trigger_type="record_updated")
    record = services.record_create(entity=entity, data={"name": "Ada"}, actor=owner)
    AutomationEvent.objects.update(processed_at=T0)  # only the update below matters
    services.record_update(record=record, data={"name": "Grace"}, actor=owner)
    event = AutomationEvent.objects.get(processed_at__isnull=True)
    ((log, rule),) = matching.take_and_match(ids=[event.id]).runs
    stored = AutomationLog.objects.get()
    assert stored.pk == log.pk == matching.run_id_for(event.id, rule.id)
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
