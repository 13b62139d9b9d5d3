"""The read-only queries shared by the command line, the demo, the report and the benchmark.

Plain functions over the bound database; they change nothing. `status_rows` is the status table of
`pipeline-models status` and of the demo's last lines; `report_data` is every number of the HTML
report (pipeline_models.report's docstring says what each one means). Times are UTC.
"""
import datetime
import statistics
from collections import Counter, defaultdict
from typing import Any, Dict, Iterable, List, Optional, Tuple

import peewee
from peewee import SQL, Case, NodeList, fn

from .connections import database_label
from .db import db
from .enums import ContentIdRisk, ReviewAction, RunStatus, ShortStatus
from .fields import UTC, backend_of, checked_now, whole_number
from .models import (Analytics, Clip, ConfigOverride, DiscoveredVideo, ErrorLog, PipelineRun,
                     ReviewLog, Script, Short)
from .models.uploads import UploadOnce

__all__ = ["counts_by_status", "percentile", "report_data", "status_rows"]

# A video's steps, each counting the videos at it or beyond (report.py's docstring defines them).
FUNNEL_STEPS = ("discovered", "used in a clip", "in a reviewed run", "approved", "uploaded")
OUTCOMES = ("uploaded", "rejected", "failed", "in review", "in progress")
# what an uploaded video is: a run's compilation, or one of its shorts
KINDS = ("long-form", "shorts")
# What a review's answer is now: each review in one of them (report.py's docstring says which).
ANSWERS = ("approve", "force_upload", "reject", "hold", "auto_held", "skip", "redo_script")
FORCED = "force_upload"  # the response_detail of the approval ReviewLog.force_upload() writes
# a Content ID flag: medium or high risk
RISKY = (ContentIdRisk.medium.value, ContentIdRisk.high.value)
NO_STAGE = "(no stage)"
NOT_LOGGED = "(no error logged)"
LEASE_EXPIRED = "lease expired (no heartbeat)"
# What requeue_stale() writes to error_message when a run runs out of attempts without a heartbeat.
_LEASE_PATTERN = "gave up after % attempts: no heartbeat for %"
# The newest snapshot of each video, kept by triggers on analytics (models/analytics.py); read,
# never written.
_LATEST = peewee.Table("analytics_latest",
                       ("youtube_video_id", "view_count", "subscriber_gain", "click_through_rate",
                        "average_view_duration_seconds")).bind(db)


