"""The ten models of the short-video pipeline, all bound to `pipeline_models.db`.

discovered video -> pipeline run -> clips, scripts, TTS audio, shorts, review logs, error logs;
analytics snapshots are keyed by the uploaded short's YouTube id; config overrides stand alone.
"""
import contextlib
import datetime
import itertools
import logging
import operator
import traceback
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import peewee
from peewee import Check, ForeignKeyField

from .db import db, write_lock
from .enums import ReviewAction, RunStatus, ShortStatus, VideoStatus
from .errors import AlreadyAnswered, AlreadyUploaded, DatabaseNotBound, InvalidTransition, UploadInDoubt
from .fields import (
    BigIntegerField,
    BooleanField,
    CharField,
    EnumField,
    FloatField,
    IntegerField,
    JSONField,
    JSONTextField,
    TextField,
    UTCDateTimeField,
    utcnow,
)

logger = logging.getLogger("pipeline_models")

__all__ = [
    "BaseModel",
    "DiscoveredVideo",
    "PipelineRun",
    "Clip",
    "Script",
    "TTSAudio",
    "Short",
    "Analytics",
    "ReviewLog",
    "ConfigOverride",
    "ErrorLog",
    "ALL_MODELS",
]


def _at_least_zero(column: str) -> list:
    return [Check(f"{column} >= 0")]


def _fields_named(model: type, names: Any, allowed: Any = None) -> None:
    """Refuse names that are not fields the caller may set (default: any field, or a foreign key's _id column).

    peewee would silently ignore a misspelt keyword in Model(...) and create(), and fail obscurely in
    insert() and update(); the TypeError names the unknown name and the valid ones.
    """
    if allowed is None:
        allowed = model._meta.combined  # field names, and column names such as pipeline_run_id
        listed = model._meta.sorted_field_names
    else:
        listed = sorted(allowed)
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise TypeError(
            f"{model.__name__} has no settable field {', '.join(unknown)}; "
            f"use {', '.join(listed)}"
        )


def _names(data: Any) -> List[str]:
    """The string keys of insert()'s or update()'s positional dict (Field keys and queries pass through)."""
    return [key for key in data if isinstance(key, str)] if isinstance(data, dict) else []


