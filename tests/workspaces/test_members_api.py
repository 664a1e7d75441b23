"""/workspaces/{id}/members/: add by username or email, change roles, remove; owner rules."""

import pytest

from tests.factories import UserFactory
from workspaces.models import Membership, Role


def members_url(workspace, membership=None):
    base = f"/api/v1/workspaces/{workspace.id}/members/"
    return f"{base}{membership.id}/" if membership else base


def membership_of(workspace, user):
    return Membership.objects.get(workspace=workspace, user=user)


@pytest.mark.parametrize("key", ["username", "email"])
def test_add_an_existing_user_by_username_or_email(api, owner, workspace, key):
    newcomer = UserFactory(username="Newcomer", email="New.Comer@example.com")
    value = {"username": "newcomer", "email": "new.comer@EXAMPLE.com"}[key]  # case-insensitive
    response = api.as_user(owner).post(members_url(workspace), {key: value, "role": "member"}, format="json")
    assert response.status_code == 201, response.json()
    member = response.json()["data"]["member"]
    assert member["user"]["username"] == "Newcomer" and member["role"] == "member"
    assert membership_of(workspace, newcomer).role == Role.MEMBER


def test_list_members(api, members, workspace, django_assert_num_queries):
    client = api.as_user(members[Role.VIEWER])
    with django_assert_num_queries(4):  # token, membership, count, page (users joined)
        response = client.get(members_url(workspace))
    data = response.json()["data"]
    assert data["total"] == 4
    assert {m["role"] for m in data["members"]} == {"owner", "admin", "member", "viewer"}


@pytest.mark.parametrize(
    "payload, status, field",
    [
        ({"username": "ghost", "role": "member"}, 400, "username"),
        ({"email": "ghost@example.com", "role": "member"}, 400, "email"),
        ({"email": "not-an-email", "role": "member"}, 400, "email"),
        ({"role": "member"}, 400, "username"),
        ({"username": "somebody"}, 400, "role"),
        ({"username": "somebody", "role": "boss"}, 400, "role"),
    ],
)
def test_add_validation(api, owner, workspace, payload, status, field):
    UserFactory(username="somebody")
    response = api.as_user(owner).post(members_url(workspace), payload, format="json")
    assert response.status_code == status
    assert field in response.json()["errors"]


def test_adding_a_member_twice_is_a_conflict(api, owner, members, workspace):
    response = api.as_user(owner).post(
        members_url(workspace), {"username": members[Role.VIEWER].username, "role": "admin"}, format="json"
    )
    assert response.status_code == 409
    assert membership_of(workspace, members[Role.VIEWER]).role == Role.VIEWER


def test_only_owners_manage_owners(api, members, workspace):
    admin = api.as_user(members[Role.ADMIN])
    newcomer = UserFactory()
    response = admin.post(members_url(workspace), {"username": newcomer.username, "role": "owner"}, format="json")
    assert response.status_code == 403
    owner_membership = membership_of(workspace, members[Role.OWNER])
    assert admin.patch(members_url(workspace, owner_membership), {"role": "viewer"}, format="json").status_code == 403
    assert admin.delete(members_url(workspace, owner_membership)).status_code == 403
    viewer = membership_of(workspace, members[Role.VIEWER])
    assert admin.patch(members_url(workspace, viewer), {"role": "owner"}, format="json").status_code == 403
    # Admins do manage members, viewers and admins.
    assert admin.patch(members_url(workspace, viewer), {"role": "member"}, format="json").status_code == 200
    response = admin.post(members_url(workspace), {"username": newcomer.username, "role": "admin"}, format="json")
    assert response.status_code == 201
    assert admin.delete(members_url(workspace, viewer)).status_code == 200
    assert membership_of(workspace, members[Role.OWNER]).role == Role.OWNER


def test_owner_promotes_and_demotes(api, members, workspace):
    owner = api.as_user(members[Role.OWNER])
    admin_membership = membership_of(workspace, members[Role.ADMIN])
    response = owner.patch(members_url(workspace, admin_membership), {"role": "owner"}, format="json")
    assert response.status_code == 200 and response.json()["data"]["member"]["role"] == "owner"
    # With two owners, one may step down.
    own = membership_of(workspace, members[Role.OWNER])
    assert owner.put(members_url(workspace, own), {"role": "admin"}, format="json").status_code == 200
    assert membership_of(workspace, members[Role.OWNER]).role == Role.ADMIN


def test_the_last_owner_cannot_leave_or_step_down(api, owner, workspace):
    client = api.as_user(owner)
    own = membership_of(workspace, owner)
    response = client.patch(members_url(workspace, own), {"role": "admin"}, format="json")
    assert response.status_code == 409
    assert "at least one owner" in response.json()["message"]
    assert client.delete(members_url(workspace, own)).status_code == 409
    assert membership_of(workspace, owner).role == Role.OWNER


def test_any_member_may_leave(api, members, workspace):
    viewer = membership_of(workspace, members[Role.VIEWER])
    assert api.as_user(members[Role.VIEWER]).delete(members_url(workspace, viewer)).status_code == 200
    assert not Membership.objects.filter(pk=viewer.pk).exists()


def test_members_and_viewers_cannot_manage(api, members, workspace):
    target = membership_of(workspace, members[Role.VIEWER])
    for role in (Role.MEMBER, Role.VIEWER):
        client = api.as_user(members[role])
        response = client.post(
            members_url(workspace), {"username": UserFactory().username, "role": "viewer"}, format="json"
        )
        assert response.status_code == 403
        assert client.patch(members_url(workspace, target), {"role": "admin"}, format="json").status_code == 403
    assert api.as_user(members[Role.MEMBER]).delete(members_url(workspace, target)).status_code == 403
    assert membership_of(workspace, members[Role.VIEWER]).role == Role.VIEWER


def test_another_workspaces_membership_is_404(api, owner, workspace, other_workspace):
    theirs = membership_of(other_workspace["workspace"], other_workspace["owner"])
    client = api.as_user(owner)
    assert client.patch(members_url(workspace, theirs), {"role": "viewer"}, format="json").status_code == 404
    assert client.delete(members_url(workspace, theirs)).status_code == 404
    assert client.get(members_url(other_workspace["workspace"])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.role == Role.OWNER


def test_a_removed_member_loses_access(api, members, workspace):
    viewer = members[Role.VIEWER]
    api.as_user(members[Role.OWNER]).delete(members_url(workspace, membership_of(workspace, viewer)))
    assert api.as_user(viewer).get(f"/api/v1/workspaces/{workspace.id}/").status_code == 404


@pytest.mark.parametrize("method", ["patch", "put"])
def test_update_without_a_role_changes_nothing(api, owner, members, workspace, method):
    viewer = membership_of(workspace, members[Role.VIEWER])
    response = getattr(api.as_user(owner), method)(members_url(workspace, viewer), {}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["member"]["role"] == "viewer"
