"""Bulk inserts: the same validation as create(), one transaction, a bad row's position, nothing
half written."""
import datetime
import itertools
import re
import select
import types
from datetime import timedelta

import peewee
import pytest
from conftest import CYCLE_START, aware, make_run, make_video, same_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playhouse.shortcuts import model_to_dict

import pipeline_models as pm
from pipeline_models import ContentIdRisk, Processed, RunStatus
from pipeline_models.bulk import _copy_bad_row, _copy_plan

T0 = aware(2026, 11, 1, 12, 0, hours=-5)


def snapshot(i):
    """A full analytics row as a tuple in Analytics.RECORD_FIELDS order."""
    return (f"v{i % 7}", T0 + timedelta(minutes=i), i, i // 10, i // 100, 31.5, 0.04, i // 1000,
            None if i % 3 else i * 0.001, i // 2, i // 50, i * 0.25)


def stored(model, after=0):
    """The rows of `model` past id `after`, as dicts of field values without the id."""
    return [{k: v for k, v in model_to_dict(row, recurse=False).items() if k != "id"}
            for row in model.select().where(model.id > after).order_by(model.id)]


def video_row(video_id, **fields):
    """A discovered_videos row with the columns the pipeline requires."""
    return dict(video_id=video_id, title=f"Video {video_id}", channel_name="A creator",
                channel_id="UCcreator", url=f"https://www.youtube.com/watch?v={video_id}",
                niche="gaming") | fields


def run_row(cycle, niche="gaming", **fields):
    """A pipeline_runs row: `niche`'s run of its cycle number `cycle`."""
    start = CYCLE_START + timedelta(hours=6 * cycle)
    return dict(niche=niche, cycle_start=start, cycle_end=start + timedelta(hours=6)) | fields


def clip_row(run, video, rank, **fields):
    """A clips row: `video`'s moment ranked `rank` in `run`."""
    return dict(pipeline_run=run, discovered_video=video, rank_position=rank,
                start_time_seconds=10.0, end_time_seconds=28.0, clip_duration_seconds=18.0) | fields


def test_record_many_stores_what_record_would(database):
    rows = [snapshot(i) for i in range(25)]
    assert pm.Analytics.record_many(rows) == 25
    bulk = stored(pm.Analytics)
    pm.Analytics.delete().execute()
    for row in rows:
        pm.Analytics.record(**dict(zip(pm.Analytics.RECORD_FIELDS, row)))
    assert stored(pm.Analytics) == bulk
    assert (bulk[3]["measured_at"] == T0 + timedelta(minutes=3)
            and bulk[3]["measured_at"].tzinfo is not None)


def test_dict_rows_get_defaults_like_create(database):
    before = pm.utcnow()
    pm.Analytics.record_many([{"youtube_video_id": "a", "view_count": 5},
                              {"youtube_video_id": "b", "like_count": 2, "measured_at": None}])
    a, b = pm.Analytics.select().order_by(pm.Analytics.id)
    assert (a.view_count, a.like_count, b.view_count, b.like_count) == (5, None, None, 2)
    assert before <= a.measured_at <= b.measured_at <= pm.utcnow()  # None means now, as in record()
    with pytest.raises(ValueError,
                       match="row 0: PipelineRun.retry_count: a value is required, not None"):
        pm.PipelineRun.insert_rows([{**run_row(0), "retry_count": None}])
    assert pm.PipelineRun.insert_rows([run_row(0)]) == 1
    run = pm.PipelineRun.get()
    assert (run.status, run.retry_count, run.error_message) == (RunStatus.pending, 0, None)
    assert before <= run.created_at <= run.updated_at <= pm.utcnow()


def test_a_generator_is_read_in_chunks_and_fully_written(database):
    consumed = []

    def rows():
        for i in range(1050):
            consumed.append(i)
            yield snapshot(i)

    assert pm.Analytics.record_many(rows(), chunk_size=100) == 1050
    assert pm.Analytics.select().count() == 1050 and len(consumed) == 1050
    assert pm.Analytics.select().where(pm.Analytics.youtube_video_id == "v3").count() == 150


def test_empty_input_writes_nothing(database):
    assert pm.Analytics.record_many([]) == 0
    assert pm.Analytics.record_many(iter(())) == 0


@pytest.mark.parametrize("chunk_size", [0, -1, "x", 2.5, True, None])
def test_a_chunk_size_that_is_not_a_positive_count_is_refused(database, chunk_size):
    rows = [{"youtube_video_id": "a", "view_count": 1}]
    with pytest.raises(ValueError,
                       match="Analytics.insert_rows: chunk_size must be a whole number of rows, 1 "
                             f"or more, not {re.escape(repr(chunk_size))}"):
        pm.Analytics.record_many(rows, chunk_size=chunk_size)
    with pytest.raises(ValueError, match="DiscoveredVideo.insert_rows: chunk_size"):
        pm.DiscoveredVideo.insert_rows([video_row("v")], chunk_size=chunk_size)
    assert pm.Analytics.select().count() == pm.DiscoveredVideo.select().count() == 0


@pytest.mark.parametrize("bad, kind", [(5, "int"), ("abc", "str"), (None, "NoneType"),
                                       ({"view_count": 1}, "dict")])
def test_a_row_of_another_kind_is_refused_naming_its_position(database, bad, kind):
    first = ("a", aware(2024, 1, 1), 1) + (None,) * (len(pm.Analytics.RECORD_FIELDS) - 3)
    rows = [first] * 2500 + [bad]  # in the second chunk
    with pytest.raises(TypeError,
                       match="row 2500: Analytics: a row is a dict of field values or a tuple of "
                             f"the values of youtube_video_id, .*one kind per batch, not {kind}"):
        pm.Analytics.record_many(rows)
    with pytest.raises(TypeError, match="row 1: Analytics: a row is a dict .* not tuple"):
        pm.Analytics.record_many([{"youtube_video_id": "a"}, first])
    assert pm.Analytics.select().count() == 0


@pytest.mark.parametrize("column, bad, message", [
    ("view_count", "5", "Analytics.view_count: expected an integer"),
    ("view_count", 2 ** 63, "Analytics.view_count: 9223372036854775808 does not fit in a 64-bit"),
    ("click_through_rate", float("nan"), "Analytics.click_through_rate: .* not a finite number"),
    ("measured_at", aware(2026, 1, 1).replace(tzinfo=None),
     "Analytics.measured_at: naive datetime"),
    ("youtube_video_id", "x" * 101,
     "Analytics.youtube_video_id: text of 101 characters is longer than the limit"),
    ("youtube_video_id", None, "Analytics.youtube_video_id: a value is required, not None"),
])
def test_a_bad_value_names_its_row_and_field_and_writes_nothing(database, column, bad, message):
    rows = [dict(zip(pm.Analytics.RECORD_FIELDS, snapshot(i))) for i in range(250)]
    rows[234][column] = bad
    with pytest.raises((ValueError, peewee.IntegrityError), match=f"row 234: {message}"):
        pm.Analytics.record_many(rows, chunk_size=100)  # two good chunks came first
    assert pm.Analytics.select().count() == 0


@pytest.mark.parametrize("column, bad", [("view_count", -1), ("click_through_rate", 1.5),
                                         ("estimated_revenue_usd", -0.5)])
def test_a_check_violation_names_its_row_and_writes_nothing(database, column, bad):
    rows = [list(snapshot(i)) for i in range(250)]
    rows[171][pm.Analytics.RECORD_FIELDS.index(column)] = bad
    with pytest.raises(peewee.IntegrityError, match=f"row 171: Analytics: .*{column}"):
        pm.Analytics.record_many(rows, chunk_size=100)
    assert pm.Analytics.select().count() == 0


def test_rows_of_the_wrong_shape(database):
    with pytest.raises(ValueError, match="row 1: 3 values for the 12 fields"):
        pm.Analytics.record_many([snapshot(0), ("a", T0, 1)])
    with pytest.raises(TypeError, match="row 1: Analytics has no settable field viewz"):
        pm.Analytics.record_many([{"youtube_video_id": "a"}, {"youtube_video_id": "b", "viewz": 1}])
    with pytest.raises(TypeError, match="no settable field id"):
        pm.Analytics.insert_rows([(1, "a")], fields=("id", "youtube_video_id"))
    assert pm.Analytics.select().count() == 0


def test_insert_rows_works_for_any_model(run):
    n = pm.PipelineRun.insert_rows([run_row(1, status=RunStatus.failed, error_message="x"),
                                    run_row(1, niche="funny", status="running", retry_count=2)])
    assert n == 2
    rows = list(pm.PipelineRun.select().order_by(pm.PipelineRun.id))[1:]
    assert [(r.niche, r.status, r.retry_count, r.error_message) for r in rows] == [
        ("gaming", RunStatus.failed, 0, "x"), ("funny", RunStatus.running, 2, None)]
    fields = ("pipeline_run", "full_script_json", "total_char_count", "estimated_duration_seconds",
              "llm_model_used")
    pm.Script.insert_rows([(run.id, {"beats": ["ab", "c"]}, 3, 0.2, "m")], fields=fields)
    assert pm.Script.get().full_script_json == {"beats": ["ab", "c"]}
    with pytest.raises(ValueError,
                       match=r"row 1: Script.full_script_json: expected dict or list, got str"):
        pm.Script.insert_rows([(run.id, [], 0, 0, "m"), (run.id, "just text", 9, 1, "m")],
                              fields=fields)
    assert pm.Script.select().count() == 1
    with pytest.raises(ValueError, match=r"row 0: PipelineRun.status: 'bogus' is not one of"):
        pm.PipelineRun.insert_rows([run_row(2, status="bogus")])
    # the old name
    with pytest.raises(ValueError, match=r"row 0: PipelineRun.status: 'published' is not one of"):
        pm.PipelineRun.insert_rows([run_row(2, status="published")])
    with pytest.raises(peewee.IntegrityError,
                       match="row 1: PipelineRun: .*pipeline_runs_cycle_end_after_start"):
        pm.PipelineRun.insert_rows([run_row(2, status="uploaded"),
                                    run_row(3, cycle_end=CYCLE_START)])
    # Gaming's cycle 0 has its run (the fixture's): a second is refused by the unique (niche,
    # cycle_start).
    with pytest.raises(peewee.IntegrityError, match="row 1: PipelineRun: .*(UNIQUE|unique)"):
        pm.PipelineRun.insert_rows([run_row(2), run_row(0)])
    assert pm.PipelineRun.select().count() == 3


def test_video_insert_rows_needs_the_pipelines_columns_and_gets_its_defaults(database):
    before = pm.utcnow()
    rows = [video_row(f"v{i}", viral_score=float(i % 3)) for i in range(5)]
    rows[4].update(processed=1, content_id_risk="high")  # as the pipeline's own code writes them
    assert pm.DiscoveredVideo.insert_rows(rows) == 5
    videos = list(pm.DiscoveredVideo.select().order_by(pm.DiscoveredVideo.id))
    assert [(v.processed, v.content_id_risk) for v in videos] == [
        (Processed.pending, ContentIdRisk.unknown)] * 4 + [(Processed.used, ContentIdRisk.high)]
    assert all(before <= v.discovered_at <= pm.utcnow() for v in videos)
    # best score first
    assert [v.video_id for v in pm.get_pending_videos("gaming")] == ["v2", "v1", "v0", "v3"]
    for column in ("video_id", "title", "channel_name", "channel_id", "url", "niche"):
        incomplete = {k: v for k, v in video_row("x").items() if k != column}
        with pytest.raises(ValueError,
                           match=f"row 1: DiscoveredVideo.{column}: a value is required, not None"):
            pm.DiscoveredVideo.insert_rows([video_row("ok"), incomplete])
    for bad in (4, -1, True, "1", 1.5):
        refused = (rf"row 2: DiscoveredVideo\.processed: {re.escape(repr(bad))} "
                   r"is not one of: 0, 1, 2, 3$")
        with pytest.raises(ValueError, match=refused):
            pm.DiscoveredVideo.insert_rows([video_row("a"), video_row("b"),
                                            video_row("c", processed=bad)])
    with pytest.raises(ValueError,
                       match=r"row 0: DiscoveredVideo\.content_id_risk: 'none' is not one of: low, "
                             r"medium"):
        pm.DiscoveredVideo.insert_rows([video_row("a", content_id_risk="none")])
    with pytest.raises(peewee.IntegrityError, match="row 1: DiscoveredVideo: .*(UNIQUE|unique)"):
        pm.DiscoveredVideo.insert_rows([video_row("new"), video_row("v3")])
    assert pm.DiscoveredVideo.select().count() == 5


def test_clip_insert_rows_takes_one_clip_per_video_in_a_run(run):
    videos = [make_video(f"v{n}") for n in range(5)]
    other = make_run(cycle=1)
    rows = [clip_row(run, video, rank) for rank, video in enumerate(videos[:3], 1)]
    rows.append(clip_row(other, videos[0], 1))  # a video's clip in another run is another matter
    assert pm.Clip.insert_rows(rows) == 4
    ranked = run.clips.order_by(pm.Clip.rank_position)
    assert [(c.rank_position, c.discovered_video_id) for c in ranked] == [
        (1, videos[0].id), (2, videos[1].id), (3, videos[2].id)]
    clip = pm.Clip.get(pm.Clip.pipeline_run == other)
    assert (clip.content_id_risk, clip.extraction_method, clip.dropped_at) == (
        ContentIdRisk.unknown, None, None)
    # A second clip of a video the run has, or two of one video in the batch: refused, naming them,
    # nothing written.
    with pytest.raises(ValueError,
                       match=rf"Clip\.discovered_video: run {run.id} would have two clips of video "
                             rf"{videos[1].id}; a run takes one clip per video \(nothing was "
                             r"written\)"):
        pm.Clip.insert_rows([clip_row(run, videos[3], 4), clip_row(run, videos[1], 5)])
    with pytest.raises(ValueError,
                       match=rf"Clip\.discovered_video: run {other.id} would have two clips of "
                             rf"video {videos[4].id}"):
        pm.Clip.insert_rows([clip_row(other, videos[4], 2), clip_row(other, videos[4], 3)],
                            chunk_size=1)
    assert pm.Clip.select().count() == 4
    # A rank the run has (among the clips not dropped) is refused by the database's unique index.
    with pytest.raises(peewee.IntegrityError, match="row 1: Clip: .*(UNIQUE|unique)"):
        pm.Clip.insert_rows([clip_row(run, videos[3], 4), clip_row(run, videos[4], 2)])
    for bad, check in ((dict(rank_position=0), "rank_position"),
                       (dict(end_time_seconds=10.0), "clips_end_after_start"),
                       (dict(clip_duration_seconds=-1.0), "clip_duration_seconds")):
        with pytest.raises(peewee.IntegrityError, match=f"row 1: Clip: .*{check}"):
            pm.Clip.insert_rows([clip_row(run, videos[3], 4), clip_row(run, videos[4], 5, **bad)])
    with pytest.raises(ValueError,
                       match=r"row 0: Clip\.extraction_method: 'heatmap' is not one of: "
                             r"most_replayed"):
        pm.Clip.insert_rows([clip_row(run, videos[3], 4, extraction_method="heatmap")])
    assert pm.Clip.select().count() == 4
    # A dropped clip keeps its rank as history: a new clip may take it.
    pm.Clip.update(dropped_at=pm.utcnow()).where(pm.Clip.id == ranked[1].id).execute()
    assert pm.Clip.insert_rows([clip_row(run, videos[3], 2, extraction_method="transcript")]) == 1
    assert sorted(c.rank_position for c in run.clips.where(pm.Clip.dropped_at.is_null())) == [
        1, 2, 3]


def test_insert_rows_needs_a_binding():
    with pytest.raises(pm.DatabaseNotBound):
        pm.Analytics.record_many([snapshot(0)])


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 65), 2 ** 65), st.floats(),
                   st.text(max_size=70), st.datetimes(),
                   st.datetimes(timezones=st.just(aware(2026, 1, 1).tzinfo)),
                   st.sampled_from([RunStatus.running, "0.5", 0.5, 1, -1, b"x", [1], {"a": 1}]))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.sampled_from(pm.Analytics.RECORD_FIELDS), value=VALUES)
