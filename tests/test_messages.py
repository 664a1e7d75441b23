"""List and admin messages count in proper English ("1 workspace", "2 entities")."""

import pytest

from tests.factories import EntityFactory, MembershipFactory, TaskFactory
from workspaces.models import Role

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("count", [1, 2])
def test_list_messages_use_singular_and_plural(api, count):
    membership = MembershipFactory(role=Role.OWNER)
    user, workspace = membership.user, membership.workspace
    for _ in range(count - 1):
        MembershipFactory(user=user, role=Role.OWNER)
    EntityFactory.create_batch(count, workspace=workspace)
    TaskFactory.create_batch(count, workspace=workspace)
    for _ in range(count - 1):
        MembershipFactory(workspace=workspace)
    client = api.as_user(user)
    ws = f"/api/v1/workspaces/{workspace.pk}"
    expected = {
        "/api/v1/workspaces/": ("workspace", "workspaces"),
        f"{ws}/entities/": ("entity", "entities"),
        f"{ws}/tasks/": ("task", "tasks"),
        f"{ws}/members/": ("member", "members"),
        f"{ws}/automations/": ("automation", "automations"),
    }
    for url, (one, many) in expected.items():
        response = client.get(url)
        total = response.json()["data"]["total"]
        assert response.json()["message"] == f"Retrieved {total} {one if total == 1 else many}", url
    assert client.get(f"{ws}/entities/").json()["message"] == (
        "Retrieved 1 entity" if count == 1 else "Retrieved 2 entities"
    )
