"""`pipeline-models report`: one self-contained HTML file about the pipeline, which opens offline.

    from pipeline_models import report
    html = report.render()                  # the bound database, now; needs the `report` extra (plotly)
    summary = report.write("report.html")   # written atomically; ReportSummary(path, runs, published, ...)
    numbers = report.data()                 # what the page shows, as plain values (no plotly needed)

The page embeds plotly.js once and draws each chart from its figure JSON; it fetches nothing (no CDN, fonts
or MathJax; a Content-Security-Policy forbids any request). The key numbers are also text. Every query is a
GROUP BY or reads a bounded set of rows, read-only, in one snapshot, on SQLite and PostgreSQL; times are UTC.
A run is one niche's compilation for one 6-hour cycle: 8-10 ranked clips of distinct videos, one long-form
video and 3-5 shorts, one review (five answers, or auto-held), uploads within a daily cap.

What each number means:

- Funnel, per niche: discovered videos, each counted at the furthest step any of its clips reached: used in
  a clip; in a reviewed run (a review was requested, or the run is in review or past it); approved (the run
  approved, by an approve answer or its status, the clip still in it: a clip a reviewer's skip dropped
  stops before); uploaded (the run's long-form video uploaded, the clip in it). A step counts every video
  at it or beyond, so the funnel never widens.
- Runs by outcome, per niche: runs by the UTC day their cycle started, by their status now: uploaded,
  rejected, failed, in review (waiting for an answer, or held), in progress (pending, running, approved).
- Uploads per day against the cap: the uploads the daily cap counts (UploadOnce.uploads_since), long-form
  (a run's youtube_video_id) and shorts alike, per niche, by the UTC day each began (upload_started_at; in
  flight or in doubt too), else was recorded (completed_at, uploaded_at). The line is the cap,
  youtube.max_uploads_per_day (20 unless overridden); counted over any 24 hours, no UTC day passes it.
- Where runs fail: runs failed for good, per niche and by the stage their worker last reported
  (current_stage, which fail() leaves where the failure happened), and by error type: that of the run's
  newest ErrorLog row; "lease expired (no heartbeat)" when requeue_stale() gave up on it (no ErrorLog row
  is written for that); "(no error logged)" when it has none. Retried attempts are not counted: their
  errors are in the ErrorLog chart while unresolved.
- Unresolved errors by module: ErrorLog rows not resolved, by module and error type.
- Review latency, per niche: responded_at - sent_at of answered reviews with an answer time (a hold is not
  an answer yet: a held review answered later, or forced, has the time of that answer); median
  (statistics.median) and p95 (nearest rank: sorted[ceil(0.95 n) - 1]). Open: not answered yet; held: held
  by a reviewer or auto-held, still to be answered; auto-held: every review hold_stale() held (nobody
  answered in time), answered later or not; force_upload: held runs approved by /force_upload.
- Review answers, per niche: each review by its answer now, one of: approve (a reviewer's), force_upload
  (an approve whose response_detail is 'force_upload'), reject, hold (a reviewer's, still held), auto_held
  (still held by hold_stale()), skip, redo_script.
- LLM cost per uploaded compilation: the cost_usd of every script of the uploaded runs (every attempt and
  redo_script; none counts as 0) divided by those runs; "all-in" divides the cost of every script, of
  rejected, failed and unfinished runs too. Months: the month of the upload (completed_at, else created_at).
- Long-form versus shorts, per niche: each video's newest snapshot (analytics_latest), matched through a
  run's youtube_video_id (long-form) or a short's (shorts): videos, views and subscribers gained (sums), CTR
  and average view duration (means of those reported); "both" is the two kinds together. Videos that are
  neither are counted as unmatched.
- Content-ID flags, per niche: clips whose own content_id_risk, or whose source video's, is medium or high;
  by each level of the clip and of the video, those a reviewer's skip dropped, and the runs still having
  one, by outcome.
- Top videos: the `top` most viewed videos by their newest snapshot (Analytics.top), long-form or short,
  with the view_count of each of their snapshots over time.
"""
import contextlib
import datetime
import html
import json
import os
import re
import tempfile
from collections import Counter
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from .errors import ExtraMissing, plural
from .fields import UTC
# The numbers are queried in queries.py (shared with the benchmark); these names keep their old home here.
from .queries import (ANSWERS, FUNNEL_STEPS, KINDS, LEASE_EXPIRED, NO_STAGE,  # noqa: F401  (re-exported)
                      NOT_LOGGED, OUTCOMES, RISKY, percentile, report_data as data)

