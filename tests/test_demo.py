"""The demo runs the whole pipeline through the package's operations and leaves a consistent database."""
import sqlite3
import threading
from urllib.parse import urlsplit

import peewee
import pytest

import pipeline_models as pm
from pipeline_models import PipelineModelsError, RunStatus, ShortStatus
from pipeline_models.cli import main, parse
from pipeline_models.demo import MARKER, _fresh_database, _work, run_demo


@pytest.mark.slow
def test_demo_runs_the_pipeline_end_to_end(tmp_path, capsys):
    path = str(tmp_path / "demo.db")
    assert main(["demo", "--db", path]) == 0
    out = capsys.readouterr().out
    assert "discovered 12 videos" in out and out.rstrip().splitlines()[-1].split()[:2] == ["errors", "unresolved"]

    pm.init_db(path)
    runs = list(pm.PipelineRun.select())
    assert pm.DiscoveredVideo.select().count() == 12 and len(runs) == 11
    statuses = [r.status for r in runs]
    assert statuses.count(RunStatus.rejected) == 1 and statuses.count(RunStatus.awaiting_review) == 1
    assert statuses.count(RunStatus.published) == 9
    retried = [r for r in runs if r.last_error]  # failed once, retried by the operator (attempts afresh)
    assert len(retried) == 1 and "moov atom" in retried[0].last_error
    (error,) = pm.ErrorLog.select()
    assert error.pipeline_run_id == retried[0].id and error.resolved and error.error_type == "RenderCrashed"
    uploaded = list(pm.Short.select().where(pm.Short.status == ShortStatus.uploaded))
    assert len(uploaded) == 9 and len({s.youtube_video_id for s in uploaded}) == 9
    assert pm.Short.select().where(pm.Short.status == ShortStatus.rejected).count() == 1
    assert pm.ReviewLog.select().where(pm.ReviewLog.auto_held == True).count() == 1  # noqa: E712
    assert pm.ReviewLog.select().where(pm.ReviewLog.action == "edit").count() == 1
    assert pm.Analytics.select().count() == 9 * 28
    assert {r.worker for r in runs if r.worker} <= {"worker-1", "worker-2"}
    assert sum(s.cost_usd for s in pm.Script.select()) > 0
    assert not pm.ErrorLog.unresolved().exists()


@pytest.mark.slow
def test_demo_remakes_its_own_file_and_refuses_other_data(tmp_path):
    path = str(tmp_path / "demo.db")
    lines = []
    run_demo(path, videos=3, out=lines.append)
    run_demo(path, videos=3, out=lines.append)  # its own earlier file: made anew
    pm.init_db(path)
    assert pm.DiscoveredVideo.select().count() == 3
    pm.db.obj.close()

    real = str(tmp_path / "real.db")
    pm.init_db(real)
    pm.DiscoveredVideo.discover("precious")
    pm.db.obj.close()
    pm.db.initialize(None)
    before = open(real, "rb").read()
    for target in (real, "sqlite:///" + real):
        with pytest.raises(PipelineModelsError, match="pipeline data the demo did not make"):
            run_demo(target, videos=3, out=lines.append)
    assert open(real, "rb").read() == before
    pm.init_db(real)
    assert [v.youtube_video_id for v in pm.DiscoveredVideo.select()] == ["precious"]


