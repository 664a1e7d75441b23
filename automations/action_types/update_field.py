"""``update_field``: set one field of the triggering record to a (templated) value."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from rest_framework import serializers

from records.models import Record
from records.services import record_locked, record_update
from workspaces.field_types import FieldValueError, field_types

from ..context import RunContext
from ..exceptions import PermanentActionError, TemplateRenderError
from ..templating import render, validate_template
from .base import ActionType


def _field_spec(entity, field_name: str) -> dict | None:
    for spec in getattr(entity, "fields", None) or []:
        if spec.get("name") == field_name:
            return spec
    return None


def clean_field_value(spec: dict, value: Any) -> Any:
    """The stored form of ``value`` for the field (``None`` for empty); raises ``FieldValueError``."""
    field_type = field_types.get(spec["type"])
    if field_type.is_empty(value):
        if spec.get("required"):
            raise FieldValueError("This field is required and the new value is empty.")
        return None
    return field_type.clean(value, spec)


class UpdateFieldConfigSerializer(serializers.Serializer):
    field_name = serializers.CharField(max_length=63)
    # Any JSON value; a string may be a template ("{{ amount }}", "Contacted").
    new_value = serializers.JSONField(allow_null=True)

    def validate_field_name(self, value: str) -> str:
        entity = self.context.get("entity")
        if entity is not None and _field_spec(entity, value) is None:
            known = ", ".join(spec["name"] for spec in entity.fields or [])
            raise serializers.ValidationError(f"Unknown field '{value}'. Fields of {entity.name}: {known}.")
        return value

    def validate(self, attrs: dict) -> dict:
        value = attrs.get("new_value")
        if isinstance(value, str) and "{" in value:
            try:
                validate_template(value, mode="text")
            except TemplateRenderError as exc:
                raise serializers.ValidationError({"new_value": [exc.message]}) from None
        elif "new_value" in attrs:
            # A literal value can be checked against the field type now.
            entity = self.context.get("entity")
            spec = _field_spec(entity, attrs["field_name"]) if entity is not None else None
            if spec is not None:
                try:
                    clean_field_value(spec, value)
                except FieldValueError as exc:
                    raise serializers.ValidationError({"new_value": [str(exc)]}) from None
        return attrs


class UpdateField(ActionType):
    """Update a field of the record (the seed's ``update_field``).

    Config: ``field_name`` (must exist on the entity) and ``new_value`` (a literal or a template such as
    ``"{{ amount }}"``; the rendered text is cleaned by the field's type, so ``"42"`` becomes 42 for a
    number field). Loads the current record, does nothing when the value is unchanged, otherwise writes
    through ``records.services.record_update`` (a change made by a run never re-triggers the same rule).

    Result: ``{"field_name", "old_value", "new_value", "changed"}``.
    """

    name = "update_field"
    label = "Update field"
    config_serializer = UpdateFieldConfigSerializer

    def _plan(self, ctx: RunContext, *, for_update: bool) -> tuple[Record, str, Any, Any]:
        config = ctx.config or {}
        field_name = config.get("field_name", "")
        record_id = ctx.record_id
        record = None
        if record_id and for_update:
            record = record_locked(record_id)
        elif record_id:
            record = next(iter(Record.objects.filter(pk=record_id).order_by()[:1]), None)
        if record is None:
            raise PermanentActionError(f"The record {record_id} no longer exists; nothing to update.")
        record.entity = ctx.entity  # the rule's entity, already loaded (a record never changes entity)
        spec = _field_spec(ctx.entity, field_name)
        if spec is None:
            raise PermanentActionError(f"The field '{field_name}' no longer exists on {ctx.entity.name}.")
        raw = config.get("new_value")
        if isinstance(raw, str):
            raw = render(raw, ctx.template_variables(), mode="text")
        try:
            new_value = clean_field_value(spec, raw)
        except FieldValueError as exc:
            raise PermanentActionError(f"The new value for '{field_name}' is invalid: {exc}") from None
        old_value = (record.data or {}).get(field_name)
        return record, field_name, old_value, new_value

    def execute(self, ctx: RunContext) -> dict[str, Any]:
        with transaction.atomic():
            record, field_name, old_value, new_value = self._plan(ctx, for_update=True)
            changed = old_value != new_value
            if changed:
                record_update(record=record, data={field_name: new_value}, actor=None, merge=True)
        return {"field_name": field_name, "old_value": old_value, "new_value": new_value, "changed": changed}

    def record_after(self, record: dict, result: Any) -> dict:
        if not isinstance(result, dict) or not result.get("changed"):
            return record
        return {**record, "data": {**(record.get("data") or {}), result["field_name"]: result["new_value"]}}

    def preview(self, ctx: RunContext) -> dict[str, Any]:
        _, field_name, old_value, new_value = self._plan(ctx, for_update=False)
        return {
            "field_name": field_name,
            "old_value": old_value,
            "new_value": new_value,
            "changed": old_value != new_value,
        }
