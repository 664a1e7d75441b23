"""Time-based triggers: turning time into runs, exactly once and durably.

- ``scheduled`` (cron + IANA time zone): a ``RuleSchedule`` row holds the next occurrence. When it is due a
  worker claims the row (``SKIP LOCKED`` + a lease) and makes one run per record of the entity that matches
  the rule's conditions, a page of records per transaction, the position kept on the row, so a dead worker's
  occurrence is finished by another one.
- ``date_reached`` (a date or date-time field + an offset): a ``DueTime`` row per (rule, record) holds the
  next due time. Record events move or delete it (``record_changed``, from matching); creating, changing or
  turning on the rule recomputes them for the entity's existing records in the background, a page at a time.
  A due time that has come is deleted and its run logged in one transaction.

Runs are logged ``pending`` and due at once; the workers' normal claim of due runs executes them (any worker,
in batches). Their id is derived from (rule, record, due time), and a unique constraint on the run log
makes the same due time run once whatever the number of workers. Occurrences and due times missed by more
than ``AUTOMATIONS_SCHEDULE_CATCHUP_SECONDS`` (no worker was running) are logged ``skipped`` ("missed").
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from records.models import Record

from . import conditions, sql
from .models import AutomationLog, AutomationRule, DueTime, EventType, RuleSchedule, RunStatus
from .step_types import moment_of

logger = logging.getLogger("automations")

SCHEDULED = "scheduled"
DATE_REACHED = "date_reached"
TIME_TRIGGERS = (SCHEDULED, DATE_REACHED)
PAGE = 500
MISSED_LOGGED = 50  # missed occurrences logged one by one; more are summed up in one more log
RUN_ID_NAMESPACE = uuid.UUID("7d3f1f5e-2b8e-4c1b-9f0a-1c2d3e4f5a6b")


# --------------------------------------------------------------------------- time


def zone(name: str | None) -> ZoneInfo:
    """The IANA time zone (UTC when empty); ``ZoneInfoNotFoundError`` (a KeyError) when unknown."""
    return ZoneInfo(name or "UTC")


def check_timezone(name: str) -> str:
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"Unknown time zone '{name}' (use an IANA name such as Europe/Paris).") from None
    return name


def check_cron(expr: str) -> str:
    """A standard 5-field cron expression, or ValueError saying what is wrong."""
    parts = str(expr).split()
    if len(parts) != 5:
        raise ValueError(f"A cron expression has 5 fields (minute hour day month weekday); this one has {len(parts)}.")
    try:
        CronSim(" ".join(parts), dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    except CronSimError as exc:
        raise ValueError(f"Invalid cron expression: {exc}.") from None
    return " ".join(parts)


def occurrences_after(config: dict, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The next ``count`` occurrences strictly after ``after`` (aware, UTC), daylight-saving correct: a time
    that does not exist on a spring-forward day runs once at the next valid minute, a repeated one once."""
    tz = zone(config.get("timezone"))
    found: list[dt.datetime] = []
    for moment in CronSim(config["cron"], after.astimezone(tz)):
        found.append(moment.astimezone(dt.UTC))
        if len(found) >= count:
            break
    return found


def next_occurrence(config: dict, after: dt.datetime) -> dt.datetime:
    return occurrences_after(config, after, 1)[0]


def due_time(config: dict, data: dict, entity) -> dt.datetime | None:
    """``date_reached``: the record's date field plus the offset (a date is 00:00 in the rule's time zone)."""
    moment = moment_of(entity, config.get("field", ""), data, zone(config.get("timezone")))
    if moment is None:
        return None
    return moment + dt.timedelta(seconds=int(config.get("offset_seconds") or 0))


def next_times(rule: AutomationRule, record=None, *, count: int = 5, now: dt.datetime | None = None) -> list[str]:
    """For a dry run: the next ``count`` occurrences of a scheduled rule, or the record's due time."""
    now = now or timezone.now()
    config = rule.trigger_config or {}
    if rule.trigger_type == SCHEDULED:
        return [moment.isoformat() for moment in occurrences_after(config, now, count)]
    if rule.trigger_type == DATE_REACHED and record is not None:
        due = due_time(config, record.data or {}, rule.entity)
        return [due.isoformat()] if due is not None else []
    return []


# --------------------------------------------------------------------------- rule lifecycle (services)


