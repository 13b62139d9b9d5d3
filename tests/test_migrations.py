"""Migrations: they build what the models describe, upgrade old databases intact, and ship in the
wheel."""
import datetime
import json
import os
import shutil
import subprocess
import sys
import textwrap

import peewee
import pytest
from conftest import kill_inside, make_video, minimal_row
from playhouse import db_url
from playhouse.migrations import Runner
from playhouse.schema_diff import diff_models
from playhouse.shortcuts import model_to_dict

import pipeline_models as pm
from pipeline_models import SchemaMismatch

FIRST, SECOND = "0001_original_tables", "0002_review_publish_analytics"
THIRD = "0003_short_upload_claim"
FOURTH, FIFTH, SIXTH = "0004_seed_schema", "0005_run_queue", "0006_analytics_latest"
SEVENTH = "0007_pipeline_tables"
EIGHTH = "0008_cycle"
ALL = [FIRST, SECOND, THIRD, FOURTH, FIFTH, SIXTH, SEVENTH, EIGHTH]


def runner(database):
    return Runner(database, str(pm.MIGRATIONS_DIR))


def test_migrations_are_numbered_and_complete():
    names = [m.name for m in
             Runner(peewee.SqliteDatabase(":memory:"), str(pm.MIGRATIONS_DIR)).migrations()]
    assert names == ALL


def open_raw(target):
    """A database for `target` (a SQLite path or a URL) that is not bound to the models."""
    return db_url.connect(target) if "://" in target else peewee.SqliteDatabase(target)


def test_migrated_schema_has_no_diff_against_the_models(fresh_target):
    database = pm.init_db(fresh_target)
    assert not diff_models(database, pm.ALL_MODELS)
    assert [m.name for m in runner(database).status() if m.applied] == ALL


def _tables():
    return [m._meta.table_name for m in pm.ALL_MODELS]


def _columns(database):
    """(name, type with its length, NULL-ness, primary key) of every column, per table."""
    return {
        t: sorted((c.name, c.full_type or c.data_type, c.null, c.primary_key)
                  for c in database.get_columns(t))
        for t in _tables()}


def _indexes(database):
    return {
        t: sorted((i.name, tuple(i.columns), i.unique) for i in database.get_indexes(t))
        for t in _tables()}


def _foreign_keys(database):
    """(column, target table, target column, ON DELETE) of every foreign key, per table."""
    if isinstance(database, peewee.SqliteDatabase):
        sql = "SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list(?)"
    else:
        sql = """SELECT a.attname, c.confrelid::regclass::text, af.attname, c.confdeltype
                 FROM pg_constraint c
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                 JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = c.confkey[1]
                 WHERE c.contype = 'f' AND c.conrelid = %s::regclass"""
    return {t: sorted(database.execute_sql(sql, (t,)).fetchall()) for t in _tables()}


def _checks(database):
    """The CHECK constraints' expressions, per table (PostgreSQL; SQLite keeps them in the CREATE
    text)."""
    sql = ("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
           "WHERE contype = 'c' AND conrelid = %s::regclass")
    return {t: sorted(r[0] for r in database.execute_sql(sql, (t,))) for t in _tables()}


def migrated_and_direct(fresh_target, request):
    """The fresh target brought up by the migrations, and an empty database of its kind made by
    create_tables."""
    migrated = pm.init_db(fresh_target)
    if isinstance(migrated, peewee.SqliteDatabase):
        direct = peewee.SqliteDatabase(":memory:")
    else:
        direct = open_raw(request.getfixturevalue("pg_server").new_database())
    with direct.bind_ctx(pm.ALL_MODELS):
        direct.create_tables(pm.ALL_MODELS)
    return migrated, direct


def test_migrated_schema_matches_create_tables_column_for_column(fresh_target, request):
    """schema_diff compares names only; types, NULL-ness, index names and ON DELETE must match
    too."""
    migrated, direct = migrated_and_direct(fresh_target, request)
    assert _columns(migrated) == _columns(direct)
    assert _foreign_keys(migrated) == _foreign_keys(direct)
    assert _indexes(migrated) == _indexes(direct)
    if not isinstance(migrated, peewee.SqliteDatabase):
        assert _checks(migrated) == _checks(direct)
    direct.close()


def _old_time(database, text):
    """A timestamp literal as the three-model version wrote it: naive UTC text on SQLite."""
    return f"'{text}'" if isinstance(database, peewee.SqliteDatabase) else f"'{text}+00'"


def _database_at_0001(target):
    database = open_raw(target)
    if isinstance(database, peewee.SqliteDatabase):
        database.pragma("foreign_keys", 1, permanent=True)
    assert runner(database).up(FIRST) == [FIRST]
    t = lambda text: _old_time(database, text)  # noqa: E731
    database.execute_sql(
        "INSERT INTO discovered_videos (youtube_video_id, title, discovered_at, status) "
        f"VALUES ('old1', 'An old find', {t('2024-05-01 10:00:00')}, 'processed')"
    )
    database.execute_sql(
        "INSERT INTO pipeline_runs (discovered_video_id, status, attempts, created_at, updated_at) "
        f"VALUES (1, 'published', 1, {t('2024-05-01 10:05:00.250000')}, {t('2024-05-01 11:00:00')})"
    )
    database.execute_sql(
        "INSERT INTO clips (pipeline_run_id, start_seconds, end_seconds, created_at) "
        f"VALUES (1, 3.5, 48.0, {t('2024-05-01 10:20:00')})"
    )
    return database


def test_database_at_0001_upgrades_with_every_row_intact(fresh_target):
    _database_at_0001(fresh_target).close()

    database = pm.init_db(fresh_target)

    assert [m.name for m in runner(database).status() if m.applied] == ALL
    video = pm.DiscoveredVideo.get()
    assert (video.video_id, video.title, video.niche, video.processed, video.url) == (
        "old1", "An old find", "unknown", pm.Processed.used, "https://www.youtube.com/watch?v=old1")
    assert video.discovered_at == pm.utcnow().replace(2024, 5, 1, 10, 0, 0, 0)
    run = pm.PipelineRun.get()
    assert run.status is pm.RunStatus.uploaded and run.retry_count == 0
    assert run.created_at == run.cycle_start == pm.utcnow().replace(2024, 5, 1, 10, 5, 0, 250000)
    assert (run.heartbeat_at is None and run.error_message is None
            and run.legacy_video_id == video.id)
    assert [(c.start_time_seconds, c.end_time_seconds, c.rank_position, c.discovered_video_id)
            for c in run.clips] == [(3.5, 48.0, 1, video.id)]
    # and the new tables work with the old rows
    pm.Short.create(pipeline_run=run, clip=run.clips[0])


