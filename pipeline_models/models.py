"""The ten models of the short-video pipeline, all bound to `pipeline_models.db`.

discovered video -> pipeline run -> clips, scripts, TTS audio, shorts, review logs, error logs;
analytics snapshots are keyed by the uploaded short's YouTube id; config overrides stand alone.
"""
import collections
import contextlib
import datetime
import itertools
import logging
import operator
import random
import secrets
import time
import traceback
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

import peewee
from peewee import SQL, Check

from . import _peewee
from .db import SCHEMA_MODELS, _tables_missing, db, write_lock
from .enums import ReviewAction, RunStatus, ShortStatus, VideoStatus
from .errors import AlreadyAnswered, AlreadyUploaded, DatabaseNotBound, InvalidTransition, LeaseLost, UploadInDoubt
from .fields import (
    BigIntegerField,
    BooleanField,
    CharField,
    EnumField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    JSONField,
    JSONTextField,
    TextField,
    UTCDateTimeField,
    escape_unstorable,
    utcnow,
)

logger = logging.getLogger("pipeline_models")

__all__ = [
    "BaseModel",
    "DiscoveredVideo",
    "PipelineRun",
    "Clip",
    "Script",
    "TTSAudio",
    "Short",
    "Analytics",
    "ReviewLog",
    "ConfigOverride",
    "ErrorLog",
    "ALL_MODELS",
]


def _at_least_zero(column: str) -> list:
    return [Check(f"{column} >= 0")]


def _fields_named(model: type, names: Any, allowed: Any = None) -> None:
    """Refuse names that are not fields the caller may set (default: any field, or a foreign key's _id column).

    peewee would silently ignore a misspelt keyword in Model(...) and create(), and fail obscurely in
    insert() and update(); the TypeError names the unknown name and the valid ones.
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


def _names(data: Any) -> List[str]:
    """The string keys of insert()'s or update()'s positional dict (Field keys and queries pass through)."""
    return [key for key in data if isinstance(key, str)] if isinstance(data, dict) else []


def _one_line(text: str, limit: int = 1000) -> str:
    """Collapse whitespace (tracebacks, multi-line messages) into one line of at most `limit` characters.

    NUL and lone surrogates, which no database stores, are escaped: a failure is never lost to its message.
    """
    line = " ".join(escape_unstorable(str(text)).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _is_postgres() -> bool:
    return isinstance(db.obj, peewee.PostgresqlDatabase)


_MISSING = object()


_Model = TypeVar("_Model", bound="BaseModel")


class _Select(peewee.ModelSelect):
    """peewee's ModelSelect, reading every row when a loop starts on SQLite, so the loop body may write.

    An unfinished SQLite read pins its snapshot: a write from the loop body then fails at once with
    "database is locked" once another process has committed (SQLITE_BUSY_SNAPSHOT). peewee keeps every
    row it yields in the query's cache anyway, so reading them up front costs no memory; query.iterator()
    still streams, and a write while it is open raises BusySnapshot.
    """

    def __iter__(self) -> Iterator[Any]:
        wrapper = self.execute()
        if isinstance(getattr(self._database, "obj", self._database), peewee.SqliteDatabase):
            wrapper.fill_cache()
        return iter(wrapper)


class BaseModel(peewee.Model):
    """Base of every model: bound to the shared proxy, snake_case table names."""

    class Meta:
        database = db
        legacy_table_names = False

    @classmethod
    def select(cls, *fields: Any) -> peewee.ModelSelect:
        """peewee's select(); looping over it on SQLite reads the rows first (see _Select)."""
        return _Select(cls, fields or cls._meta.sorted_fields, is_default=not fields)

    def _locked_row(self: _Model) -> _Model:
        """This row as the database has it, locked until the transaction ends (the caller holds write_lock)."""
        cls = type(self)
        query = cls.select().where(cls._meta.primary_key == self.get_id())
        if _is_postgres():
            query = query.for_update()
        row = query.first()
        if row is None:
            raise cls.DoesNotExist(f"{cls.__name__} {self.get_id()} no longer exists")
        return row

    def refresh(self: _Model) -> _Model:
        """Reload every field from the database, where another call or process may have changed the row; self.

        Raises DoesNotExist when the row was deleted.
        """
        fresh = type(self).get_by_id(self.get_id())
        self.__data__, self.__rel__ = dict(fresh.__data__), {}
        self._dirty.clear()
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "__no_default__" not in kwargs:  # peewee's own row reads carry whatever the query selected
            _fields_named(type(self), kwargs)
        super().__init__(*args, **kwargs)

    @classmethod
    def insert(cls, data: Any = None, /, **insert: Any) -> peewee.ModelInsert:
        """peewee's insert(), refusing (TypeError) a name that is not a field instead of failing obscurely."""
        _fields_named(cls, [*_names(data), *insert])
        return super().insert(data, **insert)

    @classmethod
    def update(cls, data: Any = None, /, **update: Any) -> peewee.ModelUpdate:
        """peewee's update(), refusing (TypeError) a name that is not a field instead of failing obscurely."""
        _fields_named(cls, [*_names(data), *update])
        return super().update(data, **update)

    @classmethod
    def insert_rows(cls, rows: Iterable[Any], fields: Optional[Sequence[str]] = None,
                    chunk_size: int = 2000, none_is_default: Sequence[str] = ()) -> int:
        """Insert many rows, validated as create() would, in one transaction.

        `rows` is any iterable (a generator keeps memory flat: it is read `chunk_size` rows at a time) of
        dicts keyed by field name, or of tuples in the order of `fields` (default: every field but the
        primary key). Missing values get the field's default, and so does None in the `none_is_default`
        columns. A bad row raises ValueError or peewee.IntegrityError naming its position (counted from 0)
        and the field, and nothing of the batch is written. Returns the number of rows inserted.

        SQLite runs one prepared INSERT over every row; PostgreSQL (psycopg 3) streams the rows with COPY.
        """
        database = db.obj
        if database is None:
            raise DatabaseNotBound()
        columns = [f for f in cls._meta.sorted_fields if not isinstance(f, peewee.AutoField)]
        names = [f.name for f in columns]
        given = list(fields) if fields is not None else names
        _fields_named(cls, given, names)
        if isinstance(database, peewee.SqliteDatabase):
            marks = ["json(?)" if isinstance(f, peewee.JSONField) else "?" for f in columns]
        else:
            marks = ["%s::jsonb" if isinstance(f, peewee.JSONField) else "%s" for f in columns]
        quote = database.quote[0] + "{}" + database.quote[1]
        sql = "INSERT INTO {} ({}) VALUES ({})".format(
            quote.format(cls._meta.table_name), ", ".join(quote.format(f.column_name) for f in columns),
            ", ".join(marks))

        def convert(chunk: List[Any], start: int) -> List[tuple]:
            return cls._bulk_params(chunk, start, columns, given, names, none_is_default)

        count = 0
        with write_lock():
            try:
                chunks = peewee.chunked(rows, chunk_size)
                first = next(chunks, None)
                if first is None:  # nothing to write: not even the table is looked at
                    return 0
                second = next(chunks, None)
                chunks = itertools.chain([first] if second is None else [first, second], chunks)
                cursor = database.cursor()
                copy_sql, oids, one_copy = (cls._copy_plan(cursor, columns) if hasattr(cursor, "copy")  # psycopg 3
                                            else (None, None, False))
                if one_copy:
                    return cls._copy_stream(cursor, copy_sql, oids, chunks, convert)
                sqlite = isinstance(database, peewee.SqliteDatabase)
                # A batch of more than one chunk sets the model's costly row trigger aside (see _bulk_trigger).
                trigger = cls._bulk_trigger() if sqlite and second is not None else None
                trigger_sql = trigger and _set_trigger_aside(database, trigger[0])
                keys: set = set()
                for chunk in chunks:
                    params = convert(chunk, count)
                    if trigger_sql:
                        keys.update(map(operator.itemgetter(names.index(trigger[1])), params))
                    if sqlite:
                        # sqlite3's executemany takes a row, inserts it, then takes the next, and stops at the
                        # first row refused: the rows it took, less one, is the refused row's position. No
                        # savepoint per chunk to search it again (with analytics_latest's triggers, a savepoint
                        # makes SQLite copy every page the chunk touches into its journal).
                        taken = itertools.count()
                        try:
                            with _peewee.exception_wrapper:
                                database.cursor().executemany(sql, map(operator.itemgetter(1), zip(taken, params)))
                        except peewee.IntegrityError as exc:
                            raise peewee.IntegrityError(
                                f"row {count + next(taken) - 1}: {cls.__name__}: {exc}") from None
                    else:
                        try:
                            with db.atomic(), _peewee.exception_wrapper:
                                if copy_sql is None:  # psycopg 2: no COPY here
                                    database.cursor().executemany(sql, params)
                                else:
                                    cls._copy_chunk(database.cursor(), copy_sql, oids, params)
                        except peewee.IntegrityError as exc:
                            raise cls._bad_row(database, sql, params, count, exc) from None
                    count += len(params)
                if trigger_sql:
                    database.cursor().executemany(trigger[2], ((key,) for key in sorted(keys)))
                    database.execute_sql(trigger_sql)
            except (peewee.OperationalError, peewee.ProgrammingError) as exc:
                # The bulk path writes through a cursor, not the proxy: name a missing table here too.
                missing = _tables_missing(exc, database)
                if missing is None:
                    raise
                raise missing from exc
        return count

    @classmethod
    def _bulk_trigger(cls) -> Optional[Tuple[str, str, str]]:
        """A SQLite row trigger insert_rows may set aside for a large batch: (name, key field, refresh SQL).

        SQLite has row triggers only. One that costs as much as the row it follows (analytics_latest's upsert)
        is dropped for a batch of more than one chunk, and the refresh statement (one ? for the key) runs once
        per distinct key instead, before the trigger is made again: all in the batch's transaction, which holds
        the write lock, so no other connection ever writes without it and a failure puts it back.
        """
        return None

    @classmethod
    def _bulk_params(cls, chunk: List[Any], start: int, columns: List[peewee.Field], given: List[str],
                     names: List[str], none_is_default: Sequence[str]) -> List[tuple]:
        """The chunk's rows as statement parameters, converted column by column."""
        if isinstance(chunk[0], dict):
            keys = set(itertools.chain.from_iterable(chunk))
            if not keys <= set(names):
                position = next(i for i, row in enumerate(chunk) if not row.keys() <= set(names))
                try:
                    _fields_named(cls, chunk[position], names)
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
        converted = [cls._bulk_column(field, values.get(field.name), len(chunk), start) for field in columns]
        return list(zip(*converted))

    @classmethod
    def _bulk_column(cls, field: peewee.Field, values: Optional[List[Any]], size: int, start: int) -> List[Any]:
        """One column of a chunk: defaults filled in, NULLs checked, values validated and converted."""
        if values is None:
            values = [_MISSING] * size
        # The set of types answers "any missing? any None?" without comparing every value to them.
        types = set(map(type, values))
        if object in types:  # _MISSING is the only plain object() a column holds
            default = field.default
            values = [(default() if callable(default) else default) if v is _MISSING else v for v in values]
            types = set(map(type, values))
        present, stored_none = values, None
        if type(None) in types:
            stored_none = field.db_value(None)  # what create() stores for None: NULL, or JSON text 'null'
            if stored_none is None and not field.null:  # the error create() gets from the database's NOT NULL
                position = values.index(None)
                raise peewee.IntegrityError(f"row {start + position}: {cls.__name__}.{field.name} may not be NULL")
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
                    label = f"{cls.__name__}.{field.name}"
                    message = str(exc) if str(exc).startswith(label) else f"{label}: {exc}"
                    raise ValueError(f"row {start + where}: {message}") from None
        if present is values:
            return converted
        it = iter(converted)
        return [stored_none if v is None else next(it) for v in values]

    @classmethod
    def _bad_row(cls, database: peewee.Database, sql: str, params: List[tuple], start: int,
                 error: Exception) -> Exception:
        """Find which row of a chunk the database refused (the error path only: one row at a time)."""
        for position, row in enumerate(params):
            try:
                with db.atomic(), _peewee.exception_wrapper:
                    database.cursor().execute(sql, row)
            except peewee.IntegrityError as exc:
                return peewee.IntegrityError(f"row {start + position}: {cls.__name__}: {exc}")
        return error

    # Column types (pg_type oids) a binary COPY writes straight from what _bulk_params gives on PostgreSQL:
    # bool, int8, int4, text, float8, varchar, timestamptz. Binary costs the client a fifth of text's formatting
    # (floats and datetimes are not printed); a table with any other type (jsonb) is copied as text.
    _COPY_BINARY_TYPES = frozenset({16, 20, 23, 25, 701, 1043, 1184})

    @classmethod
    def _copy_plan(cls, cursor: Any, columns: List[peewee.Field]) -> Tuple[str, Optional[List[int]], bool]:
        """(COPY statement, column type oids for a binary COPY or None for text, whether one COPY may take it all).

        One COPY is safe when every check the table makes is made row by row as COPY reads the row (CHECK,
        NOT NULL), so the error's line is the first bad row. A foreign key is checked when the COPY ends, and a
        unique index on a written column when COPY flushes its buffer (after a later row's CHECK): such tables
        get a COPY per chunk, in a savepoint, and a refused chunk is searched row by row as on SQLite.
        """
        names = [f.column_name for f in columns]
        # The written columns' types in their order; then: no foreign key or exclusion constraint, and no unique
        # index on a written column (or on an expression).
        query = """
            SELECT array_agg(a.atttypid::int ORDER BY array_position(%(names)s::text[], a.attname::text)),
                NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = t.oid AND contype IN ('f', 'x'))
                AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = t.oid AND i.indisunique
                    AND (0 = ANY (i.indkey::int2[]) OR EXISTS (
                        SELECT FROM pg_attribute u WHERE u.attrelid = t.oid AND u.attnum = ANY (i.indkey::int2[])
                        AND u.attname::text = ANY (%(names)s::text[]))))
            FROM (SELECT %(table)s::regclass::oid AS oid) t
            JOIN pg_attribute a ON a.attrelid = t.oid AND NOT a.attisdropped
                AND a.attname::text = ANY (%(names)s::text[])
            GROUP BY t.oid"""
        with _peewee.exception_wrapper:  # a missing table fails here: insert_rows names it
            cursor.execute(query, {"names": names, "table": '"{}"'.format(cls._meta.table_name.replace('"', '""'))})
            oids, one_copy = cursor.fetchone() or (None, False)
        binary = oids is not None and len(oids) == len(names) and set(oids) <= cls._COPY_BINARY_TYPES
        sql = 'COPY "{}" ({}) FROM STDIN{}'.format(cls._meta.table_name, ", ".join(f'"{n}"' for n in names),
                                                   " (FORMAT BINARY)" if binary else "")
        return sql, oids if binary else None, bool(one_copy)

    @staticmethod
    def _copy_chunk(cursor: Any, sql: str, oids: Optional[List[int]], params: List[tuple]) -> None:
        """One chunk through its own COPY."""
        with cursor.copy(sql) as copy:
            if oids:
                copy.set_types(oids)
            for row in params:
                copy.write_row(row)

    @classmethod
    def _copy_stream(cls, cursor: Any, sql: str, oids: Optional[List[int]], chunks: Iterator[List[Any]],
                     convert: Any) -> int:
        """Every chunk through one COPY: the server inserts a chunk while the next one is validated.

        A statement's own costs (a statement trigger such as analytics_latest's) are paid once. A row the
        database refuses ends the COPY with an error whose line names the row.
        """
        import select

        count = start = 0
        current: Any = None  # the open COPY's context manager; its first row is row `start`
        fd = cursor.connection.fileno()
        if hasattr(select, "poll"):  # select() refuses a descriptor above 1023, which a busy process may have
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
                with _peewee.exception_wrapper:
                    done.__exit__(None, None, None)
            except peewee.IntegrityError as exc:
                raise cls._copy_bad_row(exc, start, count - start) from None

        try:
            while True:
                try:
                    chunk = next(chunks, None)
                    params = None if chunk is None else convert(chunk, count)
                except Exception:
                    # A bad value, or the caller's generator failing, after rows the database may have refused:
                    # SQLite would have reported such a row first, as its chunk was written before this one.
                    if current is not None:
                        finish()
                    raise
                if params is None:
                    break
                if current is None:
                    opening = cursor.copy(sql)
                    with _peewee.exception_wrapper:
                        copy = opening.__enter__()
                    current, start = opening, count
                    if oids:
                        copy.set_types(oids)
                    write_row = copy.write_row
                with _peewee.exception_wrapper:
                    for row in params:
                        write_row(row)
                count += len(params)
                # The server says nothing during a COPY unless it refused a row (or sends a notice): then end
                # this COPY now, rather than stream the rest of a generator of any length to no purpose.
                if spoke():
                    finish()
            if current is not None:
                finish()
        except BaseException as exc:
            if current is not None:  # abort the COPY (CopyFail): the connection must be free for the rollback
                current.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return count

    @classmethod
    def _copy_bad_row(cls, error: peewee.IntegrityError, start: int, size: int) -> Exception:
        """Name the row a COPY of `size` rows, which began at row `start`, was refused on; from its error's line."""
        import re

        context = getattr(getattr(getattr(error, "orig", None), "diag", None), "context", None) or ""
        # "COPY analytics, line 7", or its translation: the first number after the table's name.
        found = re.search(rf"^COPY {re.escape(cls._meta.table_name)}\b\D*(\d+)", context, re.MULTILINE)
        if found is None or not 1 <= int(found.group(1)) <= size:
            return error  # not a row's own failure (a statement trigger's): no row to name
        message = str(error)
        cut = message.find(context)
        if cut > 0:  # the row is named instead: drop the CONTEXT, whose line counts from this COPY's start
            message = message[:message.rfind("\n", 0, cut)].rstrip()
        return peewee.IntegrityError(f"row {start + int(found.group(1)) - 1}: {cls.__name__}: {message}")


