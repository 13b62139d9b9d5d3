"""The ten models of the short-video pipeline, all bound to `pipeline_models.db`.

discovered video -> pipeline run -> clips, scripts, TTS audio, shorts, review logs, error logs;
analytics snapshots are keyed by the uploaded short's YouTube id; config overrides stand alone.
"""
import peewee
from peewee import Check, ForeignKeyField

from .db import db
from .enums import ReviewAction, RunStatus, ShortStatus, VideoStatus
from .fields import (
    BigIntegerField,
    BooleanField,
    CharField,
    EnumField,
    FloatField,
    IntegerField,
    JSONField,
    TextField,
    UTCDateTimeField,
    utcnow,
)

__all__ = [
    "BaseModel",
    "DiscoveredVideo",
    "PipelineRun",
    "Clip",
    "Script",
    "TTSAudio",
    "Short",
    "Analytics",
    "ReviewLog",
    "ConfigOverride",
    "ErrorLog",
    "ALL_MODELS",
]


def _at_least_zero(column: str) -> list:
    return [Check(f"{column} >= 0")]


class BaseModel(peewee.Model):
    """Base of every model: bound to the shared proxy, snake_case table names."""

    class Meta:
        database = db
        legacy_table_names = False


class DiscoveredVideo(BaseModel):
    """A source video found on YouTube by a search query, channel or feed."""

    youtube_video_id = CharField(max_length=64, unique=True)
    title = TextField(null=True)
    channel_id = CharField(max_length=64, null=True)
    channel_title = TextField(null=True)
    published_at = UTCDateTimeField(null=True)
    duration_seconds = FloatField(null=True, constraints=_at_least_zero("duration_seconds"))
    view_count = BigIntegerField(null=True, constraints=_at_least_zero("view_count"))
    source = TextField(null=True)
    discovered_at = UTCDateTimeField(default=utcnow)
    status = EnumField(VideoStatus, default=VideoStatus.new)

    class Meta:
        table_name = "discovered_videos"


class PipelineRun(BaseModel):
    """One pass of one video through the pipeline, claimed and advanced by workers."""

    # No cascade: deleting a video must not silently take its runs (and uploaded shorts) with it.
    discovered_video = ForeignKeyField(DiscoveredVideo, backref="runs")
    status = EnumField(RunStatus, default=RunStatus.pending)
    current_stage = CharField(max_length=64, null=True)
    worker = CharField(max_length=255, null=True)
    attempts = IntegerField(default=0, constraints=_at_least_zero("attempts"))
    started_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True)
    heartbeat_at = UTCDateTimeField(null=True)
    last_error = TextField(null=True)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "pipeline_runs"
        # The work queue: oldest pending run first, stale running runs, counts by status.
        indexes = ((("status", "created_at"), False),)

    def save(self, *args, **kwargs):
        """Save, stamping updated_at."""
        self.updated_at = utcnow()
        return super().save(*args, **kwargs)


class Clip(BaseModel):
    """A cut of the source video, scored for how well it would work as a short."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="clips", on_delete="CASCADE")
    start_seconds = FloatField(constraints=_at_least_zero("start_seconds"))
    end_seconds = FloatField()
    file_path = TextField(null=True)
    score = FloatField(null=True)
    transcript = TextField(null=True)
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "clips"
        constraints = [Check("end_seconds > start_seconds")]


class Script(BaseModel):
    """The narration an LLM wrote for a run, with what it cost."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="scripts", on_delete="CASCADE")
    title = TextField(null=True)
    hook = TextField(null=True)
    full_script_json = JSONField(types=(dict, list))
    llm_model = CharField(max_length=128, null=True)
    prompt_tokens = IntegerField(null=True, constraints=_at_least_zero("prompt_tokens"))
    completion_tokens = IntegerField(null=True, constraints=_at_least_zero("completion_tokens"))
    cost_usd = FloatField(null=True, constraints=_at_least_zero("cost_usd"))
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "scripts"


