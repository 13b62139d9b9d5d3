"""Every script in examples/ runs as a user runs it, on SQLite and on PostgreSQL, and leaves what it
promises.

An example takes its database as `--db TARGET` when its source mentions --db, else as its first
argument, and runs in a temporary working directory. Each example needs a check of the database it
leaves in CHECKS: a new example fails here until it has one, so none runs without its result being
looked at.
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
    """Run `script` with the test's Python in `cwd`; its stdout, or a failure showing how it
    ended."""
    proc = subprocess.run([sys.executable, script, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    name = os.path.relpath(script, ROOT)
    assert proc.returncode == 0, (f"{name} {' '.join(args)} exited {proc.returncode}\n--- stdout\n"
                                  f"{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    return proc.stdout


def check_quickstart(out):
    """Three candidates, the gaming run of the current cycle failed for good at the clip stage with
    their clips ranked by viral score, the videos used, one analytics snapshot."""
    assert "run 1: failed at stage clip, gaming cycle " in out
    assert "latest analytics: view_count 1200" in out
    assert ("clips #1 A clutch play (91.5), #2 A speedrun record (84.2), "
            "#3 An impossible save (78.0)") in out
    videos = list(pm.DiscoveredVideo.select().order_by(pm.DiscoveredVideo.viral_score.desc()))
    assert [v.video_id for v in videos] == ["dQw4w9WgXcQ", "kJQP7kiw5Fk", "9bZkp7q19f0"]
    (run,) = pm.PipelineRun.select()
    assert {(v.niche, v.processed, v.taken_by_run) for v in videos} == {("gaming", Processed.used,
                                                                         run.id)}
    assert run.status is RunStatus.failed and run.error_message == "the quickstart stops here"
    assert run.retry_count == 0 and run.niche == "gaming"
    assert run.cycle_end - run.cycle_start == timedelta(hours=6)
    assert (run.cycle_start.hour % 6, run.cycle_start.minute) == (0, 30)
    assert run.cycle_start <= pm.utcnow()
    ranked = run.clips.order_by(pm.Clip.rank_position)
    assert [(c.rank_position, c.discovered_video_id) for c in ranked] == [
        (rank, v.id) for rank, v in enumerate(videos, 1)]
    (snapshot,) = pm.Analytics.select()
    assert snapshot.view_count == 1200 and snapshot.measured_at.utcoffset().total_seconds() == 0


def check_worker(out):
    """Three cycles' runs uploaded: each took its candidates (a few downloads failed), kept 10
    ranked clips of videos no other run has, its script, audio, render and 3 shorts; the flaky one
    after a recorded failure and a retry, then a skip and a render again; uploads within the lowered
    cap of 10 in 24 h; analytics of both."""
    runs = list(PipelineRun.select().order_by(PipelineRun.id))
    assert [r.status for r in runs] == [RunStatus.uploaded] * 3 and {r.niche for r in runs} == {
        "gaming"}
    assert [r.cycle_start.hour for r in runs] == [0, 6, 12]
    assert len({r.worker for r in runs}) == 1 and runs[0].worker
    flaky = runs[1]
    assert flaky.error_message.startswith("attempt 1 of 3 failed: RenderCrashed: ffmpeg exited 1")
    assert [r.error_message for r in (runs[0], runs[2])] == [None, None]
    (error,) = pm.ErrorLog.select()
    assert (error.pipeline_run_id, error.module, error.error_type) == (flaky.id, "render",
                                                                       "RenderCrashed")
    assert "Traceback" in error.stack_trace and not error.resolved
    # 15 at most: the config's default
    assert "took 14 candidates" in out and out.count("took 15 candidates") == 2
    assert pm.DiscoveredVideo.select().count() == 42
    clips = list(pm.Clip.select())
    assert len(clips) == len({c.discovered_video_id for c in clips}) == 30  # no video in two runs
    for clip in clips:  # settled as keep_clips() and the skip leave them
        video = pm.DiscoveredVideo.get_by_id(clip.discovered_video_id)
        assert video.taken_by_run == clip.pipeline_run_id
        assert video.processed is (Processed.rejected if clip.dropped_at else Processed.used)
    rest = [v for v in pm.DiscoveredVideo.select() if not v.clips.exists()]
    assert {(v.processed, v.taken_by_run is None) for v in rest} == {(Processed.skipped, False),
                                                                    (Processed.pending, True)}
    for run in runs:  # the crashed render wrote nothing: each run has one script and one audio
        kept = list(run.clips.where(pm.Clip.dropped_at.is_null()).order_by(pm.Clip.rank_position))
        assert [c.rank_position for c in kept] == list(range(1, 10 if run == flaky else 11))
        assert [c.score for c in kept] == sorted((c.score for c in kept), reverse=True)
        assert run.audio.count() == run.scripts.count() == 1
        assert run.video_file_path == f"renders/{run.id}.mp4"
        assert run.scripts.get().cost_usd > 0
        shorts = list(
            run.shorts.where(pm.Short.status == ShortStatus.uploaded).order_by(pm.Short.id))
        assert [s.clip.rank_position for s in shorts] == [1, 2, 3]
        assert all(s.youtube_video_id == f"sh{s.id:09d}" and run.completed_at <= s.uploaded_at
                   for s in shorts)
        assert run.youtube_video_id == f"lf{run.id:09d}"
        actions = [r.action for r in run.reviews.order_by(pm.ReviewLog.id)]
        assert actions == ([pm.ReviewAction.skip] if run == flaky else []) + [
            pm.ReviewAction.approve]
    # rendered again
    assert {s.status for s in flaky.shorts} == {ShortStatus.rejected, ShortStatus.uploaded}
    assert "a repeated tap was ignored" in out
    assert "skips clip 2; the run goes back to render" in out
    began = sorted(
        [r.upload_started_at for r in runs] + [s.upload_started_at for s in pm.Short.select()
                                               if s.upload_started_at])
    assert len(began) == 12 and max(sum(1 for t in began[i:] if t < t0 + timedelta(hours=24))
                                    # the cap held, and was reached
                                    for i, t0 in enumerate(began)) == 10
    assert "cap reached, waiting until 2026-01-02 00:30" in out
    assert pm.Analytics.select().count() == 5 * 12
    best = pm.Analytics.top(1)[0]
    # the last video uploaded
    assert (best.youtube_video_id, best.view_count) == ("sh000000012", 4800)
    assert pm.Analytics.growth(runs[0].youtube_video_id, runs[0].completed_at)["view_count"] == 400
    assert pm.ConfigOverride.value_of("youtube.max_uploads_per_day") == 10


CHECKS = {"quickstart.py": check_quickstart, "worker.py": check_worker}


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=os.path.basename)
def test_example_runs_and_leaves_its_database(script, fresh_target, tmp_path):
    name = os.path.basename(script)
    check = CHECKS.get(name)
    if check is None:
        pytest.fail(f"examples/{name} has no check of the database it leaves: add one to CHECKS in "
                    f"{__file__}")
    with open(script, encoding="utf-8") as fh:
        args = ["--db", fresh_target] if "--db" in fh.read() else [fresh_target]
    out = run_example(script, args, cwd=tmp_path)
    # also refuses a database the example left half-migrated
    pm.init_db(fresh_target, readonly=True)
    check(out)


def test_the_examples_are_found():
    assert {"quickstart.py", "worker.py"} <= set(map(os.path.basename, EXAMPLES))


@pytest.mark.parametrize("script", EXAMPLES, ids=os.path.basename)
def test_example_help_prints_usage_and_creates_nothing(script, tmp_path):
    out = run_example(script, ["--help"], cwd=tmp_path)
    # not a database named --help
    assert out.startswith("usage: ") and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_worker_without_db_leaves_no_file_behind(tmp_path):
    out = run_example(os.path.join(ROOT, "examples", "worker.py"), [], cwd=tmp_path)
    assert "2 uploaded after 2 reviews" in out
    assert list(tmp_path.iterdir()) == []


def test_worker_refuses_an_existing_file_and_leaves_it_unchanged(tmp_path):
    path = tmp_path / "mine.db"
    path.write_bytes(b"someone's data")
    for target in (str(path), f"sqlite:///{path}"):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "worker.py"), "--db",
                               target],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "already exists" in proc.stderr and proc.stdout == ""
    assert path.read_bytes() == b"someone's data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.db"]


def test_worker_refuses_a_postgresql_database_with_tables(pg_server):
    url = pg_server.new_database()
    database = pm.init_db(url)
    pm.DiscoveredVideo.create(video_id="mine", title="t", channel_name="c", channel_id="UC",
                              url="u", niche="gaming")
    database.close()
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "worker.py"), "--db", url],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "already has tables" in proc.stderr
    pm.init_db(url, readonly=True)
    assert [v.video_id for v in pm.DiscoveredVideo.select()] == ["mine"]
