"""The chat bot's queries as plain data: /status, /stats, /errors, /queue, the 6-hourly digest, the
review message.

Each function reads the bound database (a few queries, whatever the pipeline's size: status, queue
and digest never read discovered_videos row by row) and changes nothing. What they return is JSON as
it is: dicts, lists, str, int, float, bool and None only. Timestamps are ISO 8601 text in UTC
("2026-01-01T00:30:00+00:00"), ages and lengths seconds (floats, to the millisecond), enums their
values; json.dumps() takes any result. A `since` is an aware datetime, or a timedelta meaning that
long before now.
"""
import datetime
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import peewee
from peewee import JOIN, fn

from .db import db
from .enums import ContentIdRisk, ReviewAction, RunStatus
from .fields import UTC, checked_now, whole_number
from .models import (Clip, ConfigOverride, DiscoveredVideo, ErrorLog, PipelineRun, ReviewLog,
                     Script, Short)

__all__ = ["FINISHED_WINDOW", "KINDS", "NO_NICHE", "PREVIEW_CHARS", "Since", "digest", "errors",
           "parse_since", "queue", "review_summary", "stats", "status"]

# what an uploaded video is: a run's compilation, or one of its shorts
KINDS = ("long-form", "shorts")
NO_NICHE = "(none)"  # stats' niche of errors logged without a run
PREVIEW_CHARS = 200  # of the script, in the review message
_FLAGGED = (ContentIdRisk.medium, ContentIdRisk.high)
# The newest snapshot of each video, kept by triggers on analytics (models/analytics.py); read,
# never written.
_LATEST = peewee.Table("analytics_latest", ("youtube_video_id", "view_count")).bind(db)
# A table's niches by one seek per niche in an index that starts with niche (a loose index scan):
# the niches of a year's discovered videos without reading them. {table} is a constant of this
# module.
_NICHES_SQL = """
    WITH RECURSIVE niches(niche) AS (
        SELECT MIN(niche) FROM {table}
        UNION ALL
        SELECT (SELECT MIN(t.niche) FROM {table} t WHERE t.niche > niches.niche) FROM niches
        WHERE niches.niche IS NOT NULL
    )
    SELECT niche FROM niches WHERE niche IS NOT NULL
"""

Since = Union[datetime.datetime, datetime.timedelta]


def _iso(moment: Optional[datetime.datetime]) -> Optional[str]:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _seconds(start: Optional[datetime.datetime], end: datetime.datetime) -> Optional[float]:
    return None if start is None else round((end - start).total_seconds(), 3)


def _since(operation: str, since: Any, now: datetime.datetime) -> datetime.datetime:
    """`since` as an aware datetime (a timedelta counts back from `now`), or a ValueError naming
    `operation`."""
    if isinstance(since, datetime.timedelta) and since >= datetime.timedelta(0):
        return now - since
    if isinstance(since, datetime.datetime) and since.utcoffset() is not None:
        return since
    raise ValueError(f"{operation}: since must be an aware datetime or a timedelta of 0 or more "
                     f"before now, e.g. timedelta(hours=6), not {since!r}")


