"""Matching: record events in, runs out. For each event, the active rules of its entity whose trigger and
conditions match get one run each (``AutomationLog``), logged in the same transaction that marks the event
processed. No action executes here."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import conditions, rule_cache, sql
from .heartbeats import current as registration
from .ledger import Run, new_lease
from .models import AutomationEvent, AutomationLog, AutomationRule, RunStatus
from .throttle import Throttle
from .trigger_types import Event, trigger_types

logger = logging.getLogger("automations")

RUN_ID_NAMESPACE = uuid.UUID("0b6f3c1e-5a8e-4d5e-9a43-6f1d2f4b7c10")


def run_id_for(event_id, rule_id) -> uuid.UUID:
    """The run of ``rule`` for ``event`` always gets the same id (so the same ``webhook-id``): a run
    re-created after a lost commit is the same delivery, not a new one."""
    return uuid.uuid5(RUN_ID_NAMESPACE, f"{event_id}/{rule_id}")


def is_own_change(rule: AutomationRule, event: AutomationEvent) -> bool:
    """A change made by this rule's run on this record never re-triggers the rule on that record."""
    rule_id, record_id = str(rule.id), str(event.record_id)
    return any(link.get("rule_id") == rule_id and link.get("record_id") == record_id for link in event.chain or [])


def runs_for(events: list[AutomationEvent], now: dt.datetime) -> tuple[list[AutomationLog], list[Run]]:
    """One run per (event, matching active rule): returns every run to log, and those to execute now
    (claimed by this worker). Throttled runs wait (``pending`` with their slot), runs of a chain that
    reached ``AUTOMATIONS_MAX_CHAIN_DEPTH`` are logged ``skipped``."""
    rules_by_entity = rule_cache.cache.rules_by_entity(events)
    max_depth = settings.AUTOMATIONS_MAX_CHAIN_DEPTH
    lease = new_lease(now)
    throttle = Throttle(now)
    logs: list[AutomationLog] = []
    to_run: list[Run] = []
    for event in events:
        data = (event.record or {}).get("data") or {}
        candidate = Event(event.event_type, data, event.old_data)
        for rule in rules_by_entity.get(str(event.entity_id), []):
            if rule.trigger_type not in trigger_types:
                logger.error("rule %s has unknown trigger type %r", rule.id, rule.trigger_type)
                continue
            trigger = trigger_types.get(rule.trigger_type)
            if event.event_type not in trigger.event_types:
                continue
            trigger.on_event(rule, event, now)  # e.g. a date_reached rule moves the record's due time
            if is_own_change(rule, event):
                continue
            if not trigger.matches(
                candidate, rule.trigger_config or {}, entity=rule.entity, conditions=rule.conditions
            ):
                continue
            if not conditions.evaluate(rule.conditions, data, event.old_data, entity=rule.entity):
                continue
            log = AutomationLog(
                id=run_id_for(event.id, rule.id),
                automation=rule,
                event=event,
                workspace_id=event.workspace_id,
                entity_id=event.entity_id,
                record_id=event.record_id,
                record_snapshot=event.record,
                old_data=event.old_data,
                event_type=event.event_type,
                trigger_type=rule.trigger_type,
                action_type=rule.action_type,
                rule_version=rule.version,
                chain=event.chain,
                chain_depth=event.chain_depth,
                batch_id=event.batch_id,
                actor_id=event.actor_id,
            )
            if event.chain_depth >= max_depth:
                log.status = RunStatus.SKIPPED
                log.error = (
                    f"Skipped: chain of automations reached AUTOMATIONS_MAX_CHAIN_DEPTH ({max_depth}); "
                    f"caused by rules {', '.join(link['rule_id'] for link in event.chain)}."
                )
                log.finished_at = log.executed_at = now
            elif (wait_until := throttle.next_slot(rule)) is not None:
                log.status = RunStatus.PENDING
                log.next_attempt_at = wait_until
                log.result = {"throttled": True, "waiting_until": wait_until.isoformat()}
            else:
                log.status = RunStatus.RUNNING
                log.attempts = 1
                log.started_at = now
                log.lease_until = lease
                log.worker_id = registration.worker_id
                to_run.append((log, rule))
            logs.append(log)
    return logs, to_run


@dataclass
class Matched:
    """What one matching transaction did: the events it took, every run it logged, the runs to execute now
    (claimed by this worker)."""

    events: int = 0
    logs: list[AutomationLog] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)


def take_and_match(
    *, ids: Sequence | None = None, limit: int = 50, created_before: dt.datetime | None = None
) -> Matched:
    """In one transaction: take up to ``limit`` waiting events (only ``ids`` when given; only those created
    before ``created_before`` when given; row locks make other workers skip them), log their runs, mark
    them processed. A worker dying before the commit leaves the events waiting, untouched."""
    now = timezone.now()
    with transaction.atomic():
        events = sql.take_events(ids=ids, limit=limit, now=now, created_before=created_before)
        if not events:
            return Matched()
        logs, to_run = runs_for(events, now)
        sql.insert_runs(logs, now)
    return Matched(events=len(events), logs=logs, runs=to_run)
