"""Writes for automation rules and runs: create/update with validation through the type registries,
turning rules off, test runs, manual retries. API, admin and the command all call these."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from workspaces.models import Entity

from . import conditions as conditions_module
from . import executor, health, ledger, rule_validation, schedules, selectors, tasks, versions
from .action_types import action_types
from .exceptions import RuleInvalid, RunNotRetryable, TestRecordInvalid
from .models import AutomationLog, AutomationRule, EventType, RunStatus
from .trigger_types import trigger_types

logger = logging.getLogger("automations")

RULE_FIELDS = (
    "name",
    "description",
    "entity",
    "trigger_type",
    "trigger_config",
    "conditions",
    "steps",
    "action_type",
    "action_config",
    "is_active",
    "max_runs_per_minute",
    "max_runs_per_hour",
)
# Validated as a whole by rule_validation (the rest are plain columns).
PARTS = ("trigger_type", "trigger_config", "conditions", "steps", "action_type", "action_config")


def validate_rule_parts(
    *, entity: Entity, trigger_type: str, trigger_config: Any, steps: Any, conditions: Any, single_action=False
):
    """Validate trigger, conditions and steps through their registered types (``rule_validation``)."""
    return rule_validation.validate_rule_parts(
        entity=entity,
        trigger_type=trigger_type,
        trigger_config=trigger_config,
        steps=steps,
        conditions=conditions,
        single_action=single_action,
    )


def _keep_secrets(steps: list | None, stored: list[dict]) -> list | None:
    """A client sends back the [redacted] values it was shown: they keep the stored secrets (per step, when
    the step at that place is of the same type)."""
    if not isinstance(steps, list):
        return steps
    kept = []
    for index, step in enumerate(steps):
        before = stored[index] if index < len(stored) else None
        if (
            isinstance(step, dict)
            and before
            and step.get("type") == before.get("type")
            and step["type"] in action_types
        ):
            step = {**step, "config": action_types.get(step["type"]).keep_secrets(step.get("config"), before["config"])}
        kept.append(step)
    return kept


def _after_change(rule: AutomationRule, *, actor, before: dict | None, was_active: bool) -> None:
    """A rule was created or changed: keep a version when anything changed, (re)arm a time-based rule's
    schedule, and cancel the runs waiting for a rule turned off."""
    after = versions.snapshot_of(rule)
    changes = versions.changed_fields(before, after)
    if before is not None and not changes:
        return
    if before is not None:
        rule.version += 1
        AutomationRule.objects.filter(pk=rule.pk).update(version=rule.version)
    versions.record_version(rule, actor=actor, changes=changes)
    time_fields = {"trigger_type", "trigger_config", "is_active", "entity_id", "conditions"}
    if before is None or time_fields & set(changes):
        schedules.rule_changed(rule)
    if was_active and not rule.is_active:
        ledger.cancel_waiting(rule, "Cancelled: the rule was turned off.")


@transaction.atomic
def rule_create(*, workspace, actor=None, **fields) -> AutomationRule:
    """Create a rule (version 1) after validating every part against its type and the entity."""
    entity: Entity = fields["entity"]
    if entity.workspace_id != workspace.pk:
        raise RuleInvalid(errors={"entity_id": ["Entity not found in this workspace."]})
    steps = rule_validation.steps_from_input(fields)
    cleaned = validate_rule_parts(
        entity=entity,
        trigger_type=fields.get("trigger_type"),
        trigger_config=fields.get("trigger_config", {}),
        steps=steps if steps is not None else [],
        conditions=fields.get("conditions", {}),
        single_action="steps" not in fields,
    )
    rule = AutomationRule(workspace=workspace, created_by=actor, version=1)
    for key in RULE_FIELDS:
        if key in fields and key not in PARTS:
            setattr(rule, key, fields[key])
    for key, value in cleaned.items():
        setattr(rule, key, value)
    rule.save(force_insert=True)
    _after_change(rule, actor=actor, before=None, was_active=False)
    return rule


@transaction.atomic
def rule_update(*, rule: AutomationRule, actor=None, **changes) -> AutomationRule:
    """Partial update: parts not given keep their value; the result is revalidated as a whole, so a new
    trigger type is checked with the config it will run with. Anything changed makes a new version."""
    entity = changes.get("entity", rule.entity)
    if entity.workspace_id != rule.workspace_id:
        raise RuleInvalid(errors={"entity_id": ["Entity not found in this workspace."]})
    # The rule as stored (the caller's instance may hold edits already, e.g. an admin form's): what the new
    # version is compared with, locked so that two changes make two versions, one after the other.
    stored = AutomationRule.objects.select_for_update().get(pk=rule.pk)
    before = versions.snapshot_of(stored)
    was_active = stored.is_active
    rule.version = stored.version
    steps = rule_validation.steps_from_input(changes, current=stored.step_list)
    steps = _keep_secrets(steps, stored.step_list) if steps is not None else stored.step_list
    cleaned = validate_rule_parts(
        entity=entity,
        trigger_type=changes.get("trigger_type", rule.trigger_type),
        trigger_config=changes.get("trigger_config", rule.trigger_config),
        steps=steps,
        conditions=changes.get("conditions", rule.conditions),
        single_action="steps" not in changes,
    )
    for key in RULE_FIELDS:
        if key in changes and key not in PARTS:
            setattr(rule, key, changes[key])
    for key, value in cleaned.items():
        setattr(rule, key, value)
    if changes.get("is_active") is True and not was_active:
        # Turning a rule back on gives it a clean slate.
        rule.consecutive_failures = 0
        rule.disabled_reason = ""
        rule.disabled_at = None
    rule.save()
    _after_change(rule, actor=actor, before=before, was_active=was_active)
    return rule


@transaction.atomic
def rule_restore(*, rule: AutomationRule, version: int, actor=None) -> AutomationRule:
    """Make a new version with the content of ``version`` (runs already made or waiting keep theirs)."""
    snapshot = selectors.rule_version(rule=rule, version=version).snapshot
    fields = {key: value for key, value in snapshot.items() if key in RULE_FIELDS}
    fields["entity"] = selectors.entity_of_workspace(rule.workspace_id, snapshot["entity_id"]) or rule.entity
    return rule_update(rule=rule, actor=actor, **fields)


def rule_set_active(*, rule: AutomationRule, active: bool) -> AutomationRule:
    """Turn a rule on (revalidated, failure state cleared) or off."""
    return rule_update(rule=rule, is_active=active)


@transaction.atomic
def rule_delete(*, rule: AutomationRule, actor=None) -> None:
    """Delete a rule with its run log."""
    rule.delete()


@transaction.atomic
def rule_duplicate(*, rule: AutomationRule, actor=None) -> AutomationRule:
    """A copy of the rule (inactive, version 1, new signing secret, name suffixed "(copy)")."""
    copy = AutomationRule.objects.create(
        workspace_id=rule.workspace_id,
        entity_id=rule.entity_id,
        name=f"{rule.name} (copy)"[:255],
        description=rule.description,
        trigger_type=rule.trigger_type,
        trigger_config=rule.trigger_config,
        conditions=rule.conditions,
        steps=rule.step_list,
        action_type=rule.action_type,
        action_config=rule.action_config,
        is_active=False,
        version=1,
        max_runs_per_minute=rule.max_runs_per_minute,
        max_runs_per_hour=rule.max_runs_per_hour,
        created_by=actor,
    )
    _after_change(copy, actor=actor, before=None, was_active=False)
    return copy


def rule_disable(*, rule: AutomationRule, reason: str) -> None:
    """Turn a rule off with the reason, and tell the workspace's owners and admins by email."""
    health.disable(rule=rule, reason=reason)


