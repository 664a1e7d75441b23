"""Run-log retention (AUTOMATIONS_LOG_RETENTION_DAYS): finished runs older than the limit go, in small
batches; open runs (pending, running, retrying) and recent runs stay, whatever their age; 0 keeps all."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from automations import retention
from automations.models import AutomationLog, RunStatus

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture
def runs(entity, make_rule):
    """Makes run logs of a rule with given status, creation and finish times."""
    rules = {}

    def make(status, *, created_days_ago, finished_days_ago=None, rule="Rule", **fields):
        if rule not in rules:
            with time_machine.travel(NOW - 400 * DAY, tick=False):
                rules[rule] = make_rule(name=rule)
        with time_machine.travel(NOW - created_days_ago * DAY, tick=False):
            log = AutomationLog.objects.create(
                automation=rules[rule],
                workspace_id=entity.workspace_id,
                entity_id=entity.pk,
                trigger_type="record_created",
                action_type="scripted",
                status=status,
                finished_at=None if finished_days_ago is None else NOW - finished_days_ago * DAY,
                **fields,
            )
        return log

    return make


def remaining():
    return set(AutomationLog.objects.values_list("id", flat=True))


def test_finished_runs_past_the_limit_go_and_everything_else_stays(runs, settings):
    settings.AUTOMATIONS_LOG_RETENTION_DAYS = 90
    expired = [
        runs(RunStatus.SUCCESS, created_days_ago=120, finished_days_ago=120),
        runs(RunStatus.ERROR, created_days_ago=95, finished_days_ago=91),  # retried for days, ended 91 days ago
        runs(RunStatus.SKIPPED, created_days_ago=100),  # never ran: by its creation
        runs(RunStatus.SUCCESS, created_days_ago=200, finished_days_ago=199, is_test=True, rule="Other"),
    ]
    kept = [
        runs(RunStatus.SUCCESS, created_days_ago=10, finished_days_ago=10),
        runs(RunStatus.ERROR, created_days_ago=92, finished_days_ago=89),  # finished within the limit
        # Open runs are never deleted, however old.
        runs(RunStatus.PENDING, created_days_ago=300, next_attempt_at=NOW + DAY),
        runs(RunStatus.RETRYING, created_days_ago=150, next_attempt_at=NOW),
        runs(RunStatus.RUNNING, created_days_ago=120, lease_until=NOW),
    ]
    with time_machine.travel(NOW, tick=False):
        result = retention.prune(wait=True)
    assert result["logs"] == 4
    assert remaining() == {log.pk for log in kept}
    assert not set(log.pk for log in expired) & remaining()


def test_zero_keeps_every_run(runs, settings):
    settings.AUTOMATIONS_LOG_RETENTION_DAYS = 0
    runs(RunStatus.SUCCESS, created_days_ago=3000, finished_days_ago=3000)
    with time_machine.travel(NOW, tick=False):
        assert retention.prune(wait=True)["logs"] == 0
    assert AutomationLog.objects.count() == 1


def test_the_limit_is_a_setting(runs, settings):
    settings.AUTOMATIONS_LOG_RETENTION_DAYS = 7
    runs(RunStatus.SUCCESS, created_days_ago=8, finished_days_ago=8)
    runs(RunStatus.SUCCESS, created_days_ago=6, finished_days_ago=6)
    with time_machine.travel(NOW, tick=False):
        assert retention.prune(wait=True)["logs"] == 1


def test_deleted_in_small_batches_rule_by_rule(runs, django_assert_max_num_queries):
    for i in range(7):
        runs(RunStatus.SUCCESS, created_days_ago=100 + i, finished_days_ago=100, rule="A")
    for _ in range(3):
        runs(RunStatus.SUCCESS, created_days_ago=100, finished_days_ago=100, rule="B")
    runs(RunStatus.SUCCESS, created_days_ago=1, finished_days_ago=1, rule="B")
    cutoff = NOW - 90 * DAY
    assert len(retention.rules_with_expired_runs(cutoff)) == 2
    deleted = retention.delete_old_run_logs(cutoff=cutoff, batch=3, pause=0)
    assert deleted == 10 and AutomationLog.objects.count() == 1
    assert retention.rules_with_expired_runs(cutoff) == []


def test_stops_when_asked(runs):
    for _ in range(6):
        runs(RunStatus.SUCCESS, created_days_ago=100, finished_days_ago=100)
    calls = []

    def keep_going():
        calls.append(1)
        return len(calls) <= 1  # one batch, then stop

    deleted = retention.delete_old_run_logs(cutoff=NOW - 90 * DAY, batch=2, pause=0, keep_going=keep_going)
    assert deleted == 2 and AutomationLog.objects.count() == 4


def test_a_run_replayed_meanwhile_is_not_deleted(runs, monkeypatch):
    """The run was selected as expired, then a retry re-opened it before the delete: it stays."""
    log = runs(RunStatus.ERROR, created_days_ago=100, finished_days_ago=100)
    real_expired = retention._expired

    def expired_then_reopened(cutoff):
        AutomationLog.objects.filter(pk=log.pk).update(status=RunStatus.PENDING, next_attempt_at=timezone.now())
        return real_expired(cutoff).model.objects.filter(pk=log.pk)

    monkeypatch.setattr(retention, "_expired", expired_then_reopened)
    assert retention.delete_old_run_logs(cutoff=NOW - 90 * DAY, rule_ids=[log.automation_id], pause=0) == 0
    assert AutomationLog.objects.filter(pk=log.pk, status=RunStatus.PENDING).exists()


@pytest.mark.django_db(transaction=True)
def test_the_worker_prunes_in_the_background(runs, settings):
    """``prune()`` as the worker's hourly upkeep calls it: returns at once, a thread of the process deletes."""
    settings.AUTOMATIONS_LOG_RETENTION_DAYS = 90
    for _ in range(5):
        runs(RunStatus.SUCCESS, created_days_ago=100, finished_days_ago=100)
    runs(RunStatus.SUCCESS, created_days_ago=1, finished_days_ago=1)
    with time_machine.travel(NOW, tick=False):
        result = retention.prune()  # the cutoff is taken now and handed to the thread
    assert result["logs"] == 0  # counted by the thread, not by this call
    assert retention._pruner is not None
    thread = retention._pruner
    thread.join(timeout=30)
    assert not retention.background_pruning()
    assert AutomationLog.objects.count() == 1
    with time_machine.travel(NOW, tick=False):
        assert retention.prune() == {"events": 0, "workers": 0, "logs": 0}
    assert retention._pruner is thread  # nothing expired: no thread started
