"""End to end in headless Chromium (Debian's ``chromium``, driven by Playwright): log in to the admin,
create a rule through the form (after a validation error), run "Test on a record", see the run logged."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from automations import services
from automations.models import AutomationLog, AutomationRule, RunStatus
from records.models import Task
from tests.automations import browser
from tests.automations.browser import choose_record, login, type_search
from tests.factories import EntityFactory, MembershipFactory, RecordFactory, WorkspaceFactory
from workspaces.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
page = browser.page  # the fixture


def test_create_rule_test_it_and_see_the_run(page, live_server):
    get_user_model().objects.create_superuser("root", "root@example.com", "pass-Word-123")
    workspace = WorkspaceFactory(name="Acme")
    entity = EntityFactory(workspace=workspace, name="Leads")
    record = RecordFactory(entity=entity, data={"name": "Ada Lovelace", "email": "ada@example.com", "status": "New"})

    login(page, live_server)

    # The add form, with workspace and entity preselected, written in the advanced (JSON) view.
    page.goto(f"{live_server.url}/admin/automations/automationrule/add/?workspace={workspace.pk}&entity={entity.pk}")
    page.fill("#id_name", "Follow up new leads")
    page.select_option("#id_trigger_type", "record_created")
    page.click("#rule-mode-json")
    page.fill("#id_trigger_config", "{}")
    page.fill("#id_steps", '[{"type": "create_task", "config": {"title": ""}}]')
    page.click("input[name=_save]")
    page.click("#rule-mode-json")
    error = page.locator(".field-steps .errorlist")
    assert "Step 1 · title: This field may not be blank." in error.inner_text()
    assert not AutomationRule.objects.exists()

    page.fill("#id_steps", '[{"type": "create_task", "config": {"title": "Call {{ name }}", "due_in_days": 2}}]')
    page.click("input[name=_save]")
    page.wait_for_url(re.compile(r".*/admin/automations/automationrule/$"))
    assert "was added successfully" in page.locator(".messagelist").inner_text()
    rule = AutomationRule.objects.get(name="Follow up new leads")

    # Test on a record: first a dry run (nothing written), then a real run.
    page.goto(f"{live_server.url}/admin/automations/automationrule/{rule.pk}/change/")
    page.click("text=Test on a record")
    choose_record(page, record)
    assert page.is_checked("#id_dry_run")
    page.click("input[name=_run]")
    assert "Dry run: what would happen" in page.locator("#test-outcome").inner_text()
    assert "Call Ada Lovelace" in page.locator("#test-outcome").inner_text()
    assert not Task.objects.exists() and not AutomationLog.objects.exists()

    assert page.input_value("#id_record") == "Ada Lovelace"  # the choice is kept after the dry run
    page.uncheck("#id_dry_run")
    page.click("input[name=_run]")
    assert page.locator("#test-outcome-status").inner_text() == "success"
    assert Task.objects.get().title == "Call Ada Lovelace"

    # The run is in the logs.
    page.click("#test-log-link")
    log = AutomationLog.objects.get()
    page.wait_for_url(re.compile(rf".*/admin/automations/automationlog/{log.pk}/change/$"))
    assert log.is_test and log.status == RunStatus.SUCCESS
    assert page.locator(".field-record_label").inner_text().endswith("Ada Lovelace")
    assert str(record.pk) in page.locator(".field-record_label a").get_attribute("href")
    assert page.locator("h2").first.inner_text().startswith("Run of “Follow up new leads” · ")
    assert "Call Ada Lovelace" in page.locator(".field-steps_ledger").inner_text()
    page.goto(f"{live_server.url}/admin/automations/automationlog/?automation__id__exact={rule.pk}")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "Success" in rows.first.inner_text() or "success" in rows.first.inner_text()


XSS_BODY = "B </iframe><img id=pwn src=x onerror=\"document.title='XSS'\">"


def test_email_preview_of_a_hostile_body_stays_inside_the_sandboxed_iframe(page, live_server, api):
    """A send_email body planted through the API by a workspace owner cannot run in a staff user's admin."""
    get_user_model().objects.create_superuser("root", "root@example.com", "pass-Word-123")
    owner = MembershipFactory(role=Role.OWNER).user
    entity = EntityFactory(workspace=owner.memberships.get().workspace, name="Leads")
    record = RecordFactory(entity=entity, data={"name": "Ada Lovelace", "email": "ada@example.com", "status": "New"})
    response = api.as_user(owner).post(
        f"/api/v1/workspaces/{entity.workspace_id}/automations/",
        {
            "name": "Welcome",
            "entity_id": str(entity.pk),
            "trigger_type": "record_created",
            "action_type": "send_email",
            "action_config": {"subject": "Hello {{ name }}", "body": XSS_BODY},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    rule = AutomationRule.objects.get()

    login(page, live_server)
    page.goto(f"{live_server.url}/admin/automations/automationrule/{rule.pk}/test/")
    title = page.title()
    choose_record(page, record)
    page.click("input[name=_run]")
    page.wait_for_selector("#test-outcome")

    assert page.locator("#pwn").count() == 0  # nothing of the body reached the admin's own DOM
    assert page.title() == title != "XSS"
    frame = page.frame_locator("#test-email-preview")
    assert frame.locator("#pwn").count() == 1  # the email, whole, inside the sandbox
    assert "B" in frame.locator("body").inner_text()
    assert frame.locator("title").inner_text() == "Hello Ada Lovelace"
    assert page.locator("#test-email-preview").get_attribute("sandbox") == ""


def test_runs_list_fits_a_1366_px_screen_and_the_picker_finds_records(page, live_server):
    get_user_model().objects.create_superuser("root", "root@example.com", "pass-Word-123")
    entity = EntityFactory(workspace=WorkspaceFactory(name="Acme"), name="Leads")
    ada = RecordFactory(entity=entity, data={"name": "Ada Lovelace", "email": "ada@example.com", "status": "New"})
    grace = RecordFactory(entity=entity, data={"name": "Grace Hopper", "email": "grace@navy.mil", "status": "New"})
    other = RecordFactory(entity=EntityFactory(workspace=entity.workspace), data={"name": "Grace Elsewhere"})
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Follow-up task for qualified leads of the enterprise segment",
        trigger_type="record_created",
        action_type="create_task",
        action_config={"title": "Call {{ name }}"},
    )
    for index, record in enumerate([ada, grace] * 5):
        AutomationLog.objects.create(
            automation=rule,
            workspace_id=rule.workspace_id,
            entity_id=entity.pk,
            record_id=record.pk,
            record_snapshot=record.as_snapshot(),
            trigger_type=rule.trigger_type,
            action_type=rule.action_type,
            status=RunStatus.SUCCESS if index % 3 else RunStatus.ERROR,
            is_test=index == 0,
            attempts=1,
            duration_ms=120,
        )
    page.set_viewport_size({"width": 1366, "height": 768})
    login(page, live_server)

    page.goto(f"{live_server.url}/admin/automations/automationlog/")
    results = page.locator("#changelist .results")
    assert results.evaluate("el => el.scrollWidth <= el.clientWidth"), "the runs table scrolls sideways"
    last_header = page.locator("#result_list thead th").last.bounding_box()
    assert last_header["x"] + last_header["width"] <= results.bounding_box()["x"] + results.bounding_box()["width"]
    first_row = page.locator("#result_list tbody tr").first
    assert "Ada Lovelace" in first_row.inner_text() or "Grace Hopper" in first_row.inner_text()
    assert str(ada.pk) not in page.locator("#result_list").inner_text()
    assert page.locator("#result_list .run-test-badge").count() == 1

    # The record picker: by name, by a pasted id, and only records of the rule's entity.
    page.goto(f"{live_server.url}/admin/automations/automationrule/{rule.pk}/test/")
    type_search(page, "grace")
    page.wait_for_selector(f"#id_record_results [data-record-id='{grace.pk}']")
    assert page.locator("#id_record_results [role=option]").count() == 1
    assert page.locator(f"#id_record_results [data-record-id='{other.pk}']").count() == 0
    choose_record(page, ada, typed=str(ada.pk))
    page.click("input[name=_run]")
    assert "Dry run: what would happen" in page.locator("#test-outcome").inner_text()
    assert page.input_value("#id_record") == "Ada Lovelace"
