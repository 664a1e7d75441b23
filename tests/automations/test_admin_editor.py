"""The admin rule editor's server side: the schema read from the type registries (a type registered
anywhere gets its form without admin code), the entity schema and pickers scoped to a workspace, the next
times of a cron, and the dry-run preview of unsaved content (no side effects)."""

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse
from rest_framework import serializers

from automations import services
from automations.action_types import action_types
from automations.action_types.base import ActionType
from automations.admin_editor import editor_schema, entity_schema, operators_for, result_keys
from automations.models import AutomationLog, AutomationRule
from automations.step_types import step_type_names
from automations.trigger_types import TriggerType, trigger_types
from records.models import Task
from tests.factories import EntityFactory, RecordFactory, UserFactory
from workspaces.field_types import field_types

pytestmark = pytest.mark.django_db


def url(name, *args):
    return reverse(f"admin:automations_automationrule_editor_{name}", args=args)


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pass-Word-123")
    client.force_login(user)
    return client


# --------------------------------------------------------------------------- types registered in this module


class RegionConfig(serializers.Serializer):
    region = serializers.ChoiceField(choices=[("eu", "Europe"), ("us", "United States")], help_text="Where.")
    retries = serializers.IntegerField(min_value=1, max_value=9, default=3, help_text="How often to try.")
    note = serializers.CharField(required=False, allow_blank=True, style={"example": "Bring coffee"})


class RegionTrigger(TriggerType):
    """Fires when a region wakes up (tests only)."""

    name = "region_woke"
    label = "Region woke up"
    event_types = ("updated",)
    config_serializer = RegionConfig


class RegionAction(ActionType):
    """Ping a region (tests only).

    Result: ``{"pinged", "latency_ms"}``.
    """

    name = "ping_region"
    label = "Ping a region"
    config_serializer = RegionConfig

    def execute(self, ctx):
        return {"pinged": True, "latency_ms": 1}

    def preview(self, ctx):
        return {"would_ping": ctx.config["region"], "retries": ctx.config["retries"]}


@pytest.fixture
def plugin_types():
    trigger_types.register(RegionTrigger())
    action_types.register(RegionAction())
    yield
    trigger_types.unregister(RegionTrigger.name)
    action_types.unregister(RegionAction.name)


def test_a_type_registered_anywhere_gets_its_form_fields_without_admin_code(admin_client, plugin_types):
    schema = admin_client.get(url("schema")).json()
    trigger = next(t for t in schema["triggers"] if t["name"] == "region_woke")
    action = next(s for s in schema["steps"] if s["name"] == "ping_region")
    for kind in (trigger, action):
        fields = {field["name"]: field for field in kind["fields"]}
        assert fields["region"]["kind"] == "choice"
        assert fields["region"]["choices"] == [["eu", "Europe"], ["us", "United States"]]
        assert fields["region"]["required"] is True and fields["region"]["help"] == "Where."
        assert fields["retries"] | {} == {
            **fields["retries"],
            "kind": "integer",
            "min_value": 1,
            "max_value": 9,
            "default": 3,
            "required": False,
            "label": "Retries",
            "help": "How often to try.",
        }
        assert fields["note"]["kind"] == "text" and fields["note"]["example"] == "Bring coffee"
    assert trigger["label"] == "Region woke up"
    assert trigger["description"] == "Fires when a region wakes up (tests only)."
    assert action["result_keys"] == ["pinged", "latency_ms"]  # {{ steps[i].pinged }} offered to later steps


