"""The pipeline's own three tables (discovered_videos, pipeline_runs, clips), column by column on
every backend; its database helpers and its own test scenarios; a second client (the pipeline's
SQLAlchemy module) on the same database, both ways."""
import datetime
import shutil
import sys
from pathlib import Path

import peewee
import pytest
from conftest import CYCLE_START, make_clip, make_run, make_video
from playhouse.schema_diff import diff_models
from test_seed_schema import kind_of, model_of

import pipeline_models as pm
from pipeline_models import Processed, SchemaMismatch

sys.path.insert(0, str(Path(__file__).parent))
sa = pytest.importorskip("sqlalchemy")
import pipeline_sqlalchemy as client  # noqa: E402  (the second client, beside this file)

NOW = "now"
UTC = datetime.timezone.utc

# The pipeline's database module, transcribed: (column, kind, nullable, default). Its `String` has
# no length; LENGTHS below are the ones the package chose (pipeline_models.models.runs says why).
PIPELINE = {
    "discovered_videos": [
        ("id", "integer", False, None),
        ("video_id", "string", False, None),
        ("title", "string", False, None),
        ("channel_name", "string", False, None),
        ("channel_id", "string", False, None),
        ("url", "string", False, None),
        ("category_id", "integer", True, None),
        ("duration_seconds", "integer", True, None),
        ("view_count", "integer", True, None),
        ("like_count", "integer", True, None),
        ("comment_count", "integer", True, None),
        ("view_velocity", "float", True, None),
        ("viral_score", "float", True, None),
        ("niche", "string", False, None),
        ("discovery_source", "string", True, None),
        ("discovered_at", "datetime", False, NOW),
        ("processed", "integer", False, 0),
        ("content_id_risk", "string", False, "unknown"),
    ],
    "pipeline_runs": [
        ("id", "integer", False, None),
        ("niche", "string", False, None),
        ("cycle_start", "datetime", False, None),
        ("cycle_end", "datetime", False, None),
        ("status", "string", False, "pending"),
        ("started_at", "datetime", True, None),
        ("completed_at", "datetime", True, None),
        ("video_file_path", "string", True, None),
        ("video_duration_seconds", "float", True, None),
        ("video_file_size_bytes", "integer", True, None),
        ("youtube_video_id", "string", True, None),
        ("youtube_url", "string", True, None),
        ("error_message", "text", True, None),
        ("retry_count", "integer", False, 0),
    ],
    "clips": [
        ("id", "integer", False, None),
        ("pipeline_run_id", "integer", False, None),
        ("discovered_video_id", "integer", False, None),
        ("rank_position", "integer", False, None),
        ("start_time_seconds", "float", False, None),
        ("end_time_seconds", "float", False, None),
        ("clip_duration_seconds", "float", False, None),
        ("extraction_method", "string", True, None),
        ("clip_file_path", "string", True, None),
        ("content_id_risk", "string", False, "unknown"),
    ],
}
LENGTHS = {"video_id": 64, "title": 1024, "channel_name": 255, "channel_id": 64, "url": 512,
           "niche": 64, "discovery_source": 255, "content_id_risk": 16, "status": 32,
           "video_file_path": 512, "youtube_video_id": 100, "youtube_url": 512,
           "extraction_method": 32, "clip_file_path": 512}
PIPELINE_INDEXES = {
    "idx_discovered_videos_niche": ("discovered_videos", ["niche", "discovered_at"]),
    "idx_discovered_videos_processed": ("discovered_videos", ["processed"]),
    "idx_pipeline_runs_status": ("pipeline_runs", ["status"]),
    "idx_pipeline_runs_niche": ("pipeline_runs", ["niche", "cycle_start"]),
    "idx_clips_pipeline": ("clips", ["pipeline_run_id"]),
}
SEED_INDEXES = {"idx_analytics_video": ("analytics", ["youtube_video_id", "measured_at"]),
                "idx_error_log_module": ("error_logs", ["module", "occurred_at"])}
