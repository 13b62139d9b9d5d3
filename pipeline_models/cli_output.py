"""What the command line prints: aligned tables, JSON documents, and text made safe for a terminal.

Also the streams it prints to: UTF-8 whatever the locale, and a reader that goes away (`| head`) is not an error.
Nothing here reads the database; every value shown passes through redact(), so no password is printed.
"""
import codecs
import datetime
import enum
import json
import os
import sys
from typing import Any, Dict, Iterable, Optional, Sequence

import peewee

from .db import redact
from .errors import plural  # the CLI and the demo take it from here too
from .fields import UTC


def shortened(text: str, limit: int = 40) -> str:
    """`text`, cut to `limit` characters with an ellipsis: a value quoted in a message."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def one_line(text: object) -> str:
    """A message (an error's, which may span lines) on one line of printable characters, passwords redacted."""
    return printable(" ".join(redact(text).split()))


def shown(value: object) -> str:
    """A value as every command shows it, in a table or a message: passwords redacted, control characters escaped."""
    # Line breaks too: a worker named "w\r\nx" shows as w\r\nx, not cut short (only first_line() cuts, and says so).
    return printable(redact(value))


def shown_json(value: Any) -> str:
    """A value as JSON, its text redacted string by string (redacting the JSON text could eat a quote)."""
    return json.dumps(json_value(value), ensure_ascii=False)


def review_state(review: Any) -> str:
    """A review's state as the listings show it: open, held (auto-held when nobody answered in time), or its answer."""
    if review.action is None:
        return "open"
    if review.action.value == "hold":  # still open: a held review may be answered again
        return "auto-held" if review.auto_held else "held"
    return review.action.value


def first_line(text: Optional[str]) -> Optional[str]:
    """A message as a table shows it: its first line, and " …" when more follow (the show commands have them all)."""
    if text is None:
        return None
    lines = str(text).splitlines() or [""]
    return lines[0] + (" …" if len(lines) > 1 else "")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows under headers in aligned columns; numbers right-aligned, None shown as '-'."""
    rows = [[("-" if v is None else v) for v in row] for row in rows]
    cells = [list(map(str, headers))] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [any(_number(row[i]) for row in rows) and all(_number(row[i]) or row[i] == "-" for row in rows)
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
    return "\n".join(f"{indent}{name:<{width}}  {cell('-' if value is None else value)}" for name, value in pairs)


def cell(value: Any) -> str:
    """A value as one table cell: numbers grouped, times in UTC, one line of at most 60 characters."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, enum.Enum):  # before int: a Processed (an IntEnum) shows its name, used, not 1
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
    """`text` with control characters (but those in `keep`) escaped as \\x1b: data must not move a terminal's cursor."""
    return "".join(ch if ch.isprintable() or ch in keep else ascii(ch)[1:-1] for ch in text)


def terminal_safe(text: str) -> str:
    """`text` with every character that is not printable escaped, but newlines and tabs: what a command prints.

    Data (a title, an error message, a config key) must not move the cursor, retitle the terminal or
    reverse the text. The commands show data through shown() (or JSON), so this is the safety net of a
    JSON document: its escapes are JSON's (\\u001b), so a --json document stays valid JSON.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in "\n\t" else json.dumps(ch)[1:-1] for ch in text)


def json_value(value: Any) -> Any:
    """A column's value as JSON: timestamps ISO 8601 in UTC, enums by value, text with passwords redacted."""
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
    """A row as a JSON object keyed by its column names (a foreign key as `<name>_id`), in schema order."""
    document = {f.column_name: json_value(row.__data__.get(f.name)) for f in row._meta.sorted_fields}
    document.update({k: json_value(v) for k, v in extra.items()})
    return document


def listing(args: Any, headers: Sequence[str], rows: Sequence[peewee.Model], cells: Any) -> str:
    """A listing: a table of `cells(row)` under `headers`, or with `args.json` every row's columns."""
    if args.json:
        return dumps([as_json(row) for row in rows])
    return table(headers, [cells(row) for row in rows])


def answered(review: Any, run: Any, said: str, recorded: bool) -> str:
    """What `review answer` says: the answer `said` and where it left the run."""
    state = "in review" if run.status.value == "review" else run.status.value
    if not recorded:
        return f"review {review.id} was already answered {said}: nothing changed (run {run.id} is {state})"
    if run.status.value == "review":  # held: the review may be answered again
        return f"review {review.id} answered {said}: run {run.id} stays in review, to be answered again"
    stage = f" at stage {shown(run.current_stage)}" if run.status.value == "pending" else ""
    return f"review {review.id} answered {said}: run {run.id} is now {state}{stage}"


RUN_SECTIONS = {  # run show's tables: (headers, the cells of a row); a clip's video is read with it
    "clips": (["rank", "id", "video_id", "title", "channel_name", "start s", "seconds", "risk", "dropped (UTC)"],
              lambda c: [c.rank_position, c.id, c.discovered_video.video_id, c.discovered_video.title,
                         c.discovered_video.channel_name, c.start_time_seconds, c.clip_duration_seconds,
                         c.content_id_risk, c.dropped_at]),
    "scripts": (["id", "llm", "chars", "est. s", "tokens in", "tokens out", "cost usd", "title"],
                lambda s: [s.id, s.llm_model_used, s.total_char_count, s.estimated_duration_seconds,
                           s.prompt_tokens, s.completion_tokens, s.cost_usd, s.title]),
    "audio": (["id", "engine", "voice", "seconds", "file"],
              lambda a: [a.id, a.engine_used, a.voice_profile, a.duration_seconds, a.audio_file_path]),
    "shorts": (["id", "clip", "status", "youtube_video_id", "uploaded (UTC)", "title"],
               lambda s: [s.id, s.clip_id, s.status, s.youtube_video_id, s.uploaded_at, s.title]),
    "reviews": (["id", "message_id", "state", "sent (UTC)", "answered (UTC)", "reviewer", "detail"],
                lambda r: [r.id, r.message_id, review_state(r), r.sent_at, r.responded_at, r.reviewer,
                           first_line(r.response_detail)]),
    "errors": (["id", "occurred (UTC)", "module", "error_type", "error_message", "resolved"],
               lambda e: [e.id, e.occurred_at, e.module, e.error_type, first_line(e.error_message), e.resolved]),
}


def run_page(run: Any, parts: Dict[str, Sequence[Any]], timings: Dict[str, Optional[float]]) -> str:
    """`run show` as text: the run, then a table for each of `parts` (its clips, scripts, ...: RUN_SECTIONS)."""
    lines = [f"run {run.id}: {run.status.value}, {shown(run.niche)}, the cycle {cell(run.cycle_start)} to "
             f"{cell(run.cycle_end)} UTC",
             aligned_pairs([
                 ["stage", run.current_stage], ["worker", run.worker], ["retry_count", run.retry_count],
                 ["queued", run.created_at], ["started", run.started_at], ["heartbeat", run.heartbeat_at],
                 ["completed", run.completed_at], ["retry not before", run.not_before],
                 ["error_message", first_line(run.error_message)], ["video file", run.video_file_path],
                 ["video length", duration(run.video_duration_seconds)],
                 ["youtube_video_id", run.youtube_video_id], ["youtube_url", run.youtube_url],
                 ["waited in queue", duration(timings["queued_seconds"])],
                 ["ran (last attempt)", duration(timings["running_seconds"])],
                 ["in all", duration(timings["total_seconds"])]])]
    for name, rows in parts.items():
        headers, cells = RUN_SECTIONS[name]
        lines.append(f"\n{name}: none" if not rows else f"\n{name}:\n" + table(headers, map(cells, rows)))
    return "\n".join(lines)


def run_document(run: Any, parts: Dict[str, Sequence[Any]], timings: Dict[str, Optional[float]]) -> Dict[str, Any]:
    """`run show --json`: the run, its timings, and each of `parts` as rows; each clip with its source "video"."""
    documents = {name: [as_json(row) for row in rows] for name, rows in parts.items()}
    for document, clip in zip(documents["clips"], parts["clips"]):
        document["video"] = as_json(clip.discovered_video)
    return {"run": as_json(run), "timings": timings, **documents}


def run_timings(run: Any) -> Dict[str, Optional[float]]:
    """How long a run waited in the queue, ran (its last attempt) and took in all, in seconds (None if not yet)."""
    return {"queued_seconds": elapsed_seconds(run.created_at, run.started_at),
            "running_seconds": elapsed_seconds(run.started_at, run.completed_at),
            "total_seconds": elapsed_seconds(run.created_at, run.completed_at)}


def compacted(done: Dict[str, Any], remaining: int) -> str:
    """What `compact` says it did (Analytics.compact()'s summary `done`, and the snapshots `remaining`)."""
    return (f"removed {plural(done['deleted'], 'snapshot')} older than {done['cutoff']:%Y-%m-%d} 00:00 UTC "
            f"(kept each video's first of every UTC day and its newest) in {plural(done['batches'], 'transaction')}; "
            f"{remaining:,} snapshots remain")


# What becomes of the space compact frees, without --vacuum.
POSTGRES_SPACE = "; autovacuum makes the space reusable (VACUUM FULL analytics would shrink the table, locking it)"
SQLITE_SPACE = ("; the file keeps its size and new snapshots reuse the space: to shrink it, run compact --vacuum "
                "(VACUUM) while the workers are stopped")


def error_page(error: Any) -> str:
    """`errors show` as text: the error, then its whole message and stack trace."""
    header = aligned_pairs([["module", error.module], ["type", error.error_type], ["run", error.pipeline_run_id],
                            ["occurred (UTC)", error.occurred_at], ["resolved", error.resolved]])
    # The message and the trace keep their lines (that is why this command exists), never a control character.
    message = printable(redact(error.error_message), keep="\n\t")
    trace = printable(redact(error.stack_trace), keep="\n\t") if error.stack_trace else "(none recorded)"
    return f"error {error.id}\n{header}\n\nmessage:\n{message}\n\nstack trace:\n{trace.rstrip()}"


def dumps(document: Any) -> str:
    """A JSON document as a command prints it: indented, non-ASCII characters as they are."""
    return json.dumps(document, indent=2, ensure_ascii=False)


def elapsed_seconds(start: Optional[datetime.datetime], end: Optional[datetime.datetime]) -> Optional[float]:
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
    """Print `line` on stderr if stderr is still there: failing to report must not raise a second error."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def silence(stream: Any) -> None:
    """After the reader of `stream` went away: send what is left to /dev/null, so a later flush does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture): nothing will flush it
        pass


