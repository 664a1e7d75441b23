"""Writes for workspaces, members and entities (keyword-only, transactional)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.text import slugify

from .exceptions import AlreadyMember, FieldSchemaInvalid, LastOwner, MemberManagementNotAllowed, UserNotFound
from .field_types import validate_field_specs
from .models import ROLE_RANK, Entity, Membership, Role, Workspace
from .signals import entity_fields_changing

User = get_user_model()


# --------------------------------------------------------------------------- workspaces


@transaction.atomic
def workspace_create(*, user, name: str, description: str = "") -> Workspace:
    """Create a workspace; its creator becomes the owner."""
    workspace = Workspace.objects.create(name=name, description=description, created_by=user)
    Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
    return workspace


@transaction.atomic
def workspace_update(*, workspace: Workspace, **changes: Any) -> Workspace:
    """Change a workspace's name and/or description."""
    fields = [key for key in ("name", "description") if key in changes]
    for key in fields:
        setattr(workspace, key, changes[key])
    if fields:
        workspace.save(update_fields=[*fields, "updated_at"])
    return workspace


@transaction.atomic
def workspace_delete(*, workspace: Workspace) -> None:
    """Delete a workspace with its members, entities, records and tasks."""
    workspace.delete()


# --------------------------------------------------------------------------- members


def find_user(*, username: str | None = None, email: str | None = None):
    """The existing user named by ``username`` (exact, else case-insensitive) or by ``email``."""
    if username:
        user = User.objects.filter(username=username).first()
        if user is None:
            matches = list(User.objects.filter(username__iexact=username)[:2])
            user = matches[0] if len(matches) == 1 else None
        if user is None:
            raise UserNotFound(errors={"username": [f"No user with username '{username}'."]})
        return user
    if email:
        matches = list(User.objects.filter(email__iexact=email)[:2])
        if not matches:
            raise UserNotFound(errors={"email": [f"No user with email '{email}'."]})
        if len(matches) > 1:
            raise UserNotFound(errors={"email": ["Several users share this email; use the username."]})
        return matches[0]
    raise UserNotFound(errors={"username": ["Give the username or the email of an existing user."]})


def _check_manage(actor: Membership, role: str, current_role: str | None = None) -> None:
    """Owners manage everyone; admins manage admins, members and viewers; others manage nobody."""
    if ROLE_RANK[actor.role] < ROLE_RANK[Role.ADMIN]:
        raise MemberManagementNotAllowed("Only owners and admins manage members.")
    touches_owner = role == Role.OWNER or current_role == Role.OWNER
    if touches_owner and actor.role != Role.OWNER:
        raise MemberManagementNotAllowed("Only owners manage owners.")


@transaction.atomic
def member_add(
    *, workspace: Workspace, actor: Membership, role: str, username: str | None = None, email: str | None = None
) -> Membership:
    """Add an existing user (by username or email) with a role."""
    _check_manage(actor, role)
    user = find_user(username=username, email=email)
    if Membership.objects.filter(workspace=workspace, user=user).exists():
        raise AlreadyMember(f"'{user.username}' is already a member of this workspace.")
    return Membership.objects.create(workspace=workspace, user=user, role=role)


def _other_owners(workspace_id, excluding: Membership) -> int:
    # Lock the owner rows: two owners demoting each other at once cannot both succeed.
    owners = list(
        Membership.objects.select_for_update()
        .filter(workspace_id=workspace_id, role=Role.OWNER)
        .values_list("pk", flat=True)
    )
    return sum(1 for pk in owners if pk != excluding.pk)


@transaction.atomic
def member_update_role(*, membership: Membership, actor: Membership, role: str) -> Membership:
    """Change a member's role (owners manage owners; a workspace keeps at least one owner)."""
    _check_manage(actor, role, membership.role)
    if membership.role == Role.OWNER and role != Role.OWNER and _other_owners(membership.workspace_id, membership) == 0:
        raise LastOwner()
    if membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor: Membership) -> None:
    """Remove a member; anyone may remove themselves (leave), except the last owner."""
    if membership.user_id != actor.user_id:
        _check_manage(actor, membership.role, membership.role)
    if membership.role == Role.OWNER and _other_owners(membership.workspace_id, membership) == 0:
        raise LastOwner()
    membership.delete()


# --------------------------------------------------------------------------- entities


def _unique_slug(workspace: Workspace, name: str, exclude_pk=None) -> str:
    base = slugify(name)[:200] or "entity"
    taken = set(
        Entity.objects.filter(workspace=workspace, slug__startswith=base)
        .exclude(pk=exclude_pk)
        .values_list("slug", flat=True)
    )
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def validated_fields(fields: Any, status_field: str | None) -> list[dict]:
    """The normalised field schema, or ``FieldSchemaInvalid`` naming each bad key (``fields.2.options``)."""
    cleaned, errors = validate_field_specs(fields)
    names = {spec["name"] for spec in cleaned}
    if not errors and status_field and status_field != "status" and status_field not in names:
        errors["status_field"] = [f"'{status_field}' is not one of the entity's fields."]
    if errors:
        raise FieldSchemaInvalid(errors=errors)
    return cleaned


@transaction.atomic
def entity_create(
    *, workspace: Workspace, name: str, fields: list, status_field: str = "status", description: str = ""
) -> Entity:
    """Create an entity (a user-defined table) with a validated field schema."""
    cleaned = validated_fields(fields, status_field)
    return Entity.objects.create(
        workspace=workspace,
        name=name,
        slug=_unique_slug(workspace, name),
        description=description,
        fields=cleaned,
        status_field=status_field or "status",
    )


def entity_fields_check(*, entity: Entity, new_fields: list[dict]) -> None:
    """Would the data stored for ``entity`` fit ``new_fields`` (validated)? Raises ``SchemaConflict``
    naming what does not (the apps holding the data answer through ``entity_fields_changing``)."""
    entity_fields_changing.send(sender=Entity, entity=entity, new_fields=new_fields, apply=False)


@transaction.atomic
def entity_update(*, entity: Entity, **changes: Any) -> Entity:
    """Update an entity. A new field schema is checked against every existing record first: values are
    converted to the new types, values of removed fields are dropped, and if any record does not fit
    (new required field without a value, an option removed that is still used, a value that cannot be
    converted) nothing changes and ``SchemaConflict`` names the records. The records app does the
    checking and converting, through ``workspaces.signals.entity_fields_changing``."""
    if "name" in changes and changes["name"] != entity.name:
        entity.name = changes["name"]
        entity.slug = _unique_slug(entity.workspace, entity.name, exclude_pk=entity.pk)
    if "description" in changes:
        entity.description = changes["description"]
    status_field = (changes.get("status_field") or "status") if "status_field" in changes else entity.status_field
    new_fields = validated_fields(changes.get("fields", entity.fields), status_field)
    entity.status_field = status_field
    if "fields" in changes:
        entity_fields_changing.send(sender=Entity, entity=entity, new_fields=new_fields, apply=True)
        entity.fields = new_fields
    entity.save()
    return entity


@transaction.atomic
def entity_delete(*, entity: Entity) -> None:
    """Delete an entity and its records."""
    entity.delete()
