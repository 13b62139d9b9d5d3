"""Reliability: concurrent workers, writers killed mid-transaction, hostile input, and broken
databases.

Every loop here is bounded in time and count, and every server is on loopback.
"""
import datetime
import json
import multiprocessing
import random
import sqlite3
import time

import peewee
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline_models as pm
from conftest import CYCLE_START, kill_inside, make_video, minimal_row, same_json

spawn = multiprocessing.get_context("spawn")

# --- concurrency: 8 processes mixing every kind of write ---------------------------------------

PROCESSES = 8
SECONDS = 3.0
CYCLES = 40  # the gaming niche's cycles the workers schedule, at random


def _mixed_worker(target, barrier, n, out):
    pm.init_db(target)
    rng = random.Random(n)
    result = {"created_videos": [], "scheduled": [], "claimed": [], "analytics": 0,
              "errors_logged": 0, "failures": []}
    barrier.wait()
    deadline = time.monotonic() + SECONDS
    step = 0
    while time.monotonic() < deadline and step < 5000:
        step += 1
        try:
            kind = step % 4
            # discovery, then the scheduler firing for a cycle (maybe one already scheduled)
            if kind == 0:
                video, created = pm.DiscoveredVideo.discover(f"v{rng.randrange(60)}", title="t",
                                                             channel_name="c", channel_id="UCc",
                                                             niche="gaming", view_count=step)
                if created:
                    result["created_videos"].append(video.video_id)
                cycle = rng.randrange(CYCLES)
                run = pm.PipelineRun.schedule("gaming",
                                              CYCLE_START + datetime.timedelta(hours=6 * cycle))
                result["scheduled"].append([cycle, run.id])
            elif kind == 1:
                run = pm.PipelineRun.claim_next(f"w{n}")
                if run is not None:
                    result["claimed"].append(run.id)
                    run.advance(pm.RunStatus.review)
            elif kind == 2:
                pm.Analytics.record(f"s{n}", view_count=step)
                result["analytics"] += 1
            else:
                pm.ErrorLog.record(RuntimeError(f"step {step}"), f"worker{n}")
                result["errors_logged"] += 1
        except Exception as exc:  # any error fails the test, "database is locked" above all
            result["failures"].append(f"{type(exc).__name__}: {exc}")
    with open(out, "w") as fh:
        json.dump(result, fh)