__all__ = ["ReportSummary", "data", "render", "write", "percentile", "require_extra"]

# Beyond this many error types a chart folds the rarest into "other": a legend of hundreds helps nobody.
MAX_ERROR_TYPES = 10
OTHER = "other"
_OUTCOME_COLOURS = dict(zip(OUTCOMES, ("#54a24b", "#eeca3b", "#e45756", "#4c78a8", "#9d9d9d")))
_KIND_COLOURS = ("#4c78a8", "#f58518")
_DAY_MS = 86_400_000

_CONFIG = {"displaylogo": False, "responsive": True, "showLink": False, "showSendToCloud": False,
           "showEditInChartStudio": False}
# Nothing on the page may reach the network: inline scripts and styles only, images only as data: URLs
# (plotly draws heatmaps as one).
_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
        "font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'")


class ReportSummary(NamedTuple):
    """What write() wrote: the file, its runs and those published (long-form uploaded), its charts and bytes."""

    path: str
    runs: int
    published: int
    charts: int
    bytes: int


def _plotly() -> Tuple[Any, Any, Any, Any]:
    """plotly's graph_objects, offline, JSON encoder and make_subplots, or ExtraMissing naming the extra."""
    try:
        import plotly.graph_objects as go
        import plotly.offline as offline
        from plotly.subplots import make_subplots
        from plotly.utils import PlotlyJSONEncoder
    except ImportError:
        raise ExtraMissing("the report", "report", "plotly") from None
    return go, offline, PlotlyJSONEncoder, make_subplots


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
    return "-" if value is None else f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.0f} s"


def _count(value: Optional[float], text: str = "{:,}") -> str:
    return "-" if value is None else text.format(value)


def _stamp(when: datetime.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _fold(counts: Dict[Tuple[str, str], int], keep: int) -> Tuple[List[str], List[str], Dict[Tuple[str, str], int]]:
    """(rows, columns, counts), most frequent first, all but the `keep` most frequent columns folded into "other"."""
    def ranked(totals: Counter) -> List[str]:
        return [key for key, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0]))]
    columns = ranked(Counter({column: sum(n for (_, c), n in counts.items() if c == column) for _, column in counts}))
    kept = set(columns[:keep])
    folded: Counter = Counter()
    for (row, column), count in counts.items():
        folded[(row, column if column in kept else OTHER)] += count
    rows = ranked(Counter({row: sum(n for (r, _), n in folded.items() if r == row) for row, _ in folded}))
    return rows, columns[:keep] + ([OTHER] if len(kept) < len(columns) else []), dict(folded)


class _Page:
    """The sections and figures of one report, assembled into the HTML document."""

    def __init__(self, go: Any, subplots: Any) -> None:
        self.go, self.subplots = go, subplots
        self.sections: List[str] = []
        self.anchors: List[str] = []
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
        self.anchors.append(anchor)
        self.sections.append(f'<section id="{anchor}"><h2>{_e(heading)}</h2>\n<p class="summary">{summary}</p>\n'
                             f"{body}</section>")