def test_bulk_accepts_and_refuses_exactly_what_record_does(database, column, value):
    row = dict(zip(pm.Analytics.RECORD_FIELDS, snapshot(1)), **{column: value})
    outcomes = []
    for write in (lambda: pm.Analytics.record(**row), lambda: pm.Analytics.record_many([row])):
        try:
            with pm.db.atomic():
                write()
            outcomes.append("stored")
        except (ValueError, peewee.IntegrityError) as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes[0] == outcomes[1], (column, value, outcomes)
    if outcomes[0] == "stored":
        single, bulk = stored(pm.Analytics)[-2:]
        if column == "measured_at" and value is None:  # both "now", a moment apart
            del single["measured_at"], bulk["measured_at"]
        assert single == bulk
    pm.Analytics.delete().execute()


def test_bulk_is_one_transaction_even_across_chunks(database):
    rows = itertools.chain((snapshot(i) for i in range(300)), [("bad",)])
    with pytest.raises(ValueError, match="row 300"):
        pm.Analytics.record_many(rows, chunk_size=50)
    assert pm.Analytics.select().count() == 0


# --- the PostgreSQL path (COPY), held to SQLite's semantics on every backend ----------------------

UTC = aware(2026, 1, 1).tzinfo


@pytest.mark.parametrize("bad", [0, 99, 100, 249])
def test_a_refused_row_at_either_edge_of_a_chunk_is_named_exactly(database, bad):
    rows = [snapshot(i) for i in range(250)]
    rows[bad] = rows[bad][:2] + (-1,) + rows[bad][3:]
    with pytest.raises(peewee.IntegrityError, match=f"row {bad}: Analytics: .*view_count"):
        pm.Analytics.record_many(rows, chunk_size=100)
    assert pm.Analytics.select().count() == 0


