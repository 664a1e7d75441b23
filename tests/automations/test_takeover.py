"""A dead worker's runs resume in seconds, not after the whole lease: real worker processes on PostgreSQL
with a long lease (120 s), so only the heartbeat can explain a quick take-over. ``make test`` runs this
file on the embedded queue and again on RQ/Redis."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.db import connection
from django.db.utils import InterfaceError, OperationalError

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
    # The 21st and 22nd deliveries hang, so whichever workers send them are in the middle of a batch (they
    # hold runs) when they are killed, however the batches happened to line up.
    receiver.plan("/held", [(200, 0.05)] * 20 + [(200, 30.0)] * 2 + [(200, 0.05)] * 100_000)
    doomed = [workers.start("doomed", **LONG_LEASE) for _ in range(2)]
    services.record_bulk_create(entity=rule.entity, items=[{"name": f"L{i}"} for i in range(200)])
    wait_until(lambda: len(receiver.requests("/held")) >= 21, timeout=60, what="deliveries to start")
    time.sleep(0.3)  # the other worker, if it is working, reaches its hanging delivery too
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


def test_a_paused_worker_does_not_hold_up_new_records(receiver, workers):
    """Each new event wakes one idle worker (its slot, on the embedded queue; whoever pops the job, on RQ).
    With one of two workers paused, every record written one at a time is still delivered promptly by the
    other, at worst after its poll interval, long before the paused one is declared dead."""
    rule = slow_webhook_rule(receiver, "/one-paused", delay=0.0)
    procs = [workers.start(name) for name in ("a", "b")]
    wait_until(lambda: WorkerProcess.objects.filter(stopped_at__isnull=True).count() >= 2, timeout=30, what="workers")
    time.sleep(3.5)  # a heartbeat interval: both know their slots
    procs[0].send_signal(signal.SIGSTOP)
    try:
        written = {}
        for i in range(12):
            record = services.record_create(entity=rule.entity, data={"name": f"L{i}"})
            written[str(record.pk)] = time.monotonic()
            time.sleep(0.15)
        wait_until(
            lambda: AutomationLog.objects.filter(automation=rule, status=RunStatus.SUCCESS).count() == len(written),
            timeout=10,
            interval=0.05,
            what="every record's run, with one worker paused",
        )
    finally:
        procs[0].send_signal(signal.SIGCONT)
    arrived = {hit["webhook_id"]: hit["at"] for hit in receiver.requests("/one-paused")}
    delays = [
        arrived[log.delivery_id] - written[str(log.record_id)] for log in AutomationLog.objects.filter(automation=rule)
    ]
    assert len(delays) == len(written)
    assert max(delays) < 3, f"worst delay {max(delays):.2f} s with one worker paused"


def _postgresql_cluster() -> list[str] | None:
    """``pg_ctlcluster <version> main`` for the local cluster the tests run on, when this process may
    restart it (root, Debian's tools, a database on this machine); else None."""
    host = connection.settings_dict.get("HOST") or "localhost"
    if host not in ("127.0.0.1", "localhost", "::1") or not shutil.which("pg_ctlcluster") or os.geteuid() != 0:
        return None
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*") if (p / "main").is_dir())
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"] if versions else None


@pytest.mark.pg_restart
def test_postgresql_restarted_under_load_every_stored_record_is_delivered(receiver, workers):
    """PostgreSQL restarted for real while records are written: every record whose write committed gets
    its run delivered, soon after the database is back (the worst delay is printed)."""
    cluster = _postgresql_cluster()
    if cluster is None:
        pytest.skip("needs root and Debian's pg_ctlcluster for the local PostgreSQL cluster")
    rule = slow_webhook_rule(receiver, "/restart", delay=0.01)
    for name in ("a", "b"):
        workers.start(name)
    wait_until(lambda: WorkerProcess.objects.filter(stopped_at__isnull=True).count() >= 2, timeout=30, what="workers")
    written: dict[str, float] = {}
    restarted = None
    for i in range(300):
        if i == 120:
            restarted = time.monotonic()
            subprocess.run([*cluster, "restart"], check=True, capture_output=True, timeout=120)
        while True:
            try:
                record = services.record_create(entity=rule.entity, data={"name": f"L{i}"})
                written[str(record.pk)] = time.monotonic()
                break
            except (OperationalError, InterfaceError):
                connection.close()  # the write did not commit: nothing to deliver for it; try again
                time.sleep(0.2)
    wait_until(
        lambda: AutomationLog.objects.filter(automation=rule, status=RunStatus.SUCCESS).count() >= len(written),
        timeout=120,
        interval=0.5,
        what="every stored record's run to succeed after the restart",
    )
    logs = {str(log.record_id): log for log in AutomationLog.objects.filter(automation=rule)}
    assert set(logs) == set(written)  # one run per stored record, none for writes that failed
    arrived = {}
    for hit in receiver.requests("/restart"):
        arrived.setdefault(hit["webhook_id"], hit["at"])
    delays = sorted(arrived[log.delivery_id] - written[rid] for rid, log in logs.items())
    assert len(delays) == len(written)
    print(
        f"PostgreSQL restart: {len(written)} records stored, all delivered; worst delay "
        f"{delays[-1]:.1f} s, p50 {delays[len(delays) // 2] * 1000:.0f} ms; restart began "
        f"{restarted and time.monotonic() - restarted:.0f} s before the end"
    )
