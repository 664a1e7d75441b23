"""Step types: what a rule's step may be — one of the action types, or ``delay`` (wait, durably, before the
next step). ``step_type(name)`` finds either."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

from .action_types import ActionType, action_types
from .context import RunContext

MAX_DELAY_SECONDS = 31 * 24 * 3600  # 2,678,400: 31 days
MAX_OFFSET_SECONDS = 366 * 24 * 3600

DATE_TYPES = ("date", "datetime")


def moment_of(value: Any) -> dt.datetime | None:
    """A date or date-time field value as an aware moment (a date is 00:00 UTC); None when empty or unreadable."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time.min)
    else:
        text = str(value).strip()
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text) if len(text) == 10 else None
            if day is None:
                return None
            moment = dt.datetime.combine(day, dt.time.min)
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


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
        entity = self.context.get("entity")
        if entity is not None:
            spec = entity.field(value)
            if spec is None:
                raise serializers.ValidationError(f"Unknown field '{value}'.")
            if spec.get("type") not in DATE_TYPES:
                raise serializers.ValidationError(f"'{value}' is a {spec.get('type')} field, not a date or date-time.")
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

    def resume_at(self, config: dict, record: dict, now: dt.datetime) -> dt.datetime:
        """When the next step may run (``now`` or earlier: at once)."""
        if config.get("seconds"):
            return now + dt.timedelta(seconds=int(config["seconds"]))
        moment = moment_of((record.get("data") or {}).get(config.get("until_field", "")))
        if moment is None:
            return now
        return moment + dt.timedelta(seconds=int(config.get("offset_seconds") or 0))

    def execute(self, ctx: RunContext) -> dict[str, Any]:  # pragma: no cover - the executor waits instead
        raise NotImplementedError("delay steps are waited on by the executor")

    def preview(self, ctx: RunContext) -> dict[str, Any]:
        now = timezone.now()
        resume = self.resume_at(ctx.config, ctx.record, now)
        return {"resume_at": max(resume, now).isoformat(), "waits_seconds": max(0, int((resume - now).total_seconds()))}


delay = Delay()


def step_type(name: str) -> ActionType:
    """The step type registered under ``name`` (``delay`` or an action type); KeyError if none."""
    if name == delay.name:
        return delay
    return action_types.get(name)


def step_type_names() -> list[str]:
    return [*action_types.names(), delay.name]
