"""The seed design's schema contract: its seven tables, column by column, on every backend; and code
written from it works unchanged."""
import datetime

import peewee
import pytest
from conftest import minimal_row
from playhouse.shortcuts import model_to_dict

import pipeline_models as pm

NOW = "now"  # the seed's func.utc_timestamp(): here pipeline_models.utcnow, an aware UTC datetime

# The "Interface Definitions" of the seed design (SQLAlchemy 2 on MySQL), transcribed:
# (column, kind, length, nullable, default). Mapped[X] is NOT NULL, Mapped[X | None] nullable.
SEED = {
    "scripts": [
        ("id", "integer", None, False, None),
        ("pipeline_run_id", "integer", None, False, None),
        ("opening_text", "text", None, True, None),
        ("closing_text", "text", None, True, None),
        ("full_script_json", "text", None, False, None),
        ("total_char_count", "integer", None, False, None),
        ("estimated_duration_seconds", "float", None, False, None),
        ("llm_model_used", "text", None, False, None),
        ("generated_at", "datetime", None, False, NOW),
    ],
    "tts_audio": [
        ("id", "integer", None, False, None),
        ("pipeline_run_id", "integer", None, False, None),
        ("engine_used", "string", 255, False, None),
        ("voice_profile", "string", 255, True, None),
        ("audio_file_path", "string", 512, True, None),
        ("duration_seconds", "float", None, True, None),
        ("generated_at", "datetime", None, False, NOW),
    ],
    "shorts": [
        ("id", "integer", None, False, None),
        ("pipeline_run_id", "integer", None, False, None),
        ("clip_id", "integer", None, True, None),
        ("file_path", "string", 512, True, None),
        ("duration_seconds", "float", None, True, None),
        ("title", "string", 255, True, None),
        ("description", "text", None, True, None),
        ("youtube_video_id", "string", 100, True, None),
        ("youtube_url", "string", 512, True, None),
        ("status", "string", 32, False, "pending"),
        ("uploaded_at", "datetime", None, True, None),
    ],
    "analytics": [
        ("id", "integer", None, False, None),
        ("youtube_video_id", "string", 100, False, None),
        ("measured_at", "datetime", None, False, NOW),
        ("view_count", "integer", None, True, None),
        ("like_count", "integer", None, True, None),
        ("comment_count", "integer", None, True, None),
        ("average_view_duration_seconds", "float", None, True, None),
        ("click_through_rate", "float", None, True, None),
        ("subscriber_gain", "integer", None, True, None),
        ("estimated_revenue_usd", "float", None, True, None),
    ],
    "review_logs": [
        ("id", "integer", None, False, None),
        ("pipeline_run_id", "integer", None, False, None),
        ("sent_at", "datetime", None, False, NOW),
        ("responded_at", "datetime", None, True, None),
        ("action", "string", 255, True, None),
        ("response_detail", "string", 1024, True, None),
        ("auto_held", "integer", None, False, 0),
    ],
    "config_overrides": [
        ("key", "string", 255, False, None),
        ("value", "string", 1024, False, None),
        ("updated_at", "datetime", None, False, NOW),
        ("updated_by", "string", 64, False, "system"),
    ],
    "error_logs": [
        ("id", "integer", None, False, None),
        ("pipeline_run_id", "integer", None, True, None),
        ("module", "string", 255, False, None),
        ("error_type", "string", 255, False, None),
        ("error_message", "text", None, False, None),
        ("stack_trace", "text", None, True, None),
        ("occurred_at", "datetime", None, False, NOW),
        ("resolved", "integer", None, False, 0),
    ],
}
SEED_PRIMARY_KEYS = {table: ["key" if table == "config_overrides" else "id"] for table in SEED}
SEED_FOREIGN_KEYS = {
    "scripts": {("pipeline_run_id", "pipeline_runs", "id")},
    "tts_audio": {("pipeline_run_id", "pipeline_runs", "id")},
    "shorts": {("pipeline_run_id", "pipeline_runs", "id"), ("clip_id", "clips", "id")},
    "review_logs": {("pipeline_run_id", "pipeline_runs", "id")},
    "error_logs": {("pipeline_run_id", "pipeline_runs", "id")},
    "analytics": set(),
    "config_overrides": set(),
}
SEED_INDEXES = {"idx_analytics_video": ("analytics", ["youtube_video_id", "measured_at"]),
                "idx_error_log_module": ("error_logs", ["module", "occurred_at"])}

# Where the package keeps an improvement on the seed's column, as the seed-schema issue allows.
IMPROVED_KIND = {
    ("scripts", "full_script_json"): "json",  # JSON (JSONB on PostgreSQL), a dict or a list
    ("review_logs", "auto_held"): "boolean",  # real booleans for the two integer flags
    ("error_logs", "resolved"): "boolean",
}
IMPROVED_DEFAULT = {0: False}  # the flags' 0 is False