class DiscoveredVideo(BaseModel):
    """A source video found on YouTube by a search query, channel or feed."""

    youtube_video_id = CharField(max_length=64, unique=True, help_text="the source video's YouTube id")
    title = TextField(null=True, help_text="its title on YouTube")
    channel_id = CharField(max_length=64, null=True, help_text="the channel that published it")
    channel_title = TextField(null=True, help_text="that channel's name")
    published_at = UTCDateTimeField(null=True, help_text="when it was published on YouTube")
    duration_seconds = FloatField(null=True, constraints=_at_least_zero("duration_seconds"),
                                  help_text="its length")
    view_count = BigIntegerField(null=True, constraints=_at_least_zero("view_count"),
                                 help_text="its views when found")
    source = TextField(null=True, help_text="the search, channel or feed that found it")
    discovered_at = UTCDateTimeField(default=utcnow, help_text="when it was found")
    status = EnumField(VideoStatus, default=VideoStatus.new, help_text="new, selected, skipped or processed")

    class Meta:
        table_name = "discovered_videos"

    METADATA = ("title", "channel_id", "channel_title", "published_at", "duration_seconds", "view_count", "source")
    # Where each status may go, and what moves it (drawn in the README's diagram). A video's status follows its
    # latest run: PipelineRun.VIDEO_AFTER.
    TRANSITIONS = {
        VideoStatus.new: {VideoStatus.selected: "PipelineRun.start()", VideoStatus.skipped: "your discovery filter"},
        VideoStatus.selected: {VideoStatus.processed: "its run published",
                               VideoStatus.skipped: "its run rejected or failed for good"},
        VideoStatus.skipped: {VideoStatus.selected: "start(), start(again=True), retry()"},
        VideoStatus.processed: {VideoStatus.selected: "start(again=True)"},
    }

    @classmethod
    def discover(cls, youtube_video_id: str, **fields: Any) -> Tuple["DiscoveredVideo", bool]:
        """Record a found video once: return (video, created); finding it again refreshes the metadata given."""
        _fields_named(cls, fields, cls.METADATA)
        with write_lock():
            video = cls.get_or_none(cls.youtube_video_id == youtube_video_id)
            if video is None:
                try:
                    with db.atomic():  # a savepoint: on PostgreSQL another process may insert first
                        return cls.create(youtube_video_id=youtube_video_id, **fields), True
                except peewee.IntegrityError:
                    video = cls.get_or_none(cls.youtube_video_id == youtube_video_id)
                    if video is None:
                        raise
            changed = {name: value for name, value in fields.items() if getattr(video, name) != value}
            if changed:
                for name, value in changed.items():
                    setattr(video, name, value)
                video.save(only=list(changed))
            return video, False


