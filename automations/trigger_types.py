"""Trigger types: when a rule fires. Each owns its config validation and ``matches(event, config)``.

The seed's semantics: ``status_changed`` needs the status to really change (``to_status`` required,
``from_status`` optional); ``field_updated`` needs the field's value to differ; a save that changes
nothing fires nothing (the dispatcher never records such an event).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rest_framework import serializers

from config.registry import Registry

from . import conditions as condition_rules
from . import schedules
from .registry import ConfiguredType
from .step_types import moment_field


@dataclass(frozen=True)
class Event:
    """What the worker matches rules against (built from an ``AutomationEvent`` row)."""

    event_type: str  # created | updated | deleted
    data: dict[str, Any]
    old_data: dict[str, Any] | None


class TriggerType(ConfiguredType):
    """A trigger: ``event_types`` it listens to, a config serializer (unknown options refused), and
    ``matches``. Time-based triggers (``time_based``) fire from the worker's schedules instead of from
    events; a trigger may follow record events without firing on them (``on_event``)."""

    event_types: ClassVar[tuple[str, ...]] = ()
    time_based: ClassVar[bool] = False

    def matches(self, event: Event, config: dict, *, entity=None, conditions=None) -> bool:
        return event.event_type in self.event_types

    def on_event(self, rule, event, now) -> None:
        """Called for every event of the rule's entity the trigger listens to, before ``matches``."""

    def check_rule(self, *, conditions: dict) -> dict[str, list[str]]:
        """Errors of a rule as a whole with this trigger (e.g. conditions it needs), keyed by field."""
        return {}

    def next_times(self, rule, record=None, *, count: int = 5) -> list[str]:
        """For a dry run of a time-based rule: its next occurrences (or the record's due time)."""
        return []

    def test_match(self, data: dict, config: dict, *, entity=None) -> tuple[bool, str]:
        """Would a test run on a record with ``data`` fire? A test has no previous data, so
        change-based triggers say how they judge; returns (matches, note for the user)."""
        return self.matches(Event(self.event_types[0], data, None), config, entity=entity), ""


class RecordCreated(TriggerType):
    """Fires for every new record (bulk creates included, one run per record)."""

    name = "record_created"
    label = "Record created"
    event_types = ("created",)


class RecordUpdated(TriggerType):
    """Fires when any value of a record's data changes."""

    name = "record_updated"
    label = "Record updated"
    event_types = ("updated",)


class RecordDeleted(TriggerType):
    """Fires when a record is deleted; the run sees the record as it was."""

    name = "record_deleted"
    label = "Record deleted"
    event_types = ("deleted",)


def _check_field(name: str, entity) -> None:
    if entity is not None and entity.field(name) is None:
        raise serializers.ValidationError(
            f"Unknown field '{name}'. Fields of {entity.name}: {', '.join(entity.field_names) or '(none)'}."
        )


class FieldUpdatedConfig(serializers.Serializer):
    field_name = serializers.CharField(max_length=100, help_text="The field whose value must change.")

    def validate_field_name(self, value):
        _check_field(value, self.context.get("entity"))
        return value


class FieldUpdated(TriggerType):
    """Fires when ``field_name``'s value differs from its previous value."""

    name = "field_updated"
    label = "Field updated"
    event_types = ("updated",)
    config_serializer = FieldUpdatedConfig

    def matches(self, event, config, *, entity=None, conditions=None):
        if event.event_type != "updated" or event.old_data is None:
            return False
        field = config["field_name"]
        return event.old_data.get(field) != event.data.get(field)

    def test_match(self, data, config, *, entity=None):
        return True, "A test assumes the field changed."


class StatusChangedConfig(serializers.Serializer):
    to_status = serializers.CharField(max_length=255, help_text="Required: the status the record moves to.")
    from_status = serializers.CharField(
        max_length=255, required=False, allow_null=True, help_text="Optional: the status it must come from."
    )

    def validate(self, attrs):
        entity = self.context.get("entity")
        if entity is not None:
            spec = entity.field(entity.status_field)
            if spec is None:
                raise serializers.ValidationError(
                    {"to_status": [f"The entity has no status field '{entity.status_field}'."]}
                )
            options = spec.get("options")
            if options:
                for key in ("to_status", "from_status"):
                    value = attrs.get(key)
                    if value is not None and value not in options:
                        raise serializers.ValidationError({key: [f"Must be one of: {', '.join(options)}."]})
        if attrs.get("from_status") is not None and attrs.get("from_status") == attrs["to_status"]:
            raise serializers.ValidationError({"from_status": ["Must differ from to_status."]})
        return attrs


