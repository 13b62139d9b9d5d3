"""What the migrations share: the base of their frozen models and the timestamp column type.

Not a migration itself (the runner loads only files whose names start with a digit). A migration's frozen
models never import pipeline_models.models: a later change to a model must not change an old migration.
"""
from typing import Any

from peewee import Model
from playhouse.postgres_ext import DateTimeTZField as Timestamp  # TIMESTAMPTZ; imports without psycopg

__all__ = ["Timestamp", "frozen_base"]


def frozen_base(db: Any) -> type:
    """A base for one migration's frozen models: bound to the migrating database, snake_case table names."""

    class Frozen(Model):
        class Meta:
            database = db
            legacy_table_names = False

    return Frozen
