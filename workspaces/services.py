"""Writes for workspaces, members and entities (keyword-only, transactional)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils.text import slugify
from rest_framework import exceptions

from config.api import ConflictError

from .field_types import clean_record_data, validate_field_specs
from .models import ROLE_RANK, Entity, Membership, Role, Workspace

User = get_user_model()


@transaction.atomic
def workspace_create(*, user, name: str, description: str = "") -> Workspace:
    """Create a workspace; its creator becomes the owner."""
    workspace = Workspace.objects.create(name=name, description=description, created_by=user)
    Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
    return workspace


def _find_user(identifier: str):
    user = User.objects.filter(Q(username__iexact=identifier) | Q(email__iexact=identifier)).first()
    if user is None:
        raise exceptions.ValidationError({"user": [f"No user with username or email '{identifier}'."]})
    return user


def _check_manage(actor: Membership, role: str, current_role: str | None = None) -> None:
    """Owners manage everyone; admins manage admins, members and viewers; others manage nobody."""
    if ROLE_RANK[actor.role] < ROLE_RANK[Role.ADMIN]:
        raise exceptions.PermissionDenied("Only owners and admins manage members.")
    touches_owner = role == Role.OWNER or current_role == Role.OWNER
    if touches_owner and actor.role != Role.OWNER:
        raise exceptions.PermissionDenied("Only owners manage owners.")


@transaction.atomic
def member_add(*, workspace: Workspace, actor: Membership, identifier: str, role: str) -> Membership:
    """Add an existing user (by username or email) with a role."""
    _check_manage(actor, role)
    user = _find_user(identifier)
    if Membership.objects.filter(workspace=workspace, user=user).exists():
        raise ConflictError(f"'{user.username}' is already a member of this workspace.")
    return Membership.objects.create(workspace=workspace, user=user, role=role)


def _owners_left(workspace: Workspace, excluding: Membership) -> int:
    return (
        Membership.objects.select_for_update()
        .filter(workspace=workspace, role=Role.OWNER)
        .exclude(pk=excluding.pk)
        .count()
    )


@transaction.atomic
def member_update_role(*, membership: Membership, actor: Membership, role: str) -> Membership:
    _check_manage(actor, role, membership.role)
    if membership.role == Role.OWNER and role != Role.OWNER and _owners_left(membership.workspace, membership) == 0:
        raise ConflictError("A workspace must keep at least one owner.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor: Membership) -> None:
    if membership.user_id != actor.user_id:
        _check_manage(actor, membership.role, membership.role)
    if membership.role == Role.OWNER and _owners_left(membership.workspace, membership) == 0:
        raise ConflictError("A workspace must keep at least one owner.")
    membership.delete()


def _unique_slug(workspace: Workspace, name: str, exclude_pk=None) -> str:
    base = slugify(name)[:200] or "entity"
    slug, n = base, 2
    qs = Entity.objects.filter(workspace=workspace)
    if exclude_pk:
        qs = qs.exclude(pk=exclude_pk)
    while qs.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def _validated_fields(fields, status_field: str) -> list[dict]:
    cleaned, errors = validate_field_specs(fields)
    if errors:
        raise exceptions.ValidationError(errors)
    return cleaned


@transaction.atomic
def entity_create(
    *, workspace: Workspace, name: str, fields: list, status_field: str = "status", description: str = ""
) -> Entity:
    cleaned = _validated_fields(fields, status_field)
    return Entity.objects.create(
        workspace=workspace,
        name=name,
        slug=_unique_slug(workspace, name),
        description=description,
        fields=cleaned,
        status_field=status_field or "status",
    )


# How many failing records a schema change names in its error.
SCHEMA_ERROR_EXAMPLES = 5


@transaction.atomic
def entity_update(*, entity: Entity, **changes) -> Entity:
    """Update an entity. A new field schema is checked against every existing record first: values are
    converted to the new types, values of removed fields are dropped, and if any record does not fit
    (new required field without a value, an option removed that is still used, a value that cannot be
    converted) nothing changes and the error names the records."""
    from records.models import Record  # records depends on workspaces, not the other way at import time

    if "name" in changes and changes["name"] != entity.name:
        entity.name = changes["name"]
        entity.slug = _unique_slug(entity.workspace, entity.name, exclude_pk=entity.pk)
    if "description" in changes:
        entity.description = changes["description"]
    if "status_field" in changes:
        entity.status_field = changes["status_field"] or "status"
    if "fields" in changes:
        new_fields = _validated_fields(changes["fields"], entity.status_field)
        names = {spec["name"] for spec in new_fields}
        problems: list[str] = []
        updates: list[Record] = []
        failing = 0
        for record in Record.objects.filter(entity=entity).only("id", "data").iterator(chunk_size=1000):
            kept = {k: v for k, v in (record.data or {}).items() if k in names}
            cleaned, errors = clean_record_data(new_fields, kept)
            if errors:
                failing += 1
                if len(problems) < SCHEMA_ERROR_EXAMPLES:
                    detail = "; ".join(f"{field}: {msgs[0]}" for field, msgs in errors.items())
                    problems.append(f"record {record.id}: {detail}")
                continue
            if cleaned != record.data:
                record.data = cleaned
                updates.append(record)
        if failing:
            raise ConflictError(f"{failing} existing record(s) do not fit the new fields: " + " | ".join(problems))
        if updates:
            Record.objects.bulk_update(updates, ["data"], batch_size=500)
        entity.fields = new_fields
    entity.save()
    return entity