def test_the_rule_form_offers_a_registered_trigger_type_and_validates_its_config(admin_client, plugin_types, entity):
    add = reverse("admin:automations_automationrule_add")
    html = admin_client.get(add + f"?workspace={entity.workspace_id}").content.decode()
    assert '<option value="region_woke">Region woke up</option>' in html
    data = {
        "workspace": str(entity.workspace_id),
        "entity": str(entity.pk),
        "name": "Regions",
        "trigger_type": "region_woke",
        "trigger_config": '{"region": "mars"}',
        "conditions": "{}",
        "steps": '[{"type": "ping_region", "config": {"region": "eu"}}]',
        "is_active": "on",
    }
    response = admin_client.post(add, data)
    errors = response.context["adminform"].form.rule_errors
    assert errors == {"trigger_config.region": ['"mars" is not a valid choice.']}
    data["trigger_config"] = '{"region": "us"}'
    assert admin_client.post(add, data).status_code == 302
    rule = AutomationRule.objects.get()
    assert rule.trigger_config == {"region": "us", "retries": 3}
    assert rule.steps == [{"type": "ping_region", "config": {"region": "eu", "retries": 3}}]


def test_schema_describes_every_registered_type_from_its_serializer():
    schema = editor_schema()
    assert [t["name"] for t in schema["triggers"]] == trigger_types.names()
    assert [s["name"] for s in schema["steps"]] == step_type_names()
    fields = {(kind["name"], f["name"]): f for kind in [*schema["triggers"], *schema["steps"]] for f in kind["fields"]}
    assert fields[("scheduled", "timezone")]["choices_from"] == "timezones"
    assert fields[("scheduled", "timezone")]["default"] == "UTC"
    assert fields[("date_reached", "offset_seconds")] | {} == {
        **fields[("date_reached", "offset_seconds")],
        "kind": "integer",
        "unit": "seconds",
        "min_value": -366 * 86400,
        "max_value": 366 * 86400,
    }
    assert fields[("send_email", "body")]["kind"] == "template" and fields[("send_email", "body")]["multiline"]
    assert fields[("send_email", "subject")]["mode"] == "subject"
    assert fields[("call_webhook", "method")]["choices"] == [["POST", "POST"], ["PUT", "PUT"], ["PATCH", "PATCH"]]
    headers = fields[("call_webhook", "headers")]
    assert headers["kind"] == "json" and headers["default"] == {}
    assert fields[("call_webhook", "secret_headers")]["kind"] == "list"
    assert fields[("update_field", "new_value")]["value_of"] == "field_name"
    assert fields[("delay", "until_field")]["choices_from"] == "moment_fields"
    assert schema["timezones"][0] == "UTC" and "Europe/Paris" in schema["timezones"]
    assert {op["op"] for op in schema["operators"]} >= {"eq", "gte", "contains", "in", "is_empty", "changed"}
    for kind in [*schema["triggers"], *schema["steps"]]:  # every type says what it does, for people
        assert kind["description"] and "``" not in kind["description"]


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("create_task", {"task_id", "title", "due_date"}),
        ("call_webhook", {"status_code", "response_json"}),
        ("update_field", {"new_value", "old_value"}),
        ("send_email", {"message_id", "recipient"}),
    ],
)
def test_result_keys_of_the_action_types(name, keys):
    assert keys <= set(result_keys(action_types.get(name)))


def test_operators_follow_the_field_types():
    number, boolean, text = (operators_for(field_types.get(name)) for name in ("number", "boolean", "text"))
    assert "gte" in number and "contains" not in number
    assert "gte" not in boolean and "contains" not in boolean and "eq" in boolean
    assert "contains" in text and "starts_with" in text
    assert "contains" in operators_for(field_types.get("multi_select"))


def test_entity_schema_for_the_dropdowns(entity):
    entity.fields = [*entity.fields, {"name": "due", "type": "date", "required": False}]
    schema = entity_schema(entity, members=["ada"])
    fields = {field["name"]: field for field in schema["fields"]}
    assert fields["status"]["input"] == "option" and "Closed Won" in fields["status"]["options"]
    assert fields["amount"]["input"] == "number" and "gte" in fields["amount"]["operators"]
    assert fields["due"]["is_moment"] and not fields["name"]["is_moment"]
    assert schema["status_options"] == ["New", "Contacted", "Qualified", "Closed Won", "Closed Lost"]
    assert schema["members"] == ["ada"]


# --------------------------------------------------------------------------- the JSON views