FOREIGN_KEYS = {"discovered_videos": set(), "pipeline_runs": {("legacy_video_id",
                                                               "discovered_videos", "id")},
                "clips": {("pipeline_run_id", "pipeline_runs", "id"),
                          ("discovered_video_id", "discovered_videos", "id")}}


@pytest.mark.parametrize("table", PIPELINE)
def test_every_pipeline_column_has_its_name_kind_and_null_ness(database, table):
    sqlite = isinstance(database, peewee.SqliteDatabase)
    columns = {c.name: c for c in database.get_columns(table)}
    for name, kind, nullable, _ in PIPELINE[table]:
        assert name in columns, f"{table}.{name} is missing"
        length = LENGTHS.get(name) if kind == "string" else None
        assert kind_of(columns[name], sqlite) == (kind, length), f"{table}.{name}"
        assert columns[name].null is nullable, f"{table}.{name}"


@pytest.mark.parametrize("table", PIPELINE)
def test_the_pipeline_defaults(table):
    model = model_of(table)
    for name, _, _, default in PIPELINE[table]:
        field = model._meta.columns[name]
        if default == NOW:
            assert field.default is pm.utcnow, f"{table}.{name}"
        else:
            assert field.default == default, f"{table}.{name}"


@pytest.mark.parametrize("table", PIPELINE)
def test_columns_beyond_the_pipeline_are_nullable_or_defaulted(database, table):
    extra = {c.name for c in database.get_columns(table)} - {row[0] for row in PIPELINE[table]}
    assert extra  # the queue's and the package's own
    for name in extra:
        field = model_of(table)._meta.columns[name]
        assert field.null or field.default is not None, f"{table}.{name}"


@pytest.mark.parametrize("table", PIPELINE)
def test_primary_and_foreign_keys(database, table):
    assert database.get_primary_keys(table) == ["id"]
    found = {(fk.column, fk.dest_table, fk.dest_column) for fk in database.get_foreign_keys(table)}
    assert found == FOREIGN_KEYS[table]


@pytest.mark.parametrize("name", [*PIPELINE_INDEXES, *SEED_INDEXES])
def test_the_seven_named_indexes(database, name):
    table, columns = {**PIPELINE_INDEXES, **SEED_INDEXES}[name]
    assert [i.columns for i in database.get_indexes(table) if i.name == name] == [columns]


def test_one_run_per_niche_and_cycle_is_the_databases_rule(database):
    make_run("gaming")
    with pytest.raises(peewee.IntegrityError):
        with pm.db.atomic():
            make_run("gaming")
    make_run("sports")  # another niche, the same cycle
    assert pm.PipelineRun.select().count() == 2


def test_the_value_sets_are_checked_by_the_database_too(database):
    """Raw SQL (another program) meets the same rules as the models: the CHECKs are in the
    tables."""
    make_video("v1")
    run = make_run()
    for sql in ("UPDATE discovered_videos SET processed = 4",
                "UPDATE discovered_videos SET content_id_risk = 'severe'",
                "UPDATE pipeline_runs SET status = 'published'",
                "UPDATE pipeline_runs SET retry_count = -1",
                f"UPDATE pipeline_runs SET cycle_end = cycle_start WHERE id = {run.id}"):
        with pytest.raises(peewee.IntegrityError):
            with pm.db.atomic():
                database.execute_sql(sql)
    clip = make_clip(run, pm.DiscoveredVideo.get())
    for sql in ("UPDATE clips SET rank_position = 0",
                "UPDATE clips SET extraction_method = 'guess'",
                "UPDATE clips SET end_time_seconds = start_time_seconds",
                "UPDATE clips SET clip_duration_seconds = -1"):
        with pytest.raises(peewee.IntegrityError):
            with pm.db.atomic():
                database.execute_sql(sql)
    assert pm.Clip.get_by_id(clip.id).rank_position == 1


def test_processed_is_an_integer_with_names():
    assert [(p.name, int(p)) for p in Processed] == [("pending", 0), ("used", 1), ("skipped", 2),
                                                     ("rejected", 3)]
    assert pm.DiscoveredVideo.processed.field_type == "INT"


# --- the pipeline's own tests, ported -----------------------------------------------------------