def _run_mixed(target, tmp_path):
    barrier = spawn.Barrier(PROCESSES)
    procs = [spawn.Process(target=_mixed_worker, args=(target, barrier, n,
                                                       str(tmp_path / f"r{n}.json")))
             for n in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    return [json.loads((tmp_path / f"r{n}.json").read_text()) for n in range(PROCESSES)]


@pytest.mark.slow
def test_eight_processes_mixing_every_write_lose_and_duplicate_nothing(fresh_target, tmp_path):
    pm.init_db(fresh_target)
    pm.db.obj.close()
    pm.db.initialize(None)

    results = _run_mixed(fresh_target, tmp_path)

    assert [r["failures"] for r in results] == [[]] * PROCESSES
    pm.init_db(fresh_target)
    created = [v for r in results for v in r["created_videos"]]
    assert len(created) == len(set(created)) == pm.DiscoveredVideo.select().count()
    by_cycle = {}
    for cycle, run_id in (pair for r in results for pair in r["scheduled"]):
        by_cycle.setdefault(cycle, set()).add(run_id)
    # every firing got the cycle's one run
    assert all(len(ids) == 1 for ids in by_cycle.values()), by_cycle
    stored = {(r.cycle_start - CYCLE_START) // datetime.timedelta(hours=6): r.id
              for r in pm.PipelineRun.select()}
    # and no run nobody scheduled
    assert stored == {cycle: ids.pop() for cycle, ids in by_cycle.items()}
    claimed = [run_id for r in results for run_id in r["claimed"]]
    assert len(claimed) == len(set(claimed))  # no run claimed twice
    for n, result in enumerate(results):
        for run in pm.PipelineRun.select().where(pm.PipelineRun.id.in_(result["claimed"] or [0])):
            assert (run.worker, run.retry_count, run.status) == (f"w{n}", 0, pm.RunStatus.review)
        assert (pm.Analytics.select().where(pm.Analytics.youtube_video_id == f"s{n}").count()
                == result["analytics"])
        assert (pm.ErrorLog.select().where(pm.ErrorLog.module == f"worker{n}").count()
                == result["errors_logged"])
    unclaimed = pm.PipelineRun.select().where(pm.PipelineRun.id.not_in(claimed or [0]))
    assert all(run.status is pm.RunStatus.pending for run in unclaimed)
    assert sum(r["analytics"] for r in results) > PROCESSES  # every kind of write really happened
    assert claimed


# --- crash safety: SIGKILL in the middle of a transaction ---------------------------------------

CRASH_PRELUDE = """
import datetime, sys, time
import pipeline_models as pm
pm.init_db(sys.argv[1])
"""

BULK_WRITER = CRASH_PRELUDE + """
pm.Analytics.record_many(("committed", None, i) + (None,) * 9 for i in range(100))
print("committed", flush=True)
def rows():
    for i in range(10 ** 8):
        if i == 5000:  # two chunks of 2,000 are already in the open transaction
            print("inside", flush=True)
        yield ("bulk", None, i) + (None,) * 9
pm.Analytics.record_many(rows())
"""

MULTI_STEP_WRITER = CRASH_PRELUDE + """
pm.PipelineRun.schedule("gaming",
                        datetime.datetime(2026, 1, 1, 0, 30, tzinfo=datetime.timezone.utc))
run = pm.PipelineRun.claim_next("doomed")
print("committed", flush=True)
advance = pm.PipelineRun.advance
def advance_then_hang(self, *args, **kwargs):  # ReviewLog.request: the run has moved, no review yet
    advance(self, *args, **kwargs)
    print("inside", flush=True)
    time.sleep(120)
pm.PipelineRun.advance = advance_then_hang
pm.ReviewLog.request(run, message_id="m-crash")
"""


def _assert_intact(target):
    database = pm.init_db(target)
    if isinstance(database, peewee.SqliteDatabase):
        assert database.execute_sql("PRAGMA integrity_check").fetchall() == [("ok",)]
    return database


@pytest.mark.slow
def test_writer_killed_in_a_bulk_insert_leaves_nothing_half_written(fresh_target):
    pm.init_db(fresh_target).close()
    pm.db.initialize(None)
    kill_inside(BULK_WRITER, fresh_target)
    _assert_intact(fresh_target)
    assert pm.Analytics.select().where(pm.Analytics.youtube_video_id == "committed").count() == 100
    assert pm.Analytics.select().where(pm.Analytics.youtube_video_id == "bulk").count() == 0
    pm.Analytics.record("after", view_count=1)  # and the database takes writes again


@pytest.mark.slow
def test_writer_killed_in_a_multi_step_operation_leaves_nothing_half_written(fresh_target):
    pm.init_db(fresh_target).close()
    pm.db.initialize(None)
    kill_inside(MULTI_STEP_WRITER, fresh_target)
    _assert_intact(fresh_target)
    run = pm.PipelineRun.get()
    assert (run.status, run.worker) == (pm.RunStatus.running, "doomed")  # the advance rolled back
    assert pm.ReviewLog.select().count() == 0


# --- hostile input, property-based ---------------------------------------------------------------

INJECTIONS = ["'; DROP TABLE pipeline_runs; --", "\" OR 1=1 --", "x'); DELETE FROM analytics; --",
              "Robert'); DROP TABLE students;--", "%s %s", "$1", "?", "\\", "'' OR ''='"]
OFFSETS = st.builds(datetime.timezone, st.timedeltas(min_value=-datetime.timedelta(hours=23,
                                                                                   minutes=59),
                                                     max_value=datetime.timedelta(hours=23,
                                                                                  minutes=59)))
ENUM_VALUES = [m.value for e in (pm.Processed, pm.ContentIdRisk, pm.ExtractionMethod, pm.RunStatus,
                                 pm.ShortStatus,
                                  pm.ReviewAction) for m in e]
# The names of 0.1.0's values, which no CHECK accepts any more: refused, not stored.
OLD_VALUES = ["new", "selected", "awaiting_review", "published", "rendered", "edit"]
# Text no database can store: lone surrogates (st.text leaves them out) and NUL, among ordinary
# characters.
HOSTILE_TEXT = st.text(
    st.one_of(st.characters(), st.characters(categories=["Cs"]), st.just("\x00")), max_size=40)
JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70),
                                                              max_value=2 ** 70),
                        st.floats(), st.text(max_size=5), HOSTILE_TEXT)