def _one_line(text: str, limit: int = 1000) -> str:
    """Collapse whitespace (tracebacks, multi-line messages) into one line of at most `limit` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _is_postgres() -> bool:
    return isinstance(db.obj, peewee.PostgresqlDatabase)


_MISSING = object()
_exception_wrapper = getattr(peewee, "__exception_wrapper__")  # driver errors -> peewee's IntegrityError &c.


class BaseModel(peewee.Model):
    """Base of every model: bound to the shared proxy, snake_case table names."""

    class Meta:
        database = db
        legacy_table_names = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "__no_default__" not in kwargs:  # peewee's own row reads carry whatever the query selected
            _fields_named(type(self), kwargs)
        super().__init__(*args, **kwargs)

    @classmethod
    def insert(cls, data: Any = None, /, **insert: Any) -> peewee.ModelInsert:
        """peewee's insert(), refusing (TypeError) a name that is not a field instead of failing obscurely."""
        _fields_named(cls, [*_names(data), *insert])
        return super().insert(data, **insert)

    @classmethod
    def update(cls, data: Any = None, /, **update: Any) -> peewee.ModelUpdate:
        """peewee's update(), refusing (TypeError) a name that is not a field instead of failing obscurely."""
        _fields_named(cls, [*_names(data), *update])
        return super().update(data, **update)

    @classmethod
    def insert_rows(cls, rows: Iterable[Any], fields: Optional[Sequence[str]] = None,
                    chunk_size: int = 2000, none_is_default: Sequence[str] = ()) -> int:
        """Insert many rows, validated as create() would, in one transaction with one prepared statement.

        `rows` is any iterable (a generator keeps memory flat: it is read `chunk_size` rows at a time) of
        dicts keyed by field name, or of tuples in the order of `fields` (default: every field but the
        primary key). Missing values get the field's default, and so does None in the `none_is_default`
        columns. A bad row raises ValueError or peewee.IntegrityError naming its position (counted from 0)
        and the field, and nothing of the batch is written. Returns the number of rows inserted.
        """
        database = db.obj
        if database is None:
            raise DatabaseNotBound()
        columns = [f for f in cls._meta.sorted_fields if not isinstance(f, peewee.AutoField)]
        names = [f.name for f in columns]
        given = list(fields) if fields is not None else names
        _fields_named(cls, given, names)
        if isinstance(database, peewee.SqliteDatabase):
            marks = ["json(?)" if isinstance(f, peewee.JSONField) else "?" for f in columns]
        else:
            marks = ["%s::jsonb" if isinstance(f, peewee.JSONField) else "%s" for f in columns]
        quote = database.quote[0] + "{}" + database.quote[1]
        sql = "INSERT INTO {} ({}) VALUES ({})".format(
            quote.format(cls._meta.table_name), ", ".join(quote.format(f.column_name) for f in columns),
            ", ".join(marks))
        count = 0
        with write_lock():
            for chunk in peewee.chunked(rows, chunk_size):
                params = cls._bulk_params(chunk, count, columns, given, names, none_is_default)
                try:
                    with db.atomic(), _exception_wrapper:
                        database.cursor().executemany(sql, params)
                except peewee.IntegrityError as exc:
                    raise cls._bad_row(database, sql, params, count, exc) from None
                count += len(params)
        return count

    @classmethod
    def _bulk_params(cls, chunk: List[Any], start: int, columns: List[peewee.Field], given: List[str],
                     names: List[str], none_is_default: Sequence[str]) -> List[tuple]:
        """The chunk's rows as statement parameters, converted column by column."""
        if isinstance(chunk[0], dict):
            keys = set(itertools.chain.from_iterable(chunk))
            if not keys <= set(names):
                position = next(i for i, row in enumerate(chunk) if not row.keys() <= set(names))
                try:
                    _fields_named(cls, chunk[position], names)
                except TypeError as exc:
                    raise TypeError(f"row {start + position}: {exc}") from None
            values = {name: list(map(operator.methodcaller("get", name, _MISSING), chunk))
                      for name in names if name in keys}
        else:
            widths = set(map(len, chunk))
            if widths != {len(given)}:
                position = next(i for i, row in enumerate(chunk) if len(row) != len(given))
                raise ValueError(f"row {start + position}: {len(chunk[position])} values for the "
                                 f"{len(given)} fields {', '.join(given)}")
            values = dict(zip(given, map(list, zip(*chunk))))
        for name in none_is_default:
            if name in values and None in values[name]:
                values[name] = [_MISSING if v is None else v for v in values[name]]
        converted = [cls._bulk_column(field, values.get(field.name), len(chunk), start) for field in columns]
        return list(zip(*converted))

    @classmethod
    def _bulk_column(cls, field: peewee.Field, values: Optional[List[Any]], size: int, start: int) -> List[Any]:
        """One column of a chunk: defaults filled in, NULLs checked, values validated and converted."""
        if values is None:
            values = [_MISSING] * size
        # The set of types answers "any missing? any None?" without comparing every value to them.
        types = set(map(type, values))
        if object in types:  # _MISSING is the only plain object() a column holds
            default = field.default
            values = [(default() if callable(default) else default) if v is _MISSING else v for v in values]
            types = set(map(type, values))
        present, stored_none = values, None
        if type(None) in types:
            stored_none = field.db_value(None)  # what create() stores for None: NULL, or JSON text 'null'
            if stored_none is None and not field.null:  # the error create() gets from the database's NOT NULL
                position = values.index(None)
                raise peewee.IntegrityError(f"row {start + position}: {cls.__name__}.{field.name} may not be NULL")
            present = [v for v in values if v is not None]
            types.discard(type(None))
        fast = getattr(field, "fast_values", None)
        converted = fast(present, types) if fast is not None and present else None
        if converted is None:
            slow = getattr(field, "slow_value", field.db_value)
            converted = []
            for position, value in enumerate(present):
                try:
                    converted.append(slow(value))
                except (TypeError, ValueError) as exc:
                    where = next(i for i, v in enumerate(values) if v is value)
                    label = f"{cls.__name__}.{field.name}"
                    message = str(exc) if str(exc).startswith(label) else f"{label}: {exc}"
                    raise ValueError(f"row {start + where}: {message}") from None
        if present is values:
            return converted
        it = iter(converted)
        return [stored_none if v is None else next(it) for v in values]

    @classmethod
    def _bad_row(cls, database: peewee.Database, sql: str, params: List[tuple], start: int,
                 error: Exception) -> Exception:
        """Find which row of a chunk the database refused (the error path only: one row at a time)."""
        for position, row in enumerate(params):
            try:
                with db.atomic(), _exception_wrapper:
                    database.cursor().execute(sql, row)
            except peewee.IntegrityError as exc:
                return peewee.IntegrityError(f"row {start + position}: {cls.__name__}: {exc}")
        return error


