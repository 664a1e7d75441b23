"""The worker side: turn events into runs (matching) and runs into results (executing).

A run's ``AutomationLog`` row is its ledger. It is claimed with a lease (``lease_until``) before the
action executes; a worker that dies leaves the lease to expire and recovery runs it again (at least
once; the webhook-id stays the same). Every state change is one conditional UPDATE guarded by the lease,
so two workers can never both finish the same run.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from workspaces.models import Entity

from . import conditions
from .causation import RunCause, running
from .context import RunContext
from .exceptions import ActionError
from .models import AutomationEvent, AutomationLog, AutomationRule, RunStatus
from .trigger_types import Event, trigger_names_for, trigger_types

logger = logging.getLogger("automations")


def _action_types():
    from .action_types import action_types

    return action_types


def lease_seconds() -> int:
    return settings.AUTOMATIONS_RUN_LEASE_SECONDS


def max_attempts() -> int:
    return len(settings.AUTOMATIONS_RETRY_SCHEDULE) + 1


def retry_delay(attempts_done: int, retry_after: float | None = None) -> float | None:
    """Seconds until the next attempt after ``attempts_done`` attempts, or None when none is left.

    The schedule (``AUTOMATIONS_RETRY_SCHEDULE``) with +/- ``AUTOMATIONS_RETRY_JITTER``; a receiver's
    ``Retry-After`` (capped at ``AUTOMATIONS_RETRY_AFTER_MAX``) is honoured when it asks for longer."""
    schedule = settings.AUTOMATIONS_RETRY_SCHEDULE
    if attempts_done > len(schedule):
        return None
    base = schedule[attempts_done - 1]
    jitter = settings.AUTOMATIONS_RETRY_JITTER
    delay = base * (1 + random.uniform(-jitter, jitter)) if jitter else float(base)
    if retry_after is not None:
        delay = max(delay, min(float(retry_after), float(settings.AUTOMATIONS_RETRY_AFTER_MAX)))
    return max(0.0, delay)


# --------------------------------------------------------------------------- matching


def claim_events(event_ids: Iterable[str]) -> list[AutomationEvent]:
    """Lease the unprocessed events among ``event_ids`` for this worker (others skip them)."""
    now = timezone.now()
    with transaction.atomic():
        events = list(
            AutomationEvent.objects.select_for_update(skip_locked=True)
            .filter(id__in=list(event_ids), processed_at__isnull=True)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        )
        if events:
            AutomationEvent.objects.filter(id__in=[e.id for e in events]).update(
                lease_until=now + dt.timedelta(seconds=lease_seconds())
            )
    return events


def _is_own_change(rule: AutomationRule, event: AutomationEvent) -> bool:
    """A change made by this rule's run on this record never re-triggers the rule on that record."""
    rule_id, record_id = str(rule.id), str(event.record_id)
    return any(link.get("rule_id") == rule_id and link.get("record_id") == record_id for link in event.chain or [])


RUN_ID_NAMESPACE = uuid.UUID("0b6f3c1e-5a8e-4d5e-9a43-6f1d2f4b7c10")


def run_id_for(event_id, rule_id) -> uuid.UUID:
    """The run of ``rule`` for ``event`` always gets the same id (so the same ``webhook-id``): a run
    re-created after a lost commit is the same delivery, not a new one."""
    return uuid.uuid5(RUN_ID_NAMESPACE, f"{event_id}/{rule_id}")


def active_rules_for(entity_ids, trigger_names):
    """The worker's rule lookup (index ``rule_active_entity_trigger``). Unordered: the model's default
    ordering would add a sort to the plan and about a third to the query's compile time."""
    return (
        AutomationRule.objects.filter(entity_id__in=set(entity_ids), is_active=True, trigger_type__in=trigger_names)
        .select_related("entity")
        .order_by()
    )


