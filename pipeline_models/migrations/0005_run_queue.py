"""pipeline_runs as a job queue: claim_token (each claim's fencing token), not_before (the retry
backoff), and one active run per video, kept by the partial unique index
pipeline_runs_one_active_per_video.

A database that already holds several active runs of one video keeps every row: the run furthest
along (approved, then awaiting_review, running, pending; the oldest among equals) stays active, and
the others become failed with last_error naming the run that superseded them, so that the index can
be built.
"""
import datetime

from peewee import CharField

from pipeline_models.fields import backend_of
from pipeline_models.migrations._base import Timestamp

ACTIVE = ("pending", "running", "awaiting_review", "approved")  # furthest along last
INDEX = "pipeline_runs_one_active_per_video"


def _now(db):
    """Now, as the models store it: TIMESTAMPTZ on PostgreSQL, fixed-width UTC text on SQLite."""
    now = datetime.datetime.now(datetime.timezone.utc)
    if backend_of(db) == "postgres":
        return now
    return now.replace(tzinfo=None).isoformat(" ", "microseconds")


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("pipeline_runs", "claim_token", CharField(max_length=32, null=True)),
        migrator.add_column("pipeline_runs", "not_before", Timestamp(null=True)),
    )
    marks = ", ".join(["%s" if backend_of(db) == "postgres" else "?"] * len(ACTIVE))
    rows = db.execute_sql("SELECT discovered_video_id, id, status FROM pipeline_runs WHERE status "
                          f"IN ({marks})", ACTIVE).fetchall()
    keep = {}
    for video, run, status in rows:
        rank = (ACTIVE.index(status), -run)
        if video not in keep or rank > keep[video][0]:
            keep[video] = (rank, run)
    now = _now(db)
    for video, run, status in rows:
        kept = keep[video][1]
        if run != kept:
            db.execute_sql(
                "UPDATE pipeline_runs SET status = 'failed', finished_at = {0}, updated_at = {0}, "
                "last_error = {0} WHERE id = {0}".format(marks.split(", ")[0]),
                (now, now, f"closed by migration 0005: run {kept} is the active run of its video",
                 run))
    db.execute_sql(f"CREATE UNIQUE INDEX {INDEX} ON pipeline_runs (discovered_video_id) "
                   f"WHERE status IN ({', '.join(repr(s) for s in ACTIVE)})")


def down(migrator, db):
    db.execute_sql(f"DROP INDEX {INDEX}")
    migrator.migrate(
        migrator.drop_column("pipeline_runs", "not_before"),
        migrator.drop_column("pipeline_runs", "claim_token"),
    )
