"""The one database handle every model uses, and `init_db`, which binds it and brings the schema up
to date.

Bind once per process, then use the models anywhere:

    from pipeline_models import init_db
    init_db("pipeline.db")        # or ":memory:", "postgresql://...", or a peewee.Database

Tests and scripts that manage the database themselves bind the proxy directly:

    db.initialize(SqliteDatabase(":memory:")); db.create_tables(ALL_MODELS)
"""
import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import peewee
from playhouse.migrations import Runner
from playhouse.schema_diff import diff_models

from . import _peewee
# POSTGRES_DRIVER_MISSING and redact: re-exported, their first home; database_for and
# open_connection for the demo, which opens a database its own way.
from .connections import (  # noqa: F401
    CLIENT_ENCODING,
    POSTGRES_DRIVER_MISSING,
    SQLITE_FILE_PRAGMAS,
    database_for,
    database_label,
    named_error,
    open_connection,
    prepare_sqlite_file,
    sqlite_file,
    use_wal,
)
from .errors import (  # noqa: F401
    BusySnapshot,
    CannotOpenDatabase,
    DatabaseNotBound,
    SchemaMismatch,
    TablesMissing,
    deprecated,
    redact,
)
from .fields import backend_of
from .migrations._base import migration as _migration_module

__all__ = ["db", "init_db", "migrate", "write_lock", "MIGRATIONS_DIR", "SQLITE_FILE_PRAGMAS"]

logger = logging.getLogger("pipeline_models")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# The three tables the pipeline had before this package, which every pipeline database has.
_ORIGINAL_TABLES = ("discovered_videos", "pipeline_runs", "clips")

# Columns only the pipeline's own tables have (its SQLAlchemy module made them): such a database is
# adopted.
_PIPELINE_KEYS = (("discovered_videos", "video_id"), ("pipeline_runs", "cycle_start"),
                  ("clips", "rank_position"))
_PIPELINE_MIGRATION = "0007_pipeline_tables"  # the schema adoption brings the pipeline's tables to

# A (table, column) each migration leaves that the ones before it did not: a database without
# history made by create_tables() of an earlier release is adopted at the last migration in an
# unbroken run of marks.
_MIGRATION_MARKS = (
    ("pipeline_runs", "id"),  # 0001_original_tables
    ("pipeline_runs", "heartbeat_at"),  # 0002_review_publish_analytics
    ("shorts", "upload_started_at"),  # 0003_short_upload_claim
    ("analytics", "view_count"),  # 0004_seed_schema
    ("pipeline_runs", "claim_token"),  # 0005_run_queue
    ("analytics_latest", "view_count"),  # 0006_analytics_latest
)

# The package's models, whose tables init_db and migrate check are all there. models/__init__.py
# adds them when it is imported: it imports this module, so this module cannot import it.
SCHEMA_MODELS: List[type] = []

# What Analytics.create_table makes beside the model tables (migration 0006 makes the same):
# analytics_latest, and the triggers on analytics that keep it. Without them latest() and top(n)
# would answer from nothing.
_DERIVED_TABLE = ("analytics", "analytics_latest")
_DERIVED_TRIGGERS = ("analytics_latest_insert", "analytics_latest_delete",
                     "analytics_latest_update")


# What SQLite says when asked to roll back a transaction it already rolled back by itself.
_ALREADY_ROLLED_BACK = re.compile("no transaction is active|no such savepoint")


