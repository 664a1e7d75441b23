"""Benchmarks of the automation engine on PostgreSQL (``make bench``; ``make bench-quick`` for the CI smoke run).

Measures what issue 6 lists, on this machine, and prints one JSON summary (also written to
``bench/results/latest.json``) followed by a short table:

1. ``write_path``: records created per second through the API (gunicorn, 2 sync workers, 16 concurrent
   clients, token auth) with 0 and with 20 active matching rules; p50/p99 latency; the ratio. No
   automation worker runs during this phase: it measures the write path alone (record + one event row).
2. ``end_to_end``: records created through the API at concurrency 16 with one ``call_webhook`` rule to a
   local receiver, delivered by ``automations_worker`` processes running beside gunicorn: every webhook
   delivered once, throughput (first request to last delivery) and delivery latency (API response to
   arrival at the receiver).
3. ``worker_throughput``: a backlog of queued webhook runs (records committed in one transaction) delivered
   by 1 and by 2 worker processes, each against a bare ``requests.Session`` loop posting the same bodies,
   measured right before and right after it (the machine's speed drifts within minutes).
3b. ``trickle`` (issue 15): records arriving one at a time (40/s through the API, one client), one webhook rule,
   with 1 and with 2 workers: the workers' CPU per run (their processes; their PostgreSQL backends apart) and
   the delivery latency, when every run is a batch of one.
4. ``scale``: 100k records, 10k rules over 1k workspaces, 1M log rows (built once with INSERT ... SELECT
   generate_series in the database ``<name>_scale`` and reused): p99 of the worker's rule lookup for
   one event and of the first page of a rule's logs, with their EXPLAIN plans.
5. ``memory``: resident size of one worker after 1,000 and after 20,000 runs.
6. ``steps`` (issue 12): worker CPU per run of a one-step ``call_webhook`` rule vs a three-step rule
   (update_field, create_task, call_webhook): backlogs of 1,000 runs each, alternating, one worker process;
   also the write path's query count per record with each rule (constant: asserted by the tests).
7. ``delays`` (issue 12): 10,000 runs parked on a one-day delay by the worker itself, then the idle worker's
   CPU over 15 s with them, bracketed by the same worker with none before and after (and once more after a
   VACUUM of the run log, to separate the runs from the dead row versions their burst left).
8. ``time_triggers`` (issue 13): (a) a ``date_reached`` rule created on 100,000 records (inserted by SQL):
   time until a worker has scheduled every due time in the background; (b) 10,000 records due at the same
   instant, a ``call_webhook`` step (``--tt-due-action create_task``: none to the receiver): every run once,
   lag from due time to start p50/p99, with 1 and with 2 workers; (c) an idle worker with 1,000,000 future
   due times (inserted by SQL) vs none.
9. ``takeover`` (issue 17): 2,000 records through the API at concurrency 16, one webhook rule, two workers
   (default lease 120 s, dead after 15 s); ``kill -9`` of both a few seconds in, one started at once: time
   from the kill to the last held run delivered, p50/p99 over the held runs, worst delivery delay overall.

CPU figures come from /proc (user + system time of a process); the engine phases also count the PostgreSQL
backends serving the measured workers (found by ``application_name``, set through ``PGAPPNAME``). The
machine is shared: compare figures within one run. Everything listens on 127.0.0.1, ports 8400-8499.

``--quick`` shrinks every size (CI smoke run, about two minutes); targets are then reported but not enforced.
The exit status is 1 when a phase failed to run (or, with ``--strict``, when a target was missed).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/automations_bench"

FULL = {
    "write_seconds": 10.0,
    "write_rounds": 2,
    "e2e_records": 2000,
    "worker_runs": 5000,
    "trickle_records": 600,
    "trickle_rate": 40.0,
    "scale_workspaces": 1000,
    "scale_records_per_workspace": 100,
    "scale_rules_per_workspace": 10,
    "scale_logs": 1_000_000,
    "scale_samples": 1000,
    "memory_first": 1000,
    "memory_total": 20000,
    "steps_runs": 1000,
    "steps_rounds": 2,
    "delay_runs": 10_000,
    "idle_seconds": 15.0,
    "tt_schedule_records": 100_000,
    "tt_due_records": 10_000,
    "tt_due_lead_seconds": 15.0,
    "tt_idle_due_times": 1_000_000,
    "takeover_records": 2000,
    "takeover_kill_after_seconds": 3.0,
    "takeover_receiver_delay_ms": 20,
    "takeover_env": {},
}
QUICK = {
    "write_seconds": 2.0,
    "write_rounds": 1,
    "e2e_records": 200,
    "worker_runs": 300,
    "trickle_records": 60,
    "trickle_rate": 40.0,
    "scale_workspaces": 50,
    "scale_records_per_workspace": 20,
    "scale_rules_per_workspace": 10,
    "scale_logs": 20_000,
    "scale_samples": 200,
    "memory_first": 200,
    "memory_total": 1000,
    "steps_runs": 100,
    "steps_rounds": 1,
    "delay_runs": 300,
    "idle_seconds": 2.0,
    "tt_schedule_records": 2000,
    "tt_due_records": 300,
    "tt_due_lead_seconds": 8.0,
    "tt_idle_due_times": 20_000,
    "takeover_records": 200,
    "takeover_kill_after_seconds": 1.5,
    "takeover_receiver_delay_ms": 50,
    # Quick: a dead worker is noticed in seconds, not the default 15 s (the full run keeps the defaults).
    "takeover_env": {"AUTOMATIONS_WORKER_DEAD_AFTER_SECONDS": 4, "AUTOMATIONS_WORKER_HEARTBEAT_SECONDS": 1},
}
CONCURRENCY = 16
# application_name of the workers' database connections (``PGAPPNAME``), so their backends can be measured too.
WORKER_APP_NAME = "bench-worker"
# The ports the bench may listen on (receiver, gunicorn), on 127.0.0.1 only.
PORT_RANGE = (8400, 8499)
TARGETS = {
    "write_ratio_20_vs_0_rules": (">=", 0.8),
    "e2e_all_delivered_once": ("==", True),
    "e2e_throughput_per_s": (">=", 150.0),
    # Issue 15's targets (issue 6's were 50 / 500 ms, 0.5 of the bare loop).
    "e2e_delivery_p50_ms": ("<=", 5.0),
    "e2e_delivery_p99_ms": ("<=", 50.0),
    "e2e_machine_cpu_ms_per_record": ("<=", 10.0),
    "e2e_api_cpu_ms_per_record": ("<=", 5.0),
    "worker_cpu_ms_per_queued_run": ("<=", 2.0),
    "trickle_worker_cpu_ms_per_run": ("<=", 2.0),
    "worker_1_process_ratio_to_bare_loop": (">=", 0.5),
    "worker_2_processes_ratio_per_process": (">=", 0.5),
    "scale_rule_lookup_p99_ms": ("<=", 5.0),
    "scale_logs_first_page_p99_ms": ("<=", 50.0),
    "memory_growth_mb": ("<=", 20.0),
    "steps_cpu_ratio_3_vs_1": ("<=", 3.0),
    "delays_idle_cpu_diff_pct_core": ("<=", 0.5),
    "tt_schedule_100k_seconds": ("<=", 60.0),
    "tt_due_burst_all_ran_once": ("==", True),
    "tt_idle_1m_cpu_diff_pct_core": ("<=", 0.5),
    "takeover_all_delivered": ("==", True),
    "takeover_held_s_after_new_worker": ("<=", 20.0),
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def rnd(value, digits: int = 2):
    return None if value is None else round(value, digits)


def wait_for(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes (then raise)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- database and Django


def database_url_with_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def ensure_database(url: str) -> None:
    """Create the database named in ``url`` if it does not exist (connecting to ``postgres``)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = database_url_with_name(url, "postgres").replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")


def subprocess_env(database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE="true",
        AUTOMATIONS_LOG_LEVEL="WARNING",
        API_THROTTLE_USER="100000000/hour",
        API_THROTTLE_WRITE="100000000/hour",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def setup_django(database_url: str, scale_url: str) -> None:
    os.environ.update(subprocess_env(database_url))
    sys.path.insert(0, str(ROOT))
    import dj_database_url
    import django
    from django.conf import settings

    settings.DATABASES["scale"] = dj_database_url.parse(scale_url, conn_max_age=0)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def truncate_engine_tables() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE automations_automationlog, automations_automationevent,"
            " records_task, records_record, automations_automationrule CASCADE"
        )


def queue_tables_truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE automations_automationlog, automations_automationevent CASCADE")


class Fixture:
    """The bench user (with an API token) and helpers to make workspaces, entities and rules."""

    def __init__(self) -> None:
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"email": "bench@example.com"})
        self.user = user
        self.token = Token.objects.get_or_create(user=user)[0].key

    def entity(self, name: str, *, date_field: bool = False):
        """A workspace of its own and an entity (``date_field``: with a ``due`` date-time field)."""
        from workspaces import services

        workspace = services.workspace_create(user=self.user, name=f"bench {name} {time.time():.0f}")
        return services.entity_create(
            workspace=workspace,
            name=name,
            fields=[
                {"name": "name", "type": "text"},
                {"name": "email", "type": "email"},
                {"name": "amount", "type": "number"},
                {"name": "status", "type": "select", "options": ["New", "Won", "Lost"]},
                *([{"name": "due", "type": "datetime"}] if date_field else []),
            ],
        )

    def rule(self, entity, steps: list[dict], *, name: str, trigger_type: str = "record_created", trigger_config=None):
        """A rule of several steps, made with the ORM (steps are not in the API yet): each step's config is
        validated by its step type, the first version is recorded and a time-based rule's schedule is armed
        (the worker computes its due times in the background), all in one transaction."""
        from django.db import transaction

        from automations import schedules, versions
        from automations.models import AutomationRule
        from automations.step_types import step_type

        steps = [
            {"type": step["type"], "config": step_type(step["type"]).validate_config(step["config"], entity=entity)}
            for step in steps
        ]
        with transaction.atomic():
            rule = AutomationRule.objects.create(
                workspace=entity.workspace,
                entity=entity,
                name=name,
                trigger_type=trigger_type,
                trigger_config=trigger_config or {},
                conditions={},
                steps=steps,
                action_type=steps[0]["type"],
                action_config=steps[0]["config"],
                created_by=self.user,
            )
            versions.record_version(rule, actor=self.user)
            if trigger_type in schedules.TIME_TRIGGERS:
                schedules.rule_changed(rule)
        return rule

    def webhook_rule(self, entity, url: str, name: str = "hook"):
        from automations import services

        return services.rule_create(
            workspace=entity.workspace,
            actor=self.user,
            entity=entity,
            name=name,
            trigger_type="record_created",
            trigger_config={},
            action_type="call_webhook",
            action_config={"url": url, "method": "POST"},
            conditions={},
        )


