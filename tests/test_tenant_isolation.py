"""Tenant isolation and roles over every API URL, discovered from the URL conf.

Every pattern under ``/api/v1/`` must be either in ``RIGHTS`` (workspace-scoped: the lowest role allowed
per method) or in ``NOT_WORKSPACE_SCOPED``; a new endpoint that is in neither fails
``test_every_api_url_is_classified``, so none can escape these tests. For each workspace-scoped URL and
method: an outsider gets 404 (also when the outsider puts their own workspace id in the URL), every role
below the minimum gets 403, every role at or above it gets past the permission check."""

from __future__ import annotations

import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from automations.models import AutomationLog
from tests.factories import seed_workspace
from workspaces.models import ROLE_RANK, Role

V, M, A, OWN = Role.VIEWER, Role.MEMBER, Role.ADMIN, Role.OWNER

# (url name, method) -> the lowest role that may do it.
RIGHTS: dict[tuple[str, str], str] = {
    ("workspace-detail", "get"): V,
    ("workspace-detail", "put"): A,
    ("workspace-detail", "patch"): A,
    ("workspace-detail", "delete"): OWN,
    ("member-list", "get"): V,
    ("member-list", "post"): A,
    ("member-detail", "get"): V,
    ("member-detail", "put"): A,
    ("member-detail", "patch"): A,
    ("member-detail", "delete"): A,  # removing someone else; leaving (yourself) is open to all
    ("entity-list", "get"): V,
    ("entity-list", "post"): A,
    ("entity-detail", "get"): V,
    ("entity-detail", "put"): A,
    ("entity-detail", "patch"): A,
    ("entity-detail", "delete"): A,
    ("record-list", "get"): V,
    ("record-list", "post"): M,
    ("record-bulk", "post"): M,
    ("record-detail", "get"): V,
    ("record-detail", "put"): M,
    ("record-detail", "patch"): M,
    ("record-detail", "delete"): M,
    ("task-list", "get"): V,
    ("task-list", "post"): M,
    ("task-detail", "get"): V,
    ("task-detail", "put"): M,
    ("task-detail", "patch"): M,
    ("task-detail", "delete"): M,
    ("automation-list", "get"): V,
    ("automation-list", "post"): A,
    ("automation-detail", "get"): V,
    ("automation-detail", "put"): A,
    ("automation-detail", "patch"): A,
    ("automation-detail", "delete"): A,
    ("automation-test", "post"): A,
    ("automation-logs", "get"): V,
    ("automation-log", "get"): V,
    ("automation-retry-log", "post"): A,
    ("automation-retry-logs", "post"): A,
    ("automation-versions", "get"): V,
    ("automation-restore-version", "post"): A,
    ("automation-rotate-secret", "post"): A,
}

# Not under a workspace: checked by their own apps' tests.
NOT_WORKSPACE_SCOPED = {
    "api-root",
    "auth-register",
    "auth-token",
    "auth-me",
    "workspace-list",
    "schema",
    "swagger-ui",
    "redoc",
}

# Which object each URL's ``pk`` names (by URL name prefix).
PK_KIND = {"workspace": "workspace", "member": "member", "entity": "entity", "record": "record", "task": "task"}
PK_KIND["automation"] = "rule"
SKIP_METHODS = {"head", "options", "trace"}


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def _methods(pattern: URLPattern) -> list[str]:
    callback = pattern.callback
    if getattr(callback, "actions", None):
        methods = callback.actions.keys()
    else:
        methods = getattr(getattr(callback, "cls", None), "http_method_names", None) or ["get"]
    return sorted(m for m in methods if m not in SKIP_METHODS)


def api_endpoints() -> list[tuple[str, str]]:
    """(url name, method) of every API pattern."""
    found = []
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith("api/v1/") and pattern.name:
            found.extend((pattern.name, method) for method in _methods(pattern))
    return sorted(set(found))


ENDPOINTS = api_endpoints()
SCOPED = [(name, method) for name, method in ENDPOINTS if name not in NOT_WORKSPACE_SCOPED]


def test_every_api_url_is_classified():
    unknown = [ep for ep in ENDPOINTS if ep[0] not in NOT_WORKSPACE_SCOPED and ep not in RIGHTS]
    assert not unknown, f"Add these endpoints to RIGHTS (or NOT_WORKSPACE_SCOPED): {unknown}"
    stale = set(RIGHTS) - set(ENDPOINTS)
    assert not stale, f"RIGHTS lists endpoints that no longer exist: {stale}"
    assert len(SCOPED) >= 35


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Many users per test: a fast hasher keeps the table quick (hashing strength is not under test)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def target(workspace, members):
    return seed_workspace(workspace)


@pytest.fixture
def outsiders_own(members):
    """The outsider's own workspace, with its own objects."""
    return seed_workspace(members["outsider"].memberships.get().workspace)


def build_url(name: str, url_ws, objects: dict) -> str:
    """The concrete URL of ``name`` with ``url_ws`` in the path and ``objects``' ids for the rest."""
    from django.urls import reverse

    kind = PK_KIND[name.split("-")[0]]
    kwargs: dict = {}
    route = next(str(p.pattern) for r, p in _walk(get_resolver().url_patterns) if p.name == name)
    full_route = next(r for r, p in _walk(get_resolver().url_patterns) if p.name == name)
    if name.startswith("workspace-"):
        kwargs["pk"] = url_ws.pk
    else:
        kwargs["workspace_pk"] = url_ws.pk
        if "(?P<pk>" in route:
            kwargs["pk"] = objects[kind].pk
    if "entity_pk" in full_route:
        kwargs["entity_pk"] = objects["entity"].pk
    if "log_id" in route:
        kwargs["log_id"] = objects["log"].pk
    if "<version>" in route:
        kwargs["version"] = 1
    return reverse(name, kwargs=kwargs)


