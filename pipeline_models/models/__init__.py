"""The ten models of the short-video pipeline, all bound to `pipeline_models.db`, one module per domain; each
imports only those before it: base <- config <- runs <- artefacts <- review; analytics; errorlog."""
# discovered video -> pipeline run -> clips, scripts, TTS audio, shorts, review logs, error logs; analytics
# snapshots are keyed by the uploaded short's YouTube id; config overrides stand alone.
from ..db import SCHEMA_MODELS
from .analytics import Analytics
from .artefacts import Clip, Script, Short, TTSAudio
from .base import BaseModel
from .config import ConfigOverride
from .errorlog import ErrorLog
from .review import ReviewLog
from .runs import DiscoveredVideo, PipelineRun

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

__all__ = ["ALL_MODELS", "BaseModel", *(model.__name__ for model in ALL_MODELS)]
