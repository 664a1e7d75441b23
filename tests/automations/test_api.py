"""The seed's automation endpoints through the HTTP API, as clients use them."""

import datetime as dt
import uuid

import pytest
from django.apps import apps
from django.core import mail
from django.utils import timezone

from automations import services
from automations.models import AutomationLog, AutomationRule, RunStatus
from records.models import Task
from tests.factories import EntityFactory, MembershipFactory, RecordFactory
from workspaces.models import Role

pytestmark = pytest.mark.django_db

SEED_COLUMNS = {
    "id",
    "workspace_id",
    "entity_id",
    "name",
    "trigger_type",
    "trigger_config",
    "action_type",
    "action_config",
    "is_active",
    "created_at",
    "updated_at",
}


def url(workspace, *parts) -> str:
    tail = "".join(f"{part}/" for part in parts)
    return f"/api/v1/workspaces/{workspace.pk}/automations/{tail}"


@pytest.fixture
def rule(entity, owner):
    return services.rule_create(
        workspace=entity.workspace,
        actor=owner,
        entity=entity,
        name="Follow up",
        trigger_type="record_created",
        trigger_config={},
        action_type="create_task",
        action_config={"title": "Call {{name}}"},
    )


@pytest.fixture
def email_rule(entity, owner):
    return services.rule_create(
        workspace=entity.workspace,
        actor=owner,
        entity=entity,
        name="Welcome",
        trigger_type="record_created",
        action_type="send_email",
        action_config={"subject": "Welcome {{name}}!", "body": "Hi {{name}}"},
    )


@pytest.fixture
def foreign(db):
    """Another workspace with its owner, entity, record and rule."""
    membership = MembershipFactory(role=Role.OWNER)
    entity = EntityFactory(workspace=membership.workspace)
    rule = services.rule_create(
        workspace=membership.workspace,
        entity=entity,
        name="Theirs",
        trigger_type="record_created",
        action_type="create_task",
        action_config={"title": "x"},
    )
    return {"owner": membership.user, "entity": entity, "record": RecordFactory(entity=entity), "rule": rule}


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


def row_counts() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


def body(entity, **overrides):
    data = {
        "name": "Welcome Email",
        "entity_id": str(entity.pk),
        "trigger_type": "record_created",
        "trigger_config": {},
        "action_type": "send_email",
        "action_config": {"subject": "Welcome!", "body": "Hi {{name}}"},
        "is_active": True,
    }
    data.update(overrides)
    return data


# --------------------------------------------------------------------------- create


def test_create_returns_the_seed_shape(api, owner, entity):
    response = api.as_user(owner).post(url(entity.workspace), body(entity), format="json")
    assert response.status_code == 201, response.json()
    payload = response.json()
    assert payload["success"] is True
    assert payload["message"] == "Automation created successfully"
    automation = payload["data"]["automation"]
    assert set(automation) >= SEED_COLUMNS
    assert automation["entity_id"] == str(entity.pk)
    assert automation["workspace_id"] == str(entity.workspace.pk)
    assert automation["action_config"]["subject"] == "Welcome!"
    assert automation["signing_secret"].startswith("whsec_")
    assert automation["consecutive_failures"] == 0
    rule = AutomationRule.objects.get(pk=automation["id"])
    assert rule.created_by == owner


