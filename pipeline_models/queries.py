"""The read-only queries shared by the command line, the demo, the report and the benchmark.

Plain functions over the bound database; they change nothing. `status_rows` is the status table of
`pipeline-models status` and of the demo's last lines; `report_data` is every number of the HTML report
(pipeline_models.report's docstring says what each one means). Times are UTC.
"""
import datetime
import statistics
from collections import Counter, defaultdict
from typing import Any, Dict, Iterable, List, Optional, Tuple

import peewee
from peewee import SQL, Case, NodeList, fn

from .db import _is_postgres, _label, db
from .enums import ReviewAction, RunStatus, ShortStatus
from .fields import UTC, _now
from .models import Analytics, DiscoveredVideo, ErrorLog, PipelineRun, ReviewLog, Script, Short

__all__ = ["counts_by_status", "percentile", "report_data", "status_rows"]

FUNNEL_STEPS = ("discovered", "selected (has a run)", "produced a short", "sent to review", "approved",
                "published")
OUTCOMES = ("published", "rejected", "failed", "in progress")
NO_STAGE = "(no stage)"
NOT_LOGGED = "(no error logged)"
LEASE_EXPIRED = "lease expired (no heartbeat)"
# What requeue_stale() writes to last_error when a run runs out of attempts without a heartbeat.
_LEASE_PATTERN = "gave up after % attempts: no heartbeat for %"


