"""Bulk inserts: the same validation as create(), one transaction, a bad row's position, nothing half written."""
import itertools
from datetime import timedelta

import peewee
import pytest
from conftest import aware
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playhouse.shortcuts import model_to_dict

import pipeline_models as pm
from pipeline_models import RunStatus

T0 = aware(2026, 11, 1, 12, 0, hours=-5)


def snapshot(i):
    """A full analytics row as a tuple in Analytics.RECORD_FIELDS order."""
    return (f"v{i % 7}", T0 + timedelta(minutes=i), i, i // 10, i // 100, 31.5, 0.04, i // 1000,
            None if i % 3 else i * 0.001, i // 2, i // 50, i * 0.25)


def stored(model):
    return [{k: v for k, v in model_to_dict(row, recurse=False).items() if k != "id"}
            for row in model.select().order_by(model.id)]


def test_record_many_stores_what_record_would(database):
    rows = [snapshot(i) for i in range(25)]
    assert pm.Analytics.record_many(rows) == 25
    bulk = stored(pm.Analytics)
    pm.Analytics.delete().execute()
    for row in rows:
        pm.Analytics.record(**dict(zip(pm.Analytics.RECORD_FIELDS, row)))
    assert stored(pm.Analytics) == bulk
    assert bulk[3]["measured_at"] == T0 + timedelta(minutes=3) and bulk[3]["measured_at"].tzinfo is not None


def test_dict_rows_get_defaults_like_create(database):
    before = pm.utcnow()
    pm.Analytics.record_many([{"youtube_video_id": "a", "view_count": 5},
                              {"youtube_video_id": "b", "like_count": 2, "measured_at": None}])
    a, b = pm.Analytics.select().order_by(pm.Analytics.id)
    assert (a.view_count, a.like_count, b.view_count, b.like_count) == (5, None, None, 2)
    assert before <= a.measured_at <= b.measured_at <= pm.utcnow()  # None means now, as in record()
    with pytest.raises(peewee.IntegrityError, match="row 0: PipelineRun.attempts may not be NULL"):
        pm.PipelineRun.insert_rows([{"discovered_video": 1, "attempts": None}])


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


@pytest.mark.parametrize("column, bad, message", [
    ("view_count", "5", "Analytics.view_count: expected an integer"),
    ("view_count", 2 ** 63, "Analytics.view_count: 9223372036854775808 does not fit in a 64-bit"),
    ("click_through_rate", float("nan"), "Analytics.click_through_rate: .* not a finite number"),
    ("measured_at", aware(2026, 1, 1).replace(tzinfo=None), "Analytics.measured_at: naive datetime"),
    ("youtube_video_id", "x" * 101, "Analytics.youtube_video_id: text of 101 characters is longer than the limit"),
    ("youtube_video_id", None, "Analytics.youtube_video_id may not be NULL"),
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
    video, other = run.discovered_video, pm.DiscoveredVideo.create(youtube_video_id="other")
    n = pm.PipelineRun.insert_rows([{"discovered_video": video, "status": RunStatus.failed, "last_error": "x"},
                                    {"discovered_video": other.id, "status": "running", "attempts": 3}])
    assert n == 2
    rows = list(pm.PipelineRun.select().order_by(pm.PipelineRun.id))[1:]
    assert [(r.status, r.attempts, r.discovered_video_id) for r in rows] == [
        (RunStatus.failed, 0, video.id), (RunStatus.running, 3, other.id)]
    fields = ("pipeline_run", "full_script_json", "total_char_count", "estimated_duration_seconds", "llm_model_used")
    pm.Script.insert_rows([(run.id, {"beats": ["ab", "c"]}, 3, 0.2, "m")], fields=fields)
    assert pm.Script.get().full_script_json == {"beats": ["ab", "c"]}
    with pytest.raises(ValueError, match=r"row 1: Script.full_script_json: expected dict or list, got str"):
        pm.Script.insert_rows([(run.id, [], 0, 0, "m"), (run.id, "just text", 9, 1, "m")], fields=fields)
    assert pm.Script.select().count() == 1
    with pytest.raises(ValueError, match=r"row 0: PipelineRun.status: 'bogus' is not one of"):
        pm.PipelineRun.insert_rows([{"discovered_video": video, "status": "bogus"}])
    with pytest.raises(peewee.IntegrityError, match="row 1"):
        pm.PipelineRun.insert_rows([{"discovered_video": video, "status": "published"}, {"discovered_video": 999}])
    with pytest.raises(peewee.IntegrityError, match="row 0: PipelineRun: .*(UNIQUE|unique)"):  # the video's second active run
        pm.PipelineRun.insert_rows([{"discovered_video": other}])
    assert pm.PipelineRun.select().count() == 3


def test_insert_rows_needs_a_binding():
    with pytest.raises(pm.DatabaseNotBound):
        pm.Analytics.record_many([snapshot(0)])


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 65), 2 ** 65), st.floats(),
                   st.text(max_size=70), st.datetimes(), st.datetimes(timezones=st.just(aware(2026, 1, 1).tzinfo)),
                   st.sampled_from([RunStatus.running, "0.5", 0.5, 1, -1, b"x", [1], {"a": 1}]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
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