class _atomic(_peewee.Atomic):
    """peewee's atomic block, raising the error that ended the transaction, not the rollback's
    complaint.

    On a full disk or an I/O error SQLite rolls the transaction back by itself; peewee's own
    rollback then fails with "cannot rollback - no transaction is active", which would hide the real
    cause. A failure that is not the data's names the database, at BEGIN as at any statement in the
    block; and on SQLite the block never ends with the connection still in its transaction (see
    _left_transaction).
    """

    def __enter__(self) -> Any:
        try:
            return super().__enter__()
        except (peewee.DatabaseError, peewee.InterfaceError) as exc:
            if _is_busy_snapshot(exc):
                raise BusySnapshot() from exc
            named = named_error(exc, self.db)  # BEGIN: a database bound by hand names it here too
            if named is exc:
                raise
            raise named from None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            result = super().__exit__(exc_type, exc, tb)
        except (peewee.DatabaseError, peewee.InterfaceError) as failure:
            if not _ALREADY_ROLLED_BACK.search(str(failure)):
                raise named_error(failure, self.db)
            raise named_error(exc if exc is not None else _first_cause(failure), self.db) from None
        finally:
            _left_transaction(self.db)
        if _is_busy_snapshot(exc):  # a write in the block met the snapshot an open read pins
            raise BusySnapshot() from exc
        # A statement past execute_sql (the bulk path's cursor) failed in the block.
        named = named_error(exc, self.db)
        if named is not exc:
            raise named from None
        return result


def _left_transaction(database: Any) -> None:
    """After the outermost block on SQLite, make sure the connection holds no transaction peewee
    forgot.

    peewee counts the transaction ended before its ROLLBACK runs; a ROLLBACK that failed would leave
    SQLite's connection in the transaction, holding the write lock every other process waits for,
    for good. Such a connection is rolled back here, or closed (SQLite rolls back a closed
    connection's transaction).
    """
    database = getattr(database, "obj", database)
    if backend_of(database) != "sqlite" or database.is_closed() or database.in_transaction():
        return
    conn = _peewee.connection(database)
    if not getattr(conn, "in_transaction", False):
        return
    try:
        conn.execute("ROLLBACK")
    except Exception:  # whatever refused it, closing the connection below ends the transaction
        pass
    if conn.in_transaction:
        try:
            database.close()
        # peewee forgets the connection whatever close() met: the next statement opens anew
        except Exception:
            pass


def _first_cause(failure: BaseException) -> BaseException:
    """The error that ended a transaction, behind the rollback's complaints about it (a failed
    COMMIT)."""
    cause: Any = failure
    while cause is not None and _ALREADY_ROLLED_BACK.search(str(cause)):
        cause = cause.__context__
    if cause is None:
        return failure
    # the driver's own: as peewee would have wrapped it
    if not isinstance(cause, peewee.PeeweeException):
        return peewee.OperationalError(str(cause))
    return cause


# A table a statement names is missing: SQLite's message, PostgreSQL's (English) message and
# SQLSTATE.
_NO_SUCH_TABLE = re.compile(r"no such table: (?:main\.)?(\S+)")
_UNDEFINED_TABLE = re.compile(r'relation "([^"]+)" does not exist')
_UNDEFINED_TABLE_STATE = "42P01"


def missing_table_error(exc: BaseException, database: Any) -> Optional[TablesMissing]:
    """TablesMissing for `exc` when it says a table does not exist in `database`, else None."""
    if (not isinstance(exc, (peewee.OperationalError, peewee.ProgrammingError))
            or isinstance(exc, TablesMissing)):
        return None
    found = _NO_SUCH_TABLE.search(str(exc)) or _UNDEFINED_TABLE.search(str(exc))
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)  # psycopg 3, psycopg2
    if found is None and state != _UNDEFINED_TABLE_STATE:
        return None
    return TablesMissing(found.group(1) if found else None, database_label(database))


def _is_busy_snapshot(exc: Any) -> bool:
    """SQLITE_BUSY_SNAPSHOT: no busy timeout helps, the reading statement must finish first."""
    if not isinstance(exc, peewee.OperationalError):
        return False
    # peewee raises its own OperationalError while handling the driver's, which is its context (or
    # its `orig`, once the error was named: see connections.named_error).
    causes = (exc.__context__, getattr(exc, "orig", None), *exc.args)
    return any(getattr(e, "sqlite_errorcode", None) == 517 for e in causes)


