"""Housekeeping: old processed events and long-stopped worker rows go, everything recent (and every run
log) stays."""

import datetime as dt

import time_machine

from automations import retention, tasks
from automations.models import AutomationEvent, AutomationLog, RunStatus, WorkerProcess
from records import services

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def worker_row(worker_id, *, stopped_at=None):
    return WorkerProcess.objects.create(id=worker_id, started_at=T0, last_seen_at=T0, stopped_at=stopped_at)


def test_prune_removes_only_what_is_old_and_done(entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_RETENTION_DAYS = 7
    make_rule()
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "old"})
        tasks.handle_events()
        worker_row("stopped", stopped_at=T0)
        worker_row("alive")
        clock.shift(dt.timedelta(days=6))
        services.record_create(entity=entity, data={"name": "recent, unprocessed"})
        assert retention.prune() == {"events": 0, "workers": 1, "logs": 0}
        clock.shift(dt.timedelta(days=2))
        assert retention.prune() == {"events": 1, "workers": 0, "logs": 0}

    assert list(AutomationEvent.objects.values_list("record__data__name", flat=True)) == ["recent, unprocessed"]
    assert list(WorkerProcess.objects.values_list("id", flat=True)) == ["alive"]
    log = AutomationLog.objects.get()  # run logs are history: kept, with their own snapshot
    assert log.status == RunStatus.SUCCESS and log.event_id is None and log.record_snapshot["data"]["name"] == "old"


def test_a_stopped_worker_still_named_on_a_running_run_is_kept(entity, make_rule, scripted):
    make_rule()
    with time_machine.travel(T0, tick=False) as clock:
        worker_row("gone", stopped_at=T0)
        services.record_create(entity=entity, data={"name": "Ada"})
        tasks.handle_events()
        AutomationLog.objects.update(status=RunStatus.RUNNING, worker_id="gone")
        clock.shift(dt.timedelta(days=2))
        assert retention.prune()["workers"] == 0
