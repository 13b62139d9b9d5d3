"""The package's exceptions: one class per way things go wrong, all under PipelineModelsError."""
import datetime
import importlib
import re
import warnings
from typing import Any, Callable, Mapping, Optional

import peewee

__all__ = ["PipelineModelsError", "DatabaseNotBound", "CannotOpenDatabase", "DatabaseFileChanged",
           "SchemaMismatch", "InvalidTransition", "LeaseLost", "BusySnapshot", "AlreadyAnswered",
           "AlreadyUploaded", "UploadInDoubt", "ExtraMissing", "TablesMissing", "UploadCapReached"]


def redact(text: object) -> str:
    """`text` with the password of any URL (scheme://user:password@host) or DSN (password=...) as
    ***."""
    # A URL's password runs from the ':' after its user name to the LAST '@' of its address, where
    # urllib and the drivers split it (so a password may hold an '@'); the address ends at '/', '?'
    # or '#'. A space ends it too, but where the URL starts the text (a target redacted on its own)
    # or follows a quote: only there can a password with a space be told from words after a URL
    # ("http://host:8080 is down, mail ops@x.org").
    user = r"[A-Za-z][\w+.-]*://[^/?#\s:@'\"]*:"
    text = re.sub(r"(?:\A|(?<=['\"]))(" + user + r")[^/?#'\"\n]*@", r"\1***@", str(text))
    text = re.sub(r"(" + user + r")[^/?#\s'\"]*@", r"\1***@", text)
    # A DSN's password: libpq's quoted value ('a b', 'it\'s'), else up to a space, '&' or a quote
    # (which closes the quoted text the DSN is in, as in "cannot open
    # 'postgresql://h/x?password=secret': ...").
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'\"]+)", r"\1***", text,
                  flags=re.IGNORECASE)


def plural(n: int, word: str) -> str:
    """`n` and `word`, with an s unless n is 1: "1 video", "12 videos"."""
    # Here, the lowest module, so that the CLI's output and the report count alike.
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


# The release the deprecated names were deprecated in; they go in the release after it.
DEPRECATED_SINCE = "0.2.0"


def deprecated(old: str, new: str, since: str = DEPRECATED_SINCE, stacklevel: int = 2) -> None:
    """Warn (DeprecationWarning) that `old` is deprecated: use `new`. Every rename warns so.

    `stacklevel` counts from deprecated()'s caller, as warnings.warn's counts from its own: the
    default, 2, blames the code that called the deprecated function.
    """
    warnings.warn(f"{old} is deprecated since {since} and goes in the next release: use {new}",
                  DeprecationWarning, stacklevel=stacklevel + 1)


def renamed_attributes(module: str, renamed: Mapping[str, str]) -> Callable[[str], Any]:
    """A module's __getattr__ for its old names: each key of `renamed` answers as the name its
    value gives ("cli_output.table": the package's module, then the name), with deprecated()."""

    def __getattr__(name: str) -> Any:
        if name not in renamed:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        home, _, attr = f"pipeline_models.{renamed[name]}".rpartition(".")
        deprecated(f"{module}.{name}", f"{home}.{attr}")
        return getattr(importlib.import_module(home), attr)

    return __getattr__


# How TablesMissing names an in-memory SQLite database.
IN_MEMORY = "the in-memory SQLite database"


class PipelineModelsError(Exception):
    """Base class of every error this package raises on purpose."""


class DatabaseNotBound(PipelineModelsError):
    """A model was used before the database proxy was bound."""

    def __init__(self) -> None:
        super().__init__(
            "pipeline_models has no database yet: call pipeline_models.init_db('pipeline.db') "
            "(or db.initialize(SqliteDatabase(...))) before using the models."
        )


class CannotOpenDatabase(PipelineModelsError):
    """init_db was given a target it cannot open; the message names the target (never its password)
    and why."""

    def __init__(self, target: object, reason: str) -> None:
        # a peewee.Database is named by its file or database
        name = getattr(target, "database", target)
        self.target = redact(name) if isinstance(name, str) else name
        self.reason = redact(reason)
        super().__init__(f"cannot open database {redact(str(name))!r}: {self.reason}")


class DatabaseFileChanged(PipelineModelsError):
    """The SQLite file this process opened was deleted, replaced or truncated by something else."""

    def __init__(self, path: str, what: str) -> None:
        self.path, self.what = path, what
        super().__init__(
            f"the SQLite file {path!r} was {what} while this process had it open: stopping here "
            "rather than "
            "writing where no other process looks. Restore the file (or stop every process using "
            "it), then start again with init_db")


