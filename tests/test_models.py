"""The ten models: every field written and read back, relations, cascades and indexes."""
import datetime

import peewee
import pytest
from conftest import aware, minimal_row
from playhouse.shortcuts import model_to_dict

import pipeline_models as pm
from pipeline_models import ReviewAction, RunStatus, ShortStatus, VideoStatus

UTC = datetime.timezone.utc


def sample_rows(run):
    """A value for every field of every model, none of them a default."""
    clip = pm.Clip.create(pipeline_run=run, start_seconds=12.5, end_seconds=41.0)
    return {
        pm.DiscoveredVideo: dict(
            youtube_video_id="abcdefghijk",
            title="How rivers carve canyons",
            channel_id="UC1234567890",
            channel_title="Geo Daily",
            published_at=aware(2026, 3, 1, 9, 30, hours=-5),
            duration_seconds=1312.5,
            view_count=12_000_000_000,
            source="search:canyon erosion",
            discovered_at=aware(2026, 11, 1, 8, 0, 0, 123456, hours=2),
            status=VideoStatus.selected,
        ),
        pm.PipelineRun: dict(
            discovered_video=pm.DiscoveredVideo.create(youtube_video_id="sample-run-video"),
            status=RunStatus.running,
            current_stage="render",
            worker="host-a:4242",
            attempts=2,
            started_at=aware(2026, 11, 2, 10, 0),
            finished_at=aware(2026, 11, 2, 10, 30),
            heartbeat_at=aware(2026, 11, 2, 10, 29),
            last_error="ffmpeg exited 1: moov atom not found",
            created_at=aware(2026, 11, 2, 9, 59),
            claim_token="3f2a9c0d1e4b5a6978f0e1d2c3b4a596",
            not_before=aware(2026, 11, 2, 10, 45),
        ),
        pm.Clip: dict(
            pipeline_run=run,
            start_seconds=0.0,
            end_seconds=59.9,
            file_path="/clips/1.mp4",
            score=0.87,
            transcript="Rivers cut down, not sideways...",
            created_at=aware(2026, 11, 2, 10, 5),
        ),
        pm.Script: dict(
            pipeline_run=run,
            opening_text="This canyon is younger than you think.",
            closing_text="Follow for more.",
            full_script_json={"hook": "...", "beats": ["one", "two"], "cta": None, "n": 3},
            total_char_count=612,
            estimated_duration_seconds=40.8,
            llm_model_used="gpt-4.1-mini",
            generated_at=aware(2026, 11, 2, 10, 6),
            title="Canyons in 60 seconds",
            prompt_tokens=1800,
            completion_tokens=420,
            cost_usd=0.00123,
        ),
        pm.TTSAudio: dict(
            pipeline_run=run,
            engine_used="openai",
            voice_profile="alloy",
            audio_file_path="/audio/1.wav",
            duration_seconds=58.2,
            generated_at=aware(2026, 11, 2, 10, 7),
        ),
        pm.Short: dict(
            pipeline_run=run,
            clip=clip,
            title="Canyons in 60 seconds #shorts",
            description="Why rivers carve down.",
            file_path="/shorts/1.mp4",
            duration_seconds=58.2,
            status=ShortStatus.uploaded,
            youtube_video_id="shortid0001",
            youtube_url="https://youtube.com/shorts/shortid0001",
            uploaded_at=aware(2026, 11, 2, 11, 0),
            upload_started_at=aware(2026, 11, 2, 10, 58),
            created_at=aware(2026, 11, 2, 10, 8),
        ),
        pm.Analytics: dict(
            youtube_video_id="shortid0001",
            measured_at=aware(2026, 11, 3, 11, 0),
            view_count=15000,
            like_count=800,
            comment_count=45,
            average_view_duration_seconds=28.8,
            click_through_rate=0.043,
            subscriber_gain=12,
            estimated_revenue_usd=3.21,
            engaged_views=9000,
            shares=30,
            watch_time_minutes=7200.5,
        ),
        pm.ReviewLog: dict(
            pipeline_run=run,
            message_id="chat42:msg1001",
            sent_at=aware(2026, 11, 2, 10, 9),
            action=ReviewAction.edit,
            response_detail="Shorter title please",
            reviewer="@alice",
            responded_at=aware(2026, 11, 2, 10, 15),
            auto_held=True,
        ),
        pm.ConfigOverride: dict(
            key="render.max_duration",
            value={"seconds": 59, "strict": True},
            updated_by="alice",
            updated_at=aware(2026, 11, 2, 9, 0),
        ),
        pm.ErrorLog: dict(
            pipeline_run=run,
            module="uploader",
            error_type="QuotaExceeded",
            error_message="daily upload quota reached",
            stack_trace="Traceback (most recent call last): ...",
            occurred_at=aware(2026, 11, 2, 10, 20),
            resolved=True,
        ),
    }


