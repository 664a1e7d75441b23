"""Runs and tests in the admin with steps: the run page's per-step ledger, version and replays; replaying
one run from its failed step or from step N, and a rule's failed runs in bulk; the test page's preview of
every step; the next occurrences of a scheduled rule."""

import datetime as dt
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from automations import services
from automations.models import AutomationLog, RunStatus
from records.models import Task
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

STEPS = [
    {"type": "create_task", "config": {"title": "Call {{ name }}"}},
    {"type": "delay", "config": {"seconds": 3600}},
    {"type": "call_webhook", "config": {"url": "http://127.0.0.1:9/deals"}},
]


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pass-Word-123")


@pytest.fixture
def admin_client(client, root):
    client.force_login(root)
    return client


@pytest.fixture(autouse=True)
def _local_webhooks(settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True  # the rules' webhooks point at 127.0.0.1 (never called)


@pytest.fixture
def rule(entity):
    return services.rule_create(
        workspace=entity.workspace, entity=entity, name="Deal flow", trigger_type="record_created", steps=STEPS
    )


def failed_run(rule, lead, **fields):
    values = {
        "automation": rule,
        "workspace_id": rule.workspace_id,
        "entity_id": rule.entity_id,
        "record_id": lead.pk,
        "record_snapshot": lead.as_snapshot(),
        "trigger_type": rule.trigger_type,
        "action_type": rule.action_type,
        "status": RunStatus.ERROR,
        "error": "HTTP 500",
        "rule_version": 1,
        "current_step": 2,
        "attempts": 3,
        "step_states": [
            {"index": 0, "type": "create_task", "status": "success", "attempts": 1,
             "started_at": "2026-01-05T09:00:00+00:00", "finished_at": "2026-01-05T09:00:01+00:00",
             "result": {"task_id": "t1", "title": "Call Ada"}, "error": ""},
            {"index": 1, "type": "delay", "status": "success", "attempts": 1,
             "started_at": "2026-01-05T09:00:01+00:00", "finished_at": "2026-01-05T10:00:01+00:00",
             "result": {"resume_at": "2026-01-05T10:00:01+00:00"}, "error": ""},
            {"index": 2, "type": "call_webhook", "status": "error", "attempts": 3,
             "started_at": "2026-01-05T10:00:02+00:00", "finished_at": "2026-01-05T10:05:00+00:00",
             "result": {"method": "POST", "url": "http://127.0.0.1:9/deals", "status_code": 500,
                        "response": "<b>down</b>", "delivery_id": "msg_x_2", "duration_ms": 12},
             "error": "HTTP 500 <script>"},
        ],
    }  # fmt: skip
    values.update(fields)
    return AutomationLog.objects.create(**values)


def test_run_page_shows_each_step_its_version_and_its_replays(admin_client, rule, lead, root):
    log = failed_run(rule, lead, replays=[{"at": "2026-01-05T11:00:00+00:00", "by": root.pk, "from_step": 2}])
    html = admin_client.get(reverse("admin:automations_automationlog_change", args=[log.pk])).content.decode()
    ledger = html.split('class="step-ledger"')[1].split("</table>")[0]
    rows = ledger.split('<tr class="step-row')[1:]
    assert len(rows) == 3
    assert "Create task" in rows[0] and "Success" in rows[0] and "Call Ada" in rows[0]
    assert "Delay" in rows[1] and "resume_at" in rows[1]
    assert "Call webhook" in rows[2] and "Error" in rows[2] and ">3<" in rows[2]
    assert "POST http://127.0.0.1:9/deals" in rows[2] and "HTTP 500" in rows[2]  # its type's describe_result
    assert "&lt;b&gt;down&lt;/b&gt;" in rows[2] and "HTTP 500 &lt;script&gt;" in rows[2]
    assert "Version 1</a> (the rule&#x27;s current version)" in html
    assert reverse("admin:automations_automationrule_versions", args=[rule.pk]) + "#version-1" in html
    assert "by root, from step 3" in html
    assert reverse("admin:automations_automationlog_replay", args=[log.pk]) in html


def test_a_one_step_run_shows_its_one_step(admin_client, entity, lead):
    single = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="One",
        trigger_type="record_created",
        action_type="create_task",
        action_config={"title": "x"},
    )
    log = AutomationLog.objects.create(
        automation=single,
        workspace_id=single.workspace_id,
        entity_id=single.entity_id,
        trigger_type=single.trigger_type,
        action_type="create_task",
        status=RunStatus.SUCCESS,
        attempts=1,
        result={"task_id": "t9", "title": "x"},
    )
    html = admin_client.get(reverse("admin:automations_automationlog_change", args=[log.pk])).content.decode()
    rows = html.split('class="step-ledger"')[1].split("</table>")[0].split('<tr class="step-row')[1:]
    assert len(rows) == 1 and "Create task" in rows[0] and "t9" in rows[0]
    assert "the run predates versions" in html