def parse_since(text: str) -> Since:
    """A `since` as a person types it: a time ago (30m, 6h, 7d) or an ISO 8601 time, UTC unless it
    has an offset."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if (text[-1:] in units and text[:-1].isascii() and text[:-1].isdigit()
            and int(text[:-1]) <= 10 ** 7):
        return datetime.timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        shown = text if len(text) <= 40 else text[:39] + "…"
        raise ValueError(f"since: {shown!r} is neither a time ago (30m, 6h, 7d) nor an ISO 8601 "
                         "time (2026-01-01T00:00, UTC unless it has an offset)") from None
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)


def _niches(table: str) -> List[str]:
    """The distinct niches of `table` (discovered_videos or pipeline_runs), one index seek each."""
    return [niche for (niche,) in db.execute_sql(_NICHES_SQL.format(table=table)).fetchall()]


def _run_id(operation: str, run: Any) -> int:
    run_id = run.id if isinstance(run, PipelineRun) else run
    if isinstance(run_id, bool) or not isinstance(run_id, int):
        raise TypeError(f"{operation}: run must be a PipelineRun or its id, not {run!r}")
    return run_id


# /status counts the runs that finished in the last week: what is happening now costs the same in a
# year.
FINISHED_WINDOW = datetime.timedelta(days=7)


def status(now: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    """/status: per niche its runs by status (every active one; those finished in the last 7 days),
    the running runs, the next run, paused or not; the concurrency cap."""
    now = checked_now("status", now)
    run = PipelineRun
    since = now - FINISHED_WINDOW
    counted = run.status.in_(list(run.ACTIVE)) | (
        run.status.in_(list(run.FINISHED)) & (run.completed_at >= since))
    counts = list(run.select(run.niche, run.status, fn.COUNT(run.id)).where(counted)
                  .group_by(run.niche, run.status).tuples())
    running = list(run.select(run.id, run.niche, run.cycle_start, run.current_stage, run.worker,
                              run.heartbeat_at)
                   .where(run.status == RunStatus.running).order_by(run.niche, run.cycle_start,
                                                                    run.id))
    # What claim_next would take next of each niche: its earliest pending cycle (due or not). The
    # pending runs are few (the status index finds them); the first of each niche is kept.
    upcoming: Dict[str, Dict[str, Any]] = {}
    for row in (run.select(run.id, run.niche, run.cycle_start, run.not_before)
                .where(run.status == RunStatus.pending).order_by(run.cycle_start, run.id)):
        upcoming.setdefault(row.niche, {"id": row.id, "cycle_start": _iso(row.cycle_start),
                                        "not_before": _iso(row.not_before),
                                        "due": row.not_before is None or row.not_before <= now})
    paused = PipelineRun.paused_niches()
    names = sorted(set(_niches("pipeline_runs")) | set(_niches("discovered_videos")) | paused)
    niches: Dict[str, Dict[str, Any]] = {
        niche: {"paused": niche in paused, "runs": {s.value: 0 for s in RunStatus}, "running": [],
                "next": upcoming.get(niche)} for niche in names}
    for niche, state, count in counts:
        niches[niche]["runs"][RunStatus(state).value] = count
    for row in running:
        niches[row.niche]["running"].append({
            "id": row.id, "cycle_start": _iso(row.cycle_start), "stage": row.current_stage,
            "worker": row.worker, "heartbeat_at": _iso(row.heartbeat_at),
            "heartbeat_age_seconds": _seconds(row.heartbeat_at, now)})
    return {"now": _iso(now), "finished_since": _iso(since),
            "max_concurrent_pipelines": ConfigOverride.setting(run.MAX_RUNNING_KEY,
                                                               run.MAX_RUNNING),
            "running": len(running), "paused": sorted(paused), "niches": niches}


def _uploads(since: datetime.datetime,
             until: Optional[datetime.datetime] = None) -> List[Tuple[Any, ...]]:
    """(kind, niche, YouTube id, run id, latest views or None) of each video whose upload was
    recorded since."""
    run = PipelineRun
    long_form = run.youtube_video_id.is_null(False) & (run.completed_at >= since)
    shorts = Short.youtube_video_id.is_null(False) & (Short.uploaded_at >= since)
    if until is not None:
        long_form &= run.completed_at <= until
        shorts &= Short.uploaded_at <= until
    views = _LATEST.view_count
    rows = [("long-form", *row) for row in (
        run.select(run.niche, run.youtube_video_id, run.id, views)
        .join(_LATEST, JOIN.LEFT_OUTER, on=(_LATEST.youtube_video_id == run.youtube_video_id))
        .where(long_form).tuples())]
    rows += [("shorts", *row) for row in (
        Short.select(run.niche, Short.youtube_video_id, run.id, views).join(run)
        .join_from(Short, _LATEST, JOIN.LEFT_OUTER,
                   on=(_LATEST.youtube_video_id == Short.youtube_video_id))
        .where(shorts).tuples())]
    return rows


def stats(since: Since) -> Dict[str, Any]:
    """/stats: per niche the uploads since `since` (long-form, shorts), their views (latest
    snapshots), errors."""
    since = _since("stats", since, checked_now("stats", None))
    run = PipelineRun
    empty = {kind: 0 for kind in KINDS}
    niches: Dict[str, Dict[str, Any]] = {niche: {"uploads": dict(empty), "views": dict(empty),
                                                 "errors": 0}
                                         for niche in _niches("pipeline_runs")}
    for kind, niche, _, _, views in _uploads(since):
        niches[niche]["uploads"][kind] += 1
        niches[niche]["views"][kind] += views or 0
    logged = (ErrorLog.select(run.niche, fn.COUNT(ErrorLog.id)).join(run, JOIN.LEFT_OUTER)
              .where(ErrorLog.occurred_at >= since).group_by(run.niche).tuples())
    for niche, count in logged:
        niches.setdefault(NO_NICHE if niche is None else niche,
                          {"uploads": dict(empty), "views": dict(empty),
                           "errors": 0})["errors"] = count
    return {"since": _iso(since), "niches": dict(sorted(niches.items()))}


def errors(limit: int = 50, *, unresolved: bool = False,
           module: Optional[str] = None) -> List[Dict[str, Any]]:
    """/errors: the latest `limit` errors, newest first, each with its run's niche (only unresolved
    / of `module`)."""
    whole_number("errors: limit", 1, unit="errors")(limit)
    error = ErrorLog
    columns = (error.id, error.occurred_at, error.module, error.error_type, error.error_message,
               error.pipeline_run, PipelineRun.niche, error.resolved)
    query = (error.select(*columns).join(PipelineRun, JOIN.LEFT_OUTER)
             .order_by(error.occurred_at.desc(), error.id.desc()).limit(limit))
    if unresolved:
        query = query.where(error.resolved == False)  # noqa: E712
    if module is not None:
        query = query.where(error.module == module)
    names = ("id", "occurred_at", "module", "error_type", "error_message", "pipeline_run_id",
             "niche", "resolved")
    rows = [dict(zip(names, row)) for row in query.tuples()]
    for row in rows:
        row["occurred_at"] = _iso(row["occurred_at"])
    return rows


def queue(now: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    """/queue: the reviews awaiting an answer and the held ones, oldest first, with their runs and
    ages."""
    now = checked_now("queue", now)
    run = PipelineRun
    rows = (
        ReviewLog.unanswered().select_extend(run.id, run.niche, run.cycle_start, run.cycle_end)
        .join(run).order_by(ReviewLog.sent_at, ReviewLog.id))
    reviews = [{"review_id": row.id, "message_id": row.message_id, "run_id": row.pipeline_run.id,
                "niche": row.pipeline_run.niche, "cycle_start": _iso(row.pipeline_run.cycle_start),
                "cycle_end": _iso(row.pipeline_run.cycle_end), "sent_at": _iso(row.sent_at),
                "age_seconds": _seconds(row.sent_at, now), "held": row.action is ReviewAction.hold,
                "auto_held": row.auto_held, "reminded": row.reminded_at is not None,
                "reminded_at": _iso(row.reminded_at)} for row in rows]
    held = sum(review["held"] for review in reviews)
    return {"now": _iso(now), "awaiting": len(reviews) - held, "held": held, "reviews": reviews}


def digest(since: Since, now: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    """The 6-hourly digest: runs uploaded and failed, videos uploaded since `since`, reviews
    pending, the top video."""
    now = checked_now("digest", now)
    since = _since("digest", since, now)
    run = PipelineRun
    finished: Dict[str, Dict[str, int]] = {state.value: {} for state in (RunStatus.uploaded,
                                                                         RunStatus.failed)}
    for niche, state, count in (run.select(run.niche, run.status, fn.COUNT(run.id))
                                .where(run.status.in_([RunStatus.uploaded, RunStatus.failed])
                                       & (run.completed_at >= since) & (run.completed_at <= now))
                                .group_by(run.niche, run.status).tuples()):
        finished[RunStatus(state).value][niche] = count
    uploads = _uploads(since, now)
    uploaded: Dict[str, Dict[str, int]] = {kind: {} for kind in KINDS}
    for kind, niche, *_ in uploads:
        uploaded[kind][niche] = uploaded[kind].get(niche, 0) + 1
    seen = [row for row in uploads if row[4] is not None]
    # most views; equal views by YouTube id
    top = min(seen, key=lambda row: (-row[4], row[2]), default=None)
    waiting = dict(ReviewLog.select(ReviewLog.action, fn.COUNT(ReviewLog.id))
                   .where(ReviewLog.action.is_null() | (ReviewLog.action == ReviewAction.hold))
                   .group_by(ReviewLog.action).tuples())

    def counted(per_niche: Dict[str, int]) -> Dict[str, Any]:
        return {"total": sum(per_niche.values()), "niches": dict(sorted(per_niche.items()))}
    return {
        "since": _iso(since), "until": _iso(now),
        "runs_uploaded": counted(finished["uploaded"]), "runs_failed": counted(finished["failed"]),
        "videos_uploaded": {kind: counted(uploaded[kind]) for kind in KINDS},
        "pending_review": {"awaiting": waiting.get(None, 0), "held": waiting.get(ReviewAction.hold,
                                                                                 0)},
        "top_video": None if top is None else {"youtube_video_id": top[2], "kind": top[0],
                                               "niche": top[1], "run_id": top[3], "views": top[4]},
    }


def _strings(value: Any) -> Iterable[str]:
    """The text in a script's JSON, in order: lists as they are, a dict's values by key (jsonb
    reorders keys)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from _strings(value[key])


