"""The demo tells the pipeline's cycles through the package's operations on a simulated clock:
every answer, a reminder and an auto-hold, a forced upload, the concurrency cap, a paused channel,
the daily upload cap, the analytics of long-form videos and shorts; the same story every time, on
SQLite and PostgreSQL; its shape (--niches, --days, --videos) scales what goes wrong, so that every
chart of the report has data."""
import re
import sqlite3
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import peewee
import pytest

import pipeline_models as pm
from pipeline_models import PipelineModelsError, Processed, ReviewAction, RunStatus, ShortStatus
from pipeline_models.cli import UsageError, main, parse
from pipeline_models import report
from pipeline_models.demo import MARKER, MAX_DAYS, NICHES, _Plan, run_demo
from pipeline_models.demo_db import fresh_database

# What discover() needs of a new video.
FOUND = dict(title="t", channel_name="c", channel_id="UC", niche="gaming")
DAY = timedelta(hours=24)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo at its defaults, run once for this module's checks, with every claim_next() watched:
    how many runs were running just after each claim. Yields (path, its output lines, those
    counts)."""
    path = str(tmp_path_factory.mktemp("demo") / "demo.db")
    running, claim = [], pm.PipelineRun.claim_next.__func__

    def watched(cls, *args, **kwargs):
        run = claim(cls, *args, **kwargs)
        if run is not None:
            running.append(cls.select().where(cls.status == RunStatus.running).count())
        return run

    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pm.PipelineRun, "claim_next", classmethod(watched))
        run_demo(path, out=lines.append, progress=lambda line: None)
    pm.db.obj.close()
    pm.db.initialize(None)
    yield path, lines, running


@pytest.fixture
def made(demo):
    """The demo's database, bound for the test (read only)."""
    pm.init_db(demo[0], readonly=True)
    yield demo
    pm.db.obj.close()


def fingerprint():
    """What the demo made, its times counted from its first cycle (the calendar is days before
    today), in an order that does not depend on the backend (which sorts NULL first or last)."""
    run, clip, video = pm.PipelineRun, pm.Clip, pm.DiscoveredVideo
    short, review = pm.Short, pm.ReviewLog
    first = run.select(peewee.fn.MIN(run.cycle_start)).scalar()
    first = run.cycle_start.python_value(first)
    queries = dict(
        videos=video.select(video.video_id, video.processed, video.viral_score, video.taken_by_run,
                            video.discovered_at),
        runs=run.select(run.id, run.niche, run.status, run.retry_count, run.current_stage,
                        run.worker, run.youtube_video_id, run.error_message, run.cycle_start,
                        run.started_at,
                        run.completed_at, run.upload_started_at, run.video_duration_seconds),
        clips=clip.select(clip.pipeline_run, clip.rank_position, video.video_id, clip.dropped_at,
                          clip.score, clip.created_at).join(video),
        shorts=short.select(short.pipeline_run, short.status, short.youtube_video_id, short.title,
                            short.uploaded_at),
        reviews=review.select(review.pipeline_run, review.message_id, review.action,
                              review.response_detail, review.auto_held, review.sent_at,
                              review.responded_at, review.reminded_at),
        analytics=pm.Analytics.select(pm.Analytics.youtube_video_id, pm.Analytics.view_count,
                                      pm.Analytics.measured_at))
    return {name: sorted((tuple(v - first if hasattr(v, "utcoffset") else v for v in row)
                          for row in query.tuples()), key=repr) for name, query in queries.items()}


