"""Hostile values: every bad value, on every column and write path, is refused naming Model.field
and changes nothing, the same on SQLite and PostgreSQL; ErrorLog stores what the database cannot
hold escaped.

Lone surrogates and NUL in text and inside JSON, JSON nested past the limit, integers beyond their
column, floats that are not finite or not exact, and foreign keys that are not ids.
"""
import datetime
import itertools
import re
import sys

import peewee
import pytest
from conftest import make_clip, make_video, minimal_row, same_json

import pipeline_models as pm
from pipeline_models import fields

_unique = (f"h{n}" for n in itertools.count())

# A lone high surrogate, and what a file name's undecodable bytes become (Python's surrogateescape).
SURROGATES = ["\ud800", b"clip \xff\xfe.mp4".decode("utf-8", "surrogateescape")]
NUL = "a\x00b"

COLUMNS = [(model, field.name) for model in pm.ALL_MODELS for field in model._meta.sorted_fields
           if not isinstance(field, (peewee.AutoField, peewee.ForeignKeyField))]
TEXT = (fields.CheckedCharField, fields.CheckedTextField, fields.JSONTextField)


def _ids(target):
    model, name = target
    return f"{model.__name__}.{name}"


def rows(model):
    """The whole table, in primary key order."""
    return list(model.select().order_by(model._meta.primary_key).tuples())


def write_paths(model, name, bad, key, row):
    """(label, write) for every way `bad` can reach model.name: the generic writes, then the model's
    operations.

    save and update change the row whose primary key is `key`; the others add `row` with `bad` in
    it.
    """
    pk, row = model._meta.primary_key, {**row, name: bad}

    def save():
        obj = model.get_by_id(key)
        setattr(obj, name, bad)
        obj.save()

    paths = [
        ("create", lambda: model.create(**row)),
        ("save", save),
        ("insert", lambda: model.insert(**row).execute()),
        ("update", lambda: model.update(**{name: bad}).where(pk == key).execute()),
        ("insert_rows", lambda: model.insert_rows([row])),
    ]
    if model is pm.PipelineRun and name == "updated_at":  # save() stamps it, whatever was given
        paths = paths[2:]
    if model is pm.Analytics and name in pm.Analytics.RECORD_FIELDS:
        paths.append(("record", lambda: pm.Analytics.record(**row)))
        paths.append(("record_many", lambda: pm.Analytics.record_many([row])))
    if model is pm.ConfigOverride and name in ("key", "value", "updated_by"):
        paths.append(("set", lambda: pm.ConfigOverride.set(row["key"], row["value"],
                                                           row.get("updated_by", "x"))))
    if model is pm.DiscoveredVideo and name in ("video_id", *pm.DiscoveredVideo.DISCOVER_FIELDS):
        found = {k: v for k, v in row.items() if k in pm.DiscoveredVideo.DISCOVER_FIELDS}
        paths.append(("discover", lambda: pm.DiscoveredVideo.discover(row["video_id"], **found)))
    # the pipeline's helper, on the row `key`
    if model is pm.DiscoveredVideo and name == "processed":
        paths.append(("mark_video_processed",
                      lambda: pm.mark_video_processed(pm.DiscoveredVideo.get_by_id(key).video_id,
                                                      bad)))
    if model is pm.PipelineRun and name in ("niche", "cycle_start", "cycle_end"):
        paths.append(("schedule", lambda: pm.PipelineRun.schedule(row["niche"], row["cycle_start"],
                                                                  row["cycle_end"])))
    return paths


def assert_refused_everywhere(model, name, bads, run, why=""):
    """Every write path raises ValueError or TypeError naming Model.field (and matching `why`) for
    each of `bads`, and the table is left as it was."""
    label = f"{model.__name__}.{name}"
    key = model.create(**minimal_row(model, run, next(_unique))).get_id()  # for save and update
    row = minimal_row(model, run, next(_unique))
    before = rows(model)
    for bad in bads:
        for path, write in write_paths(model, name, bad, key, row):
            try:
                write()
            except (ValueError, TypeError) as exc:
                assert re.search(rf"\b{re.escape(label)}: .*{why}", str(exc)), (path, bad, str(exc))
            else:
                raise AssertionError(f"{path} stored {bad!r} in {label}")
    assert rows(model) == before, (label, bads)


