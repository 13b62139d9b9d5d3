"""The pipeline's own discovered_videos, pipeline_runs and clips (a run per niche per 6-hour cycle,
ranked clips of many videos), and its vocabulary in the other tables; every row kept.

The tables that change or name them are rebuilt (as 0004 rebuilt its seven), all in the one
transaction init_db migrates in: an interrupted or failing upgrade leaves the database exactly as
0006 left it. A row that would break a rule of its new table (a value too long, a CHECK) stops the
upgrade first, naming it.

From 0006, each old value goes to its new column; what a new column needs for old rows is derived:
- discovered_videos: youtube_video_id -> video_id, channel_title -> channel_name, source ->
  discovery_source; status -> processed (new 0, selected and processed 1 used, skipped 2); url is
  the YouTube address of the id; niche is 'unknown' (old videos had none); title, channel_name and
  channel_id are '' where they were NULL; duration_seconds is rounded up to whole seconds; the new
  counts, velocity and score are NULL; content_id_risk is 'unknown'.
- pipeline_runs (one per video before): niche 'unknown'; the cycle is six hours from the run's
  creation time (cycle_start = created_at, one microsecond later for each earlier run created at the
  same instant, so every run keeps a cycle of its own); status awaiting_review -> review, published
  -> uploaded; last_error -> error_message, finished_at -> completed_at; retry_count is the attempts
  that ended in a retry (attempts for a pending run, attempts - 1 otherwise); its video stays in
  legacy_video, which the pipeline's own runs leave NULL.
- clips: the old run's video becomes each clip's discovered_video; rank_position follows the old
  score, best first (unscored last, then by id); start/end_seconds -> *_time_seconds,
  clip_duration_seconds is end - start, file_path -> clip_file_path; content_id_risk 'unknown'.
- shorts: status rendered -> review. review_logs: action edit -> approve (its words stay in
  response_detail), an auto-held review without an answer -> hold.

adopt_pipeline() takes instead the tables the pipeline's own SQLAlchemy module made (see db.py): the
same rebuild, from its columns, naive UTC times read as UTC and its integer flags as booleans.
"""
import datetime
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
    SQL,
    TextField,
)

from pipeline_models.errors import SchemaMismatch
from pipeline_models.fields import backend_of
from pipeline_models.migrations._base import (Timestamp, copy_rows, drop_aside, frozen_base,
                                              migration, q, refuse_bad_rows, refuse_dependent_views,
                                              reset_sequence, set_aside)

UPGRADE, ADOPT = "migration 0007 cannot upgrade", "cannot adopt the pipeline's"
CYCLE = datetime.timedelta(hours=6)
# Rebuilt parents first; the ten in that order when adopting the pipeline's own database.
REBUILT = ("discovered_videos", "pipeline_runs", "clips", "scripts", "tts_audio", "shorts",
           "review_logs", "error_logs")
ALL = (*REBUILT, "analytics", "config_overrides")


def _server_now(db):
    """A DEFAULT of now, stored as the models store times (0007 keeps its own copy of the
    clause)."""
    if backend_of(db) == "postgres":
        return "DEFAULT CURRENT_TIMESTAMP"
    return "DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


def _enum(column, values):
    return [Check(f'"{column}" IN ({", ".join(repr(v) for v in values)})')]


