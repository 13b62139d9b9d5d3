"""Migrations: they build what the models describe, upgrade old databases intact, and ship in the wheel."""
import os
import shutil
import subprocess
import sys
import textwrap

import peewee
import pytest
from playhouse import db_url
from playhouse.migrations import Runner
from playhouse.schema_diff import diff_models

import pipeline_models as pm
from pipeline_models import SchemaMismatch

FIRST, SECOND, THIRD = "0001_original_tables", "0002_review_publish_analytics", "0003_short_upload_claim"
ALL = [FIRST, SECOND, THIRD]


def runner(database):
    return Runner(database, str(pm.MIGRATIONS_DIR))


def test_migrations_are_numbered_and_complete():
    names = [m.name for m in Runner(peewee.SqliteDatabase(":memory:"), str(pm.MIGRATIONS_DIR)).migrations()]
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
    return {t: sorted((c.name, c.data_type, c.null, c.primary_key) for c in database.get_columns(t))
            for t in _tables()}


def _indexes(database):
    return {t: sorted((i.name, tuple(i.columns), i.unique) for i in database.get_indexes(t)) for t in _tables()}


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
    """The CHECK constraints' expressions, per table (PostgreSQL; SQLite keeps them in the CREATE text)."""
    sql = """SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'c' AND conrelid = %s::regclass"""
    return {t: sorted(r[0] for r in database.execute_sql(sql, (t,))) for t in _tables()}


def test_migrated_schema_matches_create_tables_column_for_column(fresh_target, request):
    """schema_diff compares names only; types, NULL-ness, index names and ON DELETE must match too."""
    migrated = pm.init_db(fresh_target)
    if isinstance(migrated, peewee.SqliteDatabase):
        direct = peewee.SqliteDatabase(":memory:")
    else:
        direct = open_raw(request.getfixturevalue("pg_server").new_database())
    with direct.bind_ctx(pm.ALL_MODELS):
        direct.create_tables(pm.ALL_MODELS)
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
    old = _database_at_0001(fresh_target)
    tables = ("discovered_videos", "pipeline_runs", "clips")
    rows_before = {t: old.execute_sql(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in tables}
    old.close()

    database = pm.init_db(fresh_target)

    assert [m.name for m in runner(database).status() if m.applied] == ALL
    for table, rows in rows_before.items():
        after = database.execute_sql(f"SELECT * FROM {table} ORDER BY id").fetchall()
        # pipeline_runs gained two trailing columns, NULL for old rows.
        assert [row[: len(rows[0])] for row in after] == rows, table
    run = pm.PipelineRun.get()
    assert run.status is pm.RunStatus.published
    assert run.created_at == pm.utcnow().replace(2024, 5, 1, 10, 5, 0, 250000)
    assert run.heartbeat_at is None and run.last_error is None
    assert [c.start_seconds for c in run.clips] == [3.5]
    assert run.discovered_video.title == "An old find"
    pm.Short.create(pipeline_run=run, clip=run.clips[0])  # and the new tables work with the old rows


def test_three_table_database_without_history_is_adopted(fresh_target):
    legacy = _database_at_0001(fresh_target)
    legacy.execute_sql("DROP TABLE schema_migration")  # as the three-model version left it
    legacy.close()

    database = pm.init_db(fresh_target)

    history = runner(database).status()
    assert [(m.name, bool(m.applied)) for m in history] == [(name, True) for name in ALL]
    assert pm.DiscoveredVideo.get().youtube_video_id == "old1"
    assert not diff_models(database, pm.ALL_MODELS)


def test_a_database_made_by_create_tables_is_adopted_as_current(tmp_path):
    path = str(tmp_path / "made.db")
    made = peewee.SqliteDatabase(path)
    pm.db.initialize(made)
    pm.db.create_tables(pm.ALL_MODELS)  # what the README says a script may do
    pm.DiscoveredVideo.create(youtube_video_id="kept")
    made.close()

    database = pm.init_db(path)

    assert [(m.name, bool(m.applied)) for m in runner(database).status()] == [(name, True) for name in ALL]
    assert pm.DiscoveredVideo.get().youtube_video_id == "kept"


def test_a_database_with_only_some_original_tables_is_refused_unchanged(tmp_path):
    path = tmp_path / "odd.db"
    odd = peewee.SqliteDatabase(str(path))
    odd.execute_sql("CREATE TABLE discovered_videos (id INTEGER PRIMARY KEY, youtube_video_id TEXT)")
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
    with pytest.raises(SchemaMismatch, match="lacks .*column discovered_videos.youtube_video_id"):
        pm.init_db(path)
    check = peewee.SqliteDatabase(str(path))
    assert sorted(check.get_tables()) == ["clips", "discovered_videos", "pipeline_runs"]
    check.close()


def test_down_and_up_again(tmp_path):
    database = pm.init_db(tmp_path / "d.db")
    assert runner(database).down(SECOND) == [THIRD, SECOND]
    assert "shorts" not in database.get_tables()
    assert "heartbeat_at" not in [c.name for c in database.get_columns("pipeline_runs")]
    assert pm.migrate() == [SECOND, THIRD]
    assert not diff_models(database, pm.ALL_MODELS)


@pytest.mark.slow
def test_migrations_ship_in_a_non_editable_wheel(tmp_path):
    """Build a wheel, install it into a fresh virtual environment, and migrate from outside the checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source, dist, venv = tmp_path / "source", tmp_path / "dist", tmp_path / "venv"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "pipeline_models"):  # build a copy: the checkout stays clean
        copy = shutil.copytree if os.path.isdir(os.path.join(root, name)) else shutil.copy
        copy(os.path.join(root, name), source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, source],
        check=True,
    )
    (wheel,) = dist.glob("pipeline_models-*.whl")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], check=True)
    # peewee comes from this environment (the fresh one has no network need); the package from the wheel.
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