def _table(headers: Sequence[str], rows: Iterable[Iterable[Any]], numeric: Union[int, Iterable[int]] = 1) -> str:
    """A table of text; the columns `numeric` (or from column `numeric` on) aligned right."""
    right = set(range(numeric, len(headers)) if isinstance(numeric, int) else numeric)
    head = "".join(f'<th{" class=num" if i in right else ""}>{_e(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in right else ""}>{_e(v)}</td>' for i, v in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _funnel_section(page: _Page, report: Dict[str, Any]) -> None:
    steps, by_niche = report["funnel"], report["funnel_by_niche"]
    if not steps:
        page.section("funnel", "Funnel", "No videos discovered yet.")
        return
    go = page.go
    figure = go.Figure()
    for niche, niche_steps in by_niche.items():
        figure.add_trace(go.Funnel(y=[step for step, _ in niche_steps], x=[n for _, n in niche_steps],
                                   name=_label_text(niche), textinfo="value+percent initial"))
    figure.update_yaxes(type="category")
    first, last = steps[0][1], steps[-1][1]
    summary = (f"{first:,} videos discovered in {plural(len(by_niche), 'niche')}, {last:,} in an uploaded "
               f"compilation ({last / first:.1%}); each video counted at the furthest step its clips reached.")
    niches = list(by_niche)
    rows = [[step, n] + [by_niche[niche][i][1] for niche in niches] for i, (step, n) in enumerate(steps)]
    page.section("funnel", "Funnel: from discovered to uploaded", _e(summary),
                 page.chart("funnel", figure, 340) + _table(["step", "all niches", *niches], rows))


def _period_axis(first: str, last: str, days: int, title: str) -> Dict[str, Any]:
    """A date axis of whole periods of `days` from `first` to `last` (else plotly zooms one period in to ms)."""
    start = datetime.date.fromisoformat(first) - datetime.timedelta(days=days * 0.25)
    end = datetime.date.fromisoformat(last) + datetime.timedelta(days=days * 1.25)
    return dict(type="date", title=title, range=[start.isoformat(), end.isoformat()])


def _period_bars(days: int) -> Dict[str, Any]:
    """Bar settings that draw each x value as the period of `days` it starts, not as an instant."""
    return dict(xperiod=days * _DAY_MS, xperiodalignment="middle", width=days * _DAY_MS * 0.85)


def _runs_section(page: _Page, report: Dict[str, Any]) -> None:
    per_niche, totals = report["runs_per_day"], report["totals"]
    if not per_niche:
        page.section("runs", "Runs by outcome", "No runs yet.")
        return
    niches = list(per_niche)
    days = sorted({day for per_day in per_niche.values() for day in per_day})
    figure = page.subplots(rows=len(niches), cols=1, shared_xaxes=True, vertical_spacing=0.25 / len(niches),
                           subplot_titles=[_label_text(niche) for niche in niches])
    shown_outcomes = set()
    for row, niche in enumerate(niches, 1):
        for outcome in OUTCOMES:
            counts = [per_niche[niche].get(day, {}).get(outcome, 0) for day in days]
            if any(counts):
                figure.add_trace(page.go.Bar(x=days, y=counts, name=outcome, legendgroup=outcome,
                                             showlegend=outcome not in shown_outcomes,
                                             marker=dict(color=_OUTCOME_COLOURS[outcome]), **_period_bars(1)),
                                 row=row, col=1)
                shown_outcomes.add(outcome)
    figure.update_layout(barmode="stack")
    figure.update_yaxes(title_text="runs")
    figure.update_xaxes(**_period_axis(days[0], days[-1], 1, ""))
    figure.update_xaxes(title_text="day the cycle started (UTC)", row=len(niches), col=1)
    by_status = totals["runs_by_status"]
    summary = (f"{plural(totals['runs'], 'run')} of {plural(len(niches), 'niche')} for cycles on "
               f"{plural(len(days), 'day')} from {days[0]} to {days[-1]}; now "
               + ", ".join(f"{n:,} {status}" for status, n in by_status.items() if n) + ".")
    rows = [[niche] + [sum(d.get(outcome, 0) for d in per_niche[niche].values()) for outcome in OUTCOMES]
            for niche in niches]
    page.section("runs", "Runs by outcome, per niche", _e(summary),
                 page.chart("runs-per-day", figure, 120 + 200 * len(niches)) + _table(["niche", *OUTCOMES], rows))


def _uploads_section(page: _Page, report: Dict[str, Any]) -> None:
    per_day, cap = report["uploads_per_day"], report["upload_cap"]
    slot = "one may start now" if cap["next_slot"] is None else f"the next slot opens {_stamp(cap['next_slot'])} UTC"
    against = f"{cap['last_24_hours']:,} of the {cap['cap']:,} a day ({cap['key']}) in the last 24 hours; {slot}."
    if not per_day:
        page.section("uploads", "Uploads per day against the cap", _e("Nothing uploaded yet. " + against))
        return
    go, days = page.go, list(per_day)
    niches = sorted({niche for by_niche in per_day.values() for niche in by_niche})
    figure, totals = go.Figure(), Counter()
    for niche in niches:
        for kind in KINDS:
            counts = [per_day[day].get(niche, {}).get(kind, 0) for day in days]
            totals[(niche, kind)] = sum(counts)
            if any(counts):
                figure.add_trace(go.Bar(x=days, y=counts, name=_label_text(f"{niche}: {kind}"),
                                        marker=dict(pattern=dict(shape="/" if kind == "shorts" else "")),
                                        **_period_bars(1)))
    figure.add_hline(y=cap["cap"], line=dict(color="#e45756", dash="dash"), annotation_text=f"cap {cap['cap']}")
    figure.update_layout(barmode="stack", xaxis=_period_axis(days[0], days[-1], 1, "day the upload began (UTC)"),
                         yaxis=dict(title="uploads (long-form and shorts)", rangemode="tozero"))
    on_day = {day: sum(sum(kinds.values()) for kinds in per_day[day].values()) for day in days}
    busiest = max(days, key=lambda day: (on_day[day], day))
    summary = (f"{sum(totals[(n, KINDS[0])] for n in niches):,} long-form videos and "
               f"{sum(totals[(n, KINDS[1])] for n in niches):,} shorts uploaded on {plural(len(days), 'day')}; "
               f"the busiest, {busiest}, had {on_day[busiest]:,}; {plural(cap['days_at_cap'], 'day')} at the cap. "
               + against)
    rows = [[niche, totals[(niche, KINDS[0])], totals[(niche, KINDS[1])]] for niche in niches]
    page.section("uploads", "Uploads per day against the cap", _e(summary),
                 page.chart("uploads", figure) + _table(["niche", *KINDS], rows))


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
        body.append("<h3>Failed runs: stage × error type</h3>"
                    + page.chart("failures", figure, max(260, 60 + 40 * len(stages))))
        (most, kind), _ = sorted(failures.items(), key=lambda item: (-item[1], item[0]))[0]
        by_niche = report["failures_by_niche"]
        stages = sorted({stage for got in by_niche.values() for stage in got})
        body.append("<h3>Failed runs, per niche and stage</h3>" + _table(
            ["niche", *stages], [[niche, *(got.get(stage, 0) for stage in stages)] for niche, got in by_niche.items()]))
        where = f"{failed:,} runs failed for good; most at stage {most} ({kind})."
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
        body.append("<h3>Unresolved errors by module</h3>"
                    + page.chart("errors", figure, max(260, 80 + 30 * len(modules))))
        per_module = sum((Counter({module: n}) for (module, _), n in errors.items()), Counter())
        body.append(_table(["module", "unresolved errors"], sorted(per_module.items(), key=lambda i: (-i[1], i[0])),
                           numeric=[1]))
        where += f" {plural(unresolved, 'unresolved error')} in {plural(len(per_module), 'module')}."
    else:
        where += " No unresolved errors."
    page.section("failures", "Where runs fail", _e(where), "\n".join(body))


def _reviews_section(page: _Page, report: Dict[str, Any]) -> None:
    reviews, niches = report["reviews"], report["reviews"]["niches"]
    if not reviews["requested"]:
        page.section("reviews", "Reviews", "No reviews requested yet.")
        return
    untimed = f" (of the {reviews['timed']:,} with an answer time)" if reviews["answered"] > reviews["timed"] else ""
    latency = (f"median latency {_duration(reviews['median_seconds'])}, p95 {_duration(reviews['p95_seconds'])}"
               f"{untimed}" if reviews["timed"] else "none with an answer time (responded_at)")
    waiting = (f"{reviews['open']:,} open and {reviews['held']:,} held, the oldest sent "
               f"{_duration(reviews['oldest_waiting_seconds'])} ago" if reviews["open"] + reviews["held"]
               else "none waiting")
    summary = (f"{reviews['answered']:,} answered: {latency}. {reviews['auto_held']:,} auto-held (nobody answered "
               f"in time), {reviews['force_upload']:,} approved by force_upload; {waiting}.")
    columns = ["requested", "answered", "median latency", "p95 latency", "auto-held", "force_upload", "open", "held"]
    rows = [[niche, got["requested"], got["answered"], _duration(got["median_seconds"]),
             _duration(got["p95_seconds"]), got["auto_held"], got["force_upload"], got["open"], got["held"]]
            for niche, got in [*niches.items(), ("all niches", reviews)]]
    page.section("reviews", "Reviews: latency and answers, per niche", _e(summary),
                 _latency_chart(page, niches) + _table(["niche", *columns], rows) + _answers(page, niches))


def _latency_chart(page: _Page, niches: Dict[str, Dict[str, Any]]) -> str:
    timed = [niche for niche, got in niches.items() if got["timed"]]
    if not timed:  # nothing answered with a time: no latency to draw
        return ""
    go, figure = page.go, page.go.Figure()
    # One unit for the whole chart, chosen by the slowest p95, so the numbers stay readable.
    slowest = max(niches[n]["p95_seconds"] for n in timed)
    unit, size = next((u, n) for u, n in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))
                      if slowest >= 2 * n or n == 1)
    for key, name, colour in (("median_seconds", "median", "#4c78a8"), ("p95_seconds", "p95", "#e45756")):
        figure.add_trace(go.Bar(x=[_label_text(n) for n in timed], y=[niches[n][key] / size for n in timed],
                                name=f"{name} latency", marker=dict(color=colour)))
    figure.update_layout(barmode="group", xaxis=dict(type="category", title="niche"),
                         yaxis=dict(title=f"{unit} to answer", rangemode="tozero"))
    return page.chart("reviews", figure, 320)


