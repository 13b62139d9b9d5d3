"""The sections of the HTML report (pipeline_models.report): each a heading, a summary in words, the
plotly charts drawn from report_data()'s numbers and their tables.

A section is a function of (Page, the numbers); SECTIONS lists them in the page's order. Plotly is
not imported here: the Page holds plotly's graph_objects and make_subplots, and collects each
chart's figure JSON, which the page draws. Every database string goes through html_text() (HTML) or
_label_text() (plotly labels).
"""
import datetime
import html
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import plural
from .fields import UTC
from .queries import ANSWERS, KINDS, OUTCOMES, RISKY

__all__ = ["MAX_ERROR_TYPES", "OTHER", "SECTIONS", "Page", "html_text", "utc_text"]

# Beyond this many error types a chart folds the rarest into "other": a legend of hundreds helps
# nobody.
MAX_ERROR_TYPES = 10
OTHER = "other"
_OUTCOME_COLOURS = dict(zip(OUTCOMES, ("#54a24b", "#eeca3b", "#e45756", "#4c78a8", "#9d9d9d")))
_KIND_COLOURS = ("#4c78a8", "#f58518")
_DAY_MS = 86_400_000


def html_text(value: Any) -> str:
    """Text for HTML: every database string goes through here."""
    return html.escape(str(value), quote=True)


_e = html_text  # short: it is on almost every line below


def _label_text(value: Any) -> str:
    """A database string as plotly text: plotly reads a few HTML tags and $...$ (LaTeX) in labels;
    this shows them as typed instead (plotly turns the entities back into characters)."""
    return html.escape(str(value), quote=False).replace("$", "&#36;")