def test_three_table_database_without_history_is_adopted(fresh_target):
    legacy = _database_at_0001(fresh_target)
    legacy.execute_sql("DROP TABLE schema_migration")  # as the three-model version left it
    legacy.close()

    database = pm.init_db(fresh_target)

    history = runner(database).status()
    assert [(m.name, bool(m.applied)) for m in history] == [(name, True) for name in ALL]
    assert pm.DiscoveredVideo.get().video_id == "old1"
    assert not diff_models(database, pm.ALL_MODELS)


def test_a_database_made_by_create_tables_is_adopted_as_current(tmp_path):
    path = str(tmp_path / "made.db")
    made = peewee.SqliteDatabase(path)
    pm.db.initialize(made)
    pm.db.create_tables(pm.ALL_MODELS)  # what the README says a script may do
    make_video("kept")
    made.close()

    database = pm.init_db(path)

    assert [(m.name, bool(m.applied)) for m in runner(database).status()] == [
        (name, True) for name in ALL]
    assert pm.DiscoveredVideo.get().video_id == "kept"


def test_a_database_with_only_some_original_tables_is_refused_unchanged(tmp_path):
    path = tmp_path / "odd.db"
    odd = peewee.SqliteDatabase(str(path))
    odd.execute_sql("CREATE TABLE discovered_videos (id INTEGER PRIMARY KEY, youtube_video_id "
                    "TEXT)")
    odd.close()
    before = path.read_bytes()
    with pytest.raises(SchemaMismatch, match="discovered_videos but not pipeline_runs, clips"):
        pm.init_db(path)
    check = peewee.SqliteDatabase(str(path))
    assert check.get_tables() == ["discovered_videos"]
    check.close()
    assert pm.db.obj is None
    assert path.read_bytes() == before


def test_adopting_tables_that_lack_columns_is_refused_and_rolled_back(tmp_path):
    path = tmp_path / "foreign.db"
    other = peewee.SqliteDatabase(str(path))
    for table in ("discovered_videos", "pipeline_runs", "clips"):
        other.execute_sql(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)")
    other.close()
    with pytest.raises(SchemaMismatch,
                       match="are neither the pipeline's nor this package's: it will not be "
                             "adopted"):
        pm.init_db(path)
    check = peewee.SqliteDatabase(str(path))
    assert sorted(check.get_tables()) == ["clips", "discovered_videos", "pipeline_runs"]
    check.close()


def test_down_and_up_again(tmp_path):
    database = open_raw(str(tmp_path / "d.db"))
    runner(database).up(SIXTH)
    assert runner(database).down(SECOND) == [SIXTH, FIFTH, FOURTH, THIRD, SECOND]
    assert "shorts" not in database.get_tables()
    assert "heartbeat_at" not in [c.name for c in database.get_columns("pipeline_runs")]
    database.close()
    pm.init_db(tmp_path / "d.db")
    assert not diff_models(pm.db.obj, pm.ALL_MODELS)


def test_0007_cannot_be_undone_and_refusing_changes_nothing(tmp_path):
    database = pm.init_db(tmp_path / "d.db")
    make_video("kept")
    before = _dump(database)
    with pytest.raises(SchemaMismatch, match="migration 0007 cannot be undone"):
        with pm.write_lock():
            runner(database).down(SIXTH)
    assert _dump(database) == before and [
        m.name for m in runner(database).status() if m.applied] == ALL