def test_a_video_with_only_the_required_columns_is_pending(database):
    video = pm.DiscoveredVideo.create(video_id="abc123", title="A title", channel_name="A creator",
                                      channel_id="UC123", url="https://youtube.com/watch?v=abc123",
                                      niche="gaming")
    stored = pm.DiscoveredVideo.get_by_id(video.id)
    assert stored.processed == 0 and stored.processed is Processed.pending
    assert stored.content_id_risk == "unknown"
    assert stored.discovered_at.tzinfo == UTC


def test_a_run_with_niche_and_cycle(database):
    start = datetime.datetime(2026, 3, 1, 0, 30, tzinfo=UTC)
    run = pm.PipelineRun.create(niche="gaming", cycle_start=start,
                                cycle_end=start + datetime.timedelta(hours=6))
    stored = pm.PipelineRun.get_by_id(run.id)
    assert (stored.niche, stored.status, stored.retry_count) == ("gaming", "pending", 0)
    assert stored.cycle_end - stored.cycle_start == datetime.timedelta(hours=6)


def test_a_clip_with_both_foreign_keys_and_rank_one(database):
    video, run = make_video("abc123"), make_run()
    clip = pm.Clip.create(pipeline_run=run, discovered_video=video, rank_position=1,
                          start_time_seconds=0, end_time_seconds=10, clip_duration_seconds=10)
    stored = pm.Clip.get_by_id(clip.id)
    assert (stored.pipeline_run_id, stored.discovered_video_id, stored.rank_position) == (run.id,
                                                                                          video.id,
                                                                                          1)
    assert stored.content_id_risk == "unknown"
    assert [c.id for c in run.clips] == [clip.id] and [c.id for c in video.clips] == [clip.id]


def test_get_pending_videos_returns_only_the_pending_videos_of_the_niche_best_first(database):
    make_video("vid1", viral_score=1.0)
    make_video("vid2", viral_score=9.0)
    make_video("vid3", viral_score=5.0)
    make_video("vid4")  # no score yet: last
    make_video("vid5", processed=1, viral_score=99.0)
    make_video("vid6", niche="sports", viral_score=50.0)
    assert [v.video_id for v in pm.get_pending_videos("gaming")] == ["vid2", "vid3", "vid1", "vid4"]
    assert len(pm.get_pending_videos("gaming")) == 4
    assert [v.video_id for v in pm.get_pending_videos("gaming").limit(2)] == ["vid2", "vid3"]
    assert list(pm.get_pending_videos("funny")) == []
    with pytest.raises(ValueError,
                       match="PipelineRun.niche: get_pending_videos needs the niche's name"):
        pm.get_pending_videos("")


def test_mark_video_processed(database):
    for n in (1, 2, 3):
        make_video(f"vid{n}")
    pm.mark_video_processed("vid3", 1)
    pm.mark_video_processed("vid2", Processed.rejected)
    assert {v.video_id: v.processed for v in pm.DiscoveredVideo.select()} == {"vid1": 0, "vid2": 3,
                                                                              "vid3": 1}
    assert [v.video_id for v in pm.get_pending_videos("gaming")] == ["vid1"]


@pytest.mark.parametrize("video_id, status, message", [
    ("", 1, "DiscoveredVideo.video_id: mark_video_processed needs the video's YouTube id, not ''"),
    (None, 1, "DiscoveredVideo.video_id: mark_video_processed needs"),
    ("nosuch", 1, "DiscoveredVideo.video_id: no video has the id 'nosuch'"),
    ("vid1", 4, "DiscoveredVideo.processed: 4 is not one of: 0, 1, 2, 3"),
    ("vid1", True, "DiscoveredVideo.processed: True is not one of"),
])
def test_mark_video_processed_refusals_change_nothing(database, video_id, status, message):
    make_video("vid1")
    with pytest.raises(ValueError, match=message):
        pm.mark_video_processed(video_id, status)
    assert pm.DiscoveredVideo.get().processed == 0


