"""The seed design's schema contract for the seven later tables: its column names, types, lengths,
NULL-ness, primary key and index names, with every row kept.

Each table is rebuilt: the old one is set aside, the new one created as the models describe it, the
rows copied into their renamed columns, the old one dropped. All of it runs in the one transaction
init_db migrates in, so an interrupted or failing upgrade leaves the database exactly as 0003 left
it.

Values a new NOT NULL column needs for old rows, derived and never a made-up zero metric:
- scripts.total_char_count: the characters of every string in full_script_json (the narration);
- scripts.estimated_duration_seconds: the run's TTS audio duration when one was recorded, else
  total_char_count / 15 (a narration pace of about 150 words a minute);
- scripts.llm_model_used and tts_audio.engine_used: the old llm_model and provider, else 'unknown';
- config_overrides.value: the JSON text null where the old value was SQL NULL (both read back as
  None).
scripts.hook becomes opening_text. A value longer than its new seed length stops the upgrade, naming
it.
"""
import json

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    Check,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    JSONField,
    TextField,
)

from pipeline_models.errors import SchemaMismatch
from pipeline_models.migrations._base import (Timestamp, drop_aside, frozen_base, migration, q,
                                              refuse_dependent_views, reset_sequence, set_aside)

_q = q

NARRATION_CHARS_PER_SECOND = 15.0  # about 150 spoken words a minute


def frozen_models(db):
    """The seven tables as this migration leaves them."""

    Base = frozen_base(db)

    class PipelineRun(Base):  # stubs of the tables 0001 made: only their keys are referenced
        class Meta:
            table_name = "pipeline_runs"

    class Clip(Base):
        class Meta:
            table_name = "clips"

    class Script(Base):
        pipeline_run = ForeignKeyField(PipelineRun, on_delete="CASCADE")
        opening_text = TextField(null=True)
        closing_text = TextField(null=True)
        full_script_json = JSONField()
        total_char_count = IntegerField(constraints=[Check("total_char_count >= 0")])
        estimated_duration_seconds = DoubleField(constraints=[Check("estimated_duration_seconds >= "
                                                                    "0")])
        llm_model_used = TextField()
        generated_at = Timestamp()
        title = TextField(null=True)
        prompt_tokens = IntegerField(null=True, constraints=[Check("prompt_tokens >= 0")])
        completion_tokens = IntegerField(null=True, constraints=[Check("completion_tokens >= 0")])
        cost_usd = DoubleField(null=True, constraints=[Check("cost_usd >= 0")])

        class Meta:
            table_name = "scripts"

    class TTSAudio(Base):
        pipeline_run = ForeignKeyField(PipelineRun, on_delete="CASCADE")
        engine_used = CharField(max_length=255)
        voice_profile = CharField(max_length=255, null=True)
        audio_file_path = CharField(max_length=512, null=True)
        duration_seconds = DoubleField(null=True, constraints=[Check("duration_seconds >= 0")])
        generated_at = Timestamp()

        class Meta:
            table_name = "tts_audio"

    class Short(Base):
        pipeline_run = ForeignKeyField(PipelineRun, on_delete="CASCADE")
        clip = ForeignKeyField(Clip, null=True, on_delete="SET NULL")
        file_path = CharField(max_length=512, null=True)
        duration_seconds = DoubleField(null=True, constraints=[Check("duration_seconds >= 0")])
        title = CharField(max_length=255, null=True)
        description = TextField(null=True)
        youtube_video_id = CharField(max_length=100, null=True, unique=True)
        youtube_url = CharField(max_length=512, null=True)
        status = CharField(
            max_length=32,
            constraints=[Check("\"status\" IN ('pending', 'rendered', 'uploaded', 'rejected', "
                               "'failed')")],
        )
        uploaded_at = Timestamp(null=True)
        upload_started_at = Timestamp(null=True)
        created_at = Timestamp(null=True)

        class Meta:
            table_name = "shorts"

    class Analytics(Base):
        youtube_video_id = CharField(max_length=100)
        measured_at = Timestamp()
        view_count = BigIntegerField(null=True, constraints=[Check("view_count >= 0")])
        like_count = BigIntegerField(null=True, constraints=[Check("like_count >= 0")])
        comment_count = BigIntegerField(null=True, constraints=[Check("comment_count >= 0")])
        average_view_duration_seconds = DoubleField(
            null=True, constraints=[Check("average_view_duration_seconds >= 0")]
        )
        click_through_rate = DoubleField(
            null=True, constraints=[Check("click_through_rate >= 0 AND click_through_rate <= 1")]
        )
        subscriber_gain = BigIntegerField(null=True, constraints=[Check("subscriber_gain >= 0")])
        estimated_revenue_usd = DoubleField(null=True,
                                            constraints=[Check("estimated_revenue_usd >= 0")])
        engaged_views = BigIntegerField(null=True, constraints=[Check("engaged_views >= 0")])
        shares = BigIntegerField(null=True, constraints=[Check("shares >= 0")])
        watch_time_minutes = DoubleField(null=True, constraints=[Check("watch_time_minutes >= 0")])

        class Meta:
            table_name = "analytics"

    Analytics.add_index(Analytics.youtube_video_id, Analytics.measured_at,
                        name="idx_analytics_video")

    class ReviewLog(Base):
        pipeline_run = ForeignKeyField(PipelineRun, on_delete="CASCADE")
        sent_at = Timestamp()
        responded_at = Timestamp(null=True)
        action = CharField(null=True,
                           constraints=[Check("\"action\" IN ('approve', 'reject', 'edit')")])
        response_detail = CharField(max_length=1024, null=True)
        auto_held = BooleanField()
        message_id = CharField(max_length=128, null=True, unique=True)
        reviewer = CharField(null=True)

        class Meta:
            table_name = "review_logs"
            indexes = ((("action", "sent_at"), False),)

    class ConfigOverride(Base):
        key = CharField(max_length=255, primary_key=True)
        value = CharField(max_length=1024)  # JSON text, exact (JSONB would turn 1e16 into an int)
        updated_at = Timestamp()
        updated_by = CharField(max_length=64)

        class Meta:
            table_name = "config_overrides"

    class ErrorLog(Base):
        pipeline_run = ForeignKeyField(PipelineRun, null=True, on_delete="SET NULL")
        module = CharField(max_length=255)
        error_type = CharField(max_length=255)
        error_message = TextField()
        stack_trace = TextField(null=True)
        occurred_at = Timestamp()
        resolved = BooleanField()

        class Meta:
            table_name = "error_logs"
            indexes = ((("resolved", "occurred_at"), False),)

    ErrorLog.add_index(ErrorLog.module, ErrorLog.occurred_at, name="idx_error_log_module")

    return [Script, TTSAudio, Short, Analytics, ReviewLog, ConfigOverride, ErrorLog]


