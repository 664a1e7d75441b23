"""Step types: what a rule's step may be — one of the action types, or ``delay`` (wait, durably, before the
next step). ``step_type(name)`` finds either."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from django.utils import timezone
from rest_framework import serializers

from workspaces.field_types import field_types

from .action_types import ActionType, action_types
from .context import RunContext

MAX_DELAY_SECONDS = 31 * 24 * 3600  # 2,678,400: 31 days
MAX_OFFSET_SECONDS = 366 * 24 * 3600


def moment_field(entity, name: str) -> str | None:
    """Why ``name`` cannot hold a point in time on ``entity`` (None when it can: a date or date-time)."""
    spec = entity.field(name) if entity is not None else None
    if entity is not None and spec is None:
        return f"Unknown field '{name}'. Fields of {entity.name}: {', '.join(entity.field_names) or '(none)'}."
    if spec is not None and not (spec.get("type") in field_types and field_types.get(spec["type"]).is_moment):
        return f"'{name}' is a {spec.get('type')} field, not a date or date-time."
    return None


def moment_of(entity, field: str, data: dict, tz: dt.tzinfo = dt.UTC) -> dt.datetime | None:
    """The point in time a record's date or date-time field holds (a date is 00:00 in ``tz``); None when
    empty or not such a field."""
    spec = entity.field(field) if entity is not None else None
    value = (data or {}).get(field)
    if spec is None or value in (None, "") or spec.get("type") not in field_types:
        return None
    return field_types.get(spec["type"]).moment(value, tz)


class DelayConfigSerializer(serializers.Serializer):
    seconds = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_DELAY_SECONDS, help_text="Wait this long (1 s to 31 days)."
    )
    until_field = serializers.CharField(
        required=False, max_length=100, help_text="Wait until the date or date-time in this field of the record."
    )
    offset_seconds = serializers.IntegerField(
        required=False,
        default=0,
        min_value=-MAX_OFFSET_SECONDS,
        max_value=MAX_OFFSET_SECONDS,
        help_text="With until_field: seconds after (negative: before) that moment.",
    )

    def validate_until_field(self, value: str) -> str:
        problem = moment_field(self.context.get("entity"), value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs: dict) -> dict:
        if ("seconds" in attrs) == ("until_field" in attrs):
            raise serializers.ValidationError({"seconds": ["Give either seconds or until_field (one of them)."]})
        if "seconds" in attrs and attrs.get("offset_seconds"):
            raise serializers.ValidationError({"offset_seconds": ["Only with until_field."]})
        if "seconds" in attrs:
            attrs.pop("offset_seconds", None)
        return attrs


class Delay(ActionType):
    """Wait before the next step: ``{"seconds": N}`` (1 s to 31 days), or ``{"until_field": <date or
    date-time field>, "offset_seconds": N}`` (an empty field or a moment already past: go on at once). The
    run waits in the database (no worker is held) and resumes within seconds of its time."""

    name = "delay"
    label = "Delay"
    config_serializer: ClassVar[type[serializers.Serializer]] = DelayConfigSerializer

    def resume_at(self, config: dict, record: dict, now: dt.datetime, entity=None) -> dt.datetime:
        """When the next step may run (``now`` or earlier: at once)."""
        if config.get("seconds"):
            return now + dt.timedelta(seconds=int(config["seconds"]))
        moment = moment_of(entity, config.get("until_field", ""), record.get("data") or {})
        if moment is None:
            return now
        return moment + dt.timedelta(seconds=int(config.get("offset_seconds") or 0))

    def execute(self, ctx: RunContext) -> dict[str, Any]:  # pragma: no cover - the executor waits instead
        raise NotImplementedError("delay steps are waited on by the executor")

    def preview(self, ctx: RunContext) -> dict[str, Any]:
        now = timezone.now()
        resume = self.resume_at(ctx.config, ctx.record, now, ctx.entity)
        return {"resume_at": max(resume, now).isoformat(), "waits_seconds": max(0, int((resume - now).total_seconds()))}


delay = Delay()


def step_type(name: str) -> ActionType:
    """The step type registered under ``name`` (``delay`` or an action type); KeyError if none."""
    if name == delay.name:
        return delay
    return action_types.get(name)


def step_type_names() -> list[str]:
    return [*action_types.names(), delay.name]