class _DatabaseProxy(peewee.DatabaseProxy):
    """peewee's DatabaseProxy, with errors that say what to do when it is used unbound or a table is
    missing."""

    def atomic(self, *args: Any, **kwargs: Any) -> _atomic:
        """A transaction, or a savepoint inside one; see _atomic for how it reports a failed
        rollback."""
        return _atomic(self, *args, **kwargs)

    def execute(self, query: Any, **context_options: Any) -> Any:
        """Run a query: every model query comes through here. A missing table raises
        TablesMissing."""
        if self.obj is None:
            raise DatabaseNotBound()
        try:
            return self.obj.execute(query, **context_options)
        except (peewee.DatabaseError, peewee.InterfaceError) as exc:
            # Only the exception changes: the statement failed as it did, and a PostgreSQL
            # transaction is aborted just the same, for the caller's atomic() to roll back.
            missing = missing_table_error(exc, self.obj)
            if missing is not None:
                raise missing from exc
            named = named_error(exc, self.obj)  # a database bound by hand: named as init_db's are
            if named is exc:
                raise
            raise named from None

    def __getattr__(self, attr: str) -> Any:
        # Private and dunder look-ups keep AttributeError, so hasattr() and copy still work.
        if self.obj is None and not attr.startswith("_"):
            raise DatabaseNotBound()
        return super().__getattr__(attr)

    def __enter__(self) -> Any:
        if self.obj is None:
            raise DatabaseNotBound()
        return self.obj.__enter__()


db = _DatabaseProxy()


@db.attach_callback
def _enforce_foreign_keys(database: Any) -> None:
    """Turn SQLite's foreign keys on for every connection, however the proxy is bound."""
    if backend_of(database) != "sqlite":
        return
    pragmas = _peewee.pragmas(database)
    pragmas["foreign_keys"] = 1
    _peewee.set_pragmas(database, pragmas)
    # A connection opened before binding (":memory:" often is) missed the connect-time pragma.
    if not database.is_closed() and not database.in_transaction():
        database.execute_sql("PRAGMA foreign_keys = 1")


@db.attach_callback
def _speak_utf8(database: Any) -> None:
    """Make every connection of a PostgreSQL database bound to the proxy speak CLIENT_ENCODING,
    however it is bound.

    On a SQL_ASCII database the server's encoding would be the client's too, and psycopg would
    return text as bytes (peewee's introspection fails on them, and so would every model's text
    field).
    """
    if backend_of(database) != "postgres":
        return
    if _peewee.client_encoding(database) is None:  # a caller who chose an encoding keeps it
        _peewee.set_client_encoding(database, CLIENT_ENCODING)
    # A connection opened before binding may have been made with SQL_ASCII (libpq knows: no round
    # trip).
    conn = _peewee.connection(database)
    if conn is None or database.in_transaction() or _peewee.status_unknown(database):
        return
    if str(conn.info.parameter_status("client_encoding") or "").upper() == "SQL_ASCII":
        try:
            database.execute_sql(f"SET client_encoding TO '{CLIENT_ENCODING}'")
        # a dead connection: binding still binds, the next statement says why
        except peewee.PeeweeException:
            pass


