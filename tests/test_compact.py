"""Analytics.compact: retention that thins old snapshots to one per video per UTC day.

What it must keep is checked against a brute-force model (the first snapshot of each video's UTC day
before the cut-off, the video's newest, everything after the cut-off); that growth() from any UTC
midnight, latest() and top() answer exactly as before is a hypothesis property; a compaction killed
with SIGKILL resumes to the same result; claimers keep claiming, losing nothing, while it runs; and
`pipeline-models compact` runs it.
"""
import datetime
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from datetime import timedelta

import peewee
import pytest
from conftest import CYCLE_START, aware, kill_inside
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_query_plans import captured_sql, full_scans

import pipeline_models as pm

UTC = datetime.timezone.utc
T0 = aware(2026, 3, 1)  # a UTC midnight
spawn = multiprocessing.get_context("spawn")


def rows_now():
    """Every snapshot as (id, youtube_video_id, measured_at)."""
    A = pm.Analytics
    return list(A.select(A.id, A.youtube_video_id, A.measured_at).order_by(A.id).tuples())


def expected_ids(rows, cutoff):
    """The brute-force model: the ids compaction at `cutoff` keeps of `rows` (id, video,
    measured_at)."""
    by_video = defaultdict(list)
    for row in rows:
        by_video[row[1]].append(row)
    keep = set()
    for snapshots in by_video.values():
        ordered = sorted(snapshots, key=lambda r: (r[2], r[0]))  # growth()'s order: time, then id
        keep.add(ordered[-1][0])  # the newest: growth()'s "until", latest()'s row
        first_of_day = {}
        for id_, _, measured_at in ordered:
            if measured_at >= cutoff:
                keep.add(id_)
            else:
                first_of_day.setdefault(measured_at.astimezone(UTC).date(), id_)
        keep.update(first_of_day.values())
    return keep


def midnights(start, days):
    """UTC midnights from `start` (a UTC midnight), `days` of them."""
    return [start + timedelta(days=n) for n in range(days)]


def answers(videos, sinces):
    """Every answer compaction must not change: growth() per video and midnight, latest(),
    top(2)."""
    growth = {(v, s): pm.Analytics.growth(v, s) for v in videos for s in sinces}
    latest = [a.__data__ for a in pm.Analytics.latest()]
    top = [a.__data__ for a in pm.Analytics.top(2)]
    return growth, latest, top


@contextmanager
def batches_counted():
    """A list that gets the rows each batch of a compaction deletes, while the block runs."""
    original = pm.Analytics.__dict__["_compact_batch"]
    batch = pm.Analytics._compact_batch
    deleted = []

    def counting(cls, *args):
        result = batch(*args)
        deleted.append(result[0])
        return result
    pm.Analytics._compact_batch = classmethod(counting)
    try:
        yield deleted
    finally:
        pm.Analytics._compact_batch = original


def hourly(videos, days, start=T0):
    """Hourly snapshots of `videos` over `days` days, views rising, a NULL like_count now and
    then."""
    for hour in range(days * 24):
        for n, video in enumerate(videos):
            yield dict(youtube_video_id=video, measured_at=start + timedelta(hours=hour, seconds=n),
                       view_count=hour * 10 + n, like_count=None if hour % 7 == 0 else hour)


# --- what is kept --------------------------------------------------------------------------------