def check_timeline():
    """Nothing in the future, and nothing before what caused it."""
    now = pm.utcnow()
    for model in pm.ALL_MODELS:
        for field in model._meta.sorted_fields:
            if isinstance(field, pm.fields.UTCDateTimeField):
                latest = model.select(field).where(field.is_null(False)).order_by(
                    field.desc()).first()
                assert latest is None or getattr(latest, field.name) <= now, (model.__name__,
                                                                             field.name)
    for run in pm.PipelineRun.select():
        assert run.created_at == run.cycle_start
        assert run.cycle_end == run.cycle_start + timedelta(hours=6)
        assert run.started_at is None or run.started_at >= run.cycle_start
        answered = [r.responded_at for r in run.reviews if r.responded_at is not None]
        for review in run.reviews:
            assert run.created_at < review.sent_at
            assert (review.responded_at or review.sent_at) >= review.sent_at
        # The last attempt's claim (work sent back is claimed again) came before its review.
        if run.reviews.exists():
            assert run.started_at < max(r.sent_at for r in run.reviews)
        for clip in run.clips:
            source = pm.DiscoveredVideo.get_by_id(clip.discovered_video_id)
            assert source.published_at < source.discovered_at <= clip.created_at
        if run.status is RunStatus.uploaded:
            assert max(answered) < run.upload_started_at < run.completed_at
            for short in run.shorts.where(pm.Short.status == ShortStatus.uploaded):
                assert run.completed_at <= short.upload_started_at < short.uploaded_at
                first = pm.Analytics.select().where(
                    pm.Analytics.youtube_video_id == short.youtube_video_id)
                first = first.order_by(pm.Analytics.measured_at).first()
                assert first.measured_at == short.uploaded_at


@pytest.mark.slow
def test_demo_tells_its_story_and_ends_with_status(demo):
    path, lines, _ = demo
    assert lines[0].startswith("scheduled 24 runs: gaming and sports, 4 cycles a day for 3 days "
                               "from ")
    assert lines[1].startswith("3 workers, at most 2 runs at once (")
    assert "sports paused for 7.75 hours" in lines[1]
    assert lines[2].startswith("discovered 288 videos, took ")
    (said,) = [line for line in lines if line.startswith("reviews: ")]
    assert said == ("reviews: 24 answered (19 approve, 2 hold, 1 redo_script, 1 reject, "
                    "1 skip 4,7), 2 reminders, 1 auto-held, 1 forced upload; "
                    "a repeated tap ignored")
    # 2 runs failed 3 times each
    assert lines[-1].splitlines()[-1].split()[:3] == ["errors", "unresolved", "6"]
    # The report reads what the demo leaves.
    assert main(["report", "--db", path, "-o", path + ".html"]) == 0


@pytest.mark.slow
def test_every_answer_is_given_with_its_effect(made):
    actions = Counter(r.action for r in pm.ReviewLog.select())
    assert set(actions) == set(ReviewAction)
    (skip,) = pm.ReviewLog.select().where(pm.ReviewLog.action == ReviewAction.skip)
    skipped = skip.pipeline_run
    dropped = list(skipped.clips.where(pm.Clip.dropped_at.is_null(False)))
    assert skip.response_detail == "skip 4,7" and len(dropped) == 2
    assert skipped.status is RunStatus.uploaded
    sources = {pm.DiscoveredVideo.get_by_id(c.discovered_video_id).processed for c in dropped}
    assert sources == {Processed.rejected}
    assert all(c.dropped_at == skip.responded_at for c in dropped)
    kept = [c.rank_position for c in skipped.clips.where(pm.Clip.dropped_at.is_null()).order_by(
        pm.Clip.rank_position)]
    assert kept == list(range(1, len(kept) + 1))
    assert skipped.video_file_path.endswith("-2.mp4")  # rendered again
    (redo,) = pm.ReviewLog.select().where(pm.ReviewLog.action == ReviewAction.redo_script)
    # Written, then spoken again.
    assert redo.pipeline_run.scripts.count() == 2 and redo.pipeline_run.audio.count() == 2
    assert redo.pipeline_run.status is RunStatus.uploaded
    for run in (skipped, redo.pipeline_run):  # their first shorts rejected, the new ones uploaded
        assert {s.status for s in run.shorts} == {ShortStatus.rejected, ShortStatus.uploaded}
        first = skip.action if run == skipped else redo.action
        actions = [r.action for r in run.reviews.order_by(pm.ReviewLog.id)]
        assert actions == [first, ReviewAction.approve]
    (rejected,) = pm.PipelineRun.select().where(pm.PipelineRun.status == RunStatus.rejected)
    assert {s.status for s in rejected.shorts} == {ShortStatus.rejected}
    assert rejected.upload_started_at is None
    held = list(pm.ReviewLog.select().where(pm.ReviewLog.action == ReviewAction.hold))
    assert [(h.message_id, h.auto_held, h.pipeline_run.status) for h in held] == [
        ("chat:4242:4:1", False, RunStatus.review)]  # left held, for the docs' reader to answer
    (later,) = pm.ReviewLog.select().where(pm.ReviewLog.response_detail.is_null()
                                           & (pm.ReviewLog.reviewer == "@bob"))
    # Held, then approved.
    assert later.action is ReviewAction.approve and later.pipeline_run.status is RunStatus.uploaded


