"""The work queue: DiscoveredVideo, the source videos found, and PipelineRun, one pass of one video through
the pipeline (claimed under a lease, retried with backoff, reviewed, published)."""
import contextlib
import datetime
import random
import secrets
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import peewee
from peewee import SQL

from ..db import db, write_lock
from ..enums import RunStatus, ShortStatus, VideoStatus
from ..errors import InvalidTransition, LeaseLost
from ..fields import (CheckedBigIntegerField, CheckedCharField, CheckedEnumField, CheckedFloatField,
                      CheckedForeignKeyField, CheckedIntegerField, CheckedTextField, UTCDateTimeField, _now, utcnow)
from .base import (BaseModel, _at_least_zero, _Deprecated, _is_postgres, _one_line, _refuse_unknown_fields,
                   _unchanged_on_failure)
from .config import ConfigOverride


class DiscoveredVideo(BaseModel):
    """A source video found on YouTube by a search query, channel or feed."""

    youtube_video_id = CheckedCharField(max_length=64, unique=True, help_text="the source video's YouTube id")
    title = CheckedTextField(null=True, help_text="its title on YouTube")
    channel_id = CheckedCharField(max_length=64, null=True, help_text="the channel that published it")
    channel_title = CheckedTextField(null=True, help_text="that channel's name")
    published_at = UTCDateTimeField(null=True, help_text="when it was published on YouTube")
    duration_seconds = CheckedFloatField(null=True, constraints=_at_least_zero("duration_seconds"),
                                         help_text="its length")
    view_count = CheckedBigIntegerField(null=True, constraints=_at_least_zero("view_count"),
                                        help_text="its views when found")
    source = CheckedTextField(null=True, help_text="the search, channel or feed that found it")
    discovered_at = UTCDateTimeField(default=utcnow, help_text="when it was found")
    status = CheckedEnumField(VideoStatus, default=VideoStatus.new, help_text="new, selected, skipped or processed")

    class Meta:
        table_name = "discovered_videos"

    # The metadata discover() takes and refreshes.
    DISCOVER_FIELDS = ("title", "channel_id", "channel_title", "published_at", "duration_seconds", "view_count",
                       "source")
    METADATA = _Deprecated("DISCOVER_FIELDS")  # the old name, for one release
    # Where each status may go, and what moves it (drawn in the README's diagram). A video's status follows its
    # latest run: PipelineRun.VIDEO_AFTER.
    TRANSITIONS = {
        VideoStatus.new: {VideoStatus.selected: "PipelineRun.start()", VideoStatus.skipped: "your discovery filter"},
        VideoStatus.selected: {VideoStatus.processed: "its run published",
                               VideoStatus.skipped: "its run rejected or failed for good"},
        VideoStatus.skipped: {VideoStatus.selected: "start(), start(again=True), retry()"},
        VideoStatus.processed: {VideoStatus.selected: "start(again=True)"},
    }

    @classmethod
    def discover(cls, youtube_video_id: str, **fields: Any) -> Tuple["DiscoveredVideo", bool]:
        """Record a found video once: return (video, created); finding it again refreshes the metadata given."""
        _refuse_unknown_fields(cls, fields, cls.DISCOVER_FIELDS)
        if not isinstance(youtube_video_id, str) or not youtube_video_id.strip():
            raise ValueError(f"DiscoveredVideo.youtube_video_id: discover needs the video's YouTube id, "
                             f"not {youtube_video_id!r}")
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
    """One pass of one video through the pipeline: queued, claimed by a worker under a lease, reviewed, published."""

    # No cascade: deleting a video must not silently take its runs (and uploaded shorts) with it.
    discovered_video = CheckedForeignKeyField(DiscoveredVideo, backref="runs", help_text="the video this run processes")
    status = CheckedEnumField(RunStatus, default=RunStatus.pending,
                              help_text="pending, running, awaiting_review, approved, rejected, published or failed")
    current_stage = CheckedCharField(max_length=64, null=True, help_text="the stage its worker last reported")
    worker = CheckedCharField(max_length=255, null=True, help_text="the worker that claimed it")
    attempts = CheckedIntegerField(default=0, constraints=_at_least_zero("attempts"),
                                   help_text="times it was claimed since it was queued or retried by an operator")
    started_at = UTCDateTimeField(null=True, help_text="when its current attempt was claimed")
    finished_at = UTCDateTimeField(null=True, help_text="when it was published, rejected or failed")
    heartbeat_at = UTCDateTimeField(null=True, help_text="when its worker last said it is alive")
    last_error = CheckedTextField(null=True, help_text="why it last failed or was requeued, on one line")
    created_at = UTCDateTimeField(default=utcnow, help_text="when it was queued")
    updated_at = UTCDateTimeField(default=utcnow, help_text="when it last changed")
    # The fencing token: every write only the claiming worker may make compares it, so a worker whose
    # lease was lost (requeued while it stalled) changes nothing.
    claim_token = CheckedCharField(max_length=32, null=True, help_text="the current claim's token, new at every claim")
    not_before = UTCDateTimeField(null=True, help_text="a requeued run is not claimed before this time (backoff)")

    class Meta:
        table_name = "pipeline_runs"
        # The work queue: oldest pending run first, stale running runs, counts by status.
        indexes = ((("status", "created_at"), False),)

    # The queue's own fields: only its operations write them on an existing run (save() refuses them).
    QUEUE_FIELDS = ("status", "worker", "attempts", "claim_token", "started_at", "finished_at", "heartbeat_at",
                    "not_before")

    def save(self, force_insert: bool = False, only: Any = None) -> Union[int, bool]:
        """Save the fields changed on this object, stamping updated_at.

        On an existing run, the queue's fields (QUEUE_FIELDS) are refused with ValueError: claim_next(),
        heartbeat(), advance(), fail(), retry() and requeue_stale() move them. A run this object holds the
        claim of is saved only while the claim holds (LeaseLost otherwise, nothing written).
        """
        self.updated_at = utcnow()
        if only:
            only = [*only, PipelineRun.updated_at]
        if self._pk is None or force_insert:
            return super().save(force_insert=force_insert, only=only)
        names = {field if isinstance(field, str) else field.name for field in (only or self.dirty_fields)}
        changed = sorted(names & set(self.QUEUE_FIELDS))
        if changed:
            field = self._meta.fields[changed[0]]
            field.db_value(getattr(self, field.name))  # a bad value is refused for what it is first
            raise ValueError(f"{field.label()}: save() does not move a run; use claim_next(), heartbeat(), "
                             f"advance(), fail(), retry() or requeue_stale()")
        with write_lock():
            if self.status is RunStatus.running and self.claim_token is not None:
                self._check_claim(self._locked_row())  # this object's worker holds the claim still
            return super().save(only=only)

    def refresh(self) -> "PipelineRun":
        """Reload every field from the database; self. A claim this object held and lost meanwhile is kept.

        So a worker whose lease was lost still gets LeaseLost (naming its own claim) after a refresh, rather
        than taking on the new holder's claim: its worker, attempts and claim_token stay its own.
        """
        claim = {name: self.__data__.get(name) for name in ("worker", "attempts", "claim_token")}
        super().refresh()
        if claim["claim_token"] not in (None, self.claim_token):
            self.__data__.update(claim)
        return self

    # Where each status may go, and the operation that moves it there (the README's diagram is drawn from this).
    TRANSITIONS = {
        RunStatus.pending: {RunStatus.running: "claim_next()"},
        RunStatus.running: {RunStatus.awaiting_review: "ReviewLog.request()",
                            RunStatus.pending: "fail() to retry, requeue_stale()",
                            RunStatus.failed: "fail() for good, advance()"},
        RunStatus.awaiting_review: {RunStatus.approved: "respond() approve or edit",
                                    RunStatus.rejected: "respond() reject", RunStatus.failed: "advance()"},
        RunStatus.approved: {RunStatus.published: "mark_uploaded() of its last short, advance()",
                             RunStatus.failed: "advance()"},
        RunStatus.rejected: {},
        RunStatus.published: {},
        RunStatus.failed: {RunStatus.pending: "retry()"},
    }
    # Moves only these operations make: they hold the claim or the retry policy advance() knows nothing of.
    _THROUGH = {(RunStatus.pending, RunStatus.running): "claim_next(worker)",
                (RunStatus.running, RunStatus.pending): "fail(reason) or requeue_stale()",
                (RunStatus.failed, RunStatus.pending): "retry()"}
    FINISHED = (RunStatus.published, RunStatus.rejected, RunStatus.failed)
    ACTIVE = (RunStatus.pending, RunStatus.running, RunStatus.awaiting_review, RunStatus.approved)
    # What a run's end makes of its video.
    VIDEO_AFTER = {RunStatus.published: VideoStatus.processed, RunStatus.rejected: VideoStatus.skipped,
                   RunStatus.failed: VideoStatus.skipped, RunStatus.pending: VideoStatus.selected}

    # The retry policy; ConfigOverride keys of the same meaning override the defaults at run time.
    MAX_ATTEMPTS = 3
    RETRY_DELAY = datetime.timedelta(seconds=30)  # before the second attempt; doubles with each one
    RETRY_DELAY_LIMIT = datetime.timedelta(hours=1)
    MAX_ATTEMPTS_KEY = "queue.max_attempts"
    RETRY_DELAY_KEY = "queue.retry_delay_seconds"

    @classmethod
    def start(cls, video: DiscoveredVideo, again: bool = False) -> "PipelineRun":
        """Queue a run for `video` once: return its active run if it has one, else its last run, else a new one.

        Re-running discovery and start is safe: a video is never queued twice. `again=True` queues a new run
        for a video whose runs all ended (published, rejected or failed). A new run marks the video selected.
        """
        active = (cls.discovered_video == video) & cls.status.in_(cls.ACTIVE)
        with write_lock():
            run = cls.select().where(active).first()
            if run is None and not again:
                run = cls.select().where(cls.discovered_video == video).order_by(cls.id.desc()).first()
            if run is not None:
                return run
            try:
                with db.atomic():  # a savepoint: on PostgreSQL another process may queue one first
                    run = cls.create(discovered_video=video)
            except peewee.IntegrityError:
                run = cls.select().where(active).first()
                if run is None:
                    raise
                return run
            run._settle_video(RunStatus.pending)
        if isinstance(video, DiscoveredVideo):
            video.status = VideoStatus.selected
        return run

    @classmethod
    def insert_rows(cls, rows: Any, fields: Any = None, chunk_size: int = 2000, none_is_default: Any = ()) -> int:
        """BaseModel.insert_rows: many runs at once; each new run's video is then moved as start() moves it
        (VIDEO_AFTER: a pending run's video is selected), in the same transaction."""
        with write_lock():
            before = cls.select(peewee.fn.MAX(cls.id)).scalar() or 0
            count = super().insert_rows(rows, fields=fields, chunk_size=chunk_size, none_is_default=none_is_default)
            for status, video_status in cls.VIDEO_AFTER.items():
                new = cls.select(cls.discovered_video).where((cls.id > before) & (cls.status == status))
                DiscoveredVideo.update(status=video_status).where(DiscoveredVideo.id.in_(new)).execute()
        return count

    @classmethod
    def claim_next(cls, worker: str, *, now: Optional[datetime.datetime] = None) -> Optional["PipelineRun"]:
        """Take the oldest pending run that is due for `worker`: running, attempts + 1, a new claim token.

        None when no run is due. One statement under the write lock, so N processes claiming at once claim
        each run exactly once; on PostgreSQL, FOR UPDATE SKIP LOCKED lets them pass one another. `now`
        (default: the clock) decides which requeued runs are due.
        """
        if not isinstance(worker, str) or not worker.strip():
            raise ValueError(f"PipelineRun.worker: claim_next needs the worker's name, not {worker!r}")
        now = _now("claim_next", now)
        due = (cls.status == RunStatus.pending) & (cls.not_before.is_null() | (cls.not_before <= now))
        oldest = cls.select(cls.id).where(due).order_by(cls.created_at, cls.id).limit(1)
        if _is_postgres():
            oldest = oldest.for_update(skip_locked=True)
        claim = (cls.update(status=RunStatus.running, worker=worker, attempts=cls.attempts + 1,
                            claim_token=secrets.token_hex(16), not_before=None, started_at=now,
                            heartbeat_at=now, finished_at=None, updated_at=now)
                 .where((cls.id == oldest) & (cls.status == RunStatus.pending))
                 .returning(cls))
        with write_lock():
            claimed = list(claim.execute())
        return claimed[0] if claimed else None

    def _check_claim(self, row: "PipelineRun") -> None:
        """Raise LeaseLost unless `row` (the database's run) is still running under this object's claim."""
        if row.status is not RunStatus.running or row.claim_token != self.claim_token:
            raise LeaseLost(self.id, self.worker, self.attempts, row.status, row.worker, row.attempts)

    @contextlib.contextmanager
    def fenced(self) -> Iterator["PipelineRun"]:
        """A transaction for the claiming worker's writes (clips, scripts, audio, shorts): all or nothing, and
        only while it still holds the claim.

        Raises LeaseLost, writing nothing, when the run was requeued or claimed by another worker meanwhile.
        The run stays locked against requeueing until the block ends.
        """
        with write_lock():
            self._check_claim(self._locked_row())
            yield self

    def heartbeat(self, stage: Optional[str] = None) -> bool:
        """Tell the queue this run's worker is alive (and at `stage`, if given); True.

        Raises LeaseLost, changing nothing, when this worker no longer holds the run: drop it.
        """
        changes: Dict[str, Any] = {"heartbeat_at": utcnow()}
        if stage is not None:
            changes["current_stage"] = stage
        cls = type(self)
        with write_lock():  # one compare-and-set on the claim; the row is read only to say why it failed
            held = (cls.id == self.id) & (cls.status == RunStatus.running) & (cls.claim_token == self.claim_token)
            if not cls.update(**changes).where(held).execute():
                self._check_claim(self._locked_row())  # raises LeaseLost, saying who holds the run now
        self._written(changes)
        return True

    def advance(self, status: Union[RunStatus, str], stage: Optional[str] = None,
                reason: Optional[str] = None) -> "PipelineRun":
        """Move the run to `status` if the transition is allowed, as a compare-and-set, and update this object.

        `stage` sets current_stage. Moving to failed needs a `reason` (kept in last_error, on one line) and
        is for good; `fail()` retries. Out of running, only the worker holding the claim may move it
        (LeaseLost otherwise). Raises InvalidTransition, changing nothing, when the move is not allowed
        from the status the run has in the database, or when that status is not this object's.
        A run that ends moves its video to processed (published) or skipped (rejected, failed).
        """
        if status is None:
            raise ValueError("PipelineRun.status: advance needs the status to move to, e.g. advance('failed', "
                             "reason=...)")
        target = RunStatus(type(self).status.db_value(status))  # ValueError naming the field if unknown
        if target is RunStatus.failed and not (reason and str(reason).strip()):
            raise ValueError("PipelineRun.advance: moving a run to failed needs a reason, e.g. reason=str(exc)")
        changes: Dict[str, Any] = {"status": target}
        if stage is not None:
            changes["current_stage"] = stage
        if reason is not None:
            changes["last_error"] = _one_line(reason)
        with _unchanged_on_failure(self), write_lock():
            row = self._moving(target)
            through = self._THROUGH.get((row.status, target))
            if through is not None:
                raise InvalidTransition(f"run {self.id}", row.status, target, f"use {through}")
            self._move(changes)
        return self

    def fail(self, error: Union[BaseException, str], *, retry: bool = True, max_attempts: Optional[int] = None,
             now: Optional[datetime.datetime] = None) -> "PipelineRun":
        """The worker gives up on this attempt: requeue the run with backoff, or fail it for good.

        `error` (an exception or a message) goes to last_error. With `retry` (the default) a running run
        goes back to pending, claimable after an exponential backoff with jitter, unless it has had
        `max_attempts` attempts (default MAX_ATTEMPTS, or the ConfigOverride "queue.max_attempts"): then it
        fails for good, "gave up after N attempts: ...". `retry=False` fails it for good at once (an error
        no retry can fix). Only the worker holding the claim may fail a running run (LeaseLost otherwise).
        """
        if not isinstance(error, (BaseException, str)):
            raise TypeError(f"PipelineRun.fail: give the exception or a reason as text, e.g. run.fail(exc), "
                            f"not {type(error).__name__}")
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if not reason.strip():
            raise ValueError("PipelineRun.fail: give the error or a reason, e.g. run.fail(exc)")
        now = _now("fail", now)
        with _unchanged_on_failure(self), write_lock():
            row = self._moving(RunStatus.failed)
            if not retry or row.status is not RunStatus.running:
                self._move({"status": RunStatus.failed, "last_error": _one_line(reason)})
                return self
            self._move(self._retry_or_give_up(row.attempts, reason, self._policy(max_attempts), now))
        return self

    def retry(self) -> "PipelineRun":
        """The operator's retry of a failed run: pending again, its attempts counted afresh, its video selected."""
        with _unchanged_on_failure(self), write_lock():
            row = self._moving(RunStatus.pending, "only a failed run is retried", only_from=RunStatus.failed)
            try:
                with db.atomic():
                    self._move({"status": RunStatus.pending, "attempts": 0, "not_before": None})
            except peewee.IntegrityError:
                other = (type(self).select(type(self).id)
                         .where((type(self).discovered_video == row.discovered_video_id)
                                & type(self).status.in_(self.ACTIVE)).scalar())
                raise InvalidTransition(f"run {self.id}", row.status, RunStatus.pending,
                                        f"its video already has the active run {other}") from None
        return self

    def _moving(self, target: RunStatus, detail: str = "", only_from: Optional[RunStatus] = None) -> "PipelineRun":
        """The locked database row, checked: the claim (out of running), this object's status, the move (and,
        for an operation that makes it from one status only, that status)."""
        row = self._locked_row()
        copy = RunStatus(self.status)
        if copy is RunStatus.running:  # the worker's own move: only while it holds the claim
            self._check_claim(row)
        if row.status is not copy:
            raise InvalidTransition(f"run {self.id}", row.status, target, copy=copy)
        if target not in self.TRANSITIONS[row.status] or only_from not in (None, row.status):
            raise InvalidTransition(f"run {self.id}", row.status, target, detail)
        return row

    def _move(self, changes: Dict[str, Any]) -> None:
        """Write a checked move (the caller holds the lock), stamping times, and settle the video."""
        now = utcnow()
        target = changes["status"]
        if target in self.FINISHED:
            changes["finished_at"] = now
        elif target is RunStatus.pending:  # queued again: a worker will claim it afresh
            changes.update(finished_at=None, worker=None, heartbeat_at=None)
        self._write(changes, now)
        self._settle_video(target)

    def _write(self, changes: Dict[str, Any], now: Optional[datetime.datetime] = None) -> None:
        cls = type(self)
        changes["updated_at"] = utcnow() if now is None else now
        cls.update(**changes).where(cls.id == self.id).execute()
        self._written(changes)

    def _written(self, changes: Dict[str, Any]) -> None:
        """Keep this object in step with what was just written: the values, and nothing left to save."""
        for name, value in changes.items():
            setattr(self, name, value)
        self._dirty.difference_update(changes)

    def _settle_video(self, status: RunStatus) -> None:
        """Move the run's video to what `status` makes of it (VIDEO_AFTER), in the caller's transaction."""
        video_status = self.VIDEO_AFTER.get(status)
        if video_status is not None:
            (DiscoveredVideo.update(status=video_status)
             .where(DiscoveredVideo.id == self.discovered_video_id).execute())

    @classmethod
    def _policy(cls, max_attempts: Optional[int]) -> Tuple[int, datetime.timedelta]:
        """(max attempts, first retry delay): the argument, else the ConfigOverride, else the class default."""
        if max_attempts is None:
            configured = ConfigOverride.value_of(cls.MAX_ATTEMPTS_KEY)
            limit = cls.MAX_ATTEMPTS if configured is None else _attempts_limit(configured)
        else:
            limit = _attempts_limit(max_attempts, "max_attempts")
        seconds = ConfigOverride.value_of(cls.RETRY_DELAY_KEY)
        if seconds is None:
            return limit, cls.RETRY_DELAY
        return limit, datetime.timedelta(seconds=_retry_delay(seconds))

    def _retry_or_give_up(self, attempts: int, reason: str, policy: Tuple[int, datetime.timedelta],
                          now: datetime.datetime) -> Dict[str, Any]:
        """The changes that requeue a run after `attempts` attempts, with backoff, or fail it for good."""
        limit, base = policy
        if attempts >= limit:
            return {"status": RunStatus.failed, "last_error": _one_line(f"gave up after {attempts} attempts: {reason}")}
        delay = min(base * 2 ** min(max(attempts - 1, 0), 30), self.RETRY_DELAY_LIMIT)
        # "Equal jitter": at least half the backoff, so retries of runs that failed together spread out.
        not_before = now + delay * random.uniform(0.5, 1.0)
        return {"status": RunStatus.pending, "not_before": not_before,
                "last_error": _one_line(f"attempt {attempts} of {limit} failed: {reason}")}

    def _publish_if_done(self) -> None:
        """Publish this approved run (the caller holds its lock) once it has uploads and no short left to upload."""
        if self.status is not RunStatus.approved:
            return
        shorts = self.shorts  # Short.select() of this run's shorts, through the backref Short declares
        Short = shorts.model
        waiting = shorts.where(Short.status.in_([ShortStatus.pending, ShortStatus.rendered])).exists()
        if not waiting and shorts.where(Short.status == ShortStatus.uploaded).exists():
            self._move({"status": RunStatus.published})

    @classmethod
    def requeue_stale(cls, older_than: datetime.timedelta, *, max_attempts: Optional[int] = None,
                      now: Optional[datetime.datetime] = None) -> int:
        """Expire the leases of running runs with no heartbeat for `older_than` (their worker died or stalled).

        Each goes back to pending with backoff, or fails for good after max_attempts, as fail() does; the
        stalled worker's later writes raise LeaseLost. Returns how many leases expired.
        """
        older_than = _duration("requeue_stale", older_than)
        now = _now("requeue_stale", now)
        if max_attempts is not None:
            _attempts_limit(max_attempts, "max_attempts")  # refused now, whether or not a run is stale
        cutoff = now - older_than
        stale = (cls.status == RunStatus.running) & (
            (cls.heartbeat_at < cutoff) | (cls.heartbeat_at.is_null() & (cls.started_at < cutoff)))
        query = cls.select().where(stale).order_by(cls.id)
        if _is_postgres():
            query = query.for_update(skip_locked=True)  # two janitors at once share the stale runs out
        with write_lock():
            runs = list(query)
            policy = cls._policy(max_attempts) if runs else None
            for run in runs:
                run._move(run._retry_or_give_up(run.attempts, f"no heartbeat for {older_than} (worker "
                                                f"{run.worker!r})", policy, now))
        return len(runs)