def frozen_models(db):
    """The ten tables as this migration leaves them."""
    Base = frozen_base(db)
    risks = ("low", "medium", "high", "unknown")

    class DiscoveredVideo(Base):
        video_id = CharField(max_length=64, unique=True)
        title = CharField(max_length=1024)
        channel_name = CharField(max_length=255)
        channel_id = CharField(max_length=64)
        url = CharField(max_length=512)
        category_id = IntegerField(null=True)
        duration_seconds = IntegerField(null=True, constraints=[Check("duration_seconds >= 0")])
        view_count = BigIntegerField(null=True, constraints=[Check("view_count >= 0")])
        like_count = BigIntegerField(null=True, constraints=[Check("like_count >= 0")])
        comment_count = BigIntegerField(null=True, constraints=[Check("comment_count >= 0")])
        view_velocity = DoubleField(null=True, constraints=[Check("view_velocity >= 0")])
        viral_score = DoubleField(null=True)
        niche = CharField(max_length=64)
        discovery_source = CharField(max_length=255, null=True)
        discovered_at = Timestamp()
        processed = IntegerField(default=0, constraints=_enum("processed", (0, 1, 2, 3)))
        content_id_risk = CharField(max_length=16, default="unknown",
                                    constraints=_enum("content_id_risk", risks))
        published_at = Timestamp(null=True)

        class Meta:
            table_name = "discovered_videos"

    DiscoveredVideo.add_index(DiscoveredVideo.niche, DiscoveredVideo.discovered_at,
                              name="idx_discovered_videos_niche")
    DiscoveredVideo.add_index(DiscoveredVideo.processed, name="idx_discovered_videos_processed")

    class PipelineRun(Base):
        niche = CharField(max_length=64)
        cycle_start = Timestamp()
        cycle_end = Timestamp()
        status = CharField(max_length=32, default="pending", constraints=_enum(
            "status",
            ("pending", "running", "review", "approved", "uploaded", "failed", "rejected")))
        started_at = Timestamp(null=True)
        completed_at = Timestamp(null=True)
        video_file_path = CharField(max_length=512, null=True)
        video_duration_seconds = DoubleField(null=True,
                                             constraints=[Check("video_duration_seconds >= 0")])
        video_file_size_bytes = BigIntegerField(null=True,
                                                constraints=[Check("video_file_size_bytes >= 0")])
        youtube_video_id = CharField(max_length=100, null=True, unique=True)
        youtube_url = CharField(max_length=512, null=True)
        error_message = TextField(null=True)
        retry_count = IntegerField(default=0, constraints=[Check("retry_count >= 0")])
        current_stage = CharField(max_length=64, null=True)
        worker = CharField(null=True)
        heartbeat_at = Timestamp(null=True)
        claim_token = CharField(max_length=32, null=True)
        not_before = Timestamp(null=True)
        upload_started_at = Timestamp(null=True)
        legacy_video = ForeignKeyField(DiscoveredVideo, null=True, index=False)
        created_at = Timestamp(constraints=[SQL(_server_now(db))])
        updated_at = Timestamp(constraints=[SQL(_server_now(db))])

        class Meta:
            table_name = "pipeline_runs"
            constraints = [Check("cycle_end > cycle_start",
                                 name="pipeline_runs_cycle_end_after_start")]

    PipelineRun.add_index(PipelineRun.status, name="idx_pipeline_runs_status")
    PipelineRun.add_index(PipelineRun.niche, PipelineRun.cycle_start, unique=True,
                          name="idx_pipeline_runs_niche")

    class Clip(Base):
        pipeline_run = ForeignKeyField(PipelineRun, on_delete="CASCADE", index=False)
        discovered_video = ForeignKeyField(DiscoveredVideo)
        rank_position = IntegerField(constraints=[Check("rank_position >= 1")])
        start_time_seconds = DoubleField(constraints=[Check("start_time_seconds >= 0")])
        end_time_seconds = DoubleField()
        clip_duration_seconds = DoubleField(constraints=[Check("clip_duration_seconds >= 0")])
        extraction_method = CharField(max_length=32, null=True, constraints=_enum(
            "extraction_method",
            ("most_replayed", "transcript", "audio_energy", "scene_detection")))
        clip_file_path = CharField(max_length=512, null=True)
        content_id_risk = CharField(max_length=16, default="unknown",
                                    constraints=_enum("content_id_risk", risks))
        score = DoubleField(null=True)
        transcript = TextField(null=True)
        created_at = Timestamp(null=True)
        dropped_at = Timestamp(null=True)

        class Meta:
            table_name = "clips"
            constraints = [Check("end_time_seconds > start_time_seconds",
                                 name="clips_end_after_start")]

    Clip.add_index(Clip.pipeline_run, name="idx_clips_pipeline")
    Clip.add_index(Clip.index(Clip.pipeline_run, Clip.rank_position, unique=True,
                              name="clips_rank_in_run", where=SQL("dropped_at IS NULL")))

    # 0004's scripts, tts_audio, analytics, config_overrides and error_logs, unchanged but for what
    # they reference (the same table names).
    seed = {m._meta.table_name: m for m in migration("0004_seed_schema").frozen_models(db)}

    class Short(Base):
        pipeline_run = ForeignKeyField(PipelineRun, on_delete="CASCADE")
        clip = ForeignKeyField(Clip, null=True, on_delete="SET NULL")
        file_path = CharField(max_length=512, null=True)
        duration_seconds = DoubleField(null=True, constraints=[Check("duration_seconds >= 0")])
        title = CharField(max_length=255, null=True)
        description = TextField(null=True)
        youtube_video_id = CharField(max_length=100, null=True, unique=True)
        youtube_url = CharField(max_length=512, null=True)
        status = CharField(max_length=32, default="pending", constraints=_enum(
            "status", ("pending", "review", "uploaded", "failed", "rejected")))
        uploaded_at = Timestamp(null=True)
        upload_started_at = Timestamp(null=True)
        created_at = Timestamp(null=True)

        class Meta:
            table_name = "shorts"

    class ReviewLog(Base):
        pipeline_run = ForeignKeyField(PipelineRun, on_delete="CASCADE")
        sent_at = Timestamp()
        responded_at = Timestamp(null=True)
        action = CharField(null=True, constraints=_enum("action", ("approve", "reject", "hold",
                                                                   "skip", "redo_script")))
        response_detail = CharField(max_length=1024, null=True)
        auto_held = BooleanField(default=False)
        message_id = CharField(max_length=128, null=True, unique=True)
        reviewer = CharField(null=True)

        class Meta:
            table_name = "review_logs"
            indexes = ((("action", "sent_at"), False),)

    return [DiscoveredVideo, PipelineRun, Clip, seed["scripts"], seed["tts_audio"], Short,
            ReviewLog, seed["error_logs"], seed["analytics"], seed["config_overrides"]]