def test_create_works_without_trailing_slash(api, owner, entity):
    response = api.as_user(owner).post(url(entity.workspace).rstrip("/"), body(entity), format="json")
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("overrides", "error_key"),
    [
        ({"name": ""}, "name"),
        ({"entity_id": "not-a-uuid"}, "entity_id"),
        ({"entity_id": str(uuid.uuid4())}, "entity_id"),
        ({"trigger_type": "record_exploded"}, "trigger_type"),
        ({"action_type": "launch_rocket"}, "action_type"),
        ({"action_config": {"body": "no subject"}}, "action_config.subject"),
        ({"action_config": {"subject": "Hi\nthere", "body": "x"}}, "action_config.subject"),
        ({"action_config": {"subject": "{{ ''.__class__ }}", "body": "x"}}, "action_config.subject"),
        ({"action_config": {"subject": "ok", "body": "x", "to_email": "a@x.com, b@y.com"}}, "action_config.to_email"),
        ({"action_config": "not an object"}, "action_config.non_field_errors"),
        (
            {"action_type": "call_webhook", "action_config": {"url": "ftp://example.com/hook"}},
            "action_config.url",
        ),
        (
            {"action_type": "call_webhook", "action_config": {"url": "http://127.0.0.1/hook"}},
            "action_config.url",
        ),
        (
            {"action_type": "call_webhook", "action_config": {"url": "https://93.184.215.14/hook", "method": "GET"}},
            "action_config.method",
        ),
        (
            {"action_type": "update_field", "action_config": {"field_name": "nope", "new_value": 1}},
            "action_config.field_name",
        ),
        (
            {"action_type": "update_field", "action_config": {"field_name": "amount", "new_value": "lots"}},
            "action_config.new_value",
        ),
        ({"action_type": "create_task", "action_config": {}}, "action_config.title"),
        ({"trigger_type": "status_changed", "trigger_config": {}}, "trigger_config.to_status"),
        ({"trigger_type": "status_changed", "trigger_config": {"to_status": "Bogus"}}, "trigger_config.to_status"),
        ({"trigger_type": "field_updated", "trigger_config": {"field_name": "nope"}}, "trigger_config.field_name"),
        ({"trigger_type": "record_created", "trigger_config": {"extra": 1}}, "trigger_config.extra"),
        (
            {"conditions": {"match": "all", "rules": [{"field": "amount", "op": "zz", "value": 1}]}},
            "conditions.rules.0.op",
        ),
        ({"max_runs_per_minute": 0}, "max_runs_per_minute"),
    ],
)
def test_create_rejects_invalid_rules_per_key_and_saves_nothing(api, owner, entity, overrides, error_key):
    response = api.as_user(owner).post(url(entity.workspace), body(entity, **overrides), format="json")
    assert response.status_code == 400, response.json()
    payload = response.json()
    assert payload["success"] is False
    assert error_key in payload["errors"], payload["errors"]
    assert AutomationRule.objects.count() == 0


def test_create_rejects_an_entity_of_another_workspace(api, owner, entity, foreign):
    response = api.as_user(owner).post(
        url(entity.workspace), body(entity, entity_id=str(foreign["entity"].pk)), format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"entity_id": ["Entity not found in this workspace."]}
    assert not AutomationRule.objects.filter(workspace=entity.workspace).exists()


def test_create_requires_the_seed_fields(api, owner, entity):
    response = api.as_user(owner).post(url(entity.workspace), {}, format="json")
    assert response.status_code == 400
    assert {"name", "entity_id", "trigger_type", "action_type"} <= set(response.json()["errors"])


def test_create_with_conditions_and_throttle(api, owner, entity):
    conditions = {"match": "all", "rules": [{"field": "amount", "op": "gte", "value": 1000}]}
    response = api.as_user(owner).post(
        url(entity.workspace),
        body(entity, conditions=conditions, max_runs_per_minute=10, description="Big deals"),
        format="json",
    )
    assert response.status_code == 201, response.json()
    automation = response.json()["data"]["automation"]
    assert automation["conditions"]["rules"][0] == {"field": "amount", "op": "gte", "value": 1000}
    assert automation["max_runs_per_minute"] == 10
    assert automation["description"] == "Big deals"


# --------------------------------------------------------------------------- list and get


def test_list_has_the_seed_shape_and_filters(api, owner, entity, rule, email_rule, foreign):
    other_entity = EntityFactory(workspace=entity.workspace)
    services.rule_create(
        workspace=entity.workspace,
        entity=other_entity,
        name="Webhook on delete",
        trigger_type="record_deleted",
        action_type="create_task",
        action_config={"title": "gone"},
        is_active=False,
    )
    client = api.as_user(owner)
    response = client.get(url(entity.workspace))
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["total"] == 3 and len(data["automations"]) == 3
    assert str(foreign["rule"].pk) not in {a["id"] for a in data["automations"]}

    def names(**params):
        response = client.get(url(entity.workspace), params)
        assert response.status_code == 200, response.json()
        return sorted(a["name"] for a in response.json()["data"]["automations"])

    assert names(entity_id=str(entity.pk)) == ["Follow up", "Welcome"]
    assert names(is_active="false") == ["Webhook on delete"]
    assert names(is_active="true") == ["Follow up", "Welcome"]
    assert names(trigger_type="record_deleted") == ["Webhook on delete"]
    assert names(action_type="send_email") == ["Welcome"]
    assert names(search="FOLLOW") == ["Follow up"]
    assert names(entity_id=str(foreign["entity"].pk)) == []


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"entity_id": "nope"}, "entity_id"),
        ({"is_active": "maybe"}, "is_active"),
        ({"trigger_type": "x"}, "trigger_type"),
        ({"action_type": "x"}, "action_type"),
        ({"page_size": "0"}, "page_size"),
    ],
)
def test_list_rejects_bad_filters(api, owner, workspace, params, key):
    response = api.as_user(owner).get(url(workspace), params)
    assert response.status_code == 400
    assert key in response.json()["errors"]


