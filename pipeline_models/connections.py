"""Opening what init_db is given: a SQLite file (pragmas, WAL, noticing a file deleted or replaced
under it), a PostgreSQL URL (a connection that heals after a server restart), or a peewee.Database;
failures that name the database and never its password.
"""
import os
import time
from typing import Any, Union
from urllib.parse import quote, urlparse

import peewee
from playhouse import db_url

from . import _peewee
from .errors import IN_MEMORY, CannotOpenDatabase, DatabaseFileChanged, PipelineModelsError
from .fields import backend_of

# For a file shared by several worker processes: readers never block the writer (WAL), commits skip
# the fsync WAL makes safe to skip, a writer waits up to 10 s for the lock instead of failing, and
# each connection keeps up to 32 MB of pages (SQLite's default 2 MB is outgrown by a few months of
# analytics).
SQLITE_FILE_PRAGMAS = {"journal_mode": "wal", "synchronous": "normal", "busy_timeout": 10_000,
                       "cache_size": -32_000}

# What every PostgreSQL connection the package opens (or is bound to) speaks, whatever the server's
# encoding: on a SQL_ASCII database the server's own would make psycopg return text as bytes.
CLIENT_ENCODING = "UTF8"


def database_label(database: Any) -> str:
    """How an error names a database: its file, or its name, host and port (never a password)."""
    database = getattr(database, "obj", database)
    if backend_of(database) == "sqlite":
        name = sqlite_file(database) or database.database or ""
        if name in ("", ":memory:") or "mode=memory" in name:
            return IN_MEMORY  # TablesMissing adds why such a database can lose its tables
        return f"SQLite file {name}"
    params = getattr(database, "connect_params", {}) or {}
    where = f" at {params['host']}:{params.get('port', 5432)}" if params.get("host") else ""
    return f"database {database.database}{where}"


def named_error(exc: Any, database: Any) -> Any:
    """`exc` (a database failure that is not about the data) with the database it happened on in its
    message.

    A connection refused or lost is a peewee.InterfaceError as often as an OperationalError: both
    are named. The package's own errors (TablesMissing) say where already.
    """
    if exc is None or isinstance(exc,
                                 (peewee.IntegrityError, peewee.DataError, PipelineModelsError)) \
            or not isinstance(exc, (peewee.DatabaseError, peewee.InterfaceError)) \
            or getattr(database, "obj", database) is None:
        return exc
    label = database_label(database)
    if label in str(exc):
        return exc
    named = type(exc)(f"{exc} ({label})")
    named.__cause__, named.__traceback__ = exc.__cause__, exc.__traceback__
    # the driver's error: its SQLSTATE tells a missing table in any language
    if hasattr(exc, "orig"):
        named.orig = exc.orig
    return named


class _NamesItsFailures:
    """Mixin for the databases init_db makes: a failure (not the data's) names the database, whether
    a statement met it, the connection (made again after a restart), or the BEGIN, COMMIT or
    ROLLBACK of a transaction."""

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        with _naming(self):
            return super().execute_sql(sql, params)  # type: ignore[misc]

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        with _naming(self):
            return super().connect(*args, **kwargs)  # type: ignore[misc]

    def begin(self, *args: Any, **kwargs: Any) -> Any:
        # peewee sends BEGIN (and COMMIT, ROLLBACK) through a cursor, past execute_sql.
        with _naming(self):
            return super().begin(*args, **kwargs)  # type: ignore[misc]

    def commit(self) -> Any:
        with _naming(self):
            return super().commit()  # type: ignore[misc]

    def rollback(self) -> Any:
        with _naming(self):
            return super().rollback()  # type: ignore[misc]


class _naming:
    """A context that re-raises a failure of `database` with the database named (named_error)."""

    def __init__(self, database: Any) -> None:
        self.database = database

    def __enter__(self) -> None:
        pass

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        named = named_error(exc, self.database)
        if named is not exc:
            raise named from None