def load_active_rules(entity_ids, trigger_names, using: str = DEFAULT_DB_ALIAS) -> list[AutomationRule]:
    """``list(active_rules_for(...))``, each rule with its entity attached, for the worker's hot path.

    On PostgreSQL the same query (same index, same plan) is written once as SQL and the rows are turned
    into models directly: compiling the ORM query cost more than running it. One Entity object is shared
    by the rules of an entity (its field list is decoded once)."""
    conn = connections[using]
    if conn.vendor != "postgresql":
        return list(active_rules_for(entity_ids, trigger_names).using(using))
    rule_fields = AutomationRule._meta.concrete_fields
    entity_fields = Entity._meta.concrete_fields
    quote = conn.ops.quote_name
    columns = [f"r.{quote(f.column)}" for f in rule_fields] + [f"e.{quote(f.column)}" for f in entity_fields]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(AutomationRule._meta.db_table)} r "  # noqa: S608 (model metadata)
        f"JOIN {quote(Entity._meta.db_table)} e ON e.{quote(Entity._meta.pk.column)} = r.{quote('entity_id')} "
        f"WHERE r.{quote('entity_id')} = ANY(%s) AND r.{quote('is_active')} AND r.{quote('trigger_type')} = ANY(%s)"
    )
    with conn.cursor() as cursor:
        cursor.execute(sql, [[uuid.UUID(str(x)) for x in entity_ids], list(trigger_names)])
        rows = cursor.fetchall()
    rule_converters = _converters(rule_fields, conn)
    entity_converters = _converters(entity_fields, conn)
    split = len(rule_fields)
    entity_pk_index = split + [f.attname for f in entity_fields].index(Entity._meta.pk.attname)
    entity_names = [f.attname for f in entity_fields]
    rule_names = [f.attname for f in rule_fields]
    entities: dict = {}
    entity_field = AutomationRule._meta.get_field("entity")
    rules = []
    for row in rows:
        entity_id = row[entity_pk_index]
        entity = entities.get(entity_id)
        if entity is None:
            entity = Entity.from_db(using, entity_names, _convert(row[split:], entity_converters, conn))
            entities[entity_id] = entity
        rule = AutomationRule.from_db(using, rule_names, _convert(row[:split], rule_converters, conn))
        entity_field.set_cached_value(rule, entity)
        rules.append(rule)
    return rules


def _converters(fields, conn) -> list[tuple]:
    out = []
    for field in fields:
        expression = field.cached_col
        found = conn.ops.get_db_converters(expression) + field.get_db_converters(conn)
        out.append((found, expression))
    return out


def _convert(values, converters, conn) -> list:
    """What the ORM's compiler does to each fetched value (e.g. decoding JSON columns)."""
    converted = []
    for value, (functions, expression) in zip(values, converters, strict=True):
        for function in functions:
            value = function(value, expression, conn)
        converted.append(value)
    return converted


def _matching_runs(events: list[AutomationEvent], now) -> tuple[list[AutomationLog], list[tuple]]:
    """One unsaved log per (event, matching active rule); one query (the rules of the events' entities)."""
    names = sorted({name for e in events for name in trigger_names_for(e.event_type)})
    rules_by_entity: dict[uuid.UUID, list[AutomationRule]] = defaultdict(list)
    for rule in load_active_rules({e.entity_id for e in events}, names):
        rules_by_entity[rule.entity_id].append(rule)

    from .throttle import Throttle

    throttle = Throttle(now)
    lease = now + dt.timedelta(seconds=lease_seconds())
    max_depth = settings.AUTOMATIONS_MAX_CHAIN_DEPTH
    logs: list[AutomationLog] = []
    to_run: list[tuple[AutomationLog, AutomationRule]] = []
    for event in events:
        data = (event.record or {}).get("data") or {}
        view = Event(event.event_type, data, event.old_data)
        for rule in rules_by_entity.get(event.entity_id, ()):
            try:
                trigger = trigger_types.get(rule.trigger_type)
            except KeyError:
                logger.error("rule %s has unknown trigger type %r", rule.id, rule.trigger_type)
                continue
            if event.event_type not in trigger.event_types or _is_own_change(rule, event):
                continue
            if not trigger.matches(view, rule.trigger_config or {}, entity=rule.entity):
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
                to_run.append((log, rule))
            logs.append(log)
    return logs, to_run


def _store_runs(logs: list[AutomationLog], events: list[AutomationEvent], now) -> None:
    if logs:
        AutomationLog.objects.bulk_create(logs, batch_size=500)
    AutomationEvent.objects.filter(id__in=[e.id for e in events]).update(processed_at=now, lease_until=None)


def _schedule_waiting(logs: list[AutomationLog]) -> None:
    for log in logs:
        if log.status == RunStatus.PENDING:
            schedule_run(log)


