"""`pipeline-models report`: one self-contained HTML file about the pipeline, which opens offline.

    from pipeline_models import report
    html = report.render()                  # the bound database, now; needs the `report` extra (plotly)
    summary = report.write("report.html")   # written atomically; ReportSummary(path, runs, published, ...)
    numbers = report.data()                 # what the page shows, as plain values (no plotly needed)

The page embeds plotly.js once and draws each chart from its figure JSON; it fetches nothing when it is
viewed (no CDN, fonts or MathJax, and a Content-Security-Policy that forbids any network request). The key
numbers are also plain text, so the page is useful without JavaScript. Every query is an aggregate in SQL
(GROUP BY) or reads a bounded set of rows through an index, read-only, in one transaction (a consistent
snapshot); it works on SQLite and PostgreSQL. Times are UTC.

What each number means:

- Funnel: source videos, each counted at the furthest step any of its runs reached: discovered, selected
  (has a run), produced a short, sent to review, approved (an approve or edit answer), published. A step
  counts every video at it or beyond, so the funnel never widens.
- Runs per day: runs by the UTC day they were queued (created_at), coloured by their status now:
  published, rejected, failed, or in progress (pending, running, awaiting review, approved).
- Where runs fail: runs failed for good (status failed), by the stage their worker last reported
  (current_stage, which fail() leaves where the failure happened) and error type: the error_type of the
  run's newest ErrorLog row (what ErrorLog.record/capture stored); "lease expired (no heartbeat)" when the
  run gave up because requeue_stale() found no heartbeat (its last_error says so, and no ErrorLog row is
  written for that); "(no error logged)" when the run has no ErrorLog row. Attempts that failed and were
  retried are not counted: their errors are in the ErrorLog chart while unresolved.
- Unresolved errors by module: ErrorLog rows not resolved, by module and error type.
- Review latency: responded_at - sent_at of answered reviews (late answers to auto-held ones included).
  Median: statistics.median (the middle value, or the mean of the two middle ones). p95: nearest rank,
  the smallest latency that at least 95 % of the latencies are at or below (sorted[ceil(0.95 n) - 1]).
  Auto-held: reviews marked auto_held, whether still open or answered late. Weekly figures use the UTC
  week (from Monday) in which the review was sent.
- LLM cost per published short: the cost_usd of every script of the published runs (all their attempts;
  a script without a cost counts as 0) divided by the uploaded shorts of those runs. "All-in" divides the
  cost of every script (of rejected, failed and unfinished runs too) by the same shorts. Monthly figures
  use the month the run was published (finished_at, else created_at).
- Top shorts: the `top` videos with the most views in their newest analytics snapshot (Analytics.top),
  and the view_count of each of their snapshots over time.
"""
import contextlib
import datetime
import html
import json
import os
import re
import tempfile
from collections import Counter
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

from .errors import ExtraMissing
from .fields import UTC
# The numbers are queried in queries.py (shared with the benchmark); these names keep their old home here.
from .queries import (FUNNEL_STEPS, LEASE_EXPIRED, NO_STAGE, NOT_LOGGED, OUTCOMES,  # noqa: F401  (re-exported)
                      percentile, report_data as data)

__all__ = ["ReportSummary", "data", "render", "write", "percentile", "require_extra"]

# Beyond this many error types a chart folds the rarest into "other": a legend of hundreds helps nobody.
MAX_ERROR_TYPES = 10
OTHER = "other"

_CONFIG = {"displaylogo": False, "responsive": True, "showLink": False, "showSendToCloud": False,
           "showEditInChartStudio": False}
# Nothing on the page may reach the network: inline scripts and styles only, images only as data: URLs
# (plotly draws heatmaps as one).
_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
        "font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'")


class ReportSummary(NamedTuple):
    """What write() wrote: the file, the runs and published runs it covers, its charts and size in bytes."""

    path: str
    runs: int
    published: int
    charts: int
    bytes: int


def _plotly() -> Tuple[Any, Any, Any]:
    """plotly's graph_objects, offline and JSON encoder modules, or ExtraMissing naming the extra."""
    try:
        import plotly.graph_objects as go
        import plotly.offline as offline
        from plotly.utils import PlotlyJSONEncoder
    except ImportError:
        raise ExtraMissing("the report", "report", "plotly") from None
    return go, offline, PlotlyJSONEncoder


