"""The background worker behind ``manage.py automations_worker``.

On the default backend (django-tasks-db) it takes ready tasks from the database one at a time
(``SELECT ... FOR UPDATE SKIP LOCKED``, so any number of workers share the queue), runs them, and
every ``AUTOMATIONS_RECOVERY_INTERVAL`` seconds resumes stranded runs (``executor.recover``). On
PostgreSQL it sleeps on ``LISTEN`` (a trigger NOTIFYs on every enqueued task, at commit), so a new
task starts within milliseconds instead of a poll interval; elsewhere it polls.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.utils import DatabaseError, InterfaceError, OperationalError
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from . import executor

logger = logging.getLogger("automations")

NOTIFY_CHANNEL = "automations_tasks"


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

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: S110 (closing a broken connection)
                pass
        self.conn = None


class AutomationsWorker(Worker):
    """django-tasks-db's worker with LISTEN/NOTIFY wake-ups, reconnects, and stranded-run recovery."""

    def __init__(self, *, recovery_interval: float | None, **kwargs):
        super().__init__(**kwargs)
        self.recovery_interval = recovery_interval
        self.next_recovery = 0.0
        self.waker = Waker()

    def claim_task(self) -> DBTaskResult | None:
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if not self.process_all_queues:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        with exclusive_transaction(tasks.db):
            try:
                task_result = tasks.get_locked()
                if task_result is not None:
                    task_result.claim(self.worker_id)
                return task_result
            except OperationalError as exc:
                if is_locked_database_exception(exc):
                    return None
                raise

    def maybe_recover(self, force: bool = False) -> None:
        if self.recovery_interval is None:
            return
        now = time.monotonic()
        if force or now >= self.next_recovery:
            self.next_recovery = now + self.recovery_interval
            executor.recover()

    def run(self) -> None:
        logger.info("automations worker %s started (queues=%s)", self.worker_id, ",".join(self.queue_names))
        backoff = 0.5
        while self.running:
            try:
                close_old_connections()
                self.maybe_recover()
                task_result = self.claim_task()
                backoff = 0.5
            except (OperationalError, InterfaceError, DatabaseError) as exc:
                # The database went away (restart, failover, killed connection): reconnect with backoff.
                logger.warning("database unavailable (%s); retrying in %.1f s", exc, backoff)
                connection.close()
                time.sleep(backoff)
                backoff = min(backoff * 2, 10)
                continue
            if task_result is not None:
                self.run_task(task_result)
                if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
                    break
                continue
            if self.batch:
                self.maybe_recover(force=True)
                if self.claim_task() is None:
                    break
                continue
            if self.running:
                self.waker.wait(self.interval)
        self.waker.close()
        logger.info("automations worker %s stopped at %s", self.worker_id, timezone.now().isoformat())


def default_worker_options() -> dict:
    return {
        "interval": settings.AUTOMATIONS_WORKER_POLL_INTERVAL,
        "recovery_interval": settings.AUTOMATIONS_RECOVERY_INTERVAL,
    }