class LinePrinter:
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
            # What stays in the buffer would fail the next flush of the stream, which starting a worker
            # process makes: send it to /dev/null instead.
            silence(getattr(sys, self.stream))


def utf8_output() -> None:
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


# --- the bot's documents (pipeline_models.bot) as text: status, stats, queue, digest, review summary -------

def _when(text: Optional[str]) -> Optional[datetime.datetime]:
    """A bot document's ISO 8601 timestamp as a datetime (cell() shows it in UTC); None stays None."""
    return None if text is None else datetime.datetime.fromisoformat(text)


def _per_niche(counted: Dict[str, Any]) -> str:
    """{"total": 3, "niches": {"gaming": 2, ...}} as "3 (gaming 2, sports 1)"."""
    niches = ", ".join(f"{shown(niche)} {count:,}" for niche, count in counted["niches"].items())
    return f"{counted['total']:,}" + (f" ({niches})" if niches else "")


def status_page(document: Dict[str, Any]) -> str:
    """`status` as text: a row per niche (runs by status, the next run), the running runs, the cap."""
    niches = document["niches"]
    rows = []
    for niche, entry in niches.items():
        upcoming = entry["next"] or {}
        due = upcoming and ("yes" if upcoming["due"] else f"after {cell(_when(upcoming['not_before']))}")
        rows.append([niche, entry["paused"], *entry["runs"].values(), upcoming.get("id"),
                     _when(upcoming.get("cycle_start")), due or None])
    statuses = list(next(iter(niches.values()))["runs"]) if niches else []
    lines = [table(["niche", "paused", *statuses, "next run", "next cycle (UTC)", "due"], rows) if rows
             else "no niches yet: no runs, videos or paused channels"]
    running = [(niche, run) for niche, entry in niches.items() for run in entry["running"]]
    if running:
        lines.append("\nrunning:\n" + table(
            ["run", "niche", "cycle (UTC)", "stage", "worker", "heartbeat"],
            [[run["id"], niche, _when(run["cycle_start"]), run["stage"], run["worker"],
              None if run["heartbeat_age_seconds"] is None else f"{duration(run['heartbeat_age_seconds'])} ago"]
             for niche, run in running]))
    if rows:  # /status counts only the runs finished lately: say so, or a year's uploads seem lost
        lines.append(f"\nuploaded, failed and rejected: the runs finished in the last 7 days (since "
                     f"{cell(_when(document['finished_since']))} UTC)")
    paused = ", ".join(map(shown, document["paused"])) or "none"
    lines.append(f"\n{document['running']:,} of at most {document['max_concurrent_pipelines']:,} runs running; "
                 f"paused: {paused}")
    return "\n".join(lines)


