"""Fixtures: a fresh database per test, on SQLite (schema built by create_tables or by the
migrations) and, when PIPELINE_MODELS_TEST_PG names a server, on PostgreSQL.

    PIPELINE_MODELS_TEST_PG=postgresql://postgres@127.0.0.1:5432/postgres pytest

PIPELINE_MODELS_REQUIRE_PG=1 makes an unreachable server a failure instead of a skip (CI sets it).
"""
import datetime
import os
import signal
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import peewee
import pytest

import pipeline_models as pm

PG_URL = os.environ.get("PIPELINE_MODELS_TEST_PG", "")
REQUIRE_PG = os.environ.get("PIPELINE_MODELS_REQUIRE_PG") == "1"


@pytest.fixture(autouse=True)
def unbound():
    """Every test starts and ends with the proxy unbound, so no test sees another's database."""
    pm.db.initialize(None)
    yield
    if pm.db.obj is not None:
        pm.db.obj.close()
    pm.db.initialize(None)


def _with_database(url, name):
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


class PostgresServer:
    """The test server: makes throwaway databases and drops them at the end of the session."""

    def __init__(self, url):
        self.url = url
        self.admin = peewee.PostgresqlDatabase(None)
        self.admin.init(urlsplit(url).path.lstrip("/") or "postgres", **_connect_kwargs(url))
        self.admin.connect()
        self.created = []

    def new_database(self):
        """The URL of a new, empty database."""
        name = "pm_test_" + uuid.uuid4().hex[:12]
        self.admin.execute_sql(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return _with_database(self.url, name)

    def close(self):
        for name in self.created:
            self.admin.execute_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.close()


def _connect_kwargs(url):
    parts = urlsplit(url)
    return {k: v for k, v in dict(host=parts.hostname, port=parts.port, user=parts.username,
                                  password=parts.password).items() if v is not None}


def _unavailable(reason):
    if REQUIRE_PG:
        pytest.fail(f"the PostgreSQL leg must run (PIPELINE_MODELS_REQUIRE_PG=1) but {reason}")
    pytest.skip(f"PostgreSQL leg not run: {reason}")


@pytest.fixture(scope="session")
def pg_server():
    """The PostgreSQL test server, or a skip that says why there is none."""
    if not PG_URL:
        _unavailable("PIPELINE_MODELS_TEST_PG is not set (e.g. "
                     "postgresql://postgres@127.0.0.1:5432/postgres)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("the psycopg driver is not installed (pip install -e '.[postgres]')")
    try:
        server = PostgresServer(PG_URL)
    except peewee.PeeweeException as exc:
        _unavailable(f"cannot connect to {PG_URL}: {exc}")
    yield server
    server.close()


@pytest.fixture(scope="session")
def pg_shared(pg_server):
    """One migrated PostgreSQL database for the session; `database` empties it before each test."""
    url = pg_server.new_database()
    database = pm.init_db(url)
    pm.db.initialize(None)
    return database


def _empty(database):
    tables = ", ".join(f'"{m._meta.table_name}"' for m in pm.ALL_MODELS)
    database.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture(params=["sqlite-create_tables", "sqlite-migrations", "postgres"])
def database(request):
    """A fresh database bound to the proxy: in-memory SQLite built both ways, which must agree, and
    PostgreSQL."""
    if request.param == "sqlite-create_tables":
        database = peewee.SqliteDatabase(":memory:")
        pm.db.initialize(database)
        pm.db.create_tables(pm.ALL_MODELS)
    elif request.param == "sqlite-migrations":
        database = pm.init_db(":memory:")
    else:
        database = request.getfixturevalue("pg_shared")
        pm.db.initialize(database)
        _empty(database)
    return database


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_target(request, tmp_path):
    """An init_db target holding nothing yet: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "fresh.db")
    return request.getfixturevalue("pg_server").new_database()


# gaming's first cycle
CYCLE_START = datetime.datetime(2026, 1, 1, 0, 30, tzinfo=datetime.timezone.utc)


def make_video(video_id, niche="gaming", **fields):
    """A candidate video with the columns the pipeline requires (title, channel, url, niche)."""
    values = dict(title=f"Video {video_id}", channel_name="A creator", channel_id="UCcreator",
                  url=f"https://www.youtube.com/watch?v={video_id}", niche=niche)
    return pm.DiscoveredVideo.create(video_id=video_id, **{**values, **fields})


def make_run(niche="gaming", cycle=0, **fields):
    """The run of `niche` for its cycle number `cycle` (6 hours apart from CYCLE_START), made with
    create()."""
    start = CYCLE_START + datetime.timedelta(hours=6 * cycle)
    return pm.PipelineRun.create(niche=niche, cycle_start=start,
                                 cycle_end=start + datetime.timedelta(hours=6), **fields)


def make_clip(run, video, rank=1, **fields):
    """A clip of `video` ranked `rank` in `run`."""
    values = dict(start_time_seconds=10.0, end_time_seconds=28.0, clip_duration_seconds=18.0)
    return pm.Clip.create(pipeline_run=run, discovered_video=video, rank_position=rank,
                          **{**values, **fields})


@pytest.fixture
def run(database):
    """A pending pipeline run of the gaming niche's first cycle."""
    return make_run()


def _next_rank(run):
    return (pm.Clip.select(peewee.fn.MAX(pm.Clip.rank_position))
            .where(pm.Clip.pipeline_run == run).scalar() or 0) + 1


def minimal_row(model, run, unique="fresh"):
    """The fewest values that make a valid row of `model`; `unique` fills its unique text column.

    A run's row gets a cycle of its own (a niche has one run per cycle); a clip, a video of its own.
    """
    rows = {
        pm.DiscoveredVideo: lambda: dict(video_id=unique, title="t", channel_name="c",
                                         channel_id="UC", url="u", niche="gaming"),
        pm.PipelineRun: lambda: dict(niche=f"niche-{unique}"[:64], cycle_start=CYCLE_START,
                                     cycle_end=CYCLE_START + datetime.timedelta(hours=6)),
        pm.Clip: lambda: dict(pipeline_run=run, discovered_video=make_video(f"clip-{unique}"[:64]),
                              rank_position=_next_rank(run), start_time_seconds=1.0,
                              end_time_seconds=2.0, clip_duration_seconds=1.0),
        pm.Script: lambda: dict(pipeline_run=run, full_script_json={}, total_char_count=0,
                                estimated_duration_seconds=0, llm_model_used="m"),
        pm.TTSAudio: lambda: dict(pipeline_run=run, engine_used="piper"),
        pm.Short: lambda: dict(pipeline_run=run),
        pm.Analytics: lambda: dict(youtube_video_id="v"),
        pm.ReviewLog: lambda: dict(pipeline_run=run),
        pm.ConfigOverride: lambda: dict(key=unique, value=1),
        pm.ErrorLog: lambda: dict(module="m", error_type="E", error_message="x"),
    }
    return rows[model]()


def sqlite_only(database, why):
    """Skip, saying why, when the test is about SQLite's own storage."""
    if not isinstance(database, peewee.SqliteDatabase):
        pytest.skip(f"SQLite only: {why}")


def aware(*args, hours=0):
    """A datetime in a fixed UTC offset of `hours`."""
    return datetime.datetime(*args, tzinfo=datetime.timezone(datetime.timedelta(hours=hours)))


def kill_inside(script, target):
    """Run the Python `script` with `target` as argv[1]; SIGKILL it once it prints "inside" after
    "committed".

    The script prints "committed" when its earlier work is durable and "inside" from the middle of
    the transaction the test wants interrupted (then it waits to be killed).
    """
    proc = subprocess.Popen([sys.executable, "-c", script, target], stdout=subprocess.PIPE,
                            text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line.strip())
            if line.strip() == "inside" or not line:
                break
        assert lines[-2:] == ["committed", "inside"], lines
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def same_json(value, got):
    """Equal and of the same type all the way down: 1e16 and 10**16 are equal, but not the same
    JSON."""
    if type(value) is not type(got):
        return False
    if isinstance(value, list):
        return len(value) == len(got) and all(map(same_json, value, got))
    if isinstance(value, dict):
        return value.keys() == got.keys() and all(same_json(value[k], got[k]) for k in value)
    return value == got
