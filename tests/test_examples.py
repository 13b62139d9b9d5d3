"""Every script in examples/ runs as a user runs it, on SQLite and on PostgreSQL, and leaves what it promises.

An example takes its database as `--db TARGET` when its source mentions --db, else as its first argument,
and runs in a temporary working directory. Each example needs a check of the database it leaves in CHECKS:
a new example fails here until it has one, so none runs without its result being looked at.
"""
import glob
import os
import subprocess
import sys

import pytest

import pipeline_models as pm
from pipeline_models import PipelineRun, RunStatus, ShortStatus, VideoStatus

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
    """One video, its run failed for good at the clip stage with one clip, one analytics snapshot."""
    assert "run 1: failed at stage clip" in out and "latest analytics: view_count 1200" in out
    (video,) = pm.DiscoveredVideo.select()
    (run,) = video.runs
    assert run.status is RunStatus.failed and run.last_error == "the quickstart stops here"
    assert run.attempts == 1 and run.clips.count() == 1 and video.status is VideoStatus.skipped
    (snapshot,) = pm.Analytics.select()
    assert snapshot.view_count == 1200 and snapshot.measured_at.utcoffset().total_seconds() == 0


def check_worker(out):
    """Three runs published, the flaky one after a recorded failure and a retry; artefacts, reviews, analytics."""
    runs = list(PipelineRun.select().order_by(PipelineRun.id))
    assert [r.status for r in runs] == [RunStatus.published] * 3
    assert {v.status for v in pm.DiscoveredVideo.select()} == {VideoStatus.processed}
    assert [r.attempts for r in runs] == [1, 2, 1] and len({r.worker for r in runs}) == 1 and runs[0].worker
    retried = runs[1]
    assert retried.last_error.startswith("attempt 1 of 3 failed: RenderCrashed: ffmpeg exited 1")
    assert [r.last_error for r in (runs[0], runs[2])] == [None, None]
    (error,) = pm.ErrorLog.select()
    assert (error.pipeline_run_id, error.module, error.error_type) == (retried.id, "render", "RenderCrashed")
    assert "Traceback" in error.stack_trace and not error.resolved
    for run in runs:  # the crashed attempt wrote nothing: each run has the artefacts of one attempt
        assert run.clips.count() == 2 and run.audio.count() == 1
        (script,) = run.scripts
        assert script.prompt_tokens > 0 and script.completion_tokens > 0 and script.cost_usd > 0
        (short,) = run.shorts
        assert short.status is ShortStatus.uploaded and short.youtube_video_id == f"yt{short.id:09d}"
        assert short.uploaded_at is not None and short.clip.pipeline_run_id == run.id
        (review,) = run.reviews
        assert review.action is pm.ReviewAction.approve and review.reviewer == "@alice"
    assert "a repeated tap was ignored" in out
    assert "as the worker holds it: awaiting_review; after refresh(): approved" in out
    assert pm.Analytics.select().count() == 3 * 25
    best = pm.Analytics.top(1)[0]
    assert (best.youtube_video_id, best.view_count) == ("yt000000003", 7200)
    first = pm.Short.get_by_id(1)
    assert pm.Analytics.growth(first.youtube_video_id, first.uploaded_at)["view_count"] == 2400
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
    assert "2 published after 2 attempt(s)" in out
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
    pm.DiscoveredVideo.create(youtube_video_id="mine")
    database.close()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "worker.py"), "--db", url],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "already has tables" in proc.stderr
    pm.init_db(url, readonly=True)
    assert [v.youtube_video_id for v in pm.DiscoveredVideo.select()] == ["mine"]