def _ceil(db, column):
    """`column` rounded up to a whole number (SQLite's CAST truncates; it has no CEIL here)."""
    if backend_of(db) == "postgres":
        return f"CAST(CEIL({column}) AS INTEGER)"
    whole = f"CAST({column} AS INTEGER)"
    return f"CASE WHEN {column} > {whole} THEN {whole} + 1 ELSE {whole} END"


def _from_0006(db):
    """Each new column's value, as SQL over the 0006 row `src` ({table} names an old table)."""
    return {
        "discovered_videos": {
            "video_id": "src.youtube_video_id", "title": "COALESCE(src.title, '')",
            "channel_name": "COALESCE(src.channel_title, '')",
            "channel_id": "COALESCE(src.channel_id, '')",
            "url": "'https://www.youtube.com/watch?v=' || src.youtube_video_id",
            "duration_seconds": _ceil(db, "src.duration_seconds"), "niche": "'unknown'",
            "discovery_source": "src.source",
            "processed": "CASE src.status WHEN 'new' THEN 0 WHEN 'skipped' THEN 2 ELSE 1 END",
        },
        "pipeline_runs": {
            "niche": "'unknown'",
            "cycle_start": "(SELECT c.cycle_start FROM _pm_cycles c WHERE c.id = src.id)",
            "cycle_end": "(SELECT c.cycle_end FROM _pm_cycles c WHERE c.id = src.id)",
            "status": "CASE src.status WHEN 'awaiting_review' THEN 'review' WHEN 'published' THEN "
                      "'uploaded' ELSE src.status END",
            "completed_at": "src.finished_at", "error_message": "src.last_error",
            "legacy_video_id": "src.discovered_video_id",
            "retry_count": "CASE WHEN src.status = 'pending' THEN src.attempts WHEN src.attempts > "
                           "0 THEN src.attempts - 1 ELSE 0 END",
        },
        "clips": {
            "discovered_video_id": "(SELECT r.discovered_video_id FROM {pipeline_runs} r "
                                   "WHERE r.id = src.pipeline_run_id)",
            "rank_position": "ROW_NUMBER() OVER (PARTITION BY src.pipeline_run_id "
                             "ORDER BY src.score DESC NULLS LAST, src.id)",
            "start_time_seconds": "src.start_seconds", "end_time_seconds": "src.end_seconds",
            "clip_duration_seconds": "src.end_seconds - src.start_seconds",
            "clip_file_path": "src.file_path",
        },
        "shorts": {"status": "CASE src.status WHEN 'rendered' THEN 'review' ELSE src.status END"},
        "review_logs": {"action": "CASE WHEN src.action = 'edit' THEN 'approve' "
                                  "WHEN src.action IS NULL AND src.auto_held THEN 'hold' ELSE "
                                  "src.action END"},
    }


