"""Fault injection against real worker processes (``manage.py automations_worker`` subprocesses on the
pytest database) and a real HTTP receiver: killed workers, failing receivers, many workers on one queue,
killed database connections, SIGTERM, rolled-back writes.

PostgreSQL only (the workers are separate processes sharing the database). Every wait polls with a
deadline. The four-workers test uses ``FAULT_TEST_RUNS`` runs (default 5,000, about 35 s on two cores;
lower it on a slower CI machine); the whole file takes about a minute and a half.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.db import connection, transaction

from automations.models import AutomationEvent, AutomationLog, AutomationRule, RunStatus, WorkerProcess
from records import services
from records.models import Record
from tests.factories import AutomationRuleFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3
RUNS = int(os.environ.get("FAULT_TEST_RUNS", "5000"))


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip(
            "fault tests run real worker processes that share the database: they need PostgreSQL "
            "(DATABASE_URL=postgres://...), not SQLite"
        )


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.1):
    """Poll ``predicate`` until truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- receiver


class Receiver:
    """A threaded HTTP/1.1 receiver. ``plan(path, [(status, delay), ...])`` scripts the next answers of a
    path (then 200 at once). Every request is recorded on arrival, before its answer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: list[dict] = []
        self.plans: dict[str, list[tuple[int, float]]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.hits.append(
                        {"path": self.path, "webhook_id": self.headers.get("webhook-id"), "at": time.monotonic()}
                    )
                    plan = receiver.plans.get(self.path) or []
                    status, delay = plan.pop(0) if plan else (200, 0.0)
                if delay:
                    time.sleep(delay)
                body = b"{}"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the worker died while we were answering
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def plan(self, path: str, answers: list[tuple[int, float]]) -> None:
        with self.lock:
            self.plans[path] = list(answers)

    def requests(self, path: str | None = None) -> list[dict]:
        with self.lock:
            return [h for h in self.hits if path is None or h["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


# --------------------------------------------------------------------------- worker processes


def database_url() -> str:
    db = connection.settings_dict
    auth = quote(db.get("USER") or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


class Workers:
    """Starts ``manage.py automations_worker`` subprocesses on the test database; kills leftovers."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str = "w", *args: str, **env: str) -> subprocess.Popen:
        environment = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE": "true",
            "AUTOMATIONS_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
            "AUTOMATIONS_RECOVERY_INTERVAL": "1",
            "AUTOMATIONS_RECOVERY_GRACE_SECONDS": "2",
            "AUTOMATIONS_RETRY_SCHEDULE": "1,1,1",
            "AUTOMATIONS_RETRY_JITTER": "0",
            "AUTOMATIONS_WORKER_POLL_INTERVAL": "0.2",
            "AUTOMATIONS_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        log = open(self.tmp_path / f"worker-{name}-{len(self.procs)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "automations_worker", "--worker-id", f"{name}-{len(self.procs)}", *args],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        proc.log_path = log.name
        log.close()
        self.procs.append(proc)
        return proc

    def output(self) -> str:
        return "\n".join(Path(p.log_path).read_text() for p in self.procs)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(timeout=10)


@pytest.fixture
def workers(tmp_path):
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()


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
    wait_until(lambda: _listeners() >= 2, timeout=30, what="both workers to LISTEN")
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


def _listeners() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
        )
        return cursor.fetchone()[0]


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
