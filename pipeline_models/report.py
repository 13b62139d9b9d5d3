"""`pipeline-models report`: one self-contained HTML file about the pipeline, which opens offline.

    from pipeline_models import report
    html = report.render()                 # the bound database, now; needs the `report` extra
    summary = report.write("report.html")  # atomically; ReportSummary(path, runs, published, ...)
    numbers = report.data()                # what the page shows, as plain values (no plotly)

The page embeds plotly.js once and draws each chart from its figure JSON; it fetches nothing (no
CDN, fonts or MathJax; a Content-Security-Policy forbids any request). The key numbers are also
text; the sections are drawn by pipeline_models.report_charts. Every query is a GROUP BY or reads a
bounded set of rows, read-only, in one snapshot, on SQLite and PostgreSQL; times are UTC. A run is
one niche's compilation for one 6-hour cycle: 8-10 ranked clips of distinct videos, one long-form
video and 3-5 shorts, one review (five answers, or auto-held), uploads within a daily cap.

What each number means:

- Funnel, per niche: discovered videos, each counted at the furthest step any of its clips reached:
  used in a clip; in a reviewed run (a review was requested, or the run is in review or past it);
  approved (the run approved, by an approve answer or its status, the clip still in it: a clip a
  reviewer's skip dropped stops before); uploaded (the run's long-form video uploaded, the clip in
  it). A step counts every video at it or beyond, so the funnel never widens.
- Runs by outcome, per niche: runs by the UTC day their cycle started, by their status now:
  uploaded, rejected, failed, in review (waiting for an answer, or held), in progress (pending,
  running, approved).
- Uploads per day against the cap: the uploads the daily cap counts (UploadOnce.uploads_since),
  long-form (a run's youtube_video_id) and shorts alike, per niche, by the UTC day each began
  (upload_started_at; in flight or in doubt too), else was recorded (completed_at, uploaded_at). The
  line is the cap, youtube.max_uploads_per_day (20 unless overridden); counted over any 24 hours, no
  UTC day passes it.
- Where runs fail: runs failed for good, per niche and by the stage their worker last reported
  (current_stage, which fail() leaves where the failure happened), and by error type: that of the
  run's newest ErrorLog row; "lease expired (no heartbeat)" when requeue_stale() gave up on it (no
  ErrorLog row is written for that); "(no error logged)" when it has none. Retried attempts are not
  counted: their errors are in the ErrorLog chart while unresolved.
- Unresolved errors by module: ErrorLog rows not resolved, by module and error type.
- Review latency, per niche: responded_at - sent_at of answered reviews with an answer time (a hold
  is not an answer yet: a held review answered later, or forced, has the time of that answer);
  median (statistics.median) and p95 (nearest rank: sorted[ceil(0.95 n) - 1]). Open: not answered
  yet; held: held by a reviewer or auto-held, still to be answered; auto-held: every review
  hold_stale() held (nobody answered in time), answered later or not; force_upload: held runs
  approved by /force_upload.
- Review answers, per niche: each review by its answer now, one of: approve (a reviewer's),
  force_upload (an approve whose response_detail is 'force_upload'), reject, hold (a reviewer's,
  still held), auto_held (still held by hold_stale()), skip, redo_script.
- LLM cost per uploaded compilation: the cost_usd of every script of the uploaded runs (every
  attempt and redo_script; none counts as 0) divided by those runs; "all-in" divides the cost of
  every script, of rejected, failed and unfinished runs too. Months: the month of the upload
  (completed_at, else created_at).
- Long-form versus shorts, per niche: each video's newest snapshot (analytics_latest), matched
  through a run's youtube_video_id (long-form) or a short's (shorts): videos, views and subscribers
  gained (sums), CTR and average view duration (means of those reported); "both" is the two kinds
  together. Videos that are neither are counted as unmatched.
- Content-ID flags, per niche: clips whose own content_id_risk, or whose source video's, is medium
  or high; by each level of the clip and of the video, those a reviewer's skip dropped, and the runs
  still having one, by outcome.
- Top videos: the `top` most viewed videos by their newest snapshot (Analytics.top), long-form or
  short, with the view_count of each of their snapshots over time.
"""
import contextlib
import datetime
import html
import json
import os
import re
import tempfile
from typing import Any, Dict, NamedTuple, Optional, Tuple

from .errors import ExtraMissing
from .fields import UTC  # noqa: F401  (re-exported: importable from here, as in 0.2.0)
# The numbers are queried in queries.py (shared with the benchmark), the sections drawn in
# report_charts.py; these names keep their old home here.
from .queries import (ANSWERS, FUNNEL_STEPS, KINDS, LEASE_EXPIRED, NO_STAGE,  # noqa: F401
                      NOT_LOGGED, OUTCOMES, RISKY, percentile, report_data as data)
from .report_charts import MAX_ERROR_TYPES, OTHER, SECTIONS, Page, html_text, utc_text  # noqa: F401

__all__ = ["ReportSummary", "data", "render", "write", "percentile", "require_extra"]

_CONFIG = {"displaylogo": False, "responsive": True, "showLink": False, "showSendToCloud": False,
           "showEditInChartStudio": False}
# Nothing on the page may reach the network: inline scripts and styles only, images only as data:
# URLs (plotly draws heatmaps as one).
_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
        "font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'")


class ReportSummary(NamedTuple):
    """What write() wrote: the file, its runs and those published (long-form uploaded), its charts
    and bytes."""

    path: str
    runs: int
    published: int
    charts: int
    bytes: int


