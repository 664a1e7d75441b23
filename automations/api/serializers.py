"""Automation API serializers: input shape only. Rules are validated by ``services.validate_rule_parts``
(through the trigger and action type registries), so API, admin and command accept the same rules."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django.utils.dateparse import parse_date
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import StrictModelSerializer, StrictSerializer
from workspaces.models import ROLE_RANK, Role

from .. import selectors
from ..action_types import action_types
from ..models import AutomationLog, AutomationRule, RunStatus
from ..trigger_types import trigger_types

CONFIG_SCHEMA = {"type": "object", "additionalProperties": True}


class RegistryChoiceField(serializers.ChoiceField):
    """A choice of the types registered at request time (tests and plugins may register more)."""

    def __init__(self, registry, **kwargs):
        self.registry = registry
        super().__init__(choices=registry.choices(), **kwargs)

    def to_internal_value(self, data):
        self.choices = self.registry.choices()
        return super().to_internal_value(data)


@extend_schema_field(CONFIG_SCHEMA)
class ConfigField(serializers.JSONField):
    """A JSON object (validated by the chosen type; the OpenAPI schema documents each type's shape)."""


class AutomationRuleSerializer(StrictModelSerializer):
    """An automation rule (id, workspace_id, entity_id, name, trigger_type, trigger_config,
    action_type, action_config, is_active, created_at, updated_at) plus conditions, throttles and health.
    ``signing_secret`` and secret header values (``action_config.headers``) are shown to owners and admins
    only; members and viewers see ``[redacted]``."""

    entity_id = serializers.UUIDField(help_text="An entity of this workspace.")
    trigger_type = RegistryChoiceField(trigger_types)
    trigger_config = ConfigField(required=False, help_text="Options of the trigger type (see its schema).")
    action_type = RegistryChoiceField(action_types)
    action_config = ConfigField(required=False, help_text="Options of the action type (see its schema).")
    conditions = serializers.JSONField(
        required=False,
        help_text='{"match": "all"|"any", "rules": [{"field", "op", "value"} | nested group]}; {} always matches.',
    )
    max_runs_per_minute = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=1_000_000)
    max_runs_per_hour = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=1_000_000)

    class Meta:
        model = AutomationRule
        fields = [
            "id",
            "workspace_id",
            "entity_id",
            "name",
            "description",
            "trigger_type",
            "trigger_config",
            "conditions",
            "action_type",
            "action_config",
            "is_active",
            "max_runs_per_minute",
            "max_runs_per_hour",
            "consecutive_failures",
            "disabled_reason",
            "disabled_at",
            "signing_secret",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "workspace_id",
            "consecutive_failures",
            "disabled_reason",
            "disabled_at",
            "signing_secret",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {
            "name": {"max_length": 255},
            "description": {"required": False, "max_length": 10_000},
            "signing_secret": {"help_text": "Webhook signing secret (owners and admins only)."},
        }

    def _sees_secrets(self) -> bool:
        membership = self.context.get("membership")
        return membership is None or ROLE_RANK[membership.role] >= ROLE_RANK[Role.ADMIN]

    def get_fields(self):
        fields = super().get_fields()
        if not self._sees_secrets():
            fields.pop("signing_secret", None)
        return fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if (
            not self._sees_secrets()
            and instance.action_type in action_types
            and isinstance(data["action_config"], dict)
        ):
            data["action_config"] = action_types.get(instance.action_type).redact_config(data["action_config"])
        return data


class RuleTestSerializer(StrictSerializer):
    record_id = serializers.UUIDField(help_text="A record of the rule's entity.")
    dry_run = serializers.BooleanField(
        required=False, default=False, help_text="Return what would happen, without sending, writing or logging."
    )


class AutomationLogSerializer(serializers.ModelSerializer):
    """One run of a rule (automation_id, record_id, status, result, executed_at) with its delivery ledger
    (attempts, schedule, timings) and the chain of runs that caused it."""

    automation_id = serializers.UUIDField(read_only=True)
    result = serializers.JSONField(read_only=True, allow_null=True)
    delivery_id = serializers.CharField(read_only=True)
    event_type = serializers.CharField(read_only=True, help_text="created, updated or deleted (empty if unknown).")
    chain = serializers.SerializerMethodField(
        help_text="The runs whose record changes led to this run, first to last: [{rule_id, rule_name (null once "
        "the rule is deleted), record_id}]; empty when a person's (or an import's) change caused it."
    )

    class Meta:
        model = AutomationLog
        fields = [
            "id",
            "automation_id",
            "record_id",
            "status",
            "result",
            "error",
            "trigger_type",
            "action_type",
            "event_type",
            "is_test",
            "attempts",
            "next_attempt_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "executed_at",
            "batch_id",
            "chain",
            "chain_depth",
            "delivery_id",
            "created_at",
        ]
        read_only_fields = fields

    @classmethod
    def for_logs(cls, logs, *, many: bool = False):
        """Serialize runs with the names of the rules in their chains looked up once (one query)."""
        items = list(logs) if many else [logs]
        names = selectors.rule_names(link.get("rule_id") for log in items for link in log.chain or [])
        return cls(items if many else logs, many=many, context={"rule_names": names})

    def get_chain(self, obj) -> list[dict]:
        links = [link for link in obj.chain or [] if isinstance(link, dict)]
        names = self.context.get("rule_names")
        if names is None:
            names = selectors.rule_names(link.get("rule_id") for link in links)
        return [
            {
                "rule_id": link.get("rule_id"),
                "rule_name": names.get(str(link.get("rule_id"))),
                "record_id": link.get("record_id"),
            }
            for link in links
        ]


class DateOrDateTimeField(serializers.DateTimeField):
    """``2025-01-15`` (midnight, in the server's time zone) or an ISO 8601 date-time."""

    def to_internal_value(self, value):
        if isinstance(value, str) and len(value.strip()) == 10:
            try:
                date = parse_date(value.strip())
            except ValueError:
                date = None
            if date is not None:
                return timezone.make_aware(dt.datetime.combine(date, dt.time.min))
        return super().to_internal_value(value)


class LogQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=50, min_value=1, max_value=500, help_text="Runs per page.")
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500, help_text="Same as limit.")
    page = serializers.IntegerField(required=False, default=1, min_value=1, help_text="1 = the newest runs.")
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    since = DateOrDateTimeField(required=False, help_text="Runs created at or after (date or date-time).")
    until = DateOrDateTimeField(required=False, help_text="Runs created before (date or date-time).")
    is_test = serializers.BooleanField(required=False, allow_null=True, default=None)

    def validate(self, attrs):
        if "page_size" in attrs:
            if "limit" in self.initial_data and attrs["limit"] != attrs["page_size"]:
                raise serializers.ValidationError({"page_size": ["Give limit or page_size, not both."]})
            attrs["limit"] = attrs.pop("page_size")
        return attrs


class RuleListQuerySerializer(serializers.Serializer):
    entity_id = serializers.UUIDField(required=False)
    is_active = serializers.BooleanField(required=False, allow_null=True, default=None)
    trigger_type = serializers.CharField(required=False, max_length=50)
    action_type = serializers.CharField(required=False, max_length=50)
    search = serializers.CharField(required=False, max_length=255, help_text="Case-insensitive match in the name.")
