"""Fault injection against real worker processes (``manage.py automations_worker`` subprocesses on the
pytest database) and a real HTTP receiver: killed workers, failing receivers, many workers on one queue,
killed database connections, SIGTERM, rolled-back writes. ``make test`` runs this file twice: on the
embedded queue, and with ``TASKS_BACKEND=rq`` (the workers then run RQ workers on the local Redis).

PostgreSQL only (the workers are separate processes sharing the database). Every wait polls with a
deadline. The four-workers test uses ``FAULT_TEST_RUNS`` runs (default 5,000, about 35 s on two cores;
lower it on a slower CI machine); the whole file takes about a minute and a half.
"""

from __future__ import annotations

import os
import signal

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction

from automations.models import AutomationEvent, AutomationLog, AutomationRule, RunStatus, WorkerProcess
from records import services
from records.models import Record
from tests.automations.processes import Receiver, database_url, wait_until
from tests.factories import AutomationRuleFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RUNS = int(os.environ.get("FAULT_TEST_RUNS", "5000"))


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip(
            "fault tests run real worker processes that share the database: they need PostgreSQL "
            "(DATABASE_URL=postgres://...), not SQLite"
        )


def webhook_rule(receiver: Receiver, path: str, **kwargs) -> AutomationRule:
    return AutomationRuleFactory(
        action_type="call_webhook", action_config={"url": receiver.url(path), "method": "POST"}, **kwargs
    )


def create_record(rule: AutomationRule, name: str = "Ada") -> Record:
    return services.record_create(entity=rule.entity, data={"name": name, "email": "ada@example.com"})


def logs_of(rule: AutomationRule) -> list[AutomationLog]:
    return list(AutomationLog.objects.filter(automation=rule))


# --------------------------------------------------------------------------- 1. kill -9 in flight


def test_worker_killed_while_its_webhook_is_in_flight_is_resumed_once_with_the_same_id(receiver, workers):
    rule = webhook_rule(receiver, "/slow")
    receiver.plan("/slow", [(200, 3.0)])  # the first delivery hangs: the worker is killed meanwhile
    first = workers.start("doomed")
    create_record(rule)
    wait_until(lambda: receiver.requests("/slow"), timeout=30, what="the first delivery to arrive")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    workers.start("rescuer")
    wait_until(
        lambda: AutomationLog.objects.filter(automation=rule, status=RunStatus.SUCCESS).exists(),
        timeout=30,
        what="recovery to finish the run after the lease expired",
    )
    (log,) = logs_of(rule)
    assert log.status == RunStatus.SUCCESS and log.attempts == 2
    deliveries = receiver.requests("/slow")
    assert 1 <= len(deliveries) <= 2
    assert {d["webhook_id"] for d in deliveries} == {log.delivery_id}


# --------------------------------------------------------------------------- 2. receiver errors


