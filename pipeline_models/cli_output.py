"""What the command line prints: aligned tables, JSON documents, and text made safe for a terminal.

Also how it reads its arguments (help at most 100 columns wide; a usage error is one line naming the
closest option and the command's help; text that is not UTF-8 refused), and the streams it prints
to: UTF-8 whatever the locale, and a reader that goes away (`| head`) is not an error. Nothing here
reads the database; every value shown passes through redact(), so no password is printed.
"""
import argparse
import codecs
import datetime
import difflib
import enum
import json
import os
import re
import shutil
import sys
import textwrap
from typing import Any, Dict, Iterable, Optional, Sequence

import peewee

from .db import redact
from .errors import plural  # the CLI and the demo take it from here too
from .fields import UTC


# The top level's help ends with it (only the top level's: one place to read it).
EPILOG = ("exit status: 0 done, 1 refused or not found (a bad value, an id that does not exist, "
          "or a database that is missing, foreign, older or unreadable), 2 usage error, 141 output "
          "closed early (e.g. piped into head). The read commands (status, the listings, the show "
          "commands, config get/list, report) never change the database.")
# Each option's metavar, as the docs write it (tests/test_cli_help.py holds every command to it).
METAVARS = {"--db": "TARGET", "--limit": "N", "--top": "N", "--videos": "N", "--niches": "N",
            "--days": "N", "--older-than": "DAYS", "--since": "SINCE", "--status": "STATUS",
            "--niche": "NICHE", "--processed": "STATE", "--by": "NAME", "--reviewer": "NAME",
            "--module": "MODULE", "--detail": "TEXT", "--output": "FILE"}


class UsageError(Exception):
    """Bad input on the command line; its message is printed as the one line of output on stderr."""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, at most 100 columns wide; a subcommand that may be left out in brackets."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=min(output_width(), 100) - 2)

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if action.nargs == argparse.PARSER and not action.required:  # `errors [show ERROR_ID]`
            return "[%s]" % self._metavar_formatter(action, default_metavar)(1)
        return super()._format_args(action, default_metavar)


class Parser(argparse.ArgumentParser):
    """argparse's parser, but a usage error is one line naming the command's help (a UsageError)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, not argparse's usage block
        choice = re.search(r"invalid choice: '(.*)' \(choose from (.*)\)$", message)
        if choice:  # a misspelt command or action
            message += did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        raise UsageError(f"{message} (see {self.prog} --help)")


def did_you_mean(word: str, known: Sequence[str]) -> str:
    """The hint "; did you mean --json?" when one of `known` is close to the misspelt `word`."""
    close = difflib.get_close_matches(word, known, n=3)
    # Two letters swapped ("stauts") beat one left out: difflib alone would say stats.
    close.sort(key=lambda name: sorted(name) != sorted(word))
    return f"; did you mean {close[0]}?" if close else ""


def unrecognized(command: argparse.ArgumentParser, words: Sequence[str]) -> str:
    """The error for arguments `command` does not take: the closest option, and its help."""
    options = [option for action in command._actions for option in action.option_strings]
    first = next((word.split("=")[0] for word in words if word.startswith("-")), None)
    hint = did_you_mean(first, options) if first else ""
    if first in options:  # given before the command's name, where the top level reads options
        hint = f"; give {first} after {command.prog}"
    return f"unrecognized arguments: {' '.join(words)}{hint} (see {command.prog} --help)"


def commands(top: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    """Every command's parser under `top` by its full name, each before its subcommands."""
    found, todo = {}, [top]
    while todo:
        current = todo.pop(0)
        found[current.prog] = current
        # argparse keeps a command's subcommands in the choices of its one PARSER argument
        subcommands = [a.choices.values() for a in current._actions if a.nargs == argparse.PARSER]
        todo[:0] = [command for choices in subcommands for command in choices]
    return found


