"""Errors of the automations app.

- Domain errors the services raise (``config.api`` maps them to HTTP once; the admin and the
  ``test_automation`` command show them as they are): ``RuleInvalid``, ``ConfigInvalid``,
  ``TestRecordInvalid``, ``RuleQueryInvalid``, ``RunNotRetryable``, ``RunNotFound``.
- Outcomes an action can raise while it runs: ``ActionError`` and its kinds. The executor turns them
  into log states (retry, error, disable).
"""

from __future__ import annotations

from typing import Any

from config.errors import Conflict, InvalidInput, NotFound


class RuleInvalid(InvalidInput):
    """A rule's trigger, conditions, action or entity is invalid; errors are keyed like the API's
    (``trigger_config.to_status``, ``action_config.url``, ``conditions.rules.0.op``, ``entity_id``)."""


class ConfigInvalid(InvalidInput):
    """A trigger or action config (or the conditions) is invalid; errors keyed by option."""


class TestRecordInvalid(InvalidInput):
    """The record given for a test run cannot be used with this rule."""

    __test__ = False  # not a pytest test class


class RuleQueryInvalid(InvalidInput):
    """A rule list's filters are invalid (e.g. a trigger or action type that is not registered)."""


class RunNotRetryable(Conflict):
    """The run cannot be retried in its current state."""


class RunNotFound(NotFound):
    """No such run of this rule."""

    default_message = "Run not found."


class RuleVersionNotFound(NotFound):
    """No such version of this rule."""

    default_message = "Version not found."


class ActionError(Exception):
    """The action failed. ``retryable`` errors are retried on the schedule; others fail the run at once."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        result: dict[str, Any] | None = None,
        retry_after: float | None = None,
        disable_rule: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.result = result
        self.retry_after = retry_after  # seconds, from the receiver's Retry-After
        self.disable_rule = disable_rule


class RetryableActionError(ActionError):
    """A transient failure (timeout, connection error, 408/429/5xx, a provider's temporary error)."""

    retryable = True


class PermanentActionError(ActionError):
    """A failure that another attempt cannot fix (4xx, invalid recipient, bad template output)."""


class TemplateRenderError(PermanentActionError):
    """A user template could not be rendered (syntax error, sandbox violation, output too large)."""
