"""Rules with several steps, in the engine: order, data between steps, durable delays, per-step ledger,
retries per step, failure skipping the rest, the version a run started with (in-process worker passes)."""

import contextlib
import datetime as dt

import time_machine
from django.core import mail

from automations import health, tasks, versions
from automations.exceptions import PermanentActionError, RetryableActionError
from automations.models import AutomationLog, RunStatus
from records import services
from records.models import Record

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def step(note, type_="scripted"):
    return {"type": type_, "config": {"note": note}}


def wait(seconds):
    return {"type": "delay", "config": {"seconds": seconds}}


def run_everything():
    tasks.handle_events(limit=1000)
    tasks.handle_due_runs(limit=1000)


def states(log):
    return [(s["type"], s["status"], s["attempts"]) for s in log.step_states]


def test_steps_run_in_order_and_each_sees_the_earlier_results(entity, make_rule, scripted):
    seen = []

    def remember(ctx):
        seen.append((ctx.step_index, ctx.config["note"], list(ctx.steps), ctx.delivery_id))
        return {"n": ctx.step_index * 10}

    scripted.outcomes = [remember, remember, remember]
    rule = make_rule(steps=[step("a"), step("b"), step("c")])
    services.record_create(entity=entity, data={"name": "Ada"})
    run_everything()
    log = AutomationLog.objects.get()
    assert log.status == RunStatus.SUCCESS and log.current_step == 3 and log.rule_version == rule.version
    assert [s[:3] for s in seen] == [(0, "a", []), (1, "b", [{"n": 0}]), (2, "c", [{"n": 0}, {"n": 10}])]
    # the first step keeps the run's webhook-id, the others get their own, stable per (run, step)
    assert [s[3] for s in seen] == [log.delivery_id, f"{log.delivery_id}_1", f"{log.delivery_id}_2"]
    assert states(log) == [("scripted", "success", 1)] * 3
    assert [s["result"] for s in log.step_states] == [{"n": 0}, {"n": 10}, {"n": 20}]
    assert log.result == {"n": 20}


def test_a_step_sees_the_record_as_the_earlier_steps_left_it(entity, make_rule, scripted):
    seen = []
    scripted.outcomes = [lambda ctx: seen.append(ctx.record["data"]) or {"ok": True}]
    make_rule(
        steps=[
            {"type": "update_field", "config": {"field_name": "company", "new_value": "ACME for {{ name }}"}},
            step("look"),
            {"type": "create_task", "config": {"title": "Call {{ name }} at {{ company }} ({{ steps[0].new_value }})"}},
        ]
    )
    record = services.record_create(entity=entity, data={"name": "Ada"})
    run_everything()
    log = AutomationLog.objects.get()
    assert log.status == RunStatus.SUCCESS, log.error
    assert seen == [{"name": "Ada", "company": "ACME for Ada"}]
    task_id = log.step_states[2]["result"]["task_id"]
    from records.models import Task

    assert Task.objects.get(pk=task_id).title == "Call Ada at ACME for Ada (ACME for Ada)"
    assert Record.objects.get(pk=record.pk).data["company"] == "ACME for Ada"


def test_a_delay_waits_in_the_database_and_resumes_when_due(entity, make_rule, scripted):
    make_rule(steps=[step("before"), wait(3600), step("after")])
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        run_everything()
        log = AutomationLog.objects.get()
        assert log.status == RunStatus.PENDING and log.current_step == 1 and log.lease_until is None
        assert log.next_attempt_at == T0 + dt.timedelta(hours=1)
        assert states(log) == [("scripted", "success", 1), ("delay", "waiting", 0), ("scripted", "pending", 0)]
        assert log.step_states[1]["result"] == {"resume_at": (T0 + dt.timedelta(hours=1)).isoformat()}
        clock.shift(3599)
        assert tasks.handle_due_runs().executed == []  # not yet
        clock.shift(1)
        run_everything()
    log.refresh_from_db()
    assert log.status == RunStatus.SUCCESS and len(scripted.calls) == 2
    assert states(log) == [("scripted", "success", 1), ("delay", "success", 0), ("scripted", "success", 1)]


def test_a_delay_until_a_date_field_with_an_offset_and_one_in_the_past_goes_on(entity, make_rule, scripted):
    entity.fields = [*entity.fields, {"name": "due", "type": "datetime", "required": False, "options": []}]
    entity.save()
    make_rule(steps=[{"type": "delay", "config": {"until_field": "due", "offset_seconds": -600}}, step("remind")])
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada", "due": "2026-03-02T12:00:00+00:00"})
        services.record_create(entity=entity, data={"name": "Past", "due": "2026-03-01T12:00:00+00:00"})
        services.record_create(entity=entity, data={"name": "Empty"})
        run_everything()
        waiting = AutomationLog.objects.get(status=RunStatus.PENDING)
        assert waiting.next_attempt_at == dt.datetime(2026, 3, 2, 11, 50, tzinfo=dt.UTC)
        assert AutomationLog.objects.filter(status=RunStatus.SUCCESS).count() == 2  # past and empty: at once
        clock.move_to(dt.datetime(2026, 3, 2, 11, 50, tzinfo=dt.UTC))
        run_everything()
    assert AutomationLog.objects.filter(status=RunStatus.SUCCESS).count() == 3