class PipelineRun(BaseModel):
    """One pass of one video through the pipeline: queued, claimed by a worker under a lease, reviewed, published."""

    # No cascade: deleting a video must not silently take its runs (and uploaded shorts) with it.
    discovered_video = ForeignKeyField(DiscoveredVideo, backref="runs", help_text="the video this run processes")
    status = EnumField(RunStatus, default=RunStatus.pending,
                       help_text="pending, running, awaiting_review, approved, rejected, published or failed")
    current_stage = CharField(max_length=64, null=True, help_text="the stage its worker last reported")
    worker = CharField(max_length=255, null=True, help_text="the worker that claimed it")
    attempts = IntegerField(default=0, constraints=_at_least_zero("attempts"),
                            help_text="times it was claimed since it was queued or retried by an operator")
    started_at = UTCDateTimeField(null=True, help_text="when its current attempt was claimed")
    finished_at = UTCDateTimeField(null=True, help_text="when it was published, rejected or failed")
    heartbeat_at = UTCDateTimeField(null=True, help_text="when its worker last said it is alive")
    last_error = TextField(null=True, help_text="why it last failed or was requeued, on one line")
    created_at = UTCDateTimeField(default=utcnow, help_text="when it was queued")
    updated_at = UTCDateTimeField(default=utcnow, help_text="when it last changed")
    # The fencing token: every write only the claiming worker may make compares it, so a worker whose
    # lease was lost (requeued while it stalled) changes nothing.
    claim_token = CharField(max_length=32, null=True, help_text="the current claim's token, new at every claim")
    not_before = UTCDateTimeField(null=True, help_text="a requeued run is not claimed before this time (backoff)")

    class Meta:
        table_name = "pipeline_runs"
        # The work queue: oldest pending run first, stale running runs, counts by status.
        indexes = ((("status", "created_at"), False),)

    def save(self, *args, **kwargs):
        """Save, stamping updated_at."""
        self.updated_at = utcnow()
        if kwargs.get("only"):
            kwargs["only"] = [*kwargs["only"], PipelineRun.updated_at]
        return super().save(*args, **kwargs)

    # Where each status may go, and the operation that moves it there (the README's diagram is drawn from this).
    TRANSITIONS = {
        RunStatus.pending: {RunStatus.running: "claim_next()"},
        RunStatus.running: {RunStatus.awaiting_review: "ReviewLog.request()",
                            RunStatus.pending: "fail() to retry, requeue_stale()",
                            RunStatus.failed: "fail() for good, advance()"},
        RunStatus.awaiting_review: {RunStatus.approved: "respond() approve or edit",
                                    RunStatus.rejected: "respond() reject", RunStatus.failed: "advance()"},
        RunStatus.approved: {RunStatus.published: "mark_uploaded() of its last short, advance()",
                             RunStatus.failed: "advance()"},
        RunStatus.rejected: {},
        RunStatus.published: {},
        RunStatus.failed: {RunStatus.pending: "retry()"},
    }
    # Moves only these operations make: they hold the claim or the retry policy advance() knows nothing of.
    _THROUGH = {(RunStatus.pending, RunStatus.running): "claim_next(worker)",
                (RunStatus.running, RunStatus.pending): "fail(reason) or requeue_stale()",
                (RunStatus.failed, RunStatus.pending): "retry()"}
    FINISHED = (RunStatus.published, RunStatus.rejected, RunStatus.failed)
    ACTIVE = (RunStatus.pending, RunStatus.running, RunStatus.awaiting_review, RunStatus.approved)
    # What a run's end makes of its video.
    VIDEO_AFTER = {RunStatus.published: VideoStatus.processed, RunStatus.rejected: VideoStatus.skipped,
                   RunStatus.failed: VideoStatus.skipped, RunStatus.pending: VideoStatus.selected}

    # The retry policy; ConfigOverride keys of the same meaning override the defaults at run time.
    MAX_ATTEMPTS = 3
    RETRY_DELAY = datetime.timedelta(seconds=30)  # before the second attempt; doubles with each one
    RETRY_DELAY_LIMIT = datetime.timedelta(hours=1)
    MAX_ATTEMPTS_KEY = "queue.max_attempts"
    RETRY_DELAY_KEY = "queue.retry_delay_seconds"

    @classmethod
    def start(cls, video: DiscoveredVideo, again: bool = False) -> "PipelineRun":
        """Queue a run for `video` once: return its active run if it has one, else its last run, else a new one.

        Re-running discovery and start is safe: a video is never queued twice. `again=True` queues a new run
        for a video whose runs all ended (published, rejected or failed). A new run marks the video selected.
        """
        active = (cls.discovered_video == video) & cls.status.in_(cls.ACTIVE)
        with write_lock():
            run = cls.select().where(active).first()
            if run is None and not again:
                run = cls.select().where(cls.discovered_video == video).order_by(cls.id.desc()).first()
            if run is not None:
                return run
            try:
                with db.atomic():  # a savepoint: on PostgreSQL another process may queue one first
                    run = cls.create(discovered_video=video)
            except peewee.IntegrityError:
                run = cls.select().where(active).first()
                if run is None:
                    raise
                return run
            run._settle_video(RunStatus.pending)
        if isinstance(video, DiscoveredVideo):
            video.status = VideoStatus.selected
        return run

    @classmethod
    def claim_next(cls, worker: str, *, now: Optional[datetime.datetime] = None) -> Optional["PipelineRun"]:
        """Take the oldest pending run that is due for `worker`: running, attempts + 1, a new claim token.

        None when no run is due. One statement under the write lock, so N processes claiming at once claim
        each run exactly once; on PostgreSQL, FOR UPDATE SKIP LOCKED lets them pass one another. `now`
        (default: the clock) decides which requeued runs are due.
        """
        now = utcnow() if now is None else now
        due = (cls.status == RunStatus.pending) & (cls.not_before.is_null() | (cls.not_before <= now))
        oldest = cls.select(cls.id).where(due).order_by(cls.created_at, cls.id).limit(1)
        if _is_postgres():
            oldest = oldest.for_update(skip_locked=True)
        claim = (cls.update(status=RunStatus.running, worker=worker, attempts=cls.attempts + 1,
                            claim_token=secrets.token_hex(16), not_before=None, started_at=now,
                            heartbeat_at=now, finished_at=None, updated_at=now)
                 .where((cls.id == oldest) & (cls.status == RunStatus.pending))
                 .returning(cls))
        with write_lock():
            claimed = list(claim.execute())
        return claimed[0] if claimed else None

    def _check_claim(self, row: "PipelineRun") -> None:
        """Raise LeaseLost unless `row` (the database's run) is still running under this object's claim."""
        if row.status is not RunStatus.running or row.claim_token != self.claim_token:
            raise LeaseLost(self.id, self.worker, self.attempts, row.status, row.worker, row.attempts)

    @contextlib.contextmanager
    def fenced(self) -> Iterator["PipelineRun"]:
        """A transaction for the claiming worker's writes (clips, scripts, audio, shorts): all or nothing, and
        only while it still holds the claim.

        Raises LeaseLost, writing nothing, when the run was requeued or claimed by another worker meanwhile.
        The run stays locked against requeueing until the block ends.
        """
        with write_lock():
            self._check_claim(self._locked_row())
            yield self

    def heartbeat(self, stage: Optional[str] = None) -> bool:
        """Tell the queue this run's worker is alive (and at `stage`, if given); True.

        Raises LeaseLost, changing nothing, when this worker no longer holds the run: drop it.
        """
        changes: Dict[str, Any] = {"heartbeat_at": utcnow()}
        if stage is not None:
            changes["current_stage"] = stage
        cls = type(self)
        with write_lock():  # one compare-and-set on the claim; the row is read only to say why it failed
            held = (cls.id == self.id) & (cls.status == RunStatus.running) & (cls.claim_token == self.claim_token)
            if not cls.update(**changes).where(held).execute():
                self._check_claim(self._locked_row())  # raises LeaseLost, saying who holds the run now
        self._written(changes)
        return True

    def advance(self, status: Union[RunStatus, str], stage: Optional[str] = None,
                reason: Optional[str] = None) -> "PipelineRun":
        """Move the run to `status` if the transition is allowed, as a compare-and-set, and update this object.

        `stage` sets current_stage. Moving to failed needs a `reason` (kept in last_error, on one line) and
        is for good; `fail()` retries. Out of running, only the worker holding the claim may move it
        (LeaseLost otherwise). Raises InvalidTransition, changing nothing, when the move is not allowed
        from the status the run has in the database, or when that status is not this object's.
        A run that ends moves its video to processed (published) or skipped (rejected, failed).
        """
        target = RunStatus(type(self).status.db_value(status))  # ValueError naming the field if unknown
        if target is RunStatus.failed and not (reason and str(reason).strip()):
            raise ValueError("PipelineRun.advance: moving a run to failed needs a reason, e.g. reason=str(exc)")
        changes: Dict[str, Any] = {"status": target}
        if stage is not None:
            changes["current_stage"] = stage
        if reason is not None:
            changes["last_error"] = _one_line(reason)
        with write_lock():
            row = self._moving(target)
            through = self._THROUGH.get((row.status, target))
            if through is not None:
                raise InvalidTransition(f"run {self.id}", row.status, target, f"use {through}")
            self._move(changes)
        return self

    def fail(self, error: Union[BaseException, str], *, retry: bool = True, max_attempts: Optional[int] = None,
             now: Optional[datetime.datetime] = None) -> "PipelineRun":
        """The worker gives up on this attempt: requeue the run with backoff, or fail it for good.

        `error` (an exception or a message) goes to last_error. With `retry` (the default) a running run
        goes back to pending, claimable after an exponential backoff with jitter, unless it has had
        `max_attempts` attempts (default MAX_ATTEMPTS, or the ConfigOverride "queue.max_attempts"): then it
        fails for good, "gave up after N attempts: ...". `retry=False` fails it for good at once (an error
        no retry can fix). Only the worker holding the claim may fail a running run (LeaseLost otherwise).
        """
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if not reason.strip():
            raise ValueError("PipelineRun.fail: give the error or a reason, e.g. run.fail(exc)")
        with write_lock():
            row = self._moving(RunStatus.failed)
            if not retry or row.status is not RunStatus.running:
                self._move({"status": RunStatus.failed, "last_error": _one_line(reason)})
                return self
            self._move(self._retry_or_give_up(row.attempts, reason, self._policy(max_attempts), now))
        return self

    def retry(self) -> "PipelineRun":
        """The operator's retry of a failed run: pending again, its attempts counted afresh, its video selected."""
        with write_lock():
            row = self._moving(RunStatus.pending, "only a failed run is retried", only_from=RunStatus.failed)
            try:
                with db.atomic():
                    self._move({"status": RunStatus.pending, "attempts": 0, "not_before": None})
            except peewee.IntegrityError:
                other = (type(self).select(type(self).id)
                         .where((type(self).discovered_video == row.discovered_video_id)
                                & type(self).status.in_(self.ACTIVE)).scalar())
                raise InvalidTransition(f"run {self.id}", row.status, RunStatus.pending,
                                        f"its video already has the active run {other}") from None
        return self

    def _moving(self, target: RunStatus, detail: str = "", only_from: Optional[RunStatus] = None) -> "PipelineRun":
        """The locked database row, checked: the claim (out of running), this object's status, the move (and,
        for an operation that makes it from one status only, that status)."""
        row = self._locked_row()
        copy = RunStatus(self.status)
        if copy is RunStatus.running:  # the worker's own move: only while it holds the claim
            self._check_claim(row)
        if row.status is not copy:
            raise InvalidTransition(f"run {self.id}", row.status, target, copy=copy)
        if target not in self.TRANSITIONS[row.status] or only_from not in (None, row.status):
            raise InvalidTransition(f"run {self.id}", row.status, target, detail)
        return row

    def _move(self, changes: Dict[str, Any]) -> None:
        """Write a checked move (the caller holds the lock), stamping times, and settle the video."""
        now = utcnow()
        target = changes["status"]
        if target in self.FINISHED:
            changes["finished_at"] = now
        elif target is RunStatus.pending:  # queued again: a worker will claim it afresh
            changes.update(finished_at=None, worker=None, heartbeat_at=None)
        self._write(changes, now)
        self._settle_video(target)

    def _write(self, changes: Dict[str, Any], now: Optional[datetime.datetime] = None) -> None:
        cls = type(self)
        changes["updated_at"] = utcnow() if now is None else now
        cls.update(**changes).where(cls.id == self.id).execute()
        self._written(changes)

    def _written(self, changes: Dict[str, Any]) -> None:
        """Keep this object in step with what was just written: the values, and nothing left to save."""
        for name, value in changes.items():
            setattr(self, name, value)
        self._dirty.difference_update(changes)

    def _settle_video(self, status: RunStatus) -> None:
        """Move the run's video to what `status` makes of it (VIDEO_AFTER), in the caller's transaction."""
        video_status = self.VIDEO_AFTER.get(status)
        if video_status is not None:
            (DiscoveredVideo.update(status=video_status)
             .where(DiscoveredVideo.id == self.discovered_video_id).execute())

    @classmethod
    def _policy(cls, max_attempts: Optional[int]) -> Tuple[int, datetime.timedelta]:
        """(max attempts, first retry delay): the argument, else the ConfigOverride, else the class default."""
        limit = ConfigOverride.get(cls.MAX_ATTEMPTS_KEY, cls.MAX_ATTEMPTS) if max_attempts is None else max_attempts
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            where = "max_attempts" if max_attempts is not None else f"ConfigOverride {cls.MAX_ATTEMPTS_KEY!r}"
            raise ValueError(f"PipelineRun: {where} must be a whole number from 1 to 1000, not {limit!r}")
        seconds = ConfigOverride.get(cls.RETRY_DELAY_KEY)
        if seconds is None:
            return limit, cls.RETRY_DELAY
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= 86400:
            raise ValueError(f"PipelineRun: ConfigOverride {cls.RETRY_DELAY_KEY!r} must be a number of seconds "
                             f"from 0 to 86400, not {seconds!r}")
        return limit, datetime.timedelta(seconds=seconds)

    def _retry_or_give_up(self, attempts: int, reason: str, policy: Tuple[int, datetime.timedelta],
                          now: Optional[datetime.datetime]) -> Dict[str, Any]:
        """The changes that requeue a run after `attempts` attempts, with backoff, or fail it for good."""
        limit, base = policy
        if attempts >= limit:
            return {"status": RunStatus.failed, "last_error": _one_line(f"gave up after {attempts} attempts: {reason}")}
        delay = min(base * 2 ** min(max(attempts - 1, 0), 30), self.RETRY_DELAY_LIMIT)
        # "Equal jitter": at least half the backoff, so retries of runs that failed together spread out.
        not_before = (utcnow() if now is None else now) + delay * random.uniform(0.5, 1.0)
        return {"status": RunStatus.pending, "not_before": not_before,
                "last_error": _one_line(f"attempt {attempts} of {limit} failed: {reason}")}

    def _publish_if_done(self) -> None:
        """Publish this approved run (the caller holds its lock) once it has uploads and no short left to upload."""
        if self.status is not RunStatus.approved:
            return
        shorts = Short.select().where(Short.pipeline_run == self.id)
        waiting = shorts.where(Short.status.in_([ShortStatus.pending, ShortStatus.rendered])).exists()
        if not waiting and shorts.where(Short.status == ShortStatus.uploaded).exists():
            self._move({"status": RunStatus.published})

    @classmethod
    def requeue_stale(cls, older_than: datetime.timedelta, *, max_attempts: Optional[int] = None,
                      now: Optional[datetime.datetime] = None) -> int:
        """Expire the leases of running runs with no heartbeat for `older_than` (their worker died or stalled).

        Each goes back to pending with backoff, or fails for good after max_attempts, as fail() does; the
        stalled worker's later writes raise LeaseLost. Returns how many leases expired.
        """
        older_than = _duration("requeue_stale", older_than)
        now = utcnow() if now is None else now
        cutoff = now - older_than
        stale = (cls.status == RunStatus.running) & (
            (cls.heartbeat_at < cutoff) | (cls.heartbeat_at.is_null() & (cls.started_at < cutoff)))
        query = cls.select().where(stale).order_by(cls.id)
        if _is_postgres():
            query = query.for_update(skip_locked=True)  # two janitors at once share the stale runs out
        with write_lock():
            runs = list(query)
            policy = cls._policy(max_attempts) if runs else None
            for run in runs:
                run._move(run._retry_or_give_up(run.attempts, f"no heartbeat for {older_than} (worker "
                                                f"{run.worker!r})", policy, now))
        return len(runs)


