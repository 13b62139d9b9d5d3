"""PipelineRun: one niche's compilation for one 6-hour cycle (scheduled once, claimed by a worker
under a lease within the concurrency cap, its candidates taken and its clips kept, retried,
reviewed, uploaded)."""
import contextlib
import datetime
import secrets
from typing import Any, Dict, Iterator, Optional, Set, Tuple, Union

from peewee import Check

from ..db import db, serialized, write_lock
from ..enums import Processed, RunStatus
from ..errors import InvalidTransition, LeaseLost
from ..fields import (CheckedBigIntegerField, CheckedCharField, CheckedEnumField, CheckedFloatField,
                      CheckedForeignKeyField, CheckedIntegerField, CheckedTextField,
                      UTCDateTimeField, backend_of, checked_duration, checked_now, utcnow,
                      whole_number)
from .base import BaseModel, at_least_zero, one_line, unchanged_on_failure
from .config import ConfigOverride, flag, number, setting_name
from .uploads import UploadOnce
from .videos import (NICHE_LENGTH, URL_LENGTH, DiscoveredVideo, TakesCandidates, checked_niche,
                     niche_channel)

CYCLE = datetime.timedelta(hours=6)  # one run per niche per cycle


class PipelineRun(UploadOnce, TakesCandidates, BaseModel):
    """One niche's compilation for one cycle: scheduled once, claimed by a worker under a lease,
    reviewed, uploaded."""

    niche = CheckedCharField(max_length=NICHE_LENGTH, help_text="the niche (channel) it is for")
    cycle_start = UTCDateTimeField(help_text="the start of the 6-hour window it covers")
    cycle_end = UTCDateTimeField(help_text="the end of that window; after cycle_start")
    status = CheckedEnumField(RunStatus, max_length=32, default=RunStatus.pending,
                              help_text="pending, running, review, approved, uploaded, failed or "
                                        "rejected")
    started_at = UTCDateTimeField(null=True,
                                  help_text="when its current (or last) attempt was claimed")
    completed_at = UTCDateTimeField(null=True,
                                    help_text="when it was uploaded, rejected or failed for good")
    video_file_path = CheckedCharField(max_length=URL_LENGTH, null=True,
                                       help_text="the rendered long-form video")
    video_duration_seconds = CheckedFloatField(null=True,
                                               constraints=at_least_zero("video_duration_seconds"),
                                               help_text="its length")
    video_file_size_bytes = CheckedBigIntegerField(
        null=True, constraints=at_least_zero("video_file_size_bytes"), help_text="its size")
    # Unique when set (NULLs never collide): the long-form video is uploaded once.
    youtube_video_id = CheckedCharField(max_length=100, null=True, unique=True,
                                        help_text="the long-form video's YouTube id, once uploaded")
    youtube_url = CheckedCharField(max_length=URL_LENGTH, null=True,
                                   help_text="its address on YouTube")
    error_message = CheckedTextField(null=True,
                                     help_text="why it last failed or was requeued, on one line")
    retry_count = CheckedIntegerField(default=0, constraints=at_least_zero("retry_count"),
                                      help_text="failed attempts retried since it was scheduled or "
                                                "retried by hand")
    # Beyond the pipeline's columns, the queue's (nullable or defaulted, so its inserts work
    # unchanged):
    current_stage = CheckedCharField(max_length=64, null=True,
                                     help_text="the stage its worker last reported")
    worker = CheckedCharField(max_length=255, null=True, help_text="the worker that claimed it")
    heartbeat_at = UTCDateTimeField(null=True, help_text="when its worker last said it is alive")
    # The fencing token: every write only the claiming worker may make compares it, so a worker
    # whose lease was lost (requeued while it stalled) changes nothing.
    claim_token = CheckedCharField(max_length=32, null=True,
                                   help_text="the current claim's token, new at every claim")
    not_before = UTCDateTimeField(null=True,
                                  help_text="a requeued run is not claimed before this time "
                                            "(backoff)")
    # Set when the long-form upload begins: with no video id after it, it may have reached YouTube
    # unrecorded.
    upload_started_at = UTCDateTimeField(null=True,
                                         help_text="when an upload of its video began (the upload "
                                                   "claim)")
    # server_now: the pipeline's own inserts (which know nothing of these two) get the database's
    # clock. A run before 0.2.0 was one video's: migration 0007 keeps which (the pipeline's own runs
    # have none).
    legacy_video = CheckedForeignKeyField(DiscoveredVideo, null=True, index=False,
                                          backref="legacy_runs",
                                          help_text="the one video a run made before 0.2.0 was "
                                                    "for, else NULL")
    created_at = UTCDateTimeField(default=utcnow, server_now=True,
                                  help_text="when it was scheduled")
    updated_at = UTCDateTimeField(default=utcnow, server_now=True, help_text="when it last changed")

    class Meta:
        table_name = "pipeline_runs"
        constraints = [Check("cycle_end > cycle_start", name="pipeline_runs_cycle_end_after_start")]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The claim this object holds: (token, worker, attempt). A row read while running carries
        # its claim (claim_next returns such a row); refresh() keeps it and the object's own move
        # out of running releases it. Every write only the claim holder may make compares it with
        # the database's.
        self._claim: Optional[Tuple[str, Any, int]] = None
        if "__no_default__" in kwargs and self.__data__.get("status") is RunStatus.running:
            self._claim = (self.claim_token, self.worker, (self.retry_count or 0) + 1)

    # The queue's own fields: only its operations write them on an existing run (save() refuses
    # them).
    QUEUE_FIELDS = ("status", "worker", "retry_count", "claim_token", "started_at", "completed_at",
                    "heartbeat_at", "not_before", "upload_started_at", "youtube_video_id")

    def save(self, force_insert: bool = False, only: Any = None) -> Union[int, bool]:
        """Save the fields changed on this object, stamping updated_at.

        On an existing run, the queue's fields (QUEUE_FIELDS) are refused with ValueError:
        claim_next(), heartbeat(), advance(), fail(), retry(), requeue_stale() and the upload calls
        move them. A run this object holds the claim of is saved only while the claim holds
        (LeaseLost otherwise, nothing written).
        """
        self.updated_at = utcnow()
        if only:
            only = [*only, PipelineRun.updated_at]
        if self._pk is None or force_insert:
            return super().save(force_insert=force_insert, only=only)
        names = {field if isinstance(field, str) else field.name
                 for field in (only or self.dirty_fields)}
        changed = sorted(names & set(self.QUEUE_FIELDS))
        if changed:
            field = self._meta.fields[changed[0]]
            field.db_value(getattr(self, field.name))  # a bad value is refused for what it is first
            raise ValueError(f"{field.label()}: save() does not move a run; use claim_next(), "
                             "heartbeat(), "
                             f"advance(), fail(), retry(), requeue_stale() or mark_uploaded()")
        with write_lock():
            if self._claim is not None:
                self._check_claim(self.locked_row())  # this object's worker holds the claim still
            return super().save(only=only)

    def refresh(self) -> "PipelineRun":
        """Reload every field from the database; self. A claim this object held and lost meanwhile
        is kept.

        So a worker whose lease was lost still gets LeaseLost (naming its own claim) from every
        write after a refresh, whatever status the run shows now, rather than taking on the new
        holder's claim: its worker, retry count and claim_token stay its own.
        """
        claim = {name: self.__data__.get(name) for name in ("worker", "retry_count", "claim_token")}
        super().refresh()
        if self._claim is not None and self._claim[0] != self.claim_token:
            self.__data__.update(claim)
        return self

    # Where each status may go, and the operation that moves it there (the docs' state diagram is
    # drawn from this).
    TRANSITIONS = {
        RunStatus.pending: {RunStatus.running: "claim_next()"},
        RunStatus.running: {RunStatus.review: "ReviewLog.request()",
                            RunStatus.pending: "fail() to retry, requeue_stale()",
                            RunStatus.failed: "fail() for good, advance()"},
        RunStatus.review: {RunStatus.approved: "respond() approve",
                           RunStatus.rejected: "respond() reject",
                           RunStatus.pending: "respond() skip or redo_script (rendered or written "
                                              "again)",
                           RunStatus.failed: "advance()"},
        RunStatus.approved: {RunStatus.uploaded: "mark_uploaded()", RunStatus.failed: "advance()"},
        RunStatus.uploaded: {},
        RunStatus.rejected: {},
        RunStatus.failed: {RunStatus.pending: "retry()"},
    }
    # Moves only these operations make: they hold the claim, the retry policy or the review
    # advance() knows nothing of.
    _THROUGH = {(RunStatus.pending, RunStatus.running): "claim_next(worker)",
                (RunStatus.running, RunStatus.pending): "fail(reason) or requeue_stale()",
                (RunStatus.review, RunStatus.pending): "ReviewLog respond() skip or redo_script",
                (RunStatus.failed, RunStatus.pending): "retry()",
                (RunStatus.approved, RunStatus.uploaded): "mark_uploaded(youtube_video_id)"}
    FINISHED = (RunStatus.uploaded, RunStatus.rejected, RunStatus.failed)
    ACTIVE = (RunStatus.pending, RunStatus.running, RunStatus.review, RunStatus.approved)

    # The retry policy, the pipeline's: attempt 2 after 30 s, attempt 3 after 90 s, then failed for
    # good (each delay RETRY_BACKOFF times the one before). ConfigOverride keys override it at run
    # time.
    MAX_ATTEMPTS = 3
    RETRY_DELAY = datetime.timedelta(seconds=30)
    RETRY_BACKOFF = 3
    RETRY_DELAY_LIMIT = datetime.timedelta(hours=1)
    MAX_ATTEMPTS_KEY = "queue.max_attempts"
    RETRY_DELAY_KEY = "queue.retry_delay_seconds"
    # The pipeline's numbers, each overridable under its name in the pipeline's YAML
    # (ConfigOverride): at most 2 runs at once; per channel, 15 candidates taken, 8 to 10 clips
    # kept; a channel paused or not.
    MAX_RUNNING, MAX_RUNNING_KEY = 2, "scheduler.max_concurrent_pipelines"
    CANDIDATES, CANDIDATES_KEY = 15, "channels.{}.discovery.max_candidates"
    MIN_CLIPS, MIN_CLIPS_KEY = 8, "channels.{}.video.min_clips"
    MAX_CLIPS, MAX_CLIPS_KEY = 10, "channels.{}.video.max_clips"
    PAUSED_KEY = "channels.{}.paused"

    @classmethod
    def schedule(cls, niche: str, cycle_start: datetime.datetime,
                 cycle_end: Optional[datetime.datetime] = None) -> "PipelineRun":
        """The run of `niche` for the cycle starting at `cycle_start`: made pending the first time,
        the same run every time after (the scheduler firing twice, or again after a restart, on any
        machine).

        `cycle_end` defaults to cycle_start + 6 hours; given for a cycle that has a run, it must be
        that run's.
        """
        checked_niche("schedule", niche)
        if not isinstance(cycle_start, datetime.datetime):
            raise ValueError("PipelineRun.cycle_start: schedule needs the cycle's start as an "
                             f"aware datetime, not {cycle_start!r}")
        end = cycle_start + CYCLE if cycle_end is None else cycle_end
        row = dict(niche=niche, cycle_start=cycle_start, cycle_end=end)
        for name, value in row.items():
            # a naive time or a long niche: ValueError naming the field
            cls._meta.fields[name].db_value(value)
        if isinstance(end, datetime.datetime) and not end > cycle_start:
            raise ValueError(f"PipelineRun.cycle_end: {end} is not after cycle_start {cycle_start}")
        # The unique index on (niche, cycle_start) decides, on both backends, whoever inserts first.
        (cls.insert(**row).on_conflict(action="nothing", conflict_target=[cls.niche,
                                                                          cls.cycle_start])
         .execute())
        run = cls.get((cls.niche == niche) & (cls.cycle_start == cycle_start))
        if cycle_end is not None and run.cycle_end != cycle_end:
            raise ValueError(f"PipelineRun.cycle_end: the {niche} run of the cycle starting "
                             f"{run.cycle_start} "
                             f"(run {run.id}) ends at {run.cycle_end}, not {cycle_end}")
        return run

    @classmethod
    def claim_next(cls, worker: str, *, niche: Optional[str] = None,
                   now: Optional[datetime.datetime] = None) -> Optional["PipelineRun"]:
        """Take the pending run of the earliest cycle that is due (of `niche`, if given) for
        `worker`: running, under a new claim token.

        None when no run is due. One statement under the write lock, so N processes claiming at once
        claim each run exactly once; on PostgreSQL, FOR UPDATE SKIP LOCKED lets them pass one
        another. `now` (default: the clock) decides which requeued runs are due.
        """
        if not isinstance(worker, str) or not worker.strip():
            raise ValueError("PipelineRun.worker: claim_next needs the worker's name, not "
                             f"{worker!r}")
        now = checked_now("claim_next", now)
        due = (cls.status == RunStatus.pending) & (
            cls.not_before.is_null() | (cls.not_before <= now))
        if niche is not None:
            due &= cls.niche == checked_niche("claim_next", niche)
        with write_lock():
            # The cap counts the running runs: no two claims may count at once, on any machine.
            serialized("claims")
            limit = ConfigOverride.setting(cls.MAX_RUNNING_KEY, cls.MAX_RUNNING)
            if cls.select().where(cls.status == RunStatus.running).count() >= limit:
                return None
            paused = cls.paused_niches()
            if paused:
                due &= cls.niche.not_in(sorted(paused))
            oldest = cls.select(cls.id).where(due).order_by(cls.cycle_start, cls.id).limit(1)
            claim = (cls.update(status=RunStatus.running, worker=worker,
                                claim_token=secrets.token_hex(16), not_before=None, started_at=now,
                                heartbeat_at=now, completed_at=None, updated_at=now)
                     .where((cls.id == oldest) & (cls.status == RunStatus.pending))
                     .returning(cls))
            claimed = list(claim.execute())
        return claimed[0] if claimed else None

    @classmethod
    def pause(cls, niche: str, updated_by: str = "system") -> None:
        """Stop claiming the runs of `niche` (its channel) until resume(niche); running ones
        finish."""
        key = cls.PAUSED_KEY.format(niche_channel("pause", niche))
        ConfigOverride.set(key, True, updated_by=updated_by)

    @classmethod
    def resume(cls, niche: str, updated_by: str = "system") -> None:
        """Claim the runs of `niche` again after pause(niche)."""
        key = cls.PAUSED_KEY.format(niche_channel("resume", niche))
        ConfigOverride.set(key, False, updated_by=updated_by)

    @classmethod
    def paused_niches(cls) -> Set[str]:
        """The niches whose runs are not claimed: those with the override channels.<niche>.paused
        true."""
        head, tail = cls.PAUSED_KEY.split("{}")
        key = ConfigOverride.key  # a range of the primary key, not a LIKE (which reads every row)
        rows = ConfigOverride.select(key, ConfigOverride.value).where(
            (key >= head) & (key < head[:-1] + "/"))
        names = {row.key[len(head):-len(tail)]: row.value for row in rows if row.key.endswith(tail)}
        return {name for name, paused in names.items() if "." not in name and paused is True}

    def _check_claim(self, row: "PipelineRun") -> None:
        """Raise LeaseLost unless `row` (the database's run) is still running under this object's
        claim."""
        token, worker, attempt = self._claim or (None, None, None)
        if row.status is not RunStatus.running or token is None or row.claim_token != token:
            raise LeaseLost(self.id, worker, attempt, row.status, row.worker, row.retry_count + 1)

    @contextlib.contextmanager
    def fenced(self) -> Iterator["PipelineRun"]:
        """A transaction for the claiming worker's writes (clips, scripts, audio, shorts): all or
        nothing, and only while it still holds the claim.

        Raises LeaseLost, writing nothing, when the run was requeued or claimed by another worker
        meanwhile. The run stays locked against requeueing until the block ends.
        """
        with write_lock():
            self._check_claim(self.locked_row())
            yield self

    def heartbeat(self, stage: Optional[str] = None) -> bool:
        """Tell the queue this run's worker is alive (and at `stage`, if given); True.

        Raises LeaseLost, changing nothing, when this worker no longer holds the run: drop it.
        """
        changes: Dict[str, Any] = {"heartbeat_at": utcnow()}
        if stage is not None:
            changes["current_stage"] = stage
        cls = type(self)
        token = self._claim[0] if self._claim else None
        # one compare-and-set on the claim; the row is read only to say why it failed
        with write_lock():
            held = (cls.id == self.id) & (cls.status == RunStatus.running) & (
                cls.claim_token == token)
            if token is None or not cls.update(**changes).where(held).execute():
                self._check_claim(self.locked_row())  # raises LeaseLost, naming who holds the run
        self._written(changes)
        return True

    def advance(self, status: Union[RunStatus, str], stage: Optional[str] = None,
                reason: Optional[str] = None) -> "PipelineRun":
        """Move the run to `status` if the transition is allowed, as a compare-and-set, and update
        this object.

        `stage` sets current_stage. Moving to failed needs a `reason` (kept in error_message, on one
        line) and is for good; `fail()` retries. Out of running, only the worker holding the claim
        may move it (LeaseLost otherwise). Raises InvalidTransition, changing nothing, when the move
        is not allowed from the status the run has in the database, or when that status is not this
        object's.
        """
        if status is None:
            raise ValueError("PipelineRun.status: advance needs the status to move to, e.g. "
                             "advance('failed', reason=...)")
        # ValueError naming the field if unknown
        target = RunStatus(type(self).status.db_value(status))
        if target is RunStatus.failed and not (reason and str(reason).strip()):
            raise ValueError("PipelineRun.advance: moving a run to failed needs a reason, e.g. "
                             "reason=str(exc)")
        changes: Dict[str, Any] = {"status": target}
        if stage is not None:
            changes["current_stage"] = stage
        if reason is not None:
            changes["error_message"] = one_line(reason)
        with unchanged_on_failure(self), write_lock():
            row = self._moving(target)
            through = self._THROUGH.get((row.status, target))
            if through is not None:
                raise InvalidTransition(f"run {self.id}", row.status, target, f"use {through}")
            self._move(changes)
        return self

    def fail(self, error: Union[BaseException, str], *, retry: bool = True,
             max_attempts: Optional[int] = None,
             now: Optional[datetime.datetime] = None) -> "PipelineRun":
        """The worker gives up on this attempt: requeue the run after the retry delay, or fail it
        for good.

        `error` (an exception or a message) goes to error_message. With `retry` (the default) a
        running run goes back to pending, claimable after 30 s, then 90 s (retry_count counts them),
        until it has had `max_attempts` attempts (default MAX_ATTEMPTS, 3, or the ConfigOverride
        "queue.max_attempts"): then it fails for good, "gave up after N attempts: ...".
        `retry=False` fails it for good at once (an error no retry can fix). Only the worker holding
        the claim may fail a running run (LeaseLost otherwise).
        """
        if not isinstance(error, (BaseException, str)):
            raise TypeError("PipelineRun.fail: give the exception or a reason as text, e.g. "
                            f"run.fail(exc), not {type(error).__name__}")
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if not reason.strip():
            raise ValueError("PipelineRun.fail: give the error or a reason, e.g. run.fail(exc)")
        now = checked_now("fail", now)
        with unchanged_on_failure(self), write_lock():
            row = self._moving(RunStatus.failed)
            if not retry or row.status is not RunStatus.running:
                self._move({"status": RunStatus.failed, "error_message": one_line(reason)})
                return self
            self._move(self._retry_or_give_up(row.retry_count, reason, self._policy(max_attempts),
                                              now))
        return self

    def retry(self) -> "PipelineRun":
        """The operator's retry of a failed run: pending again, its retries counted afresh."""
        with unchanged_on_failure(self), write_lock():
            self._moving(RunStatus.pending, "only a failed run is retried",
                         only_from=RunStatus.failed)
            self._move({"status": RunStatus.pending, "retry_count": 0, "not_before": None})
        return self

    def _moving(self, target: RunStatus, detail: str = "",
                only_from: Optional[RunStatus] = None) -> "PipelineRun":
        """The locked database row, checked: the claim (out of running), this object's status, the
        move (and, for an operation that makes it from one status only, that status)."""
        row = self.locked_row()
        copy = RunStatus(self.status)
        # A move out of running is the claiming worker's, and so is any move by an object that holds
        # a claim (a stale worker's, whatever its copy says after a refresh): only while that claim
        # holds.
        if copy is RunStatus.running or row.status is RunStatus.running or self._claim is not None:
            self._check_claim(row)
        if row.status is not copy:
            raise InvalidTransition(f"run {self.id}", row.status, target, copy=copy)
        if target not in self.TRANSITIONS[row.status] or only_from not in (None, row.status):
            raise InvalidTransition(f"run {self.id}", row.status, target, detail)
        return row

    def _move(self, changes: Dict[str, Any]) -> None:
        """Write a checked move (the caller holds the lock), stamping times; out of running, the
        object's claim is released (put back with the object should the transaction fail)."""
        now = utcnow()
        target = changes["status"]
        if target in self.FINISHED:
            changes.setdefault("completed_at", now)
        elif target is RunStatus.pending:  # queued again: a worker will claim it afresh
            changes.update(completed_at=None, worker=None, heartbeat_at=None)
        self._write(changes, now)
        if target in self.FINISHED:  # its candidates not settled yet are free for the next run
            DiscoveredVideo.update(taken_by_run=None).where(
                (DiscoveredVideo.taken_by_run == self.id) & (
                    DiscoveredVideo.processed == Processed.pending)).execute()
        if target is not RunStatus.running:
            self._claim = None

    def _write(self, changes: Dict[str, Any], now: Optional[datetime.datetime] = None) -> None:
        cls = type(self)
        changes["updated_at"] = utcnow() if now is None else now
        cls.update(**changes).where(cls.id == self.id).execute()
        self._written(changes)

    @classmethod
    def _policy(cls, max_attempts: Optional[int]) -> Tuple[int, datetime.timedelta]:
        """(max attempts, first retry delay): the argument, else the ConfigOverride, else the class
        default."""
        if max_attempts is None:
            limit = ConfigOverride.setting(cls.MAX_ATTEMPTS_KEY, cls.MAX_ATTEMPTS)
        else:
            limit = _attempts_argument(max_attempts)
        seconds = ConfigOverride.setting(cls.RETRY_DELAY_KEY, None)
        return limit, cls.RETRY_DELAY if seconds is None else datetime.timedelta(seconds=seconds)

    def _retry_or_give_up(self, retries: int, reason: str, policy: Tuple[int, datetime.timedelta],
                          now: datetime.datetime) -> Dict[str, Any]:
        """The changes that requeue a run whose attempt `retries + 1` failed, or fail it for
        good."""
        limit, first = policy
        attempt = retries + 1
        if attempt >= limit:
            return {"status": RunStatus.failed,
                    "error_message": one_line(f"gave up after {attempt} attempts: {reason}")}
        delay = min(first * self.RETRY_BACKOFF ** min(retries, 30), self.RETRY_DELAY_LIMIT)
        return {"status": RunStatus.pending, "retry_count": attempt, "not_before": now + delay,
                "error_message": one_line(f"attempt {attempt} of {limit} failed: {reason}")}

    @classmethod
    def requeue_stale(cls, older_than: datetime.timedelta, *, max_attempts: Optional[int] = None,
                      now: Optional[datetime.datetime] = None) -> int:
        """Expire the leases of running runs with no heartbeat for `older_than` (their worker died
        or stalled).

        Each goes back to pending after the retry delay, or fails for good after max_attempts, as
        fail() does; the stalled worker's later writes raise LeaseLost. Returns how many leases
        expired.
        """
        older_than = checked_duration("requeue_stale", older_than)
        now = checked_now("requeue_stale", now)
        if max_attempts is not None:
            _attempts_argument(max_attempts)  # refused now, whether or not a run is stale
        cutoff = now - older_than
        stale = (cls.status == RunStatus.running) & (
            (cls.heartbeat_at < cutoff) | (cls.heartbeat_at.is_null() & (cls.started_at < cutoff)))
        query = cls.select().where(stale).order_by(cls.id)
        if backend_of(db) == "postgres":
            # two janitors at once share the stale runs out
            query = query.for_update(skip_locked=True)
        with write_lock():
            runs = list(query)
            policy = cls._policy(max_attempts) if runs else None
            for run in runs:
                run._move(run._retry_or_give_up(run.retry_count,
                                                f"no heartbeat for {older_than} (worker "
                                                f"{run.worker!r})", policy, now))
        return len(runs)

    # The long-form upload (UploadOnce): only an approved run's video; recording it makes the run
    # uploaded.
    _URL, _NAME, _UPLOADED_AT = "https://www.youtube.com/watch?v={}", "run", "completed_at"

    def _uploadable(self, row: "PipelineRun") -> None:
        if row.status is not RunStatus.approved:
            raise InvalidTransition(f"run {self.id}", row.status, RunStatus.uploaded,
                                    "only an approved run's video is uploaded")

    def _record_upload(self, changes: Dict[str, Any]) -> None:
        changes["completed_at"] = changes.pop("uploaded_at")
        self._move({"status": RunStatus.uploaded, **changes})


