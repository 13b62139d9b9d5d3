"""Quickstart: bind an embedded SQLite file, discover candidates, schedule a niche's run, cut its
ranked clips, and query them back.

    python examples/quickstart.py [path/to/pipeline.db]
"""
import argparse
from datetime import datetime, timedelta, timezone

import pipeline_models as pm

# argparse, not sys.argv[1]: `--help` prints this, rather than becoming the name of a new database
# file.
parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("path", nargs="?", default="quickstart.db",
                    help="the SQLite file (or any init_db target) to use (default: %(default)s)")
path = parser.parse_args().path
pm.init_db(path)  # binds the models, applies the migrations; safe to call on every start

# Discovery: each candidate once (found again, its metadata is refreshed), with the niche and its
# viral score.
for video_id, title, score in [("dQw4w9WgXcQ", "A clutch play", 91.5),
                               ("9bZkp7q19f0", "An impossible save", 78.0),
                               ("kJQP7kiw5Fk", "A speedrun record", 84.2)]:
    pm.DiscoveredVideo.discover(video_id, title=title, channel_name="Some creator",
                                channel_id="UCsomecreator", niche="gaming", viral_score=score,
                                discovery_source="youtube_trending")

# One run per niche per 6-hour cycle (gaming's start at 00:30, 06:30, 12:30 and 18:30 UTC): this
# one's.
since = datetime.now(timezone.utc) - timedelta(minutes=30)
cycle_start = (since.replace(hour=since.hour // 6 * 6, minute=0, second=0, microsecond=0)
               + timedelta(minutes=30))
run = pm.PipelineRun.schedule("gaming", cycle_start)  # the same run every time for this cycle
# running under this worker's claim
claimed = pm.PipelineRun.claim_next("quickstart", niche="gaming")
if claimed is not None:
    claimed.heartbeat(stage="clip")
    # the niche's best pending videos, reserved for this run alone
    candidates = claimed.take_candidates()
    # One clip of each, best first; keep_clips ranks them 1..N and marks their videos used. A
    # countdown keeps 8 to 10 (the channel's min_clips and max_clips); the quickstart has found only
    # 3.
    if candidates:  # none when run again in a later cycle: the 3 videos are used already
        claimed.keep_clips([dict(discovered_video=video, start_time_seconds=12.0,
                                 end_time_seconds=30.5, clip_duration_seconds=18.5,
                                 extraction_method="most_replayed")
                            for video in candidates], min_clips=len(candidates))
    claimed.fail("the quickstart stops here", retry=False)  # ends the run (failed for good)
pm.Analytics.create(youtube_video_id="shortid0001", view_count=1200, click_through_rate=0.05,
                    # any offset; stored as UTC
                    measured_at=datetime.now(timezone(timedelta(hours=-5))))

print(f"database: {path}")
for run in pm.PipelineRun.select().order_by(pm.PipelineRun.cycle_start):
    clips = ", ".join(f"#{c.rank_position} {c.discovered_video.title} "
                      f"({c.discovered_video.viral_score})"
                      for c in run.clips.order_by(pm.Clip.rank_position))
    print(f"run {run.id}: {run.status} at stage {run.current_stage}, {run.niche} cycle "
          f"{run.cycle_start:%Y-%m-%d %H:%M}-{run.cycle_end:%H:%M} UTC, clips {clips or 'none'}")
latest = pm.Analytics.select().order_by(pm.Analytics.measured_at.desc()).first()
print(f"latest analytics: view_count {latest.view_count}, measured "
      f"{latest.measured_at.isoformat()}")
