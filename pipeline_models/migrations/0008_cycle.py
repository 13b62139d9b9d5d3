"""The compilation cycle: a candidate's reservation and a review's reminder.

discovered_videos.taken_by_run: the run that took the video as a candidate
(PipelineRun.take_candidates), a run's id and not a foreign key (pipeline_runs references
discovered_videos already); with the partial index idx_discovered_videos_candidates, a niche's free
candidates in the order they are taken (on PostgreSQL the index says NULLS LAST, as the take's ORDER
BY does; SQLite's DESC puts NULLs last by itself). review_logs.reminded_at: when the reviewer was
reminded. Both columns are NULL on every existing row: no video is taken, no review was reminded.
The indexes of what is recent (the digest, /stats, the daily upload cap): pipeline_runs
completed_at, (status, completed_at) and upload_started_at, shorts uploaded_at and
upload_started_at; and of a run's own candidates, idx_discovered_videos_taken.
"""
from peewee import IntegerField

from pipeline_models.fields import backend_of
from pipeline_models.migrations._base import Timestamp

INDEX = "idx_discovered_videos_candidates"
RECENT = (("idx_pipeline_runs_completed", "pipeline_runs", "completed_at"),
          ("idx_pipeline_runs_upload_started", "pipeline_runs", "upload_started_at"),
          ("shorts_uploaded_at", "shorts", "uploaded_at"),
          ("shorts_upload_started_at", "shorts", "upload_started_at"))


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("discovered_videos", "taken_by_run", IntegerField(null=True)),
        migrator.add_column("review_logs", "reminded_at", Timestamp(null=True)),
    )
    nulls = " NULLS LAST" if backend_of(db) == "postgres" else ""
    db.execute_sql(f'CREATE INDEX "{INDEX}" ON "discovered_videos" ("niche", "viral_score" '
                   f'DESC{nulls}, '
                   f'"discovered_at", "id") WHERE processed = 0 AND taken_by_run IS NULL')
    db.execute_sql('CREATE INDEX "idx_discovered_videos_taken" ON "discovered_videos" '
                   '("taken_by_run") WHERE taken_by_run IS NOT NULL')
    for name, table, column in RECENT:
        db.execute_sql(f'CREATE INDEX "{name}" ON "{table}" ("{column}")')
    db.execute_sql('CREATE INDEX "idx_pipeline_runs_status_completed" ON "pipeline_runs" '
                   '("status", "completed_at")')


def down(migrator, db):
    db.execute_sql('DROP INDEX "idx_pipeline_runs_status_completed"')
    for name, _, _ in RECENT:
        db.execute_sql(f'DROP INDEX "{name}"')
    db.execute_sql('DROP INDEX "idx_discovered_videos_taken"')
    db.execute_sql(f'DROP INDEX "{INDEX}"')
    migrator.migrate(
        migrator.drop_column("review_logs", "reminded_at"),
        migrator.drop_column("discovered_videos", "taken_by_run"),
    )
