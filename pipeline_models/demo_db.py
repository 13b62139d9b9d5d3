"""The demo's database: a new one, or one an earlier demo made (made anew); never anyone else's.

The demo writes simulated data, so fresh_database() binds only a missing or 0-byte SQLite file, a
PostgreSQL database without any table, or a database whose ConfigOverride MARKER says the demo made
it; anything else is refused, unchanged, with PipelineModelsError.
"""
import os
from typing import Optional
from urllib.parse import urlparse

import peewee
from playhouse import db_url
from playhouse.migrations import Runner

from .db import MIGRATIONS_DIR, database_for, db, init_db, open_connection, redact
from .errors import CannotOpenDatabase, PipelineModelsError, SchemaMismatch
from .models import ALL_MODELS, ConfigOverride

__all__ = ["MARKER", "fresh_database"]

MARKER = "demo.database"  # a config key: this database was made by the demo and may be made anew
def fresh_database(target: str) -> None:
    """Bind a new, empty pipeline database at `target`; remake an earlier demo's, refuse others'."""
    path = _sqlite_path(target)
    if path is None:
        _empty_postgres(target)
    else:
        _empty_sqlite(target, path)
    init_db(target)
    ConfigOverride.set(MARKER, True, updated_by="demo")


def _refuse(target: str, why: str) -> PipelineModelsError:
    return PipelineModelsError(
        f"the demo will not use {redact(target)!r}: {why}; it writes simulated data, so it only "
        "uses a new or empty database or one an earlier demo made: give --db a new SQLite file (or "
        "an empty PostgreSQL database)")


def _sqlite_path(target: str) -> Optional[str]:
    """The file of a SQLite target, None for a PostgreSQL URL; any other target is refused."""
    scheme = urlparse(target).scheme if "://" in target else ""
    if scheme in ("postgres", "postgresql"):
        return None
    if scheme not in ("", "sqlite"):
        raise _refuse(target, "the demo runs on a SQLite file or a PostgreSQL database")
    path = db_url.parseresult_to_dict(urlparse(target))["database"] if scheme else target
    if not path or path == ":memory:" or path.startswith("file:"):
        # The demo's database is for looking at afterwards (status, report): an in-memory one is
        # gone at exit.
        raise _refuse(target, "its database is left to look at afterwards, which an in-memory one "
                              "is not; give a file")
    return path


def _empty_sqlite(target: str, path: str) -> None:
    """Make way for a new database file at `path`: nothing there yet, or an earlier demo's file
    (removed)."""
    # SQLite would read a leftover -wal or -journal into a new file of the same name: they go with
    # their file, and only with a file the demo made.
    if os.path.isdir(path):
        raise _refuse(target, "it is a directory")
    beside = [path + suffix for suffix in ("-wal", "-shm", "-journal")
              if os.path.lexists(path + suffix)]
    if not os.path.exists(path) or (os.path.isfile(path) and os.path.getsize(path) == 0):
        if beside:
            raise _refuse(target, f"{beside[0]!r} is left beside it, which SQLite would read into "
                                  "a new database")
        return
    why = _not_made_by_demo(target)
    if why:
        raise _refuse(target, why)
    for name in [path] + beside:
        os.remove(name)


def _empty_postgres(target: str) -> None:
    """Make way for the demo's tables: a database without tables, or an earlier demo's (its tables
    dropped)."""
    reader = _postgres(target, readonly=True)
    try:
        # Tables and views of every schema: data in any of them is someone's.
        found = reader.execute_sql(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname !~ '^pg_(toast|temp_)' LIMIT 1").fetchone()
        why = found and _not_made_by_demo(target, reader)
    finally:
        reader.close()
        db.initialize(None)
    if why:
        raise _refuse(target, why)
    if not found:
        return
    writer = _postgres(target, readonly=False)
    try:
        # Only what the package made: the pipeline tables (their sequences go with them) and the
        # migration history. No CASCADE: should anything else depend on them, the drop fails and
        # nothing is dropped.
        names = [model._meta.table_name for model in ALL_MODELS]
        names.append(Runner(writer, str(MIGRATIONS_DIR)).History._meta.table_name)
        with writer.atomic():
            writer.execute_sql("DROP TABLE IF EXISTS " + ", ".join(f'"{name}"' for name in names))
    finally:
        writer.close()


def _postgres(target: str, readonly: bool) -> peewee.Database:
    """A connection to the PostgreSQL database of `target`; `readonly`: a session that refuses every
    write."""
    # init_db's own way of opening it, so a failure (no driver, a refused connection) reads as
    # status's does.
    database = database_for(target, readonly=readonly)
    open_connection(database, target, check_file=False)
    return database


def _not_made_by_demo(target: str, database: Optional[peewee.Database] = None) -> str:
    """Why `target` (or `database`, already open on it) is not a database the demo made; "" when it
    is."""
    try:
        # Reads only: someone else's file stays byte for byte as it was.
        init_db(database or target, readonly=True)
        made = ConfigOverride.value_of(MARKER, False) is True
    except SchemaMismatch:
        # Whether the demo made it cannot be read without migrating it, which is for its owner to
        # decide.
        return ("it is a pipeline database of an older release (if an earlier demo made it, "
                f"`pipeline-models migrate --db {redact(target)}` lets the demo make it anew)")
    except CannotOpenDatabase as exc:
        return exc.reason.split(";")[0]  # the reason, without its advice to make it a pipeline one
    finally:
        if db.obj is not None and db.obj is not database:  # the caller closes its own
            db.obj.close()
        db.initialize(None)
    return "" if made else "it holds pipeline data the demo did not make"
