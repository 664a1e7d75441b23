"""Rules with several steps, versions and replays through the HTTP API, as clients use them."""

import datetime as dt

import pytest
import time_machine

from automations import tasks
from automations.models import AutomationLog, AutomationRule, RuleVersion, RunStatus
from records import services as record_services
from records.models import Task
from tests.factories import RecordFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)


def url(workspace, *parts) -> str:
    tail = "".join(f"{part}/" for part in parts)
    return f"/api/v1/workspaces/{workspace.pk}/automations/{tail}"


THREE_STEPS = [
    {"type": "update_field", "config": {"field_name": "company", "new_value": "ACME"}},
    {"type": "create_task", "config": {"title": "Call {{ name }} at {{ company }}"}},
    {"type": "delay", "config": {"seconds": 3600}},
]


def body(entity, **overrides):
    return {
        "name": "Onboarding",
        "entity_id": str(entity.pk),
        "trigger_type": "record_created",
        "steps": THREE_STEPS,
        **overrides,
    }


def test_a_rule_with_steps_mirrors_its_first_step_in_the_single_action_fields(api, owner, entity):
    response = api.as_user(owner).post(url(entity.workspace), body(entity), format="json")
    assert response.status_code == 201, response.json()
    rule = response.json()["data"]["automation"]
    assert [s["type"] for s in rule["steps"]] == ["update_field", "create_task", "delay"]
    assert rule["action_type"] == "update_field"
    assert rule["action_config"] == {"field_name": "company", "new_value": "ACME"}
    assert rule["version"] == 1
    listed = api.get(url(entity.workspace)).json()["data"]["automations"][0]
    assert listed["steps"] == rule["steps"]


def test_the_single_action_form_still_makes_a_one_step_rule(api, owner, entity):
    single = {"name": "Task", "entity_id": str(entity.pk), "trigger_type": "record_created",
              "action_type": "create_task", "action_config": {"title": "T"}}  # fmt: skip
    rule = api.as_user(owner).post(url(entity.workspace), single, format="json").json()["data"]["automation"]
    assert rule["steps"] == [
        {"type": "create_task", "config": {"title": "T", "description": "", "due_in_days": None}}
    ] or (rule["steps"][0]["type"] == "create_task" and rule["steps"][0]["config"]["title"] == "T")
    # PATCH of action_config changes the first step; the other steps stay
    rule_id = rule["id"]
    more = [rule["steps"][0], {"type": "delay", "config": {"seconds": 60}}]
    api.patch(url(entity.workspace, rule_id), {"steps": more}, format="json")
    patched = api.patch(url(entity.workspace, rule_id), {"action_config": {"title": "U"}}, format="json").json()
    steps = patched["data"]["automation"]["steps"]
    assert steps[0]["config"]["title"] == "U" and steps[1] == {"type": "delay", "config": {"seconds": 60}}


def test_steps_and_single_action_that_disagree_are_refused(api, owner, entity):
    payload = body(entity, action_type="send_email", action_config={"subject": "x", "body": "y"})
    response = api.as_user(owner).post(url(entity.workspace), payload, format="json")
    assert response.status_code == 400 and "steps" in response.json()["errors"]
    assert not AutomationRule.objects.exists()


@pytest.mark.parametrize(
    ("steps", "key", "message"),
    [
        ([{"type": "create_task", "config": {"title": "t"}}] * 21, "steps", "1 to 20 steps"),
        ([{"type": "teleport", "config": {}}], "steps.0.type", "Unknown step type 'teleport'"),
        ([{"type": "delay", "config": {"seconds": 0}}], "steps.0.config.seconds", "greater than or equal to 1"),
        ([{"type": "delay", "config": {"seconds": 2_678_401}}], "steps.0.config.seconds", "less than or equal to"),
        ([{"type": "delay", "config": {"until_field": "email"}}], "steps.0.config.until_field", "not a date"),
        ([{"type": "delay", "config": {}}], "steps.0.config.seconds", "either seconds or until_field"),
        (
            [THREE_STEPS[0], {"type": "call_webhook", "config": {"url": "http://169.254.169.254/"}}],
            "steps.1.config.url",
            "",
        ),
        ([THREE_STEPS[0], {"type": "create_task", "config": {"title": "{{ name "}}], "steps.1.config.title", ""),
        (
            [{"type": "create_task", "config": {"title": "{{ steps[1].status_code }}"}}, THREE_STEPS[0]],
            "steps.0.config.title",
            "not an earlier step",
        ),
        ([{"type": "create_task", "config": {"title": "t", "titel": "x"}}], "steps.0.config.titel", "Unknown option"),
        ([{"type": "create_task", "config": {"title": "t"}, "extra": 1}], "steps.0.extra", "Unknown key"),
        ("not a list", "steps", "Must be a list"),
    ],
)
def test_bad_steps_are_a_400_naming_the_step_and_nothing_is_saved(api, owner, entity, steps, key, message):
    response = api.as_user(owner).post(url(entity.workspace), body(entity, steps=steps), format="json")
    assert response.status_code == 400, response.json()
    errors = response.json()["errors"]
    assert key in errors, errors
    assert message in " ".join(errors[key])
    assert not AutomationRule.objects.exists() and not RuleVersion.objects.exists()


