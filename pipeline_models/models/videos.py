"""DiscoveredVideo: the candidate videos found for each niche, and the pipeline's two helpers over
them; TakesCandidates: how a run takes them (PipelineRun.take_candidates) and keeps its clips."""
from typing import Any, Iterable, List, Mapping, Optional, Tuple, Union

import peewee
from peewee import SQL

from ..bulk import refuse_unknown_fields
from ..db import db, write_lock
from ..enums import ContentIdRisk, Processed
from ..fields import (CheckedBigIntegerField, CheckedCharField, CheckedEnumField, CheckedFloatField,
                      CheckedIntegerField, CheckedIntEnumField, UTCDateTimeField, backend_of,
                      utcnow, whole_number)
from .base import BaseModel, at_least_zero
from .config import ConfigOverride

# The pipeline's own columns leave strings unbounded; these limits are set from what the values are:
# a YouTube id is 11 characters and a channel id 24 (room kept for other sources), a YouTube title
# 100 and a Reddit title 300 characters, a channel name 100; a URL or path within the seed's 512; a
# niche a word.
VIDEO_ID_LENGTH, TITLE_LENGTH, NAME_LENGTH, URL_LENGTH, NICHE_LENGTH = 64, 1024, 255, 512, 64

class DiscoveredVideo(BaseModel):
    """A candidate video found for a niche, deduplicated by its YouTube id; `processed` says what
    became of it."""

    video_id = CheckedCharField(max_length=VIDEO_ID_LENGTH, unique=True,
                                help_text="the YouTube video id")
    title = CheckedCharField(max_length=TITLE_LENGTH, help_text="its title")
    channel_name = CheckedCharField(max_length=NAME_LENGTH,
                                    help_text="the creator, credited in the description")
    channel_id = CheckedCharField(max_length=VIDEO_ID_LENGTH, help_text="the creator's channel id")
    url = CheckedCharField(max_length=URL_LENGTH, help_text="its address")
    category_id = CheckedIntegerField(null=True, help_text="its YouTube category")
    duration_seconds = CheckedIntegerField(null=True, constraints=at_least_zero("duration_seconds"),
                                           help_text="its length, in whole seconds")
    view_count = CheckedBigIntegerField(null=True, constraints=at_least_zero("view_count"),
                                        help_text="its views when found")
    like_count = CheckedBigIntegerField(null=True, constraints=at_least_zero("like_count"),
                                        help_text="its likes when found")
    comment_count = CheckedBigIntegerField(null=True, constraints=at_least_zero("comment_count"),
                                           help_text="its comments when found")
    view_velocity = CheckedFloatField(null=True, constraints=at_least_zero("view_velocity"),
                                      help_text="views per hour when found")
    viral_score = CheckedFloatField(null=True,
                                    help_text="the composite score candidates are ranked by")
    niche = CheckedCharField(max_length=NICHE_LENGTH,
                             help_text="gaming, sports, funny, entertainment, ...")
    discovery_source = CheckedCharField(max_length=NAME_LENGTH, null=True,
                                        help_text="where it was found: youtube_trending, reddit, "
                                                  "...")
    discovered_at = UTCDateTimeField(default=utcnow, help_text="when it was found")
    processed = CheckedIntEnumField(Processed, default=Processed.pending,
                                    help_text="0 pending, 1 used, 2 skipped, 3 rejected "
                                              "(Processed)")
    content_id_risk = CheckedEnumField(ContentIdRisk, max_length=16, default=ContentIdRisk.unknown,
                                       help_text="low, medium, high or unknown")
    # Beyond the pipeline's columns (nullable, so its inserts work unchanged):
    published_at = UTCDateTimeField(null=True, help_text="when it was published on YouTube")
    # The reservation: a run's take_candidates() sets it, so no other run takes the video while this
    # one cuts its clip. A run's id, not a foreign key: pipeline_runs references this table already
    # (legacy_video), and PostgreSQL cannot create two tables that reference each other in one step.
    taken_by_run = CheckedIntegerField(null=True,
                                       help_text="the run that took it as a candidate (kept once "
                                                 "used or skipped)")

    class Meta:
        table_name = "discovered_videos"

    # The metadata discover() takes and refreshes: every column but the id, the YouTube id and what
    # the pipeline decides (processed, discovered_at).
    DISCOVER_FIELDS = ("title", "channel_name", "channel_id", "url", "category_id",
                       "duration_seconds", "view_count", "like_count", "comment_count",
                       "view_velocity", "viral_score", "niche", "discovery_source",
                       "content_id_risk", "published_at")
    _REQUIRED = ("title", "channel_name", "channel_id", "niche")

    # What becomes of a candidate, for the state diagram: `processed` (0-3), and "taken" while a
    # run holds it (processed 0, taken_by_run set). mark_video_processed(), the pipeline's own
    # helper, sets any value.
    TRANSITIONS = {
        "pending": {"taken": "PipelineRun.take_candidates()",
                    "used": "mark_video_processed(id, 1)", "skipped": "mark_video_processed(id, "
                                                                      "2)"},
        "taken": {"used": "keep_clips(): its clip kept",
                  "pending": "keep_clips(): not kept; or its run failed for good first",
                  "skipped": "keep_clips(others=Processed.skipped): not kept"},
        "used": {"rejected": "respond() skip: its clip dropped"},
        "skipped": {},
        "rejected": {},
    }

    @classmethod
    def discover(cls, video_id: str, **fields: Any) -> Tuple["DiscoveredVideo", bool]:
        """Record a found video once: return (video, created); finding it again refreshes the
        metadata given.

        A new video needs title, channel_name, channel_id and niche; `url` defaults to its YouTube
        address.
        """
        refuse_unknown_fields(cls, fields, cls.DISCOVER_FIELDS)
        _video_id("discover", video_id)
        with write_lock():
            video = cls.get_or_none(cls.video_id == video_id)
            if video is None:
                missing = [name for name in cls._REQUIRED if fields.get(name) is None]
                if missing:
                    raise ValueError(f"DiscoveredVideo.{missing[0]}: a new video needs "
                                     f"{', '.join(missing)} (discover({video_id!r}, ...))")
                fields.setdefault("url", f"https://www.youtube.com/watch?v={video_id}")
                try:
                    with db.atomic():  # a savepoint: on PostgreSQL another process may insert first
                        return cls.create(video_id=video_id, **fields), True
                except peewee.IntegrityError:
                    video = cls.get_or_none(cls.video_id == video_id)
                    if video is None:
                        raise
            changed = {name: value for name,
                       value in fields.items() if getattr(video, name) != value}
            if changed:
                for name, value in changed.items():
                    setattr(video, name, value)
                video.save(only=list(changed))
            return video, False


