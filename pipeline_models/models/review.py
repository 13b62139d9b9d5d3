"""ReviewLog: a request for a human verdict on a run's compilation, and the answer, which moves the
run."""
import datetime
from typing import List, Optional, Tuple, Union

import peewee

from ..db import write_lock
from ..enums import Processed, ReviewAction, RunStatus, ShortStatus
from ..errors import AlreadyAnswered, InvalidTransition
from ..fields import (CheckedBooleanField, CheckedCharField, CheckedEnumField,
                      CheckedForeignKeyField, UTCDateTimeField, checked_duration, checked_now,
                      utcnow)
from .artefacts import Clip, Short
from .base import BaseModel, sync_copy, unchanged_on_failure
from .config import ConfigOverride, number, setting_name
from .runs import PipelineRun
from .videos import DiscoveredVideo


class ReviewLog(BaseModel):
    """A request for a human verdict on a run's compilation, and the answer (action is NULL until
    then)."""

    pipeline_run = CheckedForeignKeyField(PipelineRun, backref="reviews", on_delete="CASCADE",
                                          help_text="the run under review")
    sent_at = UTCDateTimeField(default=utcnow, help_text="when the request was sent")
    responded_at = UTCDateTimeField(null=True, help_text="when the answer came")
    action = CheckedEnumField(ReviewAction, null=True,
                              help_text="approve, reject, hold, skip or redo_script; NULL until "
                                        "answered")
    response_detail = CheckedCharField(max_length=1024, null=True,
                                       help_text="the answer's argument, e.g. 'skip 4,7'")
    auto_held = CheckedBooleanField(default=False,
                                    help_text="nobody answered in time: held by hold_stale()")
    # The chat message that asked: a second tap on it finds this row and changes nothing.
    message_id = CheckedCharField(max_length=128, null=True, unique=True,
                                  help_text="the chat message that asked")
    reviewer = CheckedCharField(max_length=255, null=True, help_text="who answered")
    reminded_at = UTCDateTimeField(null=True,
                                   help_text="when the reviewer was reminded (once, by "
                                             "mark_reminded)")

    class Meta:
        table_name = "review_logs"
        # Unanswered reviews (action IS NULL) oldest first: the auto-hold sweep and the open count.
        indexes = ((("action", "sent_at"), False),)

    # What each answer does to the run. hold leaves it in review (a held review may be answered
    # again); skip and redo_script send it back to the queue, at the stage named, for a worker to
    # redo.
    OUTCOME = {
        ReviewAction.approve: RunStatus.approved,
        ReviewAction.reject: RunStatus.rejected,
        ReviewAction.hold: RunStatus.review,
        ReviewAction.skip: RunStatus.pending,
        ReviewAction.redo_script: RunStatus.pending,
    }
    STAGE_AGAIN = {ReviewAction.skip: "render", ReviewAction.redo_script: "script"}

    # A review's states (its action is NULL while open) and what moves it, for the state diagram.
    TRANSITIONS = {
        "open": {"answered": "respond() / answer(): approve, reject, skip or redo_script",
                 "held": "respond() hold, hold_stale() (auto_held)"},
        "held": {"answered": "respond() / answer(), later; force_upload() approves"},
        "answered": {},
    }

    @classmethod
    def request(cls, run: PipelineRun, message_id: Optional[str] = None) -> "ReviewLog":
        """Ask for a review of `run` (sent now) and move the run to review and its pending shorts
        with it, in one transaction.

        Only the worker holding the run's claim may ask (LeaseLost otherwise); `run` is updated, or
        left as it was when the request fails.
        """
        _a_run("ReviewLog.request", run)
        with unchanged_on_failure(run), write_lock():
            run.advance(RunStatus.review, stage="review")
            (Short.update(status=ShortStatus.review)
             .where((Short.pipeline_run == run.id) & (Short.status == ShortStatus.pending))
             .execute())
            return cls.create(pipeline_run=run, message_id=message_id)

    def respond(self, action: Union[ReviewAction, str], response_detail: Optional[str] = None,
                reviewer: Optional[str] = None, run: Optional[PipelineRun] = None) -> bool:
        """Record the human answer once and move the run; True if this call recorded it.

        approve: the run is approved (its uploads may start). reject: rejected, with its shorts not
        yet uploaded. hold: it stays in review, held; the review may be answered again. skip:
        `response_detail` names the ranks to drop ('skip 4,7' or '4,7'): those clips are dropped
        (kept, with dropped_at, their videos rejected), the rest ranked 1..N again in their order,
        and the run goes back to the queue at the render stage. redo_script: back to the queue at
        the script stage. Both count the run's retries afresh and reject its shorts not yet uploaded
        (they are rendered again). The run object given as `run`, or the one this review holds (as
        after ReviewLog.request(run)), is updated.

        The same answer again (a second tap on the button) changes nothing and returns False; a
        different answer to an answered review raises AlreadyAnswered. A bad skip detail is a
        ValueError naming it.
        """
        cls = type(self)
        if action is None:
            raise ValueError("ReviewLog.action: respond needs the answer: approve, reject, hold, "
                             "skip or redo_script")
        action = ReviewAction(cls.action.db_value(action))  # ValueError naming the field if unknown
        cls.response_detail.db_value(response_detail)
        if run is not None:
            _a_run("ReviewLog.respond", run)
        if run is not None and run.id != self.pipeline_run_id:
            raise ValueError(f"ReviewLog.respond: review {self.id} is of run "
                             f"{self.pipeline_run_id}, not run {run.id}")
        now = utcnow()
        with write_lock():
            # The database's run, not a caller's copy that may be stale: the answer is the
            # reviewer's.
            moved = PipelineRun(id=self.pipeline_run_id).locked_row()
            row = self.locked_row()
            if (row.action is not None and row.action is not ReviewAction.hold
                    or row.action is action):
                if row.action is action and response_detail in (None, row.response_detail):
                    return False
                said = f"{action} ({response_detail!r})" if row.action is action else str(action)
                raise AlreadyAnswered(f"review {self.id} was already answered {row.action} "
                                      f"by {row.reviewer or 'someone'}; refusing {said}")
            if moved.status is not RunStatus.review:
                raise InvalidTransition(f"run {moved.id}", moved.status, self.OUTCOME[action],
                                        f"review {self.id} is of a run no longer in review")
            if action is ReviewAction.skip:
                _drop_clips(moved, _ranks_to_skip(moved, response_detail), now)
            cls.update(action=action, response_detail=response_detail, reviewer=reviewer,
                       responded_at=now).where(cls.id == self.id).execute()
            # work a reviewer asked for: its attempts are counted afresh
            if action in self.STAGE_AGAIN:
                moved._move({"status": RunStatus.pending, "current_stage": self.STAGE_AGAIN[action],
                             "retry_count": 0, "not_before": None})
            elif action is not ReviewAction.hold:
                moved._move({"status": self.OUTCOME[action]})
            # its shorts will never be uploaded as they are
            if action in (ReviewAction.reject, *self.STAGE_AGAIN):
                (Short.update(status=ShortStatus.rejected)
                 .where((Short.pipeline_run == moved.id)
                        & Short.status.in_([ShortStatus.pending, ShortStatus.review]))
                 .execute())
        self.action, self.response_detail = action, response_detail
        self.reviewer, self.responded_at = reviewer, now
        self._dirty.clear()
        for copy in (run, self.__rel__.get("pipeline_run")):
            sync_copy(copy, moved)
        return True

    @classmethod
    def answer(cls, message_id: str, action: Union[ReviewAction, str],
               response_detail: Optional[str] = None, reviewer: Optional[str] = None,
               run: Optional[PipelineRun] = None) -> Tuple["ReviewLog", bool]:
        """Handle a tap on the chat message `message_id`: (review, True) when recorded, (review,
        False) for a repeat.

        A `run` object given is updated with the run's new status.
        """
        if not isinstance(message_id, str) or not message_id.strip():
            raise ValueError("ReviewLog.message_id: answer needs the id of the tapped chat "
                             f"message, not {message_id!r}")
        review = cls.get_or_none(cls.message_id == message_id)
        if review is None:
            raise cls.DoesNotExist(f"no review was requested with message_id {message_id!r}")
        return review, review.respond(action, response_detail=response_detail, reviewer=reviewer,
                                      run=run)

    # The pipeline's timing: a reminder after 2 hours without an answer, auto-held after 4 (both
    # overridable).
    REMINDER_HOURS, REMINDER_KEY = 2, "review.reminder_hours"
    TIMEOUT_HOURS, TIMEOUT_KEY = 4, "review.timeout_hours"

    @classmethod
    def _age(cls, operation: str, older_than: Optional[datetime.timedelta], key: str, hours: float,
             now: Optional[datetime.datetime]) -> datetime.datetime:
        """The cutoff: now minus `older_than`, else minus the hours the override `key` (or `hours`)
        says."""
        if older_than is None:
            older_than = datetime.timedelta(hours=ConfigOverride.setting(key, hours))
        return checked_now(operation, now) - checked_duration(operation, older_than)

    @classmethod
    def due_reminders(cls, older_than: Optional[datetime.timedelta] = None,
                      now: Optional[datetime.datetime] = None) -> peewee.ModelSelect:
        """Unanswered reviews sent more than `older_than` ago (default 2 hours,
        review.reminder_hours) whose reviewer was not reminded yet, oldest first. Send a reminder
        only for those mark_reminded() gives True."""
        cutoff = cls._age("due_reminders", older_than, cls.REMINDER_KEY, cls.REMINDER_HOURS, now)
        return (
            cls.select().where(
                cls.action.is_null() & cls.reminded_at.is_null() & (cls.sent_at < cutoff))
            .order_by(cls.sent_at, cls.id))

    def mark_reminded(self, now: Optional[datetime.datetime] = None) -> bool:
        """Record that the reviewer is being reminded; True for the one caller that records it (any
        later or concurrent call, in any process, gets False and sends nothing), False too once the
        review is answered."""
        cls, now = type(self), checked_now("mark_reminded", now)
        first = (cls.id == self.id) & cls.reminded_at.is_null() & cls.action.is_null()
        if not cls.update(reminded_at=now).where(first).execute():
            return False
        self.reminded_at = now
        self._dirty.discard("reminded_at")
        return True

    @classmethod
    def hold_stale(cls, older_than: Optional[datetime.timedelta] = None,
                   now: Optional[datetime.datetime] = None) -> int:
        """Hold the unanswered reviews sent more than `older_than` ago (default 4 hours,
        review.timeout_hours): action hold, auto_held; return how many.

        Their runs stay in review (nothing uploaded, nothing discarded), and a later answer still
        counts. One statement: janitors in several processes hold each review once.
        """
        cutoff = cls._age("hold_stale", older_than, cls.TIMEOUT_KEY, cls.TIMEOUT_HOURS, now)
        return (cls.update(action=ReviewAction.hold, auto_held=True)
                .where(cls.action.is_null() & (cls.sent_at < cutoff))
                .execute())

    @classmethod
    def force_upload(cls, run: Union[PipelineRun, int],
                     reviewer: Optional[str] = None) -> "ReviewLog":
        """/force_upload: approve the held run `run` (an object or its id); its held review,
        answered approve.

        InvalidTransition when the run has no held review (an unanswered one is answered as usual).
        """
        run_id = run.id if isinstance(run, PipelineRun) else run
        if not isinstance(run_id, int) or isinstance(run_id, bool):
            raise TypeError("ReviewLog.force_upload: run must be a PipelineRun or its id, not "
                            f"{run!r}")
        held = (cls.select().where((cls.pipeline_run == run_id) & (cls.action == ReviewAction.hold))
                .order_by(cls.sent_at.desc(), cls.id.desc()).first())
        if held is None:
            status = PipelineRun.select(PipelineRun.status).where(PipelineRun.id == run_id).scalar()
            if status is None:
                raise PipelineRun.DoesNotExist(f"no run has the id {run_id}")
            raise InvalidTransition(f"run {run_id}", RunStatus(status), RunStatus.approved,
                                    "force_upload approves a held run; this one has no held review")
        held.respond(ReviewAction.approve, response_detail="force_upload", reviewer=reviewer,
                     run=run if isinstance(run, PipelineRun) else None)
        return held

    @classmethod
    def unanswered(cls) -> peewee.ModelSelect:
        """Reviews still waiting for an answer, oldest first (held ones included: they may still be
        answered)."""
        return (cls.select().where(cls.action.is_null() | (cls.action == ReviewAction.hold))
                .order_by(cls.sent_at))


