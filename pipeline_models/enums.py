"""The fixed sets of values of the pipeline's columns, each the one source of its column's CHECK.

Str-valued enums compare equal to their values ('pending' == RunStatus.pending); `Processed` is an
IntEnum because the pipeline's own code writes `processed=1`.
"""
import enum

__all__ = ["Processed", "ContentIdRisk", "ExtractionMethod", "RunStatus", "ShortStatus",
           "ReviewAction"]


class StrEnum(str, enum.Enum):
    """A str-valued enum whose str() is its value, on every Python version."""

    def __str__(self) -> str:
        return self.value


class Processed(enum.IntEnum):
    """discovered_videos.processed: what became of a candidate video (the pipeline's integers)."""

    pending = 0  # not used yet: a candidate for the next run of its niche
    used = 1  # a clip of it is in a run
    skipped = 2  # passed over (a failed download, a filter)
    rejected = 3  # a reviewer dropped its clip: never picked again

    def __str__(self) -> str:
        return self.name


class ContentIdRisk(StrEnum):
    """How likely a video or clip is to draw a Content ID claim."""

    low = "low"
    medium = "medium"
    high = "high"
    unknown = "unknown"


class ExtractionMethod(StrEnum):
    """How a clip's moment was found, best first: the heatmap, the transcript, audio energy, scene
    cuts."""

    most_replayed = "most_replayed"
    transcript = "transcript"
    audio_energy = "audio_energy"
    scene_detection = "scene_detection"


class RunStatus(StrEnum):
    """Where a pipeline run (one niche's compilation for one cycle) stands."""

    pending = "pending"
    running = "running"
    review = "review"
    approved = "approved"
    uploaded = "uploaded"
    failed = "failed"
    # Not in the pipeline's list: a reviewer's reject discards the run, which is neither an error
    # nor waiting.
    rejected = "rejected"


class ShortStatus(StrEnum):
    """Where a short stands."""

    pending = "pending"
    review = "review"
    uploaded = "uploaded"
    failed = "failed"
    # Not in the pipeline's list: a short of a rejected run, never to be uploaded.
    rejected = "rejected"


class ReviewAction(StrEnum):
    """A reviewer's answer to a run; `skip` takes the ranks in response_detail ('skip 4,7')."""

    approve = "approve"
    reject = "reject"
    hold = "hold"
    skip = "skip"
    redo_script = "redo_script"