# --- text: lone surrogates and NUL, in every column ----------------------------------------------


@pytest.mark.parametrize("model", pm.ALL_MODELS, ids=lambda model: model.__name__)
def test_a_lone_surrogate_or_nul_in_any_column_is_refused_naming_it(run, model):
    for name in [name for m, name in COLUMNS if m is model]:
        # other columns refuse any string their own way
        text_column = isinstance(model._meta.fields[name], TEXT)
        assert_refused_everywhere(model, name, SURROGATES, run,
                                  "lone surrogate" if text_column else "")
        assert_refused_everywhere(model, name, [NUL], run, "NUL" if text_column else "")


def test_valid_unicode_beyond_ascii_is_stored_as_it_is(run):
    text = "café ☕ 😀 \U0010fffd naïve"  # astral characters are not surrogates
    video = make_video(text[:12], title=text, channel_name=text, niche=text[:6])
    created = make_clip(run, video, transcript=text)
    pm.Analytics.record_many([(text[:10], None, 1) + (None,) * 9])
    assert pm.Clip.get_by_id(created.id).transcript == text
    assert pm.Analytics.get().youtube_video_id == text[:10]
    found = pm.DiscoveredVideo.get_by_id(video.id)
    assert (found.video_id, found.title, found.channel_name, found.niche) == (text[:12], text, text,
                                                                              text[:6])
    assert [v.id for v in pm.get_pending_videos(text[:6])] == [video.id]


def test_bulk_finds_a_surrogate_among_many_ascii_and_non_ascii_rows(database):
    snapshots = [(f"v{i}" if i % 2 else f"vidéo{i}", None, i) + (None,) * 9 for i in range(500)]
    snapshots[321] = (SURROGATES[1], None, 1) + (None,) * 9
    with pytest.raises(ValueError, match=(r"row 321: Analytics\.youtube_video_id: "
                                          "text holds the lone surrogate")):
        pm.Analytics.record_many(snapshots, chunk_size=200)
    assert pm.Analytics.select().count() == 0


def test_escape_unstorable_escapes_nul_and_lone_surrogates_only():
    text = "a\x00b " + SURROGATES[1] + " café 😀 \\x00"
    assert fields.escape_unstorable(text) == "a\\x00b clip \\udcff\\udcfe.mp4 café 😀 \\x00"
    assert fields.escape_unstorable("plain") == "plain" and fields.escape_unstorable(None) is None


# --- JSON: nesting, NUL and surrogates in strings and keys, numbers -----------------------------

JSON_COLUMNS = [(pm.Script, "full_script_json"), (pm.ConfigOverride, "value")]


def nested(depth, kind=list, leaf=1):
    """`leaf` inside `depth` lists (or dicts {"k": ...}) inside one another."""
    value = leaf
    for _ in range(depth):
        value = [value] if kind is list else {"k": value}
    return value


def circular():
    """A list that holds itself: endlessly deep."""
    value = [1]
    value.append(value)
    return value


@pytest.mark.parametrize("target", JSON_COLUMNS, ids=_ids)
def test_json_nested_past_the_limit_is_refused_naming_the_field(run, target):
    model, name = target
    limit = fields.JSON_MAX_DEPTH
    bads = [nested(limit + 1), nested(limit + 1, dict), nested(3000), nested(3000, dict),
            circular()]
    assert_refused_everywhere(model, name, bads, run, f"nested more than {limit}")


def test_json_nested_up_to_the_limit_round_trips(run):
    for model, name in JSON_COLUMNS:
        for kind in (list, dict):
            value = nested(fields.JSON_MAX_DEPTH, kind, leaf="x")
            created = model.create(**{**minimal_row(model, run, next(_unique)), name: value})
            assert getattr(model.get_by_id(created.get_id()), name) == value


