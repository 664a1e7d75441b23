import pytest
from rest_framework.test import APIClient

from tests.factories import EntityFactory, MembershipFactory, UserFactory, WorkspaceFactory
from workspaces.models import Role


@pytest.fixture
def api():
    """An API client; ``api.as_user(user)`` authenticates with the user's token."""

    class Client(APIClient):
        def as_user(self, user):
            self.credentials(HTTP_AUTHORIZATION=f"Token {user.auth_token.key}")
            return self

    return Client()


@pytest.fixture
def workspace(db):
    return WorkspaceFactory()


@pytest.fixture
def members(workspace):
    """One user per role in ``workspace``, plus an ``outsider`` who belongs to another workspace."""
    users = {role: MembershipFactory(workspace=workspace, role=role).user for role in Role.values}
    users["outsider"] = MembershipFactory(role=Role.OWNER).user
    return users


@pytest.fixture
def owner(members):
    return members[Role.OWNER]


@pytest.fixture
def entity(workspace):
    return EntityFactory(workspace=workspace, name="Leads", slug="leads")


@pytest.fixture
def user(db):
    return UserFactory()