def test_a_refused_row_is_reported_before_a_bad_value_in_a_later_chunk(database):
    rows = [list(snapshot(i)) for i in range(500)]
    rows[42][2] = -1  # the database refuses it (CHECK view_count >= 0)
    rows[420][2] = "many"  # Python refuses it, four chunks later
    with pytest.raises(peewee.IntegrityError, match="row 42: Analytics: .*view_count"):
        pm.Analytics.record_many(rows, chunk_size=100)
    assert pm.Analytics.select().count() == 0


def test_a_refused_row_is_reported_before_the_callers_generator_fails(database):
    def rows(bad):
        for i in range(300):
            yield (f"v{i}", T0, -1 if i == bad else i) + (None,) * 9
        raise RuntimeError("the feed broke")

    with pytest.raises(peewee.IntegrityError, match="row 7: Analytics: .*view_count"):
        pm.Analytics.record_many(rows(bad=7), chunk_size=100)
    # every row good: the generator's own error
    with pytest.raises(RuntimeError, match="the feed broke"):
        pm.Analytics.record_many(rows(bad=None), chunk_size=100)
    assert pm.Analytics.select().count() == 0


def test_a_refused_row_stops_a_long_generator_early(database):
    consumed = []

    def rows():
        for i in range(10 ** 6):
            if i == 3000 and not isinstance(database, peewee.SqliteDatabase):
                # Rows 0-2999 are with the server: wait (no timing assumed) until it has refused row
                # 5.
                select.select([pm.db.obj.connection().fileno()], [], [], 60)
            consumed.append(i)
            yield (f"v{i % 7}", T0, -1 if i == 5 else i) + (None,) * 9

    with pytest.raises(peewee.IntegrityError, match="row 5: Analytics: .*view_count"):
        pm.Analytics.record_many(rows(), chunk_size=1000)
    assert len(consumed) <= 4000  # the chunk being read when the refusal came, and no more
    assert pm.Analytics.select().count() == 0