def test_log_error_stores_an_unresolved_error(database):
    run = make_run()
    error = pm.log_error("tts", "TimeoutError", "the engine did not answer", pipeline_run_id=run.id,
                         stack_trace="Traceback ...")
    stored = pm.ErrorLog.get_by_id(error.id)
    assert (stored.module, stored.error_type, stored.error_message, stored.stack_trace) == (
        "tts", "TimeoutError", "the engine did not answer", "Traceback ...")
    assert stored.resolved is False and stored.pipeline_run_id == run.id
    assert pm.log_error("discovery", "E", "no run").pipeline_run_id is None


@pytest.mark.parametrize("args, name", [(("", "E", "m"), "module"), (("m", " ", "m"), "error_type"),
                                        (("m", "E", ""), "error_message"), ((None, "E", "m"),
                                                                            "module")])
def test_log_error_refuses_an_empty_module_type_or_message(database, args, name):
    with pytest.raises(ValueError, match=rf"ErrorLog\.{name}: log_error needs the"):
        pm.log_error(*args)
    assert pm.ErrorLog.select().count() == 0


def test_log_error_escapes_what_no_database_stores(database):
    error = pm.log_error("m\x00", "E", "bad \udcff byte")
    stored = pm.ErrorLog.get_by_id(error.id)
    assert (stored.module, stored.error_message) == ("m\\x00", "bad \\udcff byte")


def test_log_error_for_a_run_that_does_not_exist_is_refused(database):
    with pytest.raises(ValueError,
                       match=r"^ErrorLog\.pipeline_run: no PipelineRun has the id 999 \("):
        pm.log_error("m", "E", "x", pipeline_run_id=999)
    assert pm.ErrorLog.select().count() == 0


# --- a run per niche and cycle ------------------------------------------------------------------


def test_schedule_makes_one_run_per_niche_and_cycle(database):
    run = pm.PipelineRun.schedule("gaming", CYCLE_START)
    again = pm.PipelineRun.schedule("gaming", CYCLE_START)
    later = pm.PipelineRun.schedule("gaming", CYCLE_START + datetime.timedelta(hours=6))
    sports = pm.PipelineRun.schedule("sports", CYCLE_START + datetime.timedelta(minutes=30))
    assert again.id == run.id and len({run.id, later.id, sports.id}) == 3
    assert run.cycle_end == CYCLE_START + datetime.timedelta(hours=6) and run.status == "pending"
    # The same instant in another offset is the same cycle.
    tokyo = CYCLE_START.astimezone(datetime.timezone(datetime.timedelta(hours=9)))
    assert pm.PipelineRun.schedule("gaming", tokyo).id == run.id
    assert pm.PipelineRun.select().count() == 3


def test_schedule_takes_an_explicit_end_and_refuses_a_contradicting_one(database):
    end = CYCLE_START + datetime.timedelta(hours=4)
    run = pm.PipelineRun.schedule("funny", CYCLE_START, end)
    assert pm.PipelineRun.schedule("funny", CYCLE_START, end).id == run.id
    with pytest.raises(ValueError,
                       match=r"PipelineRun.cycle_end: the funny run of the cycle starting .* \(run "
                             rf"{run.id}\) ends at"):
        pm.PipelineRun.schedule("funny", CYCLE_START, CYCLE_START + datetime.timedelta(hours=6))


@pytest.mark.parametrize("args, message", [
    (("", CYCLE_START), "PipelineRun.niche: schedule needs the niche's name"),
    (("gaming", None),
     "PipelineRun.cycle_start: schedule needs the cycle's start as an aware datetime"),
    (("gaming", datetime.datetime(2026, 1, 1)), "PipelineRun.cycle_start: naive datetime"),
    (("gaming", CYCLE_START, CYCLE_START), "PipelineRun.cycle_end: .* is not after cycle_start"),
    (("gaming", CYCLE_START, datetime.datetime(2026, 1, 2)),
     "PipelineRun.cycle_end: naive datetime"),
    (("x" * 65, CYCLE_START),
     "PipelineRun.niche: text of 65 characters is longer than the limit of 64"),
])
def test_schedule_refuses_bad_arguments_naming_them(database, args, message):
    with pytest.raises(ValueError, match=message):
        pm.PipelineRun.schedule(*args)
    assert pm.PipelineRun.select().count() == 0


