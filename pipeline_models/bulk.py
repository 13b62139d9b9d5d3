"""The bulk-insert engine behind BaseModel.insert_rows: validated rows in chunks, one prepared
INSERT on SQLite, COPY on PostgreSQL (psycopg 3). It is given the model class and never imports the
models."""
import itertools
import operator
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

import peewee

from ._peewee import exception_wrapper
from .db import db, missing_table_error, write_lock
from .errors import DatabaseNotBound
from .fields import backend_of, whole_number

# A value the caller left out (the field's default goes there); None is a value.
_MISSING = object()


def refuse_unknown_fields(model: type, names: Any, allowed: Any = None) -> None:
    """Refuse names that are not fields the caller may set (default: any field, or a foreign key's
    _id column).

    peewee would silently ignore a misspelt keyword in Model(...) and create(), and fail obscurely
    in insert() and update(); the TypeError names the unknown name and the valid ones.
    """
    if allowed is None:
        allowed = model._meta.combined  # field names, and column names such as pipeline_run_id
        listed = model._meta.sorted_field_names
    else:
        listed = sorted(allowed)
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise TypeError(
            f"{model.__name__} has no settable field {', '.join(unknown)}; "
            f"use {', '.join(listed)}"
        )


def insert_rows(model: type, rows: Iterable[Any], fields: Optional[Sequence[str]] = None,
                chunk_size: int = 2000, none_is_default: Sequence[str] = ()) -> int:
    """Insert many rows of `model`, validated as create() would, in one transaction
    (BaseModel.insert_rows)."""
    whole_number(f"{model.__name__}.insert_rows: chunk_size", 1, unit="rows")(chunk_size)
    database = db.obj
    if database is None:
        raise DatabaseNotBound()
    columns = [f for f in model._meta.sorted_fields if not isinstance(f, peewee.AutoField)]
    names = [f.name for f in columns]
    given = list(fields) if fields is not None else names
    refuse_unknown_fields(model, given, names)
    if backend_of(database) == "sqlite":
        marks = ["json(?)" if isinstance(f, peewee.JSONField) else "?" for f in columns]
    else:
        marks = ["%s::jsonb" if isinstance(f, peewee.JSONField) else "%s" for f in columns]
    quote = database.quote[0] + "{}" + database.quote[1]
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote.format(model._meta.table_name),
        ", ".join(quote.format(f.column_name) for f in columns), ", ".join(marks))

    kind: Any = None  # of the batch's first row: dict, or (tuple, list)

    def convert(chunk: List[Any], start: int) -> List[tuple]:
        return _bulk_params(model, chunk, start, kind, columns, given, names, none_is_default)

    count = 0
    with write_lock():
        try:
            chunks = peewee.chunked(rows, chunk_size)
            first = next(chunks, None)
            if first is None:  # nothing to write: not even the table is looked at
                return 0
            kind = dict if isinstance(first[0], dict) else (tuple, list)
            second = next(chunks, None)
            chunks = itertools.chain([first] if second is None else [first, second], chunks)
            cursor = database.cursor()
            # psycopg 3
            copy_sql, oids, one_copy = (_copy_plan(model, cursor, columns) if hasattr(cursor,
                                                                                      "copy")
                                        else (None, None, False))
            if one_copy:
                return _copy_stream(model, cursor, copy_sql, oids, chunks, convert)
            sqlite = backend_of(database) == "sqlite"
            # A batch of more than one chunk sets the model's costly row trigger aside (see
            # _bulk_trigger).
            trigger = model._bulk_trigger() if sqlite and second is not None else None
            trigger_sql = trigger and _set_trigger_aside(database, trigger[0])
            key_of = trigger_sql and operator.itemgetter(names.index(trigger[1]))
            keys: set = set()
            for chunk in chunks:
                params = convert(chunk, count)
                if trigger_sql:
                    keys.update(map(key_of, params))
                if sqlite:
                    # sqlite3's executemany takes a row, inserts it, then takes the next, and stops
                    # at the first row refused: the rows it took, less one, is the refused row's
                    # position. No savepoint per chunk to search it again (with analytics_latest's
                    # triggers, a savepoint makes SQLite copy every page the chunk touches into its
                    # journal).
                    taken = itertools.count()
                    try:
                        with exception_wrapper:
                            database.cursor().executemany(sql, map(operator.itemgetter(1),
                                                                   zip(taken, params)))
                    except peewee.IntegrityError as exc:
                        raise peewee.IntegrityError(
                            f"row {count + next(taken) - 1}: {model.__name__}: {exc}") from None
                else:
                    try:
                        with db.atomic(), exception_wrapper:
                            if copy_sql is None:  # psycopg 2: no COPY here
                                database.cursor().executemany(sql, params)
                            else:
                                _copy_chunk(database.cursor(), copy_sql, oids, params)
                    except peewee.IntegrityError as exc:
                        raise _bad_row(model, database, sql, params, count, exc) from None
                count += len(params)
            if trigger_sql:
                database.cursor().executemany(trigger[2], ((key,) for key in sorted(keys)))
                database.execute_sql(trigger_sql)
        except (peewee.OperationalError, peewee.ProgrammingError) as exc:
            # The bulk path writes through a cursor, not the proxy: name a missing table here too.
            missing = missing_table_error(exc, database)
            if missing is None:
                raise
            raise missing from exc
    return count