class DiscoveredVideo(BaseModel):
    """A source video found on YouTube by a search query, channel or feed."""

    youtube_video_id = CharField(max_length=64, unique=True, help_text="the source video's YouTube id")
    title = TextField(null=True, help_text="its title on YouTube")
    channel_id = CharField(max_length=64, null=True, help_text="the channel that published it")
    channel_title = TextField(null=True, help_text="that channel's name")
    published_at = UTCDateTimeField(null=True, help_text="when it was published on YouTube")
    duration_seconds = FloatField(null=True, constraints=_at_least_zero("duration_seconds"),
                                  help_text="its length")
    view_count = BigIntegerField(null=True, constraints=_at_least_zero("view_count"),
                                 help_text="its views when found")
    source = TextField(null=True, help_text="the search, channel or feed that found it")
    discovered_at = UTCDateTimeField(default=utcnow, help_text="when it was found")
    status = EnumField(VideoStatus, default=VideoStatus.new, help_text="new, selected, skipped or processed")

    class Meta:
        table_name = "discovered_videos"

    METADATA = ("title", "channel_id", "channel_title", "published_at", "duration_seconds", "view_count", "source")

    @classmethod
    def discover(cls, youtube_video_id: str, **fields: Any) -> Tuple["DiscoveredVideo", bool]:
        """Record a found video once: return (video, created); finding it again refreshes the metadata given."""
        _fields_named(cls, fields, cls.METADATA)
        with write_lock():
            video = cls.get_or_none(cls.youtube_video_id == youtube_video_id)
            if video is None:
                try:
                    with db.atomic():  # a savepoint: on PostgreSQL another process may insert first
                        return cls.create(youtube_video_id=youtube_video_id, **fields), True
                except peewee.IntegrityError:
                    video = cls.get_or_none(cls.youtube_video_id == youtube_video_id)
                    if video is None:
                        raise
            changed = {name: value for name, value in fields.items() if getattr(video, name) != value}
            if changed:
                for name, value in changed.items():
                    setattr(video, name, value)
                video.save(only=list(changed))
            return video, False


class PipelineRun(BaseModel):
    """One pass of one video through the pipeline, claimed and advanced by workers."""

    # No cascade: deleting a video must not silently take its runs (and uploaded shorts) with it.
    discovered_video = ForeignKeyField(DiscoveredVideo, backref="runs", help_text="the video this run processes")
    status = EnumField(RunStatus, default=RunStatus.pending,
                       help_text="pending, running, awaiting_review, approved, rejected, published or failed")
    current_stage = CharField(max_length=64, null=True, help_text="the stage its worker last reported")
    worker = CharField(max_length=255, null=True, help_text="the worker that claimed it")
    attempts = IntegerField(default=0, constraints=_at_least_zero("attempts"), help_text="times it was claimed")
    started_at = UTCDateTimeField(null=True, help_text="when its current attempt was claimed")
    finished_at = UTCDateTimeField(null=True, help_text="when it was published, rejected or failed")
    heartbeat_at = UTCDateTimeField(null=True, help_text="when its worker last said it is alive")
    last_error = TextField(null=True, help_text="why it last failed or was requeued, on one line")
    created_at = UTCDateTimeField(default=utcnow, help_text="when it was queued")
    updated_at = UTCDateTimeField(default=utcnow, help_text="when it last changed")

    class Meta:
        table_name = "pipeline_runs"
        # The work queue: oldest pending run first, stale running runs, counts by status.
        indexes = ((("status", "created_at"), False),)

    def save(self, *args, **kwargs):
        """Save, stamping updated_at."""
        self.updated_at = utcnow()
        if kwargs.get("only"):
            kwargs["only"] = [*kwargs["only"], PipelineRun.updated_at]
        return super().save(*args, **kwargs)

    # Where each status may go next. approved -> failed covers an upload that fails after approval.
    TRANSITIONS = {
        RunStatus.pending: {RunStatus.running},
        RunStatus.running: {RunStatus.awaiting_review, RunStatus.failed},
        RunStatus.awaiting_review: {RunStatus.approved, RunStatus.rejected, RunStatus.failed},
        RunStatus.approved: {RunStatus.published, RunStatus.failed},
        RunStatus.rejected: set(),
        RunStatus.published: set(),
        RunStatus.failed: {RunStatus.pending},
    }
    FINISHED = (RunStatus.published, RunStatus.rejected, RunStatus.failed)

    @classmethod
    def start(cls, video: DiscoveredVideo) -> "PipelineRun":
        """Queue a new pending run for `video` (and mark a new video selected)."""
        with db.atomic():
            run = cls.create(discovered_video=video)
            (DiscoveredVideo.update(status=VideoStatus.selected)
             .where((DiscoveredVideo.id == run.discovered_video_id) & (DiscoveredVideo.status == VideoStatus.new))
             .execute())
        return run

    @classmethod
    def claim_next(cls, worker: str) -> Optional["PipelineRun"]:
        """Take the oldest pending run for `worker`: mark it running and count the attempt; None when none is left.

        One statement under the write lock, so N processes claiming at once claim each run exactly once;
        on PostgreSQL, FOR UPDATE SKIP LOCKED lets them pass one another instead of queueing.
        """
        oldest = (cls.select(cls.id).where(cls.status == RunStatus.pending)
                  .order_by(cls.created_at, cls.id).limit(1))
        if _is_postgres():
            oldest = oldest.for_update(skip_locked=True)
        now = utcnow()
        claim = (cls.update(status=RunStatus.running, worker=worker, attempts=cls.attempts + 1,
                            started_at=now, heartbeat_at=now, finished_at=None, updated_at=now)
                 .where((cls.id == oldest) & (cls.status == RunStatus.pending))
                 .returning(cls))
        with write_lock():
            claimed = list(claim.execute())
        return claimed[0] if claimed else None

    def advance(self, status: Union[RunStatus, str], stage: Optional[str] = None,
                reason: Optional[str] = None) -> "PipelineRun":
        """Move the run to `status` if the transition is allowed, as a compare-and-set on its current status.

        `stage` sets current_stage. Moving to failed needs a `reason` (kept in last_error, on one line).
        Raises InvalidTransition, changing nothing, when the move is not allowed or another process moved
        the run first.
        """
        target = RunStatus(type(self).status.db_value(status))  # ValueError naming the field if unknown
        current = RunStatus(self.status)
        if target not in self.TRANSITIONS[current]:
            raise InvalidTransition(self.id, current, target)
        if target is RunStatus.failed and not (reason and str(reason).strip()):
            raise ValueError("PipelineRun.advance: moving a run to failed needs a reason, e.g. reason=str(exc)")
        now = utcnow()
        changes: Dict[str, Any] = {"status": target, "updated_at": now}
        if stage is not None:
            changes["current_stage"] = stage
        if reason is not None:
            changes["last_error"] = _one_line(reason)
        if target in self.FINISHED:
            changes["finished_at"] = now
        elif target is RunStatus.running:
            changes.update(started_at=now, heartbeat_at=now)
        elif target is RunStatus.pending:  # a retry: a worker will claim it afresh
            changes.update(finished_at=None, worker=None, heartbeat_at=None)
        cls = type(self)
        updated = cls.update(**changes).where((cls.id == self.id) & (cls.status == current)).execute()
        if not updated:
            now_status = cls.select(cls.status).where(cls.id == self.id).scalar()
            raise InvalidTransition(self.id, current, target,
                                    f"it is {now_status or 'gone'} now (another process moved it)")
        for name, value in changes.items():
            setattr(self, name, value)
        return self

    def heartbeat(self, stage: Optional[str] = None) -> bool:
        """Tell the queue this run's worker is alive (and at `stage`, if given).

        Returns False, changing nothing, when the run is no longer running for this worker: it was
        requeued or moved on, and the worker should drop it.
        """
        cls = type(self)
        changes: Dict[str, Any] = {"heartbeat_at": utcnow()}
        if stage is not None:
            changes["current_stage"] = stage
        touched = (cls.update(**changes)
                   .where((cls.id == self.id) & (cls.status == RunStatus.running) & (cls.worker == self.worker))
                   .execute())
        if touched:
            for name, value in changes.items():
                setattr(self, name, value)
        return bool(touched)

    @classmethod
    def requeue_stale(cls, older_than: datetime.timedelta) -> int:
        """Return to pending the running runs with no heartbeat for `older_than` (their worker died); say how many."""
        now = utcnow()
        cutoff = now - older_than
        stale = (cls.status == RunStatus.running) & (
            (cls.heartbeat_at < cutoff) | (cls.heartbeat_at.is_null() & (cls.started_at < cutoff)))
        with write_lock():
            return (cls.update(status=RunStatus.pending, worker=None, heartbeat_at=None, updated_at=now,
                               last_error=f"requeued: no heartbeat for {older_than}")
                    .where(stale).execute())


