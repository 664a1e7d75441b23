"""The action type interface. One class per action, registered in ``automations.action_types``."""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework import serializers

from ..context import RunContext


class ActionType:
    """An action: validates its own config, runs (``execute``) and previews (``preview``, a dry run).

    - ``config_serializer``: a DRF serializer class validating ``action_config``; it receives
      ``context={"entity": Entity}`` so it can check field names. API, admin and the command all
      validate through ``validate_config``.
    - ``execute(ctx)`` returns the result dict stored on the log (the seed's shapes) or raises
      ``RetryableActionError`` / ``PermanentActionError`` (``automations.exceptions``).
    - ``preview(ctx)`` returns what ``execute`` would do, without side effects.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    config_serializer: ClassVar[type[serializers.Serializer]]

    def validate_config(self, config: Any, *, entity=None) -> dict:
        """Return the cleaned config or raise ``serializers.ValidationError`` (errors per config key)."""
        if not isinstance(config, dict):
            raise serializers.ValidationError({"non_field_errors": ["Must be an object."]})
        serializer = self.config_serializer(data=config, context={"entity": entity})
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def redact_config(self, config: dict) -> dict:
        """The config as shown to members and viewers: secret values replaced by ``[redacted]``."""
        return config

    def keep_secrets(self, config: Any, stored: dict) -> Any:
        """``config`` with the ``[redacted]`` placeholders of ``redact_config`` replaced by the stored
        values, so a client that sends back what it was shown keeps the secrets."""
        return config

    def execute(self, ctx: RunContext) -> dict[str, Any]:
        raise NotImplementedError

    def preview(self, ctx: RunContext) -> dict[str, Any]:
        raise NotImplementedError
