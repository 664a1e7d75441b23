import re

from django.db.models import F
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action

from config.api import ok
from workspaces.field_types import FIELD_TYPES, FieldValueError
from workspaces.models import Entity, Role
from workspaces.permissions import WorkspaceScopedViewSet

from .. import services
from ..models import Record, Task
from .serializers import BulkRecordSerializer, RecordSerializer, TaskSerializer

RESERVED_PARAMS = {"page", "page_size", "ordering", "format", "search"}
LOOKUPS = {
    "eq": "",
    "ne": None,
    "gt": "__gt",
    "gte": "__gte",
    "lt": "__lt",
    "lte": "__lte",
    "contains": "__icontains",
    "in": "__in",
    "isnull": "__isnull",
}
ORDERING_RE = re.compile(r"^-?[A-Za-z_][A-Za-z0-9_]*$")


@extend_schema(tags=["records"])
class RecordViewSet(WorkspaceScopedViewSet):
    """Records of an entity. ``data`` is validated against the entity's fields. PUT replaces ``data``,
    PATCH merges it. Filter by field values: ``?status=New``, ``?amount__gte=100`` (lookups: gt, gte,
    lt, lte, ne, contains, in (comma-separated), isnull); ``?ordering=-amount`` or ``created_at``."""

    serializer_class = RecordSerializer
    envelope_singular = "record"
    envelope_plural = "records"
    write_role = Role.MEMBER
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        try:
            self.entity = Entity.objects.get(pk=kwargs.get("entity_pk"), workspace=self.workspace)
        except (Entity.DoesNotExist, ValueError):
            raise exceptions.NotFound("Entity not found.") from None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Record.objects.none()
        return Record.objects.filter(entity=self.entity).select_related("entity")

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "ordering",
                OpenApiTypes.STR,
                description="created_at, updated_at or a field name; prefix with - for descending",
            ),
            OpenApiParameter("<field>[__<lookup>]", OpenApiTypes.STR, description="Filter by a field's value"),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        errors: dict[str, list[str]] = {}
        for key, raw in self.request.query_params.items():
            if key in RESERVED_PARAMS:
                continue
            name, _, lookup = key.partition("__")
            spec = self.entity.field(name)
            if spec is None or lookup not in LOOKUPS and lookup:
                errors[key] = [
                    f"Unknown filter. Filter on a field ({', '.join(self.entity.field_names)}) "
                    f"with an optional lookup ({', '.join(LOOKUPS)})."
                ]
                continue
            ftype = FIELD_TYPES[spec["type"]]
            try:
                if lookup == "isnull":
                    if raw.lower() not in ("true", "false"):
                        raise FieldValueError("Must be true or false.")
                    value = raw.lower() == "true"
                    queryset = (
                        queryset.filter(**{f"data__{name}__isnull": value})
                        if value
                        else queryset.exclude(**{f"data__{name}__isnull": True})
                    )
                    continue
                if lookup == "in":
                    value = [ftype.clean(part, spec) for part in raw.split(",")]
                elif lookup == "contains":
                    value = raw
                else:
                    value = ftype.clean(raw, spec)
            except FieldValueError as exc:
                errors[key] = [str(exc)]
                continue
            if lookup == "ne":
                queryset = queryset.exclude(**{f"data__{name}": value})
            elif lookup == "contains" and spec["type"] == "multi_select":
                queryset = queryset.filter(**{f"data__{name}__contains": [value]})
            else:
                queryset = queryset.filter(**{f"data__{name}{LOOKUPS[lookup or 'eq']}": value})
        ordering = self.request.query_params.get("ordering")
        if ordering:
            keys = []
            for part in ordering.split(","):
                part = part.strip()
                bare = part.lstrip("-")
                if not ORDERING_RE.match(part) or (
                    bare not in ("created_at", "updated_at") and self.entity.field(bare) is None
                ):
                    errors["ordering"] = [f"Cannot order by '{part}'."]
                    break
                target = bare if bare in ("created_at", "updated_at") else f"data__{bare}"
                keys.append(F(target).desc(nulls_last=True) if part.startswith("-") else F(target).asc(nulls_last=True))
            if keys:
                queryset = queryset.order_by(*keys, "-id")
        if errors:
            raise exceptions.ValidationError(errors)
        return queryset

    def perform_create(self, serializer):
        serializer.instance = services.record_create(
            entity=self.entity, data=serializer.validated_data["data"], actor=self.request.user
        )

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        record = self.get_object()
        serializer = self.get_serializer(record, data=request.data)
        serializer.is_valid(raise_exception=True)
        record.entity = self.entity
        services.record_update(record=record, data=serializer.validated_data["data"], actor=request.user, merge=partial)
        return ok({"record": self.get_serializer(record).data}, "Record updated successfully")

    def perform_destroy(self, instance):
        services.record_delete(record=instance, actor=self.request.user)

    @extend_schema(
        request=BulkRecordSerializer,
        responses={
            201: inline_serializer(
                "BulkRecords", {"records": RecordSerializer(many=True), "total": serializers.IntegerField()}
            )
        },
    )
    @action(detail=False, methods=["post"], url_path="bulk")
    def bulk(self, request, *args, **kwargs):
        """Create up to 1,000 records in one transaction: all or nothing; errors name the failing index
        (``records.3.data.email``)."""
        items = request.data.get("records") if isinstance(request.data, dict) else request.data
        if items is None:
            raise exceptions.ValidationError({"records": ["This field is required."]})
        records = services.record_bulk_create(entity=self.entity, items=items, actor=request.user)
        return ok(
            {"records": RecordSerializer(records, many=True).data, "total": len(records)},
            f"Created {len(records)} records",
            status.HTTP_201_CREATED,
        )


@extend_schema(tags=["tasks"])
class TaskViewSet(WorkspaceScopedViewSet):
    """Tasks of a workspace (created by people or by the ``create_task`` action). Filter with
    ``?status=open|done``, ``?record_id=``, ``?assignee_id=``."""

    serializer_class = TaskSerializer
    envelope_singular = "task"
    envelope_plural = "tasks"
    write_role = Role.MEMBER
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Task.objects.none()
        return Task.objects.filter(workspace=self.workspace)

    def filter_queryset(self, queryset):
        params = self.request.query_params
        errors = {}
        if "status" in params:
            if params["status"] not in Task.Status.values:
                errors["status"] = [f"Must be one of: {', '.join(Task.Status.values)}."]
            queryset = queryset.filter(status=params["status"])
        for key, field in (("record_id", "record_id"), ("assignee_id", "assignee_id")):
            if key in params:
                value = params[key]
                try:
                    field_obj = Task._meta.get_field(field.removesuffix("_id")).target_field
                    value = field_obj.to_python(value)
                except Exception:
                    errors[key] = ["Invalid id."]
                    continue
                queryset = queryset.filter(**{field: value})
        if errors:
            raise exceptions.ValidationError(errors)
        return queryset

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.task_create(workspace=self.workspace, actor=self.request.user, **data)

    def perform_update(self, serializer):
        serializer.instance = services.task_update(
            task=serializer.instance, actor=self.request.user, **serializer.validated_data
        )