def _script_text(script: Script) -> str:
    """A script as one text: the opening, the rest of its JSON's text, the closing."""
    ends = [text for text in (script.opening_text, script.closing_text) if text]
    middle = [text for text in _strings(script.full_script_json) if text not in ends]
    return " ".join([*([script.opening_text] if script.opening_text else []), *middle,
                     *([script.closing_text] if script.closing_text else [])])


def review_summary(run: Union[PipelineRun, int]) -> Dict[str, Any]:
    """What the review message shows: the run's cycle and video, its clips by rank, content-ID
    flags, the script."""
    run_id = _run_id("review_summary", run)
    row = PipelineRun.get_or_none(PipelineRun.id == run_id)
    if row is None:
        raise PipelineRun.DoesNotExist(f"no run has the id {run_id}")
    video = DiscoveredVideo
    clips = list(Clip.select(Clip.id, Clip.rank_position, Clip.start_time_seconds,
                             Clip.end_time_seconds, Clip.clip_duration_seconds,
                             Clip.content_id_risk, video.id, video.video_id, video.title,
                             video.channel_name, video.content_id_risk)
                 .join(video).where((Clip.pipeline_run == run_id) & Clip.dropped_at.is_null())
                 .order_by(Clip.rank_position))
    flags = []
    for clip in clips:
        for what, risk in (("clip", clip.content_id_risk), ("video",
                                                            clip.discovered_video.content_id_risk)):
            if risk in _FLAGGED:
                flags.append({"rank": clip.rank_position, "of": what,
                              "video_id": clip.discovered_video.video_id, "risk": risk.value})
    script = (Script.select().where(Script.pipeline_run == run_id)
              .order_by(Script.generated_at.desc(), Script.id.desc()).first())
    return {
        "run_id": row.id, "niche": row.niche, "status": row.status.value,
        "cycle_start": _iso(row.cycle_start), "cycle_end": _iso(row.cycle_end),
        "video_duration_seconds": row.video_duration_seconds,
        "video_file_size_bytes": row.video_file_size_bytes, "video_file_path": row.video_file_path,
        "clips": [{"rank": clip.rank_position, "clip_id": clip.id,
                   "video_id": clip.discovered_video.video_id, "title": clip.discovered_video.title,
                   "creator": clip.discovered_video.channel_name,
                   "seconds": clip.clip_duration_seconds, "start_seconds": clip.start_time_seconds,
                   "end_seconds": clip.end_time_seconds,
                   "content_id_risk": clip.content_id_risk.value,
                   "video_content_id_risk": clip.discovered_video.content_id_risk.value}
                  for clip in clips],
        "content_id_flags": flags,
        "script_id": None if script is None else script.id,
        "script_preview": None if script is None else _script_text(script)[:PREVIEW_CHARS],
    }