def test_get_one(api, owner, rule):
    response = api.as_user(owner).get(url(rule.workspace, rule.pk))
    assert response.status_code == 200
    assert response.json()["data"]["automation"]["id"] == str(rule.pk)


def test_another_workspaces_rule_is_404(api, owner, workspace, foreign):
    client = api.as_user(owner)
    rule = foreign["rule"]
    for method, path in [
        ("get", url(workspace, rule.pk)),
        ("patch", url(workspace, rule.pk)),
        ("put", url(workspace, rule.pk)),
        ("delete", url(workspace, rule.pk)),
        ("post", url(workspace, rule.pk, "test")),
        ("get", url(workspace, rule.pk, "logs")),
        ("post", url(workspace, rule.pk, "rotate-secret")),
    ]:
        response = getattr(client, method)(path, {"name": "hijack"}, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json()["success"] is False
    rule.refresh_from_db()
    assert rule.name == "Theirs"


def test_unknown_rule_id_is_404(api, owner, workspace):
    response = api.as_user(owner).get(url(workspace, uuid.uuid4()))
    assert response.status_code == 404


def test_signing_secret_is_shown_to_owners_and_admins_only(api, members, rule):
    for role, visible in [(Role.OWNER, True), (Role.ADMIN, True), (Role.MEMBER, False), (Role.VIEWER, False)]:
        client = api.as_user(members[role])
        one = client.get(url(rule.workspace, rule.pk)).json()["data"]["automation"]
        listed = client.get(url(rule.workspace)).json()["data"]["automations"][0]
        assert ("signing_secret" in one) is visible, role
        assert ("signing_secret" in listed) is visible, role
        if visible:
            assert one["signing_secret"] == rule.signing_secret


@pytest.fixture
def hook_rule(entity, owner, settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True
    return services.rule_create(
        workspace=entity.workspace,
        actor=owner,
        entity=entity,
        name="Hook",
        trigger_type="record_created",
        action_type="call_webhook",
        action_config={
            "url": "http://127.0.0.1:9/hook",
            "headers": {"Authorization": "Bearer s3cret", "x-api-key": "k3y", "X-Sig": "sig", "X-Plain": "plain"},
            "secret_headers": ["x-sig"],
        },
    )


def test_secret_header_values_are_shown_to_owners_and_admins_only(api, members, hook_rule):
    clear = {"Authorization": "Bearer s3cret", "x-api-key": "k3y", "X-Sig": "sig", "X-Plain": "plain"}
    hidden = {"Authorization": "[redacted]", "x-api-key": "[redacted]", "X-Sig": "[redacted]", "X-Plain": "plain"}
    for role, headers in [(Role.OWNER, clear), (Role.ADMIN, clear), (Role.MEMBER, hidden), (Role.VIEWER, hidden)]:
        client = api.as_user(members[role])
        one = client.get(url(hook_rule.workspace, hook_rule.pk))
        listed = client.get(url(hook_rule.workspace))
        assert one.json()["data"]["automation"]["action_config"]["headers"] == headers, role
        assert listed.json()["data"]["automations"][0]["action_config"]["headers"] == headers, role
        if headers is hidden:
            for response in (one, listed):
                assert b"s3cret" not in response.content and b"k3y" not in response.content, role
    hook_rule.refresh_from_db()
    assert hook_rule.action_config["headers"] == clear  # redaction is in the response only


def test_patch_with_redacted_header_values_keeps_the_stored_ones(api, owner, hook_rule):
    # What a member saw, edited and sent back by an owner (header names ignore case).
    config = {
        **hook_rule.action_config,
        "headers": {
            "AUTHORIZATION": "[redacted]",
            "x-api-key": "[redacted]",
            "X-Sig": "[redacted]",
            "X-Plain": "changed",
        },
    }
    response = api.as_user(owner).patch(
        url(hook_rule.workspace, hook_rule.pk), {"action_config": config}, format="json"
    )
    assert response.status_code == 200, response.json()
    hook_rule.refresh_from_db()
    assert hook_rule.action_config["headers"] == {
        "AUTHORIZATION": "Bearer s3cret",
        "x-api-key": "k3y",
        "X-Sig": "sig",
        "X-Plain": "changed",
    }


def test_a_redacted_placeholder_without_a_stored_value_is_refused(api, owner, hook_rule):
    before = AutomationRule.objects.values().get(pk=hook_rule.pk)
    config = {**hook_rule.action_config, "headers": {"X-New-Token": "[redacted]"}}
    response = api.as_user(owner).patch(
        url(hook_rule.workspace, hook_rule.pk), {"action_config": config}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert "action_config.headers" in response.json()["errors"]
    assert "X-New-Token" in response.json()["errors"]["action_config.headers"][0]
    assert AutomationRule.objects.values().get(pk=hook_rule.pk) == before


# --------------------------------------------------------------------------- update and delete


@pytest.mark.parametrize("method", ["put", "patch"])
def test_put_and_patch_are_partial(api, owner, rule, method):
    response = getattr(api.as_user(owner), method)(url(rule.workspace, rule.pk), {"name": "Renamed"}, format="json")
    assert response.status_code == 200, response.json()
    automation = response.json()["data"]["automation"]
    assert automation["name"] == "Renamed"
    assert automation["action_config"] == {"title": "Call {{name}}"} | {k: v for k, v in rule.action_config.items()}
    assert response.json()["message"] == "Automation updated successfully"


@pytest.mark.parametrize("method", ["put", "patch"])
def test_invalid_update_answers_400_and_changes_nothing(api, owner, rule, method):
    before = AutomationRule.objects.values().get(pk=rule.pk)
    client = api.as_user(owner)
    response = getattr(client, method)(
        url(rule.workspace, rule.pk), {"name": "X", "action_config": {"title": ""}}, format="json"
    )
    assert response.status_code == 400
    assert "action_config.title" in response.json()["errors"]
    # A new trigger type is checked with the config it will run with.
    response = getattr(client, method)(url(rule.workspace, rule.pk), {"trigger_type": "status_changed"}, format="json")
    assert response.status_code == 400
    assert "trigger_config.to_status" in response.json()["errors"]
    assert AutomationRule.objects.values().get(pk=rule.pk) == before


def test_update_can_change_type_and_config_together(api, owner, rule):
    response = api.as_user(owner).patch(
        url(rule.workspace, rule.pk),
        {"trigger_type": "status_changed", "trigger_config": {"to_status": "Contacted", "from_status": "New"}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    rule.refresh_from_db()
    assert rule.trigger_config == {"to_status": "Contacted", "from_status": "New"}


def test_update_cannot_move_a_rule_to_another_workspaces_entity(api, owner, rule, foreign):
    response = api.as_user(owner).patch(
        url(rule.workspace, rule.pk), {"entity_id": str(foreign["entity"].pk)}, format="json"
    )
    assert response.status_code == 400
    assert "entity_id" in response.json()["errors"]
    rule.refresh_from_db()
    assert rule.entity_id != foreign["entity"].pk


def test_reactivating_a_disabled_rule_clears_its_failure_state(api, owner, rule):
    AutomationRule.objects.filter(pk=rule.pk).update(
        is_active=False, consecutive_failures=8, disabled_reason="too many failures", disabled_at=timezone.now()
    )
    response = api.as_user(owner).patch(url(rule.workspace, rule.pk), {"is_active": True}, format="json")
    automation = response.json()["data"]["automation"]
    assert automation["is_active"] is True
    assert automation["consecutive_failures"] == 0
    assert automation["disabled_reason"] == "" and automation["disabled_at"] is None


def test_delete_removes_the_rule_and_its_logs(api, owner, rule):
    make_log(rule)
    response = api.as_user(owner).delete(url(rule.workspace, rule.pk))
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Automation deleted successfully", "data": {}}
    assert not AutomationRule.objects.filter(pk=rule.pk).exists()
    assert not AutomationLog.objects.exists()


# --------------------------------------------------------------------------- roles


READ = {Role.OWNER: True, Role.ADMIN: True, Role.MEMBER: True, Role.VIEWER: True}
WRITE = {Role.OWNER: True, Role.ADMIN: True, Role.MEMBER: False, Role.VIEWER: False}


@pytest.mark.parametrize("role", [*Role.values, "outsider", "anonymous"])
def test_role_matrix(api, members, rule, lead, role):
    failed = make_log(rule, status=RunStatus.ERROR, error="boom")
    ws = rule.workspace
    calls = [
        ("get", url(ws), None, READ, 200),
        ("get", url(ws, rule.pk), None, READ, 200),
        ("get", url(ws, rule.pk, "logs"), None, READ, 200),
        ("post", url(ws), None, WRITE, 400),  # empty body: allowed roles get past the permission check
        ("patch", url(ws, rule.pk), {"name": "n"}, WRITE, 200),
        ("put", url(ws, rule.pk), {"name": "n"}, WRITE, 200),
        ("post", url(ws, rule.pk, "test"), {"record_id": str(lead.pk), "dry_run": True}, WRITE, 200),
        ("post", url(ws, rule.pk, "logs", failed.pk, "retry"), None, WRITE, 202),
        ("post", url(ws, rule.pk, "rotate-secret"), None, WRITE, 200),
        ("delete", url(ws, rule.pk), None, WRITE, 200),
    ]
    client = api if role == "anonymous" else api.as_user(members[role])
    for method, path, data, allowed, ok_status in calls:
        response = getattr(client, method)(path, data or {}, format="json")
        if role == "anonymous":
            expected = 401
        elif role == "outsider":
            expected = 404
        else:
            expected = ok_status if allowed[role] else 403
        assert response.status_code == expected, (role, method, path, response.json())
        assert response.json()["success"] is (expected < 400)


# --------------------------------------------------------------------------- test runs


def test_real_test_run_executes_and_is_logged_as_test(api, owner, rule, lead):
    response = api.as_user(owner).post(url(rule.workspace, rule.pk, "test"), {"record_id": str(lead.pk)}, format="json")
    assert response.status_code == 200, response.json()
    payload = response.json()
    assert payload["message"] == "Automation test completed"
    data = payload["data"]
    assert data["record_id"] == str(lead.pk)
    assert data["automation"]["id"] == str(rule.pk)
    result = data["test_result"]
    assert result["success"] is True and result["dry_run"] is False
    assert result["action_type"] == "create_task"
    assert result["result"]["title"] == "Call Ada"
    task = Task.objects.get()
    assert task.record_id == lead.pk and task.created_by_rule_id == rule.pk
    log = AutomationLog.objects.get()
    assert log.is_test and log.status == RunStatus.SUCCESS and str(log.pk) == result["log_id"]


def test_real_test_run_sends_the_email(api, owner, email_rule, lead):
    response = api.as_user(owner).post(
        url(email_rule.workspace, email_rule.pk, "test"), {"record_id": str(lead.pk), "dry_run": False}, format="json"
    )
    result = response.json()["data"]["test_result"]
    assert result["success"] is True
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Welcome Ada!"
    assert mail.outbox[0].to == ["ada@example.com"]


def test_a_failing_test_run_reports_the_error(api, owner, email_rule, entity):
    record = RecordFactory(entity=entity, data={"name": "No Mail"})
    response = api.as_user(owner).post(
        url(email_rule.workspace, email_rule.pk, "test"), {"record_id": str(record.pk)}, format="json"
    )
    assert response.status_code == 200
    result = response.json()["data"]["test_result"]
    assert result["success"] is False
    assert "No recipient" in result["error"]
    email_rule.refresh_from_db()
    assert email_rule.consecutive_failures == 0  # test runs do not count against the rule


def test_dry_run_of_an_email_renders_it_without_side_effects(api, owner, email_rule, lead):
    client = api.as_user(owner)
    before = row_counts()
    response = client.post(
        url(email_rule.workspace, email_rule.pk, "test"), {"record_id": str(lead.pk), "dry_run": True}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["message"] == "Automation dry run completed"
    result = response.json()["data"]["test_result"]
    assert result["dry_run"] is True and result["success"] is True
    assert result["trigger_matches"] is True and result["conditions_match"] is True
    preview = result["preview"]
    assert preview["to"] == "ada@example.com"
    assert preview["subject"] == "Welcome Ada!"
    assert "Hi Ada" in preview["html"] and preview["text"] == "Hi Ada"
    assert mail.outbox == []
    assert row_counts() == before


def test_dry_run_of_a_webhook_sends_nothing(api, owner, entity, lead, httpserver, settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE = True
    httpserver.expect_request("/hook").respond_with_json({"ok": True})
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Hook",
        trigger_type="record_created",
        action_type="call_webhook",
        action_config={"url": httpserver.url_for("/hook"), "headers": {"Authorization": "Bearer s3cret"}},
    )
    before = row_counts()
    response = api.as_user(owner).post(
        url(entity.workspace, rule.pk, "test"), {"record_id": str(lead.pk), "dry_run": True}, format="json"
    )
    assert response.status_code == 200, response.json()
    preview = response.json()["data"]["test_result"]["preview"]
    assert preview["method"] == "POST" and preview["url"] == httpserver.url_for("/hook")
    assert "s3cret" not in str(preview["headers"])
    assert set(preview["signature_headers"]) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert '"event": "automation_triggered"' in preview["body"]
    assert httpserver.log == []
    assert row_counts() == before

    # The real run reaches the receiver.
    response = api.as_user(owner).post(
        url(entity.workspace, rule.pk, "test"), {"record_id": str(lead.pk)}, format="json"
    )
    assert response.json()["data"]["test_result"]["success"] is True
    assert len(httpserver.log) == 1


def test_dry_run_of_update_field_shows_the_diff_and_writes_nothing(api, owner, entity, lead):
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Mark contacted",
        trigger_type="status_changed",
        trigger_config={"to_status": "New"},
        action_type="update_field",
        action_config={"field_name": "status", "new_value": "Contacted"},
    )
    before = row_counts()
    response = api.as_user(owner).post(
        url(entity.workspace, rule.pk, "test"), {"record_id": str(lead.pk), "dry_run": True}, format="json"
    )
    result = response.json()["data"]["test_result"]
    assert result["preview"] == {"field_name": "status", "old_value": "New", "new_value": "Contacted", "changed": True}
    assert result["trigger_matches"] is True
    lead.refresh_from_db()
    assert lead.data["status"] == "New"
    assert row_counts() == before


def test_dry_run_of_create_task_previews_the_task(api, owner, rule, lead):
    before = row_counts()
    response = api.as_user(owner).post(
        url(rule.workspace, rule.pk, "test"), {"record_id": str(lead.pk), "dry_run": True}, format="json"
    )
    preview = response.json()["data"]["test_result"]["preview"]
    assert preview["title"] == "Call Ada" and preview["record_id"] == str(lead.pk)
    assert row_counts() == before


def test_dry_run_reports_conditions_that_do_not_match(api, owner, entity, lead):
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Big deals",
        trigger_type="record_created",
        conditions={"match": "all", "rules": [{"field": "amount", "op": "gte", "value": 1000}]},
        action_type="create_task",
        action_config={"title": "x"},
    )
    response = api.as_user(owner).post(
        url(entity.workspace, rule.pk, "test"), {"record_id": str(lead.pk), "dry_run": True}, format="json"
    )
    assert response.json()["data"]["test_result"]["conditions_match"] is False


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        ({}, "record_id"),
        ({"record_id": "nope"}, "record_id"),
        ({"record_id": str(uuid.uuid4())}, "record_id"),
        ({"record_id": "LEAD", "dry_run": "maybe"}, "dry_run"),
    ],
)
def test_test_run_rejects_bad_input(api, owner, rule, lead, payload, key):
    payload = {k: (str(lead.pk) if v == "LEAD" else v) for k, v in payload.items()}
    response = api.as_user(owner).post(url(rule.workspace, rule.pk, "test"), payload, format="json")
    assert response.status_code == 400
    assert key in response.json()["errors"]
    assert not AutomationLog.objects.exists()


def test_test_run_rejects_records_of_another_workspace_or_entity(api, owner, rule, foreign):
    client = api.as_user(owner)
    response = client.post(
        url(rule.workspace, rule.pk, "test"), {"record_id": str(foreign["record"].pk)}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"record_id": ["Record not found in this workspace."]}
    other_entity_record = RecordFactory(entity=EntityFactory(workspace=rule.workspace))
    response = client.post(
        url(rule.workspace, rule.pk, "test"), {"record_id": str(other_entity_record.pk)}, format="json"
    )
    assert response.status_code == 400
    assert "record_id" in response.json()["errors"]
    assert not AutomationLog.objects.exists() and not Task.objects.exists()


# --------------------------------------------------------------------------- logs


def test_logs_are_newest_first_with_the_run_ledger(api, owner, rule):
    old = make_log(rule, status=RunStatus.ERROR, error="boom", attempts=3, duration_ms=12)
    AutomationLog.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=2))
    new = make_log(rule, result={"task_id": "t"}, is_test=True, executed_at=timezone.now())
    make_log(services.rule_duplicate(rule=rule))  # another rule's run is not listed
    response = api.as_user(owner).get(url(rule.workspace, rule.pk, "logs"))
    assert response.status_code == 200
    payload = response.json()
    assert payload["message"] == "Retrieved 2 logs"
    data = payload["data"]
    assert data["total"] == 2 and data["limit"] == 50
    assert [log["id"] for log in data["logs"]] == [str(new.pk), str(old.pk)]
    first, second = data["logs"]
    assert first["automation_id"] == str(rule.pk)
    assert first["result"] == {"task_id": "t"} and first["is_test"] is True and first["executed_at"]
    assert second["status"] == "error" and second["error"] == "boom"
    assert second["attempts"] == 3 and second["duration_ms"] == 12
    assert {"record_id", "trigger_type", "action_type", "delivery_id", "next_attempt_at"} <= set(second)


