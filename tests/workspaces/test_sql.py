"""The API's hot reads (``workspaces.sql``): the fixed SQL returns what the ORM statement it replaces
returns, on PostgreSQL; the ORM forms also run on SQLite through the rest of the suite."""

import uuid

import pytest
from django.db import connection

from tests.factories import EntityFactory, MembershipFactory, UserFactory
from workspaces import sql
from workspaces.models import Role


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the fixed statements are PostgreSQL's; elsewhere only the ORM form runs")


def fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_token_user(db):
    user = UserFactory(first_name="Ada")
    key = user.auth_token.key
    orm, raw = sql.token_user.orm(key), sql.token_user.postgresql(key)
    assert fields(raw) == fields(orm) and raw.pk == user.pk and raw._state.adding is False
    assert sql.token_user.orm("nope") is None and sql.token_user.postgresql("nope") is None


@pytest.mark.parametrize("case", ["member", "outsider", "other entity", "bad ids"])
def test_entity_for_member(db, case):
    membership = MembershipFactory(role=Role.ADMIN)
    entity = EntityFactory(workspace=membership.workspace)
    other = EntityFactory()
    user_id = membership.user_id if case != "outsider" else UserFactory().pk
    entity_id = {"other entity": other.pk, "bad ids": "not-a-uuid"}.get(case, entity.pk)
    workspace_id = membership.workspace_id if case != "bad ids" else uuid.uuid4()
    kwargs = {"user_id": user_id, "workspace_id": workspace_id, "entity_id": entity_id}
    orm, raw = sql.entity_for_member.orm(**kwargs), sql.entity_for_member.postgresql(**kwargs)
    if case in ("other entity", "bad ids"):
        assert orm is None and raw is None
        return
    assert fields(raw) == fields(orm) and fields(raw.workspace) == fields(orm.workspace)
    assert (raw.member_id, raw.member_role) == (orm.member_id, orm.member_role)
    expected = (membership.pk, Role.ADMIN) if case == "member" else (None, None)
    assert (raw.member_id, raw.member_role) == expected


def test_every_statement_is_covered_here():
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert set(sql.STATEMENTS) <= tested
