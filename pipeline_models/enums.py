"""The fixed sets of values for status and action columns (str-valued, so 'pending' == Status.pending)."""
import enum

__all__ = ["VideoStatus", "RunStatus", "ShortStatus", "ReviewAction"]


class StrEnum(str, enum.Enum):
    """A str-valued enum whose str() is its value, on every Python version."""

    def __str__(self) -> str:
        return self.value


class VideoStatus(StrEnum):
    """Where a discovered source video stands."""

    new = "new"
    selected = "selected"
    skipped = "skipped"
    processed = "processed"


class RunStatus(StrEnum):
    """Where a pipeline run stands."""

    pending = "pending"
    running = "running"
    awaiting_review = "awaiting_review"
    approved = "approved"
    rejected = "rejected"
    published = "published"
    failed = "failed"


class ShortStatus(StrEnum):
    """Where a rendered short stands."""

    pending = "pending"
    rendered = "rendered"
    uploaded = "uploaded"
    rejected = "rejected"
    failed = "failed"


class ReviewAction(StrEnum):
    """A reviewer's answer to a short."""

    approve = "approve"
    reject = "reject"
    edit = "edit"
