"""The demo runs the whole pipeline through the package's operations and leaves a consistent database."""
import pytest

import pipeline_models as pm
from pipeline_models import PipelineModelsError, RunStatus, ShortStatus
from pipeline_models.cli import main, parser
from pipeline_models.demo import run_demo


@pytest.mark.slow
def test_demo_runs_the_pipeline_end_to_end(tmp_path, capsys):
    path = str(tmp_path / "demo.db")
    assert main(["demo", "--db", path]) == 0
    out = capsys.readouterr().out
    assert "discovered 12 videos" in out and out.rstrip().splitlines()[-1].split()[:2] == ["errors", "unresolved"]

    pm.init_db(path)
    runs = list(pm.PipelineRun.select())
    assert pm.DiscoveredVideo.select().count() == 12 and len(runs) == 11
    statuses = [r.status for r in runs]
    assert statuses.count(RunStatus.rejected) == 1 and statuses.count(RunStatus.awaiting_review) == 1
    assert statuses.count(RunStatus.published) == 9
    retried = [r for r in runs if r.last_error]  # failed once, retried by the operator (attempts afresh)
    assert len(retried) == 1 and "moov atom" in retried[0].last_error
    (error,) = pm.ErrorLog.select()
    assert error.pipeline_run_id == retried[0].id and error.resolved and error.error_type == "RenderCrashed"
    uploaded = list(pm.Short.select().where(pm.Short.status == ShortStatus.uploaded))
    assert len(uploaded) == 9 and len({s.youtube_video_id for s in uploaded}) == 9
    assert pm.Short.select().where(pm.Short.status == ShortStatus.rejected).count() == 1
    assert pm.ReviewLog.select().where(pm.ReviewLog.auto_held == True).count() == 1  # noqa: E712
    assert pm.ReviewLog.select().where(pm.ReviewLog.action == "edit").count() == 1
    assert pm.Analytics.select().count() == 9 * 28
    assert {r.worker for r in runs if r.worker} <= {"worker-1", "worker-2"}
    assert sum(s.cost_usd for s in pm.Script.select()) > 0
    assert not pm.ErrorLog.unresolved().exists()


@pytest.mark.slow
def test_demo_remakes_its_own_file_and_refuses_other_data(tmp_path):
    path = str(tmp_path / "demo.db")
    lines = []
    run_demo(path, videos=3, out=lines.append)
    run_demo(path, videos=3, out=lines.append)  # its own earlier file: made anew
    pm.init_db(path)
    assert pm.DiscoveredVideo.select().count() == 3
    pm.db.obj.close()

    real = str(tmp_path / "real.db")
    pm.init_db(real)
    pm.DiscoveredVideo.discover("precious")
    pm.db.obj.close()
    with pytest.raises(PipelineModelsError, match="already holds pipeline data"):
        run_demo(real, videos=3, out=lines.append)
    pm.init_db(real)
    assert [v.youtube_video_id for v in pm.DiscoveredVideo.select()] == ["precious"]


@pytest.mark.slow
def test_a_long_demo_shows_progress(tmp_path):
    progress = []
    run_demo(str(tmp_path / "long.db"), videos=60, out=lambda line: None, progress=progress.append,
             progress_every=0.01)
    assert progress and all("runs through production" in line for line in progress)


def test_demo_default_file_ignores_pipeline_db(monkeypatch):
    monkeypatch.setenv("PIPELINE_DB", "production.db")
    assert parser().parse_args(["demo"]).db == "pipeline-demo.db"
    assert parser().parse_args(["status"]).db == "production.db"
