"""The background worker behind ``manage.py automations_worker``.

On the default backend (django-tasks-db) it claims up to ``AUTOMATIONS_WORKER_BATCH_SIZE`` ready tasks
at a time (``FOR UPDATE SKIP LOCKED``, so any number of workers share the queue) and runs the engine's
own tasks together as one batch (``executor.process_batch``), any other task through django-tasks-db;
every ``AUTOMATIONS_RECOVERY_INTERVAL`` seconds it resumes stranded runs (``executor.recover``). On
PostgreSQL it sleeps on ``LISTEN`` (a trigger NOTIFYs on every enqueued task, at commit), so a new
task starts within milliseconds instead of a poll interval, and after a batch it looks at the queue
again only if a notification arrived meanwhile; elsewhere it polls.

On PostgreSQL the worker's own transactions commit asynchronously (``synchronous_commit = off``, unless
``AUTOMATIONS_WORKER_SYNCHRONOUS_COMMIT``): a batch costs three commits, and waiting for a WAL flush at
each one was once the largest part of a run's time. Nothing can be lost by it. The record, its event
and its task are written by the web process, synchronously. Everything the worker writes can be derived
again: if PostgreSQL itself crashes, it loses at most the last few hundred milliseconds of the worker's
commits, always a suffix, and the state before them is consistent (a task READY again, an event
unprocessed, or a run RUNNING whose lease expires). Recovery then runs them again with the same run id
(``executor.run_id_for``), so the same ``webhook-id``: at least once, as with a killed worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.backends.signals import connection_created
from django.db.utils import DatabaseError, InterfaceError, OperationalError
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult, get_date_max
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from . import executor, retention, tasks
from .models import RunStatus

logger = logging.getLogger("automations")

NOTIFY_CHANNEL = "automations_tasks"
ENGINE_TASKS = frozenset({tasks.process_events.module_path, tasks.run_automation.module_path})
PRUNE_INTERVAL = 3600.0  # seconds between housekeeping passes (automations.retention)


def _arguments(task_result: DBTaskResult) -> dict:
    """The task's keyword arguments (positional ones mapped onto the engine tasks' single parameter)."""
    args_kwargs = task_result.args_kwargs or {}
    kwargs = dict(args_kwargs.get("kwargs") or {})
    args = args_kwargs.get("args") or []
    if args:
        name = "event_ids" if task_result.task_path == tasks.process_events.module_path else "log_id"
        kwargs.setdefault(name, args[0])
    return kwargs


def _close_tasks(task_results: list[DBTaskResult], value_of) -> None:
    """Mark tasks successful with their return values, in one statement (PostgreSQL: a fixed
    ``UPDATE ... FROM unnest(...)``; elsewhere one ORM update per distinct value)."""
    if not task_results:
        return
    now = timezone.now()
    if connection.vendor == "postgresql":
        meta = DBTaskResult._meta
        quote = connection.ops.quote_name
        sql = f"""
            UPDATE {quote(meta.db_table)} AS t
            SET status = %s, return_value = v.value::jsonb, finished_at = %s, exception_class_path = '', traceback = ''
            FROM unnest(%s::uuid[], %s::text[]) AS v(id, value)
            WHERE t.id = v.id AND t.status = %s
        """  # noqa: S608 (identifiers from the model's metadata)
        values = [value_of(t) for t in task_results]
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                [
                    TaskResultStatus.SUCCESSFUL,
                    now,
                    [uuid.UUID(str(t.id)) for t in task_results],
                    [executor.json_or_none(v) for v in values],
                    TaskResultStatus.RUNNING,
                ],
            )
        return
    by_value: dict = {}
    for task_result in task_results:
        by_value.setdefault(value_of(task_result), []).append(task_result.id)
    for value, ids in by_value.items():
        DBTaskResult.objects.filter(id__in=ids, status=TaskResultStatus.RUNNING).update(
            status=TaskResultStatus.SUCCESSFUL,
            return_value=value,
            finished_at=now,
            exception_class_path="",
            traceback="",
        )


class Waker:
    """Waits for new work: PostgreSQL LISTEN/NOTIFY when available, else a plain sleep."""

    def __init__(self) -> None:
        self.conn = None
        self.enabled = connection.vendor == "postgresql"
        self._retry_at = 0.0

    def _connect(self) -> None:
        import psycopg

        db = connection.settings_dict
        self.conn = psycopg.connect(
            dbname=db["NAME"],
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=db.get("PORT") or None,
            autocommit=True,
            connect_timeout=5,
        )
        self.conn.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def wait(self, timeout: float) -> None:
        if not self.enabled or time.monotonic() < self._retry_at:
            time.sleep(timeout)
            return
        try:
            if self.conn is None or self.conn.closed:
                self._connect()
            for _ in self.conn.notifies(timeout=timeout, stop_after=1):
                break
        except Exception as exc:  # the listener is an optimisation: fall back to polling for a while
            logger.warning("LISTEN connection failed (%s); polling for 5 s", exc)
            self.close()
            self._retry_at = time.monotonic() + 5
            time.sleep(timeout)

    @property
    def listening(self) -> bool:
        return self.enabled and self.conn is not None and not self.conn.closed

    def drain(self) -> bool:
        """Consume the notifications received so far without waiting; True if there was any. Called
        just before a claim: a task committed after that claim's snapshot notifies afterwards, so
        "nothing since" proves the claim saw everything (no lost wake-up)."""
        if not self.listening:
            return True
        received = False
        try:
            for _ in self.conn.notifies(timeout=0):
                received = True
        except Exception as exc:
            logger.warning("LISTEN connection failed (%s); polling for 5 s", exc)
            self.close()
            self._retry_at = time.monotonic() + 5
            return True
        return received

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self.conn.close()
        self.conn = None


def _set_session_options(sender, connection, **kwargs) -> None:
    if connection.vendor == "postgresql" and not settings.AUTOMATIONS_WORKER_SYNCHRONOUS_COMMIT:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")


def use_worker_session_options() -> None:
    """Asynchronous commit on this process's database connections (see the module docstring)."""
    connection_created.connect(_set_session_options, dispatch_uid="automations_worker_session")
    if connection.connection is not None:
        _set_session_options(None, connection)


