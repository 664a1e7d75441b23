"""A dead worker's runs resume in seconds, not after the whole lease: real worker processes on PostgreSQL
with a long lease (120 s), so only the heartbeat can explain a quick take-over. ``make test`` runs this
file on the embedded queue and again on RQ/Redis."""

from __future__ import annotations

import signal
import time

import pytest
from django.db import connection

from automations.models import AutomationLog, RunStatus, WorkerProcess
from records import services
from tests.automations.processes import wait_until
from tests.factories import AutomationRuleFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

LONG_LEASE = {"AUTOMATIONS_RUN_LEASE_SECONDS": "120", "AUTOMATIONS_WORKER_BATCH_SIZE": "10"}


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("these tests run worker processes that share the database: they need PostgreSQL")


def slow_webhook_rule(receiver, path, delay=0.1):
    receiver.plan(path, [(200, delay)] * 100_000)
    return AutomationRuleFactory(action_type="call_webhook", action_config={"url": receiver.url(path)})


def held_runs(rule) -> set:
    return set(AutomationLog.objects.filter(automation=rule, status=RunStatus.RUNNING).values_list("pk", flat=True))


def test_kill_9_of_every_worker_then_one_new_worker_delivers_every_held_run_within_20_s(receiver, workers):
    rule = slow_webhook_rule(receiver, "/held", delay=0.05)
    doomed = [workers.start("doomed", **LONG_LEASE) for _ in range(2)]
    services.record_bulk_create(entity=rule.entity, items=[{"name": f"L{i}"} for i in range(200)])
    wait_until(lambda: len(receiver.requests("/held")) >= 20, timeout=60, what="deliveries to start")
    for proc in doomed:
        proc.send_signal(signal.SIGKILL)
    for proc in doomed:
        proc.wait(timeout=10)
    held = held_runs(rule)
    assert held, "the workers held no run when they were killed"
    started = time.monotonic()
    workers.start("rescuer", **LONG_LEASE)
    wait_until(
        lambda: not AutomationLog.objects.filter(pk__in=held).exclude(status=RunStatus.SUCCESS).exists(),
        timeout=60,
        interval=0.2,
        what="the held runs to be taken over",
    )
    taken_over_after = time.monotonic() - started
    assert taken_over_after <= 20, f"held runs finished {taken_over_after:.1f} s after the new worker started"
    wait_until(
        lambda: AutomationLog.objects.filter(automation=rule, status=RunStatus.SUCCESS).count() == 200,
        timeout=120,
        interval=0.5,
        what="all 200 runs",
    )
    logs = {log.pk: log for log in AutomationLog.objects.filter(automation=rule)}
    ids = {hit["webhook_id"] for hit in receiver.requests("/held")}
    assert ids == {log.delivery_id for log in logs.values()}  # every run delivered, each under its own id
    print(f"held runs: {len(held)}, all delivered {taken_over_after:.1f} s after the new worker started")


def test_a_paused_worker_loses_its_runs_and_never_delivers_them_under_another_id(receiver, workers):
    rule = slow_webhook_rule(receiver, "/paused", delay=0.3)
    paused = workers.start("paused", **LONG_LEASE)
    services.record_bulk_create(entity=rule.entity, items=[{"name": f"L{i}"} for i in range(40)])
    wait_until(lambda: len(receiver.requests("/paused")) >= 3, timeout=60, what="deliveries to start")
    paused.send_signal(signal.SIGSTOP)
    try:
        held = held_runs(rule)
        assert held
        stopped_at = time.monotonic()
        workers.start("other", **LONG_LEASE)
        wait_until(
            lambda: not AutomationLog.objects.filter(pk__in=held).exclude(status=RunStatus.SUCCESS).exists(),
            timeout=60,
            interval=0.2,
            what="the paused worker's runs to be taken over",
        )
        assert time.monotonic() - stopped_at < 30  # taken over while it is still paused
        time.sleep(max(0.0, 30 - (time.monotonic() - stopped_at)))
    finally:
        paused.send_signal(signal.SIGCONT)
    wait_until(
        lambda: AutomationLog.objects.filter(automation=rule, status=RunStatus.SUCCESS).count() == 40,
        timeout=60,
        interval=0.2,
        what="all runs",
    )
    time.sleep(3)  # give the resumed worker the time to do what it would do wrong
    assert paused.poll() is None, workers.output()  # it goes on, registered again under a new id
    wait_until(
        lambda: (
            WorkerProcess.objects.filter(id__startswith="paused", stopped_at__isnull=True).exists()
            or WorkerProcess.objects.filter(stopped_at__isnull=True).count() >= 2
        ),
        timeout=20,
        what="the resumed worker to register again",
    )
    logs = list(AutomationLog.objects.filter(automation=rule))
    per_id: dict[str, int] = {}
    for hit in receiver.requests("/paused"):
        per_id[hit["webhook_id"]] = per_id.get(hit["webhook_id"], 0) + 1
    assert set(per_id) == {log.delivery_id for log in logs}  # no delivery under an id that is not its run's
    assert max(per_id.values()) <= 2  # at most the same id twice (the one in flight when it was paused)
    assert {log.status for log in logs} == {RunStatus.SUCCESS}
