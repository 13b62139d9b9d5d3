"""Faults: a full disk, a PostgreSQL restart or outage, a SQLite file deleted or replaced under a
process (inside a transaction too), read-only opening, concurrent starts, and passwords that must
never be printed."""
import datetime
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import peewee
import pytest

import pipeline_models as pm
from pipeline_models import CannotOpenDatabase, SchemaMismatch, _peewee
from pipeline_models.db import redact
from conftest import CYCLE_START, make_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spawn = multiprocessing.get_context("spawn")


# --- a full disk --------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB filesystem (tmpfs; mounting needs root, as in CI), holding a 1 MB filler file."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        reason = ("cannot mount a tmpfs for the full-disk test: "
                  f"{done.stderr.strip() or done.returncode}")
        if os.environ.get("PIPELINE_MODELS_REQUIRE_TMPFS"):
            pytest.fail(reason)
        pytest.skip(reason)
    (mount / "filler").write_bytes(b"\0" * 1024 * 1024)
    yield mount
    if pm.db.obj is not None:
        pm.db.obj.close()
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_fails_whole_transactions_with_the_real_cause_and_the_file(small_disk):
    path = str(small_disk / "p.db")
    pm.init_db(path)
    batches = 0
    with pytest.raises(peewee.OperationalError,
                       match=r"database or disk is full \(SQLite file .*p\.db\)"):
        while True:
            with pm.write_lock():  # ten rows a batch: all or none of each
                for _ in range(10):
                    pm.ErrorLog.create(module=f"batch{batches}", error_type="Fill",
                                       error_message="x" * 4000)
            batches += 1
    assert batches > 0
    counts = [c for _, c in pm.ErrorLog.select(pm.ErrorLog.module, peewee.fn.COUNT(pm.ErrorLog.id))
              .group_by(pm.ErrorLog.module).tuples()]
    assert len(counts) == batches and set(counts) == {10}  # the failing batch left nothing behind
    with pytest.raises(peewee.OperationalError, match=r"database or disk is full \(SQLite file"):
        # autocommit too
        pm.ErrorLog.create(module="one more", error_type="Fill", error_message="x" * 40000)
    with pytest.raises(peewee.OperationalError, match="full"):
        pm.Analytics.record_many([{"youtube_video_id": "v" * 90}] * 20000)
    assert pm.Analytics.select().count() == 0

    os.remove(small_disk / "filler")  # space again: the same process carries on
    pm.ErrorLog.create(module="after", error_type="E", error_message="space again")
    assert pm.db.obj.execute_sql("PRAGMA integrity_check").fetchone() == ("ok",)


# --- a PostgreSQL restart -----------------------------------------------------------------------


