"""Every raw SQL statement of the engine, each beside the ORM statement it replaces (``config.sql`` holds the
two-form ``Statement``; the API's hot statements are in ``workspaces.sql``).

The worker's hot path runs a handful of statements per batch; on PostgreSQL compiling them through the ORM
cost more than running them, so each is also written once as fixed SQL (psycopg caches its parsing) with
identifiers taken from the models' metadata. Each ``Statement`` has both forms: ``.orm`` runs anywhere,
``.postgresql`` only there, and calling the statement picks by the connection's vendor.
``tests/automations/test_sql.py`` runs both forms on PostgreSQL and checks they leave the same rows.

Nothing here commits: callers own the transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from collections.abc import Iterable, Sequence

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Case, F, Q, Value, When

from config.sql import (
    Statement,
    column,
    convert,
    insert_row,
    model_converters,
    model_from_row,
    quote,
    select_list,
    table,
)
from workspaces.models import Entity

from .models import AutomationEvent, AutomationLog, AutomationRule, DueTime, RuleSchedule, RunStatus, WorkerProcess


# Identifiers are quoted once per process: the statements below are built on every call (a few variants
# each), and quoting through the connection's operations was ~150 calls per run arriving alone.
@functools.cache
def _quote(name: str) -> str:
    return quote(name)


@functools.cache
def _column(model, name: str) -> str:
    return column(model, name)


@functools.cache
def _table(model) -> str:
    return table(model)


def json_or_none(value) -> str | None:
    """A value as JSON text, for a record set's ``text`` column cast to ``jsonb`` (None stays SQL NULL)."""
    return None if value is None else json.dumps(value, cls=DjangoJSONEncoder)


def _json_value(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()  # microseconds kept (DjangoJSONEncoder would cut them to milliseconds)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be sent in a JSON record set")


def json_rows(rows: list[dict]) -> str:
    """Rows for ``jsonb_to_recordset(%s::jsonb) AS v(name type, ...)``: one text parameter whatever the
    number of rows and columns (arrays, one per column, are quoted element by element in Python by the
    driver: that was a sixth of a lone run's CPU)."""
    return json.dumps(rows, default=_json_value, separators=(",", ":"))


def _uuids(values: Iterable) -> list[uuid.UUID]:
    return [value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)) for value in values]


# --------------------------------------------------------------------------- events: take


def _take_events_orm(*, ids: Sequence | None, limit: int, now: dt.datetime, created_before=None) -> list:
    """Lock up to ``limit`` waiting events (oldest first; only ``ids`` when given; skipping those
    another worker holds) and mark them processed. The caller's transaction logs their runs before it
    commits, so "processed" and "its runs exist" become visible together."""
    waiting = AutomationEvent.objects.select_for_update(skip_locked=True).filter(processed_at__isnull=True)
    if ids is not None:
        waiting = waiting.filter(id__in=list(ids))
    if created_before is not None:
        waiting = waiting.filter(created_at__lt=created_before)
    events = list(waiting.order_by("created_at", "pk")[:limit])
    if events:
        AutomationEvent.objects.filter(id__in=[e.id for e in events]).update(processed_at=now)
        for event in events:
            event.processed_at = now
    return events


def _take_events_postgresql(*, ids: Sequence | None, limit: int, now: dt.datetime, created_before=None) -> list:
    params = {"now": now, "limit": limit}
    if ids is not None:
        params["ids"] = _uuids(ids)
    if created_before is not None:
        params["before"] = created_before
    with connection.cursor() as cursor:
        cursor.execute(_take_events_sql(ids is not None, created_before is not None), params)
        rows = cursor.fetchall()
    events = []
    for row in rows:
        event = model_from_row(AutomationEvent, row[:-1], connection.alias)
        event.rules_signature = row[-1]
        events.append(event)
    return sorted(events, key=lambda e: (e.created_at, e.pk))


