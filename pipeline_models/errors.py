"""The package's exceptions: one class per way things go wrong, all under PipelineModelsError."""


class PipelineModelsError(Exception):
    """Base class of every error this package raises on purpose."""


class DatabaseNotBound(PipelineModelsError):
    """A model was used before the database proxy was bound."""

    def __init__(self) -> None:
        super().__init__(
            "pipeline_models has no database yet: call pipeline_models.init_db('pipeline.db') "
            "(or db.initialize(SqliteDatabase(...))) before using the models."
        )


class CannotOpenDatabase(PipelineModelsError):
    """init_db was given a target it cannot open; the message names the target and why."""

    def __init__(self, target: object, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"cannot open database {str(target)!r}: {reason}")


class SchemaMismatch(PipelineModelsError):
    """The database's tables do not match the models, and migrations cannot fix that by themselves."""
