"""Values: aware UTC timestamps, JSON, enums, CHECK constraints and type checks, each refusing bad
input."""
import datetime
import json

import peewee
import pytest
from conftest import aware, minimal_row, sqlite_only

import pipeline_models as pm
from pipeline_models import Processed, ShortStatus

UTC = datetime.timezone.utc


# --- timestamps ---------------------------------------------------------------------------------


def test_aware_datetime_in_another_offset_comes_back_as_the_same_instant_in_utc(run):
    written = aware(2026, 6, 1, 23, 30, 15, 250000, hours=-7)
    pm.PipelineRun.update(started_at=written).execute()
    read = pm.PipelineRun.get_by_id(run.id).started_at
    assert read == written
    assert read.tzinfo == UTC
    assert (read.year, read.month, read.day, read.hour) == (2026, 6, 2, 6)


def test_stored_as_fixed_width_utc_text_on_sqlite_and_timestamptz_on_postgres(run, database):
    pm.PipelineRun.update(started_at=aware(2026, 6, 1, 12, 0, hours=2)).execute()
    (stored,) = database.execute_sql("SELECT started_at FROM pipeline_runs").fetchone()
    if isinstance(database, peewee.SqliteDatabase):
        assert stored == "2026-06-01 10:00:00.000000"
    else:
        assert stored == aware(2026, 6, 1, 10, 0)
        types = dict(database.execute_sql(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = "
            "'pipeline_runs'"))
        assert types["started_at"] == types["created_at"] == "timestamp with time zone"


def test_sql_order_and_comparisons_follow_time_not_text(database):
    # Written in mixed offsets: as raw text with offsets, these would sort 01:30, 02:00, 03:00.
    instants = [aware(2026, 1, 1, 3, 0, hours=5), aware(2026, 1, 1, 1, 30), aware(2026, 1, 1, 2, 0,
                                                                                  hours=-1)]
    for i, instant in enumerate(instants):
        pm.Analytics.create(youtube_video_id=f"v{i}", measured_at=instant)
    ordered = [a.measured_at for a in pm.Analytics.select().order_by(pm.Analytics.measured_at)]
    assert ordered == sorted(instants)
    later = pm.Analytics.select().where(
        pm.Analytics.measured_at > aware(2026, 1, 1, 0, 0, hours=-2))
    assert sorted(a.youtube_video_id for a in later) == ["v2"]


def test_naive_datetime_is_refused_naming_the_field(run):
    with pytest.raises(ValueError, match=r"PipelineRun\.started_at: naive datetime"):
        pm.PipelineRun.update(started_at=datetime.datetime(2026, 1, 1)).execute()
    assert pm.PipelineRun.get_by_id(run.id).started_at is None
    with pytest.raises(ValueError, match=r"Analytics\.measured_at"):
        pm.Analytics.create(youtube_video_id="v", measured_at=datetime.datetime(2026, 1, 1))
    assert pm.Analytics.select().count() == 0


def test_non_datetimes_are_refused(database):
    for bad in (datetime.date(2026, 1, 1), 1767225600, "yesterday", "2026-01-01 10:00"):
        with pytest.raises(ValueError, match=r"Analytics\.measured_at"):
            pm.Analytics.create(youtube_video_id="v", measured_at=bad)
    assert pm.Analytics.select().count() == 0


def test_iso_text_with_an_offset_is_accepted(database):
    snap = pm.Analytics.create(youtube_video_id="v", measured_at="2026-01-01T10:00:00+02:00")
    assert pm.Analytics.get_by_id(snap.id).measured_at == aware(2026, 1, 1, 8, 0)


def test_naive_text_stored_by_older_code_reads_as_utc(run, database):
    sqlite_only(database, "PostgreSQL columns are TIMESTAMPTZ, which hold no naive text")
    database.execute_sql("UPDATE pipeline_runs SET started_at = '2025-12-31 23:59:59'")
    database.execute_sql("UPDATE pipeline_runs SET completed_at = '2025-12-31 23:59:59.5'")
    row = pm.PipelineRun.get_by_id(run.id)
    assert row.started_at == aware(2025, 12, 31, 23, 59, 59)
    assert row.completed_at == aware(2025, 12, 31, 23, 59, 59, 500000)


def test_aggregates_come_back_as_aware_datetimes(database):
    pm.Analytics.create(youtube_video_id="v", measured_at=aware(2026, 1, 1, hours=3))
    latest = pm.Analytics.select(peewee.fn.MAX(pm.Analytics.measured_at).alias("m")).get().m
    assert latest == aware(2026, 1, 1, hours=3) and latest.tzinfo == UTC


