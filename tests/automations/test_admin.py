"""Django admin for rules, runs and events, through the test client."""

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from automations import services
from automations.models import AutomationEvent, AutomationLog, AutomationRule, RunStatus
from records.models import Task
from tests.factories import EntityFactory, RecordFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pass-Word-123")
    client.force_login(user)
    return client


@pytest.fixture
def rule(entity):
    return services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Welcome",
        trigger_type="record_created",
        action_type="send_email",
        action_config={"subject": "Welcome {{name}}!", "body": "Hi {{name}}"},
    )


def make_log(rule, **fields):
    values = {
        "automation": rule,
        "workspace_id": rule.workspace_id,
        "entity_id": rule.entity_id,
        "record_id": uuid.uuid4(),
        "trigger_type": rule.trigger_type,
        "action_type": rule.action_type,
        "status": RunStatus.SUCCESS,
    }
    values.update(fields)
    return AutomationLog.objects.create(**values)


def form_data(entity, **overrides):
    data = {
        "workspace": str(entity.workspace_id),
        "entity": str(entity.pk),
        "name": "Big deal alert",
        "description": "",
        "trigger_type": "status_changed",
        "trigger_config": '{"to_status": "Closed Won"}',
        "conditions": "{}",
        "steps": '[{"type": "create_task", "config": {"title": "Celebrate {{name}}"}}]',
        "is_active": "on",
        "max_runs_per_minute": "",
        "max_runs_per_hour": "",
    }
    data.update(overrides)
    return data


ADD_URL = reverse("admin:automations_automationrule_add")
DELAY_OF_ZERO = {"type": "delay", "config": {"seconds": 0}}


def test_rule_list_shows_last_run_status_without_a_query_per_row(
    admin_client, rule, entity, django_assert_max_num_queries
):
    make_log(rule, status=RunStatus.SUCCESS)
    make_log(rule, status=RunStatus.ERROR)  # newest
    for _ in range(5):
        services.rule_duplicate(rule=rule)
    url = reverse("admin:automations_automationrule_changelist")
    with django_assert_max_num_queries(12):
        response = admin_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Welcome" in html and "Welcome (copy)" in html
    assert '<td class="field-last_run_status">error</td>' in html
    assert "Leads" in html
    # More rules, same number of queries.
    for _ in range(10):
        services.rule_duplicate(rule=rule)
    with django_assert_max_num_queries(12):
        admin_client.get(url)


def test_rule_list_filters_and_search(admin_client, rule):
    url = reverse("admin:automations_automationrule_changelist")
    copy = services.rule_duplicate(rule=rule)
    copy.name = "Other thing"
    copy.save()
    html = admin_client.get(url, {"is_active__exact": "0"}).content.decode()
    assert "Other thing" in html and ">Welcome<" not in html
    html = admin_client.get(url, {"q": "other"}).content.decode()
    assert "Other thing" in html and ">Welcome<" not in html
    html = admin_client.get(url, {"action_type": "send_email"}).content.decode()
    assert "Other thing" in html