def utc_text(when: datetime.datetime) -> str:
    """A time as the report writes it: UTC, to the second."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


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


def _fold(counts: Dict[Tuple[str, str], int],
          keep: int) -> Tuple[List[str], List[str], Dict[Tuple[str, str], int]]:
    """(rows, columns, counts), most frequent first, all but the `keep` most frequent columns folded
    into "other"."""
    def ranked(totals: Counter) -> List[str]:
        return [key for key, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0]))]
    columns = ranked(Counter({column: sum(n for (_, c), n in counts.items() if c == column)
                              for _, column in counts}))
    kept = set(columns[:keep])
    folded: Counter = Counter()
    for (row, column), count in counts.items():
        folded[(row, column if column in kept else OTHER)] += count
    rows = ranked(Counter({row: sum(n for (r, _), n in folded.items() if r == row)
                           for row, _ in folded}))
    return rows, columns[:keep] + ([OTHER] if len(kept) < len(columns) else []), dict(folded)


class Page:
    """The sections and figures of one report, as the HTML document assembles them."""

    def __init__(self, go: Any, subplots: Any) -> None:
        self.go, self.subplots = go, subplots
        self.sections: List[str] = []
        self.anchors: List[str] = []
        self.figures: Dict[str, Any] = {}

    def chart(self, name: str, figure: Any, height: int = 380) -> str:
        """A chart's div; its figure is drawn from the page's figure JSON."""
        figure.update_layout(template="plotly_white", height=height,
                             margin=dict(l=60, r=20, t=30, b=50),
                             font=dict(family="system-ui, sans-serif", size=12),
                             legend=dict(orientation="h", y=-0.2))
        chart_id = f"chart-{name}"
        self.figures[chart_id] = figure.to_plotly_json()
        return f'<div id="{chart_id}" class="chart" style="height:{height}px"></div>'

    def section(self, anchor: str, heading: str, summary: str, body: str = "") -> None:
        """A section of the page: its heading, its summary (HTML) and its charts and tables."""
        self.anchors.append(anchor)
        self.sections.append(f'<section id="{anchor}"><h2>{_e(heading)}</h2>\n'
                             f'<p class="summary">{summary}</p>\n{body}</section>')


def _table(headers: Sequence[str], rows: Iterable[Iterable[Any]],
           numeric: Union[int, Iterable[int]] = 1) -> str:
    """A table of text; the columns `numeric` (or from column `numeric` on) aligned right."""
    right = set(range(numeric, len(headers)) if isinstance(numeric, int) else numeric)

    def cells(tag: str, values: Iterable[Any]) -> str:
        return "".join(f'<{tag}{" class=num" if i in right else ""}>{_e(v)}</{tag}>'
                       for i, v in enumerate(values))
    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><thead><tr>{cells('th', headers)}</tr></thead><tbody>{body}</tbody></table>"


def _funnel_section(page: Page, report: Dict[str, Any]) -> None:
    steps, by_niche = report["funnel"], report["funnel_by_niche"]
    if not steps:
        page.section("funnel", "Funnel", "No videos discovered yet.")
        return
    go = page.go
    figure = go.Figure()
    for niche, niche_steps in by_niche.items():
        figure.add_trace(go.Funnel(y=[step for step, _ in niche_steps],
                                   x=[n for _, n in niche_steps], name=_label_text(niche),
                                   textinfo="value+percent initial"))
    figure.update_yaxes(type="category")
    first, last = steps[0][1], steps[-1][1]
    summary = (f"{first:,} videos discovered in {plural(len(by_niche), 'niche')}, {last:,} in an "
               f"uploaded compilation ({last / first:.1%}); each video counted at the furthest "
               "step its clips reached.")
    niches = list(by_niche)
    rows = [[step, n] + [by_niche[niche][i][1] for niche in niches]
            for i, (step, n) in enumerate(steps)]
    page.section("funnel", "Funnel: from discovered to uploaded", _e(summary),
                 page.chart("funnel", figure, 340) + _table(["step", "all niches", *niches], rows))


def _period_axis(first: str, last: str, days: int, title: str) -> Dict[str, Any]:
    """A date axis of whole periods of `days` from `first` to `last` (else plotly zooms one period
    in to ms)."""
    start = datetime.date.fromisoformat(first) - datetime.timedelta(days=days * 0.25)
    end = datetime.date.fromisoformat(last) + datetime.timedelta(days=days * 1.25)
    return dict(type="date", title=title, range=[start.isoformat(), end.isoformat()])


def _period_bars(days: int) -> Dict[str, Any]:
    """Bar settings that draw each x value as the period of `days` it starts, not as an instant."""
    return dict(xperiod=days * _DAY_MS, xperiodalignment="middle", width=days * _DAY_MS * 0.85)


def _runs_section(page: Page, report: Dict[str, Any]) -> None:
    per_niche, totals = report["runs_per_day"], report["totals"]
    if not per_niche:
        page.section("runs", "Runs by outcome", "No runs yet.")
        return
    niches = list(per_niche)
    days = sorted({day for per_day in per_niche.values() for day in per_day})
    figure = page.subplots(rows=len(niches), cols=1, shared_xaxes=True,
                           vertical_spacing=0.25 / len(niches),
                           subplot_titles=[_label_text(niche) for niche in niches])
    shown_outcomes = set()
    for row, niche in enumerate(niches, 1):
        for outcome in OUTCOMES:
            counts = [per_niche[niche].get(day, {}).get(outcome, 0) for day in days]
            if any(counts):
                figure.add_trace(page.go.Bar(
                    x=days, y=counts, name=outcome, legendgroup=outcome,
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
    rows = [[niche] + [sum(d.get(outcome, 0) for d in per_niche[niche].values())
                       for outcome in OUTCOMES] for niche in niches]
    page.section("runs", "Runs by outcome, per niche", _e(summary),
                 page.chart("runs-per-day", figure, 120 + 200 * len(niches))
                 + _table(["niche", *OUTCOMES], rows))


def _uploads_section(page: Page, report: Dict[str, Any]) -> None:
    per_day, cap = report["uploads_per_day"], report["upload_cap"]
    slot = ("one may start now" if cap["next_slot"] is None
            else f"the next slot opens {utc_text(cap['next_slot'])} UTC")
    against = (f"{cap['last_24_hours']:,} of the {cap['cap']:,} a day ({cap['key']}) in the last "
               f"24 hours; {slot}.")
    if not per_day:
        page.section("uploads", "Uploads per day against the cap",
                     _e("Nothing uploaded yet. " + against))
        return
    go, days = page.go, list(per_day)
    niches = sorted({niche for by_niche in per_day.values() for niche in by_niche})
    figure, totals = go.Figure(), Counter()
    for niche in niches:
        for kind in KINDS:
            counts = [per_day[day].get(niche, {}).get(kind, 0) for day in days]
            totals[(niche, kind)] = sum(counts)
            if any(counts):
                figure.add_trace(go.Bar(
                    x=days, y=counts, name=_label_text(f"{niche}: {kind}"),
                    marker=dict(pattern=dict(shape="/" if kind == "shorts" else "")),
                    **_period_bars(1)))
    figure.add_hline(y=cap["cap"], line=dict(color="#e45756", dash="dash"),
                     annotation_text=f"cap {cap['cap']}")
    figure.update_layout(barmode="stack",
                         xaxis=_period_axis(days[0], days[-1], 1, "day the upload began (UTC)"),
                         yaxis=dict(title="uploads (long-form and shorts)", rangemode="tozero"))
    on_day = {day: sum(sum(kinds.values()) for kinds in per_day[day].values()) for day in days}
    busiest = max(days, key=lambda day: (on_day[day], day))
    summary = (f"{sum(totals[(n, KINDS[0])] for n in niches):,} long-form videos and "
               f"{sum(totals[(n, KINDS[1])] for n in niches):,} shorts uploaded on "
               f"{plural(len(days), 'day')}; the busiest, {busiest}, had {on_day[busiest]:,}; "
               f"{plural(cap['days_at_cap'], 'day')} at the cap. " + against)
    rows = [[niche, totals[(niche, KINDS[0])], totals[(niche, KINDS[1])]] for niche in niches]
    page.section("uploads", "Uploads per day against the cap", _e(summary),
                 page.chart("uploads", figure) + _table(["niche", *KINDS], rows))


def _failures_section(page: Page, report: Dict[str, Any]) -> None:
    go = page.go
    failures, errors = report["failures"], report["unresolved_errors"]
    body = []
    failed = sum(failures.values())
    if failed:
        stages, kinds, folded = _fold(failures, MAX_ERROR_TYPES)
        z = [[folded.get((stage, kind)) for kind in kinds] for stage in stages]
        figure = go.Figure(go.Heatmap(
            z=z, x=[_label_text(k) for k in kinds], y=[_label_text(s) for s in stages],
            colorscale="Reds", texttemplate="%{z}", hoverongaps=False, showscale=False,
            hovertemplate="stage %{y}<br>%{x}: %{z} runs<extra></extra>"))
        figure.update_xaxes(type="category", title="error type")
        figure.update_yaxes(type="category", title="stage", autorange="reversed")
        body.append("<h3>Failed runs: stage × error type</h3>"
                    + page.chart("failures", figure, max(260, 60 + 40 * len(stages))))
        (most, kind), _ = sorted(failures.items(), key=lambda item: (-item[1], item[0]))[0]
        by_niche = report["failures_by_niche"]
        stages = sorted({stage for got in by_niche.values() for stage in got})
        body.append("<h3>Failed runs, per niche and stage</h3>" + _table(
            ["niche", *stages],
            [[niche, *(got.get(stage, 0) for stage in stages)] for niche, got in by_niche.items()]))
        where = f"{failed:,} runs failed for good; most at stage {most} ({kind})."
    else:
        where = "No failed runs."
    unresolved = sum(errors.values())
    if unresolved:
        modules, kinds, folded = _fold({(m, k): n for (m, k), n in errors.items()}, MAX_ERROR_TYPES)
        figure = go.Figure()
        for kind in kinds:
            figure.add_trace(go.Bar(y=[_label_text(m) for m in modules],
                                    x=[folded.get((m, kind), 0) for m in modules],
                                    name=_label_text(kind), orientation="h"))
        figure.update_layout(barmode="stack", xaxis=dict(title="unresolved errors"))
        figure.update_yaxes(type="category", autorange="reversed")
        body.append("<h3>Unresolved errors by module</h3>"
                    + page.chart("errors", figure, max(260, 80 + 30 * len(modules))))
        per_module = sum((Counter({module: n}) for (module, _), n in errors.items()), Counter())
        body.append(_table(["module", "unresolved errors"],
                           sorted(per_module.items(), key=lambda i: (-i[1], i[0])), numeric=[1]))
        where += (f" {plural(unresolved, 'unresolved error')} in "
                  f"{plural(len(per_module), 'module')}.")
    else:
        where += " No unresolved errors."
    page.section("failures", "Where runs fail", _e(where), "\n".join(body))


def _reviews_section(page: Page, report: Dict[str, Any]) -> None:
    reviews, niches = report["reviews"], report["reviews"]["niches"]
    if not reviews["requested"]:
        page.section("reviews", "Reviews", "No reviews requested yet.")
        return
    untimed = (f" (of the {reviews['timed']:,} with an answer time)"
               if reviews["answered"] > reviews["timed"] else "")
    latency = (f"median latency {_duration(reviews['median_seconds'])}, p95 "
               f"{_duration(reviews['p95_seconds'])}{untimed}" if reviews["timed"]
               else "none with an answer time (responded_at)")
    waiting = (f"{reviews['open']:,} open and {reviews['held']:,} held, the oldest sent "
               f"{_duration(reviews['oldest_waiting_seconds'])} ago"
               if reviews["open"] + reviews["held"] else "none waiting")
    summary = (f"{reviews['answered']:,} answered: {latency}. {reviews['auto_held']:,} auto-held "
               f"(nobody answered in time), {reviews['force_upload']:,} approved by force_upload; "
               f"{waiting}.")
    columns = ["requested", "answered", "median latency", "p95 latency", "auto-held",
               "force_upload", "open", "held"]
    rows = [[niche, got["requested"], got["answered"], _duration(got["median_seconds"]),
             _duration(got["p95_seconds"]), got["auto_held"], got["force_upload"], got["open"],
             got["held"]] for niche, got in [*niches.items(), ("all niches", reviews)]]
    page.section("reviews", "Reviews: latency and answers, per niche", _e(summary),
                 _latency_chart(page, niches) + _table(["niche", *columns], rows)
                 + _answers(page, niches))


def _latency_chart(page: Page, niches: Dict[str, Dict[str, Any]]) -> str:
    timed = [niche for niche, got in niches.items() if got["timed"]]
    if not timed:  # nothing answered with a time: no latency to draw
        return ""
    go, figure = page.go, page.go.Figure()
    # One unit for the whole chart, chosen by the slowest p95, so the numbers stay readable.
    slowest = max(niches[n]["p95_seconds"] for n in timed)
    unit, size = next((u, n) for u, n in (("days", 86400), ("hours", 3600), ("minutes", 60),
                                          ("seconds", 1)) if slowest >= 2 * n or n == 1)
    for key, name, colour in (("median_seconds", "median", "#4c78a8"),
                              ("p95_seconds", "p95", "#e45756")):
        figure.add_trace(go.Bar(x=[_label_text(n) for n in timed],
                                y=[niches[n][key] / size for n in timed],
                                name=f"{name} latency", marker=dict(color=colour)))
    figure.update_layout(barmode="group", xaxis=dict(type="category", title="niche"),
                         yaxis=dict(title=f"{unit} to answer", rangemode="tozero"))
    return page.chart("reviews", figure, 320)


def _answers(page: Page, niches: Dict[str, Dict[str, Any]]) -> str:
    answers = {niche: got["answers"] for niche, got in niches.items()
               if any(got["answers"].values())}
    if not answers:
        return "<p>No answers yet.</p>"
    figure = page.go.Figure([page.go.Bar(x=[_label_text(n) for n in answers],
                                         y=[got[a] for got in answers.values()], name=a)
                             for a in ANSWERS])
    figure.update_layout(barmode="stack", xaxis=dict(type="category", title="niche"),
                         yaxis=dict(title="reviews, by their answer now", rangemode="tozero",
                                    tickformat=",d"))
    rows = [[niche, *(got[a] for a in ANSWERS)] for niche, got in answers.items()]
    return ("<h3>Answers, per niche</h3>" + page.chart("answers", figure, 320)
            + _table(["niche", *ANSWERS], rows))


def _cost_section(page: Page, report: Dict[str, Any]) -> None:
    cost = report["llm_cost"]
    title = "LLM cost per uploaded compilation"
    if not cost["scripts"]:
        page.section("cost", "LLM cost", "No scripts written yet.")
        return
    per_run = cost["per_uploaded_run_usd"]
    if per_run is None:
        summary = (f"{_money(cost['all_cost_usd'])} spent on {cost['scripts']:,} scripts; nothing "
                   "uploaded yet.")
        page.section("cost", title, _e(summary))
        return
    go = page.go
    months = [m for m in cost["months"] if m["runs"]]
    figure = go.Figure(go.Bar(
        x=[m["month"] for m in months], y=[m["per_run_usd"] for m in months], name=title,
        marker=dict(color="#72b7b2"), customdata=[[m["runs"], m["cost_usd"]] for m in months],
        hovertemplate="%{x}: $%{y:.4f} a compilation<br>%{customdata[0]} uploaded, "
                      "$%{customdata[1]:.2f}<extra></extra>"))
    figure.update_layout(xaxis=dict(type="category", title="month uploaded (UTC)"),
                         yaxis=dict(title="USD per uploaded compilation", rangemode="tozero"))
    summary = (f"{_money(per_run)} per uploaded compilation ({_money(cost['uploaded_cost_usd'])} "
               f"of LLM calls for {cost['uploaded_runs']:,} uploaded runs); all-in "
               f"{_money(cost['all_in_per_uploaded_run_usd'])} counting the "
               f"{_money(cost['all_cost_usd'])} spent on every script, rejected and failed runs "
               "too.")
    page.section("cost", title, _e(summary), page.chart("cost", figure, 320))


def _views_section(page: Page, report: Dict[str, Any]) -> None:
    views = report["views"]
    per_niche, audience = views["niches"], views["audience"]
    unmatched = (f" {plural(views['unmatched_videos'], 'video')} with snapshots is neither a "
                 "run's nor a short's." if views["unmatched_videos"] else "")
    if not per_niche:
        page.section("views", "Long-form versus shorts",
                     _e("No analytics of uploaded videos yet." + unmatched))
        return
    go, niches = page.go, [_label_text(n) for n in per_niche]
    figure = page.subplots(rows=1, cols=3, subplot_titles=[
        "views (newest snapshots)", "subscribers gained", "click-through rate"])
    for kind, colour in zip(KINDS, _KIND_COLOURS):
        for col, key in enumerate(("views", "subscriber_gain", "click_through_rate"), 1):
            figure.add_trace(go.Bar(
                x=niches, y=[got.get(kind, {}).get(key) for got in per_niche.values()], name=kind,
                legendgroup=kind, showlegend=col == 1, marker=dict(color=colour)), row=1, col=col)
    figure.update_layout(barmode="group")
    figure.update_yaxes(rangemode="tozero")
    figure.update_yaxes(tickformat=".1%", row=1, col=3)
    rows = [[niche, kind, got["videos"], _count(got["views"]), _count(got["subscriber_gain"]),
             _count(got["click_through_rate"], "{:.1%}"),
             _count(got.get("average_view_duration_seconds"), "{:.0f} s")]
            for niche in per_niche
            for kind, got in [*sorted(per_niche[niche].items()), ("both", audience[niche])]]
    total = {kind: sum(got.get(kind, {}).get("views") or 0 for got in per_niche.values())
             for kind in KINDS}
    best = max(audience, key=lambda n: (audience[n]["subscriber_gain"] or 0, n))
    summary = (f"{total[KINDS[0]]:,} views of long-form videos and {total[KINDS[1]]:,} of shorts "
               f"in {plural(len(niches), 'niche')}, by each video's newest snapshot; {best} "
               f"gained the most subscribers ({_count(audience[best]['subscriber_gain'])})."
               f"{unmatched}")
    headers = ["niche", "kind", "videos", "views", "subscribers gained", "CTR", "avg view"]
    page.section("views", "Long-form versus shorts, subscribers and CTR, per niche", _e(summary),
                 page.chart("views", figure, 340) + _table(headers, rows, 2))


def _content_id_section(page: Page, report: Dict[str, Any]) -> None:
    flags = report["content_id"]
    if not flags:
        page.section("content-id", "Content-ID flags",
                     "No clip or source video of medium or high risk.")
        return
    go, niches, shade = page.go, list(flags), {"medium": 0.6, "high": 1.0}
    figure = go.Figure([go.Bar(x=[_label_text(n) for n in niches],
                               y=[flags[n][what][level] for n in niches], name=f"{what}: {level}",
                               marker=dict(color=colour, opacity=shade[level]))
                        for what, colour in (("clips", "#e45756"), ("videos", "#b279a2"))
                        for level in RISKY])
    figure.update_layout(barmode="group", xaxis=dict(type="category", title="niche"),
                         yaxis=dict(title="flagged clips", rangemode="tozero", tickformat=",d"))
    rows = [[niche, got["flagged"],
             *(got[what][level] for what in ("clips", "videos") for level in RISKY),
             got["dropped"], *(got["runs"].get(outcome, 0) for outcome in OUTCOMES)]
            for niche, got in flags.items()]
    flagged = sum(g["flagged"] for g in flags.values())
    dropped = sum(g["dropped"] for g in flags.values())
    uploaded = sum(g["runs"].get(OUTCOMES[0], 0) for g in flags.values())
    summary = (f"{plural(flagged, 'clip')} flagged (the clip's or its source video's risk medium "
               f"or high), {dropped:,} dropped by a reviewer's skip; "
               f"{plural(uploaded, 'uploaded run')} still had one.")
    headers = ["niche", "flagged", "clip medium", "clip high", "video medium", "video high",
               "dropped", *(f"runs {outcome}" for outcome in OUTCOMES)]
    page.section("content-id", "Content-ID flags, per niche", _e(summary),
                 page.chart("content-id", figure, 320) + _table(headers, rows))


def _top_section(page: Page, report: Dict[str, Any]) -> None:
    videos, top = [v for v in report["top_videos"] if v["curve"]], report["top"]
    if not videos:
        text = ("No analytics yet." if not report["totals"]["snapshots"]
                else "No view counts to draw.")
        page.section("top", "Top videos: views over time",
                     text if top else "No top videos asked for (top 0).")
        return
    go = page.go
    figure = go.Figure()
    for video in videos:
        name = f"{video['kind'] or 'unmatched'}: {video['title'] or video['youtube_video_id']}"
        figure.add_trace(go.Scatter(
            x=[utc_text(when) for when, _ in video["curve"]],
            y=[views for _, views in video["curve"]], name=_label_text(name), mode="lines",
            line=dict(dash="dot" if video["kind"] == "shorts" else "solid"),
            hovertemplate=(_label_text(video["youtube_video_id"])
                           + ": %{y:,} views<br>%{x}<extra></extra>")))
    figure.update_layout(xaxis=dict(type="date", title="measured (UTC)"), yaxis=dict(title="views"))
    rows = [(rank, v["kind"] or "unmatched", v["niche"] or "", v["title"] or "",
             v["youtube_video_id"], _count(v["view_count"]), utc_text(v["measured_at"]))
            for rank, v in enumerate(report["top_videos"], 1)]
    best = report["top_videos"][0]
    summary = (f"The {len(report['top_videos'])} most viewed videos, long-form and shorts, by "
               f"their newest snapshot; the first, {best['title'] or best['youtube_video_id']}, "
               f"has {_count(best['view_count'])} views.")
    headers = ["#", "kind", "niche", "title", "video", "views", "measured (UTC)"]
    page.section("top", "Top videos: views over time", _e(summary),
                 page.chart("top-videos", figure, 420) + _table(headers, rows, numeric=[0, 5]))


# The sections, in the page's order.
SECTIONS: Tuple[Callable[[Page, Dict[str, Any]], None], ...] = (
    _funnel_section, _runs_section, _uploads_section, _failures_section, _reviews_section,
    _cost_section, _views_section, _content_id_section, _top_section)