@functools.cache
def _take_events_sql(with_ids: bool, with_before: bool) -> str:
    table = _table(AutomationEvent)
    processed, created = _column(AutomationEvent, "processed_at"), _column(AutomationEvent, "created_at")
    pk = _quote(AutomationEvent._meta.pk.column)
    filters = [f"AND {pk} = ANY(%(ids)s)"] if with_ids else []
    if with_before:
        filters.append(f"AND {created} < %(before)s")
    return f"""
        UPDATE {table} AS ev SET {processed} = %(now)s
        WHERE {pk} IN (
            SELECT {pk} FROM {table} WHERE {processed} IS NULL {" ".join(filters)}
            ORDER BY {created}, {pk} LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        )
        RETURNING {select_list(AutomationEvent, "ev")}, {_rules_signature("ev")}
    """  # noqa: S608 (identifiers from the model's metadata)


@functools.cache
def _rules_signature(events: str) -> str:
    """SQL for an event's ``rules_signature``: the row versions of its entity and of the entity's active
    rules. Equal signatures mean the same rule and entity rows, unchanged: the worker's rule cache
    (``automations.rule_cache``) serves them without asking the database again. Every update of a row
    writes a new version with the updating transaction's id (``xmin``) at a new place (``ctid``): the pair
    tells versions apart, also two written by one transaction (a transaction id repeats only after ~4
    billion transactions; a ``VACUUM FULL`` moving rows only costs a reload)."""
    rules, entity_id = _table(AutomationRule), _column(AutomationEvent, "entity_id")
    return (
        f"(SELECT en.xmin::text || en.ctid::text || ARRAY(SELECT r.{_quote(AutomationRule._meta.pk.column)}::text "  # noqa: S608
        f"|| r.xmin::text || r.ctid::text FROM {rules} r WHERE r.{_column(AutomationRule, 'entity')} = "
        f"{events}.{entity_id} AND r.{_column(AutomationRule, 'is_active')} ORDER BY 1)::text "
        f"FROM {_table(Entity)} en WHERE en.{_quote(Entity._meta.pk.column)} = {events}.{entity_id})"
    )  # identifiers from the models' metadata


take_events = Statement(_take_events_orm, _take_events_postgresql)


# --------------------------------------------------------------------------- rules: the worker's lookup


def active_rules_for(entity_ids, trigger_names, using: str = DEFAULT_DB_ALIAS):
    """Active rules of the entities for the trigger types (index ``rule_active_entity_trigger``).
    Unordered: the model's default ordering would add a sort to the plan."""
    return (
        AutomationRule.objects.using(using)
        .filter(entity_id__in=set(entity_ids), is_active=True, trigger_type__in=trigger_names)
        .select_related("entity")
        .order_by()
    )


def _load_active_rules_orm(entity_ids, trigger_names, using: str = DEFAULT_DB_ALIAS) -> list[AutomationRule]:
    """``active_rules_for`` as a list, each rule with its entity attached."""
    return list(active_rules_for(entity_ids, trigger_names, using))


def _load_active_rules_postgresql(entity_ids, trigger_names, using: str = DEFAULT_DB_ALIAS) -> list[AutomationRule]:
    """The same query and plan written once, rows turned into models with the ORM's own converters; one
    Entity object per entity (its field list decoded once)."""
    rule_fields, entity_fields = AutomationRule._meta.concrete_fields, Entity._meta.concrete_fields
    columns = [f"r.{_quote(f.column)}" for f in rule_fields] + [f"e.{_quote(f.column)}" for f in entity_fields]
    sql = (
        f"SELECT {', '.join(columns)} FROM {_table(AutomationRule)} r "  # noqa: S608 (model metadata)
        f"JOIN {_table(Entity)} e ON e.{_quote(Entity._meta.pk.column)} = r.{_column(AutomationRule, 'entity')} "
        f"WHERE r.{_column(AutomationRule, 'entity')} = ANY(%s) AND r.{_column(AutomationRule, 'is_active')} "
        f"AND r.{_column(AutomationRule, 'trigger_type')} = ANY(%s)"
    )
    conn = connections[using]
    with conn.cursor() as cursor:
        cursor.execute(sql, [_uuids(entity_ids), list(trigger_names)])
        rows = cursor.fetchall()
    rule_converters, entity_converters = model_converters(AutomationRule, conn), model_converters(Entity, conn)
    split = len(rule_fields)
    entity_names, rule_names = [f.attname for f in entity_fields], [f.attname for f in rule_fields]
    entity_pk_index = split + entity_names.index(Entity._meta.pk.attname)
    entity_field = AutomationRule._meta.get_field("entity")
    entities: dict = {}
    rules = []
    for row in rows:
        entity = entities.get(row[entity_pk_index])
        if entity is None:
            entity = Entity.from_db(using, entity_names, convert(row[split:], entity_converters, conn))
            entities[row[entity_pk_index]] = entity
        rule = AutomationRule.from_db(using, rule_names, convert(row[:split], rule_converters, conn))
        entity_field.set_cached_value(rule, entity)
        rules.append(rule)
    return rules


