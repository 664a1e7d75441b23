"""The run ledger: every change of a run's state, each guarded by the lease that holds it.

A run (``AutomationLog``) waits as ``pending``/``retrying`` with its due time, is claimed (``running``,
a lease, this worker's id, one more attempt), and ends ``success``/``error``/``skipped`` or waits again.
Every write after the claim is conditional on ``status = running AND lease_until = <our lease>``, so a
worker that lost its run (lease expired, or declared dead) can never overwrite what the new holder does.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import sql
from .heartbeats import current as registration
from .models import AutomationLog, AutomationRule, RunStatus

logger = logging.getLogger("automations")

Run = tuple[AutomationLog, AutomationRule]


def lease_seconds() -> int:
    return settings.AUTOMATIONS_RUN_LEASE_SECONDS


def new_lease(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=lease_seconds())


def _with_rules(logs: list[AutomationLog]) -> list[Run]:
    """Attach each run's rule (with its entity), one query for the batch."""
    if not logs:
        return []
    rules = AutomationRule.objects.select_related("entity").in_bulk({log.automation_id for log in logs})
    runs = []
    for log in logs:
        rule = rules.get(log.automation_id)
        if rule is not None:  # the rule was deleted meanwhile: its runs went with it
            log.automation = rule
            runs.append((log, rule))
    return runs


def claim(
    *, ids: Sequence | None = None, limit: int = 50, due: bool = True, due_before: dt.datetime | None = None
) -> list[Run]:
    """Claim runs for this worker: waiting runs that are due (``due``; only those due before
    ``due_before`` when given), or runs whose holder is gone (``due=False``: lease expired or worker
    declared dead). Returns them with their rules."""
    now = timezone.now()
    with transaction.atomic():
        logs = sql.claim_runs(
            ids=ids,
            limit=limit,
            now=now,
            lease=new_lease(now),
            worker_id=registration.worker_id,
            due=due,
            due_before=due_before,
        )
    return _with_rules(logs)


def finish(log: AutomationLog, **fields) -> bool:
    """Write the run's new state if this worker still holds its lease."""
    updated = sql.update_held(log.pk, log.lease_until, fields)
    for key, value in fields.items():
        setattr(log, key, value)
    if not updated:
        logger.warning("run %s: lease lost before finishing; another worker owns it now", log.pk)
    return bool(updated)


def skip_if_inactive(log: AutomationLog, rule: AutomationRule) -> bool:
    """A (non-test) run of a rule turned off since it was queued is logged as skipped, not executed."""
    if rule.is_active or log.is_test:
        return False
    now = timezone.now()
    finish(
        log,
        status=RunStatus.SKIPPED,
        error=f"Skipped: the rule is inactive. {rule.disabled_reason}".strip(),
        finished_at=now,
        executed_at=now,
        lease_until=None,
        next_attempt_at=None,
    )
    return True


def by_lease(logs: Iterable[AutomationLog]) -> dict[dt.datetime, list[AutomationLog]]:
    """Logs grouped by the lease they are held with: each group is one guarded statement."""
    groups: dict[dt.datetime, list[AutomationLog]] = defaultdict(list)
    for log in logs:
        groups[log.lease_until].append(log)
    return groups


class SuccessLedger:
    """Successful outcomes of a batch, written together: one UPDATE per lease instead of one per run.

    Each row is still guarded by its lease, so a run another worker took over is never overwritten. A
    buffered success is flushed within ``FLUSH_SECONDS`` or ``FLUSH_SIZE`` runs (and always before the
    batch returns), far inside the lease; a worker killed before the flush leaves those runs to be taken
    over (delivered again with the same ``webhook-id``: at least once, as for a run killed mid-request)."""

    FLUSH_SIZE = 100
    FLUSH_SECONDS = 1.0

    def __init__(self) -> None:
        self.items: list[tuple[AutomationLog, dict]] = []
        self.first_at = 0.0

    def add(self, log: AutomationLog, fields: dict) -> None:
        """Buffer a success; ``log`` keeps the lease it holds until the flush writes ``fields``."""
        if not self.items:
            self.first_at = time.monotonic()
        self.items.append((log, fields))
        if len(self.items) >= self.FLUSH_SIZE or time.monotonic() - self.first_at >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        items, self.items = self.items, []
        fields_of = {log.pk: fields for log, fields in items}
        for lease, logs in by_lease(log for log, _ in items).items():
            group = [(log, fields_of[log.pk]) for log in logs]
            updated = sql.finish_successes(group, lease)
            for log, fields in group:
                for key, value in fields.items():
                    setattr(log, key, value)
            if updated < len(group):
                logger.warning(
                    "%d run(s) lost their lease before finishing; another worker owns them now", len(group) - updated
                )


def renew(runs: list[Run]) -> list[Run]:
    """Extend the leases of runs this worker still holds (a long batch); returns those still held."""
    lease = new_lease(timezone.now())
    held: set[uuid.UUID] = set()
    for old, logs in by_lease(log for log, _ in runs).items():
        pks = [log.pk for log in logs]
        if AutomationLog.objects.filter(pk__in=pks, status=RunStatus.RUNNING, lease_until=old).update(
            lease_until=lease
        ) == len(pks):
            held.update(pks)
        else:
            held.update(AutomationLog.objects.filter(pk__in=pks, lease_until=lease).values_list("pk", flat=True))
    kept = []
    for log, rule in runs:
        if log.pk in held:
            log.lease_until = lease
            kept.append((log, rule))
        else:
            logger.warning("run %s: lease lost before it started; another worker owns it now", log.pk)
    return kept


def release(runs: list[Run]) -> list[AutomationLog]:
    """Hand claimed but unstarted runs back (the worker is stopping, or a slow run held up its batch):
    due now, attempts unchanged, for any worker. Returns the runs handed back."""
    if not runs:
        return []
    now = timezone.now()
    released: list[AutomationLog] = []
    for lease, logs in by_lease(log for log, _ in runs).items():
        pks = [log.pk for log in logs]
        back = set(
            AutomationLog.objects.filter(pk__in=pks, status=RunStatus.RUNNING, lease_until=lease).values_list(
                "pk", flat=True
            )
        )
        AutomationLog.objects.filter(pk__in=back, status=RunStatus.RUNNING, lease_until=lease).update(
            status=RunStatus.PENDING,
            attempts=F("attempts") - 1,
            started_at=None,
            lease_until=None,
            worker_id="",
            next_attempt_at=now,
        )
        for log in logs:
            if log.pk in back:
                log.status, log.lease_until, log.next_attempt_at, log.worker_id = RunStatus.PENDING, None, now, ""
                log.attempts = max(0, (log.attempts or 1) - 1)
                released.append(log)
    return released


def cancel_waiting(rule: AutomationRule, reason: str) -> int:
    """The rule was turned off: its runs waiting on a delay, a retry or a throttle slot end as skipped with
    the reason (turning it back on does not bring them back). Returns how many."""
    now = timezone.now()
    return AutomationLog.objects.filter(
        automation=rule, status__in=[RunStatus.PENDING, RunStatus.RETRYING], is_test=False
    ).update(status=RunStatus.SKIPPED, error=reason, finished_at=now, next_attempt_at=None, lease_until=None)