def test_a_clip_of_a_video_or_rank_already_in_its_run_is_refused(database):
    run, other_run = make_run(cycle=0), make_run(cycle=1)
    first, second = make_video("v1"), make_video("v2")
    make_clip(run, first, rank=1)
    with pytest.raises(ValueError,
                       match=rf"Clip.discovered_video: run {run.id} already has a clip of video "
                             rf"{first.id}"):
        make_clip(run, first, rank=2)
    with pytest.raises(ValueError,
                       match=rf"Clip.rank_position: run {run.id} already has a clip ranked 1"):
        make_clip(run, second, rank=1)
    make_clip(run, second, rank=2)
    make_clip(other_run, first, rank=1)  # another run may rank the same video and the same rank
    moved = make_clip(other_run, second, rank=2)
    moved.rank_position = 1
    with pytest.raises(ValueError, match="Clip.rank_position"):
        moved.save()
    assert pm.Clip.get_by_id(moved.id).rank_position == 2
    assert pm.Clip.select().count() == 4


def test_clips_inserted_in_bulk_follow_the_same_rule(database):
    run, video = make_run(), make_video("v1")
    row = dict(pipeline_run=run.id, discovered_video=video.id, start_time_seconds=0.0,
               end_time_seconds=5.0, clip_duration_seconds=5.0)
    with pytest.raises(ValueError, match=rf"run {run.id} would have two clips of video {video.id}"):
        pm.Clip.insert_rows([{**row, "rank_position": 1}, {**row, "rank_position": 2}])
    assert pm.Clip.select().count() == 0
    with pytest.raises(peewee.IntegrityError):
        pm.Clip.insert_rows([{**row, "rank_position": 1}, {**row,
                                                           "discovered_video": make_video("v2").id,
                                                           "rank_position": 1}])
    assert pm.Clip.select().count() == 0


def test_discover_records_a_video_once_and_refreshes_its_metadata(database):
    video, created = pm.DiscoveredVideo.discover("abc", title="First", channel_name="C",
                                                 channel_id="UC", niche="gaming", viral_score=1.5)
    assert created and video.url == "https://www.youtube.com/watch?v=abc"
    again, created = pm.DiscoveredVideo.discover("abc", viral_score=7.5, view_count=10)
    assert not created and again.id == video.id
    stored = pm.DiscoveredVideo.get_by_id(video.id)
    assert (stored.title, stored.viral_score, stored.view_count, stored.processed) == ("First", 7.5,
                                                                                       10, 0)
    with pytest.raises(ValueError,
                       match="DiscoveredVideo.channel_name: a new video needs channel_name, niche"):
        pm.DiscoveredVideo.discover("new", title="t", channel_id="UC")
    with pytest.raises(TypeError, match="processed"):
        pm.DiscoveredVideo.discover("abc", processed=1)
    assert pm.DiscoveredVideo.select().count() == 1


# --- a second client: the pipeline's own SQLAlchemy module --------------------------------------


def _target(fresh_target):
    return fresh_target


