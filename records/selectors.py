"""Reads of records and tasks, shared by the API, the admin and the other apps (writes are in services).

Query-string filters are parsed here, once: ``filter_records`` (field values through their field type's
``lookup_q``, ``search``, ``ordering``) and ``filter_tasks``. Bad input raises ``RecordQueryInvalid``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, Q, QuerySet

from workspaces import sql as workspace_sql
from workspaces.field_types import DOCUMENTED_LOOKUPS, LOOKUPS, FieldValueError, field_types, record_label
from workspaces.models import Entity

from .exceptions import RecordNotFound, RecordQueryInvalid
from .models import Record, Task

RESERVED_PARAMS = {"page", "page_size", "ordering", "format", "search"}
ORDERING_RE = re.compile(r"^-?[A-Za-z_][A-Za-z0-9_]*$")
MAX_PARAM_LENGTH = 1000


def record_in_workspace(*, workspace, record_id) -> Record:
    """A record of the workspace by id (with its entity); any other id (another workspace's, malformed)
    raises ``RecordNotFound``."""
    try:
        return Record.objects.select_related("entity").get(pk=record_id, workspace=workspace)
    except (Record.DoesNotExist, ValueError, DjangoValidationError):
        raise RecordNotFound() from None


def record_by_id(record_id) -> Record | None:
    """Any workspace's record by id, with its entity (for operators' tools), or None."""
    try:
        return Record.objects.select_related("entity").filter(pk=record_id).first()
    except (ValueError, DjangoValidationError):
        return None


def record_labels(record_ids) -> dict[str, str]:
    """``{record_id: label}`` (its name or first text field, see ``field_types.record_label``) for the
    records that exist and have one, in one query."""
    ids = [record_id for record_id in record_ids if record_id]
    try:
        rows = Record.objects.filter(pk__in=ids).values_list("pk", "data", "entity__fields")
        found = {str(pk): record_label(fields, data) for pk, data, fields in rows}
    except (ValueError, DjangoValidationError):
        return {}
    return {pk: label for pk, label in found.items() if label}


def search_records(entity: Entity, term: str, *, limit: int = 20) -> list[tuple[Record, str]]:
    """Records of ``entity`` for a picker, each with its label: the record whose id is ``term``, or those
    whose searchable fields contain it (any case), newest first; the newest ones for an empty term."""
    term = (term or "").strip()[:MAX_PARAM_LENGTH]
    records = records_of_entity(entity.pk)
    if term:
        try:
            by_id = Q(pk=uuid.UUID(term))
        except ValueError:
            by_id = Q(pk__in=[])
        condition = by_id
        for spec in entity.fields or []:
            if field_types.get(spec["type"]).searchable:
                condition |= Q(**{f"data__{spec['name']}__icontains": term})
        records = records.filter(condition)
    return [
        (record, record_label(entity.fields, record.data) or f"Record {str(record.pk)[:8]}")
        for record in records[:limit]
    ]


def records_of_entity(entity_id) -> QuerySet[Record]:
    """The entity's records, newest first."""
    return Record.objects.filter(entity_id=entity_id).order_by("-created_at", "-id")


def entity_for_member(*, user, workspace_id, entity_id) -> Entity | None:
    """The entity of the workspace with its workspace and ``member_id`` / ``member_role`` of ``user``
    annotated (both None for a non-member), in one query: every record request starts here. None when
    the workspace has no such entity (``workspaces.sql.entity_for_member``, fixed SQL on PostgreSQL)."""
    return workspace_sql.entity_for_member(user_id=user.pk, workspace_id=workspace_id, entity_id=entity_id)


def _query_value(key: str, raw: str) -> str:
    if "\x00" in raw or len(raw) > MAX_PARAM_LENGTH:
        raise RecordQueryInvalid(errors={key: [f"Must be at most {MAX_PARAM_LENGTH} characters, without NUL."]})
    return raw


def filter_records(records: QuerySet[Record], *, entity: Entity, params: Mapping[str, str]) -> QuerySet[Record]:
    """``records`` narrowed by query parameters: ``<field>=<value>`` or ``<field>__<lookup>=<value>``
    (each field type says what a lookup means), ``search`` in searchable fields, ``ordering`` by
    ``created_at``, ``updated_at`` or fields. Unknown fields or lookups and bad values raise
    ``RecordQueryInvalid`` naming each parameter."""
    errors: dict[str, list[str]] = {}
    for key, raw in params.items():
        raw = _query_value(key, raw)
        if key in RESERVED_PARAMS:
            continue
        name, _, lookup = key.partition("__")
        spec = entity.field(name)
        if spec is None or lookup not in LOOKUPS and lookup:
            errors[key] = [
                f"Unknown filter. Filter on a field ({', '.join(entity.field_names)}) "
                f"with an optional lookup ({', '.join(DOCUMENTED_LOOKUPS)})."
            ]
            continue
        try:
            condition = field_types.get(spec["type"]).lookup_q(f"data__{name}", lookup or "eq", raw, spec)
        except FieldValueError as exc:
            errors[key] = [str(exc)]
            continue
        records = records.filter(condition)
    search = params.get("search", "").strip()
    if search:
        condition = Q()
        for spec in entity.fields:
            if field_types.get(spec["type"]).searchable:
                condition |= Q(**{f"data__{spec['name']}__icontains": search})
        records = records.filter(condition) if condition else records.none()
    ordering = params.get("ordering")
    if ordering:
        keys = []
        for part in ordering.split(","):
            part = part.strip()
            bare = part.lstrip("-")
            if not ORDERING_RE.match(part) or (bare not in ("created_at", "updated_at") and entity.field(bare) is None):
                errors["ordering"] = [f"Cannot order by '{part}'."]
                break
            target = bare if bare in ("created_at", "updated_at") else f"data__{bare}"
            keys.append(F(target).desc(nulls_last=True) if part.startswith("-") else F(target).asc(nulls_last=True))
        if keys:
            records = records.order_by(*keys, "-id")
    if errors:
        raise RecordQueryInvalid(errors=errors)
    return records


def tasks_of_workspace(workspace) -> QuerySet[Task]:
    return Task.objects.filter(workspace=workspace)


def filter_tasks(tasks: QuerySet[Task], *, params: Mapping[str, str]) -> QuerySet[Task]:
    """``tasks`` narrowed by ``status`` (open|done), ``record_id`` and ``assignee_id``; bad values raise
    ``RecordQueryInvalid``."""
    errors: dict[str, list[str]] = {}
    if "status" in params:
        if params["status"] not in Task.Status.values:
            errors["status"] = [f"Must be one of: {', '.join(Task.Status.values)}."]
        tasks = tasks.filter(status=params["status"])
    for key in ("record_id", "assignee_id"):
        if key in params:
            target = Task._meta.get_field(key.removesuffix("_id")).target_field
            try:
                value = target.to_python(_query_value(key, params[key]))
                if isinstance(value, int) and not -(2**63) < value < 2**63:
                    raise ValueError
            except (DjangoValidationError, ValueError, TypeError):
                errors[key] = ["Invalid id."]
                continue
            tasks = tasks.filter(**{key: value})
    if errors:
        raise RecordQueryInvalid(errors=errors)
    return tasks