def test_compact_keeps_the_first_snapshot_of_each_utc_day_and_the_newest(database):
    A = pm.Analytics
    midnight = T0 + timedelta(days=1)
    A.record_many([
        # "a": two snapshots at the same instant at a midnight (the lower id is the day's first),
        # NULL metrics.
        dict(youtube_video_id="a", measured_at=midnight - timedelta(microseconds=1), view_count=1),
        dict(youtube_video_id="a", measured_at=midnight, view_count=None),
        dict(youtube_video_id="a", measured_at=midnight, view_count=5),
        dict(youtube_video_id="a", measured_at=midnight + timedelta(hours=3), view_count=7),
        dict(youtube_video_id="a", measured_at=T0 + timedelta(days=3, hours=1), view_count=9),
        dict(youtube_video_id="a", measured_at=T0 + timedelta(days=3, hours=20), view_count=12),
        # "b" stopped being measured: its newest snapshot is old, and not the first of its day.
        dict(youtube_video_id="b", measured_at=T0 + timedelta(hours=1), view_count=1),
        dict(youtube_video_id="b", measured_at=T0 + timedelta(hours=2), view_count=2),
        dict(youtube_video_id="b", measured_at=T0 + timedelta(hours=5), view_count=3),
        # "c" is all newer than the cut-off.
        dict(youtube_video_id="c", measured_at=T0 + timedelta(days=3, hours=2), view_count=1),
        dict(youtube_video_id="c", measured_at=T0 + timedelta(days=3, hours=3), view_count=2),
    ])
    before = rows_now()
    # now - older_than is day 3, 06:00, rounded down to day 3's midnight: day 3 stays whole.
    done = A.compact(timedelta(days=2), now=T0 + timedelta(days=5, hours=6, minutes=30))
    assert done == {"cutoff": T0 + timedelta(days=3), "deleted": 3, "batches": 1}
    assert {r[0] for r in rows_now()} == expected_ids(before, done["cutoff"])
    kept = {(r.youtube_video_id, r.view_count) for r in A.select()}
    assert kept == {("a", 1), ("a", None), ("a", 9), ("a", 12), ("b", 1), ("b", 3), ("c", 1), ("c",
                                                                                               2)}
    assert A.compact(timedelta(days=2), now=T0 + timedelta(days=5, hours=6))["deleted"] == 0


def test_compact_of_nothing_and_of_nothing_old_enough(database):
    assert pm.Analytics.compact(now=T0) == {"cutoff": T0 - timedelta(days=30), "deleted": 0,
                                            "batches": 0}
    pm.Analytics.record_many(hourly(["a", "b"], 2))
    done = pm.Analytics.compact(timedelta(days=3), now=T0 + timedelta(days=2), batch_size=50)
    assert (done["deleted"], done["batches"]) == (0, 2)
    assert pm.Analytics.select().count() == 2 * 48


@pytest.mark.parametrize("batch_size", [1, 5, 24, 25, 100, 2000])
def test_batch_size_bounds_each_transaction_and_changes_nothing_else(database, batch_size):
    pm.Analytics.record_many(hourly(["a", "b"], 10))
    before = rows_now()
    with batches_counted() as deleted:
        done = pm.Analytics.compact(timedelta(days=3), now=T0 + timedelta(days=10),
                                    batch_size=batch_size)
    assert {r[0] for r in rows_now()} == expected_ids(before, T0 + timedelta(days=7))
    assert done["deleted"] == sum(deleted) == 2 * 7 * 23 and done["batches"] == len(deleted)
    assert max(deleted) <= batch_size


# --- the property: growth() from any UTC midnight, latest() and top() answer as before ---------

# Times over four days around T0, many of them exactly at a midnight or a microsecond either side of
# one, and from a small pool so equal timestamps (of one video and of several) are common.
OFFSETS = st.one_of(st.integers(-1, 4).map(lambda d: timedelta(days=d)),
                    st.tuples(st.integers(-1, 4), st.sampled_from([-1, 1])).map(
                        lambda t: timedelta(days=t[0], microseconds=t[1])),
                    st.integers(0, 4 * 24).map(lambda h: timedelta(hours=h)),
                    st.integers(0, 4 * 24 * 60).map(lambda m: timedelta(minutes=m)))
METRIC = st.one_of(st.none(), st.integers(0, 10 ** 6))
SNAPSHOTS = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), OFFSETS, METRIC, METRIC),
                     max_size=40)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(snapshots=SNAPSHOTS, now=st.integers(-24, 7 * 24).map(lambda h: T0 + timedelta(hours=h,
                                                                                      minutes=17)),
       zone=st.integers(-12, 12),
       older_than=st.integers(1, 4 * 24).map(lambda h: timedelta(hours=h)),
       batch_size=st.sampled_from([1, 2, 3, 7, 2000]))