def match_events(events: list[AutomationEvent]) -> list[tuple[AutomationLog, AutomationRule]]:
    """Create one log row per (event, matching active rule) and mark the events processed, in one
    transaction. Returns the runs to execute now (throttled runs wait, chain-limited ones are skipped).
    ``events`` were claimed with ``claim_events`` (a lease)."""
    if not events:
        return []
    now = timezone.now()
    logs, to_run = _matching_runs(events, now)
    with transaction.atomic():
        _store_runs(logs, events, now)
    _schedule_waiting(logs)
    return to_run


def claim_and_match(event_ids: Iterable[str], *, on_matched=None) -> list[tuple[AutomationLog, AutomationRule]]:
    """``match_events(claim_events(ids))`` in a single transaction: the events are row-locked (other
    workers skip them) instead of leased, so the hot path pays one commit instead of two.

    ``on_matched(logs)``, if given, runs inside that transaction once the runs are logged (the worker
    closes the tasks that carried these events in the same commit)."""
    now = timezone.now()
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic():
        if postgresql:  # locked and marked processed in one statement; runs logged by INSERT ... SELECT
            events = _take_events_postgresql(event_ids, now)
        else:
            events = list(
                AutomationEvent.objects.select_for_update(skip_locked=True)
                .filter(id__in=list(event_ids), processed_at__isnull=True)
                .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            )
        if not events:
            return []
        logs, to_run = _matching_runs(events, now)
        (_insert_logs_postgresql if postgresql else _store_runs)(logs, events, now)
        if on_matched is not None:
            on_matched(logs)
    _schedule_waiting(logs)
    return to_run


def json_or_none(value) -> str | None:
    """A value as JSON text for a ``%s::text[]`` array bound into ``::jsonb`` (None stays SQL NULL)."""
    return None if value is None else json.dumps(value, cls=DjangoJSONEncoder)


# Per-run values of a new log; everything else is copied from its event row by the database.
_LOG_VALUES = (
    ("id", "uuid"),
    ("automation_id", "uuid"),
    ("event_id", "uuid"),
    ("trigger_type", "text"),
    ("action_type", "text"),
    ("status", "text"),
    ("result", "text"),
    ("error", "text"),
    ("attempts", "integer"),
    ("next_attempt_at", "timestamptz"),
    ("lease_until", "timestamptz"),
    ("started_at", "timestamptz"),
    ("finished_at", "timestamptz"),
    ("executed_at", "timestamptz"),
)
_LOG_FROM_EVENT = (
    ("workspace_id", "workspace_id"),
    ("entity_id", "entity_id"),
    ("record_id", "record_id"),
    ("record_snapshot", "record"),
    ("old_data", "old_data"),
    ("event_type", "event_type"),
    ("chain", "chain"),
    ("chain_depth", "chain_depth"),
    ("batch_id", "batch_id"),
    ("actor_id", "actor_id"),
)


def _insert_logs_postgresql(logs: list[AutomationLog], events: list[AutomationEvent], now) -> None:
    """``bulk_create(logs)`` for the worker's hot path: one ``INSERT ... SELECT`` that copies the record
    snapshot, old data and chain from the event rows inside the database (they are not serialized
    again), with the per-run values passed as arrays. Same rows as ``bulk_create``. ``events`` were
    already marked processed by ``_take_events_postgresql``."""
    if not logs:
        return
    log_meta, event_meta = AutomationLog._meta, AutomationEvent._meta
    quote = connection.ops.quote_name

    def column(meta, name):  # get_field also knows foreign keys by their attname (automation_id)
        return quote(meta.get_field(name).column)

    arrays = {name: [] for name, _ in _LOG_VALUES}
    for log in logs:
        log.created_at = now
        for name, _ in _LOG_VALUES:
            value = getattr(log, name)
            arrays[name].append(json_or_none(value) if name == "result" else value)
    targets = [column(log_meta, name) for name, _ in _LOG_VALUES] + [
        column(log_meta, name) for name, _ in _LOG_FROM_EVENT
    ]
    selects = [f"v.{quote(name)}" + ("::jsonb" if name == "result" else "") for name, _ in _LOG_VALUES] + [
        f"e.{column(event_meta, source)}" for _, source in _LOG_FROM_EVENT
    ]
    sql = (
        f"INSERT INTO {quote(log_meta.db_table)} ({', '.join(targets)}, {column(log_meta, 'is_test')}, "  # noqa: S608
        f"{column(log_meta, 'created_at')}) "
        f"SELECT {', '.join(selects)}, false, %s "
        f"FROM unnest({', '.join(f'%s::{kind}[]' for _, kind in _LOG_VALUES)}) "
        f"AS v({', '.join(quote(name) for name, _ in _LOG_VALUES)}) "
        f"JOIN {quote(event_meta.db_table)} e ON e.{quote(event_meta.pk.column)} = v.{quote('event_id')}"
    )  # identifiers from the models' metadata
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, *(arrays[name] for name, _ in _LOG_VALUES)])
        if cursor.rowcount != len(logs):  # the events are locked by this transaction: cannot happen
            raise RuntimeError(f"logged {cursor.rowcount} of {len(logs)} runs")
    for log in logs:
        log._state.adding = False
        log._state.db = connection.alias