def test_a_refusal_in_the_last_chunk_rolls_back_every_chunk_before_it_and_nothing_of_the_caller(
        database):
    rows = [snapshot(i) for i in range(2000)]
    rows[1999] = rows[1999][:6] + (1.5,) + rows[1999][7:]  # click_through_rate above 1
    pm.Analytics.record(youtube_video_id="kept", view_count=1)
    with pm.db.atomic():  # the caller's transaction: the bulk call is a savepoint in it
        pm.Analytics.record(youtube_video_id="before", view_count=2)
        with pytest.raises(peewee.IntegrityError,
                           match="row 1999: Analytics: .*click_through_rate"):
            pm.Analytics.record_many(rows, chunk_size=64)
        # the transaction is still usable
        pm.Analytics.record(youtube_video_id="after", view_count=3)
    assert [a.youtube_video_id for a in pm.Analytics.select().order_by(pm.Analytics.id)] == [
        "kept", "before", "after"]
    assert pm.Analytics.record_many(rows[:1999], chunk_size=64) == 1999


def test_a_duplicate_is_named_before_a_later_refused_row_of_its_chunk(database):
    # PostgreSQL's COPY checks a unique index when it flushes its buffer, after reading the rows
    # that follow: SQLite reports the first bad row, and so must every backend.
    rows = [video_row(f"s{i}", view_count=i) for i in range(300)]
    rows[150]["video_id"] = "s120"
    rows[160]["view_count"] = -1
    with pytest.raises(peewee.IntegrityError, match="row 150: DiscoveredVideo: .*(UNIQUE|unique)"):
        pm.DiscoveredVideo.insert_rows(rows, chunk_size=200)
    rows[150]["video_id"] = "s150"
    with pytest.raises(peewee.IntegrityError, match="row 160: DiscoveredVideo: .*view_count"):
        pm.DiscoveredVideo.insert_rows(rows, chunk_size=200)
    assert pm.DiscoveredVideo.select().count() == 0


