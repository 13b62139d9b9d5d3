"""Schema migrations, applied in order by playhouse.migrations.Runner (see pipeline_models.migrate).

Each file holds a frozen copy of the tables it creates, independent of pipeline_models.models, so
that changing a model later never changes what an old migration does. CHECK constraints are written
out by hand: a migration generated from a schema diff would drop them.
"""
