"""Analytics.latest(), top(n) and growth(), and analytics_latest, the table of each video's newest
snapshot that triggers on analytics keep, against a brute-force computation over every snapshot, on
every backend.

Random histories (hypothesis) of a few videos: equal times, snapshots arriving late, NULL views,
equal views, single records and bulk ones (in one chunk and in several), deletes (of the newest
snapshot too), updates that move a snapshot in time or to another video, and raw SQL that bypasses
the models. Query plans and cost: tests/test_query_plans.py.
"""
import datetime
from datetime import timedelta

import peewee
import pytest
from conftest import aware
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline_models as pm

A = pm.Analytics
T0 = aware(2026, 4, 1)
VIDEOS = ["a", "b", "c", "d7", "e"]  # lowercase and digits: the same order in every collation


def every_snapshot():
    """Every row of analytics as a dict of field values, as the model reads them."""
    return list(A.select().order_by(A.id).dicts())


def newest_by_video(snapshots):
    """The brute-force answer: each video's snapshot of greatest (measured_at, id)."""
    newest = {}
    for row in snapshots:
        held = newest.get(row["youtube_video_id"])
        if held is None or (row["measured_at"], row["id"]) > (held["measured_at"], held["id"]):
            newest[row["youtube_video_id"]] = row
    return newest


def expected_latest(snapshots):
    """latest()'s answer: the newest snapshots, most viewed first, NULL views last, then by video
    id."""
    return sorted(newest_by_video(snapshots).values(),
                  key=lambda r: (r["view_count"] is None, -(r["view_count"] or 0),
                                 r["youtube_video_id"]))


def expected_growth(snapshots, video, since):
    after = sorted(
        (r for r in snapshots if r["youtube_video_id"] == video and r["measured_at"] >= since),
        key=lambda r: (r["measured_at"], r["id"]))
    if not after:
        return None
    first, last = after[0], after[-1]
    change = {"since": first["measured_at"], "until": last["measured_at"]}
    for name in A.COUNTERS:
        change[name] = (None if first[name] is None or last[name] is None
                        else last[name] - first[name])
    return change


def as_dicts(models):
    return [dict(m.__data__) for m in models]


def check_every_answer(snapshots=None):
    """latest() in each row kind, top(n) for several n, growth() from several times, and the stored
    table."""
    snapshots = every_snapshot() if snapshots is None else snapshots
    expected = expected_latest(snapshots)
    names = A._meta.sorted_field_names
    assert as_dicts(A.latest()) == expected
    assert A.latest(rows="dicts") == expected
    assert A.latest(rows="tuples") == [tuple(r[n] for n in names) for r in expected]
    assert [r._asdict() for r in A.latest(rows="namedtuples")] == expected
    for n in (0, 1, 2, 3, len(expected), len(expected) + 3):
        assert as_dicts(A.top(n)) == expected[:n], n
        assert A.top(n, rows="dicts") == expected[:n], n
    for video in VIDEOS:
        for since in (T0 - timedelta(days=1), T0, T0 + timedelta(minutes=30),
                      T0 + timedelta(hours=2)):
            assert A.growth(video, since) == expected_growth(snapshots, video, since), (video,
                                                                                        since)
    for row in A.latest():
        assert row.measured_at.tzinfo is datetime.timezone.utc and row._dirty == set()


# A small pool of times and view counts, so that equal times and equal views are common; times in
# any order.
TIMES = st.integers(0, 8).map(lambda m: T0 + timedelta(minutes=15 * m))
VIEWS = st.one_of(st.none(), st.integers(0, 4), st.integers(0, 2 ** 62))
SNAPSHOT = st.tuples(st.sampled_from(VIDEOS), TIMES, VIEWS,
                     st.one_of(st.none(), st.integers(0, 10 ** 6)),
                     st.one_of(st.none(), st.floats(0, 1e6)))