def record_payload(i: int) -> dict:
    return {"name": f"Lead {i}", "email": f"lead{i}@example.com", "amount": i % 1000, "status": "New"}


def create_records_in_one_transaction(entity, count: int, actor) -> None:
    """``count`` records through the service (one event row each, as the API does), committed
    together so the whole backlog becomes visible to the workers at once."""
    from django.db import transaction

    from records import services

    with transaction.atomic():
        for i in range(count):
            services.record_create(entity=entity, data=record_payload(i), actor=actor)


# --------------------------------------------------------------------------- processes


class Processes:
    """Starts and stops the bench's subprocesses (receiver, gunicorn, workers); always cleans up."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.procs: list[subprocess.Popen] = []

    def _start(self, argv: list[str], **env: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=subprocess_env(self.database_url, **env),
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def receiver(self) -> tuple[subprocess.Popen, int]:
        proc = self._start([sys.executable, str(ROOT / "bench" / "receiver.py"), f"{PORT_RANGE[0]}-{PORT_RANGE[1]}"])
        line = proc.stdout.readline().strip()
        if not line.startswith("PORT "):
            raise RuntimeError(f"receiver did not start: {line!r}")
        return proc, int(line.split()[1])

    def gunicorn(self, workers: int = 2) -> tuple[subprocess.Popen, int]:
        """gunicorn on a free port of ``PORT_RANGE`` (another one if that port got taken meanwhile)."""
        for _ in range(5):
            port = free_port()
            proc = self._start(
                [
                    str(BIN / "gunicorn"),
                    "config.wsgi:application",
                    "--workers",
                    str(workers),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--log-level",
                    "warning",
                ]
            )

            def up(proc=proc, port=port):
                if proc.poll() is not None:
                    return "exited"
                with contextlib.suppress(OSError):
                    status, _ = http_request("127.0.0.1", port, "GET", "/api/v1/")
                    return status in (200, 401, 403)
                return False

            if wait_for(up, timeout=30, what="gunicorn") is True:
                return proc, port
            self.stop([proc])
        raise RuntimeError("gunicorn did not start")

    def workers(self, count: int, **env: str) -> list[subprocess.Popen]:
        """``count`` ``automations_worker`` processes. Each has ``.worker_id`` (its ``WorkerProcess`` row) and
        connects to PostgreSQL as ``application_name`` ``bench-worker-<id>`` (``CpuMeter`` finds its backends)."""
        procs = []
        for i in range(count):
            worker_id = f"bench-{i}-{uuid.uuid4().hex[:8]}"
            proc = self._start(
                [sys.executable, "manage.py", "automations_worker", "--worker-id", worker_id],
                **{"PGAPPNAME": f"{WORKER_APP_NAME}-{worker_id}", **env},
            )
            proc.worker_id = worker_id
            procs.append(proc)
        return procs

    def stop(self, procs: list[subprocess.Popen], timeout: float = 20) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            with contextlib.suppress(ValueError):
                self.procs.remove(proc)

    def stop_all(self) -> None:
        self.stop(list(self.procs), timeout=10)


def free_port() -> int:
    """A port of ``PORT_RANGE`` nothing listens on right now (in random order)."""
    ports = list(range(PORT_RANGE[0], PORT_RANGE[1] + 1))
    random.shuffle(ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE[0]}-{PORT_RANGE[1]}")


def http_request(host: str, port: int, method: str, path: str, body: bytes | None = None, headers=None):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Receiver:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/hook"

    def _call(self, method: str, path: str, body: bytes = b""):
        status, body = http_request("127.0.0.1", self.port, method, path, body=body if method == "POST" else None)
        assert status == 200, (path, status)
        return json.loads(body)

    def reset(self) -> None:
        self._call("POST", "/_reset")

    def delay(self, ms: float) -> None:
        """Every webhook waits ``ms`` before its answer (deliveries stay in flight; reset() clears it)."""
        self._call("POST", "/_delay", str(ms).encode())

    def keep_bodies(self) -> None:
        self._call("POST", "/_keep_bodies")

    def count(self) -> int:
        return self._call("GET", "/_count")["count"]

    def hits(self) -> list[list]:
        return self._call("GET", "/_hits")["hits"]

    def bodies(self) -> list[dict]:
        return self._call("GET", "/_bodies")["bodies"]

    def wait_count(self, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = self.count()
            if count >= n:
                return count
            time.sleep(0.02)
        return self.count()


# --------------------------------------------------------------------------- load generator


def drive_api(port: int, path: str, token: str, *, total: int | None = None, seconds: float | None = None):
    """``CONCURRENCY`` threads POSTing records until ``total`` requests are done or ``seconds`` pass.
    Returns a list of (started, finished, status, record_id) with monotonic times."""
    results: list[tuple[float, float, int, str | None]] = []
    lock = threading.Lock()
    counter = iter(range(10**9))
    stop_at = time.monotonic() + seconds if seconds else None
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def client() -> None:
        local = []
        while True:
            with lock:
                i = next(counter)
            if total is not None and i >= total:
                break
            if stop_at is not None and time.monotonic() >= stop_at:
                break
            body = json.dumps({"data": record_payload(i)}).encode()
            started = time.monotonic()
            try:
                status, raw = http_request("127.0.0.1", port, "POST", path, body, headers)
            except OSError:
                status, raw = 0, b""
            finished = time.monotonic()
            record_id = None
            if status == 201:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    record_id = json.loads(raw)["data"]["record"]["id"]
            local.append((started, finished, status, record_id))
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=(seconds or 0) + 600)
    return results


def summarize_requests(results, seconds: float | None = None) -> dict:
    ok = [r for r in results if r[2] == 201]
    if not results:
        return {"requests": 0}
    span = seconds or (max(r[1] for r in results) - min(r[0] for r in results))
    latencies = [(r[1] - r[0]) * 1000 for r in ok]
    return {
        "requests": len(results),
        "created": len(ok),
        "errors": len(results) - len(ok),
        "seconds": rnd(span),
        "records_per_s": rnd(len(ok) / span if span else 0, 1),
        "p50_ms": rnd(pct(latencies, 50)),
        "p99_ms": rnd(pct(latencies, 99)),
    }


# --------------------------------------------------------------------------- 1. write path


def bench_write_path(ctx) -> dict:
    from django.db import connection

    fixture, sizes, procs = ctx["fixture"], ctx["sizes"], ctx["procs"]
    receiver = ctx["receiver"]
    plain = fixture.entity("write-0-rules")
    ruled = fixture.entity("write-20-rules")
    for i in range(20):
        fixture.webhook_rule(ruled, receiver.url, name=f"rule {i}")
    port = ctx["api_port"]

    def path(entity):
        return f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/"

    drive_api(port, path(plain), fixture.token, seconds=1.0)  # warm both gunicorn workers
    drive_api(port, path(ruled), fixture.token, seconds=1.0)
    runs: dict[str, list] = {"0_rules": [], "20_rules": []}
    for _ in range(sizes["write_rounds"]):  # interleaved rounds even out drift (autovacuum, table growth)
        for key, entity in (("0_rules", plain), ("20_rules", ruled)):
            runs[key].extend(drive_api(port, path(entity), fixture.token, seconds=sizes["write_seconds"]))
    seconds = sizes["write_seconds"] * sizes["write_rounds"]
    out = {key: summarize_requests(value, seconds) for key, value in runs.items()}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM automations_automationevent")
        events = cursor.fetchone()[0]
    out["events_written"] = events
    out["ratio"] = rnd(out["20_rules"]["records_per_s"] / out["0_rules"]["records_per_s"], 3)
    out["note"] = "No automation worker runs in this phase: it measures the API write path (record + one event row)."
    queue_tables_truncate()
    del procs
    return out


# --------------------------------------------------------------------------- 2. end to end


def webhook_entity(ctx, name: str) -> str:
    """A fresh entity with one ``call_webhook`` rule to the receiver, empty engine tables and receiver;
    returns the entity's records URL."""
    entity = ctx["fixture"].entity(name)
    ctx["fixture"].webhook_rule(entity, ctx["receiver"].url)
    queue_tables_truncate()
    ctx["receiver"].reset()
    return f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/"


def first_arrivals(hits, created: dict) -> tuple[dict[str, float], list[float]]:
    """The first arrival of each created record's webhook, and its delay in ms after the API answered."""
    arrivals: dict[str, float] = {}
    for _webhook_id, record_id, arrived in hits:
        if record_id in created:
            arrivals.setdefault(record_id, arrived)
    return arrivals, [(arrivals[rid] - created[rid][1]) * 1000 for rid in arrivals]


def bench_end_to_end(ctx) -> dict:
    fixture, sizes, procs, receiver = ctx["fixture"], ctx["sizes"], ctx["procs"], ctx["receiver"]
    n = sizes["e2e_records"]
    workers = ctx["e2e_workers"]
    path = webhook_entity(ctx, "e2e")
    worker_procs = procs.workers(workers)
    try:
        # Warm-up: workers booted, sessions open, gunicorn warm.
        warm = drive_api(ctx["api_port"], path, fixture.token, total=4 * workers)
        if receiver.wait_count(len(warm), timeout=60) < len(warm):
            raise RuntimeError("workers did not deliver the warm-up webhooks")
        receiver.reset()
        cpu_before = sum(cpu_seconds(p.pid) for p in worker_procs)
        split = CpuSplit(
            {
                "gunicorn": [ctx["gunicorn_pid"], *_children(ctx["gunicorn_pid"])],
                "automation_workers": [p.pid for p in worker_procs],
                "postgresql": _pids_named("postgres"),
                "receiver": [ctx["receiver_pid"]],
            }
        )
        results = drive_api(ctx["api_port"], path, fixture.token, total=n)
        created = {r[3]: r for r in results if r[2] == 201 and r[3]}
        receiver.wait_count(len(created), timeout=max(60, n / 10))
        hits = receiver.hits()
        cpu_used = sum(cpu_seconds(p.pid) for p in worker_procs) - cpu_before
        cpu_split = split.per_item_ms(n)
    finally:
        procs.stop(worker_procs)
    arrivals, latencies = first_arrivals(hits, created)
    ids_seen: dict[str, int] = {}
    for webhook_id, _record_id, _arrived in hits:
        ids_seen[webhook_id] = ids_seen.get(webhook_id, 0) + 1
    duplicates = sum(c - 1 for c in ids_seen.values() if c > 1)
    first = min(r[0] for r in results)
    last = max(arrivals.values()) if arrivals else first
    api = summarize_requests(results)
    out = {
        "records": n,
        "worker_processes": workers,
        "api": api,
        "delivered": len(arrivals),
        "missing": len(created) - len(arrivals),
        "duplicate_deliveries": duplicates,
        "all_delivered_once": len(arrivals) == len(created) == n and duplicates == 0,
        "throughput_per_s": rnd(len(arrivals) / (last - first) if last > first else 0, 1),
        "delivery_p50_ms": rnd(pct(latencies, 50)),
        "delivery_p90_ms": rnd(pct(latencies, 90)),
        "delivery_p99_ms": rnd(pct(latencies, 99)),
        "delivery_max_ms": rnd(max(latencies) if latencies else None),
        "worker_cpu_ms_per_run": rnd(cpu_used * 1000 / len(arrivals) if arrivals else None),
        "cpu_ms_per_record": cpu_split,
        "cpu_note": "CPU time per record by process group over the whole phase (2 cores = 2,000 ms per second)",
    }
    queue_tables_truncate()
    return out