@pytest.mark.parametrize("target", JSON_COLUMNS, ids=_ids)
def test_json_strings_and_keys_may_not_hold_nul_or_lone_surrogates(run, target):
    model, name = target
    for bad, why in [
        (["a\x00b"], "NUL"),
        ({"a\x00": 1}, "NUL"),
        ({"deep": [{"x": "\x00"}]}, "NUL"),
        (["\ud800"], "lone surrogate '\\\\ud800'"),
        ({SURROGATES[1]: 1}, "lone surrogate '\\\\udcff'"),
        ({"files": [SURROGATES[1]]}, "lone surrogate"),
    ]:
        assert_refused_everywhere(model, name, [bad], run, why)


JSON_NUMBERS = [
    [2 ** 64, -(2 ** 200), {"big": 2 ** 70}],
    [10 ** 1000],
    {"under 1e16": [9999999999999998.0, -9999999999999998.0], "tiny": [1e-7, 5e-324]},
    [0.1 + 0.2, 1.5, 123456789.125, -0.0],
]


@pytest.mark.parametrize("target", JSON_COLUMNS, ids=_ids)
def test_json_big_integers_and_ordinary_floats_round_trip_exactly_on_both_backends(run, target):
    model, name = target
    for value in JSON_NUMBERS:
        for write in (model.create, lambda **row: model.insert_rows([row])):
            row = minimal_row(model, run, next(_unique))
            write(**{**row, name: value})
            if model is pm.Script:
                got = model.select().order_by(model.id.desc()).first().full_script_json
            else:
                got = pm.ConfigOverride.value_of(row["key"])
            assert same_json(value, got), (value, got)


def test_jsonb_floats_that_would_read_back_as_ints_are_refused(run):
    bads = [[1e16], {"x": -1.5e300}, [1, [2, 1.7976931348623157e308]]]
    assert_refused_everywhere(pm.Script, "full_script_json", bads, run,
                              "would read back from PostgreSQL's jsonb")


def test_json_text_keeps_large_floats_as_floats(run):
    for value in (1e16, [1.5e300, -1e20]):
        pm.ConfigOverride.set("big", value)
        assert same_json(value, pm.ConfigOverride.value_of("big"))


def test_json_non_finite_floats_are_refused(run):
    for model, name in JSON_COLUMNS:
        bads = [[float("nan")], {"x": float("inf")}, [float("-inf")]]
        assert_refused_everywhere(model, name, bads, run, "not JSON compliant")


@pytest.mark.skipif(not hasattr(sys, "get_int_max_str_digits"),
                    reason="Python < 3.11 writes ints of any length")
def test_json_integers_python_will_not_write_as_text_are_refused(run):
    for model, name in JSON_COLUMNS:
        assert_refused_everywhere(model, name, [[10 ** (sys.get_int_max_str_digits() + 1)]], run,
                                  "Exceeds the limit")


# --- numbers: integers beyond their column, floats that are not finite or not exact -------------

INT_COLUMNS = [(m, f.name, 64 if isinstance(f, fields.CheckedBigIntegerField) else 32)
               for m, n in COLUMNS for f in [m._meta.fields[n]]
               if isinstance(f, (fields.CheckedIntegerField, fields.CheckedBigIntegerField))]
FLOAT_COLUMNS = [(m, n) for m, n in COLUMNS if isinstance(m._meta.fields[n],
                                                          fields.CheckedFloatField)]


def test_integers_beyond_their_column_are_refused_on_every_write_path(run):
    for model, name, bits in INT_COLUMNS:
        bads = [2 ** (bits - 1), -(2 ** (bits - 1)) - 1, 2 ** 64, 2 ** 200]
        assert_refused_everywhere(model, name, bads, run, f"does not fit in a {bits}-bit")


def test_floats_not_finite_or_not_exact_are_refused_on_every_write_path(run):
    for model, name in FLOAT_COLUMNS:
        assert_refused_everywhere(model, name, [float("nan"), float("inf"), float("-inf")], run,
                                  "not a finite")
        assert_refused_everywhere(model, name, [2 ** 53 + 1, -(2 ** 60) - 1], run,
                                  "has no exact float")
        assert_refused_everywhere(model, name, [10 ** 400], run, "too large")


