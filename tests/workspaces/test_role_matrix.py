"""Who may read and write what: owner/admin/member/viewer/outsider × read/write, per resource."""

import pytest

from tests.factories import RecordFactory, TaskFactory, UserFactory
from workspaces.models import Membership, Role

ROLES = ["owner", "admin", "member", "viewer", "outsider"]


def _request(kind, ctx):
    """(method, url, payload) for one operation; ``ctx`` holds the workspace's objects."""
    ws = f"/api/v1/workspaces/{ctx['workspace'].id}/"
    records = f"{ws}entities/{ctx['entity'].id}/records/"
    return {
        "workspace.read": ("get", ws, None),
        "workspace.write": ("patch", ws, {"name": "Renamed"}),
        "workspace.delete": ("delete", ws, None),
        "members.read": ("get", ws + "members/", None),
        "members.write": ("post", ws + "members/", {"username": ctx["newcomer"].username, "role": "viewer"}),
        "entities.read": ("get", ws + "entities/", None),
        "entities.write": ("post", ws + "entities/", {"name": "New", "fields": []}),
        "entity.write": ("patch", f"{ws}entities/{ctx['entity'].id}/", {"description": "d"}),
        "records.read": ("get", records, None),
        "records.write": ("post", records, {"data": {"name": "Ada"}}),
        "record.write": ("patch", f"{records}{ctx['record'].id}/", {"data": {"status": "Qualified"}}),
        "record.delete": ("delete", f"{records}{ctx['record'].id}/", None),
        "records.bulk": ("post", records + "bulk/", {"records": [{"name": "A"}]}),
        "tasks.read": ("get", ws + "tasks/", None),
        "tasks.write": ("post", ws + "tasks/", {"title": "Call"}),
        "task.write": ("patch", f"{ws}tasks/{ctx['task'].id}/", {"status": "done"}),
    }[kind]


# Expected status per role, in ROLES order. Outsiders never learn the workspace exists (404).
MATRIX = {
    "workspace.read": (200, 200, 200, 200, 404),
    "workspace.write": (200, 200, 403, 403, 404),
    "workspace.delete": (200, 403, 403, 403, 404),
    "members.read": (200, 200, 200, 200, 404),
    "members.write": (201, 201, 403, 403, 404),
    "entities.read": (200, 200, 200, 200, 404),
    "entities.write": (201, 201, 403, 403, 404),
    "entity.write": (200, 200, 403, 403, 404),
    "records.read": (200, 200, 200, 200, 404),
    "records.write": (201, 201, 201, 403, 404),
    "record.write": (200, 200, 200, 403, 404),
    "record.delete": (200, 200, 200, 403, 404),
    "records.bulk": (201, 201, 201, 403, 404),
    "tasks.read": (200, 200, 200, 200, 404),
    "tasks.write": (201, 201, 201, 403, 404),
    "task.write": (200, 200, 200, 403, 404),
}


@pytest.mark.parametrize("kind", list(MATRIX))
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(api, members, workspace, entity, kind, role):
    ctx = {
        "workspace": workspace,
        "entity": entity,
        "record": RecordFactory(entity=entity),
        "task": TaskFactory(workspace=workspace),
        "newcomer": UserFactory(),
    }
    method, url, payload = _request(kind, ctx)
    response = getattr(api.as_user(members[role]), method)(url, payload, format="json")
    expected = MATRIX[kind][ROLES.index(role)]
    assert response.status_code == expected, response.json()
    assert response.json()["success"] is (expected < 400)


def test_matrix_covers_every_role():
    assert set(ROLES) == {*Role.values, "outsider"}
    assert all(len(row) == len(ROLES) for row in MATRIX.values())


def test_a_refused_write_changes_nothing(api, members, workspace, entity):
    record = RecordFactory(entity=entity)
    response = api.as_user(members["viewer"]).patch(
        f"/api/v1/workspaces/{workspace.id}/entities/{entity.id}/records/{record.id}/",
        {"data": {"name": "Hacked"}},
        format="json",
    )
    assert response.status_code == 403
    record.refresh_from_db()
    assert record.data["name"] == "Ada Lovelace"
    assert Membership.objects.filter(workspace=workspace).count() == 4
