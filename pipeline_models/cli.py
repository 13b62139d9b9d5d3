"""The `pipeline-models` command line (also `python -m pipeline_models`): look at and steer a pipeline database.

Every subcommand takes --db (default: $PIPELINE_DB, else pipeline.db), which accepts whatever init_db does.
The read commands (status, runs, errors, analytics, config get/list) change nothing at all; only init and
migrate create or upgrade a database. Bad input prints one line on stderr and exits non-zero (2 for usage,
1 for a refused value or database); nothing is half written; --debug adds the traceback.
"""
import argparse
import codecs
import json
import os
import sys
import traceback
from typing import Any, Callable, Iterable, List, Optional, Sequence

import peewee

from .db import db, init_db, migrate, redact
from .enums import RunStatus, ShortStatus
from .errors import PipelineModelsError
from .models import Analytics, ConfigOverride, ErrorLog, PipelineRun, ReviewLog, Short

PROG = "pipeline-models"

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader (`| head`) went away

# Ids and limits: SQLite's integers and PostgreSQL's bigint stop here; a larger number overflows in the driver.
MAX_NUMBER = 2 ** 63 - 1
# The demo is a walk-through that takes a few seconds per hundred videos: beyond this it would only run for hours.
MAX_DEMO_VIDEOS = 10_000

EPILOG = ("exit status: 0 done, 1 refused (a bad value, or a database that is missing, foreign, older or "
          "unreadable), 2 usage error, 141 output closed early (e.g. piped into head). "
          "The read commands (status, runs, errors, analytics, config get/list) never change the database.")


class UsageError(Exception):
    """Bad input on the command line; its message is printed as the one line of output on stderr."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(f"{message} (see {self.prog} --help)")


def _number(lowest: int, highest: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `lowest` to `highest`; anything else is a usage error naming it."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # not a number, or more digits than Python converts
            raise argparse.ArgumentTypeError(f"invalid int value: {_shortened(text)!r}") from None
        if not lowest <= value <= highest:
            raise argparse.ArgumentTypeError(
                f"{_shortened(text)} is out of range: give a whole number from {lowest} to {highest}")
        return value
    return parse


_count = _number(1, MAX_NUMBER)


def _shortened(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _one_line(text: object) -> str:
    """`text` on one line of printable characters, passwords redacted: safe to show on a terminal."""
    text = " ".join(redact(text).split())
    # Data (an error message, a title) must not move the cursor or clear the terminal: escape control characters.
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows under headers in aligned columns; numbers right-aligned, None shown as '-'."""
    rows = [[("-" if v is None else v) for v in row] for row in rows]
    cells = [list(map(str, headers))] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [any(isinstance(row[i], (int, float)) for row in rows)
               and all(isinstance(row[i], (int, float)) or row[i] == "-" for row in rows)
               for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    # One line per row: a newline or a tab in a message would break the columns.
    text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(value))
    return text if len(text) <= 60 else text[:59] + "…"


def _read(target: str) -> None:
    """Bind `target` for reading: an up-to-date pipeline database, left exactly as it was (not even a -wal file)."""
    init_db(target, readonly=True)


def _write(target: str) -> None:
    """Bind `target` for a change: an existing, up-to-date pipeline database, never a new or foreign one."""
    # Checked read-only first, which refuses an older pipeline database rather than migrating it: init_db alone
    # would add the pipeline tables to another application's database (a PostgreSQL one is never "missing"),
    # and upgrading the schema under the workers of the older release is for the operator to decide, with
    # `migrate`, not a side effect of retrying one run.
    init_db(target, readonly=True)
    db.obj.close()
    init_db(target, create=False)


def cmd_init(args: argparse.Namespace) -> str:
    """`init` and `migrate`: create the database or apply its pending migrations; says which."""
    database = init_db(args.db, migrate=False)
    applied = migrate(database)
    if applied:
        return f"{redact(args.db)}: applied " + ", ".join(applied)
    return f"{redact(args.db)}: schema up to date, nothing to apply"