# Each new column, filled from the 0003 row by an SQL expression; columns not listed keep their
# name.
UP = {
    "scripts": {
        "opening_text": "hook",
        "closing_text": "NULL",
        "total_char_count": "0",  # derived from full_script_json below, in the same transaction
        "estimated_duration_seconds": "0",  # likewise
        "llm_model_used": "COALESCE(llm_model, 'unknown')",
        "generated_at": "created_at",
    },
    "tts_audio": {
        "engine_used": "COALESCE(provider, 'unknown')",
        "voice_profile": "voice",
        "audio_file_path": "file_path",
        "generated_at": "created_at",
    },
    "shorts": {},
    "analytics": {
        "view_count": "views",
        "like_count": "likes",
        "comment_count": "comments",
        "average_view_duration_seconds": "avg_view_duration_seconds",
        "click_through_rate": "ctr",
        "subscriber_gain": "subscribers_gained",
        "estimated_revenue_usd": "revenue_usd",
    },
    "review_logs": {"response_detail": "detail"},
    "config_overrides": {"value": "COALESCE(value, 'null')"},
    "error_logs": {},
}


def up(migrator, db):
    _rebuild_all(db, frozen_models(db), UP)
    _derive_script_lengths(db)


def down(migrator, db):
    """Back to 0003: the seed's new columns (closing_text, total_char_count, ...) are dropped."""
    old = _frozen_0003(db)
    back = {
        "scripts": {"hook": "opening_text", "llm_model": "llm_model_used",
                    "created_at": "generated_at"},
        "tts_audio": {"file_path": "COALESCE(audio_file_path, '')", "voice": "voice_profile",
                      "provider": "engine_used", "created_at": "generated_at"},
        "shorts": {"created_at": "COALESCE(created_at, CURRENT_TIMESTAMP)"},
        "analytics": {old_name: new_name for new_name, old_name in UP["analytics"].items()},
        "review_logs": {"detail": "response_detail"},
        "config_overrides": {"id": None},  # numbered afresh
        "error_logs": {},
    }
    _rebuild_all(db, old, back)


