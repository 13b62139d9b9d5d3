"""The ten models: every field written and read back, relations, cascades and indexes."""
import datetime

import peewee
import pytest
from conftest import aware, make_clip, make_run, make_video, minimal_row
from playhouse.shortcuts import model_to_dict

import pipeline_models as pm
from pipeline_models import (ContentIdRisk, ExtractionMethod, Processed, ReviewAction, RunStatus,
                             ShortStatus)

UTC = datetime.timezone.utc


def sample_rows(run):
    """A value for every field of every model, none of them a default."""
    clip = make_clip(run, make_video("clip-source"))
    return {
        pm.DiscoveredVideo: dict(
            video_id="abcdefghijk",
            title="Top 10 clutch plays",
            channel_name="Geo Daily",
            channel_id="UC1234567890",
            url="https://www.youtube.com/watch?v=abcdefghijk",
            category_id=20,
            duration_seconds=1312,
            view_count=12_000_000_000,
            like_count=3_000_000,
            comment_count=45_000,
            view_velocity=81234.5,
            viral_score=97.25,
            niche="gaming",
            discovery_source="youtube_trending",
            discovered_at=aware(2026, 11, 1, 8, 0, 0, 123456, hours=2),
            processed=Processed.skipped,
            content_id_risk=ContentIdRisk.medium,
            published_at=aware(2026, 3, 1, 9, 30, hours=-5),
            taken_by_run=41,
        ),
        pm.PipelineRun: dict(
            niche="sports",
            cycle_start=aware(2026, 11, 2, 1, 0),
            cycle_end=aware(2026, 11, 2, 7, 0),
            status=RunStatus.running,
            started_at=aware(2026, 11, 2, 10, 0),
            completed_at=aware(2026, 11, 2, 10, 30),
            video_file_path="/renders/sports-2026-11-02.mp4",
            video_duration_seconds=540.5,
            video_file_size_bytes=3_500_000_000,
            youtube_video_id="longform001",
            youtube_url="https://www.youtube.com/watch?v=longform001",
            error_message="ffmpeg exited 1: moov atom not found",
            retry_count=2,
            current_stage="render",
            worker="host-a:4242",
            heartbeat_at=aware(2026, 11, 2, 10, 29),
            claim_token="3f2a9c0d1e4b5a6978f0e1d2c3b4a596",
            not_before=aware(2026, 11, 2, 10, 45),
            upload_started_at=aware(2026, 11, 2, 10, 40),
            legacy_video=make_video("before-0.2"),
            created_at=aware(2026, 11, 2, 9, 59),
        ),
        pm.Clip: dict(
            pipeline_run=run,
            discovered_video=make_video("ranked-source"),
            rank_position=2,
            start_time_seconds=0.0,
            end_time_seconds=22.5,
            clip_duration_seconds=22.5,
            extraction_method=ExtractionMethod.transcript,
            clip_file_path="/clips/1.mp4",
            content_id_risk=ContentIdRisk.high,
            score=0.87,
            transcript="And he clutches it...",
            created_at=aware(2026, 11, 2, 10, 5),
            dropped_at=aware(2026, 11, 2, 11, 5),
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
            engine_used="xtts_v2",
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
            action=ReviewAction.skip,
            response_detail="skip 4,7",
            reviewer="@alice",
            responded_at=aware(2026, 11, 2, 10, 15),
            auto_held=True,
            reminded_at=aware(2026, 11, 2, 10, 11),
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
        settable = {
            f.name for f in model._meta.sorted_fields if not isinstance(f, peewee.AutoField)}
        missing = settable - set(values) - stamped
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
    video = make_video("new-one")
    clip = make_clip(run, video)
    after = pm.utcnow()
    assert pm.Short.get_by_id(short.id).status is ShortStatus.pending
    assert pm.ReviewLog.get_by_id(review.id).action is None
    assert pm.ReviewLog.get_by_id(review.id).auto_held is False
    assert pm.ErrorLog.get_by_id(error.id).resolved is False
    stored = pm.DiscoveredVideo.get_by_id(video.id)
    assert (stored.processed, stored.content_id_risk) == (Processed.pending, ContentIdRisk.unknown)
    stored = pm.Clip.get_by_id(clip.id)
    assert (stored.content_id_risk, stored.extraction_method,
            stored.dropped_at) == (ContentIdRisk.unknown, None, None)
    stored = pm.PipelineRun.get_by_id(run.id)
    assert (stored.status, stored.retry_count, stored.youtube_video_id) == (RunStatus.pending, 0,
                                                                            None)
    assert pm.ConfigOverride.create(key="k", value=1).updated_by == "system"
    for stamp in (short.created_at, review.sent_at, error.occurred_at, video.discovered_at,
                  clip.created_at):
        assert before <= stamp <= after


def test_a_run_inserted_by_another_program_gets_its_timestamps_from_the_database(database):
    """created_at and updated_at, which the pipeline's own inserts know nothing of, default to the
    clock."""
    before = pm.utcnow().replace(microsecond=0)
    table, p = "pipeline_runs", database.param
    start, end = (pm.PipelineRun.cycle_start.db_value(aware(2026, 1, 1, h)) for h in (0, 6))
    database.execute_sql(f"INSERT INTO {table} (niche, cycle_start, cycle_end, status, "
                         "retry_count) "
                         f"VALUES ({p}, {p}, {p}, 'pending', 0)", ("gaming", start, end))
    run = pm.PipelineRun.get()
    assert before <= run.created_at <= pm.utcnow() and before <= run.updated_at <= pm.utcnow()
    assert run.created_at.tzinfo == UTC
    assert pm.PipelineRun.claim_next("w").id == run.id


def test_metrics_are_null_when_not_reported(database):
    snap = pm.Analytics.create(youtube_video_id="v1", view_count=10)
    row = pm.Analytics.get_by_id(snap.id)
    assert row.view_count == 10
    assert (row.estimated_revenue_usd is None and row.engaged_views is None
            and row.click_through_rate is None)


def test_save_stamps_updated_at(run):
    first = pm.PipelineRun.get_by_id(run.id).updated_at
    run.current_stage = "clip"
    run.save()
    assert pm.PipelineRun.get_by_id(run.id).updated_at > first


def test_named_backrefs(run):
    video = make_video("source")
    clip = make_clip(run, video)
    script = pm.Script.create(**minimal_row(pm.Script, run))
    audio = pm.TTSAudio.create(**minimal_row(pm.TTSAudio, run))
    short = pm.Short.create(pipeline_run=run, clip=clip)
    review = pm.ReviewLog.create(pipeline_run=run)
    error = pm.ErrorLog.create(pipeline_run=run, module="m", error_type="E", error_message="x")
    assert list(video.clips) == [clip]
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
    clip = make_clip(run, make_video("source"))
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
    assert pm.DiscoveredVideo.select().count() == 1  # the clip's video stays


def test_deleting_a_clip_keeps_its_short(run):
    clip = make_clip(run, make_video("source"))
    short = pm.Short.create(pipeline_run=run, clip=clip)
    clip.delete_instance()
    assert pm.Short.get_by_id(short.id).clip_id is None


def test_deleting_a_video_a_clip_was_cut_from_is_refused(run):
    video = make_video("source")
    make_clip(run, video)
    with pytest.raises(peewee.IntegrityError):
        video.delete_instance()
    assert pm.DiscoveredVideo.select().count() == 1 and pm.Clip.select().count() == 1


def test_orphan_rows_are_refused_and_leave_nothing(database):
    video = make_video("source")
    with pytest.raises(peewee.IntegrityError):
        make_clip(999, video)
    with pytest.raises(peewee.IntegrityError):
        make_clip(make_run(), 12345)
    with pytest.raises(peewee.IntegrityError):
        pm.Short.create(pipeline_run=999)
    assert pm.Clip.select().count() == 0 and pm.Short.select().count() == 0


def test_short_youtube_id_is_unique_when_set(run):
    pm.Short.create(pipeline_run=run)
    pm.Short.create(pipeline_run=run)  # two unset ids do not collide
    pm.Short.create(pipeline_run=run, youtube_video_id="yt1")
    with pytest.raises(peewee.IntegrityError):
        pm.Short.create(pipeline_run=run, youtube_video_id="yt1")
    assert pm.Short.select().count() == 3


def test_unique_keys(run):
    make_video("v1")
    with pytest.raises(peewee.IntegrityError):
        make_video("v1")
    pm.PipelineRun.create(niche="gaming", cycle_start=aware(2026, 2, 1),
                          cycle_end=aware(2026, 2, 2), youtube_video_id="long1")
    with pytest.raises(peewee.IntegrityError):  # a long-form video is uploaded once
        make_run(cycle=5, youtube_video_id="long1")
    pm.ReviewLog.create(pipeline_run=run, message_id="m1")
    with pytest.raises(peewee.IntegrityError):
        pm.ReviewLog.create(pipeline_run=run, message_id="m1")
    pm.ConfigOverride.create(key="k", value=1)
    with pytest.raises(peewee.IntegrityError):  # the primary key
        pm.ConfigOverride.create(key="k", value=2)


EXPECTED_INDEXES = {
    "analytics": {("youtube_video_id", "measured_at")},  # idx_analytics_video
    "error_logs": {("module", "occurred_at"), ("resolved", "occurred_at"), ("pipeline_run_id",)},
    # idx_pipeline_runs_status, idx_pipeline_runs_niche (unique: a run per niche and cycle), the
    # long-form id
    "pipeline_runs": {("status",), ("niche", "cycle_start"), ("youtube_video_id",),
                      ("completed_at",), ("status", "completed_at"), ("upload_started_at",)},
    "review_logs": {("action", "sent_at"), ("pipeline_run_id",), ("message_id",)},
    # the video id; idx_discovered_videos_niche, idx_discovered_videos_processed,
    # idx_discovered_videos_candidates
    "discovered_videos": {("video_id",), ("niche", "discovered_at"), ("processed",),
                          ("niche", "viral_score", "discovered_at", "id"), ("taken_by_run",)},
    "shorts": {("pipeline_run_id",), ("clip_id",), ("youtube_video_id",), ("uploaded_at",),
               ("upload_started_at",)},
    "config_overrides": set(),  # key is the primary key
    # idx_clips_pipeline, clips_rank_in_run (unique among clips not dropped), a video's clips
    "clips": {("pipeline_run_id",), ("pipeline_run_id", "rank_position"), ("discovered_video_id",)},
    "scripts": {("pipeline_run_id",)},
    "tts_audio": {("pipeline_run_id",)},
}


def test_indexes_are_exactly_the_planned_ones(database):
    for model in pm.ALL_MODELS:
        table = model._meta.table_name
        found = {tuple(index.columns) for index in database.get_indexes(table)
                 if not index.name.endswith("_pkey")
                 and not index.name.startswith("sqlite_autoindex")}
        assert found == EXPECTED_INDEXES[table], table


def test_table_names(database):
    assert set(database.get_tables()) >= set(EXPECTED_INDEXES)
    assert [m._meta.table_name for m in pm.ALL_MODELS] == [
        "discovered_videos", "pipeline_runs", "clips", "scripts", "tts_audio",
        "shorts", "analytics", "review_logs", "config_overrides", "error_logs",
    ]
