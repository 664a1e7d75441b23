"""Reads of the engine's state for operators: the health check, the Prometheus collector and the admin's
Engine page all ask here, so they cannot disagree about what "waiting" or "alive" means.

Every query is served by an index of the engine's tables (``event_unprocessed``, ``log_open_due``,
``worker_last_seen``) except ``runs_per_minute``, which reads the last hour of the run log (the admin page
only)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Min, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from . import heartbeats
from .models import AutomationEvent, AutomationLog, AutomationRule, RunStatus, WorkerProcess

WAITING = (RunStatus.PENDING, RunStatus.RETRYING)
OPEN = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.RETRYING)
FINISHED = (RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.SKIPPED)
ALIVE_WINDOW = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class QueueState:
    """Work a worker could take now: events not matched yet and runs whose due time has come."""

    waiting_events: int
    due_runs: int
    oldest_ready_at: dt.datetime | None

    @property
    def ready(self) -> int:
        return self.waiting_events + self.due_runs

    def oldest_age_seconds(self, now: dt.datetime) -> float:
        """How long the oldest ready item has waited (0 when nothing waits)."""
        if self.oldest_ready_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_ready_at).total_seconds())


def queue_state(now: dt.datetime | None = None) -> QueueState:
    """Waiting events (since their creation) and due runs (since their due time): three indexed queries."""
    now = now or timezone.now()
    events = AutomationEvent.objects.filter(processed_at__isnull=True).aggregate(
        n=Count("id"), oldest=Min("created_at")
    )
    # ``log_open_due`` is a partial index on next_attempt_at for open runs: the status filter must stay a
    # subset of its condition for the planner to use it.
    runs = AutomationLog.objects.filter(status__in=WAITING, next_attempt_at__lte=now).aggregate(
        n=Count("id"), oldest=Min("next_attempt_at")
    )
    oldest = [t for t in (events["oldest"], runs["oldest"]) if t is not None]
    return QueueState(waiting_events=events["n"], due_runs=runs["n"], oldest_ready_at=min(oldest, default=None))


def open_runs_by_status() -> dict[str, int]:
    """Runs not finished yet: pending (including those waiting for a later time), running, retrying."""
    counts = dict.fromkeys(OPEN, 0)
    rows = AutomationLog.objects.filter(status__in=OPEN).values("status").annotate(n=Count("id")).order_by()
    counts.update({row["status"]: row["n"] for row in rows})
    return {str(status): n for status, n in counts.items()}


def workers_alive(now: dt.datetime | None = None) -> int:
    """Worker processes that sent a heartbeat within the last minute."""
    return heartbeats.alive_count(now)


def registered_workers(now: dt.datetime | None = None):
    """Workers not stopped, or seen within the last minute, newest heartbeat first (a silent one shows
    until another worker declares it dead)."""
    now = now or timezone.now()
    recent = Q(stopped_at__isnull=True) | Q(last_seen_at__gte=now - ALIVE_WINDOW)
    return WorkerProcess.objects.filter(recent).order_by("-last_seen_at")


def is_alive(worker: WorkerProcess, now: dt.datetime) -> bool:
    return worker.stopped_at is None and worker.last_seen_at >= now - ALIVE_WINDOW


def runs_per_minute(now: dt.datetime | None = None, *, minutes: int = 60) -> list[dict]:
    """Finished runs per minute and status over the last ``minutes`` (oldest first, every minute present,
    zeros included): ``[{"minute": datetime, "success": n, "error": n, "skipped": n}, ...]``."""
    now = now or timezone.now()
    end = now.replace(second=0, microsecond=0)
    start = end - dt.timedelta(minutes=minutes - 1)
    rows = (
        AutomationLog.objects.filter(finished_at__gte=start, status__in=FINISHED)
        .annotate(minute=TruncMinute("finished_at"))
        .values("minute", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    buckets = {start + dt.timedelta(minutes=i): dict.fromkeys(map(str, FINISHED), 0) for i in range(minutes)}
    for row in rows:
        bucket = buckets.get(row["minute"])
        if bucket is not None:
            bucket[str(row["status"])] += row["n"]
    return [{"minute": minute, **counts} for minute, counts in buckets.items()]


def auto_disabled_rules(now: dt.datetime | None = None, *, within: dt.timedelta = dt.timedelta(days=1)):
    """Rules the engine turned off (too many failures in a row, or a receiver answering 410) recently,
    newest first."""
    now = now or timezone.now()
    return (
        AutomationRule.objects.filter(is_active=False, disabled_at__gte=now - within)
        .exclude(disabled_reason="")
        .select_related("workspace")
        .order_by("-disabled_at")
    )