def test_editor_views_are_for_staff_only(entity):
    for target in (url("schema"), url("entities") + f"?workspace={entity.workspace_id}"):
        assert Client().get(target).status_code == 302  # to the login page
    staff = UserFactory(is_staff=True)  # staff, but without the rights on rules
    client = Client()
    client.force_login(staff)
    assert client.get(url("schema")).status_code == 403
    assert client.post(url("preview"), "{}", content_type="application/json").status_code == 403


def test_entities_and_entity_schema_are_scoped_to_the_workspace(admin_client, entity, members):
    other = EntityFactory()  # another workspace's
    response = admin_client.get(url("entities"), {"workspace": str(entity.workspace_id)})
    assert response.json() == {"entities": [{"id": str(entity.pk), "name": "Leads"}]}
    assert admin_client.get(url("entities"), {"workspace": "nope"}).status_code == 404

    schema = admin_client.get(url("entity", entity.pk), {"workspace": str(entity.workspace_id)}).json()
    assert schema["name"] == "Leads" and len(schema["members"]) == len(members) - 1  # the outsider is not one
    assert admin_client.get(url("entity", other.pk), {"workspace": str(entity.workspace_id)}).status_code == 404
    assert admin_client.get(url("entity", entity.pk)).status_code == 404  # no workspace, no entity


def test_record_search_is_scoped_to_the_entity_of_the_workspace(admin_client, entity, lead):
    elsewhere = RecordFactory(entity=EntityFactory(workspace=entity.workspace), data={"name": "Ada Elsewhere"})
    found = admin_client.get(url("records", entity.pk), {"workspace": str(entity.workspace_id), "q": "ada"}).json()
    assert [r["id"] for r in found["results"]] == [str(lead.pk)]
    assert str(elsewhere.pk) not in json.dumps(found)
    other_workspace = EntityFactory().workspace_id
    assert admin_client.get(url("records", entity.pk), {"workspace": str(other_workspace)}).status_code == 404


def test_next_times_of_a_cron_in_a_time_zone(admin_client):
    body = admin_client.get(url("occurrences"), {"cron": "0 9 * * 1", "timezone": "Europe/Paris"}).json()
    assert len(body["occurrences"]) == 5
    assert all(o["text"].startswith("Mon ") and o["text"].endswith("09:00") for o in body["occurrences"])
    bad = admin_client.get(url("occurrences"), {"cron": "61 * * * *"})
    assert bad.status_code == 400 and "cron" in bad.json()["errors"]
    assert admin_client.get(url("occurrences"), {"cron": "0 9 * * *", "timezone": "Mars/Base"}).status_code == 400
    assert admin_client.post(url("occurrences")).status_code == 405


def preview(client, **body):
    return client.post(url("preview"), json.dumps(body), content_type="application/json")


STEPS = [
    {"type": "update_field", "config": {"field_name": "status", "new_value": "Contacted"}},
    {"type": "delay", "config": {"seconds": 7200}},
    {"type": "create_task", "config": {"title": "Call {{ name }} ({{ status }})", "due_in_days": 2}},
    {"type": "send_email", "config": {"subject": "Task {{ steps[2].title }}", "body": "Hi {{ name }}"}},
]


def test_preview_of_unsaved_steps_renders_every_step_without_side_effects(admin_client, entity, lead):
    response = preview(
        admin_client,
        workspace=str(entity.workspace_id),
        entity=str(entity.pk),
        record=str(lead.pk),
        trigger_type="record_created",
        trigger_config={},
        conditions={"match": "all", "rules": [{"field": "email", "op": "is_not_empty"}]},
        steps=STEPS,
    )
    assert response.status_code == 200, response.content
    outcome = response.json()["outcome"]
    assert outcome["dry_run"] and outcome["conditions_match"] and outcome["record_label"] == "Ada"
    update, wait, task, email = outcome["steps"]
    assert update["preview"]["new_value"] == "Contacted" and update["preview"]["changed"]
    assert wait["preview"]["waits_seconds"] == 7200
    assert task["preview"]["title"] == "Call Ada (Contacted)"  # sees the record as step 1 left it
    assert email["preview"]["to"] == "ada@example.com" and "Hi Ada" in email["preview"]["html"]
    assert not AutomationRule.objects.exists() and not AutomationLog.objects.exists()
    assert not Task.objects.exists() and mail.outbox == []
    lead.refresh_from_db()
    assert lead.data["status"] == "New"