def test_a_later_step_may_use_the_results_of_the_earlier_ones(api, owner, entity):
    steps = [
        {"type": "create_task", "config": {"title": "First"}},
        {"type": "create_task", "config": {"title": "After {{ steps[0].task_id }}"}},
    ]
    response = api.as_user(owner).post(url(entity.workspace), body(entity, steps=steps), format="json")
    assert response.status_code == 201, response.json()
    record_services.record_create(entity=entity, data={"name": "Ada"})
    tasks.handle_events()
    first, second = Task.objects.order_by("created_at")
    assert second.title == f"After {first.pk}"


def test_every_change_is_a_version_and_restore_makes_a_new_one(api, owner, entity):
    rule = api.as_user(owner).post(url(entity.workspace), body(entity), format="json").json()["data"]["automation"]
    api.patch(url(entity.workspace, rule["id"]), {"name": "Onboarding v2"}, format="json")
    api.patch(url(entity.workspace, rule["id"]), {"name": "Onboarding v2"}, format="json")  # no change: no version
    api.patch(url(entity.workspace, rule["id"]), {"steps": THREE_STEPS[:1], "is_active": False}, format="json")
    listed = api.get(url(entity.workspace, rule["id"], "versions")).json()["data"]
    assert listed["total"] == 3
    assert [(v["version"], v["changes"]) for v in listed["versions"]] == [
        (3, ["steps", "is_active"]),
        (2, ["name"]),
        (1, []),
    ]
    assert listed["versions"][0]["created_by"] == owner.username
    assert listed["versions"][2]["rule"]["name"] == "Onboarding" and len(listed["versions"][2]["rule"]["steps"]) == 3
    restored = api.post(url(entity.workspace, rule["id"], "versions", 1, "restore"), {}, format="json")
    assert restored.status_code == 200, restored.json()
    again = restored.json()["data"]["automation"]
    assert again["version"] == 4 and again["name"] == "Onboarding" and again["is_active"] is True
    assert again["steps"] == rule["steps"]
    assert api.post(url(entity.workspace, rule["id"], "versions", 99, "restore"), {}, format="json").status_code == 404


def test_a_run_log_shows_its_steps(api, owner, entity):
    with time_machine.travel(T0, tick=False):
        rule = api.as_user(owner).post(url(entity.workspace), body(entity), format="json").json()["data"]
        record_services.record_create(entity=entity, data={"name": "Ada"})
        tasks.handle_events()
    logs = api.get(url(entity.workspace, rule["automation"]["id"], "logs")).json()["data"]["logs"]
    (log,) = logs
    assert log["status"] == "pending" and log["current_step"] == 2 and log["rule_version"] == 1
    assert [(s["type"], s["status"]) for s in log["steps"]] == [
        ("update_field", "success"),
        ("create_task", "success"),
        ("delay", "waiting"),
    ]
    assert log["steps"][1]["result"]["title"] == "Call Ada at ACME"
    one = api.get(url(entity.workspace, rule["automation"]["id"], "logs", log["id"])).json()["data"]["log"]
    assert one["steps"] == log["steps"]


@pytest.fixture
def failing_rule(api, owner, entity, settings):
    """create_task, then a webhook to a closed port (fails for good with no retries), then a task."""
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True
    steps = [
        {"type": "create_task", "config": {"title": "One"}},
        {"type": "call_webhook", "config": {"url": "http://127.0.0.1:9/hook"}},
        {"type": "create_task", "config": {"title": "Three"}},
    ]
    response = api.as_user(owner).post(url(entity.workspace), body(entity, steps=steps), format="json")
    assert response.status_code == 201, response.json()
    return response.json()["data"]["automation"]