def _from_pipeline(db, models):
    """Each column's value from the pipeline's own tables: its columns as they are (naive UTC times
    as UTC, integer flags as booleans, script text as JSON on PostgreSQL), the package's own columns
    derived."""
    pg = backend_of(db) == "postgres"
    sources = {}
    for model in models:
        table = model._meta.table_name
        if not db.table_exists(table):
            continue
        have = {c.name: c.data_type.lower() for c in db.get_columns(table)}
        column_sources = sources[table] = {}
        for field in model._meta.sorted_fields:
            name, value = field.column_name, f"src.{q(field.column_name)}"
            if name not in have:
                continue  # _select gives it its default, or NULL
            if pg and isinstance(field, Timestamp) and "without time zone" in have[name]:
                value = f"({value} AT TIME ZONE 'UTC')"
            elif isinstance(field, BooleanField) and "bool" not in have[name]:
                value = f"({value} <> 0)"
            elif pg and isinstance(field, JSONField) and "json" not in have[name]:
                value = f"CAST({value} AS jsonb)"
            column_sources[name] = value
    runs = sources["pipeline_runs"]
    # A run was scheduled for its cycle; it last changed when it ended, or started.
    runs["created_at"] = runs["cycle_start"]
    runs["updated_at"] = (f"COALESCE({runs.get('completed_at', 'NULL')}, "
                          f"{runs.get('started_at', 'NULL')}, {runs['cycle_start']})")
    if "review_logs" in sources and "auto_held" in sources["review_logs"]:
        reviews = sources["review_logs"]  # a review the pipeline marked timed out is held
        reviews["action"] = (f"CASE WHEN src.action IS NULL AND {reviews['auto_held']} THEN 'hold' "
                             "ELSE src.action END")
    return sources


_NULL_TYPES = {"INT": "INTEGER", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE PRECISION",
               "BOOL": "BOOLEAN", "TEXT": "TEXT", "VARCHAR": "VARCHAR", "JSON": "JSONB",
               "TIMESTAMPTZ": "TIMESTAMPTZ"}


def _select(db, model, sources, old):
    """SELECT of `model`'s new rows from `old`'s table ({name} placeholders mapped by `old`) as
    `src`: each column from `sources`, else from the old column of its name, else its default, else
    NULL."""
    source = old[model._meta.table_name]
    have = {c.name for c in db.get_columns(source)}
    values = []
    for field in model._meta.sorted_fields:
        value = sources.get(field.column_name)
        if value is None and field.column_name in have:
            value = f"src.{q(field.column_name)}"
        if value is None:
            if isinstance(field.default, (str, int)) and not callable(field.default):
                value = repr(field.default) if isinstance(field.default,
                                                          str) else str(int(field.default))
                if isinstance(field, BooleanField):
                    value = "TRUE" if field.default else "FALSE"
            else:  # typed: PostgreSQL reads an untyped NULL in a subquery as text
                value = f"CAST(NULL AS {_NULL_TYPES.get(field.field_type, field.field_type)})"
        values.append(f"{value.format(**old)} AS {q(field.column_name)}")
    return f"SELECT {', '.join(values)} FROM {q(source)} AS src"


def _rebuild(db, models, sources, doing):
    """Check every row first, then rebuild each table of `models` (parents first) from `sources`."""
    tables = [m._meta.table_name for m in models]
    for table in tables:
        refuse_dependent_views(db, table, "the pipeline's schema (migration 0007)",
                               "with the new column names")
    current = {name: name for name in ALL}
    for model in models:
        table = model._meta.table_name
        parents = {f.column_name: f.rel_model._meta.table_name for f in model._meta.refs}
        refuse_bad_rows(db, model, _select(db, model, sources[table], current), parents, doing)
    for table in tables:
        set_aside(db, table)
    db.create_tables(models)
    aside = {name: name + "__old" if name in tables else name for name in ALL}
    for model in models:
        copy_rows(db, model, _select(db, model, sources[model._meta.table_name], aside))
    drop_aside(db, reversed(tables))
    for model in models:
        if model._meta.primary_key.column_name == "id":
            reset_sequence(db, model._meta.table_name)