class Clip(BaseModel):
    """A cut of the source video, scored for how well it would work as a short."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="clips", on_delete="CASCADE", help_text="the run that cut it")
    start_seconds = FloatField(constraints=_at_least_zero("start_seconds"), help_text="where it starts in the source")
    end_seconds = FloatField(help_text="where it ends; after start_seconds")
    file_path = TextField(null=True, help_text="the cut file")
    score = FloatField(null=True, help_text="how well it would work as a short")
    transcript = TextField(null=True, help_text="what is said in it")
    created_at = UTCDateTimeField(default=utcnow, help_text="when it was cut")

    class Meta:
        table_name = "clips"
        constraints = [Check("end_seconds > start_seconds", name="clips_end_after_start")]


class Script(BaseModel):
    """The narration an LLM wrote for a run, with what it cost."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="scripts", on_delete="CASCADE",
                                   help_text="the run it was written for")
    opening_text = TextField(null=True, help_text="the opening line, the hook")
    closing_text = TextField(null=True, help_text="the closing line, the call to action")
    full_script_json = JSONField(types=(dict, list), help_text="the whole script, structured: a dict or a list")
    total_char_count = IntegerField(constraints=_at_least_zero("total_char_count"),
                                    help_text="characters of narration")
    estimated_duration_seconds = FloatField(constraints=_at_least_zero("estimated_duration_seconds"),
                                            help_text="how long the narration should take to speak")
    llm_model_used = TextField(help_text="the LLM that wrote it")
    generated_at = UTCDateTimeField(default=utcnow, help_text="when it was written")
    title = TextField(null=True, help_text="the title it proposes for the short")
    prompt_tokens = IntegerField(null=True, constraints=_at_least_zero("prompt_tokens"),
                                 help_text="tokens sent to the LLM")
    completion_tokens = IntegerField(null=True, constraints=_at_least_zero("completion_tokens"),
                                     help_text="tokens the LLM wrote")
    cost_usd = FloatField(null=True, constraints=_at_least_zero("cost_usd"), help_text="what the LLM call cost")

    class Meta:
        table_name = "scripts"


