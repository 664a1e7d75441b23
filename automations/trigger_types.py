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

from .registry import ConfiguredType


@dataclass(frozen=True)
class Event:
    """What the worker matches rules against (built from an ``AutomationEvent`` row)."""

    event_type: str  # created | updated | deleted
    data: dict[str, Any]
    old_data: dict[str, Any] | None


class TriggerType(ConfiguredType):
    """A trigger: ``event_types`` it listens to, a config serializer (unknown options refused), and
    ``matches``."""

    event_types: ClassVar[tuple[str, ...]] = ()

    def matches(self, event: Event, config: dict, *, entity=None) -> bool:
        return event.event_type in self.event_types

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

    def matches(self, event, config, *, entity=None):
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

    def matches(self, event, config, *, entity=None):
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


trigger_types: Registry[TriggerType] = Registry("trigger type")
for _trigger in (RecordCreated(), RecordUpdated(), FieldUpdated(), StatusChanged(), RecordDeleted()):
    trigger_types.register(_trigger)


def trigger_names_for(event_type: str) -> list[str]:
    """The trigger types that can fire for an event type (the worker's rule query filters on them)."""
    return [t.name for t in trigger_types if event_type in t.event_types]
