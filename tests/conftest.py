"""Fixtures: a fresh in-memory database per test, with the schema built by create_tables or by the migrations."""
import datetime

import peewee
import pytest

import pipeline_models as pm


@pytest.fixture(autouse=True)
def unbound():
    """Every test starts and ends with the proxy unbound, so no test sees another's database."""
    pm.db.initialize(None)
    yield
    if pm.db.obj is not None:
        pm.db.obj.close()
    pm.db.initialize(None)


@pytest.fixture(params=["create_tables", "migrations"])
def database(request):
    """An in-memory SQLite bound to the proxy; its schema built both ways, which must agree."""
    if request.param == "create_tables":
        database = peewee.SqliteDatabase(":memory:")
        pm.db.initialize(database)
        pm.db.create_tables(pm.ALL_MODELS)
    else:
        database = pm.init_db(":memory:")
    return database


@pytest.fixture
def run(database):
    """A pending pipeline run of a freshly discovered video."""
    video = pm.DiscoveredVideo.create(youtube_video_id="vid00000001", title="Source video")
    return pm.PipelineRun.create(discovered_video=video)


def aware(*args, hours=0):
    """A datetime in a fixed UTC offset of `hours`."""
    return datetime.datetime(*args, tzinfo=datetime.timezone(datetime.timedelta(hours=hours)))