# One active run per video, kept by the database whoever writes: a second start() fails instead of queueing twice.
PipelineRun.add_index(PipelineRun.index(
    PipelineRun.discovered_video, unique=True, name="pipeline_runs_one_active_per_video",
    where=SQL("status IN ('pending', 'running', 'awaiting_review', 'approved')")))


def _sync(obj: Optional[BaseModel], fresh: BaseModel) -> None:
    """Bring a caller's copy of a row up to date with `fresh`, the row an operation just wrote."""
    if obj is not None and obj is not fresh:
        obj.__data__.update(fresh.__data__)
        obj._dirty.clear()


def _duration(operation: str, value: Any) -> datetime.timedelta:
    """A positive timedelta of at most a year, or a ValueError naming the operation."""
    if not isinstance(value, datetime.timedelta):
        raise TypeError(f"{operation}: older_than must be a datetime.timedelta, e.g. timedelta(minutes=10), "
                        f"not {type(value).__name__}")
    if not datetime.timedelta(0) < value <= datetime.timedelta(days=366):
        raise ValueError(f"{operation}: older_than must be more than zero and at most a year, not {value}")
    return value


class Clip(BaseModel):
    """A cut of the source video, scored for how well it would work as a short."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="clips", on_delete="CASCADE", help_text="the run that cut it")
    start_seconds = FloatField(constraints=_at_least_zero("start_seconds"), help_text="where it starts in the source")
    end_seconds = FloatField(help_text="where it ends; after start_seconds")
    file_path = TextField(null=True, help_text="the cut file")
    score = FloatField(null=True, help_text="how well it would work as a short")
    transcript = TextField(null=True, help_text="what is said in it")
    created_at = UTCDateTimeField(default=utcnow, help_text="when it was cut")

    class Meta:
        table_name = "clips"
        constraints = [Check("end_seconds > start_seconds", name="clips_end_after_start")]


class Script(BaseModel):
    """The narration an LLM wrote for a run, with what it cost."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="scripts", on_delete="CASCADE",
                                   help_text="the run it was written for")
    opening_text = TextField(null=True, help_text="the opening line, the hook")
    closing_text = TextField(null=True, help_text="the closing line, the call to action")
    full_script_json = JSONField(types=(dict, list), help_text="the whole script, structured: a dict or a list")
    total_char_count = IntegerField(constraints=_at_least_zero("total_char_count"),
                                    help_text="characters of narration")
    estimated_duration_seconds = FloatField(constraints=_at_least_zero("estimated_duration_seconds"),
                                            help_text="how long the narration should take to speak")
    llm_model_used = TextField(help_text="the LLM that wrote it")
    generated_at = UTCDateTimeField(default=utcnow, help_text="when it was written")
    title = TextField(null=True, help_text="the title it proposes for the short")
    prompt_tokens = IntegerField(null=True, constraints=_at_least_zero("prompt_tokens"),
                                 help_text="tokens sent to the LLM")
    completion_tokens = IntegerField(null=True, constraints=_at_least_zero("completion_tokens"),
                                     help_text="tokens the LLM wrote")
    cost_usd = FloatField(null=True, constraints=_at_least_zero("cost_usd"), help_text="what the LLM call cost")

    class Meta:
        table_name = "scripts"


