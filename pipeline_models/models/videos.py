"""DiscoveredVideo: the candidate videos found for each niche, and the pipeline's two helpers over them;
a run takes its candidates with PipelineRun.take_candidates()."""
from typing import Any, Tuple, Union

import peewee
from peewee import SQL

from ..bulk import refuse_unknown_fields
from ..db import db, write_lock
from ..enums import ContentIdRisk, Processed
from ..fields import (CheckedBigIntegerField, CheckedCharField, CheckedEnumField, CheckedFloatField,
                      CheckedIntegerField, CheckedIntEnumField, UTCDateTimeField, backend_of,
                      utcnow)
from .base import BaseModel, at_least_zero

# The pipeline's own columns leave strings unbounded; these limits are set from what the values are: a
# YouTube id is 11 characters and a channel id 24 (room kept for other sources), a YouTube title 100 and a
# Reddit title 300 characters, a channel name 100; a URL or path within the seed's 512; a niche a word.
VIDEO_ID_LENGTH, TITLE_LENGTH, NAME_LENGTH, URL_LENGTH, NICHE_LENGTH = 64, 1024, 255, 512, 64

class DiscoveredVideo(BaseModel):
    """A candidate video found for a niche, deduplicated by its YouTube id; `processed` says what became of it."""

    video_id = CheckedCharField(max_length=VIDEO_ID_LENGTH, unique=True, help_text="the YouTube video id")
    title = CheckedCharField(max_length=TITLE_LENGTH, help_text="its title")
    channel_name = CheckedCharField(max_length=NAME_LENGTH, help_text="the creator, credited in the description")
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
    viral_score = CheckedFloatField(null=True, help_text="the composite score candidates are ranked by")
    niche = CheckedCharField(max_length=NICHE_LENGTH, help_text="gaming, sports, funny, entertainment, ...")
    discovery_source = CheckedCharField(max_length=NAME_LENGTH, null=True,
                                        help_text="where it was found: youtube_trending, reddit, ...")
    discovered_at = UTCDateTimeField(default=utcnow, help_text="when it was found")
    processed = CheckedIntEnumField(Processed, default=Processed.pending,
                                    help_text="0 pending, 1 used, 2 skipped, 3 rejected (Processed)")
    content_id_risk = CheckedEnumField(ContentIdRisk, max_length=16, default=ContentIdRisk.unknown,
                                       help_text="low, medium, high or unknown")
    # Beyond the pipeline's columns (nullable, so its inserts work unchanged):
    published_at = UTCDateTimeField(null=True, help_text="when it was published on YouTube")
    # The reservation: a run's take_candidates() sets it, so no other run takes the video while this one
    # cuts its clip. A run's id, not a foreign key: pipeline_runs references this table already
    # (legacy_video), and PostgreSQL cannot create two tables that reference each other in one step.
    taken_by_run = CheckedIntegerField(null=True,
                                       help_text="the run that took it as a candidate (kept once used or skipped)")

    class Meta:
        table_name = "discovered_videos"

    # The metadata discover() takes and refreshes: every column but the id, the YouTube id and what the
    # pipeline decides (processed, discovered_at).
    DISCOVER_FIELDS = ("title", "channel_name", "channel_id", "url", "category_id", "duration_seconds",
                       "view_count", "like_count", "comment_count", "view_velocity", "viral_score", "niche",
                       "discovery_source", "content_id_risk", "published_at")
    _REQUIRED = ("title", "channel_name", "channel_id", "niche")

    # What becomes of a candidate, for the README's diagram: `processed` (0-3), and "taken" while a run holds
    # it (processed 0, taken_by_run set). mark_video_processed(), the pipeline's own helper, sets any value.
    TRANSITIONS = {
        "pending": {"taken": "PipelineRun.take_candidates()",
                    "used": "mark_video_processed(id, 1)", "skipped": "mark_video_processed(id, 2)"},
        "taken": {"used": "keep_clips(): its clip kept",
                  "pending": "keep_clips(): not kept; or its run failed for good first",
                  "skipped": "keep_clips(others=Processed.skipped): not kept"},
        "used": {"rejected": "respond() skip: its clip dropped"},
        "skipped": {},
        "rejected": {},
    }

    @classmethod
    def discover(cls, video_id: str, **fields: Any) -> Tuple["DiscoveredVideo", bool]:
        """Record a found video once: return (video, created); finding it again refreshes the metadata given.

        A new video needs title, channel_name, channel_id and niche; `url` defaults to its YouTube address.
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
            changed = {name: value for name, value in fields.items() if getattr(video, name) != value}
            if changed:
                for name, value in changed.items():
                    setattr(video, name, value)
                video.save(only=list(changed))
            return video, False


class _BestFirst(peewee.Node):
    """`viral_score DESC NULLS LAST` in an index: SQLite's DESC puts NULLs last already and its CREATE INDEX
    takes no NULLS clause; PostgreSQL's DESC puts them first unless told."""

    def __sql__(self, ctx: Any) -> Any:
        ctx.sql(peewee.Entity("viral_score")).literal(" DESC")
        return ctx.literal(" NULLS LAST") if backend_of(db) == "postgres" else ctx