def test_the_sqlalchemy_client_reads_and_writes_a_database_init_db_made(fresh_target):
    sqlite = isinstance(pm.init_db(fresh_target), peewee.SqliteDatabase)
    pm.log_error("render", "E", "from the package", pipeline_run_id=None)
    video = make_video("fromorm", viral_score=2.0)
    run = pm.PipelineRun.schedule("gaming", CYCLE_START)
    make_clip(run, video, rank=1)
    pm.db.close()
    engine = client.engine_for(fresh_target)
    with client.Session(engine) as session:
        got = session.query(client.DiscoveredVideo).filter_by(video_id="fromorm").one()
        assert (got.title, got.processed, got.content_id_risk, got.viral_score) == ("Video fromorm",
                                                                                    0, "unknown",
                                                                                    2.0)
        got_run = session.query(client.PipelineRun).one()
        assert (got_run.niche, got_run.status, got_run.retry_count) == ("gaming", "pending", 0)
        assert got_run.cycle_start.replace(tzinfo=None) == CYCLE_START.replace(tzinfo=None)
        error = session.query(client.ErrorLog).one()
        assert (error.module, error.resolved, error.occurred_at is not None) == ("render", False,
                                                                                 True)
        clip = session.query(client.Clip).one()
        assert (clip.pipeline_run_id, clip.discovered_video_id, clip.rank_position) == (run.id,
                                                                                        video.id, 1)
        # The pipeline's own writes, as its code makes them (naive UTC times, integers).
        new = client.DiscoveredVideo(video_id="fromsa", title="T", channel_name="C",
                                     channel_id="UC", url="u", niche="sports", viral_score=4.0)
        session.add(new)
        session.flush()
        start = datetime.datetime(2026, 2, 1, 1, 0)
        sa_run = client.PipelineRun(niche="sports", cycle_start=start,
                                    cycle_end=start + datetime.timedelta(hours=6))
        session.add(sa_run)
        session.flush()
        session.add(client.Clip(pipeline_run_id=sa_run.id, discovered_video_id=new.id,
                                rank_position=1, start_time_seconds=0, end_time_seconds=10,
                                clip_duration_seconds=10))
        # on PostgreSQL the package's flags are BOOLEAN: a seed-faithful Integer cannot write them
        if sqlite:
            session.add(client.ErrorLog(pipeline_run_id=sa_run.id, module="m", error_type="E",
                                        error_message="x"))
            session.add(client.ReviewLog(pipeline_run_id=sa_run.id))
        session.query(client.DiscoveredVideo).filter_by(video_id="fromorm").update({"processed": 1})
        assert [v.video_id for v in client.get_pending_videos(session, "sports")] == ["fromsa"]
        session.commit()
        # A value the package's rules refuse is refused for the second client too.
        session.add(client.DiscoveredVideo(video_id="bad", title="T", channel_name="C",
                                           channel_id="UC", url="u", niche="gaming", processed=7))
        with pytest.raises(sa.exc.IntegrityError):
            session.commit()
        session.rollback()
    engine.dispose()
    pm.init_db(fresh_target)
    assert [v.video_id for v in pm.get_pending_videos("sports")] == ["fromsa"]
    assert pm.DiscoveredVideo.get(video_id="fromorm").processed is Processed.used
    sports = pm.PipelineRun.get(niche="sports")
    assert sports.cycle_start == datetime.datetime(2026, 2, 1, 1, 0, tzinfo=UTC)
    assert [c.discovered_video.video_id for c in sports.clips] == ["fromsa"]
    if sqlite:
        assert [e.resolved for e in pm.ErrorLog.select()] == [False, False]
        assert pm.ReviewLog.get().auto_held is False and pm.ReviewLog.get().sent_at.tzinfo == UTC
    assert pm.PipelineRun.claim_next("w", niche="sports").id == sports.id