class TTSAudio(BaseModel):
    """Synthesised narration audio for a run."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="audio", on_delete="CASCADE",
                                   help_text="the run it narrates")
    engine_used = CharField(max_length=255, help_text="the TTS engine, e.g. piper or openai")
    voice_profile = CharField(max_length=255, null=True, help_text="the voice it used")
    audio_file_path = CharField(max_length=512, null=True, help_text="the audio file")
    duration_seconds = FloatField(null=True, constraints=_at_least_zero("duration_seconds"),
                                  help_text="its length")
    generated_at = UTCDateTimeField(default=utcnow, help_text="when it was synthesised")

    class Meta:
        table_name = "tts_audio"


class Short(BaseModel):
    """A rendered vertical short, from render through review to upload."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="shorts", on_delete="CASCADE",
                                   help_text="the run that rendered it")
    clip = ForeignKeyField(Clip, backref="shorts", null=True, on_delete="SET NULL", help_text="the clip it is cut from")
    file_path = CharField(max_length=512, null=True, help_text="the rendered video file")
    duration_seconds = FloatField(null=True, constraints=_at_least_zero("duration_seconds"), help_text="its length")
    title = CharField(max_length=255, null=True, help_text="its title on YouTube")
    description = TextField(null=True, help_text="its description on YouTube")
    # Unique when set (NULLs never collide): a short is uploaded once.
    youtube_video_id = CharField(max_length=100, null=True, unique=True, help_text="its YouTube id once uploaded")
    youtube_url = CharField(max_length=512, null=True, help_text="its address on YouTube")
    status = EnumField(ShortStatus, max_length=32, default=ShortStatus.pending,
                       help_text="pending, rendered, uploaded, rejected or failed")
    uploaded_at = UTCDateTimeField(null=True, help_text="when it was uploaded")
    # Set when an upload begins: with no video id after it, an upload may have reached YouTube unrecorded.
    upload_started_at = UTCDateTimeField(null=True, help_text="when an upload of it began (the upload claim)")
    created_at = UTCDateTimeField(null=True, default=utcnow, help_text="when it was rendered")

    class Meta:
        table_name = "shorts"

    def start_upload(self) -> None:
        """Claim this short for one upload, before sending it to YouTube.

        Raises AlreadyUploaded if it has a video id, and UploadInDoubt if an earlier upload began and never
        recorded one (a crash between the upload and mark_uploaded): check the channel, then call
        mark_uploaded() with the id found or abandon_upload() to allow a new upload.
        """
        cls = type(self)
        now = utcnow()
        claimed = (cls.update(upload_started_at=now)
                   .where((cls.id == self.id) & cls.youtube_video_id.is_null() & cls.upload_started_at.is_null())
                   .execute())
        if claimed:
            self.upload_started_at = now
            return
        row = cls.get_by_id(self.id)
        if row.youtube_video_id is not None:
            raise AlreadyUploaded(f"short {self.id} is already on YouTube as {row.youtube_video_id}")
        raise UploadInDoubt(
            f"short {self.id} began uploading at {row.upload_started_at:%Y-%m-%d %H:%M:%S} UTC and recorded no "
            "video id: check the channel, then call mark_uploaded(id) or abandon_upload()"
        )

    def abandon_upload(self) -> None:
        """Release an upload claim when the upload is known not to have reached YouTube."""
        cls = type(self)
        cls.update(upload_started_at=None).where((cls.id == self.id) & cls.youtube_video_id.is_null()).execute()
        self.upload_started_at = None

    def mark_uploaded(self, youtube_video_id: str, youtube_url: Optional[str] = None,
                      uploaded_at: Optional[datetime.datetime] = None) -> bool:
        """Record the upload (video id, url, time, status uploaded) in one write; True if this call recorded it.

        Recording the same id again is a harmless retry (False); a different id raises AlreadyUploaded.
        """
        cls = type(self)
        changes = dict(youtube_video_id=youtube_video_id, status=ShortStatus.uploaded,
                       youtube_url=f"https://youtube.com/shorts/{youtube_video_id}" if youtube_url is None
                       else youtube_url,
                       uploaded_at=utcnow() if uploaded_at is None else uploaded_at)
        recorded = cls.update(**changes).where((cls.id == self.id) & cls.youtube_video_id.is_null()).execute()
        if recorded:
            for name, value in changes.items():
                setattr(self, name, value)
            return True
        existing = cls.get_by_id(self.id).youtube_video_id  # DoesNotExist if the short is gone
        if existing != youtube_video_id:
            raise AlreadyUploaded(
                f"short {self.id} is already on YouTube as {existing}; refusing to record {youtube_video_id}"
            )
        return False


