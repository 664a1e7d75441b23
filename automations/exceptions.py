"""Outcomes an action can raise. The executor turns them into log states (retry, error, disable)."""

from __future__ import annotations

from typing import Any


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