def test_growth_latest_and_top_answer_the_same_after_a_compaction(database, snapshots, now, zone,
                                                                  older_than,
                                                                    batch_size):
    pm.Analytics.delete().execute()
    pm.Analytics.record_many(dict(youtube_video_id=video, measured_at=T0 + offset, view_count=views,
                                  like_count=likes) for video, offset, views, likes in snapshots)
    before_rows = rows_now()
    # Every UTC midnight the data spans and a day either side, and one long before all of it.
    sinces = [T0 - timedelta(days=30)] + midnights(T0 - timedelta(days=2), 8)
    before = answers(["a", "b", "c"], sinces)

    # the cut-off is a UTC midnight whatever the zone
    now = now.astimezone(datetime.timezone(timedelta(hours=zone)))
    done = pm.Analytics.compact(older_than, now=now, batch_size=batch_size)

    cutoff = done["cutoff"]
    assert cutoff.tzinfo == UTC and cutoff.time() == datetime.time(0)
    assert cutoff <= now - older_than < cutoff + timedelta(days=1)
    assert {r[0] for r in rows_now()} == expected_ids(before_rows, done["cutoff"])
    assert done["deleted"] == len(before_rows) - len(rows_now())
    assert answers(["a", "b", "c"], sinces) == before
    again = pm.Analytics.compact(older_than, now=now, batch_size=batch_size)
    assert again["deleted"] == 0


# --- policy and refusals -----------------------------------------------------------------------

def test_the_default_cut_off_comes_from_the_config_override(database):
    pm.Analytics.record_many(hourly(["a"], 10))
    now = T0 + timedelta(days=10, hours=5)
    pm.ConfigOverride.set(pm.Analytics.COMPACT_AFTER_KEY, 4)
    assert pm.Analytics.compact(now=now)["cutoff"] == T0 + timedelta(days=6)
    pm.ConfigOverride.set(pm.Analytics.COMPACT_AFTER_KEY, 9)
    # the argument wins
    assert pm.Analytics.compact(timedelta(days=2), now=now)["cutoff"] == T0 + timedelta(days=8)
    assert pm.Analytics.select().count() == 8 + 2 * 24


@pytest.mark.parametrize("value", [0, -1, 36501, 1.5, True, "30", None, [30]])
def test_a_bad_policy_is_refused_naming_the_key_and_nothing_is_deleted(database, value):
    pm.Analytics.record_many(hourly(["a"], 3))
    if value is None:  # a JSON null is no policy: the default
        pm.ConfigOverride.set(pm.Analytics.COMPACT_AFTER_KEY, value)
        assert pm.Analytics.compact(now=T0 + timedelta(days=3))["cutoff"] == T0 - timedelta(days=27)
        return
    with pytest.raises(ValueError, match="ConfigOverride 'analytics.compact_after_days' "
                                         "must be a whole number"):
        pm.ConfigOverride.set(pm.Analytics.COMPACT_AFTER_KEY, value)  # refused at once
    # other code wrote it
    pm.ConfigOverride.insert(key=pm.Analytics.COMPACT_AFTER_KEY, value=value).execute()
    with pytest.raises(ValueError, match="analytics.compact_after_days"):
        pm.Analytics.compact(now=T0 + timedelta(days=40))
    assert pm.Analytics.select().count() == 72


@pytest.mark.parametrize("kwargs, error", [
    (dict(older_than=30), TypeError), (dict(older_than=timedelta(0)), ValueError),
    (dict(older_than=timedelta(days=-1)), ValueError), (dict(older_than=timedelta(days=36501)),
                                                        ValueError),
    (dict(now=datetime.datetime(2026, 3, 1)), ValueError), (dict(now="2026-03-01"), ValueError),
    (dict(batch_size=0), ValueError), (dict(batch_size=2.5), ValueError), (dict(batch_size=True),
                                                                           ValueError),
    (dict(now=datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)), ValueError),
])
def test_bad_arguments_are_refused_and_nothing_is_deleted(database, kwargs, error):
    pm.Analytics.record_many(hourly(["a"], 40))
    with pytest.raises(error):
        pm.Analytics.compact(**kwargs)
    assert pm.Analytics.select().count() == 40 * 24