def test_replay_from_the_failed_step_on_selected_runs(admin_client, rule, lead, root):
    failed = failed_run(rule, lead)
    done = failed_run(rule, lead, status=RunStatus.SUCCESS, error="")
    url = reverse("admin:automations_automationlog_changelist")
    selected = [str(failed.pk), str(done.pk)]
    response = admin_client.post(url, {"action": "retry", "_selected_action": selected}, follow=True)
    html = response.content.decode()
    assert "Queued 1 run for retry." in html and "Not retried" in html
    failed.refresh_from_db()
    assert failed.status == RunStatus.PENDING and failed.current_step == 2
    assert failed.step_states[0]["status"] == "success"  # the steps before are not run again
    assert failed.replays[-1]["by"] == root.pk and failed.replays[-1]["from_step"] == 2


def test_replay_one_run_from_a_chosen_step(admin_client, rule, lead, root):
    log = failed_run(rule, lead)
    url = reverse("admin:automations_automationlog_replay", args=[log.pk])
    changelist = reverse("admin:automations_automationlog_changelist")
    response = admin_client.post(changelist, {"action": "replay_from_step", "_selected_action": [str(log.pk)]})
    assert response.status_code == 302 and response["Location"] == url
    two = admin_client.post(
        changelist, {"action": "replay_from_step", "_selected_action": [str(log.pk), str(failed_run(rule, lead).pk)]},
        follow=True,
    )  # fmt: skip
    assert "Choose exactly one run" in two.content.decode()

    page = admin_client.get(url).content.decode()
    assert '<option value="2" selected>Step 3 · Call webhook (error)</option>' in page
    assert "Step 1 · Create task (success)" in page
    response = admin_client.post(url, {"from_step": "0"}, follow=True)
    assert "Queued the run for replay from step 1." in response.content.decode()
    log.refresh_from_db()
    assert log.status == RunStatus.PENDING and log.current_step == 0
    assert all(state["status"] == "pending" for state in log.step_states)
    assert log.replays == [{"at": log.replays[0]["at"], "by": root.pk, "from_step": 0}]


def test_replay_from_a_step_explains_a_refusal(admin_client, rule, lead):
    log = failed_run(rule, lead)
    services.rule_set_active(rule=rule, active=False)
    response = admin_client.post(reverse("admin:automations_automationlog_replay", args=[log.pk]), {"from_step": "2"})
    assert "The rule is inactive" in response.content.decode()
    log.refresh_from_db()
    assert log.status == RunStatus.ERROR


def test_replays_need_the_right_to_change_rules(client, rule, lead):
    log = failed_run(rule, lead)
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_automationlog"))
    client.force_login(staff)
    html = client.get(reverse("admin:automations_automationlog_changelist")).content.decode()
    assert 'value="retry"' not in html and 'value="replay_from_step"' not in html
    assert client.get(reverse("admin:automations_automationlog_replay", args=[log.pk])).status_code == 403
    run_page = client.get(reverse("admin:automations_automationlog_change", args=[log.pk])).content.decode()
    assert "Replay from step" not in run_page