def status_rows() -> List[List[Any]]:
    """(what, status, count) for runs and shorts by status, open reviews and unresolved errors."""
    rows: List[List[Any]] = []
    for model, enum, what in ((PipelineRun, RunStatus, "runs"), (Short, ShortStatus, "shorts")):
        counts = dict(model.select(model.status, peewee.fn.COUNT(model.id)).group_by(model.status).tuples())
        rows += [[what, member.value, counts.get(member.value, 0)] for member in enum]
    open_reviews = ReviewLog.open()
    rows.append(["reviews", "open", open_reviews.count()])
    rows.append(["reviews", "open, auto-held", open_reviews.where(ReviewLog.auto_held == True).count()])  # noqa: E712
    rows.append(["errors", "unresolved", ErrorLog.unresolved().count()])
    return rows


def cmd_status(args: argparse.Namespace) -> str:
    """`status`: runs and shorts by status, open reviews and unresolved errors, as a table."""
    _read(args.db)
    return table(["what", "status", "count"], status_rows())


def cmd_runs(args: argparse.Namespace) -> str:
    """`runs`: runs, newest first."""
    _read(args.db)
    query = PipelineRun.select().order_by(PipelineRun.created_at.desc(), PipelineRun.id.desc())
    if args.status:
        query = query.where(PipelineRun.status == RunStatus(PipelineRun.status.db_value(args.status)))
    rows = [[r.id, r.status.value, r.current_stage, r.worker, r.attempts, r.created_at, r.last_error]
            for r in query.limit(args.limit)]
    return table(["id", "status", "stage", "worker", "attempts", "created (UTC)", "last error"], rows)


def cmd_errors(args: argparse.Namespace) -> str:
    """`errors`: unresolved errors (all with --all), newest first."""
    _read(args.db)
    if args.all:
        query = ErrorLog.select().order_by(ErrorLog.occurred_at.desc())
        if args.module:
            query = query.where(ErrorLog.module == args.module)
    else:
        query = ErrorLog.unresolved(args.module)
    rows = [[e.id, e.occurred_at, e.module, e.error_type, e.error_message, e.pipeline_run_id,
             "yes" if e.resolved else "no"] for e in query.limit(args.limit)]
    return table(["id", "occurred_at (UTC)", "module", "error_type", "error_message", "pipeline_run_id", "resolved"],
                 rows)


def cmd_resolve(args: argparse.Namespace) -> str:
    """`resolve`: mark an error resolved."""
    _write(args.db)
    error = ErrorLog.get_or_none(ErrorLog.id == args.error_id)
    if error is None:
        raise UsageError(f"no error with id {args.error_id}")
    error.resolve()
    return f"error {error.id} ({error.module}: {error.error_type}) resolved"


def cmd_retry(args: argparse.Namespace) -> str:
    """`retry`: queue a failed run again."""
    _write(args.db)
    run = PipelineRun.get_or_none(PipelineRun.id == args.run_id)
    if run is None:
        raise UsageError(f"no run with id {args.run_id}")
    run.retry()  # InvalidTransition (one line) unless it failed
    return f"run {run.id} queued again, its attempts counted afresh (it failed: {run.last_error})"


def cmd_config(args: argparse.Namespace) -> str:
    """`config get|set|list`: runtime config overrides."""
    if args.action == "set":
        value = _json_or_text(args.value)  # before opening: a refused value needs no database
        _write(args.db)
        ConfigOverride.set(args.key, value, updated_by=args.by)
        return f"{args.key} = {json.dumps(value)}"
    _read(args.db)
    if args.action == "get":
        value = ConfigOverride.get(args.key, _MISSING)
        if value is _MISSING:
            raise UsageError(f"no config override named {args.key!r}")
        return json.dumps(value)
    rows = [[c.key, json.dumps(c.value), c.updated_by, c.updated_at]
            for c in ConfigOverride.select().order_by(ConfigOverride.key)]
    return table(["key", "value", "updated_by", "updated_at (UTC)"], rows)