class TTSAudio(BaseModel):
    """Synthesised narration audio for a run."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="audio", on_delete="CASCADE",
                                   help_text="the run it narrates")
    engine_used = CharField(max_length=255, help_text="the TTS engine, e.g. piper or openai")
    voice_profile = CharField(max_length=255, null=True, help_text="the voice it used")
    audio_file_path = CharField(max_length=512, null=True, help_text="the audio file")
    duration_seconds = FloatField(null=True, constraints=_at_least_zero("duration_seconds"),
                                  help_text="its length")
    generated_at = UTCDateTimeField(default=utcnow, help_text="when it was synthesised")

    class Meta:
        table_name = "tts_audio"


class Short(BaseModel):
    """A rendered vertical short, from render through review to upload."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="shorts", on_delete="CASCADE",
                                   help_text="the run that rendered it")
    clip = ForeignKeyField(Clip, backref="shorts", null=True, on_delete="SET NULL", help_text="the clip it is cut from")
    file_path = CharField(max_length=512, null=True, help_text="the rendered video file")
    duration_seconds = FloatField(null=True, constraints=_at_least_zero("duration_seconds"), help_text="its length")
    title = CharField(max_length=255, null=True, help_text="its title on YouTube")
    description = TextField(null=True, help_text="its description on YouTube")
    # Unique when set (NULLs never collide): a short is uploaded once.
    youtube_video_id = CharField(max_length=100, null=True, unique=True, help_text="its YouTube id once uploaded")
    youtube_url = CharField(max_length=512, null=True, help_text="its address on YouTube")
    status = EnumField(ShortStatus, max_length=32, default=ShortStatus.pending,
                       help_text="pending, rendered, uploaded, rejected or failed")
    uploaded_at = UTCDateTimeField(null=True, help_text="when it was uploaded")
    # Set when an upload begins: with no video id after it, an upload may have reached YouTube unrecorded.
    upload_started_at = UTCDateTimeField(null=True, help_text="when an upload of it began (the upload claim)")
    created_at = UTCDateTimeField(null=True, default=utcnow, help_text="when it was rendered")

    class Meta:
        table_name = "shorts"

    # Where each status may go, and what moves it (drawn in the README's diagram).
    TRANSITIONS = {
        ShortStatus.pending: {ShortStatus.rendered: "the worker renders it", ShortStatus.uploaded: "mark_uploaded()",
                              ShortStatus.rejected: "ReviewLog respond() reject", ShortStatus.failed: "the worker"},
        ShortStatus.rendered: {ShortStatus.uploaded: "mark_uploaded()", ShortStatus.rejected: "ReviewLog respond() reject",
                               ShortStatus.failed: "the uploader gives up"},
        ShortStatus.failed: {ShortStatus.uploaded: "mark_uploaded()"},
        ShortStatus.uploaded: {},
        ShortStatus.rejected: {},
    }

    def _uploadable(self, row: "Short") -> None:
        """Refuse an upload of a short whose status cannot become uploaded (a rejected one)."""
        if ShortStatus.uploaded not in self.TRANSITIONS[row.status]:
            raise InvalidTransition(f"short {self.id}", row.status, ShortStatus.uploaded,
                                    "only a pending, rendered or failed short is uploaded")

    def start_upload(self) -> None:
        """Claim this short for one upload, before sending it to YouTube.

        Raises AlreadyUploaded if it has a video id, and UploadInDoubt if an earlier upload began and never
        recorded one (a crash between the upload and mark_uploaded): check the channel, then call
        mark_uploaded() with the id found or abandon_upload() to allow a new upload. Raises InvalidTransition
        for a rejected short and DoesNotExist for a deleted one. Nothing else, whatever other processes do.
        """
        cls = type(self)
        now = utcnow()
        with write_lock():  # the check and the claim see one state of the row
            row = self._locked_row()
            if row.youtube_video_id is not None:
                raise AlreadyUploaded(f"short {self.id} is already on YouTube as {row.youtube_video_id}")
            if row.upload_started_at is not None:
                raise UploadInDoubt(
                    f"short {self.id} began uploading at {row.upload_started_at:%Y-%m-%d %H:%M:%S} UTC and "
                    "recorded no video id: check the channel, then call mark_uploaded(id) or abandon_upload()")
            self._uploadable(row)
            cls.update(upload_started_at=now).where(cls.id == self.id).execute()
        self.upload_started_at = now

    def abandon_upload(self) -> None:
        """Release an upload claim when the upload is known not to have reached YouTube."""
        cls = type(self)
        cls.update(upload_started_at=None).where((cls.id == self.id) & cls.youtube_video_id.is_null()).execute()
        self.upload_started_at = None

    def mark_uploaded(self, youtube_video_id: str, youtube_url: Optional[str] = None,
                      uploaded_at: Optional[datetime.datetime] = None) -> bool:
        """Record the upload (video id, url, time, status uploaded); True if this call recorded it.

        When this was the last of an approved run's shorts still to upload, the run is published and its
        video marked processed, in the same transaction (and the run object this short holds is updated).
        Recording the same id again is a harmless retry (False); a different id raises AlreadyUploaded; a
        missing, empty or blank id raises ValueError.
        """
        if not isinstance(youtube_video_id, str) or not youtube_video_id.strip():
            raise ValueError(f"Short.youtube_video_id: mark_uploaded needs the video id YouTube returned, "
                             f"not {youtube_video_id!r}")
        cls = type(self)
        changes = dict(youtube_video_id=youtube_video_id, status=ShortStatus.uploaded,
                       youtube_url=f"https://youtube.com/shorts/{youtube_video_id}" if youtube_url is None
                       else youtube_url,
                       uploaded_at=utcnow() if uploaded_at is None else uploaded_at)
        with write_lock():
            # The run first: two of its shorts recorded at once take turns, so the second sees the first.
            run = PipelineRun(id=self.pipeline_run_id)._locked_row()
            row = self._locked_row()
            if row.youtube_video_id is not None:
                if row.youtube_video_id != youtube_video_id:
                    raise AlreadyUploaded(f"short {self.id} is already on YouTube as {row.youtube_video_id}; "
                                          f"refusing to record {youtube_video_id}")
                return False
            self._uploadable(row)
            cls.update(**changes).where(cls.id == self.id).execute()
            run._publish_if_done()
        for name, value in changes.items():
            setattr(self, name, value)
        _sync(self.__rel__.get("pipeline_run"), run)
        return True


