"""The `pipeline-models` command line (also `python -m pipeline_models`): look at and steer a pipeline database.

--db (before or after the command; default: $PIPELINE_DB, else pipeline.db) accepts whatever init_db does.
The read commands (status, the listings, the show commands, report) change nothing at all; only init and
migrate create or upgrade a database. Every listing and show command prints one JSON document with --json.
Bad input prints one line on stderr and exits non-zero (2 for usage, 1 for a refused value, something not
found, or a database that cannot be used); nothing is half written; --debug adds the traceback.
"""
import argparse
import datetime
import json
import os
import sys
import traceback
from typing import Any, Callable, Optional, Sequence, Union

import peewee

from . import __version__, bot
from .cli_output import (POSTGRES_SPACE, SQLITE_SPACE, LinePrinter, answered, as_json, compacted, digest_page, dumps,
                         error_page, errors_table, first_line, listing, one_line, paused_page, plural, queue_page,
                         review_state, run_document, run_page, run_timings, say, shortened, shown, shown_json, silence,
                         stats_page, status_page, summary_page, terminal_safe, utf8_output)
from .db import db, init_db, migrate, redact
from .enums import Processed, ReviewAction, RunStatus, ShortStatus
from .errors import PipelineModelsError, renamed_attributes
from .fields import backend_of
from .models import (Analytics, Clip, ConfigOverride, DiscoveredVideo, ErrorLog, PipelineRun, ReviewLog, Script,
                     Short, TTSAudio)
from .models.runs import niche_channel

__getattr__ = renamed_attributes(__name__, {"table": "cli_output.table", "UTC": "fields.UTC"})
PROG = "pipeline-models"

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader (`| head`) went away

# Ids and limits: SQLite's integers and PostgreSQL's bigint stop here; a larger number overflows in the driver.
MAX_NUMBER = 2 ** 63 - 1
MAX_DEMO_VIDEOS = 100  # the demo's candidates a cycle: 100 take seconds, many more minutes

DEFAULT_DB = "pipeline.db"
ERRORS_LIMIT = 50
_MISSING = object()  # config get: no such override
DB_HELP = ("the database: a file path, :memory:, sqlite:///... or postgresql://... (default: $PIPELINE_DB, "
           f"else {DEFAULT_DB}; now %s); before or after the command")
EPILOG = ("exit status: 0 done, 1 refused or not found (a bad value, an id that does not exist, or a database that "
          "is missing, foreign, older or unreadable), 2 usage error, 141 output closed early (e.g. piped into head). "
          "The read commands (status, the listings, the show commands, config get/list, report) never change the "
          "database.")


class UsageError(Exception):
    """Bad input on the command line; its message is printed as the one line of output on stderr."""


