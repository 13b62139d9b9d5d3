"""The private parts of peewee (4.x) this package relies on, in one place, each with why.

Nothing else in the package reaches behind peewee's public API, except a model row's `__data__`,
`__rel__` and `_dirty`, which playhouse itself reads (model_to_dict) and which Model.refresh() and
Analytics.latest() set as peewee's own row reader does. tests/test_structure.py checks that each
name here still exists, so a peewee release that moves one fails there, by name, first.
"""
from typing import Any, Dict

import peewee

# The class of Database.atomic()'s block: db._atomic subclasses it to raise the error that ended a
# transaction, not the rollback's complaint about it (SQLite rolls back by itself on a full disk).
Atomic = peewee._atomic

# The context that turns a driver's exception into peewee's (IntegrityError and the rest), as
# execute_sql does: the bulk path writes through a raw cursor (executemany, COPY), past execute_sql.
exception_wrapper = getattr(peewee, "__exception_wrapper__")

# The method peewee.FieldDatabaseHook calls when a field's model is bound to a database: fields.py
# overrides it so UTCDateTimeField writes text on SQLite and TIMESTAMPTZ on PostgreSQL.
DB_HOOK = "_db_hook"

# The method Database.connect() calls to make the driver's connection: connections._SqliteFile
# overrides it to note which file (device, inode) the connection opened.
CONNECT_HOOK = "_connect"


def pragmas(database: peewee.SqliteDatabase) -> Dict[str, Any]:
    """The pragmas a SQLite database applies to each new connection (peewee keeps them in
    `_pragmas`)."""
    return dict(database._pragmas or ())


def set_pragmas(database: peewee.SqliteDatabase, values: Dict[str, Any]) -> None:
    """Replace them: peewee takes pragmas only in the constructor, and init_db adds to a caller's
    database."""
    database._pragmas = list(values.items())


def client_encoding(database: peewee.PostgresqlDatabase) -> Any:
    """The client_encoding a PostgreSQL database asks for on each new connection, or None
    (`_encoding`)."""
    return database._encoding


def set_client_encoding(database: peewee.PostgresqlDatabase, encoding: str) -> None:
    """Set it: peewee takes it only in the constructor (encoding=), and init_db binds a caller's
    database."""
    database._encoding = encoding


def connection(database: peewee.Database) -> Any:
    """The driver connection the database holds for this thread, or None (peewee keeps it in
    `_state`)."""
    return database._state.conn


def status_unknown(database: peewee.Database) -> bool:
    """Whether the driver marks the held connection dead: a local flag, no round trip
    (`_adapter`)."""
    conn, adapter = database._state.conn, database._adapter
    return conn is not None and adapter.txn_status(conn) == adapter.txn_unknown


def forget_connection(database: peewee.Database) -> None:
    """Drop the held connection from peewee's bookkeeping, so the next statement connects again."""
    database._state.reset()