def test_a_missing_foreign_key_in_a_later_chunk_names_its_row(run):
    rows = [{"pipeline_run": run.id, "module": "m", "error_type": "E", "error_message": str(i)}
            for i in range(120)]
    rows[77]["pipeline_run"] = run.id + 1000
    with pytest.raises(peewee.IntegrityError,
                       match="row 77: ErrorLog: .*(FOREIGN KEY|foreign key)"):
        pm.ErrorLog.insert_rows(rows, chunk_size=50)
    assert pm.ErrorLog.select().count() == 0



# --- analytics_latest through a large batch: SQLite sets its trigger aside, refreshes each video --

def triggers(database):
    """The triggers on analytics, as the database describes them."""
    if isinstance(database, peewee.SqliteDatabase):
        query = ("SELECT name, sql FROM sqlite_master "
                 "WHERE type = 'trigger' AND tbl_name = 'analytics'")
    else:
        query = ("SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                 "WHERE tgrelid = 'analytics'::regclass AND NOT tgisinternal")
    return sorted(database.execute_sql(query).fetchall())


def latest_table(database):
    return database.execute_sql("SELECT youtube_video_id, id, view_count FROM analytics_latest "
                                "ORDER BY youtube_video_id").fetchall()


def newest_per_video():
    """The brute-force answer analytics_latest must hold: each video's snapshot of greatest
    (measured_at, id)."""
    A = pm.Analytics
    newest = {}
    for row in A.select().order_by(A.measured_at, A.id):
        newest[row.youtube_video_id] = (row.youtube_video_id, row.id, row.view_count)
    return sorted(newest.values())


def test_a_batch_of_many_chunks_keeps_analytics_latest_exact_and_its_trigger_in_place(database):
    before = triggers(database)
    A = pm.Analytics
    # newer than the whole batch
    A.record("v1", measured_at=T0 + timedelta(days=30), view_count=10 ** 9)
    A.record("late", measured_at=T0 - timedelta(days=1), view_count=1)  # older than it
    rows = [snapshot(i) for i in range(95)] + [("late", T0, 5, *[None] * 9),
                                               ("v2", T0 - timedelta(days=9), 0, *[None] * 9)]
    assert A.record_many(rows, chunk_size=10) == 97
    assert triggers(database) == before
    assert latest_table(database) == newest_per_video()
    assert dict((r[0], r[2]) for r in latest_table(database))["v1"] == 10 ** 9
    A.record("v3", measured_at=T0 + timedelta(days=40), view_count=7)  # the trigger is back at work
    assert latest_table(database) == newest_per_video()


def test_a_refused_batch_of_many_chunks_leaves_the_trigger_and_analytics_latest_as_they_were(
        database):
    A = pm.Analytics
    A.record_many([snapshot(i) for i in range(20)])
    before, held = triggers(database), latest_table(database)
    rows = [snapshot(i) for i in range(20, 120)]
    rows[-1] = rows[-1][:2] + (-1,) + rows[-1][3:]  # a negative view count, in the last chunk
    with pytest.raises(peewee.IntegrityError, match="row 99: Analytics: .*view_count"):
        A.record_many(rows, chunk_size=10)
    assert (triggers(database), latest_table(database), A.select().count()) == (before, held, 20)
    A.record("v0", measured_at=T0 + timedelta(days=1), view_count=123)
    assert latest_table(database) == newest_per_video()


def test_another_connection_writes_through_the_trigger_again_after_a_large_batch(tmp_path):
    path = tmp_path / "pipeline.db"
    pm.init_db(str(path))
    other = peewee.SqliteDatabase(str(path), timeout=5)
    insert = "INSERT INTO analytics (youtube_video_id, measured_at, view_count) VALUES (?, ?, ?)"
    # a statement prepared before
    other.execute_sql(insert, ("v1", "2026-01-01 00:00:00.000000+00:00", 1))
    pm.Analytics.record_many([snapshot(i) for i in range(50)], chunk_size=10)
    other.execute_sql(insert, ("v1", "2027-01-01 00:00:00.000000+00:00", 2))
    other.close()
    assert latest_table(pm.db.obj) == newest_per_video()
    assert ("v1", 2) in [(r[0], r[2]) for r in latest_table(pm.db.obj)]

# Every column type, with the values most likely to be mangled on the way: text COPY escapes (tab,
# newline, backslash), characters beyond ASCII and the BMP, 64-bit extremes, the smallest and
# largest floats, datetimes at the ends of the calendar, microseconds and offsets, JSON with all of
# those inside, NULL and defaults.
HOSTILE_TEXT = "tab\there\nnew line\r\\N \\ back\\slash 'q' \"dq\" café 😀 \u2028 end"


def round_trip_rows(run, model):
    """Rows of `model` holding those values; the clips' source videos are made here."""
    if model is pm.DiscoveredVideo:
        return [
            dict(video_id=HOSTILE_TEXT[:64], title=HOSTILE_TEXT, channel_name=HOSTILE_TEXT,
                 channel_id="\\N", url="https://www.youtube.com/watch?v=\t", category_id=-(2 ** 31),
                 duration_seconds=2 ** 31 - 1, view_count=2 ** 63 - 1, like_count=0,
                 comment_count=None, view_velocity=5e-324, viral_score=-1.7976931348623157e308,
                 niche="café 😀", discovery_source=None, discovered_at=aware(1, 1, 1, hours=-5),
                 processed=Processed.rejected, content_id_risk="high",
                 published_at=aware(9999, 12, 31, 23, 59, 59, 999999)),
            dict(video_id="", title="", channel_name="", channel_id="", url="", niche="",
                 processed=0, discovered_at=aware(2026, 3, 1, 12, 30, 15, 123456, hours=5)),
            dict(video_id="\\", title="\\.", channel_name="\n", channel_id="UC", url="u",
                 niche="gaming", viral_score=0.1 + 0.2, view_velocity=123456789.125, processed=1,
                 content_id_risk=ContentIdRisk.low, discovery_source="reddit\tr/all",
                 discovered_at=T0),
        ]
    if model is pm.PipelineRun:
        return [
            dict(niche=HOSTILE_TEXT[:64],
                 cycle_start=aware(2026, 3, 1, 12, 30, 15, 123456, hours=5),
                 cycle_end=aware(9999, 12, 31, 23, 59, 59, 999999), status="uploaded",
                 started_at=T0,
                 completed_at=aware(2026, 6, 30, 23, 59, 59, 1), video_file_path=HOSTILE_TEXT,
                 video_duration_seconds=5e-324, video_file_size_bytes=2 ** 63 - 1,
                 youtube_video_id=HOSTILE_TEXT[:100], youtube_url="\\N", error_message=HOSTILE_TEXT,
                 retry_count=2 ** 31 - 1, current_stage="", worker="w\\t",
                 heartbeat_at=aware(2000, 1, 1, hours=14),
                 claim_token="0" * 32, not_before=aware(2026, 1, 1, hours=-12),
                 upload_started_at=T0, created_at=aware(1, 1, 1, hours=-5)),
            dict(niche="gaming", cycle_start=T0, cycle_end=T0 + timedelta(microseconds=1),
                 created_at=T0),
            dict(niche="\\", cycle_start=aware(1, 1, 1, hours=-5),
                 cycle_end=aware(1, 1, 1, 1, hours=-5),
                 status=RunStatus.failed, retry_count=0, video_duration_seconds=2 ** 53,
                 error_message="\\.\n\\.", created_at=aware(2026, 2, 3, 4, 5, 6, 7)),
        ]
    if model is pm.Clip:
        videos = [make_video(f"rt{n}") for n in range(3)]
        return [
            dict(pipeline_run=run, discovered_video=videos[0], rank_position=2 ** 31 - 1,
                 start_time_seconds=0.0, end_time_seconds=5e-324,
                 clip_duration_seconds=1.7976931348623157e308, extraction_method="transcript",
                 clip_file_path=HOSTILE_TEXT, content_id_risk="medium", score=-0.0,
                 transcript=HOSTILE_TEXT, created_at=aware(2026, 3, 1, 12, 30, 15, 123456, hours=5),
                 dropped_at=None),
            dict(pipeline_run=run.id, discovered_video=videos[1].id, rank_position=1,
                 start_time_seconds=2 ** 53, end_time_seconds=2.0 ** 53 + 2,
                 clip_duration_seconds=0, score=0.1 + 0.2, transcript="", created_at=None),
            # Rank 1 again, dropped: only the clips not dropped have distinct ranks.
            dict(pipeline_run=run, discovered_video=videos[2], rank_position=1,
                 start_time_seconds=1.5, end_time_seconds=2.5, clip_duration_seconds=1.0,
                 extraction_method=pm.ExtractionMethod.audio_energy, clip_file_path="\\",
                 created_at=T0, dropped_at=aware(9999, 12, 31, 23, 59, 59, 999999)),
        ]
    return {
        pm.Analytics: [
            dict(youtube_video_id=HOSTILE_TEXT[:100],
                 measured_at=aware(2026, 3, 1, 12, 30, 15, 123456, hours=5),
                 view_count=2 ** 63 - 1, like_count=0, comment_count=None,
                 average_view_duration_seconds=5e-324, click_through_rate=1.0,
                 subscriber_gain=2 ** 31, estimated_revenue_usd=1.7976931348623157e308,
                 engaged_views=None, shares=1, watch_time_minutes=0.1 + 0.2),
            dict(youtube_video_id="\\N", measured_at=aware(1, 1, 1, hours=-5), view_count=None,
                 click_through_rate=0.0, watch_time_minutes=-0.0),
            dict(youtube_video_id="", measured_at=aware(9999, 12, 31, 23, 59, 59, 999999),
                 average_view_duration_seconds=123456789.125),
        ],
        pm.Script: [
            dict(pipeline_run=run, opening_text=HOSTILE_TEXT, closing_text=None,
                 total_char_count=2 ** 31 - 1,
                 full_script_json={"text": HOSTILE_TEXT,
                                   "nested": [[1, 2.5, None, True, False], {"": {}}],
                                   "big": 2 ** 70, "tiny": 5e-324, "neg": -9999999999999998.0},
                 estimated_duration_seconds=0, llm_model_used="m\\t",
                 generated_at=aware(2026, 6, 30, 23, 59, 59, 1),
                 title="", prompt_tokens=None, completion_tokens=0, cost_usd=1e-7),
            dict(pipeline_run=run.id, full_script_json=[], total_char_count=0,
                 estimated_duration_seconds=2 ** 53, llm_model_used="\\",
                 generated_at=aware(2000, 1, 1, hours=14)),
            dict(pipeline_run=run.id, full_script_json=["\\u0000 is text here", "\\"],
                 total_char_count=1, estimated_duration_seconds=1.5, llm_model_used="x",
                 generated_at=T0),
        ],
        pm.ErrorLog: [
            dict(pipeline_run=run, module=HOSTILE_TEXT[:255], error_type="E",
                 error_message=HOSTILE_TEXT, stack_trace=None, resolved=True,
                 occurred_at=aware(2026, 2, 3, 4, 5, 6, 7)),
            dict(pipeline_run=None, module="m", error_type="\\.", error_message="\\.\n\\.",
                 stack_trace="", occurred_at=aware(2026, 1, 1, hours=-12)),
        ],
    }[model]


ROUND_TRIPPED = [pm.Analytics, pm.Script, pm.ErrorLog, pm.DiscoveredVideo, pm.PipelineRun, pm.Clip]


@pytest.mark.parametrize("model", ROUND_TRIPPED, ids=lambda m: m.__name__)
def test_bulk_round_trips_every_column_type_exactly_as_create(run, model):
    rows = round_trip_rows(run, model)
    # the fixture's run, for PipelineRun
    after = model.select(peewee.fn.MAX(model.id)).scalar() or 0
    for row in rows:
        model.create(**row)
    created = stored(model, after)
    model.delete().where(model.id > after).execute()
    assert model.insert_rows(rows) == len(rows)
    bulk = stored(model, after)
    # save() stamps updated_at whatever was given: it is not a value round-tripped
    if model is pm.PipelineRun:
        for row in (*created, *bulk):
            del row["updated_at"]
    # 1.0 == 1 and 2 ** 53 == 2.0 ** 53 in Python: JSON must keep its types too
    if model is pm.Script:
        for a, b in zip(created, bulk):
            assert same_json(a.pop("full_script_json"), b.pop("full_script_json"))
    assert bulk == created
    assert all(v.tzinfo == UTC for row in bulk for v in row.values()
               if isinstance(v, datetime.datetime))


def test_postgres_copies_analytics_in_one_binary_copy(database):
    """The fast path itself: analytics (no foreign key, no unique index on a written column) in one
    COPY."""
    if isinstance(database, peewee.SqliteDatabase):
        pytest.skip("PostgreSQL only: SQLite has no COPY")
    columns = [f for f in pm.Analytics._meta.sorted_fields if not isinstance(f, peewee.AutoField)]
    sql, oids, one_copy = _copy_plan(pm.Analytics, database.cursor(), columns)
    assert one_copy and oids and "FORMAT BINARY" in sql
    columns = [f for f in pm.Script._meta.sorted_fields if not isinstance(f, peewee.AutoField)]
    sql, oids, one_copy = _copy_plan(pm.Script, database.cursor(), columns)
    # jsonb: a text COPY per chunk, in a savepoint (the foreign key)
    assert not one_copy and oids is None


def test_a_postgres_database_without_the_tables_says_which(pg_server):
    pm.init_db(pg_server.new_database(), upgrade=False)  # bound, never migrated: no tables
    with pytest.raises(pm.TablesMissing, match="analytics"):
        pm.Analytics.record_many([snapshot(0)])
    with pytest.raises(pm.TablesMissing, match="scripts"):
        pm.Script.insert_rows([{"pipeline_run": 1, "full_script_json": {}, "total_char_count": 0,
                                "estimated_duration_seconds": 0, "llm_model_used": "m"}])


def copy_error(context):
    """The IntegrityError a refused COPY raises, with `context` as PostgreSQL's CONTEXT."""
    orig = Exception('new row for relation "analytics" violates check constraint '
                     '"analytics_view_count_check"\n'
                     "DETAIL:  Failing row contains (...).\nCONTEXT:  " + context)
    orig.diag = types.SimpleNamespace(context=context)
    return peewee.IntegrityError(orig, *orig.args)


@pytest.mark.parametrize("context", ["COPY analytics, line 7", "COPY analytics, Zeile 7",
                                     "COPY analytics, 第 7 行",
                                     'COPY analytics, line 7: "v1\t2026-01-01 00:00:00+00\t-1"',
                                     'PL/pgSQL function f() line 3 at RAISE\nCOPY analytics, line '
                                     '7'])
def test_a_copy_error_names_its_row_from_the_line_in_any_language(context):
    named = _copy_bad_row(pm.Analytics, copy_error(context), 100, 50)
    assert str(named) == ('row 106: Analytics: new row for relation "analytics" violates check '
                          'constraint '
                          '"analytics_view_count_check"\nDETAIL:  Failing row contains (...).')


@pytest.mark.parametrize("context",
                         ["PL/pgSQL function analytics_latest_insert() line 3 at SQL statement",
                          "COPY analytics_latest, line 7", "COPY analytics, line 51", ""])
def test_a_copy_error_without_a_line_of_its_rows_is_raised_as_it_is(context):
    # a statement trigger's, another table's, past the rows this COPY took
    error = copy_error(context)
    assert _copy_bad_row(pm.Analytics, error, 100, 50) is error
