"""A rule's versions in the admin: the history page (who, when, what changed, readable diffs, any two
compared) and restoring a version (a confirmation, then a new version through ``services.rule_restore``)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from automations import services
from automations.admin_versions import Vocabulary, condition_lines, diff_snapshots, snapshot_lines, step_diff
from automations.models import AutomationLog, RunStatus
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pass-Word-123")


@pytest.fixture
def admin_client(client, root):
    client.force_login(root)
    return client


@pytest.fixture
def rule(entity, root):
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Welcome",
        trigger_type="record_created",
        steps=[{"type": "create_task", "config": {"title": "Call {{ name }}"}}],
        actor=root,
    )
    services.rule_update(
        rule=rule,
        actor=root,
        conditions={"match": "all", "rules": [{"field": "amount", "op": "gte", "value": 1000}]},
        steps=[
            {"type": "create_task", "config": {"title": "Call {{ name }} now"}},
            {"type": "delay", "config": {"seconds": 172800}},
            {"type": "send_email", "config": {"subject": "Hi", "body": "<b>Hello</b> {{ name }}"}},
        ],
    )
    services.rule_update(rule=rule, actor=root, name="Welcome big deals")
    return rule


def versions_url(rule):
    return reverse("admin:automations_automationrule_versions", args=[rule.pk])


def restore_url(rule, version):
    return reverse("admin:automations_automationrule_restore", args=[rule.pk, version])


def test_history_lists_each_version_with_who_when_and_a_readable_diff(admin_client, rule):
    html = admin_client.get(versions_url(rule)).content.decode()
    for number in (1, 2, 3):
        assert f'id="version-{number}"' in html
    assert html.index('id="version-3"') < html.index('id="version-1"')  # newest first
    v3 = html.split('id="version-3"')[1].split('id="version-2"')[0]
    assert "current" in v3 and "by <strong>root</strong>" in v3 and "changed Name" in v3
    assert '<span class="diff-removed">− Welcome</span>' in v3
    assert '<span class="diff-added">+ Welcome big deals</span>' in v3
    v2 = html.split('id="version-2"')[1].split('id="version-1"')[0]
    assert "changed Conditions, Steps" in v2
    assert "+ All of:" in v2 and "amount is at least 1000" in v2
    assert "− Step 1 · Create task" not in v2  # the first step's header is the same…
    assert "−     Title: Call {{ name }}" in v2 and "+     Title: Call {{ name }} now" in v2  # …its title is not
    assert "+ Step 2 · Delay" in v2 and "+     Wait for: 2 days" in v2
    assert "&lt;b&gt;Hello&lt;/b&gt; {{ name }}" in v2 and "<b>Hello</b>" not in html  # the author's text, escaped
    assert "created the rule" in html.split('id="version-1"')[1]
    assert html.count("Restore this version…") == 2  # not on the current one
    change_page = admin_client.get(reverse("admin:automations_automationrule_change", args=[rule.pk])).content
    assert versions_url(rule).encode() in change_page


def test_history_compares_any_two_versions(admin_client, rule):
    html = admin_client.get(versions_url(rule), {"from": 1, "to": 3}).content.decode()
    compared = html.split('id="version-compare-result"')[1].split('id="version-3"')[0]
    assert "From version 1 to version 3" in compared
    assert "+ Welcome big deals" in compared and "+ Step 3 · Send email" in compared
    html = admin_client.get(versions_url(rule), {"from": 1, "to": 99}).content.decode()
    assert 'id="version-compare-result"' not in html


def test_restore_asks_first_then_makes_a_new_version_with_the_old_content(admin_client, rule, root):
    waiting = AutomationLog.objects.create(
        automation=rule,
        workspace_id=rule.workspace_id,
        entity_id=rule.entity_id,
        trigger_type=rule.trigger_type,
        action_type=rule.action_type,
        status=RunStatus.PENDING,
        rule_version=3,
    )
    page = admin_client.get(restore_url(rule, 1)).content.decode()
    assert "Restore version 1 of" in page and 'name="csrfmiddlewaretoken"' in page
    assert "− Step 2 · Delay" in page  # what restoring would change
    rule.refresh_from_db()
    assert rule.version == 3  # asking changed nothing

    response = admin_client.post(restore_url(rule, 1), follow=True)
    assert "Restored version 1: the rule is now version 4." in response.content.decode()
    rule.refresh_from_db()
    v1 = services.selectors.rule_version(rule=rule, version=1).snapshot
    assert rule.version == 4 and rule.name == v1["name"] == "Welcome"
    assert rule.step_list == v1["steps"] and rule.conditions == v1["conditions"] == {}
    latest = services.selectors.rule_version(rule=rule, version=4)
    assert latest.created_by == root and set(latest.changes) == {"name", "conditions", "steps"}
    waiting.refresh_from_db()
    assert waiting.rule_version == 3  # a waiting run keeps the steps it started with

    response = admin_client.post(restore_url(rule, 4), follow=True)
    assert "Nothing changed" in response.content.decode()


def test_restore_needs_post_with_csrf_and_the_right_to_change(rule, entity):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(get_user_model().objects.get(username="root"))
    assert csrf_client.post(restore_url(rule, 1)).status_code == 403
    viewer = UserFactory(is_staff=True)  # may look at rules, not change them
    viewer.user_permissions.add(Permission.objects.get(codename="view_automationrule"))
    client = Client()
    client.force_login(viewer)
    assert client.get(versions_url(rule)).status_code == 200
    assert "Restore this version" not in client.get(versions_url(rule)).content.decode()
    assert client.post(restore_url(rule, 1)).status_code == 403
    rule.refresh_from_db()
    assert rule.version == 3


def test_restoring_a_missing_version_is_404(admin_client, rule):
    assert admin_client.get(restore_url(rule, 42)).status_code == 404


def test_readable_lines_of_a_snapshot(rule):
    vocabulary = Vocabulary({str(rule.entity_id): "Leads"}, rule.entity.fields)
    snapshot = services.selectors.rule_version(rule=rule, version=2).snapshot
    lines = snapshot_lines(snapshot, vocabulary)
    assert lines["entity_id"] == ["Leads"] and lines["trigger_type"] == ["Record created"]
    assert lines["steps"][:3] == ["Step 1 · Create task", "    Title: Call {{ name }} now", "Step 2 · Delay"]
    nested = {"match": "any", "rules": [{"field": "status", "op": "in", "value": ["New", "Qualified"]}, {
        "match": "all", "rules": [{"field": "email", "op": "is_empty"}]}]}  # fmt: skip
    assert condition_lines(nested, vocabulary) == [
        "Any of:",
        "    status is one of “New, Qualified”",
        "    All of:",
        "        email is empty",
    ]
    assert diff_snapshots(snapshot, snapshot, vocabulary) == []


def test_steps_are_compared_step_by_step(rule):
    vocabulary = Vocabulary({}, rule.entity.fields)
    task = {"type": "create_task", "config": {"title": "Call"}}
    wait = {"type": "delay", "config": {"seconds": 3600}}
    hook = {"type": "call_webhook", "config": {"url": "https://x.example/a"}}
    moved = step_diff([task, wait, hook], [{**hook, "config": {"url": "https://x.example/b"}}, task], vocabulary)
    assert ("removed", "Step 2 · Delay") in moved and ("removed", "    Wait for: 1 hour") in moved
    assert ("same", "Step 2 · Create task (was step 1)") in moved or (
        "same",
        "Step 1 · Call webhook (was step 3)",
    ) in moved
    assert ("same", "    Title: Call") in moved or ("added", "    Title: Call") in moved
    edited = step_diff([task], [{**task, "config": {"title": "Call now"}}], vocabulary)
    assert edited == [
        ("same", "Step 1 · Create task"),
        ("removed", "    Title: Call"),
        ("added", "    Title: Call now"),
    ]
    assert step_diff(None, [wait], vocabulary) == [("added", "Step 1 · Delay"), ("added", "    Wait for: 1 hour")]