# --- every statement seeks in idx_analytics_video ----------------------------------------------

def test_every_statement_of_a_compaction_reaches_its_rows_through_an_index(database):
    pm.Analytics.record_many(hourly(["a", "b", "c"], 6))
    # No ANALYZE: planned as for a large table.
    with captured_sql() as statements:
        pm.Analytics.compact(timedelta(days=2), now=T0 + timedelta(days=6), batch_size=100)
    assert any(sql.lstrip().startswith("DELETE") for sql, _ in statements)
    # SQLite's "SCAN batch", "SCAN g", "SCAN v", "SCAN keep" read the batch's own rows (at most
    # batch_size) and what it keeps, not a table; the batch itself is a range of ids.
    assert [line for line in full_scans(database, statements)
            if line not in ("SCAN batch", "SCAN g", "SCAN v", "SCAN keep")] == []


# --- crash safety: SIGKILL in the middle of a batch, then a second run ---------------------------

NOW = T0 + timedelta(days=20, hours=9)
KILLED_COMPACTION = """
import datetime, sys, time
import pipeline_models as pm
pm.init_db(sys.argv[1])
batch = pm.Analytics._compact_batch
calls = []
def batch_then_hang(cls, *args):
    calls.append(1)
    if len(calls) < 3:
        return batch(*args)
    print("committed", flush=True)  # two batches committed
    deleted, _ = batch(*args)  # the third one's DELETE ran: the process dies with it uncommitted
    assert deleted > 0
    print("inside", flush=True)
    time.sleep(120)
pm.Analytics._compact_batch = classmethod(batch_then_hang)
pm.Analytics.compact(datetime.timedelta(days=5), now=datetime.datetime.fromisoformat(%r), \
batch_size=100)
""" % NOW.isoformat()


def crash_data():
    """Hourly snapshots of four videos over 20 days, and a duplicate at a midnight."""
    yield from hourly(["k1", "k2", "k3", "k4"], 20)
    yield dict(youtube_video_id="k1", measured_at=T0 + timedelta(days=2), view_count=10 ** 6)


def contents():
    """The snapshots as comparable values (ids differ between databases)."""
    A = pm.Analytics
    return sorted(A.select(A.youtube_video_id, A.measured_at, A.view_count, A.like_count).tuples(),
                  key=repr)


def uninterrupted():
    """An uninterrupted compaction's result on the same data, and what each of its batches
    deleted."""
    pm.init_db(":memory:")
    pm.Analytics.record_many(crash_data())
    with batches_counted() as deleted:
        pm.Analytics.compact(timedelta(days=5), now=NOW, batch_size=100)
    result = contents()
    pm.db.obj.close()
    return result, deleted


@pytest.mark.slow
def test_a_compaction_killed_mid_batch_resumes_to_the_uninterrupted_result(fresh_target):
    reference, deleted_per_batch = uninterrupted()
    pm.init_db(fresh_target)
    pm.Analytics.record_many(crash_data())
    total = pm.Analytics.select().count()
    sinces = midnights(T0 - timedelta(days=1), 23)
    before = answers(["k1", "k2", "k3", "k4"], sinces)
    pm.db.obj.close()
    pm.db.initialize(None)

    kill_inside(KILLED_COMPACTION, fresh_target)

    database = pm.init_db(fresh_target)
    if isinstance(database, peewee.SqliteDatabase):
        assert database.execute_sql("PRAGMA integrity_check").fetchall() == [("ok",)]
    # The two committed batches stay done; nothing of the third is.
    assert pm.Analytics.select().count() == total - sum(deleted_per_batch[:2])
    # exact at every step, not only at the end
    assert answers(["k1", "k2", "k3", "k4"], sinces) == before
    done = pm.Analytics.compact(timedelta(days=5), now=NOW, batch_size=100)
    assert done["deleted"] == sum(deleted_per_batch[2:])
    assert contents() == reference
    assert answers(["k1", "k2", "k3", "k4"], sinces) == before
    assert pm.Analytics.compact(timedelta(days=5), now=NOW)["deleted"] == 0


