import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, OuterRef, Q, Subquery
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action

from config.api import ok
from workspaces.field_types import LOOKUPS, FieldValueError, field_types
from workspaces.models import Entity, Membership, Role
from workspaces.permissions import WorkspaceScopedViewSet, membership_or_404

from .. import services
from ..models import Record, Task
from .serializers import BulkRecordSerializer, RecordSerializer, TaskSerializer

RESERVED_PARAMS = {"page", "page_size", "ordering", "format", "search"}
ORDERING_RE = re.compile(r"^-?[A-Za-z_][A-Za-z0-9_]*$")
MAX_PARAM_LENGTH = 1000


def _query_value(key: str, raw: str) -> str:
    if "\x00" in raw or len(raw) > MAX_PARAM_LENGTH:
        raise exceptions.ValidationError({key: [f"Must be at most {MAX_PARAM_LENGTH} characters, without NUL."]})
    return raw


@extend_schema(tags=["records"])
class RecordViewSet(WorkspaceScopedViewSet):
    """Records of an entity. ``data`` is validated against the entity's fields. PUT replaces ``data``,
    PATCH merges it. Filter by field values: ``?status=New``, ``?amount__gte=100`` (lookups: gt, gte,
    lt, lte, ne, contains, in (comma-separated), isnull); ``?search=`` looks in text fields;
    ``?ordering=-amount`` or ``created_at``."""

    serializer_class = RecordSerializer
    envelope_singular = "record"
    envelope_plural = "records"
    write_role = Role.MEMBER
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def load_membership(self, request, kwargs) -> Membership:
        """The entity, its workspace and the user's membership in one query (every record request,
        the hottest path of the API); a non-member gets the workspace's 404, a member the entity's."""
        user = request.user
        if not user or not user.is_authenticated:
            raise exceptions.NotAuthenticated()
        workspace_pk = kwargs.get("workspace_pk")
        member = Membership.objects.filter(workspace_id=OuterRef("workspace_id"), user_id=user.pk)
        try:
            found = list(
                Entity.objects.select_related("workspace")
                .filter(pk=kwargs.get("entity_pk"), workspace_id=workspace_pk)
                .annotate(member_id=Subquery(member.values("id")[:1]), member_role=Subquery(member.values("role")[:1]))
                .order_by()[:1]
            )
        except (DjangoValidationError, ValueError):
            found = []
        if not found:
            membership_or_404(user, workspace_pk)  # 404 "Workspace not found." for non-members
            raise exceptions.NotFound("Entity not found.")
        entity = found[0]
        if entity.member_id is None:
            raise exceptions.NotFound("Workspace not found.")
        self.entity = entity
        return Membership(id=entity.member_id, workspace=entity.workspace, user=user, role=entity.member_role)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Record.objects.none()
        return Record.objects.filter(entity=self.entity)

    def get_object(self):
        record = super().get_object()
        record.entity = self.entity  # services and signal receivers read it without another query
        return record

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "ordering",
                OpenApiTypes.STR,
                description="created_at, updated_at or a field name; prefix with - for descending; "
                "comma-separate several keys",
            ),
            OpenApiParameter("search", OpenApiTypes.STR, description="Case-insensitive text search in text fields"),
            OpenApiParameter(
                "filters",
                {"type": "object", "additionalProperties": {"type": "string"}},
                style="form",
                explode=True,
                description="Filter by field value: `<field>=<value>` or `<field>__<lookup>=<value>` with lookups "
                + ", ".join(k for k in LOOKUPS if k != "eq")
                + " (e.g. `status=New`, `amount__gte=100`, `status__in=New,Contacted`, `email__isnull=true`).",
            ),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        errors: dict[str, list[str]] = {}
        params = self.request.query_params
        for key, raw in params.items():
            raw = _query_value(key, raw)
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
            try:
                condition = field_types.get(spec["type"]).lookup_q(f"data__{name}", lookup or "eq", raw, spec)
            except FieldValueError as exc:
                errors[key] = [str(exc)]
                continue
            queryset = queryset.filter(condition)
        search = params.get("search", "").strip()
        if search:
            condition = Q()
            for spec in self.entity.fields:
                if field_types.get(spec["type"]).searchable:
                    condition |= Q(**{f"data__{spec['name']}__icontains": search})
            queryset = queryset.filter(condition) if condition else queryset.none()
        ordering = params.get("ordering")
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
        """PUT replaces ``data`` (required fields must be present); PATCH merges the given keys."""
        partial = kwargs.pop("partial", False)
        record = self.get_object()
        serializer = self.get_serializer(record, data=request.data)
        serializer.is_valid(raise_exception=True)
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
    ``?status=open|done``, ``?record_id=``, ``?assignee_id=``. Members and above write; viewers read."""

    serializer_class = TaskSerializer
    envelope_singular = "task"
    envelope_plural = "tasks"
    write_role = Role.MEMBER
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Task.objects.none()
        return Task.objects.filter(workspace=self.workspace)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=Task.Status.values),
            OpenApiParameter("record_id", OpenApiTypes.UUID),
            OpenApiParameter("assignee_id", OpenApiTypes.INT),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        params = self.request.query_params
        errors = {}
        if "status" in params:
            if params["status"] not in Task.Status.values:
                errors["status"] = [f"Must be one of: {', '.join(Task.Status.values)}."]
            queryset = queryset.filter(status=params["status"])
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
                queryset = queryset.filter(**{key: value})
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
