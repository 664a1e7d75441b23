"""Rule versions: every create and every change of a rule is a ``RuleVersion`` (who, when, which fields
changed, the whole rule as it was). A run records the version it started with and executes that version's
steps, so editing or restoring a rule never changes a run already made or waiting."""

from __future__ import annotations

from typing import Any

from .models import AutomationLog, AutomationRule, RuleVersion

# The fields a version keeps (everything an admin edits; health and secrets are not versioned).
SNAPSHOT_FIELDS = (
    "name",
    "description",
    "entity_id",
    "trigger_type",
    "trigger_config",
    "conditions",
    "steps",
    "is_active",
    "max_runs_per_minute",
    "max_runs_per_hour",
)


def snapshot_of(rule: AutomationRule) -> dict[str, Any]:
    snapshot = {name: getattr(rule, name) for name in SNAPSHOT_FIELDS}
    snapshot["entity_id"] = str(rule.entity_id)
    snapshot["steps"] = rule.step_list
    return snapshot


def changed_fields(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    if before is None:
        return []
    return [name for name in SNAPSHOT_FIELDS if before.get(name) != after.get(name)]


def record_version(rule: AutomationRule, *, actor=None, changes: list[str] | None = None) -> RuleVersion:
    """Store the rule as it now is under ``rule.version`` (the caller bumped it with the change)."""
    return RuleVersion.objects.create(
        rule=rule,
        version=rule.version,
        created_by=actor if getattr(actor, "pk", None) else None,
        changes=changes or [],
        snapshot=snapshot_of(rule),
    )


def steps_for(log: AutomationLog, rule: AutomationRule) -> list[dict]:
    """The steps a run executes: those of the version it started with (the rule's own when that is the
    current version, or when the run predates versions)."""
    if log.rule_version is None or log.rule_version == rule.version:
        return rule.step_list
    snapshot = (
        RuleVersion.objects.filter(rule_id=rule.pk, version=log.rule_version).values_list("snapshot", flat=True).first()
    )
    return (snapshot or {}).get("steps") or rule.step_list