class Analytics(BaseModel):
    """One snapshot of an uploaded short's YouTube metrics; NULL means "not reported", not zero."""

    youtube_video_id = CharField(max_length=100, help_text="the uploaded short's YouTube id")
    measured_at = UTCDateTimeField(default=utcnow, help_text="when the metrics were read")
    view_count = BigIntegerField(null=True, constraints=_at_least_zero("view_count"), help_text="views")
    like_count = BigIntegerField(null=True, constraints=_at_least_zero("like_count"), help_text="likes")
    comment_count = BigIntegerField(null=True, constraints=_at_least_zero("comment_count"), help_text="comments")
    average_view_duration_seconds = FloatField(null=True, constraints=_at_least_zero("average_view_duration_seconds"),
                                               help_text="how long a view lasts on average")
    click_through_rate = FloatField(null=True, help_text="impressions that became views, as a fraction 0..1",
                                    constraints=[Check("click_through_rate >= 0 AND click_through_rate <= 1")])
    subscriber_gain = BigIntegerField(null=True, constraints=_at_least_zero("subscriber_gain"),
                                      help_text="subscribers gained through it")
    estimated_revenue_usd = FloatField(null=True, constraints=_at_least_zero("estimated_revenue_usd"),
                                       help_text="revenue YouTube estimates for it")
    engaged_views = BigIntegerField(null=True, constraints=_at_least_zero("engaged_views"),
                                    help_text="views YouTube counts as engaged")
    shares = BigIntegerField(null=True, constraints=_at_least_zero("shares"), help_text="shares")
    watch_time_minutes = FloatField(null=True, constraints=_at_least_zero("watch_time_minutes"),
                                    help_text="total time watched")

    class Meta:
        table_name = "analytics"

    METRICS = ("view_count", "like_count", "comment_count", "average_view_duration_seconds", "click_through_rate",
               "subscriber_gain", "estimated_revenue_usd", "engaged_views", "shares", "watch_time_minutes")
    # Cumulative counters: growth is their difference between two snapshots (ratios are not).
    COUNTERS = ("view_count", "like_count", "comment_count", "subscriber_gain", "estimated_revenue_usd",
                "engaged_views", "shares", "watch_time_minutes")

    @classmethod
    def record(cls, youtube_video_id: str, measured_at: Optional[datetime.datetime] = None,
               **metrics: Any) -> "Analytics":
        """Store one snapshot of a video's metrics (now, unless `measured_at` says when); omitted metrics are NULL."""
        _fields_named(cls, metrics, cls.METRICS)
        measured_at = utcnow() if measured_at is None else measured_at  # not `or`: False is a bad value, not now
        return cls.create(youtube_video_id=youtube_video_id, measured_at=measured_at, **metrics)

    RECORD_FIELDS = ("youtube_video_id", "measured_at", *METRICS)

    @classmethod
    def _bulk_trigger(cls) -> Optional[Tuple[str, str, str]]:
        """analytics_latest's insert trigger, an upsert per row: a large batch refreshes each video once instead."""
        return "analytics_latest_insert", "youtube_video_id", _SQLITE_LATEST_REFRESH.format(**_latest_names())

    @classmethod
    def record_many(cls, rows: Iterable[Any], chunk_size: int = 2000) -> int:
        """Store many snapshots at once: dicts, or tuples in RECORD_FIELDS order; returns how many.

        Validated exactly as record() would, written in one transaction with one prepared statement,
        `chunk_size` rows at a time so a generator of any length keeps memory flat. A bad row aborts the
        whole batch (nothing is written) with an error naming its position.
        """
        return cls.insert_rows(rows, fields=cls.RECORD_FIELDS, chunk_size=chunk_size,
                               none_is_default=("measured_at",))  # as in record(): None means now

    # --- the newest snapshot of each video ---------------------------------------------------------------
    # analytics_latest holds, per video, a copy of its newest snapshot (greatest (measured_at, id)), kept by
    # triggers on analytics (_latest_schema below): latest() and top(n) read it instead of analytics, so their
    # cost follows the videos they return, whatever the number of snapshots. Triggers, not Python, keep it:
    # every writer of analytics (raw SQL included) keeps it in step.

    @classmethod
    def create_table(cls, safe: bool = True, **options: Any) -> None:
        """peewee's create_table(), and with a new analytics table, analytics_latest and the triggers keeping it."""
        database = cls._meta.database
        existed = safe and database.table_exists(cls._meta.table_name)
        super().create_table(safe=safe, **options)
        if not existed:
            for statement in _latest_schema(_is_postgres_db(database)):
                database.execute_sql(statement)

    @classmethod
    def drop_table(cls, safe: bool = True, **options: Any) -> None:
        """peewee's drop_table(), and analytics_latest with it (the triggers go with their table)."""
        database = cls._meta.database
        super().drop_table(safe=safe, **options)
        for statement in _LATEST_DROP["postgres" if _is_postgres_db(database) else "sqlite"]:
            database.execute_sql(statement)

    # What latest() runs: every row of the small analytics_latest, in the order of its view_count index.
    _LATEST_SQL = ("SELECT id, youtube_video_id, measured_at, view_count, like_count, comment_count, "
                   "average_view_duration_seconds, click_through_rate, subscriber_gain, estimated_revenue_usd, "
                   "engaged_views, shares, watch_time_minutes FROM analytics_latest "
                   "ORDER BY view_count DESC NULLS LAST, youtube_video_id")
    # top(n): the same walk of the index, stopped after n rows.
    _TOP_SQL = _LATEST_SQL + " LIMIT {p}"
    # What latest(rows=...) and top(n, rows=...) return, named as peewee names its row types.
    ROW_KINDS = ("models", "tuples", "namedtuples", "dicts")

    @classmethod
    def latest(cls, rows: str = "models") -> List[Any]:
        """The newest snapshot of every video, most viewed first (NULL views last, then by video id).

        `rows` as in peewee's query methods: "models" (Analytics instances), "tuples" (in the field order,
        Analytics._meta.sorted_field_names), "namedtuples" (Analytics.Row) or "dicts"; the values are
        the same in each (measured_at an aware UTC datetime), the others cost less than models.
        """
        kind = cls._row_kind(rows)
        return cls._rows_as(cls._fetch(cls._LATEST_SQL), kind)

    @classmethod
    def top(cls, n: int = 10, rows: str = "models") -> List[Any]:
        """The newest snapshots of the `n` most viewed videos: latest()'s first `n`, reading only those."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"Analytics.top: n must be a whole number of videos, 0 or more, not {n!r}")
        kind = cls._row_kind(rows)
        return cls._rows_as(cls._fetch(cls._TOP_SQL.format(p=cls._meta.database.param), (n,)), kind)

    @classmethod
    def _fetch(cls, sql: str, params: Sequence[Any] = ()) -> List[tuple]:
        """Every row of `sql`, on the model's database; a missing table raises TablesMissing, as model queries do."""
        database = cls._meta.database
        try:
            return database.execute_sql(sql, params).fetchall()
        except (peewee.OperationalError, peewee.ProgrammingError) as exc:
            missing = _tables_missing(exc, database)
            if missing is None:
                raise
            raise missing from exc

    @classmethod
    def _row_kind(cls, rows: Any) -> str:
        if rows not in cls.ROW_KINDS:
            raise ValueError(f"Analytics: rows must be one of {', '.join(map(repr, cls.ROW_KINDS))}, not {rows!r}")
        return rows

    @classmethod
    def _rows_as(cls, rows: List[tuple], kind: str) -> List[Any]:
        """Rows of every column in field order, converted as the fields read them, as `kind` asks."""
        if not rows:
            return []
        # Column by column: only measured_at needs converting, and zip() moves the rest at C speed.
        columns = list(zip(*rows))
        at = cls._meta.sorted_field_names.index("measured_at")
        columns[at] = _utc_datetimes(columns[at])
        if kind == "tuples":
            return list(zip(*columns))
        if kind == "namedtuples":
            return list(map(cls.Row._make, zip(*columns)))
        names = cls._meta.sorted_field_names
        dicts = list(map(dict, map(zip, itertools.repeat(names), zip(*columns))))
        if kind == "dicts":
            return dicts
        # What peewee's row reader makes (Model(__no_default__=1, **row), then _dirty cleared), without its
        # setattr per field, which costs more than the query.
        made = []
        for data in dicts:
            snapshot = cls.__new__(cls)
            snapshot.__data__, snapshot._dirty, snapshot.__rel__ = data, set(), {}
            made.append(snapshot)
        return made

    # The first snapshot at or after a time, and the newest: two seeks in idx_analytics_video, one statement,
    # two rows of the counters only (end_ tells them apart: UNION ALL promises no order).
    _GROWTH_SQL = """
        SELECT * FROM (SELECT 0 AS end_, measured_at, {counters} FROM analytics
                       WHERE youtube_video_id = {p} AND measured_at >= {p}
                       ORDER BY measured_at, id LIMIT 1) AS growth_first
        UNION ALL
        SELECT * FROM (SELECT 1 AS end_, measured_at, {counters} FROM analytics
                       WHERE youtube_video_id = {p} AND measured_at >= {p}
                       ORDER BY measured_at DESC, id DESC LIMIT 1) AS growth_last
    """

    @classmethod
    def growth(cls, youtube_video_id: str, since: datetime.datetime) -> Optional[Dict[str, Any]]:
        """Change of each counter from the first snapshot at or after `since` to the latest one.

        Returns {"since": ..., "until": ..., "views": +n, ...} (None for a counter either snapshot lacks),
        or None when the video has no snapshot since then.
        """
        video, moment = cls.youtube_video_id.db_value(youtube_video_id), cls.measured_at.db_value(since)
        sql = cls._GROWTH_SQL.format(p=cls._meta.database.param, counters=", ".join(cls.COUNTERS))
        ends = sorted(cls._fetch(sql, (video, moment, video, moment)))
        if not ends:
            return None
        (_, began, *first), (_, until, *last) = ends
        change: Dict[str, Any] = {"since": cls.measured_at.python_value(began),
                                  "until": cls.measured_at.python_value(until)}
        for name, old, new in zip(cls.COUNTERS, first, last):
            change[name] = None if old is None or new is None else new - old
        return change

    # Retention: snapshots older than this are thinned to one per video per UTC day by compact().
    # ConfigOverride COMPACT_AFTER_KEY (a whole number of days) replaces the default at run time.
    COMPACT_AFTER = datetime.timedelta(days=30)
    COMPACT_AFTER_KEY = "analytics.compact_after_days"
    COMPACT_BATCH = 2000

    @classmethod
    def compact(cls, older_than: Optional[datetime.timedelta] = None, *, now: Optional[datetime.datetime] = None,
                batch_size: int = COMPACT_BATCH) -> Dict[str, Any]:
        """Thin snapshots older than `older_than` to one per video per UTC day; growth() from midnights unchanged.

        The cut-off is `now - older_than` rounded down to a UTC midnight (so whole UTC days are thinned; the
        newest `older_than` and up to a day more stay as they are). Before it, each video keeps the first
        snapshot of each UTC day (the lowest id among equal times: the one growth() starts from) and its
        newest snapshot; everything at or after the cut-off is kept. `older_than` defaults to the
        ConfigOverride 'analytics.compact_after_days' (days), else 30 days.

        Works through the table in id order, `batch_size` rows per short transaction, pausing between them on
        SQLite, so workers keep claiming meanwhile. Every batch is idempotent: after a crash or a kill, running
        it again finishes the work (a second run deletes nothing). Returns {"cutoff": datetime, "deleted": rows
        removed, "batches": transactions}.
        """
        cutoff = cls._compact_cutoff(older_than, now)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Analytics.compact: batch_size must be a whole number of rows, 1 or more, "
                             f"not {batch_size!r}")
        summary: Dict[str, Any] = {"cutoff": cutoff, "deleted": 0, "batches": 0}
        # In id order: snapshots arrive about in time order, so a batch's rows share a few table pages (walking
        # video by video rewrote each page once per video on it: 8x the writes). Rows recorded meanwhile are
        # left to the next run (kept: compaction never needs to delete, only may).
        last = cls.select(peewee.fn.MAX(cls.id)).scalar()
        after = 0
        while last is not None and after < last:
            with write_lock():
                began = time.monotonic()
                deleted, after = cls._compact_batch(after, last, cutoff, batch_size)
                held = time.monotonic() - began
            summary["deleted"] += deleted
            summary["batches"] += 1
            if isinstance(db.obj, peewee.SqliteDatabase):
                # SQLite has no queue for its lock: a waiting writer polls (every 100 ms at most). Leaving the
                # lock free as long as a batch held it lets the polls of workers succeed. (Not counting the
                # checkpoint after the commit, which runs without the lock.)
                time.sleep(held)
        logger.info("compacted analytics before %s: %d snapshots removed in %d batches", cutoff.isoformat(),
                    summary["deleted"], summary["batches"])
        return summary

    @classmethod
    def _compact_cutoff(cls, older_than: Optional[datetime.timedelta],
                        now: Optional[datetime.datetime]) -> datetime.datetime:
        """The UTC midnight at or before `now - older_than` (older_than defaults to the policy)."""
        if older_than is None:
            days = ConfigOverride.get(cls.COMPACT_AFTER_KEY)
            if days is None:
                older_than = cls.COMPACT_AFTER
            elif isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36500:
                raise ValueError(f"Analytics.compact: ConfigOverride {cls.COMPACT_AFTER_KEY!r} must be a whole "
                                 f"number of days from 1 to 36500, not {days!r}")
            else:
                older_than = datetime.timedelta(days=days)
        if not isinstance(older_than, datetime.timedelta):
            raise TypeError(f"Analytics.compact: older_than must be a datetime.timedelta, e.g. timedelta(days=30), "
                            f"not {type(older_than).__name__}")
        if not datetime.timedelta(0) < older_than <= datetime.timedelta(days=36500):
            raise ValueError(f"Analytics.compact: older_than must be more than zero and at most 100 years, "
                             f"not {older_than}")
        now = utcnow() if now is None else now
        if not isinstance(now, datetime.datetime) or now.utcoffset() is None:
            raise ValueError(f"Analytics.compact: now must be an aware datetime, not {now!r}")
        return cls._midnight(now - older_than)

    @staticmethod
    def _midnight(moment: datetime.datetime) -> datetime.datetime:
        """The UTC midnight that starts the UTC day of `moment`."""
        return moment.astimezone(datetime.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)

    # One batch: the rows with ids in (after, upto] older than the cut-off, less those to keep. For each
    # (video, UTC day) among them, one seek in (youtube_video_id, measured_at) finds the day's first snapshot
    # (wherever its id is); for each video, one seek finds its newest. {day} is the row's UTC midnight as the
    # backend compares it with measured_at: SQLite's fixed-width UTC text begins with the date. COALESCE(.., 0)
    # (no id is 0): a NULL would make NOT IN delete nothing, and filtering it out PostgreSQL seeks twice.
    # (It starts with DELETE, the CTEs inside: Python's sqlite3 counts the rows only of a statement that does.)
    _COMPACT_SQL = """
        DELETE FROM analytics WHERE id IN (
            WITH batch AS (
                SELECT id, youtube_video_id AS vid, measured_at FROM analytics
                WHERE id > {p} AND id <= {p} AND measured_at < {p}
            ), keep AS (
                SELECT COALESCE((SELECT f.id FROM analytics f WHERE f.youtube_video_id = g.vid
                                 AND f.measured_at >= g.day ORDER BY f.measured_at, f.id LIMIT 1), 0) AS id
                FROM (SELECT DISTINCT vid, {day} AS day FROM batch) g
                UNION
                SELECT COALESCE((SELECT n.id FROM analytics n WHERE n.youtube_video_id = v.vid
                                 ORDER BY n.measured_at DESC, n.id DESC LIMIT 1), 0)
                FROM (SELECT DISTINCT vid FROM batch) v
            )
            SELECT id FROM batch WHERE id NOT IN (SELECT id FROM keep)
        )
    """
    _DAY = {"sqlite": "substr(measured_at, 1, 10)",
            "postgres": "date_trunc('day', measured_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"}

    @classmethod
    def _compact_batch(cls, after: int, last: int, cutoff: datetime.datetime, batch_size: int) -> Tuple[int, int]:
        """One batch (the caller holds write_lock): the next `batch_size` rows after id `after`, up to id `last`,
        thinned; returns (rows deleted, the id the batch ended at).
        """
        upto = (cls.select(cls.id).where(cls.id > after).order_by(cls.id).offset(batch_size - 1).limit(1)
                .scalar())
        upto = last if upto is None else min(upto, last)
        database = db.obj
        sql = cls._COMPACT_SQL.format(p=database.param, day=cls._DAY["postgres" if _is_postgres() else "sqlite"])
        cursor = database.execute_sql(sql, (after, upto, cls.measured_at.db_value(cutoff)))
        return cursor.rowcount, upto


# The seed's index names (peewee would name a Meta.indexes entry after its table and columns).
Analytics.add_index(Analytics.youtube_video_id, Analytics.measured_at, name="idx_analytics_video")


# --- analytics_latest: the newest snapshot of each video, kept by triggers on analytics ---------------------
# A copy of each video's newest row of analytics (greatest (measured_at, id)), with analytics' columns (no
# CHECKs: every row comes from analytics, which checked it). Migration 0006 makes the same (tests/test_migrations
# compares them); a migration that rebuilds analytics must make the triggers again.

_LATEST_TABLE = {
    "sqlite": """CREATE TABLE analytics_latest (
    id INTEGER NOT NULL,
    youtube_video_id VARCHAR(100) NOT NULL PRIMARY KEY,
    measured_at TIMESTAMPTZ NOT NULL,
    view_count INTEGER,
    like_count INTEGER,
    comment_count INTEGER,
    average_view_duration_seconds REAL,
    click_through_rate REAL,
    subscriber_gain INTEGER,
    estimated_revenue_usd REAL,
    engaged_views INTEGER,
    shares INTEGER,
    watch_time_minutes REAL
) WITHOUT ROWID""",
    "postgres": """CREATE TABLE analytics_latest (
    id INTEGER NOT NULL,
    youtube_video_id VARCHAR(100) NOT NULL PRIMARY KEY,
    measured_at TIMESTAMPTZ NOT NULL,
    view_count BIGINT,
    like_count BIGINT,
    comment_count BIGINT,
    average_view_duration_seconds DOUBLE PRECISION,
    click_through_rate DOUBLE PRECISION,
    subscriber_gain BIGINT,
    estimated_revenue_usd DOUBLE PRECISION,
    engaged_views BIGINT,
    shares BIGINT,
    watch_time_minutes DOUBLE PRECISION
)""",
}