class TTSAudio(BaseModel):
    """Synthesised narration audio for a run."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="audio", on_delete="CASCADE")
    file_path = TextField()
    voice = CharField(max_length=128, null=True)
    provider = CharField(max_length=64, null=True)
    duration_seconds = FloatField(null=True, constraints=_at_least_zero("duration_seconds"))
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "tts_audio"


class Short(BaseModel):
    """A rendered vertical short, from render through review to upload."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="shorts", on_delete="CASCADE")
    clip = ForeignKeyField(Clip, backref="shorts", null=True, on_delete="SET NULL")
    title = TextField(null=True)
    description = TextField(null=True)
    file_path = TextField(null=True)
    duration_seconds = FloatField(null=True, constraints=_at_least_zero("duration_seconds"))
    status = EnumField(ShortStatus, default=ShortStatus.pending)
    # Unique when set (NULLs never collide): a short is uploaded once.
    youtube_video_id = CharField(max_length=64, null=True, unique=True)
    youtube_url = TextField(null=True)
    uploaded_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "shorts"


class Analytics(BaseModel):
    """One snapshot of an uploaded short's YouTube metrics; NULL means "not reported", not zero."""

    youtube_video_id = CharField(max_length=64)
    measured_at = UTCDateTimeField(default=utcnow)
    views = BigIntegerField(null=True, constraints=_at_least_zero("views"))
    engaged_views = BigIntegerField(null=True, constraints=_at_least_zero("engaged_views"))
    likes = BigIntegerField(null=True, constraints=_at_least_zero("likes"))
    comments = BigIntegerField(null=True, constraints=_at_least_zero("comments"))
    shares = BigIntegerField(null=True, constraints=_at_least_zero("shares"))
    watch_time_minutes = FloatField(null=True, constraints=_at_least_zero("watch_time_minutes"))
    avg_view_duration_seconds = FloatField(
        null=True, constraints=_at_least_zero("avg_view_duration_seconds")
    )
    ctr = FloatField(null=True, constraints=[Check("ctr >= 0 AND ctr <= 1")])  # a fraction
    subscribers_gained = BigIntegerField(null=True, constraints=_at_least_zero("subscribers_gained"))
    revenue_usd = FloatField(null=True, constraints=_at_least_zero("revenue_usd"))

    class Meta:
        table_name = "analytics"
        indexes = ((("youtube_video_id", "measured_at"), False),)


class ReviewLog(BaseModel):
    """A request for a human verdict on a run's short, and the answer (action is NULL until then)."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="reviews", on_delete="CASCADE")
    # The chat message that asked: a second tap on it finds this row and changes nothing.
    message_id = CharField(max_length=128, null=True, unique=True)
    sent_at = UTCDateTimeField(default=utcnow)
    action = EnumField(ReviewAction, null=True)
    detail = TextField(null=True)
    reviewer = CharField(max_length=255, null=True)
    responded_at = UTCDateTimeField(null=True)
    auto_held = BooleanField(default=False)

    class Meta:
        table_name = "review_logs"
        # Unanswered reviews (action IS NULL) oldest first: the auto-hold sweep and the open count.
        indexes = ((("action", "sent_at"), False),)


class ConfigOverride(BaseModel):
    """A runtime setting that overrides the pipeline's defaults; the value is any JSON value."""

    key = CharField(max_length=255, unique=True)
    value = JSONField(null=True)
    updated_by = CharField(max_length=255, default="system")
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "config_overrides"


class ErrorLog(BaseModel):
    """An exception a pipeline module hit; kept when its run is deleted (pipeline_run becomes NULL)."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="errors", null=True, on_delete="SET NULL")
    module = CharField(max_length=128)
    error_type = CharField(max_length=255)
    error_message = TextField()
    stack_trace = TextField(null=True)
    occurred_at = UTCDateTimeField(default=utcnow)
    resolved = BooleanField(default=False)

    class Meta:
        table_name = "error_logs"
        indexes = (
            (("module", "occurred_at"), False),  # a module's errors, newest first
            (("resolved", "occurred_at"), False),  # the unresolved errors across modules
        )


ALL_MODELS = [
    DiscoveredVideo,
    PipelineRun,
    Clip,
    Script,
    TTSAudio,
    Short,
    Analytics,
    ReviewLog,
    ConfigOverride,
    ErrorLog,
]