# --------------------------------------------------------------------------- test runs and retries


def _simulated_event_type(rule: AutomationRule) -> str:
    trigger = trigger_types.get(rule.trigger_type) if rule.trigger_type in trigger_types else None
    return trigger.event_types[0] if trigger and trigger.event_types else EventType.UPDATED


def _match_report(rule: AutomationRule, record) -> dict[str, Any]:
    """Would this record pass the trigger and the conditions? (The trigger type says how it judges a
    record without previous data.)"""
    data = record.data or {}
    if rule.trigger_type in trigger_types:
        trigger_match, note = trigger_types.get(rule.trigger_type).test_match(
            data, rule.trigger_config or {}, entity=rule.entity
        )
    else:
        trigger_match, note = False, f"Unknown trigger type '{rule.trigger_type}'."
    return {
        "trigger_matches": trigger_match,
        "trigger_note": note,
        "conditions_match": conditions_module.evaluate(rule.conditions, data, None, entity=rule.entity),
    }


def rule_test_run(*, rule: AutomationRule, record, dry_run: bool = False, actor=None) -> dict[str, Any]:
    """Run the rule's action now against ``record`` (logged with ``is_test``), or with ``dry_run``
    return what it would do without sending, writing or logging anything."""
    if record.entity_id != rule.entity_id:
        raise TestRecordInvalid(errors={"record_id": ["The record does not belong to this rule's entity."]})
    report = _match_report(rule, record)
    log = AutomationLog(
        id=uuid.uuid4(),
        automation=rule,
        workspace_id=rule.workspace_id,
        entity_id=rule.entity_id,
        record_id=record.id,
        record_snapshot=record.as_snapshot(),
        event_type=_simulated_event_type(rule),
        trigger_type=rule.trigger_type,
        action_type=rule.action_type,
        is_test=True,
        actor_id=getattr(actor, "pk", None),
    )
    if dry_run:
        steps = executor.preview_steps(log, rule)
        errors = [step["error"] for step in steps if step["error"]]
        trigger = trigger_types.get(rule.trigger_type) if rule.trigger_type in trigger_types else None
        return {
            "success": not errors,
            "dry_run": True,
            "action_type": rule.action_type,
            "preview": steps[0]["preview"],
            "steps": steps,
            "error": errors[0] if errors else None,
            **({"next_occurrences": trigger.next_times(rule, record)} if trigger and trigger.time_based else {}),
            **report,
        }
    now = timezone.now()
    log.status = RunStatus.RUNNING
    log.attempts = 1
    log.started_at = now
    log.lease_until = now + dt.timedelta(seconds=ledger.lease_seconds())
    log.rule_version = rule.version
    log.save(force_insert=True)
    executor.execute(log, rule)
    return {
        "success": log.status in (RunStatus.SUCCESS, RunStatus.PENDING),
        "dry_run": False,
        "action_type": rule.action_type,
        "status": log.status,
        "result": log.result,
        "steps": log.step_ledger,
        "error": log.error or None,
        "log_id": str(log.pk),
        "duration_ms": log.duration_ms,
        **report,
    }


