"""What the migrations share: the base of their frozen models, the timestamp column type, and the
steps of a table rebuild (set the old table aside, create the new one, copy the rows, drop the old
one).

Not a migration itself (the runner loads only files whose names start with a digit). A migration's
frozen models never import pipeline_models.models: a later change to a model must not change an old
migration. The helpers here are fixed in meaning once a migration uses them: a new need gets a new
helper.
"""
import importlib.util
import os
import re
from typing import Any, Dict, Iterable, List, Optional

from peewee import AutoField, ForeignKeyField, Model
# TIMESTAMPTZ; imports without psycopg
from playhouse.postgres_ext import DateTimeTZField as Timestamp

from pipeline_models.errors import SchemaMismatch
from pipeline_models.fields import backend_of

__all__ = ["Timestamp", "frozen_base", "migration", "q", "refuse_dependent_views", "set_aside",
           "copy_rows", "drop_aside", "reset_sequence", "refuse_bad_rows"]


def frozen_base(db: Any) -> type:
    """A base for one migration's frozen models: bound to the migrating database, snake_case table
    names."""

    class Frozen(Model):
        class Meta:
            database = db
            legacy_table_names = False

    return Frozen


def migration(name: str) -> Any:
    """Another migration's module, e.g. migration("0006_analytics_latest"), loaded from this
    folder."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    spec = importlib.util.spec_from_file_location("_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name + '"'


def refuse_dependent_views(db: Any, table: str, upgrade: str, fix: str) -> None:
    """Stop, naming them, if PostgreSQL views depend on `table`: a rebuild cannot carry them over.

    (SQLite views name their tables and see the rebuilt one: set_aside renames in legacy mode.)
    """
    if backend_of(db) != "postgres":
        return
    views = [r[0] for r in db.execute_sql(
        "SELECT DISTINCT view_name FROM information_schema.view_table_usage "
        "WHERE table_name = %s AND table_schema = current_schema() ORDER BY 1", (table,))]
    if views:
        raise SchemaMismatch(
            f"cannot upgrade {table} to {upgrade} while the views {', '.join(views)} depend on it: "
            f"drop them, run init_db again, then recreate them {fix} (nothing was changed)"
        )


def set_aside(db: Any, table: str) -> str:
    """Rename `table` to `table`__old, freeing its index (and PostgreSQL sequence) names; the new
    name."""
    aside = table + "__old"
    for index in db.get_indexes(table):
        if backend_of(db) == "postgres":
            db.execute_sql(f"ALTER INDEX {q(index.name)} RENAME TO {q(index.name + '__old')}")
        elif index.sql:  # SQLite's own autoindexes go with their table
            db.execute_sql(f"DROP INDEX {q(index.name)}")
    if backend_of(db) == "postgres" and "id" in {c.name for c in db.get_columns(table)}:
        sequence = db.execute_sql("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]
        if sequence:
            db.execute_sql(f"ALTER SEQUENCE {sequence} RENAME TO {q(aside + '_id_seq')}")
    if backend_of(db) == "postgres":
        db.execute_sql(f"ALTER TABLE {q(table)} RENAME TO {q(aside)}")
    # legacy mode: views, triggers and foreign keys keep naming `table`, so they see the new one
    else:
        legacy = db.execute_sql("PRAGMA legacy_alter_table").fetchone()[0]
        db.execute_sql("PRAGMA legacy_alter_table = 1")
        db.execute_sql(f"ALTER TABLE {q(table)} RENAME TO {q(aside)}")
        db.execute_sql(f"PRAGMA legacy_alter_table = {legacy}")
    return aside


def copy_rows(db: Any, model: type, select: str) -> None:
    """Fill `model`'s new table from `select`, whose columns are the model's columns, named and in
    order."""
    columns = ", ".join(q(f.column_name) for f in model._meta.sorted_fields)
    db.execute_sql(f"INSERT INTO {q(model._meta.table_name)} ({columns}) {select}")


def drop_aside(db: Any, tables: Iterable[str]) -> None:
    """Drop the tables set aside, children before parents."""
    for table in tables:
        db.execute_sql(f"DROP TABLE {q(table + '__old')}")


def reset_sequence(db: Any, table: str) -> None:
    """After rows were copied in with their ids, the next PostgreSQL id follows the largest."""
    if backend_of(db) == "postgres":
        db.execute_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                       f"COALESCE((SELECT MAX(id) FROM {q(table)}), 0) + 1, false)")


_CHECK = re.compile(r"CHECK \((.*)\)$", re.S)


def _checks(db: Any, nodes: Optional[List[Any]]) -> List[str]:
    """The expressions of the CHECK constraints among `nodes` (a field's or a table's
    constraints)."""
    found = []
    for node in nodes or ():
        ctx = db.get_sql_context()
        ctx.sql(node)
        match = _CHECK.search(ctx.query()[0])
        if match:
            found.append(match.group(1))
    return found


def refuse_bad_rows(db: Any, model: type, select: str, parents: Dict[str, str], doing: str,
                    extra: Iterable[tuple] = ()) -> None:
    """Stop before anything is written if a row `select` makes for `model` would break a rule of its
    table.

    `select` gives the new table's columns by name; `parents` maps a foreign key's column to the
    table (as it is now) whose ids it must name; `extra` adds (column, SQL condition a bad row
    meets, what it breaks). The error, "{doing} {table}: ...", names the row's id, the column and
    the value, and says what to do.
    """
    table = model._meta.table_name
    key = model._meta.primary_key.column_name
    tests = list(extra)
    for field in model._meta.sorted_fields:
        column = q(field.column_name)
        if not field.null and not isinstance(field, AutoField):
            tests.append((field.column_name, f"{column} IS NULL", "a value is required"))
        limit = getattr(field, "max_length", None)
        if limit:
            tests.append((field.column_name, f"length({column}) > {limit}",
                          f"at most {limit} characters"))
        for check in _checks(db, field.constraints):
            tests.append((field.column_name, f"NOT ({check})", f"CHECK ({check})"))
        if isinstance(field, ForeignKeyField) and field.column_name in parents:
            parent = q(parents[field.column_name])
            tests.append((field.column_name,
                          f"{column} IS NOT NULL AND {column} NOT IN (SELECT id FROM {parent})",
                          f"an id of {parents[field.column_name]}"))
    for check in _checks(db, model._meta.constraints):
        columns = [
            f.column_name for f in model._meta.sorted_fields if re.search(rf"\b{f.column_name}\b",
                                                                          check)]
        tests.append((", ".join(columns), f"NOT ({check})", f"CHECK ({check})"))
    candidates = f"({select}) AS candidate"
    # One scan in the usual case, where every row passes; the rule a row breaks is then looked for.
    if tests and db.execute_sql(f"SELECT 1 FROM {candidates} WHERE " + " OR ".join(
            f"({condition})" for _, condition, _ in tests) + " LIMIT 1").fetchone() is None:
        tests = []
    for column, condition, rule in tests:
        shown = ", ".join(q(c) for c in column.split(", "))
        row = db.execute_sql(f"SELECT {q(key)}, {shown} FROM {candidates} WHERE {condition} "
                             f"ORDER BY 1 LIMIT 1").fetchone()
        if row is not None:
            value = repr(row[1] if len(row) == 2 else tuple(row[1:]))
            value = value if len(value) <= 80 else value[:79] + "…"
            raise SchemaMismatch(
                f"{doing} {table}: row {key} = {row[0]} would have {column} = {value}, "
                f"which breaks its rule ({rule}); correct that row, then run init_db again "
                "(nothing was changed)")
    for columns, where in _unique_keys(db, model):
        shown = ", ".join(q(c) for c in columns)
        row = db.execute_sql(f"SELECT {shown}, MIN({q(key)}), MAX({q(key)}) FROM {candidates} "
                             f"WHERE {' AND '.join(f'{q(c)} IS NOT NULL' for c in columns)}{where} "
                             f"GROUP BY {shown} HAVING COUNT(*) > 1 ORDER BY 2 LIMIT 1").fetchone()
        if row is not None:
            value = repr(row[0] if len(columns) == 1 else tuple(row[:len(columns)]))
            raise SchemaMismatch(
                f"{doing} {table}: rows {key} = {row[-2]} and {row[-1]} would both have "
                f"{', '.join(columns)} = {value[:80]}, which must be unique; correct one of them, "
                "then run init_db again (nothing was changed)")


def _unique_keys(db: Any, model: type) -> List[tuple]:
    """(columns, extra WHERE) of each unique rule of `model`: unique fields and unique indexes."""
    keys = [
        ((f.column_name,), "") for f in model._meta.sorted_fields if f.unique and not f.primary_key]
    for index in model._meta.fields_to_index():
        if not getattr(index, "_unique", False):
            continue
        columns = tuple(e.column_name for e in index._expressions if hasattr(e, "column_name"))
        where = ""
        if index._where is not None:
            ctx = db.get_sql_context()
            ctx.sql(index._where)
            where = f" AND ({ctx.query()[0]})"
        if columns and (columns, "") not in keys:
            keys.append((columns, where))
    return keys