# top(n) walks this index from its most viewed end. SQLite reads an ascending index backwards (NULLs, its
# smallest values, come last; only rows of equal views are sorted, by video id, among themselves): cheaper to
# keep than a descending one, since a video's views grow and its entry mostly moves towards the end, where
# SQLite inserts fastest (a descending one doubled the triggers' cost). PostgreSQL gets the query's exact order.
_LATEST_INDEX = {
    "sqlite": "CREATE INDEX analytics_latest_view_count ON analytics_latest (view_count)",
    "postgres": "CREATE INDEX analytics_latest_view_count ON analytics_latest "
                "(view_count DESC NULLS LAST, youtube_video_id)",
}

# Row triggers on SQLite. A snapshot replaces the copy only when newer, so one that arrives late never moves
# it back; deleting the newest snapshot (and any update: rare) recomputes the video with one seek in
# idx_analytics_video; deleting an older one (compaction) costs one look-up.
_SQLITE_TRIGGERS = [
    """CREATE TRIGGER analytics_latest_insert AFTER INSERT ON analytics
BEGIN
    INSERT INTO analytics_latest ({cols}) VALUES ({new_cols})
    ON CONFLICT (youtube_video_id) DO UPDATE SET {set_cols}
    WHERE (excluded.measured_at, excluded.id) > (analytics_latest.measured_at, analytics_latest.id);
END""",
    """CREATE TRIGGER analytics_latest_delete AFTER DELETE ON analytics
WHEN OLD.id = (SELECT id FROM analytics_latest WHERE youtube_video_id = OLD.youtube_video_id)
BEGIN
    DELETE FROM analytics_latest WHERE youtube_video_id = OLD.youtube_video_id;
    INSERT INTO analytics_latest ({cols}) SELECT {cols} FROM analytics
    WHERE youtube_video_id = OLD.youtube_video_id ORDER BY measured_at DESC, id DESC LIMIT 1;
END""",
    """CREATE TRIGGER analytics_latest_update AFTER UPDATE ON analytics
BEGIN
    DELETE FROM analytics_latest WHERE youtube_video_id IN (OLD.youtube_video_id, NEW.youtube_video_id);
    INSERT INTO analytics_latest ({cols}) SELECT {cols} FROM analytics
    WHERE youtube_video_id = OLD.youtube_video_id ORDER BY measured_at DESC, id DESC LIMIT 1;
    INSERT INTO analytics_latest ({cols}) SELECT {cols} FROM analytics
    WHERE youtube_video_id = NEW.youtube_video_id AND NEW.youtube_video_id <> OLD.youtube_video_id
    ORDER BY measured_at DESC, id DESC LIMIT 1;
END""",
]

# Statement triggers on PostgreSQL: a COPY or a multi-row INSERT costs one upsert per video, not per row.
# (Row triggers would cost one per row; and each update of a row keeps a version of it until the transaction
# ends, so a transaction that records the same video in many statements makes each upsert slower.)
_POSTGRES_TRIGGERS = [
    """CREATE FUNCTION analytics_latest_refresh(videos VARCHAR[]) RETURNS void LANGUAGE sql AS $$
    DELETE FROM analytics_latest WHERE youtube_video_id = ANY (videos);
    INSERT INTO analytics_latest ({cols})
    SELECT newest.* FROM unnest(videos) AS v (vid) CROSS JOIN LATERAL (
        SELECT {cols} FROM analytics WHERE youtube_video_id = v.vid
        ORDER BY measured_at DESC, id DESC LIMIT 1) AS newest;
$$""",
    """CREATE FUNCTION analytics_latest_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_latest AS l ({cols})
    SELECT DISTINCT ON (youtube_video_id) {cols} FROM new_rows
    ORDER BY youtube_video_id, measured_at DESC, id DESC
    ON CONFLICT (youtube_video_id) DO UPDATE SET {set_cols}
    WHERE (excluded.measured_at, excluded.id) > (l.measured_at, l.id);
    RETURN NULL;
END $$""",
    """CREATE FUNCTION analytics_latest_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analytics_latest_refresh(ARRAY(
        SELECT l.youtube_video_id FROM analytics_latest l
        JOIN old_rows o ON o.youtube_video_id = l.youtube_video_id AND o.id = l.id));
    RETURN NULL;
END $$""",
    """CREATE FUNCTION analytics_latest_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analytics_latest_refresh(ARRAY(
        SELECT youtube_video_id FROM old_rows UNION SELECT youtube_video_id FROM new_rows));
    RETURN NULL;
END $$""",
    """CREATE FUNCTION analytics_latest_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE analytics_latest;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER analytics_latest_insert AFTER INSERT ON analytics REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION analytics_latest_insert()",
    "CREATE TRIGGER analytics_latest_delete AFTER DELETE ON analytics REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION analytics_latest_delete()",
    "CREATE TRIGGER analytics_latest_update AFTER UPDATE ON analytics "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION analytics_latest_update()",
    "CREATE TRIGGER analytics_latest_truncate AFTER TRUNCATE ON analytics "
    "FOR EACH STATEMENT EXECUTE FUNCTION analytics_latest_truncate()",
]

# Fills analytics_latest from the rows already there: the skip-scan of idx_analytics_video, one seek per
# video for the next video id and one for its newest snapshot (seconds at ten million rows).
_LATEST_FILL = {
    "sqlite": """WITH RECURSIVE videos (vid) AS (
    SELECT MIN(youtube_video_id) FROM analytics
    UNION ALL
    SELECT (SELECT MIN(youtube_video_id) FROM analytics WHERE youtube_video_id > vid) FROM videos WHERE vid IS NOT NULL
)
INSERT INTO analytics_latest ({cols})
SELECT {a_cols} FROM videos JOIN analytics a ON a.id = (
    SELECT id FROM analytics WHERE youtube_video_id = videos.vid ORDER BY measured_at DESC, id DESC LIMIT 1)""",
    "postgres": """WITH RECURSIVE videos (vid) AS (
    SELECT MIN(youtube_video_id) FROM analytics
    UNION ALL
    SELECT (SELECT MIN(youtube_video_id) FROM analytics WHERE youtube_video_id > vid) FROM videos WHERE vid IS NOT NULL
)
INSERT INTO analytics_latest ({cols})
SELECT newest.* FROM videos CROSS JOIN LATERAL (
    SELECT {cols} FROM analytics WHERE youtube_video_id = videos.vid
    ORDER BY measured_at DESC, id DESC LIMIT 1) AS newest""",
}

# What a bulk insert runs per video instead of analytics_latest_insert (Analytics._bulk_trigger): the video's
# newest snapshot, one seek in idx_analytics_video, copied over.
_SQLITE_LATEST_REFRESH = """INSERT INTO analytics_latest ({cols}) SELECT {cols} FROM analytics WHERE id = (
    SELECT id FROM analytics WHERE youtube_video_id = ? ORDER BY measured_at DESC, id DESC LIMIT 1)
ON CONFLICT (youtube_video_id) DO UPDATE SET {set_cols}"""

_LATEST_DROP = {
    "sqlite": ["DROP TABLE IF EXISTS analytics_latest"],
    "postgres": ["DROP TABLE IF EXISTS analytics_latest"] + [
        f"DROP FUNCTION IF EXISTS analytics_latest_{name}" for name in ("insert", "delete", "update", "truncate",
                                                                       "refresh")],
}


def _latest_schema(postgres: bool) -> List[str]:
    """The statements that make analytics_latest, its index and the triggers that keep it, then fill it.

    A copy left behind when analytics was dropped without it (the demo drops the model tables) is stale: it
    goes first.
    """
    backend = "postgres" if postgres else "sqlite"
    names = _latest_names()
    triggers = _POSTGRES_TRIGGERS if postgres else _SQLITE_TRIGGERS
    return [*_LATEST_DROP[backend], _LATEST_TABLE[backend], _LATEST_INDEX[backend],
            *(t.format(**names) for t in triggers), _LATEST_FILL[backend].format(**names)]


def _latest_names() -> Dict[str, str]:
    """The column lists the analytics_latest statements are formatted with."""
    columns = [f.column_name for f in Analytics._meta.sorted_fields]
    return dict(cols=", ".join(columns), new_cols=", ".join(f"NEW.{c}" for c in columns),
                a_cols=", ".join(f"a.{c}" for c in columns),
                set_cols=", ".join(f"{c} = excluded.{c}" for c in columns if c != "youtube_video_id"))


def _set_trigger_aside(database: peewee.SqliteDatabase, name: str) -> Optional[str]:
    """Drop the SQLite trigger `name` in the current transaction; return the SQL that makes it again."""
    row = database.execute_sql("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)).fetchone()
    if row is None:  # not made on this database (a table made by hand): nothing to set aside
        return None
    database.execute_sql(f'DROP TRIGGER "{name}"')
    return row[0]


def _is_postgres_db(database: Any) -> bool:
    return isinstance(getattr(database, "obj", database), peewee.PostgresqlDatabase)


def _utc_datetimes(values: Sequence[Any]) -> List[Any]:
    """A column of measured_at values as Analytics.measured_at reads them (aware UTC datetimes), at once."""
    try:
        if values and isinstance(values[0], str):
            # The fixed-width UTC text the field writes, with its offset added: one C call per value.
            return list(map(datetime.datetime.fromisoformat, map("{}+00:00".format, values)))
        return [value.astimezone(datetime.timezone.utc) for value in values]  # PostgreSQL's, in the session's zone
    except (TypeError, ValueError, AttributeError):
        # Text some other writer stored in another form: read as the field reads it, value by value.
        return list(map(Analytics.measured_at.python_value, values))


# The rows latest(rows="namedtuples") and top(n, rows="namedtuples") return.
Analytics.Row = collections.namedtuple("AnalyticsRow", Analytics._meta.sorted_field_names)


class ReviewLog(BaseModel):
    """A request for a human verdict on a run's short, and the answer (action is NULL until then)."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="reviews", on_delete="CASCADE",
                                   help_text="the run under review")
    sent_at = UTCDateTimeField(default=utcnow, help_text="when the request was sent")
    responded_at = UTCDateTimeField(null=True, help_text="when the answer came")
    action = EnumField(ReviewAction, null=True, help_text="approve, reject or edit; NULL until answered")
    response_detail = CharField(max_length=1024, null=True, help_text="the reviewer's words, e.g. the edit asked for")
    auto_held = BooleanField(default=False, help_text="nobody answered in time")
    # The chat message that asked: a second tap on it finds this row and changes nothing.
    message_id = CharField(max_length=128, null=True, unique=True, help_text="the chat message that asked")
    reviewer = CharField(max_length=255, null=True, help_text="who answered")

    class Meta:
        table_name = "review_logs"
        # Unanswered reviews (action IS NULL) oldest first: the auto-hold sweep and the open count.
        indexes = ((("action", "sent_at"), False),)

    # What each answer does to the run: an edit approves the short with the reviewer's changes in `response_detail`.
    OUTCOME = {
        ReviewAction.approve: RunStatus.approved,
        ReviewAction.edit: RunStatus.approved,
        ReviewAction.reject: RunStatus.rejected,
    }

    # A review's states (its action is NULL while open) and what moves it, for the README's diagram.
    TRANSITIONS = {
        "open": {"answered": "respond() / answer(): approve, edit or reject", "auto_held": "hold_stale()"},
        "auto_held": {"answered": "respond() / answer(), late"},
        "answered": {},
    }

    @classmethod
    def request(cls, run: PipelineRun, message_id: Optional[str] = None) -> "ReviewLog":
        """Ask for a review of `run` (sent now) and move the run to awaiting_review, in one transaction.

        Only the worker holding the run's claim may ask (LeaseLost otherwise); `run` is updated.
        """
        with write_lock():
            run.advance(RunStatus.awaiting_review, stage="review")
            return cls.create(pipeline_run=run, message_id=message_id)

    def respond(self, action: Union[ReviewAction, str], response_detail: Optional[str] = None,
                reviewer: Optional[str] = None, run: Optional[PipelineRun] = None) -> bool:
        """Record the human answer once and move the run to approved or rejected; True if this call recorded it.

        A rejection also marks the run's not yet uploaded shorts rejected; an approval of a run whose
        shorts are all uploaded publishes it. The run object given as `run`, or the one this review holds
        (as after ReviewLog.request(run)), is updated.

        The same answer again (a second tap on the button) changes nothing and returns False; a different
        answer to an answered review raises AlreadyAnswered.
        """
        cls = type(self)
        action = ReviewAction(cls.action.db_value(action))  # ValueError naming the field if unknown
        if run is not None and run.id != self.pipeline_run_id:
            raise ValueError(f"ReviewLog.respond: review {self.id} is of run {self.pipeline_run_id}, not run {run.id}")
        now = utcnow()
        with write_lock():
            answered = (cls.update(action=action, response_detail=response_detail, reviewer=reviewer,
                                   responded_at=now)
                        .where((cls.id == self.id) & cls.action.is_null()).execute())
            if not answered:
                row = cls.get_by_id(self.id)
                if row.action is action:
                    return False
                raise AlreadyAnswered(f"review {self.id} was already answered {row.action} "
                                      f"by {row.reviewer or 'someone'}; refusing {action}")
            # The database's run, not a caller's copy that may be stale: the answer is the reviewer's.
            moved = PipelineRun(id=self.pipeline_run_id)._locked_row()
            moved.advance(self.OUTCOME[action])
            if action is ReviewAction.reject:  # the run's unpublished shorts are rejected with it
                (Short.update(status=ShortStatus.rejected)
                 .where((Short.pipeline_run == moved.id) & Short.status.in_([ShortStatus.pending, ShortStatus.rendered]))
                 .execute())
            else:
                moved._publish_if_done()
        self.action, self.response_detail, self.reviewer, self.responded_at = action, response_detail, reviewer, now
        for copy in (run, self.__rel__.get("pipeline_run")):
            _sync(copy, moved)
        return True

    @classmethod
    def answer(cls, message_id: str, action: Union[ReviewAction, str], response_detail: Optional[str] = None,
               reviewer: Optional[str] = None, run: Optional[PipelineRun] = None) -> Tuple["ReviewLog", bool]:
        """Handle a tap on the chat message `message_id`: (review, True) when recorded, (review, False) for a repeat.

        A `run` object given is updated with the run's new status.
        """
        review = cls.get_or_none(cls.message_id == message_id)
        if review is None:
            raise cls.DoesNotExist(f"no review was requested with message_id {message_id!r}")
        return review, review.respond(action, response_detail=response_detail, reviewer=reviewer, run=run)

    @classmethod
    def hold_stale(cls, older_than: datetime.timedelta) -> int:
        """Mark unanswered reviews sent more than `older_than` ago as auto-held; return how many."""
        cutoff = utcnow() - _duration("hold_stale", older_than)
        return (cls.update(auto_held=True)
                .where(cls.action.is_null() & (cls.sent_at < cutoff) & (cls.auto_held == False))  # noqa: E712
                .execute())

    @classmethod
    def open(cls) -> peewee.ModelSelect:
        """Reviews still waiting for an answer, oldest first (auto-held ones included)."""
        return cls.select().where(cls.action.is_null()).order_by(cls.sent_at)


