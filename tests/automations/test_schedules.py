"""Time-based triggers in the engine, with frozen clocks: cron occurrences (time zones, daylight saving),
firing a page of records at a time, the catch-up window, too many records, due times of date fields."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine

from automations import schedules, tasks
from automations.models import AutomationLog, DueTime, RuleSchedule, RunStatus
from records import services
from tests.factories import RecordFactory

UTC = dt.UTC
PARIS = ZoneInfo("Europe/Paris")


def at(*args, tz=UTC):
    return dt.datetime(*args, tzinfo=tz)


def fire():
    """One worker pass: time turned into runs, and the due runs executed."""
    tasks.fire_time_triggers()
    tasks.handle_due_runs(limit=10_000)


@pytest.fixture
def scheduled_rule(make_rule):
    def make(cron="0 9 * * *", tz="UTC", **kwargs):
        rule = make_rule(trigger_type="scheduled", trigger_config={"cron": cron, "timezone": tz}, **kwargs)
        schedules.rule_changed(rule)
        return rule

    return make


def test_occurrences_follow_the_time_zone_across_daylight_saving():
    config = {"cron": "30 2 * * *", "timezone": "Europe/Paris"}
    # 29 March 2026: 02:00 -> 03:00 in Paris; 02:30 does not exist: it runs once, at 03:00 (01:00 UTC)
    spring = schedules.occurrences_after(config, at(2026, 3, 28, 12, 0), 2)
    assert [m.astimezone(PARIS).strftime("%d %H:%M") for m in spring] == ["29 03:00", "30 02:30"]
    # 25 October 2026: 03:00 -> 02:00; 02:30 happens twice: it runs once
    autumn = schedules.occurrences_after(config, at(2026, 10, 24, 12, 0), 2)
    assert [m.astimezone(PARIS).strftime("%d %H:%M") for m in autumn] == ["25 02:30", "26 02:30"]
    assert autumn[1] - autumn[0] == dt.timedelta(hours=25)
    # every Monday at 9:00 in Paris is 08:00 UTC in winter, 07:00 in summer
    mondays = schedules.occurrences_after({"cron": "0 9 * * 1", "timezone": "Europe/Paris"}, at(2026, 3, 20), 3)
    assert [m.strftime("%m-%d %H:%M") for m in mondays] == ["03-23 08:00", "03-30 07:00", "04-06 07:00"]


@pytest.mark.parametrize(
    ("expr", "problem"), [("61 * * * *", "Invalid"), ("0 0 * * * *", "5 fields"), ("", "5 fields")]
)
def test_bad_cron_expressions_are_refused(expr, problem):
    with pytest.raises(ValueError, match=problem):
        schedules.check_cron(expr)


def test_an_occurrence_runs_the_rule_once_for_each_matching_record(entity, scheduled_rule, scripted):
    with time_machine.travel(at(2026, 5, 4, 8, 0), tick=False) as clock:
        new = [RecordFactory(entity=entity, data={"name": f"N{i}", "status": "New"}) for i in range(3)]
        RecordFactory(entity=entity, data={"name": "W", "status": "Won"})
        rule = scheduled_rule(conditions={"match": "all", "rules": [{"field": "status", "op": "eq", "value": "New"}]})
        assert RuleSchedule.objects.get(rule=rule).next_fire_at == at(2026, 5, 4, 9, 0)
        fire()
        assert not AutomationLog.objects.exists()  # not 9:00 yet
        clock.move_to(at(2026, 5, 4, 9, 0, 2))
        fire()
        fire()  # a second pass (or another worker) adds nothing
    logs = list(AutomationLog.objects.filter(automation=rule))
    assert sorted(log.record_id for log in logs) == sorted(r.pk for r in new)
    assert {log.status for log in logs} == {RunStatus.SUCCESS}
    assert {log.due_at for log in logs} == {at(2026, 5, 4, 9, 0)}
    assert {c.occurrence for c in scripted.calls} == {at(2026, 5, 4, 9, 0).isoformat()}
    assert RuleSchedule.objects.get(rule=rule).next_fire_at == at(2026, 5, 5, 9, 0)


def test_a_big_occurrence_is_fired_a_page_at_a_time_and_never_twice(entity, scheduled_rule, scripted, monkeypatch):
    monkeypatch.setattr(schedules, "PAGE", 7)
    with time_machine.travel(at(2026, 5, 4, 8, 0), tick=False) as clock:
        services.record_bulk_create(entity=entity, items=[{"name": f"L{i}"} for i in range(30)])
        rule = scheduled_rule()
        clock.move_to(at(2026, 5, 4, 9, 0))
        assert len(schedules.work_schedules(pages=2)) == 14  # two pages, then the worker moves on
        state = RuleSchedule.objects.get(rule=rule)
        assert state.firing_at == at(2026, 5, 4, 9, 0) and state.cursor is not None
        schedules.work_schedules(pages=100)
        tasks.handle_due_runs(limit=1000)
    assert AutomationLog.objects.filter(automation=rule, status=RunStatus.SUCCESS).count() == 30
    assert RuleSchedule.objects.get(rule=rule).firing_at is None


def test_occurrences_missed_while_no_worker_ran(entity, scheduled_rule, scripted, settings):
    settings.AUTOMATIONS_SCHEDULE_CATCHUP_SECONDS = 3 * 3600
    with time_machine.travel(at(2026, 5, 4, 0, 30), tick=False) as clock:
        RecordFactory(entity=entity, data={"name": "Ada"})
        rule = scheduled_rule(cron="0 * * * *")  # every hour
        clock.move_to(at(2026, 5, 4, 6, 10))  # workers were down from 00:30 to 06:10
        for _ in range(5):
            fire()
    logs = list(AutomationLog.objects.filter(automation=rule).order_by("due_at"))
    missed = [log.due_at.hour for log in logs if log.status == RunStatus.SKIPPED]
    ran = [log.due_at.hour for log in logs if log.status == RunStatus.SUCCESS]
    assert missed == [1, 2, 3] and all("missed" in log.error for log in logs if log.status == RunStatus.SKIPPED)
    assert ran == [4, 5, 6]  # less than 3 h late at 06:10: they fire; 03:00 is 3 h 10 min late: missed
    assert RuleSchedule.objects.get(rule=rule).next_fire_at == at(2026, 5, 4, 7, 0)


def test_an_occurrence_with_too_many_records_is_logged_skipped(entity, scheduled_rule, scripted, settings):
    settings.AUTOMATIONS_SCHEDULE_MAX_RECORDS = 5
    with time_machine.travel(at(2026, 5, 4, 8, 0), tick=False) as clock:
        services.record_bulk_create(entity=entity, items=[{"name": f"L{i}"} for i in range(6)])
        rule = scheduled_rule()
        clock.move_to(at(2026, 5, 4, 9, 0))
        fire()
    (log,) = AutomationLog.objects.filter(automation=rule)
    assert log.status == RunStatus.SKIPPED and "6 records match" in log.error and log.record_id is None


def test_turning_a_scheduled_rule_off_drops_its_schedule(entity, scheduled_rule, scripted):
    rule = scheduled_rule()
    rule.is_active = False
    schedules.rule_changed(rule)
    assert not RuleSchedule.objects.filter(rule=rule).exists()


@pytest.fixture
def dated_entity(entity):
    entity.fields = [
        *entity.fields,
        {"name": "due", "type": "datetime", "required": False, "options": []},
        {"name": "day", "type": "date", "required": False, "options": []},
    ]
    entity.save()
    return entity


def test_due_times_are_computed_in_the_background_and_fire_once_each(dated_entity, make_rule, scripted, settings):
    with time_machine.travel(at(2026, 5, 4, 8, 0), tick=False) as clock:
        soon = RecordFactory(entity=dated_entity, data={"name": "soon", "due": "2026-05-04T10:00:00+00:00"})
        RecordFactory(entity=dated_entity, data={"name": "past", "due": "2026-05-04T07:00:00+00:00"})
        RecordFactory(entity=dated_entity, data={"name": "empty"})
        day = RecordFactory(entity=dated_entity, data={"name": "day", "day": "2026-05-05"})
        rule = make_rule(
            trigger_type="date_reached",
            trigger_config={"field": "due", "offset_seconds": -3600, "timezone": "UTC"},
        )
        day_rule = make_rule(
            trigger_type="date_reached",
            trigger_config={"field": "day", "offset_seconds": 0, "timezone": "Europe/Paris"},
        )
        schedules.rule_changed(rule)
        schedules.rule_changed(day_rule)
        fire()  # the rebuild runs in the worker
        assert {(d.record_id, d.due_at) for d in DueTime.objects.all()} == {
            (soon.pk, at(2026, 5, 4, 9, 0)),
            (day.pk, at(2026, 5, 4, 22, 0)),  # 00:00 in Paris (summer time)
        }
        clock.move_to(at(2026, 5, 4, 9, 0))
        fire()
        fire()
        clock.move_to(at(2026, 5, 4, 22, 0))
        fire()
    assert sorted((log.record_snapshot["data"]["name"], log.status) for log in AutomationLog.objects.all()) == [
        ("day", "success"),
        ("soon", "success"),
    ]
    assert not DueTime.objects.exists()


def test_a_due_time_missed_beyond_the_catch_up_window_is_logged_skipped(dated_entity, make_rule, scripted, settings):
    settings.AUTOMATIONS_SCHEDULE_CATCHUP_SECONDS = 600
    with time_machine.travel(at(2026, 5, 4, 8, 0), tick=False) as clock:
        RecordFactory(entity=dated_entity, data={"name": "Ada", "due": "2026-05-04T09:00:00+00:00"})
        rule = make_rule(trigger_type="date_reached", trigger_config={"field": "due", "offset_seconds": 0})
        schedules.rule_changed(rule)
        fire()
        clock.move_to(at(2026, 5, 4, 9, 11))
        fire()
    (log,) = AutomationLog.objects.all()
    assert log.status == RunStatus.SKIPPED and "missed" in log.error and not scripted.calls
