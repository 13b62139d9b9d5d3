"""The three tables of the first version: discovered videos, pipeline runs and clips."""
from peewee import (
    BigIntegerField,
    CharField,
    Check,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from pipeline_models.migrations._base import Timestamp, frozen_base


def frozen_models(db):
    Base = frozen_base(db)

    class DiscoveredVideo(Base):
        youtube_video_id = CharField(max_length=64, unique=True)
        title = TextField(null=True)
        channel_id = CharField(max_length=64, null=True)
        channel_title = TextField(null=True)
        published_at = Timestamp(null=True)
        duration_seconds = DoubleField(null=True, constraints=[Check("duration_seconds >= 0")])
        view_count = BigIntegerField(null=True, constraints=[Check("view_count >= 0")])
        source = TextField(null=True)
        discovered_at = Timestamp()
        status = CharField(
            constraints=[Check("\"status\" IN ('new', 'selected', 'skipped', 'processed')")]
        )

        class Meta:
            table_name = "discovered_videos"

    class PipelineRun(Base):
        discovered_video = ForeignKeyField(DiscoveredVideo)
        status = CharField(
            constraints=[
                Check(
                    "\"status\" IN ('pending', 'running', 'awaiting_review', 'approved', "
                    "'rejected', 'published', 'failed')"
                )
            ]
        )
        current_stage = CharField(max_length=64, null=True)
        worker = CharField(null=True)
        attempts = IntegerField(constraints=[Check("attempts >= 0")])
        started_at = Timestamp(null=True)
        finished_at = Timestamp(null=True)
        created_at = Timestamp()
        updated_at = Timestamp()

        class Meta:
            table_name = "pipeline_runs"

    class Clip(Base):
        pipeline_run = ForeignKeyField(PipelineRun, on_delete="CASCADE")
        start_seconds = DoubleField(constraints=[Check("start_seconds >= 0")])
        end_seconds = DoubleField()
        file_path = TextField(null=True)
        score = DoubleField(null=True)
        transcript = TextField(null=True)
        created_at = Timestamp()

        class Meta:
            table_name = "clips"
            constraints = [Check("end_seconds > start_seconds", name="clips_end_after_start")]

    return [DiscoveredVideo, PipelineRun, Clip]


def up(migrator, db):
    db.create_tables(frozen_models(db))


def down(migrator, db):
    db.drop_tables(frozen_models(db))