def stats_page(document: Dict[str, Any]) -> str:
    """`stats` as text: a row per niche of uploads, their views and errors since the time given."""
    rows = [[niche, entry["uploads"]["long-form"], entry["uploads"]["shorts"], entry["views"]["long-form"],
             entry["views"]["shorts"], entry["errors"]] for niche, entry in document["niches"].items()]
    head = f"since {cell(_when(document['since']))} UTC"
    if not rows:
        return head + ": no runs or errors"
    return head + "\n" + table(["niche", "long-form", "shorts", "long-form views", "shorts views", "errors"], rows)


def queue_page(document: Dict[str, Any]) -> str:
    """`queue` as text: the reviews awaiting an answer and the held ones, oldest first, with their ages."""
    reviews = document["reviews"]
    if not reviews:
        return "nothing awaits review"
    rows = [[r["review_id"], r["run_id"], r["niche"], _when(r["cycle_start"]), _when(r["sent_at"]),
             duration(r["age_seconds"]), ("auto-held" if r["auto_held"] else "held") if r["held"] else "awaiting",
             _when(r["reminded_at"])] for r in reviews]
    return (table(["review", "run", "niche", "cycle (UTC)", "sent (UTC)", "waiting", "state", "reminded (UTC)"], rows)
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
        f"top video: {shown(top['youtube_video_id'])} ({top['kind']}, {shown(top['niche'])}, run {top['run_id']}): "
        f"{top['views']:,} views"])