# --- text too long, values of the wrong type, enum values that are not members -------------------

CHAR_COLUMNS = [(m, n, m._meta.fields[n].max_length) for m, n in COLUMNS
                if isinstance(m._meta.fields[n], fields.CheckedCharField)]
WRONG_TYPES = [  # (field class, values of another type, the refusal)
    ((fields.CheckedCharField, fields.CheckedTextField), [5, 1.5, b"x", True, ["x"]],
     "expected text"),
    ((fields.CheckedIntegerField, fields.CheckedBigIntegerField), ["5", 5.0, True, b"1", [1]],
     "expected an integer"),
    (fields.CheckedFloatField, ["0.5", True, b"1", [0.5]], "expected a number"),
    (fields.UTCDateTimeField, [datetime.datetime(2026, 1, 1), datetime.date(2026, 1, 1),
                               "yesterday", 1767225600],
     "naive datetime|expected an aware datetime|isoformat"),
    (fields.CheckedBooleanField, ["false", 1, 0, "True"], "expected True or False"),
]


def test_text_longer_than_its_column_is_refused_on_every_write_path(run):
    for model, name, limit in CHAR_COLUMNS:
        for char in ("x", "é"):  # the limit counts characters, not bytes
            assert_refused_everywhere(model, name, [char * (limit + 1)], run,
                                      f"longer than the limit of {limit}")


def test_text_of_exactly_its_columns_limit_is_stored_whole(run):
    for model, name, limit in CHAR_COLUMNS:
        value = "é" * (limit - 1) + "😀"
        created = model.create(**{**minimal_row(model, run, next(_unique)), name: value})
        assert getattr(model.get_by_id(created.get_id()), name) == value, (model, name)


def test_values_of_the_wrong_type_are_refused_on_every_write_path(run):
    checked = set()
    for kinds, bads, why in WRONG_TYPES:
        for model, name in COLUMNS:
            if isinstance(model._meta.fields[name], kinds):
                # The operations (discover, schedule) say what they need instead: "... needs the
                # video's id".
                assert_refused_everywhere(model, name, bads, run, f"({why}| needs )")
                checked.add((model, name))
    untyped = {(m, n) for m, n in COLUMNS if not isinstance(m._meta.fields[n],
                                                            (fields.CheckedJSONField,
                                                              fields.JSONTextField))}
    # Every column is in one of the kinds above, but for enums (below) and JSON (any JSON value is
    # valid).
    assert untyped - checked == {(m, n) for m, n in COLUMNS if isinstance(m._meta.fields[n],
                                                                          fields._EnumChecks)}


ENUMS = [
    (pm.DiscoveredVideo, "processed", [4, -1, True, "1", 1.5, 2 ** 40, "pending",
                                       pm.ShortStatus.pending]),
    (pm.DiscoveredVideo, "content_id_risk", ["none", "LOW", " low", "", 0]),
    # 0.1's names too
    (pm.PipelineRun, "status", ["awaiting_review", "published", "Pending", "", 1]),
    (pm.Clip, "extraction_method", ["heatmap", "MOST_REPLAYED", "", 1]),
    (pm.Clip, "content_id_risk", ["none", "LOW", "", 0]),
    (pm.Short, "status", ["rendered", "published", "", 0]),
    (pm.ReviewLog, "action", ["edit", "approved", "", 0]),
]


@pytest.mark.parametrize("model, name, bads", ENUMS,
                         ids=lambda x: getattr(x, "__name__", x) if not isinstance(x, list)
                         else "")
def test_an_enum_column_refuses_what_is_not_a_member_on_every_write_path(run, model, name, bads):
    allowed = ", ".join(str(member.value) for member in model._meta.fields[name].enum_class)
    assert_refused_everywhere(model, name, bads, run, f"is not one of: {re.escape(allowed)}$")