load_active_rules = Statement(_load_active_rules_orm, _load_active_rules_postgresql)


# --------------------------------------------------------------------------- runs: insert the matched ones

# Per-run values of a new log; everything else is copied from its event row.
LOG_VALUES = (
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
    ("worker_id", "text"),
    ("started_at", "timestamptz"),
    ("finished_at", "timestamptz"),
    ("executed_at", "timestamptz"),
    ("rule_version", "integer"),
    ("current_step", "integer"),
    ("step_states", "text"),
    ("replays", "text"),
)
JSON_VALUES = {"result", "step_states", "replays"}  # bound as text, cast to jsonb
LOG_FROM_EVENT = (
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


def _insert_runs_orm(logs: list[AutomationLog], now: dt.datetime) -> None:
    """Insert the runs matched for events (``bulk_create``)."""
    for log in logs:
        log.created_at = now
    AutomationLog.objects.bulk_create(logs, batch_size=500)


def _insert_runs_postgresql(logs: list[AutomationLog], now: dt.datetime) -> None:
    """One ``INSERT ... SELECT`` that copies record snapshot, old data and chain from the event rows inside
    the database (they are not serialized again); the per-run values travel as one JSON record set."""
    if not logs:
        return
    rows = []
    for log in logs:
        log.created_at = now
        rows.append(
            {
                name: json_or_none(getattr(log, name)) if name in JSON_VALUES else getattr(log, name)
                for name, _ in LOG_VALUES
            }
        )
    targets = [_column(AutomationLog, name) for name, _ in LOG_VALUES] + [
        _column(AutomationLog, name) for name, _ in LOG_FROM_EVENT
    ]
    selects = [f"v.{_quote(name)}" + ("::jsonb" if name in JSON_VALUES else "") for name, _ in LOG_VALUES] + [
        f"e.{_column(AutomationEvent, source)}" for _, source in LOG_FROM_EVENT
    ]
    sql = (
        f"INSERT INTO {_table(AutomationLog)} ({', '.join(targets)}, {_column(AutomationLog, 'is_test')}, "  # noqa: S608
        f"{_column(AutomationLog, 'created_at')}) "
        f"SELECT {', '.join(selects)}, false, %s "
        f"FROM jsonb_to_recordset(%s::jsonb) AS v({', '.join(f'{_quote(name)} {kind}' for name, kind in LOG_VALUES)}) "
        f"JOIN {_table(AutomationEvent)} e ON e.{_quote(AutomationEvent._meta.pk.column)} = v.{_quote('event_id')}"
    )  # identifiers from the models' metadata
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, json_rows(rows)])
        if cursor.rowcount != len(logs):  # the events are locked by this transaction: cannot happen
            raise RuntimeError(f"logged {cursor.rowcount} of {len(logs)} runs")
    for log in logs:
        log._state.adding = False
        log._state.db = connection.alias


insert_runs = Statement(_insert_runs_orm, _insert_runs_postgresql)


# --------------------------------------------------------------------------- runs: claim


def _claimable(*, due: bool, now, due_before) -> Q:
    if due:  # waiting runs whose time has come
        return Q(status__in=[RunStatus.PENDING, RunStatus.RETRYING], next_attempt_at__lte=due_before or now)
    # held runs whose holder is gone: the lease expired, or the worker process was declared dead
    gone = WorkerProcess.objects.filter(stopped_at__isnull=False).values("id")
    return Q(status=RunStatus.RUNNING) & (Q(lease_until__lt=now) | Q(worker_id__in=gone))