def init_db(
    target: Union[str, "os.PathLike[str]", peewee.Database] = "pipeline.db", *,
    upgrade: bool = True, readonly: bool = False, create: bool = True, **old_names: Any,
) -> peewee.Database:
    """Open `target`, bind the models to it, apply pending migrations and return the database.

    `target` is a SQLite file path, ":memory:", a URL (sqlite:///pipeline.db,
    postgresql://user@host/db) or a peewee.Database. SQLite files get SQLITE_FILE_PRAGMAS: WAL,
    synchronous=NORMAL, a 10 s busy timeout and a 32 MB page cache (pragmas the caller set on a
    Database they pass in are kept). Calling it again on an up-to-date database changes nothing.
    `upgrade=False` leaves pending migrations unapplied. `create=False` refuses a SQLite file that
    does not exist or is empty instead of making a new database. `readonly=True` changes nothing at
    all: no file, no migration, no journal mode; a SQLite file is opened read-only and a PostgreSQL
    session refuses writes; a database that is not a pipeline database, or needs migrations, is
    refused. Raises CannotOpenDatabase, naming the target (never its password), when it cannot be
    opened.
    """
    upgrade = _renamed_upgrade(upgrade, old_names)
    database = database_for(target, readonly)
    path = sqlite_file(database)
    if path is not None:
        prepare_sqlite_file(database, target, path, readonly or not create)
    previous = db.obj
    db.initialize(database)
    try:
        open_connection(database, target, check_file=path is not None)
        if readonly:
            _check_current(database, target)
        elif upgrade:
            _migrate(database, target)
        if path is not None and not readonly and "journal_mode" not in _peewee.pragmas(database):
            use_wal(database, target)
    except BaseException:
        if database is not target:  # ours: close it; a caller's database stays as they left it
            database.close()
        db.initialize(previous)
        raise
    return database


def _renamed_upgrade(upgrade: bool, old_names: Dict[str, Any]) -> bool:
    """init_db's `upgrade`, from its old name `migrate` (which hid the migrate() function) with a
    warning."""
    if "migrate" in old_names:
        deprecated("init_db(migrate=...)", "init_db(upgrade=...)", stacklevel=3)
        upgrade = old_names.pop("migrate")
    if old_names:
        raise TypeError(f"init_db() got an unexpected keyword argument {next(iter(old_names))!r}")
    return upgrade


def write_lock(database: Any = db) -> _atomic:
    """A transaction (context manager or decorator) that holds the write lock from its start.

    On SQLite this is BEGIN IMMEDIATE: a deferred transaction that reads and then writes fails at
    once with "database is locked" when another process wrote in between, whatever the busy timeout.
    """
    if backend_of(database) == "sqlite":
        return _atomic(database, "IMMEDIATE")
    return _atomic(database)


def serialized(name: str, database: Any = db) -> None:
    """Inside write_lock(): wait until no other transaction holds the lock called `name`, then hold
    it to the end.

    For a rule over many rows (at most N running, at most N uploads a day) that two processes must
    not check at once. SQLite's write lock already admits one writer at a time; PostgreSQL takes an
    advisory transaction lock, released at COMMIT or ROLLBACK.
    """
    if backend_of(database) == "postgres":
        database.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))",
                             (f"pipeline_models.{name}",))


def migrate(database: Union[peewee.Database, None] = None) -> List[str]:
    """Apply the pending migrations to `database` (the bound one by default); return their names."""
    if database is None:
        database = db.obj
        if database is None:
            raise DatabaseNotBound()
    return _migrate(database, database.database)


def _migrate(database: peewee.Database, target: object) -> List[str]:
    try:
        runner = Runner(database, str(MIGRATIONS_DIR))
        pending = _pending(runner)
    except peewee.DatabaseError as exc:
        raise CannotOpenDatabase(target, str(exc)) from None
    if not pending:
        _check_schema(database)
        return []
    try:
        with write_lock(database):
            if backend_of(database) == "postgres":
                # Two processes starting at once must not both run the same migration.
                database.execute_sql("SELECT pg_advisory_xact_lock(724071)")
            applied = []
            if not runner.History.table_exists():
                applied += _adopt_original_tables(database, runner)
            applied += runner.up()
            _check_schema(database)
    # read-only, full, locked for longer than the busy timeout
    except peewee.OperationalError as exc:
        raise CannotOpenDatabase(target,
                                 f"cannot apply migrations {', '.join(pending)}: {exc}") from None
    for name in applied:
        logger.info("applied migration %s", name)
    return applied


def _pending(runner: Runner) -> List[str]:
    """The names of the migrations not yet applied (history rows whose file is gone are not
    pending)."""
    return [m.name for m in runner.status() if not m.applied and m.path is not None]