class AutomationsWorker(Worker):
    """django-tasks-db's worker with LISTEN/NOTIFY wake-ups, reconnects, and stranded-run recovery."""

    def __init__(self, *, recovery_interval: float | None, **kwargs):
        super().__init__(**kwargs)
        self.recovery_interval = recovery_interval
        self.next_recovery = 0.0
        self.next_prune = 0.0
        self.waker = Waker()

    def _ready_tasks(self):
        """This worker's ready tasks (its backend and queues), as django-tasks-db selects them."""
        ready = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if not self.process_all_queues:
            ready = ready.filter(queue_name__in=self.queue_names)
        return ready

    def claim_tasks(self, limit: int) -> list[DBTaskResult]:
        """Up to ``limit`` ready tasks, claimed for this worker: one statement on PostgreSQL; elsewhere
        django-tasks-db's own claim, one task at a time."""
        if connection.vendor == "postgresql":
            return self._claim_tasks_postgresql(limit)
        ready = self._ready_tasks()
        with exclusive_transaction(ready.db):
            try:
                task_result = ready.get_locked()
            except OperationalError as exc:
                if is_locked_database_exception(exc):
                    return []
                raise
            if task_result is None:
                return []
            task_result.claim(self.worker_id)
            return [task_result]

    def _claim_tasks_postgresql(self, limit: int) -> list[DBTaskResult]:
        """django-tasks-db's claim (lock the next ready tasks, mark them RUNNING with our worker id) as one
        ``UPDATE ... RETURNING`` statement: one round trip instead of four (BEGIN, SELECT ... FOR UPDATE
        SKIP LOCKED, UPDATE, COMMIT) per task, in the same order (priority, run_after, enqueued_at)."""
        meta = DBTaskResult._meta
        table = connection.ops.quote_name(meta.db_table)
        columns = ", ".join(connection.ops.quote_name(f.column) for f in meta.concrete_fields)
        now = timezone.now()
        queues = "" if self.process_all_queues else "AND queue_name = ANY(%(queues)s)"
        sql = f"""
            UPDATE {table} SET status = 'RUNNING', started_at = %(now)s, worker_ids = worker_ids || %(worker)s::jsonb
            WHERE id IN (
                SELECT id FROM {table}
                WHERE status = 'READY' AND backend_name = %(backend)s {queues}
                  AND (run_after = %(never)s OR run_after <= %(now)s)
                ORDER BY priority DESC, run_after ASC, enqueued_at ASC
                LIMIT %(limit)s FOR UPDATE SKIP LOCKED
            )
            RETURNING {columns}
        """  # noqa: S608 (identifiers from the model's metadata)
        params = {
            "now": now,
            "worker": json.dumps([self.worker_id]),
            "backend": self.backend_name,
            "never": get_date_max(),
            "queues": list(self.queue_names),
            "limit": limit,
        }
        claimed = list(DBTaskResult.objects.raw(sql, params))
        claimed.sort(key=lambda t: (-t.priority, t.run_after, t.enqueued_at))
        return claimed

    def run_tasks(self, task_results: list[DBTaskResult]) -> None:
        """Run claimed tasks: the engine's own (``process_events``, ``run_automation``) together as one
        batch (``executor.process_batch``: one matching transaction, successes written in bulk, the task
        rows closed in one UPDATE); any other task through django-tasks-db's ``run_task``."""
        engine = [t for t in task_results if t.task_path in ENGINE_TASKS]
        for task_result in task_results:
            if task_result.task_path not in ENGINE_TASKS:
                self.run_task(task_result)
        if engine:
            self._run_engine_tasks(engine)

    def _run_engine_tasks(self, task_results: list[DBTaskResult]) -> None:
        arguments = {t.id: _arguments(t) for t in task_results}
        event_ids: list[str] = []
        log_ids: list[str] = []
        for task_result in task_results:
            if task_result.task_path == tasks.process_events.module_path:
                event_ids.extend(str(x) for x in arguments[task_result.id].get("event_ids") or [])
            else:
                log_ids.append(str(arguments[task_result.id].get("log_id")))
        open_tasks = {t.id: t for t in task_results}

        def close_event_tasks(logs) -> None:
            """In the matching transaction: the process_events tasks are done once their runs are
            logged (the ledger carries them from here), so they close in the same commit."""
            started: dict[str, int] = {}
            for log in logs:
                if log.status == RunStatus.RUNNING:
                    started[str(log.event_id)] = started.get(str(log.event_id), 0) + 1
            done = [t for t in open_tasks.values() if t.task_path == tasks.process_events.module_path]
            _close_tasks(done, lambda t: sum(started.get(str(x), 0) for x in arguments[t.id].get("event_ids") or []))
            for task_result in done:
                open_tasks.pop(task_result.id, None)

        try:
            runs = executor.process_batch(
                event_ids, log_ids, keep_going=lambda: self.running, on_matched=close_event_tasks
            )
        except (OperationalError, InterfaceError):
            raise  # the database is gone: the loop reconnects; recovery redoes what this batch left
        except Exception as exc:  # a bug: each open task is marked failed with the traceback, as run_task does
            logger.exception("batch of %d engine task(s) failed", len(task_results))
            for task_result in open_tasks.values():
                task_result.set_failed(exc)
            return
        finally:
            self._run_tasks += len(task_results)
        status_per_log = {str(log.pk): log.status for log, _ in runs}
        _close_tasks(
            list(open_tasks.values()),
            lambda t: (
                status_per_log.get(str(arguments[t.id].get("log_id")))
                if t.task_path == tasks.run_automation.module_path
                else 0
            ),
        )

    def maybe_recover(self, force: bool = False) -> None:
        if self.recovery_interval is None:
            return
        now = time.monotonic()
        if force or now >= self.next_recovery:
            self.next_recovery = now + self.recovery_interval
            # Recovery executes runs: a SIGTERM now must wait for them like for a task.
            self.running_task = True
            try:
                executor.recover()
                if now >= self.next_prune:
                    self.next_prune = now + PRUNE_INTERVAL
                    retention.prune()
            finally:
                self.running_task = False

    def _database_down(self, exc: Exception, backoff: float) -> float:
        """The database went away (restart, failover, killed connection): reconnect with backoff. What
        was in hand is not lost: its task stays claimed, and its event or run is picked up again by
        recovery (unprocessed event, or lease expiry)."""
        logger.warning("database unavailable (%s); retrying in %.1f s", exc, backoff)
        with contextlib.suppress(Exception):
            connection.close()
        self.waker.close()
        time.sleep(backoff)
        return min(backoff * 2, 10)

    def run(self) -> None:
        logger.info("automations worker %s started (queues=%s)", self.worker_id, ",".join(self.queue_names))
        use_worker_session_options()
        backoff = 0.5
        idle = True
        while self.running:
            try:
                if idle:
                    # After a wait (not between back-to-back tasks: that would cost a health-check query
                    # per task) drop an expired or broken connection.
                    close_old_connections()
                self.maybe_recover()
                # From the claim to the end of the task a SIGTERM only asks to stop: never leave a
                # claimed task unstarted.
                self.running_task = True
                try:
                    limit = settings.AUTOMATIONS_WORKER_BATCH_SIZE
                    if self.max_tasks is not None:
                        limit = max(1, min(limit, self.max_tasks - self._run_tasks))
                    self.waker.drain()
                    task_results = self.claim_tasks(limit)
                    if task_results:
                        self.run_tasks(task_results)
                finally:
                    self.running_task = False
                backoff = 0.5
            except (OperationalError, InterfaceError, DatabaseError) as exc:
                backoff = self._database_down(exc, backoff)
                idle = True
                continue
            if task_results:
                idle = False
                if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
                    break
                if len(task_results) < limit and self.running and not self.batch and not self.waker.drain():
                    # The claim took everything ready and nothing was enqueued since: sleep until the next
                    # NOTIFY instead of paying a claim that finds nothing.
                    self.waker.wait(self.interval)
                continue
            idle = True
            if self.batch:
                self.maybe_recover(force=True)
                if not self._ready_tasks().exists():
                    break
                continue
            if self.running:
                self.waker.wait(self.interval)
        self.waker.close()
        logger.info("automations worker %s stopped at %s", self.worker_id, timezone.now().isoformat())
