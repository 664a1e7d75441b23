"""Reads of workspaces, members and entities, shared by the API, the admin and the other apps."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, QuerySet

from .models import Entity, Membership, Role, Workspace


def workspaces_of_user(user) -> QuerySet[Workspace]:
    """The workspaces ``user`` is a member of, by name."""
    return Workspace.objects.filter(memberships__user=user).order_by("name", "id")


def roles_of_user(user) -> dict[uuid.UUID, str]:
    """``{workspace_id: role}`` for every workspace of ``user`` (one query)."""
    return dict(Membership.objects.filter(user=user).values_list("workspace_id", "role"))


def membership_of(user, workspace_id) -> Membership | None:
    """The user's membership of the workspace (with the workspace), or None (also for a malformed id)."""
    try:
        return Membership.objects.select_related("workspace").filter(workspace_id=workspace_id, user=user).first()
    except (DjangoValidationError, ValueError):
        return None


def is_member(user, workspace) -> bool:
    return Membership.objects.filter(workspace=workspace, user=user).exists()


def members_of(workspace) -> QuerySet[Membership]:
    """The workspace's memberships with their users, oldest first."""
    return Membership.objects.filter(workspace=workspace).select_related("user").order_by("created_at")


def manager_emails(workspace_id) -> list[str]:
    """Email addresses of the workspace's owners and admins (those told when a rule turns itself off)."""
    return list(
        Membership.objects.filter(workspace_id=workspace_id, role__in=[Role.OWNER, Role.ADMIN])
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )


def entities_of(workspace, *, with_record_counts: bool = False) -> QuerySet[Entity]:
    """The workspace's entities by name; ``with_record_counts`` annotates ``record_count`` (one query)."""
    entities = Entity.objects.filter(workspace=workspace).order_by("name", "id")
    return entities.annotate(record_count=Count("records")) if with_record_counts else entities


def entity_in_workspace(workspace, entity_id) -> Entity | None:
    """The entity if it belongs to ``workspace``; None otherwise (also for a malformed id)."""
    try:
        return Entity.objects.filter(pk=entity_id, workspace=workspace).first()
    except (DjangoValidationError, ValueError):
        return None