def summary_page(document: Dict[str, Any]) -> str:
    """`review summary` as text: what the review message shows."""
    size = document["video_file_size_bytes"]
    lines = [f"run {document['run_id']} ({shown(document['niche'])}, {document['status']}): the cycle "
             f"{cell(_when(document['cycle_start']))} to {cell(_when(document['cycle_end']))} UTC",
             f"video: {duration(document['video_duration_seconds']) or 'not rendered'}, "
             f"{'size unknown' if size is None else f'{size / 1e6:,.1f} MB'}"]
    clips = [[c["rank"], c["video_id"], c["title"], c["creator"], c["seconds"], c["start_seconds"], c["end_seconds"]]
             for c in document["clips"]]
    lines.append("clips: none" if not clips else "clips:\n" + table(
        ["rank", "video_id", "title", "creator", "seconds", "from s", "to s"], clips))
    flags = [f"rank {f['rank']} {f['of']} {shown(f['video_id'])} {f['risk']}" for f in document["content_id_flags"]]
    lines.append("content-ID flags: " + ("; ".join(flags) or "none"))
    preview = document["script_preview"]
    lines.append("script: none yet" if preview is None else f"script: {one_line(preview)}")
    return "\n".join(lines)


def errors_table(rows: Sequence[Dict[str, Any]]) -> str:
    """`errors` as text: bot.errors() rows, one line each."""
    return table(["id", "occurred_at (UTC)", "module", "error_type", "error_message", "pipeline_run_id", "niche",
                  "resolved"], [[e["id"], _when(e["occurred_at"]), e["module"], e["error_type"],
                                 first_line(e["error_message"]), e["pipeline_run_id"], e["niche"], e["resolved"]]
                                for e in rows])


def paused_page(niche: str, pausing: bool, known: bool) -> str:
    """What `pause NICHE` / `resume NICHE` say when they changed it; `known`: a run or video has the niche."""
    said = (f"{shown(niche)} paused: its runs are not claimed until `resume {shown(niche)}`; running ones finish"
            if pausing else f"{shown(niche)} resumed: its runs are claimed again")
    return said + ("" if known else f"; no run or video has the niche {shown(niche)} yet")