class SchemaMismatch(PipelineModelsError):
    """The database's tables do not match the models, and migrations cannot fix that by
    themselves."""


class InvalidTransition(PipelineModelsError):
    """A run, short or video was asked to move to a status it cannot reach from where it is in the
    database."""

    def __init__(self, subject: str, current: object, target: object, detail: str = "",
                 copy: object = None) -> None:
        self.subject, self.current, self.target = subject, str(current), str(target)
        self.copy = None if copy is None else str(copy)
        if self.copy is not None and self.copy != self.current:
            message = (f"{subject} is {self.current} in the database, not {self.copy} as this "
                       "object says "
                       f"(another call moved it): call .refresh() on it and decide again")
        elif self.current == self.target:
            message = f"{subject} is already {self.current}"
        else:
            message = f"{subject} cannot go from {self.current} to {self.target}"
        super().__init__(f"{message}: {detail}" if detail else message)


class LeaseLost(PipelineModelsError):
    """A worker wrote to a run it no longer holds: the run was requeued, claimed again or moved on.
    Drop it."""

    def __init__(self, run_id: int, worker: object, attempt: object, status: object, holder: object,
                 holder_attempt: object) -> None:
        self.run_id, self.worker, self.attempt = run_id, worker, attempt
        self.status, self.holder, self.holder_attempt = str(status), holder, holder_attempt
        now = (f"running under {holder!r}, attempt {holder_attempt}" if self.status == "running"
               else self.status)
        if attempt is None:  # an object that never claimed the run: an operator's copy
            super().__init__(f"run {run_id} is {now}, and this object holds no claim to it: only "
                             "the object "
                             f"claim_next() returned may write as its worker. Nothing was written")
            return
        super().__init__(f"run {run_id}: {worker!r} no longer holds it (its claim was attempt "
                         f"{attempt}); the run is "
                         f"{now} now. Nothing was written: drop the run and claim the next one")


class BusySnapshot(PipelineModelsError):
    """A write on SQLite while a query over the same database is still being read, after another
    process wrote."""

    def __init__(self) -> None:
        super().__init__(
            "cannot write while a query over this SQLite database is still being read: the open "
            "read pins an "
            "older snapshot and another process has written since. Read the rows first "
            "(list(query), or a "
            "plain for loop over a query rather than query.iterator()), then write"
        )


class AlreadyAnswered(PipelineModelsError):
    """A review that already has an answer was given a different one."""


class AlreadyUploaded(PipelineModelsError):
    """A short that already has a YouTube video id was uploaded or recorded again."""


class UploadInDoubt(PipelineModelsError):
    """An earlier upload of a short started and never recorded its video id: it may be on YouTube
    already."""


class UploadCapReached(PipelineModelsError):
    """The daily upload cap is reached: no upload may start before `next_slot` (an aware UTC
    datetime)."""

    def __init__(self, message: str, next_slot: datetime.datetime) -> None:
        super().__init__(message)
        self.next_slot = next_slot


class ExtraMissing(PipelineModelsError):
    """An optional feature needs a package that its extra installs, and that package is not
    installed."""

    def __init__(self, feature: str, extra: str, package: str) -> None:
        self.feature, self.extra, self.package = feature, extra, package
        super().__init__(
            f"{feature} needs the {package!r} package, which is not installed: install the "
            f"{extra!r} extra (from the repository root: .venv/bin/pip install -e '.[{extra}]')")


class TablesMissing(PipelineModelsError, peewee.OperationalError, peewee.ProgrammingError):
    """A model's table does not exist in the bound database: it was never created or migrated.

    Also a peewee.OperationalError (what SQLite's "no such table" is) and a peewee.ProgrammingError
    (PostgreSQL's "relation ... does not exist"), so handlers written for the bare error still catch
    it.
    """

    def __init__(self, table: Optional[str], where: str) -> None:
        self.table, self.where = table, where
        what = f"table {table!r}" if table else "a table the query uses"
        hint = ""
        if where == IN_MEMORY:
            hint = (" (an in-memory database lives only as long as its connection: a new "
                    "connection, after db.close() or in another thread, starts empty)")
        super().__init__(
            f"{what} does not exist in {where}{hint}: create the schema first, with "
            "pipeline_models.init_db(...), "
            "which applies the migrations, or `pipeline-models init`; in a test, call "
            "db.create_tables("
            "pipeline_models.ALL_MODELS) after db.initialize(...), or use the pytest fixture "
            "pipeline_db, which does both")
