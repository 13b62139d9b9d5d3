"""Binding the proxy: init_db's targets and pragmas, foreign keys however bound, and clear
errors."""
import datetime
import os
import sqlite3

import peewee
import pytest

import pipeline_models as pm
from pipeline_models import CannotOpenDatabase, DatabaseNotBound, TablesMissing

CYCLE = datetime.datetime(2026, 1, 1, 0, 30, tzinfo=datetime.timezone.utc)


def video(video_id):
    """A candidate video with only the columns the pipeline requires."""
    return pm.DiscoveredVideo.create(video_id=video_id, title="t", channel_name="c",
                                     channel_id="UC", url="u", niche="gaming")


def orphan_clip():
    """A clip of run 42 and video 42, which do not exist: only the database's foreign keys refuse it
    (insert(), not create(), whose save() looks the run up first)."""
    return pm.Clip.insert(pipeline_run=42, discovered_video=42, rank_position=1,
                          start_time_seconds=0, end_time_seconds=1,
                          clip_duration_seconds=1).execute()


def test_every_model_uses_the_proxy():
    assert isinstance(pm.db, peewee.DatabaseProxy)
    assert all(model._meta.database is pm.db for model in pm.ALL_MODELS)


def test_unbound_proxy_says_how_to_bind():
    for use in (
        lambda: pm.PipelineRun.select().count(),
        lambda: video("x"),
        lambda: pm.db.create_tables(pm.ALL_MODELS),
        lambda: pm.db.atomic().__enter__(),
        lambda: pm.db.__enter__(),
    ):
        with pytest.raises(DatabaseNotBound, match=r"init_db\(.*db\.initialize\("):
            use()
    assert not hasattr(pm.db, "_anything_private")  # hasattr() still works on the unbound proxy


def test_bare_sqlite_binding_enforces_foreign_keys():
    database = peewee.SqliteDatabase(":memory:")
    pm.db.initialize(database)
    pm.db.create_tables(pm.ALL_MODELS)
    assert database.pragma("foreign_keys") == 1
    with pytest.raises(peewee.IntegrityError):
        orphan_clip()
    assert pm.Clip.select().count() == 0


def test_foreign_keys_on_for_a_connection_opened_before_binding():
    database = peewee.SqliteDatabase(":memory:")
    database.connect()
    assert database.pragma("foreign_keys") == 0
    pm.db.initialize(database)
    assert database.pragma("foreign_keys") == 1


def test_foreign_keys_on_for_every_thread_connection(tmp_path):
    import threading

    database = peewee.SqliteDatabase(str(tmp_path / "t.db"))
    pm.db.initialize(database)
    seen = []
    thread = threading.Thread(target=lambda: (seen.append(database.pragma("foreign_keys")),
                                              database.close()))
    thread.start()
    thread.join()
    assert seen == [1]


def test_init_db_with_a_path_sets_the_multiprocess_pragmas(tmp_path):
    path = tmp_path / "pipeline.db"
    database = pm.init_db(path)
    assert pm.db.obj is database
    assert database.pragma("journal_mode") == "wal"
    assert database.pragma("synchronous") == 1  # NORMAL
    assert database.pragma("busy_timeout") >= 5000
    assert database.pragma("cache_size") == -32_000
    assert database.pragma("foreign_keys") == 1
    video("a")
    database.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT video_id FROM discovered_videos").fetchall() == [("a",)]


def test_init_db_keeps_pragmas_the_caller_chose(tmp_path):
    database = peewee.SqliteDatabase(str(tmp_path / "p.db"), pragmas={"busy_timeout": 30_000})
    assert pm.init_db(database) is database
    assert database.pragma("busy_timeout") == 30_000
    assert database.pragma("journal_mode") == "wal"


def test_init_db_memory():
    database = pm.init_db(":memory:")
    assert database.pragma("foreign_keys") == 1
    video("a")
    assert pm.DiscoveredVideo.select().count() == 1


def test_init_db_sqlite_url(tmp_path):
    path = tmp_path / "u.db"
    database = pm.init_db(f"sqlite:///{path}")
    assert isinstance(database, peewee.SqliteDatabase) and database.database == str(path)
    assert database.pragma("journal_mode") == "wal"
    assert "pipeline_runs" in database.get_tables()