class Deep:
    """`leaf` inside `depth` lists (or dicts {"k": ...}), built by the test: hypothesis would
    recurse printing it."""

    def __init__(self, depth, kind, leaf):
        self.depth, self.kind, self.leaf = depth, kind, leaf

    def __repr__(self):
        return f"Deep({self.depth}, {self.kind.__name__}, {self.leaf!r})"

    def build(self):
        """The nested value."""
        value = self.leaf
        for _ in range(self.depth):
            value = [value] if self.kind is list else {"k": value}
        return value


LIMIT = pm.fields.JSON_MAX_DEPTH
JSON = st.recursive(JSON_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(HOSTILE_TEXT, inner,
                                                                          max_size=3)),
                    max_leaves=8)
DEEP_JSON = st.builds(Deep, st.one_of(st.integers(LIMIT - 2, LIMIT + 2), st.integers(1, 3000)),
                      st.sampled_from([list, dict]), JSON_LEAVES)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.integers(min_value=-5, max_value=5),
    st.floats(),
    st.floats(min_value=0, max_value=1),
    st.text(max_size=300),
    HOSTILE_TEXT,
    st.sampled_from(INJECTIONS + ENUM_VALUES + OLD_VALUES + ["bogus", "", "x" * 1000]),
    st.binary(max_size=10),
    st.datetimes(),  # naive
    st.datetimes(timezones=OFFSETS),
    st.dates(),
    st.lists(st.integers(min_value=-1000, max_value=1000), max_size=3),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(-1000, 1000), st.text(max_size=5)),
                    max_size=3),
    JSON,
    DEEP_JSON,
)
CLEAR_ERRORS = (ValueError, peewee.IntegrityError, pm.PipelineModelsError)


FIELDS = [(model, field.name) for model in pm.ALL_MODELS for field in model._meta.sorted_fields
          if not field.primary_key and not isinstance(field, peewee.ForeignKeyField)]
JSON_FIELDS = [(model, name) for model, name in FIELDS
               if isinstance(model._meta.fields[name], (peewee.JSONField, pm.fields.JSONTextField))]
_counter = iter(range(10 ** 9))


@st.composite
def targets_and_values(draw):
    """A column (the two JSON ones more often: they take the most shapes) and a value for it; half
    the values for text and JSON columns are the hostile kind."""
    model, name = target = draw(st.sampled_from(FIELDS + JSON_FIELDS * 8))
    field = model._meta.fields[name]
    if target in JSON_FIELDS:
        hostile = st.one_of(JSON, DEEP_JSON)
    elif isinstance(field, (pm.fields.CheckedCharField, pm.fields.CheckedTextField)):
        hostile = HOSTILE_TEXT
    else:
        return target, draw(VALUES)
    return target, draw(st.booleans().flatmap(lambda pick: hostile if pick else VALUES))


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target_value=targets_and_values(), via=st.sampled_from(["create", "update", "insert_rows"]))
def test_any_value_round_trips_exactly_or_is_refused_clearly(run, target_value, via):
    """On every backend (the `run` fixture runs it on each): stored and read back unchanged, or
    refused with a clear error that leaves the table as it was."""
    (model, name), value = target_value
    if isinstance(value, Deep):
        value = value.build()
    pk = model._meta.primary_key
    row = minimal_row(model, run, f"u{next(_counter)}")
    if via == "update":
        key = model.create(**row).get_id()

    def state():
        """What a refused write must leave as it was: the row to update, or the table's row
        count."""
        return (model.select().where(pk == key).tuples().get() if via == "update"
                else model.select().count())

    before = state()
    try:
        with pm.db.atomic():
            if via == "create":
                key = model.create(**{**row, name: value}).get_id()
            elif via == "update":
                model.update(**{name: value}).where(pk == key).execute()
            else:
                model.insert_rows([{**row, name: value}])
                key = (row["key"] if model is pm.ConfigOverride
                       else model.select(peewee.fn.MAX(pk)).scalar())
    except CLEAR_ERRORS as exc:
        # a driver's UnicodeEncodeError is a ValueError too, but not a clear one
        if isinstance(exc, ValueError):
            assert (f"{model.__name__}.{name}: " in str(exc)
                    and not isinstance(exc, UnicodeError)), repr(exc)
        assert state() == before
        return
    got = getattr(model.get_by_id(key), name)
    if name == "updated_at" and model is pm.PipelineRun and via == "create":
        return  # stamped by save(), whatever was given
    assert same(value, got), (model.__name__, name, via, value, got)


