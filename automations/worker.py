"""The process behind ``manage.py automations_worker``.

Embedded queue (``TASKS_BACKEND=database``): the engine's tables are the queue. The loop takes waiting
events in batches (``tasks.handle_events``: ``FOR UPDATE SKIP LOCKED``, so any number of workers share
them), claims runs whose due time has come (retries, throttled runs), takes over runs of dead workers, and
prunes old rows once an hour. On PostgreSQL it sleeps on ``LISTEN`` (a trigger NOTIFYs when events are
inserted, at commit), so a new event is matched within milliseconds, and after a batch it looks at the
queue again only if a notification arrived meanwhile; elsewhere it polls.

Distributed queue (``TASKS_BACKEND=rq``): the process runs an RQ worker for the engine's tasks (no fork
per job) and, beside it, the same upkeep: heartbeats, taking over dead workers' runs, recovering events
and runs whose message was lost, pruning.

Every worker registers and heartbeats (``heartbeats``), so the runs it holds are taken over within
``AUTOMATIONS_WORKER_DEAD_AFTER_SECONDS`` when it dies. On PostgreSQL its own transactions commit
asynchronously (``synchronous_commit = off``, unless ``AUTOMATIONS_WORKER_SYNCHRONOUS_COMMIT``): nothing can
be lost by it. The record and its event are written by the web process, synchronously. Everything the
worker writes can be derived again: if PostgreSQL itself crashes it loses at most the last few hundred
milliseconds of the worker's commits, always a suffix, and the state before them is consistent (an event
waiting again, or a run running under a worker that is gone). Those runs are taken over with the same run
id, so the same ``webhook-id``: at least once, as with a killed worker.
"""

from __future__ import annotations

import contextlib
import logging
import select
import signal
import threading
import time

import django_rq
import redis
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.backends.signals import connection_created
from django.db.utils import DatabaseError, InterfaceError, OperationalError
from django.utils import timezone
from django_tasks_rq import Job
from rq import SimpleWorker

from . import retention, tasks
from .heartbeats import current as registration
from .heartbeats import wake_slot
from .models import AutomationEvent

logger = logging.getLogger("automations")

NOTIFY_CHANNEL = "automations_events"
PRUNE_INTERVAL = 3600.0  # seconds between housekeeping passes (automations.retention)