class _SqliteFile(_NamesItsFailures, peewee.SqliteDatabase):
    """A SQLite file that notices, at the next statement, when it was deleted, replaced or
    truncated.

    A process would otherwise go on writing to a file no other process sees (deleted: the old
    inode), or read a stranger's file as its own; a new process would make a new, empty database
    beside it.
    """

    def __init__(self, path: str, *args: Any, **kwargs: Any) -> None:
        self.path = path  # the file, also when `database` is a read-only file: URI
        super().__init__(*args or (path,), **kwargs)

    def _connect(self) -> Any:
        conn = super()._connect()
        st = os.stat(self.path)  # sqlite3 created it if it was missing
        self._identity, self._size = (st.st_dev, st.st_ino), st.st_size
        return conn

    def cursor(self, named_cursor: Any = None) -> Any:
        """peewee's cursor(), after checking that the file is still the one this connection
        opened."""
        if not self.is_closed():
            self._check_file()
        return super().cursor(named_cursor)

    def rollback(self) -> Any:
        """ROLLBACK, even when the file was changed under the connection.

        Only this connection holds the transaction, and with it a lock every other process waits for
        (in WAL mode the lock is in the -shm file, which a replaced database file keeps): a rollback
        refused because the file changed would leave it held as long as the process lives.
        """
        if self.is_closed():
            return super().rollback()  # peewee's error for it
        with _naming(self), _peewee.exception_wrapper:
            _peewee.connection(self).cursor().execute("ROLLBACK")

    def _check_file(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise DatabaseFileChanged(self.path, "deleted") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise DatabaseFileChanged(self.path, "replaced by another file")
        if st.st_size == 0 and self._size > 0:
            raise DatabaseFileChanged(self.path, "truncated to 0 bytes")
        self._size = st.st_size


class _HealingPostgresqlDatabase(_NamesItsFailures, peewee.PostgresqlDatabase):
    """PostgreSQL whose connection, once the server dropped it (a restart, a network cut), is
    replaced before the next statement.

    A statement is never run twice: the one that met the dead connection fails to its caller (it may
    or may not have run), as does a transaction that was cut; only BEGIN, which has done nothing
    yet, is tried again on a new connection. playhouse's ReconnectMixin re-runs the failed statement
    instead.

    Its connections speak CLIENT_ENCODING, unless the URL sets a client_encoding.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("encoding", CLIENT_ENCODING)
        super().__init__(*args, **kwargs)

    def cursor(self, named_cursor: Any = None) -> Any:
        """peewee's cursor(), on a new connection when the current one is known dead and no
        transaction is open."""
        if not self.is_closed() and not self.in_transaction() and self._dead():
            self._drop()
        return super().cursor(named_cursor)

    def begin(self, *args: Any, **kwargs: Any) -> Any:
        """BEGIN, once more on a new connection if the server had dropped the old one."""
        try:
            return super().begin(*args, **kwargs)
        except (peewee.OperationalError, peewee.InterfaceError):
            if not self._dead():
                raise
            self._drop()
            return super().begin(*args, **kwargs)

    def _dead(self) -> bool:
        return _peewee.status_unknown(self)

    def _drop(self) -> None:
        try:
            _peewee.connection(self).close()
        except Exception:  # already broken: closing it is only tidying up
            pass
        _peewee.forget_connection(self)


POSTGRES_DRIVER_MISSING = ("no PostgreSQL driver is installed: install the 'postgres' extra, which "
                           "installs psycopg 3 "
                           "(from the repository root: .venv/bin/pip install -e '.[postgres]')")


def sqlite_file(database: peewee.Database) -> Union[str, None]:
    """The file path of a SQLite database, or None for in-memory and non-SQLite databases."""
    if backend_of(database) != "sqlite":
        return None
    if isinstance(database, _SqliteFile):
        return database.path
    name = database.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return name


def _check_sqlite_file(target: object, path: str) -> None:
    """Refuse, before anything is created, a path where SQLite could not create a database file."""
    if os.path.isdir(path):
        raise CannotOpenDatabase(target, "it is a directory; give a file path such as pipeline.db")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CannotOpenDatabase(target, f"directory {parent!r} does not exist")


def database_for(target: Union[str, "os.PathLike[str]", peewee.Database],
                 readonly: bool = False) -> peewee.Database:
    """init_db's target as a peewee Database, not connected yet."""
    if isinstance(target, peewee.Database):
        return target
    if isinstance(target, peewee.Proxy):
        raise CannotOpenDatabase(target, "pass the database itself, not a proxy")
    if not isinstance(target, (str, os.PathLike)):
        raise CannotOpenDatabase(target,
                                 "expected a file path, ':memory:', a database URL or a "
                                 "peewee.Database")
    target = os.fspath(target)
    path = target
    if "://" in target:
        parsed = urlparse(target)
        try:
            if parsed.scheme in ("postgres", "postgresql"):
                kwargs = db_url.parseresult_to_dict(parsed, unquote_password=True,
                                                    unquote_user=True)
                if not kwargs.get("database"):
                    return db_url.connect(target)  # its error says how to name the database
                # every transaction of the session is READ ONLY: the server refuses writes
                if readonly:
                    kwargs["options"] = (kwargs.get("options", "")
                                         + " -c default_transaction_read_only=on").strip()
                return _HealingPostgresqlDatabase(**kwargs)
            if parsed.scheme != "sqlite":
                return db_url.connect(target)
            path = db_url.parseresult_to_dict(parsed)["database"]
        except (RuntimeError, ValueError, peewee.ImproperlyConfigured) as exc:
            raise CannotOpenDatabase(target, str(exc)) from None
    if path == ":memory:" or not path:
        if readonly:
            raise CannotOpenDatabase(target,
                                     "an in-memory database is new and empty: there is nothing to "
                                     "read")
        return peewee.SqliteDatabase(":memory:")
    if not readonly:
        return _SqliteFile(path)
    # Read-only: with no -wal file nobody has un-checkpointed writes, so the file is read as it is
    # (immutable: no -wal or -shm is created, which the owner's writers could not use afterwards).
    quoted = "file:" + quote(os.path.abspath(path))
    mode = "mode=ro" if os.path.exists(path + "-wal") else "immutable=1"
    return _SqliteFile(path, f"{quoted}?{mode}", uri=True)


def prepare_sqlite_file(database: peewee.SqliteDatabase, target: Any, path: str,
                        must_exist: bool) -> None:
    """Refuse a path that cannot be a database (or, when it must exist, a missing or empty file);
    add the pragmas."""
    _check_sqlite_file(target, path)
    if must_exist and not (os.path.exists(path) and os.path.getsize(path) > 0):
        what = "the file is empty" if os.path.exists(path) else "there is no such file"
        raise CannotOpenDatabase(target, f"{what}, so no database yet: create one with "
                                 f"init_db({str(path)!r}) or `pipeline-models init --db {path}`")
    pragmas = {k: v for k, v in SQLITE_FILE_PRAGMAS.items() if k != "journal_mode"}
    pragmas.update(_peewee.pragmas(database))
    _peewee.set_pragmas(database, pragmas)


def open_connection(database: peewee.Database, target: Any, check_file: bool) -> None:
    """Connect, turning every failure into CannotOpenDatabase naming the target."""
    try:
        database.connect(reuse_if_open=True)
        if check_file:
            # Reads the header, under SQLite's own locks (a file another process is creating is
            # fine): a file that is not a database fails here, and is left as it was.
            database.execute_sql("PRAGMA schema_version")
    except peewee.ImproperlyConfigured as exc:
        # peewee names psycopg2 when no driver is found; the extra installs psycopg 3, which peewee
        # also uses.
        reason = (POSTGRES_DRIVER_MISSING if "postgres driver not found" in str(exc) else str(exc))
        raise CannotOpenDatabase(target, reason) from None
    except peewee.PeeweeException as exc:
        # CannotOpenDatabase names the target already: not twice.
        reason = " ".join(str(exc).replace(f" ({database_label(database)})", "").split())
        if reason == "file is not a database":
            reason = "the file is not a SQLite database"
        raise CannotOpenDatabase(target, reason) from None


def use_wal(database: peewee.Database, target: object) -> None:
    """Switch the file to WAL (persistent in the file, so once), waiting out a process that holds
    it.

    The switch needs the file to itself and SQLite does not always wait for that with the busy
    timeout: processes starting at once could fail here with "database is locked".
    """
    for delay in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 4):
        try:
            database.pragma("journal_mode", SQLITE_FILE_PRAGMAS["journal_mode"])
            return
        except peewee.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise CannotOpenDatabase(target, f"cannot switch to WAL: {exc}") from None
        if database.pragma("journal_mode") == SQLITE_FILE_PRAGMAS["journal_mode"]:
            return  # another process switched it meanwhile
        time.sleep(delay)
    raise CannotOpenDatabase(target,
                             "cannot switch to WAL: another process kept the database locked for 8 "
                             "s")