def _frozen_0003(db):
    """The seven tables as 0002 made them, plus 0003's upload claim."""
    models = migration("0002_review_publish_analytics").frozen_models(db)
    short = next(m for m in models if m._meta.table_name == "shorts")
    short._meta.add_field("upload_started_at", Timestamp(null=True))
    return models


def _rebuild_all(db, models, sources):
    """Rebuild each model's table from `sources[table]`, after checking that every table can be
    rebuilt."""
    for model in models:
        refuse_dependent_views(db, model._meta.table_name, "the seed's schema",
                               "with the seed's column names")
        _refuse_values_too_long(db, model, sources[model._meta.table_name])
    for model in models:
        _rebuild(db, model, sources[model._meta.table_name])


def _refuse_values_too_long(db, model, sources):
    """Stop, naming the rows, if an old value would not fit its column's new (seed) length."""
    table = model._meta.table_name
    key = model._meta.primary_key.column_name
    for field in model._meta.sorted_fields:
        limit = getattr(field, "max_length", None)
        source = sources.get(field.column_name, _q(field.column_name))
        if not limit or source is None:
            continue
        rows = [r[0] for r in db.execute_sql(
            f"SELECT {_q(key)} FROM {_q(table)} WHERE length({source}) > {limit} ORDER BY 1 LIMIT "
            "10")]
        if rows:
            raise SchemaMismatch(
                f"cannot upgrade {table} to the seed's schema: {table}.{field.column_name} allows "
                f"{limit} "
                f"characters and the rows with {key} {', '.join(map(str, rows))} hold longer "
                "values; shorten them, then run init_db again (nothing was changed)"
            )


def _rebuild(db, model, sources):
    """Replace `model`'s table with one made from the model, each column filled from `sources` or
    its old self."""
    table = model._meta.table_name
    old_columns = {c.name for c in db.get_columns(table)}
    aside = set_aside(db, table)
    db.create_tables([model])
    columns, values = [], []
    for field in model._meta.sorted_fields:
        source = sources.get(field.column_name, _q(field.column_name))
        if source is None or (
                source == _q(field.column_name) and field.column_name not in old_columns):
            # a column the old table lacks: numbered afresh (id) or dropped on the way down
            continue
        columns.append(_q(field.column_name))
        values.append(source)
    db.execute_sql(f"INSERT INTO {_q(table)} ({', '.join(columns)}) SELECT {', '.join(values)} "
                   f"FROM {_q(aside)}")
    drop_aside(db, [table])
    if model._meta.primary_key.column_name == "id":
        reset_sequence(db, table)


def _narration_chars(value):
    """Characters of every string in a JSON value (dict keys are structure, not narration)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(map(_narration_chars, value.values()))
    if isinstance(value, list):
        return sum(map(_narration_chars, value))
    return 0


def _derive_script_lengths(db):
    """Fill total_char_count and estimated_duration_seconds of the scripts copied from 0003."""
    spoken = dict(db.execute_sql(
        "SELECT pipeline_run_id, duration_seconds FROM tts_audio WHERE duration_seconds IS NOT "
        "NULL ORDER BY id"))
    scripts = db.execute_sql("SELECT id, pipeline_run_id, full_script_json FROM scripts").fetchall()
    update = ("UPDATE scripts SET total_char_count = {0}, estimated_duration_seconds = {0} "
              "WHERE id = {0}")
    for script_id, run_id, script in scripts:
        chars = _narration_chars(json.loads(script) if isinstance(script, str) else script)
        seconds = spoken.get(run_id, chars / NARRATION_CHARS_PER_SECOND)
        db.execute_sql(update.format(db.param), (chars, seconds, script_id))
