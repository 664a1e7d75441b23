"""Rule health: failures in a row, turning a rule off, and telling the workspace's owners and admins.

Any success resets the count. After ``AUTOMATIONS_MAX_CONSECUTIVE_FAILURES`` failed runs in a row (or at
once when the receiver answers 410 Gone) the rule turns itself off, records why, and its workspace's
owners and admins get an email."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import F
from django.utils import timezone

from workspaces.selectors import manager_emails

from . import telemetry
from .exceptions import ActionError
from .ledger import cancel_waiting
from .models import AutomationRule

logger = logging.getLogger("automations")


def record_success(rule: AutomationRule) -> None:
    """A run succeeded: the rule starts counting failures from zero again."""
    if rule.consecutive_failures:
        AutomationRule.objects.filter(pk=rule.pk).update(consecutive_failures=0)
        rule.consecutive_failures = 0


def record_failure(rule: AutomationRule, error: ActionError) -> None:
    """Count a failed run; turn the rule off after too many in a row (or at once when told to)."""
    AutomationRule.objects.filter(pk=rule.pk).update(consecutive_failures=F("consecutive_failures") + 1)
    rule.refresh_from_db(fields=["consecutive_failures", "is_active"])
    limit = settings.AUTOMATIONS_MAX_CONSECUTIVE_FAILURES
    if error.disable_rule:
        reason = f"Turned off: the receiver answered that it is gone ({error.message})."
    elif rule.consecutive_failures >= limit:
        reason = f"Turned off after {rule.consecutive_failures} failed runs in a row. Last error: {error.message}"
    else:
        return
    disable(rule=rule, reason=reason)


def disable(*, rule: AutomationRule, reason: str) -> bool:
    """Turn a rule off with the reason and email the workspace's owners and admins. False when it was
    already off (nobody is emailed twice)."""
    now = timezone.now()
    changed = AutomationRule.objects.filter(pk=rule.pk, is_active=True).update(
        is_active=False, disabled_reason=reason, disabled_at=now
    )
    rule.is_active, rule.disabled_reason, rule.disabled_at = False, reason, now
    if not changed:
        return False
    cancel_waiting(rule, f"Cancelled: the rule was turned off. {reason}")
    logger.warning("rule %s (%s) turned off: %s", rule.pk, rule.name, reason)
    telemetry.record_auto_disable(rule)
    _email_admins(rule, reason)
    return True


def _email_admins(rule: AutomationRule, reason: str) -> None:
    recipients = manager_emails(rule.workspace_id)
    if not recipients:
        return
    body = (
        f'The automation "{rule.name}" (id {rule.pk}) was turned off.\n\n'
        f"Reason: {reason}\n\n"
        "Fix the cause, then turn it back on (is_active = true) in the admin or through the API. "
        "Its run log shows each failed run with the error."
    )
    try:
        EmailMessage(
            subject=f'Automation "{rule.name}" was turned off'.replace("\n", " ")[:200],
            body=body,
            from_email=settings.FROM_EMAIL,
            to=recipients,
        ).send()
    except Exception:  # the rule is off either way; a mail outage must not undo that
        logger.exception("could not email owners about rule %s", rule.pk)