def _claim_runs_orm(
    *,
    ids: Sequence | None,
    limit: int,
    now: dt.datetime,
    lease: dt.datetime,
    worker_id: str,
    due: bool = True,
    due_before: dt.datetime | None = None,
) -> list[AutomationLog]:
    """Take up to ``limit`` runs for ``worker_id`` with ``lease``: waiting runs that are due (``due``) or
    held runs whose holder is gone (lease expired or worker dead; ``due=False``), only ``ids`` when given
    (``due_before``: only runs due before that time, i.e. overdue; default now),
    oldest due first, skipping rows another worker is claiming. Each claimed run counts one attempt."""
    claimable = AutomationLog.objects.select_for_update(skip_locked=True).filter(
        _claimable(due=due, now=now, due_before=due_before)
    )
    if ids is not None:
        claimable = claimable.filter(id__in=list(ids))
    pks = list(
        claimable.order_by(F("next_attempt_at").asc(nulls_first=True), "pk").values_list("pk", flat=True)[:limit]
    )
    if not pks:
        return []
    AutomationLog.objects.filter(pk__in=pks).update(
        status=RunStatus.RUNNING, lease_until=lease, worker_id=worker_id, attempts=F("attempts") + 1, started_at=now
    )
    return sorted(AutomationLog.objects.filter(pk__in=pks), key=_due_order)


def _due_order(log: AutomationLog) -> tuple:
    """Oldest due first (held runs, which have no due time, before them), then by id."""
    return (log.next_attempt_at is not None, log.next_attempt_at or dt.datetime.min.replace(tzinfo=dt.UTC), log.pk)


def _claim_runs_postgresql(
    *,
    ids: Sequence | None,
    limit: int,
    now: dt.datetime,
    lease: dt.datetime,
    worker_id: str,
    due: bool = True,
    due_before: dt.datetime | None = None,
) -> list[AutomationLog]:
    table = _table(AutomationLog)
    col = {name: _column(AutomationLog, name) for name in ("status", "next_attempt_at", "lease_until", "worker_id")}
    pk = _quote(AutomationLog._meta.pk.column)
    params: dict = {"now": now, "lease": lease, "worker": worker_id, "limit": limit, "running": RunStatus.RUNNING}
    if due:
        condition = f"{col['status']} = ANY(%(waiting)s) AND {col['next_attempt_at']} <= %(due)s"
        params["waiting"] = [RunStatus.PENDING, RunStatus.RETRYING]
        params["due"] = due_before or now
    else:
        workers = _table(WorkerProcess)
        condition = (
            f"{col['status']} = %(running)s AND ({col['lease_until']} < %(now)s OR {col['worker_id']} IN "  # noqa: S608
            f"(SELECT {_quote(WorkerProcess._meta.pk.column)} FROM {workers} "
            f"WHERE {_column(WorkerProcess, 'stopped_at')} IS NOT NULL))"
        )  # identifiers from the models' metadata
    if ids is not None:
        condition += f" AND {pk} = ANY(%(ids)s)"
        params["ids"] = _uuids(ids)
    attempts = _column(AutomationLog, "attempts")
    sql = f"""
        UPDATE {table} SET {col["status"]} = %(running)s, {col["lease_until"]} = %(lease)s,
            {col["worker_id"]} = %(worker)s, {attempts} = {attempts} + 1,
            {_column(AutomationLog, "started_at")} = %(now)s
        WHERE {pk} IN (
            SELECT {pk} FROM {table} WHERE {condition}
            ORDER BY {col["next_attempt_at"]} ASC NULLS FIRST, {pk} LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        )
        RETURNING *
    """  # noqa: S608 (identifiers from the model's metadata)
    return sorted(AutomationLog.objects.raw(sql, params), key=_due_order)


claim_runs = Statement(_claim_runs_orm, _claim_runs_postgresql, prepare=False)  # plans depend on the values


# --------------------------------------------------------------------------- runs: successes in bulk

# The per-run values of a bulk success, in this order.
SUCCESS_FIELDS = ("result", "finished_at", "executed_at", "duration_ms")
SUCCESS_CONSTANTS = {"status": RunStatus.SUCCESS, "error": "", "lease_until": None, "next_attempt_at": None}