@pytest.mark.slow
def test_a_late_review_is_reminded_once_and_an_unanswered_one_auto_held_then_forced(made):
    reminded = list(pm.ReviewLog.select().where(pm.ReviewLog.reminded_at.is_null(False)).order_by(
        pm.ReviewLog.id))
    assert len(reminded) == 2
    for review in reminded:  # by the janitor's first round after 2 hours (it runs every 10 minutes)
        waited = review.reminded_at - review.sent_at
        assert timedelta(hours=2) < waited <= timedelta(hours=2, minutes=10)
    (auto,) = pm.ReviewLog.select().where(pm.ReviewLog.auto_held == True)  # noqa: E712
    assert auto in reminded and auto.response_detail == "force_upload" and auto.reviewer == "@ops"
    assert auto.action is ReviewAction.approve and auto.pipeline_run.status is RunStatus.uploaded
    assert auto.responded_at - auto.sent_at == timedelta(hours=7)
    (late,) = [r for r in reminded if r != auto]
    assert late.action is ReviewAction.approve and late.responded_at > late.reminded_at
    others = pm.ReviewLog.select().where(  # not the held one @bob approved
        pm.ReviewLog.reminded_at.is_null() & pm.ReviewLog.responded_at.is_null(False)
        & (pm.ReviewLog.reviewer == "@alice"))
    assert all(r.responded_at - r.sent_at < timedelta(hours=2) for r in others)


@pytest.mark.slow
def test_never_more_than_two_running_and_a_paused_channel_waits(made):
    _, lines, running = made
    # The retries and the work sent back are claims too.
    assert max(running) == 2 and len(running) > 24
    # The cap had work to refuse.
    assert int(re.search(r"\((\d+) claims waited for the cap", lines[1]).group(1)) > 0
    paused = pm.ConfigOverride.get_by_id("channels.sports.paused")
    assert paused.value is False and paused.updated_by == "@ops"
    resumed = paused.updated_at
    first = min(r.cycle_start for r in pm.PipelineRun.select())
    sports = pm.PipelineRun.select().where(pm.PipelineRun.niche == "sports")
    waited = [r for r in sports if first + timedelta(days=1, hours=5) < r.cycle_start < resumed]
    # Claimed once resumed, not before.
    assert waited and all(r.started_at >= resumed for r in waited)


@pytest.mark.slow
def test_no_video_is_in_two_runs_and_the_videos_settle_as_keep_clips_leaves_them(made):
    clips = list(pm.Clip.select())
    assert max(Counter(c.discovered_video_id for c in clips).values()) == 1
    for clip in clips:
        video = pm.DiscoveredVideo.get_by_id(clip.discovered_video_id)
        assert video.taken_by_run == clip.pipeline_run_id
        assert video.processed is (Processed.rejected if clip.dropped_at else Processed.used)
    for run in pm.PipelineRun.select():
        kept = list(run.clips.order_by(pm.Clip.id))
        assert 8 <= len(kept) <= 10 or run.status is RunStatus.failed and not kept, run.id
        # Ranked by the cut.
        assert [c.score for c in kept] == sorted((c.score for c in kept), reverse=True)
    processed = Counter((v.processed, v.taken_by_run is None) for v in pm.DiscoveredVideo.select()
                        if not v.clips.exists())
    # Not kept: failed downloads and the day's last cycles' leftovers skipped; the rest pending for
    # anyone.
    assert set(processed) == {(Processed.skipped, False), (Processed.pending, True)}


