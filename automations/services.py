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
from . import executor, health, ledger, tasks
from .action_types import action_types
from .exceptions import ActionError, ConfigInvalid, RuleInvalid, RunNotRetryable, TestRecordInvalid
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
    "action_type",
    "action_config",
    "is_active",
    "max_runs_per_minute",
    "max_runs_per_hour",
)


def validate_rule_parts(
    *,
    entity: Entity,
    trigger_type: str,
    trigger_config: Any,
    action_type: str,
    action_config: Any,
    conditions: Any,
) -> dict[str, Any]:
    """Validate trigger, conditions and action through their registered types. Returns the cleaned
    parts or raises ``RuleInvalid`` keyed ``trigger_config.<key>``, ``action_config.<key>``, ..."""
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    if trigger_type not in trigger_types:
        errors["trigger_type"] = [
            f"Unknown trigger type '{trigger_type}'. Choose one of: {', '.join(trigger_types.names())}."
        ]
    else:
        try:
            cleaned["trigger_config"] = trigger_types.get(trigger_type).validate_config(
                trigger_config if trigger_config is not None else {}, entity=entity
            )
        except ConfigInvalid as exc:
            errors.update(exc.prefixed("trigger_config"))
    if action_type not in action_types:
        errors["action_type"] = [
            f"Unknown action type '{action_type}'. Choose one of: {', '.join(action_types.names())}."
        ]
    else:
        try:
            cleaned["action_config"] = action_types.get(action_type).validate_config(
                action_config if action_config is not None else {}, entity=entity
            )
        except ConfigInvalid as exc:
            errors.update(exc.prefixed("action_config"))
    try:
        cleaned["conditions"] = conditions_module.validate_conditions(conditions, entity=entity)
    except ConfigInvalid as exc:
        errors.update(exc.prefixed("conditions"))
    if errors:
        raise RuleInvalid(errors=errors)
    return cleaned


@transaction.atomic
def rule_create(*, workspace, actor=None, **fields) -> AutomationRule:
    """Create a rule after validating every part against its type and the entity."""
    entity: Entity = fields["entity"]
    if entity.workspace_id != workspace.pk:
        raise RuleInvalid(errors={"entity_id": ["Entity not found in this workspace."]})
    cleaned = validate_rule_parts(
        entity=entity,
        trigger_type=fields.get("trigger_type"),
        trigger_config=fields.get("trigger_config", {}),
        action_type=fields.get("action_type"),
        action_config=fields.get("action_config", {}),
        conditions=fields.get("conditions", {}),
    )
    rule = AutomationRule(workspace=workspace, created_by=actor)
    for key in RULE_FIELDS:
        if key in fields:
            setattr(rule, key, fields[key])
    for key, value in cleaned.items():
        setattr(rule, key, value)
    rule.save(force_insert=True)
    return rule


@transaction.atomic
def rule_update(*, rule: AutomationRule, actor=None, **changes) -> AutomationRule:
    """Partial update (the seed's PUT): parts not given keep their value; the result is revalidated
    as a whole, so a new trigger type is checked with the config it will run with."""
    entity = changes.get("entity", rule.entity)
    if entity.workspace_id != rule.workspace_id:
        raise RuleInvalid(errors={"entity_id": ["Entity not found in this workspace."]})
    same_action = changes.get("action_type", rule.action_type) == rule.action_type
    if "action_config" in changes and same_action and rule.action_type in action_types:
        # A client sends back the [redacted] values it was shown: they keep the stored secrets.
        changes["action_config"] = action_types.get(rule.action_type).keep_secrets(
            changes["action_config"], rule.action_config or {}
        )
    cleaned = validate_rule_parts(
        entity=entity,
        trigger_type=changes.get("trigger_type", rule.trigger_type),
        trigger_config=changes.get("trigger_config", rule.trigger_config),
        action_type=changes.get("action_type", rule.action_type),
        action_config=changes.get("action_config", rule.action_config),
        conditions=changes.get("conditions", rule.conditions),
    )
    for key in RULE_FIELDS:
        if key in changes:
            setattr(rule, key, changes[key])
    for key, value in cleaned.items():
        setattr(rule, key, value)
    if changes.get("is_active") is True:
        # Turning a rule back on gives it a clean slate.
        rule.consecutive_failures = 0
        rule.disabled_reason = ""
        rule.disabled_at = None
    rule.save()
    return rule


def rule_set_active(*, rule: AutomationRule, active: bool) -> AutomationRule:
    """Turn a rule on (revalidated, failure state cleared) or off."""
    return rule_update(rule=rule, is_active=active)


@transaction.atomic
def rule_delete(*, rule: AutomationRule, actor=None) -> None:
    """Delete a rule with its run log."""
    rule.delete()


@transaction.atomic
def rule_duplicate(*, rule: AutomationRule, actor=None) -> AutomationRule:
    """A copy of the rule (inactive, new signing secret, name suffixed "(copy)")."""
    return AutomationRule.objects.create(
        workspace_id=rule.workspace_id,
        entity_id=rule.entity_id,
        name=f"{rule.name} (copy)"[:255],
        description=rule.description,
        trigger_type=rule.trigger_type,
        trigger_config=rule.trigger_config,
        conditions=rule.conditions,
        action_type=rule.action_type,
        action_config=rule.action_config,
        is_active=False,
        max_runs_per_minute=rule.max_runs_per_minute,
        max_runs_per_hour=rule.max_runs_per_hour,
        created_by=actor,
    )


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
    action = action_types.get(rule.action_type)
    if dry_run:
        ctx = executor.context_for(log, rule, dry_run=True)
        try:
            preview = action.preview(ctx)
            error = None
        except ActionError as exc:
            preview, error = exc.result, exc.message
        return {
            "success": error is None,
            "dry_run": True,
            "action_type": rule.action_type,
            "preview": preview,
            "error": error,
            **report,
        }
    now = timezone.now()
    log.status = RunStatus.RUNNING
    log.attempts = 1
    log.started_at = now
    log.lease_until = now + dt.timedelta(seconds=ledger.lease_seconds())
    log.save(force_insert=True)
    executor.execute(log, rule)
    return {
        "success": log.status == RunStatus.SUCCESS,
        "dry_run": False,
        "action_type": rule.action_type,
        "result": log.result,
        "error": log.error or None,
        "log_id": str(log.pk),
        "duration_ms": log.duration_ms,
        **report,
    }


def log_retry(*, log: AutomationLog) -> AutomationLog:
    """Queue a failed (or skipped) run again with its stored event; its webhook-id stays the same."""
    if log.status not in (RunStatus.ERROR, RunStatus.SKIPPED):
        raise RunNotRetryable(f"Only failed or skipped runs can be retried (this one is {log.status}).")
    if log.is_test:
        raise RunNotRetryable("Test runs cannot be retried; run the test again.")
    if not AutomationRule.objects.filter(pk=log.automation_id, is_active=True).exists():
        raise RunNotRetryable("The rule is inactive; turn it on before retrying its runs.")
    now = timezone.now()
    updated = AutomationLog.objects.filter(pk=log.pk, status=log.status).update(
        status=RunStatus.PENDING, next_attempt_at=now, attempts=0, error="", finished_at=None, lease_until=None
    )
    if not updated:
        raise RunNotRetryable("The run changed meanwhile; reload it.")
    log.refresh_from_db()
    tasks.schedule([log])
    return log