# --------------------------------------------------------------------------- 3. worker throughput


def bare_loop(url: str, bodies: list[dict]) -> float:
    """The same requests from one thread with a plain ``requests.Session``: the ceiling for one process."""
    import requests

    session = requests.Session()
    started = time.monotonic()
    for item in bodies:
        response = session.post(url, data=item["body"].encode(), headers=item["headers"], timeout=30)
        response.raise_for_status()
    return time.monotonic() - started


def bench_worker_throughput(ctx) -> dict:
    """Each worker measurement is bracketed by two bare-loop measurements (right before and right after,
    over the warm-up's webhook bodies repeated to the same count) and compared with their mean: the
    machine's speed drifts by tens of percent within minutes (other tenants), so only adjacent runs
    compare fairly."""
    fixture, sizes, procs, receiver = ctx["fixture"], ctx["sizes"], ctx["procs"], ctx["receiver"]
    n = sizes["worker_runs"]
    out: dict = {"runs": n}
    for workers in (1, 2):
        entity = fixture.entity(f"worker-{workers}")
        fixture.webhook_rule(entity, receiver.url)
        queue_tables_truncate()
        receiver.reset()
        worker_procs = procs.workers(workers)
        try:
            # Warm-up (its bodies feed the bare loop), then the backlog lands in one commit; LISTEN/NOTIFY
            # wakes the idle workers.
            receiver.keep_bodies()
            create_records_in_one_transaction(entity, 2 * workers, fixture.user)
            if receiver.wait_count(2 * workers, timeout=60) < 2 * workers:
                raise RuntimeError("workers did not deliver the warm-up webhooks")
            warm = receiver.bodies()
            bodies = [warm[i % len(warm)] for i in range(n)]
            receiver.reset()
            bare_before = bare_loop(receiver.url, bodies)
            receiver.reset()
            cpu_before = sum(cpu_seconds(p.pid) for p in worker_procs)
            started = time.monotonic()
            create_records_in_one_transaction(entity, n, fixture.user)
            committed = time.monotonic()
            count = receiver.wait_count(n, timeout=max(120, n / 20))
            hits = receiver.hits()
            last = max(h[2] for h in hits) if hits else committed
            cpu_used = sum(cpu_seconds(p.pid) for p in worker_procs) - cpu_before
            receiver.reset()
            bare_after = bare_loop(receiver.url, bodies)
        finally:
            procs.stop(worker_procs)
        unique = len({h[0] for h in hits})
        elapsed = last - committed
        rate = unique / elapsed if elapsed > 0 else 0
        bare_rate = 2 * n / (bare_before + bare_after)
        out[f"{workers}_process"] = {
            "delivered": unique,
            "duplicates": count - unique,
            "seconds": rnd(elapsed),
            "runs_per_s": rnd(rate, 1),
            "enqueue_seconds": rnd(committed - started),
            "worker_cpu_ms_per_run": rnd(cpu_used * 1000 / unique if unique else None),
            "bare_loop_requests_per_s": {
                "before": rnd(n / bare_before, 1),
                "after": rnd(n / bare_after, 1),
                "mean": rnd(bare_rate, 1),
            },
            "ratio_per_process": rnd(rate / workers / bare_rate if bare_rate else 0, 3),
        }
    one = out["1_process"]["runs_per_s"]
    two = out["2_process"]["runs_per_s"]
    out["ratio_1_process"] = out["1_process"]["ratio_per_process"]
    out["ratio_2_processes_per_process"] = out["2_process"]["ratio_per_process"]
    out["scaling_2_vs_1"] = rnd(two / one if one else 0, 3)
    receiver.reset()
    queue_tables_truncate()
    return out


# --------------------------------------------------------------------------- 3b. trickle


def paced_api(port: int, path: str, token: str, *, total: int, rate: float):
    """One client POSTing ``total`` records at ``rate`` per second (records arriving one at a time, as most
    workspaces write them). Returns (started, finished, status, record_id) like ``drive_api``."""
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    results = []
    start = time.monotonic()
    for i in range(total):
        pause = start + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        body = json.dumps({"data": record_payload(i)}).encode()
        started = time.monotonic()
        status, raw = http_request("127.0.0.1", port, "POST", path, body, headers)
        record_id = None
        if status == 201:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                record_id = json.loads(raw)["data"]["record"]["id"]
        results.append((started, time.monotonic(), status, record_id))
    return results


def bench_trickle(ctx) -> dict:
    """Records arriving one at a time (``trickle_rate`` per second through the API, one client), one
    ``call_webhook`` rule, with 1 and with 2 workers: the workers' CPU per run (their processes and their
    PostgreSQL backends, idle polling included) and the delivery latency. Every run is a batch of one here,
    so this is the engine's cost per run when it is not busy."""
    fixture, sizes, procs, receiver = ctx["fixture"], ctx["sizes"], ctx["procs"], ctx["receiver"]
    n, rate = sizes["trickle_records"], sizes["trickle_rate"]
    out: dict = {"records": n, "rate_per_s": rate}
    for workers in (1, 2):
        path = webhook_entity(ctx, f"trickle-{workers}")
        worker_procs = procs.workers(workers)
        try:
            wait_registered(worker_procs)
            warm = paced_api(ctx["api_port"], path, fixture.token, total=10, rate=rate)
            if receiver.wait_count(len(warm), timeout=60) < len(warm):
                raise RuntimeError("workers did not deliver the warm-up webhooks")
            receiver.reset()
            with worker_meter(ctx, worker_procs) as meter:
                results = paced_api(ctx["api_port"], path, fixture.token, total=n, rate=rate)
                created = {r[3]: r for r in results if r[2] == 201 and r[3]}
                receiver.wait_count(len(created), timeout=60)
            hits = receiver.hits()
        finally:
            procs.stop(worker_procs)
        arrivals, latencies = first_arrivals(hits, created)
        out[f"{workers}_process"] = {
            "delivered": len(arrivals),
            "all_delivered_once": len(arrivals) == n and len(hits) == n,
            "delivery_p50_ms": rnd(pct(latencies, 50)),
            "delivery_p99_ms": rnd(pct(latencies, 99)),
            # The issue's "worker CPU per run" is the worker processes' own; their PostgreSQL backends apart.
            "worker_cpu_ms_per_run": rnd(meter.process_s * 1000 / len(arrivals) if arrivals else None),
            "postgres_cpu_ms_per_run": rnd(meter.postgres_s * 1000 / len(arrivals) if arrivals else None),
            "cpu": meter.summary(per=len(arrivals) or None),
        }
    receiver.reset()
    queue_tables_truncate()
    return out


# --------------------------------------------------------------------------- 4. scale


SCALE_SQL = """
INSERT INTO workspaces_workspace (id, name, description, created_at, updated_at, created_by_id)
SELECT gen_random_uuid(), 'scale ' || g, '', now(), now(), %(user_id)s FROM generate_series(1, %(workspaces)s) g;

INSERT INTO workspaces_entity (id, name, slug, description, fields, status_field, created_at, updated_at, workspace_id)
SELECT gen_random_uuid(), 'Leads', 'leads', '',
       '[{"name": "name", "type": "text", "required": false, "options": []},
         {"name": "status", "type": "select", "required": false, "options": ["New", "Won", "Lost"]}]'::jsonb,
       'status', now(), now(), w.id
FROM workspaces_workspace w;

INSERT INTO records_record (id, data, created_at, updated_at, entity_id, workspace_id)
SELECT gen_random_uuid(), jsonb_build_object('name', 'Lead ' || g, 'status', 'New'),
       now() - g * interval '1 minute', now(), e.id, e.workspace_id
FROM workspaces_entity e CROSS JOIN generate_series(1, %(records_per_workspace)s) g;

INSERT INTO automations_automationrule (id, name, description, trigger_type, trigger_config, conditions,
    steps, action_type, action_config, version, is_active, signing_secret, previous_signing_secret,
    consecutive_failures, disabled_reason, created_at, updated_at, entity_id, workspace_id)
SELECT gen_random_uuid(), 'rule ' || g, '',
       (ARRAY['record_created', 'record_updated', 'field_updated', 'status_changed', 'record_deleted'])[1 + g %% 5],
       CASE g %% 5 WHEN 2 THEN '{"field_name": "name"}'::jsonb WHEN 3 THEN '{"to_status": "Won"}'::jsonb
            ELSE '{}'::jsonb END,
       '{}'::jsonb,
       '[{"type": "call_webhook", "config": {"url": "https://example.com/hook", "method": "POST"}}]'::jsonb,
       'call_webhook', '{"url": "https://example.com/hook", "method": "POST"}'::jsonb, 1,
       g %% 3 <> 0, 'whsec_' || md5(random()::text), '', 0, '', now() - g * interval '1 hour', now(), e.id,
       e.workspace_id
FROM workspaces_entity e CROSS JOIN generate_series(1, %(rules_per_workspace)s) g;
"""
# Bumped whenever the statements above or below change: a cached dataset of another version is rebuilt.
SCALE_SQL_VERSION = 2