def _finish_successes_orm(group: list[tuple[AutomationLog, dict]], lease: dt.datetime) -> int:
    """Mark the runs of ``group`` successful with their own values, those still held with ``lease`` (a run
    another worker took over is left alone); returns the number of rows written."""
    pks = [log.pk for log, _ in group]

    def case(name: str) -> Case:
        field = AutomationLog._meta.get_field(name)
        whens = [When(pk=log.pk, then=Value(values[name], output_field=field)) for log, values in group]
        return Case(*whens, output_field=field)

    return AutomationLog.objects.filter(pk__in=pks, status=RunStatus.RUNNING, lease_until=lease).update(
        **SUCCESS_CONSTANTS, **{name: case(name) for name in SUCCESS_FIELDS}
    )


def _finish_successes_postgresql(group: list[tuple[AutomationLog, dict]], lease: dt.datetime) -> int:
    """``UPDATE ... FROM jsonb_to_recordset(rows)``: one fixed statement whatever the group's size."""
    meta = AutomationLog._meta
    kinds = {"result": "text", "finished_at": "timestamptz", "executed_at": "timestamptz", "duration_ms": "integer"}
    rows = [
        {
            "id": log.pk,
            **{name: json_or_none(values[name]) if name == "result" else values[name] for name in SUCCESS_FIELDS},
        }
        for log, values in group
    ]
    sets = ", ".join(
        [f"{_column(AutomationLog, name)} = %s" for name in SUCCESS_CONSTANTS]
        + [
            f"{_column(AutomationLog, name)} = v.{_quote(name)}" + ("::jsonb" if name == "result" else "")
            for name in SUCCESS_FIELDS
        ]
    )
    columns = ", ".join(f"{_quote(name)} {kinds[name]}" for name in SUCCESS_FIELDS)
    sql = (
        f"UPDATE {_table(AutomationLog)} AS l SET {sets} "  # noqa: S608 (identifiers from the model's metadata)
        f"FROM jsonb_to_recordset(%s::jsonb) AS v(id uuid, {columns}) "
        f"WHERE l.{_quote(meta.pk.column)} = v.id AND l.{_column(AutomationLog, 'status')} = %s "
        f"AND l.{_column(AutomationLog, 'lease_until')} = %s"
    )
    constants = [meta.get_field(name).get_db_prep_save(value, connection) for name, value in SUCCESS_CONSTANTS.items()]
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [*constants, json_rows(rows), RunStatus.RUNNING, lease],
        )
        return cursor.rowcount


finish_successes = Statement(_finish_successes_orm, _finish_successes_postgresql)


def _update_held_orm(pk, lease_until, fields: dict) -> int:
    """Write ``fields`` of one run if it is still held with ``lease_until`` (running, the same lease: not
    taken over); returns the number of rows written (0 or 1)."""
    return AutomationLog.objects.filter(pk=pk, status=RunStatus.RUNNING, lease_until=lease_until).update(**fields)


def _update_held_postgresql(pk, lease_until, fields: dict) -> int:
    """One fixed statement per set of field names (the ledger writes a handful: a step done, a retry, a
    wait, a success, an error), its values (plain values, not expressions) prepared as the ORM's update
    prepares them."""
    meta = AutomationLog._meta
    values = [meta.get_field(name).get_db_prep_save(value, connection) for name, value in fields.items()]
    with connection.cursor() as cursor:
        cursor.execute(_update_held_sql(tuple(fields)), [*values, pk, RunStatus.RUNNING, lease_until])
        return cursor.rowcount


@functools.cache
def _update_held_sql(names: tuple[str, ...]) -> str:
    sets = ", ".join(f"{_column(AutomationLog, name)} = %s" for name in names)
    pk, status, lease = (
        _quote(AutomationLog._meta.pk.column),
        _column(AutomationLog, "status"),
        _column(AutomationLog, "lease_until"),
    )
    return (
        f"UPDATE {_table(AutomationLog)} SET {sets} "  # noqa: S608 (identifiers from the model's metadata)
        f"WHERE {pk} = %s AND {status} = %s AND {lease} IS NOT DISTINCT FROM %s"
    )


update_held = Statement(_update_held_orm, _update_held_postgresql)

# --------------------------------------------------------------------------- due times: take the ones that came