def percentile(sorted_values: List[float], percent: int) -> float:
    """Nearest-rank percentile of an ascending, non-empty list: the smallest value with `percent` %
    at or below it."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be more than 0 and at most 100, not {percent!r}")
    # ceil(percent / 100 * n) in integers: no float rounding
    rank = -(-percent * len(sorted_values) // 100)
    return sorted_values[rank - 1]


def counts_by_status(model: Any, statuses: Iterable[Any]) -> Dict[str, int]:
    """{status value: rows of `model` in it} for every member of the enum `statuses`, in its order
    (0 if none)."""
    counts = dict(model.select(model.status, fn.COUNT(model.id)).group_by(model.status).tuples())
    return {member.value: counts.get(member.value, 0) for member in statuses}


# --- the status table -----------------------------------------------------------------------------

def status_rows() -> List[List[Any]]:
    """(what, status, count) for runs and shorts by status, open and held reviews and unresolved
    errors."""
    rows: List[List[Any]] = []
    for model, enum_, what in ((PipelineRun, RunStatus, "runs"), (Short, ShortStatus, "shorts")):
        rows += [[what, status, count] for status, count in counts_by_status(model, enum_).items()]
    # A review's states (ReviewLog.TRANSITIONS): open (no answer yet), held (may still be answered),
    # answered.
    rows.append(["reviews", "open", ReviewLog.select().where(ReviewLog.action.is_null()).count()])
    held = ReviewLog.select().where(ReviewLog.action == ReviewAction.hold)
    rows.append(["reviews", "held", held.count()])
    rows.append(["reviews", "of which auto-held",
                 held.where(ReviewLog.auto_held == True).count()])  # noqa: E712
    rows.append(["errors", "unresolved", ErrorLog.unresolved().count()])
    return rows


# --- the report's numbers -------------------------------------------------------------------------

def _utc_text(expression: Any, sqlite_length: int, pg_format: str) -> Any:
    """The UTC date of a timestamp expression as text: 'YYYY-MM-DD' (10) or 'YYYY-MM' (7).

    SQLite stores UTC timestamps as fixed-width text, so the date is its prefix. Literals, not
    parameters: PostgreSQL only matches a GROUP BY expression to the selected one when their text is
    the same.
    """
    # coerce(False): the text as it is, not parsed by the timestamp field's converter.
    if backend_of(db) == "postgres":
        return fn.to_char(NodeList((expression, SQL("AT TIME ZONE 'UTC'")), parens=True),
                          SQL(f"'{pg_format}'")).coerce(False)
    return fn.substr(expression, SQL("1"), SQL(str(sqlite_length))).coerce(False)


def _day(expression: Any) -> Any:
    return _utc_text(expression, 10, "YYYY-MM-DD")


def _month(expression: Any) -> Any:
    return _utc_text(expression, 7, "YYYY-MM")


def _seconds_between(start: Any, end: Any) -> Any:
    """end - start in seconds, as a float, on either backend."""
    if backend_of(db) == "postgres":
        return NodeList((SQL("EXTRACT(EPOCH FROM"), end, SQL("-"), start, SQL(")"))).cast(
            "double precision")
    return (fn.julianday(end) - fn.julianday(start)) * SQL("86400.0")


def _videos_per_niche() -> Dict[str, int]:
    """{niche: videos discovered}: one pass over the niche index, for the totals and the funnel."""
    video = DiscoveredVideo
    return dict(video.select(video.niche, fn.COUNT(video.id)).group_by(video.niche).tuples())


def _totals(videos: Dict[str, int]) -> Dict[str, Any]:
    runs_by_status = counts_by_status(PipelineRun, RunStatus)
    paused = PipelineRun.paused_niches()
    niches = set(videos) | paused | {
        niche for (niche,) in PipelineRun.select(PipelineRun.niche).distinct().tuples()}
    return {
        "videos": sum(videos.values()),
        "niches": sorted(niches),
        "paused_niches": sorted(paused),
        "runs": sum(runs_by_status.values()),
        "runs_by_status": runs_by_status,
        "uploaded_runs": runs_by_status[RunStatus.uploaded.value],
        "uploaded_shorts": Short.select().where(Short.status == ShortStatus.uploaded).count(),
        "open_reviews": ReviewLog.select().where(ReviewLog.action.is_null()).count(),
        "held_reviews": ReviewLog.select().where(ReviewLog.action == ReviewAction.hold).count(),
        "unresolved_errors": ErrorLog.unresolved().count(),
        "snapshots": Analytics.select().count(),
    }


def _funnel(videos: Dict[str, int]) -> Tuple[List[Tuple[str, int]],
                                             Dict[str, List[Tuple[str, int]]]]:
    """(steps of every niche, {niche: its steps}): (step, videos at that step or beyond); [] and {}
    without videos.

    A video counts at the furthest step any of its clips reached: a clip a reviewer's skip dropped
    was in a reviewed run, but never in an approved or uploaded one.
    """
    if not videos:
        return [], {}
    run, clip = PipelineRun, Clip
    reviewed = fn.EXISTS(ReviewLog.select(SQL("1")).where(ReviewLog.pipeline_run == run.id))
    approved = fn.EXISTS(ReviewLog.select(SQL("1")).where(
        (ReviewLog.pipeline_run == run.id) & (ReviewLog.action == ReviewAction.approve)))
    kept = clip.dropped_at.is_null()
    # A run made directly as uploaded (or approved) still counts as approved and reviewed.
    furthest = Case(None, [
        ((run.status == RunStatus.uploaded) & kept, SQL("4")),
        ((run.status.in_([RunStatus.approved, RunStatus.uploaded]) | approved) & kept, SQL("3")),
        (run.status.in_([RunStatus.review, RunStatus.approved, RunStatus.uploaded,
                         RunStatus.rejected])
         | reviewed | ~kept, SQL("2")),
    ], SQL("1"))
    video = DiscoveredVideo
    per_video = (clip.select(video.niche.alias("niche"), fn.MAX(furthest).alias("step"))
                 .join(run).join_from(clip, video).group_by(clip.discovered_video, video.niche)
                 .alias("per_video"))
    reached: Dict[str, Counter] = defaultdict(Counter)
    counts = (clip.select(per_video.c.niche, per_video.c.step, fn.COUNT(SQL("*")))
              .from_(per_video).group_by(per_video.c.niche, per_video.c.step).tuples())
    for niche, step, count in counts:
        reached[niche][int(step)] += count

    def steps(found: int, at: Counter) -> List[Tuple[str, int]]:
        return [(FUNNEL_STEPS[0], found)] + [(FUNNEL_STEPS[n], sum(c for s,
                                                                   c in at.items() if s >= n))
                                             for n in range(1, len(FUNNEL_STEPS))]
    every: Counter = sum(reached.values(), Counter())
    return steps(sum(videos.values()), every), {
        niche: steps(videos[niche], reached[niche]) for niche in sorted(videos)}


def _outcome(status: Any) -> str:
    value = RunStatus(status)  # the field hands back the enum
    if value.value in OUTCOMES:
        return value.value
    return "in review" if value is RunStatus.review else "in progress"


def _runs_per_day() -> Dict[str, Dict[str, Dict[str, int]]]:
    """{niche: {UTC day of the cycle: {outcome: runs}}}, niches and days in order, only the outcomes
    a day has."""
    day = _day(PipelineRun.cycle_start)
    rows = (PipelineRun.select(PipelineRun.niche, day, PipelineRun.status, fn.COUNT(PipelineRun.id))
            .group_by(PipelineRun.niche, day, PipelineRun.status)
            .order_by(PipelineRun.niche, day).tuples())
    per_niche: Dict[str, Dict[str, Dict[str, int]]] = {}
    for niche, when, status, count in rows:
        outcomes = per_niche.setdefault(niche, {}).setdefault(when, {})
        outcomes[_outcome(status)] = outcomes.get(_outcome(status), 0) + count
    return per_niche


def _uploads_per_day(now: datetime.datetime) -> Tuple[Dict[str, Dict[str, Dict[str, int]]],
                                                      Dict[str, Any]]:
    """({UTC day: {niche: {"long-form": n, "shorts": n}}}, the cap): every upload the daily cap
    counts, by the day it began (upload_started_at; a recording with no start, by the day recorded),
    days in order."""
    run, short = PipelineRun, Short
    per_day: Dict[str, Dict[str, Dict[str, int]]] = {}
    for kind, model, recorded in zip(KINDS, (run, short), (run.completed_at, short.uploaded_at)):
        # What UploadOnce.uploads_since() counts: begun (in flight or in doubt too), or recorded
        # without a start.
        counted = model.upload_started_at.is_null(False) | (model.youtube_video_id.is_null(False)
                                                            & recorded.is_null(False))
        day = _day(fn.COALESCE(model.upload_started_at, recorded))
        rows = model.select(day, run.niche, fn.COUNT(model.id))
        rows = ((rows if model is run else rows.join(run)).where(counted)
                .group_by(day, run.niche).tuples())
        for when, niche, count in rows:
            per_day.setdefault(when, {}).setdefault(niche, dict.fromkeys(KINDS, 0))[kind] += count
    per_day = {when: dict(sorted(per_day[when].items())) for when in sorted(per_day)}
    cap = ConfigOverride.setting(UploadOnce.MAX_UPLOADS_KEY, UploadOnce.MAX_UPLOADS)
    on_day = {when: sum(sum(kinds.values()) for kinds in niches.values()) for when,
              niches in per_day.items()}
    return per_day, {
        "cap": cap, "key": UploadOnce.MAX_UPLOADS_KEY,
        "days_at_cap": sum(1 for n in on_day.values() if n >= cap),
        "last_24_hours": len(UploadOnce.uploads_since(now - UploadOnce.DAY)),
        "next_slot": UploadOnce.next_upload_slot(now),
    }


def _failures() -> Tuple[Dict[Tuple[str, str], int], Dict[str, Dict[str, int]]]:
    """({(stage, error type): runs failed for good}, {niche: {stage: those runs}}); report.py's
    docstring says how the type is chosen."""
    run = PipelineRun
    newest_error = (ErrorLog.select(ErrorLog.error_type).where(ErrorLog.pipeline_run == run.id)
                    .order_by(ErrorLog.occurred_at.desc(), ErrorLog.id.desc()).limit(1))
    # not peewee's %: that is GLOB on SQLite
    lease = NodeList((run.error_message, SQL("LIKE"), _LEASE_PATTERN))
    error_type = Case(None, [(lease, LEASE_EXPIRED)], fn.COALESCE(newest_error, NOT_LOGGED))
    # A subquery: PostgreSQL matches GROUP BY to the select list by text, and parameters never
    # match.
    failed = (run.select(run.niche, fn.COALESCE(run.current_stage, NO_STAGE).alias("stage"),
                         error_type.alias("error_type"))
              .where(run.status == RunStatus.failed).alias("failed"))
    rows = (
        run.select(failed.c.niche, failed.c.stage, failed.c.error_type, fn.COUNT(SQL("*")))
        .from_(failed).group_by(failed.c.niche, failed.c.stage, failed.c.error_type).tuples())
    by_type: Counter = Counter()
    by_niche: Dict[str, Counter] = defaultdict(Counter)
    for niche, stage, kind, count in rows:
        by_type[(stage, kind)] += count
        by_niche[niche][stage] += count
    return dict(by_type), {
        niche: dict(sorted(by_niche[niche].items())) for niche in sorted(by_niche)}


def _unresolved_errors() -> Dict[Tuple[str, str], int]:
    """{(module, error type): unresolved errors}."""
    rows = (ErrorLog.select(ErrorLog.module, ErrorLog.error_type, fn.COUNT(ErrorLog.id))
            .where(ErrorLog.resolved == False)  # noqa: E712
            .group_by(ErrorLog.module, ErrorLog.error_type).tuples())
    return {(module, kind): count for module, kind, count in rows}


def _answer(action: Any, auto_held: bool) -> str:
    """Which of ANSWERS (or "open") a review's answer now is; a forced upload is told apart by its
    count."""
    if action is None:
        return "open"
    action = ReviewAction(action)
    if action is ReviewAction.hold:
        return "auto_held" if auto_held else "hold"
    return action.value


def _review_stats(answers: Counter, auto_held: int, latencies: List[float]) -> Dict[str, Any]:
    """The numbers of a set of reviews: `answers` counts each by _answer(), `auto_held` those ever
    auto-held."""
    latencies = sorted(latencies)
    held, still_open = answers["hold"] + answers["auto_held"], answers["open"]
    requested = sum(answers.values())
    return {"requested": requested, "answered": requested - still_open - held, "open": still_open,
            "held": held, "auto_held": auto_held, "force_upload": answers["force_upload"],
            "timed": len(latencies),
            "median_seconds": statistics.median(latencies) if latencies else None,
            "p95_seconds": percentile(latencies, 95) if latencies else None,
            "answers": {answer: answers[answer] for answer in ANSWERS}}


def _reviews(now: datetime.datetime) -> Dict[str, Any]:
    review, run = ReviewLog, PipelineRun
    forced = fn.SUM(Case(None, [(review.response_detail == FORCED, 1)], 0))
    rows = (
        review.select(run.niche, review.action, review.auto_held, fn.COUNT(review.id), forced)
        .join(run).group_by(run.niche, review.action, review.auto_held).tuples())
    answers: Dict[str, Counter] = defaultdict(Counter)
    auto_held: Counter = Counter()
    for niche, action, held, count, forced_count in rows:
        auto_held[niche] += count if held else 0
        answer = _answer(action, held)
        # /force_upload approves a held review with this detail
        if answer == ReviewAction.approve.value:
            answers[niche]["force_upload"] += int(forced_count or 0)
            count -= int(forced_count or 0)
        answers[niche][answer] += count
    # Latency needs both times: an answer recorded by other code without responded_at has none. A
    # hold is not the answer yet: a held review answered later (or forced) has the time of that
    # answer.
    timed = (review.action.is_null(False) & (review.action != ReviewAction.hold)
             & review.responded_at.is_null(False))
    latencies: Dict[str, List[float]] = defaultdict(list)
    for niche, seconds in (review.select(run.niche, _seconds_between(review.sent_at,
                                                                     review.responded_at))
                           .join(run).where(timed).tuples()):
        latencies[niche].append(float(seconds))
    waiting = review.action.is_null() | (review.action == ReviewAction.hold)
    oldest = review.select(fn.MIN(review.sent_at)).where(waiting).scalar()
    if isinstance(oldest, str):  # an aggregate's value skips the field's conversion on SQLite
        oldest = review.sent_at.python_value(oldest)
    every = _review_stats(sum(answers.values(), Counter()), sum(auto_held.values()),
                          [s for values in latencies.values() for s in values])
    return {**every,
            "oldest_waiting_seconds": None if oldest is None else (now - oldest).total_seconds(),
            "niches": {niche: _review_stats(answers[niche], auto_held[niche], latencies[niche])
              for niche in sorted(answers)}}


def _views() -> Dict[str, Any]:
    """Each niche's long-form and shorts by their newest snapshots, through both kinds of YouTube
    id."""
    latest, run = _LATEST, PipelineRun
    measures = (fn.COUNT(latest.youtube_video_id), fn.SUM(latest.view_count),
                fn.SUM(latest.subscriber_gain), fn.COUNT(latest.click_through_rate),
                fn.SUM(latest.click_through_rate), fn.AVG(latest.average_view_duration_seconds))
    long_form = (run.select(run.niche, *measures)
                 .join(latest, on=(latest.youtube_video_id == run.youtube_video_id))
                 .group_by(run.niche).tuples())
    shorts = (Short.select(run.niche, *measures).join(run)
              .join_from(Short, latest, on=(latest.youtube_video_id == Short.youtube_video_id))
              .group_by(run.niche).tuples())
    per_niche: Dict[str, Dict[str, Dict[str, Any]]] = {}
    # a niche's CTR: the mean of every one reported, both kinds
    rates: Dict[str, Counter] = defaultdict(Counter)
    for kind, rows in zip(KINDS, (long_form, shorts)):
        for niche, videos, views, subscribers, reported, ctr, duration in rows:
            per_niche.setdefault(niche, {})[kind] = {
                "videos": videos, "views": None if views is None else int(views),
                "subscriber_gain": None if subscribers is None else int(subscribers),
                "click_through_rate": float(ctr) / reported if reported else None,
                "average_view_duration_seconds": None if duration is None else float(duration)}
            rates[niche].update({"reported": reported, "sum": float(ctr or 0)})
    audience = {}
    for niche, kinds in sorted(per_niche.items()):
        gains = [
            got["subscriber_gain"] for got in kinds.values() if got["subscriber_gain"] is not None]
        audience[niche] = {"videos": sum(got["videos"] for got in kinds.values()),
                           "views": sum(got["views"] or 0 for got in kinds.values()),
                           "subscriber_gain": sum(gains) if gains else None,
                           "click_through_rate": (rates[niche]["sum"] / rates[niche]["reported"]
                                                  if rates[niche]["reported"] else None)}
    known = (
        fn.EXISTS(Short.select(SQL("1")).where(Short.youtube_video_id == latest.youtube_video_id))
        | fn.EXISTS(run.select(SQL("1")).where(run.youtube_video_id == latest.youtube_video_id)))
    unmatched = latest.select(fn.COUNT(SQL("*"))).where(~known).scalar()
    return {"niches": dict(sorted(per_niche.items())), "audience": audience,
            "unmatched_videos": unmatched or 0}


def _content_id() -> Dict[str, Dict[str, Any]]:
    """{niche: its clips flagged for Content ID}: the clip's own risk or its source video's medium
    or high."""
    run, clip, video = PipelineRun, Clip, DiscoveredVideo
    flagged = clip.content_id_risk.in_(RISKY) | video.content_id_risk.in_(RISKY)
    dropped = clip.dropped_at.is_null(False)
    rows = (clip.select(run.niche, clip.content_id_risk, video.content_id_risk, dropped,
                        fn.COUNT(clip.id))
            .join(run).join_from(clip, video).where(flagged)
            .group_by(run.niche, clip.content_id_risk, video.content_id_risk, dropped).tuples())
    per_niche: Dict[str, Dict[str, Any]] = {}

    def of(niche: str) -> Dict[str, Any]:
        return per_niche.setdefault(niche, {"clips": dict.fromkeys(RISKY, 0),
                                            "videos": dict.fromkeys(RISKY, 0), "flagged": 0,
                                            "dropped": 0, "runs": {}})
    for niche, clip_risk, video_risk, was_dropped, count in rows:
        got = of(niche)
        for level, counts in ((clip_risk, got["clips"]), (video_risk, got["videos"])):
            if level is not None and ContentIdRisk(level).value in counts:
                counts[ContentIdRisk(level).value] += count
        got["flagged"] += count
        got["dropped"] += count if was_dropped else 0
    # The runs that still have a flagged clip (a skip may have dropped it), by their outcome now.
    runs = (
        run.select(run.niche, run.status, fn.COUNT(fn.DISTINCT(run.id))).join(clip).join_from(clip,
                                                                                              video)
        .where(flagged & ~dropped).group_by(run.niche, run.status).tuples())
    for niche, status, count in runs:
        outcomes = of(niche)["runs"]
        outcomes[_outcome(status)] = outcomes.get(_outcome(status), 0) + count
    return dict(sorted(per_niche.items()))


def _llm_cost() -> Dict[str, Any]:
    run = PipelineRun
    uploaded = run.status == RunStatus.uploaded
    month = _month(fn.COALESCE(run.completed_at, run.created_at))
    cost_rows = (Script.select(month, fn.SUM(Script.cost_usd)).join(run).where(uploaded)
                 .group_by(month).tuples())
    run_rows = run.select(month, fn.COUNT(run.id)).where(uploaded).group_by(month).tuples()
    cost = {when: float(total or 0) for when, total in cost_rows}
    runs = dict(run_rows)
    months = []
    for when in sorted(set(cost) | set(runs)):
        spent, count = cost.get(when, 0.0), runs.get(when, 0)
        months.append({"month": when, "cost_usd": spent, "runs": count,
                       "per_run_usd": spent / count if count else None})
    uploaded_cost, uploaded_runs = sum(cost.values(), 0.0), sum(runs.values())
    all_cost = float(Script.select(fn.SUM(Script.cost_usd)).scalar() or 0)
    return {
        "scripts": Script.select().count(),
        "uploaded_cost_usd": uploaded_cost,
        "all_cost_usd": all_cost,
        "uploaded_runs": uploaded_runs,
        "per_uploaded_run_usd": uploaded_cost / uploaded_runs if uploaded_runs else None,
        "all_in_per_uploaded_run_usd": all_cost / uploaded_runs if uploaded_runs else None,
        "months": months,
    }


def _top_videos(top: int) -> List[Dict[str, Any]]:
    latest = Analytics.top(top)
    ids = [row.youtube_video_id for row in latest]
    if not ids:
        return []
    run = PipelineRun
    what: Dict[str, Tuple[str, str, Optional[str]]] = {}
    for video, niche, title in (
            Short.select(Short.youtube_video_id, run.niche, Short.title).join(run)
            .where(Short.youtube_video_id.in_(ids)).tuples()):
        what[video] = ("shorts", niche, title)
    newest_title = (
        Script.select(Script.title).where(
            (Script.pipeline_run == run.id) & Script.title.is_null(False))
        .order_by(Script.generated_at.desc(), Script.id.desc()).limit(1))
    for video, niche, title in (run.select(run.youtube_video_id, run.niche, newest_title)
                                .where(run.youtube_video_id.in_(ids)).tuples()):
        what[video] = ("long-form", niche, title)
    curves: Dict[str, List[Tuple[datetime.datetime, int]]] = defaultdict(list)
    # Only these videos' snapshots, through the (youtube_video_id, measured_at) index.
    points = (Analytics.select(Analytics.youtube_video_id, Analytics.measured_at,
                               Analytics.view_count)
              .where(Analytics.youtube_video_id.in_(ids) & Analytics.view_count.is_null(False))
              .order_by(Analytics.youtube_video_id, Analytics.measured_at, Analytics.id).tuples())
    for video, measured_at, views in points:
        curves[video].append((measured_at, views))
    rows = []
    for row in latest:
        kind, niche, title = what.get(row.youtube_video_id, (None, None, None))
        rows.append({"youtube_video_id": row.youtube_video_id, "kind": kind, "niche": niche,
                     "title": title, "view_count": row.view_count, "like_count": row.like_count,
                     "measured_at": row.measured_at, "curve": curves.get(row.youtube_video_id, [])})
    return rows


def report_data(*, now: Optional[datetime.datetime] = None, top: int = 10) -> Dict[str, Any]:
    """Every number the report shows, as plain Python values, read from the bound database
    (read-only)."""
    now = checked_now("report", now).astimezone(UTC)
    whole_number("report: top", 0, unit="videos")(top)
    outermost = not db.in_transaction()  # else atomic() is a savepoint in the caller's transaction
    with db.atomic():
        if backend_of(db) == "postgres" and outermost:
            # One snapshot for every query, so the sections agree with one another; and nothing can
            # write.
            db.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        videos = _videos_per_niche()
        funnel, funnel_by_niche = _funnel(videos)
        uploads_per_day, upload_cap = _uploads_per_day(now)
        failures, failures_by_niche = _failures()
        return {
            "generated_at": now,
            "database": database_label(db),
            "totals": _totals(videos),
            "funnel": funnel,
            "funnel_by_niche": funnel_by_niche,
            "runs_per_day": _runs_per_day(),
            "uploads_per_day": uploads_per_day,
            "upload_cap": upload_cap,
            "failures": failures,
            "failures_by_niche": failures_by_niche,
            "unresolved_errors": _unresolved_errors(),
            "reviews": _reviews(now),
            "llm_cost": _llm_cost(),
            "views": _views(),
            "content_id": _content_id(),
            "top_videos": _top_videos(top),
            "top": top,
        }