class Analytics(BaseModel):
    """One snapshot of an uploaded short's YouTube metrics; NULL means "not reported", not zero."""

    youtube_video_id = CharField(max_length=100, help_text="the uploaded short's YouTube id")
    measured_at = UTCDateTimeField(default=utcnow, help_text="when the metrics were read")
    view_count = BigIntegerField(null=True, constraints=_at_least_zero("view_count"), help_text="views")
    like_count = BigIntegerField(null=True, constraints=_at_least_zero("like_count"), help_text="likes")
    comment_count = BigIntegerField(null=True, constraints=_at_least_zero("comment_count"), help_text="comments")
    average_view_duration_seconds = FloatField(null=True, constraints=_at_least_zero("average_view_duration_seconds"),
                                               help_text="how long a view lasts on average")
    click_through_rate = FloatField(null=True, help_text="impressions that became views, as a fraction 0..1",
                                    constraints=[Check("click_through_rate >= 0 AND click_through_rate <= 1")])
    subscriber_gain = BigIntegerField(null=True, constraints=_at_least_zero("subscriber_gain"),
                                      help_text="subscribers gained through it")
    estimated_revenue_usd = FloatField(null=True, constraints=_at_least_zero("estimated_revenue_usd"),
                                       help_text="revenue YouTube estimates for it")
    engaged_views = BigIntegerField(null=True, constraints=_at_least_zero("engaged_views"),
                                    help_text="views YouTube counts as engaged")
    shares = BigIntegerField(null=True, constraints=_at_least_zero("shares"), help_text="shares")
    watch_time_minutes = FloatField(null=True, constraints=_at_least_zero("watch_time_minutes"),
                                    help_text="total time watched")

    class Meta:
        table_name = "analytics"

    METRICS = ("view_count", "like_count", "comment_count", "average_view_duration_seconds", "click_through_rate",
               "subscriber_gain", "estimated_revenue_usd", "engaged_views", "shares", "watch_time_minutes")
    # Cumulative counters: growth is their difference between two snapshots (ratios are not).
    COUNTERS = ("view_count", "like_count", "comment_count", "subscriber_gain", "estimated_revenue_usd",
                "engaged_views", "shares", "watch_time_minutes")

    @classmethod
    def record(cls, youtube_video_id: str, measured_at: Optional[datetime.datetime] = None,
               **metrics: Any) -> "Analytics":
        """Store one snapshot of a video's metrics (now, unless `measured_at` says when); omitted metrics are NULL."""
        _fields_named(cls, metrics, cls.METRICS)
        measured_at = utcnow() if measured_at is None else measured_at  # not `or`: False is a bad value, not now
        return cls.create(youtube_video_id=youtube_video_id, measured_at=measured_at, **metrics)

    RECORD_FIELDS = ("youtube_video_id", "measured_at", *METRICS)

    @classmethod
    def record_many(cls, rows: Iterable[Any], chunk_size: int = 2000) -> int:
        """Store many snapshots at once: dicts, or tuples in RECORD_FIELDS order; returns how many.

        Validated exactly as record() would, written in one transaction with one prepared statement,
        `chunk_size` rows at a time so a generator of any length keeps memory flat. A bad row aborts the
        whole batch (nothing is written) with an error naming its position.
        """
        return cls.insert_rows(rows, fields=cls.RECORD_FIELDS, chunk_size=chunk_size,
                               none_is_default=("measured_at",))  # as in record(): None means now

    # Walks the (youtube_video_id, measured_at) index: one seek per video to find the next video id, one
    # to find its newest snapshot. Cost follows the number of videos, not of snapshots (a plain GROUP BY
    # or DISTINCT would read every snapshot).
    _LATEST_SQL = """
        WITH RECURSIVE videos(vid) AS (
            SELECT MIN(youtube_video_id) FROM analytics
            UNION ALL
            SELECT (SELECT MIN(youtube_video_id) FROM analytics WHERE youtube_video_id > vid)
            FROM videos WHERE vid IS NOT NULL
        )
        SELECT a.* FROM videos JOIN analytics a ON a.id = (
            SELECT id FROM analytics WHERE youtube_video_id = videos.vid
            ORDER BY measured_at DESC, id DESC LIMIT 1)
        ORDER BY a.view_count IS NULL, a.view_count DESC, a.youtube_video_id
    """

    @classmethod
    def latest(cls) -> List["Analytics"]:
        """The newest snapshot of every video, most viewed first."""
        return list(cls.raw(cls._LATEST_SQL))

    @classmethod
    def top(cls, n: int = 10) -> List["Analytics"]:
        """The newest snapshots of the `n` most viewed videos."""
        return cls.latest()[:n]

    @classmethod
    def growth(cls, youtube_video_id: str, since: datetime.datetime) -> Optional[Dict[str, Any]]:
        """Change of each counter from the first snapshot at or after `since` to the latest one.

        Returns {"since": ..., "until": ..., "views": +n, ...} (None for a counter either snapshot lacks),
        or None when the video has no snapshot since then.
        """
        after = cls.select().where((cls.youtube_video_id == youtube_video_id) & (cls.measured_at >= since))
        first = after.order_by(cls.measured_at, cls.id).first()
        if first is None:
            return None
        last = after.order_by(cls.measured_at.desc(), cls.id.desc()).first()
        change: Dict[str, Any] = {"since": first.measured_at, "until": last.measured_at}
        for name in cls.COUNTERS:
            old, new = getattr(first, name), getattr(last, name)
            change[name] = None if old is None or new is None else new - old
        return change