class Waker:
    """Waits for new work: PostgreSQL LISTEN/NOTIFY when available, else a plain sleep.

    Every idle worker receives every notification, but only one should answer it: an answer that finds
    nothing (the other worker took the event first) costs a claim's round trips for nothing, and with two
    workers that was a third of the engine's CPU per record when records arrive one at a time. So each
    notification carries a number (the inserting transaction's id, see migration 0007) and a worker wakes
    for the numbers of its ``slot``, (position, count) among the live workers of its queue, refreshed every
    heartbeat. A notification meant for a worker that is busy or gone is still found within one poll
    interval by the others (the loop claims after every wait); while the slots of two workers disagree
    (one just started or died) a number may wake two of them (a claim finds nothing) or none (one poll
    interval). Without a slot, and for a notification without a number, it wakes for every one."""

    def __init__(self) -> None:
        self.conn = None
        self.enabled = connection.vendor == "postgresql"
        self.slot: tuple[int, int] | None = None
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

    def mine(self, payload: str) -> bool:
        """Should this worker answer a notification with this payload?"""
        if self.slot is None or not payload.isdigit():
            return True
        position, count = self.slot
        return int(payload) % count == position

    def _received(self) -> bool:
        """Read what the server sent so far (never blocks) and consume its notifications; True if one was
        for this worker. Straight on libpq (``PQconsumeInput``, ``PQnotifies``): psycopg's ``notifies()``
        generator costs several times as much, and this runs twice per run when records arrive one at a time."""
        pgconn = self.conn.pgconn
        pgconn.consume_input()
        mine = False
        while (notify := pgconn.notifies()) is not None:
            mine = mine or self.mine(notify.extra.decode())
        return mine

    def _failed(self, exc: Exception) -> None:
        """The listener is an optimisation: without it, poll for a while."""
        logger.warning("LISTEN connection failed (%s); polling for 5 s", exc)
        self.close()
        self._retry_at = time.monotonic() + 5

    def wait(self, timeout: float) -> None:
        """Until a notification for this worker arrives, or ``timeout`` seconds."""
        if timeout <= 0:
            return
        if not self.enabled or time.monotonic() < self._retry_at:
            time.sleep(timeout)
            return
        deadline = time.monotonic() + timeout
        try:
            if self.conn is None or self.conn.closed:
                self._connect()
            fd = self.conn.pgconn.socket
            while (remaining := deadline - time.monotonic()) > 0:
                if select.select([fd], [], [], remaining)[0] and self._received():
                    return
        except Exception as exc:
            self._failed(exc)
            time.sleep(max(0.0, deadline - time.monotonic()))

    @property
    def listening(self) -> bool:
        return self.enabled and self.conn is not None and not self.conn.closed

    def drain(self) -> bool:
        """Consume the notifications received so far without waiting; True if one was for this worker.
        Called just before a claim: an event committed after that claim's snapshot notifies afterwards, so
        "nothing since" proves the claim saw everything meant for this worker (no lost wake-up)."""
        if not self.listening:
            return True
        try:
            return self._received()
        except Exception as exc:
            self._failed(exc)
            return True

    def wake_all(self) -> None:
        """A notification every idle worker answers: this one found a backlog (a full batch) and wants help
        now rather than at the others' next poll. Sent on the worker's own connection: the listening one is
        only read through libpq (a notification psycopg met while running a command there would be kept
        where ``_received`` does not look)."""
        if self.listening:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")
            except (DatabaseError, InterfaceError) as exc:  # the next claim meets the outage and backs off
                logger.warning("could not wake the other workers (%s)", exc)

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self.conn.close()
        self.conn = None


def _set_session_options(sender, connection, **kwargs) -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        if not settings.AUTOMATIONS_WORKER_SYNCHRONOUS_COMMIT:
            cursor.execute("SET synchronous_commit TO off")
        # A worker paused inside a transaction (SIGSTOP) must not keep its events locked for long.
        cursor.execute("SET idle_in_transaction_session_timeout TO '10s'")


def use_worker_session_options() -> None:
    """Asynchronous commit on this process's database connections (see the module docstring)."""
    connection_created.connect(_set_session_options, dispatch_uid="automations_worker_session")
    if connection.connection is not None:
        _set_session_options(None, connection)


class Upkeep:
    """What every worker does besides executing fresh work: take over dead workers' runs (every heartbeat
    interval), recover lost messages (distributed queue, every recovery interval), prune (hourly)."""

    def __init__(self, *, recovery_interval: float | None, distributed: bool) -> None:
        self.recovery_interval = recovery_interval
        self.distributed = distributed
        self.next_take_over = 0.0
        self.next_recovery = 0.0
        self.next_prune = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        return self.recovery_interval is not None and (
            now >= self.next_take_over or now >= self.next_recovery or now >= self.next_prune
        )

    def run(self, *, keep_going, force: bool = False) -> None:
        if self.recovery_interval is None:
            return
        now = time.monotonic()
        if force or now >= self.next_take_over:
            self.next_take_over = now + min(
                float(settings.AUTOMATIONS_WORKER_HEARTBEAT_SECONDS), self.recovery_interval
            )
            tasks.take_over(keep_going=keep_going)
        if self.distributed:  # the embedded loop fires them with its due-run check
            tasks.fire_time_triggers(keep_going=keep_going)
        if self.distributed and (force or now >= self.next_recovery):
            self.next_recovery = now + self.recovery_interval
            tasks.recover_lost(keep_going=keep_going)
        if now >= self.next_prune:
            self.next_prune = now + PRUNE_INTERVAL
            retention.prune()


