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
    """A review's state as the listings show it: its answer, else open (auto-held or not)."""
    if review.action is not None:
        return review.action.value
    return "open, auto-held" if review.auto_held else "open"


def first_line(text: Optional[str]) -> Optional[str]:
    """A message as a table shows it: its first line, and " …" when more follow (the show commands have them all)."""
    if text is None:
        return None
    lines = str(text).splitlines() or [""]
    return lines[0] + (" …" if len(lines) > 1 else "")


def plural(n: int, word: str) -> str:
    """`n` and `word`, with an s unless n is 1: "1 video", "12 videos"."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows under headers in aligned columns; numbers right-aligned, None shown as '-'."""
    rows = [[("-" if v is None else v) for v in row] for row in rows]
    cells = [list(map(str, headers))] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [any(isinstance(row[i], (int, float)) for row in rows)
               and all(isinstance(row[i], (int, float)) or row[i] == "-" for row in rows)
               for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def aligned_pairs(pairs: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    """Name-value lines, the values aligned: the head of a show command."""
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{indent}{name:<{width}}  {cell('-' if value is None else value)}" for name, value in pairs)


def cell(value: Any) -> str:
    """A value as one table cell: numbers grouped, times in UTC, one line of at most 60 characters."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, enum.Enum):
        return str(value.value)
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
