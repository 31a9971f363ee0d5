"""Plain SQL for the few statements every store runs, built once from the models.

Why not the ORM here: profiled (``bench.run stow --stow-profile``), building a queryset
and compiling it to SQL costs 0.3 to 0.5 ms of Python per statement, and storing one
instance into an existing series runs about ten of them — most of the index's share of
a store's CPU. The statements themselves take microseconds.

Why not even Django's cursor: sampled with ``py-spy --gil`` (the Python time of a
STOW request, 525 KB CT instances), a quarter of a store's Python time was the index
step, and most of *that* was per-statement plumbing around SQL that runs in
microseconds: Django's cursor wrapper (connection checks, execute wrappers, SQLite's
``%s`` → ``?`` rewrite by regular expression on every call), ``get_db_prep_save`` for
every value, and ``Model.from_db`` for every row read. So each statement's SQL text is
built once per database vendor from the models' ``_meta`` (table and column names,
quoting, placeholder style, ``FOR UPDATE`` where the backend has it) and run on the
DB-API cursor of the connection Django manages — inside Django's transaction
(``transaction.atomic`` issues the ``BEGIN``), with database errors translated to
Django's (``IntegrityError`` …) exactly as Django's own cursor does. Values are adapted
by a per-field function chosen once: plain values (text, integers, keys) pass as they
are; dates, times, JSON and anything unusual go through the field's own
``get_db_prep_save``, so what reaches the database is what the ORM would have sent.
Rows come back as light :class:`Row` objects with the columns as attributes.

Only simple, single-table statements live here: select one row by equality, insert one
row, update one row by primary key (with counter increments), delete by primary key,
existence by equality. Anything rarer stays ORM.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

import orjson
from django.db import connections, models
from django.db.models import Model

DB = "default"

# Field types whose Python values the DB-API adapters take as they are. Everything else
# (dates, times, JSON, decimals, UUIDs, …) is prepared by the field itself.
_PLAIN_FIELDS = (
    models.CharField,
    models.TextField,
    models.IntegerField,  # also BigIntegerField, PositiveIntegerField, AutoField …
    models.ForeignKey,
)


class Row:
    """One row read by :func:`select_one`: its columns as attributes (``pk`` = ``id``)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    @property
    def pk(self) -> Any:
        return self.__dict__["id"]

    def __repr__(self) -> str:
        return f"Row({self.__dict__!r})"


def _connection():
    return connections[DB]


def _placeholder(connection) -> str:
    return "?" if connection.vendor == "sqlite" else "%s"


def json_bytes(value: Any) -> bytes:
    """JSON text of ``value`` with orjson (several times faster than ``json.dumps``).

    Falls back to ``json`` for what orjson refuses (integers beyond 64 bits). orjson
    writes NaN and infinities as ``null`` where ``json`` would write invalid JSON that
    PostgreSQL rejects.
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()


def _adapter(field: models.Field, connection) -> Callable[[Any], Any] | None:
    """How a value of ``field`` becomes a query parameter; None = as it is."""
    if isinstance(field, models.JSONField) and field.encoder is None:
        # What Django's own adapt_json_value produces, serialized by orjson: the
        # instance metadata is the largest value of a store (several KB of JSON).
        if connection.vendor == "postgresql":
            from psycopg.types.json import Jsonb

            return lambda value: None if value is None else Jsonb(value, dumps=json_bytes)
        if connection.vendor == "sqlite":
            return lambda value: None if value is None else json_bytes(value).decode()
    if isinstance(field, _PLAIN_FIELDS) and not isinstance(field, models.JSONField):
        return None
    return lambda value: field.get_db_prep_save(value, connection)


def _converter(field: models.Field) -> Callable[[Any], Any] | None:
    """How a column value becomes the field's Python value; None = as it is."""
    if isinstance(field, models.JSONField):
        # SQLite and Django's psycopg setup both hand JSON back as text.
        return lambda value: orjson.loads(value) if isinstance(value, str | bytes) else value
    if isinstance(field, _PLAIN_FIELDS):
        return None
    return lambda value: None if value is None else field.to_python(value)


def _run(sql: str, params: list[Any], fetch: bool = False) -> Any:
    """Execute on the DB-API cursor of Django's connection; Django's exception types."""
    connection = _connection()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchone() if fetch else cursor.rowcount
        finally:
            cursor.close()


