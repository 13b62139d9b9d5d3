"""The run queue under chaos, on SQLite and PostgreSQL.

- Workers SIGKILLed and frozen past their lease never write under a lost lease, no run is claimed twice in
  one attempt, no video ever has two active runs (the soak is bench/soak_queue.py: run it longer there).
- Two processes racing to upload one short meet only the errors start_upload documents.

PIPELINE_MODELS_CHAOS_SECONDS sets how long the soak's chaos lasts per backend (default 20).
"""
import json
import multiprocessing
import os
import sys
from pathlib import Path

import pytest

import pipeline_models as pm

# bench/ is a plain directory of scripts; appended, not prepended, so that its run.py shadows nothing.
sys.path.append(str(Path(__file__).resolve().parents[1] / "bench"))
import soak_queue  # noqa: E402

CHAOS_SECONDS = float(os.environ.get("PIPELINE_MODELS_CHAOS_SECONDS", "20"))
WORKERS = 8
UPLOAD_TRIES = 2000  # per process

spawn = multiprocessing.get_context("spawn")


@pytest.mark.slow
def test_chaos_never_lets_a_lost_lease_write_or_a_run_be_claimed_twice(fresh_target, tmp_path):
    report = soak_queue.soak(str(fresh_target), CHAOS_SECONDS, WORKERS, tmp_path / "events")
    print(report.summary())  # shown with -s, or -rP: what happened, and how much
    assert report.violations == [], report.summary()


# --- the upload race -------------------------------------------------------------------------------


def _upload_worker(target, short_id, barrier, out):
    """Try UPLOAD_TRIES times to claim the short for upload and release it; count how each try ended."""
    pm.init_db(target)
    result = {"uploads": 0, "in_doubt": 0, "already": 0, "errors": 0, "first_errors": []}
    barrier.wait()
    for _ in range(UPLOAD_TRIES):
        try:
            short = pm.Short.get_by_id(short_id)
            short.start_upload()
            result["uploads"] += 1
            short.abandon_upload()
        except pm.UploadInDoubt:  # the other process holds the claim right now
            result["in_doubt"] += 1
        except pm.AlreadyUploaded:
            result["already"] += 1
        except Exception as exc:  # anything else (the old code's bare TypeError) fails the test
            result["errors"] += 1
            if len(result["first_errors"]) < 10:
                result["first_errors"].append(f"{type(exc).__name__}: {exc}")
    with open(out, "w") as fh:
        json.dump(result, fh)


@pytest.mark.slow
def test_two_processes_racing_to_upload_one_short_meet_only_the_documented_errors(fresh_target, tmp_path):
    pm.init_db(fresh_target)
    video, _ = pm.DiscoveredVideo.discover("race-video")
    short = pm.Short.create(pipeline_run=pm.PipelineRun.start(video))
    pm.db.obj.close()
    pm.db.initialize(None)

    barrier = spawn.Barrier(2)
    outs = [str(tmp_path / f"upload{n}.json") for n in range(2)]
    procs = [spawn.Process(target=_upload_worker, args=(str(fresh_target), short.id, barrier, out)) for out in outs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0, f"upload worker exited {proc.exitcode}"
    results = [json.loads(Path(out).read_text()) for out in outs]
    print("upload race:", results)

    assert [(r["errors"], r["first_errors"]) for r in results] == [(0, [])] * 2
    assert [r["uploads"] + r["in_doubt"] + r["already"] for r in results] == [UPLOAD_TRIES] * 2
    assert all(r["already"] == 0 for r in results)  # nobody recorded a video id
    assert all(r["in_doubt"] > 0 and r["uploads"] > 0 for r in results), results  # the race really ran
    pm.init_db(fresh_target)
    row = pm.Short.get_by_id(short.id)
    assert (row.upload_started_at, row.youtube_video_id) == (None, None)  # every claim was released