def check_text(argv: Sequence[str]) -> None:
    """Refuse an argument that is not valid text (bytes that are not UTF-8 reach Python as lone
    surrogates)."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"argument {shortened(ascii(arg))} is not valid UTF-8 text: "
                             "give it in UTF-8") from None


def json_argument(text: str) -> Any:
    """VALUE of `config set`: its JSON value; text that is not JSON is refused (--string stores
    text as it is)."""
    try:
        return json.loads(text)
    except RecursionError:  # json.loads gives up on deep nesting this way, not with a ValueError
        raise ValueError(f"VALUE is JSON nested too deeply to read ({len(text):,} characters): "
                         "store a flatter value") from None
    except ValueError as exc:
        raise ValueError(f"VALUE {shortened(text)!r} is not JSON ({exc}): give --string to store "
                         "the text as it is (a JSON string is in double quotes: '\"text\"')"
                         ) from None


def shortened(text: str, limit: int = 40) -> str:
    """`text`, cut to `limit` characters with an ellipsis: a value quoted in a message."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def one_line(text: object) -> str:
    """A message (an error's, maybe of several lines) on one printable line, passwords redacted."""
    return printable(" ".join(redact(text).split()))


def shown(value: object) -> str:
    """A value as every command shows it, in a table or a message: passwords redacted, control
    characters escaped (line breaks too: "w\\r\\nx" shows as w\\r\\nx; only first_line() cuts)."""
    return printable(redact(value))


def shown_json(value: Any) -> str:
    """A value as JSON, redacted string by string (redacting the JSON text could eat a quote)."""
    return json.dumps(json_value(value), ensure_ascii=False)


def review_state(review: Any) -> str:
    """A review's state in a listing: open, held (auto-held: no answer in time), or its answer."""
    if review.action is None:
        return "open"
    if review.action.value == "hold":  # still open: a held review may be answered again
        return "auto-held" if review.auto_held else "held"
    return review.action.value


def first_line(text: Optional[str]) -> Optional[str]:
    """A message in a table: its first line, " …" if more follow (the show commands have all)."""
    if text is None:
        return None
    lines = str(text).splitlines() or [""]
    return lines[0] + (" …" if len(lines) > 1 else "")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows under headers in aligned columns; numbers right-aligned, None shown as '-'."""
    rows = [[("-" if v is None else v) for v in row] for row in rows]
    cells = [list(map(str, headers))] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [any(_number(row[i]) for row in rows)
               and all(_number(row[i]) or row[i] == "-" for row in rows)
               for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _number(value: Any) -> bool:
    """A number a table right-aligns: not a flag, and not an int enum (shown by its name)."""
    return isinstance(value, (int, float)) and not isinstance(value, (bool, enum.Enum))


def aligned_pairs(pairs: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    """Name-value lines, the values aligned: the head of a show command."""
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{indent}{name:<{width}}  {cell('-' if value is None else value)}"
                     for name, value in pairs)


def cell(value: Any) -> str:
    """A value as a table cell: numbers grouped, times in UTC, one line of 60 characters at most."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, enum.Enum):  # before int: a Processed (an IntEnum) shows its name, not 1
        return str(value)
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime.datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    text = shown(value)
    return text if len(text) <= 60 else text[:59] + "…"


def printable(text: str, keep: str = "") -> str:
    """`text`, control characters (but `keep`'s) escaped as \\x1b: data must not move the cursor."""
    return "".join(ch if ch.isprintable() or ch in keep else ascii(ch)[1:-1] for ch in text)


def terminal_safe(text: str) -> str:
    """`text`, every character not printable escaped but newlines and tabs: what a command prints.

    Data (a title, an error message, a config key) must not move the cursor, retitle the terminal or
    reverse the text. The commands show data through shown() (or JSON), so this is the safety net of
    a JSON document: its escapes are JSON's (\\u001b), so a --json document stays valid JSON.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in "\n\t" else json.dumps(ch)[1:-1] for ch in text)


def json_value(value: Any) -> Any:
    """A column's value as JSON: timestamps ISO 8601 in UTC, enums by value, passwords redacted."""
    if isinstance(value, datetime.datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_value(v) for v in value]
    return value


