"""/api/v1/workspaces/: CRUD, creator is owner, role on each workspace, isolation."""

import pytest

from tests.factories import MembershipFactory
from workspaces.models import Membership, Role, Workspace


def test_create_makes_the_creator_owner(api, user):
    response = api.as_user(user).post("/api/v1/workspaces/", {"name": "Sales", "description": "Deals"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    workspace = body["data"]["workspace"]
    assert (workspace["name"], workspace["description"], workspace["role"]) == ("Sales", "Deals", "owner")
    assert Membership.objects.get(workspace_id=workspace["id"], user=user).role == Role.OWNER
    assert Workspace.objects.get(pk=workspace["id"]).created_by == user


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "x" * 256}, {"name": ["a"]}, {"name": "ok\x00"}])
def test_create_validation(api, user, payload):
    response = api.as_user(user).post("/api/v1/workspaces/", payload, format="json")
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert not Workspace.objects.exists()


def test_list_shows_only_my_workspaces_with_my_role(api, members, workspace, django_assert_num_queries):
    viewer = members[Role.VIEWER]
    MembershipFactory(user=viewer, role=Role.ADMIN, workspace__name="Another")
    MembershipFactory(role=Role.OWNER, workspace__name="Not mine")
    with django_assert_num_queries(4):  # token, count, page, roles
        response = api.as_user(viewer).get("/api/v1/workspaces/")
    data = response.json()["data"]
    assert data["total"] == 2
    assert {(w["name"], w["role"]) for w in data["workspaces"]} == {(workspace.name, "viewer"), ("Another", "admin")}


def test_retrieve_update_delete(api, members, workspace):
    url = f"/api/v1/workspaces/{workspace.id}/"
    assert api.as_user(members[Role.VIEWER]).get(url).json()["data"]["workspace"]["role"] == "viewer"
    response = api.as_user(members[Role.ADMIN]).patch(url, {"name": "Renamed"}, format="json")
    assert response.status_code == 200 and response.json()["data"]["workspace"]["name"] == "Renamed"
    assert api.as_user(members[Role.ADMIN]).delete(url).status_code == 403
    assert api.as_user(members[Role.OWNER]).delete(url).status_code == 200
    assert not Workspace.objects.filter(pk=workspace.pk).exists()


def test_another_workspace_is_404(api, members, other_workspace):
    client = api.as_user(members[Role.OWNER])
    url = f"/api/v1/workspaces/{other_workspace['workspace'].id}/"
    for method in ("get", "patch", "put", "delete"):
        response = getattr(client, method)(url, {"name": "Mine now"}, format="json")
        assert response.status_code == 404, method
        assert response.json()["success"] is False
    assert Workspace.objects.get(pk=other_workspace["workspace"].pk).name != "Mine now"