def test_extreme_instants_that_leave_the_calendar_are_refused(database):
    with pytest.raises(ValueError, match="measured_at"):
        pm.Analytics.create(youtube_video_id="v", measured_at=datetime.datetime.max.replace(
            tzinfo=datetime.timezone(datetime.timedelta(hours=-5))))
    assert pm.Analytics.select().count() == 0


# --- JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    {"hook": "Did you know?", "beats": [{"t": 0.5, "text": "Ünïcödé ✓"}], "n": 3, "ok": True,
     "x": None},
    [1, 2.5, "three", [], {}],
    {},
])
def test_json_round_trip(run, value):
    script = pm.Script.create(**{**minimal_row(pm.Script, run), "full_script_json": value})
    assert pm.Script.get_by_id(script.id).full_script_json == value


@pytest.mark.parametrize("bad", ["just text", 5, {"x": {1, 2}}, {"x": float("nan")},
                                 {"x": object()}])
def test_script_json_must_be_a_json_dict_or_list(run, bad):
    with pytest.raises(ValueError, match=r"Script\.full_script_json"):
        pm.Script.create(**{**minimal_row(pm.Script, run), "full_script_json": bad})
    assert pm.Script.select().count() == 0


@pytest.mark.parametrize("value", [5, 2.5, True, "text", "5", None, [1, "a"], {"a": {"b": [None]}}])
def test_config_value_keeps_its_json_type(database, value):
    row = pm.ConfigOverride.create(key="k", value=value)
    got = pm.ConfigOverride.get_by_id(row.key).value
    assert got == value and type(got) is type(value)


def test_config_none_is_stored_as_json_null_and_a_missing_value_is_refused(database):
    pm.ConfigOverride.create(key="off", value=None)
    assert database.execute_sql("SELECT value FROM config_overrides").fetchone() == ("null",)
    assert pm.ConfigOverride.get_by_id("off").value is None
    # bulk stores what create() stores
    pm.ConfigOverride.insert_rows([{"key": "bulk", "value": None}])
    assert database.execute_sql(
        "SELECT value FROM config_overrides WHERE key = 'bulk'").fetchone() == ("null",)
    with pytest.raises(peewee.IntegrityError, match="value"):
        pm.ConfigOverride.create(key="missing")
    assert pm.ConfigOverride.select().count() == 2


def test_config_value_is_at_most_1024_characters_of_json(database):
    pm.ConfigOverride.create(key="fits", value="x" * 1022)  # 1024 with its quotes
    with pytest.raises(ValueError,
                       match=r"ConfigOverride\.value: its JSON text has 1025 characters, more than "
                             r"the limit of 1024"):
        pm.ConfigOverride.create(key="long", value="x" * 1023)
    with pytest.raises(ValueError, match=r"ConfigOverride\.value: .*1027 characters"):
        pm.ConfigOverride.insert_rows([{"key": "long", "value": ["x" * 1023]}])
    assert [c.key for c in pm.ConfigOverride.select()] == ["fits"]


def test_config_text_written_by_other_code_reads_back_as_that_text(database):
    database.execute_sql("INSERT INTO config_overrides (key, value, updated_at, updated_by) "
                         "VALUES ('plain', 'hello world', CURRENT_TIMESTAMP, 'seed-era code')")
    assert pm.ConfigOverride.value_of("plain") == "hello world"
    assert pm.ConfigOverride.get_by_id("plain").updated_by == "seed-era code"


# --- enums --------------------------------------------------------------------------------------


def test_enum_takes_the_member_or_its_value(run):
    short = pm.Short.create(pipeline_run=run, status="review")
    assert pm.Short.get_by_id(short.id).status is ShortStatus.review
    pm.Short.update(status=ShortStatus.failed).execute()
    assert pm.Short.get_by_id(short.id).status is ShortStatus.failed
    assert pm.Short.get(pm.Short.status == "failed").id == short.id
    assert ShortStatus.failed == "failed" and str(ShortStatus.failed) == "failed"