def _pipeline_database(target, rows=True):
    """A database as the pipeline's SQLAlchemy module makes it: create_all, then a row in every
    table."""
    engine = client.init_db(target)
    if rows:
        with client.Session(engine) as session:
            videos = [client.DiscoveredVideo(video_id=f"vid{n}", title=f"Video {n}",
                                             channel_name=f"Creator {n}", channel_id=f"UC{n}",
                                             url=f"https://youtu.be/vid{n}", niche="gaming",
                                             viral_score=float(n), view_count=1000 * n,
                                             duration_seconds=60 + n,
                                             discovered_at=datetime.datetime(2026, 1, 1, 0, n),
                                             processed=1 if n < 3 else 0, discovery_source="reddit")
                      for n in range(1, 5)]
            session.add_all(videos)
            start = datetime.datetime(2026, 1, 1, 0, 30)
            runs = [client.PipelineRun(niche="gaming", cycle_start=start,
                                       cycle_end=start + datetime.timedelta(hours=6),
                                       status="review", started_at=start, retry_count=1,
                                       video_file_path="out/gaming.mp4",
                                       video_file_size_bytes=3 * 2 ** 29),
                    client.PipelineRun(niche="sports", cycle_start=start,
                                       cycle_end=start + datetime.timedelta(hours=6),
                                       status="uploaded", youtube_video_id="longform1",
                                       completed_at=start)]
            session.add_all(runs)
            session.flush()
            clips = [client.Clip(pipeline_run_id=runs[0].id, discovered_video_id=videos[n].id,
                                 rank_position=n + 1, start_time_seconds=1.5, end_time_seconds=20.0,
                                 clip_duration_seconds=18.5, extraction_method="most_replayed",
                                 content_id_risk="medium" if n else "low")
                     for n in range(2)]
            session.add_all(clips)
            session.flush()
            session.add_all([
                client.Script(pipeline_run_id=runs[0].id, opening_text="Hi",
                              full_script_json='{"opening": "Hi"}', total_char_count=2,
                              estimated_duration_seconds=0.5, llm_model_used="m",
                              generated_at=start),
                client.TTSAudio(pipeline_run_id=runs[0].id, engine_used="xtts_v2",
                                generated_at=start),
                client.Short(pipeline_run_id=runs[0].id, clip_id=clips[0].id, status="review",
                             title="S"),
                client.Analytics(youtube_video_id="longform1", view_count=500, measured_at=start),
                client.ReviewLog(pipeline_run_id=runs[0].id, sent_at=start, action=None,
                                 auto_held=1),
                client.ReviewLog(pipeline_run_id=runs[1].id, sent_at=start, responded_at=start,
                                 action="approve", auto_held=0),
                client.ConfigOverride(key="channels.gaming.video.max_clips", value="10",
                                      updated_at=start),
                client.ErrorLog(pipeline_run_id=runs[0].id, module="render", error_type="E",
                                error_message="x", occurred_at=start, resolved=1),
            ])
            session.commit()
    engine.dispose()


def test_init_db_adopts_the_pipelines_own_database_with_every_row(fresh_target):
    _pipeline_database(fresh_target)
    database = pm.init_db(fresh_target)
    assert not diff_models(database, pm.ALL_MODELS)
    assert {v.video_id: (v.processed, v.viral_score, v.view_count, v.duration_seconds,
                         v.discovery_source)
            for v in pm.DiscoveredVideo.select()} == {
        "vid1": (1, 1.0, 1000, 61, "reddit"), "vid2": (1, 2.0, 2000, 62, "reddit"),
        "vid3": (0, 3.0, 3000, 63, "reddit"), "vid4": (0, 4.0, 4000, 64, "reddit")}
    assert pm.DiscoveredVideo.get(video_id="vid2").discovered_at == datetime.datetime(2026, 1, 1, 0,
                                                                                      2, tzinfo=UTC)
    gaming, sports = pm.PipelineRun.select().order_by(pm.PipelineRun.id)
    start = datetime.datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    assert (gaming.niche, gaming.status, gaming.cycle_start, gaming.started_at, gaming.retry_count,
            gaming.video_file_path, gaming.video_file_size_bytes) == (
        "gaming", "review", start, start, 1, "out/gaming.mp4", 3 * 2 ** 29)
    assert (gaming.created_at, gaming.updated_at, gaming.worker, gaming.claim_token) == (start,
                                                                                         start,
                                                                                         None, None)
    assert (sports.status, sports.youtube_video_id, sports.completed_at) == ("uploaded",
                                                                             "longform1", start)
    assert [(c.rank_position, c.discovered_video.video_id, c.content_id_risk, c.extraction_method)
            for c in gaming.clips.order_by(pm.Clip.rank_position)] == [
        (1, "vid1", "low", "most_replayed"), (2, "vid2", "medium", "most_replayed")]
    assert pm.Script.get().full_script_json == {"opening": "Hi"}
    assert pm.TTSAudio.get().engine_used == "xtts_v2" and pm.Short.get().status == "review"
    held, answered = pm.ReviewLog.select().order_by(pm.ReviewLog.id)
    assert (held.action, held.auto_held, answered.action, answered.auto_held) == ("hold", True,
                                                                                  "approve", False)
    assert pm.ErrorLog.get().resolved is True
    assert pm.ConfigOverride.value_of("channels.gaming.video.max_clips") == 10
    # analytics_latest made and filled
    assert [a.view_count for a in pm.Analytics.latest()] == [500]
    # The package's rules hold on the adopted tables, and its operations run there.
    with pytest.raises(peewee.IntegrityError):
        with pm.db.atomic():
            database.execute_sql("UPDATE discovered_videos SET processed = 9")
    assert pm.PipelineRun.schedule("gaming", start).id == gaming.id
    pm.ReviewLog.get_by_id(held.id).respond("approve", run=gaming)
    assert gaming.status == "approved"
    assert pm.init_db(fresh_target) is not None  # and again: nothing left to do