class EngineRQWorker(SimpleWorker):
    """RQ's worker (no fork per job) that remembers whether a stop was asked for: its ``work()`` also returns
    when it meets an error it does not handle (the broker going away at the wrong moment), and then a new
    one must be started rather than the process ending."""

    stop_asked = False

    def request_stop(self, signum, frame):
        self.stop_asked = True
        super().request_stop(signum, frame)


class EngineWorker:
    """The worker loop (see the module docstring). ``batch``: work until nothing is due, then exit."""

    def __init__(
        self,
        *,
        interval: float,
        recovery_interval: float | None,
        batch: bool = False,
        worker_id: str | None = None,
    ) -> None:
        self.interval = interval
        self.batch = batch
        self.worker_id = worker_id
        self.running = True
        self.distributed = not settings.AUTOMATIONS_EMBEDDED_QUEUE
        self.upkeep = Upkeep(recovery_interval=recovery_interval, distributed=self.distributed)
        self.waker = Waker()
        self.executed = 0

    # ------------------------------------------------------------------ signals

    def _stop(self, signum, frame) -> None:
        logger.info(
            "worker %s: %s received, finishing the run in hand", registration.worker_id, signal.strsignal(signum)
        )
        self.running = False

    def configure_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def keep_going(self) -> bool:
        return self.running and registration.still_mine()

    # ------------------------------------------------------------------ loop

    def _register(self) -> None:
        queue = "database" if not self.distributed else settings.TASKS_BACKEND
        registration.register(queue=queue, worker_id=self.worker_id)
        self.worker_id = None  # a re-registration after being declared dead takes a new id

    def _database_down(self, exc: Exception, backoff: float) -> float:
        """The database went away (restart, failover, killed connection): reconnect with backoff. What was
        in hand is not lost: an event stays waiting (its transaction rolled back), a claimed run is taken
        over when this worker's lease or heartbeat runs out, or by this worker itself when it is back."""
        logger.warning("database unavailable (%s); retrying in %.1f s", exc, backoff)
        with contextlib.suppress(Exception):
            connection.close()
        self.waker.close()
        time.sleep(backoff)
        return min(backoff * 2, 5)

    def run(self) -> None:
        use_worker_session_options()
        backoff = 0.5
        while True:
            try:
                self._register()
                break
            except (OperationalError, InterfaceError) as exc:
                backoff = self._database_down(exc, backoff)
        logger.info(
            "automations worker %s started (%s queue)",
            registration.worker_id,
            "embedded" if not self.distributed else settings.TASKS_BACKEND,
        )
        try:
            if self.distributed:
                self._run_distributed()
            else:
                self._run_embedded()
        finally:
            self.waker.close()
            registration.unregister()
            logger.info("automations worker %s stopped at %s", registration.worker_id, timezone.now().isoformat())

    def _run_embedded(self) -> None:
        backoff = 0.5
        idle = True
        next_due_check = 0.0
        next_slot = 0.0
        backlog = False  # the others were woken for the backlog in hand
        while self.running:
            try:
                if registration.lost.is_set():
                    self._register()
                    next_slot = 0.0
                if self.waker.enabled and time.monotonic() >= next_slot:
                    # Which new-event notifications this worker answers (see Waker), as workers come and go.
                    self.waker.slot = wake_slot(registration.worker_id, "database")
                    next_slot = time.monotonic() + float(settings.AUTOMATIONS_WORKER_HEARTBEAT_SECONDS)
                if idle:
                    # After a wait (not between back-to-back batches: that would cost a health-check query
                    # per batch) drop an expired or broken connection.
                    close_old_connections()
                if self.upkeep.due():
                    self.upkeep.run(keep_going=self.keep_going)
                limit = tasks.batch_size()
                self.waker.drain()
                events = tasks.handle_events(limit=limit, keep_going=self.keep_going)
                worked = len(events.executed) + len(events.released)
                took_all = worked < limit
                now = time.monotonic()
                if (now >= next_due_check or events.released) and (events.released or tasks.time_work_due()):
                    tasks.fire_time_triggers(keep_going=self.keep_going)
                    due = tasks.handle_due_runs(limit=limit, keep_going=self.keep_going)
                    worked += len(due.executed)
                    took_all = took_all and len(due.executed) < limit
                    # Check for due runs again after the poll interval, or at once while there is a backlog.
                    next_due_check = now if len(due.executed) >= limit else now + self.interval
                elif now >= next_due_check:
                    next_due_check = now + self.interval
                self.executed += worked
                backoff = 0.5
            except (OperationalError, InterfaceError, DatabaseError) as exc:
                backoff = self._database_down(exc, backoff)
                idle = True
                continue
            if worked:
                if not took_all and not backlog and self.waker.slot is not None and self.waker.slot[1] > 1:
                    self.waker.wake_all()  # a backlog (a full batch): the other workers join at once
                backlog = not took_all
                idle = False
                if took_all and self.running and not self.batch and not self.waker.drain():
                    # Everything ready was taken and nothing was enqueued since: sleep until the next NOTIFY
                    # (or the next due check) instead of paying a claim that finds nothing.
                    self.waker.wait(max(0.0, min(self.interval, next_due_check - time.monotonic())))
                continue
            idle, backlog = True, False
            if self.batch:
                self.upkeep.run(keep_going=self.keep_going, force=True)
                if not self._anything_due():
                    break
                next_due_check = 0.0
                continue
            if self.running:
                self.waker.wait(max(0.0, min(self.interval, next_due_check - time.monotonic())))

    def _anything_due(self) -> bool:
        return AutomationEvent.objects.filter(processed_at__isnull=True).exists() or tasks.time_work_due()

    # ------------------------------------------------------------------ distributed

    def _run_distributed(self) -> None:
        """An RQ worker (no fork per job, so connections and the heartbeat live on) for the engine's tasks;
        the upkeep runs beside it in a thread."""
        stop = threading.Event()

        def upkeep_loop() -> None:
            backoff = 0.5
            while not stop.is_set():
                try:
                    close_old_connections()
                    if registration.lost.is_set():
                        self._register()
                    self.upkeep.run(keep_going=lambda: not stop.is_set() and registration.still_mine())
                    backoff = 0.5
                except (OperationalError, InterfaceError, DatabaseError) as exc:
                    logger.warning("upkeep: database unavailable (%s)", exc)
                    with contextlib.suppress(Exception):
                        connection.close()
                    backoff = min(backoff * 2, 5)
                except Exception:
                    logger.exception("upkeep failed")
                stop.wait(min(backoff, self.interval) if backoff > 0.5 else self.interval)
            connection.close()

        thread = threading.Thread(target=upkeep_loop, name="automations-upkeep", daemon=True)
        thread.start()
        backoff = 1.0
        try:
            while True:
                try:
                    queue = django_rq.get_queue(settings.AUTOMATIONS_QUEUE, job_class=Job)
                    rq_worker = EngineRQWorker([queue], connection=queue.connection, job_class=Job)
                    rq_worker.work(with_scheduler=True, burst=self.batch, logging_level="WARNING")
                    if self.batch or rq_worker.stop_asked:
                        break  # a stop was asked for (SIGTERM / SIGINT), or burst mode found nothing more
                    # RQ gave up on an error it logged (e.g. the broker went away between two jobs): the
                    # process stays, with a new RQ worker once the broker answers.
                    logger.warning("the RQ worker stopped on an error; starting a new one in %.0f s", backoff)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 10)
                    if rq_worker.stop_asked or not self.running:  # SIGTERM during the pause
                        break
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                    # The broker went away mid-job. The run's state is in the database: the job is lost
                    # at worst, and the upkeep recovers its work. Start a fresh RQ worker once it is back.
                    logger.warning("broker unavailable (%s); reconnecting in %.0f s", exc, backoff)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 10)
        finally:
            stop.set()
            thread.join(timeout=30)