def test_an_int_enum_takes_the_member_or_its_int_and_reads_back_the_member(run):
    video = pm.DiscoveredVideo.create(**minimal_row(pm.DiscoveredVideo, run))
    assert pm.DiscoveredVideo.get_by_id(video.id).processed is Processed.pending == 0  # the default
    pm.DiscoveredVideo.update(processed=1).execute()  # as the pipeline's own code writes it
    assert pm.DiscoveredVideo.get_by_id(video.id).processed is Processed.used
    pm.DiscoveredVideo.update(processed=Processed.rejected).execute()
    assert pm.DiscoveredVideo.get(pm.DiscoveredVideo.processed == 3).id == video.id
    assert str(Processed.rejected) == "rejected" and Processed.skipped == 2


ENUM_COLUMNS = [
    (pm.DiscoveredVideo, "processed", Processed),
    (pm.DiscoveredVideo, "content_id_risk", pm.ContentIdRisk),
    (pm.PipelineRun, "status", pm.RunStatus),
    (pm.Clip, "extraction_method", pm.ExtractionMethod),
    (pm.Clip, "content_id_risk", pm.ContentIdRisk),
    (pm.Short, "status", pm.ShortStatus),
    (pm.ReviewLog, "action", pm.ReviewAction),
]


def _enum_ids(value):
    return getattr(value, "__name__", value)


@pytest.mark.parametrize("model, column, enum", ENUM_COLUMNS, ids=_enum_ids)
def test_bad_enum_value_is_refused_by_python_naming_the_field(run, model, column, enum):
    before = model.select().count()
    allowed = ", ".join(str(m.value) for m in enum)
    for bad in ("bogus", 7):
        with pytest.raises(ValueError,
                           match=rf"{model.__name__}\.{column}: {bad!r} is not one of: {allowed}$"):
            model.create(**{**minimal_row(model, run, f"enum-{bad}"), column: bad})
    assert model.select().count() == before


def _bad_for_the_database(enum):
    """A value of the column's type that no member has: PostgreSQL refuses text in an integer column
    earlier."""
    return 7 if issubclass(enum, int) else "bogus"


@pytest.mark.parametrize("model, column, enum", ENUM_COLUMNS, ids=_enum_ids)
def test_database_check_takes_every_enum_value_and_refuses_others(run, database, model, column,
                                                                  enum):
    """The CHECK guards raw SQL too, and agrees with the enum (in both schema builds)."""
    table, p = model._meta.table_name, database.param
    row = model.create(**minimal_row(model, run, "check")).get_id()
    for member in enum:
        database.execute_sql(f'UPDATE {table} SET "{column}" = {p} WHERE id = {p}', (member.value,
                                                                                     row))
        assert getattr(model.get_by_id(row), column) is member
    for bad in (_bad_for_the_database(enum), *([-1, 4] if issubclass(enum, int) else ["", "LOW"])):
        with pytest.raises(peewee.IntegrityError, match="(?i)check constraint"):
            with database.atomic():
                database.execute_sql(f'UPDATE {table} SET "{column}" = {p} WHERE id = {p}', (bad,
                                                                                             row))
    assert getattr(model.get_by_id(row), column) is member


# --- CHECK constraints --------------------------------------------------------------------------

CHECKS = [
    # (model, column, a value the database refuses)
    (pm.DiscoveredVideo, "view_count", -1),
    (pm.DiscoveredVideo, "duration_seconds", -1),
    (pm.DiscoveredVideo, "like_count", -1),
    (pm.DiscoveredVideo, "comment_count", -1),
    (pm.DiscoveredVideo, "view_velocity", -0.5),
    (pm.PipelineRun, "retry_count", -1),
    (pm.PipelineRun, "video_duration_seconds", -0.5),
    (pm.PipelineRun, "video_file_size_bytes", -1),
    (pm.Clip, "rank_position", 0),
    (pm.Clip, "rank_position", -3),
    (pm.Clip, "start_time_seconds", -1.0),
    (pm.Clip, "clip_duration_seconds", -0.5),
    (pm.Script, "prompt_tokens", -1),
    (pm.Script, "completion_tokens", -5),
    (pm.Script, "cost_usd", -0.01),
    (pm.TTSAudio, "duration_seconds", -1.0),
    (pm.Short, "duration_seconds", -1.0),
    (pm.Script, "total_char_count", -1),
    (pm.Script, "estimated_duration_seconds", -0.5),
    (pm.Analytics, "view_count", -1),
    (pm.Analytics, "like_count", -1),
    (pm.Analytics, "comment_count", -1),
    (pm.Analytics, "average_view_duration_seconds", -1.0),
    (pm.Analytics, "click_through_rate", -0.01),
    (pm.Analytics, "click_through_rate", 1.01),
    (pm.Analytics, "subscriber_gain", -1),
    (pm.Analytics, "estimated_revenue_usd", -0.01),
    (pm.Analytics, "engaged_views", -1),
    (pm.Analytics, "shares", -1),
    (pm.Analytics, "watch_time_minutes", -1.0),
]


