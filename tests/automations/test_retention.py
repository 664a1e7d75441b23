"""Housekeeping: old processed events and finished task rows go, stranded task rows are closed,
everything recent (and every run log) stays."""

import datetime as dt

import time_machine
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from automations import executor, retention
from automations.models import AutomationEvent, AutomationLog, RunStatus
from records import services

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_prune_removes_only_what_is_old_and_done(entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_RETENTION_DAYS = 7
    make_rule()
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "old"})
        executor.process_event_ids(AutomationEvent.objects.values_list("id", flat=True))
        DBTaskResult.objects.update(status=TaskResultStatus.SUCCESSFUL, finished_at=T0)
        stuck = DBTaskResult.objects.create(
            args_kwargs={"args": [], "kwargs": {}},
            task_path="automations.tasks.process_events",
            backend_name="default",
            run_after=T0,
            status=TaskResultStatus.RUNNING,
            started_at=T0,
        )
        clock.shift(dt.timedelta(days=6))
        services.record_create(entity=entity, data={"name": "recent, unprocessed"})
        assert retention.prune() == {"events": 0, "tasks": 0, "stranded_tasks": 1}
        clock.shift(dt.timedelta(days=2))
        assert retention.prune() == {"events": 1, "tasks": 1, "stranded_tasks": 0}

    assert list(AutomationEvent.objects.values_list("record__data__name", flat=True)) == ["recent, unprocessed"]
    stuck.refresh_from_db()
    assert stuck.status == TaskResultStatus.FAILED and "resumed by recovery" in stuck.traceback
    assert DBTaskResult.objects.filter(status=TaskResultStatus.READY).count() == 1  # the recent event's task
    log = AutomationLog.objects.get()  # run logs are history: kept, with their own snapshot
    assert log.status == RunStatus.SUCCESS and log.event_id is None and log.record_snapshot["data"]["name"] == "old"