def test_retries_are_per_step_and_a_done_step_never_runs_again(entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_RETRY_SCHEDULE = [5, 60]
    settings.AUTOMATIONS_RETRY_JITTER = 0
    scripted.outcomes = [{"first": 1}, RetryableActionError("HTTP 503"), {"second": 2}]
    make_rule(steps=[step("one"), step("two")])
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        run_everything()
        log = AutomationLog.objects.get()
        assert log.status == RunStatus.RETRYING and log.current_step == 1 and log.attempts == 1
        assert "Step 2, attempt 1 failed: HTTP 503" in log.error
        assert states(log) == [("scripted", "success", 1), ("scripted", "pending", 1)]
        clock.shift(5)
        run_everything()
    log.refresh_from_db()
    assert log.status == RunStatus.SUCCESS and states(log) == [("scripted", "success", 1), ("scripted", "success", 2)]
    assert [c.config["note"] for c in scripted.calls] == ["one", "two", "two"]
    assert [c.attempt for c in scripted.calls] == [1, 1, 2]


def test_a_step_failing_for_good_ends_the_run_and_skips_the_rest(entity, make_rule, scripted, members):
    scripted.outcomes = [{"ok": 1}, PermanentActionError("HTTP 400", result={"status_code": 400})]
    rule = make_rule(steps=[step("one"), step("two"), step("three")])
    services.record_create(entity=entity, data={"name": "Ada"})
    run_everything()
    log = AutomationLog.objects.get()
    assert log.status == RunStatus.ERROR and log.current_step == 1
    assert log.error == "Step 2 (scripted) failed: HTTP 400"
    assert [s["status"] for s in log.step_states] == ["success", "error", "skipped"]
    assert log.step_states[1]["result"] == {"status_code": 400}
    rule.refresh_from_db()
    assert rule.consecutive_failures == 1 and len(scripted.calls) == 2


def test_a_waiting_run_keeps_the_steps_of_the_version_it_started_with(entity, make_rule, scripted):
    rule = make_rule(steps=[step("v1 first"), wait(60), step("v1 last")])
    versions.record_version(rule)
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        run_everything()
        rule.steps = [step("v2 only")]
        rule.version = 2
        rule.save()
        versions.record_version(rule, changes=["steps"])
        clock.shift(60)
        run_everything()
    log = AutomationLog.objects.get()
    assert log.status == RunStatus.SUCCESS and log.rule_version == 1
    assert [c.config["note"] for c in scripted.calls] == ["v1 first", "v1 last"]


def test_turning_a_rule_off_cancels_its_waiting_runs_for_good(entity, make_rule, scripted, members):
    rule = make_rule(steps=[step("first"), wait(60), step("last")])
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        run_everything()
        assert health.disable(rule=rule, reason="Turned off by a test.")
        log = AutomationLog.objects.get()
        assert log.status == RunStatus.SKIPPED and "Cancelled: the rule was turned off" in log.error
        rule.is_active = True
        rule.save()
        clock.shift(120)
        run_everything()
    log.refresh_from_db()
    assert log.status == RunStatus.SKIPPED and len(scripted.calls) == 1
    assert len(mail.outbox) == 1


def test_a_worker_dying_between_steps_resumes_at_the_step_it_was_at(entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_RUN_LEASE_SECONDS = 60
    calls = []

    def first(ctx):
        calls.append("first")
        return {"ok": 1}

    def die(ctx):
        calls.append("second (killed)")
        raise SystemExit  # the process dies in the middle of the second step

    scripted.outcomes = [first, die, lambda ctx: calls.append("second again") or {"ok": 2}]
    make_rule(steps=[step("one"), step("two")])
    with time_machine.travel(T0, tick=False) as clock:
        services.record_create(entity=entity, data={"name": "Ada"})
        with contextlib.suppress(SystemExit):
            run_everything()
        log = AutomationLog.objects.get()
        assert log.status == RunStatus.RUNNING and log.current_step == 1
        clock.shift(61)
        tasks.take_over()
    log.refresh_from_db()
    assert log.status == RunStatus.SUCCESS and calls == ["first", "second (killed)", "second again"]