def as_json(row: peewee.Model, **extra: Any) -> Dict[str, Any]:
    """A row as a JSON object keyed by column name (a foreign key `<name>_id`), in schema order."""
    document = {f.column_name: json_value(row.__data__.get(f.name))
                for f in row._meta.sorted_fields}
    document.update({k: json_value(v) for k, v in extra.items()})
    return document


# Each listing's table: (what it says when empty, its headers, the cells of a row). A column is
# named as its field everywhere (a time with " (UTC)"), here, in run show and in the bot's pages.
LISTINGS = {
    "runs": ("no runs", ["id", "niche", "cycle_start (UTC)", "status", "current_stage", "worker",
                         "retry_count", "youtube_video_id", "error_message"],
             lambda r: [r.id, r.niche, r.cycle_start, r.status, r.current_stage, r.worker,
                        r.retry_count, r.youtube_video_id, first_line(r.error_message)]),
    "videos": ("no videos", ["id", "video_id", "niche", "viral_score", "processed",
                             "content_id_risk", "discovered_at (UTC)", "channel_name", "title"],
               lambda v: [v.id, v.video_id, v.niche, v.viral_score, v.processed, v.content_id_risk,
                          v.discovered_at, v.channel_name, v.title]),
    "shorts": ("no shorts", ["id", "pipeline_run_id", "status", "youtube_video_id",
                             "uploaded_at (UTC)", "title"],
               lambda s: [s.id, s.pipeline_run_id, s.status, s.youtube_video_id, s.uploaded_at,
                          s.title]),
    "reviews": ("no reviews", ["id", "pipeline_run_id", "message_id", "state", "sent_at (UTC)",
                               "responded_at (UTC)", "reviewer", "response_detail"],
                lambda r: [r.id, r.pipeline_run_id, r.message_id, review_state(r), r.sent_at,
                           r.responded_at, r.reviewer, first_line(r.response_detail)]),
    "config": ("no config overrides", ["key", "value", "updated_by", "updated_at (UTC)"],
               lambda c: [c.key, shown_json(c.value), c.updated_by, c.updated_at]),
    "analytics": ("no analytics snapshots", ["youtube_video_id", "measured_at (UTC)", "view_count",
                                             "like_count", "comment_count", "click_through_rate",
                                             "subscriber_gain", "estimated_revenue_usd"],
                  lambda a: [a.youtube_video_id, a.measured_at, a.view_count, a.like_count,
                             a.comment_count, a.click_through_rate, a.subscriber_gain,
                             a.estimated_revenue_usd]),
}


def listing(args: Any, name: str, rows: Sequence[peewee.Model], empty: Optional[str] = None) -> str:
    """The listing `name` (LISTINGS): a table, what it says when there is no row (`empty` if given),
    or with `args.json` every row's columns."""
    if args.json:
        return dumps([as_json(row) for row in rows])
    said, headers, cells = LISTINGS[name]
    return table(headers, [cells(row) for row in rows]) if rows else (empty or said)


def output_width() -> int:
    """The width human output wraps at: the terminal's ($COLUMNS first), else 100."""
    return shutil.get_terminal_size((100, 24)).columns


