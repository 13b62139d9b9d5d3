"""shorts.upload_started_at: an upload claim, so a retry after a crash never uploads a short
twice."""
from pipeline_models.migrations._base import Timestamp


def up(migrator, db):
    migrator.migrate(migrator.add_column("shorts", "upload_started_at", Timestamp(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("shorts", "upload_started_at"))