# One hot rule holds a tenth of the logs (its first page must not sort them), the rest spread evenly.
SCALE_LOGS_SQL = """
INSERT INTO automations_automationlog (id, workspace_id, entity_id, record_id, record_snapshot, old_data,
    event_type, trigger_type, action_type, status, result, error, attempts, started_at, finished_at,
    duration_ms, executed_at, is_test, chain, chain_depth, created_at, automation_id, worker_id, rule_version,
    current_step, replays)
SELECT gen_random_uuid(), r.workspace_id, r.entity_id, gen_random_uuid(),
       jsonb_build_object('id', g::text, 'data', jsonb_build_object('name', 'Lead ' || g, 'status', 'New')),
       NULL, 'created', r.trigger_type, 'call_webhook',
       CASE WHEN g %% 20 = 0 THEN 'error' ELSE 'success' END,
       '{"status_code": 200, "response": "{}", "duration_ms": 3}'::jsonb, '', 1,
       now() - g * interval '1 second', now() - g * interval '1 second', 3, now() - g * interval '1 second',
       false, '[]'::jsonb, 0, now() - g * interval '1 second', r.id, '', 1, 0, '[]'::jsonb
FROM (SELECT * FROM automations_automationrule ORDER BY created_at, id LIMIT %(rules)s OFFSET %(offset)s) r
CROSS JOIN generate_series(1, %(per_rule)s) g;
"""


def build_scale_dataset(sizes: dict) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connections, transaction

    wanted = {
        k: sizes[k]
        for k in ("scale_workspaces", "scale_records_per_workspace", "scale_rules_per_workspace", "scale_logs")
    }
    wanted["sql_version"] = SCALE_SQL_VERSION
    conn = connections["scale"]
    from django.core.management import call_command

    call_command("migrate", database="scale", verbosity=0, interactive=False)
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_scale_meta (sizes jsonb NOT NULL)")
        cursor.execute("SELECT sizes FROM bench_scale_meta")
        row = cursor.fetchone()
    stored = row[0] if row else None
    if isinstance(stored, str):
        stored = json.loads(stored)
    if stored == wanted:
        return {"cached": True, "build_seconds": 0}
    log("building the scale dataset (once; cached in the _scale database) ...")
    started = time.monotonic()
    user = get_user_model().objects.db_manager("scale").get_or_create(username="bench")[0]
    rules = sizes["scale_workspaces"] * sizes["scale_rules_per_workspace"]
    total_logs = sizes["scale_logs"]
    hot = total_logs // 10
    per_rule = (total_logs - hot) // (rules - 1)
    with transaction.atomic(using="scale"), conn.cursor() as cursor:
        cursor.execute(
            "TRUNCATE automations_automationlog, automations_automationrule, records_record, workspaces_entity,"
            " workspaces_workspace, bench_scale_meta CASCADE"
        )
        params = {
            "user_id": user.pk,
            "workspaces": sizes["scale_workspaces"],
            "records_per_workspace": sizes["scale_records_per_workspace"],
            "rules_per_workspace": sizes["scale_rules_per_workspace"],
        }
        for statement in SCALE_SQL.split(";\n"):
            if statement.strip():
                cursor.execute(statement, params)
        cursor.execute(SCALE_LOGS_SQL, {"rules": 1, "offset": 0, "per_rule": hot})
        cursor.execute(SCALE_LOGS_SQL, {"rules": rules - 1, "offset": 1, "per_rule": per_rule})
        cursor.execute("INSERT INTO bench_scale_meta (sizes) VALUES (%s)", [json.dumps(wanted)])
    with conn.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return {"cached": False, "build_seconds": rnd(time.monotonic() - started, 1)}


def timed(fn, samples: int) -> list[float]:
    times = []
    for arg in samples:
        started = time.perf_counter()
        fn(arg)
        times.append((time.perf_counter() - started) * 1000)
    return times


