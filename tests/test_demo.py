"""The demo runs the pipeline through the package's operations and leaves a consistent database: the same one
every time, on SQLite and PostgreSQL."""
import re
import sqlite3
import threading
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import peewee
import pytest

import pipeline_models as pm
from pipeline_models import PipelineModelsError, Processed, ReviewAction, RunStatus, ShortStatus
from pipeline_models.cli import main, parse
from pipeline_models.demo import MARKER, _fresh_database, _work, run_demo

FOUND = dict(title="t", channel_name="c", channel_id="UC", niche="gaming")  # what discover() needs of a new video


def fingerprint():
    """What the demo made, without the timestamps (laid out from the machine's timings), in an order that does
    not depend on the backend (which sorts NULL first or last)."""
    run, clip, video, short, review = pm.PipelineRun, pm.Clip, pm.DiscoveredVideo, pm.Short, pm.ReviewLog
    queries = dict(
        videos=video.select(video.video_id, video.processed, video.viral_score, video.view_count),
        runs=run.select(run.id, run.niche, run.status, run.retry_count, run.current_stage, run.youtube_video_id,
                        run.error_message),
        cycles=run.select(run.id, run.cycle_start),
        clips=clip.select(clip.pipeline_run, clip.rank_position, video.video_id, clip.dropped_at.is_null(False),
                          clip.score).join(video),
        shorts=short.select(short.pipeline_run, short.status, short.youtube_video_id, short.title),
        reviews=review.select(review.pipeline_run, review.message_id, review.action, review.response_detail,
                              review.auto_held),
        analytics=pm.Analytics.select(pm.Analytics.youtube_video_id, pm.Analytics.view_count))
    made = {name: sorted((tuple(bool(v) if isinstance(v, int) and name == "clips" and i == 3 else v
                                for i, v in enumerate(row)) for row in query.tuples()), key=repr)
            for name, query in queries.items()}
    first = min(start for _, start in made["cycles"])  # the calendar: days before today, whichever day that is
    made["cycles"] = [(run_id, start - first, start.strftime("%H:%M")) for run_id, start in made["cycles"]]
    return made


def check_timeline():
    """Nothing in the future, and nothing before what caused it."""
    now = pm.utcnow()
    for model in pm.ALL_MODELS:
        for field in model._meta.sorted_fields:
            if isinstance(field, pm.fields.UTCDateTimeField):
                latest = model.select(field).where(field.is_null(False)).order_by(field.desc()).first()
                assert latest is None or getattr(latest, field.name) <= now, (model.__name__, field.name)
    for run in pm.PipelineRun.select():
        assert run.created_at == run.cycle_start and run.cycle_end == run.cycle_start + timedelta(hours=6)
        answered = [r.responded_at for r in run.reviews if r.responded_at is not None]
        for review in run.reviews:
            assert run.created_at < review.sent_at and (review.responded_at or review.sent_at) >= review.sent_at
        for clip in run.clips:
            source = pm.DiscoveredVideo.get_by_id(clip.discovered_video_id)
            assert source.published_at < source.discovered_at <= clip.created_at
        if run.status is RunStatus.uploaded:
            assert max(answered) < run.upload_started_at < run.completed_at
            for short in run.shorts.where(pm.Short.status == ShortStatus.uploaded):
                assert max(answered) < short.uploaded_at
                first = pm.Analytics.select().where(pm.Analytics.youtube_video_id == short.youtube_video_id)
                assert first.order_by(pm.Analytics.measured_at).first().measured_at == short.uploaded_at


