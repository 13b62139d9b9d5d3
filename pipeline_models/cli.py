"""The `pipeline-models` command line (also `python -m pipeline_models`): look at and steer a
pipeline database.

--db (before or after the command; default: $PIPELINE_DB, else pipeline.db) accepts whatever
init_db does. The read commands (status, the listings, the show commands, report) change nothing
at all; only init and migrate create or upgrade a database. Every command that prints data
(status, stats, queue, digest, the listings, the show and summary commands, config get and list)
prints one JSON document with --json. Bad input prints one line on stderr and exits non-zero (2 for
usage, 1 for a refused value, something not found, or a database that cannot be used); nothing is
half written; --debug adds the traceback.
"""
import argparse
import datetime
import os
import sys
import traceback
from typing import Any, Callable, Dict, Optional, Sequence, Union

import peewee

from . import __version__, bot
from .cli_output import (EPILOG, POSTGRES_SPACE, SQLITE_SPACE, LinePrinter, Parser, UsageError,
                         answered, as_json, check_text, commands, compacted, digest_page, dumps,
                         error_page, errors_table, json_argument, listing, one_line, paused_page,
                         plural, queue_page, run_document, run_page, run_timings, say, shortened,
                         shown, shown_json, silence, stats_page, status_page, summary_page,
                         terminal_safe, unrecognized, utf8_output, wrapped)
from .cli_output import METAVARS  # noqa: F401  (re-exported: each option's metavar, as documented)
from .db import db, init_db, migrate, redact
from .enums import Processed, ReviewAction, RunStatus, ShortStatus
from .errors import PipelineModelsError, renamed_attributes
from .fields import backend_of, whole_number
from .models import (Analytics, Clip, ConfigOverride, DiscoveredVideo, ErrorLog, PipelineRun,
                     ReviewLog, Script, Short, TTSAudio)
from .models.videos import niche_channel

__getattr__ = renamed_attributes(__name__, {"table": "cli_output.table", "UTC": "fields.UTC"})
PROG = "pipeline-models"

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: a shell's status for a writer whose reader (`| head`) left

# Ids and limits: SQLite's integers and PostgreSQL's bigint stop here (a larger one overflows).
MAX_NUMBER = 2 ** 63 - 1
MAX_DEMO_VIDEOS = 100  # the demo's candidates a cycle: 100 take seconds, many more minutes

DEFAULT_DB = "pipeline.db"
ERRORS_LIMIT = 50
_MISSING = object()  # config get: no such override
DB_HELP = ("the database: a file path, :memory:, sqlite:///... or postgresql://... (default: "
           f"$PIPELINE_DB, else {DEFAULT_DB}; now %s); before or after the command")


class NotFound(Exception):
    """The id or key named on the command line is not in the database."""