def _cycles(db):
    """_pm_cycles: each old run's cycle, six hours from its creation, a microsecond apart where
    times tie."""
    db.execute_sql("CREATE TEMPORARY TABLE _pm_cycles (id INTEGER PRIMARY KEY, cycle_start "
                   "TIMESTAMPTZ, cycle_end TIMESTAMPTZ)")
    taken, rows = set(), []
    for run_id, created in db.execute_sql("SELECT id, created_at FROM pipeline_runs ORDER BY "
                                          "created_at, id"):
        if isinstance(created, str):
            created = datetime.datetime.fromisoformat(created)
        start = created.replace(tzinfo=None) if created.tzinfo is None else created.astimezone(
            datetime.timezone.utc)
        while start in taken:
            start += datetime.timedelta(microseconds=1)
        taken.add(start)
        rows.append((run_id, _stored(db, start), _stored(db, start + CYCLE)))
    insert = ("INSERT INTO _pm_cycles (id, cycle_start, cycle_end) "
              "VALUES ({0}, {0}, {0})").format(db.param)
    for row in rows:
        db.execute_sql(insert, row)


def _stored(db, moment):
    """A UTC time as the models store it: TIMESTAMPTZ on PostgreSQL, fixed-width UTC text on
    SQLite."""
    if backend_of(db) == "postgres":
        return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def up(migrator, db):
    models = frozen_models(db)
    rebuilt = [m for m in models if m._meta.table_name in REBUILT]
    _cycles(db)
    sources = _from_0006(db)
    _rebuild(db, rebuilt,
             {m._meta.table_name: sources.get(m._meta.table_name, {}) for m in rebuilt}, UPGRADE)
    db.execute_sql("DROP TABLE _pm_cycles")


def down(migrator, db):
    raise SchemaMismatch("migration 0007 cannot be undone: the pipeline's runs (one per niche and "
                         "cycle) have no "
                         "form in the per-video schema before it; restore a backup taken before "
                         "the upgrade")


def adopt_pipeline(db):
    """Bring the tables the pipeline's SQLAlchemy module made (any of the ten it lacks are created)
    to this schema."""
    models = frozen_models(db)
    sources = _from_pipeline(db, models)
    _refuse_bad_flags_and_json(db, models, sources)
    present = [m for m in models if m._meta.table_name in sources]
    _rebuild(db, present, sources, ADOPT)
    db.create_tables([m for m in models if m._meta.table_name not in sources])
    # analytics_latest and its triggers, filled from the rows
    migration("0006_analytics_latest").up(None, db)


def _refuse_bad_flags_and_json(db, models, sources):
    """What the rebuild's checks cannot see: an integer flag other than 0 or 1, script text that is
    not JSON."""
    for model in models:
        table = model._meta.table_name
        if table not in sources:
            continue
        for field in model._meta.sorted_fields:
            name = field.column_name
            if isinstance(field, BooleanField) and sources[table].get(name, "").endswith("<> 0)"):
                row = db.execute_sql(f"SELECT id, {q(name)} FROM {q(table)} WHERE {q(name)} NOT IN "
                                     "(0, 1) ORDER BY id LIMIT 1").fetchone()
                if row:
                    _bad(table, row[0], name, row[1], "a flag is 0 or 1")
            elif isinstance(field, JSONField) and name in sources[table]:
                for row_id, text in db.execute_sql(f"SELECT id, {q(name)} FROM {q(table)} ORDER BY "
                                                   "id"):
                    try:
                        value = json.loads(text) if isinstance(text, str) else text
                    except ValueError:
                        value = None
                    if not isinstance(value, (dict, list)):
                        _bad(table, row_id, name, text, "the script is a JSON object or list")


def _bad(table, row_id, column, value, rule):
    value = repr(value)
    value = value if len(value) <= 80 else value[:79] + "…"
    raise SchemaMismatch(f"{ADOPT} {table}: row id = {row_id} has {column} = {value}, which breaks "
                         "its rule "
                         f"({rule}); correct that row, then run init_db again (nothing was "
                         "changed)")
