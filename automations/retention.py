"""Housekeeping the worker does about once an hour, so the engine's tables do not grow without bound.

- Processed ``AutomationEvent`` rows older than ``AUTOMATIONS_RETENTION_DAYS`` are deleted (each run keeps
  its own snapshot of the record, so logs and retries do not need them).
- Rows of worker processes stopped for more than a day are deleted (their runs were taken over long ago).
Run logs (``AutomationLog``) are the product's run history and are not deleted here."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone

from .models import AutomationEvent, AutomationLog, RunStatus, WorkerProcess

logger = logging.getLogger("automations")

STOPPED_WORKER_AGE = dt.timedelta(days=1)


def prune(*, limit: int = 5000) -> dict[str, int]:
    """Delete at most ``limit`` rows of each kind per call (short transactions, no long locks)."""
    now = timezone.now()
    cutoff = now - dt.timedelta(days=settings.AUTOMATIONS_RETENTION_DAYS)
    event_ids = list(AutomationEvent.objects.filter(processed_at__lt=cutoff).values_list("id", flat=True)[:limit])
    events, _ = AutomationEvent.objects.filter(id__in=event_ids).delete()
    stopped = WorkerProcess.objects.filter(stopped_at__lt=now - STOPPED_WORKER_AGE).exclude(
        id__in=AutomationLog.objects.filter(status=RunStatus.RUNNING).values("worker_id")
    )
    workers, _ = stopped.delete()
    if events or workers:
        logger.info("retention: %d event(s) and %d stopped worker row(s) deleted", events, workers)
    return {"events": events, "workers": workers}