def wrapped(text: str) -> str:
    """`text` wrapped at the output width, line by line; a long word (a path, a URL) stays whole."""
    width = max(output_width(), 40)
    return "\n".join(line if len(line) <= width else textwrap.fill(
        line, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
        for line in text.split("\n"))


def answered(review: Any, run: Any, said: str, recorded: bool) -> str:
    """What `review answer` says: the answer `said` and where it left the run."""
    state = "in review" if run.status.value == "review" else run.status.value
    if not recorded:
        return (f"review {review.id} was already answered {said}: nothing changed (run {run.id} "
                f"is {state})")
    if run.status.value == "review":  # held: the review may be answered again
        return (f"review {review.id} answered {said}: run {run.id} stays in review, to be answered "
                "again")
    stage = f" at stage {shown(run.current_stage)}" if run.status.value == "pending" else ""
    return f"review {review.id} answered {said}: run {run.id} is now {state}{stage}"


RUN_SECTIONS = {  # run show's tables: (headers, the cells of a row); a clip's video is read with it
    "clips": (["rank_position", "id", "video_id", "title", "channel_name", "start_time_seconds",
               "clip_duration_seconds", "content_id_risk", "dropped_at (UTC)"],
              lambda c: [c.rank_position, c.id, c.discovered_video.video_id,
                         c.discovered_video.title, c.discovered_video.channel_name,
                         c.start_time_seconds, c.clip_duration_seconds, c.content_id_risk,
                         c.dropped_at]),
    "scripts": (["id", "llm_model_used", "total_char_count", "estimated_duration_seconds",
                 "prompt_tokens", "completion_tokens", "cost_usd", "title"],
                lambda s: [s.id, s.llm_model_used, s.total_char_count, s.estimated_duration_seconds,
                           s.prompt_tokens, s.completion_tokens, s.cost_usd, s.title]),
    "audio": (["id", "engine_used", "voice_profile", "duration_seconds", "audio_file_path"],
              lambda a: [a.id, a.engine_used, a.voice_profile, a.duration_seconds,
                         a.audio_file_path]),
    "shorts": (["id", "clip_id", "status", "youtube_video_id", "uploaded_at (UTC)", "title"],
               lambda s: [s.id, s.clip_id, s.status, s.youtube_video_id, s.uploaded_at, s.title]),
    "reviews": (["id", "message_id", "state", "sent_at (UTC)", "responded_at (UTC)", "reviewer",
                 "response_detail"],
                lambda r: [r.id, r.message_id, review_state(r), r.sent_at, r.responded_at,
                           r.reviewer, first_line(r.response_detail)]),
    "errors": (["id", "occurred_at (UTC)", "module", "error_type", "error_message", "resolved"],
               lambda e: [e.id, e.occurred_at, e.module, e.error_type, first_line(e.error_message),
                          e.resolved]),
}


def run_page(run: Any, parts: Dict[str, Sequence[Any]], timings: Dict[str, Optional[float]]) -> str:
    """`run show` as text: the run, then a table for each of `parts` (RUN_SECTIONS: clips, ...)."""
    lines = [f"run {run.id}: {run.status.value}, {shown(run.niche)}, the cycle "
             f"{cell(run.cycle_start)} to {cell(run.cycle_end)} UTC",
             aligned_pairs([
                 ["current_stage", run.current_stage], ["worker", run.worker],
                 ["retry_count", run.retry_count], ["created_at (UTC)", run.created_at],
                 ["started_at (UTC)", run.started_at], ["heartbeat_at (UTC)", run.heartbeat_at],
                 ["completed_at (UTC)", run.completed_at], ["not_before (UTC)", run.not_before],
                 ["error_message", first_line(run.error_message)],
                 ["video_file_path", run.video_file_path],
                 ["video_duration_seconds", duration(run.video_duration_seconds)],
                 ["youtube_video_id", run.youtube_video_id], ["youtube_url", run.youtube_url],
                 # as `run show --json` names them: queued, ran (the last attempt), in all
                 *[[key, duration(timings[key])] for key in timings]])]
    for name, rows in parts.items():
        headers, cells = RUN_SECTIONS[name]
        lines.append(f"\n{name}:" + (f"\n{table(headers, map(cells, rows))}" if rows else " none"))
    return "\n".join(lines)


def run_document(run: Any, parts: Dict[str, Sequence[Any]],
                 timings: Dict[str, Optional[float]]) -> Dict[str, Any]:
    """`run show --json`: the run, its timings, each of `parts` as rows (a clip with a "video")."""
    documents = {name: [as_json(row) for row in rows] for name, rows in parts.items()}
    for document, clip in zip(documents["clips"], parts["clips"]):
        document["video"] = as_json(clip.discovered_video)
    return {"run": as_json(run), "timings": timings, **documents}


def run_timings(run: Any) -> Dict[str, Optional[float]]:
    """How long a run waited in the queue, ran (its last attempt) and took in all, in seconds."""
    return {"queued_seconds": elapsed_seconds(run.created_at, run.started_at),
            "running_seconds": elapsed_seconds(run.started_at, run.completed_at),
            "total_seconds": elapsed_seconds(run.created_at, run.completed_at)}


def compacted(done: Dict[str, Any], remaining: int) -> str:
    """What `compact` says it did: Analytics.compact()'s summary `done`, the snapshots left."""
    return (f"removed {plural(done['deleted'], 'snapshot')} older than {done['cutoff']:%Y-%m-%d} "
            "00:00 UTC (kept each video's first of every UTC day and its newest) in "
            f"{plural(done['batches'], 'transaction')}; {remaining:,} snapshots remain")


# What becomes of the space compact frees, without --vacuum.
POSTGRES_SPACE = ("; autovacuum makes the space reusable (VACUUM FULL analytics would shrink the "
                  "table, locking it)")
SQLITE_SPACE = ("; the file keeps its size and new snapshots reuse the space: to shrink it, run "
                "compact --vacuum (VACUUM) while the workers are stopped")


def error_page(error: Any) -> str:
    """`errors show` as text: the error, then its whole message and stack trace."""
    header = aligned_pairs([["module", error.module], ["error_type", error.error_type],
                            ["pipeline_run_id", error.pipeline_run_id],
                            ["occurred_at (UTC)", error.occurred_at], ["resolved", error.resolved]])
    # The message and the trace keep their lines (why this command exists), no control character.
    message = printable(redact(error.error_message), keep="\n\t")
    trace = (printable(redact(error.stack_trace), keep="\n\t") if error.stack_trace
             else "(none recorded)")
    return f"error {error.id}\n{header}\n\nmessage:\n{message}\n\nstack trace:\n{trace.rstrip()}"


def dumps(document: Any) -> str:
    """A JSON document as a command prints it: indented, non-ASCII characters as they are."""
    return json.dumps(document, indent=2, ensure_ascii=False)


def elapsed_seconds(start: Optional[datetime.datetime],
                    end: Optional[datetime.datetime]) -> Optional[float]:
    """Seconds from `start` to `end`, to the millisecond; None unless both are known."""
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


def duration(seconds: Optional[float]) -> Optional[str]:
    """Seconds for people: '12.5 s', '3.0 min' or '2.5 h'; None stays None."""
    if seconds is None:
        return None
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def say(line: str) -> None:
    """Print `line` on stderr if stderr is still there: failing to report must not raise again."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def silence(stream: Any) -> None:
    """After `stream`'s reader went away: send what is left to /dev/null: no later flush fails."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # not a file (a test's capture): no flush
        pass