def _bulk_params(model: type, chunk: List[Any], start: int, kind: Any, columns: List[peewee.Field],
                 given: List[str], names: List[str], none_is_default: Sequence[str]) -> List[tuple]:
    """The chunk's rows (all of `kind`: dict, or tuple and list) as statement parameters, converted
    column by column."""
    if not all(issubclass(row_type, kind) for row_type in set(map(type, chunk))):
        position = next(i for i, row in enumerate(chunk) if not isinstance(row, kind))
        raise TypeError(f"row {start + position}: {model.__name__}: a row is a dict of field "
                        "values or a tuple "
                        f"of the values of {', '.join(given)}, one kind per batch, "
                        f"not {type(chunk[position]).__name__}")
    if kind is dict:
        keys = set(itertools.chain.from_iterable(chunk))
        if not keys <= set(names):
            position = next(i for i, row in enumerate(chunk) if not row.keys() <= set(names))
            try:
                refuse_unknown_fields(model, chunk[position], names)
            except TypeError as exc:
                raise TypeError(f"row {start + position}: {exc}") from None
        values = {name: list(map(operator.methodcaller("get", name, _MISSING), chunk))
                  for name in names if name in keys}
    else:
        widths = set(map(len, chunk))
        if widths != {len(given)}:
            position = next(i for i, row in enumerate(chunk) if len(row) != len(given))
            raise ValueError(f"row {start + position}: {len(chunk[position])} values for the "
                             f"{len(given)} fields {', '.join(given)}")
        values = dict(zip(given, map(list, zip(*chunk))))
    for name in none_is_default:
        if name in values and None in values[name]:
            values[name] = [_MISSING if v is None else v for v in values[name]]
    converted = [
        _bulk_column(model, field, values.get(field.name), len(chunk), start) for field in columns]
    return list(zip(*converted))


