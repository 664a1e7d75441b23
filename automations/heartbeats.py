"""Worker processes: registration, heartbeats, and who is dead.

Every process that claims runs registers a ``WorkerProcess`` row and beats every
``AUTOMATIONS_WORKER_HEARTBEAT_SECONDS`` from a small thread (its own database connection). Runs it
claims carry its id. Any worker that finds a row silent for ``AUTOMATIONS_WORKER_DEAD_AFTER_SECONDS``
marks it stopped, and the runs that process held are taken over at once (``ledger.take_over``) instead
of waiting out their lease.

A worker paused long enough to be declared dead (SIGSTOP, a frozen VM) finds out at its next beat: its
row is stopped, so it stops working on what it held (those runs belong to someone else now) and
registers again under a new id before claiming anything.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Q
from django.utils import timezone

from .models import WorkerProcess

logger = logging.getLogger("automations")


class Registration:
    """This process's worker identity (one per process that claims runs)."""

    def __init__(self) -> None:
        self.worker_id = ""  # "" until registered: runs claimed then are guarded by their lease only
        self.lost = threading.Event()
        self.last_beat = 0.0  # time.monotonic() of the last heartbeat that found the row alive
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def registered(self) -> bool:
        return bool(self.worker_id) and not self.lost.is_set()

    def register(self, *, queue: str, worker_id: str | None = None, beat_in_background: bool = True) -> str:
        """Insert this process's row and start beating (again, under a new id, after losing it)."""
        with self._lock:
            now = timezone.now()
            self.worker_id = worker_id or f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            WorkerProcess.objects.update_or_create(
                id=self.worker_id,
                defaults={
                    "hostname": socket.gethostname()[:255],
                    "pid": os.getpid(),
                    "queue": queue[:20],
                    "started_at": now,
                    "last_seen_at": now,
                    "stopped_at": None,
                },
            )
            self.lost.clear()
            self.last_beat = time.monotonic()
            if beat_in_background and (self._thread is None or not self._thread.is_alive()):
                self._stop.clear()
                self._thread = threading.Thread(target=self._beat_forever, name="automations-heartbeat", daemon=True)
                self._thread.start()
            return self.worker_id

    def beat(self) -> bool:
        """Record that this process is alive; False (and ``lost`` set) when the row was stopped meanwhile."""
        if not self.worker_id:
            return False
        alive = WorkerProcess.objects.filter(id=self.worker_id, stopped_at__isnull=True).update(
            last_seen_at=timezone.now()
        )
        if alive:
            self.last_beat = time.monotonic()
        elif not self.lost.is_set():
            logger.warning("worker %s was declared dead while it was paused; it re-registers", self.worker_id)
            self.lost.set()
        return bool(alive)

    def still_mine(self) -> bool:
        """May this process go on with the runs it holds? Not when its row was stopped (declared dead), and
        not before checking when its last good heartbeat is older than half the dead-after time (the process
        was paused, or its heartbeat thread could not reach the database): asked before each run."""
        if self.lost.is_set():
            return False
        if self.worker_id and time.monotonic() - self.last_beat > settings.AUTOMATIONS_WORKER_DEAD_AFTER_SECONDS / 2:
            try:
                return self.beat()
            except Exception:  # cannot tell: stop rather than deliver runs another worker may hold
                return False
        return True

    def _beat_forever(self) -> None:
        interval = float(settings.AUTOMATIONS_WORKER_HEARTBEAT_SECONDS)
        while not self._stop.wait(interval):
            try:
                close_old_connections()
                self.beat()
            except Exception as exc:  # the database is away: the main loop reconnects; keep trying
                logger.debug("heartbeat failed: %s", exc)
                connection.close()
        connection.close()

    def unregister(self) -> None:
        """A clean stop: the row is marked stopped (the runs in hand were finished or handed back)."""
        self._stop.set()
        if self.worker_id:
            try:
                WorkerProcess.objects.filter(id=self.worker_id).update(stopped_at=timezone.now())
            except Exception:  # stopping while the database is away: the row goes silent, same outcome
                logger.debug("could not mark worker %s stopped", self.worker_id)


current = Registration()


def dead_before(now: dt.datetime | None = None) -> dt.datetime:
    """Heartbeats older than this mean a dead process."""
    return (now or timezone.now()) - dt.timedelta(seconds=settings.AUTOMATIONS_WORKER_DEAD_AFTER_SECONDS)


def declare_dead(now: dt.datetime | None = None) -> list[str]:
    """Mark silent workers stopped; returns their ids (their runs may be taken over now)."""
    now = now or timezone.now()
    silent = WorkerProcess.objects.filter(stopped_at__isnull=True, last_seen_at__lt=dead_before(now))
    ids = list(silent.values_list("id", flat=True))
    if ids:
        WorkerProcess.objects.filter(id__in=ids, stopped_at__isnull=True).update(stopped_at=now)
        logger.warning("worker(s) %s stopped heartbeating; taking over their runs", ", ".join(ids))
    return ids


def gone_workers():
    """Ids of stopped worker processes (a subquery: runs they still hold can be taken over)."""
    return WorkerProcess.objects.filter(stopped_at__isnull=False).values("id")


def wake_slot(worker_id: str, queue: str, now: dt.datetime | None = None) -> tuple[int, int] | None:
    """(position, count) of this worker among the live ones of its queue, ordered by id: the share of
    new-event notifications it answers (``worker.Waker``). None when it is not among them (not registered
    yet, or declared dead): it then answers every notification."""
    live = list(
        WorkerProcess.objects.filter(stopped_at__isnull=True, queue=queue, last_seen_at__gte=dead_before(now))
        .order_by("id")
        .values_list("id", flat=True)
    )
    return (live.index(worker_id), len(live)) if worker_id in live else None


def alive_count(now: dt.datetime | None = None) -> int:
    """Workers that sent a heartbeat within the last minute (health checks, metrics)."""
    now = now or timezone.now()
    return WorkerProcess.objects.filter(
        Q(stopped_at__isnull=True), last_seen_at__gte=now - dt.timedelta(seconds=60)
    ).count()