def test_logs_limit_and_filters(api, owner, rule):
    for _ in range(55):
        make_log(rule)
    failed = make_log(rule, status=RunStatus.ERROR)
    old = make_log(rule, status=RunStatus.ERROR)
    AutomationLog.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=10))
    client = api.as_user(owner)

    def get(**params):
        response = client.get(url(rule.workspace, rule.pk, "logs"), params)
        assert response.status_code == 200, response.json()
        return response.json()["data"]

    assert len(get()["logs"]) == 50 and get()["total"] == 57
    assert len(get(limit=3)["logs"]) == 3
    assert len(get(limit=500)["logs"]) == 57
    assert [log["id"] for log in get(status="error")["logs"]] == [str(failed.pk), str(old.pk)]
    since = (timezone.now() - dt.timedelta(days=1)).date().isoformat()
    assert get(status="error", since=since)["total"] == 1
    assert get(status="error", until=since)["total"] == 1
    assert get(until=(timezone.now() - dt.timedelta(days=5)).isoformat())["total"] == 1
    assert get(is_test="true")["total"] == 0


def test_logs_page_through_every_run(api, owner, rule):
    runs = [make_log(rule) for _ in range(7)]
    newest_first = [str(log.pk) for log in sorted(runs, key=lambda log: (log.created_at, log.pk), reverse=True)]
    client = api.as_user(owner)

    def get(**params):
        response = client.get(url(rule.workspace, rule.pk, "logs"), params)
        assert response.status_code == 200, response.json()
        return response.json()["data"]

    pages = [get(limit=3, page=page) for page in (1, 2, 3)]
    assert [log["id"] for page in pages for log in page["logs"]] == newest_first
    assert [len(page["logs"]) for page in pages] == [3, 3, 1]
    assert pages[1] | {"logs": None} == {
        "logs": None,
        "total": 7,
        "limit": 3,
        "page_size": 3,
        "page": 2,
        "pages": 3,
    }
    assert [log["id"] for log in get(limit=3)["logs"]] == newest_first[:3]  # limit alone: the first page
    assert [log["id"] for log in get(page_size=3, page=2)["logs"]] == newest_first[3:6]
    assert get()["page"] == 1 and get()["pages"] == 1 and get()["limit"] == 50

    past = client.get(url(rule.workspace, rule.pk, "logs"), {"limit": 3, "page": 4})
    assert past.status_code == 404 and past.json()["message"] == "Invalid page: past the last page."
    empty = client.get(url(services.rule_duplicate(rule=rule).workspace, rule.pk, "logs"), {"status": "running"})
    assert empty.json()["data"] | {"logs": None} == {
        "logs": None,
        "total": 0,
        "limit": 50,
        "page_size": 50,
        "page": 1,
        "pages": 1,
    }


