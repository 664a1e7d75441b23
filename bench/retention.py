"""Run-log retention on a large table, PostgreSQL: does pruning move the worker's delivery latency?

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/wtc_retention_bench .venv/bin/python bench/retention.py

Builds a run log of ``--rows`` expired finished runs (default 1,000,000, over 100 rules, 100 to 190 days
old, inserted with ``INSERT … SELECT generate_series``) plus ``--recent`` runs inside the retention period,
then runs one ``automations_worker`` (the ``make run`` setup, one process) against a steady trickle of
records (``--rate`` per second) whose rule calls a local webhook receiver, in three phases:

1. ``before``: retention off (``AUTOMATIONS_LOG_RETENTION_DAYS=0``), ``--baseline-seconds`` long;
2. ``pruning``: retention at 90 days; the worker's upkeep starts deleting the expired runs at once (in its
   background thread); the phase lasts until the worker logs that it finished;
3. ``after``: retention off again, on the pruned table (a control for the machine's drift).

Delivery latency is the metric's: the event's creation to the run's finish (from the database). Prints one
JSON object: table sizes, rows deleted and their rate, and latency p50/p90/p99/max per phase.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/wtc_retention_bench"


def log(message: str) -> None:
    print(f"[retention bench] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 2)


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(scheme="postgresql", path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


class Receiver:
    """Answers 200 to every POST, at once."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def build_table(rows: int, recent: int) -> dict:
    """Rules, a trickle rule, and the run log (expired + recent rows), in the database."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from automations.models import AutomationLog, AutomationRule
    from workspaces.models import Entity, Workspace

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE automations_automationlog, automations_automationevent, automations_automationrule, "
            "automations_workerprocess, records_record CASCADE"
        )
    user, _ = get_user_model().objects.get_or_create(username="bench-retention")
    workspace, _ = Workspace.objects.get_or_create(name="Retention bench", defaults={"created_by": user})
    entity, _ = Entity.objects.get_or_create(
        workspace=workspace, slug="leads", defaults={"name": "Leads", "fields": [{"name": "name", "type": "text"}]}
    )
    rules = AutomationRule.objects.bulk_create(
        AutomationRule(
            workspace=workspace,
            entity=entity,
            name=f"Old rule {i}",
            trigger_type="record_updated",  # never fires during the bench: the trickle only creates
            action_type="create_task",
            action_config={"title": "x"},
        )
        for i in range(100)
    )
    log_table = AutomationLog._meta.db_table
    rule_table = AutomationRule._meta.db_table
    started = time.monotonic()
    with connection.cursor() as cursor:
        # Table names come from the models' metadata, never from input.
        cursor.execute(f"UPDATE {rule_table} SET created_at = now() - interval '400 days'")  # noqa: S608
        rule_ids = [str(r.pk) for r in rules]
        insert = f"""
            INSERT INTO {log_table} (
                id, automation_id, workspace_id, entity_id, record_snapshot, event_type, trigger_type,
                action_type, status, result, error, attempts, worker_id, started_at, finished_at, duration_ms,
                executed_at, is_test, chain, chain_depth, created_at)
            SELECT gen_random_uuid(), (%s::uuid[])[1 + g %% 100], %s, %s, '{{}}'::jsonb, 'created',
                   'record_updated', 'create_task', CASE WHEN g %% 10 = 0 THEN 'error' ELSE 'success' END,
                   '{{"task_id": "x"}}'::jsonb, '', 1, '', t, t + interval '1 second', 40, t, false, '[]'::jsonb,
                   0, t
            FROM (SELECT g, now() - %s::interval - (g %% %s) * interval '1 second' AS t
                  FROM generate_series(1, %s) AS g) AS s
        """  # noqa: S608
        # Expired: 100 to 190 days old. Recent: 1 to 31 days old (kept).
        cursor.execute(insert, [rule_ids, str(workspace.pk), str(entity.pk), "100 days", 90 * 86400, rows])
        cursor.execute(insert, [rule_ids, str(workspace.pk), str(entity.pk), "1 day", 30 * 86400, recent])
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {log_table}")
        cursor.execute(f"SELECT pg_total_relation_size('{log_table}')")
        size = cursor.fetchone()[0]
    log(f"run log built: {rows:,} expired + {recent:,} recent rows in {time.monotonic() - started:.0f} s")
    return {"workspace": workspace, "entity": entity, "user": user, "table_mb": round(size / 2**20, 1)}


def trickle_rule(entity, url: str):
    from automations.models import AutomationRule

    return AutomationRule.objects.create(
        workspace=entity.workspace,
        entity=entity,
        name="Trickle",
        trigger_type="record_created",
        action_type="call_webhook",
        action_config={"url": url, "method": "POST"},
    )


class Worker:
    """One ``automations_worker`` subprocess; its output is kept to find the retention line."""

    def __init__(self, database_url: str, retention_days: int, path: Path) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "AUTOMATIONS_LOG_RETENTION_DAYS": str(retention_days),
            "AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE": "true",
            "AUTOMATIONS_LOG_LEVEL": "INFO",
            "DOTENV_FILE": "",
            "PYTHONUNBUFFERED": "1",
        }
        self.path = path
        self.out = open(path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "automations_worker", "-v", "1"],
            cwd=ROOT,
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.path.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.out.close()


def wait_registered(timeout: float = 30) -> None:
    from automations.models import WorkerProcess

    deadline = time.monotonic() + timeout
    while not WorkerProcess.objects.filter(stopped_at__isnull=True).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not register")
        time.sleep(0.1)


def run_phase(name: str, *, entity, rule, rate: float, until, database_url: str, retention_days: int, tmp: Path):
    """Start a worker, write ``rate`` records per second until ``until(worker, elapsed)`` says stop, drain,
    and return the phase's latencies (event created -> run finished) in ms."""
    from django.db import connection

    from automations.models import WorkerProcess
    from records import services

    WorkerProcess.objects.all().delete()
    worker = Worker(database_url, retention_days, tmp / f"worker-{name}.log")
    wait_registered()
    started_at = time.monotonic()
    written = 0
    first_record_at = None
    try:
        while True:
            elapsed = time.monotonic() - started_at
            if until(worker, elapsed):
                break
            record = services.record_create(entity=entity, data={"name": f"{name}-{written}"})
            first_record_at = first_record_at or record.created_at
            written += 1
            next_at = started_at + written / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        seconds = time.monotonic() - started_at
        deadline = time.monotonic() + 60
        with connection.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT count(*) FROM automations_automationlog WHERE automation_id = %s AND status = 'success' "
                    "AND record_snapshot->'data'->>'name' LIKE %s",
                    [str(rule.pk), f"{name}-%"],
                )
                if cursor.fetchone()[0] >= written:
                    break
                time.sleep(0.2)
            cursor.execute(
                """
                SELECT extract(epoch FROM (l.finished_at - e.created_at)) * 1000
                FROM automations_automationlog l JOIN automations_automationevent e ON e.id = l.event_id
                WHERE l.automation_id = %s AND l.status = 'success' AND l.record_snapshot->'data'->>'name' LIKE %s
                """,
                [str(rule.pk), f"{name}-%"],
            )
            latencies = [float(row[0]) for row in cursor.fetchall()]
    finally:
        worker.stop()
    output = worker.output()
    return {
        "records": written,
        "delivered": len(latencies),
        "seconds": round(seconds, 1),
        "latency_ms": {
            "p50": pct(latencies, 50),
            "p90": pct(latencies, 90),
            "p99": pct(latencies, 99),
            "max": round(max(latencies), 2) if latencies else None,
        },
    }, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="expired run logs to build")
    parser.add_argument("--recent", type=int, default=100_000, help="run logs inside the retention period")
    parser.add_argument("--rate", type=float, default=20.0, help="records per second during each phase")
    parser.add_argument("--baseline-seconds", type=float, default=60.0)
    parser.add_argument("--max-prune-seconds", type=float, default=900.0)
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if not database_url.startswith("postgres"):
        print("bench/retention.py needs PostgreSQL (DATABASE_URL=postgres://…)", file=sys.stderr)
        return 2
    ensure_database(database_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ["DOTENV_FILE"] = ""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE"] = "true"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    fixture = build_table(args.rows, args.recent)
    receiver = Receiver()
    rule = trickle_rule(fixture["entity"], receiver.url)
    tmp = ROOT / "bench" / "results"
    tmp.mkdir(parents=True, exist_ok=True)

    def count_logs() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM automations_automationlog")
            return cursor.fetchone()[0]

    rows_before = count_logs()
    common = {"entity": fixture["entity"], "rule": rule, "rate": args.rate, "database_url": database_url, "tmp": tmp}
    log("phase 'before': retention off")
    before, _ = run_phase("before", retention_days=0, until=lambda w, t: t >= args.baseline_seconds, **common)
    log(f"before: {before}")

    done = re.compile(r"retention: (\d+) run log\(s\) deleted in ([\d.]+) s")
    log("phase 'pruning': retention 90 days, the worker prunes in the background")
    pruning, output = run_phase(
        "pruning",
        retention_days=90,
        until=lambda w, t: bool(done.search(w.output())) or t >= args.max_prune_seconds,
        **common,
    )
    match = done.search(output)
    prune = {
        "finished": bool(match),
        "rows_deleted": int(match.group(1)) if match else None,
        "seconds": float(match.group(2)) if match else None,
    }
    if match and prune["seconds"]:
        prune["rows_per_second"] = round(prune["rows_deleted"] / prune["seconds"])
    log(f"pruning: {pruning} {prune}")

    log("phase 'after': retention off, pruned table")
    after, _ = run_phase("after", retention_days=0, until=lambda w, t: t >= args.baseline_seconds, **common)
    log(f"after: {after}")
    rows_after = count_logs()

    baseline_p99 = max(before["latency_ms"]["p99"] or 0, after["latency_ms"]["p99"] or 0)
    summary = {
        "bench": "retention",
        "database": urlsplit(database_url)._replace(netloc=urlsplit(database_url).hostname or "").geturl(),
        "run_log_rows": {"before": rows_before, "after": rows_after, "expired_built": args.rows},
        "table_mb_before": fixture["table_mb"],
        "trickle_records_per_second": args.rate,
        "prune": prune,
        "phases": {"before": before, "pruning": pruning, "after": after},
        "p99_pruning_vs_baseline": round((pruning["latency_ms"]["p99"] or 0) / baseline_p99, 2)
        if baseline_p99
        else None,
    }
    print(json.dumps(summary, indent=2))
    (tmp / "retention.json").write_text(json.dumps(summary, indent=2))
    return 0 if prune["finished"] else 1


if __name__ == "__main__":
    sys.exit(main())