@pytest.fixture
def private_pg(pg_server):
    """A PostgreSQL server of this test's own (the CI script's kind), which the test may crash and
    restart."""
    # not under tmp_path: the server's user must reach it
    directory = tempfile.mkdtemp(prefix="pm-restart-")
    # An acknowledged commit must survive the crash: the CI server's synchronous_commit=off would
    # lose it.
    env = {**os.environ, "PG_EXTRA_OPTIONS": "-c synchronous_commit=on"}
    started = subprocess.run(["bash", os.path.join(ROOT, ".ci", "postgres"), "start",
                              str(directory)],
                             capture_output=True, text=True, env=env)
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip().split("=", 1)[1]

    def script(command):
        done = subprocess.run(["bash", os.path.join(ROOT, ".ci", "postgres"), command,
                               str(directory)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    # restart: a crash (if it runs) and a start; stop: a clean shutdown, the server down until a
    # restart.
    yield SimpleNamespace(url=url, restart=lambda: script("restart"), stop=lambda: script("stop"))
    subprocess.run(["bash", os.path.join(ROOT, ".ci", "postgres"), "stop", str(directory)],
                   capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


def _steady_writer(url, seconds, out):
    """Write an error row over and over, as a long-running worker would, recording what committed
    and what failed."""
    pm.init_db(url)
    committed, failures = [], []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            if n % 2:
                with pm.write_lock():
                    row = pm.ErrorLog.create(module="steady", error_type="E", error_message=str(n))
            else:
                # autocommit
                row = pm.ErrorLog.create(module="steady", error_type="E", error_message=str(n))
            committed.append([row.id, time.time()])
        except Exception as exc:  # reported: the test checks what they were
            failures.append([type(exc).__module__, type(exc).__name__, str(exc)[:300], time.time()])
            time.sleep(0.05)
        time.sleep(0.002)
    with open(out, "w") as fh:
        json.dump({"committed": committed, "failures": failures}, fh)


def test_a_worker_carries_on_by_itself_after_a_postgresql_crash_and_restart(private_pg, tmp_path):
    url, restart = private_pg.url, private_pg.restart
    pm.init_db(url)
    pm.db.obj.close()
    out = tmp_path / "writer.json"
    writer = spawn.Process(target=_steady_writer, args=(url, 7, str(out)))
    writer.start()
    time.sleep(2)
    crashed = time.time()
    restart()
    back = time.time()
    writer.join(60)
    assert writer.exitcode == 0
    result = json.loads(out.read_text())

    assert result["failures"], "the crash went unnoticed: the test did not test anything"
    for module, name, message, when in result["failures"]:
        assert module == "peewee" and name in ("OperationalError", "InterfaceError"), (name,
                                                                                       message)
        assert crashed - 0.5 <= when <= back + 2, f"a failure long after the restart: {message}"
    after = [row_id for row_id, when in result["committed"] if when > back + 2]
    assert after, "the worker did not resume after the restart"
    pm.init_db(url)
    stored = {e.id for e in pm.ErrorLog.select(pm.ErrorLog.id)}
    # nothing that committed was lost
    assert {row_id for row_id, _ in result["committed"]} <= stored
    pm.db.obj.close()


# --- a database that is down, locked or gone is named, whichever statement meets it ---------------


def _operations(claimed):
    """The queue's operations, each of which starts with BEGIN (write_lock), and a plain query, by
    name."""
    return {
        "heartbeat": claimed.heartbeat,
        "claim_next": lambda: pm.PipelineRun.claim_next("worker-2"),
        "discover": lambda: pm.DiscoveredVideo.discover("v-down", title="t", channel_name="c",
                                                        channel_id="UC",
                                                         niche="gaming"),
        "requeue_stale": lambda: pm.PipelineRun.requeue_stale(datetime.timedelta(minutes=5)),
        "a query": lambda: pm.PipelineRun.select().count(),
    }


def _assert_named(call, label, errors=(peewee.OperationalError, peewee.InterfaceError), match=None):
    with pytest.raises(errors, match=match) as failed:
        call()
    for text in (str(failed.value), repr(failed.value)):
        assert label in text and "s3cret" not in text, text


def test_a_postgresql_server_down_is_named_by_every_operation_begin_included(private_pg):
    parts = urlsplit(private_pg.url)
    # trust: ignored
    url = parts._replace(netloc=f"postgres:s3cret-pw@{parts.hostname}:{parts.port}").geturl()
    pm.init_db(url)
    pm.PipelineRun.schedule("gaming", CYCLE_START)
    claimed = pm.PipelineRun.claim_next("worker-1")
    label = f"(database postgres at 127.0.0.1:{parts.port})"
    for name, operation in _operations(claimed).items():
        assert pm.PipelineRun.select().count() == 1  # the connection is open when the server goes
        private_pg.stop()
        # the open connection is found dead, and a new one is refused
        _assert_named(operation, label)
        _assert_named(operation, label)  # no connection: refused at once
        private_pg.restart()
    # all as before, once it is back
    assert claimed.heartbeat() and pm.PipelineRun.claim_next("worker-2") is None
    pm.db.obj.close()


@pytest.mark.parametrize("bound_by", ["url", "hand"])
def test_a_closed_port_is_named_by_every_operation_begin_included(bound_by):
    from pipeline_models.connections import database_for

    url = "postgresql://pipeline:s3cret-pw@127.0.0.1:1/pipeline"  # port 1: nothing listens
    database = database_for(url) if bound_by == "url" else peewee.PostgresqlDatabase(
        "pipeline", host="127.0.0.1", port=1, user="pipeline", password="s3cret-pw")
    pm.db.initialize(database)  # as init_db binds it, or a user's own database bound by hand
    claimed = pm.PipelineRun(id=1, status="running", claim_token="t")
    for operation in _operations(claimed).values():
        _assert_named(operation, "(database pipeline at 127.0.0.1:1)")


def test_a_sqlite_file_locked_or_gone_is_named_by_every_operation_begin_included(tmp_path):
    path = tmp_path / "gone" / "p.db"
    path.parent.mkdir()
    database = pm.init_db(path)
    pm.PipelineRun.schedule("gaming", CYCLE_START)
    claimed = pm.PipelineRun.claim_next("worker-1")
    database.execute_sql("PRAGMA busy_timeout = 100")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the busy timeout
    operations = _operations(claimed)
    for name, operation in operations.items():
        if name != "a query":  # WAL: a reader is never locked out
            _assert_named(operation, f"(SQLite file {path})", peewee.OperationalError,
                          "database is locked")
    holder.execute("ROLLBACK")
    holder.close()
    database.close()
    shutil.rmtree(path.parent)  # the disk it was on went away: a new connection cannot be made
    for operation in operations.values():
        _assert_named(operation, f"(SQLite file {path})", peewee.OperationalError, "unable to open")


# --- a SQLite file deleted, replaced or truncated under a process --------------------------------


def _replace(path):
    shutil.copy(path + ".other", path + ".tmp")
    os.replace(path + ".tmp", path)  # as a restore from backup or a careless copy would


@pytest.mark.parametrize("change, what", [
    (os.remove, "deleted"),
    (_replace, "replaced by another file"),
    (lambda path: open(path, "w").close(), "truncated to 0 bytes"),
])
def test_a_sqlite_file_changed_under_a_running_process_is_refused(tmp_path, change, what):
    path = str(tmp_path / "p.db")
    pm.init_db(path + ".other")
    pm.db.obj.close()
    pm.init_db(path)
    make_video("before")
    change(path)
    with pytest.raises(pm.DatabaseFileChanged, match=f"was {what} while this process had it open"):
        make_video("after")
    with pytest.raises(pm.DatabaseFileChanged):
        list(pm.DiscoveredVideo.select())
    pm.db.obj.close()


def _write_within_2s(target, run_id, out):
    """Another process: open `target` waiting at most 2 s for a lock, and write (a video, or the run
    `run_id`)."""
    began = time.monotonic()
    try:
        if "://" in target:
            pm.init_db(target)
            pm.db.execute_sql("SET lock_timeout = '2s'")
        else:
            pm.init_db(peewee.SqliteDatabase(target, pragmas={"busy_timeout": 2000}))
        with pm.write_lock():
            if run_id is None:
                make_video("from another process")
            else:
                pm.PipelineRun.update(current_stage="another process").where(
                    pm.PipelineRun.id == run_id).execute()
        error = None
    except Exception as exc:  # reported: the test says what it was
        error = f"{type(exc).__name__}: {exc}"
    with open(out, "w") as fh:
        json.dump({"error": error, "seconds": time.monotonic() - began}, fh)


def _another_process_writes(target, tmp_path, run_id=None):
    out = tmp_path / "other.json"
    other = spawn.Process(target=_write_within_2s, args=(target, run_id, str(out)))
    other.start()
    other.join(60)
    assert other.exitcode == 0
    result = json.loads(out.read_text())
    assert result["error"] is None, result["error"]


CHANGES = [(os.remove, "deleted"), (_replace, "replaced by another file"),
           (lambda path: open(path, "w").close(), "truncated to 0 bytes")]


@pytest.mark.parametrize("block", ["write_lock", "savepoint in peewee's atomic"])
@pytest.mark.parametrize("change, what", CHANGES, ids=[what.split()[0] for _, what in CHANGES])
def test_a_sqlite_file_changed_inside_a_transaction_leaves_no_lock_behind(tmp_path, change, what,
                                                                          block):
    path = str(tmp_path / "p.db")
    pm.init_db(path + ".other")
    pm.db.obj.close()
    database = pm.init_db(path)
    make_video("before")
    with pytest.raises(pm.DatabaseFileChanged, match=f"was {what}"):
        with (pm.write_lock() if block == "write_lock" else database.atomic()):
            make_video("inside")
            change(path)
            # a savepoint: it cannot roll back either, and the transaction must
            with pm.db.atomic():
                make_video("after")
    # The ROLLBACK reached SQLite: this connection holds no transaction, and so no lock (in WAL mode
    # it is in the -shm file, which a replaced database file keeps: every other writer would wait
    # for it forever).
    assert not database.in_transaction() and not _peewee.connection(database).in_transaction
    if what.startswith("replaced"):
        # (A file deleted or truncated to nothing beside the -wal and -shm this process keeps open
        # is no database a new process can open, "disk I/O error", until it closes them, in a
        # transaction or not: stop every process, as DatabaseFileChanged says.)
        _another_process_writes(path, tmp_path)


def test_a_rollback_sqlite_refuses_still_ends_the_transaction(tmp_path, monkeypatch):
    path = str(tmp_path / "p.db")
    # a plain peewee database: its own rollback()
    database = pm.init_db(peewee.SqliteDatabase(path))
    make_video("before")

    def refused(self):
        raise peewee.OperationalError("disk I/O error")

    monkeypatch.setattr(peewee.SqliteDatabase, "rollback", refused)
    with pytest.raises(peewee.OperationalError, match=r"disk I/O error \(SQLite file .*p\.db\)"):
        with pm.write_lock():
            make_video("rolled back")
            raise RuntimeError("the block failed")
    monkeypatch.undo()
    assert not _peewee.connection(database).in_transaction
    _another_process_writes(path, tmp_path)
    assert [v.video_id for v in pm.DiscoveredVideo.select().order_by(pm.DiscoveredVideo.id)] == \
        ["before", "from another process"]


def test_an_error_inside_a_transaction_releases_its_locks_for_another_process(fresh_target,
                                                                              tmp_path):
    pm.init_db(fresh_target)
    run = pm.PipelineRun.schedule("gaming", CYCLE_START)
    hold = pm.PipelineRun.update(current_stage="held").where(pm.PipelineRun.id == run.id)
    with pytest.raises(RuntimeError):
        with pm.write_lock():
            hold.execute()  # the row (PostgreSQL) or the file (SQLite) is locked from here
            raise RuntimeError("the worker's own bug")
    with pytest.raises(peewee.DatabaseError):
        with pm.write_lock():
            hold.execute()
            pm.db.execute_sql("SELECT no_such_column FROM pipeline_runs")
    _another_process_writes(fresh_target, tmp_path, run.id)
    assert pm.PipelineRun.get_by_id(run.id).current_stage == "another process"


# --- read-only opening --------------------------------------------------------------------------


def _files(directory):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def test_a_read_only_open_changes_nothing_and_leaves_no_files(tmp_path):
    path = tmp_path / "p.db"
    pm.init_db(path)
    make_video("v1")
    pm.db.obj.close()
    before = _files(tmp_path)
    assert list(before) == ["p.db"]

    pm.init_db(path, readonly=True)
    assert [v.video_id for v in pm.DiscoveredVideo.select()] == ["v1"]
    with pytest.raises(peewee.OperationalError, match="readonly"):
        make_video("v2")
    pm.db.obj.close()
    assert _files(tmp_path) == before


def test_a_read_only_open_sees_what_a_running_writer_committed(tmp_path):
    path = tmp_path / "p.db"
    writer = pm.init_db(path)
    make_video("v1")  # the writer stays open: its -wal holds the row
    reader = pm.init_db(path, readonly=True)
    assert pm.DiscoveredVideo.select().count() == 1
    reader.close()
    writer.close()


@pytest.mark.parametrize("prepare, error, message", [
    (lambda path: None, CannotOpenDatabase, "there is no such file, so no database yet"),
    (lambda path: open(path, "w").close(), CannotOpenDatabase,
     "the file is empty, so no database yet"),
    (lambda path: peewee.SqliteDatabase(path).execute_sql("CREATE TABLE notes (body TEXT)"),
     CannotOpenDatabase, "it is not a pipeline database"),
    (lambda path: _database_at(path, "0003_short_upload_claim"), SchemaMismatch,
     "needs the migrations 0004_seed_schema, 0005_run_queue, 0006_analytics_latest, "
     "0007_pipeline_tables, 0008_cycle: apply them with `pipeline-models migrate`"),
])
def test_a_read_only_open_refuses_what_it_cannot_read_and_changes_nothing(tmp_path, prepare, error,
                                                                          message):
    path = str(tmp_path / "p.db")
    prepare(path)
    before = _files(tmp_path)
    with pytest.raises(error, match=message):
        pm.init_db(path, readonly=True)
    assert _files(tmp_path) == before and pm.db.obj is None


def _database_at(path, migration):
    from playhouse.migrations import Runner

    database = peewee.SqliteDatabase(path)
    Runner(database, str(pm.MIGRATIONS_DIR)).up(migration)
    database.close()


def test_create_false_refuses_a_missing_or_empty_file(tmp_path):
    path = tmp_path / "p.db"
    with pytest.raises(CannotOpenDatabase, match="create one with init_db"):
        pm.init_db(path, create=False)
    assert not path.exists()
    pm.init_db(path)
    pm.db.obj.close()
    assert pm.init_db(path, create=False) is pm.db.obj
    pm.db.obj.close()


def test_a_read_only_postgresql_session_refuses_writes(pg_server):
    url = pg_server.new_database()
    pm.init_db(url)
    make_video("v1")
    pm.db.obj.close()
    pm.init_db(url, readonly=True)
    assert pm.DiscoveredVideo.select().count() == 1
    with pytest.raises(peewee.InternalError, match="read-only transaction"):
        make_video("v2")
    pm.db.obj.close()
    empty = pg_server.new_database()
    with pytest.raises(CannotOpenDatabase, match="not a pipeline database"):
        pm.init_db(empty, readonly=True)


# --- starting at once ---------------------------------------------------------------------------


def test_the_wal_switch_waits_out_another_process_holding_the_file(tmp_path, monkeypatch):
    path = tmp_path / "p.db"
    calls = []
    pragma = peewee.SqliteDatabase.pragma

    def locked_twice(self, key, value=peewee.SENTINEL, *args, **kwargs):
        if key == "journal_mode" and value is not peewee.SENTINEL:
            calls.append(value)
            if len(calls) <= 2:
                raise peewee.OperationalError("database is locked")
        return pragma(self, key, value, *args, **kwargs)

    monkeypatch.setattr(peewee.SqliteDatabase, "pragma", locked_twice)
    pm.init_db(path)
    assert len(calls) == 3 and pm.db.obj.pragma("journal_mode") == "wal"
    pm.db.obj.close()


def test_the_wal_switch_gives_up_naming_the_database(tmp_path, monkeypatch):
    def always_locked(self, key, value=peewee.SENTINEL, *args, **kwargs):
        if key == "journal_mode" and value is not peewee.SENTINEL:
            raise peewee.OperationalError("database is locked")
        return "delete" if key == "journal_mode" else None  # nobody else switched it either

    monkeypatch.setattr(peewee.SqliteDatabase, "pragma", always_locked)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    with pytest.raises(CannotOpenDatabase,
                       match=r"p\.db'.*cannot switch to WAL: another process kept the database"):
        pm.init_db(tmp_path / "p.db")
    assert pm.db.obj is None


# --- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "postgresql://pipeline:s3cret-pw@127.0.0.1:1/pipeline",
    "postgresql://pipeline:s3cret-pw@127.0.0.1:1",
    "postgres://pipeline:s3cret-pw@no-such-host.invalid/pipeline",
    "mysql+nosuchdriver://pipeline:s3cret-pw@127.0.0.1/pipeline",
    "sqlite://pipeline:s3cret-pw@/nonexistent-dir/x.db",
])
def test_no_error_that_names_a_target_prints_its_password(target, caplog):
    caplog.set_level("DEBUG")
    with pytest.raises(pm.PipelineModelsError) as error:
        pm.init_db(target)
    for text in (str(error.value), repr(error.value), str(error.value.target), caplog.text):
        assert "s3cret" not in text
    assert "***" in str(error.value) or "pipeline:" not in str(error.value)


def test_redact_hides_url_and_dsn_passwords_only():
    assert redact("postgresql://u:p%40ss@h:5432/db and host=h password='a b' user=u") == \
        "postgresql://u:***@h:5432/db and host=h password=*** user=u"
    assert redact("sqlite:///pipeline.db postgresql://u@h/db") == \
        "sqlite:///pipeline.db postgresql://u@h/db"
    # Unusual URLs that still connect: the driver splits at the LAST '@' of the address, so the
    # password can hold one; a password with a space is hidden where the URL is the whole text or
    # quoted.
    assert redact("could not connect to postgresql://u:p@secret@127.0.0.1:1/x") == \
        "could not connect to postgresql://u:***@127.0.0.1:1/x"
    assert redact("postgresql://u:sec ret@127.0.0.1:1/x") == "postgresql://u:***@127.0.0.1:1/x"
    assert redact("cannot open database 'postgresql://u:sec ret@127.0.0.1:1/x': refused") == \
        "cannot open database 'postgresql://u:***@127.0.0.1:1/x': refused"
    # A DSN password in a quoted message: the closing quote is the message's, not the password's.
    assert redact("'postgresql://127.0.0.1:1/x?user=u&password=secret': connection failed") == \
        "'postgresql://127.0.0.1:1/x?user=u&password=***': connection failed"
    assert redact("host=h password='it\\'s secret' user=u") == "host=h password=*** user=u"
    # Ordinary text keeps every word: an address with a port and no user, then an e-mail address
    # further on.
    for text in ("GET http://localhost:8080 failed; mail ops@example.com at 10:30",
                 "see https://example.com/a:b@c, user:pass@host and a@b", "postgresql://u:***@h/x"):
        assert redact(text) == text


def test_init_on_a_full_disk_says_so_in_one_line(small_disk, capsys):
    from pipeline_models.cli import main

    with open(small_disk / "more-filler", "wb") as fh:  # every last block
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    status = main(["init", "--db", str(small_disk / "p.db")])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "full" in err and "p.db" in err


def test_no_postgresql_driver_names_the_extra_and_psycopg_3(monkeypatch):
    monkeypatch.setattr(peewee, "psycopg2", None)
    monkeypatch.setattr(peewee, "psycopg", None)
    with pytest.raises(CannotOpenDatabase) as refused:
        pm.init_db("postgresql://pipeline:secret@127.0.0.1:1/pipeline")
    message = str(refused.value)
    assert ("install the 'postgres' extra, which installs psycopg 3" in message
            and ".[postgres]" in message)
    assert "psycopg2" not in message and "secret" not in message and pm.db.obj is None