def _answers(page: _Page, niches: Dict[str, Dict[str, Any]]) -> str:
    answers = {niche: got["answers"] for niche, got in niches.items() if any(got["answers"].values())}
    if not answers:
        return "<p>No answers yet.</p>"
    figure = page.go.Figure([page.go.Bar(x=[_label_text(n) for n in answers], y=[got[a] for got in answers.values()],
                                         name=a) for a in ANSWERS])
    figure.update_layout(barmode="stack", xaxis=dict(type="category", title="niche"),
                         yaxis=dict(title="reviews, by their answer now", rangemode="tozero", tickformat=",d"))
    return ("<h3>Answers, per niche</h3>" + page.chart("answers", figure, 320)
            + _table(["niche", *ANSWERS], [[niche, *(got[a] for a in ANSWERS)] for niche, got in answers.items()]))


def _cost_section(page: _Page, report: Dict[str, Any]) -> None:
    cost = report["llm_cost"]
    title = "LLM cost per uploaded compilation"
    if not cost["scripts"]:
        page.section("cost", "LLM cost", "No scripts written yet.")
        return
    per_run = cost["per_uploaded_run_usd"]
    if per_run is None:
        summary = f"{_money(cost['all_cost_usd'])} spent on {cost['scripts']:,} scripts; nothing uploaded yet."
        page.section("cost", title, _e(summary))
        return
    go = page.go
    months = [m for m in cost["months"] if m["runs"]]
    figure = go.Figure(go.Bar(x=[m["month"] for m in months], y=[m["per_run_usd"] for m in months],
                              name=title, marker=dict(color="#72b7b2"),
                              customdata=[[m["runs"], m["cost_usd"]] for m in months],
                              hovertemplate="%{x}: $%{y:.4f} a compilation<br>%{customdata[0]} uploaded, "
                                            "$%{customdata[1]:.2f}<extra></extra>"))
    figure.update_layout(xaxis=dict(type="category", title="month uploaded (UTC)"),
                         yaxis=dict(title="USD per uploaded compilation", rangemode="tozero"))
    summary = (f"{_money(per_run)} per uploaded compilation ({_money(cost['uploaded_cost_usd'])} of LLM calls for "
               f"{cost['uploaded_runs']:,} uploaded runs); all-in {_money(cost['all_in_per_uploaded_run_usd'])}"
               f" counting the {_money(cost['all_cost_usd'])} spent on every script, rejected and failed runs too.")
    page.section("cost", title, _e(summary), page.chart("cost", figure, 320))


