"""The `pipeline-models` command line (also `python -m pipeline_models`): look at and steer a pipeline database.

Every subcommand takes --db (default: $PIPELINE_DB, else pipeline.db), which accepts whatever init_db does.
Bad input prints one line on stderr and exits non-zero; nothing is half written.
"""
import argparse
import json
import os
import sys
from typing import Any, Callable, Iterable, List, Optional, Sequence

import peewee

from .db import db, init_db, migrate
from .enums import RunStatus, ShortStatus
from .errors import PipelineModelsError
from .models import Analytics, ConfigOverride, ErrorLog, PipelineRun, ReviewLog, Short

PROG = "pipeline-models"


class UsageError(Exception):
    """Bad input on the command line; its message is printed as the one line of output on stderr."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(f"{message} (see {self.prog} --help)")


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
    text = str(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _open(target: str) -> None:
    """Bind the database; for anything but init/migrate/demo a missing file is an error, not a new database."""
    if "://" not in target and target != ":memory:" and not os.path.exists(target):
        raise UsageError(f"no database at {target!r}: run `{PROG} init --db {target}` first")
    init_db(target)


def cmd_init(args: argparse.Namespace) -> str:
    database = init_db(args.db, migrate=False)
    applied = migrate(database)
    if applied:
        return f"{args.db}: applied " + ", ".join(applied)
    return f"{args.db}: schema up to date, nothing to apply"


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
    _open(args.db)
    return table(["what", "status", "count"], status_rows())


def cmd_runs(args: argparse.Namespace) -> str:
    _open(args.db)
    query = PipelineRun.select().order_by(PipelineRun.created_at.desc(), PipelineRun.id.desc())
    if args.status:
        query = query.where(PipelineRun.status == RunStatus(PipelineRun.status.db_value(args.status)))
    rows = [[r.id, r.status.value, r.current_stage, r.worker, r.attempts, r.created_at, r.last_error]
            for r in query.limit(args.limit)]
    return table(["id", "status", "stage", "worker", "attempts", "created (UTC)", "last error"], rows)


def cmd_errors(args: argparse.Namespace) -> str:
    _open(args.db)
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
    _open(args.db)
    error = ErrorLog.get_or_none(ErrorLog.id == args.error_id)
    if error is None:
        raise UsageError(f"no error with id {args.error_id}")
    error.resolve()
    return f"error {error.id} ({error.module}: {error.error_type}) resolved"


def cmd_retry(args: argparse.Namespace) -> str:
    _open(args.db)
    run = PipelineRun.get_or_none(PipelineRun.id == args.run_id)
    if run is None:
        raise UsageError(f"no run with id {args.run_id}")
    run.retry()  # InvalidTransition (one line) unless it failed
    return f"run {run.id} queued again, its attempts counted afresh (it failed: {run.last_error})"


def cmd_config(args: argparse.Namespace) -> str:
    _open(args.db)
    if args.action == "get":
        value = ConfigOverride.get(args.key, _MISSING)
        if value is _MISSING:
            raise UsageError(f"no config override named {args.key!r}")
        return json.dumps(value)
    if args.action == "set":
        try:
            value = json.loads(args.value)
        except ValueError:
            value = args.value  # not JSON: take it as a string
        ConfigOverride.set(args.key, value, updated_by=args.by)
        return f"{args.key} = {json.dumps(value)}"
    rows = [[c.key, json.dumps(c.value), c.updated_by, c.updated_at]
            for c in ConfigOverride.select().order_by(ConfigOverride.key)]
    return table(["key", "value", "updated_by", "updated_at (UTC)"], rows)


_MISSING = object()


def cmd_analytics(args: argparse.Namespace) -> str:
    _open(args.db)
    rows = [[a.youtube_video_id, a.measured_at, a.view_count, a.like_count, a.comment_count, a.click_through_rate,
             a.subscriber_gain, a.estimated_revenue_usd] for a in Analytics.top(args.top)]
    return table(["youtube_video_id", "measured_at (UTC)", "view_count", "like_count", "comment_count",
                  "click_through_rate", "subscriber_gain", "estimated_revenue_usd"], rows)


def cmd_demo(args: argparse.Namespace) -> str:
    from .demo import run_demo

    if args.videos < 1:
        raise UsageError("--videos must be at least 1")
    run_demo(args.db, videos=args.videos, out=print)
    return ""


DEMO_HELP = "simulate the whole pipeline on an embedded SQLite file, then show its status"


def parser() -> argparse.ArgumentParser:
    """The argument parser of the command line."""
    default_db = os.environ.get("PIPELINE_DB") or "pipeline.db"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=default_db,
                        help="file path, :memory:, sqlite:///... or postgresql://... "
                             "(default: $PIPELINE_DB, else pipeline.db; now %(default)s)")
    top = _Parser(prog=PROG, description="Look at and steer a short-video pipeline database.")
    sub = top.add_subparsers(dest="command", metavar="command", required=True, parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], str], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    add("init", cmd_init, "create the database or upgrade its schema, and say what was applied")
    add("migrate", cmd_init, "apply pending migrations (same as init)")
    add("status", cmd_status, "runs and shorts by status, open reviews, unresolved errors")
    p = add("runs", cmd_runs, "list pipeline runs, newest first")
    p.add_argument("--status", help="only runs in this status (" + ", ".join(s.value for s in RunStatus) + ")")
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    p = add("errors", cmd_errors, "list unresolved errors, newest first")
    p.add_argument("--module", help="only this module's errors")
    p.add_argument("--all", action="store_true", help="resolved ones too")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p = add("resolve", cmd_resolve, "mark an error resolved")
    p.add_argument("error_id", type=int, metavar="ERROR_ID")
    p = add("retry", cmd_retry, "queue a failed run again")
    p.add_argument("run_id", type=int, metavar="RUN_ID")
    p = add("config", cmd_config, "read and write runtime config overrides")
    actions = p.add_subparsers(dest="action", metavar="action", required=True, parser_class=_Parser)
    actions.add_parser("get", parents=[common], help="print one value as JSON").add_argument("key")
    setter = actions.add_parser("set", parents=[common], help="store a value (JSON, else a string)")
    setter.add_argument("key")
    setter.add_argument("value")
    setter.add_argument("--by", default="cli", help="who changed it (default: cli)")
    actions.add_parser("list", parents=[common], help="every override")
    p = add("analytics", cmd_analytics, "latest snapshot of each video, most viewed first")
    p.add_argument("--top", type=int, default=20, help="at most this many videos (default 20)")
    # Not the shared --db: the demo must not write simulated data into $PIPELINE_DB by default.
    p = sub.add_parser("demo", help=DEMO_HELP, description=DEMO_HELP)
    p.set_defaults(func=cmd_demo)
    p.add_argument("--db", default="pipeline-demo.db", help="a new SQLite file (default: %(default)s)")
    p.add_argument("--videos", type=int, default=12, help="videos to discover (default 12)")
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        args = parser().parse_args(argv)
        output = args.func(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except (PipelineModelsError, peewee.PeeweeException, ValueError, TypeError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        if db.obj is not None:
            db.obj.close()
    if output:
        print(output)
    return 0
