"""The action type interface. One class per action, registered in ``automations.action_types``."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..context import RunContext
from ..registry import ConfiguredType


def json_html(value: Any) -> SafeString | str:
    """Indented JSON in a ``<pre>`` block (escaped); a dash for nothing."""
    if value in (None, "", {}, []):
        return "—"
    text = json.dumps(value, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder)
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)


class ActionType(ConfiguredType):
    """An action: validates its own config, runs (``execute``) and previews (``preview``, a dry run).

    - ``config_serializer``: a DRF serializer class validating ``action_config`` (through
      ``validate_config``, see ``automations.registry.ConfiguredType``).
    - ``execute(ctx)`` returns the result dict stored on the log (the seed's shapes) or raises
      ``RetryableActionError`` / ``PermanentActionError`` (``automations.exceptions``).
    - ``preview(ctx)`` returns what ``execute`` would do, without side effects.
    - ``describe_result(result)`` shows a run's result to people (safe HTML, built with ``format_html``).
    - ``signs_requests``: whether runs are signed with the rule's ``signing_secret`` (people are shown
      the secret only where it is used).
    """

    signs_requests: ClassVar[bool] = False

    def redact_config(self, config: dict) -> dict:
        """The config as shown to members and viewers: secret values replaced by ``[redacted]``."""
        return config

    def keep_secrets(self, config: Any, stored: dict) -> Any:
        """``config`` with the ``[redacted]`` placeholders of ``redact_config`` replaced by the stored
        values, so a client that sends back what it was shown keeps the secrets."""
        return config

    def describe_result(self, result: Any) -> SafeString | str:
        """The stored result, readably, as safe HTML (the admin's run page); indented JSON by default."""
        return json_html(result)

    def record_after(self, record: dict, result: Any) -> dict:
        """The record as the next steps see it after this one ran (or was previewed) with ``result``:
        unchanged by default; an action that changes the record says how."""
        return record

    def execute(self, ctx: RunContext) -> dict[str, Any]:
        raise NotImplementedError

    def preview(self, ctx: RunContext) -> dict[str, Any]:
        raise NotImplementedError