def test_add_form_shows_configs_as_formatted_json(admin_client, rule):
    response = admin_client.get(reverse("admin:automations_automationrule_change", args=[rule.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "\n      &quot;subject&quot;: &quot;Welcome {{name}}!&quot;" in html  # indented, one key a line
    assert "Test on a record" in html
    assert admin_client.get(ADD_URL).status_code == 200


def test_create_through_the_admin_form(admin_client, entity):
    response = admin_client.post(ADD_URL, form_data(entity))
    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = AutomationRule.objects.get(name="Big deal alert")
    assert rule.trigger_config == {"to_status": "Closed Won"}
    assert rule.action_config == {"title": "Celebrate {{name}}"}
    assert rule.steps == [{"type": "create_task", "config": {"title": "Celebrate {{name}}"}}]
    assert rule.created_by.username == "root"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"trigger_config": "{}"}, "trigger_config", "to_status: This field is required."),
        ({"trigger_config": '{"to_status": "Bogus"}'}, "trigger_config", "to_status: Must be one of"),
        (
            {"trigger_config": "{not json"},
            "trigger_config",
            "Not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2).",
        ),
        (
            {"steps": '[{"type": "create_task", "config": {"title": ""}}]'},
            "steps",
            "Step 1 · title: This field may not be blank.",
        ),
        ({"steps": '[{"type": "create_task", "config": "text"}]'}, "steps", "Step 1: Must be an object."),
        (
            {"steps": '[{"type": "call_webhook", "config": {"url": "http://169.254.169.254/latest"}}]'},
            "steps",
            "Step 1 · url: ",
        ),
        ({"steps": "[]"}, "steps", "A rule has 1 to 20 steps (this one has 0)."),
        ({"steps": '[{"type": "explode", "config": {}}]'}, "steps", "Step 1 · type: Unknown step type 'explode'"),
        (
            {"steps": json.dumps([{"type": "create_task", "config": {"title": "Hi"}}, DELAY_OF_ZERO])},
            "steps",
            "Step 2 · seconds: ",
        ),
        (
            {"conditions": '{"match": "all", "rules": [{"field": "nope", "op": "eq", "value": 1}]}'},
            "conditions",
            "rules.0.field: Unknown field 'nope'",
        ),
        ({"trigger_type": "record_exploded"}, "trigger_type", "Select a valid choice"),
    ],
)
def test_form_errors_are_readable_and_on_the_right_field(admin_client, entity, overrides, field, message):
    response = admin_client.post(ADD_URL, form_data(entity, **overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert any(message in error for error in errors[field]), errors[field]
    assert not AutomationRule.objects.exists()


def test_form_rejects_an_entity_of_another_workspace(admin_client, entity):
    other = EntityFactory()
    data = form_data(entity)
    data["entity"] = str(other.pk)
    response = admin_client.post(ADD_URL, data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["entity"] == ["Choose an entity of the rule's workspace."]
    assert not AutomationRule.objects.exists()


def test_change_form_goes_through_the_service(admin_client, rule):
    AutomationRule.objects.filter(pk=rule.pk).update(is_active=False, consecutive_failures=8, disabled_reason="x")
    data = form_data(
        rule.entity,
        name="Welcome v2",
        trigger_type="record_created",
        trigger_config="{}",
        steps='[{"type": "send_email", "config": {"subject": "Hi", "body": "Hello {{name}}"}}]',
    )
    response = admin_client.post(reverse("admin:automations_automationrule_change", args=[rule.pk]), data)
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.name == "Welcome v2" and rule.is_active
    assert rule.consecutive_failures == 0 and rule.disabled_reason == ""


def test_change_page_shows_recent_runs_and_success_rate(admin_client, rule):
    for _ in range(3):
        make_log(rule, status=RunStatus.SUCCESS)
    make_log(rule, status=RunStatus.ERROR, error="SMTP down")
    make_log(rule, status=RunStatus.ERROR, is_test=True)  # tests do not count in the rate
    html = admin_client.get(reverse("admin:automations_automationrule_change", args=[rule.pk])).content.decode()
    assert "75% (3 of 4 succeeded)" in html
    assert "SMTP down" in html
    assert "All runs of this rule" in html


def test_actions_activate_deactivate_duplicate(admin_client, rule):
    url = reverse("admin:automations_automationrule_changelist")
    response = admin_client.post(url, {"action": "deactivate", "_selected_action": [str(rule.pk)]}, follow=True)
    assert "Deactivated 1 rule." in response.content.decode()
    rule.refresh_from_db()
    assert not rule.is_active
    admin_client.post(url, {"action": "activate", "_selected_action": [str(rule.pk)]})
    rule.refresh_from_db()
    assert rule.is_active
    admin_client.post(url, {"action": "duplicate", "_selected_action": [str(rule.pk)]})
    copy = AutomationRule.objects.get(name="Welcome (copy)")
    assert not copy.is_active and copy.signing_secret != rule.signing_secret


def test_test_page_dry_run_renders_the_email_without_sending(admin_client, rule, lead):
    url = reverse("admin:automations_automationrule_test", args=[rule.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert 'data-record-picker data-search-url="' + url + 'records/"' in response.content.decode()
    response = admin_client.post(url, {"record": str(lead.pk), "dry_run": "on"})
    html = response.content.decode()
    assert "Dry run: what would happen" in html
    assert "Welcome Ada!" in html and "ada@example.com" in html
    assert '<iframe id="test-email-preview" title="Email preview" sandbox=""' in html
    assert mail.outbox == [] and not AutomationLog.objects.exists()


def test_test_page_real_run_is_logged(admin_client, rule, lead):
    url = reverse("admin:automations_automationrule_test", args=[rule.pk])
    response = admin_client.post(url, {"record": str(lead.pk)})
    html = response.content.decode()
    log = AutomationLog.objects.get()
    assert log.is_test and log.status == RunStatus.SUCCESS
    assert reverse("admin:automations_automationlog_change", args=[log.pk]) in html
    assert len(mail.outbox) == 1


def test_test_page_only_offers_records_of_the_rules_entity(admin_client, rule, lead):
    other = RecordFactory(entity=EntityFactory(workspace=rule.workspace))
    url = reverse("admin:automations_automationrule_test", args=[rule.pk])
    response = admin_client.post(url, {"record": str(other.pk), "dry_run": "on"})
    assert "record" in response.context["form"].errors
    assert admin_client.get(reverse("admin:automations_automationrule_test", args=[uuid.uuid4()])).status_code == 404


def test_log_admin_is_read_only_and_readable(admin_client, rule):
    log = make_log(
        rule,
        status=RunStatus.ERROR,
        action_type="call_webhook",
        error="HTTP 500",
        result={
            "method": "POST",
            "url": "https://hooks.example.com/x",
            "status_code": 500,
            "response": '{"detail":"oops"}',
            "request_headers": {"Authorization": "[redacted]"},
            "delivery_id": "msg_1",
            "duration_ms": 5,
        },
    )
    html = admin_client.get(reverse("admin:automations_automationlog_change", args=[log.pk])).content.decode()
    assert "POST https://hooks.example.com/x" in html and "HTTP 500" in html
    assert "&quot;detail&quot;: &quot;oops&quot;" in html  # the response body, indented
    assert 'name="_save"' not in html
    assert admin_client.get(reverse("admin:automations_automationlog_add")).status_code == 403


def test_log_list_filters_and_search_by_record_id(admin_client, rule):
    wanted = make_log(rule, status=RunStatus.ERROR)
    make_log(rule, status=RunStatus.SUCCESS)
    url = reverse("admin:automations_automationlog_changelist")
    response = admin_client.get(url, {"q": str(wanted.record_id)})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [wanted]
    response = admin_client.get(url, {"status__exact": "success"})
    assert [log.status for log in response.context["cl"].result_list] == ["success"]
    response = admin_client.get(url, {"automation__id__exact": str(rule.pk), "trigger_type": "record_created"})
    assert len(response.context["cl"].result_list) == 2
    assert admin_client.get(url, {"q": "not-a-uuid"}).status_code == 200


def test_log_action_retries_failed_runs_only(admin_client, rule):
    failed = make_log(rule, status=RunStatus.ERROR)
    done = make_log(rule, status=RunStatus.SUCCESS)
    url = reverse("admin:automations_automationlog_changelist")
    response = admin_client.post(
        url, {"action": "retry", "_selected_action": [str(failed.pk), str(done.pk)]}, follow=True
    )
    html = response.content.decode()
    assert "Queued 1 run for retry." in html
    assert "Not retried" in html
    failed.refresh_from_db()
    done.refresh_from_db()
    assert failed.status == RunStatus.PENDING and done.status == RunStatus.SUCCESS


def test_event_admin_is_read_only(admin_client, lead):
    event = AutomationEvent.objects.first()
    assert event is not None  # creating the record queued one
    assert admin_client.get(reverse("admin:automations_automationevent_changelist")).status_code == 200
    html = admin_client.get(reverse("admin:automations_automationevent_change", args=[event.pk])).content.decode()
    assert str(lead.pk) in html and 'name="_save"' not in html
    assert not Task.objects.exists()


def test_test_page_escapes_the_email_into_the_sandboxed_iframe(admin_client, entity, lead):
    hostile = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Hostile",
        trigger_type="record_created",
        action_type="send_email",
        action_config={"subject": "Hi", "body": "B </iframe><img id=pwn src=x onerror=\"document.title='XSS'\">"},
    )
    url = reverse("admin:automations_automationrule_test", args=[hostile.pk])
    html = admin_client.post(url, {"record": str(lead.pk), "dry_run": "on"}).content.decode()
    assert "<img id=pwn" not in html
    assert "&lt;img id=pwn src=x onerror=&quot;document.title=&#x27;XSS&#x27;&quot;&gt;" in html
    assert 'sandbox="" srcdoc="&lt;!DOCTYPE html&gt;' in html


def test_rule_writes_in_the_admin_go_through_the_services(admin_client, entity, monkeypatch):
    calls = []
    for name in ("rule_create", "rule_update", "rule_delete"):
        real = getattr(services, name)
        monkeypatch.setattr(
            services, name, lambda *a, _real=real, _name=name, **kw: calls.append(_name) or _real(*a, **kw)
        )
    response = admin_client.post(ADD_URL, form_data(entity))
    assert response.status_code == 302
    rule = AutomationRule.objects.get()
    assert response["Location"].endswith(reverse("admin:automations_automationrule_changelist"))
    change = reverse("admin:automations_automationrule_change", args=[rule.pk])
    assert admin_client.post(change, form_data(entity, name="Renamed")).status_code == 302
    assert (
        admin_client.post(
            reverse("admin:automations_automationrule_delete", args=[rule.pk]), {"post": "yes"}
        ).status_code
        == 302
    )
    assert calls == ["rule_create", "rule_update", "rule_delete"]
    assert not AutomationRule.objects.exists()


def test_runs_list_names_records_and_marks_only_test_runs(admin_client, rule, lead):
    real = make_log(rule, record_id=lead.pk, record_snapshot=lead.as_snapshot())
    test = make_log(rule, record_id=lead.pk, record_snapshot=lead.as_snapshot(), is_test=True)
    html = admin_client.get(reverse("admin:automations_automationlog_changelist")).content.decode()
    record_url = reverse("admin:records_record_change", args=[lead.pk])
    assert f'<a href="{record_url}" title="{lead.pk}">Ada</a>' in html  # the label, linked; the id on hover
    assert f">{lead.pk}<" not in html  # no bare UUID in a cell
    assert html.count('class="run-test-badge"') == 1
    assert "icon-no.svg" not in html and "icon-yes.svg" not in html
    assert "<title>Automation runs |" in html
    table = html.split('id="result_list"')[1].split("</table>")[0]
    rows = {log.pk: next(row for row in table.split("<tr")[2:] if str(log.pk) in row) for log in (real, test)}
    assert "run-test-badge" in rows[test.pk] and "run-test-badge" not in rows[real.pk]


def test_a_nameless_record_is_named_by_its_first_text_field(admin_client, rule, entity):
    record = RecordFactory(entity=entity, data={"company": "Initech", "status": "New"})
    make_log(rule, record_id=record.pk, record_snapshot=record.as_snapshot())
    html = admin_client.get(reverse("admin:automations_automationlog_changelist")).content.decode()
    assert f'title="{record.pk}">Initech</a>' in html


def test_run_page_is_titled_by_the_rule_name(admin_client, rule):
    log = make_log(rule, is_test=True)
    html = admin_client.get(reverse("admin:automations_automationlog_change", args=[log.pk])).content.decode()
    assert "Run of “Welcome” · " in html
    assert str(rule.pk) not in html.split("<main")[0]  # not in the page title or the breadcrumbs
    assert 'class="run-test-badge"' in html and "icon-no.svg" not in html


def test_the_signing_secret_shows_only_on_rules_that_call_a_webhook(admin_client, rule, entity, settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True
    hook = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Hook",
        trigger_type="record_created",
        action_type="call_webhook",
        action_config={"url": "http://127.0.0.1:9/hook"},
    )
    email_page = admin_client.get(reverse("admin:automations_automationrule_change", args=[rule.pk])).content.decode()
    hook_page = admin_client.get(reverse("admin:automations_automationrule_change", args=[hook.pk])).content.decode()
    assert rule.signing_secret not in email_page and "field-signing_secret" not in email_page
    assert hook.signing_secret in hook_page and "field-signing_secret" in hook_page


def test_the_record_picker_searches_the_rules_entity_by_label_text_or_id(admin_client, rule, entity, lead):
    grace = RecordFactory(entity=entity, data={"name": "Grace Hopper", "email": "grace@navy.mil", "status": "New"})
    nameless = RecordFactory(entity=entity, data={"company": "Initech"})
    elsewhere = RecordFactory(entity=EntityFactory(workspace=rule.workspace), data={"name": "Grace Elsewhere"})
    url = reverse("admin:automations_automationrule_test_records", args=[rule.pk])

    def search(q):
        response = admin_client.get(url, {"q": q})
        assert response.status_code == 200
        return response.json()["results"]

    assert [r["label"] for r in search("grace")] == ["Grace Hopper"]  # by name, not another entity's
    assert [r["label"] for r in search("NAVY.mil")] == ["Grace Hopper"]  # any text field, any case
    assert [r["id"] for r in search(str(lead.pk))] == [str(lead.pk)]  # a pasted id
    assert search(str(elsewhere.pk)) == []
    assert {r["label"] for r in search("")} == {"Ada", "Grace Hopper", "Initech"}  # newest first, all labelled
    found = search("initech")[0]
    assert found == {"id": str(nameless.pk), "label": "Initech", "detail": f"id {str(nameless.pk)[:8]}…"}
    assert str(grace.pk)[:8] in search("grace")[0]["detail"] and "grace@navy.mil" in search("grace")[0]["detail"]
    assert Client().get(url, {"q": "grace"}).status_code == 302  # staff only (to the login page)


def test_test_page_refuses_a_record_of_another_entity_by_id(admin_client, rule, entity):
    elsewhere = RecordFactory(entity=EntityFactory(workspace=rule.workspace))
    url = reverse("admin:automations_automationrule_test", args=[rule.pk])
    response = admin_client.post(url, {"record": str(elsewhere.pk), "dry_run": "on"})
    assert response.context["form"].errors["record"] == ["Choose a record of this rule's entity."]


def test_runs_list_does_not_query_per_row(admin_client, rule, entity):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add_runs(count):
        for _ in range(count):
            record = RecordFactory(entity=entity)
            make_log(rule, record_id=record.pk, record_snapshot=record.as_snapshot(), is_test=True)

    url = reverse("admin:automations_automationlog_changelist")
    add_runs(2)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    add_runs(10)
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(url).status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)