def rule_changed(rule: AutomationRule) -> None:
    """A time-based rule was created, changed, turned on or off: (re)arm its schedule in the background.
    A due time or occurrence already past at this moment does not fire."""
    if rule.trigger_type not in TIME_TRIGGERS or not rule.is_active:
        RuleSchedule.objects.filter(rule=rule).delete()
        DueTime.objects.filter(rule=rule).delete()
        return
    now = timezone.now()
    if rule.trigger_type == SCHEDULED:
        DueTime.objects.filter(rule=rule).delete()
        fields = {"next_fire_at": next_occurrence(rule.trigger_config, now), "rebuilding": False}
    else:
        DueTime.objects.filter(rule=rule).delete()
        fields = {"next_fire_at": None, "rebuilding": True}
    RuleSchedule.objects.update_or_create(rule=rule, defaults={**fields, "firing_at": None, "cursor": None})


# --------------------------------------------------------------------------- record events (matching)


def record_changed(rule: AutomationRule, event, now: dt.datetime) -> None:
    """``date_reached``: a record was written or deleted: move, add or drop its due time. The due time is
    computed from the record as it is now, not from the event's copy: events of one batch may be matched
    in another order than they were written, and the last write must win."""
    data = Record.objects.filter(pk=event.record_id).values_list("data", flat=True).first()
    if event.event_type == EventType.DELETED or data is None:
        DueTime.objects.filter(rule=rule, record_id=event.record_id).delete()
        return
    due = due_time(rule.trigger_config or {}, data or {}, rule.entity)
    if due is None or due <= now:
        DueTime.objects.filter(rule=rule, record_id=event.record_id).delete()
        return
    DueTime.objects.update_or_create(rule=rule, record_id=event.record_id, defaults={"due_at": due})


# --------------------------------------------------------------------------- runs for due times


def run_id_for(rule_id, record_id, due_at: dt.datetime) -> uuid.UUID:
    return uuid.uuid5(RUN_ID_NAMESPACE, f"{rule_id}/{record_id}/{due_at.astimezone(dt.UTC).isoformat()}")


def _run(rule: AutomationRule, record: Record | None, due_at: dt.datetime, now: dt.datetime, **state) -> AutomationLog:
    snapshot = record.as_snapshot() if record is not None else {}
    log = AutomationLog(
        id=run_id_for(rule.pk, record.pk if record is not None else None, due_at),
        automation=rule,
        workspace_id=rule.workspace_id,
        entity_id=rule.entity_id,
        record_id=record.pk if record is not None else None,
        record_snapshot=snapshot,
        event_type=EventType.TIME,
        trigger_type=rule.trigger_type,
        action_type=rule.action_type,
        rule_version=rule.version,
        due_at=due_at,
        status=RunStatus.PENDING,
        next_attempt_at=now,
    )
    for key, value in state.items():
        setattr(log, key, value)
    return log


def _missed(rule, record, due_at, now, why: str) -> AutomationLog:
    return _run(
        rule, record, due_at, now, status=RunStatus.SKIPPED, next_attempt_at=None, finished_at=now, executed_at=now,
        error=f"Skipped (missed): {why}",
    )  # fmt: skip


def _catchup() -> dt.timedelta:
    return dt.timedelta(seconds=settings.AUTOMATIONS_SCHEDULE_CATCHUP_SECONDS)


def fire_due_times(*, limit: int = PAGE) -> list[AutomationLog]:
    """Log a run for each due time that has come (in one transaction with taking them): pending, due at once;
    or ``skipped`` when it was missed by more than the catch-up window."""
    now = timezone.now()
    with transaction.atomic():
        due = sql.take_due_times(limit=limit, now=now)
        if not due:
            return []
        rules = AutomationRule.objects.select_related("entity").in_bulk({d.rule_id for d in due})
        records = Record.objects.in_bulk({d.record_id for d in due})
        logs = []
        for item in due:
            rule, record = rules.get(item.rule_id), records.get(item.record_id)
            if rule is None or record is None or not rule.is_active:
                continue
            if item.due_at < now - _catchup():
                logs.append(
                    _missed(rule, record, item.due_at, now, f"due at {item.due_at.isoformat()}; no worker ran.")
                )
            else:
                logs.append(_run(rule, record, item.due_at, now))
        AutomationLog.objects.bulk_create(logs, ignore_conflicts=True)
    return [log for log in logs if log.status == RunStatus.PENDING]


def _start_occurrence(schedule: RuleSchedule, now: dt.datetime) -> None:
    """Take the due occurrence: those missed by more than the catch-up window are logged ``skipped``; the
    first one within it is fired (the next ones, if due too, on the following passes)."""
    rule, config = schedule.rule, schedule.rule.trigger_config or {}
    occurrence = schedule.next_fire_at
    missed: list[dt.datetime] = []
    while occurrence <= now and occurrence < now - _catchup() and len(missed) < 100_000:
        missed.append(occurrence)
        occurrence = next_occurrence(config, occurrence)
    if missed:
        logs = [_missed(rule, None, moment, now, "no worker ran at that time.") for moment in missed[:MISSED_LOGGED]]
        if len(missed) > MISSED_LOGGED:
            logs[-1].error += f" ({len(missed) - MISSED_LOGGED + 1} occurrences up to {missed[-1].isoformat()})"
        AutomationLog.objects.bulk_create(logs, ignore_conflicts=True)
    if occurrence <= now:
        schedule.firing_at, schedule.cursor = occurrence, None
        schedule.next_fire_at = next_occurrence(config, occurrence)
    else:
        schedule.firing_at, schedule.next_fire_at = None, occurrence