@pytest.mark.slow
def test_demo_runs_the_pipeline_end_to_end(tmp_path, capsys):
    path = str(tmp_path / "demo.db")
    assert main(["demo", "--db", path]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("scheduled 24 runs: gaming and sports, 4 cycles a day for 3 days from ")
    assert lines[1].startswith("2 workers, one per niche, discovered 288 videos and cut ")
    assert "reviews: 22 answered (17 approve, 2 hold, 1 reject, 1 skip 4,7, 1 redo_script), 1 auto-held; " \
           "a repeated tap ignored" in lines
    assert "uploaded 20 long-form videos and 81 shorts" in lines and out.rstrip().splitlines()[-1].split()[:2] == [
        "errors", "unresolved"]

    pm.init_db(path)
    check_timeline()
    runs = list(pm.PipelineRun.select().order_by(pm.PipelineRun.cycle_start))
    assert Counter(r.niche for r in runs) == {"gaming": 12, "sports": 12}
    assert [r.cycle_start.strftime("%H:%M") for r in runs[:8]] == ["00:30", "01:00", "06:30", "07:00", "12:30",
                                                                    "13:00", "18:30", "19:00"]
    assert Counter(r.status for r in runs) == {RunStatus.uploaded: 20, RunStatus.review: 2, RunStatus.failed: 1,
                                               RunStatus.rejected: 1}
    assert {r.niche: r.worker for r in runs} == {"gaming": "worker-1", "sports": "worker-2"}
    assert pm.DiscoveredVideo.select().count() == 288

    # Clips: 8-10 a run, each of a different video, ranked 1..N among those kept; a video in one run only.
    used = Counter()
    for run in runs:
        clips = list(run.clips.order_by(pm.Clip.rank_position))
        assert 8 <= len(clips) <= 10 and len({c.discovered_video_id for c in clips}) == len(clips), run.id
        assert [c.rank_position for c in clips if c.dropped_at is None] == list(range(1, 1 + sum(
            c.dropped_at is None for c in clips)))
        assert [c.score for c in clips] == sorted((c.score for c in clips), reverse=True) or run.clips.where(
            pm.Clip.dropped_at.is_null(False)).exists()
        used.update(c.discovered_video_id for c in clips)
    assert max(used.values()) == 1
    processed = Counter(v.processed for v in pm.DiscoveredVideo.select())
    assert processed[Processed.used] + processed[Processed.rejected] == len(used) and processed[Processed.rejected] == 2
    assert processed[Processed.skipped] >= 1 and processed[Processed.pending] >= 1  # failed downloads; the rest left

    # Every answer at least once, each with its effect.
    actions = Counter(r.action for r in pm.ReviewLog.select())
    assert set(actions) == set(ReviewAction) and pm.ReviewLog.select().count() == 25
    (skip,) = pm.ReviewLog.select().where(pm.ReviewLog.action == ReviewAction.skip)
    skipped = skip.pipeline_run
    dropped = list(skipped.clips.where(pm.Clip.dropped_at.is_null(False)))
    assert skip.response_detail == "skip 4,7" and len(dropped) == 2 and skipped.status is RunStatus.uploaded
    assert {pm.DiscoveredVideo.get_by_id(c.discovered_video_id).processed for c in dropped} == {Processed.rejected}
    (redo,) = pm.ReviewLog.select().where(pm.ReviewLog.action == ReviewAction.redo_script)
    assert redo.pipeline_run.scripts.count() == 2 and redo.pipeline_run.status is RunStatus.uploaded
    for run in (skipped, redo.pipeline_run):  # their first shorts rejected, the new ones uploaded
        assert {s.status for s in run.shorts} == {ShortStatus.rejected, ShortStatus.uploaded}
        assert [r.action for r in run.reviews.order_by(pm.ReviewLog.id)][-1] is ReviewAction.approve
    (rejected,) = [r for r in runs if r.status is RunStatus.rejected]
    assert {s.status for s in rejected.shorts} == {ShortStatus.rejected} and rejected.youtube_video_id is None
    held = list(pm.ReviewLog.select().where(pm.ReviewLog.action == ReviewAction.hold).order_by(pm.ReviewLog.id))
    assert sorted(h.auto_held for h in held) == [False, True]  # the workers' rows interleave: ids in any order
    assert all(h.pipeline_run.status is RunStatus.review for h in held)
    assert pm.ReviewLog.select().where(pm.ReviewLog.auto_held == True).count() == 1  # noqa: E712

    # Failures: a render crashed once and was retried; a TTS failed every attempt.
    (retried,) = [r for r in runs if r.retry_count == 1]
    assert retried.status is RunStatus.uploaded and retried.error_message.startswith(
        "attempt 1 of 3 failed: RenderCrashed: ffmpeg exited 1")
    (failed,) = [r for r in runs if r.status is RunStatus.failed]
    assert failed.error_message.startswith("gave up after 3 attempts: SynthesisFailed")
    assert failed.current_stage == "tts"
    errors = sorted((e.pipeline_run_id, e.module, e.error_type, e.resolved) for e in pm.ErrorLog.select())
    assert errors == sorted([(retried.id, "render", "RenderCrashed", True)]
                            + [(failed.id, "tts", "SynthesisFailed", False)] * 3)

    # Uploads, long-form and shorts, each once; analytics of both.
    uploaded = [r for r in runs if r.status is RunStatus.uploaded]
    assert all(r.youtube_video_id == f"lf{r.id:05d}" and r.youtube_url.endswith(r.youtube_video_id) for r in uploaded)
    shorts = list(pm.Short.select().where(pm.Short.status == ShortStatus.uploaded))
    assert len(shorts) == 81 and {s.pipeline_run_id for s in shorts} == {r.id for r in uploaded}
    assert all(3 <= r.shorts.where(pm.Short.status == ShortStatus.uploaded).count() <= 5 for r in uploaded)
    measured = {a.youtube_video_id for a in pm.Analytics.select(pm.Analytics.youtube_video_id).distinct()}
    assert measured == {r.youtube_video_id for r in uploaded} | {s.youtube_video_id for s in shorts}
    assert pm.Analytics.select().count() == 12 * (20 + 81)
    assert sum(s.cost_usd for s in pm.Script.select()) > 0 and pm.TTSAudio.select().count() == 24
    assert pm.ConfigOverride.as_dict() == {MARKER: True}  # the demo's short retry delay went with it


@pytest.mark.slow
def test_demo_is_the_same_every_time_and_on_postgresql(tmp_path, pg_server):
    path, outputs, prints = str(tmp_path / "demo.db"), [], []
    for target in (path, path, pg_server.new_database()):  # its own file, made anew; then PostgreSQL
        lines = []
        run_demo(target, videos=4, out=lines.append, progress=lambda line: None)
        # The calendar ends days before today: a run after midnight (UTC) has other dates, the same otherwise.
        outputs.append([re.sub(r"\d{4}-\d{2}-\d{2}", "DAY", line) for line in lines if " after " not in line])
        pm.init_db(target, readonly=True)
        check_timeline()
        prints.append(fingerprint())
        pm.db.obj.close()
    assert outputs[0] == outputs[1] == outputs[2] and prints[0] == prints[1] == prints[2]
    assert "discovered 96 videos" in outputs[0][1]


@pytest.mark.slow
def test_a_demo_of_one_video_a_cycle_makes_countdowns_of_what_there_is(tmp_path):
    lines = []
    run_demo(str(tmp_path / "small.db"), videos=1, out=lines.append, progress=lambda line: None)
    assert "discovered 24 videos and cut 24 ranked clips (1.0 a run)" in lines[1]
    (said,) = [line for line in lines if line.startswith("reviews: ")]
    assert said.startswith("reviews: 22 answered (18 approve, 2 hold, 1 reject, 1 redo_script), ")  # no skip of one
    pm.init_db(str(tmp_path / "small.db"), readonly=True)
    check_timeline()
    assert {c.rank_position for c in pm.Clip.select()} == {1}
    assert pm.PipelineRun.select().where(pm.PipelineRun.status == RunStatus.uploaded).count() == 20


@pytest.mark.slow
def test_demo_remakes_its_own_file_and_refuses_other_data(tmp_path):
    path = str(tmp_path / "demo.db")
    lines = []
    run_demo(path, videos=3, out=lines.append)
    run_demo(path, videos=3, out=lines.append)  # its own earlier file: made anew
    pm.init_db(path)
    assert pm.DiscoveredVideo.select().count() == 3 * 24  # 3 a cycle, not twice as many
    pm.db.obj.close()

    real = str(tmp_path / "real.db")
    pm.init_db(real)
    pm.DiscoveredVideo.discover("precious", **FOUND)
    pm.db.obj.close()
    pm.db.initialize(None)
    before = open(real, "rb").read()
    for target in (real, "sqlite:///" + real):
        with pytest.raises(PipelineModelsError, match="pipeline data the demo did not make"):
            run_demo(target, videos=3, out=lines.append)
    assert open(real, "rb").read() == before
    pm.init_db(real)
    assert [v.video_id for v in pm.DiscoveredVideo.select()] == ["precious"]


def test_demo_refuses_files_it_did_not_make_and_leftovers_beside_a_new_one(tmp_path):
    foreign = tmp_path / "notes.db"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE notes (text)")
    connection.commit()
    connection.close()
    (tmp_path / "new.db-wal").write_bytes(b"someone's log")
    listing = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for target, why in ((foreign, "it is not a pipeline database"), (f"sqlite:///{foreign}", "not a pipeline"),
                        (tmp_path / "new.db", "new.db-wal' is left beside it"), (tmp_path, "it is a directory"),
                        (":memory:", "worker processes need a database"), ("mysql://h/db", "SQLite file or a Postgre")):
        with pytest.raises(PipelineModelsError, match=why) as refused:
            _fresh_database(str(target))
        assert "the demo will not use" in str(refused.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == listing and pm.db.obj is None


def test_demo_remakes_its_own_file_with_its_wal_and_shm(tmp_path):
    path = str(tmp_path / "demo.db")
    _fresh_database(path)
    pm.DiscoveredVideo.discover("from the first demo", **FOUND)
    pm.db.obj.close()
    for suffix in ("-wal", "-shm"):
        open(path + suffix, "wb").close()  # as a demo killed half-way leaves them
    _fresh_database(path)
    assert not pm.DiscoveredVideo.select().exists() and pm.ConfigOverride.value_of(MARKER) is True
    pm.db.obj.close()


def _tables(url):
    database = peewee.PostgresqlDatabase(None)
    parts = urlsplit(url)
    database.init(parts.path.lstrip("/"), host=parts.hostname, port=parts.port, user=parts.username,
                  password=parts.password)
    with database:
        return sorted(database.get_tables())


def test_demo_on_postgresql_refuses_pipeline_data_it_did_not_make(pg_server):
    url = pg_server.new_database()
    pm.init_db(url)
    pm.DiscoveredVideo.discover("precious", **FOUND)
    pm.PipelineRun.schedule("gaming", pm.utcnow())
    pm.db.obj.close()
    tables = _tables(url)
    with pytest.raises(PipelineModelsError, match="pipeline data the demo did not make"):
        _fresh_database(url)
    assert _tables(url) == tables
    pm.init_db(url, readonly=True)
    assert [v.video_id for v in pm.DiscoveredVideo.select()] == ["precious"]
    assert pm.PipelineRun.select().count() == 1


def test_demo_on_postgresql_drops_only_its_own_tables(pg_server):
    url = pg_server.new_database()
    _fresh_database(url)
    pm.DiscoveredVideo.discover("from the first demo", **FOUND)
    pm.db.execute_sql("CREATE TABLE notes (text TEXT)")  # someone's table beside the demo's: not the demo's to drop
    pm.db.execute_sql("INSERT INTO notes VALUES ('keep me')")
    pm.db.obj.close()
    _fresh_database(url)
    assert not pm.DiscoveredVideo.select().exists() and pm.ConfigOverride.value_of(MARKER) is True
    assert pm.db.execute_sql("SELECT text FROM notes").fetchall() == [("keep me",)]
    pm.db.obj.close()


@pytest.mark.slow
def test_demo_runs_on_postgresql(pg_server):
    url = pg_server.new_database()
    lines = []
    run_demo(url, videos=4, out=lines.append)
    assert lines[0].startswith("scheduled 24 runs") and "discovered 96 videos" in lines[1]
    pm.init_db(url, readonly=True)
    assert pm.PipelineRun.select().where(pm.PipelineRun.status == RunStatus.uploaded).count() == 20


@pytest.mark.slow
def test_a_long_demo_shows_progress(tmp_path):
    progress = []
    run_demo(str(tmp_path / "long.db"), videos=60, out=lambda line: None, progress=progress.append,
             progress_every=0.01)
    assert progress and all("runs through production" in line for line in progress)


def test_demo_without_a_postgresql_driver_says_so_as_status_does(monkeypatch, capsys):
    monkeypatch.setattr(peewee, "psycopg2", None)
    monkeypatch.setattr(peewee, "psycopg", None)
    url = "postgresql://u:secret@127.0.0.1:1/x"
    refusals = []
    for command in ("demo", "status"):
        assert main(["--db", url, command]) == 1
        refusals.append(capsys.readouterr().err)
    assert refusals[0] == refusals[1], refusals
    assert "install the 'postgres' extra, which installs psycopg 3" in refusals[0]
    assert "psycopg2" not in refusals[0] and "secret" not in refusals[0] and pm.db.obj is None


def test_demo_default_file_ignores_pipeline_db(monkeypatch):
    monkeypatch.setenv("PIPELINE_DB", "production.db")
    assert parse(["demo"]).db == "pipeline-demo.db"
    assert parse(["status"]).db == "production.db"


def test_a_failing_worker_says_why_in_one_line(tmp_path, capsys):
    start = threading.Barrier(1)
    with pytest.raises(SystemExit) as exited:
        _work(str(tmp_path / "no" / "such" / "dir.db"), "worker-1", "gaming", 12, start)
    err = capsys.readouterr().err
    assert exited.value.code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("pipeline-models: demo worker-1: CannotOpenDatabase: ") and "does not exist" in err