def test_one_log_by_id(api, members, rule, foreign):
    log = make_log(rule, status=RunStatus.ERROR, error="boom")
    other_rule = services.rule_duplicate(rule=rule)
    others_log = make_log(other_rule)
    theirs = make_log(foreign["rule"])
    for role in (Role.OWNER, Role.VIEWER):
        response = api.as_user(members[role]).get(url(rule.workspace, rule.pk, "logs", log.pk))
        assert response.status_code == 200, response.json()
        assert response.json()["message"] == "Log retrieved"
        data = response.json()["data"]
        assert set(data) == {"log"}
        assert data["log"]["id"] == str(log.pk) and data["log"]["error"] == "boom"
        listed = api.as_user(members[role]).get(url(rule.workspace, rule.pk, "logs")).json()["data"]["logs"][0]
        assert data["log"] == listed
    client = api.as_user(members[Role.OWNER])
    assert client.get(url(rule.workspace, rule.pk, "logs", others_log.pk)).status_code == 404
    assert client.get(url(rule.workspace, rule.pk, "logs", theirs.pk)).status_code == 404
    assert client.get(url(rule.workspace, foreign["rule"].pk, "logs", theirs.pk)).status_code == 404
    assert client.get(url(rule.workspace, rule.pk, "logs", uuid.uuid4())).status_code == 404
    assert api.as_user(members["outsider"]).get(url(rule.workspace, rule.pk, "logs", log.pk)).status_code == 404


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"status": "exploded"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-13-45"}, "until"),
        ({"page": "0"}, "page"),
        ({"page": "x"}, "page"),
        ({"page_size": "501"}, "page_size"),
        ({"page_size": "3", "limit": "4"}, "page_size"),
    ],
)
def test_logs_reject_bad_params(api, owner, rule, params, key):
    response = api.as_user(owner).get(url(rule.workspace, rule.pk, "logs"), params)
    assert response.status_code == 400
    assert key in response.json()["errors"]