def _take_events_postgresql(event_ids: Iterable[str], now) -> list[AutomationEvent]:
    """Lock the unprocessed, unleased events among ``event_ids`` (skipping those another worker holds)
    and mark them processed, in one statement: the caller's transaction logs their runs before it
    commits, so "processed" and "its runs exist" become visible together."""
    meta = AutomationEvent._meta
    table = connection.ops.quote_name(meta.db_table)
    sql = f"""
        UPDATE {table} SET processed_at = %s, lease_until = NULL
        WHERE id IN (
            SELECT id FROM {table}
            WHERE id = ANY(%s) AND processed_at IS NULL AND (lease_until IS NULL OR lease_until < %s)
            FOR UPDATE SKIP LOCKED
        )
        RETURNING *
    """  # noqa: S608 (identifiers from the model's metadata)
    ids = [uuid.UUID(str(x)) for x in event_ids]
    return list(AutomationEvent.objects.raw(sql, [now, ids, now]))


def process_event_ids(event_ids: Iterable[str]) -> int:
    """Claim, match and execute. Returns the number of runs executed."""
    return execute_runs(claim_and_match(event_ids))


# --------------------------------------------------------------------------- executing


def context_for(log: AutomationLog, rule: AutomationRule, *, dry_run: bool = False) -> RunContext:
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


def _finish(log: AutomationLog, **fields) -> bool:
    """Write the run's new state if this worker still holds its lease."""
    updated = AutomationLog.objects.filter(pk=log.pk, status=RunStatus.RUNNING, lease_until=log.lease_until).update(
        **fields
    )
    for key, value in fields.items():
        setattr(log, key, value)
    if not updated:
        logger.warning("run %s: lease lost before finishing; another worker owns it now", log.pk)
    return bool(updated)


