"""The ten models of the compilation pipeline, all bound to `pipeline_models.db`, one module per
domain; each imports only those before it: base <- config <- uploads, videos <- runs <- artefacts <-
review; analytics; errorlog."""
# pipeline run (a niche's cycle) -> clips (each of a discovered video), scripts, TTS audio, shorts,
# review logs, error logs; analytics snapshots are keyed by an uploaded video's YouTube id (the
# run's long-form video or a short); config overrides stand alone.
from ..db import SCHEMA_MODELS
from .analytics import Analytics
from .artefacts import Clip, Script, Short, TTSAudio
from .base import BaseModel
from .config import ConfigOverride
from .errorlog import ErrorLog, log_error
from .review import ReviewLog
from .runs import PipelineRun
from .videos import DiscoveredVideo, get_pending_videos, mark_video_processed

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
SCHEMA_MODELS.extend(ALL_MODELS)

# The pipeline's own helpers, as its database module names them.
HELPERS = ["get_pending_videos", "mark_video_processed", "log_error"]

__all__ = ["ALL_MODELS", "BaseModel", *(model.__name__ for model in ALL_MODELS), *HELPERS]