_MISSING = object()


def _json_or_text(text: str) -> Any:
    """VALUE of `config set`: its JSON value, or the text itself when it is not JSON."""
    try:
        return json.loads(text)
    except RecursionError:  # json.loads gives up on deep nesting this way, not with a ValueError
        raise ValueError(f"VALUE is JSON nested too deeply to read ({len(text):,} characters): "
                         "store a flatter value") from None
    except ValueError:
        return text


def cmd_analytics(args: argparse.Namespace) -> str:
    """`analytics`: the latest snapshot of each video, most viewed first."""
    _read(args.db)
    rows = [[a.youtube_video_id, a.measured_at, a.view_count, a.like_count, a.comment_count, a.click_through_rate,
             a.subscriber_gain, a.estimated_revenue_usd] for a in Analytics.top(args.top)]
    return table(["youtube_video_id", "measured_at (UTC)", "view_count", "like_count", "comment_count",
                  "click_through_rate", "subscriber_gain", "estimated_revenue_usd"], rows)


class _Lines:
    """Prints lines to sys.stdout or sys.stderr until its reader goes away (`| head`), then drops them quietly.

    The demo's report must not stop its work half-way: a closed pipe is remembered, not raised.
    """

    def __init__(self, stream: str) -> None:
        self.stream, self.closed = stream, False

    def __call__(self, line: str) -> None:
        if self.closed:
            return
        try:
            print(line, file=getattr(sys, self.stream), flush=True)
        except BrokenPipeError:
            self.closed = True


def cmd_demo(args: argparse.Namespace) -> str:
    """`demo`: the whole pipeline simulated; its report is best-effort, its work always finished."""
    from .demo import run_demo

    out = _Lines("stdout")
    run_demo(args.db, videos=args.videos, out=out, progress=_Lines("stderr"))
    if out.closed:
        raise BrokenPipeError()  # the demo finished; only its report was cut short
    return ""


DEMO_HELP = "simulate the whole pipeline on an embedded SQLite file (or a PostgreSQL database), then show its status"
DEBUG_HELP = "on an error, also print its traceback (for a bug report; passwords are redacted)"