class LinePrinter:
    """Prints lines to sys.stdout or sys.stderr until its reader goes away (`| head`), then no more.

    The demo must not stop half-way: a closed pipe is remembered, not raised. A one-line message
    is wrapped at the output width, a table (several lines) printed as it is."""

    def __init__(self, stream: str) -> None:
        self.stream, self.closed = stream, False

    def __call__(self, line: str) -> None:
        if self.closed:
            return
        try:
            print(line if "\n" in line else wrapped(line), file=getattr(sys, self.stream),
                  flush=True)
        except BrokenPipeError:
            self.closed = True
            # What stays in the buffer would fail the stream's next flush, which starting a worker
            # process makes: send it to /dev/null instead.
            silence(getattr(sys, self.stream))


def utf8_output() -> None:
    """Write stdout and stderr in UTF-8 whatever the locale; what it cannot write is escaped."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:  # None, or not a text file (a StringIO): nothing to set
            continue
        try:
            if codecs.lookup(stream.encoding).name == "utf-8":
                reconfigure(errors="backslashreplace")  # a lone surrogate is all UTF-8 cannot write
            else:
                reconfigure(encoding="utf-8", errors="backslashreplace")
        except (LookupError, TypeError, ValueError, OSError):  # a stream that cannot change stays
            pass


# --- the bot's documents (pipeline_models.bot) as text: status, stats, queue, digest, summary ----

def _when(text: Optional[str]) -> Optional[datetime.datetime]:
    """A bot document's ISO 8601 timestamp as a datetime (cell() shows it in UTC), or None."""
    return None if text is None else datetime.datetime.fromisoformat(text)