def test_processed_takes_the_pipelines_ints_and_the_members(run):
    video = pm.DiscoveredVideo.create(**minimal_row(pm.DiscoveredVideo, run, next(_unique)))
    for value, member in ((1, pm.Processed.used), (pm.Processed.skipped, pm.Processed.skipped),
                          (3, pm.Processed.rejected), (0, pm.Processed.pending)):
        pm.mark_video_processed(video.video_id, value)
        assert pm.DiscoveredVideo.get_by_id(video.id).processed is member


FOREIGN_KEYS = [(m, f.name) for m in pm.ALL_MODELS for f in m._meta.sorted_fields
                if isinstance(f, fields.CheckedForeignKeyField)]


def test_a_foreign_key_of_the_models_takes_a_row_of_its_model_or_an_id_only(run):
    for model, name in FOREIGN_KEYS:
        other = (pm.ErrorLog(id=1) if model._meta.fields[name].rel_model is not pm.ErrorLog
                 else pm.Short(id=1))
        bads = [1.5, True, "1", b"1", other]
        assert_refused_everywhere(model, name, bads, run, "expected a")
        assert_refused_everywhere(model, name, [2 ** 31, -(2 ** 31) - 1], run,
                                  "does not fit in a 32-bit")


def test_an_exact_integer_into_a_float_column_is_stored_as_that_float(database):
    pm.Analytics.record_many([("v", None, None, None, None, 2 ** 53, None, None, 2 ** 70, None,
                               None, 3)])
    row = pm.Analytics.get()
    assert (row.average_view_duration_seconds, row.estimated_revenue_usd,
            row.watch_time_minutes) == (
        2.0 ** 53, 2.0 ** 70, 3.0)


# --- foreign keys --------------------------------------------------------------------------------


class Parent(peewee.Model):
    """A throwaway model for the checked foreign key (the package's models keep their own
    tables)."""

    class Meta:
        database = pm.db
        table_name = "hostile_parent"


class Child(peewee.Model):
    """A throwaway model holding a fields.CheckedForeignKeyField."""

    parent = fields.CheckedForeignKeyField(Parent, null=True, backref="+")

    class Meta:
        database = pm.db
        table_name = "hostile_child"


@pytest.fixture
def parent_child(database):
    pm.db.create_tables([Parent, Child])
    yield
    pm.db.drop_tables([Child, Parent])


def test_a_checked_foreign_key_takes_a_row_or_its_id_only(parent_child):
    parent = Parent.create()
    assert Child.create(parent=parent).parent_id == parent.id
    assert Child.create(parent=parent.id).parent_id == parent.id
    Child.insert_many([{"parent": parent}, {"parent": None}]).execute()
    for bad, why in [(2 ** 31, "does not fit in a 32-bit"), (2 ** 70, "does not fit"), (1.5,
                                                                                        "expected "
                                                                                        "a Parent"),
                     (True, "expected a Parent"), ("1", "expected a Parent"), ("\ud800",
                                                                               "expected a Parent"),
                     (Child(id=1), "expected a Parent")]:
        for write in (lambda: Child.create(parent=bad), lambda: Child.update(parent=bad).execute()):
            with pytest.raises(ValueError, match=rf"Child\.parent: .*{why}"):
                write()
    assert Child.select().count() == 4


# --- ErrorLog: never loses an error to text the database cannot store ----------------------------

ESCAPED = [
    ("a\x00b", "a\\x00b"),
    ("cannot open " + SURROGATES[1], "cannot open clip \\udcff\\udcfe.mp4"),
    ("\ud800 café \x00 😀", "\\ud800 café \\x00 😀"),  # only the offending characters change
]


def raise_(exc):
    raise exc


def test_record_stores_nul_and_lone_surrogates_escaped(run):
    for message, stored in ESCAPED:
        try:
            raise_(RuntimeError(message))
        except RuntimeError as exc:
            error = pm.ErrorLog.record(exc, f"render {message}", pipeline_run=run)
        row = pm.ErrorLog.get_by_id(error.id)
        assert (row.error_type, row.error_message, row.module) == ("RuntimeError", stored,
                                                                   f"render {stored}")
        assert (row.stack_trace.endswith(f"RuntimeError: {stored}\n")
                and "in raise_" in row.stack_trace)
        assert row.pipeline_run_id == run.id


