"""The Engine page in headless Chromium, as an admin meets it: from the admin index to the page, with a
busy hour behind it (successes, failures, a waiting backlog, workers, a rule turned off). Saves screenshots
at 1366x768 into SCREENSHOTS_DIR when that is set."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from automations import health
from automations.models import AutomationEvent, AutomationLog, AutomationRule, RunStatus, WorkerProcess
from tests.automations.browser import CHROMIUM, CHROMIUM_ARGS
from tests.factories import EntityFactory, WorkspaceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page():
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(15_000)
            yield page
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def screenshot(page, name: str) -> None:
    directory = os.environ.get("SCREENSHOTS_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / name), full_page=False)


def busy_hour() -> AutomationRule:
    """An hour of runs on two rules, a backlog, two live workers and a silent one, a rule turned off."""
    now = timezone.now()
    workspace = WorkspaceFactory(name="Acme Sales")
    entity = EntityFactory(workspace=workspace, name="Leads")
    rules = [
        AutomationRule.objects.create(
            workspace=workspace,
            entity=entity,
            name=name,
            trigger_type="record_created",
            action_type=action,
            action_config={},
        )
        for name, action in (("Welcome email", "send_email"), ("Notify CRM <webhook>", "call_webhook"))
    ]
    logs = []
    for minute in range(60):
        finished = now - dt.timedelta(minutes=59 - minute)
        successes = 3 + (minute * 7) % 11
        failures = 2 if minute in (14, 15, 16, 41) else 0
        for i in range(successes + failures):
            logs.append(
                AutomationLog(
                    automation=rules[i % 2],
                    workspace_id=workspace.pk,
                    entity_id=entity.pk,
                    trigger_type="record_created",
                    action_type=rules[i % 2].action_type,
                    status=RunStatus.SUCCESS if i < successes else RunStatus.ERROR,
                    finished_at=finished,
                    attempts=1,
                )
            )
    AutomationLog.objects.bulk_create(logs)
    AutomationLog.objects.bulk_create(
        AutomationLog(  # retries of the rule that stays on (turning a rule off cancels its waiting runs)
            automation=rules[0],
            workspace_id=workspace.pk,
            entity_id=entity.pk,
            trigger_type="record_created",
            action_type="send_email",
            status=RunStatus.RETRYING,
            attempts=2,
            next_attempt_at=now - dt.timedelta(seconds=95),
        )
        for _ in range(4)
    )
    AutomationEvent.objects.bulk_create(
        AutomationEvent(
            event_type="created", workspace_id=workspace.pk, entity_id=entity.pk, record_id=entity.pk, record={}
        )
        for _ in range(12)
    )
    for n, (host, seen) in enumerate((("app-1", 2), ("app-2", 4), ("app-2", 140))):
        WorkerProcess.objects.create(
            id=f"{host}-{4100 + n}-9f2c{n}a",
            hostname=host,
            pid=4100 + n,
            queue="database",
            started_at=now - dt.timedelta(hours=5),
            last_seen_at=now - dt.timedelta(seconds=seen),
        )
    health.disable(
        rule=rules[1],
        reason="Turned off after 8 failed runs in a row. Last error: HTTP 503 from https://crm.example.com/hooks",
    )
    return rules[1]


def test_an_admin_finds_the_engine_page_and_reads_it(page, live_server):
    get_user_model().objects.create_superuser("root", "root@example.com", "pass-Word-123")
    broken = busy_hour()

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pass-Word-123")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/$"))
    screenshot(page, "admin-index-with-engine-link.png")

    page.click("#operations-module >> text=Engine")
    page.wait_for_url(re.compile(r".*/admin/engine/$"))
    assert page.locator("#card-queue .value").inner_text() == "16"  # 12 events + 4 due retries
    assert page.locator("#card-oldest .value").inner_text() == "1 min"
    assert page.locator("#card-workers .value").inner_text() == "2"
    assert page.locator("#workers tbody tr").count() == 3
    assert "silent" in page.locator("#workers").inner_text()
    assert page.locator("#runs-per-minute .bar").count() == 60
    assert "failed" in page.locator("#runs-per-minute").inner_text()
    assert page.locator("ol.breadcrumbs").inner_text().replace("\n", " ").strip().endswith("Engine")
    screenshot(page, "admin-engine.png")
    page.locator("#auto-disabled").scroll_into_view_if_needed()
    assert "HTTP 503 from https://crm.example.com/hooks" in page.locator("#auto-disabled").inner_text()
    screenshot(page, "admin-engine-rules-turned-off.png")

    page.click("#auto-disabled >> text=Notify CRM <webhook>")
    page.wait_for_url(re.compile(rf".*/admin/automations/automationrule/{broken.pk}/change/$"))