def _per_niche(counted: Dict[str, Any]) -> str:
    """{"total": 3, "niches": {"gaming": 2, ...}} as "3 (gaming 2, sports 1)"."""
    niches = ", ".join(f"{shown(niche)} {count:,}" for niche, count in counted["niches"].items())
    return f"{counted['total']:,}" + (f" ({niches})" if niches else "")


def status_page(document: Dict[str, Any]) -> str:
    """`status` as text: a row per niche (runs by status, the next run), those running, the cap."""
    niches = document["niches"]
    rows = []
    for niche, entry in niches.items():
        upcoming = entry["next"] or {}
        due = upcoming and ("yes" if upcoming["due"]
                            else f"after {cell(_when(upcoming['not_before']))}")
        rows.append([niche, entry["paused"], *entry["runs"].values(), upcoming.get("id"),
                     _when(upcoming.get("cycle_start")), due or None])
    statuses = list(next(iter(niches.values()))["runs"]) if niches else []
    headers = ["niche", "paused", *statuses, "next run", "next cycle_start (UTC)", "due"]
    lines = [table(headers, rows) if rows else "no niches yet: no runs, videos or paused channels"]
    running = [(niche, run) for niche, entry in niches.items() for run in entry["running"]]
    if running:
        lines.append("\nrunning:\n" + table(
            ["id", "niche", "cycle_start (UTC)", "current_stage", "worker", "heartbeat age"],
            [[run["id"], niche, _when(run["cycle_start"]), run["stage"], run["worker"],
              None if run["heartbeat_age_seconds"] is None
              else f"{duration(run['heartbeat_age_seconds'])} ago"]
             for niche, run in running]))
    if rows:  # /status counts only the runs finished lately: say so, or a year's uploads seem lost
        lines.append("\nuploaded, failed and rejected: the runs finished in the last 7 days "
                     f"(since {cell(_when(document['finished_since']))} UTC)")
    paused = ", ".join(map(shown, document["paused"])) or "none"
    lines.append(f"\n{document['running']:,} of at most {document['max_concurrent_pipelines']:,} "
                 f"runs running; paused: {paused}")
    return "\n".join(lines)


def stats_page(document: Dict[str, Any]) -> str:
    """`stats` as text: a row per niche of uploads, their views and errors since the time given."""
    rows = [[niche, entry["uploads"]["long-form"], entry["uploads"]["shorts"],
             entry["views"]["long-form"], entry["views"]["shorts"], entry["errors"]]
            for niche, entry in document["niches"].items()]
    head = f"since {cell(_when(document['since']))} UTC"
    if not rows:
        return head + ": no runs or errors"
    headers = ["niche", "long-form", "shorts", "long-form views", "shorts views", "errors"]
    return head + "\n" + table(headers, rows)


