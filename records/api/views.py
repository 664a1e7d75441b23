from collections.abc import Mapping

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action

from config.api import ok, validated_input
from config.text import counted
from workspaces.field_types import DOCUMENTED_LOOKUPS
from workspaces.models import Membership, Role
from workspaces.permissions import WorkspaceScopedViewSet, membership_or_404

from .. import selectors, services
from ..models import Record, Task
from .serializers import BulkRecordSerializer, RecordSerializer, TaskSerializer


@extend_schema(tags=["records"])
class RecordViewSet(WorkspaceScopedViewSet):
    """Records of an entity. ``data`` is validated against the entity's fields. PUT replaces ``data``,
    PATCH merges it. Filter by field values: ``?status=New``, ``?amount__gte=100`` (lookups: neq, gt,
    gte, lt, lte, contains, in (comma-separated), isnull; ``ne`` works as ``neq``); ``?search=`` looks in text fields;
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
        entity = selectors.entity_for_member(user=user, workspace_id=workspace_pk, entity_id=kwargs.get("entity_pk"))
        if entity is None:
            membership_or_404(user, workspace_pk)  # 404 "Workspace not found." for non-members
            raise exceptions.NotFound("Entity not found.")
        if entity.member_id is None:
            raise exceptions.NotFound("Workspace not found.")
        self.entity = entity
        return Membership(id=entity.member_id, workspace=entity.workspace, user=user, role=entity.member_role)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Record.objects.none()
        return selectors.records_of_entity(self.entity.pk)

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
                + ", ".join(k for k in DOCUMENTED_LOOKUPS if k != "eq")
                + " (e.g. `status=New`, `amount__gte=100`, `status__in=New,Contacted`, `email__isnull=true`).",
            ),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        return selectors.filter_records(queryset, entity=self.entity, params=self.request.query_params)

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
        if isinstance(request.data, Mapping):
            items = validated_input(BulkRecordSerializer, request.data)["records"]
        else:
            items = request.data
        records = services.record_bulk_create(entity=self.entity, items=items, actor=request.user)
        return ok(
            {"records": RecordSerializer(records, many=True).data, "total": len(records)},
            f"Created {counted(len(records), 'record')}",
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
        return selectors.tasks_of_workspace(self.workspace)

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
        return selectors.filter_tasks(queryset, params=self.request.query_params)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.task_create(workspace=self.workspace, actor=self.request.user, **data)

    def perform_update(self, serializer):
        serializer.instance = services.task_update(
            task=serializer.instance, actor=self.request.user, **serializer.validated_data
        )