@pytest.mark.slow
def test_migrations_ship_in_a_non_editable_wheel(tmp_path):
    """Build a wheel, install it into a fresh virtual environment, and migrate from outside the
    checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source, dist, venv = tmp_path / "source", tmp_path / "dist", tmp_path / "venv"
    source.mkdir()
    # build a copy: the checkout stays clean
    for name in ("pyproject.toml", "README.md", "pipeline_models"):
        copy = shutil.copytree if os.path.isdir(os.path.join(root, name)) else shutil.copy
        copy(os.path.join(root, name), source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
         dist, source],
        check=True,
    )
    (wheel,) = dist.glob("pipeline_models-*.whl")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel],
                   check=True)
    # peewee comes from this environment (the fresh one has no network need); the package from the
    # wheel.
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    with open(os.path.join(site, "peewee_from_host.pth"), "w") as fh:
        fh.write(os.path.dirname(peewee.__file__) + "\n")
    script = textwrap.dedent(
        """
        import pipeline_models as pm
        assert pm.__file__.startswith(%r), pm.__file__
        database = pm.init_db("installed.db")
        print(sorted(r[0] for r in database.execute_sql("SELECT name FROM schema_migration")))
        """ % site
    )
    out = subprocess.run(
        [python, "-c", script], cwd=tmp_path, check=True, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert out.stdout.strip() == str(ALL)


# --- 0004: the seed's schema, every row kept -----------------------------------------------------

T = pm.utcnow().replace(2026, 5, 1, 10, 0, 0, 250000)
T2 = T.replace(day=2)

# A 0003 database with rows in every table, in 0003's column names.
ROWS_AT_0003 = {
    "discovered_videos": [dict(id=1, youtube_video_id="src1", title="Canyons", discovered_at=T,
                               status="processed")],
    "pipeline_runs": [
        dict(id=1, discovered_video_id=1, status="published", attempts=1, created_at=T,
             updated_at=T2),
        dict(id=2, discovered_video_id=1, status="failed", attempts=2, created_at=T, updated_at=T,
             last_error="boom"),
    ],
    "clips": [dict(id=1, pipeline_run_id=1, start_seconds=3.5, end_seconds=48.0, created_at=T)],
    "scripts": [
        dict(id=1, pipeline_run_id=1, title="Canyons in 60 s", hook="Did you know?",
             full_script_json={"hook": "Did you know?", "beats": ["ab", "cde"], "n": 3},
             llm_model="gpt-4.1-mini", prompt_tokens=1800, completion_tokens=420, cost_usd=0.00123,
             created_at=T),
        dict(id=3, pipeline_run_id=2, full_script_json=["one two", {"k": "three"}, 4],
             created_at=T2),
    ],
    "tts_audio": [
        dict(id=1, pipeline_run_id=1, file_path="/audio/1.wav", voice="alloy", provider="openai",
             duration_seconds=42.5, created_at=T),
        dict(id=2, pipeline_run_id=2, file_path="/audio/2.wav", created_at=T2),
    ],
    "shorts": [
        dict(id=1, pipeline_run_id=1, clip_id=1, title="Canyons #shorts",
             description="Why rivers carve down.", file_path="/shorts/1.mp4", duration_seconds=44.5,
             status="uploaded", youtube_video_id="yt1",
             youtube_url="https://youtube.com/shorts/yt1", uploaded_at=T2, upload_started_at=T2,
             created_at=T),
        dict(id=2, pipeline_run_id=2, status="pending", created_at=T),
    ],
    "analytics": [
        dict(id=1, youtube_video_id="yt1", measured_at=T, views=1500, engaged_views=900, likes=80,
             comments=7, shares=3, watch_time_minutes=600.5, avg_view_duration_seconds=24.0,
             ctr=0.05, subscribers_gained=2, revenue_usd=1.25),
        dict(id=2, youtube_video_id="yt1", measured_at=T2, views=2 ** 40, likes=0),
    ],
    "review_logs": [
        dict(id=1, pipeline_run_id=1, message_id="chat:1", sent_at=T, action="edit",
             detail="Shorter title", reviewer="@alice", responded_at=T2, auto_held=False),
        dict(id=2, pipeline_run_id=2, sent_at=T, auto_held=True),
    ],
    "config_overrides": [
        dict(id=1, key="max_clips", value="3", updated_by="alice", updated_at=T),
        dict(id=2, key="voice", value='"alloy"', updated_by="system", updated_at=T),
        dict(id=5, key="off", value=None, updated_by="system", updated_at=T2),
    ],
    "error_logs": [
        dict(id=1, pipeline_run_id=2, module="render", error_type="RuntimeError",
             error_message="boom", stack_trace="Traceback (most recent call last): ...",
             occurred_at=T, resolved=True),
        dict(id=2, module="discovery", error_type="QuotaExceeded", error_message="quota",
             occurred_at=T2, resolved=False),
    ],
}

# The same rows read through the models after the upgrade: each value in its seed column (and, for
# the three original tables, in the pipeline's: migration 0007), with the documented values for what
# 0003 lacked.
SIX_HOURS = datetime.timedelta(hours=6)
RUN_AFTER = dict(niche="unknown", started_at=None, completed_at=None, video_file_path=None,
                 video_duration_seconds=None, video_file_size_bytes=None, youtube_video_id=None,
                 youtube_url=None, current_stage=None, worker=None, heartbeat_at=None,
                 claim_token=None, not_before=None, upload_started_at=None, created_at=T,
                 legacy_video=1)
ROWS_AFTER = {
    pm.DiscoveredVideo: [
        dict(id=1, video_id="src1", title="Canyons", channel_name="", channel_id="",
             url="https://www.youtube.com/watch?v=src1", category_id=None, duration_seconds=None,
             view_count=None, like_count=None, comment_count=None, view_velocity=None,
             viral_score=None, niche="unknown", discovery_source=None, discovered_at=T,
             processed=pm.Processed.used, content_id_risk=pm.ContentIdRisk.unknown,
             published_at=None),
    ],
    pm.PipelineRun: [  # both created at T: the second run's cycle starts a microsecond later
        dict(RUN_AFTER, id=1, cycle_start=T, cycle_end=T + SIX_HOURS, status=pm.RunStatus.uploaded,
             error_message=None, retry_count=0, updated_at=T2),
        dict(RUN_AFTER, id=2, cycle_start=T + datetime.timedelta(microseconds=1),
             cycle_end=T + SIX_HOURS + datetime.timedelta(microseconds=1),
             status=pm.RunStatus.failed, error_message="boom", retry_count=1, updated_at=T),
    ],
    pm.Clip: [
        dict(id=1, pipeline_run=1, discovered_video=1, rank_position=1, start_time_seconds=3.5,
             end_time_seconds=48.0, clip_duration_seconds=44.5, extraction_method=None,
             clip_file_path=None, content_id_risk=pm.ContentIdRisk.unknown, score=None,
             transcript=None, created_at=T, dropped_at=None),
    ],
    pm.Script: [
        dict(id=1, pipeline_run=1, opening_text="Did you know?", closing_text=None,
             full_script_json={"hook": "Did you know?", "beats": ["ab", "cde"], "n": 3},
             total_char_count=13 + 2 + 3,  # the strings of full_script_json
             estimated_duration_seconds=42.5,  # the run's TTS audio
             llm_model_used="gpt-4.1-mini", generated_at=T, title="Canyons in 60 s",
             prompt_tokens=1800, completion_tokens=420, cost_usd=0.00123),
        dict(id=3, pipeline_run=2, opening_text=None, closing_text=None,
             full_script_json=["one two", {"k": "three"}, 4],
             # no audio: 15 characters a second
             total_char_count=7 + 5, estimated_duration_seconds=(7 + 5) / 15,
             llm_model_used="unknown", generated_at=T2, title=None, prompt_tokens=None,
             completion_tokens=None, cost_usd=None),
    ],
    pm.TTSAudio: [
        dict(id=1, pipeline_run=1, engine_used="openai", voice_profile="alloy",
             audio_file_path="/audio/1.wav", duration_seconds=42.5, generated_at=T),
        dict(id=2, pipeline_run=2, engine_used="unknown", voice_profile=None,
             audio_file_path="/audio/2.wav", duration_seconds=None, generated_at=T2),
    ],
    pm.Short: [
        dict(id=1, pipeline_run=1, clip=1, file_path="/shorts/1.mp4", duration_seconds=44.5,
             title="Canyons #shorts", description="Why rivers carve down.", youtube_video_id="yt1",
             youtube_url="https://youtube.com/shorts/yt1", status=pm.ShortStatus.uploaded,
             uploaded_at=T2, upload_started_at=T2, created_at=T),
        dict(id=2, pipeline_run=2, clip=None, file_path=None, duration_seconds=None, title=None,
             description=None, youtube_video_id=None, youtube_url=None,
             status=pm.ShortStatus.pending, uploaded_at=None, upload_started_at=None, created_at=T),
    ],
    pm.Analytics: [
        dict(id=1, youtube_video_id="yt1", measured_at=T, view_count=1500, like_count=80,
             comment_count=7, average_view_duration_seconds=24.0, click_through_rate=0.05,
             subscriber_gain=2, estimated_revenue_usd=1.25, engaged_views=900, shares=3,
             watch_time_minutes=600.5),
        dict(id=2, youtube_video_id="yt1", measured_at=T2, view_count=2 ** 40, like_count=0,
             comment_count=None, average_view_duration_seconds=None, click_through_rate=None,
             subscriber_gain=None, estimated_revenue_usd=None, engaged_views=None, shares=None,
             watch_time_minutes=None),
    ],
    pm.ReviewLog: [  # an edit approved with changes (0007), an unanswered auto-held review is held
        dict(id=1, pipeline_run=1, sent_at=T, responded_at=T2, action=pm.ReviewAction.approve,
             response_detail="Shorter title", auto_held=False, message_id="chat:1",
             reviewer="@alice"),
        dict(id=2, pipeline_run=2, sent_at=T, responded_at=None, action=pm.ReviewAction.hold,
             response_detail=None, auto_held=True, message_id=None, reviewer=None),
    ],
    pm.ConfigOverride: [  # ordered by key
        dict(key="max_clips", value=3, updated_at=T, updated_by="alice"),
        dict(key="off", value=None, updated_at=T2, updated_by="system"),
        dict(key="voice", value="alloy", updated_at=T, updated_by="system"),
    ],
    pm.ErrorLog: [
        dict(id=1, pipeline_run=2, module="render", error_type="RuntimeError", error_message="boom",
             stack_trace="Traceback (most recent call last): ...", occurred_at=T, resolved=True),
        dict(id=2, pipeline_run=None, module="discovery", error_type="QuotaExceeded",
             error_message="quota", stack_trace=None, occurred_at=T2, resolved=False),
    ],
}
# 0008's columns, on every row after it: no video taken by a run yet, no reviewer reminded.
for _row in ROWS_AFTER[pm.DiscoveredVideo]:
    _row["taken_by_run"] = None
for _row in ROWS_AFTER[pm.ReviewLog]:
    _row["reminded_at"] = None


def _as_stored(database, value):
    """A value as the 0003 release wrote it: UTC text for timestamps on SQLite, JSON text for
    JSON."""
    if isinstance(value, datetime.datetime) and isinstance(database, peewee.SqliteDatabase):
        return (value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
                .isoformat(" ", "microseconds"))
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def _database_at(target, migration, rows):
    """`target` migrated up to `migration`, holding `rows` ({table: [row dict]}) in that migration's
    columns."""
    database = open_raw(target)
    assert runner(database).up(migration) == ALL[:ALL.index(migration) + 1]
    for table, table_rows in rows.items():
        for row in table_rows:
            marks = ", ".join(database.param for _ in row)
            database.execute_sql(f'INSERT INTO "{table}" ({", ".join(row)}) VALUES ({marks})',
                                 [_as_stored(database, v) for v in row.values()])
    if not isinstance(database, peewee.SqliteDatabase):
        for table, table_rows in rows.items():  # as if the rows had come through the sequences
            if "id" in table_rows[0]:
                database.execute_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT MAX(id) FROM \"{table}\"))")
    return database


def _database_at_0003(target, rows=ROWS_AT_0003):
    return _database_at(target, THIRD, rows)


def _killed_inside_leaves_it_as_it_was(target, script, database, applied):
    """SIGKILL an init_db of `database` (closed here) inside `script`'s pause: exactly as it was, at
    `applied`."""
    before = _dump(database)
    database.close()
    kill_inside(script, target)
    database = open_raw(target)
    assert [m.name for m in runner(database).status() if m.applied] == applied
    assert _dump(database) == before
    if isinstance(database, peewee.SqliteDatabase):
        assert database.execute_sql("PRAGMA integrity_check").fetchall() == [("ok",)]
    database.close()


def _dump(database):
    """Every table's columns and rows, raw: what 'exactly at 0003' compares."""
    columns = _columns(database)
    return {
        t: (columns[t], database.execute_sql(f'SELECT * FROM "{t}" ORDER BY 1').fetchall())
        for t in _tables()}


