"""Scripts, TTS audio, shorts, analytics, review logs, config overrides and error logs; run
heartbeats."""
from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    Check,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    JSONField,
    TextField,
)

from pipeline_models.migrations._base import Timestamp, frozen_base


def frozen_models(db):
    Base = frozen_base(db)

    class PipelineRun(Base):  # stub of the table 0001 made: only the key is referenced
        class Meta:
            table_name = "pipeline_runs"

    class Clip(Base):
        class Meta:
            table_name = "clips"

    class Script(Base):
        pipeline_run = ForeignKeyField(PipelineRun, on_delete="CASCADE")
        title = TextField(null=True)
        hook = TextField(null=True)
        full_script_json = JSONField()
        llm_model = CharField(max_length=128, null=True)
        prompt_tokens = IntegerField(null=True, constraints=[Check("prompt_tokens >= 0")])
        completion_tokens = IntegerField(null=True, constraints=[Check("completion_tokens >= 0")])
        cost_usd = DoubleField(null=True, constraints=[Check("cost_usd >= 0")])
        created_at = Timestamp()

        class Meta:
            table_name = "scripts"

    class TTSAudio(Base):
        pipeline_run = ForeignKeyField(PipelineRun, on_delete="CASCADE")
        file_path = TextField()
        voice = CharField(max_length=128, null=True)
        provider = CharField(max_length=64, null=True)
        duration_seconds = DoubleField(null=True, constraints=[Check("duration_seconds >= 0")])
        created_at = Timestamp()

        class Meta:
            table_name = "tts_audio"

    class Short(Base):
        pipeline_run = ForeignKeyField(PipelineRun, on_delete="CASCADE")
        clip = ForeignKeyField(Clip, null=True, on_delete="SET NULL")
        title = TextField(null=True)
        description = TextField(null=True)
        file_path = TextField(null=True)
        duration_seconds = DoubleField(null=True, constraints=[Check("duration_seconds >= 0")])
        status = CharField(
            constraints=[
                Check("\"status\" IN ('pending', 'rendered', 'uploaded', 'rejected', 'failed')")
            ]
        )
        youtube_video_id = CharField(max_length=64, null=True, unique=True)
        youtube_url = TextField(null=True)
        uploaded_at = Timestamp(null=True)
        created_at = Timestamp()

        class Meta:
            table_name = "shorts"

    class Analytics(Base):
        youtube_video_id = CharField(max_length=64)
        measured_at = Timestamp()
        views = BigIntegerField(null=True, constraints=[Check("views >= 0")])
        engaged_views = BigIntegerField(null=True, constraints=[Check("engaged_views >= 0")])
        likes = BigIntegerField(null=True, constraints=[Check("likes >= 0")])
        comments = BigIntegerField(null=True, constraints=[Check("comments >= 0")])
        shares = BigIntegerField(null=True, constraints=[Check("shares >= 0")])
        watch_time_minutes = DoubleField(null=True, constraints=[Check("watch_time_minutes >= 0")])
        avg_view_duration_seconds = DoubleField(
            null=True, constraints=[Check("avg_view_duration_seconds >= 0")]
        )
        ctr = DoubleField(null=True, constraints=[Check("ctr >= 0 AND ctr <= 1")])
        subscribers_gained = BigIntegerField(
            null=True, constraints=[Check("subscribers_gained >= 0")]
        )
        revenue_usd = DoubleField(null=True, constraints=[Check("revenue_usd >= 0")])

        class Meta:
            table_name = "analytics"
            indexes = ((("youtube_video_id", "measured_at"), False),)

    class ReviewLog(Base):
        pipeline_run = ForeignKeyField(PipelineRun, on_delete="CASCADE")
        message_id = CharField(max_length=128, null=True, unique=True)
        sent_at = Timestamp()
        action = CharField(null=True,
                           constraints=[Check("\"action\" IN ('approve', 'reject', 'edit')")])
        detail = TextField(null=True)
        reviewer = CharField(null=True)
        responded_at = Timestamp(null=True)
        auto_held = BooleanField()

        class Meta:
            table_name = "review_logs"
            indexes = ((("action", "sent_at"), False),)

    class ConfigOverride(Base):
        key = CharField(unique=True)
        value = TextField(null=True)  # JSON text, exact (JSONB would turn 1e16 into an int)
        updated_by = CharField()
        updated_at = Timestamp()

        class Meta:
            table_name = "config_overrides"

    class ErrorLog(Base):
        pipeline_run = ForeignKeyField(PipelineRun, null=True, on_delete="SET NULL")
        module = CharField(max_length=128)
        error_type = CharField()
        error_message = TextField()
        stack_trace = TextField(null=True)
        occurred_at = Timestamp()
        resolved = BooleanField()

        class Meta:
            table_name = "error_logs"
            indexes = (
                (("module", "occurred_at"), False),
                (("resolved", "occurred_at"), False),
            )

    return [Script, TTSAudio, Short, Analytics, ReviewLog, ConfigOverride, ErrorLog]


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("pipeline_runs", "heartbeat_at", Timestamp(null=True)),
        migrator.add_column("pipeline_runs", "last_error", TextField(null=True)),
        migrator.add_index("pipeline_runs", ("status", "created_at")),
    )
    db.create_tables(frozen_models(db))


def down(migrator, db):
    db.drop_tables(frozen_models(db))
    migrator.migrate(
        migrator.drop_index("pipeline_runs", "pipeline_runs_status_created_at"),
        migrator.drop_column("pipeline_runs", "last_error"),
        migrator.drop_column("pipeline_runs", "heartbeat_at"),
    )