STEP = st.one_of(
    st.tuples(st.just("record"), SNAPSHOT),
    # chunk_size 1 or 2 makes a batch of several chunks, for which SQLite sets the insert trigger
    # aside.
    st.tuples(st.just("record_many"), st.lists(SNAPSHOT, max_size=6),
              st.sampled_from([1, 2, 2000])),
    st.tuples(st.just("delete"), st.integers(0, 1000)),  # the n-th row still there (modulo), or...
    st.tuples(st.just("delete_newest"), st.sampled_from(VIDEOS)),
    st.tuples(st.just("update"), st.integers(0, 1000), TIMES, VIEWS, st.sampled_from(VIDEOS)),
    st.tuples(st.just("raw_insert"), SNAPSHOT),
)


def snapshot_row(snapshot):
    video, measured_at, views, likes, watch = snapshot
    return dict(youtube_video_id=video, measured_at=measured_at, view_count=views, like_count=likes,
                watch_time_minutes=watch)


def apply(step, database):
    kind, *args = step
    ids = [r[0] for r in A.select(A.id).order_by(A.id).tuples()]
    if kind == "record":
        A.record(**snapshot_row(args[0]))
    elif kind == "record_many":
        A.record_many([snapshot_row(s) for s in args[0]], chunk_size=args[1])
    elif kind == "delete" and ids:
        A.delete().where(A.id == ids[args[0] % len(ids)]).execute()
    elif kind == "delete_newest":
        newest = newest_by_video(every_snapshot()).get(args[0])
        if newest is not None:
            A.delete().where(A.id == newest["id"]).execute()
    elif kind == "update" and ids:
        index, measured_at, views, video = args
        A.update(measured_at=measured_at, view_count=views, youtube_video_id=video).where(
            A.id == ids[index % len(ids)]).execute()
    elif kind == "raw_insert":  # another module's SQL, which no Python code of ours sees
        row = snapshot_row(args[0])
        marks = ", ".join([database.param] * 4)
        database.execute_sql("INSERT INTO analytics (youtube_video_id, measured_at, view_count, "
                             "like_count) "
                             f"VALUES ({marks})", (row["youtube_video_id"],
                                                   A.measured_at.db_value(row["measured_at"]),
                                                   row["view_count"], row["like_count"]))


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, max_size=25))
def test_latest_top_and_growth_equal_a_brute_force_answer_after_any_history(database, steps):
    A.delete().execute()
    for step in steps:
        apply(step, database)
    check_every_answer()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, max_size=25))
def test_a_history_inside_one_transaction_answers_the_same(database, steps):
    """Within the writing transaction too (PostgreSQL's statement triggers have run by each
    statement's end)."""
    A.delete().execute()
    with database.atomic():
        for step in steps:
            apply(step, database)
        check_every_answer()
    check_every_answer()


def test_latest_orders_null_views_last_and_equal_views_by_video(database):
    for video, views in [("c", 5), ("a", None), ("b", 5), ("d7", 9), ("e", None), ("b0", 0)]:
        A.record(video, measured_at=T0, view_count=views)
    assert [(r.youtube_video_id, r.view_count) for r in A.latest()] == [
        ("d7", 9), ("b", 5), ("c", 5), ("b0", 0), ("a", None), ("e", None)]
    assert [r.youtube_video_id for r in A.top(3, rows="namedtuples")] == ["d7", "b", "c"]


def test_a_late_snapshot_does_not_replace_a_newer_one_and_equal_times_go_to_the_last_recorded(
        database):
    A.record("a", measured_at=T0 + timedelta(hours=2), view_count=20)
    A.record("a", measured_at=T0, view_count=999)  # arrives late
    assert [(r.view_count, r.measured_at) for r in A.latest()] == [(20, T0 + timedelta(hours=2))]
    # the same time: the greater id wins
    tie = A.record("a", measured_at=T0 + timedelta(hours=2), view_count=21)
    assert A.latest()[0].id == tie.id and A.top(1)[0].view_count == 21
    A.record_many([("a", T0 + timedelta(hours=3), 30) + (None,) * 9,
                   ("a", T0 + timedelta(hours=1), 5) + (None,) * 9])
    assert A.latest(rows="tuples")[0][3] == 30