def test_every_model_round_trips_every_field(run):
    rows = sample_rows(run)
    assert set(rows) == set(pm.ALL_MODELS)
    for model, values in rows.items():
        stamped = {"updated_at"} if model is pm.PipelineRun else set()  # save() sets it
        missing = {f.name for f in model._meta.sorted_fields if not isinstance(f, peewee.AutoField)} - set(values) - stamped
        assert not missing, f"{model.__name__} sample lacks {missing}"
        created = model.create(**values)
        fetched = model.get_by_id(created.get_id())
        got = model_to_dict(fetched, recurse=False)
        want = {k: (v.id if isinstance(v, peewee.Model) else v) for k, v in values.items()}
        want[model._meta.primary_key.name] = created.get_id()
        for name in stamped:
            assert got.pop(name).tzinfo == UTC
        # Timestamps come back as the same instant, in UTC.
        for name, value in want.items():
            if isinstance(value, datetime.datetime):
                assert got[name].tzinfo == UTC
        assert got == want, model.__name__


def test_defaults(run):
    before = pm.utcnow()
    short = pm.Short.create(pipeline_run=run)
    review = pm.ReviewLog.create(pipeline_run=run)
    error = pm.ErrorLog.create(module="m", error_type="E", error_message="boom")
    video = pm.DiscoveredVideo.create(youtube_video_id="new-one")
    after = pm.utcnow()
    assert pm.Short.get_by_id(short.id).status is ShortStatus.pending
    assert pm.ReviewLog.get_by_id(review.id).action is None
    assert pm.ReviewLog.get_by_id(review.id).auto_held is False
    assert pm.ErrorLog.get_by_id(error.id).resolved is False
    assert pm.DiscoveredVideo.get_by_id(video.id).status is VideoStatus.new
    assert pm.PipelineRun.get_by_id(run.id).status is RunStatus.pending
    assert pm.PipelineRun.get_by_id(run.id).attempts == 0
    assert pm.ConfigOverride.create(key="k", value=1).updated_by == "system"
    for stamp in (short.created_at, review.sent_at, error.occurred_at, video.discovered_at):
        assert before <= stamp <= after


def test_metrics_are_null_when_not_reported(database):
    snap = pm.Analytics.create(youtube_video_id="v1", view_count=10)
    row = pm.Analytics.get_by_id(snap.id)
    assert row.view_count == 10
    assert row.estimated_revenue_usd is None and row.engaged_views is None and row.click_through_rate is None


def test_save_stamps_updated_at(run):
    first = pm.PipelineRun.get_by_id(run.id).updated_at
    run.current_stage = "clip"
    run.save()
    assert pm.PipelineRun.get_by_id(run.id).updated_at > first


def test_named_backrefs(run):
    clip = pm.Clip.create(pipeline_run=run, start_seconds=0, end_seconds=10)
    script = pm.Script.create(**minimal_row(pm.Script, run))
    audio = pm.TTSAudio.create(**minimal_row(pm.TTSAudio, run))
    short = pm.Short.create(pipeline_run=run, clip=clip)
    review = pm.ReviewLog.create(pipeline_run=run)
    error = pm.ErrorLog.create(pipeline_run=run, module="m", error_type="E", error_message="x")
    assert list(run.discovered_video.runs) == [run]
    assert list(run.clips) == [clip]
    assert list(run.scripts) == [script]
    assert list(run.audio) == [audio]
    assert list(run.shorts) == [short]
    assert list(run.reviews) == [review]
    assert list(run.errors) == [error]
    assert list(clip.shorts) == [short]


def test_every_backref_name_is_unique_per_model():
    for model in pm.ALL_MODELS:
        names = [fk.backref for fk in model._meta.backrefs]
        assert len(names) == len(set(names)), model.__name__