@pytest.mark.parametrize("model, column, bad", CHECKS, ids=lambda x: getattr(x, "__name__", str(x)))
def test_check_constraint_refuses_and_leaves_no_row(run, model, column, bad):
    before = model.select().count()
    with pytest.raises(peewee.IntegrityError, match=column):
        model.create(**{**minimal_row(model, run), column: bad})
    assert model.select().count() == before


def raw_insert(database, model, row):
    """INSERT `row` (field name -> value) with raw SQL: no Python check runs, only the
    database's."""
    fields = [model._meta.fields[name] for name in row]
    json_mark = "json(?)" if isinstance(database, peewee.SqliteDatabase) else "%s::jsonb"
    marks = ", ".join(
        json_mark if isinstance(f, peewee.JSONField) else database.param for f in fields)
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    sql = f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES ({marks})'
    params = [json.dumps(row[f.name]) if isinstance(f, peewee.JSONField)
              else f.db_value(row[f.name]) for f in fields]
    with database.atomic():
        database.execute_sql(sql, params)


def full_row(model, run, unique):
    """minimal_row with the defaults filled in as create() would (raw SQL gets no Python
    default)."""
    row = minimal_row(model, run, unique)
    for field in model._meta.sorted_fields:
        if field.name not in row and field.default is not None and not isinstance(field,
                                                                                  peewee.AutoField):
            row[field.name] = field.default() if callable(field.default) else field.default
    return row


@pytest.mark.parametrize("model, column, bad", CHECKS, ids=lambda x: getattr(x, "__name__", str(x)))
def test_the_database_refuses_a_raw_sql_insert_breaking_a_check(run, database, model, column, bad):
    before = model.select().count()
    # the same statement, with good values, works
    raw_insert(database, model, full_row(model, run, "raw-good"))
    with pytest.raises(peewee.IntegrityError,
                       match=f"(?i)check constraint.*{column}|{column}.*check"):
        raw_insert(database, model, {**full_row(model, run, "raw-bad"), column: bad})
    assert model.select().count() == before + 1


@pytest.mark.parametrize("model, columns, bad", [
    (pm.Clip, ("start_time_seconds", "end_time_seconds"), (10.0, 10.0)),
    (pm.Clip, ("start_time_seconds", "end_time_seconds"), (10.0, 9.5)),
    (pm.PipelineRun, ("cycle_start", "cycle_end"), (aware(2026, 1, 1), aware(2026, 1, 1))),
    (pm.PipelineRun, ("cycle_start", "cycle_end"), (aware(2026, 1, 1, 6), aware(2026, 1, 1))),
], ids=lambda x: getattr(x, "__name__", None))
def test_the_database_refuses_a_raw_sql_end_not_after_its_start(run, database, model, columns, bad):
    name = {pm.Clip: "clips_end_after_start",
            pm.PipelineRun: "pipeline_runs_cycle_end_after_start"}[model]
    with pytest.raises(peewee.IntegrityError, match=name):
        raw_insert(database, model, {**full_row(model, run, "raw"), **dict(zip(columns, bad))})
    with pytest.raises(peewee.IntegrityError, match=name):
        model.create(**{**minimal_row(model, run, "orm"), **dict(zip(columns, bad))})
    assert model.select().count() == (1 if model is pm.PipelineRun else 0)  # the fixture's run


@pytest.mark.parametrize("value", [0, 0.5, 1])
def test_click_through_rate_bounds_are_inclusive(database, value):
    snapshot = pm.Analytics.create(youtube_video_id="v", click_through_rate=value)
    assert pm.Analytics.get_by_id(snapshot.id).click_through_rate == value


# --- type checks --------------------------------------------------------------------------------