def _plotly() -> Tuple[Any, Any, Any, Any]:
    """plotly's graph_objects, offline, JSON encoder and make_subplots, or ExtraMissing naming the
    extra."""
    try:
        import plotly.graph_objects as go
        import plotly.offline as offline
        from plotly.subplots import make_subplots
        from plotly.utils import PlotlyJSONEncoder
    except ImportError:
        raise ExtraMissing("the report", "report", "plotly") from None
    return go, offline, PlotlyJSONEncoder, make_subplots


def require_extra() -> None:
    """Raise ExtraMissing, naming the extra to install, unless plotly (the `report` extra) is
    importable."""
    _plotly()


def _script_json(value: Any, encoder: Any) -> str:
    """JSON that is safe inside <script>: no <, > or & (nothing can close the tag or open a
    comment)."""
    text = json.dumps(value, cls=encoder, allow_nan=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 2em;
       color: #222; }
header { border-bottom: 1px solid #ddd; margin-bottom: 1em; } nav a { margin-right: 1em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #eee; }
h3 { font-size: 1em; }
.meta, .summary { color: #555; } .summary { font-size: 1.05em; } .chart { width: 100%; }
.totals { display: flex; flex-wrap: wrap; gap: 0.6em; margin: 0.8em 0; }
.totals b { display: block; font-size: 1.4em; }
.totals div { background: #f4f6f8; border-radius: 6px; padding: 0.5em 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def _definitions() -> str:
    """The module docstring's "What each number means" list, as HTML: written once, there."""
    if not __doc__:  # python -OO strips docstrings: the page goes without
        return ""
    items = __doc__.split("What each number means:", 1)[1].strip().split("\n- ")
    return "".join(f"<li>{html.escape(' '.join(item.lstrip('- ').split()))}</li>" for item in items)


_DRAW = """(function () {
  var figures = JSON.parse(document.getElementById("figures").textContent);
  var config = JSON.parse(document.getElementById("plotly-config").textContent);
  Object.keys(figures).forEach(function (id) {
    Plotly.newPlot(id, figures[id].data, figures[id].layout, config);
  });
})();"""


def _build(*, now: Optional[datetime.datetime] = None,
           top: int = 10) -> Tuple[str, Dict[str, Any], int]:
    """(the HTML document, the data it shows, how many charts it draws)."""
    go, offline, encoder, subplots = _plotly()
    report = data(now=now, top=top)
    page = Page(go, subplots)
    for section in SECTIONS:
        section(page, report)
    totals = report["totals"]
    tiles = [("videos discovered", totals["videos"]), ("niches", len(totals["niches"])),
             ("runs", totals["runs"]), ("uploaded runs", totals["uploaded_runs"]),
             ("uploaded shorts", totals["uploaded_shorts"]),
             ("open reviews", totals["open_reviews"]), ("held reviews", totals["held_reviews"]),
             ("unresolved errors", totals["unresolved_errors"]),
             ("analytics snapshots", totals["snapshots"])]
    tile_html = "".join(f"<div><b>{n:,}</b>{html_text(what)}</div>" for what, n in tiles)
    status = "No runs yet: the pipeline has not scheduled anything." if not totals["runs"] else ""
    nav = "".join(f'<a href="#{anchor}">{anchor.replace("-", " ")}</a>'
                  for anchor in page.anchors)
    plotly_js = offline.get_plotlyjs()
    # A JavaScript file never needs "</script" outside a string; inside one, "<\\/" means the same.
    plotly_js = re.sub(r"</(script)", r"<\\/\1", plotly_js, flags=re.IGNORECASE)
    generated = utc_text(report["generated_at"])
    paused = html_text(f" Paused (not claimed): {', '.join(totals['paused_niches'])}."
                       if totals["paused_niches"] else "")
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pipeline report, {generated} UTC</title><style>{_STYLE}</style></head>
<body><header><h1>Pipeline report</h1>
<p class="meta">{html_text(report['database'])}, generated {generated} UTC.
All times UTC.{paused}</p>
<nav>{nav}</nav></header>
<div class="totals">{tile_html}</div>
{f'<p class="summary">{status}</p>' if status else ''}
<noscript><p>The charts need JavaScript; every number is also given as text.</p></noscript>
{chr(10).join(page.sections)}
<footer><details><summary>How these numbers are counted</summary><ul>{_definitions()}</ul></details>
<p class="meta">Made by pipeline_models.report, whose docstring holds these definitions.
Charts by plotly.js, embedded in this file: it opens offline and fetches nothing.</p></footer>
<script>{plotly_js}</script>
<script id="figures" type="application/json">{_script_json(page.figures, encoder)}</script>
<script id="plotly-config" type="application/json">{_script_json(_CONFIG, encoder)}</script>
<script>{_DRAW}</script>
</body></html>
"""
    return document, report, len(page.figures)


def render(*, now: Optional[datetime.datetime] = None, top: int = 10) -> str:
    """The whole report as one self-contained HTML document, for the bound database (read-only)."""
    return _build(now=now, top=top)[0]


def write(path: str, **kwargs: Any) -> ReportSummary:
    """Render the report (render()'s keywords) and write it to `path` atomically: the whole file
    or none."""
    document, report, charts = _build(**kwargs)
    encoded = document.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".report-", suffix=".html.tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(encoded)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0o022)  # reading the umask means setting it: set it straight back
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a report is an ordinary one
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    totals = report["totals"]
    return ReportSummary(path, totals["runs"], totals["uploaded_runs"], charts, len(encoded))

