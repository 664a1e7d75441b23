"""The two-form statement every hot path of the project uses (the API's in ``workspaces.sql``, the engine's
in ``automations.sql``): an ORM statement, and the same statement written once as fixed SQL for PostgreSQL,
where compiling the ORM query costs more than running it. Calling a ``Statement`` picks the form by the
connection's vendor; the tests run both forms on PostgreSQL and compare what they return and leave.
Also the small helpers those fixed statements share (quoted names from model metadata, rows into models
with the ORM's own converters). Imports no app."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections


class Statement:
    """One statement in two forms: ``orm`` (any database) and ``postgresql`` (fixed SQL).

    With ``DB_PREPARED_STATEMENTS`` (the default) the fixed SQL is prepared on its first run on a connection
    (parsed and planned once, then executed by name), unless ``prepare=False``: a statement whose best plan
    depends on its values (a time range over a large table, a status matching a partial index) would keep
    PostgreSQL's generic plan, made without them, so it is planned at every run. Nothing else is prepared:
    ORM queries keep Django's default."""

    def __init__(self, orm: Callable, postgresql: Callable, *, prepare: bool = True):
        self.orm = orm
        self.postgresql = postgresql
        self.prepare = prepare
        self.__doc__ = orm.__doc__

    def __call__(self, *args, **kwargs):
        conn = connections[kwargs.get("using", DEFAULT_DB_ALIAS)]
        if conn.vendor != "postgresql":
            return self.orm(*args, **kwargs)
        if not (self.prepare and settings.DB_PREPARED_STATEMENTS):
            return self.postgresql(*args, **kwargs)
        conn.ensure_connection()
        raw = conn.connection
        saved, raw.prepare_threshold = raw.prepare_threshold, 0  # prepare what runs now, on first use
        try:
            return self.postgresql(*args, **kwargs)
        finally:
            raw.prepare_threshold = saved


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def column(model, name: str) -> str:
    """Quoted column of a field (``get_field`` also knows foreign keys by their attname)."""
    return quote(model._meta.get_field(name).column)


def table(model) -> str:
    return quote(model._meta.db_table)


def select_list(model, alias: str) -> str:
    """``alias."col1", alias."col2", …`` for every concrete field, in ``model_from_row``'s order."""
    return ", ".join(f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


def converters(fields, conn) -> list[tuple]:
    out = []
    for field in fields:
        expression = field.cached_col
        out.append((conn.ops.get_db_converters(expression) + field.get_db_converters(conn), expression))
    return out


def convert(values, found_converters, conn) -> list:
    """What the ORM's compiler does to each fetched value (e.g. decoding JSON columns)."""
    converted = []
    for value, (functions, expression) in zip(values, found_converters, strict=True):
        for function in functions:
            value = function(value, expression, conn)
        converted.append(value)
    return converted


def model_converters(model, conn) -> list[tuple]:
    """``converters`` of the model's concrete fields, worked out once per connection object."""
    cached = conn.__dict__.setdefault("_fixed_sql_converters", {})
    if model not in cached:
        cached[model] = converters(model._meta.concrete_fields, conn)
    return cached[model]


def model_from_row(model, row: Sequence, using: str = DEFAULT_DB_ALIAS):
    """A model instance from the values of ``select_list(model, …)``, as the ORM would build it."""
    conn = connections[using]
    values = convert(row, model_converters(model, conn), conn)
    return model.from_db(using, [f.attname for f in model._meta.concrete_fields], values)


@functools.cache
def _insert_sql(model) -> str:
    fields = model._meta.concrete_fields
    return (
        f"INSERT INTO {table(model)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )  # identifiers from the model's metadata


def insert_row(obj) -> None:
    """Insert a new model instance in one fixed statement (its text built once per model), with the field
    preparation ``Model.save(force_insert=True)`` does (defaults, ``auto_now``), and mark it saved. No
    signals: a caller that needs them sends them."""
    model = type(obj)
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in model._meta.concrete_fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model), values)
    obj._state.adding = False
    obj._state.db = connection.alias
