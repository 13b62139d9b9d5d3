"""pipeline_models: the Peewee data layer of an automated YouTube compilation pipeline.

    import pipeline_models as pm
    pm.init_db("viral_channel.db")
    run = pm.PipelineRun.schedule("gaming", cycle_start)
    pending = pm.get_pending_videos("gaming")
"""
from . import db as _db, enums as _enums, errors as _errors, models as _models
from .db import MIGRATIONS_DIR, SQLITE_FILE_PRAGMAS, db, init_db, migrate, write_lock
from .enums import ContentIdRisk, ExtractionMethod, Processed, ReviewAction, RunStatus, ShortStatus
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
    UploadCapReached,
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
    get_pending_videos,
    log_error,
    mark_video_processed,
)

__version__ = "0.2.0"

# Each module lists its own public names; these are all of them, once.
__all__ = [*_db.__all__, *_models.__all__, *_enums.__all__, *_errors.__all__, "utcnow"]