def test_log_error_stores_nul_and_lone_surrogates_escaped(run):
    for message, stored in ESCAPED:
        error = pm.log_error(f"render {message}", f"E {message}", message, pipeline_run_id=run.id,
                             stack_trace=f"Traceback: {message}")
        row = pm.ErrorLog.get_by_id(error.id)
        assert (row.module, row.error_type, row.error_message, row.stack_trace) == (
            f"render {stored}", f"E {stored}", stored, f"Traceback: {stored}")
        assert row.pipeline_run_id == run.id and row.resolved is False


def test_log_error_refuses_what_it_cannot_store_naming_the_column(run):
    for args, kwargs, why in [
        (("", "E", "m"), {}, r"ErrorLog\.module: log_error needs the module"),
        (("m", " ", "m"), {}, r"ErrorLog\.error_type: log_error needs the error type"),
        (("m", "E", None), {}, r"ErrorLog\.error_message: log_error needs the error message"),
        ((5, "E", "m"), {}, r"ErrorLog\.module"),
        (("m" * 256, "E", "m"), {},
         r"ErrorLog\.module: text of 256 characters is longer than the limit of 255"),
        (("m", "E", "m"), {"pipeline_run_id": "1"},
         r"ErrorLog\.pipeline_run: expected a PipelineRun or its id"),
        (("m", "E", "m"), {"pipeline_run_id": 1.5},
         r"ErrorLog\.pipeline_run: expected a PipelineRun or its id"),
        (("m", "E", "m"), {"pipeline_run_id": 2 ** 31}, r"ErrorLog\.pipeline_run: .*32-bit"),
        (("m", "E", "m"), {"stack_trace": b"tb"}, r"ErrorLog\.stack_trace: expected text"),
    ]:
        with pytest.raises((ValueError, TypeError), match=why):
            pm.log_error(*args, **kwargs)
    with pytest.raises(ValueError,
                       match=r"^ErrorLog\.pipeline_run: no PipelineRun has the id "
                             rf"{run.id + 1000} "):
        pm.log_error("m", "E", "m", pipeline_run_id=run.id + 1000)  # a run that does not exist
    assert pm.ErrorLog.select().count() == 0


def test_capture_records_unstorable_text_escaped_and_reraises_the_original(database):
    for message, stored in ESCAPED:
        original = OSError(message)
        with pytest.raises(OSError) as raised:
            with pm.ErrorLog.capture("uploader"):
                raise original
        assert raised.value is original
        row = pm.ErrorLog.select().order_by(pm.ErrorLog.id.desc()).first()
        assert (row.module, row.error_type, row.error_message) == ("uploader", "OSError", stored)
        assert stored in row.stack_trace
    assert pm.ErrorLog.select().count() == len(ESCAPED)


def test_capture_as_a_decorator_records_a_file_name_with_undecodable_bytes(database):
    path = b"/clips/\xff.mp4".decode("utf-8", "surrogateescape")  # as os.listdir(str) returns it

    @pm.ErrorLog.capture("render")
    def render():
        raise RuntimeError(f"ffmpeg failed on {path}")

    with pytest.raises(RuntimeError, match="ffmpeg failed"):
        render()
    assert pm.ErrorLog.get().error_message == "ffmpeg failed on /clips/\\udcff.mp4"


def test_record_survives_a_broken_str_and_a_very_long_class_name(database):
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("broken __str__")

    row = pm.ErrorLog.record(Unprintable(), "m")
    assert (row.error_message == "<Unprintable whose str() failed>"
            and "Unprintable" in row.stack_trace)
    long_named = type("E" * 300, (Exception,), {})
    assert (pm.ErrorLog.get_by_id(pm.ErrorLog.record(long_named("x"), "m").id).error_type
            == "E" * 255)