def test_replay_resumes_at_the_failed_step_or_from_a_given_step(api, owner, entity, failing_rule, settings):
    settings.AUTOMATIONS_RETRY_SCHEDULE = []  # no retries: the webhook step fails for good at once
    record_services.record_create(entity=entity, data={"name": "Ada"})
    tasks.handle_events()
    log = AutomationLog.objects.get()
    assert log.status == RunStatus.ERROR and log.current_step == 1
    assert [s["status"] for s in log.step_ledger] == ["success", "error", "skipped"]
    rule_url = url(entity.workspace, failing_rule["id"])
    replayed = api.post(f"{rule_url}logs/{log.pk}/retry/", {}, format="json")
    assert replayed.status_code == 202, replayed.json()
    assert [s["status"] for s in replayed.json()["data"]["log"]["steps"]] == ["success", "pending", "pending"]
    tasks.handle_due_runs()
    assert Task.objects.filter(title="One").count() == 1  # the first step was not run again
    log.refresh_from_db()
    assert log.status == RunStatus.ERROR and log.replays[0]["by"] == owner.pk and log.replays[0]["from_step"] == 1
    again = api.post(f"{rule_url}logs/{log.pk}/retry/", {"from_step": 0}, format="json")
    assert again.status_code == 202
    tasks.handle_due_runs()
    log.refresh_from_db()
    assert log.step_ledger[0]["status"] == "success" and log.replays[-1]["from_step"] == 0
    # run again from step 0, it is the same delivery: the task it made is found, not made twice
    assert Task.objects.filter(title="One").count() == 1
    bad = api.post(f"{rule_url}logs/{log.pk}/retry/", {"from_step": 3}, format="json")
    assert bad.status_code == 409 and "between 0 and 2" in bad.json()["message"]


def test_bulk_replay_by_status_and_time(api, owner, entity, failing_rule, settings):
    settings.AUTOMATIONS_RETRY_SCHEDULE = []
    with time_machine.travel(T0, tick=False) as clock:
        for i in range(3):
            record_services.record_create(entity=entity, data={"name": f"L{i}"})
            tasks.handle_events()
            clock.shift(3600)
    rule_url = url(entity.workspace, failing_rule["id"])
    response = api.as_user(owner).post(
        f"{rule_url}logs/retry/", {"status": "error", "since": "2026-06-01T09:30:00Z"}, format="json"
    )
    assert response.status_code == 202 and response.json()["data"] == {"retried": 2}
    assert AutomationLog.objects.filter(status=RunStatus.PENDING).count() == 2
    assert api.post(f"{rule_url}logs/retry/", {"status": "success"}, format="json").status_code == 400


def test_a_dry_run_previews_every_step_with_no_side_effects(api, owner, entity):
    steps = [
        {"type": "update_field", "config": {"field_name": "company", "new_value": "ACME"}},
        {"type": "delay", "config": {"seconds": 7200}},
        {
            "type": "send_email",
            "config": {"subject": "Hi {{ name }}", "body": "From {{ company }}", "to_email": "x@example.com"},
        },
    ]
    rule = api.as_user(owner).post(url(entity.workspace), body(entity, steps=steps), format="json").json()["data"]
    record = RecordFactory(entity=entity, data={"name": "Ada"})
    with time_machine.travel(T0, tick=False):
        response = api.post(
            url(entity.workspace, rule["automation"]["id"], "test"), {"record_id": str(record.pk), "dry_run": True},
            format="json",
        )  # fmt: skip
    result = response.json()["data"]["test_result"]
    assert result["success"] is True and [s["type"] for s in result["steps"]] == ["update_field", "delay", "send_email"]
    assert result["steps"][0]["preview"]["new_value"] == "ACME"
    assert result["steps"][1]["preview"] == {
        "resume_at": (T0 + dt.timedelta(hours=2)).isoformat(),
        "waits_seconds": 7200,
    }
    assert "From ACME" in result["steps"][2]["preview"]["text"]  # the email sees the field the first step sets
    assert result["preview"] == result["steps"][0]["preview"]
    record.refresh_from_db()
    assert "company" not in record.data and not AutomationLog.objects.exists()


def test_turning_a_rule_off_through_the_api_cancels_its_waiting_runs(api, owner, entity):
    rule = api.as_user(owner).post(url(entity.workspace), body(entity), format="json").json()["data"]["automation"]
    record_services.record_create(entity=entity, data={"name": "Ada"})
    tasks.handle_events()
    assert AutomationLog.objects.get().status == RunStatus.PENDING
    api.patch(url(entity.workspace, rule["id"]), {"is_active": False}, format="json")
    log = AutomationLog.objects.get()
    assert log.status == RunStatus.SKIPPED and "turned off" in log.error
    api.patch(url(entity.workspace, rule["id"]), {"is_active": True}, format="json")
    assert AutomationLog.objects.get().status == RunStatus.SKIPPED  # not resurrected


def test_the_openapi_schema_has_one_component_per_step_type(api, owner):
    schema = api.as_user(owner).get("/api/v1/schema/?format=json").json()
    components = schema["components"]["schemas"]
    for name in ("DelayStepConfig", "CallWebhookStepConfig", "CreateTaskStepConfig"):
        assert any(key.startswith(name) for key in components), name