class NotFound(Exception):
    """The id or key named on the command line is not in the database."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(f"{message} (see {self.prog} --help)")


def _number(lowest: int, highest: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `lowest` to `highest`; anything else is a usage error naming it."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # not a number, or more digits than Python converts
            raise argparse.ArgumentTypeError(f"invalid int value: {shortened(text)!r}") from None
        if not lowest <= value <= highest:
            raise argparse.ArgumentTypeError(
                f"{shortened(text)} is out of range: give a whole number from {lowest} to {highest}")
        return value
    return parse


_count = _number(1, MAX_NUMBER)


def _bind_readonly(target: str) -> None:
    """Bind `target` for reading: an up-to-date pipeline database, left exactly as it was (not even a -wal file)."""
    init_db(target, readonly=True)


def _bind_for_change(target: str) -> None:
    """Bind `target` for a change: an existing, up-to-date pipeline database, never a new or foreign one."""
    # Checked read-only first, which refuses an older pipeline database rather than migrating it: init_db alone
    # would add the pipeline tables to another application's database (a PostgreSQL one is never "missing"),
    # and upgrading the schema under the workers of the older release is for the operator to decide, with
    # `migrate`, not a side effect of retrying one run.
    init_db(target, readonly=True)
    db.obj.close()
    init_db(target, create=False)


def _get(model: Any, id: int, what: str) -> Any:
    row = model.get_or_none(model.id == id)
    if row is None:
        raise NotFound(f"no {what} with id {id}")
    return row


def _filtered(model: Any, args: argparse.Namespace) -> Any:
    """`model`'s rows, narrowed by the listing's --status and --niche (an unknown status or an empty one refused)."""
    query = model.select()
    if getattr(args, "status", None) is not None:  # ValueError naming the field and its choices if unknown, '' too
        query = query.where(model.status == model.status.db_value(args.status))
    if getattr(args, "niche", None) is not None:
        if not args.niche.strip():
            raise ValueError("--niche is empty: give a niche's name, e.g. gaming (without --niche: every niche)")
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
    """`status`, `stats`, `queue`, `digest`: the bot's query of that name (pipeline_models.bot), as text or JSON."""
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
    """`pause NICHE` / `resume NICHE`: stop or start again claiming the runs of a niche (its channel)."""
    _bind_for_change(args.db)
    pausing = args.command == "pause"
    if (niche_channel(args.command, args.niche) in PipelineRun.paused_niches()) == pausing:
        return f"{shown(args.niche)} is {'already' if pausing else 'not'} paused: nothing changed"
    (PipelineRun.pause if pausing else PipelineRun.resume)(args.niche, updated_by=args.by)
    known = any(model.select().where(model.niche == args.niche).exists() for model in (PipelineRun, DiscoveredVideo))
    return paused_page(args.niche, pausing, known)


def cmd_runs(args: argparse.Namespace) -> str:
    """`runs`: pipeline runs, latest cycle first."""
    _bind_readonly(args.db)
    query = _filtered(PipelineRun, args).order_by(PipelineRun.cycle_start.desc(), PipelineRun.id.desc())
    return listing(args, ["id", "niche", "cycle_start (UTC)", "status", "stage", "worker", "retry_count",
                          "youtube_video_id", "error_message"], list(query.limit(args.limit)),
                   lambda r: [r.id, r.niche, r.cycle_start, r.status, r.current_stage, r.worker, r.retry_count,
                              r.youtube_video_id, first_line(r.error_message)])


def cmd_videos(args: argparse.Namespace) -> str:
    """`videos`: discovered candidate videos, newest first."""
    _bind_readonly(args.db)
    query = _filtered(DiscoveredVideo, args)
    if args.processed is not None:  # a name or the pipeline's number for it
        state = {key: m for m in Processed for key in (m.name, str(m.value))}.get(args.processed)
        if state is None:
            raise ValueError(f"DiscoveredVideo.processed: {shortened(args.processed)!r} is not one of: "
                             + ", ".join(f"{m.name} ({m.value})" for m in Processed))
        query = query.where(DiscoveredVideo.processed == state)
    query = query.order_by(DiscoveredVideo.discovered_at.desc(), DiscoveredVideo.id.desc())
    return listing(args, ["id", "video_id", "niche", "viral_score", "processed", "content_id_risk",
                          "discovered (UTC)", "channel_name", "title"], list(query.limit(args.limit)),
                   lambda v: [v.id, v.video_id, v.niche, v.viral_score, v.processed, v.content_id_risk,
                              v.discovered_at, v.channel_name, v.title])


def cmd_shorts(args: argparse.Namespace) -> str:
    """`shorts`: rendered shorts, newest first."""
    _bind_readonly(args.db)
    query = _filtered(Short, args).order_by(Short.id.desc())
    return listing(args, ["id", "run", "status", "youtube_video_id", "uploaded (UTC)", "title"],
                   list(query.limit(args.limit)),
                   lambda s: [s.id, s.pipeline_run_id, s.status, s.youtube_video_id, s.uploaded_at, s.title])