@cache
def _select_sql(
    vendor: str, model: type[Model], lookup: tuple[str, ...], fields: tuple[str, ...], lock: bool
):
    connection = _connection()
    quote = connection.ops.quote_name
    mark = _placeholder(connection)
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    keys = [meta.get_field(name) for name in lookup]
    where = " AND ".join(f"{quote(field.column)} = {mark}" for field in keys)
    sql = (
        f"SELECT {', '.join(quote(field.column) for field in columns)} "
        f"FROM {quote(meta.db_table)} WHERE {where}"
    )
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return (
        sql,
        [field.attname for field in columns],
        [_converter(field) for field in columns],
        [_adapter(field, connection) for field in keys],
    )


def _params(adapters: list, values: Iterable[Any]) -> list[Any]:
    return [value if adapt is None else adapt(value) for adapt, value in zip(adapters, values, strict=True)]


def select_one(
    model: type[Model], lookup: Mapping[str, Any], fields: Iterable[str], *, lock: bool = False
) -> Row | None:
    """The row matching ``lookup`` (equality on unique columns) with only ``fields`` read.

    Returns a :class:`Row` (attributes by attname: ``study_id``, not ``study``; ``pk``
    is ``id``), or ``None``. ``lock=True`` adds ``FOR UPDATE`` where supported
    (PostgreSQL); SQLite serializes writers anyway.
    """
    names = tuple(lookup)
    fields = tuple(dict.fromkeys(("id", *fields)))
    sql, attnames, converters, adapters = _select_sql(_connection().vendor, model, names, fields, lock)
    row = _run(sql, _params(adapters, lookup.values()), fetch=True)
    if row is None:
        return None
    return Row(
        {
            name: value if convert is None or value is None else convert(value)
            for name, convert, value in zip(attnames, converters, row, strict=True)
        }
    )


def exists(model: type[Model], **lookup: Any) -> bool:
    """Whether a row matches ``lookup`` (equality)."""
    sql, _, _, adapters = _select_sql(_connection().vendor, model, tuple(lookup), ("id",), False)
    return _run(sql, _params(adapters, lookup.values()), fetch=True) is not None


@cache
def _insert_sql(vendor: str, model: type[Model], fields: tuple[str, ...]):
    connection = _connection()
    quote = connection.ops.quote_name
    mark = _placeholder(connection)
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))}) RETURNING {quote(meta.pk.column)}"
    )
    return sql, [_adapter(field, connection) for field in columns]


def insert(model: type[Model], values: Mapping[str, Any]) -> int:
    """Insert one row (every value given explicitly) and return its primary key."""
    sql, adapters = _insert_sql(_connection().vendor, model, tuple(values))
    return int(_run(sql, _params(adapters, values.values()), fetch=True)[0])


@cache
def _update_sql(vendor: str, model: type[Model], fields: tuple[str, ...], increments: tuple[str, ...]):
    connection = _connection()
    quote = connection.ops.quote_name
    mark = _placeholder(connection)
    meta = model._meta
    assignments = [f"{quote(meta.get_field(name).column)} = {mark}" for name in fields]
    for name in increments:
        column = quote(meta.get_field(name).column)
        assignments.append(f"{column} = {column} + {mark}")
    sql = f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {quote(meta.pk.column)} = {mark}"
    return sql, [_adapter(meta.get_field(name), connection) for name in fields]


def update(
    model: type[Model], pk: int, values: Mapping[str, Any], increments: Mapping[str, int] | None = None
) -> None:
    """``UPDATE … SET field = value, counter = counter + n WHERE pk = …`` for one row."""
    increments = increments or {}
    sql, adapters = _update_sql(_connection().vendor, model, tuple(values), tuple(increments))
    params = _params(adapters, values.values())
    params += increments.values()
    params.append(pk)
    _run(sql, params)


def execute(sql: str, params: list[Any]) -> int:
    """Run one prepared statement (SQL from :func:`placeholders`); the row count."""
    return _run(sql, params)


def placeholders(sql: str) -> str:
    """``sql`` written with ``%s`` placeholders, in the current vendor's style."""
    return sql.replace("%s", _placeholder(_connection()))


@cache
def _delete_sql(vendor: str, model: type[Model]) -> str:
    connection = _connection()
    quote = connection.ops.quote_name
    return (
        f"DELETE FROM {quote(model._meta.db_table)} "
        f"WHERE {quote(model._meta.pk.column)} = {_placeholder(connection)}"
    )


def delete(model: type[Model], pk: int) -> None:
    """Delete one row by primary key (no cascade, no signals: only for leaf rows)."""
    _run(_delete_sql(_connection().vendor, model), [pk])