class StatusChanged(TriggerType):
    """Fires when the entity's status field (``Entity.status_field``, default ``status``) changes to
    ``to_status`` — and, if given, from ``from_status``. The status must actually change."""

    name = "status_changed"
    label = "Status changed"
    event_types = ("updated",)
    config_serializer = StatusChangedConfig

    def matches(self, event, config, *, entity=None, conditions=None):
        if event.event_type != "updated" or event.old_data is None:
            return False
        field = entity.status_field if entity is not None else "status"
        old, new = event.old_data.get(field), event.data.get(field)
        if old == new or new != config["to_status"]:
            return False
        from_status = config.get("from_status")
        return from_status is None or old == from_status

    def test_match(self, data, config, *, entity=None):
        field = entity.status_field if entity is not None else "status"
        return data.get(field) == config.get(
            "to_status"
        ), f"Judged on the current {field} (a test has no previous value)."


class TimezoneField(serializers.CharField):
    """An IANA time zone name (``Europe/Paris``); UTC when left out."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", "UTC")
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("help_text", "IANA time zone name, e.g. Europe/Paris (default UTC).")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return schedules.check_timezone(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class ScheduledConfig(serializers.Serializer):
    cron = serializers.CharField(
        max_length=100, help_text='5-field cron: minute hour day-of-month month day-of-week, e.g. "0 9 * * 1".'
    )
    timezone = TimezoneField()

    def validate_cron(self, value):
        try:
            return schedules.check_cron(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class Scheduled(TriggerType):
    """At each occurrence of ``cron`` in ``timezone`` (daylight saving handled: a time that does not exist
    runs once at the next valid minute, a repeated one once), runs the rule once for every record of the
    entity that matches its conditions at that moment. Templates also see ``{{ occurrence }}``."""

    name = "scheduled"
    label = "On a schedule"
    event_types = ()
    time_based = True
    config_serializer = ScheduledConfig

    def matches(self, event, config, *, entity=None, conditions=None):
        return False

    def test_match(self, data, config, *, entity=None):
        return True, "A scheduled rule runs for every record matching its conditions at each occurrence."

    def next_times(self, rule, record=None, *, count=5):
        return schedules.next_times(rule, record, count=count)


MAX_OFFSET_SECONDS = 366 * 24 * 3600


class DateReachedConfig(serializers.Serializer):
    field = serializers.CharField(max_length=100, help_text="A date or date-time field of the entity.")
    offset_seconds = serializers.IntegerField(
        required=False,
        default=0,
        min_value=-MAX_OFFSET_SECONDS,
        max_value=MAX_OFFSET_SECONDS,
        help_text="Seconds after the field's moment (negative: before); at most 366 days either way.",
    )
    timezone = TimezoneField(help_text="For a date field: the time zone whose 00:00 the date means (default UTC).")

    def validate_field(self, value):
        problem = moment_field(self.context.get("entity"), value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class DateReached(TriggerType):
    """Fires once per record when now reaches the record's date (or date-time) ``field`` plus
    ``offset_seconds``. A new value before it fires moves the due time; a new value after it fired fires
    again; an empty value never fires; a due time already past when the rule is created or turned on, or
    when the record is written, does not fire."""

    name = "date_reached"
    label = "Date reached"
    event_types = ("created", "updated", "deleted")  # followed to move due times, never fired on
    time_based = True
    config_serializer = DateReachedConfig

    def matches(self, event, config, *, entity=None, conditions=None):
        return False

    def on_event(self, rule, event, now) -> None:
        schedules.record_changed(rule, event, now)

    def test_match(self, data, config, *, entity=None):
        due = schedules.due_time(config, data, entity)
        if due is None:
            return False, f"The record has no {config.get('field')}: it would never fire."
        return True, f"Due at {due.isoformat()}."

    def next_times(self, rule, record=None, *, count=5):
        return schedules.next_times(rule, record, count=count)


class ConditionsMet(TriggerType):
    """Fires on a create or an update when the rule's conditions hold for the new data and did not hold
    for the old data (an edge, not a level: not again on every save while they stay true). Conditions are
    required."""

    name = "conditions_met"
    label = "Conditions become true"
    event_types = ("created", "updated")

    def matches(self, event, config, *, entity=None, conditions=None):
        if not conditions or not condition_rules.evaluate(conditions, event.data, event.old_data, entity=entity):
            return False
        if event.event_type == "created" or event.old_data is None:
            return True
        return not condition_rules.evaluate(conditions, event.old_data, None, entity=entity)

    def check_rule(self, *, conditions):
        if not conditions or not conditions.get("rules"):
            return {"conditions": ["conditions_met needs conditions: it fires when they become true."]}
        return {}

    def test_match(self, data, config, *, entity=None):
        return True, "Judged on the conditions alone (a test has no previous data to compare with)."


trigger_types: Registry[TriggerType] = Registry("trigger type")
for _trigger in (
    RecordCreated(),
    RecordUpdated(),
    FieldUpdated(),
    StatusChanged(),
    RecordDeleted(),
    ConditionsMet(),
    Scheduled(),
    DateReached(),
):
    trigger_types.register(_trigger)


def trigger_names_for(event_type: str) -> list[str]:
    """The trigger types that can fire for an event type (the worker's rule query filters on them)."""
    return [t.name for t in trigger_types if event_type in t.event_types]