# One active run per video, kept by the database whoever writes: a second start() fails instead of queueing twice.
PipelineRun.add_index(PipelineRun.index(
    PipelineRun.discovered_video, unique=True, name="pipeline_runs_one_active_per_video",
    where=SQL("status IN ('pending', 'running', 'awaiting_review', 'approved')")))


def _attempts_limit(value: Any, where: str = f"ConfigOverride {PipelineRun.MAX_ATTEMPTS_KEY!r}") -> int:
    """A maximum number of attempts, 1 to 1000, or a ValueError naming `where` it came from."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
        raise ValueError(f"PipelineRun: {where} must be a whole number from 1 to 1000, not {value!r}")
    return value


def _retry_delay(value: Any) -> float:
    """The first retry delay in seconds, 0 to 86400, or a ValueError naming its ConfigOverride key."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 86400:
        raise ValueError(f"PipelineRun: ConfigOverride {PipelineRun.RETRY_DELAY_KEY!r} must be a number of "
                         f"seconds from 0 to 86400, not {value!r}")
    return value


ConfigOverride.CHECKS.update({PipelineRun.MAX_ATTEMPTS_KEY: _attempts_limit,
                              PipelineRun.RETRY_DELAY_KEY: _retry_delay})


def _duration(operation: str, value: Any) -> datetime.timedelta:
    """A positive timedelta of at most a year, or a ValueError naming the operation."""
    if not isinstance(value, datetime.timedelta):
        raise TypeError(f"{operation}: older_than must be a datetime.timedelta, e.g. timedelta(minutes=10), "
                        f"not {type(value).__name__}")
    if not datetime.timedelta(0) < value <= datetime.timedelta(days=366):
        raise ValueError(f"{operation}: older_than must be more than zero and at most a year, not {value}")
    return value
