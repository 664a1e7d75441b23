"""Unknown keys in a request body are a 400 naming the key, on every write endpoint, and nothing changes
(a typo such as ``"is_activ": false`` must not create an active rule)."""

import pytest
from django.urls import get_resolver, resolve

from automations import services
from automations.models import AutomationLog, AutomationRule
from records.models import Record, Task
from tests.factories import UserFactory, seed_workspace
from workspaces.models import Entity, Membership, Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(owner, workspace, entity):
    ws = f"/api/v1/workspaces/{workspace.pk}"
    return {**seed_workspace(workspace, entity), "ws": ws, "ent": f"{ws}/entities/{entity.pk}", "owner": owner}


def endpoints(w):
    """(method, url, a body that is valid without the bogus key) for every write endpoint."""
    rule = f"{w['ws']}/automations/{w['rule'].pk}"
    new_rule = {
        "name": "New",
        "entity_id": str(w["entity"].pk),
        "trigger_type": "record_created",
        "action_type": "create_task",
        "action_config": {"title": "x"},
    }
    return [
        ("post", "/api/v1/workspaces/", {"name": "W"}),
        ("patch", f"{w['ws']}/", {"name": "W2"}),
        ("put", f"{w['ws']}/", {"name": "W2"}),
        ("post", f"{w['ws']}/members/", {"username": UserFactory().username, "role": "viewer"}),
        ("patch", f"{w['ws']}/members/{w['member'].pk}/", {"role": "viewer"}),
        ("post", f"{w['ws']}/entities/", {"name": "E", "fields": [{"name": "t", "type": "text"}]}),
        ("patch", f"{w['ws']}/entities/{w['entity'].pk}/", {"name": "E2"}),
        ("post", f"{w['ent']}/records/", {"data": {"name": "Ada"}}),
        ("put", f"{w['ent']}/records/{w['record'].pk}/", {"data": {"name": "Ada"}}),
        ("patch", f"{w['ent']}/records/{w['record'].pk}/", {"data": {"name": "Ada"}}),
        ("post", f"{w['ent']}/records/bulk/", {"records": [{"data": {"name": "Ada"}}]}),
        ("post", f"{w['ws']}/tasks/", {"title": "T"}),
        ("patch", f"{w['ws']}/tasks/{w['task'].pk}/", {"title": "T2"}),
        ("post", f"{w['ws']}/automations/", new_rule),
        ("put", f"{rule}/", {"name": "R2"}),
        ("patch", f"{rule}/", {"name": "R2"}),
        ("post", f"{rule}/test/", {"record_id": str(w["record"].pk), "dry_run": True}),
        ("post", f"{rule}/logs/{w['log'].pk}/retry/", {}),
        ("post", f"{rule}/logs/retry/", {"status": "error"}),
        ("post", f"{rule}/versions/1/restore/", {}),
        ("post", f"{rule}/rotate-secret/", {}),
        (
            "post",
            "/api/v1/auth/register/",
            {"username": "newbie", "email": "n@example.com", "password": "pass-Word-123"},
        ),
        ("post", "/api/v1/auth/token/", {"username": w["owner"].username, "password": "pass-Word-123"}),
    ]


def snapshot():
    models = (Workspace, Membership, Entity, Record, Task, AutomationRule, AutomationLog)
    return {model.__name__: sorted(map(str, model.objects.values_list().order_by("pk"))) for model in models}


def test_the_list_covers_every_write_route(world):
    """A new write endpoint must be added to ``endpoints`` (and so be checked)."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern).removeprefix("^")  # as ResolverMatch.route joins them
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns, route)
            else:
                yield route, pattern.callback

    writes = set()
    for route, view in walk(get_resolver().url_patterns):
        if not route.startswith("api/v1/"):
            continue
        actions = getattr(view, "actions", None)  # a viewset route: {method: action}
        methods = set(actions) if actions else {m for m in ("post", "put", "patch") if hasattr(view.cls, m)}
        if methods & {"post", "put", "patch"}:
            writes.add(route)
    covered = {resolve(url.split("?")[0]).route for _, url, _ in endpoints(world)}
    assert len(writes) >= 12
    assert writes <= covered, writes - covered


@pytest.mark.parametrize("index", range(21))
def test_every_write_endpoint_refuses_unknown_top_level_keys(api, world, index):
    method, url, body = endpoints(world)[index]
    client = api.as_user(world["owner"])
    before = snapshot()
    response = getattr(client, method)(url, {**body, "bogus": 1, "is_activ": False}, format="json")
    assert response.status_code == 400, (url, response.content[:500])
    errors = response.json()["errors"]
    assert "bogus" in errors and "is_activ" in errors, (url, errors)
    assert snapshot() == before, url
    # The same body without the typos is fine (the test is about the keys, not the body).
    api.credentials()
    client = api.as_user(world["owner"])
    assert getattr(client, method)(url, body, format="json").status_code < 300, url


def test_a_typo_names_the_key_it_probably_meant(api, owner, entity):
    body = {
        "name": "Welcome",
        "entity_id": str(entity.pk),
        "trigger_type": "record_created",
        "action_type": "create_task",
        "action_config": {"title": "t"},
        "is_activ": False,
    }
    response = api.as_user(owner).post(f"/api/v1/workspaces/{entity.workspace_id}/automations/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"is_activ": ["Unknown field 'is_activ'. Did you mean 'is_active'?"]}
    assert not AutomationRule.objects.exists()


@pytest.mark.parametrize("method", ["post", "patch"])
def test_unknown_action_config_keys_are_a_400_naming_them(api, owner, entity, method):
    rule = services.rule_create(
        workspace=entity.workspace,
        entity=entity,
        name="Follow up",
        trigger_type="record_created",
        action_type="create_task",
        action_config={"title": "t", "due_in_days": 1},
    )
    config = {"title": "t", "titel": "x", "due_in_dayz": 3}
    base = f"/api/v1/workspaces/{entity.workspace_id}/automations/"
    if method == "post":
        body = {
            "name": "N",
            "entity_id": str(entity.pk),
            "trigger_type": "record_created",
            "action_type": "create_task",
        }
        response = api.as_user(owner).post(base, {**body, "action_config": config}, format="json")
    else:
        response = api.as_user(owner).patch(f"{base}{rule.pk}/", {"action_config": config}, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"action_config.titel", "action_config.due_in_dayz"}
    assert errors["action_config.due_in_dayz"] == ["Unknown option 'due_in_dayz'. Did you mean 'due_in_days'?"]
    assert list(AutomationRule.objects.values_list("action_config", flat=True)) == [{"title": "t", "due_in_days": 1}]


def test_the_browsable_apis_form_token_is_not_an_unknown_key(client, owner, workspace):
    client.force_login(owner)
    response = client.post(
        f"/api/v1/workspaces/{workspace.pk}/tasks/",
        {"title": "From the form", "csrfmiddlewaretoken": "x"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201, response.content