def cmd_reviews(args: argparse.Namespace) -> str:
    """`reviews`: open reviews first (held ones included, oldest first), then answered ones, most recent first."""
    _bind_readonly(args.db)
    rows = list(ReviewLog.unanswered().limit(args.limit))
    if not args.open and len(rows) < args.limit:
        answered = (ReviewLog.select().where(ReviewLog.action.is_null(False) & (ReviewLog.action != ReviewAction.hold))
                    .order_by(ReviewLog.responded_at.desc(), ReviewLog.id.desc()))
        rows += list(answered.limit(args.limit - len(rows)))
    return listing(args, ["id", "run", "message_id", "state", "sent (UTC)", "answered (UTC)", "reviewer", "detail"],
                   rows, lambda r: [r.id, r.pipeline_run_id, r.message_id, review_state(r), r.sent_at,
                                    r.responded_at, r.reviewer, first_line(r.response_detail)])


def _review(key: str, by: Optional[str]) -> ReviewLog:
    """The review whose chat message id is `key`, else whose id it is (`by` "message" or "id": only that one)."""
    by_message = ReviewLog.get_or_none(ReviewLog.message_id == key) if by != "id" else None
    is_id = key.isdigit() and int(key) <= MAX_NUMBER and by != "message"
    by_id = ReviewLog.get_or_none(ReviewLog.id == int(key)) if is_id else None
    if by_message is not None and by_id is not None and by_message.id != by_id.id:
        raise ValueError(f"{key!r} is the message id of review {by_message.id} and the id of review {by_id.id}: "
                         f"add --by-message-id or --by-review-id to say which one you mean")
    review = by_message or by_id
    if review is None:
        what = {"message": "message id", "id": "id"}.get(by or "", "message id or id")
        raise NotFound(f"no review with {what} {key!r}")
    return review


def _detail(args: argparse.Namespace) -> Optional[str]:
    """The answer's response_detail as the chat bot stores it: the words after the action ('skip 4,7'), or --detail."""
    if args.words and args.detail is not None:
        raise UsageError("give the answer's detail once, after the action or with --detail, not both "
                         f"(see {PROG} review --help)")
    text = " ".join(args.words) if args.words else args.detail
    if args.action != ReviewAction.skip.value:
        return text
    if not (text or "").strip():
        raise UsageError(f"skip needs the ranks of the clips to drop, e.g. {PROG} review answer chat:2 skip 4,7")
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
    """`run show`: one run in full, with its ranked clips (and their videos), artefacts, reviews, errors, timings;
    `run summary`: what its review message shows (bot.review_summary)."""
    _bind_readonly(args.db)
    run = _get(PipelineRun, args.run_id, "run")
    if args.action == "summary":
        document = bot.review_summary(run)
        return dumps(document) if args.json else summary_page(document)
    # The clips in the compilation by rank, then those a reviewer's skip dropped; each with its source video.
    clips = sorted(Clip.select(Clip, DiscoveredVideo).join(DiscoveredVideo).where(Clip.pipeline_run == run.id),
                   key=lambda c: (c.dropped_at is not None, c.rank_position, c.id))
    parts = {"clips": clips, **{name: list(query.order_by(model.id)) for name, model, query in (
        ("scripts", Script, run.scripts), ("audio", TTSAudio, run.audio), ("shorts", Short, run.shorts),
        ("reviews", ReviewLog, run.reviews), ("errors", ErrorLog, run.errors))}}
    timings = run_timings(run)
    return dumps(run_document(run, parts, timings)) if args.json else run_page(run, parts, timings)


def cmd_errors(args: argparse.Namespace) -> str:
    """`errors`: unresolved errors (all with --all), newest first; `errors show ID`: one in full."""
    if args.action == "show":
        # The listing's options before `show` would be silently meaningless for one error.
        given = [option for option, value in (("--module", args.module), ("--all", args.all), ("--limit", args.limit))
                 if value not in (None, False)]
        if given:
            raise UsageError(f"errors show takes no {given[0]}: it shows the one error named "
                             f"(see {PROG} errors show --help)")
        _bind_readonly(args.db)
        error = _get(ErrorLog, args.error_id, "error")
        return dumps(as_json(error)) if args.json else error_page(error)
    if args.module == "":
        raise ValueError("--module is empty: give a module's name (errors --all shows every module's errors)")
    _bind_readonly(args.db)
    rows = bot.errors(args.limit or ERRORS_LIMIT, unresolved=not args.all, module=args.module)
    return dumps(rows) if args.json else errors_table(rows)


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
    return f"run {run.id} queued again, its retries counted afresh" + (f" (it failed: {shown(why)})" if why else "")


