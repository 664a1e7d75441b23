from django.contrib.auth import get_user_model
from rest_framework import serializers

from config.api import StrictModelSerializer, StrictSerializer

from ..models import Record, Task

User = get_user_model()


class RecordSerializer(StrictModelSerializer):
    data = serializers.JSONField(help_text="Field values keyed by field name, validated against the entity.")

    class Meta:
        model = Record
        fields = [
            "id",
            "workspace_id",
            "entity_id",
            "data",
            "created_by_id",
            "updated_by_id",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "workspace_id",
            "entity_id",
            "created_by_id",
            "updated_by_id",
            "created_at",
            "updated_at",
        ]


class BulkRecordSerializer(StrictSerializer):
    records = serializers.ListField(
        child=serializers.JSONField(),
        help_text='Up to 1,000 items, each {"data": {...}} (or the data object itself).',
    )


class TaskSerializer(StrictModelSerializer):
    record_id = serializers.PrimaryKeyRelatedField(
        source="record",
        queryset=Record.objects.none(),
        required=False,
        allow_null=True,
        pk_field=serializers.UUIDField(),
    )
    assignee_id = serializers.PrimaryKeyRelatedField(
        source="assignee", queryset=User.objects.none(), required=False, allow_null=True
    )
    status = serializers.ChoiceField(choices=Task.Status.choices, required=False)

    class Meta:
        model = Task
        fields = [
            "id",
            "workspace_id",
            "title",
            "description",
            "status",
            "record_id",
            "assignee_id",
            "due_date",
            "created_by_id",
            "created_by_rule_id",
            "created_by_run_id",
            "created_at",
            "updated_at",
            "completed_at",
        ]
        read_only_fields = [
            "id",
            "workspace_id",
            "created_by_id",
            "created_by_rule_id",
            "created_by_run_id",
            "created_at",
            "updated_at",
            "completed_at",
        ]
        extra_kwargs = {"description": {"required": False}, "title": {"max_length": 500}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        workspace = self.context.get("workspace")
        if workspace is not None:
            # Only this workspace's records and members may be linked: others are "not found".
            self.fields["record_id"].queryset = Record.objects.filter(workspace=workspace)
            self.fields["assignee_id"].queryset = User.objects.filter(memberships__workspace=workspace)