# --- concurrency: a claimer process claims throughout a compaction ------------------------------

def _claimer(target, ready, compacting, done, out):
    pm.init_db(target)
    claimed, during, failures = [], 0, []
    ready.set()
    while len(failures) < 10:
        running = compacting.is_set() and not done.is_set()
        try:
            run = pm.PipelineRun.claim_next("claimer")
        except Exception as exc:  # any error fails the test, "database is locked" above all
            failures.append(f"{type(exc).__name__}: {exc}")
            continue
        if run is None:
            if done.is_set():
                break
            time.sleep(0.01)
            continue
        claimed.append(run.id)
        during += running
        time.sleep(0.002)  # a worker's pace, far above a video pipeline's
    with open(out, "w") as fh:
        json.dump({"claimed": claimed, "during": during, "failures": failures}, fh)


@pytest.mark.slow
def test_claimers_keep_claiming_during_a_compaction_and_lose_nothing(fresh_target, tmp_path):
    pm.init_db(fresh_target)
    cycles = [CYCLE_START + n * timedelta(hours=6) for n in range(800)]  # 800 cycles of one niche
    pm.PipelineRun.insert_rows((("gaming", start, start + timedelta(hours=6)) for start in cycles),
                               fields=("niche", "cycle_start", "cycle_end"))
    pm.Analytics.record_many(hourly([f"s{n}" for n in range(20)], 40))
    # the claimer claims them all, finishing none
    pm.ConfigOverride.set("scheduler.max_concurrent_pipelines", 1000)
    before = rows_now()
    ready, compacting, done = spawn.Event(), spawn.Event(), spawn.Event()
    out = str(tmp_path / "claimer.json")
    claimer = spawn.Process(target=_claimer, args=(fresh_target, ready, compacting, done, out))
    claimer.start()
    try:
        assert ready.wait(60)
        compacting.set()
        result = pm.Analytics.compact(timedelta(days=10), now=T0 + timedelta(days=40),
                                      batch_size=200)
        done.set()
        claimer.join(120)
        assert claimer.exitcode == 0
    finally:
        done.set()
        if claimer.is_alive():
            claimer.kill()
    claims = json.load(open(out))
    assert claims["failures"] == []
    # each run claimed once, none lost
    assert sorted(claims["claimed"]) == list(range(1, len(cycles) + 1))
    assert claims["claimed"] == sorted(claims["claimed"])  # the earliest cycle first
    assert claims["during"] > 0 and result["batches"] > 20  # they really overlapped
    runs = pm.PipelineRun.select()
    assert {(r.status, r.worker, r.retry_count) for r in runs} == {(pm.RunStatus.running, "claimer",
                                                                    0)}
    assert {r[0] for r in rows_now()} == expected_ids(before, T0 + timedelta(days=30))


# --- the command line --------------------------------------------------------------------------

def pipeline(*argv):
    """`python -m pipeline_models ARGV` in a fresh process: (exit status, stdout, stderr)."""
    environment = {k: v for k, v in os.environ.items() if k != "PIPELINE_DB"}
    done = subprocess.run([sys.executable, "-m", "pipeline_models", *map(str, argv)],
                          capture_output=True, text=True, encoding="utf-8", env=environment,
                          timeout=120)
    return done.returncode, done.stdout, done.stderr


LINE = re.compile(r"^removed ([\d,]+) snapshots? older than (\d{4}-\d\d-\d\d) 00:00 UTC \(kept "
                  r"each video's first "
                  r"of every UTC day and its newest\) in ([\d,]+) transactions?; ([\d,]+) "
                  r"snapshots remain; (.*)$")


def recent_data(target, days=40):
    """A pipeline database at `target` holding `days` days of hourly snapshots up to now, of three
    videos."""
    pm.init_db(target)
    start = pm.Analytics._midnight(pm.utcnow()) - timedelta(days=days - 1)
    pm.Analytics.record_many(hourly(["a", "b", "c"], days, start=start))
    rows = rows_now()
    pm.db.obj.close()
    pm.db.initialize(None)
    return rows


