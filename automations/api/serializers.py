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
from ..models import AutomationLog, AutomationRule, RuleVersion, RunStatus
from ..step_types import step_type, step_type_names
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


class StepTypeChoiceField(serializers.ChoiceField):
    """A step type: an action type registered at request time, or ``delay``."""

    def __init__(self, **kwargs):
        super().__init__(choices=step_type_choices(), **kwargs)

    def to_internal_value(self, data):
        self.choices = step_type_choices()
        return super().to_internal_value(data)


def step_type_choices() -> list[tuple[str, str]]:
    return [(name, step_type(name).label) for name in step_type_names()]


@extend_schema_field({"type": "array", "items": {"type": "object"}})
class StepsField(serializers.JSONField):
    """The rule's steps, in order: ``[{"type": <action type or "delay">, "config": {...}}, ...]`` (1 to 20;
    validated step by step by their types; the OpenAPI schema documents each step type's config)."""


class AutomationRuleSerializer(StrictModelSerializer):
    """An automation rule (id, workspace_id, entity_id, name, trigger_type, trigger_config,
    action_type, action_config, is_active, created_at, updated_at) plus conditions, throttles and health.
    ``signing_secret`` and secret header values (``action_config.headers``) are shown to owners and admins
    only; members and viewers see ``[redacted]``."""

    entity_id = serializers.UUIDField(help_text="An entity of this workspace.")
    trigger_type = RegistryChoiceField(trigger_types)
    trigger_config = ConfigField(required=False, help_text="Options of the trigger type (see its schema).")
    steps = StepsField(
        required=False,
        help_text='What the rule does, in order: [{"type": <action type or "delay">, "config": {...}}, ...] (1 to '
        "20). Each step sees the record as the earlier steps left it and their results as {{ steps[i]... }}.",
    )
    action_type = StepTypeChoiceField(required=False, help_text="The first step's type (same as steps[0].type).")
    action_config = ConfigField(required=False, help_text="The first step's config (same as steps[0].config).")
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
            "steps",
            "action_type",
            "action_config",
            "is_active",
            "version",
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
            "version",
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
        data = getattr(self, "initial_data", None)
        if self.instance is None and not self.partial and isinstance(data, dict) and "steps" not in data:
            # A new rule needs its steps, or its single action (the first step).
            fields["action_type"].required = True
        if not self._sees_secrets():
            fields.pop("signing_secret", None)
        return fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        steps = [dict(step) for step in instance.step_list]
        if not self._sees_secrets():
            for step in steps:
                if step.get("type") in action_types and isinstance(step.get("config"), dict):
                    step["config"] = action_types.get(step["type"]).redact_config(step["config"])
        data["steps"] = steps
        data["action_type"], data["action_config"] = steps[0]["type"], steps[0].get("config") or {}
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
    steps = serializers.SerializerMethodField(
        help_text='Each step of the run: [{"index", "type", "status" (pending|running|waiting|success|error|'
        'skipped), "attempts", "started_at", "finished_at", "result", "error"}].'
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
            "rule_version",
            "current_step",
            "steps",
            "due_at",
            "replays",
            "created_at",
        ]
        read_only_fields = fields

    @classmethod
    def for_logs(cls, logs, *, many: bool = False):
        """Serialize runs with the names of the rules in their chains looked up once (one query)."""
        items = list(logs) if many else [logs]
        names = selectors.rule_names(link.get("rule_id") for log in items for link in log.chain or [])
        return cls(items if many else logs, many=many, context={"rule_names": names})

    def get_steps(self, obj) -> list[dict]:
        return obj.step_ledger

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


class ReplaySerializer(StrictSerializer):
    from_step = serializers.IntegerField(
        required=False, min_value=0, help_text="Run again from this step (0-based); default: the step that failed."
    )


class BulkReplaySerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=[RunStatus.ERROR, RunStatus.SKIPPED], help_text="Runs to replay.")
    since = DateOrDateTimeField(required=False, help_text="Runs created at or after (date or date-time).")
    until = DateOrDateTimeField(required=False, help_text="Runs created before (date or date-time).")


class RuleVersionSerializer(serializers.ModelSerializer):
    """One version of a rule: who made it, when, which fields it changed, and the rule as it was."""

    created_by = serializers.SerializerMethodField()
    rule = serializers.JSONField(source="snapshot", read_only=True)

    class Meta:
        model = RuleVersion
        fields = ["version", "created_at", "created_by", "changes", "rule"]
        read_only_fields = fields

    def get_created_by(self, obj) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id and obj.created_by else None