# The pipeline's two indexes: a niche's recent finds, and the candidates not used yet.
DiscoveredVideo.add_index(DiscoveredVideo.niche, DiscoveredVideo.discovered_at, name="idx_discovered_videos_niche")
DiscoveredVideo.add_index(DiscoveredVideo.processed, name="idx_discovered_videos_processed")
# The free candidates of a niche in the order they are taken: a take reads its 15 rows from the index alone.
DiscoveredVideo.add_index(DiscoveredVideo.index(
    DiscoveredVideo.niche, _BestFirst(), DiscoveredVideo.discovered_at, DiscoveredVideo.id,
    name="idx_discovered_videos_candidates", where=SQL("processed = 0 AND taken_by_run IS NULL")))
# A run's own candidates (a retried take, keep_clips, its end freeing them): the few a run holds.
DiscoveredVideo.add_index(DiscoveredVideo.index(DiscoveredVideo.taken_by_run, name="idx_discovered_videos_taken",
                                                where=SQL("taken_by_run IS NOT NULL")))


def _video_id(operation: str, video_id: Any) -> str:
    if not isinstance(video_id, str) or not video_id.strip():
        raise ValueError(f"DiscoveredVideo.video_id: {operation} needs the video's YouTube id, not {video_id!r}")
    return video_id


def checked_niche(operation: str, niche: Any) -> str:
    if not isinstance(niche, str) or not niche.strip():
        raise ValueError(f"PipelineRun.niche: {operation} needs the niche's name, e.g. 'gaming', not {niche!r}")
    return niche


def pending_candidates(niche: str) -> peewee.ModelSelect:
    video = DiscoveredVideo
    return (video.select().where((video.niche == niche) & (video.processed == Processed.pending)
                                 & video.taken_by_run.is_null())
            .order_by(video.viral_score.desc(nulls="LAST"), video.discovered_at, video.id))


def get_pending_videos(niche: str) -> peewee.ModelSelect:
    """The niche's videos not used yet (processed = 0) nor taken by a run, best viral_score first (unscored
    last), oldest first."""
    return pending_candidates(checked_niche("get_pending_videos", niche))


def mark_video_processed(video_id: str, status: Union[Processed, int]) -> None:
    """Set `processed` of the video with that YouTube id (1 used, 2 skipped, 3 rejected, 0 pending again).

    An empty id, an id no video has, or a status outside 0-3 is a ValueError naming it; one statement.
    """
    _video_id("mark_video_processed", video_id)
    video = DiscoveredVideo
    video.processed.db_value(status)  # ValueError naming the field, before anything is written
    if not video.update(processed=status).where(video.video_id == video_id).execute():
        raise ValueError(f"DiscoveredVideo.video_id: no video has the id {video_id!r}")