def test_init_db_database_instance():
    database = peewee.SqliteDatabase(":memory:")
    assert pm.init_db(database) is database
    assert set(m._meta.table_name for m in pm.ALL_MODELS) <= set(database.get_tables())


def test_init_db_default_target_is_pipeline_db_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pm.init_db()
    assert (tmp_path / "pipeline.db").is_file()


def _snapshot(directory):
    return sorted(
        (p.name, p.stat().st_size, p.read_bytes()) for p in directory.iterdir() if p.is_file())


def test_directory_target_is_refused_naming_it(tmp_path):
    before = _snapshot(tmp_path)
    with pytest.raises(CannotOpenDatabase, match=rf"{tmp_path}.*directory"):
        pm.init_db(tmp_path)
    assert _snapshot(tmp_path) == before
    assert pm.db.obj is None


def test_garbage_file_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 100)
    before = _snapshot(tmp_path)
    with pytest.raises(CannotOpenDatabase, match=r"notes\.db.*not a SQLite database"):
        pm.init_db(path)
    with pytest.raises(CannotOpenDatabase, match=r"notes\.db"):
        pm.init_db(f"sqlite:///{path}")
    assert _snapshot(tmp_path) == before
    assert pm.db.obj is None


def test_missing_directory_is_refused_and_nothing_created(tmp_path):
    with pytest.raises(CannotOpenDatabase, match=r"no/such/dir/p\.db.*does not exist"):
        pm.init_db(tmp_path / "no" / "such" / "dir" / "p.db")
    assert list(tmp_path.iterdir()) == []


def test_unknown_url_scheme_is_refused_naming_the_target():
    with pytest.raises(CannotOpenDatabase, match=r"'oracle://scott@host/db'.*scheme"):
        pm.init_db("oracle://scott@host/db")


def test_wrong_target_type_is_refused():
    with pytest.raises(CannotOpenDatabase, match="expected a file path"):
        pm.init_db(42)


