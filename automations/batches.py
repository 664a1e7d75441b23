"""Executing a batch of claimed runs: one after another, successes written together, leases renewed when
the batch runs long, and the unstarted rest handed back when the worker stops or one run is slow."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from . import executor, ledger
from .ledger import Run
from .models import AutomationLog

logger = logging.getLogger("automations")


@dataclass
class BatchOutcome:
    executed: list[AutomationLog] = field(default_factory=list)  # runs executed, with their new state
    released: list[AutomationLog] = field(default_factory=list)  # runs handed back unstarted (due now)


def execute_runs(runs: list[Run], *, keep_going: Callable[[], bool] | None = None) -> BatchOutcome:
    """Execute claimed runs in order, writing their successes in bulk (``ledger.SuccessLedger``).

    ``keep_going()`` is asked before each run: once it says no (SIGTERM, or this worker was declared
    dead), the runs not started yet are handed back instead of waiting for their lease to expire. A run
    slower than ``AUTOMATIONS_WORKER_SLOW_RUN_SECONDS`` (a receiver timing out) hands the rest back too,
    so one slow receiver never holds up the other runs of its batch: any free worker takes them at once.
    Leases are renewed when a long batch gets close to them."""
    outcome = BatchOutcome()
    successes = ledger.SuccessLedger()
    # Renew once less than an action's worst case (plus slack) is left, or half the lease if that is less.
    margin = dt.timedelta(
        seconds=min(float(settings.AUTOMATIONS_WEBHOOK_TOTAL_TIMEOUT) + 15, ledger.lease_seconds() / 2)
    )
    slow = float(settings.AUTOMATIONS_WORKER_SLOW_RUN_SECONDS)
    runs = list(runs)
    renewed_at = -1
    try:
        index = 0
        while index < len(runs):
            if keep_going is not None and not keep_going():
                successes.flush()
                outcome.released = ledger.release(runs[index:])
                break
            log, rule = runs[index]
            if log.lease_until is not None and timezone.now() + margin >= log.lease_until and renewed_at != index:
                successes.flush()
                runs[index:] = ledger.renew(runs[index:])
                renewed_at = index  # at most once per run, whatever the clock does
                continue
            started = time.monotonic()
            outcome.executed.append(executor.execute(log, rule, ledger=successes))
            index += 1
            if index < len(runs) and time.monotonic() - started > slow:
                successes.flush()
                outcome.released = ledger.release(runs[index:])
                logger.info(
                    "run %s took %.1f s: %d run(s) of its batch handed back",
                    log.pk,
                    time.monotonic() - started,
                    len(outcome.released),
                )
                break
    finally:
        successes.flush()
    return outcome
