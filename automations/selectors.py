"""Reads of rules and their runs, shared by the API, the admin and the ``test_automation`` command."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from workspaces.models import Entity

from .action_types import action_types
from .exceptions import RuleQueryInvalid, RuleVersionNotFound, RunNotFound
from .models import AutomationLog, AutomationRule, RuleVersion, RunStatus
from .trigger_types import trigger_types

SUCCESS_RATE_WINDOW = 100


def rule_by_id(rule_id) -> AutomationRule | None:
    """Any workspace's rule by id, with entity and workspace (for operators' tools), or None."""
    try:
        return AutomationRule.objects.select_related("entity", "workspace").filter(pk=rule_id).first()
    except (ValueError, DjangoValidationError):
        return None


def rules_of_workspace(workspace) -> QuerySet[AutomationRule]:
    """The workspace's rules with their entities, newest first."""
    return AutomationRule.objects.filter(workspace=workspace).select_related("entity")


def filter_rules(
    rules: QuerySet[AutomationRule],
    *,
    entity_id=None,
    is_active: bool | None = None,
    trigger_type: str | None = None,
    action_type: str | None = None,
    search: str | None = None,
) -> QuerySet[AutomationRule]:
    """``rules`` narrowed by entity, state, trigger and action type and a case-insensitive name search;
    a type that is not registered raises ``RuleQueryInvalid``."""
    errors = {}
    for key, value, registry in (
        ("trigger_type", trigger_type, trigger_types),
        ("action_type", action_type, action_types),
    ):
        if value is not None and value not in registry:
            errors[key] = [f"Unknown {key.replace('_', ' ')}. Choose one of: {', '.join(registry.names())}."]
    if errors:
        raise RuleQueryInvalid(errors=errors)
    if entity_id is not None:
        rules = rules.filter(entity_id=entity_id)
    if trigger_type is not None:
        rules = rules.filter(trigger_type=trigger_type)
    if action_type is not None:
        rules = rules.filter(action_type=action_type)
    if is_active is not None:
        rules = rules.filter(is_active=is_active)
    if search:
        rules = rules.filter(name__icontains=search)
    return rules


def with_last_run_status(rules: QuerySet[AutomationRule]) -> QuerySet[AutomationRule]:
    """``rules`` with ``last_run_status`` annotated (the newest run's status; one query for the list)."""
    last = AutomationLog.objects.filter(automation=OuterRef("pk")).order_by("-created_at", "-id")
    return rules.annotate(last_run_status=Subquery(last.values("status")[:1]))


def rule_runs(
    rule: AutomationRule,
    *,
    status: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    is_test: bool | None = None,
) -> QuerySet[AutomationLog]:
    """The rule's runs, newest first, narrowed by status, creation time (``since`` inclusive, ``until``
    exclusive) and test runs or not."""
    runs = AutomationLog.objects.filter(automation=rule).order_by("-created_at", "-id")
    if status:
        runs = runs.filter(status=status)
    if since:
        runs = runs.filter(created_at__gte=since)
    if until:
        runs = runs.filter(created_at__lt=until)
    if is_test is not None:
        runs = runs.filter(is_test=is_test)
    return runs


def run_of_rule(rule: AutomationRule, run_id) -> AutomationLog:
    """One run of ``rule``; another rule's run (or a malformed id) raises ``RunNotFound``."""
    try:
        return AutomationLog.objects.get(pk=run_id, automation=rule)
    except (AutomationLog.DoesNotExist, DjangoValidationError, ValueError):
        raise RunNotFound() from None


def recent_runs(rule: AutomationRule, limit: int = 10) -> list[AutomationLog]:
    return list(rule_runs(rule)[:limit])


def success_rate(rule: AutomationRule, window: int = SUCCESS_RATE_WINDOW) -> tuple[int, int]:
    """(succeeded, finished) among the rule's last ``window`` finished runs, test runs left out."""
    finished = rule_runs(rule, is_test=False).filter(status__in=[RunStatus.SUCCESS, RunStatus.ERROR])
    counts = AutomationLog.objects.filter(pk__in=finished[:window].values("pk")).aggregate(
        total=Count("pk"), ok=Count("pk", filter=Q(status=RunStatus.SUCCESS))
    )
    return counts["ok"], counts["total"]


def rule_names(rule_ids: Iterable) -> dict[str, str]:
    """``{rule_id: name}`` for the given ids (as strings) that still exist, in one query."""
    ids = set()
    for rule_id in rule_ids:
        try:
            ids.add(uuid.UUID(str(rule_id)))
        except ValueError:
            continue
    if not ids:
        return {}
    return {str(pk): name for pk, name in AutomationRule.objects.filter(pk__in=ids).values_list("pk", "name")}


# --------------------------------------------------------------------------- versions


def rule_versions(rule: AutomationRule) -> QuerySet[RuleVersion]:
    """The rule's versions, newest first, with who made them."""
    return RuleVersion.objects.filter(rule=rule).select_related("created_by").order_by("-version")


def rule_version(*, rule: AutomationRule, version) -> RuleVersion:
    """One version of the rule, or ``RuleVersionNotFound``."""
    try:
        return RuleVersion.objects.select_related("created_by").get(rule=rule, version=int(version))
    except (RuleVersion.DoesNotExist, ValueError, TypeError):
        raise RuleVersionNotFound(f"Version {version} of this rule does not exist.") from None


def entity_of_workspace(workspace_id, entity_id) -> Entity | None:
    return Entity.objects.filter(workspace_id=workspace_id, pk=entity_id).first()


def runs_to_replay(*, rule: AutomationRule, status: str, since=None, until=None, limit: int) -> list[AutomationLog]:
    """The rule's non-test runs with ``status`` created in [since, until), oldest first, at most ``limit``."""
    runs = AutomationLog.objects.filter(automation=rule, status=status, is_test=False)
    if since is not None:
        runs = runs.filter(created_at__gte=since)
    if until is not None:
        runs = runs.filter(created_at__lt=until)
    return list(runs.order_by("created_at", "id")[:limit])
