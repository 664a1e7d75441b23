"""Time-based triggers through the API and the worker: validation, schedules armed, due times that follow
the records, edges of conditions_met, dry runs telling when a rule would fire (frozen clocks)."""

import datetime as dt

import pytest
import time_machine

from automations import tasks
from automations.models import AutomationLog, DueTime, RuleSchedule, RunStatus
from records import services as record_services

pytestmark = pytest.mark.django_db

UTC = dt.UTC
T0 = dt.datetime(2026, 7, 6, 8, 0, tzinfo=UTC)  # a Monday


def url(workspace, *parts) -> str:
    tail = "".join(f"{part}/" for part in parts)
    return f"/api/v1/workspaces/{workspace.pk}/automations/{tail}"


@pytest.fixture
def dated(entity):
    entity.fields = [*entity.fields, {"name": "due", "type": "datetime", "required": False, "options": []}]
    entity.save()
    return entity


def rule_body(entity, trigger_type, trigger_config, **extra):
    return {
        "name": "Timed",
        "entity_id": str(entity.pk),
        "trigger_type": trigger_type,
        "trigger_config": trigger_config,
        "steps": [{"type": "create_task", "config": {"title": "Remind {{ name }} ({{ occurrence }})"}}],
        **extra,
    }


@pytest.mark.parametrize(
    ("trigger_type", "config", "extra", "key", "message"),
    [
        ("scheduled", {"cron": "61 * * * *"}, {}, "trigger_config.cron", "Invalid cron"),
        ("scheduled", {"cron": "0 0 * * * *"}, {}, "trigger_config.cron", "5 fields"),
        ("scheduled", {"cron": "0 9 * * 1", "timezone": "Mars/Olympus"}, {}, "trigger_config.timezone", "Unknown"),
        ("scheduled", {}, {}, "trigger_config.cron", "required"),
        ("date_reached", {"field": "name"}, {}, "trigger_config.field", "not a date"),
        ("date_reached", {"field": "nope"}, {}, "trigger_config.field", "Unknown field"),
        ("date_reached", {"field": "due", "offset_seconds": 367 * 86400}, {}, "trigger_config.offset_seconds", ""),
        ("conditions_met", {}, {}, "conditions", "needs conditions"),
        ("scheduled", {"cron": "0 9 * * 1", "every": 2}, {}, "trigger_config.every", "Unknown option"),
    ],
)
def test_bad_time_triggers_are_a_400_naming_the_key(api, owner, dated, trigger_type, config, extra, key, message):
    body = rule_body(dated, trigger_type, config, **extra)
    response = api.as_user(owner).post(url(dated.workspace), body, format="json")
    assert response.status_code == 400, response.json()
    assert key in response.json()["errors"] and message in " ".join(response.json()["errors"][key])
    assert not RuleSchedule.objects.exists()


def test_a_scheduled_rule_is_armed_and_a_dry_run_tells_its_next_occurrences(api, owner, entity):
    with time_machine.travel(T0, tick=False):
        body = rule_body(entity, "scheduled", {"cron": "0 9 * * 1", "timezone": "Europe/Paris"})
        rule = api.as_user(owner).post(url(entity.workspace), body, format="json").json()["data"]["automation"]
        assert rule["trigger_config"] == {"cron": "0 9 * * 1", "timezone": "Europe/Paris"}
        assert RuleSchedule.objects.get(rule_id=rule["id"]).next_fire_at == dt.datetime(2026, 7, 13, 7, 0, tzinfo=UTC)
        record = record_services.record_create(entity=entity, data={"name": "Ada"})
        result = api.post(
            url(entity.workspace, rule["id"], "test"), {"record_id": str(record.pk), "dry_run": True}, format="json"
        ).json()["data"]["test_result"]
    assert result["next_occurrences"][:2] == ["2026-07-13T07:00:00+00:00", "2026-07-20T07:00:00+00:00"]
    assert len(result["next_occurrences"]) == 5 and result["trigger_matches"] is True


def test_a_scheduled_rule_runs_for_matching_records_at_its_occurrence(api, owner, entity):
    with time_machine.travel(T0, tick=False) as clock:
        conditions = {"match": "all", "rules": [{"field": "status", "op": "eq", "value": "New"}]}
        body = rule_body(entity, "scheduled", {"cron": "0 9 * * *"}, conditions=conditions)
        api.as_user(owner).post(url(entity.workspace), body, format="json")
        for name, status in (("Ada", "New"), ("Bob", "Contacted")):
            record_services.record_create(entity=entity, data={"name": name, "status": status})
        tasks.handle_events()
        clock.move_to(dt.datetime(2026, 7, 6, 9, 0, 1, tzinfo=UTC))
        tasks.fire_time_triggers()
        tasks.handle_due_runs()
    (log,) = AutomationLog.objects.filter(trigger_type="scheduled")
    assert log.status == RunStatus.SUCCESS and log.record_snapshot["data"]["name"] == "Ada"
    assert log.result["title"] == "Remind Ada (2026-07-06T09:00:00+00:00)"


