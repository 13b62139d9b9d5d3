"""BaseModel, the base of every model (checked field names, reads that let a loop write on SQLite),
and the small helpers the model modules share."""
import contextlib
import datetime
import re
from typing import (Any, ContextManager, Dict, Iterable, Iterator, List, Optional, Sequence, Set,
                    Tuple, TypeVar)

import peewee
from peewee import Check

from ..bulk import refuse_unknown_fields  # in bulk.py, which must not import the models
from ..bulk import insert_rows as _bulk_insert_rows
from ..db import db
from ..fields import backend_of, escape_unstorable


def at_least_zero(column: str) -> list:
    return [Check(f"{column} >= 0")]


def _names(data: Any) -> List[str]:
    """The string keys of insert()'s or update()'s positional dict (Field keys and queries pass
    through)."""
    return [key for key in data if isinstance(key, str)] if isinstance(data, dict) else []


def one_line(text: str, limit: int = 1000) -> str:
    """Collapse whitespace (tracebacks, multi-line messages) into one line of at most `limit`
    characters.

    NUL and lone surrogates, which no database stores, are escaped: a failure is never lost to its
    message.
    """
    line = " ".join(escape_unstorable(str(text)).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


_Model = TypeVar("_Model", bound="BaseModel")


class _Select(peewee.ModelSelect):
    """peewee's ModelSelect, reading every row when a loop starts on SQLite, so the loop body may
    write.

    An unfinished SQLite read pins its snapshot: a write from the loop body then fails at once with
    "database is locked" once another process has committed (SQLITE_BUSY_SNAPSHOT). peewee keeps
    every row it yields in the query's cache anyway, so reading them up front costs no memory;
    query.iterator() still streams, and a write while it is open raises BusySnapshot.
    """

    def __iter__(self) -> Iterator[Any]:
        wrapper = self.execute()
        if backend_of(self._database) == "sqlite":
            wrapper.fill_cache()
        return iter(wrapper)


class BaseModel(peewee.Model):
    """Base of every model: bound to the shared proxy, snake_case table names."""

    class Meta:
        database = db
        legacy_table_names = False
        # save() writes only the fields the caller changed: a stale copy of a row never puts back
        # the values an operation (or another process) wrote since it was read.
        only_save_dirty = True

    @classmethod
    def select(cls, *fields: Any) -> peewee.ModelSelect:
        """peewee's select(); looping over it on SQLite reads the rows first (see _Select)."""
        return _Select(cls, fields or cls._meta.sorted_fields, is_default=not fields)

    def _saving(self, inserting: bool, names: Set[str]) -> ContextManager[Any]:
        """What save() writes inside, once the values are checked: a model with a rule across rows
        (Clip) locks and checks it here, in the transaction of the write."""
        return contextlib.nullcontext()

    def _written(self, changes: Dict[str, Any]) -> None:
        """Keep this object in step with what an operation just wrote: the values, and nothing left
        to save."""
        for name, value in changes.items():
            setattr(self, name, value)
        self._dirty.difference_update(changes)

    def locked_row(self: _Model) -> _Model:
        """This row as the database has it, locked until the transaction (write_lock()) ends."""
        cls = type(self)
        query = cls.select().where(cls._meta.primary_key == self.get_id())
        if backend_of(db) == "postgres":
            query = query.for_update()
        row = query.first()
        if row is None:
            raise cls.DoesNotExist(f"{cls.__name__} {self.get_id()} no longer exists")
        return row

    def refresh(self: _Model) -> _Model:
        """Reload every field from the database, where another call or process may have changed the
        row; self.

        Raises DoesNotExist when the row was deleted.
        """
        fresh = type(self).get_by_id(self.get_id())
        self.__data__, self.__rel__ = dict(fresh.__data__), {}
        self._dirty.clear()
        return self

    def save(self, force_insert: bool = False, only: Any = None) -> Any:
        """peewee's save(), writing only the changed fields (Meta.only_save_dirty); a bad value is
        refused (ValueError naming the field) before anything is written, the primary key's
        included, and so is None for a column that needs a value. A refusal of the database (a
        foreign row that does not exist, a CHECK, a unique value taken) is an IntegrityError naming
        Model.field beside the database's words."""
        inserting = self._pk is None or force_insert
        for field in self._meta.sorted_fields if inserting else self.dirty_fields:
            value = self.__data__.get(field.name)
            if value is None and not field.null and not isinstance(field, peewee.AutoField) \
                    and field.db_value(None) is None:  # (a JSON column stores None as null)
                raise ValueError(f"{field.model.__name__}.{field.name}: a value is required, not "
                                 "None")
        for field in self.dirty_fields:
            field.db_value(self.__data__.get(field.name))
        names = {field if isinstance(field, str) else field.name
                 for field in (only or self.dirty_fields)}
        try:
            with self._saving(inserting, names):
                return super().save(force_insert=force_insert, only=only)
        except peewee.IntegrityError as exc:
            named = _named_refusal(self, exc)
            if named is None:
                raise
            raise named from exc

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # peewee's own row reads carry whatever the query selected
        if "__no_default__" not in kwargs:
            refuse_unknown_fields(type(self), kwargs)
        super().__init__(*args, **kwargs)

    @classmethod
    def insert(cls, data: Any = None, /, **insert: Any) -> peewee.ModelInsert:
        """peewee's insert(), refusing (TypeError) a name that is not a field instead of failing
        obscurely."""
        refuse_unknown_fields(cls, [*_names(data), *insert])
        return super().insert(data, **insert)

    @classmethod
    def insert_many(cls, rows: Iterable[Any], fields: Any = None) -> peewee.ModelInsert:
        """peewee's insert_many(), refusing (TypeError) a name that is not a field instead of
        failing obscurely."""
        return super().insert_many(*_checked_many(cls, rows, fields))

    @classmethod
    def replace_many(cls, rows: Iterable[Any], fields: Any = None) -> peewee.ModelInsert:
        """peewee's replace_many(), refusing (TypeError) a name that is not a field instead of
        failing obscurely."""
        return super().replace_many(*_checked_many(cls, rows, fields))

    @classmethod
    def update(cls, data: Any = None, /, **update: Any) -> peewee.ModelUpdate:
        """peewee's update(), refusing (TypeError) a name that is not a field instead of failing
        obscurely."""
        refuse_unknown_fields(cls, [*_names(data), *update])
        return super().update(data, **update)

    @classmethod
    def insert_rows(cls, rows: Iterable[Any], fields: Optional[Sequence[str]] = None,
                    chunk_size: int = 2000, none_is_default: Sequence[str] = ()) -> int:
        """Insert many rows, validated as create() would, in one transaction.

        `rows` is any iterable (a generator keeps memory flat: it is read `chunk_size` rows at a
        time) of dicts keyed by field name, or of tuples in the order of `fields` (default: every
        field but the primary key). Missing values get the field's default, and so does None in the
        `none_is_default` columns. A bad row raises ValueError or peewee.IntegrityError naming its
        position (counted from 0) and the field, and nothing of the batch is written. Returns the
        number of rows inserted.

        SQLite runs one prepared INSERT over every row; PostgreSQL (psycopg 3) streams the rows with
        COPY.
        """
        return _bulk_insert_rows(cls, rows, fields=fields, chunk_size=chunk_size,
                                 none_is_default=none_is_default)

    @classmethod
    def _bulk_trigger(cls) -> Optional[Tuple[str, str, str]]:
        """A SQLite row trigger insert_rows may set aside for a large batch: (name, key field,
        refresh SQL).

        SQLite has row triggers only. One that costs as much as the row it follows
        (analytics_latest's upsert) is dropped for a batch of more than one chunk, and the refresh
        statement (one ? for the key) runs once per distinct key instead, before the trigger is made
        again: all in the batch's transaction, which holds the write lock, so no other connection
        ever writes without it and a failure puts it back.
        """
        return None


_SQLITE_COLUMNS = re.compile(r"(?:UNIQUE|NOT NULL) constraint failed: (.+)$")
_SQLITE_CHECK = re.compile(r"CHECK constraint failed: (.+)$")
_PG_KEY = re.compile(r"Key \((.+?)\)=\((.*)\) (is not present in table|already exists)")
_PG_NULL = re.compile(r'null value in column "(\w+)"')
_PG_CHECK = re.compile(r'violates check constraint "(\w+)"')


def _named_checks(model: type) -> Dict[str, str]:
    """{name: expression} of the model's named table CHECKs (Check(expression, name=...) in
    Meta.constraints)."""
    checks = {}
    for node in model._meta.constraints or ():
        found = re.match(r'CONSTRAINT "?(\w+)"? CHECK \((.*)\)$',
                         db.get_sql_context().sql(node).query()[0])
        if found:
            checks[found.group(1)] = found.group(2)
    return checks


def _shown_value(value: Any) -> str:
    return value.isoformat(" ") if isinstance(value, datetime.datetime) else repr(value)


def _named_refusal(obj: "BaseModel", exc: peewee.IntegrityError) -> Optional[peewee.IntegrityError]:
    """The database's refusal of saving `obj`, as an IntegrityError that names Model.field first;
    None when the message names no column of the model (it is then raised as it is)."""
    model, text = type(obj), str(exc)
    first = text.splitlines()[0] if text else ""
    columns = {f.column_name: f for f in model._meta.sorted_fields}
    name = lambda fields: ", ".join(f"{model.__name__}.{f.name}" for f in fields)  # noqa: E731
    found = _PG_KEY.search(text)
    if found:
        fields = [columns[c.strip()] for c in found.group(1).split(",") if c.strip() in columns]
        if found.group(3) == "already exists":
            return peewee.IntegrityError(f"{name(fields)}: {found.group(2)} is taken by another "
                                         f"row ({first})")
        if len(fields) == 1 and isinstance(fields[0], peewee.ForeignKeyField):
            return peewee.IntegrityError(f"{name(fields)}: no {fields[0].rel_model.__name__} has "
                                         f"the id {found.group(2)} ({first})")
    found = _SQLITE_COLUMNS.search(first)
    if found:
        fields = [columns[c.split(".")[-1].strip()] for c in found.group(1).split(",")
                  if c.split(".")[-1].strip() in columns]
        if fields:
            return peewee.IntegrityError(f"{name(fields)}: the value is taken by another row "
                                         f"({first})")
    # SQLite names no column: the first missing row does
    if "FOREIGN KEY constraint failed" in first:
        for field in model._meta.refs:
            value = obj.__data__.get(field.name)
            if (value is not None
                    and not field.rel_model.select().where(field.rel_field == value).exists()):
                return peewee.IntegrityError(f"{name([field])}: no {field.rel_model.__name__} has "
                                             f"the id {value} ({first})")
    found = _PG_CHECK.search(first) or _SQLITE_CHECK.search(first)
    if found:
        # a table's CHECK by its expression
        rule = _named_checks(model).get(found.group(1), found.group(1))
        fields = ([f for f in model._meta.sorted_fields if re.search(rf"\b{f.column_name}\b", rule)]
                  or [f for f in model._meta.sorted_fields
                      if rule.startswith(f"{model._meta.table_name}_{f.column_name}_")])
        if fields:
            values = ", ".join(_shown_value(obj.__data__.get(f.name)) for f in fields)
            return peewee.IntegrityError(f"{name(fields)}: {values} breaks the rule {rule} "
                                         f"({first})")
    found = _PG_NULL.search(first)
    if found and found.group(1) in columns:
        return peewee.IntegrityError(f"{name([columns[found.group(1)]])}: a value is required "
                                     f"({first})")
    return None


def _checked_many(model: type, rows: Iterable[Any], fields: Any) -> Tuple[Iterable[Any], Any]:
    """insert_many()'s rows and fields, with every string name checked: a list at once, an iterator
    as peewee reads it (still before anything is written: peewee builds the whole statement
    first)."""
    refuse_unknown_fields(model, [name for name in fields or () if isinstance(name, str)])

    def checked(row: Any) -> Any:
        refuse_unknown_fields(model, _names(row))
        return row

    if isinstance(rows, (list, tuple)):
        for row in rows:
            checked(row)
        return rows, fields
    return map(checked, rows), fields


@contextlib.contextmanager
def unchanged_on_failure(*objs: Optional[BaseModel]) -> Iterator[None]:
    """Objects an operation updates as it writes: put back as they were when its transaction
    fails."""
    # Everything the object holds (a run's claim too), with its data, dirty set and related rows
    # copied.
    saved = [(obj, {**obj.__dict__, "__data__": dict(obj.__data__), "_dirty": set(obj._dirty),
                    "__rel__": dict(obj.__rel__)}) for obj in objs if obj is not None]
    try:
        yield
    except BaseException:
        for obj, state in saved:
            obj.__dict__.clear()
            obj.__dict__.update(state)
        raise


def sync_copy(obj: Optional[BaseModel], fresh: BaseModel) -> None:
    """Bring a caller's copy of a row up to date with `fresh`, the row an operation just wrote."""
    if obj is not None and obj is not fresh:
        obj.__data__.update(fresh.__data__)
        obj._dirty.clear()