def _views_section(page: _Page, report: Dict[str, Any]) -> None:
    views, per_niche, audience = report["views"], report["views"]["niches"], report["views"]["audience"]
    unmatched = (f" {plural(views['unmatched_videos'], 'video')} with snapshots is neither a run's nor a short's."
                 if views["unmatched_videos"] else "")
    if not per_niche:
        page.section("views", "Long-form versus shorts", _e("No analytics of uploaded videos yet." + unmatched))
        return
    go, niches = page.go, [_label_text(n) for n in per_niche]
    figure = page.subplots(rows=1, cols=3, subplot_titles=["views (newest snapshots)", "subscribers gained",
                                                           "click-through rate"])
    for kind, colour in zip(KINDS, _KIND_COLOURS):
        for col, key in enumerate(("views", "subscriber_gain", "click_through_rate"), 1):
            figure.add_trace(go.Bar(x=niches, y=[got.get(kind, {}).get(key) for got in per_niche.values()],
                                    name=kind, legendgroup=kind, showlegend=col == 1, marker=dict(color=colour)),
                             row=1, col=col)
    figure.update_layout(barmode="group")
    figure.update_yaxes(rangemode="tozero")
    figure.update_yaxes(tickformat=".1%", row=1, col=3)
    rows = [[niche, kind, got["videos"], _count(got["views"]), _count(got["subscriber_gain"]),
             _count(got["click_through_rate"], "{:.1%}"), _count(got.get("average_view_duration_seconds"), "{:.0f} s")]
            for niche in per_niche for kind, got in [*sorted(per_niche[niche].items()), ("both", audience[niche])]]
    total = {kind: sum(got.get(kind, {}).get("views") or 0 for got in per_niche.values()) for kind in KINDS}
    best = max(audience, key=lambda n: (audience[n]["subscriber_gain"] or 0, n))
    summary = (f"{total[KINDS[0]]:,} views of long-form videos and {total[KINDS[1]]:,} of shorts in "
               f"{plural(len(niches), 'niche')}, by each video's newest snapshot; {best} gained the most "
               f"subscribers ({_count(audience[best]['subscriber_gain'])}).{unmatched}")
    page.section("views", "Long-form versus shorts, subscribers and CTR, per niche", _e(summary),
                 page.chart("views", figure, 340)
                 + _table(["niche", "kind", "videos", "views", "subscribers gained", "CTR", "avg view"], rows, 2))