class _BestFirst(peewee.Node):
    """`viral_score DESC NULLS LAST` in an index: SQLite's DESC puts NULLs last already and its
    CREATE INDEX takes no NULLS clause; PostgreSQL's DESC puts them first unless told."""

    def __sql__(self, ctx: Any) -> Any:
        ctx.sql(peewee.Entity("viral_score")).literal(" DESC")
        return ctx.literal(" NULLS LAST") if backend_of(db) == "postgres" else ctx


# The pipeline's two indexes: a niche's recent finds, and the candidates not used yet.
DiscoveredVideo.add_index(DiscoveredVideo.niche, DiscoveredVideo.discovered_at,
                          name="idx_discovered_videos_niche")
DiscoveredVideo.add_index(DiscoveredVideo.processed, name="idx_discovered_videos_processed")
# The free candidates of a niche in the order they are taken: a take reads its 15 rows from the
# index alone.
DiscoveredVideo.add_index(DiscoveredVideo.index(
    DiscoveredVideo.niche, _BestFirst(), DiscoveredVideo.discovered_at, DiscoveredVideo.id,
    name="idx_discovered_videos_candidates", where=SQL("processed = 0 AND taken_by_run IS NULL")))
# A run's own candidates (a retried take, keep_clips, its end freeing them): the few a run holds.
DiscoveredVideo.add_index(DiscoveredVideo.index(DiscoveredVideo.taken_by_run,
                                                name="idx_discovered_videos_taken",
                                                where=SQL("taken_by_run IS NOT NULL")))