def _number(lowest: int, highest: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `lowest` to `highest` (fields.whole_number's check)."""
    check = whole_number("the value", lowest, highest)

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # not a number, or more digits than Python converts
            raise argparse.ArgumentTypeError(f"invalid int value: {shortened(text)!r}") from None
        try:
            return check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


_count = _number(1, MAX_NUMBER)


def _bind_readonly(target: str) -> None:
    """Bind `target` for reading: an up-to-date pipeline database, left as it was (no -wal file)."""
    init_db(target, readonly=True)


def _bind_for_change(target: str) -> None:
    """Bind `target` for a change: an existing, up-to-date pipeline database, not a new one."""
    # Checked read-only first, which refuses an older pipeline database, not migrates it: init_db
    # alone would add the pipeline tables to another application's database (a PostgreSQL one is
    # never "missing"), and upgrading the schema under the older release's workers is for the
    # operator to decide, with `migrate`, not a side effect of retrying one run.
    init_db(target, readonly=True)
    db.obj.close()
    init_db(target, create=False)


def _get(model: Any, id: int, what: str) -> Any:
    row = model.get_or_none(model.id == id)
    if row is None:
        raise NotFound(f"no {what} with id {id}")
    return row


def _filtered(model: Any, args: argparse.Namespace) -> Any:
    """`model`'s rows, narrowed by the listing's --status and --niche (unknown, empty: refused)."""
    query = model.select()
    if getattr(args, "status", None) is not None:  # unknown, '' too: a ValueError, the choices
        query = query.where(model.status == model.status.db_value(args.status))
    if getattr(args, "niche", None) is not None:
        if not args.niche.strip():
            raise ValueError("--niche is empty: give a niche's name, e.g. gaming (without it: all)")
        query = query.where(model.niche == args.niche)
    return query


def cmd_init(args: argparse.Namespace) -> str:
    """`init` and `migrate`: create the database or apply its pending migrations; says which."""
    database = init_db(args.db, upgrade=False)
    applied = migrate(database)
    if applied:
        return f"{shown(args.db)}: applied " + ", ".join(applied)
    return f"{shown(args.db)}: schema up to date, nothing to apply"


def cmd_status(args: argparse.Namespace) -> str:
    """`status`, `stats`, `queue`, `digest`: the bot's query of that name, as text or JSON."""
    _bind_readonly(args.db)
    document = args.query(args)  # set by parser(), with the page that shows it as text
    return dumps(document) if args.json else args.page(document)


def _since(text: str) -> Union[datetime.datetime, datetime.timedelta]:
    """An argparse type: --since as bot.parse_since() reads it."""
    try:
        return bot.parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_pause(args: argparse.Namespace) -> str:
    """`pause NICHE` / `resume NICHE`: stop or start again claiming a niche's runs (its channel)."""
    _bind_for_change(args.db)
    pausing = args.command == "pause"
    if (niche_channel(args.command, args.niche) in PipelineRun.paused_niches()) == pausing:
        return f"{shown(args.niche)} is {'already' if pausing else 'not'} paused: nothing changed"
    (PipelineRun.pause if pausing else PipelineRun.resume)(args.niche, updated_by=args.by)
    known = any(model.select().where(model.niche == args.niche).exists()
                for model in (PipelineRun, DiscoveredVideo))
    return paused_page(args.niche, pausing, known)


def cmd_runs(args: argparse.Namespace) -> str:
    """`runs`: pipeline runs, latest cycle first."""
    _bind_readonly(args.db)
    query = _filtered(PipelineRun, args).order_by(PipelineRun.cycle_start.desc(),
                                                  PipelineRun.id.desc())
    return listing(args, "runs", list(query.limit(args.limit)))


def cmd_videos(args: argparse.Namespace) -> str:
    """`videos`: discovered candidate videos, newest first."""
    _bind_readonly(args.db)
    query = _filtered(DiscoveredVideo, args)
    if args.processed is not None:  # a name or the pipeline's number for it
        state = {key: m for m in Processed for key in (m.name, str(m.value))}.get(args.processed)
        if state is None:
            raise ValueError(f"DiscoveredVideo.processed: {shortened(args.processed)!r} is not one "
                             "of: " + ", ".join(f"{m.name} ({m.value})" for m in Processed))
        query = query.where(DiscoveredVideo.processed == state)
    query = query.order_by(DiscoveredVideo.discovered_at.desc(), DiscoveredVideo.id.desc())
    return listing(args, "videos", list(query.limit(args.limit)))


def cmd_shorts(args: argparse.Namespace) -> str:
    """`shorts`: rendered shorts, newest first."""
    _bind_readonly(args.db)
    query = _filtered(Short, args).order_by(Short.id.desc())
    return listing(args, "shorts", list(query.limit(args.limit)))


def cmd_reviews(args: argparse.Namespace) -> str:
    """`reviews`: open reviews (held ones too) oldest first, then answered ones, latest first."""
    _bind_readonly(args.db)
    rows = list(ReviewLog.unanswered().limit(args.limit))
    if not args.open and len(rows) < args.limit:
        answered = (ReviewLog.select().where(ReviewLog.action.is_null(False)
                                             & (ReviewLog.action != ReviewAction.hold))
                    .order_by(ReviewLog.responded_at.desc(), ReviewLog.id.desc()))
        rows += list(answered.limit(args.limit - len(rows)))
    return listing(args, "reviews", rows, "no open reviews" if args.open else None)


def _review(key: str, by: Optional[str]) -> ReviewLog:
    """The review whose chat message id is `key`, else whose id it is (or by `by` alone)."""
    by_message = ReviewLog.get_or_none(ReviewLog.message_id == key) if by != "id" else None
    is_id = key.isdigit() and int(key) <= MAX_NUMBER and by != "message"
    by_id = ReviewLog.get_or_none(ReviewLog.id == int(key)) if is_id else None
    if by_message is not None and by_id is not None and by_message.id != by_id.id:
        raise ValueError(f"{key!r} is the message id of review {by_message.id} and the id of "
                         f"review {by_id.id}: say which with --by-message-id or --by-review-id")
    review = by_message or by_id
    if review is None:
        what = {"message": "message id", "id": "id"}.get(by or "", "message id or id")
        raise NotFound(f"no review with {what} {key!r}")
    return review


def _detail(args: argparse.Namespace) -> Optional[str]:
    """The response_detail as the chat bot stores it: the words after the action, or --detail."""
    if args.words and args.detail is not None:
        raise UsageError("give the answer's detail once, after the action or with --detail, not "
                         f"both (see {PROG} review answer --help)")
    text = " ".join(args.words) if args.words else args.detail
    if args.action != ReviewAction.skip.value:
        return text
    if not (text or "").strip():
        raise UsageError("skip needs the ranks of the clips to drop, e.g. "
                         f"{PROG} review answer chat:2 skip 4,7")
    return text if text.lower().startswith("skip") else f"skip {text}"


def cmd_review(args: argparse.Namespace) -> str:
    """`review answer`: record a reviewer's answer, as the chat bot would."""
    detail = _detail(args)  # before opening: a usage error needs no database
    _bind_for_change(args.db)
    review = _review(args.review, args.by)
    recorded = review.respond(args.action, response_detail=detail, reviewer=args.reviewer)
    said = shown(detail) if args.action == ReviewAction.skip.value else args.action
    return answered(review, PipelineRun.get_by_id(review.pipeline_run_id), said, recorded)


def cmd_run(args: argparse.Namespace) -> str:
    """`run show`: one run in full, its ranked clips (and their videos), artefacts, reviews, errors,
    timings; `run summary`: what its review message shows (bot.review_summary)."""
    _bind_readonly(args.db)
    run = _get(PipelineRun, args.run_id, "run")
    if args.action == "summary":
        document = bot.review_summary(run)
        return dumps(document) if args.json else summary_page(document)
    # The compilation's clips by rank, then those a reviewer's skip dropped; each with its video.
    clips = Clip.select(Clip, DiscoveredVideo).join(DiscoveredVideo).where(Clip.pipeline_run == run)
    clips = sorted(clips, key=lambda c: (c.dropped_at is not None, c.rank_position, c.id))
    parts = {"clips": clips, **{name: list(query.order_by(model.id)) for name, model, query in (
        ("scripts", Script, run.scripts), ("audio", TTSAudio, run.audio),
        ("shorts", Short, run.shorts), ("reviews", ReviewLog, run.reviews),
        ("errors", ErrorLog, run.errors))}}
    timings = run_timings(run)
    return dumps(run_document(run, parts, timings)) if args.json else run_page(run, parts, timings)


def cmd_errors(args: argparse.Namespace) -> str:
    """`errors`: unresolved errors (all with --all), newest first; `errors show ID`: one in full."""
    if args.action == "show":
        # The listing's options before `show` would be silently meaningless for one error.
        given = [option for option, value in (("--module", args.module), ("--all", args.all),
                                              ("--limit", args.limit))
                 if value not in (None, False)]
        if given:
            raise UsageError(f"errors show takes no {given[0]}: it shows the one error named "
                             f"(see {PROG} errors show --help)")
        _bind_readonly(args.db)
        error = _get(ErrorLog, args.error_id, "error")
        return dumps(as_json(error)) if args.json else error_page(error)
    if args.module == "":
        raise ValueError("--module is empty: give a module's name (errors --all: every module's)")
    _bind_readonly(args.db)
    rows = bot.errors(args.limit or ERRORS_LIMIT, unresolved=not args.all, module=args.module)
    empty = "no errors logged" if args.all else "no unresolved errors"
    return dumps(rows) if args.json else errors_table(rows, empty)


def cmd_resolve(args: argparse.Namespace) -> str:
    """`resolve`: mark an error resolved."""
    _bind_for_change(args.db)
    error = _get(ErrorLog, args.error_id, "error")
    what = f"error {error.id} ({shown(error.module)}: {shown(error.error_type)})"
    if error.resolved:
        return f"{what} was already resolved: nothing changed"
    error.resolve()
    return f"{what} resolved"


def cmd_retry(args: argparse.Namespace) -> str:
    """`retry`: queue a failed run again."""
    _bind_for_change(args.db)
    run = _get(PipelineRun, args.run_id, "run")
    why = run.error_message
    run.retry()  # InvalidTransition (one line) unless it failed
    failed = f" (it failed: {shown(why)})" if why else ""
    return f"run {run.id} queued again, its retries counted afresh{failed}"


def cmd_compact(args: argparse.Namespace) -> str:
    """`compact`: thin old analytics to one snapshot per video per UTC day; --vacuum shrinks."""
    _bind_for_change(args.db)
    older_than = None if args.older_than is None else datetime.timedelta(days=args.older_than)
    done = Analytics.compact(older_than)  # without --older-than: the config's policy, else 30 days
    line = compacted(done, Analytics.select().count())
    postgres = backend_of(db) == "postgres"
    if not args.vacuum:
        return line + (POSTGRES_SPACE if postgres else SQLITE_SPACE)
    if postgres:  # plain VACUUM: space reusable, no lock stopping readers or writers (FULL would)
        size = "SELECT pg_total_relation_size('analytics')"
        before = db.execute_sql(size).fetchone()[0]
        db.execute_sql("VACUUM (ANALYZE) analytics")
        after = db.execute_sql(size).fetchone()[0]
        return line + f"; VACUUM ANALYZE analytics: {before / 1e6:,.1f} MB -> {after / 1e6:,.1f} MB"
    path = db.obj.path

    def size() -> int:
        return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
    before = size()
    # VACUUM rewrites the whole file under the write lock (other writers wait, up to their busy
    # timeout), needing free disk of the file's size; the checkpoint moves it in, empties the WAL.
    db.execute_sql("VACUUM")
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return line + f"; VACUUM: {before / 1e6:,.1f} MB -> {size() / 1e6:,.1f} MB"


def cmd_config(args: argparse.Namespace) -> str:
    """`config get|set|list`: runtime config overrides."""
    if args.action == "set":
        # before opening: a refused value needs no database
        value = args.value if args.string else json_argument(args.value)
        _bind_for_change(args.db)
        ConfigOverride.set(args.key, value, updated_by=args.by)
        return f"{shown(args.key)} = {shown_json(value)}"
    _bind_readonly(args.db)
    if args.action == "get":
        value = ConfigOverride.value_of(args.key, _MISSING)
        if value is _MISSING:
            raise NotFound(f"no config override named {args.key!r}")
        if args.json:  # the row, keyed as `config list --json` keys each one
            return dumps(as_json(ConfigOverride.get(ConfigOverride.key == args.key)))
        return shown_json(value)
    rows = list(ConfigOverride.select().order_by(ConfigOverride.key))
    return listing(args, "config", rows)


def cmd_analytics(args: argparse.Namespace) -> str:
    """`analytics`: the latest snapshot of each video, most viewed first."""
    _bind_readonly(args.db)
    return listing(args, "analytics", list(Analytics.top(args.top)))


def cmd_report(args: argparse.Namespace) -> str:
    """`report`: the HTML report, one self-contained file."""
    from . import report

    report.require_extra()  # before opening: without the extra there is nothing to do
    if args.output == "-":  # the convention: the HTML on stdout, and nothing else there
        _bind_readonly(args.db)
        sys.stdout.write(report.render(top=args.top))
        sys.stdout.flush()  # here: a closed pipe fails inside main's try
        return ""
    directory = os.path.dirname(os.path.abspath(args.output))
    if os.path.isdir(args.output):
        raise ValueError(f"-o {args.output} is a directory: give a file, "
                         f"e.g. {os.path.join(args.output, 'report.html')}")
    if not os.path.isdir(directory):
        raise ValueError(f"-o {args.output}: there is no directory {directory}")
    _bind_readonly(args.db)
    path, runs, uploaded, charts, size = report.write(args.output, top=args.top)  # a ReportSummary
    return (f"wrote {shown(path)}: {plural(runs, 'run')}, {uploaded:,} uploaded, "
            f"{plural(charts, 'chart')}, {size / 1e6:.1f} MB; open it in a browser (it works "
            "offline)")


def cmd_demo(args: argparse.Namespace) -> str:
    """`demo`: the whole pipeline simulated; its report is best-effort, its work always finished."""
    from .demo import run_demo
    out = LinePrinter("stdout")
    run_demo(args.db, args.videos, out, LinePrinter("stderr"), niches=args.niches, days=args.days)
    if out.closed:
        raise BrokenPipeError()  # the demo finished; only its report was cut short
    return ""


DEMO_HELP = "simulate the whole pipeline on a new SQLite file (or PostgreSQL), then show its status"
DEMO_DB = "pipeline-demo.db"
DEBUG_HELP = "on an error, also print its traceback (for a bug report; passwords are redacted)"


def parser() -> argparse.ArgumentParser:
    """The argument parser of the command line."""
    # $PIPELINE_DB may hold a password; %% because argparse %-formats help texts.
    now = shown(os.environ.get("PIPELINE_DB") or DEFAULT_DB).replace("%", "%%")
    # SUPPRESS: an option given before the command must not be overwritten by the command's default;
    # the database's default is filled in after parsing (the demo's differs).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, metavar="TARGET", help=DB_HELP % now)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", default=argparse.SUPPRESS,  # as --db's
                         help="print one JSON document (timestamps ISO 8601 UTC)")
    top = Parser(prog=PROG, description="Look at and steer a short-video pipeline database.",
                 epilog=EPILOG, parents=[common])
    top.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    top.set_defaults(command_parser=top)
    sub = top.add_subparsers(dest="command", metavar="command", required=True, parser_class=Parser)

    def add(parent: Any, name: str, func: Optional[Callable[[argparse.Namespace], str]], help: str,
            prints: Optional[str] = "message", listed: bool = True,
            **defaults: Any) -> argparse.ArgumentParser:
        # prints: "data" (takes --json), "message" (what it did, wrapped) or "file" (report, demo).
        # Not listed: argparse lists a subcommand given a help= under its parent's own line.
        p = parent.add_parser(name, parents=[common] + ([as_json] if prints == "data" else []),
                              description=help, **({"help": help} if listed else {}))
        p.set_defaults(func=func, default_db=None, prints=prints, command_parser=p, **defaults)
        return p

    def filters(p: argparse.ArgumentParser, what: str, enum_: Any = None,
                niche: bool = True) -> None:
        if enum_ is not None:
            p.add_argument("--status", metavar="STATUS", help=f"only {what} in this status ("
                           + ", ".join(s.value for s in enum_) + ")")
        if niche:
            p.add_argument("--niche", metavar="NICHE", help=f"only the {what} of this niche")
        p.add_argument("--limit", type=_count, default=20, metavar="N",
                       help="at most N (default 20)")

    add(sub, "init", cmd_init, "create the database or upgrade its schema; say what was applied")
    add(sub, "migrate", cmd_init, "apply pending migrations (same as init)")
    since = "a time ago (30m, 6h, 7d) or an ISO 8601 time, UTC unless it has an offset; default: %s"
    for name, query, page, what, hours in (
            ("status", bot.status, status_page, "per niche: runs by status, the running and the "
             "next run, paused or not; the concurrency cap", None),
            ("stats", bot.stats, stats_page,
             "per niche: uploads since SINCE, their views, errors", 24),
            ("queue", bot.queue, queue_page,
             "reviews awaiting an answer and held ones, with their age", None),
            ("digest", bot.digest, digest_page, "since SINCE: runs uploaded and failed, videos "
             "uploaded, pending review, the top video", 6)):
        p = add(sub, name, cmd_status, what, "data", page=page,
                query=(lambda args, q=query: q(args.since)) if hours
                else (lambda args, q=query: q()))
        if hours:
            p.add_argument("--since", type=_since, default=datetime.timedelta(hours=hours),
                           metavar="SINCE", help=since % f"{hours}h")
    for name, what in (("pause", "stop claiming the runs of NICHE (running ones finish)"),
                       ("resume", "claim the runs of NICHE again")):
        p = add(sub, name, cmd_pause, what)
        p.add_argument("niche", metavar="NICHE")
        p.add_argument("--by", default="cli", metavar="NAME", help="who changed it (default: cli)")
    filters(add(sub, "runs", cmd_runs, "list pipeline runs (one per niche and cycle), latest cycle "
                "first", "data"), "runs", RunStatus)
    runs = add(sub, "run", None, "one run: in full (run show RUN_ID), or what its review message "
               "shows (run summary RUN_ID)", None).add_subparsers(
        dest="action", metavar="action", required=True, parser_class=Parser)
    for name, what in (("show", "one run with its clips, artefacts, reviews, errors and timings"),
                       ("summary", "what its review message shows: clips, content-ID flags")):
        add(runs, name, cmd_run, what, "data").add_argument("run_id", type=_count, metavar="RUN_ID")
    p = add(sub, "videos", cmd_videos, "list discovered candidate videos, newest first", "data")
    p.add_argument("--processed", metavar="STATE", help="only videos in this state: "
                   + ", ".join(f"{m.name} ({m.value})" for m in Processed))
    filters(p, "videos")
    filters(add(sub, "shorts", cmd_shorts, "list shorts, newest first", "data"), "shorts",
            ShortStatus, niche=False)
    p = add(sub, "reviews", cmd_reviews, "list reviews: open ones, then the latest answers", "data")
    p.add_argument("--open", action="store_true", help="only open ones (held ones included)")
    filters(p, "reviews", niche=False)
    answers = add(sub, "review", None, "answer a review as the chat bot would (review answer)",
                  None).add_subparsers(dest="action_word", metavar="action", required=True,
                                       parser_class=Parser)
    p = add(answers, "answer", cmd_review, "answer a review as the chat bot would; the same answer "
            "again changes nothing")
    p.add_argument("review", metavar="MESSAGE_ID|REVIEW_ID", help="the chat message id of the "
                   "review, or its id (when it is both, say which with a flag below)")
    p.add_argument("action", choices=[a.value for a in ReviewAction], help="the answer")
    p.add_argument("words", nargs="*", metavar="DETAIL", help="its argument, as in the chat: "
                   "skip 4,7 drops the clips ranked 4 and 7 (skip needs one)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--by-message-id", dest="by", action="store_const", const="message",
                       help="MESSAGE_ID|REVIEW_ID is a chat message id")
    which.add_argument("--by-review-id", dest="by", action="store_const", const="id",
                       help="MESSAGE_ID|REVIEW_ID is a review's id")
    p.add_argument("--detail", metavar="TEXT",
                   help="the whole response_detail instead of DETAIL, e.g. 'skip 4,7'")
    p.add_argument("--reviewer", metavar="NAME", default="cli", help="who answered (default: cli)")
    p = add(sub, "errors", cmd_errors, "list unresolved errors, newest first; errors show "
            "ERROR_ID: one in full", "data", action=None)
    p.add_argument("--module", metavar="MODULE", help="only this module's errors")
    p.add_argument("--all", action="store_true", help="resolved ones too")
    # No default: `errors show` refuses a --limit given before it, so it must know if one was.
    p.add_argument("--limit", type=_count, metavar="N", help=f"at most N (default {ERRORS_LIMIT})")
    shows = p.add_subparsers(dest="action", metavar="show ERROR_ID", parser_class=Parser,
                             help="one error in full, with its stack trace")
    add(shows, "show", cmd_errors, "one error in full, with its stack trace", "data", listed=False
        ).add_argument("error_id", type=_count, metavar="ERROR_ID")
    p = add(sub, "resolve", cmd_resolve, "mark an error resolved")
    p.add_argument("error_id", type=_count, metavar="ERROR_ID")
    p = add(sub, "retry", cmd_retry, "queue a failed run again")
    p.add_argument("run_id", type=_count, metavar="RUN_ID")
    p = add(sub, "compact", cmd_compact, "thin analytics older than the cut-off to one snapshot "
            "per video per UTC day (growth from any UTC midnight unchanged)")
    p.add_argument("--older-than", type=_number(1, 36500), metavar="DAYS",
                   help="keep every snapshot of the last DAYS days (the cut-off is rounded down "
                        f"to a UTC midnight); default: config {Analytics.COMPACT_AFTER_KEY}, "
                        f"else {Analytics.COMPACT_AFTER.days}")
    p.add_argument("--vacuum", action="store_true",
                   help="then VACUUM: on SQLite shrink the file (writers wait meanwhile; needs "
                        "free disk the size of the file), on PostgreSQL make the space reusable")
    actions = add(sub, "config", None, "read and write runtime config overrides", None
                  ).add_subparsers(dest="action", metavar="action", required=True,
                                   parser_class=Parser)
    add(actions, "get", cmd_config, "print one value as JSON (a password in it as ***); with "
        "--json, the override's row", "data").add_argument("key", metavar="KEY")
    setter = add(actions, "set", cmd_config, "store a JSON value (or text, with --string)")
    setter.add_argument("key", metavar="KEY")
    setter.add_argument("value", metavar="VALUE",
                        help="a JSON value: 60, true, \"text\", [1, 2], {\"a\": 1}")
    setter.add_argument("--string", action="store_true",
                        help="VALUE is text, stored as it is (not JSON)")
    setter.add_argument("--by", default="cli", metavar="NAME", help="who changed it (default: cli)")
    add(actions, "list", cmd_config, "every override", "data")
    p = add(sub, "analytics", cmd_analytics, "latest snapshot per video, most viewed first", "data")
    p.add_argument("--top", type=_count, default=20, metavar="N", help="at most N (default 20)")
    p = add(sub, "report", cmd_report, "write an HTML report that opens offline in a browser "
            "(needs the report extra)", "file")
    p.add_argument("-o", "--output", default="report.html", metavar="FILE",
                   help="the file to write, - for stdout (default: %(default)s)")
    p.add_argument("--top", type=_number(1, 100), default=10, metavar="N",
                   help="view curves of N shorts (default 10)")
    p = sub.add_parser("demo", help=DEMO_HELP, description=DEMO_HELP)
    p.set_defaults(func=cmd_demo, default_db=DEMO_DB,  # never $PIPELINE_DB: no simulated data there
                   prints="file", command_parser=p)
    p.add_argument("--db", default=argparse.SUPPRESS, metavar="TARGET",
                   help="a new SQLite file or URL, an empty PostgreSQL database or an earlier "
                        f"demo's (made anew) (default {DEMO_DB})")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    for option, most, default, what in (  # run_demo's limits (of videos: the time it takes)
            ("--videos", MAX_DEMO_VIDEOS, 12, "candidates discovered per niche per cycle"),
            ("--niches", 4, 2, "niches, the first N of gaming, sports, funny, entertainment"),
            ("--days", 30, 3, "days of four 6-hour cycles")):
        p.add_argument(option, type=_number(1, most), default=default, metavar="N",
                       help=f"{what}, 1 to {most} (default {default})")
    return top


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; --db defaults to the command's ($PIPELINE_DB, else pipeline.db)."""
    args, unknown = parser().parse_known_args(argv)
    if unknown:  # found by the top parser, but the command's help is the one to read
        raise UsageError(unrecognized(args.command_parser, unknown))
    if "db" not in args:
        args.db = args.default_db or os.environ.get("PIPELINE_DB") or DEFAULT_DB
    args.json = "json" in args  # given before a subcommand (errors --json show 1) or after it
    return args


def help_texts() -> Dict[str, str]:
    """Each command's --help by its full name, in the order of `pipeline-models --help`."""
    return {name: command.format_help() for name, command in commands(parser()).items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    utf8_output()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so an error while parsing can be debugged too; "--" ends the options.
    debug = "--debug" in argv[:argv.index("--") if "--" in argv else len(argv)]

    def fail(exc: BaseException, message: str, status: int) -> int:
        if debug:
            trace = traceback.format_exception(type(exc), exc, exc.__traceback__)
            say(redact("".join(trace)).rstrip())
        say(f"{PROG}: error: {one_line(message)}")
        return status

    try:
        check_text(argv)
        args = parse(argv)
        output = args.func(args)
        if output and args.prints != "data":  # tables and documents keep their lines
            output = wrapped(output)
        if output:
            print(terminal_safe(output), flush=True)  # here: a closed pipe fails inside this try
    except SystemExit as exc:  # --help and --version print, then exit 0
        sys.stdout.flush()
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except UsageError as exc:
        return fail(exc, str(exc), EXIT_USAGE)
    except NotFound as exc:
        return fail(exc, str(exc), EXIT_REFUSED)
    except BrokenPipeError:
        silence(sys.stdout)
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # a file the command writes, or stdout itself (a full disk)
        silence(sys.stdout)  # what could not be written must not fail again at exit
        where = f" {exc.filename}" if exc.filename else " the output"
        return fail(exc, f"cannot write{where}: {exc.strerror or exc}", EXIT_REFUSED)
    except KeyboardInterrupt:
        say(f"{PROG}: interrupted")
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