def _take_due_times_orm(*, limit: int, now: dt.datetime) -> list[DueTime]:
    """Lock and delete up to ``limit`` due times that have come (earliest first, skipping those another
    worker holds); the caller's transaction logs their runs before it commits."""
    due = list(
        DueTime.objects.select_for_update(skip_locked=True).filter(due_at__lte=now).order_by("due_at", "id")[:limit]
    )
    if due:
        DueTime.objects.filter(id__in=[d.id for d in due]).delete()
    return due


def _take_due_times_postgresql(*, limit: int, now: dt.datetime) -> list[DueTime]:
    table, pk, due_at = _table(DueTime), _quote(DueTime._meta.pk.column), _column(DueTime, "due_at")
    sql = f"""
        DELETE FROM {table} WHERE {pk} IN (
            SELECT {pk} FROM {table} WHERE {due_at} <= %(now)s
            ORDER BY {due_at}, {pk} LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        )
        RETURNING *
    """  # noqa: S608 (identifiers from the model's metadata)
    return sorted(DueTime.objects.raw(sql, {"now": now, "limit": limit}), key=lambda d: (d.due_at, d.id))


take_due_times = Statement(_take_due_times_orm, _take_due_times_postgresql, prepare=False)  # plans depend on the values

# --------------------------------------------------------------------------- the worker's poll


def schedules_with_work(now: dt.datetime) -> Q:
    """``RuleSchedule`` rows with work to do: an occurrence due, a firing going on, due times to rebuild."""
    return Q(next_fire_at__lte=now) | Q(firing_at__isnull=False) | Q(rebuilding=True)


def _anything_due_orm(*, now: dt.datetime) -> bool:
    """Is any time-based work due: a waiting run whose time has come (retry, throttled, after a delay), a due
    time, a schedule to fire, to go on firing or to rebuild? The worker's poll asks this first, in one
    statement, and claims only when something is there."""
    return (
        AutomationLog.objects.filter(
            status__in=[RunStatus.PENDING, RunStatus.RETRYING], next_attempt_at__lte=now
        ).exists()
        or DueTime.objects.filter(due_at__lte=now).exists()
        or RuleSchedule.objects.filter(schedules_with_work(now)).exists()
    )


def _anything_due_postgresql(*, now: dt.datetime) -> bool:
    logs, schedules = _table(AutomationLog), _table(RuleSchedule)
    sql = (
        f"SELECT EXISTS (SELECT 1 FROM {logs} WHERE {_column(AutomationLog, 'status')} = ANY(%(waiting)s) "  # noqa: S608
        f"AND {_column(AutomationLog, 'next_attempt_at')} <= %(now)s) "
        f"OR EXISTS (SELECT 1 FROM {_table(DueTime)} WHERE {_column(DueTime, 'due_at')} <= %(now)s) "
        f"OR EXISTS (SELECT 1 FROM {schedules} WHERE {_column(RuleSchedule, 'next_fire_at')} <= %(now)s "
        f"OR {_column(RuleSchedule, 'firing_at')} IS NOT NULL OR {_column(RuleSchedule, 'rebuilding')})"
    )  # identifiers from the models' metadata
    with connection.cursor() as cursor:
        cursor.execute(sql, {"now": now, "waiting": [RunStatus.PENDING, RunStatus.RETRYING]})
        return cursor.fetchone()[0]


anything_due = Statement(_anything_due_orm, _anything_due_postgresql, prepare=False)  # plans depend on the values


# --------------------------------------------------------------------------- events: the write path's insert


def _insert_event_orm(event: AutomationEvent) -> None:
    """Insert a record change's event (in the writer's transaction: the web process's only extra write)."""
    event.save(force_insert=True)


def _insert_event_postgresql(event: AutomationEvent) -> None:
    insert_row(event)


insert_event = Statement(_insert_event_orm, _insert_event_postgresql)

STATEMENTS = {
    "take_events": take_events,
    "load_active_rules": load_active_rules,
    "insert_runs": insert_runs,
    "claim_runs": claim_runs,
    "finish_successes": finish_successes,
    "update_held": update_held,
    "take_due_times": take_due_times,
    "insert_event": insert_event,
    "anything_due": anything_due,
}