def execute_log(log: AutomationLog, rule: AutomationRule, *, ledger: _SuccessLedger | None = None) -> AutomationLog:
    """Run the action of a claimed run (status running, lease held) and record the outcome.

    With ``ledger`` a success is buffered and written later together with others (one UPDATE per batch,
    see ``execute_runs``); failures and anything with side effects are always written at once."""
    ctx = context_for(log, rule)
    started = time.monotonic()
    cause = RunCause(rule_id=str(rule.id), record_id=ctx.record_id, chain=ctx.chain, chain_depth=ctx.chain_depth)
    error: ActionError | None = None
    try:
        action = _action_types().get(rule.action_type)
        with running(cause):
            result = action.execute(ctx)
    except ActionError as exc:
        error = exc
    except KeyError as exc:  # unknown action type: a configuration problem, not transient
        error = ActionError(str(exc).strip("'\""))
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
            return log
        if _finish(log, **success) and resets_failures:
            AutomationRule.objects.filter(pk=rule.pk).update(consecutive_failures=0)
            rule.consecutive_failures = 0
        return log

    delay = None if (log.is_test or not error.retryable) else retry_delay(log.attempts, error.retry_after)
    if delay is not None:
        if _finish(
            log,
            status=RunStatus.RETRYING,
            result=error.result,
            error=f"Attempt {log.attempts} failed: {error.message}",
            next_attempt_at=now + dt.timedelta(seconds=delay),
            duration_ms=duration_ms,
            executed_at=now,
            lease_until=None,
        ):
            schedule_run(log)
        return log

    if (
        _finish(
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
        _record_failure(rule, error)
    return log


def _record_failure(rule: AutomationRule, error: ActionError) -> None:
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
    from .services import rule_disable

    rule_disable(rule=rule, reason=reason)


# --------------------------------------------------------------------------- batches


def _by_lease(logs: Iterable[AutomationLog]) -> dict[dt.datetime, list[AutomationLog]]:
    """Logs grouped by the lease they are held with: each group is one guarded statement."""
    groups: dict[dt.datetime, list[AutomationLog]] = defaultdict(list)
    for log in logs:
        groups[log.lease_until].append(log)
    return groups


class _SuccessLedger:
    """Successful outcomes of a batch, written together: one UPDATE per lease instead of one per run.

    Each row is still guarded by its lease (``status = running AND lease_until = <the lease we hold>``),
    so a run whose lease another worker took over is never overwritten. A buffered success is flushed
    within ``FLUSH_SECONDS`` or ``FLUSH_SIZE`` runs (and always before the batch returns), far inside the
    lease; a worker killed before the flush leaves those runs to recovery (delivered again with the same
    ``webhook-id``: at least once, as for a run killed mid-request)."""

    FLUSH_SIZE = 100
    FLUSH_SECONDS = 1.0

    def __init__(self) -> None:
        self.items: list[tuple[AutomationLog, dict]] = []
        self.first_at = 0.0

    def add(self, log: AutomationLog, fields: dict) -> None:
        """Buffer a success; ``log`` keeps the lease it holds until the flush writes ``fields``."""
        if not self.items:
            self.first_at = time.monotonic()
        self.items.append((log, fields))
        if len(self.items) >= self.FLUSH_SIZE or time.monotonic() - self.first_at >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        items, self.items = self.items, []
        fields_of = {log.pk: fields for log, fields in items}
        for lease, logs in _by_lease(log for log, _ in items).items():
            group = [(log, fields_of[log.pk]) for log in logs]
            updated = _bulk_success(group, lease)
            for log, fields in group:
                for key, value in fields.items():
                    setattr(log, key, value)
            if updated < len(group):
                logger.warning(
                    "%d run(s) lost their lease before finishing; another worker owns them now", len(group) - updated
                )


# The per-run values of a bulk success, in this order.
_BULK_FIELDS = ("result", "finished_at", "executed_at", "duration_ms")


def _bulk_success(group: list[tuple[AutomationLog, dict]], lease: dt.datetime) -> int:
    """Mark ``group`` successful (those still holding ``lease``) in one statement; returns rows updated."""
    pks = [log.pk for log, _ in group]
    constant = {"status": RunStatus.SUCCESS, "error": "", "lease_until": None, "next_attempt_at": None}
    if connection.vendor != "postgresql":

        def case(name: str) -> Case:
            field = AutomationLog._meta.get_field(name)
            whens = [When(pk=log.pk, then=Value(values[name], output_field=field)) for log, values in group]
            return Case(*whens, output_field=field)

        return AutomationLog.objects.filter(pk__in=pks, status=RunStatus.RUNNING, lease_until=lease).update(
            **constant, **{name: case(name) for name in _BULK_FIELDS}
        )
    # PostgreSQL: UPDATE ... FROM unnest(arrays): a fixed statement (psycopg caches its parsing), a fraction
    # of the ORM's CASE WHEN cost to build.
    meta = AutomationLog._meta
    quote = connection.ops.quote_name
    kinds = {"result": "text", "finished_at": "timestamptz", "executed_at": "timestamptz", "duration_ms": "integer"}
    arrays: dict[str, list] = {name: [] for name in _BULK_FIELDS}
    for _, values in group:
        for name in _BULK_FIELDS:
            arrays[name].append(json_or_none(values[name]) if name == "result" else values[name])
    sets = ", ".join(
        [f"{quote(meta.get_field(name).column)} = %s" for name in constant]
        + [
            f"{quote(meta.get_field(name).column)} = v.{quote(name)}" + ("::jsonb" if name == "result" else "")
            for name in _BULK_FIELDS
        ]
    )
    sql = (
        f"UPDATE {quote(meta.db_table)} AS l SET {sets} "  # noqa: S608 (identifiers from the model's metadata)
        f"FROM unnest(%s::uuid[], {', '.join(f'%s::{kinds[name]}[]' for name in _BULK_FIELDS)}) "
        f"AS v(id, {', '.join(quote(name) for name in _BULK_FIELDS)}) "
        f"WHERE l.{quote(meta.pk.column)} = v.id AND l.{quote(meta.get_field('status').column)} = %s "
        f"AND l.{quote(meta.get_field('lease_until').column)} = %s"
    )
    constants = [meta.get_field(name).get_db_prep_save(value, connection) for name, value in constant.items()]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*constants, pks, *(arrays[name] for name in _BULK_FIELDS), RunStatus.RUNNING, lease])
        return cursor.rowcount


