"""pipeline_models: the Peewee data layer of an automated short-video pipeline.

    import pipeline_models as pm
    pm.init_db("pipeline.db")
    video = pm.DiscoveredVideo.create(youtube_video_id="dQw4w9WgXcQ", title="...")
"""
from . import db as _db, enums as _enums, errors as _errors, models as _models
from .db import MIGRATIONS_DIR, SQLITE_FILE_PRAGMAS, db, init_db, migrate, write_lock
from .enums import ReviewAction, RunStatus, ShortStatus, VideoStatus
from .errors import (
    AlreadyAnswered,
    AlreadyUploaded,
    BusySnapshot,
    CannotOpenDatabase,
    DatabaseFileChanged,
    DatabaseNotBound,
    ExtraMissing,
    InvalidTransition,
    LeaseLost,
    PipelineModelsError,
    SchemaMismatch,
    TablesMissing,
    UploadInDoubt,
)
from .fields import utcnow
from .models import (
    ALL_MODELS,
    Analytics,
    BaseModel,
    Clip,
    ConfigOverride,
    DiscoveredVideo,
    ErrorLog,
    PipelineRun,
    ReviewLog,
    Script,
    Short,
    TTSAudio,
)

__version__ = "0.1.0"

# Each module lists its own public names; these are all of them, once.
__all__ = [*_db.__all__, *_models.__all__, *_enums.__all__, *_errors.__all__, "utcnow"]