def _content_id_section(page: _Page, report: Dict[str, Any]) -> None:
    flags = report["content_id"]
    if not flags:
        page.section("content-id", "Content-ID flags", "No clip or source video of medium or high risk.")
        return
    go, niches, shade = page.go, list(flags), {"medium": 0.6, "high": 1.0}
    figure = go.Figure([go.Bar(x=[_label_text(n) for n in niches], y=[flags[n][what][level] for n in niches],
                               name=f"{what}: {level}", marker=dict(color=colour, opacity=shade[level]))
                        for what, colour in (("clips", "#e45756"), ("videos", "#b279a2")) for level in RISKY])
    figure.update_layout(barmode="group", xaxis=dict(type="category", title="niche"),
                         yaxis=dict(title="flagged clips", rangemode="tozero", tickformat=",d"))
    rows = [[niche, got["flagged"], *(got[w][level] for w in ("clips", "videos") for level in RISKY), got["dropped"]]
            + [got["runs"].get(outcome, 0) for outcome in OUTCOMES] for niche, got in flags.items()]
    flagged, dropped = sum(g["flagged"] for g in flags.values()), sum(g["dropped"] for g in flags.values())
    uploaded = sum(g["runs"].get(OUTCOMES[0], 0) for g in flags.values())
    summary = (f"{plural(flagged, 'clip')} flagged (the clip's or its source video's risk medium or high), "
               f"{dropped:,} dropped by a reviewer's skip; {plural(uploaded, 'uploaded run')} still had one.")
    headers = ["niche", "flagged", "clip medium", "clip high", "video medium", "video high", "dropped",
               *(f"runs {outcome}" for outcome in OUTCOMES)]
    page.section("content-id", "Content-ID flags, per niche", _e(summary),
                 page.chart("content-id", figure, 320) + _table(headers, rows))