# Bodies that pass validation where an empty one would not reach the permission check of a service.
BODIES = {
    ("member-detail", "put"): {"role": "member"},
    ("member-detail", "patch"): {"role": "member"},
    ("automation-retry-logs", "post"): {"status": "error"},
}


def call(api, user, method: str, url: str, name: str = ""):
    client = api.as_user(user)
    return getattr(client, method)(url, BODIES.get((name, method), {}), format="json")


# --------------------------------------------------------------------------- the table


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), SCOPED)
def test_outsider_gets_404(api, members, target, outsiders_own, name, method):
    outsider = members["outsider"]
    response = call(api, outsider, method, build_url(name, target["workspace"], target))
    assert response.status_code == 404, (name, method, response.content[:300])
    assert response.json()["success"] is False
    if name != "workspace-detail":
        # Their own workspace in the path does not reach our objects either.
        own_ws = outsiders_own["workspace"]
        mixed = {**outsiders_own}
        for key in ("entity", "record", "rule", "log", "task", "member"):
            if key in build_kwargs_needed(name):
                mixed[key] = target[key]
        if mixed != outsiders_own:
            response = call(api, outsider, method, build_url(name, own_ws, mixed))
            assert response.status_code == 404, ("mixed", name, method, response.content[:300])
    # Nothing of the target workspace changed hands or disappeared.
    for key in ("entity", "record", "rule", "task", "member"):
        assert type(target[key]).objects.filter(pk=target[key].pk).exists()


def build_kwargs_needed(name: str) -> set[str]:
    route = next(r for r, p in _walk(get_resolver().url_patterns) if p.name == name)
    needed = set()
    if "(?P<pk>" in route:
        needed.add(PK_KIND[name.split("-")[0]])
    if "entity_pk" in route:
        needed.add("entity")
    if "log_id" in route:
        needed.add("log")
    return needed


@pytest.mark.django_db
@pytest.mark.parametrize("role", [V, M, A, OWN])
@pytest.mark.parametrize(("name", "method"), SCOPED)
def test_each_role_gets_exactly_its_rights(api, members, target, role, name, method):
    response = call(api, members[role], method, build_url(name, target["workspace"], target), name)
    allowed = ROLE_RANK[role] >= ROLE_RANK[RIGHTS[(name, method)]]
    if allowed:
        assert response.status_code not in (401, 403, 404), (role, name, method, response.content[:300])
        assert response.status_code < 500
    else:
        assert response.status_code == 403, (role, name, method, response.content[:300])
        assert response.json()["success"] is False


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), SCOPED)
def test_anonymous_gets_401(api, target, name, method):
    response = getattr(api, method)(build_url(name, target["workspace"], target), {}, format="json")
    assert response.status_code == 401


# --------------------------------------------------------------------------- ids in bodies


@pytest.mark.django_db
def test_ids_of_another_workspace_in_a_body_are_rejected(api, owner, target, outsiders_own):
    ws = target["workspace"]
    theirs = outsiders_own
    base = f"/api/v1/workspaces/{ws.pk}"
    client = api.as_user(owner)
    rule_body = {
        "name": "x",
        "entity_id": str(theirs["entity"].pk),
        "trigger_type": "record_created",
        "action_type": "create_task",
        "action_config": {"title": "t"},
    }
    cases = [
        ("post", f"{base}/automations/", rule_body, "entity_id"),
        ("patch", f"{base}/automations/{target['rule'].pk}/", {"entity_id": str(theirs["entity"].pk)}, "entity_id"),
        ("post", f"{base}/automations/{target['rule'].pk}/test/", {"record_id": str(theirs["record"].pk)}, "record_id"),
        ("post", f"{base}/tasks/", {"title": "t", "record_id": str(theirs["record"].pk)}, "record_id"),
        ("patch", f"{base}/tasks/{target['task'].pk}/", {"record_id": str(theirs["record"].pk)}, "record_id"),
        ("post", f"{base}/tasks/", {"title": "t", "assignee_id": theirs["member"].user_id}, "assignee_id"),
    ]
    for method, url, body, key in cases:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 400, (url, body, response.content[:300])
        assert key in response.json()["errors"], (url, response.json())
    target["rule"].refresh_from_db()
    target["task"].refresh_from_db()
    assert target["rule"].entity_id == target["entity"].pk
    assert target["task"].record_id == target["record"].pk
    assert not AutomationLog.objects.filter(record_id=theirs["record"].pk, is_test=True).exists()


@pytest.mark.django_db
def test_unknown_ids_in_urls_are_404_not_500(api, owner, target):
    ws = target["workspace"]
    client = api.as_user(owner)
    for url in [
        f"/api/v1/workspaces/{uuid.uuid4()}/automations/",
        f"/api/v1/workspaces/{ws.pk}/automations/{uuid.uuid4()}/",
        f"/api/v1/workspaces/{ws.pk}/automations/{target['rule'].pk}/logs/{uuid.uuid4()}/retry/",
        f"/api/v1/workspaces/{ws.pk}/automations/{target['rule'].pk}/logs/{uuid.uuid4()}/",
        f"/api/v1/workspaces/{ws.pk}/entities/{uuid.uuid4()}/records/",
        f"/api/v1/workspaces/{ws.pk}/tasks/{uuid.uuid4()}/",
    ]:
        method = "post" if url.endswith("retry/") else "get"
        assert getattr(client, method)(url).status_code == 404, url