def percentile(sorted_values: List[float], percent: int) -> float:
    """Nearest-rank percentile of an ascending, non-empty list: the smallest value with `percent` % at or below it."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be more than 0 and at most 100, not {percent!r}")
    rank = -(-percent * len(sorted_values) // 100)  # ceil(percent / 100 * n) in integers: no float rounding
    return sorted_values[rank - 1]


def counts_by_status(model: Any, statuses: Iterable[Any]) -> Dict[str, int]:
    """{status value: rows of `model` in it} for every member of the enum `statuses`, in its order (0 if none)."""
    counts = dict(model.select(model.status, fn.COUNT(model.id)).group_by(model.status).tuples())
    return {member.value: counts.get(member.value, 0) for member in statuses}


# --- the status table ----------------------------------------------------------------------------------

def status_rows() -> List[List[Any]]:
    """(what, status, count) for runs and shorts by status, open reviews and unresolved errors."""
    rows: List[List[Any]] = []
    for model, enum_, what in ((PipelineRun, RunStatus, "runs"), (Short, ShortStatus, "shorts")):
        rows += [[what, status, count] for status, count in counts_by_status(model, enum_).items()]
    open_reviews = ReviewLog.unanswered()
    rows.append(["reviews", "open", open_reviews.count()])
    held = open_reviews.where(ReviewLog.auto_held == True).count()  # noqa: E712
    rows.append(["reviews", "of which auto-held", held])
    rows.append(["errors", "unresolved", ErrorLog.unresolved().count()])
    return rows


# --- the report's numbers ------------------------------------------------------------------------------

def _utc_text(expression: Any, sqlite_length: int, pg_format: str) -> Any:
    """The UTC date of a timestamp expression as text: 'YYYY-MM-DD' (10) or 'YYYY-MM' (7).

    SQLite stores UTC timestamps as fixed-width text, so the date is its prefix. Literals, not parameters:
    PostgreSQL only matches a GROUP BY expression to the selected one when their text is the same.
    """
    # coerce(False): the text as it is, not parsed by the timestamp field's converter.
    if _is_postgres():
        return fn.to_char(NodeList((expression, SQL("AT TIME ZONE 'UTC'")), parens=True),
                          SQL(f"'{pg_format}'")).coerce(False)
    return fn.substr(expression, SQL("1"), SQL(str(sqlite_length))).coerce(False)


def _day(expression: Any) -> Any:
    return _utc_text(expression, 10, "YYYY-MM-DD")


def _month(expression: Any) -> Any:
    return _utc_text(expression, 7, "YYYY-MM")


def _seconds_between(start: Any, end: Any) -> Any:
    """end - start in seconds, as a float, on either backend."""
    if _is_postgres():
        return NodeList((SQL("EXTRACT(EPOCH FROM"), end, SQL("-"), start, SQL(")"))).cast("double precision")
    return (fn.julianday(end) - fn.julianday(start)) * SQL("86400.0")


def _totals() -> Dict[str, Any]:
    runs_by_status = counts_by_status(PipelineRun, RunStatus)
    return {
        "videos": DiscoveredVideo.select().count(),
        "runs": sum(runs_by_status.values()),
        "runs_by_status": runs_by_status,
        "published_runs": runs_by_status[RunStatus.published.value],
        "published_shorts": _published_shorts().count(),
        "open_reviews": ReviewLog.unanswered().count(),
        "unresolved_errors": ErrorLog.unresolved().count(),
        "snapshots": Analytics.select().count(),
    }


def _published_shorts() -> peewee.ModelSelect:
    return (Short.select().join(PipelineRun)
            .where((Short.status == ShortStatus.uploaded) & (PipelineRun.status == RunStatus.published)))


def _funnel(videos: int) -> List[Tuple[str, int]]:
    """(step, videos at that step or beyond), from discovered to published; [] when nothing was discovered."""
    if not videos:
        return []
    run = PipelineRun
    # Each run's furthest step, from its status and what it has (one index seek per run and table): a run
    # created directly as published still counts as approved, reviewed and produced.
    has_short = fn.EXISTS(Short.select(SQL("1")).where(Short.pipeline_run == run.id))
    has_review = fn.EXISTS(ReviewLog.select(SQL("1")).where(ReviewLog.pipeline_run == run.id))
    approved = fn.EXISTS(ReviewLog.select(SQL("1")).where(
        (ReviewLog.pipeline_run == run.id) & ReviewLog.action.in_([ReviewAction.approve, ReviewAction.edit])))
    furthest = Case(None, [
        (run.status == RunStatus.published, SQL("5")),
        ((run.status == RunStatus.approved) | approved, SQL("4")),
        (run.status.in_([RunStatus.awaiting_review, RunStatus.rejected]) | has_review, SQL("3")),
        (has_short, SQL("2")),
    ], SQL("1"))
    per_video = (run.select(run.discovered_video, fn.MAX(furthest).alias("step"))
                 .group_by(run.discovered_video).alias("per_video"))
    reached = Counter(dict(run.select(per_video.c.step, fn.COUNT(SQL("*")))
                           .from_(per_video).group_by(per_video.c.step).tuples()))
    steps = [(FUNNEL_STEPS[0], videos)]
    for step in range(1, len(FUNNEL_STEPS)):
        steps.append((FUNNEL_STEPS[step], sum(n for s, n in reached.items() if int(s) >= step)))
    return steps


def _outcome(status: Any) -> str:
    value = RunStatus(status).value  # the field hands back the enum
    return value if value in OUTCOMES else "in progress"


def _runs_per_day() -> Dict[str, Dict[str, int]]:
    """{UTC day queued: {outcome: runs}}, days in order, only the outcomes that day has."""
    day = _day(PipelineRun.created_at)
    rows = (PipelineRun.select(day, PipelineRun.status, fn.COUNT(PipelineRun.id))
            .group_by(day, PipelineRun.status).order_by(day).tuples())
    per_day: Dict[str, Dict[str, int]] = {}
    for when, status, count in rows:
        outcomes = per_day.setdefault(when, {})
        outcomes[_outcome(status)] = outcomes.get(_outcome(status), 0) + count
    return per_day


def _failures() -> Dict[Tuple[str, str], int]:
    """{(stage, error type): runs failed for good}; see the module docstring for how the type is chosen."""
    run = PipelineRun
    newest_error = (ErrorLog.select(ErrorLog.error_type).where(ErrorLog.pipeline_run == run.id)
                    .order_by(ErrorLog.occurred_at.desc(), ErrorLog.id.desc()).limit(1))
    lease = NodeList((run.last_error, SQL("LIKE"), _LEASE_PATTERN))  # not peewee's %: that is GLOB on SQLite
    error_type = Case(None, [(lease, LEASE_EXPIRED)], fn.COALESCE(newest_error, NOT_LOGGED))
    failed = (run.select(fn.COALESCE(run.current_stage, NO_STAGE).alias("stage"), error_type.alias("error_type"))
              .where(run.status == RunStatus.failed).alias("failed"))
    rows = (run.select(failed.c.stage, failed.c.error_type, fn.COUNT(SQL("*"))).from_(failed)
            .group_by(failed.c.stage, failed.c.error_type).tuples())
    return {(stage, kind): count for stage, kind, count in rows}


def _unresolved_errors() -> Dict[Tuple[str, str], int]:
    """{(module, error type): unresolved errors}."""
    rows = (ErrorLog.select(ErrorLog.module, ErrorLog.error_type, fn.COUNT(ErrorLog.id))
            .where(ErrorLog.resolved == False)  # noqa: E712
            .group_by(ErrorLog.module, ErrorLog.error_type).tuples())
    return {(module, kind): count for module, kind, count in rows}


def _week(day: str) -> str:
    """The Monday starting the week of a 'YYYY-MM-DD' day."""
    date = datetime.date.fromisoformat(day)
    return (date - datetime.timedelta(days=date.weekday())).isoformat()


def _reviews(now: datetime.datetime) -> Dict[str, Any]:
    # Latency needs both times: an answer recorded by other code without responded_at has none.
    timed = ReviewLog.action.is_null(False) & ReviewLog.responded_at.is_null(False)
    day = _day(ReviewLog.sent_at)
    rows = ReviewLog.select(day, _seconds_between(ReviewLog.sent_at, ReviewLog.responded_at)).where(timed).tuples()
    per_week: Dict[str, List[float]] = defaultdict(list)
    every: List[float] = []
    for when, seconds in rows:
        per_week[_week(when)].append(float(seconds))
        every.append(float(seconds))
    every.sort()
    held_rows = (ReviewLog.select(day, ReviewLog.action.is_null(), fn.COUNT(ReviewLog.id))
                 .where(ReviewLog.auto_held == True).group_by(day, ReviewLog.action.is_null()).tuples())  # noqa: E712
    held_per_week: Counter = Counter()
    held_open = held_answered = 0
    for when, still_open, count in held_rows:
        held_per_week[_week(when)] += count
        if still_open:
            held_open += count
        else:
            held_answered += count
    weeks = []
    for week in sorted(set(per_week) | set(held_per_week)):
        values = sorted(per_week.get(week, []))
        weeks.append({"week": week, "timed": len(values), "auto_held": held_per_week.get(week, 0),
                      "median_seconds": statistics.median(values) if values else None,
                      "p95_seconds": percentile(values, 95) if values else None})
    oldest_open = ReviewLog.select(fn.MIN(ReviewLog.sent_at)).where(ReviewLog.action.is_null()).scalar()
    if isinstance(oldest_open, str):  # an aggregate's value skips the field's conversion on SQLite
        oldest_open = ReviewLog.sent_at.python_value(oldest_open)
    requested, still_open = ReviewLog.select().count(), ReviewLog.unanswered().count()
    return {
        "requested": requested,
        "answered": requested - still_open,
        "timed": len(every),
        "open": still_open,
        "oldest_open_seconds": None if oldest_open is None else (now - oldest_open).total_seconds(),
        "median_seconds": statistics.median(every) if every else None,
        "p95_seconds": percentile(every, 95) if every else None,
        "auto_held": held_open + held_answered,
        "auto_held_open": held_open,
        "auto_held_answered": held_answered,
        "weeks": weeks,
    }


def _llm_cost() -> Dict[str, Any]:
    published = PipelineRun.status == RunStatus.published
    month = _month(fn.COALESCE(PipelineRun.finished_at, PipelineRun.created_at))
    cost_rows = (Script.select(month, fn.SUM(Script.cost_usd)).join(PipelineRun).where(published)
                 .group_by(month).tuples())
    short_rows = (Short.select(month, fn.COUNT(Short.id)).join(PipelineRun)
                  .where(published & (Short.status == ShortStatus.uploaded)).group_by(month).tuples())
    cost = {when: float(total or 0) for when, total in cost_rows}
    shorts = dict(short_rows)
    months = []
    for when in sorted(set(cost) | set(shorts)):
        spent, count = cost.get(when, 0.0), shorts.get(when, 0)
        months.append({"month": when, "cost_usd": spent, "shorts": count,
                       "per_short_usd": spent / count if count else None})
    published_cost, published_shorts = sum(cost.values()), sum(shorts.values())
    all_cost = float(Script.select(fn.SUM(Script.cost_usd)).scalar() or 0)
    return {
        "scripts": Script.select().count(),
        "published_cost_usd": published_cost,
        "all_cost_usd": all_cost,
        "published_shorts": published_shorts,
        "per_published_short_usd": published_cost / published_shorts if published_shorts else None,
        "all_in_per_published_short_usd": all_cost / published_shorts if published_shorts else None,
        "months": months,
    }


def _top_shorts(top: int) -> List[Dict[str, Any]]:
    latest = Analytics.top(top)
    ids = [row.youtube_video_id for row in latest]
    if not ids:
        return []
    titles = dict(Short.select(Short.youtube_video_id, Short.title)
                  .where(Short.youtube_video_id.in_(ids) & Short.title.is_null(False)).tuples())
    curves: Dict[str, List[Tuple[datetime.datetime, int]]] = defaultdict(list)
    # Only these videos' snapshots, through the (youtube_video_id, measured_at) index.
    points = (Analytics.select(Analytics.youtube_video_id, Analytics.measured_at, Analytics.view_count)
              .where(Analytics.youtube_video_id.in_(ids) & Analytics.view_count.is_null(False))
              .order_by(Analytics.youtube_video_id, Analytics.measured_at, Analytics.id).tuples())
    for video, measured_at, views in points:
        curves[video].append((measured_at, views))
    return [{"youtube_video_id": row.youtube_video_id, "title": titles.get(row.youtube_video_id),
             "view_count": row.view_count, "like_count": row.like_count, "measured_at": row.measured_at,
             "curve": curves.get(row.youtube_video_id, [])} for row in latest]


def report_data(*, now: Optional[datetime.datetime] = None, top: int = 10) -> Dict[str, Any]:
    """Every number the report shows, as plain Python values, read from the bound database (read-only)."""
    now = _now("report", now).astimezone(UTC)
    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise ValueError(f"report: top must be a whole number of shorts, 0 or more, not {top!r}")
    outermost = not db.in_transaction()  # else atomic() is a savepoint in the caller's transaction
    with db.atomic():
        if _is_postgres() and outermost:
            # One snapshot for every query, so the sections agree with one another; and nothing can write.
            db.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        totals = _totals()
        return {
            "generated_at": now,
            "database": _label(db),
            "totals": totals,
            "funnel": _funnel(totals["videos"]),
            "runs_per_day": _runs_per_day(),
            "failures": _failures(),
            "unresolved_errors": _unresolved_errors(),
            "reviews": _reviews(now),
            "llm_cost": _llm_cost(),
            "top_shorts": _top_shorts(top),
            "top": top,
        }