ConfigOverride.CHECKS.update({key: number(setting_name(key), 0.01, 24 * 366, "hours")
                              for key in (ReviewLog.REMINDER_KEY, ReviewLog.TIMEOUT_KEY)})


def _ranks_to_skip(run: PipelineRun, detail: Optional[str]) -> List[int]:
    """The ranks a skip answer names ('skip 4,7', '4, 7'), each a rank of the run's clips, not all
    of them."""
    text = (detail or "").strip()
    if text.lower().startswith("skip"):
        text = text[4:]
    words = [word.strip() for word in text.replace(" ", ",").split(",") if word.strip()]
    if not words:
        raise ValueError("ReviewLog.response_detail: skip needs the ranks to drop, e.g. 'skip "
                         f"4,7', not {detail!r}")
    bad = [word for word in words if not word.isdigit()]
    if bad:
        raise ValueError(f"ReviewLog.response_detail: {bad[0]!r} in {detail!r} is not a rank; e.g. "
                         "'skip 4,7'")
    ranks = sorted({int(word) for word in words})
    kept = {clip.rank_position for clip in run.clips.where(Clip.dropped_at.is_null())}
    missing = [rank for rank in ranks if rank not in kept]
    if missing:
        raise ValueError(f"ReviewLog.response_detail: run {run.id} has no clip ranked {missing[0]} "
                         f"(its ranks: {', '.join(map(str, sorted(kept))) or 'none'})")
    if len(ranks) == len(kept):
        raise ValueError(f"ReviewLog.response_detail: {detail!r} would drop every clip of run "
                         f"{run.id}; reject it instead")
    return ranks


