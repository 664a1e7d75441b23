"""Per-rule throttles (``max_runs_per_minute`` / ``max_runs_per_hour``): runs over the limit are not
dropped, they wait (status ``pending`` with ``next_attempt_at``) and their log says so. Rules without a
throttle cost nothing here: no query is made for them."""

from __future__ import annotations

import datetime as dt
import math

from .models import AutomationLog, AutomationRule, RunStatus

WINDOWS = (("max_runs_per_minute", 60), ("max_runs_per_hour", 3600))


class Throttle:
    """Assigns start times to the runs of throttled rules within one matching pass."""

    def __init__(self, now: dt.datetime):
        self.now = now
        self._counts: dict[tuple, int] = {}

    def _count(self, rule: AutomationRule, seconds: int) -> int:
        key = (rule.pk, seconds)
        if key not in self._counts:
            self._counts[key] = (
                AutomationLog.objects.filter(
                    automation=rule, is_test=False, created_at__gte=self.now - dt.timedelta(seconds=seconds)
                )
                .exclude(status=RunStatus.SKIPPED)
                .count()
            )
        return self._counts[key]

    def next_slot(self, rule: AutomationRule) -> dt.datetime | None:
        """None: run now. Otherwise the time this run may start (the window that has room for it)."""
        wait = 0
        for attr, seconds in WINDOWS:
            limit = getattr(rule, attr)
            if not limit:
                continue
            count = self._count(rule, seconds)
            self._counts[(rule.pk, seconds)] = count + 1
            if count >= limit:
                wait = max(wait, seconds * math.floor(count / limit))
        return self.now + dt.timedelta(seconds=wait) if wait else None
