import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import EntityFactory, MembershipFactory, RecordFactory, UserFactory, WorkspaceFactory
from workspaces.models import Role


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2's real work factor costs ~1 s per user created; tests only need passwords to check."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    """Throttle counters live in the cache: without this, a long run trips the anonymous rate limit."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _empty_broker():
    """With a distributed task backend (``TASKS_BACKEND=rq``), every test starts on an empty broker."""
    if settings.AUTOMATIONS_EMBEDDED_QUEUE:
        yield
        return
    broker = redis.Redis.from_url(settings.TASKS_BROKER_URL)
    broker.flushdb()
    yield
    broker.flushdb()
    broker.close()


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
def record(entity):
    return RecordFactory(entity=entity)


@pytest.fixture
def other_workspace(db):
    """A second workspace with its own owner, entity and record (for isolation tests)."""
    membership = MembershipFactory(role=Role.OWNER)
    other_entity = EntityFactory(workspace=membership.workspace)
    return {
        "workspace": membership.workspace,
        "owner": membership.user,
        "entity": other_entity,
        "record": RecordFactory(entity=other_entity),
    }


@pytest.fixture
def user(db):
    return UserFactory()