def _matching_records(rule: AutomationRule, after_id, limit: int) -> tuple[list[Record], object]:
    """The records of the next page (by id) that match the rule's conditions, and where the page ended
    (None when it was the last one)."""
    after = {"id__gt": after_id} if after_id else {}
    page = list(Record.objects.filter(entity_id=rule.entity_id, **after).order_by("id")[:limit])
    matching = [r for r in page if conditions.evaluate(rule.conditions, r.data or {}, None, entity=rule.entity)]
    return matching, (page[-1].pk if len(page) == limit else None)


def _too_many(rule: AutomationRule) -> int:
    """How many records match, when that is more than one occurrence may run for (else 0)."""
    limit = settings.AUTOMATIONS_SCHEDULE_MAX_RECORDS
    if Record.objects.filter(entity_id=rule.entity_id).count() <= limit:
        return 0
    count, cursor = 0, None
    while True:
        matching, cursor = _matching_records(rule, cursor, PAGE * 4)
        count += len(matching)
        if cursor is None:
            return count if count > limit else 0


def work_schedules(*, keep_going=None, pages: int = 20) -> list[AutomationLog]:
    """Fire due occurrences and rebuild due times, one page of records per transaction, the schedule's row
    locked meanwhile (other workers skip it; a worker dying mid-page leaves it as it was). At most ``pages``
    pages per call, so the worker's other work is never held for long. Returns the runs logged."""
    logged: list[AutomationLog] = []
    for _ in range(pages):
        if keep_going is not None and not keep_going():
            break
        now = timezone.now()
        with transaction.atomic():
            schedule = (
                RuleSchedule.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(sql.schedules_with_work(now))
                .select_related("rule__entity")
                .order_by("next_fire_at")
                .first()
            )
            if schedule is None:
                break
            if schedule.firing_at is None and schedule.next_fire_at is not None and schedule.next_fire_at <= now:
                _start_occurrence(schedule, now)
            if schedule.firing_at is not None:
                logged += _fire_page(schedule, schedule.rule, now)
            elif schedule.rebuilding:
                _rebuild_page(schedule, schedule.rule, now)
            schedule.save()
    return logged


def _fire_page(schedule: RuleSchedule, rule: AutomationRule, now: dt.datetime) -> list[AutomationLog]:
    occurrence = schedule.firing_at
    if schedule.cursor is None and (count := _too_many(rule)):
        reason = (
            f"Skipped: {count} records match, more than AUTOMATIONS_SCHEDULE_MAX_RECORDS "
            f"({settings.AUTOMATIONS_SCHEDULE_MAX_RECORDS}) for one occurrence."
        )
        skipped = _run(rule, None, occurrence, now, status=RunStatus.SKIPPED, next_attempt_at=None, error=reason)
        skipped.finished_at = skipped.executed_at = now
        AutomationLog.objects.bulk_create([skipped], ignore_conflicts=True)
        schedule.firing_at, schedule.cursor = None, None
        return []
    matching, cursor = _matching_records(rule, schedule.cursor, PAGE)
    logs = [_run(rule, record, occurrence, now) for record in matching]
    AutomationLog.objects.bulk_create(logs, ignore_conflicts=True)
    schedule.cursor = cursor
    if cursor is None:
        schedule.firing_at = None
    return logs


def _rebuild_page(schedule: RuleSchedule, rule: AutomationRule, now: dt.datetime) -> None:
    config = rule.trigger_config or {}
    size = PAGE * 4
    after = {"id__gt": schedule.cursor} if schedule.cursor else {}
    page = list(Record.objects.filter(entity_id=rule.entity_id, **after).order_by("id").only("id", "data")[:size])
    due = []
    for record in page:
        moment = due_time(config, record.data or {}, rule.entity)
        if moment is not None and moment > now:
            due.append(DueTime(rule=rule, record_id=record.pk, due_at=moment))
    DueTime.objects.bulk_create(
        due, update_conflicts=True, unique_fields=["rule", "record_id"], update_fields=["due_at"]
    )
    schedule.cursor = page[-1].pk if len(page) == size else None
    schedule.rebuilding = schedule.cursor is not None