MAX_BULK_REPLAY = 5000
REPLAYABLE = (RunStatus.ERROR, RunStatus.SKIPPED)
FINISHED = (RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.SKIPPED)


def _replay_state(log: AutomationLog, *, from_step: int | None, actor, now) -> None:
    """Set ``log`` (in memory) to wait again, due now: from its failed step, or from ``from_step``; the
    steps before keep their results (they are not run again). Raises ``RunNotRetryable``."""
    if log.is_test:
        raise RunNotRetryable("Test runs cannot be replayed; run the test again.")
    if log.record_id is None and not log.record_snapshot:
        raise RunNotRetryable("This run has no record to run on (a skipped occurrence).")
    if from_step is None and log.status not in REPLAYABLE:
        raise RunNotRetryable(f"Only failed or skipped runs can be retried (this one is {log.status}).")
    if from_step is not None and log.status not in FINISHED:
        raise RunNotRetryable(f"Only a finished run can be replayed (this one is {log.status}).")
    count = len(log.step_ledger) if log.step_states else len(versions.steps_for(log, log.automation))
    start = log.current_step if from_step is None else from_step
    if from_step is not None and not 0 <= from_step < count:
        raise RunNotRetryable(f"from_step must be between 0 and {count - 1} (the run has {count} steps).")
    start = min(start or 0, count - 1)
    if log.step_states:
        for state in log.step_states[start:]:
            state.update(status="pending", attempts=0, started_at=None, finished_at=None, result=None, error="")
    log.current_step = start
    log.status, log.next_attempt_at, log.attempts = RunStatus.PENDING, now, 0
    log.error, log.finished_at, log.lease_until, log.worker_id = "", None, None, ""
    log.replays = [*(log.replays or []), {"at": now.isoformat(), "by": getattr(actor, "pk", None), "from_step": start}]


REPLAY_FIELDS = (
    "status", "next_attempt_at", "attempts", "error", "finished_at", "lease_until", "worker_id",
    "current_step", "step_states", "replays",
)  # fmt: skip


@transaction.atomic
def log_retry(*, log: AutomationLog, from_step: int | None = None, actor=None) -> AutomationLog:
    """Run a failed (or skipped) run again from the step that failed, or a finished run from ``from_step``.
    The steps before are not run again; webhook-ids stay the same (per run and step). Logged with who
    asked for it."""
    if not AutomationRule.objects.filter(pk=log.automation_id, is_active=True).exists():
        raise RunNotRetryable("The rule is inactive; turn it on before retrying its runs.")
    status_before = log.status
    _replay_state(log, from_step=from_step, actor=actor, now=timezone.now())
    updated = AutomationLog.objects.filter(pk=log.pk, status=status_before).update(
        **{name: getattr(log, name) for name in REPLAY_FIELDS}
    )
    if not updated:
        raise RunNotRetryable("The run changed meanwhile; reload it.")
    transaction.on_commit(lambda: tasks.schedule([log]))
    return log


@transaction.atomic
def logs_retry(*, rule: AutomationRule, status: str, since=None, until=None, actor=None) -> int:
    """Replay up to 5,000 of the rule's runs with ``status`` (error or skipped) created in [since, until),
    oldest first, each from the step that failed. Returns how many were queued."""
    if status not in REPLAYABLE:
        raise RunNotRetryable("Only failed or skipped runs can be replayed in bulk (status error or skipped).")
    if not rule.is_active:
        raise RunNotRetryable("The rule is inactive; turn it on before retrying its runs.")
    now = timezone.now()
    candidates = selectors.runs_to_replay(rule=rule, status=status, since=since, until=until, limit=MAX_BULK_REPLAY)
    queued = []
    for log in candidates:
        log.automation = rule
        try:
            _replay_state(log, from_step=None, actor=actor, now=now)
        except RunNotRetryable:
            continue
        queued.append(log)
    AutomationLog.objects.bulk_update(queued, REPLAY_FIELDS, batch_size=500)
    transaction.on_commit(lambda: tasks.schedule(queued))
    return len(queued)