def test_deleting_a_run_cascades_and_keeps_its_errors(run):
    clip = pm.Clip.create(pipeline_run=run, start_seconds=0, end_seconds=10)
    pm.Script.create(**minimal_row(pm.Script, run))
    pm.TTSAudio.create(**minimal_row(pm.TTSAudio, run))
    pm.Short.create(pipeline_run=run, clip=clip)
    pm.ReviewLog.create(pipeline_run=run)
    error = pm.ErrorLog.create(pipeline_run=run, module="m", error_type="E", error_message="x")

    run.delete_instance()

    for model in (pm.PipelineRun, pm.Clip, pm.Script, pm.TTSAudio, pm.Short, pm.ReviewLog):
        assert model.select().count() == 0, model.__name__
    kept = pm.ErrorLog.get_by_id(error.id)
    assert kept.pipeline_run_id is None and kept.error_message == "x"


def test_deleting_a_clip_keeps_its_short(run):
    clip = pm.Clip.create(pipeline_run=run, start_seconds=0, end_seconds=10)
    short = pm.Short.create(pipeline_run=run, clip=clip)
    clip.delete_instance()
    assert pm.Short.get_by_id(short.id).clip_id is None


def test_deleting_a_video_with_runs_is_refused(run):
    with pytest.raises(peewee.IntegrityError):
        run.discovered_video.delete_instance()
    assert pm.DiscoveredVideo.select().count() == 1


def test_orphan_rows_are_refused_and_leave_nothing(database):
    with pytest.raises(peewee.IntegrityError):
        pm.Clip.create(pipeline_run=999, start_seconds=0, end_seconds=1)
    with pytest.raises(peewee.IntegrityError):
        pm.PipelineRun.create(discovered_video=12345)
    assert pm.Clip.select().count() == 0 and pm.PipelineRun.select().count() == 0


def test_short_youtube_id_is_unique_when_set(run):
    pm.Short.create(pipeline_run=run)
    pm.Short.create(pipeline_run=run)  # two unset ids do not collide
    pm.Short.create(pipeline_run=run, youtube_video_id="yt1")
    with pytest.raises(peewee.IntegrityError):
        pm.Short.create(pipeline_run=run, youtube_video_id="yt1")
    assert pm.Short.select().count() == 3


def test_unique_keys(run):
    with pytest.raises(peewee.IntegrityError):
        pm.DiscoveredVideo.create(youtube_video_id=run.discovered_video.youtube_video_id)
    pm.ReviewLog.create(pipeline_run=run, message_id="m1")
    with pytest.raises(peewee.IntegrityError):
        pm.ReviewLog.create(pipeline_run=run, message_id="m1")
    pm.ConfigOverride.create(key="k", value=1)
    with pytest.raises(peewee.IntegrityError):  # the primary key
        pm.ConfigOverride.create(key="k", value=2)


EXPECTED_INDEXES = {
    "analytics": {("youtube_video_id", "measured_at")},  # idx_analytics_video
    "error_logs": {("module", "occurred_at"), ("resolved", "occurred_at"), ("pipeline_run_id",)},
    "pipeline_runs": {("status", "created_at"), ("discovered_video_id",)},
    "review_logs": {("action", "sent_at"), ("pipeline_run_id",), ("message_id",)},
    "discovered_videos": {("youtube_video_id",)},
    "shorts": {("pipeline_run_id",), ("clip_id",), ("youtube_video_id",)},
    "config_overrides": set(),  # key is the primary key
    "clips": {("pipeline_run_id",)},
    "scripts": {("pipeline_run_id",)},
    "tts_audio": {("pipeline_run_id",)},
}


def test_indexes_are_exactly_the_planned_ones(database):
    for model in pm.ALL_MODELS:
        table = model._meta.table_name
        found = {tuple(index.columns) for index in database.get_indexes(table)
                 if not index.name.endswith("_pkey") and not index.name.startswith("sqlite_autoindex")}
        assert found == EXPECTED_INDEXES[table], table


def test_table_names(database):
    assert set(database.get_tables()) >= set(EXPECTED_INDEXES)
    assert [m._meta.table_name for m in pm.ALL_MODELS] == [
        "discovered_videos", "pipeline_runs", "clips", "scripts", "tts_audio",
        "shorts", "analytics", "review_logs", "config_overrides", "error_logs",
    ]