def test_preview_of_a_stored_rule_uses_the_edited_content_and_leaves_the_rule_alone(admin_client, entity, lead):
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Stored",
        trigger_type="scheduled",
        trigger_config={"cron": "0 9 * * *", "timezone": "Europe/Paris"},
        steps=[{"type": "create_task", "config": {"title": "Old {{ name }}"}}],
    )
    response = preview(
        admin_client,
        rule=str(rule.pk),
        entity=str(entity.pk),
        record=str(lead.pk),
        trigger_type="scheduled",
        trigger_config={"cron": "30 8 * * 1", "timezone": "Europe/Paris"},
        steps=[{"type": "create_task", "config": {"title": "New {{ name }}"}}],
    )
    outcome = response.json()["outcome"]
    assert outcome["steps"][0]["preview"]["title"] == "New Ada"
    assert len(outcome["next_occurrences"]) == 5
    assert all(text.startswith("Mon ") and text.endswith("08:30") for text in outcome["next_occurrences_text"])
    rule.refresh_from_db()
    assert rule.version == 1 and rule.steps[0]["config"]["title"] == "Old {{ name }}"


def test_preview_answers_with_the_errors_keyed_as_the_form_shows_them(admin_client, entity, lead):
    body = {
        "workspace": str(entity.workspace_id),
        "entity": str(entity.pk),
        "record": str(lead.pk),
        "trigger_type": "status_changed",
        "trigger_config": {"to_status": "Bogus"},
        "steps": [STEPS[0], {"type": "call_webhook", "config": {"url": "http://169.254.169.254/"}}],
    }
    response = preview(admin_client, **body)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"trigger_config.to_status", "steps.1.config.url"}

    elsewhere = RecordFactory(entity=EntityFactory(workspace=entity.workspace))
    response = preview(admin_client, **{**body, "record": str(elsewhere.pk)})
    assert response.json()["errors"] == {"record": ["Choose a record of this entity to preview on."]}
    other = EntityFactory()
    response = preview(admin_client, **{**body, "entity": str(other.pk)})
    assert "entity" in response.json()["errors"]
    assert admin_client.post(url("preview"), "not json", content_type="application/json").status_code == 400
    assert admin_client.get(url("preview")).status_code == 405
    assert preview(admin_client, rule=str(uuid.uuid4()), **body).status_code == 404


def test_preview_needs_the_csrf_token(entity, lead):
    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pass-Word-123"))
    response = client.post(url("preview"), json.dumps({"entity": str(entity.pk)}), content_type="application/json")
    assert response.status_code == 403


def test_the_change_page_embeds_the_editor_data_escaped(admin_client, entity):
    entity.name = "</script><b>Leads</b>"
    entity.save()
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="</script><script>alert(1)</script>",
        trigger_type="record_created",
        steps=[{"type": "create_task", "config": {"title": "</textarea><img src=x onerror=alert(1)>"}}],
    )
    html = admin_client.get(reverse("admin:automations_automationrule_change", args=[rule.pk])).content.decode()
    data = html.split('<script id="rule-editor-data" type="application/json">')[1].split("</script>")[0]
    assert "\\u003C/script\\u003E\\u003Cb\\u003ELeads" in data
    editor = json.loads(data)
    assert editor["rule_id"] == str(rule.pk) and editor["entity"]["name"] == "</script><b>Leads</b>"
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html and "<b>Leads" not in html
    # Without JavaScript the JSON fields are the form.
    for name in ("trigger_config", "conditions", "steps"):
        assert f'<textarea name="{name}"' in html
    assert "&lt;/textarea&gt;&lt;img src=x onerror=alert(1)&gt;" in html