# The seed's index names (peewee would name a Meta.indexes entry after its table and columns).
Analytics.add_index(Analytics.youtube_video_id, Analytics.measured_at, name="idx_analytics_video")


class ReviewLog(BaseModel):
    """A request for a human verdict on a run's short, and the answer (action is NULL until then)."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="reviews", on_delete="CASCADE",
                                   help_text="the run under review")
    sent_at = UTCDateTimeField(default=utcnow, help_text="when the request was sent")
    responded_at = UTCDateTimeField(null=True, help_text="when the answer came")
    action = EnumField(ReviewAction, null=True, help_text="approve, reject or edit; NULL until answered")
    response_detail = CharField(max_length=1024, null=True, help_text="the reviewer's words, e.g. the edit asked for")
    auto_held = BooleanField(default=False, help_text="nobody answered in time")
    # The chat message that asked: a second tap on it finds this row and changes nothing.
    message_id = CharField(max_length=128, null=True, unique=True, help_text="the chat message that asked")
    reviewer = CharField(max_length=255, null=True, help_text="who answered")

    class Meta:
        table_name = "review_logs"
        # Unanswered reviews (action IS NULL) oldest first: the auto-hold sweep and the open count.
        indexes = ((("action", "sent_at"), False),)

    # What each answer does to the run: an edit approves the short with the reviewer's changes in `response_detail`.
    OUTCOME = {
        ReviewAction.approve: RunStatus.approved,
        ReviewAction.edit: RunStatus.approved,
        ReviewAction.reject: RunStatus.rejected,
    }

    @classmethod
    def request(cls, run: PipelineRun, message_id: Optional[str] = None) -> "ReviewLog":
        """Ask for a review of `run` (sent now) and move the run to awaiting_review, in one transaction."""
        with db.atomic():
            run.advance(RunStatus.awaiting_review, stage="review")
            return cls.create(pipeline_run=run, message_id=message_id)

    def respond(self, action: Union[ReviewAction, str], response_detail: Optional[str] = None,
                reviewer: Optional[str] = None) -> bool:
        """Record the human answer once and move the run to approved or rejected; True if this call recorded it.

        A rejection also marks the run's not yet uploaded shorts rejected.

        The same answer again (a second tap on the button) changes nothing and returns False; a different
        answer to an answered review raises AlreadyAnswered.
        """
        cls = type(self)
        action = ReviewAction(cls.action.db_value(action))  # ValueError naming the field if unknown
        now = utcnow()
        with write_lock():
            answered = (cls.update(action=action, response_detail=response_detail, reviewer=reviewer,
                                   responded_at=now)
                        .where((cls.id == self.id) & cls.action.is_null()).execute())
            if not answered:
                row = cls.get_by_id(self.id)
                if row.action is action:
                    return False
                raise AlreadyAnswered(f"review {self.id} was already answered {row.action} "
                                      f"by {row.reviewer or 'someone'}; refusing {action}")
            run = PipelineRun.get_by_id(self.pipeline_run_id)
            run.advance(self.OUTCOME[action])
            if action is ReviewAction.reject:  # the run's unpublished shorts are rejected with it
                (Short.update(status=ShortStatus.rejected)
                 .where((Short.pipeline_run == run.id) & Short.status.in_([ShortStatus.pending, ShortStatus.rendered]))
                 .execute())
        self.action, self.response_detail, self.reviewer, self.responded_at = action, response_detail, reviewer, now
        return True

    @classmethod
    def answer(cls, message_id: str, action: Union[ReviewAction, str], response_detail: Optional[str] = None,
               reviewer: Optional[str] = None) -> Tuple["ReviewLog", bool]:
        """Handle a tap on the chat message `message_id`: (review, True) when recorded, (review, False) for a repeat."""
        review = cls.get_or_none(cls.message_id == message_id)
        if review is None:
            raise cls.DoesNotExist(f"no review was requested with message_id {message_id!r}")
        return review, review.respond(action, response_detail=response_detail, reviewer=reviewer)

    @classmethod
    def hold_stale(cls, older_than: datetime.timedelta) -> int:
        """Mark unanswered reviews sent more than `older_than` ago as auto-held; return how many."""
        cutoff = utcnow() - older_than
        return (cls.update(auto_held=True)
                .where(cls.action.is_null() & (cls.sent_at < cutoff) & (cls.auto_held == False))  # noqa: E712
                .execute())

    @classmethod
    def open(cls) -> peewee.ModelSelect:
        """Reviews still waiting for an answer, oldest first (auto-held ones included)."""
        return cls.select().where(cls.action.is_null()).order_by(cls.sent_at)


class ConfigOverride(BaseModel):
    """A runtime setting that overrides the pipeline's defaults; the value is any JSON value."""

    key = CharField(max_length=255, primary_key=True, help_text="the setting's name")
    value = JSONTextField(max_length=1024, help_text="any JSON value, at most 1024 characters of JSON")
    updated_at = UTCDateTimeField(default=utcnow, help_text="when it was last set")
    updated_by = CharField(max_length=64, default="system", help_text="who set it")

    class Meta:
        table_name = "config_overrides"

    @classmethod
    def set(cls, key: str, value: Any, updated_by: str = "system") -> Any:
        """Store `value` (anything JSON can hold) under `key`, replacing what was there; returns the value."""
        row = dict(key=key, value=value, updated_by=updated_by, updated_at=utcnow())
        keep = [cls.value, cls.updated_by, cls.updated_at]
        cls.insert(**row).on_conflict(conflict_target=[cls.key], preserve=keep).execute()
        return value

    @classmethod
    def get(cls, *query: Any, **filters: Any) -> Any:
        """`ConfigOverride.get(key, default=None)`: the value stored under key, with its JSON type.

        Given peewee expressions instead of a key string, this is peewee's Model.get.
        """
        if not (query and isinstance(query[0], str)):
            return super().get(*query, **filters)
        key, *rest = query
        default = rest[0] if rest else filters.pop("default", None)
        row = cls.select(cls.value).where(cls.key == key).first()
        return default if row is None else row.value

    @classmethod
    def as_dict(cls) -> Dict[str, Any]:
        """Every override as {key: value}."""
        return {row.key: row.value for row in cls.select(cls.key, cls.value).order_by(cls.key)}


