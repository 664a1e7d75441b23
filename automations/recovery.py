"""Finding work that its holder left behind: runs held by a dead worker or past their lease, and (with a
distributed queue, whose messages can be lost) events and due runs that nobody picked up in time."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from . import heartbeats, ledger, matching
from .ledger import Run


def held_by_the_gone(*, limit: int) -> list[Run]:
    """Declare silent workers dead, then claim the runs held by dead workers or past their lease (same
    run ids, so the same ``webhook-id``)."""
    heartbeats.declare_dead()
    return ledger.claim(due=False, limit=limit)


def _grace() -> dt.datetime:
    return timezone.now() - dt.timedelta(seconds=settings.AUTOMATIONS_RECOVERY_GRACE_SECONDS)


def stranded_events(*, limit: int) -> matching.Matched:
    """Match events that waited longer than ``AUTOMATIONS_RECOVERY_GRACE_SECONDS`` (their enqueue was lost)."""
    return matching.take_and_match(limit=limit, created_before=_grace())


def overdue_runs(*, limit: int) -> list[Run]:
    """Claim waiting runs overdue by more than the grace (their scheduled message was lost)."""
    return ledger.claim(due=True, limit=limit, due_before=_grace())
