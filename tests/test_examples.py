"""Every script in examples/ runs as a user runs it, on SQLite and on PostgreSQL, and leaves what it promises.

An example takes its database as `--db TARGET` when its source mentions --db, else as its first argument,
and runs in a temporary working directory. Each example needs a check of the database it leaves in CHECKS:
a new example fails here until it has one, so none runs without its result being looked at.
"""
import glob
import os
import subprocess
import sys
from datetime import timedelta

import pytest

import pipeline_models as pm
from pipeline_models import PipelineRun, Processed, RunStatus, ShortStatus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(path for path in glob.glob(os.path.join(ROOT, "examples", "*.py"))
                  if not os.path.basename(path).startswith("test_"))


def run_example(script, args, cwd):
    """Run `script` with the test's Python in `cwd`; its stdout, or a failure showing how it ended."""
    proc = subprocess.run([sys.executable, script, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    name = os.path.relpath(script, ROOT)
    assert proc.returncode == 0, (f"{name} {' '.join(args)} exited {proc.returncode}\n--- stdout\n"
                                  f"{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    return proc.stdout


def check_quickstart(out):
    """Three candidates, the gaming run of the current cycle failed for good at the clip stage with their clips
    ranked by viral score, the videos used, one analytics snapshot."""
    assert "run 1: failed at stage clip, gaming cycle " in out and "latest analytics: view_count 1200" in out
    assert "clips #1 A clutch play (91.5), #2 A speedrun record (84.2), #3 An impossible save (78.0)" in out
    videos = list(pm.DiscoveredVideo.select().order_by(pm.DiscoveredVideo.viral_score.desc()))
    assert [v.video_id for v in videos] == ["dQw4w9WgXcQ", "kJQP7kiw5Fk", "9bZkp7q19f0"]
    assert {(v.niche, v.processed) for v in videos} == {("gaming", Processed.used)}
    (run,) = pm.PipelineRun.select()
    assert run.status is RunStatus.failed and run.error_message == "the quickstart stops here"
    assert run.retry_count == 0 and run.niche == "gaming" and run.cycle_end - run.cycle_start == timedelta(hours=6)
    assert (run.cycle_start.hour % 6, run.cycle_start.minute) == (0, 30) and run.cycle_start <= pm.utcnow()
    assert [(c.rank_position, c.discovered_video_id) for c in run.clips.order_by(pm.Clip.rank_position)] == [
        (rank, v.id) for rank, v in enumerate(videos, 1)]
    (snapshot,) = pm.Analytics.select()
    assert snapshot.view_count == 1200 and snapshot.measured_at.utcoffset().total_seconds() == 0


def check_worker(out):
    """Three cycles' runs uploaded, the flaky one after a recorded failure and a retry; each with 8 ranked clips
    of distinct videos, its artefacts, its review, its long-form video and shorts uploaded, and their analytics."""
    runs = list(PipelineRun.select().order_by(PipelineRun.id))
    assert [r.status for r in runs] == [RunStatus.uploaded] * 3 and {r.niche for r in runs} == {"gaming"}
    assert [r.cycle_start.hour for r in runs] == [0, 6, 12]
    assert [r.retry_count for r in runs] == [0, 1, 0] and len({r.worker for r in runs}) == 1 and runs[0].worker
    retried = runs[1]
    assert retried.error_message.startswith("attempt 1 of 3 failed: RenderCrashed: ffmpeg exited 1")
    assert [r.error_message for r in (runs[0], runs[2])] == [None, None]
    (error,) = pm.ErrorLog.select()
    assert (error.pipeline_run_id, error.module, error.error_type) == (retried.id, "render", "RenderCrashed")
    assert "Traceback" in error.stack_trace and not error.resolved
    assert pm.DiscoveredVideo.select().count() == 30
    used = [c.discovered_video_id for c in pm.Clip.select()]
    assert len(used) == len(set(used)) == 24  # no video in two runs
    for video in pm.DiscoveredVideo.select():
        assert video.processed is (Processed.used if video.id in used else Processed.pending)
    for run in runs:  # the crashed attempt wrote nothing: each run has the artefacts of one attempt
        clips = list(run.clips.order_by(pm.Clip.rank_position))
        assert [c.rank_position for c in clips] == list(range(1, 9))
        assert [c.score for c in clips] == sorted((c.score for c in clips), reverse=True)
        assert run.audio.count() == 1 and run.video_file_path == f"renders/{run.id}.mp4"
        (script,) = run.scripts
        assert script.prompt_tokens > 0 and script.completion_tokens > 0 and script.cost_usd > 0
        shorts = list(run.shorts.order_by(pm.Short.id))
        assert [s.clip.rank_position for s in shorts] == [1, 2, 3]
        assert all(s.status is ShortStatus.uploaded and s.youtube_video_id == f"sh{s.id:09d}" for s in shorts)
        assert run.youtube_video_id == f"lf{run.id:09d}" and run.completed_at <= shorts[0].uploaded_at
        (review,) = run.reviews
        assert review.action is pm.ReviewAction.approve and review.reviewer == "@alice"
    assert "a repeated tap was ignored" in out and "scheduled again, cycle 1 is run 1" in out
    assert "as the worker holds it: review; after refresh(): approved" in out
    assert pm.Analytics.select().count() == 12 * 25
    best = pm.Analytics.top(1)[0]
    # The last video uploaded: run 3's last short (made before run 2's retry, so its shorts have lower ids).
    assert (best.youtube_video_id, best.view_count) == ("sh000000006", 28800)
    assert pm.Analytics.growth(runs[0].youtube_video_id, runs[0].completed_at)["view_count"] == 2400
    assert pm.ConfigOverride.value_of(PipelineRun.RETRY_DELAY_KEY) == 1


CHECKS = {"quickstart.py": check_quickstart, "worker.py": check_worker}


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=os.path.basename)
def test_example_runs_and_leaves_its_database(script, fresh_target, tmp_path):
    name = os.path.basename(script)
    check = CHECKS.get(name)
    if check is None:
        pytest.fail(f"examples/{name} has no check of the database it leaves: add one to CHECKS in {__file__}")
    with open(script, encoding="utf-8") as fh:
        args = ["--db", fresh_target] if "--db" in fh.read() else [fresh_target]
    out = run_example(script, args, cwd=tmp_path)
    pm.init_db(fresh_target, readonly=True)  # also refuses a database the example left half-migrated
    check(out)


def test_the_examples_are_found():
    assert {"quickstart.py", "worker.py"} <= set(map(os.path.basename, EXAMPLES))


@pytest.mark.parametrize("script", EXAMPLES, ids=os.path.basename)
def test_example_help_prints_usage_and_creates_nothing(script, tmp_path):
    out = run_example(script, ["--help"], cwd=tmp_path)
    assert out.startswith("usage: ") and list(tmp_path.iterdir()) == []  # not a database named --help


@pytest.mark.slow
def test_worker_without_db_leaves_no_file_behind(tmp_path):
    out = run_example(os.path.join(ROOT, "examples", "worker.py"), [], cwd=tmp_path)
    assert "2 uploaded after 2 attempt(s)" in out
    assert list(tmp_path.iterdir()) == []


def test_worker_refuses_an_existing_file_and_leaves_it_unchanged(tmp_path):
    path = tmp_path / "mine.db"
    path.write_bytes(b"someone's data")
    for target in (str(path), f"sqlite:///{path}"):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "worker.py"), "--db", target],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "already exists" in proc.stderr and proc.stdout == ""
    assert path.read_bytes() == b"someone's data" and sorted(p.name for p in tmp_path.iterdir()) == ["mine.db"]


def test_worker_refuses_a_postgresql_database_with_tables(pg_server):
    url = pg_server.new_database()
    database = pm.init_db(url)
    pm.DiscoveredVideo.create(video_id="mine", title="t", channel_name="c", channel_id="UC", url="u",
                              niche="gaming")
    database.close()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "worker.py"), "--db", url],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "already has tables" in proc.stderr
    pm.init_db(url, readonly=True)
    assert [v.video_id for v in pm.DiscoveredVideo.select()] == ["mine"]