class TakesCandidates:
    """PipelineRun's part in the candidates: a run takes the niche's best pending videos for itself
    and keeps the clips it cut of them (its fields, claim and fence are PipelineRun's)."""

    def _channel_setting(self, key: str, default: int) -> int:
        # The run's niche's override of a channel setting (channels.<niche>....), else the default.
        return ConfigOverride.setting(key.format(self.niche), default)

    def take_candidates(self, limit: Optional[int] = None) -> List[DiscoveredVideo]:
        """Take the niche's best pending candidates for this run (the claiming worker's call): best
        first.

        At most `limit` (default: the override channels.<niche>.discovery.max_candidates, else 15).
        The take is one statement under the claim: the videos are reserved for this run
        (taken_by_run), so no other run, in any process, takes them, and get_pending_videos() no
        longer lists them. Asked again (a retried attempt), it returns the videos this run holds,
        topped up to `limit`. keep_clips() settles them.
        """
        if limit is None:
            limit = self._channel_setting(self.CANDIDATES_KEY, self.CANDIDATES)
        else:
            whole_number("PipelineRun.take_candidates: limit", 1, 1000)(limit)
        video = DiscoveredVideo
        with self.fenced():
            self._refuse_kept("take_candidates")
            mine = list(
                video.select().where(
                    (video.taken_by_run == self.id) & (video.processed == Processed.pending)))
            if len(mine) < limit:
                free = pending_candidates(self.niche).select(video.id).limit(limit - len(mine))
                if backend_of(db) == "postgres":
                    # two takes at once pass each other's rows
                    free = free.for_update(skip_locked=True)
                # Read, then reserve: PostgreSQL may run an IN (... LIMIT n) subquery once per row
                # it updates.
                ids = [row[0] for row in free.tuples()]
                if ids:
                    taken = video.update(taken_by_run=self.id).where(video.id.in_(ids))
                    mine += list(taken.returning(video).execute())
        return sorted(mine, key=best_first)

    def keep_clips(self, clips: Iterable[Mapping[str, Any]], *,
                   others: Union[Processed, int] = Processed.pending,
                   min_clips: Optional[int] = None, max_clips: Optional[int] = None) -> List[Any]:
        """Keep the clips this run cut, given best first, ranked 1..N (1 = the most viral); the Clip
        rows made.

        Each clip is a dict of Clip's fields with its `discovered_video`, one of this run's
        candidates (take_candidates()). The top `max_clips` are kept (default: the override
        channels.<niche>.video. max_clips, else 10); fewer than `min_clips`
        (channels.<niche>.video.min_clips, else 8) is a ValueError naming the run and the count.
        Then the videos settle: a kept clip's video is used (1); every other candidate the run took
        goes back to pending (0, for another run) or is skipped (2), as `others` says. One
        transaction under the claim (LeaseLost otherwise); a refusal writes nothing.
        """
        if others not in (Processed.pending, Processed.skipped):
            raise ValueError("PipelineRun.keep_clips: others must be Processed.pending (0) or "
                             f"Processed.skipped (2), not {others!r}")
        low, high = min_clips, max_clips
        if low is None:
            low = self._channel_setting(self.MIN_CLIPS_KEY, self.MIN_CLIPS)
        if high is None:
            high = self._channel_setting(self.MAX_CLIPS_KEY, self.MAX_CLIPS)
        whole_number("PipelineRun.keep_clips: min_clips", 1, 1000)(low)
        whole_number("PipelineRun.keep_clips: max_clips", low, 1000)(high)
        clips = list(clips)
        if len(clips) < low:
            raise ValueError(f"PipelineRun.keep_clips: run {self.id} has {len(clips)} clips; it "
                             f"needs at least {low} (channels.{self.niche}.video.min_clips)")
        for clip in clips:
            if not isinstance(clip, Mapping):
                raise TypeError("PipelineRun.keep_clips: each clip is a dict of Clip's fields, "
                                f"not {type(clip).__name__}")
            given = sorted({"pipeline_run", "rank_position"} & set(clip))
            if given:
                raise ValueError(f"Clip.{given[0]}: keep_clips sets it; give the clips best first")
        video = DiscoveredVideo
        # clips.py imports this module: the model is reached by its backref
        Clip = type(self).clips.rel_model
        with self.fenced():
            self._refuse_kept("keep_clips")
            held = (video.taken_by_run == self.id) & (video.processed == Processed.pending)
            taken = {v.id for v in video.select(video.id).where(held)}
            ids = [getattr(clip.get("discovered_video"), "id", clip.get("discovered_video"))
                   for clip in clips]
            for video_id in ids:
                if video_id not in taken:
                    raise ValueError(f"Clip.discovered_video: video {video_id!r} is not a "
                                     f"candidate run {self.id} holds (take_candidates() gives "
                                     "them)")
            if len(set(ids)) < len(ids):
                twice = next(video_id for video_id in ids if ids.count(video_id) > 1)
                raise ValueError(f"Clip.discovered_video: video {twice} has two clips; a run takes "
                                 "one per video")
            kept = [Clip.create(pipeline_run=self, rank_position=rank, **clip)
                    for rank, clip in enumerate(clips[:high], 1)]
            used = ids[:high]
            video.update(processed=Processed.used).where(video.id.in_(used)).execute()
            rest = video.id.in_(sorted(taken - set(used)))
            if others == Processed.pending:
                video.update(taken_by_run=None).where(rest).execute()
            else:
                video.update(processed=Processed.skipped).where(rest).execute()
        return kept

    def _refuse_kept(self, operation: str) -> None:
        kept = self.clips.where(type(self).clips.rel_model.dropped_at.is_null()).count()
        if kept:
            raise ValueError(f"PipelineRun.{operation}: run {self.id} keeps {kept} clips already; "
                             f"its worker goes on from stage {self.current_stage or 'clips'} (a "
                             "skip answer re-ranks them)")


