"""The action type interface. One class per action, registered in ``automations.action_types``."""

from __future__ import annotations

from typing import Any, ClassVar

from ..context import RunContext
from ..registry import ConfiguredType


class ActionType(ConfiguredType):
    """An action: validates its own config, runs (``execute``) and previews (``preview``, a dry run).

    - ``config_serializer``: a DRF serializer class validating ``action_config`` (through
      ``validate_config``, see ``automations.registry.ConfiguredType``).
    - ``execute(ctx)`` returns the result dict stored on the log (the seed's shapes) or raises
      ``RetryableActionError`` / ``PermanentActionError`` (``automations.exceptions``).
    - ``preview(ctx)`` returns what ``execute`` would do, without side effects.
    """

    reject_unknown_options: ClassVar[bool] = False

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
