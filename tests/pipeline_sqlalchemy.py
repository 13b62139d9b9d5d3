"""A second client of the same database: the pipeline's own SQLAlchemy 2 module, as its documents
define it.

The three tables of the pipeline's database module (discovered_videos, pipeline_runs, clips: every
String without a length, naive UTC datetimes) and the seed design's seven (its Interface
Definitions, with `func.now()` where the seed wrote MySQL's `func.utc_timestamp()`), transcribed
here so that no test reads ../shared. Tests use it to make a database the way the pipeline does
(`create_all`, then rows) for init_db to adopt, and to read and write a database init_db made.

Where the package deliberately differs from the seed (its integer flags are not copied), this
client, faithful to the seed, cannot write on PostgreSQL: auto_held and resolved are BOOLEAN there
and full_script_json is JSONB, which SQLAlchemy's Integer and Text bind with explicit casts the
server refuses. A SQLAlchemy client of a PostgreSQL database made by init_db maps them as Boolean
and JSONB. On SQLite they are what the seed says.
"""
import datetime
from typing import Optional

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql import func


def utcnow():
    """The pipeline's datetime.utcnow(): naive UTC."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class DiscoveredVideo(Base):
    __tablename__ = "discovered_videos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[str] = mapped_column(String, unique=True, nullable=False)
    title: Mapped[str] = mapped_column(String, nullable=False)
    channel_name: Mapped[str] = mapped_column(String, nullable=False)
    channel_id: Mapped[str] = mapped_column(String, nullable=False)
    url: Mapped[str] = mapped_column(String, nullable=False)
    category_id: Mapped[Optional[int]] = mapped_column(Integer)
    duration_seconds: Mapped[Optional[int]] = mapped_column(Integer)
    view_count: Mapped[Optional[int]] = mapped_column(Integer)
    like_count: Mapped[Optional[int]] = mapped_column(Integer)
    comment_count: Mapped[Optional[int]] = mapped_column(Integer)
    view_velocity: Mapped[Optional[float]] = mapped_column(Float)
    viral_score: Mapped[Optional[float]] = mapped_column(Float)
    niche: Mapped[str] = mapped_column(String, nullable=False)
    discovery_source: Mapped[Optional[str]] = mapped_column(String)
    discovered_at: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False,
                                                             default=utcnow)
    processed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    content_id_risk: Mapped[str] = mapped_column(String, nullable=False, default="unknown")


class PipelineRun(Base):
    __tablename__ = "pipeline_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    niche: Mapped[str] = mapped_column(String, nullable=False)
    cycle_start: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
    cycle_end: Mapped[datetime.datetime] = mapped_column(DateTime, nullable=False)
    status: Mapped[str] = mapped_column(String, nullable=False, default="pending")
    started_at: Mapped[Optional[datetime.datetime]] = mapped_column(DateTime)
    completed_at: Mapped[Optional[datetime.datetime]] = mapped_column(DateTime)
    video_file_path: Mapped[Optional[str]] = mapped_column(String)
    video_duration_seconds: Mapped[Optional[float]] = mapped_column(Float)
    video_file_size_bytes: Mapped[Optional[int]] = mapped_column(Integer)
    youtube_video_id: Mapped[Optional[str]] = mapped_column(String)
    youtube_url: Mapped[Optional[str]] = mapped_column(String)
    error_message: Mapped[Optional[str]] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Clip(Base):
    __tablename__ = "clips"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_run_id: Mapped[int] = mapped_column(ForeignKey("pipeline_runs.id"), nullable=False)
    discovered_video_id: Mapped[int] = mapped_column(ForeignKey("discovered_videos.id"),
                                                     nullable=False)
    rank_position: Mapped[int] = mapped_column(Integer, nullable=False)
    start_time_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    end_time_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    clip_duration_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    extraction_method: Mapped[Optional[str]] = mapped_column(String)
    clip_file_path: Mapped[Optional[str]] = mapped_column(String)
    content_id_risk: Mapped[str] = mapped_column(String, nullable=False, default="unknown")


Index("idx_discovered_videos_niche", DiscoveredVideo.niche, DiscoveredVideo.discovered_at)
Index("idx_discovered_videos_processed", DiscoveredVideo.processed)
Index("idx_pipeline_runs_status", PipelineRun.status)
Index("idx_pipeline_runs_niche", PipelineRun.niche, PipelineRun.cycle_start)
Index("idx_clips_pipeline", Clip.pipeline_run_id)


class Script(Base):
    __tablename__ = "scripts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_run_id: Mapped[int] = mapped_column(Integer, ForeignKey("pipeline_runs.id"),
                                                 nullable=False)
    opening_text: Mapped[Optional[str]] = mapped_column(Text)
    closing_text: Mapped[Optional[str]] = mapped_column(Text)
    full_script_json: Mapped[str] = mapped_column(Text)
    total_char_count: Mapped[int] = mapped_column(Integer)
    estimated_duration_seconds: Mapped[float] = mapped_column(Float)
    llm_model_used: Mapped[str] = mapped_column(Text)
    generated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=func.now())


class TTSAudio(Base):
    __tablename__ = "tts_audio"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_run_id: Mapped[int] = mapped_column(Integer, ForeignKey("pipeline_runs.id"),
                                                 nullable=False)
    engine_used: Mapped[str] = mapped_column(String(255))
    voice_profile: Mapped[Optional[str]] = mapped_column(String(255))
    audio_file_path: Mapped[Optional[str]] = mapped_column(String(512))
    duration_seconds: Mapped[Optional[float]] = mapped_column(Float)
    generated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=func.now())


class Short(Base):
    __tablename__ = "shorts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_run_id: Mapped[int] = mapped_column(Integer, ForeignKey("pipeline_runs.id"),
                                                 nullable=False)
    clip_id: Mapped[Optional[int]] = mapped_column(Integer, ForeignKey("clips.id"))
    file_path: Mapped[Optional[str]] = mapped_column(String(512))
    duration_seconds: Mapped[Optional[float]] = mapped_column(Float)
    title: Mapped[Optional[str]] = mapped_column(String(255))
    description: Mapped[Optional[str]] = mapped_column(Text)
    youtube_video_id: Mapped[Optional[str]] = mapped_column(String(100))
    youtube_url: Mapped[Optional[str]] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(32), default="pending")
    uploaded_at: Mapped[Optional[datetime.datetime]] = mapped_column(DateTime)


class Analytics(Base):
    __tablename__ = "analytics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    youtube_video_id: Mapped[str] = mapped_column(String(100))
    measured_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=func.now())
    view_count: Mapped[Optional[int]] = mapped_column(Integer)
    like_count: Mapped[Optional[int]] = mapped_column(Integer)
    comment_count: Mapped[Optional[int]] = mapped_column(Integer)
    average_view_duration_seconds: Mapped[Optional[float]] = mapped_column(Float)
    click_through_rate: Mapped[Optional[float]] = mapped_column(Float)
    subscriber_gain: Mapped[Optional[int]] = mapped_column(Integer)
    estimated_revenue_usd: Mapped[Optional[float]] = mapped_column(Float)


class ReviewLog(Base):
    __tablename__ = "review_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_run_id: Mapped[int] = mapped_column(Integer, ForeignKey("pipeline_runs.id"),
                                                 nullable=False)
    sent_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=func.now())
    responded_at: Mapped[Optional[datetime.datetime]] = mapped_column(DateTime)
    action: Mapped[Optional[str]] = mapped_column(String(255))
    response_detail: Mapped[Optional[str]] = mapped_column(String(1024))
    auto_held: Mapped[int] = mapped_column(Integer, default=0)


class ConfigOverride(Base):
    __tablename__ = "config_overrides"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024))
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=func.now())
    updated_by: Mapped[str] = mapped_column(String(64), default="system")


class ErrorLog(Base):
    __tablename__ = "error_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_run_id: Mapped[Optional[int]] = mapped_column(Integer, ForeignKey("pipeline_runs.id"))
    module: Mapped[str] = mapped_column(String(255))
    error_type: Mapped[str] = mapped_column(String(255))
    error_message: Mapped[str] = mapped_column(Text)
    stack_trace: Mapped[Optional[str]] = mapped_column(Text)
    occurred_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=func.now())
    resolved: Mapped[int] = mapped_column(Integer, default=0)


Index("idx_analytics_video", Analytics.youtube_video_id, Analytics.measured_at)
Index("idx_error_log_module", ErrorLog.module, ErrorLog.occurred_at)


def engine_for(target):
    """A SQLAlchemy engine for a SQLite path or a postgresql:// URL (psycopg 3)."""
    if "://" not in target:
        return create_engine(f"sqlite:///{target}")
    # Its naive datetimes are UTC: the session's time zone must be UTC for TIMESTAMPTZ to read them
    # so.
    return create_engine(target.replace("postgresql://", "postgresql+psycopg://", 1),
                         connect_args={"options": "-c timezone=UTC"})


def init_db(target):
    """The pipeline's init_db: create the tables and indexes; its engine."""
    engine = engine_for(target)
    Base.metadata.create_all(engine)
    return engine


def get_pending_videos(session, niche):
    """The pipeline's helper: the niche's videos with processed = 0."""
    return session.query(DiscoveredVideo).filter(DiscoveredVideo.niche == niche,
                                                 DiscoveredVideo.processed == 0).all()


__all__ = ["Base", "DiscoveredVideo", "PipelineRun", "Clip", "Script", "TTSAudio", "Short",
           "Analytics", "ReviewLog", "ConfigOverride", "ErrorLog", "Session", "engine_for",
           "init_db", "get_pending_videos"]
