"""Housekeeping the worker does about once an hour, so the engine's tables do not grow without bound.

- Processed ``AutomationEvent`` rows older than ``AUTOMATIONS_RETENTION_DAYS`` are deleted (each run keeps
  its own snapshot of the record, so logs and retries do not need them).
- Rows of worker processes stopped for more than a day are deleted (their runs were taken over long ago).
- Finished run logs (success, error, skipped) older than ``AUTOMATIONS_LOG_RETENTION_DAYS`` (default 90;
  0 keeps them) are deleted, by when they finished (when they were logged, if they never ran). Runs still
  pending, running or retrying are never deleted, however old.

Run logs are deleted in batches of ``LOG_BATCH`` rows, one short transaction each, rule by rule through
the ``log_rule_created`` index (no scan of the whole table, no long lock), resting between batches so that
deleting takes at most a fifth of the time,
by a background thread of the worker: the worker goes on executing runs while a large backlog (the first
pass on a big table) goes. Several workers pruning at once skip each other's rows (``SKIP LOCKED``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from .models import AutomationEvent, AutomationLog, AutomationRule, RunStatus, WorkerProcess

logger = logging.getLogger("automations")

STOPPED_WORKER_AGE = dt.timedelta(days=1)
FINISHED = (RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.SKIPPED)
LOG_BATCH = 500  # rows per delete transaction (a few milliseconds of locks on rows nobody else touches)
# Between batches the thread rests at least LOG_PAUSE_SECONDS, and long enough that deleting takes at most
# LOG_DUTY of the time: the database and the worker's own runs go first (measured in bench/retention.py).
LOG_PAUSE_SECONDS = 0.05
LOG_DUTY = 0.2

_pruner: threading.Thread | None = None
_pruner_lock = threading.Lock()


def prune(*, limit: int = 5000, wait: bool = False) -> dict[str, int]:
    """Delete at most ``limit`` old events and stopped worker rows (short transactions, no long locks), and
    expired run logs: in a background thread of this process (the worker goes on meanwhile), or before
    returning with ``wait``. ``logs`` counts the run logs this call deleted itself."""
    now = timezone.now()
    cutoff = now - dt.timedelta(days=settings.AUTOMATIONS_RETENTION_DAYS)
    event_ids = list(AutomationEvent.objects.filter(processed_at__lt=cutoff).values_list("id", flat=True)[:limit])
    events, _ = AutomationEvent.objects.filter(id__in=event_ids).delete()
    stopped = WorkerProcess.objects.filter(stopped_at__lt=now - STOPPED_WORKER_AGE).exclude(
        id__in=AutomationLog.objects.filter(status=RunStatus.RUNNING).values("worker_id")
    )
    workers, _ = stopped.delete()
    logs = 0
    log_cutoff = run_log_cutoff(now)
    if log_cutoff is not None:
        rule_ids = rules_with_expired_runs(log_cutoff)
        if rule_ids and wait:
            logs = delete_old_run_logs(cutoff=log_cutoff, rule_ids=rule_ids, pause=0)
        elif rule_ids:
            prune_run_logs_in_background(log_cutoff, rule_ids)
    if events or workers or logs:
        logger.info("retention: %d event(s), %d stopped worker row(s) and %d run log(s) deleted", events, workers, logs)
    return {"events": events, "workers": workers, "logs": logs}


def run_log_cutoff(now: dt.datetime | None = None) -> dt.datetime | None:
    """Finished run logs older than this go; None when ``AUTOMATIONS_LOG_RETENTION_DAYS`` is 0 (keep)."""
    days = settings.AUTOMATIONS_LOG_RETENTION_DAYS
    if days <= 0:
        return None
    return (now or timezone.now()) - dt.timedelta(days=days)


def _expired(cutoff: dt.datetime):
    # A run finishes after it is logged, so created_at < cutoff holds for every expired row: that bound lets
    # the (automation, created_at) index find them.
    return AutomationLog.objects.filter(created_at__lt=cutoff, status__in=FINISHED).filter(
        Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True)
    )


def rules_with_expired_runs(cutoff: dt.datetime) -> list:
    """Ids of the rules that have expired run logs: one statement, an index probe per rule created before
    the cutoff (cheap enough for the worker's loop, unlike a scan of the run log)."""
    expired = _expired(cutoff).filter(automation_id=OuterRef("pk"))
    return list(
        AutomationRule.objects.filter(created_at__lt=cutoff)
        .filter(Exists(expired))
        .order_by()
        .values_list("id", flat=True)
    )


def delete_old_run_logs(
    *,
    cutoff: dt.datetime,
    rule_ids: list | None = None,
    max_rows: int | None = None,
    batch: int = LOG_BATCH,
    pause: float = LOG_PAUSE_SECONDS,
    keep_going: Callable[[], bool] | None = None,
) -> int:
    """Delete finished run logs that expired before ``cutoff`` (of ``rule_ids``, default every rule that has
    some), ``batch`` rows per transaction, until none is left (or ``max_rows`` were deleted, or
    ``keep_going()`` says stop). Returns how many went."""
    deleted = 0
    for rule_id in rules_with_expired_runs(cutoff) if rule_ids is None else rule_ids:
        while max_rows is None or deleted < max_rows:
            if keep_going is not None and not keep_going():
                return deleted
            size = batch if max_rows is None else min(batch, max_rows - deleted)
            # One statement per batch: the ids never travel to Python (little work for this process, whose
            # main thread is executing runs). SKIP LOCKED: two workers pruning at once take different rows
            # instead of waiting on each other. The status is checked again by the DELETE itself: a run
            # replayed meanwhile (retry) is open again and stays.
            started = time.monotonic()
            with transaction.atomic():
                batch_ids = (
                    _expired(cutoff).filter(automation_id=rule_id).select_for_update(skip_locked=True).values("id")
                )[:size]
                count, _ = AutomationLog.objects.filter(id__in=batch_ids, status__in=FINISHED).delete()
            deleted += count
            if count < size:
                break  # this rule is done (or its remaining rows are another pruner's right now)
            if pause:
                time.sleep(max(pause, (time.monotonic() - started) * (1 / LOG_DUTY - 1)))
    return deleted


def prune_run_logs_in_background(cutoff: dt.datetime, rule_ids: list | None = None) -> bool:
    """Start deleting expired run logs in a thread of this process, unless one already is. False when one
    was already running."""
    global _pruner
    with _pruner_lock:
        if _pruner is not None and _pruner.is_alive():
            return False
        _pruner = threading.Thread(
            target=_prune_run_logs_thread, args=(cutoff, rule_ids), name="automations-log-retention", daemon=True
        )
        _pruner.start()
        return True


def _prune_run_logs_thread(cutoff: dt.datetime, rule_ids: list | None) -> None:
    started = time.monotonic()
    try:
        close_old_connections()
        deleted = delete_old_run_logs(cutoff=cutoff, rule_ids=rule_ids)
        logger.info("retention: %d run log(s) deleted in %.1f s", deleted, time.monotonic() - started)
    except Exception:  # the database went away or the process is stopping: the next hourly pass goes on
        logger.warning("retention: run log pruning stopped early", exc_info=True)
    finally:
        connection.close()


def background_pruning() -> bool:
    """Is this process deleting run logs in the background right now?"""
    return _pruner is not None and _pruner.is_alive()