def _drop_clips(run: PipelineRun, ranks: List[int], now: datetime.datetime) -> None:
    """Drop the clips of `run` ranked `ranks` (their videos rejected) and rank the rest 1..N in
    their order."""
    current = run.clips.where(Clip.dropped_at.is_null())
    dropped = current.where(Clip.rank_position.in_(ranks))
    (DiscoveredVideo.update(processed=Processed.rejected)
     .where(DiscoveredVideo.id.in_(dropped.select(Clip.discovered_video))).execute())
    Clip.update(dropped_at=now).where(Clip.id.in_(dropped.select(Clip.id))).execute()
    kept = [clip.id for clip in current.order_by(Clip.rank_position)]
    # Out of the way first, then into place: the ranks stay distinct after every row's change.
    Clip.update(rank_position=Clip.rank_position + 100000).where(Clip.id.in_(kept)).execute()
    for rank, clip_id in enumerate(kept, 1):
        Clip.update(rank_position=rank).where(Clip.id == clip_id).execute()


def _a_run(operation: str, run: object) -> None:
    """Refuse (TypeError) a `run` argument that is not a PipelineRun object, e.g. its id."""
    if not isinstance(run, PipelineRun):
        raise TypeError(f"{operation}: run must be a PipelineRun (as claim_next() returned it), "
                        f"not {type(run).__name__}")