@pytest.mark.parametrize("column, bad, message", [
    ("view_count", "5", "expected an integer"),
    ("view_count", 5.0, "expected an integer"),
    ("view_count", True, "expected an integer"),
    ("view_count", 2**63, "does not fit in a 64-bit"),
    ("click_through_rate", float("nan"), "not a finite number"),
    ("click_through_rate", float("inf"), "not a finite number"),
    ("click_through_rate", "0.5", "expected a number"),
    ("youtube_video_id", "x" * 101, "longer than the limit of 100"),
    ("youtube_video_id", 12345, "expected text"),
    ("youtube_video_id", "a\x00b", "NUL"),
])
def test_wrong_types_are_refused_naming_the_field(database, column, bad, message):
    values = {"youtube_video_id": "v", column: bad}
    with pytest.raises(ValueError, match=rf"Analytics\.{column}: .*{message}"):
        pm.Analytics.create(**values)
    assert pm.Analytics.select().count() == 0


def test_integers_beyond_32_bits_fit_counters_not_retry_counts(run):
    assert pm.Analytics.create(youtube_video_id="v", view_count=2**40).view_count == 2**40
    assert pm.DiscoveredVideo.create(**minimal_row(pm.DiscoveredVideo, run),
                                     view_count=2**40).view_count == 2**40
    with pytest.raises(ValueError, match=r"PipelineRun\.retry_count: .*32-bit"):
        pm.PipelineRun.update(retry_count=2**31).execute()
    with pytest.raises(ValueError, match=r"Clip\.rank_position: .*32-bit"):
        pm.Clip.create(**{**minimal_row(pm.Clip, run), "rank_position": 2**31})


def test_booleans_only_take_true_or_false(database):
    with pytest.raises(ValueError, match=r"ErrorLog\.resolved: expected True or False"):
        pm.ErrorLog.create(module="m", error_type="E", error_message="x", resolved="false")
    assert pm.ErrorLog.select().count() == 0


def test_paths_are_stored_as_text(run, tmp_path):
    audio = pm.TTSAudio.create(pipeline_run=run, engine_used="piper",
                               audio_file_path=tmp_path / "a.wav")
    assert pm.TTSAudio.get_by_id(audio.id).audio_file_path == str(tmp_path / "a.wav")


def test_strings_with_sql_in_them_are_stored_verbatim(database):
    nasty = "x'); DROP TABLE analytics; --"
    pm.ErrorLog.create(module=nasty, error_type="E", error_message=nasty)
    assert pm.ErrorLog.get(pm.ErrorLog.module == nasty).error_message == nasty
    assert "analytics" in database.get_tables()


# --- the package's shared checks ------------------------------------------------------------------

whole = pm.fields.whole_number


@pytest.mark.parametrize("check, value, message", [
    (whole("f: n", 1, 5), 0, "f: n must be a whole number from 1 to 5, not 0"),
    (whole("f: n", 1, 5), True, "f: n must be a whole number from 1 to 5, not True"),
    (whole("f: n", 0, unit="rows"), -1, "f: n must be a whole number of rows, 0 or more, not -1"),
    (whole("f: n", 0), 2 ** 63,
     f"f: n must be a whole number from 0 to {2 ** 63 - 1}, not {2 ** 63}"),
    (whole("f: n", 0), -10 ** 5000, "f: n must be a whole number, 0 or more, not an int of 16610 "
                                    "bits"),
    (whole("f: n", 0), 1.0, "f: n must be a whole number, 0 or more, not 1.0"),
], ids=["below", "bool", "unit", "over a BIGINT", "huge", "float"])
def test_whole_number_refuses_by_the_name_it_is_given(check, value, message):
    with pytest.raises(ValueError) as refused:
        check(value)
    assert str(refused.value) == message


def test_whole_number_passes_a_whole_number_through():
    assert whole("f: n", 0)(2 ** 63 - 1) == 2 ** 63 - 1 and whole("f: n", 1, 5)(5) == 5


def test_backend_of_names_the_database_or_the_one_bound_to_a_proxy(database):
    backend_of = pm.fields.backend_of
    bound = "postgres" if isinstance(pm.db.obj, peewee.PostgresqlDatabase) else "sqlite"
    assert backend_of(pm.db) == backend_of(pm.db.obj) == bound
    assert backend_of(peewee.SqliteDatabase(":memory:")) == "sqlite"
    assert backend_of(peewee.PostgresqlDatabase("never_connected")) == "postgres"
    assert backend_of(peewee.DatabaseProxy()) == "unbound"


def test_plural_counts_one_way_everywhere():
    from pipeline_models import cli_output, errors, report_charts

    assert cli_output.plural is errors.plural and report_charts.plural is errors.plural
    counted = [errors.plural(n, "run") for n in (0, 1, 2, 1234)]
    assert counted == ["0 runs", "1 run", "2 runs", "1,234 runs"]
