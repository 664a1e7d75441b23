"""The API's hot reads, each beside the ORM statement it replaces (``config.sql.Statement``): every API
request looks up its token's user, and every record request its entity with the caller's membership. Through
the ORM these two cost about 2.7 ms of CPU per request (mostly compiling the queries); written once as fixed
SQL they cost a tenth of that. ``tests/workspaces/test_sql.py`` runs both forms on PostgreSQL and compares
them."""

from __future__ import annotations

import functools
import uuid

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import OuterRef, Subquery
from rest_framework.authtoken.models import Token

from config.sql import Statement, column, model_from_row, select_list, table

from .models import Entity, Membership, Workspace


def _as_uuid(value) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


# --------------------------------------------------------------------------- the user of an API token


def _token_user_orm(key: str):
    """The user an API token belongs to (None for an unknown token)."""
    token = Token.objects.select_related("user").filter(key=key).order_by().first()
    return token.user if token is not None else None


@functools.cache
def _token_user_sql() -> str:
    user_model = get_user_model()
    return (
        f"SELECT {select_list(user_model, 'u')} FROM {table(Token)} t "  # noqa: S608 (model metadata)
        f"JOIN {table(user_model)} u ON u.{column(user_model, 'id')} = t.{column(Token, 'user')} "
        f"WHERE t.{column(Token, 'key')} = %s"
    )


def _token_user_postgresql(key: str):
    with connection.cursor() as cursor:
        cursor.execute(_token_user_sql(), [key])
        row = cursor.fetchone()
    return model_from_row(get_user_model(), row) if row else None


token_user = Statement(_token_user_orm, _token_user_postgresql)


# --------------------------------------------------------------------------- an entity and the caller's role


def _entity_for_member_orm(*, user_id, workspace_id, entity_id) -> Entity | None:
    """The entity of the workspace with its workspace and ``member_id`` / ``member_role`` of the user
    annotated (both None for a non-member), in one query. None when the workspace has no such entity."""
    workspace_id, entity_id = _as_uuid(workspace_id), _as_uuid(entity_id)
    if workspace_id is None or entity_id is None:
        return None
    member = Membership.objects.filter(workspace_id=OuterRef("workspace_id"), user_id=user_id)
    found = list(
        Entity.objects.select_related("workspace")
        .filter(pk=entity_id, workspace_id=workspace_id)
        .annotate(member_id=Subquery(member.values("id")[:1]), member_role=Subquery(member.values("role")[:1]))
        .order_by()[:1]
    )
    return found[0] if found else None


@functools.cache
def _entity_for_member_sql() -> str:
    return (
        f"SELECT {select_list(Entity, 'e')}, {select_list(Workspace, 'w')}, "  # noqa: S608 (model metadata)
        f"m.{column(Membership, 'id')}, m.{column(Membership, 'role')} "
        f"FROM {table(Entity)} e "
        f"JOIN {table(Workspace)} w ON w.{column(Workspace, 'id')} = e.{column(Entity, 'workspace')} "
        f"LEFT JOIN {table(Membership)} m ON m.{column(Membership, 'workspace')} = e.{column(Entity, 'workspace')} "
        f"AND m.{column(Membership, 'user')} = %s "
        f"WHERE e.{column(Entity, 'id')} = %s AND e.{column(Entity, 'workspace')} = %s"
    )


def _entity_for_member_postgresql(*, user_id, workspace_id, entity_id) -> Entity | None:
    workspace_id, entity_id = _as_uuid(workspace_id), _as_uuid(entity_id)
    if workspace_id is None or entity_id is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_entity_for_member_sql(), [user_id, entity_id, workspace_id])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(Entity._meta.concrete_fields)
    entity = model_from_row(Entity, row[:split])
    workspace = model_from_row(Workspace, row[split:-2])
    Entity._meta.get_field("workspace").set_cached_value(entity, workspace)
    entity.member_id, entity.member_role = row[-2], row[-1]
    return entity


entity_for_member = Statement(_entity_for_member_orm, _entity_for_member_postgresql)

STATEMENTS = {"token_user": token_user, "entity_for_member": entity_for_member}