def cmd_compact(args: argparse.Namespace) -> str:
    """`compact`: thin analytics older than the cut-off to one snapshot per video per UTC day; --vacuum shrinks."""
    _bind_for_change(args.db)
    older_than = None if args.older_than is None else datetime.timedelta(days=args.older_than)
    done = Analytics.compact(older_than)  # the ConfigOverride policy, else 30 days, when --older-than is not given
    line = compacted(done, Analytics.select().count())
    postgres = backend_of(db) == "postgres"
    if not args.vacuum:
        return line + (POSTGRES_SPACE if postgres else SQLITE_SPACE)
    if postgres:  # plain VACUUM: space reusable, no lock that stops readers or writers (VACUUM FULL would)
        size = "SELECT pg_total_relation_size('analytics')"
        before = db.execute_sql(size).fetchone()[0]
        db.execute_sql("VACUUM (ANALYZE) analytics")
        after = db.execute_sql(size).fetchone()[0]
        return line + f"; VACUUM ANALYZE analytics: {before / 1e6:,.1f} MB -> {after / 1e6:,.1f} MB"
    path = db.obj.path

    def size() -> int:
        return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
    before = size()
    # VACUUM rewrites the whole file under the write lock (other writers wait, up to their busy timeout) and
    # needs free disk about the file's size; the checkpoint then moves it into the file and empties the WAL.
    db.execute_sql("VACUUM")
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return line + f"; VACUUM: {before / 1e6:,.1f} MB -> {size() / 1e6:,.1f} MB"


def cmd_config(args: argparse.Namespace) -> str:
    """`config get|set|list`: runtime config overrides."""
    if args.action == "set":
        value = args.value if args.string else _json(args.value)  # before opening: a refused value needs no database
        _bind_for_change(args.db)
        ConfigOverride.set(args.key, value, updated_by=args.by)
        return f"{shown(args.key)} = {shown_json(value)}"
    _bind_readonly(args.db)
    if args.action == "get":
        value = ConfigOverride.value_of(args.key, _MISSING)
        if value is _MISSING:
            raise NotFound(f"no config override named {args.key!r}")
        return shown_json(value)
    rows = list(ConfigOverride.select().order_by(ConfigOverride.key))
    return listing(args, ["key", "value", "updated_by", "updated_at (UTC)"], rows,
                   lambda c: [c.key, shown_json(c.value), c.updated_by, c.updated_at])


def _json(text: str) -> Any:
    """VALUE of `config set`: its JSON value; text that is not JSON is refused (--string stores text as it is)."""
    try:
        return json.loads(text)
    except RecursionError:  # json.loads gives up on deep nesting this way, not with a ValueError
        raise ValueError(f"VALUE is JSON nested too deeply to read ({len(text):,} characters): "
                         "store a flatter value") from None
    except ValueError as exc:
        raise ValueError(f"VALUE {shortened(text)!r} is not JSON ({exc}): give --string to store the text "
                         "as it is (a JSON string is in double quotes: '\"text\"')") from None


def cmd_analytics(args: argparse.Namespace) -> str:
    """`analytics`: the latest snapshot of each video, most viewed first."""
    _bind_readonly(args.db)
    return listing(args, ["youtube_video_id", "measured_at (UTC)", "view_count", "like_count", "comment_count",
                          "click_through_rate", "subscriber_gain", "estimated_revenue_usd"], Analytics.top(args.top),
                   lambda a: [a.youtube_video_id, a.measured_at, a.view_count, a.like_count, a.comment_count,
                              a.click_through_rate, a.subscriber_gain, a.estimated_revenue_usd])


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
    return (f"wrote {shown(path)}: {plural(runs, 'run')}, {uploaded:,} uploaded, {plural(charts, 'chart')}, "
            f"{size / 1e6:.1f} MB; open it in a browser (it works offline)")