def _bulk_column(model: type, field: peewee.Field, values: Optional[List[Any]], size: int,
                 start: int) -> List[Any]:
    """One column of a chunk: defaults filled in, NULLs checked, values validated and converted."""
    if values is None:
        values = [_MISSING] * size
    # The set of types answers "any missing? any None?" without comparing every value to them.
    types = set(map(type, values))
    if object in types:  # _MISSING is the only plain object() a column holds
        default = field.default
        values = [
            (default() if callable(default) else default) if v is _MISSING else v for v in values]
        types = set(map(type, values))
    present, stored_none = values, None
    if type(None) in types:
        # what create() stores for None: NULL, or JSON text 'null'
        stored_none = field.db_value(None)
        if stored_none is None and not field.null:  # what create() says: a value is required
            position = values.index(None)
            raise ValueError(f"row {start + position}: {model.__name__}.{field.name}: a value is "
                             "required, not None")
        present = [v for v in values if v is not None]
        types.discard(type(None))
    fast = getattr(field, "fast_values", None)
    converted = fast(present, types) if fast is not None and present else None
    if converted is None:
        slow = getattr(field, "slow_value", field.db_value)
        converted = []
        for position, value in enumerate(present):
            try:
                converted.append(slow(value))
            except (TypeError, ValueError) as exc:
                where = next(i for i, v in enumerate(values) if v is value)
                label = f"{model.__name__}.{field.name}"
                message = str(exc) if str(exc).startswith(label) else f"{label}: {exc}"
                raise ValueError(f"row {start + where}: {message}") from None
    if present is values:
        return converted
    it = iter(converted)
    return [stored_none if v is None else next(it) for v in values]


def _bad_row(model: type, database: peewee.Database, sql: str, params: List[tuple], start: int,
             error: Exception) -> Exception:
    """Find which row of a chunk the database refused (the error path only: one row at a time)."""
    for position, row in enumerate(params):
        try:
            with db.atomic(), exception_wrapper:
                database.cursor().execute(sql, row)
        except peewee.IntegrityError as exc:
            return peewee.IntegrityError(f"row {start + position}: {model.__name__}: {exc}")
    return error


# Column types (pg_type oids) a binary COPY writes straight from what _bulk_params gives on
# PostgreSQL: bool, int8, int4, text, float8, varchar, timestamptz. Binary costs the client a fifth
# of text's formatting (floats and datetimes are not printed); a table with any other type (jsonb)
# is copied as text.
_COPY_BINARY_TYPES = frozenset({16, 20, 23, 25, 701, 1043, 1184})


def _copy_plan(model: type, cursor: Any, columns: List[peewee.Field]) -> Tuple[str,
                                                                               Optional[List[int]],
                                                                               bool]:
    """(COPY statement, column type oids for a binary COPY or None for text, whether one COPY may
    take it all).

    One COPY is safe when every check the table makes is made row by row as COPY reads the row
    (CHECK, NOT NULL), so the error's line is the first bad row. A foreign key is checked when the
    COPY ends, and a unique index on a written column when COPY flushes its buffer (after a later
    row's CHECK): such tables get a COPY per chunk, in a savepoint, and a refused chunk is searched
    row by row as on SQLite.
    """
    names = [f.column_name for f in columns]
    # The written columns' types in their order; then: no foreign key or exclusion constraint, and
    # no unique index on a written column (or on an expression).
    query = """
        SELECT array_agg(a.atttypid::int \
ORDER BY array_position(%(names)s::text[], a.attname::text)),
            NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = t.oid AND contype IN ('f', 'x'))
            AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = t.oid AND i.indisunique
                AND (0 = ANY (i.indkey::int2[]) OR EXISTS (
                    SELECT FROM pg_attribute u WHERE u.attrelid = t.oid \
AND u.attnum = ANY (i.indkey::int2[])
                    AND u.attname::text = ANY (%(names)s::text[]))))
        FROM (SELECT %(table)s::regclass::oid AS oid) t
        JOIN pg_attribute a ON a.attrelid = t.oid AND NOT a.attisdropped
            AND a.attname::text = ANY (%(names)s::text[])
        GROUP BY t.oid"""
    with exception_wrapper:  # a missing table fails here: insert_rows names it
        cursor.execute(query, {"names": names,
                               "table": '"{}"'.format(model._meta.table_name.replace('"', '""'))})
        oids, one_copy = cursor.fetchone() or (None, False)
    binary = oids is not None and len(oids) == len(names) and set(oids) <= _COPY_BINARY_TYPES
    sql = 'COPY "{}" ({}) FROM STDIN{}'.format(model._meta.table_name,
                                               ", ".join(f'"{n}"' for n in names),
                                               " (FORMAT BINARY)" if binary else "")
    return sql, oids if binary else None, bool(one_copy)