def test_record_takes_an_exception_only(database):
    with pytest.raises(TypeError,
                       match="ErrorLog.record: exc must be the exception caught, not str"):
        pm.ErrorLog.record("disk full", "render")
    assert pm.ErrorLog.select().count() == 0


def test_capture_failing_to_record_leaves_the_callers_transaction_usable(database, monkeypatch):
    def failing_insert(*args, **kwargs):
        # a database error: on PostgreSQL it aborts the transaction
        pm.db.execute_sql("SELECT * FROM no_such_table")

    monkeypatch.setattr(pm.ErrorLog, "record", failing_insert)
    with pm.db.atomic():
        pm.Analytics.record("before")
        with pytest.raises(RuntimeError, match="original"):
            with pm.ErrorLog.capture("m"):
                raise RuntimeError("original")
        pm.Analytics.record("after")
    assert [a.youtube_video_id
            for a in pm.Analytics.select().order_by(pm.Analytics.id)] == ["before", "after"]


def test_records_written_directly_are_still_checked(database):
    with pytest.raises(ValueError, match=r"ErrorLog\.error_message: .*lone surrogate"):
        pm.ErrorLog.create(module="m", error_type="E", error_message=SURROGATES[0])
    assert pm.ErrorLog.select().count() == 0


@pytest.mark.parametrize("target", JSON_COLUMNS, ids=_ids)
def test_json_that_would_read_back_changed_is_refused(run, target):
    model, name = target
    bads = [{1: "a"}, {"a": {None: 1}}, {"ok": [1, {2.5: "x"}]}, [(1, 2)], {"k": (1,)}]
    assert_refused_everywhere(model, name, bads, run,
                              "a JSON key must be a string|a tuple would read back as a list")


def test_config_values_count_characters_not_escapes(database):
    pm.ConfigOverride.set("greeting", "é" * 1022)  # 1,024 characters of JSON with its quotes
    assert pm.ConfigOverride.value_of("greeting") == "é" * 1022
    with pytest.raises(ValueError, match="ConfigOverride.value: its JSON text has 1025 characters"):
        pm.ConfigOverride.set("greeting", "é" * 1023)


# --- refusals of the database, and arithmetic, name what they refuse (issue 22) -------------------

REQUIRED = [(model, f.name) for model in pm.ALL_MODELS for f in model._meta.sorted_fields
            if not f.null and not isinstance(f, peewee.AutoField) and f.db_value(None) is None
            and f is not pm.PipelineRun.updated_at]  # save() stamps it, whatever was given
REFERENCES = [(model, f.name) for model in pm.ALL_MODELS for f in model._meta.refs]
CHECKED = [(model, f.name) for model in pm.ALL_MODELS for f in model._meta.sorted_fields
           if any(
               ">= 0" in str(getattr(c, "sql", c)) or "rank_position" in str(getattr(c, "sql", c))
               for c in f.constraints or ())]


@pytest.mark.parametrize("target", REQUIRED, ids=_ids)
def test_none_for_a_column_that_needs_a_value_is_refused_naming_it(run, target):
    model, name = target
    row = {**minimal_row(model, run, next(_unique)), name: None}
    before = rows(model)
    with pytest.raises(ValueError,
                       match=rf"^{model.__name__}\.{name}: a value is required, not None$"):
        model.create(**row)
    assert rows(model) == before


@pytest.mark.parametrize("target", REFERENCES, ids=_ids)
def test_a_foreign_key_naming_no_row_is_refused_naming_the_field_and_the_id(run, target):
    model, name = target
    field = model._meta.fields[name]
    row = {**minimal_row(model, run, next(_unique)), name: 987654}
    before = rows(model)
    with pytest.raises(peewee.IntegrityError,
                       match=rf"^{model.__name__}\.{name}: no {field.rel_model.__name__} "
                             r"has the id 987654 \("):
        with pm.db.atomic():
            model.create(**row)
    assert rows(model) == before