def _renew_leases(runs: list[tuple[AutomationLog, AutomationRule]]) -> list[tuple[AutomationLog, AutomationRule]]:
    """Extend the leases of runs this worker still holds (a long batch); returns those still held."""
    now = timezone.now()
    lease = now + dt.timedelta(seconds=lease_seconds())
    held: set[uuid.UUID] = set()
    for old, logs in _by_lease(log for log, _ in runs).items():
        pks = [log.pk for log in logs]
        if AutomationLog.objects.filter(pk__in=pks, status=RunStatus.RUNNING, lease_until=old).update(
            lease_until=lease
        ) == len(pks):
            held.update(pks)
        else:
            held.update(AutomationLog.objects.filter(pk__in=pks, lease_until=lease).values_list("pk", flat=True))
    kept = []
    for log, rule in runs:
        if log.pk in held:
            log.lease_until = lease
            kept.append((log, rule))
        else:
            logger.warning("run %s: lease lost before it started; another worker owns it now", log.pk)
    return kept


def release_runs(runs: list[tuple[AutomationLog, AutomationRule]]) -> int:
    """Hand claimed but unstarted runs back (the worker is stopping): due now, for any worker."""
    if not runs:
        return 0
    now = timezone.now()
    released = 0
    for lease, logs in _by_lease(log for log, _ in runs).items():
        released += AutomationLog.objects.filter(
            pk__in=[log.pk for log in logs], status=RunStatus.RUNNING, lease_until=lease
        ).update(
            status=RunStatus.PENDING,
            attempts=F("attempts") - 1,
            started_at=None,
            lease_until=None,
            next_attempt_at=now,
        )
        for log in logs:
            log.status, log.lease_until, log.next_attempt_at = RunStatus.PENDING, None, now
            log.attempts = max(0, (log.attempts or 1) - 1)
            schedule_run(log)
    return released


def execute_runs(runs: list[tuple[AutomationLog, AutomationRule]], *, keep_going=None) -> int:
    """Execute claimed runs one after another, writing their successes in bulk (``_SuccessLedger``).

    ``keep_going()`` is asked before each run: once it says no (SIGTERM), the runs not started yet are
    handed back (``release_runs``) instead of waiting for their lease to expire. A run slower than
    ``AUTOMATIONS_WORKER_SLOW_RUN_SECONDS`` (a receiver timing out) hands the rest back too, so one slow
    receiver never holds up the other runs of its batch: any free worker takes them at once. Leases
    are renewed when a long batch gets close to them. Returns the number of runs executed."""
    ledger = _SuccessLedger()
    # Renew once less than an action's worst case (plus slack) is left, or half the lease if that is less.
    margin = dt.timedelta(seconds=min(float(settings.AUTOMATIONS_WEBHOOK_TOTAL_TIMEOUT) + 15, lease_seconds() / 2))
    slow = float(settings.AUTOMATIONS_WORKER_SLOW_RUN_SECONDS)
    done = 0
    runs = list(runs)
    renewed_at = -1
    try:
        index = 0
        while index < len(runs):
            if keep_going is not None and not keep_going():
                ledger.flush()
                release_runs(runs[index:])
                break
            log, rule = runs[index]
            if log.lease_until is not None and timezone.now() + margin >= log.lease_until and renewed_at != index:
                ledger.flush()
                runs[index:] = _renew_leases(runs[index:])
                renewed_at = index  # at most once per run, whatever the clock does
                continue
            started = time.monotonic()
            execute_log(log, rule, ledger=ledger)
            done += 1
            index += 1
            if index < len(runs) and time.monotonic() - started > slow:
                ledger.flush()
                released = release_runs(runs[index:])
                logger.info(
                    "run %s took %.1f s: %d run(s) of its batch handed back",
                    log.pk,
                    time.monotonic() - started,
                    released,
                )
                break
    finally:
        ledger.flush()
    return done


def claim_runs(log_ids: Iterable[str]) -> list[tuple[AutomationLog, AutomationRule]]:
    """Claim due runs by id (``claim_run``); a run of a rule turned off meanwhile is logged as skipped."""
    runs = []
    for log_id in log_ids:
        log = claim_run(log_id)
        if log is not None and not _skip_if_inactive(log, log.automation):
            runs.append((log, log.automation))
    return runs