def parser() -> argparse.ArgumentParser:
    """The argument parser of the command line."""
    default_db = os.environ.get("PIPELINE_DB") or "pipeline.db"
    common = argparse.ArgumentParser(add_help=False)
    # $PIPELINE_DB may hold a password; %% because argparse %-formats help texts.
    shown = redact(default_db).replace("%", "%%")
    common.add_argument("--db", default=default_db,
                        help="file path, :memory:, sqlite:///... or postgresql://... "
                             f"(default: $PIPELINE_DB, else pipeline.db; now {shown})")
    # SUPPRESS: a subcommand's default must not overwrite a --debug given before the subcommand.
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    top = _Parser(prog=PROG, description="Look at and steer a short-video pipeline database.", epilog=EPILOG)
    top.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = top.add_subparsers(dest="command", metavar="command", required=True, parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], str], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help, epilog=EPILOG)
        p.set_defaults(func=func)
        return p

    add("init", cmd_init, "create the database or upgrade its schema, and say what was applied")
    add("migrate", cmd_init, "apply pending migrations (same as init)")
    add("status", cmd_status, "runs and shorts by status, open reviews, unresolved errors")
    p = add("runs", cmd_runs, "list pipeline runs, newest first")
    p.add_argument("--status", help="only runs in this status (" + ", ".join(s.value for s in RunStatus) + ")")
    p.add_argument("--limit", type=_count, default=20, help="at most this many (default 20)")
    p = add("errors", cmd_errors, "list unresolved errors, newest first")
    p.add_argument("--module", help="only this module's errors")
    p.add_argument("--all", action="store_true", help="resolved ones too")
    p.add_argument("--limit", type=_count, default=50, help="at most this many (default 50)")
    p = add("resolve", cmd_resolve, "mark an error resolved")
    p.add_argument("error_id", type=_count, metavar="ERROR_ID")
    p = add("retry", cmd_retry, "queue a failed run again")
    p.add_argument("run_id", type=_count, metavar="RUN_ID")
    p = add("config", cmd_config, "read and write runtime config overrides")
    actions = p.add_subparsers(dest="action", metavar="action", required=True, parser_class=_Parser)
    actions.add_parser("get", parents=[common], help="print one value as JSON").add_argument("key")
    setter = actions.add_parser("set", parents=[common], help="store a value (JSON, else a string)")
    setter.add_argument("key")
    setter.add_argument("value")
    setter.add_argument("--by", default="cli", help="who changed it (default: cli)")
    actions.add_parser("list", parents=[common], help="every override")
    p = add("analytics", cmd_analytics, "latest snapshot of each video, most viewed first")
    p.add_argument("--top", type=_count, default=20, help="at most this many videos (default 20)")
    # Not the shared --db: the demo must not write simulated data into $PIPELINE_DB by default.
    p = sub.add_parser("demo", help=DEMO_HELP, description=DEMO_HELP, epilog=EPILOG)
    p.set_defaults(func=cmd_demo)
    p.add_argument("--db", default="pipeline-demo.db",
                   help="a new SQLite file or URL, an empty PostgreSQL database (postgresql://...), or one an "
                        "earlier demo made, which is made anew; anything else is refused (default: %(default)s)")
    p.add_argument("--videos", type=_number(1, MAX_DEMO_VIDEOS), default=12,
                   help=f"videos to discover, 1 to {MAX_DEMO_VIDEOS:,} (default 12)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return top


def _utf8_output() -> None:
    """Write stdout and stderr in UTF-8 whatever the locale; a character that cannot be written is escaped."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:  # None, or not a text file (a StringIO): nothing to set
            continue
        try:
            if codecs.lookup(stream.encoding).name == "utf-8":
                reconfigure(errors="backslashreplace")  # a lone surrogate is all UTF-8 cannot write
            else:
                reconfigure(encoding="utf-8", errors="backslashreplace")
        except (LookupError, TypeError, ValueError, OSError):  # a stream that cannot be changed stays as it is
            pass


def _check_text(argv: Sequence[str]) -> None:
    """Refuse an argument that is not valid text (bytes that are not UTF-8 reach Python as lone surrogates)."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"argument {_shortened(ascii(arg))} is not valid UTF-8 text: give it in UTF-8") from None


def _say(line: str) -> None:
    """Print `line` on stderr if stderr is still there: failing to report must not raise a second error."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _silence_stdout() -> None:
    """After the reader of stdout went away: send what is left to /dev/null, so exiting does not fail flushing it."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture): nothing will flush it
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    _utf8_output()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so an error while parsing can be debugged too; "--" ends the options.
    debug = "--debug" in argv[:argv.index("--") if "--" in argv else len(argv)]

    def fail(exc: BaseException, message: str, status: int) -> int:
        if debug:
            _say(redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))).rstrip())
        _say(f"{PROG}: error: {_one_line(message)}")
        return status

    try:
        _check_text(argv)
        args = parser().parse_args(argv)
        output = args.func(args)
        if output:
            print(output, flush=True)  # flushed here: a closed pipe fails inside this try, not at exit
    except UsageError as exc:
        return fail(exc, str(exc), EXIT_USAGE)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        _say(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except (PipelineModelsError, peewee.PeeweeException, ValueError, TypeError) as exc:
        return fail(exc, str(exc) or type(exc).__name__, EXIT_REFUSED)
    except Exception as exc:  # a bug: one line, and how to see more
        hint = "" if debug else " (run it again with --debug for the traceback, and report it)"
        return fail(exc, f"unexpected {type(exc).__name__}: {exc}{hint}", EXIT_REFUSED)
    finally:
        if db.obj is not None:
            db.obj.close()
    return EXIT_OK
