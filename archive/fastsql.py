"""Plain SQL for the few statements every store runs, built once from the models.

Why not the ORM here: profiled (``bench.run stow --stow-profile``), building a queryset
and compiling it to SQL costs 0.3 to 0.5 ms of Python per statement, and storing one
instance into an existing series runs about ten of them — most of the index's share of
a store's CPU. The statements themselves take microseconds. This module builds each
statement's SQL text once per database vendor from the models' ``_meta`` (table and
column names, quoting, ``FOR UPDATE`` where the backend has it), adapts values with each
field's own ``get_db_prep_save`` and converts results with the field's ``to_python``, so
what reaches the database is what the ORM would have sent.

Only simple, single-table statements live here: select one row by equality, insert one
row, update one row by primary key (with counter increments), delete by primary key,
existence by equality. Anything rarer stays ORM.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from django.db import connections, models
from django.db.models import Model

DB = "default"


def _connection():
    return connections[DB]


def _converter(field: models.Field) -> Callable[[Any], Any]:
    if isinstance(field, models.JSONField):
        # SQLite and Django's psycopg setup both hand jsonb/JSON back as text.
        return lambda value: json.loads(value) if isinstance(value, (str, bytes)) else value
    return lambda value: None if value is None else field.to_python(value)


@cache
def _select_sql(
    vendor: str, model: type[Model], lookup: tuple[str, ...], fields: tuple[str, ...], lock: bool
):
    connection = _connection()
    quote = connection.ops.quote_name
    meta = model._meta
    # Model.from_db() takes values in the order of the model's concrete fields.
    order = {field.attname: index for index, field in enumerate(meta.concrete_fields)}
    columns = sorted({meta.get_field(name) for name in fields}, key=lambda field: order[field.attname])
    where = " AND ".join(f"{quote(meta.get_field(name).column)} = %s" for name in lookup)
    sql = (
        f"SELECT {', '.join(quote(field.column) for field in columns)} "
        f"FROM {quote(meta.db_table)} WHERE {where}"
    )
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return sql, [field.attname for field in columns], [_converter(field) for field in columns]


def select_one(
    model: type[Model], lookup: Mapping[str, Any], fields: Iterable[str], *, lock: bool = False
) -> Model | None:
    """The row matching ``lookup`` (equality on unique columns) with only ``fields`` loaded.

    Returns a model instance built like the ORM builds one (``Model.from_db``; other
    fields deferred), or ``None``. ``lock=True`` adds ``FOR UPDATE`` where supported
    (PostgreSQL); SQLite serializes writers anyway.
    """
    connection = _connection()
    names = tuple(lookup)
    fields = tuple(dict.fromkeys(("id", *fields)))
    sql, attnames, converters = _select_sql(connection.vendor, model, names, fields, lock)
    params = [model._meta.get_field(name).get_db_prep_value(lookup[name], connection) for name in names]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = [convert(value) for convert, value in zip(converters, row, strict=True)]
    return model.from_db(DB, attnames, values)


def exists(model: type[Model], **lookup: Any) -> bool:
    """Whether a row matches ``lookup`` (equality)."""
    connection = _connection()
    names = tuple(lookup)
    sql, _, _ = _select_sql(connection.vendor, model, names, ("id",), False)
    params = [model._meta.get_field(name).get_db_prep_value(lookup[name], connection) for name in names]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


def _prepared(columns: list[models.Field], values: Iterable[Any], connection) -> list[Any]:
    return [field.get_db_prep_save(value, connection) for field, value in zip(columns, values, strict=True)]


@cache
def _insert_sql(vendor: str, model: type[Model], fields: tuple[str, ...]):
    connection = _connection()
    quote = connection.ops.quote_name
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    pk = meta.pk
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    returning = connection.features.can_return_columns_from_insert
    if returning:
        sql += f" RETURNING {quote(pk.column)}"
    return sql, columns, returning


def insert(model: type[Model], values: Mapping[str, Any]) -> int:
    """Insert one row (every value given explicitly) and return its primary key."""
    connection = _connection()
    sql, columns, returning = _insert_sql(connection.vendor, model, tuple(values))
    params = _prepared(columns, values.values(), connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:
            return int(cursor.fetchone()[0])
        return int(connection.ops.last_insert_id(cursor, model._meta.db_table, model._meta.pk.column))


@cache
def _update_sql(vendor: str, model: type[Model], fields: tuple[str, ...], increments: tuple[str, ...]):
    connection = _connection()
    quote = connection.ops.quote_name
    meta = model._meta
    assignments = [f"{quote(meta.get_field(name).column)} = %s" for name in fields]
    for name in increments:
        column = quote(meta.get_field(name).column)
        assignments.append(f"{column} = {column} + %s")
    sql = f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {quote(meta.pk.column)} = %s"
    return sql, [meta.get_field(name) for name in fields]


def update(
    model: type[Model], pk: int, values: Mapping[str, Any], increments: Mapping[str, int] | None = None
) -> None:
    """``UPDATE … SET field = value, counter = counter + n WHERE pk = …`` for one row."""
    connection = _connection()
    increments = increments or {}
    sql, columns = _update_sql(connection.vendor, model, tuple(values), tuple(increments))
    params = _prepared(columns, values.values(), connection)
    params += list(increments.values())
    params.append(pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@cache
def _delete_sql(vendor: str, model: type[Model]) -> str:
    quote = _connection().ops.quote_name
    return f"DELETE FROM {quote(model._meta.db_table)} WHERE {quote(model._meta.pk.column)} = %s"


def delete(model: type[Model], pk: int) -> None:
    """Delete one row by primary key (no cascade, no signals: only for leaf rows)."""
    connection = _connection()
    with connection.cursor() as cursor:
        cursor.execute(_delete_sql(connection.vendor, model), [pk])