@pytest.mark.parametrize("target", CHECKED, ids=_ids)
def test_a_value_a_check_refuses_is_refused_naming_the_field(run, target):
    model, name = target
    row = {**minimal_row(model, run, next(_unique)), name: -1}
    before = rows(model)
    with pytest.raises(peewee.IntegrityError,
                       match=rf"^{model.__name__}\.{name}: -1 breaks the rule "):
        with pm.db.atomic():
            model.create(**row)
    assert rows(model) == before


def test_a_table_rule_names_its_fields_and_a_taken_value_its_columns(run):
    video = make_video("v1")
    with pytest.raises(peewee.IntegrityError,
                       match=r"^Clip\.start_time_seconds, Clip\.end_time_seconds: 5\.0, "
                             r"5\.0 breaks the rule end_time_seconds > start_time_seconds"):
        with pm.db.atomic():
            make_clip(run, video, start_time_seconds=5.0, end_time_seconds=5.0)
    make_video("v2", title="t")
    with pytest.raises(peewee.IntegrityError,
                       match=r"^DiscoveredVideo\.video_id: .*taken by another row"):
        with pm.db.atomic():
            make_video("v2")


NOW_BOUNDS = r"now must be between 1970-01-01 and 9000-01-01 UTC, not "
FAR = [datetime.datetime(9999, 12, 31, 23, tzinfo=datetime.timezone.utc),
       datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)]


@pytest.mark.parametrize("when", FAR, ids=["9999", "year 1"])
def test_a_now_off_the_calendar_is_refused_naming_it_and_changes_nothing(run, when):
    claimed = pm.PipelineRun.claim_next("w")
    pm.Analytics.record("v", view_count=1)
    before = [rows(m) for m in (pm.PipelineRun, pm.Analytics)]
    calls = [("fail", lambda: claimed.fail("boom", now=when)),
             ("requeue_stale", lambda: pm.PipelineRun.requeue_stale(datetime.timedelta(minutes=1),
                                                                    now=when)),
             ("claim_next", lambda: pm.PipelineRun.claim_next("w2", now=when)),
             ("Analytics.compact", lambda: pm.Analytics.compact(now=when))]
    for operation, call in calls:
        with pytest.raises(ValueError, match=rf"^{operation}: {NOW_BOUNDS}"):
            call()
    assert [rows(m) for m in (pm.PipelineRun, pm.Analytics)] == before


@pytest.mark.parametrize("bad", [2 ** 1024, 10 ** 9 + 1, 0, -5, 1.5, True, "10"])
def test_compact_refuses_a_batch_size_it_cannot_use_naming_it(database, bad):
    pm.Analytics.record("v", view_count=1)
    with pytest.raises(ValueError,
                       match=r"^Analytics\.compact: batch_size must be a whole number of rows from "
                             r"1 "):
        pm.Analytics.compact(batch_size=bad)
    assert pm.Analytics.select().count() == 1


def test_no_hostile_value_escapes_as_a_bare_database_or_overflow_error(run):
    """The count the issue asks for: every column of every model, fed values that overflow, break a
    rule or name nothing, through create(): each refusal is a ValueError, TypeError or
    IntegrityError naming Model.field; none is a bare OverflowError or DataError."""
    bare = []
    for model in pm.ALL_MODELS:
        for field in model._meta.sorted_fields:
            if isinstance(field, peewee.AutoField):
                continue
            for bad in (None, -1, 2 ** 63, 2 ** 1024, -(2 ** 1024), 987654, 1e308 * 10, "x" * 5000):
                row = {**minimal_row(model, run, next(_unique)), field.name: bad}
                try:
                    with pm.db.atomic():
                        model.create(**row)
                except (ValueError, TypeError, peewee.IntegrityError) as exc:
                    named = (str(exc).startswith(f"{model.__name__}.")
                             or f"{model.__name__}.{field.name}" in str(exc))
                    if not named:
                        bare.append((model.__name__, field.name,
                                     bad if len(repr(bad)) < 30 else "...", repr(exc)))
                except Exception as exc:  # noqa: BLE001  (exactly what the count is about)
                    bare.append((model.__name__, field.name, bad if len(repr(bad)) < 30 else "...",
                                 repr(exc)))
    assert bare == []