def _read(model):
    order = model._meta.primary_key
    return [model_to_dict(row, recurse=False) for row in model.select().order_by(order)]


def test_a_0003_database_upgrades_to_the_latest_schema_with_every_value_in_its_column(fresh_target):
    _database_at_0003(fresh_target).close()

    database = pm.init_db(fresh_target)

    assert [m.name for m in runner(database).status() if m.applied] == ALL
    assert not diff_models(database, pm.ALL_MODELS)
    for model, rows in ROWS_AFTER.items():
        assert _read(model) == rows, model.__name__
    assert "config_overrides" not in {t for t, cols in _columns(database).items()
                                      if "id" in {c[0] for c in cols}}
    # New rows take the next ids, and the seed's API works on the upgraded rows.
    assert pm.Script.create(**minimal_row(pm.Script, pm.PipelineRun.get_by_id(1))).id == 4
    assert pm.Analytics.record("yt1", view_count=1).id == 3
    assert pm.ErrorLog.create(module="m", error_type="E", error_message="x").id == 3
    assert pm.PipelineRun.schedule("gaming", T).id == 3 and make_video("new").id == 2
    assert pm.ConfigOverride.get_by_id("max_clips").value == 3
    pm.ConfigOverride.set("max_clips", 4)
    assert pm.ConfigOverride.value_of("max_clips") == 4 and pm.ConfigOverride.select().count() == 3


