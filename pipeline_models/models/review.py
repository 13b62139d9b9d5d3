"""ReviewLog: a request for a human verdict on a run's short, and the answer, which moves the run."""
import datetime
import warnings
from typing import Optional, Tuple, Union

import peewee

from ..db import write_lock
from ..enums import ReviewAction, RunStatus, ShortStatus
from ..errors import AlreadyAnswered
from ..fields import (CheckedBooleanField, CheckedCharField, CheckedEnumField, CheckedForeignKeyField, UTCDateTimeField,
                      utcnow)
from .artefacts import Short
from .base import BaseModel, _sync, _unchanged_on_failure
from .runs import PipelineRun, _duration


class ReviewLog(BaseModel):
    """A request for a human verdict on a run's short, and the answer (action is NULL until then)."""

    pipeline_run = CheckedForeignKeyField(PipelineRun, backref="reviews", on_delete="CASCADE",
                                          help_text="the run under review")
    sent_at = UTCDateTimeField(default=utcnow, help_text="when the request was sent")
    responded_at = UTCDateTimeField(null=True, help_text="when the answer came")
    action = CheckedEnumField(ReviewAction, null=True, help_text="approve, reject or edit; NULL until answered")
    response_detail = CheckedCharField(max_length=1024, null=True,
                                       help_text="the reviewer's words, e.g. the edit asked for")
    auto_held = CheckedBooleanField(default=False, help_text="nobody answered in time")
    # The chat message that asked: a second tap on it finds this row and changes nothing.
    message_id = CheckedCharField(max_length=128, null=True, unique=True, help_text="the chat message that asked")
    reviewer = CheckedCharField(max_length=255, null=True, help_text="who answered")

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

    # A review's states (its action is NULL while open) and what moves it, for the README's diagram.
    TRANSITIONS = {
        "open": {"answered": "respond() / answer(): approve, edit or reject", "auto_held": "hold_stale()"},
        "auto_held": {"answered": "respond() / answer(), late"},
        "answered": {},
    }

    @classmethod
    def request(cls, run: PipelineRun, message_id: Optional[str] = None) -> "ReviewLog":
        """Ask for a review of `run` (sent now) and move the run to awaiting_review, in one transaction.

        Only the worker holding the run's claim may ask (LeaseLost otherwise); `run` is updated, or left as it
        was when the request fails.
        """
        _a_run("ReviewLog.request", run)
        with _unchanged_on_failure(run), write_lock():
            run.advance(RunStatus.awaiting_review, stage="review")
            return cls.create(pipeline_run=run, message_id=message_id)

    def respond(self, action: Union[ReviewAction, str], response_detail: Optional[str] = None,
                reviewer: Optional[str] = None, run: Optional[PipelineRun] = None) -> bool:
        """Record the human answer once and move the run to approved or rejected; True if this call recorded it.

        A rejection also marks the run's not yet uploaded shorts rejected; an approval of a run whose
        shorts are all uploaded publishes it. The run object given as `run`, or the one this review holds
        (as after ReviewLog.request(run)), is updated.

        The same answer again (a second tap on the button) changes nothing and returns False; a different
        answer to an answered review (or an edit with other words) raises AlreadyAnswered.
        """
        cls = type(self)
        if action is None:
            raise ValueError("ReviewLog.action: respond needs the answer: approve, reject or edit")
        action = ReviewAction(cls.action.db_value(action))  # ValueError naming the field if unknown
        if run is not None:
            _a_run("ReviewLog.respond", run)
        if run is not None and run.id != self.pipeline_run_id:
            raise ValueError(f"ReviewLog.respond: review {self.id} is of run {self.pipeline_run_id}, not run {run.id}")
        now = utcnow()
        with write_lock():
            answered = (cls.update(action=action, response_detail=response_detail, reviewer=reviewer,
                                   responded_at=now)
                        .where((cls.id == self.id) & cls.action.is_null()).execute())
            if not answered:
                row = cls.get_by_id(self.id)
                if row.action is action and response_detail in (None, row.response_detail):
                    return False
                said = f"{action} ({response_detail!r})" if row.action is action else str(action)
                raise AlreadyAnswered(f"review {self.id} was already answered {row.action} "
                                      f"by {row.reviewer or 'someone'}; refusing {said}")
            # The database's run, not a caller's copy that may be stale: the answer is the reviewer's.
            moved = PipelineRun(id=self.pipeline_run_id)._locked_row()
            moved.advance(self.OUTCOME[action])
            if action is ReviewAction.reject:  # the run's unpublished shorts are rejected with it
                (Short.update(status=ShortStatus.rejected)
                 .where((Short.pipeline_run == moved.id)
                        & Short.status.in_([ShortStatus.pending, ShortStatus.rendered]))
                 .execute())
            else:
                moved._publish_if_done()
        self.action, self.response_detail, self.reviewer, self.responded_at = action, response_detail, reviewer, now
        for copy in (run, self.__rel__.get("pipeline_run")):
            _sync(copy, moved)
        return True

    @classmethod
    def answer(cls, message_id: str, action: Union[ReviewAction, str], response_detail: Optional[str] = None,
               reviewer: Optional[str] = None, run: Optional[PipelineRun] = None) -> Tuple["ReviewLog", bool]:
        """Handle a tap on the chat message `message_id`: (review, True) when recorded, (review, False) for a repeat.

        A `run` object given is updated with the run's new status.
        """
        if not isinstance(message_id, str) or not message_id.strip():
            raise ValueError(f"ReviewLog.message_id: answer needs the id of the tapped chat message, "
                             f"not {message_id!r}")
        review = cls.get_or_none(cls.message_id == message_id)
        if review is None:
            raise cls.DoesNotExist(f"no review was requested with message_id {message_id!r}")
        return review, review.respond(action, response_detail=response_detail, reviewer=reviewer, run=run)

    @classmethod
    def hold_stale(cls, older_than: datetime.timedelta) -> int:
        """Mark unanswered reviews sent more than `older_than` ago as auto-held; return how many."""
        cutoff = utcnow() - _duration("hold_stale", older_than)
        return (cls.update(auto_held=True)
                .where(cls.action.is_null() & (cls.sent_at < cutoff) & (cls.auto_held == False))  # noqa: E712
                .execute())

    @classmethod
    def unanswered(cls) -> peewee.ModelSelect:
        """Reviews still waiting for an answer, oldest first (auto-held ones included)."""
        return cls.select().where(cls.action.is_null()).order_by(cls.sent_at)

    @classmethod
    def open(cls) -> peewee.ModelSelect:
        """Deprecated: use unanswered()."""
        warnings.warn("ReviewLog.open() is deprecated: use ReviewLog.unanswered()", DeprecationWarning, stacklevel=2)
        return cls.unanswered()


def _a_run(operation: str, run: object) -> None:
    """Refuse (TypeError) a `run` argument that is not a PipelineRun object, e.g. its id."""
    if not isinstance(run, PipelineRun):
        raise TypeError(f"{operation}: run must be a PipelineRun (as claim_next() returned it), "
                        f"not {type(run).__name__}")
