"""The rule editor driven in headless Chromium as an admin uses it: a rule with a condition group and three
steps made without typing JSON, a validation error shown on the step's field, a preview on a record, saved,
changed, the change seen in the history, version 1 restored and checked through the API. Also: the JSON
view round-trips, the form works without JavaScript, a type registered in a test gets its fields, and the
run and replay pages. Each page is saved at 1366×768 into ``SCREENSHOTS_DIR`` when it is set."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from automations import services
from automations.models import AutomationLog, AutomationRule, RunStatus
from records.models import Task
from tests.automations import browser
from tests.automations.browser import PASSWORD, choose_record, fits_the_screen, login, screenshot
from tests.automations.test_admin_editor import RegionAction, RegionTrigger
from tests.factories import EntityFactory, MembershipFactory, RecordFactory, WorkspaceFactory
from workspaces.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
page = browser.page  # the fixtures
page_without_javascript = browser.page_without_javascript

DEAL_FIELDS = [
    {"name": "name", "type": "text", "required": True},
    {"name": "email", "type": "email"},
    {"name": "company", "type": "text"},
    {"name": "status", "type": "select", "options": ["Open", "Negotiation", "Won", "Lost"]},
    {"name": "amount", "type": "number"},
    {"name": "close_date", "type": "date"},
]


@pytest.fixture
def deals(settings):
    """A workspace with a Deals entity, a deal, a member to assign tasks to, and another workspace."""
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True  # the rule's webhook points at 127.0.0.1 (never called)
    root = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    workspace = WorkspaceFactory(name="Acme Sales")
    MembershipFactory(workspace=workspace, user=root, role=Role.OWNER)
    sam = MembershipFactory(workspace=workspace, role=Role.MEMBER, user__username="sam").user
    entity = EntityFactory(workspace=workspace, name="Deals", fields=DEAL_FIELDS)
    EntityFactory(workspace=workspace, name="Contacts")
    EntityFactory(workspace=WorkspaceFactory(name="Other Co"), name="Other things")
    deal = RecordFactory(
        entity=entity,
        data={"name": "Ada Lovelace", "email": "ada@example.com", "company": "Analytical", "status": "Open",
              "amount": 25000, "close_date": "2030-03-01"},
    )  # fmt: skip
    return {"root": root, "workspace": workspace, "entity": entity, "deal": deal, "sam": sam}


def add_rule_url(live_server):
    return f"{live_server.url}/admin/automations/automationrule/add/"


def choose_workspace(page, name):
    """The workspace's autocomplete (Django's select2): open, type, pick."""
    page.click(".field-workspace .select2-selection")
    page.fill(".select2-search__field", name.split()[0])
    page.click(f".select2-results__option:has-text('{name}')")


def step(page, index):
    return page.locator(f".rule-step[data-index='{index}']")


def add_step(page, type_name):
    page.select_option("#rule-add-step-type", type_name)
    page.click("#rule-add-step")


def condition(page, nth):
    return page.locator(".rule-condition").nth(nth)


def save(page, button="_save"):
    target = page.locator(f"input[name={button}]")
    target.scroll_into_view_if_needed()
    with page.expect_navigation():
        target.click()


def test_an_admin_builds_changes_and_restores_a_rule_without_typing_json(page, live_server, deals, api):
    entity, deal = deals["entity"], deals["deal"]
    login(page, live_server)
    page.goto(add_rule_url(live_server))
    assert page.locator("#id_entity").is_disabled()  # until a workspace is chosen
    screenshot(page, "01-rule-add-empty")

    # Workspace, then only its entities.
    choose_workspace(page, "Acme Sales")
    page.wait_for_function("document.querySelectorAll('#id_entity option').length > 2")
    options = page.locator("#id_entity option").all_inner_texts()
    assert "Deals" in options and "Contacts" in options and "Other things" not in options
    page.select_option("#id_entity", label="Deals")
    page.wait_for_selector("#rule-trigger")
    page.fill("#id_name", "Big deal follow-up")

    # When: the status becomes Negotiation, chosen from the entity's status values.
    page.select_option("#id_trigger_type", "status_changed")
    to_status = page.locator("#rule-trigger [data-option=to_status] select")
    # The entity's schema arrives by fetch after it is chosen; the trigger is drawn again with its statuses.
    page.wait_for_function(
        "document.querySelectorAll('#rule-trigger [data-option=to_status] select option').length > 1"
    )
    assert to_status.locator("option").all_inner_texts()[1:] == ["Open", "Negotiation", "Won", "Lost"]
    to_status.select_option("Negotiation")

    # Conditions: amount ≥ 10000, and any of (company not empty, email contains "@").
    page.click("#rule-conditions >> text=+ Condition")
    first = condition(page, 0)
    first.locator(".rule-condition-field").select_option("amount")
    assert "contains" not in first.locator(".rule-condition-op option").all_inner_texts()  # not for numbers
    first.locator(".rule-condition-op").select_option("gte")
    first.locator("input.rule-value").fill("10000")
    page.locator("#rule-conditions .rule-group-foot").last.locator("text=+ Group").click()
    group = page.locator(".rule-group-nested")
    group.locator(".rule-group-head select").select_option("any")
    inner = group.locator(".rule-condition").first
    inner.locator(".rule-condition-field").select_option("company")
    inner.locator(".rule-condition-op").select_option("is_not_empty")
    assert inner.locator("input.rule-value").count() == 0  # "is not empty" takes no value
    group.locator("text=+ Condition").click()
    second = group.locator(".rule-condition").nth(1)
    second.locator(".rule-condition-field").select_option("email")
    second.locator(".rule-condition-op").select_option("contains")
    second.locator("input.rule-value").fill("@")

    # Then: a task for sam in 2 days, wait 2 days, call a webhook (URL mistyped at first).
    add_step(page, "create_task")
    task = step(page, 0)
    task.locator("[data-option=title] input").fill("Call {{ name }}")
    task.locator("[data-option=due_in_days] input").fill("2")
    task.locator("[data-option=assignee] select").select_option("sam")
    add_step(page, "delay")
    wait = step(page, 1)
    wait.locator("[data-option=seconds] input").fill("2")
    wait.locator("[data-option=seconds] select").select_option(label="days")
    add_step(page, "call_webhook")
    hook = step(page, 2)
    hook.locator("[data-option=url] input").fill("hooks.example.com/deals")
    hook.locator("[data-option=method] select").select_option("PUT")
    # The variables offered in the third step: the record's fields and the first step's results.
    hook.locator("[data-option=body_template] summary").click()
    offered = hook.locator("[data-option=body_template] .rule-variable").all_inner_texts()
    assert "{{ amount }}" in offered and "{{ steps[0].task_id }}" in offered
    assert not any("steps[2]" in text for text in offered)
    body = hook.locator("[data-option=body_template] textarea")
    body.fill('{"deal": "')
    hook.locator("[data-option=body_template] .rule-variable", has_text="{{ name }}").first.click()
    body.press("End")
    body.type('", "task": "{{ steps[0].task_id }}"}')
    screenshot(page, "02-rule-add-filled")

    # Saving shows the server's error beside the step's field; nothing is saved.
    save(page)
    url_error = step(page, 2).locator("[data-option=url] .errorlist")
    assert "Only http:// and https:// URLs are allowed." in url_error.inner_text()
    assert page.locator(".errornote").first.is_visible()
    assert not AutomationRule.objects.exists()
    screenshot(page, "03-rule-add-validation-error")
    step(page, 2).locator("[data-option=url] input").fill("http://127.0.0.1:9/deals")
    assert step(page, 2).locator("[data-option=url] .errorlist").count() == 0  # gone once edited

    # Preview on a record: every step rendered with the deal, nothing written.
    choose_record(page, deal, box="#id_preview_record", url_part="/editor/entities/")
    page.click("#rule-preview-run")
    outcome = page.locator("#rule-preview-result .preview-outcome")
    outcome.wait_for()
    text = outcome.inner_text()
    assert "Call Ada Lovelace" in text and "2 days" in text and "PUT" in text
    assert '"deal": "Ada Lovelace"' in text
    assert "the conditions match" in text.replace("\n", " ")
    step(page, 0).locator(".rule-preview-step").click()
    step(page, 0).locator(".preview-step").wait_for()
    assert "sam" in step(page, 0).locator(".preview-step").inner_text()
    assert not Task.objects.exists() and not AutomationLog.objects.exists()
    assert fits_the_screen(page)
    screenshot(page, "04-rule-add-preview")

    save(page)
    page.wait_for_url(re.compile(r".*/admin/automations/automationrule/$"))
    assert "was added successfully" in page.locator(".messagelist").inner_text()
    rule = AutomationRule.objects.get()
    assert rule.trigger_type == "status_changed" and rule.trigger_config == {"to_status": "Negotiation"}
    assert rule.conditions == {
        "match": "all",
        "rules": [
            {"field": "amount", "op": "gte", "value": 10000},
            {"match": "any", "rules": [{"field": "company", "op": "is_not_empty"},
                                       {"field": "email", "op": "contains", "value": "@"}]},
        ],
    }  # fmt: skip
    assert [s["type"] for s in rule.steps] == ["create_task", "delay", "call_webhook"]
    assert rule.steps[0]["config"] == {"title": "Call {{ name }}", "due_in_days": 2, "assignee": "sam"}
    assert rule.steps[1]["config"] == {"seconds": 172800}
    assert rule.steps[2]["config"]["method"] == "PUT"
    assert rule.steps[2]["config"]["body_template"] == '{"deal": "{{ name }}", "task": "{{ steps[0].task_id }}"}'
    assert rule.created_by == deals["root"] and rule.version == 1

    # Change it: a new title, the delay removed, the webhook moved before the task.
    page.goto(f"{live_server.url}/admin/automations/automationrule/{rule.pk}/change/")
    screenshot(page, "05-rule-change")
    assert fits_the_screen(page)
    step(page, 0).locator("[data-option=title] input").fill("Call {{ name }} today")
    step(page, 1).locator("text=Remove").click()
    assert page.locator(".rule-step").count() == 2
    step(page, 1).locator("[data-option=body_template] textarea").fill('{"deal": "{{ name }}"}')
    step(page, 1).locator("button[title='Move up']").click()
    assert step(page, 0).locator(".rule-step-type").input_value() == "call_webhook"
    save(page, "_continue")
    assert "was changed successfully" in page.locator(".messagelist").inner_text()
    rule.refresh_from_db()
    assert rule.version == 2 and [s["type"] for s in rule.steps] == ["call_webhook", "create_task"]

    # The history shows who changed what, as a readable diff.
    page.click("#rule-versions-link")
    page.wait_for_url(re.compile(r".*/versions/$"))
    latest = page.locator("#version-2")
    assert "by root" in latest.inner_text() and "changed Steps" in latest.inner_text()
    removed = latest.locator(".diff-removed").all_inner_texts()
    added = latest.locator(".diff-added").all_inner_texts()
    assert "− Step 2 · Delay" in removed and "−     Wait for: 2 days" in removed
    assert "+     Title: Call {{ name }} today" in added
    assert fits_the_screen(page)
    screenshot(page, "06-rule-versions")
    page.select_option("#compare-from", "1")
    page.select_option("#compare-to", "2")
    page.click("#version-compare input[type=submit]")
    assert "From version 1 to version 2" in page.locator("#version-compare-result").inner_text()

    # Restore version 1, after a confirmation.
    page.locator("#version-1 .version-restore").click()
    assert "Restore version 1 of" in page.locator("h1").inner_text()
    screenshot(page, "07-rule-restore-confirm")
    page.click("input[name=_restore]")
    page.wait_for_url(re.compile(rf".*/automationrule/{rule.pk}/change/$"))
    assert "Restored version 1: the rule is now version 3." in page.locator(".messagelist").inner_text()
    assert step(page, 1).locator(".rule-step-type").input_value() == "delay"  # the editor shows version 1 again

    # Through the API, the rule equals version 1's content.
    Token.objects.get_or_create(user=deals["root"])  # root is also the workspace's owner
    client = api.as_user(deals["root"])
    base = f"/api/v1/workspaces/{deals['workspace'].pk}/automations/{rule.pk}/"
    current = client.get(base).json()["data"]["automation"]
    versions = client.get(base + "versions/").json()["data"]["versions"]
    first = next(version for version in versions if version["version"] == 1)["rule"]
    assert current["version"] == 3 and [v["version"] for v in versions] == [3, 2, 1]
    for key, value in first.items():
        assert current[key] == value, key
    assert current["entity_id"] == str(entity.pk)


def test_the_json_view_round_trips_and_refuses_json_it_cannot_show(page, live_server, deals):
    entity = deals["entity"]
    rule = services.rule_create(
        workspace=deals["workspace"],
        entity=entity,
        name="Round trip",
        trigger_type="scheduled",
        trigger_config={"cron": "0 9 * * 1", "timezone": "Europe/Paris"},
        conditions={"match": "any", "rules": [{"field": "status", "op": "in", "value": ["Open", "Won"]}]},
        steps=[{"type": "update_field", "config": {"field_name": "status", "new_value": "Negotiation"}}],
    )
    login(page, live_server)
    page.goto(f"{live_server.url}/admin/automations/automationrule/{rule.pk}/change/")
    timezone_select = page.locator("#rule-trigger [data-option=timezone] select")
    assert timezone_select.input_value() == "Europe/Paris"
    assert timezone_select.locator("option").count() > 300  # every IANA zone, from a list
    page.locator("#rule-occurrences li").first.wait_for()
    assert page.locator("#rule-occurrences li").count() == 5
    checked = condition(page, 0).locator(".rule-options input:checked")
    assert [box.get_attribute("value") for box in checked.all()] == ["Open", "Won"]
    new_value = step(page, 0).locator("[data-option=new_value] select")  # the value follows the field's type
    assert new_value.input_value() == "Negotiation"
    screenshot(page, "08-rule-scheduled")

    page.click("#rule-mode-json")
    assert page.locator("#rule-steps").is_hidden() and page.locator("#id_steps").is_visible()
    assert '"new_value": "Negotiation"' in page.input_value("#id_steps")
    page.fill("#id_steps", '[{"type": "update_field", "config": {"field_name": "status", "new_value": "Won"}}]')
    page.click("#rule-mode-form")
    assert step(page, 0).locator("[data-option=new_value] select").input_value() == "Won"
    page.click("#rule-mode-json")
    page.fill("#id_conditions", "{not json")
    page.click("#rule-mode-form")
    assert "cannot be shown as a form" in page.locator(".rule-mode-note").inner_text()
    assert page.locator("#id_conditions").is_visible()  # still in the JSON view
    screenshot(page, "09-rule-json-view")
    page.fill("#id_conditions", '{"match": "all", "rules": [{"field": "amount", "op": "gte", "value": "lots"}]}')
    page.click("#rule-mode-form")
    save(page, "_continue")
    assert "Value: Must be a number." in condition(page, 0).locator(".errorlist").inner_text()
    rule.refresh_from_db()
    assert rule.version == 1
    condition(page, 0).locator("text=Remove").click()
    save(page, "_continue")
    rule.refresh_from_db()
    assert rule.steps[0]["config"]["new_value"] == "Won" and rule.conditions == {} and rule.version == 2
    assert not page.script_errors


def test_without_javascript_the_json_fields_are_the_form(page_without_javascript, live_server, deals):
    page = page_without_javascript
    login(page, live_server)
    page.goto(add_rule_url(live_server) + f"?workspace={deals['workspace'].pk}")
    assert page.locator("#id_entity option").all_inner_texts()[1:] == ["Contacts", "Deals"]  # its workspace's only
    page.select_option("#id_entity", label="Deals")
    page.fill("#id_name", "No script")
    page.fill("#id_steps", '[{"type": "create_task", "config": {"title": "Call {{ name }}"}}]')
    save(page)
    page.wait_for_url(re.compile(r".*/admin/automations/automationrule/$"))
    assert AutomationRule.objects.get().steps == [{"type": "create_task", "config": {"title": "Call {{ name }}"}}]


def test_a_type_registered_in_a_test_gets_its_fields_in_the_editor(page, live_server, deals):
    from automations.action_types import action_types
    from automations.trigger_types import trigger_types

    trigger_types.register(RegionTrigger())
    action_types.register(RegionAction())
    try:
        login(page, live_server)
        page.goto(add_rule_url(live_server) + f"?workspace={deals['workspace'].pk}&entity={deals['entity'].pk}")
        page.select_option("#id_trigger_type", "region_woke")
        region = page.locator("#rule-trigger [data-option=region] select")
        assert region.locator("option").all_inner_texts() == ["— choose —", "Europe", "United States"]
        assert page.locator("#rule-trigger [data-option=retries] input").input_value() == "3"
        assert "How often to try." in page.locator("#rule-trigger [data-option=retries]").inner_text()
        add_step(page, "ping_region")
        assert step(page, 0).locator("[data-option=region] select").count() == 1
        assert step(page, 0).locator("[data-option=note] input").get_attribute("placeholder") == "e.g. Bring coffee"
        screenshot(page, "10-rule-plugin-types")
    finally:
        trigger_types.unregister(RegionTrigger.name)
        action_types.unregister(RegionAction.name)


def test_run_pages_test_page_and_replays(page, live_server, deals):
    entity, deal = deals["entity"], deals["deal"]
    rule = services.rule_create(
        workspace=deals["workspace"],
        entity=entity,
        name="Deal flow",
        trigger_type="record_created",
        steps=[
            {"type": "update_field", "config": {"field_name": "status", "new_value": "Negotiation"}},
            {"type": "delay", "config": {"seconds": 3600}},
            {"type": "send_email", "config": {"subject": "About {{ name }}", "body": "Now {{ status }}"}},
            {"type": "call_webhook", "config": {"url": "http://127.0.0.1:9/deals"}},
        ],
    )
    login(page, live_server)

    # The test page: every step's preview in order.
    page.goto(f"{live_server.url}/admin/automations/automationrule/{rule.pk}/test/")
    choose_record(page, deal)
    page.click("input[name=_run]")
    steps = page.locator(".test-step")
    assert steps.count() == 4
    assert "Negotiation" in steps.nth(0).inner_text() and "1 hour" in steps.nth(1).inner_text()
    email = page.frame_locator("#test-email-preview-3").locator("body").inner_text()
    assert email.strip().startswith("Now Negotiation")
    assert "127.0.0.1:9/deals" in steps.nth(3).inner_text()
    assert fits_the_screen(page)
    screenshot(page, "11-rule-test-page")

    # A failed run: its steps, version and the replay pages.
    log = AutomationLog.objects.create(
        automation=rule, workspace_id=rule.workspace_id, entity_id=entity.pk, record_id=deal.pk,
        record_snapshot=deal.as_snapshot(), trigger_type=rule.trigger_type, action_type=rule.action_type,
        status=RunStatus.ERROR, error="Connection refused", rule_version=1, current_step=3, attempts=8,
        step_states=[
            {"index": 0, "type": "update_field", "status": "success", "attempts": 1,
             "started_at": "2030-01-07T09:00:00+00:00", "finished_at": "2030-01-07T09:00:00+00:00",
             "result": {"field_name": "status", "old_value": "Open", "new_value": "Negotiation", "changed": True},
             "error": ""},
            {"index": 1, "type": "delay", "status": "success", "attempts": 1,
             "started_at": "2030-01-07T09:00:00+00:00", "finished_at": "2030-01-07T10:00:00+00:00",
             "result": {"resume_at": "2030-01-07T10:00:00+00:00"}, "error": ""},
            {"index": 2, "type": "send_email", "status": "success", "attempts": 1,
             "started_at": "2030-01-07T10:00:01+00:00", "finished_at": "2030-01-07T10:00:01+00:00",
             "result": {"recipient": "ada@example.com", "subject": "About Ada Lovelace", "sent": True,
                        "message_id": "<1@localhost>"}, "error": ""},
            {"index": 3, "type": "call_webhook", "status": "error", "attempts": 8,
             "started_at": "2030-01-07T10:00:02+00:00", "finished_at": "2030-01-08T05:00:00+00:00",
             "result": {"method": "POST", "url": "http://127.0.0.1:9/deals", "status_code": None,
                        "delivery_id": "msg_1_3", "duration_ms": 2}, "error": "Connection refused"},
        ],
    )  # fmt: skip
    page.goto(f"{live_server.url}/admin/automations/automationlog/{log.pk}/change/")
    rows = page.locator(".step-ledger tbody tr")
    assert rows.count() == 4
    assert "To: ada@example.com" in rows.nth(2).inner_text() and "Connection refused" in rows.nth(3).inner_text()
    assert "Version 1" in page.locator(".field-rule_version_link").inner_text()
    assert fits_the_screen(page)
    screenshot(page, "12-run-page")

    page.click("#run-replay-link")
    assert page.locator("#id_from_step").input_value() == "3"  # the failed step first
    screenshot(page, "13-run-replay-from-step")
    page.select_option("#id_from_step", "2")
    page.click("input[name=_replay]")
    assert "Queued the run for replay from step 3." in page.locator(".messagelist").inner_text()
    log.refresh_from_db()
    assert log.status == RunStatus.PENDING and log.current_step == 2
    assert log.replays[-1]["by"] == deals["root"].pk
    assert "by root, from step 3" in page.locator(".field-replays_readable").inner_text()

    AutomationLog.objects.filter(pk=log.pk).update(status=RunStatus.ERROR)
    page.goto(f"{live_server.url}/admin/automations/automationrule/{rule.pk}/change/")
    page.click("text=Replay failed runs…")
    page.click("input[name=_count]")
    assert "1 run matches." in page.locator("#replay-count").inner_text()
    screenshot(page, "14-rule-replay-failed-runs")
    page.click("input[name=_confirm]")
    assert "Queued 1 run for replay." in page.locator(".messagelist").inner_text()
    screenshot(page, "15-runs-list")
