"""Executing one run: build what each step sees, run the step types in order, and write the outcome
(success, a retry of the failed step at its scheduled time, a wait on a delay, or a final error) to the
run's ledger row, guarded by its lease.

A run of a one-step rule is the run itself: its row's status, attempts, result and error are the step's.
A run of several steps keeps a ledger per step (``step_states``) and its position (``current_step``),
written after every step, so a run taken over after a crash resumes at the step it was at (a step that
had finished is not run again) and a run waiting on a delay holds nothing but its row."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from django.utils import timezone

from records.models import Record

from . import health, ledger, telemetry, versions
from .causation import RunCause, running
from .context import RunContext
from .exceptions import ActionError
from .ledger import SuccessLedger, finish
from .models import AutomationLog, AutomationRule, RunStatus
from .retry_policy import retry_delay
from .step_types import delay, step_type

logger = logging.getLogger("automations")


def context_for(
    log: AutomationLog,
    rule: AutomationRule,
    *,
    dry_run: bool = False,
    step: dict | None = None,
    index: int = 0,
    results: list | None = None,
    record: dict | None = None,
) -> RunContext:
    """What a step sees: the rule, the record (as the event captured it for the first step; as the earlier
    steps left it for the others), the run, the step's config and the earlier steps' results."""
    return RunContext(
        rule=rule,
        entity=rule.entity,
        record=record if record is not None else (log.record_snapshot or {}),
        event_type=log.event_type or "updated",
        old_data=log.old_data,
        log=None if dry_run else log,
        attempt=log.attempts or 1,
        is_test=log.is_test,
        dry_run=dry_run,
        chain=log.chain or [],
        chain_depth=log.chain_depth,
        batch_id=str(log.batch_id) if log.batch_id else None,
        config=(step or {}).get("config") if step is not None else None,
        step_index=index,
        steps=list(results or []),
        occurrence=log.due_at.isoformat() if log.due_at else None,
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


def _run_step(ctx: RunContext, step: dict, rule: AutomationRule, log: AutomationLog) -> tuple[Any, ActionError | None]:
    """Execute one action step; returns (result, None) or (None, the error)."""
    cause = RunCause(rule_id=str(rule.id), record_id=ctx.record_id, chain=ctx.chain, chain_depth=ctx.chain_depth)
    try:
        action = step_type(step.get("type", ""))
    except KeyError:  # a configuration problem, not transient
        return None, ActionError(f"Unknown step type '{step.get('type')}'.")
    try:
        with running(cause):
            return action.execute(ctx), None
    except ActionError as exc:
        return None, exc
    except Exception as exc:  # a bug or an infrastructure failure: retry, with the reason on the log
        logger.exception("run %s: unexpected error in %s", log.pk, step.get("type"))
        error = ActionError(f"{type(exc).__name__}: {exc}")
        error.retryable = True
        return None, error


def _retry_or_fail(log: AutomationLog, error: ActionError) -> float | None:
    """Seconds until the failed step is tried again, or None when it fails for good."""
    return None if (log.is_test or not error.retryable) else retry_delay(log.attempts, error.retry_after)


def execute(log: AutomationLog, rule: AutomationRule, *, ledger: SuccessLedger | None = None) -> AutomationLog:
    """Run a claimed run (status running, lease held) from its current step and record the outcome.

    With ``ledger`` the success of a one-step run is buffered and written later together with others (one
    UPDATE per batch); everything else is written at once. A retry or a delay leaves the run waiting
    (``retrying`` / ``pending`` with ``next_attempt_at``): the caller schedules it."""
    steps = versions.steps_for(log, rule)
    if len(steps) == 1 and steps[0].get("type") != delay.name and not log.step_states:
        return _execute_single(log, rule, steps[0], ledger=ledger)
    return _execute_steps(log, rule, steps)


# --------------------------------------------------------------------------- one step: the run is the step


def _execute_single(log: AutomationLog, rule: AutomationRule, step: dict, *, ledger: SuccessLedger | None):
    started = time.monotonic()
    result, error = _run_step(context_for(log, rule, step=step), step, rule, log)
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

    return _failed(
        log,
        rule,
        error,
        _retry_or_fail(log, error),
        now,
        duration_ms,
        retry_message=f"Attempt {log.attempts} failed: {error.message}",
        message=error.message,
    )


def _failed(
    log: AutomationLog,
    rule: AutomationRule,
    error: ActionError,
    delay_seconds: float | None,
    now: dt.datetime,
    duration_ms: int,
    *,
    retry_message: str,
    message: str,
    **step_fields,
) -> AutomationLog:
    """Write a failed attempt: retrying in ``delay_seconds``, or an error for good (counted against the
    rule's health). ``step_fields``: the step ledger of a run of several steps."""
    if delay_seconds is not None:
        finish(
            log,
            status=RunStatus.RETRYING,
            result=error.result,
            error=retry_message,
            next_attempt_at=now + dt.timedelta(seconds=delay_seconds),
            duration_ms=duration_ms,
            executed_at=now,
            lease_until=None,
            **step_fields,
        )
        _report(log, rule, RunStatus.RETRYING, duration_ms, retry_message)
        return log
    if (
        finish(
            log,
            status=RunStatus.ERROR,
            result=error.result,
            error=message,
            finished_at=now,
            executed_at=now,
            duration_ms=duration_ms,
            lease_until=None,
            next_attempt_at=None,
            **step_fields,
        )
        and not log.is_test
    ):
        health.record_failure(rule, error)
    _report(log, rule, RunStatus.ERROR, duration_ms, message)
    return log


# --------------------------------------------------------------------------- several steps


def new_step_states(steps: list[dict]) -> list[dict]:
    return [
        {
            "index": index,
            "type": step.get("type"),
            "status": "pending",
            "attempts": 0,
            "started_at": None,
            "finished_at": None,
            "result": None,
            "error": "",
        }
        for index, step in enumerate(steps)
    ]


def _current_record(log: AutomationLog, fallback: dict) -> dict:
    """The record as it is now (the earlier steps may have changed it); the last known copy if it is gone."""
    if not log.record_id:
        return fallback
    record = Record.objects.filter(pk=log.record_id).first()
    return record.as_snapshot() if record is not None else fallback


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def _keep_lease(log: AutomationLog, rule: AutomationRule) -> bool:
    """Before a step: renew the run's lease when less than an action's worst case is left (or half of it,
    for short leases). False when another worker holds the run now."""
    margin = min(45.0, ledger.lease_seconds() / 2)
    if log.lease_until is None or timezone.now() + dt.timedelta(seconds=margin) < log.lease_until:
        return True
    return bool(ledger.renew([(log, rule)]))


def _execute_steps(log: AutomationLog, rule: AutomationRule, steps: list[dict]) -> AutomationLog:
    started = time.monotonic()
    states = log.step_states or new_step_states(steps)
    results: list = [state.get("result") for state in states]
    index = min(log.current_step or 0, len(steps))
    record = log.record_snapshot or {}
    if index > 0:
        record = _current_record(log, record)
    while index < len(steps):
        step, state = steps[index], states[index]
        now = timezone.now()
        if step.get("type") == delay.name:
            resume_at = (state.get("result") or {}).get("resume_at")
            resume = (
                dt.datetime.fromisoformat(resume_at)
                if resume_at
                else delay.resume_at(step.get("config") or {}, record, now, rule.entity)
            )
            if resume > now:
                state.update(
                    status="waiting", started_at=state["started_at"] or _iso(now), result={"resume_at": _iso(resume)}
                )
                finish(
                    log,
                    status=RunStatus.PENDING,
                    current_step=index,
                    step_states=states,
                    attempts=0,
                    next_attempt_at=resume,
                    lease_until=None,
                    executed_at=now,
                    duration_ms=int((time.monotonic() - started) * 1000),
                    result={"waiting_until": _iso(resume), "step": index},
                )
                _report(
                    log, rule, RunStatus.PENDING, log.duration_ms, f"waiting until {_iso(resume)} (step {index + 1})"
                )
                return log
            state.update(status="success", started_at=state["started_at"] or _iso(now), finished_at=_iso(now))
            state["result"] = {"resume_at": _iso(resume)}
            results[index] = state["result"]
            index += 1
            continue
        if not _keep_lease(log, rule):
            return log  # another worker holds the run now
        state.update(
            status="running", attempts=(state.get("attempts") or 0) + 1, started_at=state["started_at"] or _iso(now)
        )
        ctx = context_for(log, rule, step=step, index=index, results=results[:index], record=record)
        ctx.attempt = state["attempts"]
        result, error = _run_step(ctx, step, rule, log)
        now = timezone.now()
        duration_ms = int((time.monotonic() - started) * 1000)
        if error is not None:
            return _step_failed(log, rule, states, index, error, now, duration_ms)
        state.update(status="success", finished_at=_iso(now), result=result, error="")
        results[index] = result
        record = step_type(step["type"]).record_after(record, result)  # e.g. the field update_field set
        index += 1
        if index < len(steps):
            # The step is done: record it before going on, so a crash never runs it again.
            if not finish(log, current_step=index, step_states=states, attempts=1, result=result):
                return log
            log.status = RunStatus.RUNNING
    now = timezone.now()
    duration_ms = int((time.monotonic() - started) * 1000)
    if (
        finish(
            log,
            status=RunStatus.SUCCESS,
            current_step=len(steps),
            step_states=states,
            result=results[-1] if results else None,
            error="",
            finished_at=now,
            executed_at=now,
            duration_ms=duration_ms,
            lease_until=None,
            next_attempt_at=None,
        )
        and rule.consecutive_failures
        and not log.is_test
    ):
        health.record_success(rule)
    _report(log, rule, RunStatus.SUCCESS, duration_ms)
    return log


def _step_failed(log, rule, states, index, error: ActionError, now, duration_ms) -> AutomationLog:
    state = states[index]
    state.update(result=error.result, error=error.message)
    delay_seconds = _retry_or_fail(log, error)
    if delay_seconds is not None:
        state["status"] = "pending"
    else:
        state.update(status="error", finished_at=_iso(now))
        for later in states[index + 1 :]:
            later["status"] = "skipped"
    return _failed(
        log,
        rule,
        error,
        delay_seconds,
        now,
        duration_ms,
        retry_message=f"Step {index + 1}, attempt {state['attempts']} failed: {error.message}",
        message=f"Step {index + 1} ({state['type']}) failed: {error.message}",
        current_step=index,
        step_states=states,
    )


# --------------------------------------------------------------------------- dry run


def preview_steps(log: AutomationLog, rule: AutomationRule) -> list[dict]:
    """What each step would do, in order, without side effects: rendered emails and requests, field
    changes (seen by the later steps), task previews, and when each delay would resume."""
    record = dict(log.record_snapshot or {})
    at = timezone.now()
    results: list = []
    out: list[dict] = []
    for index, step in enumerate(rule.step_list):
        error = None
        try:
            kind = step_type(step.get("type", ""))
        except KeyError:
            preview, error = None, f"Unknown step type '{step.get('type')}'."
        else:
            if kind is delay:
                resume = max(at, delay.resume_at(step.get("config") or {}, record, at, rule.entity))
                preview = {"resume_at": _iso(resume), "waits_seconds": int((resume - at).total_seconds())}
                at = resume
            else:
                ctx = context_for(log, rule, dry_run=True, step=step, index=index, results=results, record=record)
                try:
                    preview = kind.preview(ctx)
                except ActionError as exc:
                    preview, error = exc.result, exc.message
                record = kind.record_after(record, preview)
        results.append(preview)
        out.append({"index": index, "type": step.get("type"), "preview": preview, "error": error})
    return out
