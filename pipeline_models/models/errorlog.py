"""ErrorLog: the exceptions pipeline modules hit, recorded so that none is lost to its transaction
or its text."""
import contextlib
import logging
import traceback
from typing import Any, Optional

import peewee

from ..db import db
from ..fields import (CheckedBooleanField, CheckedCharField, CheckedForeignKeyField,
                      CheckedTextField, UTCDateTimeField, escape_unstorable, utcnow)
from .base import BaseModel
from .runs import PipelineRun

logger = logging.getLogger("pipeline_models")


class ErrorLog(BaseModel):
    """An exception a pipeline module hit; kept when its run is deleted (pipeline_run becomes
    NULL)."""

    pipeline_run = CheckedForeignKeyField(PipelineRun, backref="errors", null=True,
                                          on_delete="SET NULL",
                                          help_text="the run it happened in, if any")
    module = CheckedCharField(max_length=255, help_text="the pipeline module that hit it")
    error_type = CheckedCharField(max_length=255, help_text="the exception's class name")
    error_message = CheckedTextField(help_text="the exception's message")
    stack_trace = CheckedTextField(null=True, help_text="the formatted traceback")
    occurred_at = UTCDateTimeField(default=utcnow, help_text="when it happened")
    resolved = CheckedBooleanField(default=False, help_text="someone dealt with it")

    class Meta:
        table_name = "error_logs"
        indexes = ((("resolved", "occurred_at"), False),)  # the unresolved errors across modules

    @classmethod
    def record(cls, exc: BaseException, module: str,
               pipeline_run: Optional[PipelineRun] = None) -> "ErrorLog":
        """Store `exc` (class name, message, formatted traceback) as an unresolved error of
        `module`.

        Written in the caller's transaction, if any: should that transaction roll back, this row
        goes with it. To record an error that aborts a transaction, use capture() around that
        transaction.

        An error is never lost to text the database cannot store. In the module, type, message and
        traceback, each NUL is stored as the four characters \\x00, and each lone surrogate (what
        Python makes of an undecodable byte, e.g. of a file name: b"\\xff" becomes "\\udcff") as its
        six-character escape such as \\udcff, as Python's 'backslashreplace' writes them
        (fields.escape_unstorable); every other character is stored as it is. A message whose str()
        fails is stored as a placeholder naming the type. Rows written with create() or save() are
        checked as in any model.
        """
        if not isinstance(exc, BaseException):
            raise TypeError("ErrorLog.record: exc must be the exception caught, not "
                            f"{type(exc).__name__}")
        return cls.create(
            pipeline_run=pipeline_run,
            module=escape_unstorable(module),
            # type() makes classes of any name length
            error_type=escape_unstorable(type(exc).__name__)[:255],
            error_message=escape_unstorable(cls._message(exc)),
            stack_trace=escape_unstorable("".join(traceback.format_exception(type(exc), exc,
                                                                             exc.__traceback__))),
        )

    @staticmethod
    def _message(exc: BaseException) -> str:
        """str(exc), or repr(exc) when that is empty; a placeholder when the exception cannot be
        printed."""
        try:
            return str(exc) or repr(exc)
        # a broken __str__ must not cost the row: the type and traceback still say much
        except Exception:
            return f"<{type(exc).__name__} whose str() failed>"

    @classmethod
    def capture(cls, module: str, pipeline_run: Optional[PipelineRun] = None) -> "_Capture":
        """Context manager and decorator: record any exception escaping the block, then re-raise it.

        Put it outside the block's transaction: the row is written after that transaction rolled
        back, so it is never lost with it. Text is stored as record() stores it; should recording
        fail all the same, that is logged and the original exception still raised, and a caller's
        transaction stays usable.
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


# a module's errors
ErrorLog.add_index(ErrorLog.module, ErrorLog.occurred_at, name="idx_error_log_module")


def log_error(module: str, error_type: str, message: str, pipeline_run_id: Optional[int] = None,
              stack_trace: Optional[str] = None) -> ErrorLog:
    """Store an unresolved error of `module` (the pipeline's helper; ErrorLog.record takes an
    exception).

    An empty module, error_type or message, or a pipeline_run_id no run has, is a ValueError naming
    it; NUL and lone surrogates are escaped as record() escapes them. One INSERT.
    """
    for name, value in (("module", module), ("error_type", error_type), ("error_message", message)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"ErrorLog.{name}: log_error needs the {name.replace('_', ' ')}, not "
                             f"{value!r}")
    try:
        return ErrorLog.create(pipeline_run=pipeline_run_id, module=escape_unstorable(module),
                               error_type=escape_unstorable(error_type),
                               error_message=escape_unstorable(message),
                               stack_trace=escape_unstorable(stack_trace))
    # the one a foreign key gives: an id that names no run is an argument's
    except peewee.IntegrityError as exc:
        raise ValueError(str(exc)) from exc


class _Capture(contextlib.ContextDecorator):
    """ErrorLog.capture(): records the exception leaving the block; a failure to record never hides
    it."""

    def __init__(self, module: str, pipeline_run: Optional[PipelineRun]) -> None:
        self.module, self.pipeline_run = module, pipeline_run

    def __enter__(self) -> "_Capture":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        if exc is not None and isinstance(exc, Exception):
            try:
                # a savepoint in a caller's transaction: a failed insert leaves it usable
                with db.atomic():
                    ErrorLog.record(exc, self.module, self.pipeline_run)
            except Exception:
                logger.exception("could not record %s from %s", exc_type.__name__, self.module)
        return False  # re-raise