def queue_page(document: Dict[str, Any]) -> str:
    """`queue` as text: reviews awaiting an answer and held ones, oldest first, with their ages."""
    reviews = document["reviews"]
    if not reviews:
        return "nothing awaits review"
    rows = [[r["review_id"], r["run_id"], r["niche"], _when(r["cycle_start"]), _when(r["sent_at"]),
             duration(r["age_seconds"]),
             ("auto-held" if r["auto_held"] else "held") if r["held"] else "open",
             _when(r["reminded_at"])] for r in reviews]
    return (table(["id", "pipeline_run_id", "niche", "cycle_start (UTC)", "sent_at (UTC)",
                   "waiting", "state", "reminded_at (UTC)"], rows)
            + f"\n\n{document['awaiting']:,} awaiting an answer, {document['held']:,} held")


def digest_page(document: Dict[str, Any]) -> str:
    """`digest` as text: what the period brought, one line each."""
    top = document["top_video"]
    pending = document["pending_review"]
    return "\n".join([
        f"digest {cell(_when(document['since']))} to {cell(_when(document['until']))} UTC",
        f"runs uploaded: {_per_niche(document['runs_uploaded'])}",
        f"runs failed: {_per_niche(document['runs_failed'])}",
        f"long-form videos uploaded: {_per_niche(document['videos_uploaded']['long-form'])}",
        f"shorts uploaded: {_per_niche(document['videos_uploaded']['shorts'])}",
        f"pending review: {pending['awaiting']:,} awaiting an answer, {pending['held']:,} held",
        "top video: none with views" if top is None else
        f"top video: {shown(top['youtube_video_id'])} ({top['kind']}, {shown(top['niche'])}, "
        f"run {top['run_id']}): {top['views']:,} views"])


def summary_page(document: Dict[str, Any]) -> str:
    """`review summary` as text: what the review message shows."""
    size = document["video_file_size_bytes"]
    start, end = (cell(_when(document[key])) for key in ("cycle_start", "cycle_end"))
    lines = [f"run {document['run_id']} ({shown(document['niche'])}, {document['status']}): the "
             f"cycle {start} to {end} UTC",
             f"video: {duration(document['video_duration_seconds']) or 'not rendered'}, "
             f"{'size unknown' if size is None else f'{size / 1e6:,.1f} MB'}"]
    keys = ["rank", "video_id", "title", "creator", "seconds", "start_seconds", "end_seconds"]
    clips = [[c[key] for key in keys] for c in document["clips"]]
    lines.append("clips: none" if not clips else "clips:\n" + table(
        ["rank_position", "video_id", "title", "channel_name", "clip_duration_seconds",
         "start_time_seconds", "end_time_seconds"], clips))
    flags = [f"rank {f['rank']} {f['of']} {shown(f['video_id'])} {f['risk']}"
             for f in document["content_id_flags"]]
    lines.append("content-ID flags: " + ("; ".join(flags) or "none"))
    preview = document["script_preview"]
    lines.append("script: none yet" if preview is None else f"script: {one_line(preview)}")
    return "\n".join(lines)


def errors_table(rows: Sequence[Dict[str, Any]], empty: str) -> str:
    """`errors` as text: bot.errors() rows, one line each (`empty` if none)."""
    if not rows:
        return empty
    return table(["id", "occurred_at (UTC)", "module", "error_type", "error_message",
                  "pipeline_run_id", "niche", "resolved"],
                 [[e["id"], _when(e["occurred_at"]), e["module"], e["error_type"],
                   first_line(e["error_message"]), e["pipeline_run_id"], e["niche"], e["resolved"]]
                  for e in rows])


def paused_page(niche: str, pausing: bool, known: bool) -> str:
    """What `pause NICHE` / `resume NICHE` say after a change (`known`: a run or video has it)."""
    resumed = f"{shown(niche)} resumed: its runs are claimed again"
    said = (f"{shown(niche)} paused: its runs are not claimed until `resume {shown(niche)}`; "
            "running ones finish" if pausing else resumed)
    return said + ("" if known else f"; no run or video has the niche {shown(niche)} yet")