def kind_of(column, sqlite):
    """(kind, length) of a column as the database reports it."""
    declared = (column.data_type if sqlite else column.full_type).lower()
    if declared.startswith(("varchar", "character varying")):
        return "string", int(declared.split("(")[1].rstrip(")"))
    kinds = {"integer": "integer", "bigint": "integer", "text": "text", "real": "float",
             "double precision": "float", "timestamptz": "datetime",
             "timestamp with time zone": "datetime", "boolean": "boolean", "jsonb": "json"}
    return kinds[declared], None


def model_of(table):
    return next(m for m in pm.ALL_MODELS if m._meta.table_name == table)


@pytest.mark.parametrize("table", SEED)
def test_every_seed_column_has_its_name_type_length_and_null_ness(database, table):
    sqlite = isinstance(database, peewee.SqliteDatabase)
    columns = {c.name: c for c in database.get_columns(table)}
    for name, kind, length, nullable, _ in SEED[table]:
        assert name in columns, f"{table}.{name} is missing"
        kind = IMPROVED_KIND.get((table, name), kind)
        if sqlite:  # SQLite has no boolean or JSON type: it stores 0/1 and JSON text
            kind = {"boolean": "integer", "json": "text"}.get(kind, kind)
        assert kind_of(columns[name], sqlite) == (kind, length), f"{table}.{name}"
        assert columns[name].null is nullable, f"{table}.{name}"


@pytest.mark.parametrize("table", SEED)
def test_columns_beyond_the_seed_are_nullable_so_seed_era_writers_can_insert(database, table):
    extra = {c.name: c for c in database.get_columns(table)}.keys() - {
        row[0] for row in SEED[table]}
    for name in extra:
        assert model_of(table)._meta.columns[name].null, f"{table}.{name}"


@pytest.mark.parametrize("table", SEED)
def test_primary_and_foreign_keys(database, table):
    assert database.get_primary_keys(table) == SEED_PRIMARY_KEYS[table]
    found = {(fk.column, fk.dest_table, fk.dest_column) for fk in database.get_foreign_keys(table)}
    assert found == SEED_FOREIGN_KEYS[table]


def test_config_overrides_has_no_id_column(database):
    assert "id" not in {c.name for c in database.get_columns("config_overrides")}


@pytest.mark.parametrize("name", SEED_INDEXES)
def test_the_two_named_indexes(database, name):
    table, columns = SEED_INDEXES[name]
    assert [i.columns for i in database.get_indexes(table) if i.name == name] == [columns]


@pytest.mark.parametrize("table", SEED)
def test_the_seed_defaults(table):
    model = model_of(table)
    for name, _, _, _, default in SEED[table]:
        field = model._meta.columns[name]
        if default == NOW:
            assert field.default is pm.utcnow, f"{table}.{name}"
        else:
            assert field.default == IMPROVED_DEFAULT.get(default, default), f"{table}.{name}"


def test_defaults_are_filled_in_on_every_backend(run):
    before = pm.utcnow()
    rows = [model.create(**minimal_row(model, run))
            for model in pm.ALL_MODELS if model._meta.table_name in SEED]
    for row in rows:
        stored = type(row).get_by_id(row.get_id())
        for name, _, _, _, default in SEED[type(row)._meta.table_name]:
            value = getattr(stored, type(row)._meta.columns[name].name)
            if default == NOW:
                assert before <= value <= pm.utcnow(), name
            elif default is not None:
                assert value == IMPROVED_DEFAULT.get(default, default) and value is not None, name


STRING_COLUMNS = [(model_of(table), name, length) for table, rows in SEED.items()
                  for name, kind, length, _, _ in rows
                  # enums: their values only
                  if kind == "string" and name not in ("status", "action")]


@pytest.mark.parametrize("model, column, length", STRING_COLUMNS, ids=lambda x: getattr(x,
                                                                                        "__name__",
                                                                                        str(x)))
def test_a_string_longer_than_its_seed_length_is_refused_naming_the_field(run, model, column,
                                                                          length):
    name = model._meta.columns[column].name
    # config values are JSON: "x..." with quotes
    fits = "x" * (length - 2 if name == "value" else length)
    model.create(**{**minimal_row(model, run, "one"), name: fits})
    before = model.select().count()
    with pytest.raises(ValueError,
                       match=rf"{model.__name__}\.{name}: .*longer than the limit of {length}|"
                             rf"{model.__name__}\.{name}: .*more than the limit of {length}"):
        model.create(**{**minimal_row(model, run, "two"), name: fits + "x"})
    assert model.select().count() == before