class ErrorLog(BaseModel):
    """An exception a pipeline module hit; kept when its run is deleted (pipeline_run becomes NULL)."""

    pipeline_run = ForeignKeyField(PipelineRun, backref="errors", null=True, on_delete="SET NULL",
                                   help_text="the run it happened in, if any")
    module = CharField(max_length=255, help_text="the pipeline module that hit it")
    error_type = CharField(max_length=255, help_text="the exception's class name")
    error_message = TextField(help_text="the exception's message")
    stack_trace = TextField(null=True, help_text="the formatted traceback")
    occurred_at = UTCDateTimeField(default=utcnow, help_text="when it happened")
    resolved = BooleanField(default=False, help_text="someone dealt with it")

    class Meta:
        table_name = "error_logs"
        indexes = ((("resolved", "occurred_at"), False),)  # the unresolved errors across modules

    @classmethod
    def record(cls, exc: BaseException, module: str, pipeline_run: Optional[PipelineRun] = None) -> "ErrorLog":
        """Store `exc` (class name, message, formatted traceback) as an unresolved error of `module`.

        Written in the caller's transaction, if any: should that transaction roll back, this row goes with
        it. To record an error that aborts a transaction, use capture() around that transaction.
        """
        return cls.create(
            pipeline_run=pipeline_run,
            module=module,
            error_type=type(exc).__name__,
            error_message=str(exc) or repr(exc),
            stack_trace="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        )

    @classmethod
    def capture(cls, module: str, pipeline_run: Optional[PipelineRun] = None) -> "_Capture":
        """Context manager and decorator: record any exception escaping the block, then re-raise it.

        Put it outside the block's transaction: the row is written after that transaction rolled back,
        so it is never lost with it.
        """
        return _Capture(module, pipeline_run)

    @classmethod
    def unresolved(cls, module: Optional[str] = None) -> peewee.ModelSelect:
        """Unresolved errors, newest first; only `module`'s when given."""
        where = cls.resolved == False  # noqa: E712
        if module is not None:
            where &= cls.module == module
        return cls.select().where(where).order_by(cls.occurred_at.desc())

    def resolve(self) -> None:
        """Mark this error resolved."""
        type(self).update(resolved=True).where(type(self).id == self.id).execute()
        self.resolved = True


ErrorLog.add_index(ErrorLog.module, ErrorLog.occurred_at, name="idx_error_log_module")  # a module's errors


class _Capture(contextlib.ContextDecorator):
    """ErrorLog.capture(): records the exception leaving the block; a failure to record never hides it."""

    def __init__(self, module: str, pipeline_run: Optional[PipelineRun]) -> None:
        self.module, self.pipeline_run = module, pipeline_run

    def __enter__(self) -> "_Capture":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        if exc is not None and isinstance(exc, Exception):
            try:
                ErrorLog.record(exc, self.module, self.pipeline_run)
            except Exception:
                logger.exception("could not record %s from %s", exc_type.__name__, self.module)
        return False  # re-raise


ALL_MODELS = [
    DiscoveredVideo,
    PipelineRun,
    Clip,
    Script,
    TTSAudio,
    Short,
    Analytics,
    ReviewLog,
    ConfigOverride,
    ErrorLog,
]