# The pipeline's two indexes; (niche, cycle_start) is unique: one run per niche per cycle, whoever
# schedules it.
PipelineRun.add_index(PipelineRun.status, name="idx_pipeline_runs_status")
PipelineRun.add_index(PipelineRun.niche, PipelineRun.cycle_start, unique=True,
                      name="idx_pipeline_runs_niche")
# What finished or began uploading lately (the digest, /stats, the daily cap): a few rows of a
# year's.
PipelineRun.add_index(PipelineRun.completed_at, name="idx_pipeline_runs_completed")
# The runs that finished lately, by outcome (/status, the digest): a seek per status, not every
# uploaded run.
PipelineRun.add_index(PipelineRun.status, PipelineRun.completed_at,
                      name="idx_pipeline_runs_status_completed")
PipelineRun.add_index(PipelineRun.upload_started_at, name="idx_pipeline_runs_upload_started")


# A maximum number of attempts, given to fail() or requeue_stale() or set as queue.max_attempts: 1
# to 1000.
_attempts_argument = whole_number("PipelineRun: max_attempts", 1, 1000)
_EACH = "*"  # any niche, in a channel's key
# The settings PipelineRun reads: (check, key, its bounds).
ConfigOverride.CHECKS.update({key: check(setting_name(key), *bounds) for check, key, *bounds in (
    (whole_number, PipelineRun.MAX_ATTEMPTS_KEY, 1, 1000),
    (number, PipelineRun.RETRY_DELAY_KEY, 0, 86400, "seconds"),
    (whole_number, PipelineRun.MAX_RUNNING_KEY, 0, 1000),
    (whole_number, PipelineRun.CANDIDATES_KEY.format(_EACH), 1, 1000),
    (whole_number, PipelineRun.MIN_CLIPS_KEY.format(_EACH), 1, 1000),
    (whole_number, PipelineRun.MAX_CLIPS_KEY.format(_EACH), 1, 1000),
    (flag, PipelineRun.PAUSED_KEY.format(_EACH)),
)})
