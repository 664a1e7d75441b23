"""Matching, executing, retrying, recovering: the run ledger's life cycle (worker side, in-process)."""

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.utils import timezone

from automations import executor, heartbeats, matching, retry_policy, tasks
from automations import services as automation_services
from automations.exceptions import PermanentActionError, RetryableActionError
from automations.models import AutomationEvent, AutomationLog, RunStatus, WorkerProcess
from records import services
from records.models import Record

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def process_all():
    return len(tasks.handle_events(limit=10_000).executed)


def run_due(log_id):
    """Claim and execute one waiting run if it is due; the run, or None when it was not claimed."""
    executed = tasks.handle_due_runs(ids=[log_id]).executed
    return executed[0] if executed else None


def test_one_log_per_matching_rule(entity, make_rule, scripted):
    make_rule(name="created")
    make_rule(
        name="qualified", conditions={"match": "all", "rules": [{"field": "status", "op": "eq", "value": "Qualified"}]}
    )
    make_rule(name="inactive", is_active=False)
    make_rule(name="updated", trigger_type="record_updated")
    services.record_create(entity=entity, data={"name": "Ada", "status": "New"})
    assert process_all() == 1
    log = AutomationLog.objects.get()
    assert log.automation.name == "created"
    assert log.status == RunStatus.SUCCESS and log.attempts == 1
    assert log.result == {"ok": True, "attempt": 1}
    assert log.trigger_type == "record_created" and log.action_type == "scripted"
    assert log.duration_ms is not None and log.executed_at and log.finished_at
    assert log.record_snapshot["data"]["name"] == "Ada"


def test_status_changed_end_to_end(entity, make_rule, scripted):
    make_rule(trigger_type="status_changed", trigger_config={"to_status": "Contacted", "from_status": "New"})
    record = services.record_create(entity=entity, data={"name": "Ada", "status": "New"})
    services.record_update(record=record, data={"company": "ACME"})  # status unchanged
    services.record_update(record=record, data={"status": "Contacted"})
    services.record_update(record=record, data={"status": "Qualified"})
    process_all()
    log = AutomationLog.objects.get()
    assert log.old_data["status"] == "New" and log.record_snapshot["data"]["status"] == "Contacted"


def test_deleted_record_keeps_its_log(entity, make_rule, scripted):
    make_rule(trigger_type="record_deleted")
    record = services.record_create(entity=entity, data={"name": "Ada"})
    record_id = record.id
    services.record_delete(record=record)
    process_all()
    log = AutomationLog.objects.get()
    assert log.record_id == record_id and log.record_snapshot["data"] == {"name": "Ada"}
    assert not Record.objects.filter(pk=record_id).exists()


def test_bulk_create_fires_per_record_with_a_batch_id(entity, make_rule, scripted):
    make_rule()
    services.record_bulk_create(entity=entity, items=[{"name": f"L{i}"} for i in range(30)])
    assert process_all() == 30
    assert AutomationLog.objects.filter(status=RunStatus.SUCCESS).count() == 30
    assert AutomationLog.objects.values("batch_id").distinct().count() == 1


def test_events_are_processed_once(entity, make_rule, scripted):
    make_rule()
    services.record_create(entity=entity, data={"name": "Ada"})
    ids = list(AutomationEvent.objects.values_list("id", flat=True))
    tasks.handle_events(ids=ids)
    tasks.handle_events(ids=ids)
    assert AutomationLog.objects.count() == 1
    assert len(scripted.calls) == 1