def _video_id(operation: str, video_id: Any) -> str:
    if not isinstance(video_id, str) or not video_id.strip():
        raise ValueError(f"DiscoveredVideo.video_id: {operation} needs the video's YouTube id, not "
                         f"{video_id!r}")
    return video_id


def checked_niche(operation: str, niche: Any) -> str:
    if not isinstance(niche, str) or not niche.strip():
        raise ValueError(f"PipelineRun.niche: {operation} needs the niche's name, e.g. 'gaming', "
                         f"not {niche!r}")
    return niche


def pending_candidates(niche: str) -> peewee.ModelSelect:
    video = DiscoveredVideo
    return (video.select().where((video.niche == niche) & (video.processed == Processed.pending)
                                 & video.taken_by_run.is_null())
            .order_by(video.viral_score.desc(nulls="LAST"), video.discovered_at, video.id))


def get_pending_videos(niche: str) -> peewee.ModelSelect:
    """The niche's videos not used yet (processed = 0) nor taken by a run, best viral_score first
    (unscored last), oldest first."""
    return pending_candidates(checked_niche("get_pending_videos", niche))


def mark_video_processed(video_id: str, status: Union[Processed, int]) -> None:
    """Set `processed` of the video with that YouTube id (1 used, 2 skipped, 3 rejected, 0 pending
    again).

    An empty id, an id no video has, or a status outside 0-3 is a ValueError naming it; one
    statement.
    """
    _video_id("mark_video_processed", video_id)
    video = DiscoveredVideo
    video.processed.db_value(status)  # ValueError naming the field, before anything is written
    if not video.update(processed=status).where(video.video_id == video_id).execute():
        raise ValueError(f"DiscoveredVideo.video_id: no video has the id {video_id!r}")


def best_first(video: DiscoveredVideo) -> Tuple[Any, ...]:
    """The order candidates are taken in: best viral_score first, unscored last, then the oldest."""
    return (video.viral_score is None, -(video.viral_score or 0), video.discovered_at, video.id)


def niche_channel(operation: str, niche: Any) -> str:
    """A niche's name as it can stand in a dotted config key."""
    if "." in checked_niche(operation, niche):
        raise ValueError(f"PipelineRun.niche: {operation} needs a niche's name without dots, not "
                         f"{niche!r}")
    return niche