def same(value, got):
    """The value read back is the value written: equal, and of its type (an enum member for its
    string)."""
    if isinstance(value, (list, dict)):
        return same_json(value, got)
    if value is None or isinstance(value, bool) or isinstance(got, bool):
        return got is value or (type(got) is type(value) and got == value)
    # an int into a float column: the same number
    if isinstance(value, int) and isinstance(got, float):
        return got == value
    return got == value and isinstance(got, type(value))


@pytest.mark.parametrize("text", INJECTIONS)
def test_sql_injection_in_every_text_field_is_stored_verbatim(run, text):
    for model, name in FIELDS:
        field = model._meta.fields[name]
        if (not isinstance(field, (peewee.CharField, peewee.TextField))
                or isinstance(field, pm.fields.CheckedEnumField)):
            continue
        created = model.create(**{**minimal_row(model, run, f"u{next(_counter)}"), name: text})
        assert getattr(model.get_by_id(created.get_id()), name) == text
        assert model.select().where(getattr(model, name) == text).count() >= 1
    assert {m._meta.table_name for m in pm.ALL_MODELS} <= set(pm.db.get_tables())


# --- broken databases ----------------------------------------------------------------------------


def test_a_closed_database_says_so(tmp_path):
    database = peewee.SqliteDatabase(str(tmp_path / "c.db"), autoconnect=False)
    pm.init_db(database)
    database.close()
    with pytest.raises(peewee.InterfaceError, match="not opened"):
        pm.PipelineRun.select().count()


def test_a_read_only_database_refuses_writes_and_says_why(tmp_path):
    path = tmp_path / "ro.db"
    pm.init_db(path)
    make_video("kept")
    pm.db.obj.close()
    read_only = peewee.SqliteDatabase(f"file:{path}?mode=ro", uri=True)
    pm.init_db(read_only)  # up to date: binding reads only
    assert pm.DiscoveredVideo.get().video_id == "kept"
    with pytest.raises(peewee.OperationalError, match="readonly database"):
        make_video("new")
    assert pm.DiscoveredVideo.select().count() == 1


def test_a_read_only_database_that_needs_migrating_is_refused_naming_it(tmp_path):
    path = tmp_path / "old.db"
    sqlite3.connect(path).execute("CREATE TABLE unrelated (x)").connection.close()
    read_only = peewee.SqliteDatabase(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(pm.CannotOpenDatabase, match=r"old\.db\?mode=ro'.*readonly database"):
        pm.init_db(read_only)


def test_a_full_disk_fails_the_transaction_and_keeps_what_was_committed(tmp_path):
    database = pm.init_db(tmp_path / "full.db")
    pm.Analytics.record("before", view_count=1)
    pages = database.execute_sql("PRAGMA page_count").fetchone()[0]
    # the disk is full two pages from now
    database.execute_sql(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(peewee.OperationalError, match="full"):
        with pm.db.atomic():
            for i in range(5000):
                pm.Analytics.record("too-much", view_count=i, like_count=i, comment_count=i)
    assert pm.Analytics.select().where(pm.Analytics.youtube_video_id == "too-much").count() == 0
    assert pm.Analytics.select().count() == 1
    assert database.execute_sql("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_a_missing_directory_is_refused_naming_it(tmp_path):
    target = tmp_path / "gone" / "p.db"
    with pytest.raises(pm.CannotOpenDatabase, match=r"gone.*does not exist"):
        pm.init_db(target)
    assert not (tmp_path / "gone").exists()


def test_an_unbound_proxy_names_the_cure():
    with pytest.raises(pm.DatabaseNotBound, match="init_db"):
        pm.ErrorLog.unresolved().count()
