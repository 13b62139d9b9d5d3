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
        name = getattr(target, "database", target)  # a peewee.Database is named by its file or database
        super().__init__(f"cannot open database {str(name)!r}: {reason}")


class SchemaMismatch(PipelineModelsError):
    """The database's tables do not match the models, and migrations cannot fix that by themselves."""


class InvalidTransition(PipelineModelsError):
    """A pipeline run was asked to move to a status it cannot reach from where it is."""

    def __init__(self, run_id: int, current: str, target: str, detail: str = "") -> None:
        self.run_id, self.current, self.target = run_id, str(current), str(target)
        message = f"run {run_id} cannot go from {self.current} to {self.target}"
        super().__init__(f"{message}: {detail}" if detail else message)


class AlreadyAnswered(PipelineModelsError):
    """A review that already has an answer was given a different one."""


class AlreadyUploaded(PipelineModelsError):
    """A short that already has a YouTube video id was uploaded or recorded again."""


class UploadInDoubt(PipelineModelsError):
    """An earlier upload of a short started and never recorded its video id: it may be on YouTube already."""
