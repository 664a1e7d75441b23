"""When a failed run is tried again: the schedule, its jitter, and a receiver's ``Retry-After``."""

from __future__ import annotations

import random

from django.conf import settings


def max_attempts() -> int:
    return len(settings.AUTOMATIONS_RETRY_SCHEDULE) + 1


def retry_delay(attempts_done: int, retry_after: float | None = None) -> float | None:
    """Seconds until the next attempt after ``attempts_done`` attempts, or None when none is left.

    The schedule (``AUTOMATIONS_RETRY_SCHEDULE``) with +/- ``AUTOMATIONS_RETRY_JITTER``; a receiver's
    ``Retry-After`` (capped at ``AUTOMATIONS_RETRY_AFTER_MAX``) is honoured when it asks for longer."""
    schedule = settings.AUTOMATIONS_RETRY_SCHEDULE
    if attempts_done > len(schedule):
        return None
    base = schedule[attempts_done - 1]
    jitter = settings.AUTOMATIONS_RETRY_JITTER
    delay = base * (1 + random.uniform(-jitter, jitter)) if jitter else float(base)
    if retry_after is not None:
        delay = max(delay, min(float(retry_after), float(settings.AUTOMATIONS_RETRY_AFTER_MAX)))
    return max(0.0, delay)