def _top_section(page: _Page, report: Dict[str, Any]) -> None:
    videos, top = [v for v in report["top_videos"] if v["curve"]], report["top"]
    if not videos:
        text = "No analytics yet." if not report["totals"]["snapshots"] else "No view counts to draw."
        page.section("top", "Top videos: views over time", text if top else "No top videos asked for (top 0).")
        return
    go = page.go
    figure = go.Figure()
    for video in videos:
        name = f"{video['kind'] or 'unmatched'}: {video['title'] or video['youtube_video_id']}"
        figure.add_trace(go.Scatter(
            x=[_stamp(when) for when, _ in video["curve"]], y=[views for _, views in video["curve"]],
            name=_label_text(name), mode="lines", line=dict(dash="dot" if video["kind"] == "shorts" else "solid"),
            hovertemplate=_label_text(video["youtube_video_id"]) + ": %{y:,} views<br>%{x}<extra></extra>"))
    figure.update_layout(xaxis=dict(type="date", title="measured (UTC)"), yaxis=dict(title="views"))
    rows = [(rank, v["kind"] or "unmatched", v["niche"] or "", v["title"] or "", v["youtube_video_id"],
             _count(v["view_count"]), _stamp(v["measured_at"])) for rank, v in enumerate(report["top_videos"], 1)]
    best = report["top_videos"][0]
    summary = (f"The {len(report['top_videos'])} most viewed videos, long-form and shorts, by their newest "
               f"snapshot; the first, {best['title'] or best['youtube_video_id']}, has {_count(best['view_count'])} "
               "views.")
    page.section("top", "Top videos: views over time", _e(summary),
                 page.chart("top-videos", figure, 420)
                 + _table(["#", "kind", "niche", "title", "video", "views", "measured (UTC)"], rows, numeric=[0, 5]))


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 2em; color: #222; }
header { border-bottom: 1px solid #ddd; margin-bottom: 1em; } nav a { margin-right: 1em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #eee; } h3 { font-size: 1em; }
.meta, .summary { color: #555; } .summary { font-size: 1.05em; } .chart { width: 100%; }
.totals { display: flex; flex-wrap: wrap; gap: 0.6em; margin: 0.8em 0; } .totals b { display: block; font-size: 1.4em; }
.totals div { background: #f4f6f8; border-radius: 6px; padding: 0.5em 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def _definitions() -> str:
    """The module docstring's "What each number means" list, as HTML: the definitions are written once."""
    if not __doc__:  # python -OO strips docstrings: the page goes without
        return ""
    items = __doc__.split("What each number means:", 1)[1].strip().split("\n- ")
    return "".join(f"<li>{html.escape(' '.join(item.lstrip('- ').split()))}</li>" for item in items)


_DRAW = """(function () {
  var figures = JSON.parse(document.getElementById("figures").textContent);
  var config = JSON.parse(document.getElementById("plotly-config").textContent);
  Object.keys(figures).forEach(function (id) { Plotly.newPlot(id, figures[id].data, figures[id].layout, config); });
})();"""


def _build(*, now: Optional[datetime.datetime] = None, top: int = 10) -> Tuple[str, Dict[str, Any], int]:
    """(the HTML document, the data it shows, how many charts it draws)."""
    go, offline, encoder, subplots = _plotly()
    report = data(now=now, top=top)
    page = _Page(go, subplots)
    for section in (_funnel_section, _runs_section, _uploads_section, _failures_section, _reviews_section,
                    _cost_section, _views_section, _content_id_section, _top_section):
        section(page, report)
    totals = report["totals"]
    tiles = [("videos discovered", totals["videos"]), ("niches", len(totals["niches"])), ("runs", totals["runs"]),
             ("uploaded runs", totals["uploaded_runs"]), ("uploaded shorts", totals["uploaded_shorts"]),
             ("open reviews", totals["open_reviews"]), ("held reviews", totals["held_reviews"]),
             ("unresolved errors", totals["unresolved_errors"]), ("analytics snapshots", totals["snapshots"])]
    tile_html = "".join(f"<div><b>{n:,}</b>{_e(what)}</div>" for what, n in tiles)
    status = "No runs yet: the pipeline has not scheduled anything." if not totals["runs"] else ""
    nav = "".join(f'<a href="#{anchor}">{anchor.replace("-", " ")}</a>' for anchor in page.anchors)
    plotly_js = offline.get_plotlyjs()
    # A JavaScript file never needs "</script" outside a string; inside one, "<\\/" means the same.
    plotly_js = re.sub(r"</(script)", r"<\\/\1", plotly_js, flags=re.IGNORECASE)
    generated = _stamp(report["generated_at"])
    paused = _e(f" Paused (not claimed): {', '.join(totals['paused_niches'])}." if totals["paused_niches"] else "")
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pipeline report, {generated} UTC</title><style>{_STYLE}</style></head>
<body><header><h1>Pipeline report</h1>
<p class="meta">{_e(report['database'])}, generated {generated} UTC. All times UTC.{paused}</p><nav>{nav}</nav></header>
<div class="totals">{tile_html}</div>
{f'<p class="summary">{status}</p>' if status else ''}
<noscript><p>The charts need JavaScript; every number is also given as text.</p></noscript>
{chr(10).join(page.sections)}
<footer><details><summary>How these numbers are counted</summary><ul>{_definitions()}</ul></details>
<p class="meta">Made by pipeline_models.report, whose docstring holds these definitions. Charts by plotly.js,
embedded in this file: it opens offline and fetches nothing.</p></footer>
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
        umask = os.umask(0o022)  # reading the umask means setting it: set it straight back
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a report is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    totals = report["totals"]
    return ReportSummary(path, totals["runs"], totals["uploaded_runs"], charts, len(encoded))