def process_batch(
    event_ids: list[str], log_ids: list[str], *, keep_going=None, on_matched=None
) -> list[tuple[AutomationLog, AutomationRule]]:
    """What the worker does with a batch of engine tasks: match all their events in one transaction,
    claim their due runs, execute everything (successes written in bulk). Returns the runs claimed.
    ``keep_going`` and ``on_matched`` as for ``execute_runs`` and ``claim_and_match``."""
    runs = claim_and_match(event_ids, on_matched=on_matched) if event_ids else []
    runs += claim_runs(log_ids)
    execute_runs(runs, keep_going=keep_going)
    return runs


# --------------------------------------------------------------------------- scheduling


def schedule_run(log: AutomationLog) -> None:
    """Enqueue the run's next attempt for ``next_attempt_at`` (recovery covers backends without defer)."""
    from django.tasks import default_task_backend

    from .tasks import run_automation

    task = run_automation
    if default_task_backend.supports_defer and log.next_attempt_at and log.next_attempt_at > timezone.now():
        task = run_automation.using(run_after=log.next_attempt_at)
    elif not default_task_backend.supports_defer and log.next_attempt_at and log.next_attempt_at > timezone.now():
        return  # recovery picks it up when due
    task.enqueue(log_id=str(log.pk))


def claim_run(log_id) -> AutomationLog | None:
    """Take a due run (pending/retrying and due, or running with an expired lease) for this worker."""
    now = timezone.now()
    lease = now + dt.timedelta(seconds=lease_seconds())
    claimed = (
        AutomationLog.objects.filter(pk=log_id)
        .filter(
            Q(status__in=[RunStatus.PENDING, RunStatus.RETRYING], next_attempt_at__lte=now)
            | Q(status=RunStatus.PENDING, next_attempt_at__isnull=True)
            | Q(status=RunStatus.RUNNING, lease_until__lt=now)
        )
        .update(status=RunStatus.RUNNING, lease_until=lease, attempts=F("attempts") + 1, started_at=now)
    )
    if not claimed:
        return None
    return AutomationLog.objects.select_related("automation__entity").get(pk=log_id)


def _skip_if_inactive(log: AutomationLog, rule: AutomationRule) -> bool:
    """A (non-test) run of a rule turned off since it was queued is logged as skipped, not executed."""
    if rule.is_active or log.is_test:
        return False
    now = timezone.now()
    _finish(
        log,
        status=RunStatus.SKIPPED,
        error=f"Skipped: the rule is inactive. {rule.disabled_reason}".strip(),
        finished_at=now,
        executed_at=now,
        lease_until=None,
        next_attempt_at=None,
    )
    return True


def run_log_id(log_id) -> AutomationLog | None:
    """Claim and execute one run by id; returns None if it was not due or someone else has it."""
    log = claim_run(log_id)
    if log is None:
        return None
    if _skip_if_inactive(log, log.automation):
        return log
    return execute_log(log, log.automation)


# --------------------------------------------------------------------------- recovery


def recover(limit: int = 500) -> dict[str, int]:
    """Pick up what a dead worker or a lost enqueue left behind: events never processed, runs whose
    lease expired, and runs overdue by more than ``AUTOMATIONS_RECOVERY_GRACE_SECONDS``."""
    now = timezone.now()
    grace = now - dt.timedelta(seconds=settings.AUTOMATIONS_RECOVERY_GRACE_SECONDS)
    event_ids = list(
        AutomationEvent.objects.filter(processed_at__isnull=True)
        .filter(Q(lease_until__lt=now) | Q(lease_until__isnull=True, created_at__lt=grace))
        .order_by("created_at")
        .values_list("id", flat=True)[:limit]
    )
    runs = 0
    for start in range(0, len(event_ids), 50):
        runs += process_event_ids(event_ids[start : start + 50])
    log_ids = list(
        AutomationLog.objects.filter(
            Q(status=RunStatus.RUNNING, lease_until__lt=now)
            | Q(status__in=[RunStatus.PENDING, RunStatus.RETRYING], next_attempt_at__lt=grace)
        )
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    recovered = sum(1 for log_id in log_ids if run_log_id(log_id) is not None)
    if event_ids or recovered:
        logger.info("recovery: %d event(s) reprocessed, %d run(s) resumed", len(event_ids), recovered)
    return {"events": len(event_ids), "event_runs": runs, "runs": recovered}