def test_retries_until_success_and_4xx_fails_at_once_and_410_turns_the_rule_off(receiver, workers):
    flaky = webhook_rule(receiver, "/flaky")
    bad = webhook_rule(receiver, "/bad")
    gone = webhook_rule(receiver, "/gone")
    receiver.plan("/flaky", [(500, 0), (500, 0), (500, 0), (200, 0)])
    receiver.plan("/bad", [(400, 0)])
    receiver.plan("/gone", [(410, 0)])
    workers.start()
    for rule in (flaky, bad, gone):
        create_record(rule)

    def settled():
        return not AutomationLog.objects.filter(
            status__in=[RunStatus.PENDING, RunStatus.RUNNING, RunStatus.RETRYING]
        ).exists() and (AutomationLog.objects.count() == 3)

    wait_until(settled, timeout=40, what="all three runs to settle")

    (log,) = logs_of(flaky)
    assert log.status == RunStatus.SUCCESS and log.attempts == 4
    arrivals = receiver.requests("/flaky")
    assert len(arrivals) == 4 and {a["webhook_id"] for a in arrivals} == {log.delivery_id}
    gaps = [b["at"] - a["at"] for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # AUTOMATIONS_RETRY_SCHEDULE=1,1,1 without jitter

    (log,) = logs_of(bad)
    assert log.status == RunStatus.ERROR and log.attempts == 1 and "400" in log.error
    assert len(receiver.requests("/bad")) == 1

    (log,) = logs_of(gone)
    assert log.status == RunStatus.ERROR and log.attempts == 1
    gone.refresh_from_db()
    assert not gone.is_active and "410" in gone.disabled_reason
    assert len(receiver.requests("/gone")) == 1


# --------------------------------------------------------------------------- 3. many workers


def test_four_workers_execute_every_run_exactly_once(receiver, workers):
    rule = webhook_rule(receiver, "/many")
    for start in range(0, RUNS, 1000):
        services.record_bulk_create(
            entity=rule.entity, items=[{"name": f"Lead {i}"} for i in range(start, min(RUNS, start + 1000))]
        )
    for i in range(4):  # small batches: the workers contend for the queue
        workers.start(f"w{i}", AUTOMATIONS_WORKER_BATCH_SIZE="10")
    wait_until(
        lambda: AutomationLog.objects.filter(automation=rule, status=RunStatus.SUCCESS).count() == RUNS,
        timeout=150,
        interval=0.5,
        what=f"{RUNS} runs to succeed",
    )
    logs = logs_of(rule)
    assert len(logs) == RUNS and all(log.attempts == 1 for log in logs)
    deliveries = [d["webhook_id"] for d in receiver.requests("/many")]
    assert len(deliveries) == RUNS and set(deliveries) == {log.delivery_id for log in logs}
    assert not AutomationEvent.objects.filter(processed_at__isnull=True).exists()


# --------------------------------------------------------------------------- 4. killed connections


def terminate_other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_workers_reconnect_after_their_connections_are_killed_and_lose_no_run(receiver, workers):
    rule = webhook_rule(receiver, "/load")
    total = 400
    procs = [workers.start("a"), workers.start("b")]
    wait_until(lambda: _ready_workers() >= 2, timeout=30, what="both workers to be ready")
    for start in range(0, total, 100):
        services.record_bulk_create(entity=rule.entity, items=[{"name": f"L{i}"} for i in range(start, start + 100)])
    killed = 0
    for threshold in (50, 150, 250):
        wait_until(lambda t=threshold: len(receiver.requests("/load")) >= t, timeout=60, what=f"{threshold} deliveries")
        killed += terminate_other_backends()
    assert killed >= 2
    wait_until(
        lambda: AutomationLog.objects.filter(automation=rule, status=RunStatus.SUCCESS).count() == total,
        timeout=90,
        interval=0.5,
        what="every run to succeed after the reconnects",
    )
    assert all(proc.poll() is None for proc in procs), workers.output()  # reconnected, not crashed
    logs = logs_of(rule)
    assert len(logs) == total and len({log.record_id for log in logs}) == total
    delivered = {d["webhook_id"] for d in receiver.requests("/load")}
    assert delivered == {log.delivery_id for log in logs}  # at least once each; repeats keep their id
    assert not AutomationEvent.objects.filter(processed_at__isnull=True).exists()


def _ready_workers() -> int:
    """Workers registered and, on the embedded queue, listening for events."""
    registered = WorkerProcess.objects.filter(stopped_at__isnull=True).count()
    if not settings.AUTOMATIONS_EMBEDDED_QUEUE:
        return registered
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
        )
        return min(registered, cursor.fetchone()[0])


# --------------------------------------------------------------------------- 5. SIGTERM


def test_sigterm_finishes_the_run_in_hand_then_exits(receiver, workers):
    rule = webhook_rule(receiver, "/slow")
    receiver.plan("/slow", [(200, 2.0)])
    proc = workers.start()
    create_record(rule)
    wait_until(lambda: receiver.requests("/slow"), timeout=30, what="the delivery to arrive")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, workers.output()
    (log,) = logs_of(rule)
    assert log.status == RunStatus.SUCCESS and log.attempts == 1
    assert len(receiver.requests("/slow")) == 1
    assert not AutomationLog.objects.exclude(status=RunStatus.SUCCESS).exists()  # nothing left running
    assert WorkerProcess.objects.get().stopped_at is not None  # it said goodbye
    assert not AutomationEvent.objects.filter(processed_at__isnull=True).exists()


# --------------------------------------------------------------------------- 6. rolled-back writes


def _count_from_another_connection(table: str) -> int:
    with psycopg.connect(database_url().replace("postgres://", "postgresql://", 1), autocommit=True) as other:
        return other.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 (fixed names)


def test_a_write_that_rolls_back_fires_nothing(receiver, workers):
    rule = webhook_rule(receiver, "/never")
    entity = rule.entity

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        services.record_create(entity=entity, data={"name": "Ada"})
        # The event is written inside the writer's transaction: visible to it, to no one else.
        assert AutomationEvent.objects.count() == 1
        assert _count_from_another_connection("automations_automationevent") == 0
        raise Abort  # the transaction fails after the enqueue

    assert not Record.objects.exists()
    assert not AutomationEvent.objects.exists()
    # A worker in batch mode runs everything due and a recovery sweep, then exits: it finds nothing.
    proc = workers.start("batch", "--batch", AUTOMATIONS_RECOVERY_GRACE_SECONDS="0")
    assert proc.wait(timeout=30) == 0, workers.output()
    assert not AutomationLog.objects.exists() and receiver.requests() == []