def require_extra() -> None:
    """Raise ExtraMissing, naming the extra to install, unless plotly (the `report` extra) is importable."""
    _plotly()


def _e(value: Any) -> str:
    """Text for HTML: every database string goes through here."""
    return html.escape(str(value), quote=True)


def _label_text(value: Any) -> str:
    """A database string as plotly text: plotly reads a few HTML tags and $...$ (LaTeX) in labels; this
    shows them as typed instead (plotly turns the entities back into characters)."""
    return html.escape(str(value), quote=False).replace("$", "&#36;")


def _script_json(value: Any, encoder: Any) -> str:
    """JSON that is safe inside <script>: no <, > or & (nothing can close the tag or open a comment)."""
    text = json.dumps(value, cls=encoder, allow_nan=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def _money(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.0f} s"


def _count(value: Optional[int]) -> str:
    return "-" if value is None else f"{value:,}"


def _stamp(when: datetime.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _fold(counts: Dict[Tuple[str, str], int], keep: int) -> Tuple[List[str], List[str], Dict[Tuple[str, str], int]]:
    """(rows, columns, counts), most frequent first, with all but the `keep` most frequent columns folded
    into "other"."""
    by_column: Counter = Counter()
    for (_, column), count in counts.items():
        by_column[column] += count
    ranked = [column for column, _ in sorted(by_column.items(), key=lambda item: (-item[1], item[0]))]
    kept = set(ranked[:keep])
    folded: Counter = Counter()
    for (row, column), count in counts.items():
        folded[(row, column if column in kept else OTHER)] += count
    columns = [c for c in ranked if c in kept] + ([OTHER] if len(kept) < len(ranked) else [])
    by_row: Counter = Counter()
    for (row, _), count in folded.items():
        by_row[row] += count
    rows = [row for row, _ in sorted(by_row.items(), key=lambda item: (-item[1], item[0]))]
    return rows, columns, dict(folded)


class _Page:
    """The sections and figures of one report, assembled into the HTML document."""

    def __init__(self, go: Any) -> None:
        self.go = go
        self.sections: List[str] = []
        self.figures: Dict[str, Any] = {}

    def chart(self, name: str, figure: Any, height: int = 380) -> str:
        """A chart's div; its figure is drawn from the page's figure JSON."""
        figure.update_layout(template="plotly_white", height=height, margin=dict(l=60, r=20, t=30, b=50),
                             font=dict(family="system-ui, sans-serif", size=12),
                             legend=dict(orientation="h", y=-0.2))
        chart_id = f"chart-{name}"
        self.figures[chart_id] = figure.to_plotly_json()
        return f'<div id="{chart_id}" class="chart" style="height:{height}px"></div>'

    def section(self, anchor: str, heading: str, summary: str, body: str = "") -> None:
        self.sections.append(f'<section id="{anchor}"><h2>{_e(heading)}</h2>\n<p class="summary">{summary}</p>\n'
                             f"{body}</section>")


def _table(headers: Iterable[str], rows: Iterable[Iterable[Any]], numeric: Iterable[int] = ()) -> str:
    right = set(numeric)
    head = "".join(f'<th{" class=num" if i in right else ""}>{_e(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in right else ""}>{_e(v)}</td>' for i, v in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _funnel_section(page: _Page, report: Dict[str, Any]) -> None:
    steps = report["funnel"]
    if not steps:
        page.section("funnel", "Funnel", "No videos discovered yet.")
        return
    go = page.go
    first, last = steps[0][1], steps[-1][1]
    share = f" ({last / first:.1%} of them)" if first else ""
    figure = go.Figure(go.Funnel(y=[step for step, _ in steps], x=[n for _, n in steps],
                                 textinfo="value+percent initial", marker=dict(color="#4c78a8")))
    figure.update_yaxes(type="category")
    summary = f"{first:,} videos discovered, {last:,} published{share}; each video counted at the furthest step it reached."
    page.section("funnel", "Funnel: from discovered to published", _e(summary),
                 page.chart("funnel", figure, 340) + _table(["step", "videos"], steps, numeric=[1]))


_OUTCOME_COLOURS = {"published": "#54a24b", "rejected": "#eeca3b", "failed": "#e45756", "in progress": "#9d9d9d"}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


_DAY_MS = 86_400_000


def _period_axis(first: str, last: str, days: int, title: str) -> Dict[str, Any]:
    """A date axis showing whole periods of `days` from the day `first` to the period starting on `last`
    (without it, plotly zooms a single period in to milliseconds)."""
    start = datetime.date.fromisoformat(first) - datetime.timedelta(days=days * 0.25)
    end = datetime.date.fromisoformat(last) + datetime.timedelta(days=days * 1.25)
    return dict(type="date", title=title, range=[start.isoformat(), end.isoformat()])


def _period_bars(days: int) -> Dict[str, Any]:
    """Bar settings that draw each x value as the period of `days` it starts, not as an instant."""
    return dict(xperiod=days * _DAY_MS, xperiodalignment="middle", width=days * _DAY_MS * 0.85)


def _runs_section(page: _Page, report: Dict[str, Any]) -> None:
    per_day = report["runs_per_day"]
    totals = report["totals"]
    if not per_day:
        page.section("runs", "Runs per day", "No runs yet.")
        return
    go = page.go
    days = list(per_day)
    figure = go.Figure()
    for outcome in OUTCOMES:
        counts = [per_day[day].get(outcome, 0) for day in days]
        if any(counts):
            figure.add_trace(go.Bar(x=days, y=counts, name=outcome, marker=dict(color=_OUTCOME_COLOURS[outcome]),
                                    **_period_bars(1)))
    figure.update_layout(barmode="stack", xaxis=_period_axis(days[0], days[-1], 1, "day queued (UTC)"),
                         yaxis=dict(title="runs"))
    by_status = totals["runs_by_status"]
    summary = (f"{_plural(totals['runs'], 'run')} queued on {_plural(len(days), 'day')} from {days[0]} to "
               f"{days[-1]}; now " + ", ".join(f"{n:,} {status.replace('_', ' ')}"
                                               for status, n in by_status.items() if n) + ".")
    page.section("runs", "Runs per day, by outcome", _e(summary), page.chart("runs-per-day", figure))


def _failures_section(page: _Page, report: Dict[str, Any]) -> None:
    go = page.go
    failures, errors = report["failures"], report["unresolved_errors"]
    body = []
    failed = sum(failures.values())
    if failed:
        stages, kinds, folded = _fold(failures, MAX_ERROR_TYPES)
        z = [[folded.get((stage, kind)) for kind in kinds] for stage in stages]
        figure = go.Figure(go.Heatmap(
            z=z, x=[_label_text(k) for k in kinds], y=[_label_text(s) for s in stages], colorscale="Reds",
            texttemplate="%{z}", hoverongaps=False, showscale=False,
            hovertemplate="stage %{y}<br>%{x}: %{z} runs<extra></extra>"))
        figure.update_xaxes(type="category", title="error type")
        figure.update_yaxes(type="category", title="stage", autorange="reversed")
        body.append("<h3>Failed runs: stage × error type</h3>")
        body.append(page.chart("failures", figure, max(260, 60 + 40 * len(stages))))
        worst = sorted(failures.items(), key=lambda item: (-item[1], item[0]))[:5]
        body.append(_table(["stage", "error type", "failed runs"], [(s, k, n) for (s, k), n in worst], numeric=[2]))
        where = f"{failed:,} runs failed for good; most at stage {worst[0][0][0]!s} ({worst[0][0][1]!s})."
    else:
        where = "No failed runs."
    unresolved = sum(errors.values())
    if unresolved:
        modules, kinds, folded = _fold({(m, k): n for (m, k), n in errors.items()}, MAX_ERROR_TYPES)
        figure = go.Figure()
        for kind in kinds:
            figure.add_trace(go.Bar(y=[_label_text(m) for m in modules], x=[folded.get((m, kind), 0) for m in modules],
                                    name=_label_text(kind), orientation="h"))
        figure.update_layout(barmode="stack", xaxis=dict(title="unresolved errors"))
        figure.update_yaxes(type="category", autorange="reversed")
        body.append("<h3>Unresolved errors by module</h3>")
        body.append(page.chart("errors", figure, max(260, 80 + 30 * len(modules))))
        per_module: Counter = Counter()
        for (module, _), count in errors.items():
            per_module[module] += count
        body.append(_table(["module", "unresolved errors"], sorted(per_module.items(), key=lambda i: (-i[1], i[0])),
                           numeric=[1]))
        where += f" {_plural(unresolved, 'unresolved error')} in {_plural(len(per_module), 'module')}."
    else:
        where += " No unresolved errors."
    page.section("failures", "Where runs fail", _e(where), "\n".join(body))


def _reviews_section(page: _Page, report: Dict[str, Any]) -> None:
    reviews = report["reviews"]
    if not reviews["requested"]:
        page.section("reviews", "Reviews", "No reviews requested yet.")
        return
    held = (f"{reviews['auto_held']:,} auto-held (nobody answered in time): {reviews['auto_held_open']:,} still open, "
            f"{reviews['auto_held_answered']:,} answered late")
    waiting = (f"; {reviews['open']:,} open, the oldest sent {_duration(reviews['oldest_open_seconds'])} ago"
               if reviews["open"] else "; none open")
    if reviews["timed"]:
        untimed = reviews["answered"] - reviews["timed"]
        summary = (f"{reviews['answered']:,} answered: median latency {_duration(reviews['median_seconds'])}, "
                   f"p95 {_duration(reviews['p95_seconds'])}"
                   + (f" (of the {reviews['timed']:,} with an answer time)" if untimed else "") + f". {held}{waiting}.")
    elif reviews["answered"]:
        summary = f"{reviews['answered']:,} answered, none with an answer time (responded_at). {held}{waiting}."
    else:
        summary = f"No reviews answered yet. {held}{waiting}."
    numbers = _table(["", ""], [("requested", f"{reviews['requested']:,}"), ("answered", f"{reviews['answered']:,}"),
                                ("median latency", _duration(reviews["median_seconds"])),
                                ("p95 latency (nearest rank)", _duration(reviews["p95_seconds"])),
                                ("auto-held", f"{reviews['auto_held']:,}"), ("open", f"{reviews['open']:,}")],
                     numeric=[1])
    weeks = reviews["weeks"]
    if not weeks:  # nothing answered with a time, nothing held: no chart to draw
        page.section("reviews", "Reviews: latency and auto-held", _e(summary), numbers)
        return
    go = page.go
    figure = go.Figure()
    x = [week["week"] for week in weeks]
    # One unit for the whole chart, chosen by the slowest weekly p95, so the numbers stay readable.
    slowest = max((w["p95_seconds"] for w in weeks if w["p95_seconds"] is not None), default=0)
    unit, size = next((u, n) for u, n in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))
                      if slowest >= 2 * n or n == 1)
    figure.add_trace(go.Bar(x=x, y=[w["auto_held"] for w in weeks], name="auto-held reviews", yaxis="y2",
                            marker=dict(color="#f2b880"), opacity=0.7, **_period_bars(7)))
    if reviews["timed"]:
        for key, name, line in (("median_seconds", "median latency", dict(color="#4c78a8")),
                                ("p95_seconds", "p95 latency", dict(color="#e45756", dash="dot"))):
            figure.add_trace(go.Scatter(x=x, y=[None if w[key] is None else w[key] / size for w in weeks], name=name,
                                        mode="lines+markers", line=line, xperiod=7 * _DAY_MS,
                                        xperiodalignment="middle"))
    most_held = max(w["auto_held"] for w in weeks)
    figure.update_layout(xaxis=_period_axis(x[0], x[-1], 7, "week the review was sent (UTC, from Monday)"),
                         yaxis=dict(title=f"{unit} to answer", rangemode="tozero"),
                         yaxis2=dict(title="auto-held reviews", overlaying="y", side="right", rangemode="tozero",
                                     showgrid=False, tickformat=",d", dtick=1 if most_held <= 5 else None))
    page.section("reviews", "Reviews: latency and auto-held", _e(summary), page.chart("reviews", figure) + numbers)


def _cost_section(page: _Page, report: Dict[str, Any]) -> None:
    cost = report["llm_cost"]
    if not cost["scripts"]:
        page.section("cost", "LLM cost", "No scripts written yet.")
        return
    per_short = cost["per_published_short_usd"]
    if per_short is None:
        summary = f"{_money(cost['all_cost_usd'])} spent on {cost['scripts']:,} scripts; no published shorts yet."
        page.section("cost", "LLM cost per published short", _e(summary))
        return
    go = page.go
    months = [m for m in cost["months"] if m["shorts"]]
    figure = go.Figure(go.Bar(x=[m["month"] for m in months], y=[m["per_short_usd"] for m in months],
                              name="LLM cost per published short", marker=dict(color="#72b7b2"),
                              customdata=[[m["shorts"], m["cost_usd"]] for m in months],
                              hovertemplate="%{x}: $%{y:.4f} a short<br>%{customdata[0]} shorts, "
                                            "$%{customdata[1]:.2f}<extra></extra>"))
    figure.update_layout(xaxis=dict(type="category", title="month published (UTC)"),
                         yaxis=dict(title="USD per published short", rangemode="tozero"))
    summary = (f"{_money(per_short)} per published short ({_money(cost['published_cost_usd'])} of LLM calls for "
               f"{cost['published_shorts']:,} published shorts); all-in {_money(cost['all_in_per_published_short_usd'])}"
               f" counting the {_money(cost['all_cost_usd'])} spent on every script, rejected and failed runs too.")
    numbers = _table(["", ""], [("per published short", _money(per_short)),
                                ("all-in per published short", _money(cost["all_in_per_published_short_usd"])),
                                ("spent on published runs", _money(cost["published_cost_usd"])),
                                ("spent on all scripts", _money(cost["all_cost_usd"])),
                                ("published shorts", f"{cost['published_shorts']:,}")], numeric=[1])
    page.section("cost", "LLM cost per published short", _e(summary), page.chart("cost", figure, 320) + numbers)


def _top_section(page: _Page, report: Dict[str, Any]) -> None:
    shorts = [s for s in report["top_shorts"] if s["curve"]]
    if not shorts:
        text = "No analytics yet." if not report["totals"]["snapshots"] else "No view counts to draw."
        if not report["top"]:
            text = "No top shorts asked for (top 0)."
        page.section("top", "Top shorts: views over time", text)
        return
    go = page.go
    figure = go.Figure()
    for short in shorts:
        name = short["title"] or short["youtube_video_id"]
        figure.add_trace(go.Scatter(
            x=[_stamp(when) for when, _ in short["curve"]], y=[views for _, views in short["curve"]],
            name=_label_text(name), mode="lines",
            hovertemplate=_label_text(short["youtube_video_id"]) + ": %{y:,} views<br>%{x}<extra></extra>"))
    figure.update_layout(xaxis=dict(type="date", title="measured (UTC)"), yaxis=dict(title="views"))
    rows = [(rank, s["title"] or "", s["youtube_video_id"], _count(s["view_count"]), _stamp(s["measured_at"]))
            for rank, s in enumerate(report["top_shorts"], 1)]
    best = report["top_shorts"][0]
    summary = (f"The {len(report['top_shorts'])} most viewed shorts by their newest snapshot; the first, "
               f"{best['title'] or best['youtube_video_id']}, has {_count(best['view_count'])} views.")
    page.section("top", "Top shorts: views over time", _e(summary),
                 page.chart("top-shorts", figure, 420)
                 + _table(["#", "title", "video", "views", "measured (UTC)"], rows, numeric=[0, 3]))


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 2em; color: #222; }
header { border-bottom: 1px solid #ddd; margin-bottom: 1em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #eee; } h3 { font-size: 1em; }
.meta, .summary { color: #555; } .summary { font-size: 1.05em; }
nav a { margin-right: 1em; }
.totals { display: flex; flex-wrap: wrap; gap: 0.6em; margin: 0.8em 0; }
.totals div { background: #f4f6f8; border-radius: 6px; padding: 0.5em 0.9em; }
.totals b { display: block; font-size: 1.4em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.chart { width: 100%; }
"""

_DEFINITIONS = "".join(f"<li>{html.escape(line)}</li>" for line in (
    "Funnel: each source video counted once, at the furthest step any of its runs reached; a step counts the "
    "videos at it or beyond.",
    "Runs per day: runs by the UTC day they were queued, by their status now (in progress: pending, running, "
    "awaiting review or approved).",
    "Where runs fail: runs failed for good, by the stage their worker last reported and the type of the run's "
    "newest logged error; lease expired when requeue_stale gave up on it.",
    "Review latency: answer time minus request time of answered reviews; median as usual, p95 by nearest rank "
    "(the smallest latency at or above 95 % of them). Auto-held: nobody answered in time (still open or answered "
    "late).",
    "LLM cost per published short: the cost of every script of the published runs divided by their uploaded "
    "shorts; all-in divides the cost of every script by the same shorts.",
    "Top shorts: the most viewed by their newest analytics snapshot, with the views of each snapshot.",
))

_DRAW = """
(function () {
  var figures = JSON.parse(document.getElementById("figures").textContent);
  var config = JSON.parse(document.getElementById("plotly-config").textContent);
  Object.keys(figures).forEach(function (id) {
    Plotly.newPlot(id, figures[id].data, figures[id].layout, config);
  });
})();
"""


def _build(*, now: Optional[datetime.datetime] = None, top: int = 10) -> Tuple[str, Dict[str, Any], int]:
    """(the HTML document, the data it shows, how many charts it draws)."""
    go, offline, encoder = _plotly()
    report = data(now=now, top=top)
    page = _Page(go)
    for section in (_funnel_section, _runs_section, _failures_section, _reviews_section, _cost_section,
                    _top_section):
        section(page, report)
    totals = report["totals"]
    tiles = [("videos discovered", totals["videos"]), ("runs", totals["runs"]),
             ("published runs", totals["published_runs"]), ("published shorts", totals["published_shorts"]),
             ("open reviews", totals["open_reviews"]), ("unresolved errors", totals["unresolved_errors"]),
             ("analytics snapshots", totals["snapshots"])]
    tile_html = "".join(f"<div><b>{n:,}</b>{_e(what)}</div>" for what, n in tiles)
    status = "No runs yet: the pipeline has not queued anything." if not totals["runs"] else ""
    nav = "".join(f'<a href="#{anchor}">{text}</a>' for anchor, text in (
        ("funnel", "funnel"), ("runs", "runs per day"), ("failures", "failures"), ("reviews", "reviews"),
        ("cost", "LLM cost"), ("top", "top shorts")))
    plotly_js = offline.get_plotlyjs()
    # A JavaScript file never needs "</script" outside a string; inside one, "<\\/" means the same.
    plotly_js = re.sub(r"</(script)", r"<\\/\1", plotly_js, flags=re.IGNORECASE)
    generated = _stamp(report["generated_at"])
    document = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pipeline report, {generated} UTC</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>Pipeline report</h1>
<p class="meta">{_e(report['database'])}, generated {generated} UTC. All times UTC.</p>
<nav>{nav}</nav>
</header>
<div class="totals">{tile_html}</div>
{f'<p class="summary">{status}</p>' if status else ''}
<noscript><p>The charts need JavaScript; every number is also given as text.</p></noscript>
{chr(10).join(page.sections)}
<footer><details><summary>How these numbers are counted</summary><ul>{_DEFINITIONS}</ul></details>
<p class="meta">Made by pipeline_models.report (its docstring has the definitions in full). Charts by plotly.js,
embedded in this file: it opens offline and fetches nothing.</p></footer>
<script>{plotly_js}</script>
<script id="figures" type="application/json">{_script_json(page.figures, encoder)}</script>
<script id="plotly-config" type="application/json">{_script_json(_CONFIG, encoder)}</script>
<script>{_DRAW}</script>
</body>
</html>
"""
    return document, report, len(page.figures)


def render(*, now: Optional[datetime.datetime] = None, top: int = 10) -> str:
    """The whole report as one self-contained HTML document, for the bound database (read-only)."""
    return _build(now=now, top=top)[0]


def write(path: str, **kwargs: Any) -> ReportSummary:
    """Render the report (render()'s keywords) and write it to `path` atomically: the whole file or none."""
    document, report, charts = _build(**kwargs)
    encoded = document.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".report-", suffix=".html.tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(encoded)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; a report is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    totals = report["totals"]
    return ReportSummary(path, totals["runs"], totals["published_runs"], charts, len(encoded))


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