def test_empty_file_is_a_new_database(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    pm.init_db(path)
    assert "shorts" in pm.db.get_tables()


def test_failed_init_db_keeps_the_previous_binding(tmp_path):
    first = pm.init_db(":memory:")
    with pytest.raises(CannotOpenDatabase):
        pm.init_db(tmp_path)
    assert pm.db.obj is first


def test_init_db_twice_changes_nothing(tmp_path):
    path = tmp_path / "twice.db"
    database = pm.init_db(path)
    video("a")
    dump = list(database.connection().iterdump())
    version = database.execute_sql("PRAGMA schema_version").fetchone()
    database.close()

    again = pm.init_db(path)
    assert pm.migrate() == []
    assert list(again.connection().iterdump()) == dump
    assert again.execute_sql("PRAGMA schema_version").fetchone() == version


def test_migrate_unbound_says_how_to_bind():
    with pytest.raises(DatabaseNotBound):
        pm.migrate()


def test_write_lock_takes_the_lock_at_begin(tmp_path):
    path = str(tmp_path / "lock.db")
    pm.init_db(path)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pm.write_lock():
        # Nothing written yet, yet another writer is already shut out.
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()
    assert os.path.exists(path)


def test_init_db_postgresql_url(pg_server):
    url = pg_server.new_database()
    database = pm.init_db(url)
    assert isinstance(database, peewee.PostgresqlDatabase) and pm.db.obj is database
    run = pm.PipelineRun.schedule("gaming", CYCLE)
    assert pm.PipelineRun.claim_next("w").id == run.id
    assert pm.DiscoveredVideo.discover("pg1", title="t", channel_name="c", channel_id="UC",
                                       niche="gaming")[1]
    assert pm.init_db(url) and pm.migrate() == []  # idempotent there too


def test_unreachable_postgresql_is_refused_naming_the_target():
    url = "postgresql://nobody@127.0.0.1:1/nothing"
    with pytest.raises(CannotOpenDatabase,
                       match=r"cannot open database 'postgresql://nobody@127\.0\.0\.1:1/nothing'"):
        pm.init_db(url)
    assert pm.db.obj is None


# --- a missing table is named, with what to do ----------------------------------------------------

MISSING_HINT = (r"create the schema first, with pipeline_models\.init_db\(.*create_tables\(.*"
                r"pipeline_db")


def test_a_plain_sqlite_database_without_tables_says_which_table_and_what_to_do():
    # as a user's test binds it, create_tables forgotten
    pm.db.initialize(peewee.SqliteDatabase(":memory:"))
    with pytest.raises(TablesMissing,
                       match=r"^table 'pipeline_runs' does not exist in the in-memory SQLite "
                       r"database \(.*\): " + MISSING_HINT) as caught:
        pm.PipelineRun.select().count()
    assert caught.value.table == "pipeline_runs"
    assert isinstance(caught.value.__cause__, peewee.OperationalError)
    assert "no such table" in str(caught.value.__cause__)
    for write in (lambda: video("a"),
                  lambda: pm.ConfigOverride.set("k", 1),
                  lambda: pm.ErrorLog.unresolved().first(),
                  # the bulk path
                  lambda: pm.Analytics.record_many([{"youtube_video_id": "a", "view_count": 1}]),
                  lambda: pm.PipelineRun.insert_rows([{
                      "niche": "gaming", "cycle_start": CYCLE,
                      "cycle_end": CYCLE + datetime.timedelta(hours=6)}])):
        with pytest.raises(TablesMissing, match="does not exist"):
            write()


def test_tables_missing_is_still_the_error_handlers_expect():
    assert issubclass(TablesMissing, pm.PipelineModelsError)
    for base in (peewee.OperationalError, peewee.ProgrammingError, peewee.DatabaseError,
                 peewee.PeeweeException):
        assert issubclass(TablesMissing, base)
    pm.db.initialize(peewee.SqliteDatabase(":memory:"))
    try:
        pm.Short.get_or_none(pm.Short.id == 1)
    except peewee.OperationalError as exc:  # what code written against the bare error catches
        assert isinstance(exc, TablesMissing) and exc.table == "shorts"
    else:
        pytest.fail("no error for a missing table")


def test_a_table_dropped_from_an_init_db_file_is_named_with_the_file(tmp_path):
    path = tmp_path / "p.db"
    database = pm.init_db(path)
    video("a")
    database.execute_sql("DROP TABLE tts_audio")
    with pytest.raises(TablesMissing,
                       match=rf"^table 'tts_audio' does not exist in SQLite file {path}: "
                       + MISSING_HINT):
        list(pm.TTSAudio.select())
    assert pm.DiscoveredVideo.select().count() == 1  # the rest works as before


def test_other_failures_are_not_taken_for_a_missing_table():
    pm.init_db(":memory:")
    with pytest.raises(peewee.OperationalError, match="no such column") as caught:
        list(pm.PipelineRun.raw("SELECT nope FROM pipeline_runs"))
    assert not isinstance(caught.value, TablesMissing)
    with pytest.raises(peewee.IntegrityError):
        orphan_clip()
    # a raw statement does not go through a model
    with pytest.raises(peewee.OperationalError) as caught:
        pm.db.execute_sql("SELECT * FROM no_such_thing")
    assert not isinstance(caught.value, TablesMissing)


def test_a_missing_table_inside_a_transaction_rolls_back_as_before():
    database = peewee.SqliteDatabase(":memory:")
    pm.db.initialize(database)
    pm.db.create_tables([pm.DiscoveredVideo])
    with pytest.raises(TablesMissing):
        with pm.db.atomic():
            video("rolled back")
            pm.PipelineRun.select().count()
    with pm.db.atomic():
        video("kept")
        with pytest.raises(TablesMissing):
            with pm.db.atomic():  # a savepoint: only it is rolled back
                pm.PipelineRun.select().count()
    assert [v.video_id for v in pm.DiscoveredVideo.select()] == ["kept"]


def test_postgresql_sqlstate_names_a_missing_table_in_any_language():
    from pipeline_models.db import named_error, missing_table_error

    class UndefinedTable(Exception):
        sqlstate = "42P01"

    localized = peewee.ProgrammingError(UndefinedTable("Relation »pipeline_runs« existiert nicht"),
                                        "Relation »pipeline_runs« existiert nicht")
    database = peewee.PostgresqlDatabase("pipeline", host="db.internal")
    # As a database init_db made raises it: with the database in the message.
    named = named_error(localized, database)
    assert str(named).endswith("(database pipeline at db.internal:5432)")
    found = missing_table_error(named, database)
    assert isinstance(found, TablesMissing) and found.table is None
    assert str(found).startswith("a table the query uses does not exist in database pipeline at "
                                 "db.internal:5432: ")
    other = peewee.ProgrammingError(
        type("UndefinedColumn", (Exception,), {"sqlstate": "42703"})("x"), "x")
    assert missing_table_error(other, peewee.PostgresqlDatabase("pipeline")) is None


@pytest.mark.parametrize("bound_by", ["init_db", "initialize"])
def test_postgresql_missing_table_is_named_and_the_transaction_behaves_as_before(pg_server,
                                                                                 bound_by):
    from playhouse import db_url

    url = pg_server.new_database()
    database = pm.init_db(url)
    database.execute_sql("DROP TABLE tts_audio")
    if bound_by == "initialize":  # a plain peewee database, as a user's test binds it
        database.close()
        database = db_url.connect(url)
        pm.db.initialize(database)
    name = url.rsplit("/", 1)[1]
    with pytest.raises(TablesMissing,
                       match=rf"^table 'tts_audio' does not exist in database {name} at "
                       r"127\.0\.0\.1:\d+: " + MISSING_HINT) as caught:
        pm.TTSAudio.select().count()
    assert isinstance(caught.value, peewee.ProgrammingError)
    # The failed statement aborts the transaction, which rolls back whole, as it would without the
    # translation.
    with pytest.raises(TablesMissing):
        with pm.db.atomic():
            video("rolled back")
            pm.TTSAudio.select().count()
    with pm.db.atomic():
        video("kept")
        with pytest.raises(TablesMissing):
            with pm.db.atomic():
                pm.TTSAudio.create(pipeline_run=1, engine_used="piper")
        video("after the savepoint")
    assert [v.video_id for v in pm.DiscoveredVideo.select().order_by(pm.DiscoveredVideo.id)] == \
        ["kept", "after the savepoint"]
    database.close()


# --- PostgreSQL in any server encoding ------------------------------------------------------------


@pytest.fixture
def sql_ascii_database(pg_server):
    """Makes new databases in the SQL_ASCII encoding (what initdb makes without a UTF-8 locale);
    their URLs."""
    def new():
        name = "pm_test_ascii_" + os.urandom(6).hex()
        pg_server.admin.execute_sql(f"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' LC_COLLATE "
                                    "'C' LC_CTYPE 'C' TEMPLATE template0")
        pg_server.created.append(name)  # dropped at the end of the session
        return pg_server.url.rsplit("/", 1)[0] + "/" + name

    return new


TEXT = "Ünïcode 漢字 🎬 'quoted' \\ back"


def test_a_sql_ascii_postgresql_database_works_as_any_other(sql_ascii_database, tmp_path):
    from playhouse import db_url

    from pipeline_models.cli import main

    url = sql_ascii_database()
    database = pm.init_db(url)  # its migrations and peewee's introspection read text
    assert database.execute_sql("SHOW server_encoding").fetchone()[0] == "SQL_ASCII"
    assert database.execute_sql("SHOW client_encoding").fetchone()[0] == "UTF8"
    created = pm.DiscoveredVideo.create(video_id="ascii1", title=TEXT, channel_name="c",
                                        channel_id="UC", url="u", niche="gaming")
    pm.ConfigOverride.set("note", {"text": TEXT})
    assert pm.DiscoveredVideo.get_by_id(created.id).title == TEXT
    assert pm.ConfigOverride.value_of("note") == {"text": TEXT}
    # a parameter, as stored
    assert pm.DiscoveredVideo.get(pm.DiscoveredVideo.title == TEXT).id == created.id
    assert pm.init_db(url) and pm.migrate() == []
    pm.db.obj.close()

    # A database bound by hand and connected before binding, with the server's encoding: binding
    # fixes it.
    own = db_url.connect(url)
    own.connect()
    # psycopg's bytes: the failure
    assert own.execute_sql("SHOW client_encoding").fetchone()[0] == b"SQL_ASCII"
    pm.db.initialize(own)
    assert pm.DiscoveredVideo.get_by_id(created.id).title == TEXT
    own.close()
    pm.db.initialize(None)

    demo = sql_ascii_database()
    assert main(["demo", "--db", demo, "--videos", "1"]) == 0
    assert main(["report", "--db", demo, "-o", str(tmp_path / "r.html")]) == 0
    assert "<!doctype html>" in (tmp_path / "r.html").read_text(encoding="utf-8").lower()