@pytest.mark.slow
def test_uploads_keep_the_daily_cap_in_simulated_time_and_analytics_measure_both_kinds(made):
    _, lines, _ = made
    runs = list(pm.PipelineRun.select().where(pm.PipelineRun.status == RunStatus.uploaded))
    shorts = list(pm.Short.select().where(pm.Short.status == ShortStatus.uploaded))
    assert len(runs) == 20 and all(r.youtube_video_id == f"lf{r.id:05d}" for r in runs)
    uploaded = [r.shorts.where(pm.Short.status == ShortStatus.uploaded).count() for r in runs]
    assert all(3 <= n <= 5 for n in uploaded)
    assert {s.pipeline_run_id for s in shorts} == {r.id for r in runs}
    began = sorted([r.upload_started_at for r in runs] + [s.upload_started_at for s in shorts])
    in_a_day = [sum(1 for t in began[i:] if t < start + DAY) for i, start in enumerate(began)]
    assert max(in_a_day) == 20  # the cap held, and was reached: uploads waited for its slots
    (uploader,) = [line for line in lines if line.startswith("uploaded ")]
    assert "the uploader waited" in uploader and " 0 times" not in uploader
    measured = Counter(a.youtube_video_id for a in pm.Analytics.select())
    videos = {r.youtube_video_id for r in runs} | {s.youtube_video_id for s in shorts}
    assert set(measured) == videos
    # Every 6 hours for 3 days, long-form and shorts alike.
    assert all(n == 12 for n in measured.values())


@pytest.mark.slow
def test_two_runs_are_retried_and_two_fail_for_good_at_two_stages(made):
    runs = list(pm.PipelineRun.select())
    retried = [r for r in runs if r.retry_count == 1]
    assert [r.status for r in retried] == [RunStatus.uploaded] * 2
    assert [r.error_message.split(":")[:2] for r in retried] == [
        ["attempt 1 of 3 failed", " ScriptTimedOut"], ["attempt 1 of 3 failed", " RenderCrashed"]]
    failed = [r for r in runs if r.status is RunStatus.failed]
    assert [(r.current_stage, r.error_message.split(":")[:2]) for r in failed] == [
        ("tts", ["gave up after 3 attempts", " SynthesisFailed"]),
        ("render", ["gave up after 3 attempts", " RenderCrashed"])]
    assert all(r.completed_at < pm.utcnow() - timedelta(days=7) for r in failed)
    errors = sorted((e.pipeline_run_id, e.module, e.error_type, e.resolved)
                    for e in pm.ErrorLog.select())
    assert errors == sorted([(retried[0].id, "script", "ScriptTimedOut", True),
                             (retried[1].id, "render", "RenderCrashed", True)]
                            + [(failed[0].id, "tts", "SynthesisFailed", False)] * 3
                            + [(failed[1].id, "render", "RenderCrashed", False)] * 3)
    for run in failed:
        times = [e.occurred_at for e in run.errors.order_by(pm.ErrorLog.id)]
        # The retry delays (30 s, then 90 s), on the simulated clock.
        waits = zip(times, times[1:], (30, 90))
        assert [b - a >= timedelta(seconds=s) for a, b, s in waits] == [True, True]
    check_timeline()


def same_day(lines):
    """The demo's output without its dates (its calendar ends days before today) and the time it
    took."""
    return [re.sub(r"\d{4}-\d{2}-\d{2}", "DAY", line) for line in lines
            if not line.endswith(" s:\n")]


@pytest.mark.slow
def test_demo_is_the_same_every_time_and_on_postgresql(tmp_path, pg_server):
    path, outputs, prints = str(tmp_path / "demo.db"), [], []
    # Its own file, made anew; then PostgreSQL.
    for target in (path, path, pg_server.new_database()):
        lines = []
        run_demo(target, videos=4, out=lines.append, progress=lambda line: None)
        # The calendar ends days before today: a run after midnight (UTC) has other dates, the same
        # otherwise.
        outputs.append(same_day(lines))
        pm.init_db(target, readonly=True)
        check_timeline()
        prints.append(fingerprint())
        pm.db.obj.close()
    assert outputs[0] == outputs[1] == outputs[2] and prints[0] == prints[1] == prints[2]
    assert outputs[0][2].startswith("discovered 96 videos")
    other = []
    # Another seed, another story.
    run_demo(path, videos=4, out=other.append, progress=lambda line: None, seed=7)
    assert same_day(other)[:1] == outputs[0][:1] and same_day(other) != outputs[0]


