"""A run's log shows the chain of runs that caused it. A chain is one path of runs from a change: a rule
never re-runs along its own chain on the same record, but one edit can reach a rule along two paths."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from automations import services
from automations.models import AutomationLog, RunStatus
from records import services as record_services

pytestmark = pytest.mark.django_db(transaction=True)  # the real worker loop commits


@pytest.fixture
def two_rules(entity):
    set_status = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Set status",
        trigger_type="field_updated",
        trigger_config={"field_name": "name"},
        action_type="update_field",
        action_config={"field_name": "status", "new_value": "Contacted"},
    )
    any_change = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Any change",
        trigger_type="record_updated",
        action_type="create_task",
        action_config={"title": "Check {{ name }}"},
    )
    return set_status, any_change


@pytest.fixture
def one_edit(entity, two_rules, worker):
    record = record_services.record_create(entity=entity, data={"name": "Ada", "status": "New"})
    worker()
    record_services.record_update(record=record, data={"name": "Ada L."})
    worker()
    worker()
    return record


def test_one_edit_reaches_a_record_updated_rule_along_two_paths(two_rules, one_edit):
    set_status, any_change = two_rules
    runs = list(AutomationLog.objects.filter(automation=any_change).order_by("chain_depth"))
    assert [(run.status, run.chain_depth) for run in runs] == [(RunStatus.SUCCESS, 0), (RunStatus.SUCCESS, 1)]
    assert runs[1].chain == [{"rule_id": str(set_status.pk), "record_id": str(one_edit.pk)}]
    assert AutomationLog.objects.filter(automation=set_status).count() == 1  # never along its own chain


def test_the_api_log_shows_the_chain_with_rule_names(api, owner, workspace, two_rules, one_edit):
    set_status, any_change = two_rules
    base = f"/api/v1/workspaces/{workspace.pk}/automations/{any_change.pk}/logs/"
    logs = api.as_user(owner).get(base).json()["data"]["logs"]
    chains = sorted((log["chain"] for log in logs), key=len)
    assert chains == [[], [{"rule_id": str(set_status.pk), "rule_name": "Set status", "record_id": str(one_edit.pk)}]]
    caused = next(log for log in logs if log["chain"])
    one = api.as_user(owner).get(f"{base}{caused['id']}/").json()["data"]["log"]
    assert one["chain"] == caused["chain"] and one["chain_depth"] == 1


def test_a_deleted_rule_in_a_chain_keeps_its_id(api, owner, workspace, two_rules, one_edit):
    set_status, any_change = two_rules
    deleted_id = str(set_status.pk)
    services.rule_delete(rule=set_status)
    logs = api.as_user(owner).get(f"/api/v1/workspaces/{workspace.pk}/automations/{any_change.pk}/logs/")
    chain = next(log["chain"] for log in logs.json()["data"]["logs"] if log["chain"])
    assert chain == [{"rule_id": deleted_id, "rule_name": None, "record_id": str(one_edit.pk)}]


def test_the_admin_run_page_shows_the_chain(client, two_rules, one_edit):
    set_status, any_change = two_rules
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pass-Word-123"))
    caused = AutomationLog.objects.get(automation=any_change, chain_depth=1)
    html = client.get(reverse("admin:automations_automationlog_change", args=[caused.pk])).content.decode()
    assert "Caused by" in html
    assert reverse("admin:automations_automationrule_change", args=[set_status.pk]) in html
    assert "Set status" in html
    assert reverse("admin:records_record_change", args=[one_edit.pk]) in html
    direct = AutomationLog.objects.get(automation=any_change, chain_depth=0)
    html = client.get(reverse("admin:automations_automationlog_change", args=[direct.pk])).content.decode()
    assert "A change to the record, not made by an automation." in html