def check_compacted(target, out, before):
    """The command's one line agrees with the database, which holds what the model keeps; returns
    the line."""
    match = LINE.match(" ".join(out.split()))
    assert match and max(map(len, out.splitlines())) <= 100, out
    cutoff = datetime.datetime.fromisoformat(match.group(2)).replace(tzinfo=UTC)
    database = pm.init_db(target)
    kept = {r[0] for r in rows_now()}
    assert kept == expected_ids(before, cutoff)
    assert int(match.group(1).replace(",", "")) == len(before) - len(kept)
    assert int(match.group(4).replace(",", "")) == len(kept) and int(
        match.group(3).replace(",", "")) >= 1
    database.close()
    pm.db.initialize(None)
    return match


@pytest.mark.slow
def test_cli_compact_thins_and_says_how_to_shrink(fresh_target):
    before = recent_data(fresh_target)
    status, out, err = pipeline("compact", "--db", fresh_target, "--older-than", "10")
    assert (status, err) == (0, "")
    match = check_compacted(fresh_target, out, before)
    cutoff = datetime.datetime.fromisoformat(match.group(2)).replace(tzinfo=UTC)
    assert timedelta(days=10) <= pm.utcnow() - cutoff < timedelta(days=11)
    assert "VACUUM" in match.group(5)  # the hint: how to give the space back
    status, out, err = pipeline("compact", "--db", fresh_target, "--older-than", "10")
    assert status == 0 and out.startswith("removed 0 snapshots")


@pytest.mark.slow
def test_cli_compact_uses_the_policy_and_vacuums(fresh_target):
    before = recent_data(fresh_target)
    assert pipeline("config", "set", "analytics.compact_after_days", "5", "--db",
                    fresh_target)[0] == 0
    size = os.path.getsize(fresh_target) if "://" not in fresh_target else None
    status, out, err = pipeline("compact", "--vacuum", "--db", fresh_target)
    assert (status, err) == (0, "")
    match = check_compacted(fresh_target, out, before)
    cutoff = datetime.datetime.fromisoformat(match.group(2)).replace(tzinfo=UTC)
    assert timedelta(days=5) <= pm.utcnow() - cutoff < timedelta(days=6)
    assert re.match(r"(VACUUM|VACUUM ANALYZE analytics): [\d.,]+ MB -> [\d.,]+ MB$",
                    match.group(5)), out
    if size is not None:
        assert os.path.getsize(fresh_target) < size
        database = pm.init_db(fresh_target)
        assert database.execute_sql("PRAGMA integrity_check").fetchall() == [("ok",)]


@pytest.mark.slow
@pytest.mark.parametrize("value", ["0", "-3", "1.5", "x", "36501", ""])
def test_cli_compact_refuses_a_bad_older_than_as_a_usage_error(tmp_path, value):
    path = str(tmp_path / "p.db")
    before = recent_data(path, days=3)
    status, out, err = pipeline("compact", "--db", path, "--older-than", value)
    assert (status, out) == (2, "") and err.startswith("pipeline-models: error: argument "
                                                       "--older-than")
    assert len(err.strip().splitlines()) == 1
    pm.init_db(path)
    assert rows_now() == before


@pytest.mark.slow
def test_cli_compact_refuses_a_bad_policy_and_a_missing_database(tmp_path):
    path = str(tmp_path / "p.db")
    before = recent_data(path, days=3)
    status, out, err = pipeline("config", "set", "analytics.compact_after_days", "soon", "--string",
                                "--db", path)
    assert status == 1 and "'analytics.compact_after_days' must be a whole number of days" in err
    pm.init_db(path)
    # other code wrote it
    pm.ConfigOverride.insert(key="analytics.compact_after_days", value="soon").execute()
    pm.db.obj.close()
    status, out, err = pipeline("compact", "--db", path)
    assert ((status, out) == (1, "") and "analytics.compact_after_days" in err
            and len(err.splitlines()) == 1)
    pm.init_db(path)
    assert rows_now() == before
    status, out, err = pipeline("compact", "--db", tmp_path / "missing.db")
    assert status == 1 and not (tmp_path / "missing.db").exists()