@pytest.mark.slow
def test_a_demo_of_one_video_a_cycle_makes_countdowns_of_what_there_is(tmp_path):
    lines = []
    run_demo(str(tmp_path / "small.db"), videos=1, out=lines.append, progress=lambda line: None)
    assert lines[2].startswith("discovered 24 videos, took 24 candidates (0 failed to download) "
                               "and kept 24 ranked clips (1.0 a run)")
    (said,) = [line for line in lines if line.startswith("reviews: ")]
    # No skip of a countdown of one.
    assert said.startswith("reviews: 23 answered (19 approve, 2 hold, 1 redo_script, 1 reject), ")
    pm.init_db(str(tmp_path / "small.db"), readonly=True)
    check_timeline()
    assert {c.rank_position for c in pm.Clip.select()} == {1}
    # The channels make do with one.
    assert pm.ConfigOverride.value_of("channels.gaming.video.min_clips") == 1
    assert pm.PipelineRun.select().where(pm.PipelineRun.status == RunStatus.uploaded).count() == 20
    pm.db.obj.close()


@pytest.mark.slow
def test_a_long_demo_shows_progress(tmp_path):
    progress = []
    run_demo(str(tmp_path / "long.db"), videos=60, out=lambda line: None, progress=progress.append,
             progress_every=0.01)
    shown = r"  simulated \S+ \d\d:\d\d: \d+/24 runs through production"
    assert progress and all(re.fullmatch(shown, line) for line in progress)


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
    for target, why in ((foreign, "it is not a pipeline database"),
                        (f"sqlite:///{foreign}", "not a pipeline"),
                        (tmp_path / "new.db", "new.db-wal' is left beside it"),
                        (tmp_path, "it is a directory"), (":memory:", "an in-memory one is not"),
                        ("mysql://h/db", "SQLite file or a Postgre")):
        with pytest.raises(PipelineModelsError, match=why) as refused:
            fresh_database(str(target))
        assert "the demo will not use" in str(refused.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == listing and pm.db.obj is None


def test_demo_remakes_its_own_file_with_its_wal_and_shm(tmp_path):
    path = str(tmp_path / "demo.db")
    fresh_database(path)
    pm.DiscoveredVideo.discover("from the first demo", **FOUND)
    pm.db.obj.close()
    for suffix in ("-wal", "-shm"):
        open(path + suffix, "wb").close()  # as a demo killed half-way leaves them
    fresh_database(path)
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
        fresh_database(url)
    assert _tables(url) == tables
    pm.init_db(url, readonly=True)
    assert [v.video_id for v in pm.DiscoveredVideo.select()] == ["precious"]
    assert pm.PipelineRun.select().count() == 1


def test_demo_on_postgresql_drops_only_its_own_tables(pg_server):
    url = pg_server.new_database()
    fresh_database(url)
    pm.DiscoveredVideo.discover("from the first demo", **FOUND)
    # Someone's table beside the demo's: not the demo's to drop.
    pm.db.execute_sql("CREATE TABLE notes (text TEXT)")
    pm.db.execute_sql("INSERT INTO notes VALUES ('keep me')")
    pm.db.obj.close()
    fresh_database(url)
    assert not pm.DiscoveredVideo.select().exists() and pm.ConfigOverride.value_of(MARKER) is True
    assert pm.db.execute_sql("SELECT text FROM notes").fetchall() == [("keep me",)]
    pm.db.obj.close()


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




# --- the demo's shape: --niches, --days -------------------------------------------------------

def chart_data(numbers):
    """What each of the report's charts is drawn from (the report draws it when there is any)."""
    reviews = numbers["reviews"]["niches"]
    return {
        "funnel": [n for _, n in numbers["funnel"]],
        "runs-per-day": {day for per_day in numbers["runs_per_day"].values() for day in per_day},
        "uploads": set(numbers["uploads_per_day"]),
        "failures": set(numbers["failures"]),  # (stage, error type) cells
        "errors": {module for module, _ in numbers["unresolved_errors"]},
        "reviews": [niche for niche, got in reviews.items() if got["timed"]],
        "answers": {answer for got in reviews.values()
                    for answer, n in got["answers"].items() if n},
        "cost": [m for m in numbers["llm_cost"]["months"] if m["runs"]],
        "views": set(numbers["views"]["niches"]),
        "content-id": {niche for niche, got in numbers["content_id"].items() if got["flagged"]},
        "top-videos": [v for v in numbers["top_videos"] if v["curve"]]}


def check_charts(path, niches, days):
    """Every chart of the report of the demo at `path` has data, of every niche; from 2 niches x 3
    days on, the failure charts more than one cell, the uploads more days than the runs, the answers
    every kind."""
    pm.init_db(path, readonly=True)
    try:
        numbers, summary = report.data(), report.write(path + ".html")
        data = chart_data(numbers)
    finally:
        pm.db.obj.close()
    assert summary.charts == 11 and [chart for chart, got in data.items() if not got] == []
    assert data["funnel"][-1] > 0 and set(numbers["runs_per_day"]) == set(list(NICHES)[:niches])
    assert len(data["runs-per-day"]) == days and len(data["uploads"]) >= days
    assert data["views"] == set(list(NICHES)[:niches])
    if niches * days >= 6:
        assert len(data["failures"]) >= 2 and len(data["errors"]) >= 2
        assert len(data["uploads"]) > days  # more made a day than the cap lets through: they wait
        answers = {"approve", "force_upload", "reject", "hold", "skip", "redo_script"}
        assert data["answers"] >= answers
    return numbers


@pytest.mark.slow
def test_the_default_demo_gives_every_chart_of_the_report_data(demo):
    numbers = check_charts(demo[0], 2, 3)
    assert numbers["failures"] == {("tts", "SynthesisFailed"): 1, ("render", "RenderCrashed"): 1}


@pytest.mark.slow
@pytest.mark.parametrize("niches, days", [(1, 1), (1, 4), (3, 2)])
def test_demos_of_other_shapes_give_every_chart_data(tmp_path, niches, days):
    path, lines = str(tmp_path / "shape.db"), []
    run_demo(path, videos=6, niches=niches, days=days, out=lines.append, progress=lambda line: None)
    names = list(NICHES)[:niches]
    listed = " and ".join(filter(None, (", ".join(names[:-1]), names[-1])))
    assert lines[0].startswith(f"scheduled {niches * days * 4} runs: {listed}, 4 cycles a day for "
                               f"{days} day")
    check_charts(path, niches, days)
    pm.init_db(path, readonly=True)
    check_timeline()
    pm.db.obj.close()


@pytest.mark.slow
def test_a_big_demo_has_what_goes_wrong_in_proportion(tmp_path):
    path, lines = str(tmp_path / "big.db"), []
    run_demo(path, videos=4, niches=4, days=5, out=lines.append, progress=lambda line: None)
    assert lines[0].startswith("scheduled 80 runs: gaming, sports, funny and entertainment, "
                               "4 cycles a day for 5 days from ")
    numbers = check_charts(path, 4, 5)
    # One run in 12 fails for good, at each stage in turn.
    assert sum(numbers["failures"].values()) == 7
    assert set(numbers["failures"]) == {("tts", "SynthesisFailed"), ("render", "RenderCrashed"),
                                        ("script", "ScriptTimedOut")}
    assert len({day for day in numbers["runs_per_day"]["funny"]}) == 5
    pm.init_db(path, readonly=True)
    runs = pm.PipelineRun.select()
    assert runs.where(pm.PipelineRun.retry_count == 1).count() == 7  # 1 in 12 fails once, recovers
    actions = Counter(r.response_detail or r.action.value for r in pm.ReviewLog.select().where(
        pm.ReviewLog.action.is_null(False)))
    # One run in 24 of each answer that is not a prompt approve: 3 of 80 (a hold approved later is
    # an approve now).
    assert (actions["reject"], actions["force_upload"], actions["redo_script"]) == (3, 3, 3)
    auto_held = pm.ReviewLog.select().where(pm.ReviewLog.auto_held == True)  # noqa: E712
    assert actions["hold"] == 3 and auto_held.count() == 3
    # The daily upload cap grows with the niches (10 each), and is reached.
    assert pm.ConfigOverride.value_of("youtube.max_uploads_per_day") == 40
    shorts = pm.Short.select().where(pm.Short.uploaded_at.is_null(False))
    began = sorted(
        [r.upload_started_at for r in runs.where(pm.PipelineRun.upload_started_at.is_null(False))]
        + [s.upload_started_at for s in shorts])
    assert max(sum(1 for t in began[i:] if t < start + DAY) for i, start in enumerate(began)) == 40
    check_timeline()
    pm.db.obj.close()


@pytest.mark.parametrize("runs", [1, 4, 8, 24, 80, 480])
def test_the_plan_scales_failures_and_answers_with_the_runs(runs):
    keys = [("gaming", cycle) for cycle in range(runs)]
    plan = _Plan(keys, 2026)
    every = [always for _, always in plan.fails.values()]
    assert every.count(True) == max(1, round(runs / 12))  # failed for good
    assert every.count(False) == min(runs - every.count(True), max(1, round(runs / 12)))  # retried
    doomed = {key for key, (_, always) in plan.fails.items() if always}
    assert not doomed & set(plan.roles) and not doomed & plan.late  # a failed run is never reviewed
    answered = runs - len(doomed)
    assert len(plan.roles) == min((answered + 1) // 2, 6 * max(1, round(runs / 24)))
    if runs >= 24:  # every answer, as often each
        assert len(set(Counter(plan.roles.values()).values())) == 1
        assert len(plan.late) == round(runs / 24)
    again = _Plan(keys, 2026)  # seeded: the same plan
    assert (again.fails, again.roles, again.late) == (plan.fails, plan.roles, plan.late)


@pytest.mark.parametrize("argument, value", [
    ("niches", 0), ("niches", 5), ("niches", "2"), ("niches", True), ("days", 0), ("days", 31),
    ("days", 1.5), ("videos", 0), ("videos", -3)])
def test_run_demo_refuses_a_bad_shape_naming_it_and_writes_nothing(tmp_path, argument, value):
    path = tmp_path / "demo.db"
    refusal = rf"^run_demo: {argument} must be a whole number from 1 to \d+, not "
    with pytest.raises(ValueError, match=refusal):
        run_demo(str(path), **{argument: value}, out=lambda line: None, progress=lambda line: None)
    assert list(tmp_path.iterdir()) == [] and pm.db.obj is None


@pytest.mark.parametrize("argv, option", [
    (["--niches", "0"], "--niches"), (["--niches", "5"], "--niches"),
    (["--niches", "two"], "--niches"), (["--days", "0"], "--days"), (["--days", "31"], "--days"),
    (["--days", "1.5"], "--days")])
def test_a_bad_demo_shape_on_the_command_line_is_a_usage_error_naming_it(tmp_path, capsys, argv,
                                                                         option):
    assert main(["demo", "--db", str(tmp_path / "demo.db"), *argv]) == 2
    err = capsys.readouterr().err
    assert f"argument {option}: " in err and "pipeline-models demo --help" in err
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_takes_the_shape_run_demo_takes():
    assert (parse(["demo"]).niches, parse(["demo"]).days) == (2, 3)  # run_demo's defaults
    for option, most in (("--niches", len(NICHES)), ("--days", MAX_DAYS)):  # and its limits
        assert getattr(parse(["demo", option, str(most)]), option[2:]) == most
        with pytest.raises(UsageError,
                           match=f"argument {option}: the value must be a whole number from 1 to "
                                 f"{most}, not {most + 1}"):
            parse(["demo", option, str(most + 1)])


@pytest.mark.slow
def test_the_demo_command_runs_the_shape_it_is_given(tmp_path, capsys):
    path = str(tmp_path / "demo.db")
    assert main(["demo", "--db", path, "--niches", "1", "--days", "2", "--videos", "9"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scheduled 8 runs: gaming, 4 cycles a day for 2 days from ")
    assert "discovered 72 videos" in out