def _copy_chunk(cursor: Any, sql: str, oids: Optional[List[int]], params: List[tuple]) -> None:
    """One chunk through its own COPY."""
    with cursor.copy(sql) as copy:
        if oids:
            copy.set_types(oids)
        for row in params:
            copy.write_row(row)


def _copy_stream(model: type, cursor: Any, sql: str, oids: Optional[List[int]],
                 chunks: Iterator[List[Any]], convert: Any) -> int:
    """Every chunk through one COPY: the server inserts a chunk while the next one is validated.

    A statement's own costs (a statement trigger such as analytics_latest's) are paid once. A row
    the database refuses ends the COPY with an error whose line names the row.
    """
    import select

    count = start = 0
    current: Any = None  # the open COPY's context manager; its first row is row `start`
    fd = cursor.connection.fileno()
    # select() refuses a descriptor above 1023, which a busy process may have
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)

        def spoke() -> bool:
            return bool(poller.poll(0))
    else:
        def spoke() -> bool:
            return bool(select.select([fd], [], [], 0)[0])

    def finish() -> None:
        nonlocal current
        done, current = current, None
        try:
            with exception_wrapper:
                done.__exit__(None, None, None)
        except peewee.IntegrityError as exc:
            raise _copy_bad_row(model, exc, start, count - start) from None

    try:
        while True:
            try:
                chunk = next(chunks, None)
                params = None if chunk is None else convert(chunk, count)
            except Exception:
                # A bad value, or the caller's generator failing, after rows the database may have
                # refused: SQLite would have reported such a row first, as its chunk was written
                # before this one.
                if current is not None:
                    finish()
                raise
            if params is None:
                break
            if current is None:
                opening = cursor.copy(sql)
                with exception_wrapper:
                    copy = opening.__enter__()
                current, start = opening, count
                if oids:
                    copy.set_types(oids)
                write_row = copy.write_row
            with exception_wrapper:
                for row in params:
                    write_row(row)
            count += len(params)
            # The server says nothing during a COPY unless it refused a row (or sends a notice):
            # then end this COPY now, rather than stream the rest of a generator of any length to no
            # purpose.
            if spoke():
                finish()
        if current is not None:
            finish()
    except BaseException as exc:
        # abort the COPY (CopyFail): the connection must be free for the rollback
        if current is not None:
            current.__exit__(type(exc), exc, exc.__traceback__)
        raise
    return count


def _copy_bad_row(model: type, error: peewee.IntegrityError, start: int, size: int) -> Exception:
    """Name the row a COPY of `size` rows, which began at row `start`, was refused on; from its
    error's line."""
    import re

    context = getattr(getattr(getattr(error, "orig", None), "diag", None), "context", None) or ""
    # "COPY analytics, line 7", or its translation: the first number after the table's name.
    found = re.search(rf"^COPY {re.escape(model._meta.table_name)}\b\D*(\d+)", context,
                      re.MULTILINE)
    if found is None or not 1 <= int(found.group(1)) <= size:
        return error  # not a row's own failure (a statement trigger's): no row to name
    message = str(error)
    cut = message.find(context)
    # the row is named instead: drop the CONTEXT, whose line counts from this COPY's start
    if cut > 0:
        message = message[:message.rfind("\n", 0, cut)].rstrip()
    return peewee.IntegrityError(f"row {start + int(found.group(1)) - 1}: {model.__name__}: "
                                 f"{message}")


def _set_trigger_aside(database: peewee.SqliteDatabase, name: str) -> Optional[str]:
    """Drop the SQLite trigger `name` in the current transaction; return the SQL that makes it
    again."""
    row = database.execute_sql("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                               (name,)).fetchone()
    if row is None:  # not made on this database (a table made by hand): nothing to set aside
        return None
    database.execute_sql(f'DROP TRIGGER "{name}"')
    return row[0]