def bench_scale(ctx) -> dict:
    from django.db import connections

    from automations.models import AutomationLog, AutomationRule, EventType
    from automations.sql import active_rules_for, load_active_rules
    from automations.trigger_types import trigger_names_for

    sizes = ctx["sizes"]
    out = build_scale_dataset(sizes)
    conn = connections["scale"]
    with conn.cursor() as cursor:
        for table, key in (
            ("workspaces_workspace", "workspaces"),
            ("records_record", "records"),
            ("automations_automationrule", "rules"),
            ("automations_automationlog", "logs"),
        ):
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (fixed table names)
            out[key] = cursor.fetchone()[0]
    entity_ids = list(AutomationRule.objects.using("scale").values_list("entity_id", flat=True).distinct())
    rule_ids = list(AutomationRule.objects.using("scale").values_list("id", flat=True))
    hot_rule = AutomationRule.objects.using("scale").order_by("created_at", "id").values_list("id", flat=True)[0]
    names = sorted(trigger_names_for(EventType.UPDATED))
    rng = random.Random(6)
    samples = sizes["scale_samples"]

    def rule_lookup(entity_id):
        # The worker's lookup (sql.load_active_rules: the active_rules_for query) for one event.
        return load_active_rules([entity_id], names, using="scale")

    def logs_page_query(rule_id):
        return AutomationLog.objects.using("scale").filter(automation_id=rule_id).order_by("-created_at", "-id")

    def logs_page(rule_id):
        qs = logs_page_query(rule_id)
        return list(qs[:50]), qs.count()

    entities = [rng.choice(entity_ids) for _ in range(samples)]
    rules = [rng.choice(rule_ids) for _ in range(samples)]
    timed(rule_lookup, entities[:50])  # warm caches and connection
    timed(logs_page, rules[:50])
    lookup = timed(rule_lookup, entities)
    page = timed(logs_page, rules)
    hot = timed(logs_page, [hot_rule] * max(20, samples // 10))
    out["rule_lookup_ms"] = {"p50": rnd(pct(lookup, 50), 3), "p99": rnd(pct(lookup, 99), 3), "samples": samples}
    out["logs_first_page_ms"] = {"p50": rnd(pct(page, 50), 3), "p99": rnd(pct(page, 99), 3), "samples": samples}
    out["hot_rule_logs_first_page_ms"] = {
        "p50": rnd(pct(hot, 50), 3),
        "p99": rnd(pct(hot, 99), 3),
        "logs_of_rule": logs_page_query(hot_rule).count(),
    }
    out["logs_first_page_note"] = "first 50 logs newest first plus the total count, as the logs endpoint returns"
    lookup_qs = active_rules_for([entities[0]], names).using("scale")
    out["plans"] = {
        "rule_lookup": lookup_qs.explain(analyze=True, buffers=True).splitlines(),
        "logs_first_page": logs_page_query(hot_rule)[:50].explain(analyze=True, buffers=True).splitlines(),
        "logs_count": _explain_count(conn, hot_rule),
    }
    out["p99_max_ms"] = {"rule_lookup": rnd(max(lookup), 3), "logs_first_page": rnd(max(page + hot), 3)}
    out["logs_first_page_p99_ms_all"] = rnd(max(pct(page, 99), pct(hot, 99)), 3)
    return out


def _explain_count(conn, rule_id) -> list[str]:
    with conn.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM automations_automationlog WHERE automation_id = %s",
            [rule_id],
        )
        return [row[0] for row in cursor.fetchall()]


# --------------------------------------------------------------------------- 5. memory


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_of(pids) -> dict[int, float]:
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            out[pid] = cpu_seconds(pid)
    return out


def _pids_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
    return pids


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (all cores, /proc/stat)."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuSplit:
    """Where the machine's CPU went during a phase: gunicorn, automation workers, PostgreSQL, the load
    generator (this process), the receiver, and the rest (per record, in ms)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.before = {name: _cpu_of(pids) for name, pids in groups.items()}
        self.busy_before = _machine_busy_seconds()
        self.self_before = time.process_time()

    def per_item_ms(self, items: int) -> dict:
        out = {}
        for name, pids in self.groups.items():
            after = _cpu_of(pids)
            used = sum(after[pid] - self.before[name][pid] for pid in after if pid in self.before[name])
            out[name] = used
        out["load_generator"] = time.process_time() - self.self_before
        busy = _machine_busy_seconds() - self.busy_before
        out["other"] = max(0.0, busy - sum(out.values()))
        result = {name: rnd(seconds * 1000 / items if items else 0, 2) for name, seconds in out.items()}
        result["machine_total"] = rnd(busy * 1000 / items if items else 0, 2)
        return result


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def bench_memory(ctx) -> dict:
    from records import services

    fixture, sizes, procs, receiver = ctx["fixture"], ctx["sizes"], ctx["procs"], ctx["receiver"]
    first, total = sizes["memory_first"], sizes["memory_total"]
    entity = fixture.entity("memory")
    fixture.webhook_rule(entity, receiver.url)
    queue_tables_truncate()
    receiver.reset()
    (worker,) = procs.workers(1)
    started = time.monotonic()

    def add(count: int) -> None:
        # Bulk creates (one event per record) in commits
        # of 1,000 so the worker starts while the rest is being written.
        for start in range(0, count, 1000):
            items = [{"data": record_payload(i)} for i in range(start, min(count, start + 1000))]
            services.record_bulk_create(entity=entity, items=items, actor=fixture.user)

    try:
        add(first)
        if receiver.wait_count(first, timeout=120) < first:
            raise RuntimeError("the worker did not finish the first runs")
        time.sleep(0.2)  # let it finish the last batch's bookkeeping
        after_first = rss_mb(worker.pid)
        add(total - first)
        delivered = receiver.wait_count(total, timeout=max(180, total / 20))
        time.sleep(0.2)
        after_total = rss_mb(worker.pid)
        hits = receiver.hits()
    finally:
        procs.stop([worker])
    unique = len({h[0] for h in hits})
    out = {
        "runs": total,
        "delivered": unique,
        "duplicates": delivered - unique,
        "rss_after_first_mb": rnd(after_first, 1),
        "first_runs": first,
        "rss_after_total_mb": rnd(after_total, 1),
        "growth_mb": rnd(after_total - after_first, 1),
        "seconds": rnd(time.monotonic() - started, 1),
    }
    receiver.reset()
    queue_tables_truncate()
    return out


# --------------------------------------------------------------------------- helpers of the engine phases (6-9)


class CpuMeter:
    """CPU seconds used over a window by some processes and by the PostgreSQL backends serving them (found by
    their ``application_name``: the bench's workers connect with ``PGAPPNAME``). Sampled every
    ``interval`` in a thread, so a backend that comes and goes within the window (a reconnect) is counted
    too; one that started during the window counts from zero (its connection set-up included)."""

    def __init__(self, pids, *, database_url: str | None = None, app_names: list[str] | None = None) -> None:
        self.pids = list(pids)
        self.database_url = database_url
        self.app_names = list(app_names or [])
        self.interval = 0.25
        self.first: dict[tuple[str, int], float] = {}
        self.last: dict[tuple[str, int], float] = {}
        self.seconds = 0.0
        self._stop = threading.Event()
        self._conn = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> CpuMeter:
        if self.app_names and self.database_url:
            import psycopg

            self._conn = psycopg.connect(self.database_url, autocommit=True)
            self._since = self._conn.execute("SELECT clock_timestamp()").fetchone()[0]
        self._started = time.monotonic()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="cpu-meter", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = time.monotonic() - self._started
        if self._conn is not None:
            self._conn.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _note(self, key: tuple[str, int], baseline: float | None) -> None:
        try:
            value = cpu_seconds(key[1])
        except (OSError, IndexError, ValueError):  # gone
            return
        if key not in self.first:
            self.first[key] = value if baseline is None else baseline
        self.last[key] = value

    def _sample(self) -> None:
        for pid in self.pids:
            self._note(("process", pid), None)
        if self._conn is not None:
            rows = self._conn.execute(
                "SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = ANY(%s)", [self.app_names]
            ).fetchall()
            for pid, started in rows:
                self._note(("postgres", pid), 0.0 if started >= self._since else None)

    def used(self, kind: str) -> float:
        return sum(self.last[key] - self.first[key] for key in self.last if key[0] == kind)

    @property
    def process_s(self) -> float:
        return self.used("process")

    @property
    def postgres_s(self) -> float:
        return self.used("postgres")

    def summary(self, per: int | None = None) -> dict:
        """CPU over the window: seconds, % of one core, and ms per item when ``per`` is given."""
        out = {
            "window_s": rnd(self.seconds, 2),
            "process_cpu_s": rnd(self.process_s, 3),
            "postgres_cpu_s": rnd(self.postgres_s, 3),
            "process_pct_core": rnd(100 * self.process_s / self.seconds if self.seconds else None, 3),
            "postgres_pct_core": rnd(100 * self.postgres_s / self.seconds if self.seconds else None, 3),
            "total_pct_core": rnd(100 * (self.process_s + self.postgres_s) / self.seconds if self.seconds else None, 3),
        }
        if per:
            out["process_cpu_ms_per_item"] = rnd(self.process_s * 1000 / per, 3)
            out["postgres_cpu_ms_per_item"] = rnd(self.postgres_s * 1000 / per, 3)
        return out


def worker_meter(ctx, workers: list[subprocess.Popen]) -> CpuMeter:
    """A ``CpuMeter`` over worker processes and their own database backends."""
    names = [f"{WORKER_APP_NAME}-{w.worker_id}" for w in workers]
    return CpuMeter([w.pid for w in workers], database_url=ctx["database_url"], app_names=names)


def wait_registered(workers: list[subprocess.Popen], timeout: float = 60) -> None:
    """Until every worker has registered (its ``WorkerProcess`` row): booted and in its loop."""
    from automations.models import WorkerProcess

    ids = [w.worker_id for w in workers]

    def registered():
        for worker in workers:
            if worker.poll() is not None:
                raise RuntimeError(f"worker {worker.worker_id} exited with {worker.returncode}")
        return WorkerProcess.objects.filter(id__in=ids, stopped_at__isnull=True).count() == len(ids)

    wait_for(registered, timeout=timeout, interval=0.1, what="workers to register")


def engine_idle() -> bool:
    """No event waiting, no run held, no waiting run due: the workers have nothing left to do."""
    from django.db.models import Q
    from django.utils import timezone

    from automations.models import AutomationEvent, AutomationLog

    if AutomationEvent.objects.filter(processed_at__isnull=True).exists():
        return False
    due = Q(status__in=["pending", "retrying"], next_attempt_at__lte=timezone.now())
    return not AutomationLog.objects.filter(Q(status="running") | due).exists()


def idle_window(ctx, worker: subprocess.Popen, seconds: float) -> dict:
    """CPU of an idle worker (process and its backends) over ``seconds``."""
    with worker_meter(ctx, [worker]) as meter:
        time.sleep(seconds)
    return meter.summary()


def idle_comparison(before: dict, loaded: dict, after: dict) -> dict:
    """The loaded window against the mean of the two bracketing empty ones, in points of one core (the
    machine's drift shows as the gap between the two empty windows)."""
    out = {}
    for key in ("process_pct_core", "postgres_pct_core", "total_pct_core"):
        base = (before[key] + after[key]) / 2
        out[key] = {
            "empty_mean": rnd(base, 3),
            "loaded": loaded[key],
            "difference": rnd(loaded[key] - base, 3),
            "empty_windows_gap": rnd(abs(before[key] - after[key]), 3),
        }
    return out


def explain_statements(call) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement ``call()`` runs, inside a transaction rolled back
    afterwards (the engine's claims are UPDATE/DELETE statements)."""
    from django.db import connection, transaction

    captured: list[tuple[str, object]] = []

    def capture(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    plans = []
    with transaction.atomic():
        with connection.execute_wrapper(capture):
            call()
        with connection.cursor() as cursor:
            for sql, params in captured:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                plans.append({"sql": " ".join(sql.split())[:300], "plan": [row[0] for row in cursor.fetchall()]})
        transaction.set_rollback(True)
    return plans


def insert_records_sql(entity, count: int, *, due_from=None, due_step_seconds: float = 0.0) -> None:
    """``count`` records of ``entity`` inserted by one SQL statement (no events: nothing fires), each with a
    ``due`` date-time (``due_from`` + i × ``due_step_seconds``, stored as the datetime field type stores it)
    when ``due_from`` is given."""
    from django.db import connection

    due = (
        ", 'due', to_char((%(due_from)s::timestamptz + g * %(step)s * interval '1 second') AT TIME ZONE 'UTC',"
        " 'YYYY-MM-DD\"T\"HH24:MI:SS') || '+00:00'"
        if due_from is not None
        else ""
    )
    sql = (
        "INSERT INTO records_record (id, data, created_at, updated_at, entity_id, workspace_id) "  # noqa: S608
        "SELECT gen_random_uuid(), jsonb_build_object('name', 'Lead ' || g, 'email', 'lead' || g || '@example.com',"
        f" 'amount', g %% 1000, 'status', 'New'{due}), now(), now(), %(entity)s, %(workspace)s "
        "FROM generate_series(1, %(count)s) g"
    )  # a fixed fragment, every value bound
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "due_from": due_from,
                "step": due_step_seconds,
                "entity": entity.pk,
                "workspace": entity.workspace_id,
                "count": count,
            },
        )
        cursor.execute("ANALYZE records_record")


def table_stats(table: str) -> dict:
    """Live and dead rows of a table and its last (auto)vacuum, from pg_stat_user_tables."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_live_tup, n_dead_tup, last_vacuum, last_autovacuum FROM pg_stat_user_tables WHERE relname = %s",
            [table],
        )
        row = cursor.fetchone()
    if row is None:
        return {}
    return {
        "live_rows": row[0],
        "dead_rows": row[1],
        "last_vacuum": row[2].isoformat() if row[2] else None,
        "last_autovacuum": row[3].isoformat() if row[3] else None,
    }


def spread(values: list[float], digits: int = 1) -> dict:
    return {
        "p50": rnd(pct(values, 50), digits),
        "p90": rnd(pct(values, 90), digits),
        "p99": rnd(pct(values, 99), digits),
        "max": rnd(max(values) if values else None, digits),
    }


# --------------------------------------------------------------------------- 6. steps


def three_steps(url: str) -> list[dict]:
    return [
        {"type": "update_field", "config": {"field_name": "status", "new_value": "Won"}},
        {"type": "create_task", "config": {"title": "Follow up with {{ name }}", "due_in_days": 2}},
        {"type": "call_webhook", "config": {"url": url, "method": "POST"}},
    ]


def write_queries(entity, actor) -> int:
    """Queries of one record create through the service (the API's write path, without the request)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from records import services

    with CaptureQueriesContext(connection) as queries:
        services.record_create(entity=entity, data=record_payload(0), actor=actor)
    return len(queries)


def step_wall_ms(rule) -> dict:
    """Mean wall time of each step of a rule's successful runs (from their step ledgers), and of a whole run."""
    import datetime as dt

    from automations.models import AutomationLog

    per_step: dict[str, list[float]] = {}
    runs: list[float] = []
    for states, duration in AutomationLog.objects.filter(automation=rule, status="success").values_list(
        "step_states", "duration_ms"
    ):
        for state in states or []:
            if state.get("started_at") and state.get("finished_at"):
                took = dt.datetime.fromisoformat(state["finished_at"]) - dt.datetime.fromisoformat(state["started_at"])
                per_step.setdefault(f"{state['index']}:{state['type']}", []).append(took.total_seconds() * 1000)
        if duration is not None:
            runs.append(duration)
    out = {name: rnd(sum(values) / len(values), 2) for name, values in per_step.items()}
    out["whole_run"] = rnd(sum(runs) / len(runs) if runs else None, 2)
    return out


def bench_steps(ctx) -> dict:
    """Worker CPU per run of a one-step ``call_webhook`` rule vs a three-step rule (update_field, create_task,
    call_webhook), each a backlog of ``steps_runs`` records committed in one transaction and worked by one
    worker process; the two kinds alternate (``steps_rounds`` rounds) so drift hits both alike. CPU is the
    worker process's (from /proc) from just before the commit until every run is finished and every event
    (the update_field step's own) matched; its PostgreSQL backends are reported beside it."""
    from django.db import transaction

    from records import services

    fixture, sizes, procs, receiver = ctx["fixture"], ctx["sizes"], ctx["procs"], ctx["receiver"]
    n, rounds = sizes["steps_runs"], sizes["steps_rounds"]
    plain = fixture.entity("steps-none")
    kinds = {"one_step": fixture.entity("steps-1"), "three_steps": fixture.entity("steps-3")}
    fixture.rule(
        kinds["one_step"], [{"type": "call_webhook", "config": {"url": receiver.url, "method": "POST"}}], name="one"
    )
    three_rule = fixture.rule(kinds["three_steps"], three_steps(receiver.url), name="three")
    queries = {
        "no_rule": write_queries(plain, fixture.user),
        "one_step_rule": write_queries(kinds["one_step"], fixture.user),
        "three_step_rule": write_queries(kinds["three_steps"], fixture.user),
    }
    queue_tables_truncate()
    receiver.reset()
    (worker,) = procs.workers(1)
    measured: dict[str, list[dict]] = {kind: [] for kind in kinds}
    try:
        wait_registered([worker])
        for entity in kinds.values():  # warm-up: templates, connections, the receiver's keep-alive
            create_records_in_one_transaction(entity, 3, fixture.user)
        if receiver.wait_count(6, timeout=60) < 6:
            raise RuntimeError("the worker did not deliver the warm-up webhooks")
        wait_for(engine_idle, timeout=60, what="the warm-up runs to finish")
        for _ in range(rounds):
            for kind, entity in kinds.items():
                receiver.reset()
                meter = worker_meter(ctx, [worker])
                with transaction.atomic():
                    for i in range(n):
                        services.record_create(entity=entity, data=record_payload(i), actor=fixture.user)
                    meter.__enter__()  # from the commit on: the worker sees the backlog at once
                started = time.monotonic()
                try:
                    delivered = receiver.wait_count(n, timeout=max(120, n / 10))
                    wait_for(engine_idle, timeout=120, interval=0.1, what="the runs to finish")
                finally:
                    meter.__exit__(None, None, None)
                if delivered < n:
                    raise RuntimeError(f"{kind}: {delivered} of {n} webhooks delivered")
                hits = receiver.hits()
                measured[kind].append(
                    {
                        "runs": n,
                        "delivered": len({h[0] for h in hits}),
                        "seconds": rnd(time.monotonic() - started),
                        **meter.summary(per=n),
                    }
                )
    finally:
        procs.stop([worker])
    out: dict = {"runs_per_round": n, "rounds": rounds, "worker_processes": 1}
    for kind, rows in measured.items():
        per_run = [row["process_cpu_ms_per_item"] for row in rows]
        pg_per_run = [row["postgres_cpu_ms_per_item"] for row in rows]
        out[kind] = {
            "worker_cpu_ms_per_run": rnd(sum(per_run) / len(per_run), 3),
            "worker_cpu_ms_per_run_rounds": per_run,
            "postgres_cpu_ms_per_run": rnd(sum(pg_per_run) / len(pg_per_run), 3),
            "runs_per_s": [rnd(row["runs"] / row["seconds"], 1) for row in rows],
            "rounds": rows,
        }
    one, three = out["one_step"]["worker_cpu_ms_per_run"], out["three_steps"]["worker_cpu_ms_per_run"]
    out["cpu_ratio_3_vs_1"] = rnd(three / one if one else None, 3)
    pairs = zip(
        out["one_step"]["worker_cpu_ms_per_run_rounds"], out["three_steps"]["worker_cpu_ms_per_run_rounds"], strict=True
    )
    out["cpu_ratio_3_vs_1_rounds"] = [rnd(b / a if a else None, 3) for a, b in pairs]
    one_pg = out["one_step"]["worker_cpu_ms_per_run"] + out["one_step"]["postgres_cpu_ms_per_run"]
    three_pg = out["three_steps"]["worker_cpu_ms_per_run"] + out["three_steps"]["postgres_cpu_ms_per_run"]
    out["cpu_ratio_3_vs_1_with_postgres"] = rnd(three_pg / one_pg if one_pg else None, 3)
    out["three_steps"]["step_wall_ms"] = step_wall_ms(three_rule)
    out["write_path_queries_per_record"] = queries
    from records.models import Task

    out["plans"] = {
        "create_task_existing_task_lookup": explain_statements(
            lambda: Task.objects.filter(created_by_run_id=uuid.uuid4()).first()
        ),
        "tasks_in_table": Task.objects.count(),
    }
    out["note"] = (
        "three_steps = update_field (status), create_task, call_webhook; its update_field step writes the record, "
        "whose event the worker also matches (counted). Write-path query counts are asserted constant by the tests."
    )
    receiver.reset()
    queue_tables_truncate()
    return out


# --------------------------------------------------------------------------- 7. delays


def idle_plans() -> list[dict]:
    """Plans of the statements an idle embedded worker repeats: the claim of due runs (every poll), the
    take-over claim of runs held by dead workers or past their lease (every heartbeat interval) and the
    take of due times (every poll)."""
    import datetime as dt

    from django.utils import timezone

    from automations import sql

    now = timezone.now()
    lease = now + dt.timedelta(seconds=120)

    def claims():
        sql.claim_runs(ids=None, limit=50, now=now, lease=lease, worker_id="bench-explain", due=True)
        sql.claim_runs(ids=None, limit=50, now=now, lease=lease, worker_id="bench-explain", due=False)
        sql.take_due_times(limit=500, now=now)

    return explain_statements(claims)


def bench_delays(ctx) -> dict:
    """``delay_runs`` runs parked on a one-day delay (rule ``[delay 1 day, call_webhook]``, records bulk-created
    so the worker itself parks every run), and the CPU of that idle worker over ``idle_seconds`` with them,
    bracketed by the same worker with no waiting run before and after (the runs deleted)."""
    from django.db import connection

    from automations.models import AutomationLog, RunStatus
    from records import services

    fixture, sizes, procs, receiver = ctx["fixture"], ctx["sizes"], ctx["procs"], ctx["receiver"]
    n, window = sizes["delay_runs"], sizes["idle_seconds"]
    entity = fixture.entity("delays")
    steps = [
        {"type": "delay", "config": {"seconds": 86400}},
        {"type": "call_webhook", "config": {"url": receiver.url, "method": "POST"}},
    ]
    rule = fixture.rule(entity, steps, name="wait a day")
    queue_tables_truncate()
    receiver.reset()
    (worker,) = procs.workers(1)
    settle = min(3.0, window / 2)

    def waiting() -> int:
        return AutomationLog.objects.filter(automation=rule, status=RunStatus.PENDING, current_step=0).count()

    try:
        wait_registered([worker])
        time.sleep(settle)
        empty_before = idle_window(ctx, worker, window)
        with worker_meter(ctx, [worker]) as park:
            for start in range(0, n, 1000):
                items = [{"data": record_payload(i)} for i in range(start, min(n, start + 1000))]
                services.record_bulk_create(entity=entity, items=items, actor=fixture.user)
            wait_for(lambda: waiting() >= n, timeout=max(120, n / 20), interval=0.2, what="the runs to wait")
            wait_for(engine_idle, timeout=60, interval=0.2, what="the worker to go idle")
        sample = AutomationLog.objects.filter(automation=rule).order_by("created_at").first()
        time.sleep(settle)
        stats = {"with_waiting_runs": table_stats("automations_automationlog")}
        with_waiting = idle_window(ctx, worker, window)
        plans = idle_plans()
        # The same runs once VACUUM has removed the dead row versions the burst left (each run was inserted
        # running, then updated to pending): what a worker pays for the waiting runs themselves.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE automations_automationlog")
        stats["after_vacuum"] = table_stats("automations_automationlog")
        time.sleep(settle)
        vacuumed = idle_window(ctx, worker, window)
        plans_vacuumed = idle_plans()
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM automations_automationlog WHERE automation_id = %s", [rule.pk])
            deleted = cursor.rowcount
        time.sleep(settle)
        empty_after = idle_window(ctx, worker, window)
    finally:
        procs.stop([worker])
    comparison = idle_comparison(empty_before, with_waiting, empty_after)
    comparison_vacuumed = idle_comparison(empty_before, vacuumed, empty_after)
    out = {
        "waiting_runs": deleted,
        "idle_seconds": window,
        "park": {"seconds": rnd(park.seconds, 1), **park.summary(per=n)},
        "sample_waiting_run": {
            "status": sample.status,
            "current_step": sample.current_step,
            "next_attempt_at": sample.next_attempt_at.isoformat() if sample.next_attempt_at else None,
            "step_states": [{k: s.get(k) for k in ("index", "type", "status")} for s in sample.step_states or []],
        },
        "idle_empty_before": empty_before,
        "idle_with_waiting_runs": with_waiting,
        "idle_with_waiting_runs_after_vacuum": vacuumed,
        "idle_empty_after": empty_after,
        "difference_pct_core": comparison,
        "difference_total_pct_core": comparison["total_pct_core"]["difference"],
        "difference_after_vacuum_pct_core": comparison_vacuumed,
        "difference_after_vacuum_total_pct_core": comparison_vacuumed["total_pct_core"]["difference"],
        "log_table": stats,
        "plans_with_waiting_runs": plans,
        "plans_with_waiting_runs_after_vacuum": plans_vacuumed,
        "note": (
            "CPU of one idle worker process plus its own PostgreSQL backends, in % of one core; difference = "
            "with waiting runs minus the mean of the empty windows before and after. The target is read on the "
            "window right after the runs were parked (dead row versions of the burst still there); the window "
            "after VACUUM shows the waiting runs alone."
        ),
    }
    receiver.reset()
    queue_tables_truncate()
    return out


# --------------------------------------------------------------------------- 8. time triggers


def task_step(title: str) -> list[dict]:
    return [{"type": "create_task", "config": {"title": title + " {{ name }}"}}]


def date_reached_rule(fixture, entity, name: str, steps: list[dict] | None = None):
    return fixture.rule(
        entity,
        steps or task_step(name),
        name=name,
        trigger_type="date_reached",
        trigger_config={"field": "due", "offset_seconds": 0},
    )


def rebuilt(rule) -> bool:
    from automations.models import RuleSchedule

    return RuleSchedule.objects.filter(rule=rule, rebuilding=False).exists()


def _tt_schedule(ctx) -> dict:
    """(a) ``tt_schedule_records`` records with a future ``due``, then a ``date_reached`` rule on them: the time
    until an idle worker has computed every due time in the background (RuleSchedule.rebuilding off)."""
    import datetime as dt

    from django.utils import timezone

    from automations.models import DueTime
    from records.models import Record

    fixture, sizes, procs = ctx["fixture"], ctx["sizes"], ctx["procs"]
    n = sizes["tt_schedule_records"]
    entity = fixture.entity("schedule", date_field=True)
    started = time.monotonic()
    insert_records_sql(entity, n, due_from=timezone.now() + dt.timedelta(days=1), due_step_seconds=1)
    inserted_s = time.monotonic() - started
    (worker,) = procs.workers(1)
    try:
        wait_registered([worker])
        with worker_meter(ctx, [worker]) as meter:
            rule = date_reached_rule(fixture, entity, "due in a day")
            created = time.monotonic()
            wait_for(lambda: rebuilt(rule), timeout=600, interval=0.1, what="the due times to be scheduled")
            seconds = time.monotonic() - created
    finally:
        procs.stop([worker])
    scheduled = DueTime.objects.filter(rule=rule).count()
    # The rebuild's page query, for a page in the middle of the entity's records (the worker's own statement).
    middle = uuid.UUID("80000000-0000-4000-8000-000000000000")
    page_plan = explain_statements(
        lambda: list(Record.objects.filter(entity_id=entity.pk, id__gt=middle).order_by("id").only("id", "data")[:2000])
    )
    return {
        "records": n,
        "records_insert_seconds": rnd(inserted_s, 1),
        "due_times_scheduled": scheduled,
        "all_scheduled": scheduled == n,
        "seconds": rnd(seconds, 2),
        "records_per_s": rnd(n / seconds if seconds else None, 0),
        "worker": meter.summary(per=n),
        "rebuild_page_plan": page_plan,
        "rule_id": str(rule.pk),
    }


def _tt_due_burst(ctx, workers: int) -> dict:
    """(b) ``tt_due_records`` records due at the same instant, a ``date_reached`` rule with one step (``call_webhook``
    to the receiver by default: the engine's cheapest run, so the lag is the time machinery's and not an action's;
    ``--tt-due-action create_task`` for a receiver-free run), ``workers`` worker processes: every run once (by
    its log row and by its side effect), the lag from due time to start."""
    import datetime as dt

    from django.db import connection
    from django.utils import timezone

    from automations.models import AutomationLog, DueTime
    from records.models import Task

    fixture, sizes, procs, receiver = ctx["fixture"], ctx["sizes"], ctx["procs"], ctx["receiver"]
    n, lead = sizes["tt_due_records"], sizes["tt_due_lead_seconds"]
    action = ctx.get("tt_due_action", "call_webhook")
    entity = fixture.entity(f"due-burst-{workers}", date_field=True)
    if action == "create_task":
        steps = task_step("due now")
        with connection.cursor() as cursor:
            # Every burst starts from the same task table (create_task looks its run's task up, see the note).
            cursor.execute("TRUNCATE records_task")
    else:
        steps = [{"type": "call_webhook", "config": {"url": receiver.url, "method": "POST"}}]
    receiver.reset()
    worker_procs = procs.workers(workers)
    try:
        wait_registered(worker_procs)
        due_at = (timezone.now() + dt.timedelta(seconds=lead)).replace(microsecond=0)
        insert_records_sql(entity, n, due_from=due_at, due_step_seconds=0)
        rule = date_reached_rule(fixture, entity, "due now", steps)
        # Not done in time (a very busy machine): due times already past are not scheduled, by design; the
        # shortfall shows in due_times_scheduled and all_ran_once.
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: rebuilt(rule), timeout=lead, interval=0.1, what="the due times to be scheduled")
        scheduled = DueTime.objects.filter(rule=rule).count()
        scheduled_ahead_s = (due_at - timezone.now()).total_seconds()
        with worker_meter(ctx, worker_procs) as meter:
            finals = ("success", "error", "skipped")

            def done() -> bool:
                if DueTime.objects.filter(rule=rule).exists():
                    return False
                return AutomationLog.objects.filter(automation=rule, status__in=finals).count() >= scheduled

            wait_for(done, timeout=lead + max(120, n / 20), interval=0.2, what="the due runs to finish")
            wait_for(engine_idle, timeout=60, interval=0.2, what="the workers to go idle")
    finally:
        procs.stop(worker_procs)
    rows = list(
        AutomationLog.objects.filter(automation=rule).values_list(
            "record_id", "due_at", "created_at", "started_at", "finished_at", "status", "attempts", "worker_id"
        )
    )
    # Side effects: one task or one delivery (one webhook-id) per record.
    deliveries = None
    if action == "create_task":
        effects = [str(r) for r in Task.objects.filter(created_by_rule_id=rule.pk).values_list("record_id", flat=True)]
    else:
        hits = receiver.hits()
        receiver.reset()
        deliveries = len(hits)  # more than the runs: repeated deliveries under the same webhook-id
        effects = [record_id for record_id, _ in {(h[1], h[0]) for h in hits}]  # distinct (record, webhook-id)
    repeated = len(effects) - len(set(effects))
    start_lag = [(r[3] - r[1]).total_seconds() for r in rows if r[3] and r[1]]
    logged_lag = [(r[2] - r[1]).total_seconds() for r in rows if r[1]]
    finished = [r[4] for r in rows if r[4]]
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r[5]] = statuses.get(r[5], 0) + 1
    distinct_records = len({r[0] for r in rows})
    once = (
        scheduled == n
        and len(rows) == n
        and distinct_records == n
        and statuses.get("success") == n
        and all(r[6] == 1 for r in rows)
        and len(set(effects)) == n
        and repeated == 0
    )
    return {
        "workers": workers,
        "records": n,
        "due_times_scheduled": scheduled,
        "scheduled_seconds_before_due": rnd(scheduled_ahead_s, 1),
        "runs": len(rows),
        "distinct_records": distinct_records,
        "statuses": statuses,
        "attempts_over_1": sum(1 for r in rows if r[6] != 1),
        "action": action,
        "side_effects": len(effects),
        "records_with_two_side_effects": repeated,
        "deliveries": deliveries,
        "side_effects_distinct_records": len(set(effects)),
        "all_ran_once": once,
        "runs_per_worker": sorted(
            {w: sum(1 for r in rows if r[7] == w) for w in {r[7] for r in rows}}.values(), reverse=True
        ),
        "lag_due_to_logged_s": spread(logged_lag, 2),
        "lag_due_to_start_s": spread(start_lag, 2),
        "last_finished_after_due_s": rnd((max(finished) - rows[0][1]).total_seconds() if finished else None, 2),
        "workers_cpu": meter.summary(per=n),
    }


def _tt_idle_due_times(ctx, rule_id) -> dict:
    """(c) An idle worker's CPU with ``tt_idle_due_times`` future due times (DueTime rows inserted by SQL for
    an active ``date_reached`` rule, due from tomorrow on) against none, before and after."""
    from django.db import connection

    sizes, procs = ctx["sizes"], ctx["procs"]
    n, window = sizes["tt_idle_due_times"], sizes["idle_seconds"]
    settle = min(3.0, window / 2)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE automations_duetime")
    (worker,) = procs.workers(1)
    try:
        wait_registered([worker])
        time.sleep(settle)
        empty_before = idle_window(ctx, worker, window)
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO automations_duetime (rule_id, record_id, due_at) SELECT %s, gen_random_uuid(),"
                " now() + interval '1 day' + g * interval '100 milliseconds' FROM generate_series(1, %s) g",
                [rule_id, n],
            )
            cursor.execute("ANALYZE automations_duetime")
        inserted_s = time.monotonic() - started
        time.sleep(settle)
        loaded = idle_window(ctx, worker, window)
        plans = idle_plans()
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE automations_duetime")
        time.sleep(settle)
        empty_after = idle_window(ctx, worker, window)
    finally:
        procs.stop([worker])
    comparison = idle_comparison(empty_before, loaded, empty_after)
    return {
        "future_due_times": n,
        "insert_seconds": rnd(inserted_s, 1),
        "idle_seconds": window,
        "idle_empty_before": empty_before,
        "idle_with_due_times": loaded,
        "idle_empty_after": empty_after,
        "difference_pct_core": comparison,
        "difference_total_pct_core": comparison["total_pct_core"]["difference"],
        "plans_with_due_times": plans,
    }


def bench_time_triggers(ctx) -> dict:
    """(a) scheduling the due times of ``tt_schedule_records`` records in the background; (b) a burst of
    ``tt_due_records`` runs due at one instant with 1 and with 2 workers; (c) an idle worker with
    ``tt_idle_due_times`` future due times."""
    queue_tables_truncate()
    out: dict = {"schedule": _tt_schedule(ctx)}
    out["due_burst"] = {f"{w}_worker{'s' if w > 1 else ''}": _tt_due_burst(ctx, w) for w in (1, 2)}
    out["idle"] = _tt_idle_due_times(ctx, out["schedule"].pop("rule_id"))
    out["due_burst_all_ran_once"] = all(b["all_ran_once"] for b in out["due_burst"].values())
    out["note"] = (
        "(b) uses a call_webhook step by default (the cheapest run: ~1.7 ms of worker CPU, against ~6.7 ms for a "
        "create_task run, whose look-up of its run's task reads the whole task table, created_by_run_id having no "
        "index); with --tt-due-action create_task the task table is emptied before each burst. Every run is checked "
        "by its log row and by its side effect (delivery or task). Lags are "
        "due time -> run logged (fired) and due time -> run started (claimed by a worker). Idle CPU: one worker "
        "process plus its own PostgreSQL backends, in % of one core."
    )
    queue_tables_truncate()
    return out


# --------------------------------------------------------------------------- 9. take-over


def held_runs(worker_ids: list[str]) -> list[tuple[str, str]]:
    """(record id, worker id) of the runs these workers hold (running, claimed by them)."""
    from automations.models import AutomationLog, RunStatus

    return [
        (str(record_id), worker_id)
        for record_id, worker_id in AutomationLog.objects.filter(
            status=RunStatus.RUNNING, worker_id__in=worker_ids
        ).values_list("record_id", "worker_id")
    ]


def bench_takeover(ctx) -> dict:
    """``takeover_records`` records through the API at concurrency 16, one ``call_webhook`` rule, two workers
    (default settings: lease 120 s, dead after 15 s); ``kill -9`` of both once they hold runs, a few seconds
    in, and one worker started at once: how long the runs the dead workers held took to be delivered, and the
    worst delivery delay of all records. The receiver answers after ``takeover_receiver_delay_ms`` so that
    deliveries are in flight and each worker holds a batch when it dies; it answers at once after the kill."""
    fixture, sizes, procs, receiver = ctx["fixture"], ctx["sizes"], ctx["procs"], ctx["receiver"]
    n = sizes["takeover_records"]
    env = {key: str(value) for key, value in sizes["takeover_env"].items()}
    entity = fixture.entity("takeover")
    fixture.webhook_rule(entity, receiver.url)
    path = f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/"
    queue_tables_truncate()
    receiver.reset()
    first = procs.workers(2, **env)
    replacement: list[subprocess.Popen] = []
    results: list = []
    try:
        wait_registered(first)
        warm = drive_api(ctx["api_port"], path, fixture.token, total=8)
        if receiver.wait_count(len(warm), timeout=60) < len(warm):
            raise RuntimeError("workers did not deliver the warm-up webhooks")
        receiver.reset()
        receiver.delay(sizes["takeover_receiver_delay_ms"])
        load = threading.Thread(
            target=lambda: results.extend(drive_api(ctx["api_port"], path, fixture.token, total=n)), daemon=True
        )
        load_started = time.monotonic()
        load.start()
        time.sleep(sizes["takeover_kill_after_seconds"])
        ids = [w.worker_id for w in first]
        # Freeze both (SIGSTOP), read what they hold (their committed claims), and kill -9 them if that is at
        # least 10 runs (at least one after 5 s, anything after 10 s); else let them go on a moment and try
        # again. The held runs are what is measured, and the freeze is the moment they stopped working (the
        # kill follows within milliseconds).
        tried = time.monotonic()
        while True:
            for worker in first:
                os.kill(worker.pid, signal.SIGSTOP)
            killed = time.monotonic()
            held = held_runs(ids)
            waited = killed - tried
            if len(held) >= 10 or (held and waited >= 5) or waited >= 10:
                break
            for worker in first:
                os.kill(worker.pid, signal.SIGCONT)
            time.sleep(0.05)
        for worker in first:
            os.kill(worker.pid, signal.SIGKILL)
        receiver.delay(0)  # from now on the receiver answers at once: delays measure the take-over, not a backlog
        for worker in first:
            worker.wait(timeout=10)
        procs.stop(first)
        replacement = procs.workers(1, **env)
        restarted = time.monotonic()
        wait_registered(replacement)
        registered = time.monotonic()
        load.join(timeout=600)
        created = {r[3]: r for r in results if r[2] == 201 and r[3]}
        wanted = set(created) | {record for record, _ in held}

        def all_delivered() -> bool:
            return wanted <= {h[1] for h in receiver.hits()}

        with contextlib.suppress(TimeoutError):
            wait_for(all_delivered, timeout=max(120, n / 10), interval=0.25, what="every record delivered")
        wait_for(engine_idle, timeout=60, interval=0.2, what="the worker to go idle")
        hits = receiver.hits()
    finally:
        procs.stop(first + replacement)
        receiver.reset()
    first_arrival: dict[str, float] = {}
    after_kill: dict[str, float] = {}
    ids_per_record: dict[str, set] = {}
    per_id: dict[str, int] = {}
    for webhook_id, record_id, arrived in hits:
        first_arrival[record_id] = min(arrived, first_arrival.get(record_id, arrived))
        if arrived >= killed:
            after_kill[record_id] = min(arrived, after_kill.get(record_id, arrived))
        ids_per_record.setdefault(record_id, set()).add(webhook_id)
        per_id[webhook_id] = per_id.get(webhook_id, 0) + 1
    held_records = [record for record, _ in held]
    held_since_kill = [after_kill[r] - killed for r in held_records if r in after_kill]
    held_since_restart = [after_kill[r] - restarted for r in held_records if r in after_kill]
    delays = [first_arrival[rid] - created[rid][1] for rid in created if rid in first_arrival]
    missing = [rid for rid in created if rid not in first_arrival]
    out = {
        "records": n,
        "created": len(created),
        "worker_settings": env or "defaults (AUTOMATIONS_RUN_LEASE_SECONDS=120, WORKER_DEAD_AFTER_SECONDS=15)",
        "receiver_delay_ms_until_kill": sizes["takeover_receiver_delay_ms"],
        "killed_after_s": rnd(killed - load_started, 2),
        "held_by_worker": sorted((sum(1 for _, w in held if w == worker_id) for worker_id in ids), reverse=True),
        "delivered_before_kill": sum(1 for _, _, arrived in hits if arrived < killed),
        "held_runs": len(held),
        "held_runs_delivered_after_kill": len(held_since_kill),
        "new_worker_started_after_kill_s": rnd(restarted - killed, 2),
        "new_worker_registered_after_kill_s": rnd(registered - killed, 2),
        "held_delivery_since_kill_s": spread(held_since_kill, 2),
        "held_last_delivered_since_kill_s": rnd(max(held_since_kill) if held_since_kill else None, 2),
        "held_last_delivered_since_new_worker_s": rnd(max(held_since_restart) if held_since_restart else None, 2),
        "delivery_delay_all_records_s": spread(delays, 2),
        "worst_delivery_delay_s": rnd(max(delays) if delays else None, 2),
        "missing": len(missing),
        "records_with_two_webhook_ids": sum(1 for s in ids_per_record.values() if len(s) > 1),
        "repeated_deliveries_same_id": sum(c - 1 for c in per_id.values() if c > 1),
        "all_delivered": not missing and len(created) == n and all(r in after_kill for r in held_records),
    }
    last = out["held_last_delivered_since_new_worker_s"]
    out["held_within_20s_of_new_worker"] = last is not None and last <= 20
    out["note"] = (
        "held = runs in status running claimed by a killed worker, read right after the kill. Delivery times are "
        "arrivals at the receiver; a held run already delivered before the kill (its success not yet written) "
        "arrives again with the same webhook-id (counted in repeated_deliveries_same_id)."
    )
    queue_tables_truncate()
    return out


# --------------------------------------------------------------------------- report


def evaluate_targets(results: dict, quick: bool) -> list[dict]:
    def get(*path):
        value = results
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    values = {
        "write_ratio_20_vs_0_rules": get("write_path", "ratio"),
        "e2e_all_delivered_once": get("end_to_end", "all_delivered_once"),
        "e2e_throughput_per_s": get("end_to_end", "throughput_per_s"),
        "e2e_delivery_p50_ms": get("end_to_end", "delivery_p50_ms"),
        "e2e_delivery_p99_ms": get("end_to_end", "delivery_p99_ms"),
        "e2e_machine_cpu_ms_per_record": get("end_to_end", "cpu_ms_per_record", "machine_total"),
        "e2e_api_cpu_ms_per_record": get("end_to_end", "cpu_ms_per_record", "gunicorn"),
        "worker_cpu_ms_per_queued_run": get("worker_throughput", "1_process", "worker_cpu_ms_per_run"),
        "trickle_worker_cpu_ms_per_run": get("trickle", "1_process", "worker_cpu_ms_per_run"),
        "worker_1_process_ratio_to_bare_loop": get("worker_throughput", "ratio_1_process"),
        "worker_2_processes_ratio_per_process": get("worker_throughput", "ratio_2_processes_per_process"),
        "scale_rule_lookup_p99_ms": get("scale", "rule_lookup_ms", "p99"),
        "scale_logs_first_page_p99_ms": get("scale", "logs_first_page_p99_ms_all"),
        "memory_growth_mb": get("memory", "growth_mb"),
        "steps_cpu_ratio_3_vs_1": get("steps", "cpu_ratio_3_vs_1"),
        "delays_idle_cpu_diff_pct_core": get("delays", "difference_total_pct_core"),
        "tt_schedule_100k_seconds": get("time_triggers", "schedule", "seconds"),
        "tt_due_burst_all_ran_once": get("time_triggers", "due_burst_all_ran_once"),
        "tt_idle_1m_cpu_diff_pct_core": get("time_triggers", "idle", "difference_total_pct_core"),
        "takeover_all_delivered": get("takeover", "all_delivered"),
        "takeover_held_s_after_new_worker": get("takeover", "held_last_delivered_since_new_worker_s"),
    }
    rows = []
    for name, (op, target) in TARGETS.items():
        value = values[name]
        if value is None:
            status = "not measured"
        elif op == ">=":
            status = "pass" if value >= target else "miss"
        elif op == "<=":
            status = "pass" if value <= target else "miss"
        else:
            status = "pass" if value == target else "miss"
        rows.append({"target": name, "want": f"{op} {target}", "value": value, "status": status, "enforced": not quick})
    return rows


def print_table(summary: dict) -> None:
    print()
    print(f"{'target':42} {'want':>10} {'value':>12}  status")
    print("-" * 76)
    for row in summary["targets"]:
        flag = row["status"] + ("" if row["enforced"] else " (quick: not enforced)")
        print(f"{row['target']:42} {row['want']:>10} {str(row['value']):>12}  {flag}")
    for name, error in summary.get("errors", {}).items():
        print(f"PHASE FAILED: {name}: {error.splitlines()[-1] if error else ''}")


PHASES = {
    "write_path": bench_write_path,
    "end_to_end": bench_end_to_end,
    "worker_throughput": bench_worker_throughput,
    "trickle": bench_trickle,
    "scale": bench_scale,
    "memory": bench_memory,
    "steps": bench_steps,
    "delays": bench_delays,
    "time_triggers": bench_time_triggers,
    "takeover": bench_takeover,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, targets not enforced (CI smoke run)")
    parser.add_argument("--only", default="", help=f"comma-separated phases: {', '.join(PHASES)}")
    parser.add_argument(
        "--e2e-workers",
        type=int,
        default=int(os.environ.get("BENCH_E2E_WORKERS", "2")),
        help="automations_worker processes in the end-to-end phase (default 2: what `make run` starts on PostgreSQL)",
    )
    parser.add_argument(
        "--tt-due-action",
        choices=["call_webhook", "create_task"],
        default="call_webhook",
        help="the step of the time_triggers burst (default call_webhook; create_task needs no receiver)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--output", default=str(RESULTS / "latest.json"))
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    phases = [p.strip() for p in args.only.split(",") if p.strip()] or list(PHASES)
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")

    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if not database_url.startswith(("postgres://", "postgresql://")):
        parser.error("the benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    name = urlsplit(database_url).path.lstrip("/")
    scale_url = database_url_with_name(database_url, f"{name}_scale" + ("_quick" if args.quick else ""))
    started = time.monotonic()
    ensure_database(database_url)
    ensure_database(scale_url)
    setup_django(database_url, scale_url)
    truncate_engine_tables()

    procs = Processes(database_url)
    summary: dict = {
        "meta": {
            "command": " ".join(["bench/run.py", *sys.argv[1:]]),
            "quick": args.quick,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "database": urlsplit(database_url)._replace(netloc=urlsplit(database_url).hostname or "").geturl(),
            "sizes": sizes,
            "concurrency": CONCURRENCY,
            "gunicorn_workers": 2,
            "e2e_worker_processes": args.e2e_workers,
            "tt_due_action": args.tt_due_action,
        },
        "errors": {},
    }
    try:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            summary["meta"]["postgresql"] = cursor.fetchone()[0]
        receiver_proc, receiver_port = procs.receiver()
        gunicorn_proc, api_port = procs.gunicorn()
        ctx = {
            "fixture": Fixture(),
            "sizes": sizes,
            "procs": procs,
            "receiver": Receiver(receiver_port),
            "api_port": api_port,
            "database_url": database_url,
            "e2e_workers": args.e2e_workers,
            "tt_due_action": args.tt_due_action,
            "gunicorn_pid": gunicorn_proc.pid,
            "receiver_pid": receiver_proc.pid,
        }
        for phase in phases:
            log(f"phase {phase} ...")
            phase_started = time.monotonic()
            # Other processes on the machine skew every figure: the load before each phase says how much.
            load_before = [round(x, 2) for x in os.getloadavg()]
            try:
                summary[phase] = PHASES[phase](ctx)
                summary[phase]["phase_seconds"] = rnd(time.monotonic() - phase_started, 1)
                summary[phase]["loadavg_before"] = load_before
            except Exception:
                summary["errors"][phase] = traceback.format_exc()
                log(f"phase {phase} FAILED:\n{summary['errors'][phase]}")
    finally:
        procs.stop_all()
    summary["targets"] = evaluate_targets(summary, args.quick)
    summary["meta"]["duration_s"] = rnd(time.monotonic() - started, 1)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps(summary, indent=2, default=str))
    print_table(summary)
    missed = [r for r in summary["targets"] if r["status"] == "miss"]
    if summary["errors"]:
        return 1
    if args.strict and missed and not args.quick:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
