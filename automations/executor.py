"""Executing one run: build what the action sees, run the action type, and write the outcome (success,
a retry at its scheduled time, or a final error) to the run's ledger row, guarded by its lease."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.utils import timezone

from . import health, telemetry
from .action_types import action_types
from .causation import RunCause, running
from .context import RunContext
from .exceptions import ActionError
from .ledger import SuccessLedger, finish
from .models import AutomationLog, AutomationRule, RunStatus
from .retry_policy import retry_delay

logger = logging.getLogger("automations")


def context_for(log: AutomationLog, rule: AutomationRule, *, dry_run: bool = False) -> RunContext:
    """What the action sees: the rule, the record as the event captured it, the run."""
    return RunContext(
        rule=rule,
        entity=rule.entity,
        record=log.record_snapshot or {},
        event_type=log.event_type or "updated",
        old_data=log.old_data,
        log=None if dry_run else log,
        attempt=log.attempts or 1,
        is_test=log.is_test,
        dry_run=dry_run,
        chain=log.chain or [],
        chain_depth=log.chain_depth,
        batch_id=str(log.batch_id) if log.batch_id else None,
    )


def _report(log: AutomationLog, rule: AutomationRule, status: str, duration_ms: int, error: str = "") -> None:
    """One line per finished (or rescheduled) run, for operators watching the worker."""
    telemetry.record_run(log, rule, status, duration_ms, error)
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "run %s: %s | rule %r | record %s | attempt %d | %d ms%s",
            log.pk,
            status,
            rule.name,
            log.record_id,
            log.attempts or 0,
            duration_ms,
            f" | {error}" if error else "",
        )


def execute(log: AutomationLog, rule: AutomationRule, *, ledger: SuccessLedger | None = None) -> AutomationLog:
    """Run the action of a claimed run (status running, lease held) and record the outcome.

    With ``ledger`` a success is buffered and written later together with others (one UPDATE per batch);
    failures, retries and anything that changes the rule's health are written at once. A retry leaves the
    run ``retrying`` with ``next_attempt_at``: the caller schedules it."""
    ctx = context_for(log, rule)
    started = time.monotonic()
    cause = RunCause(rule_id=str(rule.id), record_id=ctx.record_id, chain=ctx.chain, chain_depth=ctx.chain_depth)
    error: ActionError | None = None
    result = None
    if rule.action_type not in action_types:  # a configuration problem, not transient
        error = ActionError(f"Unknown action type '{rule.action_type}'.")
    else:
        try:
            with running(cause):
                result = action_types.get(rule.action_type).execute(ctx)
        except ActionError as exc:
            error = exc
        except Exception as exc:  # a bug or an infrastructure failure: retry, with the reason on the log
            logger.exception("run %s: unexpected error in %s", log.pk, rule.action_type)
            error = ActionError(f"{type(exc).__name__}: {exc}")
            error.retryable = True
    now = timezone.now()
    duration_ms = int((time.monotonic() - started) * 1000)
    if error is None:
        success = {
            "status": RunStatus.SUCCESS,
            "result": result,
            "error": "",
            "finished_at": now,
            "executed_at": now,
            "duration_ms": duration_ms,
            "lease_until": None,
            "next_attempt_at": None,
        }
        resets_failures = bool(rule.consecutive_failures) and not log.is_test
        if ledger is not None and not resets_failures:
            ledger.add(log, success)
        elif finish(log, **success) and resets_failures:
            health.record_success(rule)
        _report(log, rule, RunStatus.SUCCESS, duration_ms)
        return log

    delay = None if (log.is_test or not error.retryable) else retry_delay(log.attempts, error.retry_after)
    if delay is not None:
        finish(
            log,
            status=RunStatus.RETRYING,
            result=error.result,
            error=f"Attempt {log.attempts} failed: {error.message}",
            next_attempt_at=now + dt.timedelta(seconds=delay),
            duration_ms=duration_ms,
            executed_at=now,
            lease_until=None,
        )
        _report(log, rule, RunStatus.RETRYING, duration_ms, log.error)
        return log

    if (
        finish(
            log,
            status=RunStatus.ERROR,
            result=error.result,
            error=error.message,
            finished_at=now,
            executed_at=now,
            duration_ms=duration_ms,
            lease_until=None,
            next_attempt_at=None,
        )
        and not log.is_test
    ):
        health.record_failure(rule, error)
    _report(log, rule, RunStatus.ERROR, duration_ms, error.message)
    return log