# --- code written from the seed design works unchanged --------------------------------------------


def test_seed_era_analytics_and_config_code(database):
    snapshot = pm.Analytics.create(youtube_video_id="x", view_count=1, like_count=2,
                                   comment_count=3, average_view_duration_seconds=31.5,
                                   click_through_rate=0.05, subscriber_gain=1,
                                   estimated_revenue_usd=0.02)
    stored = pm.Analytics.get_by_id(snapshot.id)
    assert (stored.view_count, stored.like_count, stored.comment_count,
            stored.average_view_duration_seconds, stored.click_through_rate, stored.subscriber_gain,
            stored.estimated_revenue_usd) == (
        1, 2, 3, 31.5, 0.05, 1, 0.02)
    assert stored.measured_at.tzinfo == datetime.timezone.utc
    pm.ConfigOverride.create(key="max_clips", value=3)
    assert pm.ConfigOverride.get_by_id("max_clips").value == 3
    assert pm.ConfigOverride.get_by_id("max_clips").updated_by == "system"
    assert pm.Analytics.record("x", view_count=5).view_count == 5


def test_seed_era_pipeline_code(run):
    audio = pm.TTSAudio.create(pipeline_run=run, engine_used="piper")
    assert (audio.voice_profile, audio.audio_file_path) == (None, None)
    script = pm.Script.create(pipeline_run=run, opening_text="Did you know?",
                              closing_text="Follow!", full_script_json={"beats": ["a"]},
                              total_char_count=20, estimated_duration_seconds=1.5,
                              llm_model_used="gpt-4o")
    assert pm.Script.get_by_id(script.id).llm_model_used == "gpt-4o"
    short = pm.Short.create(pipeline_run=run, title="t", youtube_video_id="y" * 100)
    assert pm.Short.get_by_id(short.id).status == "pending"
    review = pm.ReviewLog.create(pipeline_run=run, action="approve", response_detail="fine")
    assert (pm.ReviewLog.get_by_id(review.id).auto_held, review.response_detail) == (False, "fine")
    error = pm.ErrorLog.create(module="render", error_type="RuntimeError", error_message="boom")
    assert pm.ErrorLog.get_by_id(error.id).resolved is False


# --- a misspelt field is an error, never silently dropped -----------------------------------------


def _count(model):
    return model.select().count()


@pytest.mark.parametrize("model", pm.ALL_MODELS, ids=lambda m: m.__name__)
def test_an_unknown_keyword_is_refused_naming_it_and_the_valid_fields(run, model):
    row = minimal_row(model, run, "u1")
    before = _count(model)
    existing = [model_to_dict(r, recurse=False) for r in model.select()]
    valid = ", ".join(model._meta.sorted_field_names)
    message = rf"{model.__name__} has no settable field llm_model; use {valid}$"
    with pytest.raises(TypeError, match=message):
        model(**row, llm_model="x")
    with pytest.raises(TypeError, match=message):
        model.create(**row, llm_model="x")
    with pytest.raises(TypeError, match=message):
        model.insert(**row, llm_model="x").execute()
    with pytest.raises(TypeError, match=message):
        model.insert({**row, "llm_model": "x"}).execute()
    with pytest.raises(TypeError, match=message):
        model.update(llm_model="x").execute()
    with pytest.raises(TypeError, match=message):
        model.update({"llm_model": "x"}).execute()
    second = minimal_row(model, run, "u4")
    for many in (model.insert_many, model.replace_many):
        with pytest.raises(TypeError, match=message):
            many([row, {**second, "llm_model": "x"}]).execute()
        with pytest.raises(TypeError, match=message):
            # an iterator: found as peewee reads it
            many(iter([row, {**second, "llm_model": "x"}])).execute()
        with pytest.raises(TypeError, match=message):
            many([tuple(row.values())], fields=[*list(row)[:-1], "llm_model"]).execute()
    assert _count(model) == before
    assert [model_to_dict(r, recurse=False) for r in model.select()] == existing


@pytest.mark.parametrize("model", pm.ALL_MODELS, ids=lambda m: m.__name__)
def test_known_keywords_and_foreign_key_ids_still_work(run, model):
    row = minimal_row(model, run, "u2")
    by_id = {
        (f"{k}_id" if isinstance(v, peewee.Model) else k): (
            v.id if isinstance(v, peewee.Model) else v)
        for k, v in row.items()}
    created = model.create(**by_id)
    model.insert(**minimal_row(model, run, "u3")).execute()
    field = next(f for f in model._meta.sorted_fields if f.name in row)
    assert model.update({field.name: row[field.name]}).where(
        model._meta.primary_key == created.get_id()).execute() == 1
    instance = model(**by_id)
    assert all(getattr(instance, name) == value for name, value in by_id.items())
