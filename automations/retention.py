"""Housekeeping the worker does about once an hour, so the hand-off tables do not grow without bound.

- Processed ``AutomationEvent`` rows older than ``AUTOMATIONS_RETENTION_DAYS`` are deleted (each run's
  log keeps its own snapshot of the record, so logs and retries do not need them).
- Finished django-tasks-db task rows older than that are deleted.
- Task rows left ``RUNNING`` for more than a day by a worker that died are marked failed: their event or
  run was resumed by recovery from our own tables, the row is only bookkeeping.
Run logs (``AutomationLog``) are the product's run history and are never deleted here."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from .models import AutomationEvent

logger = logging.getLogger("automations")

STRANDED_TASK_AGE = dt.timedelta(days=1)


def prune(*, limit: int = 5000) -> dict[str, int]:
    """Delete at most ``limit`` rows of each kind per call (short transactions, no long locks)."""
    now = timezone.now()
    cutoff = now - dt.timedelta(days=settings.AUTOMATIONS_RETENTION_DAYS)
    event_ids = list(AutomationEvent.objects.filter(processed_at__lt=cutoff).values_list("id", flat=True)[:limit])
    events, _ = AutomationEvent.objects.filter(id__in=event_ids).delete()
    task_ids = list(
        DBTaskResult.objects.filter(
            status__in=[TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED], finished_at__lt=cutoff
        ).values_list("id", flat=True)[:limit]
    )
    tasks, _ = DBTaskResult.objects.filter(id__in=task_ids).delete()
    stranded = DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING, started_at__lt=now - STRANDED_TASK_AGE
    ).update(
        status=TaskResultStatus.FAILED,
        finished_at=now,
        exception_class_path="automations.retention.WorkerDied",
        traceback="The worker running this task stopped before finishing it; its automation event or run "
        "was resumed by recovery from the automation tables.",
    )
    if events or tasks or stranded:
        logger.info(
            "retention: %d event(s) and %d task row(s) deleted, %d stranded task row(s) closed", events, tasks, stranded
        )
    return {"events": events, "tasks": tasks, "stranded_tasks": stranded}