def test_deleting_the_newest_snapshot_falls_back_to_the_one_before_or_drops_the_video(database):
    first = A.record("a", measured_at=T0, view_count=1)
    second = A.record("a", measured_at=T0 + timedelta(hours=1), view_count=2)
    A.record("b", measured_at=T0, view_count=7)
    second.delete_instance()
    assert [(r.youtube_video_id, r.id) for r in A.latest()] == [("b", 3), ("a", first.id)]
    first.delete_instance()
    assert [r.youtube_video_id for r in A.latest()] == ["b"]
    A.delete().execute()
    assert A.latest() == [] and A.top(5) == [] and A.growth("b", T0) is None


def test_an_update_that_moves_a_snapshot_is_followed(database):
    old = A.record("a", measured_at=T0, view_count=1)
    A.record("a", measured_at=T0 + timedelta(hours=1), view_count=2)
    A.update(measured_at=T0 + timedelta(hours=5)).where(A.id == old.id).execute()
    assert A.latest()[0].id == old.id
    A.update(youtube_video_id="z").where(A.id == old.id).execute()  # to another video
    assert [(r.youtube_video_id, r.view_count) for r in A.latest()] == [("a", 2), ("z", 1)]
    row = A.get_by_id(old.id)
    row.view_count = 50
    row.save()  # save() writes every field: the copy follows
    assert A.top(1)[0].view_count == 50
    check_every_answer()


def test_bulk_and_raw_sql_writers_are_seen(database):
    A.record_many(dict(youtube_video_id=f"v{i % 7}", measured_at=T0 + timedelta(minutes=i),
                       view_count=i)
                  for i in range(500))
    database.execute_sql("INSERT INTO analytics (youtube_video_id, measured_at, view_count) "
                         f"VALUES ('raw', {database.param}, 10000)", (A.measured_at.db_value(T0),))
    assert [r.youtube_video_id for r in A.top(2)] == ["raw", "v2"]
    check_every_answer()


def test_the_rows_argument_is_checked(database):
    A.record("a", view_count=1)
    for bad in ("model", "tuple", None, 1, "MODELS"):
        with pytest.raises(ValueError,
                           match="rows must be one of 'models', 'tuples', 'namedtuples', 'dicts'"):
            A.latest(rows=bad)
        with pytest.raises(ValueError, match="rows must be one of"):
            A.top(1, rows=bad)


def test_the_models_latest_returns_are_ordinary_models(database):
    A.record("a", measured_at=T0, view_count=1, like_count=2)
    (row,) = A.latest()
    assert isinstance(row, A) and row._dirty == set() and row.get_id() == 1
    row.like_count = 3
    row.save()
    assert A.get_by_id(1).like_count == 3 and A.latest()[0].like_count == 3


def test_growth_refuses_what_its_query_would(database):
    with pytest.raises(ValueError, match="naive datetime"):
        A.growth("a", T0.replace(tzinfo=None))
    for video, since in [(None, T0), ("a", None)]:
        with pytest.raises(ValueError,
                           match="Analytics.growth: give a video id and an aware datetime"):
            A.growth(video, since)
    with pytest.raises(ValueError, match="Analytics.top: n must be a whole number of videos"):
        A.top(2 ** 63)
    assert A.growth("a", T0) is None


def test_timestamps_other_writers_stored_in_another_form_read_as_the_field_reads_them(database):
    if not isinstance(database, peewee.SqliteDatabase):
        pytest.skip("SQLite keeps timestamps as text; PostgreSQL's TIMESTAMPTZ has one form")
    for video, text in [("a", "2026-04-01 10:00:00"), ("b", "2026-04-01T11:00:00.5"),
                        ("c", "2026-04-01 12:00:00Z")]:
        database.execute_sql("INSERT INTO analytics (youtube_video_id, measured_at) VALUES (?, ?)",
                             (video, text))
    expected = [A.get(A.youtube_video_id == v).measured_at for v in "abc"]
    assert sorted(r.measured_at for r in A.latest()) == expected
    assert all(t.tzinfo is datetime.timezone.utc for t in expected)