def cmd_demo(args: argparse.Namespace) -> str:
    """`demo`: the whole pipeline simulated; its report is best-effort, its work always finished."""
    from .demo import run_demo
    out = LinePrinter("stdout")
    run_demo(args.db, args.videos, out, LinePrinter("stderr"), niches=args.niches, days=args.days)
    if out.closed:
        raise BrokenPipeError()  # the demo finished; only its report was cut short
    return ""


DEMO_HELP = "simulate the whole pipeline on an embedded SQLite file (or a PostgreSQL database), then show its status"
DEMO_DB = "pipeline-demo.db"
DEBUG_HELP = "on an error, also print its traceback (for a bug report; passwords are redacted)"


def parser() -> argparse.ArgumentParser:
    """The argument parser of the command line."""
    # $PIPELINE_DB may hold a password; %% because argparse %-formats help texts.
    now = shown(os.environ.get("PIPELINE_DB") or DEFAULT_DB).replace("%", "%%")
    # SUPPRESS: an option given before the command must not be overwritten by the command's default;
    # the database's default is filled in after parsing (the demo's differs).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP % now)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print one JSON document (timestamps ISO 8601 UTC)")
    top = _Parser(prog=PROG, description="Look at and steer a short-video pipeline database.", epilog=EPILOG,
                  parents=[common])
    top.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = top.add_subparsers(dest="command", metavar="command", required=True, parser_class=_Parser)

    def add(parent: Any, name: str, func: Callable[[argparse.Namespace], str], help: str,
            listing: bool = False) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common] + ([as_json] if listing else []), help=help, description=help,
                              epilog=EPILOG)
        p.set_defaults(func=func, default_db=None)
        return p

    def filters(p: argparse.ArgumentParser, what: str, enum_: Any = None, niche: bool = True) -> None:
        if enum_ is not None:
            p.add_argument("--status", help=f"only {what} in this status (" + ", ".join(s.value for s in enum_) + ")")
        if niche:
            p.add_argument("--niche", help=f"only the {what} of this niche, e.g. gaming")
        p.add_argument("--limit", type=_count, default=20, metavar="N", help="at most N (default 20)")

    add(sub, "init", cmd_init, "create the database or upgrade its schema, and say what was applied")
    add(sub, "migrate", cmd_init, "apply pending migrations (same as init)")
    since = "SINCE: a time ago (30m, 6h, 7d) or an ISO 8601 time, UTC unless it has an offset; default: %s"
    for name, query, page, what, hours in (
            ("status", bot.status, status_page, "per niche: runs by status, the running and the next run, paused or "
                                                "not; the concurrency cap", None),
            ("stats", bot.stats, stats_page, "per niche: uploads since SINCE, their views, errors", 24),
            ("queue", bot.queue, queue_page, "reviews awaiting an answer and held ones, with their age", None),
            ("digest", bot.digest, digest_page, "since SINCE: runs uploaded and failed, videos uploaded, pending "
                                                "review, the top video", 6)):
        p = add(sub, name, cmd_status, what, listing=True)
        p.set_defaults(query=(lambda args, q=query: q(args.since)) if hours else (lambda args, q=query: q()), page=page)
        if hours:
            p.add_argument("--since", type=_since, default=datetime.timedelta(hours=hours), help=since % f"{hours}h")
    for name, what in (("pause", "stop claiming the runs of NICHE (running ones finish)"),
                       ("resume", "claim the runs of NICHE again")):
        p = add(sub, name, cmd_pause, what)
        p.add_argument("niche", metavar="NICHE")
        p.add_argument("--by", default="cli", help="who changed it (default: cli)")
    filters(add(sub, "runs", cmd_runs, "list pipeline runs (one per niche and cycle), latest cycle first",
                listing=True), "runs", RunStatus)
    p = add(sub, "run", cmd_run, "run show RUN_ID: one run with its ranked clips, artefacts, reviews, errors and "
                                 "timings; run summary RUN_ID: what its review message shows", listing=True)
    p.add_argument("action", choices=["show", "summary"], help="show: the run with its clips, artefacts, reviews "
                   "and timings; summary: its clips by rank (title, creator, seconds), content-ID flags, the script")
    p.add_argument("run_id", type=_count, metavar="RUN_ID")
    p = add(sub, "videos", cmd_videos, "list discovered candidate videos, newest first", listing=True)
    p.add_argument("--processed", metavar="STATE", help="only videos in this state: "
                   + ", ".join(f"{m.name} ({m.value})" for m in Processed))
    filters(p, "videos")
    filters(add(sub, "shorts", cmd_shorts, "list shorts, newest first", listing=True), "shorts", ShortStatus,
            niche=False)
    p = add(sub, "reviews", cmd_reviews, "list reviews: open ones first, then the latest answers", listing=True)
    p.add_argument("--open", action="store_true", help="only open ones (held ones included)")
    filters(p, "reviews", niche=False)
    p = add(sub, "review", cmd_review, "review answer ID ACTION: answer a review as the chat bot would")
    # Written out, in the order typed: argparse's own puts the options first and drops the suppressed "answer".
    answers = "{" + ",".join(a.value for a in ReviewAction) + "}"
    p.usage = (f"{PROG} review answer MESSAGE_ID|REVIEW_ID {answers} [DETAIL ...]\n"
               f"       [--by-message-id | --by-review-id] [--detail TEXT] [--reviewer NAME] [--db DB]")
    p.add_argument("action_word", choices=["answer"], metavar="answer", help=argparse.SUPPRESS)
    p.add_argument("review", metavar="MESSAGE_ID|REVIEW_ID",
                   help="the chat message id of the review, or its id (when it is both, say which with a flag below)")
    p.add_argument("action", choices=[a.value for a in ReviewAction], help="the answer")
    p.add_argument("words", nargs="*", metavar="DETAIL",
                   help="its argument, as in the chat: skip 4,7 drops the clips ranked 4 and 7 (skip needs one)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--by-message-id", dest="by", action="store_const", const="message",
                       help="MESSAGE_ID|REVIEW_ID is a chat message id")
    which.add_argument("--by-review-id", dest="by", action="store_const", const="id",
                       help="MESSAGE_ID|REVIEW_ID is a review's id")
    p.add_argument("--detail", metavar="TEXT", help="the whole response_detail instead of DETAIL, e.g. 'skip 4,7'")
    p.add_argument("--reviewer", metavar="NAME", default="cli", help="who answered (default: cli)")
    p = add(sub, "errors", cmd_errors, "list unresolved errors, newest first; errors show ID: one in full",
            listing=True)
    p.usage = (f"{PROG} errors [--module MODULE] [--all] [--limit N] [--json] [--db DB]\n"
               f"       {PROG} errors show ERROR_ID [--json] [--db DB]")
    p.add_argument("--module", help="only this module's errors")
    p.add_argument("--all", action="store_true", help="resolved ones too")
    # No default here: `errors show` refuses a --limit given before it, so it must know whether one was.
    p.add_argument("--limit", type=_count, metavar="N", help=f"at most N (default {ERRORS_LIMIT})")
    p.set_defaults(action=None)
    shows = p.add_subparsers(dest="action", metavar="show", parser_class=_Parser)
    shower = shows.add_parser("show", parents=[common, as_json], help="one error in full, with its stack trace",
                              prog=f"{PROG} errors show")
    shower.add_argument("error_id", type=_count, metavar="ERROR_ID")
    p = add(sub, "resolve", cmd_resolve, "mark an error resolved")
    p.add_argument("error_id", type=_count, metavar="ERROR_ID")
    p = add(sub, "retry", cmd_retry, "queue a failed run again")
    p.add_argument("run_id", type=_count, metavar="RUN_ID")
    p = add(sub, "compact", cmd_compact, "thin analytics older than the cut-off to one snapshot per video per UTC "
                                         "day (growth from any UTC midnight unchanged)")
    p.add_argument("--older-than", type=_number(1, 36500), metavar="DAYS",
                   help=f"keep every snapshot of the last DAYS days (the cut-off is rounded down to a UTC midnight); "
                        f"default: config {Analytics.COMPACT_AFTER_KEY}, else {Analytics.COMPACT_AFTER.days}")
    p.add_argument("--vacuum", action="store_true",
                   help="then VACUUM: on SQLite shrink the file (writers wait meanwhile; needs free disk the size of "
                        "the file), on PostgreSQL make the space reusable")
    p = add(sub, "config", cmd_config, "read and write runtime config overrides")
    actions = p.add_subparsers(dest="action", metavar="action", required=True, parser_class=_Parser)
    actions.add_parser("get", parents=[common], help="print one value as JSON (a password in it as ***)"
                       ).add_argument("key")
    setter = actions.add_parser("set", parents=[common], help="store a JSON value (or text, with --string)")
    setter.add_argument("key")
    setter.add_argument("value", help="a JSON value: 60, true, \"text\", [1, 2], {\"a\": 1}")
    setter.add_argument("--string", action="store_true", help="VALUE is text, stored as it is (not JSON)")
    setter.add_argument("--by", default="cli", help="who changed it (default: cli)")
    actions.add_parser("list", parents=[common, as_json], help="every override")
    p = add(sub, "analytics", cmd_analytics, "latest snapshot of each video, most viewed first", listing=True)
    p.add_argument("--top", type=_count, default=20, metavar="N", help="at most N videos (default 20)")
    p = add(sub, "report", cmd_report, "write an HTML report that opens offline in a browser (needs the report extra)")
    p.add_argument("-o", "--output", default="report.html", metavar="FILE",
                   help="the file to write, - for stdout (default: %(default)s)")
    p.add_argument("--top", type=_number(1, 100), default=10, metavar="N", help="view curves of N shorts (default 10)")
    p = sub.add_parser("demo", help=DEMO_HELP, description=DEMO_HELP, epilog=EPILOG)
    p.set_defaults(func=cmd_demo, default_db=DEMO_DB)  # never $PIPELINE_DB: no simulated data there
    p.add_argument("--db", default=argparse.SUPPRESS, help="a new SQLite file or URL, an empty "
                   f"PostgreSQL database or an earlier demo's (made anew) (default {DEMO_DB})")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    for option, most, default, what in (  # run_demo's limits (of videos: the time it takes)
            ("--videos", MAX_DEMO_VIDEOS, 12, "candidates discovered per niche per cycle"),
            ("--niches", 4, 2, "niches, the first N of gaming, sports, funny, entertainment"),
            ("--days", 30, 3, "days of four 6-hour cycles")):
        p.add_argument(option, type=_number(1, most), default=default, metavar="N",
                       help=f"{what}, 1 to {most} (default {default})")
    return top


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; --db falls back to the command's default ($PIPELINE_DB, else pipeline.db)."""
    args = parser().parse_args(argv)
    if "db" not in args:
        args.db = args.default_db or os.environ.get("PIPELINE_DB") or DEFAULT_DB
    return args


def _check_text(argv: Sequence[str]) -> None:
    """Refuse an argument that is not valid text (bytes that are not UTF-8 reach Python as lone surrogates)."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"argument {shortened(ascii(arg))} is not valid UTF-8 text: give it in UTF-8") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    utf8_output()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so an error while parsing can be debugged too; "--" ends the options.
    debug = "--debug" in argv[:argv.index("--") if "--" in argv else len(argv)]

    def fail(exc: BaseException, message: str, status: int) -> int:
        if debug:
            say(redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))).rstrip())
        say(f"{PROG}: error: {one_line(message)}")
        return status

    try:
        _check_text(argv)
        args = parse(argv)
        output = args.func(args)
        if output:
            print(terminal_safe(output), flush=True)  # flushed here: a closed pipe fails inside this try
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