def test_a_0003_database_made_by_create_tables_without_history_is_upgraded_too(tmp_path):
    path = str(tmp_path / "made.db")
    made = _database_at_0003(path)
    # create_tables() of the 0003 release keeps no history
    made.execute_sql("DROP TABLE schema_migration")
    made.close()

    database = pm.init_db(path)

    assert [(m.name, bool(m.applied)) for m in runner(database).status()] == [
        (name, True) for name in ALL]
    assert _read(pm.Analytics) == ROWS_AFTER[pm.Analytics]


def _failing_at(monkeypatch, statement):
    """Make every SQL statement that starts with `statement` fail, as a full disk would."""
    execute_sql = peewee.Database.execute_sql

    def fail(self, sql, params=None):
        if sql.startswith(statement):
            raise peewee.OperationalError("disk I/O error")
        return execute_sql(self, sql, params)

    monkeypatch.setattr(peewee.Database, "execute_sql", fail)


def test_an_upgrade_failing_half_way_leaves_the_database_exactly_at_0003(fresh_target, monkeypatch):
    before = _dump(_database_at_0003(fresh_target))
    _failing_at(monkeypatch, 'INSERT INTO "review_logs"')  # four tables rebuilt, three to go
    with pytest.raises(pm.CannotOpenDatabase,
                       match=f"cannot apply migrations {FOURTH}, {FIFTH}, {SIXTH}, {SEVENTH}, "
                             f"{EIGHTH}: disk I/O error"):
        pm.init_db(fresh_target)
    monkeypatch.undo()

    database = open_raw(fresh_target)
    assert [m.name for m in runner(database).status() if m.applied] == [FIRST, SECOND, THIRD]
    assert _dump(database) == before


KILLED_IN_0004 = """
import sys, time, peewee
import pipeline_models as pm
execute_sql = peewee.Database.execute_sql
def pause_in_0004(self, sql, params=None):
    if sql.startswith('INSERT INTO "review_logs"'):  # four tables rebuilt, three to go
        print("inside", flush=True)
        time.sleep(120)
    return execute_sql(self, sql, params)
peewee.Database.execute_sql = pause_in_0004
print("committed", flush=True)
pm.init_db(sys.argv[1])
"""


@pytest.mark.slow
def test_an_upgrade_killed_half_way_leaves_the_database_exactly_at_0003(fresh_target):
    _killed_inside_leaves_it_as_it_was(fresh_target, KILLED_IN_0004,
                                       _database_at_0003(fresh_target), [FIRST, SECOND, THIRD])
    pm.init_db(fresh_target)  # and the upgrade then runs to the end
    assert _read(pm.ReviewLog) == ROWS_AFTER[pm.ReviewLog]


def test_an_old_value_longer_than_its_seed_length_stops_the_upgrade_naming_it(fresh_target):
    rows = {**ROWS_AT_0003, "shorts": [dict(id=7, pipeline_run_id=1, status="pending", created_at=T,
                                            title="x" * 256)]}
    before = _dump(_database_at_0003(fresh_target, rows))
    with pytest.raises(SchemaMismatch,
                       match=r"shorts.title allows 255 characters and the rows with id 7 hold "
                             r"longer"):
        pm.init_db(fresh_target)
    assert _dump(open_raw(fresh_target)) == before


def test_views_on_the_upgraded_tables(fresh_target):
    old = _database_at_0003(fresh_target)
    old.execute_sql("CREATE VIEW uploaded AS SELECT id, title FROM shorts WHERE youtube_video_id "
                    "IS NOT NULL")
    # SQLite views name their table: they see the rebuilt one
    if isinstance(old, peewee.SqliteDatabase):
        old.close()
        database = pm.init_db(fresh_target)
        assert database.execute_sql("SELECT * FROM uploaded").fetchall() == [(1, "Canyons #shorts")]
        return
    before = _dump(old)
    with pytest.raises(SchemaMismatch,
                       match="cannot upgrade shorts .* while the views uploaded depend on it"):
        pm.init_db(fresh_target)
    assert _dump(old) == before
    old.execute_sql("DROP VIEW uploaded")
    pm.init_db(fresh_target)  # as the message says: drop, upgrade, recreate
    assert _read(pm.Short) == ROWS_AFTER[pm.Short]


# --- 0006: analytics_latest, the newest snapshot of each video, kept by triggers ------------------

def _derived_schema(database):
    """analytics_latest and what keeps it: its columns and indexes, the triggers on analytics, their
    functions."""
    columns = sorted((c.name, c.full_type or c.data_type, c.null, c.primary_key)
                     for c in database.get_columns("analytics_latest"))
    indexes = sorted(
        (i.name, tuple(i.columns), i.unique) for i in database.get_indexes("analytics_latest"))
    if isinstance(database, peewee.SqliteDatabase):
        # SQLite keeps each statement's text: table, index and triggers as written.
        made = database.execute_sql(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE "
            "name LIKE 'analytics_latest%' OR type = 'trigger' ORDER BY name").fetchall()
    else:
        made = database.execute_sql(
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = "
            "'analytics'::regclass "
            "AND NOT tgisinternal UNION ALL SELECT proname, pg_get_functiondef(oid) FROM pg_proc "
            "WHERE proname ~ '^analytics_latest_' ORDER BY 1, 2").fetchall()
    return columns, indexes, made


def test_analytics_latest_is_the_same_made_by_the_migration_or_by_create_tables(
        fresh_target, request):
    migrated, direct = migrated_and_direct(fresh_target, request)
    assert _derived_schema(migrated) == _derived_schema(direct)
    columns, indexes, made = _derived_schema(migrated)
    # analytics' own columns, types and NULL-ness (keyed by the video, without analytics' CHECKs).
    assert [c[:3] for c in columns] == sorted((c.name, c.full_type or c.data_type, c.null)
                                              for c in migrated.get_columns("analytics"))
    assert [name for name, *_ in columns if _[-1]] == ["youtube_video_id"]
    triggers = {"analytics_latest_insert", "analytics_latest_delete", "analytics_latest_update"}
    assert triggers <= {row[1] if len(row) == 4 else row[0] for row in made}
    direct.close()