def _check_current(database: peewee.Database, target: object) -> None:
    """Refuse, changing nothing, a database that is not a pipeline database or that needs
    migrations."""
    tables = set(database.get_tables())
    if not set(_ORIGINAL_TABLES) <= tables:
        raise CannotOpenDatabase(target,
                                 "it is not a pipeline database (it has no pipeline tables); "
                                 "create one with init_db or `pipeline-models init`")
    pending = _pending(Runner(database, str(MIGRATIONS_DIR)))
    if pending:
        raise SchemaMismatch(f"the database needs the migrations {', '.join(pending)}: apply them "
                             "with `pipeline-models migrate` (or init_db), then try again")
    _check_schema(database)


def _adopt_original_tables(database: peewee.Database, runner: Runner) -> List[str]:
    """Record as applied what a database without history already has.

    Tables made by db.create_tables(ALL_MODELS) are the whole current schema: every migration is
    recorded. The pipeline's own tables (made by its SQLAlchemy module) are rebuilt to the schema of
    0007, every row kept, and recorded up to it. Tables made by an earlier release's create_tables()
    are recorded up to the last migration whose mark they carry. The rest then runs.
    """
    tables = set(database.get_tables())
    present = [t for t in _ORIGINAL_TABLES if t in tables]
    if not present:
        return []
    if not _missing_from_schema(database):
        logger.info("adopting tables made by create_tables: every migration recorded as applied")
        return runner.fake()
    if len(present) < len(_ORIGINAL_TABLES):
        missing = ", ".join(t for t in _ORIGINAL_TABLES if t not in tables)
        raise SchemaMismatch(
            f"the database has {', '.join(present)} but not {missing}: it is not a pipeline "
            "database, and it will not be adopted; use a new file"
        )
    columns = {t: {c.name for c in database.get_columns(t)} for t in present}
    if all(c in columns[t] for t, c in _PIPELINE_KEYS):
        logger.info("adopting the pipeline's own tables: rebuilt to %s, every row kept",
                    _PIPELINE_MIGRATION)
        _migration_module(_PIPELINE_MIGRATION).adopt_pipeline(database)
        return runner.fake(_PIPELINE_MIGRATION)
    reached = None
    for migration, (table, column) in zip(runner.migrations(), _MIGRATION_MARKS):
        if table not in tables or column not in {c.name for c in database.get_columns(table)}:
            break
        reached = migration.name
    if reached is None or "youtube_video_id" not in columns["discovered_videos"]:
        raise SchemaMismatch("the database's discovered_videos, pipeline_runs and clips are "
                             "neither the pipeline's "
                             "nor this package's: it will not be adopted; use a new file")
    logger.info("adopting a database without migration history: up to %s recorded as applied",
                reached)
    return runner.fake(reached)


def _missing_from_schema(database: peewee.Database) -> List[str]:
    """The tables, columns and triggers the models need that the database lacks (schema_diff:
    additions only)."""
    diff = diff_models(database, SCHEMA_MODELS)
    missing = [f"table {m._meta.table_name}" for m in diff.create_tables]
    missing += [f"column {f.model._meta.table_name}.{f.column_name}" for f in diff.add_columns]
    source, derived = _DERIVED_TABLE
    tables = set(database.get_tables())
    if source in tables and derived not in tables:
        missing.append(f"table {derived}")
    elif source in tables:
        if backend_of(database) == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?"
        else:
            sql = ("SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s) "
                   "AND NOT tgisinternal")
        found = {row[0] for row in database.execute_sql(sql, (source,))}
        missing += [f"trigger {name}" for name in _DERIVED_TRIGGERS if name not in found]
    return missing


def _check_schema(database: peewee.Database) -> None:
    """Fail loudly when a table or column a model needs is missing, rather than on some later
    query."""
    missing = _missing_from_schema(database)
    if missing:
        raise SchemaMismatch(
            "after migrating, the database still lacks " + ", ".join(missing)
            + ": it was not made by this package's migrations"
        )
