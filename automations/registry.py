"""What trigger and action types share: a name, a label and a config validated by the type's own DRF
serializer. API, admin and the command all validate through ``validate_config``, so they accept the same
rules. The types are kept in ``config.registry.Registry`` instances (``trigger_types``, ``action_types``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework import serializers

from config.errors import flatten_errors, unknown_key_message

from .exceptions import ConfigInvalid

__all__ = ["ConfiguredType", "EmptyConfig"]


class EmptyConfig(serializers.Serializer):
    """No options."""


class ConfiguredType:
    """A registered type with options: ``config_serializer`` checks them (it receives
    ``context={"entity": Entity}`` so it can check field names)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    config_serializer: ClassVar[type[serializers.Serializer]] = EmptyConfig

    def validate_config(self, config: Any, *, entity=None) -> dict:
        """The cleaned config, or ``ConfigInvalid`` with errors keyed by option (unknown options too: a
        typo such as ``due_in_dayz`` must not be dropped silently)."""
        if not isinstance(config, dict):
            raise ConfigInvalid(errors={"non_field_errors": ["Must be an object."]})
        serializer = self.config_serializer(data=config, context={"entity": entity})
        if not serializer.is_valid():
            raise ConfigInvalid(errors=flatten_errors(serializer.errors))
        unknown = sorted(set(config) - set(serializer.fields))
        if unknown:
            raise ConfigInvalid(
                errors={key: [unknown_key_message(key, serializer.fields, "option")] for key in unknown}
            )
        return dict(serializer.validated_data)