def _database_at_0005_with_snapshots(target):
    """A 0005 database holding snapshots: equal times, ids out of time order, NULL views, one video
    of one row."""
    database = open_raw(target)
    assert runner(database).up(FIFTH) == [FIRST, SECOND, THIRD, FOURTH, FIFTH]
    rows = [("a", T, 10), ("a", T2, 30), ("a", T, 20), ("b", T2, None), ("b", T2, 5), ("c", T, 7),
            ("a", T2, 25)]
    for video, measured_at, views in rows:
        database.execute_sql("INSERT INTO analytics (youtube_video_id, measured_at, view_count) "
                             f"VALUES ({database.param}, {database.param}, {database.param})",
                             (video, _as_stored(database, measured_at), views))
    return database


def test_0006_fills_analytics_latest_from_the_snapshots_there(fresh_target):
    _database_at_0005_with_snapshots(fresh_target).close()

    database = pm.init_db(fresh_target)

    assert [m.name for m in runner(database).status() if m.applied] == ALL
    # Each video's greatest (measured_at, id): a's last row of time T2 (id 7), b's second (id 5),
    # c's only.
    assert [(r.youtube_video_id, r.id, r.view_count) for r in pm.Analytics.latest()] == [
        ("a", 7, 25), ("c", 6, 7), ("b", 5, 5)]
    # and the triggers keep it
    pm.Analytics.record("c", measured_at=T2.replace(day=3), view_count=100)
    assert [r.youtube_video_id for r in pm.Analytics.top(1)] == ["c"]


def test_a_database_made_by_an_earlier_create_tables_is_given_analytics_latest(tmp_path):
    path = str(tmp_path / "made.db")
    made = peewee.SqliteDatabase(path)
    with made.bind_ctx(pm.ALL_MODELS):
        made.create_tables(pm.ALL_MODELS)
    made.execute_sql("DROP TABLE analytics_latest")  # as create_tables of the 0005 release left it
    for name in ("insert", "delete", "update"):
        made.execute_sql(f"DROP TRIGGER analytics_latest_{name}")
    made.execute_sql("INSERT INTO analytics (youtube_video_id, measured_at, view_count) VALUES "
                     "('kept', '2026-05-01 10:00:00.000000', 3)")
    made.close()

    database = pm.init_db(path)

    assert [(m.name, bool(m.applied)) for m in runner(database).status()] == [
        (name, True) for name in ALL]
    assert [(r.youtube_video_id, r.view_count) for r in pm.Analytics.latest()] == [("kept", 3)]


def test_a_stale_analytics_latest_left_behind_is_replaced(fresh_target):
    old = _database_at_0005_with_snapshots(fresh_target)
    old.execute_sql("CREATE TABLE analytics_latest (youtube_video_id VARCHAR(100), junk INTEGER)")
    old.close()
    pm.init_db(fresh_target)
    assert [r.youtube_video_id for r in pm.Analytics.latest()] == ["a", "c", "b"]