def test_date_reached_follows_the_record_and_fires_once_per_due_time(api, owner, dated):
    with time_machine.travel(T0, tick=False) as clock:
        body = rule_body(dated, "date_reached", {"field": "due", "offset_seconds": -3600})
        rule = api.as_user(owner).post(url(dated.workspace), body, format="json").json()["data"]["automation"]
        record = record_services.record_create(entity=dated, data={"name": "Ada", "due": "2026-07-06T12:00:00Z"})
        never = record_services.record_create(entity=dated, data={"name": "No date"})
        past = record_services.record_create(entity=dated, data={"name": "Past", "due": "2026-07-06T08:30:00Z"})
        tasks.handle_events()
        tasks.fire_time_triggers()  # the rebuild for existing records
        assert {d.record_id: d.due_at for d in DueTime.objects.all()} == {
            record.pk: dt.datetime(2026, 7, 6, 11, 0, tzinfo=UTC)
        }  # empty and already-past due times never fire
        record_services.record_update(record=record, data={"due": "2026-07-06T14:00:00Z"})  # moved before firing
        tasks.handle_events()
        assert DueTime.objects.get().due_at == dt.datetime(2026, 7, 6, 13, 0, tzinfo=UTC)
        clock.move_to(dt.datetime(2026, 7, 6, 13, 0, tzinfo=UTC))
        tasks.fire_time_triggers()
        tasks.handle_due_runs()
        assert AutomationLog.objects.filter(automation_id=rule["id"], status=RunStatus.SUCCESS).count() == 1
        record_services.record_update(record=record, data={"name": "Ada L."})  # same date: nothing again
        record_services.record_update(record=record, data={"due": "2026-07-07T14:00:00Z"})  # new value: again
        tasks.handle_events()
        clock.move_to(dt.datetime(2026, 7, 7, 13, 0, tzinfo=UTC))
        tasks.fire_time_triggers()
        tasks.handle_due_runs()
    runs = AutomationLog.objects.filter(automation_id=rule["id"]).order_by("due_at")
    assert [(r.record_id, r.due_at.isoformat(), r.status) for r in runs] == [
        (record.pk, "2026-07-06T13:00:00+00:00", "success"),
        (record.pk, "2026-07-07T13:00:00+00:00", "success"),
    ]
    assert never.pk not in {r.record_id for r in runs} and past.pk not in {r.record_id for r in runs}


def test_deleting_the_record_or_turning_the_rule_off_cancels_due_times(api, owner, dated):
    with time_machine.travel(T0, tick=False):
        body = rule_body(dated, "date_reached", {"field": "due"})
        rule = api.as_user(owner).post(url(dated.workspace), body, format="json").json()["data"]["automation"]
        kept = record_services.record_create(entity=dated, data={"name": "A", "due": "2026-07-08T00:00:00Z"})
        gone = record_services.record_create(entity=dated, data={"name": "B", "due": "2026-07-08T00:00:00Z"})
        tasks.handle_events()
        record_services.record_delete(record=gone)
        tasks.handle_events()
        assert list(DueTime.objects.values_list("record_id", flat=True)) == [kept.pk]
        api.patch(url(dated.workspace, rule["id"]), {"is_active": False}, format="json")
        assert not DueTime.objects.exists() and not RuleSchedule.objects.exists()


def test_conditions_met_fires_on_the_edge_not_on_every_save(api, owner, entity):
    conditions = {
        "match": "all",
        "rules": [
            {"field": "amount", "op": "gt", "value": 10000},
            {"field": "status", "op": "eq", "value": "Qualified"},
        ],
    }
    body = rule_body(entity, "conditions_met", {}, conditions=conditions)
    rule = api.as_user(owner).post(url(entity.workspace), body, format="json").json()["data"]["automation"]
    deal = record_services.record_create(entity=entity, data={"name": "Deal", "amount": 5000, "status": "New"})
    born = record_services.record_create(entity=entity, data={"name": "Big", "amount": 20000, "status": "Qualified"})
    for change in ({"amount": 15000}, {"status": "Qualified"}, {"company": "ACME"}, {"amount": 16000}):
        record_services.record_update(record=deal, data=change)
    record_services.record_update(record=deal, data={"amount": 100})  # stops matching
    record_services.record_update(record=deal, data={"amount": 30000})  # matches again: a new edge
    tasks.handle_events()
    runs = AutomationLog.objects.filter(automation_id=rule["id"])
    fired = sorted((r.record_snapshot["data"]["amount"], r.record_id) for r in runs)
    assert fired == [(15000, deal.pk), (20000, born.pk), (30000, deal.pk)]