class ConfigOverride(BaseModel):
    """A runtime setting that overrides the pipeline's defaults; the value is any JSON value."""

    key = CharField(max_length=255, primary_key=True, help_text="the setting's name")
    value = JSONTextField(max_length=1024, help_text="any JSON value, at most 1024 characters of JSON")
    updated_at = UTCDateTimeField(default=utcnow, help_text="when it was last set")
    updated_by = CharField(max_length=64, default="system", help_text="who set it")

    class Meta:
        table_name = "config_overrides"

    @classmethod
    def set(cls, key: str, value: Any, updated_by: str = "system") -> Any:
        """Store `value` (anything JSON can hold) under `key`, replacing what was there; returns the value."""
        if isinstance(key, str) and not key.strip():  # a blank name cannot be asked for again by anyone
            raise ValueError(f"ConfigOverride.key: give the setting a name, not {key!r}")
        row = dict(key=key, value=value, updated_by=updated_by, updated_at=utcnow())
        keep = [cls.value, cls.updated_by, cls.updated_at]
        cls.insert(**row).on_conflict(conflict_target=[cls.key], preserve=keep).execute()
        return value

    @classmethod
    def get(cls, *query: Any, **filters: Any) -> Any:
        """`ConfigOverride.get(key, default=None)`: the value stored under key, with its JSON type.

        Given peewee expressions instead of a key string, this is peewee's Model.get.
        """
        if not (query and isinstance(query[0], str)):
            return super().get(*query, **filters)
        key, *rest = query
        default = rest[0] if rest else filters.pop("default", None)
        row = cls.select(cls.value).where(cls.key == key).first()
        return default if row is None else row.value

    @classmethod
    def as_dict(cls) -> Dict[str, Any]:
        """Every override as {key: value}."""
        return {row.key: row.value for row in cls.select(cls.key, cls.value).order_by(cls.key)}


class ErrorLog(BaseModel):
    """An exception a pipeline module hit; kept when its run is deleted (pipeline_run becomes NULL)."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="errors", null=True, on_delete="SET NULL",
                                   help_text="the run it happened in, if any")
    module = CharField(max_length=255, help_text="the pipeline module that hit it")
    error_type = CharField(max_length=255, help_text="the exception's class name")
    error_message = TextField(help_text="the exception's message")
    stack_trace = TextField(null=True, help_text="the formatted traceback")
    occurred_at = UTCDateTimeField(default=utcnow, help_text="when it happened")
    resolved = BooleanField(default=False, help_text="someone dealt with it")

    class Meta:
        table_name = "error_logs"
        indexes = ((("resolved", "occurred_at"), False),)  # the unresolved errors across modules

    @classmethod
    def record(cls, exc: BaseException, module: str, pipeline_run: Optional[PipelineRun] = None) -> "ErrorLog":
        """Store `exc` (class name, message, formatted traceback) as an unresolved error of `module`.

        Written in the caller's transaction, if any: should that transaction roll back, this row goes with
        it. To record an error that aborts a transaction, use capture() around that transaction.

        An error is never lost to text the database cannot store. In the module, type, message and
        traceback, each NUL is stored as the four characters \\x00, and each lone surrogate (what Python
        makes of an undecodable byte, e.g. of a file name: b"\\xff" becomes "\\udcff") as its six-character
        escape such as \\udcff, as Python's 'backslashreplace' writes them (fields.escape_unstorable); every
        other character is stored as it is. A message whose str() fails is stored as a placeholder naming
        the type. Rows written with create() or save() are checked as in any model.
        """
        return cls.create(
            pipeline_run=pipeline_run,
            module=escape_unstorable(module),
            error_type=escape_unstorable(type(exc).__name__)[:255],  # type() makes classes of any name length
            error_message=escape_unstorable(cls._message(exc)),
            stack_trace=escape_unstorable("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))),
        )

    @staticmethod
    def _message(exc: BaseException) -> str:
        """str(exc), or repr(exc) when that is empty; a placeholder when the exception cannot be printed."""
        try:
            return str(exc) or repr(exc)
        except Exception:  # a broken __str__ must not cost the row: the type and traceback still say much
            return f"<{type(exc).__name__} whose str() failed>"

    @classmethod
    def capture(cls, module: str, pipeline_run: Optional[PipelineRun] = None) -> "_Capture":
        """Context manager and decorator: record any exception escaping the block, then re-raise it.

        Put it outside the block's transaction: the row is written after that transaction rolled back,
        so it is never lost with it. Text is stored as record() stores it; should recording fail all the
        same, that is logged and the original exception still raised, and a caller's transaction stays usable.
        """
        return _Capture(module, pipeline_run)

    @classmethod
    def unresolved(cls, module: Optional[str] = None) -> peewee.ModelSelect:
        """Unresolved errors, newest first; only `module`'s when given."""
        where = cls.resolved == False  # noqa: E712
        if module is not None:
            where &= cls.module == module
        return cls.select().where(where).order_by(cls.occurred_at.desc())

    def resolve(self) -> None:
        """Mark this error resolved."""
        type(self).update(resolved=True).where(type(self).id == self.id).execute()
        self.resolved = True


ErrorLog.add_index(ErrorLog.module, ErrorLog.occurred_at, name="idx_error_log_module")  # a module's errors


class _Capture(contextlib.ContextDecorator):
    """ErrorLog.capture(): records the exception leaving the block; a failure to record never hides it."""

    def __init__(self, module: str, pipeline_run: Optional[PipelineRun]) -> None:
        self.module, self.pipeline_run = module, pipeline_run

    def __enter__(self) -> "_Capture":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        if exc is not None and isinstance(exc, Exception):
            try:
                with db.atomic():  # a savepoint in a caller's transaction: a failed insert leaves it usable
                    ErrorLog.record(exc, self.module, self.pipeline_run)
            except Exception:
                logger.exception("could not record %s from %s", exc_type.__name__, self.module)
        return False  # re-raise


ALL_MODELS = [
    DiscoveredVideo,
    PipelineRun,
    Clip,
    Script,
    TTSAudio,
    Short,
    Analytics,
    ReviewLog,
    ConfigOverride,
    ErrorLog,
]
SCHEMA_MODELS.extend(ALL_MODELS)
