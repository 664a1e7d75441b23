"""The demo that `make run` seeds: one rule per action type, each firing out of the box."""

import pytest
from django.core.management import call_command

from automations import tasks
from automations.action_types import action_types
from automations.models import AutomationEvent, AutomationLog, AutomationRule, RunStatus
from records import services
from records.models import Record, Task
from workspaces.models import Entity


@pytest.fixture
def demo(db, settings, httpserver):
    """The demo seeded against a local receiver standing in for the web server's inbox."""
    settings.DEMO_PASSWORD = "demo-pass-123"
    settings.DEMO_WEBHOOK_INBOX = True
    settings.AUTOMATIONS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    call_command("seed_demo", "--base-url", httpserver.url_for("/").replace("localhost", "127.0.0.1"))
    return Entity.objects.get(slug="leads")


def drain():
    for _ in range(5):
        if not AutomationEvent.objects.filter(processed_at__isnull=True).exists():
            return
        tasks.handle_events()


@pytest.mark.django_db(transaction=True)
def test_demo_has_one_active_rule_per_action_type_and_is_idempotent(demo, live_server):
    rules = AutomationRule.objects.filter(entity=demo, is_active=True)
    assert sorted(rules.values_list("action_type", flat=True)) == sorted(action_types.names())
    call_command("seed_demo", "--base-url", live_server.url.replace("localhost", "127.0.0.1"))
    assert AutomationRule.objects.filter(entity=demo).count() == len(action_types.names())


def test_demo_rules_fire(demo, mailoutbox, client, httpserver):
    httpserver.expect_request("/demo/webhook-inbox/", method="POST").respond_with_json({"received": True})
    drain()  # the seeded sample records fire the creation rules too
    mailoutbox.clear()
    record = services.record_create(entity=demo, data={"name": "Mary Jackson", "email": "mary@example.com"})
    drain()
    assert [m.subject for m in mailoutbox] == ["Welcome Mary Jackson!"]
    record.refresh_from_db()
    assert record.data["company"] == "(unknown)"  # update_field rule
    services.record_update(record=Record.objects.get(pk=record.pk), data={"status": "Contacted"})
    drain()
    assert Task.objects.filter(record=record, title="Follow up with Mary Jackson").count() == 1
    services.record_update(record=Record.objects.get(pk=record.pk), data={"status": "Closed Won"})
    drain()
    webhook_log = AutomationLog.objects.filter(action_type="call_webhook", record_id=record.id).get()
    assert webhook_log.status == RunStatus.SUCCESS, webhook_log.error
    ((request, _),) = httpserver.log
    # Hand the delivery to the real inbox view, as the web server would have received it.
    headers = {
        f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request.headers.items() if k.lower().startswith("webhook-")
    }
    assert (
        client.post("/demo/webhook-inbox/", request.get_data(), content_type="application/json", **headers).status_code
        == 200
    )
    inbox = client.get("/demo/webhook-inbox/?format=json").json()["deliveries"]
    mine = [d for d in inbox if d["payload"]["record"]["id"] == str(record.id)]
    assert len(mine) == 1 and mine[0]["signature_valid"] is True
    assert mine[0]["payload"]["event"] == "automation_triggered"
    assert client.get("/demo/webhook-inbox/").status_code == 200