def test_0006_failing_half_way_leaves_the_database_at_0005(fresh_target, monkeypatch):
    old = _database_at_0005_with_snapshots(fresh_target)
    before = _dump(old)
    old.close()
    # table, index and triggers made, the rows not yet copied
    _failing_at(monkeypatch, "WITH RECURSIVE videos")
    with pytest.raises(pm.CannotOpenDatabase,
                       match=f"cannot apply migrations {SIXTH}, {SEVENTH}, {EIGHTH}: disk I/O "
                             "error"):
        pm.init_db(fresh_target)
    monkeypatch.undo()

    database = open_raw(fresh_target)
    assert [m.name for m in runner(database).status() if m.applied] == ALL[:5]
    # triggers too:
    assert "analytics_latest" not in database.get_tables() and _dump(database) == before
    if isinstance(database, peewee.SqliteDatabase):
        assert database.execute_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall() == []
    else:
        assert database.execute_sql(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal").fetchall() == []


def test_a_missing_trigger_is_a_schema_mismatch(fresh_target):
    database = pm.init_db(fresh_target)
    on = "" if isinstance(database, peewee.SqliteDatabase) else " ON analytics"
    database.execute_sql(f"DROP TRIGGER analytics_latest_delete{on}")
    database.close()
    with pytest.raises(SchemaMismatch, match="lacks trigger analytics_latest_delete"):
        pm.init_db(fresh_target)


# --- 0007: the pipeline's own three tables, every row kept ----------------------------------------

# A 0006 database with a row in every table and every case 0007 maps: each video status, NULL and
# fractional metadata, runs in each status (two created at one instant), clips ranked by score.
ROWS_AT_0006 = {
    "discovered_videos": [
        dict(id=1, youtube_video_id="new1", title="Fresh", channel_id="UCa", channel_title="Alpha",
             published_at=T, duration_seconds=61.2, view_count=10, source="search:cats",
             discovered_at=T, status="new"),
        dict(id=2, youtube_video_id="sel2", discovered_at=T, status="selected"),
        dict(id=3, youtube_video_id="skp3", title="Skipped", duration_seconds=30.0,
             discovered_at=T2, status="skipped"),
        dict(id=4, youtube_video_id="pro4", title="Done", duration_seconds=0.4, discovered_at=T2,
             status="processed"),
    ],
    "pipeline_runs": [
        dict(id=1, discovered_video_id=2, status="pending", attempts=2, created_at=T, updated_at=T,
             last_error="attempt 2 of 3 failed: boom", not_before=T2),
        dict(id=2, discovered_video_id=1, status="running", current_stage="render", worker="w1",
             attempts=1, started_at=T, heartbeat_at=T, created_at=T, updated_at=T,
             claim_token="c" * 32),
        dict(id=3, discovered_video_id=4, status="awaiting_review", attempts=1, created_at=T2,
             updated_at=T2),
        dict(id=4, discovered_video_id=3, status="approved", attempts=3,
             created_at=T2.replace(hour=11), updated_at=T2),
        dict(id=5, discovered_video_id=4, status="published", attempts=1, finished_at=T2,
             created_at=T2.replace(hour=12), updated_at=T2),
        dict(id=6, discovered_video_id=3, status="rejected", attempts=1, finished_at=T2,
             created_at=T2.replace(hour=13), updated_at=T2),
        dict(id=7, discovered_video_id=3, status="failed", attempts=0, finished_at=T2,
             created_at=T2.replace(hour=14), updated_at=T2, last_error="gave up"),
    ],
    "clips": [
        dict(id=1, pipeline_run_id=5, start_seconds=1.0, end_seconds=20.0, file_path="/c/1.mp4",
             score=0.2, transcript="one", created_at=T2),
        dict(id=2, pipeline_run_id=5, start_seconds=30.0, end_seconds=44.5, score=0.9,
             created_at=T2),
        dict(id=3, pipeline_run_id=5, start_seconds=50.0, end_seconds=55.0, score=None,
             created_at=T2),
        dict(id=4, pipeline_run_id=5, start_seconds=60.0, end_seconds=61.0, score=0.9,
             created_at=T2),
        dict(id=5, pipeline_run_id=3, start_seconds=0.0, end_seconds=12.0, created_at=T2),
    ],
    "scripts": [dict(id=1, pipeline_run_id=5, full_script_json={"hook": "Hi"}, total_char_count=2,
                     estimated_duration_seconds=0.5, llm_model_used="m", generated_at=T2)],
    "tts_audio": [dict(id=1, pipeline_run_id=5, engine_used="piper", generated_at=T2)],
    "shorts": [
        dict(id=1, pipeline_run_id=5, clip_id=2, status="uploaded", youtube_video_id="yt1",
             uploaded_at=T2, created_at=T2),
        dict(id=2, pipeline_run_id=3, clip_id=5, status="rendered", created_at=T2),
        dict(id=3, pipeline_run_id=6, status="rejected", created_at=T2),
    ],
    "analytics": [dict(id=1, youtube_video_id="yt1", measured_at=T2, view_count=77)],
    "review_logs": [
        dict(id=1, pipeline_run_id=5, sent_at=T2, responded_at=T2, action="edit",
             response_detail="shorter", auto_held=False, message_id="m1", reviewer="@a"),
        dict(id=2, pipeline_run_id=3, sent_at=T2, auto_held=True, message_id="m2"),
        dict(id=3, pipeline_run_id=6, sent_at=T2, responded_at=T2, action="reject",
             auto_held=False),
    ],
    "config_overrides": [dict(key="queue.max_attempts", value="4", updated_by="ops", updated_at=T)],
    "error_logs": [dict(id=1, pipeline_run_id=7, module="render", error_type="E",
                        error_message="gave up", occurred_at=T2, resolved=False)],
}
VIDEO_AFTER = dict(category_id=None, like_count=None, comment_count=None, view_velocity=None,
                   # (0008: none taken)
                   viral_score=None, niche="unknown", content_id_risk=pm.ContentIdRisk.unknown,
                   taken_by_run=None)
CLIP_AFTER = dict(extraction_method=None, content_id_risk=pm.ContentIdRisk.unknown, dropped_at=None)
U = datetime.timedelta(microseconds=1)


LEGACY_VIDEOS = {run["id"]: run["discovered_video_id"] for run in ROWS_AT_0006["pipeline_runs"]}


def _run_after(run_id, created, **values):
    row = dict(RUN_AFTER, id=run_id, legacy_video=LEGACY_VIDEOS[run_id], cycle_start=created,
               cycle_end=created + SIX_HOURS, created_at=created,
               started_at=None, completed_at=None, error_message=None, updated_at=T2, retry_count=0)
    return {**row, **values}


ROWS_AFTER_0007 = {
    pm.DiscoveredVideo: [
        dict(VIDEO_AFTER, id=1, video_id="new1", title="Fresh", channel_name="Alpha",
             channel_id="UCa", url="https://www.youtube.com/watch?v=new1", duration_seconds=62,
             view_count=10, discovery_source="search:cats", discovered_at=T,
             processed=pm.Processed.pending, published_at=T),
        dict(VIDEO_AFTER, id=2, video_id="sel2", title="", channel_name="", channel_id="",
             url="https://www.youtube.com/watch?v=sel2", duration_seconds=None, view_count=None,
             discovery_source=None, discovered_at=T, processed=pm.Processed.used,
             published_at=None),
        dict(VIDEO_AFTER, id=3, video_id="skp3", title="Skipped", channel_name="", channel_id="",
             url="https://www.youtube.com/watch?v=skp3", duration_seconds=30, view_count=None,
             discovery_source=None, discovered_at=T2, processed=pm.Processed.skipped,
             published_at=None),
        dict(VIDEO_AFTER, id=4, video_id="pro4", title="Done", channel_name="", channel_id="",
             url="https://www.youtube.com/watch?v=pro4", duration_seconds=1, view_count=None,
             discovery_source=None, discovered_at=T2, processed=pm.Processed.used,
             published_at=None),
    ],
    pm.PipelineRun: [
        _run_after(1, T, status=pm.RunStatus.pending, retry_count=2,
                   error_message="attempt 2 of 3 failed: boom", not_before=T2, updated_at=T),
        _run_after(2, T + U, status=pm.RunStatus.running, retry_count=0, current_stage="render",
                   worker="w1", started_at=T, heartbeat_at=T, claim_token="c" * 32, created_at=T,
                   updated_at=T),
        _run_after(3, T2, status=pm.RunStatus.review),
        _run_after(4, T2.replace(hour=11), status=pm.RunStatus.approved, retry_count=2),
        _run_after(5, T2.replace(hour=12), status=pm.RunStatus.uploaded, completed_at=T2),
        _run_after(6, T2.replace(hour=13), status=pm.RunStatus.rejected, completed_at=T2),
        _run_after(7, T2.replace(hour=14), status=pm.RunStatus.failed, completed_at=T2,
                   error_message="gave up"),
    ],
    pm.Clip: [  # run 5's ranks follow the scores: 0.9 (ids 2 and 4: by id), 0.2, then the unscored
        dict(CLIP_AFTER, id=1, pipeline_run=5, discovered_video=4, rank_position=3,
             start_time_seconds=1.0, end_time_seconds=20.0, clip_duration_seconds=19.0,
             clip_file_path="/c/1.mp4", score=0.2, transcript="one", created_at=T2),
        dict(CLIP_AFTER, id=2, pipeline_run=5, discovered_video=4, rank_position=1,
             start_time_seconds=30.0, end_time_seconds=44.5, clip_duration_seconds=14.5,
             clip_file_path=None, score=0.9, transcript=None, created_at=T2),
        dict(CLIP_AFTER, id=3, pipeline_run=5, discovered_video=4, rank_position=4,
             start_time_seconds=50.0, end_time_seconds=55.0, clip_duration_seconds=5.0,
             clip_file_path=None, score=None, transcript=None, created_at=T2),
        dict(CLIP_AFTER, id=4, pipeline_run=5, discovered_video=4, rank_position=2,
             start_time_seconds=60.0, end_time_seconds=61.0, clip_duration_seconds=1.0,
             clip_file_path=None, score=0.9, transcript=None, created_at=T2),
        dict(CLIP_AFTER, id=5, pipeline_run=3, discovered_video=4, rank_position=1,
             start_time_seconds=0.0, end_time_seconds=12.0, clip_duration_seconds=12.0,
             clip_file_path=None, score=None, transcript=None, created_at=T2),
    ],
}
SHORT_STATUSES_AFTER_0007 = {1: "uploaded", 2: "review", 3: "rejected"}
REVIEWS_AFTER_0007 = {1: ("approve", "shorter", False), 2: ("hold", None, True),
                      3: ("reject", None, False)}


def _database_at_0006(target, rows=ROWS_AT_0006):
    return _database_at(target, SIXTH, rows)


def test_a_0006_database_upgrades_to_the_pipelines_tables_with_every_value_in_its_column(
        fresh_target):
    old = _database_at_0006(fresh_target)
    untouched = {t: v for t, v in _dump(old).items()
                 if t in ("analytics", "config_overrides", "scripts", "tts_audio", "error_logs")}
    old.close()

    database = pm.init_db(fresh_target)

    assert [m.name for m in runner(database).status() if m.applied] == ALL
    assert not diff_models(database, pm.ALL_MODELS)
    for model, rows in ROWS_AFTER_0007.items():
        assert _read(model) == rows, model.__name__
    assert {s.id: s.status for s in pm.Short.select()} == SHORT_STATUSES_AFTER_0007
    assert {r.id: (r.action, r.response_detail, r.auto_held)
            for r in pm.ReviewLog.select()} == REVIEWS_AFTER_0007
    current = _dump(database)
    # rebuilt or not, the same columns and rows
    assert {t: current[t] for t in untouched} == untouched
    assert [a.view_count for a in pm.Analytics.latest()] == [77]
    # The queue and the rules work on the upgraded rows; new rows take the next ids.
    assert pm.PipelineRun.claim_next("w2", now=T2).id == 1
    assert pm.PipelineRun.schedule("gaming", T).id == 8
    assert make_video("next").id == 5 and pm.Short.create(pipeline_run=5).id == 4
    with pytest.raises(ValueError, match="Clip.rank_position: run 5 already has a clip ranked 1"):
        pm.Clip.create(pipeline_run=5, discovered_video=5, rank_position=1, start_time_seconds=0,
                       end_time_seconds=1, clip_duration_seconds=1)


def test_0007_failing_half_way_leaves_the_database_exactly_at_0006(fresh_target, monkeypatch):
    before = _dump(_database_at_0006(fresh_target))
    _failing_at(monkeypatch, 'INSERT INTO "shorts"')  # five tables copied, three to go
    with pytest.raises(pm.CannotOpenDatabase,
                       match=f"cannot apply migrations {SEVENTH}, {EIGHTH}: disk I/O error"):
        pm.init_db(fresh_target)
    monkeypatch.undo()

    database = open_raw(fresh_target)
    assert [m.name for m in runner(database).status() if m.applied] == ALL[:6]
    assert _dump(database) == before
    assert "_pm_cycles" not in database.get_tables()


KILLED_IN_0007 = KILLED_IN_0004.replace('INSERT INTO "review_logs"', 'INSERT INTO "shorts"')


@pytest.mark.slow
def test_an_upgrade_killed_in_0007_leaves_the_database_exactly_at_0006(fresh_target):
    _killed_inside_leaves_it_as_it_was(fresh_target, KILLED_IN_0007,
                                       _database_at_0006(fresh_target), ALL[:6])
    pm.init_db(fresh_target)  # and the upgrade then runs to the end
    assert _read(pm.Clip) == ROWS_AFTER_0007[pm.Clip]


@pytest.mark.parametrize("table, row, message", [
    ("clips", dict(id=9, pipeline_run_id=5, start_seconds=0.0, end_seconds=1.0,
                   file_path="/" + "c" * 512, created_at=T2),
     r"clips: row id = 9 would have clip_file_path = '/ccc.*at most 512 characters"),
    ("discovered_videos", dict(id=9, youtube_video_id="long", title="t" * 1025, discovered_at=T,
                               status="new"),
     r"discovered_videos: row id = 9 would have title = 'ttt.*at most 1024 characters"),
])
def test_an_old_value_that_does_not_fit_its_new_column_stops_0007_naming_it(
        fresh_target, table, row, message):
    rows = {**ROWS_AT_0006, table: [*ROWS_AT_0006[table], row]}
    before = _dump(_database_at_0006(fresh_target, rows))
    with pytest.raises(SchemaMismatch,
                       match=rf"^migration 0007 cannot upgrade {message}.*nothing was changed"):
        pm.init_db(fresh_target)
    assert _dump(open_raw(fresh_target)) == before