def test_a_pipeline_database_with_only_the_three_tables_is_adopted_and_given_the_rest(tmp_path):
    target = str(tmp_path / "viral_channel.db")
    engine = client.engine_for(target)
    client.Base.metadata.create_all(engine, tables=[client.DiscoveredVideo.__table__,
                                                    client.PipelineRun.__table__,
                                                    client.Clip.__table__])
    engine.dispose()
    database = pm.init_db(target)
    assert not diff_models(database, pm.ALL_MODELS)
    assert "scripts" in database.get_tables() and "analytics_latest" in database.get_tables()


@pytest.mark.parametrize("column, value, shown", [
    ("discovered_videos.processed", 7, "processed = 7"),
    ("pipeline_runs.status", "'published'", "status = 'published'"),
    ("review_logs.action", "'edit'", "action = 'edit'"),
    ("clips.rank_position", 0, "rank_position = 0"),
    ("review_logs.auto_held", 2, "auto_held = 2"),
    ("scripts.full_script_json", "'not json'", "full_script_json = 'not json'"),
    ("discovered_videos.title", "'" + "t" * 1025 + "'", "title = 'ttt"),
])
def test_adopting_a_row_that_breaks_a_rule_is_refused_naming_it_and_nothing_changes(fresh_target,
                                                                                    column,
                                                                                     value, shown):
    _pipeline_database(fresh_target)
    table, name = column.split(".")
    raw = (peewee.SqliteDatabase(fresh_target) if "://" not in fresh_target
           else pm.connections.database_for(fresh_target, False))
    raw.execute_sql(f"UPDATE {table} SET {name} = {value} WHERE id = (SELECT MIN(id) FROM {table})")
    row_id = raw.execute_sql(f"SELECT MIN(id) FROM {table}").fetchone()[0]
    before = _dump(raw)
    raw.close()
    with pytest.raises(SchemaMismatch,
                       match=rf"^cannot adopt the pipeline's {table}: row id = {row_id} .*{shown}"
                             r".*nothing was changed"):
        pm.init_db(fresh_target)
    raw = (peewee.SqliteDatabase(fresh_target) if "://" not in fresh_target
           else pm.connections.database_for(fresh_target, False))
    assert _dump(raw) == before
    raw.close()


def _dump(database):
    """Every table's columns and rows, and whether migration history exists."""
    tables = sorted(database.get_tables())
    return {t: ([c.name for c in database.get_columns(t)],
                sorted(map(repr, database.execute_sql(f'SELECT * FROM "{t}"').fetchall())))
            for t in tables}


def test_adopting_a_pipeline_database_leaves_an_unrelated_table_alone(tmp_path):
    target = str(tmp_path / "viral_channel.db")
    _pipeline_database(target)
    raw = peewee.SqliteDatabase(target)
    raw.execute_sql("CREATE TABLE bot_state (chat_id INTEGER PRIMARY KEY, muted INTEGER)")
    raw.execute_sql("INSERT INTO bot_state VALUES (42, 1)")
    raw.close()
    database = pm.init_db(target)
    assert database.execute_sql("SELECT * FROM bot_state").fetchall() == [(42, 1)]
    copy = tmp_path / "copy.db"
    pm.db.close()
    shutil.copy(target, copy)
    assert pm.init_db(str(copy)).execute_sql(
        "SELECT COUNT(*) FROM discovered_videos").fetchone() == (4,)