def test_retry_schedule_then_success(entity, make_rule, scripted, settings, worker):
    settings.AUTOMATIONS_RETRY_SCHEDULE = [5, 300, 1800]
    settings.AUTOMATIONS_RETRY_JITTER = 0
    scripted.outcomes = [RetryableActionError("HTTP 500"), RetryableActionError("HTTP 503"), {"ok": "third"}]
    make_rule()
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        process_all()
        log = AutomationLog.objects.get()
        assert log.status == RunStatus.RETRYING and log.attempts == 1
        assert log.next_attempt_at == T0 + dt.timedelta(seconds=5)
        assert "HTTP 500" in log.error
        clock.shift(4)
        assert run_due(log.pk) is None  # not due yet
        clock.shift(1)
        run_due(log.pk)
        log.refresh_from_db()
        assert log.status == RunStatus.RETRYING and log.attempts == 2
        assert log.next_attempt_at == T0 + dt.timedelta(seconds=5 + 300)
        clock.shift(300)
        run_due(log.pk)
        log.refresh_from_db()
    assert log.status == RunStatus.SUCCESS and log.attempts == 3 and log.result == {"ok": "third"}
    assert [c.attempt for c in scripted.calls] == [1, 2, 3]
    assert len({c.delivery_id for c in scripted.calls}) == 1  # same webhook-id on every attempt


def test_retry_after_is_honoured_and_capped(settings):
    settings.AUTOMATIONS_RETRY_SCHEDULE = [5, 300]
    settings.AUTOMATIONS_RETRY_JITTER = 0
    settings.AUTOMATIONS_RETRY_AFTER_MAX = 600
    assert retry_policy.retry_delay(1) == 5
    assert retry_policy.retry_delay(1, retry_after=120) == 120
    assert retry_policy.retry_delay(1, retry_after=1) == 5
    assert retry_policy.retry_delay(2, retry_after=10_000) == 600
    assert retry_policy.retry_delay(3) is None


def test_jitter_stays_within_ten_percent(settings):
    settings.AUTOMATIONS_RETRY_SCHEDULE = [300]
    settings.AUTOMATIONS_RETRY_JITTER = 0.1
    delays = {retry_policy.retry_delay(1) for _ in range(200)}
    assert min(delays) >= 270 and max(delays) <= 330 and len(delays) > 1