# --------------------------------------------------------------------------- retry and secret rotation


def test_retry_requeues_a_failed_run(api, owner, rule):
    failed = make_log(rule, status=RunStatus.ERROR, error="boom", attempts=8)
    response = api.as_user(owner).post(url(rule.workspace, rule.pk, "logs", failed.pk, "retry"))
    assert response.status_code == 202, response.json()
    log = response.json()["data"]["log"]
    assert log["id"] == str(failed.pk) and log["status"] == "pending" and log["error"] == ""
    assert log["delivery_id"] == failed.delivery_id
    failed.refresh_from_db()
    assert failed.status == RunStatus.PENDING


@pytest.mark.parametrize(
    ("fields", "rule_active"),
    [
        ({"status": RunStatus.SUCCESS}, True),
        ({"status": RunStatus.ERROR, "is_test": True}, True),
        ({"status": RunStatus.ERROR}, False),
    ],
)
def test_retry_conflicts(api, owner, rule, fields, rule_active):
    log = make_log(rule, **fields)
    AutomationRule.objects.filter(pk=rule.pk).update(is_active=rule_active)
    response = api.as_user(owner).post(url(rule.workspace, rule.pk, "logs", log.pk, "retry"))
    assert response.status_code == 409
    assert response.json()["success"] is False
    log.refresh_from_db()
    assert log.status == fields["status"]


