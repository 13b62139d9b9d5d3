"""Quickstart: bind an embedded SQLite file, create a video, a run and a clip, and query them back.

    python examples/quickstart.py [path/to/pipeline.db]
"""
import argparse
from datetime import datetime, timedelta, timezone

import pipeline_models as pm

# argparse, not sys.argv[1]: `--help` prints this, rather than becoming the name of a new database file.
parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("path", nargs="?", default="quickstart.db",
                    help="the SQLite file (or any init_db target) to use (default: %(default)s)")
path = parser.parse_args().path
pm.init_db(path)  # binds the models, applies the migrations; safe to call on every start

video, _ = pm.DiscoveredVideo.get_or_create(
    youtube_video_id="dQw4w9WgXcQ",
    defaults=dict(title="A source video", channel_title="Some channel", source="search:music"),
)
run = pm.PipelineRun.start(video, again=True)  # a video has one active run; again=True queues another once it ended
run = pm.PipelineRun.claim_next("quickstart")    # running under this worker's claim (attempt 1)
with run.fenced():  # the worker's writes: all or nothing, and only while it still holds the claim
    run.heartbeat(stage="clip")
    pm.Clip.create(pipeline_run=run, start_seconds=12.0, end_seconds=58.5, score=0.91)
run.fail("the quickstart stops here", retry=False)  # ends the run (failed for good): the next start queues anew
pm.Analytics.create(youtube_video_id="shortid0001", view_count=1200, click_through_rate=0.05,
                    measured_at=datetime.now(timezone(timedelta(hours=-5))))  # any offset; stored as UTC

print(f"database: {path}")
for run in video.runs.order_by(pm.PipelineRun.created_at):
    clips = ", ".join(f"{c.start_seconds:.1f}-{c.end_seconds:.1f}s" for c in run.clips)
    print(f"run {run.id}: {run.status} at stage {run.current_stage}, "
          f"created {run.created_at:%Y-%m-%d %H:%M} UTC, clips {clips}")
latest = pm.Analytics.select().order_by(pm.Analytics.measured_at.desc()).first()
print(f"latest analytics: view_count {latest.view_count}, measured {latest.measured_at.isoformat()}")