def test_replay_failed_runs_of_a_rule_counts_then_replays(admin_client, rule, lead, root):
    old = failed_run(rule, lead)
    recent = failed_run(rule, lead)
    skipped = failed_run(rule, lead, status=RunStatus.SKIPPED)
    AutomationLog.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=3))
    failed_run(rule, lead, is_test=True)  # test runs are never replayed
    url = reverse("admin:automations_automationrule_replay", args=[rule.pk])
    assert (
        "Replay failed runs…"
        in admin_client.get(reverse("admin:automations_automationrule_change", args=[rule.pk])).content.decode()
    )
    since = (timezone.localtime() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")

    counted = admin_client.post(url, {"status": "error", "since": since, "_count": "1"}).content.decode()
    assert "<strong>1</strong> run matches." in counted and 'value="Replay 1 run"' in counted
    for log in (old, recent, skipped):
        log.refresh_from_db()
        assert log.status in (RunStatus.ERROR, RunStatus.SKIPPED)  # counting changed nothing

    response = admin_client.post(url, {"status": "error", "since": since, "_confirm": "1"}, follow=True)
    assert "Queued 1 run for replay." in response.content.decode()
    for log in (old, recent, skipped):
        log.refresh_from_db()
    assert recent.status == RunStatus.PENDING and recent.replays[-1]["by"] == root.pk
    assert old.status == RunStatus.ERROR and skipped.status == RunStatus.SKIPPED

    bad = admin_client.post(url, {"status": "error", "since": since, "until": since, "_count": "1"}).content.decode()
    assert "Must be after" in bad


def test_replay_failed_runs_of_an_inactive_rule_says_why(admin_client, rule, lead):
    failed_run(rule, lead)
    services.rule_set_active(rule=rule, active=False)
    url = reverse("admin:automations_automationrule_replay", args=[rule.pk])
    html = admin_client.post(url, {"status": "error", "_confirm": "1"}).content.decode()
    assert "The rule is inactive" in html


def test_test_page_dry_run_previews_every_step_in_order(admin_client, entity, lead):
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Flow",
        trigger_type="record_created",
        steps=[
            {"type": "update_field", "config": {"field_name": "status", "new_value": "Contacted"}},
            {"type": "delay", "config": {"seconds": 172800}},
            {"type": "create_task", "config": {"title": "Call {{ name }} ({{ status }})"}},
            {"type": "send_email", "config": {"subject": "Hi {{ name }}", "body": "<i>{{ steps[2].title }}</i>"}},
            {"type": "call_webhook", "config": {"url": "http://127.0.0.1:9/x", "body_template": '{"n": "{{ name }}"}'}},
        ],
    )  # fmt: skip
    url = reverse("admin:automations_automationrule_test", args=[rule.pk])
    html = admin_client.post(url, {"record": str(lead.pk), "dry_run": "on"}).content.decode()
    assert "Update field → Delay → Create task → Send email → Call webhook" in html
    blocks = [html.split(f'id="test-step-{n}"')[1].split("</li>")[0] for n in range(1, 6)]
    assert "Step 1 · Update field" in blocks[0] and "Contacted" in blocks[0]
    assert "Step 2 · Delay" in blocks[1] and "2 days" in blocks[1]
    assert "Call Ada (Contacted)" in blocks[2]
    assert 'id="test-email-preview-4"' in blocks[3] and 'sandbox="" srcdoc="&lt;!DOCTYPE html&gt;' in blocks[3]
    assert "<i>" not in blocks[3]
    assert "http://127.0.0.1:9/x" in blocks[4] and "&quot;n&quot;: &quot;Ada&quot;" in blocks[4]
    assert mail.outbox == [] and not Task.objects.exists() and not AutomationLog.objects.exists()
    lead.refresh_from_db()
    assert lead.data["status"] == "New"


def test_test_page_real_run_shows_each_step_status(admin_client, entity, lead):
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Two",
        trigger_type="record_created",
        steps=[
            {"type": "update_field", "config": {"field_name": "company", "new_value": "Acme"}},
            {"type": "create_task", "config": {"title": "Call {{ name }} at {{ company }}"}},
        ],
    )
    url = reverse("admin:automations_automationrule_test", args=[rule.pk])
    html = admin_client.post(url, {"record": str(lead.pk)}).content.decode()
    steps = html.split('class="test-steps"')[1].split("</ol>")[0]
    assert "What each step did" in html and steps.count(">Success</strong>") == 2
    assert "Step 1 · Update field" in steps and "Step 2 · Create task" in steps
    assert list(Task.objects.values_list("title", flat=True)) == ["Call Ada at Acme"]


def test_scheduled_rules_show_their_next_occurrences(admin_client, entity, lead):
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Mondays",
        trigger_type="scheduled",
        trigger_config={"cron": "0 9 * * 1", "timezone": "America/New_York"},
        steps=[{"type": "create_task", "config": {"title": "Weekly {{ name }}"}}],
    )
    html = admin_client.get(reverse("admin:automations_automationrule_change", args=[rule.pk])).content.decode()
    times = html.split('class="next-occurrences"')[1].split("</ul>")[0]
    assert times.count("<li>Mon ") == 5 and times.count(", 09:00</li>") == 5
    assert "Times in America/New_York." in html
    test_page = reverse("admin:automations_automationrule_test", args=[rule.pk])
    html = admin_client.post(test_page, {"record": str(lead.pk), "dry_run": "on"}).content.decode()
    assert html.split('id="test-next-occurrences"')[1].split("</ul>")[0].count("<li>Mon ") == 5


def test_date_rules_say_how_their_times_are_set(admin_client, entity, lead):
    entity.fields = [*entity.fields, {"name": "due", "type": "date", "required": False}]
    entity.save()
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Due soon",
        trigger_type="date_reached",
        trigger_config={"field": "due", "offset_seconds": -86400},
        steps=[{"type": "create_task", "config": {"title": "Due {{ name }}"}}],
    )
    html = admin_client.get(reverse("admin:automations_automationrule_change", args=[rule.pk])).content.decode()
    assert "at the date in its “due” field 1 day before" in html
    lead.data["due"] = "2030-01-10"
    lead.save()
    test_page = reverse("admin:automations_automationrule_test", args=[rule.pk])
    html = admin_client.post(test_page, {"record": str(lead.pk), "dry_run": "on"}).content.decode()
    assert "Wed 9 Jan 2030, 00:00" in html.split('id="test-next-occurrences"')[1]
    assert admin_client.get(reverse("admin:automations_automationrule_change", args=[uuid.uuid4()])).status_code in (
        302,
        404,
    )