def test_last_attempt_fails_for_good(entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_RETRY_SCHEDULE = [5]
    settings.AUTOMATIONS_RETRY_JITTER = 0
    scripted.outcomes = [RetryableActionError("timeout"), RetryableActionError("timeout again")]
    rule = make_rule()
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        process_all()
        clock.shift(5)
        log = run_due(AutomationLog.objects.get().pk)
    assert log.status == RunStatus.ERROR and log.attempts == 2 and log.error == "timeout again"
    rule.refresh_from_db()
    assert rule.consecutive_failures == 1


def test_permanent_error_fails_at_once(entity, make_rule, scripted):
    scripted.outcomes = [PermanentActionError("HTTP 400", result={"status_code": 400})]
    make_rule()
    services.record_create(entity=entity, data={"name": "Ada"})
    process_all()
    log = AutomationLog.objects.get()
    assert log.status == RunStatus.ERROR and log.attempts == 1 and log.result == {"status_code": 400}


def test_unexpected_exception_is_retried_with_its_message(entity, make_rule, scripted):
    scripted.outcomes = [ZeroDivisionError("oops")]
    make_rule()
    services.record_create(entity=entity, data={"name": "Ada"})
    process_all()
    log = AutomationLog.objects.get()
    assert log.status == RunStatus.RETRYING and "ZeroDivisionError: oops" in log.error


def test_auto_disable_after_consecutive_failures_and_email(entity, make_rule, scripted, settings, members):
    settings.AUTOMATIONS_MAX_CONSECUTIVE_FAILURES = 3
    rule = make_rule(name="Flaky hook")
    scripted.outcomes = [PermanentActionError("HTTP 400")] * 2 + [{"ok": True}] + [PermanentActionError("HTTP 404")] * 3
    for i in range(3):
        services.record_create(entity=entity, data={"name": f"L{i}"})
        process_all()
    rule.refresh_from_db()
    assert rule.is_active and rule.consecutive_failures == 0  # the success reset the count
    for i in range(3):
        services.record_create(entity=entity, data={"name": f"M{i}"})
        process_all()
    rule.refresh_from_db()
    assert not rule.is_active and rule.consecutive_failures == 3
    assert "3 failed runs in a row" in rule.disabled_reason and "HTTP 404" in rule.disabled_reason
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    owner_admin = {members["owner"].email, members["admin"].email}
    assert set(message.to) == owner_admin
    assert "Flaky hook" in message.subject and "HTTP 404" in message.body


def test_gone_disables_the_rule_at_once(entity, make_rule, scripted, members):
    scripted.outcomes = [PermanentActionError("HTTP 410 Gone", disable_rule=True)]
    rule = make_rule()
    services.record_create(entity=entity, data={"name": "Ada"})
    process_all()
    rule.refresh_from_db()
    assert not rule.is_active and "gone" in rule.disabled_reason
    assert len(mail.outbox) == 1


def test_a_rules_own_change_does_not_retrigger_it(entity, make_rule, scripted):
    rule = make_rule(trigger_type="record_updated")

    def touch(ctx):
        record = Record.objects.get(pk=ctx.record_id)
        services.record_update(record=record, data={"company": f"touched {ctx.attempt}"})
        return {"touched": True}

    scripted.outcomes = [touch, touch, touch]
    record = services.record_create(entity=entity, data={"name": "Ada"})
    services.record_update(record=record, data={"name": "Ada L."})
    for _ in range(5):
        process_all()
    assert AutomationLog.objects.filter(automation=rule).count() == 1
    event = AutomationEvent.objects.order_by("-created_at").first()
    assert event.chain == [{"rule_id": str(rule.id), "record_id": str(record.id)}] and event.chain_depth == 1


def _setter(field, value):
    def act(ctx):
        record = Record.objects.get(pk=ctx.record_id)
        services.record_update(record=record, data={field: value})
        return {"set": field}

    return act


def test_chains_stop_at_max_depth_logged_as_skipped(entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_MAX_CHAIN_DEPTH = 3
    # Each rule's change triggers the next one: name -> company -> amount -> status -> email.
    for name, field, (target, value) in [
        ("R1", "name", ("company", "ACME")),
        ("R2", "company", ("amount", 5)),
        ("R3", "amount", ("status", "Contacted")),
        ("R4", "status", ("email", "x@example.com")),
    ]:
        make_rule(
            name=name,
            trigger_type="field_updated",
            trigger_config={"field_name": field},
            action_config={"note": f"{target}={value}"},
        )
    scripted.outcomes = [_setter("company", "ACME"), _setter("amount", 5), _setter("status", "Contacted")]
    record = services.record_create(entity=entity, data={"name": "Ada"})
    services.record_update(record=record, data={"name": "Ada L."})
    for _ in range(6):
        process_all()
    logs = list(AutomationLog.objects.order_by("chain_depth"))
    assert [(log.automation.name, log.chain_depth, log.status) for log in logs] == [
        ("R1", 0, "success"),
        ("R2", 1, "success"),
        ("R3", 2, "success"),
        ("R4", 3, "skipped"),
    ]
    assert "AUTOMATIONS_MAX_CHAIN_DEPTH (3)" in logs[-1].error
    assert Record.objects.get(pk=record.pk).data.get("email") is None


def test_a_cycle_between_two_rules_stops_at_the_first_repeat(entity, make_rule, scripted):
    make_rule(name="A", trigger_type="field_updated", trigger_config={"field_name": "name"})
    make_rule(name="B", trigger_type="field_updated", trigger_config={"field_name": "company"})
    scripted.outcomes = [_setter("company", "ACME"), _setter("name", "Changed by B")] * 5
    record = services.record_create(entity=entity, data={"name": "Ada"})
    services.record_update(record=record, data={"name": "Ada L."})
    for _ in range(6):
        process_all()
    assert [(log.automation.name, log.chain_depth) for log in AutomationLog.objects.order_by("chain_depth")] == [
        ("A", 0),
        ("B", 1),
    ]


def _match_without_executing():
    """A worker matched the waiting events and claimed their runs, then died before executing them."""
    return matching.take_and_match().runs


def test_take_over_resumes_a_run_whose_worker_is_stuck_once_its_lease_expires(entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_RUN_LEASE_SECONDS = 60
    make_rule()
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        runs = _match_without_executing()
        assert len(runs) == 1
        log = AutomationLog.objects.get()
        assert log.status == RunStatus.RUNNING and log.lease_until == T0 + dt.timedelta(seconds=60)
        assert tasks.take_over().executed == []  # lease still held
        clock.shift(61)
        assert len(tasks.take_over().executed) == 1
    log.refresh_from_db()
    assert log.status == RunStatus.SUCCESS and log.attempts == 2
    assert len(scripted.calls) == 1


def test_take_over_resumes_a_dead_workers_runs_without_waiting_for_the_lease(entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_RUN_LEASE_SECONDS = 600
    settings.AUTOMATIONS_WORKER_DEAD_AFTER_SECONDS = 15
    make_rule()
    registration = heartbeats.Registration()
    with time_machine.travel(T0, tick=False) as clock:
        registration.register(queue="database", worker_id="doomed", beat_in_background=False)  # the clock decides
        heartbeats.current.worker_id, saved = "doomed", heartbeats.current.worker_id
        try:
            services.record_create(entity=entity, data={"name": "Ada"})
            _match_without_executing()
        finally:
            heartbeats.current.worker_id = saved
        assert AutomationLog.objects.get().worker_id == "doomed"
        clock.shift(10)
        assert tasks.take_over().executed == []  # its heartbeat is 10 s old: alive
        clock.shift(6)
        (log,) = tasks.take_over().executed  # 16 s of silence: dead, its run is taken over at once
        assert WorkerProcess.objects.get(id="doomed").stopped_at == T0 + dt.timedelta(seconds=16)
        assert registration.beat() is False and registration.lost.is_set()  # it learns it lost its registration
    assert log.status == RunStatus.SUCCESS and log.attempts == 2


def test_a_waiting_event_is_matched_by_the_next_worker_pass(entity, make_rule, scripted):
    """The event row is the message: nothing else has to arrive for a worker to take it."""
    make_rule()
    services.record_create(entity=entity, data={"name": "Ada"})
    assert AutomationEvent.objects.filter(processed_at__isnull=True).count() == 1
    assert process_all() == 1
    assert AutomationLog.objects.get().status == RunStatus.SUCCESS


def test_recover_lost_processes_events_and_runs_whose_message_never_came(entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_RECOVERY_GRACE_SECONDS = 30
    settings.AUTOMATIONS_RETRY_JITTER = 0
    scripted.outcomes = [RetryableActionError("HTTP 500"), {"ok": True}, {"ok": True}]
    make_rule()
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        process_all()  # first attempt fails: a retry is due at T0 + 5 s
        services.record_create(entity=entity, data={"name": "Bob"})  # its message is lost
        assert tasks.recover_lost() == {"events": 0, "runs": 0}  # not older than the grace yet
        clock.shift(36)
        assert tasks.recover_lost() == {"events": 1, "runs": 1}
    assert set(AutomationLog.objects.values_list("status", flat=True)) == {RunStatus.SUCCESS}


def test_a_late_worker_cannot_overwrite_a_run_it_lost(entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_RUN_LEASE_SECONDS = 60
    make_rule()
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        ((stale_log, rule),) = _match_without_executing()
        clock.shift(61)
        tasks.take_over()  # another worker takes over and finishes
        scripted.outcomes = [PermanentActionError("late failure")]
        executor.execute(stale_log, rule)  # the first worker wakes up late
    log = AutomationLog.objects.get()
    assert log.status == RunStatus.SUCCESS and log.error == ""


def test_throttled_rule_runs_wait_and_say_so(entity, make_rule, scripted):
    rule = make_rule(max_runs_per_minute=2)
    with time_machine.travel(T0, tick=False):
        services.record_bulk_create(entity=entity, items=[{"name": f"L{i}"} for i in range(5)])
        process_all()
    logs = list(AutomationLog.objects.filter(automation=rule).order_by("next_attempt_at", "created_at"))
    assert sum(log.status == RunStatus.SUCCESS for log in logs) == 2
    waiting = [log for log in logs if log.status == RunStatus.PENDING]
    assert len(waiting) == 3
    assert all(log.result["throttled"] for log in waiting)
    assert sorted(log.next_attempt_at for log in waiting) == [
        T0 + dt.timedelta(seconds=60),
        T0 + dt.timedelta(seconds=60),
        T0 + dt.timedelta(seconds=120),
    ]


BATCH_QUERIES = 6 if connection.vendor == "postgresql" else 7


def test_unthrottled_rules_make_no_throttle_queries(entity, make_rule, scripted, django_assert_num_queries):
    make_rule()
    services.record_bulk_create(entity=entity, items=[{"name": f"L{i}"} for i in range(40)])
    # savepoint, take the events (PostgreSQL: one UPDATE ... RETURNING; elsewhere select + update), rule
    # lookup, insert the runs, release savepoint; then the 40 successes in one statement: nothing per rule
    # or per event, and no throttle count.
    with django_assert_num_queries(BATCH_QUERIES):
        assert len(tasks.handle_events(limit=100).executed) == 40


def test_a_throttled_rule_counts_its_recent_runs_once_per_batch(entity, make_rule, scripted, django_assert_num_queries):
    make_rule(max_runs_per_minute=100)
    services.record_bulk_create(entity=entity, items=[{"name": f"L{i}"} for i in range(40)])
    with django_assert_num_queries(BATCH_QUERIES + 1):  # + one count of the rule's runs in the last minute
        assert len(tasks.handle_events(limit=100).executed) == 40


def test_manual_retry_requeues_with_same_delivery_id(entity, make_rule, scripted):
    scripted.outcomes = [PermanentActionError("HTTP 400"), {"ok": "again"}]
    make_rule()
    services.record_create(entity=entity, data={"name": "Ada"})
    process_all()
    log = AutomationLog.objects.get()
    automation_services.log_retry(log=log)
    assert run_due(log.pk).status == RunStatus.SUCCESS
    assert scripted.calls[0].delivery_id == scripted.calls[1].delivery_id


def test_inactive_rule_runs_are_skipped(entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_RETRY_JITTER = 0
    scripted.outcomes = [RetryableActionError("HTTP 500")]
    rule = make_rule()
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        process_all()
        rule.is_active = False
        rule.save()
        clock.shift(10)
        log = run_due(AutomationLog.objects.get().pk)
    assert log.status == RunStatus.SKIPPED and "inactive" in log.error


@pytest.mark.django_db(transaction=True)
def test_real_worker_loop_drains_the_queue(entity, make_rule, scripted, worker):
    make_rule()
    services.record_bulk_create(entity=entity, items=[{"name": f"L{i}"} for i in range(10)])
    services.record_create(entity=entity, data={"name": "single"})
    worker()
    assert AutomationLog.objects.filter(status=RunStatus.SUCCESS).count() == 11
    assert AutomationEvent.objects.filter(processed_at__isnull=True).count() == 0


@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_deferred_retries_when_due(entity, make_rule, scripted, worker, settings):
    if not settings.AUTOMATIONS_EMBEDDED_QUEUE:
        pytest.skip(
            "a frozen clock does not reach RQ's scheduler (its own process, Redis time); on RQ the deferred "
            "retries are shown with real time by test_faults (500, 500, 500, then 200)"
        )
    settings.AUTOMATIONS_RETRY_SCHEDULE = [5]
    settings.AUTOMATIONS_RETRY_JITTER = 0
    scripted.outcomes = [RetryableActionError("HTTP 503", retry_after=20), {"ok": True}]
    make_rule()
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        worker()
        log = AutomationLog.objects.get()
        assert log.status == RunStatus.RETRYING
        assert log.next_attempt_at == start + dt.timedelta(seconds=20)  # Retry-After beat the schedule
        clock.shift(19)
        worker()
        assert AutomationLog.objects.get().status == RunStatus.RETRYING
        clock.shift(1)
        worker()
    assert AutomationLog.objects.get().status == RunStatus.SUCCESS