def test_retry_of_another_rules_run_is_404(api, owner, rule, foreign):
    theirs = make_log(foreign["rule"], status=RunStatus.ERROR)
    mine_other_rule = make_log(services.rule_duplicate(rule=rule), status=RunStatus.ERROR)
    client = api.as_user(owner)
    for log in (theirs, mine_other_rule):
        response = client.post(url(rule.workspace, rule.pk, "logs", log.pk, "retry"))
        assert response.status_code == 404
    assert client.post(url(rule.workspace, rule.pk, "logs", uuid.uuid4(), "retry")).status_code == 404


def test_rotate_secret_keeps_the_old_one_for_a_grace_period(api, owner, rule):
    old = rule.signing_secret
    response = api.as_user(owner).post(url(rule.workspace, rule.pk, "rotate-secret"))
    assert response.status_code == 200
    new = response.json()["data"]["automation"]["signing_secret"]
    assert new != old and new.startswith("whsec_")
    rule.refresh_from_db()
    assert rule.previous_signing_secret == old and rule.previous_secret_expires_at > timezone.now()


# --------------------------------------------------------------------------- browsable API and schema


def test_browsable_api_renders_the_envelope_and_forms(client, owner, rule):
    client.force_login(owner)
    response = client.get(url(rule.workspace), HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    html = response.content.decode()
    assert "&quot;automations&quot;" in html and "&quot;success&quot;" in html
    assert 'name="trigger_type"' in html  # the create form
    response = client.get(url(rule.workspace, rule.pk, "test"), HTTP_ACCEPT="text/html")
    assert response.status_code == 405  # GET is not allowed, but the page still renders the test form
    assert 'name="record_id"' in response.content.decode()
    response = client.get(url(rule.workspace, rule.pk), HTTP_ACCEPT="text/html")
    assert response.status_code == 200


def test_openapi_documents_one_schema_per_trigger_and_action_type(client):
    from automations.action_types import action_types
    from automations.trigger_types import trigger_types

    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    components = schema["components"]["schemas"]
    rule_schema = components["AutomationRuleRequest"]["allOf"]
    discriminated = {part["discriminator"]["propertyName"]: part for part in rule_schema if "discriminator" in part}
    assert set(discriminated) == {"trigger_type", "action_type"}
    assert set(discriminated["trigger_type"]["discriminator"]["mapping"]) == set(trigger_types.names())
    # action_type / action_config are the first step: an action type or a delay
    assert set(discriminated["action_type"]["discriminator"]["mapping"]) == {*action_types.names(), "delay"}
    assert components["SendEmailActionConfigRequest"]["required"] == ["body", "subject"]
    assert "url" in components["CallWebhookActionConfigRequest"]["properties"]
    assert components["StatusChangedTriggerConfig"]["required"] == ["to_status"]
    assert "RecordCreatedTriggerConfig" in components
    paths = schema["paths"]
    base = "/api/v1/workspaces/{workspace_pk}/automations/"
    assert {"get", "post"} <= set(paths[base])
    assert {"get", "put", "patch", "delete"} <= set(paths[base + "{id}/"])
    for tail in ("{id}/test/", "{id}/logs/", "{id}/logs/{log_id}/retry/", "{id}/rotate-secret/"):
        assert base + tail in paths
