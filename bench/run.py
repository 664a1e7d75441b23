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
4. ``scale``: 100k records, 10k rules over 1k workspaces, 1M log rows (built once with INSERT ... SELECT
   generate_series in the database ``<name>_scale`` and reused): p99 of the worker's rule lookup for
   one event and of the first page of a rule's logs, with their EXPLAIN plans.
5. ``memory``: resident size of one worker after 1,000 and after 20,000 runs.

``--quick`` shrinks every size (CI smoke run, about a minute); targets are then reported but not enforced.
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
    "scale_workspaces": 1000,
    "scale_records_per_workspace": 100,
    "scale_rules_per_workspace": 10,
    "scale_logs": 1_000_000,
    "scale_samples": 1000,
    "memory_first": 1000,
    "memory_total": 20000,
}
QUICK = {
    "write_seconds": 2.0,
    "write_rounds": 1,
    "e2e_records": 200,
    "worker_runs": 300,
    "scale_workspaces": 50,
    "scale_records_per_workspace": 20,
    "scale_rules_per_workspace": 10,
    "scale_logs": 20_000,
    "scale_samples": 200,
    "memory_first": 200,
    "memory_total": 1000,
}
CONCURRENCY = 16
# The ports the bench may listen on (receiver, gunicorn), on 127.0.0.1 only.
PORT_RANGE = (8400, 8499)
TARGETS = {
    "write_ratio_20_vs_0_rules": (">=", 0.8),
    "e2e_all_delivered_once": ("==", True),
    "e2e_throughput_per_s": (">=", 150.0),
    "e2e_delivery_p50_ms": ("<=", 50.0),
    "e2e_delivery_p99_ms": ("<=", 500.0),
    "worker_1_process_ratio_to_bare_loop": (">=", 0.5),
    "worker_2_processes_ratio_per_process": (">=", 0.5),
    "scale_rule_lookup_p99_ms": ("<=", 5.0),
    "scale_logs_first_page_p99_ms": ("<=", 50.0),
    "memory_growth_mb": ("<=", 20.0),
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

    def entity(self, name: str):
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
            ],
        )

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
        return [
            self._start(
                [sys.executable, "manage.py", "automations_worker", "--worker-id", f"bench-{i}-{time.time():.0f}"],
                **env,
            )
            for i in range(count)
        ]

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


def bench_end_to_end(ctx) -> dict:
    fixture, sizes, procs, receiver = ctx["fixture"], ctx["sizes"], ctx["procs"], ctx["receiver"]
    n = sizes["e2e_records"]
    workers = ctx["e2e_workers"]
    entity = fixture.entity("e2e")
    fixture.webhook_rule(entity, receiver.url)
    path = f"/api/v1/workspaces/{entity.workspace_id}/entities/{entity.id}/records/"
    queue_tables_truncate()
    receiver.reset()
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
    arrivals: dict[str, float] = {}
    ids_seen: dict[str, int] = {}
    for webhook_id, record_id, arrived in hits:
        ids_seen[webhook_id] = ids_seen.get(webhook_id, 0) + 1
        if record_id in created:
            arrivals.setdefault(record_id, arrived)
    duplicates = sum(c - 1 for c in ids_seen.values() if c > 1)
    latencies = [(arrivals[rid] - created[rid][1]) * 1000 for rid in arrivals]
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
        "worker_1_process_ratio_to_bare_loop": get("worker_throughput", "ratio_1_process"),
        "worker_2_processes_ratio_per_process": get("worker_throughput", "ratio_2_processes_per_process"),
        "scale_rule_lookup_p99_ms": get("scale", "rule_lookup_ms", "p99"),
        "scale_logs_first_page_p99_ms": get("scale", "logs_first_page_p99_ms_all"),
        "memory_growth_mb": get("memory", "growth_mb"),
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
    "scale": bench_scale,
    "memory": bench_memory,
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
            "e2e_workers": args.e2e_workers,
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