def test_demo_refuses_files_it_did_not_make_and_leftovers_beside_a_new_one(tmp_path):
    foreign = tmp_path / "notes.db"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE notes (text)")
    connection.commit()
    connection.close()
    (tmp_path / "new.db-wal").write_bytes(b"someone's log")
    listing = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for target, why in ((foreign, "it is not a pipeline database"), (f"sqlite:///{foreign}", "not a pipeline"),
                        (tmp_path / "new.db", "new.db-wal' is left beside it"), (tmp_path, "it is a directory"),
                        (":memory:", "worker processes need a database"), ("mysql://h/db", "SQLite file or a Postgre")):
        with pytest.raises(PipelineModelsError, match=why) as refused:
            _fresh_database(str(target))
        assert "the demo will not use" in str(refused.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == listing and pm.db.obj is None


def test_demo_remakes_its_own_file_with_its_wal_and_shm(tmp_path):
    path = str(tmp_path / "demo.db")
    _fresh_database(path)
    pm.DiscoveredVideo.discover("from the first demo")
    pm.db.obj.close()
    for suffix in ("-wal", "-shm"):
        open(path + suffix, "wb").close()  # as a demo killed half-way leaves them
    _fresh_database(path)
    assert not pm.DiscoveredVideo.select().exists() and pm.ConfigOverride.value_of(MARKER) is True
    pm.db.obj.close()


def _tables(url):
    database = peewee.PostgresqlDatabase(None)
    parts = urlsplit(url)
    database.init(parts.path.lstrip("/"), host=parts.hostname, port=parts.port, user=parts.username,
                  password=parts.password)
    with database:
        return sorted(database.get_tables())


def test_demo_on_postgresql_refuses_pipeline_data_it_did_not_make(pg_server):
    url = pg_server.new_database()
    pm.init_db(url)
    video, _ = pm.DiscoveredVideo.discover("precious")
    pm.PipelineRun.start(video)
    pm.db.obj.close()
    tables = _tables(url)
    with pytest.raises(PipelineModelsError, match="pipeline data the demo did not make"):
        _fresh_database(url)
    assert _tables(url) == tables
    pm.init_db(url, readonly=True)
    assert [v.youtube_video_id for v in pm.DiscoveredVideo.select()] == ["precious"]
    assert pm.PipelineRun.select().count() == 1


def test_demo_on_postgresql_drops_only_its_own_tables(pg_server):
    url = pg_server.new_database()
    _fresh_database(url)
    pm.DiscoveredVideo.discover("from the first demo")
    pm.db.execute_sql("CREATE TABLE notes (text TEXT)")  # someone's table beside the demo's: not the demo's to drop
    pm.db.execute_sql("INSERT INTO notes VALUES ('keep me')")
    pm.db.obj.close()
    _fresh_database(url)
    assert not pm.DiscoveredVideo.select().exists() and pm.ConfigOverride.value_of(MARKER) is True
    assert pm.db.execute_sql("SELECT text FROM notes").fetchall() == [("keep me",)]
    pm.db.obj.close()


@pytest.mark.slow
def test_demo_runs_on_postgresql(pg_server):
    url = pg_server.new_database()
    lines = []
    run_demo(url, videos=4, out=lines.append)
    assert "discovered 4 videos" in lines[0]
    pm.init_db(url, readonly=True)
    assert pm.PipelineRun.select().where(pm.PipelineRun.status == RunStatus.published).exists()


@pytest.mark.slow
def test_a_long_demo_shows_progress(tmp_path):
    progress = []
    run_demo(str(tmp_path / "long.db"), videos=60, out=lambda line: None, progress=progress.append,
             progress_every=0.01)
    assert progress and all("runs through production" in line for line in progress)


def test_demo_without_a_postgresql_driver_says_so_as_status_does(monkeypatch, capsys):
    monkeypatch.setattr(peewee, "psycopg2", None)
    monkeypatch.setattr(peewee, "psycopg", None)
    url = "postgresql://u:secret@127.0.0.1:1/x"
    refusals = []
    for command in ("demo", "status"):
        assert main(["--db", url, command]) == 1
        refusals.append(capsys.readouterr().err)
    assert refusals[0] == refusals[1], refusals
    assert "install the 'postgres' extra, which installs psycopg 3" in refusals[0]
    assert "psycopg2" not in refusals[0] and "secret" not in refusals[0] and pm.db.obj is None


def test_demo_default_file_ignores_pipeline_db(monkeypatch):
    monkeypatch.setenv("PIPELINE_DB", "production.db")
    assert parse(["demo"]).db == "pipeline-demo.db"
    assert parse(["status"]).db == "production.db"


def test_a_failing_worker_says_why_in_one_line(tmp_path, capsys):
    start = threading.Barrier(1)
    with pytest.raises(SystemExit) as exited:
        _work(str(tmp_path / "no" / "such" / "dir.db"), "worker-1", 0, start)
    err = capsys.readouterr().err
    assert exited.value.code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("pipeline-models: demo worker-1: CannotOpenDatabase: ") and "does not exist" in err
