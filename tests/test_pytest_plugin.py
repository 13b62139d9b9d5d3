"""The pytest plugin the package ships (pipeline_models.pytest_plugin), run on users' test files
with pytester."""
import importlib.metadata
import textwrap
from pathlib import Path

import pytest

import pipeline_models as pm

pytest_plugins = ["pytester"]

# The README's complete example test file ("Testing your code"), run as written below.
README_EXAMPLE = '''\
import datetime

import pipeline_models as pm

CYCLE = datetime.datetime(2026, 6, 1, 0, 30, tzinfo=datetime.timezone.utc)


def test_a_cycle_is_scheduled_once(pipeline_db):
    assert pm.PipelineRun.schedule("gaming", CYCLE) == pm.PipelineRun.schedule("gaming", CYCLE)
    assert pm.PipelineRun.select().count() == 1


def test_every_test_starts_empty(pipeline_db):
    assert pm.DiscoveredVideo.select().count() == 0


def test_a_skip_drops_the_clip_and_renders_again(pipeline_factory):
    chain = pipeline_factory.chain("review", clips=3)
    pm.ReviewLog.answer(chain.review.message_id, "skip", response_detail="skip 2",
                        reviewer="@alice")
    assert chain.run.refresh().status == "pending" and chain.run.current_stage == "render"
    assert chain.videos[1].refresh().processed == pm.Processed.rejected


def test_the_long_form_upload_ends_the_run(pipeline_factory):
    chain = pipeline_factory.chain("approved")
    chain.run.start_upload()
    chain.run.mark_uploaded("yt-long-1")
    assert chain.run.refresh().status == "uploaded"
    # shorts: once the run is approved, in any order
    assert chain.shorts[0].mark_uploaded("yt-short-1")
'''

# Each test sees an empty database of its own, bound only while it runs; tests without the fixture
# see nothing.
ISOLATION = '''
import datetime

import peewee
import pytest
import pipeline_models as pm


def video(video_id):
    return pm.DiscoveredVideo.create(video_id=video_id, title="t", channel_name="c",
                                     channel_id="UC", url="u", niche="gaming")


def test_first_writes(pipeline_db):
    assert pm.db.obj is pipeline_db and isinstance(pipeline_db, peewee.SqliteDatabase)
    video("first")
    pm.PipelineRun.schedule("gaming", datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    pm.ConfigOverride.set("render.fps", 60)
    assert pm.DiscoveredVideo.select().count() == 1


def test_second_sees_none_of_it(pipeline_db):
    assert pm.db.obj is pipeline_db
    for model in pm.ALL_MODELS:
        assert model.select().count() == 0, model
    assert video("second").id == 1  # ids start again too


def test_without_the_fixture_the_proxy_is_unbound():
    assert pm.db.obj is None
    with pytest.raises(pm.DatabaseNotBound):
        pm.DiscoveredVideo.select().count()


def test_last(pipeline_db):
    assert pm.DiscoveredVideo.select().count() == 0
'''

def _run(pytester, source, *args, subprocess=False):
    pytester.makepyfile(test_user=textwrap.dedent(source))
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    # hypothesis: seconds a run
    return run("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)


def test_the_entry_point_is_registered():
    found = importlib.metadata.entry_points()
    group = (found.select(group="pytest11") if hasattr(found, "select")
             else found.get("pytest11", []))
    assert {(ep.name, ep.value) for ep in group} >= {("pipeline_models",
                                                      "pipeline_models.pytest_plugin")}


def test_the_readme_example_runs_as_written(pytester):
    # A subprocess, as a user runs it: the plugin comes in through its entry point, with no
    # conftest.
    result = _run(pytester, README_EXAMPLE, subprocess=True)
    result.assert_outcomes(passed=4)


def test_each_test_gets_a_fresh_database_bound_only_while_it_runs(pytester):
    result = _run(pytester, ISOLATION, "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    assert pm.db.obj is None  # the in-process run left this process's proxy as it found it


def test_the_schema_is_what_the_migrations_make(pytester):
    result = _run(pytester, '''
        import datetime
        import peewee
        import pytest
        import pipeline_models as pm


        def schema(database):
            return database.execute_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()


        def test_same_schema_as_init_db(pipeline_db):
            reference = peewee.SqliteDatabase(":memory:")
            pm.init_db(reference)
            pm.db.initialize(pipeline_db)
            assert schema(pipeline_db) == schema(reference)
            assert pm.migrate() == []  # the migration history came along: nothing is pending
            names = [row[0] for row in pipeline_db.execute_sql(
                "SELECT name FROM schema_migration ORDER BY id")]
            assert names == sorted(p.stem for p in pm.MIGRATIONS_DIR.glob("0*.py"))


        def test_check_constraints(pipeline_db):
            video = dict(title="t", channel_name="c", channel_id="UC", url="u", niche="gaming")
            with pytest.raises(peewee.IntegrityError, match="CHECK"):
                pm.DiscoveredVideo.insert(video_id="v", view_count=-1, **video).execute()
            cycle = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
            end = cycle + datetime.timedelta(hours=6)
            run = pm.PipelineRun.create(niche="gaming", cycle_start=cycle, cycle_end=end)
            # raw SQL: no Python check before the database's
            with pytest.raises(peewee.IntegrityError, match="CHECK"):
                pipeline_db.execute_sql("UPDATE pipeline_runs SET status = 'bogus' WHERE id = ?",
                                        (run.id,))
            pm.DiscoveredVideo.create(video_id="w", **video)
            with pytest.raises(peewee.IntegrityError, match="CHECK"):
                pipeline_db.execute_sql("UPDATE discovered_videos SET processed = 4")


        def clip(run, video, rank):
            return pm.Clip.insert(pipeline_run=run, discovered_video=video, rank_position=rank,
                                  start_time_seconds=0, end_time_seconds=1,
                                  clip_duration_seconds=1).execute()


        def test_foreign_keys(pipeline_db):
            assert pipeline_db.pragma("foreign_keys") == 1
            with pytest.raises(peewee.IntegrityError, match="FOREIGN KEY"):
                clip(42, 42, 1)


        def test_one_run_per_niche_and_cycle_and_one_clip_per_rank(pipeline_db):
            cycle = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
            row = dict(niche="gaming", cycle_start=cycle,
                       cycle_end=cycle + datetime.timedelta(hours=6))
            run = pm.PipelineRun.create(**row)
            with pytest.raises(peewee.IntegrityError, match="UNIQUE"):
                pm.PipelineRun.create(**row)
            videos = [pm.DiscoveredVideo.create(video_id=f"v{n}", title="t", channel_name="c",
                                                channel_id="UC", url="u", niche="gaming")
                      for n in range(2)]
            clip(run, videos[0], 1)
            # the index clips_rank_in_run
            with pytest.raises(peewee.IntegrityError, match="UNIQUE"):
                clip(run, videos[1], 1)
    ''')
    result.assert_outcomes(passed=4)

def test_the_binding_before_the_test_is_given_back(pytester):
    result = _run(pytester, '''
        import peewee
        import pytest
        import pipeline_models as pm


        @pytest.fixture
        def outer():
            database = peewee.SqliteDatabase(":memory:")
            pm.db.initialize(database)
            yield database
            assert pm.db.obj is database, "pipeline_db did not give the previous binding back"


        def test_inside(outer, pipeline_db):
            assert pm.db.obj is pipeline_db and pipeline_db is not outer
    ''')
    result.assert_outcomes(passed=1)


# A test that fails, and one that leaves a transaction open: the tests after them are not affected.
LEFT_OPEN = '''
import pipeline_models as pm

LEFT = []


def video():
    return pm.DiscoveredVideo.create(video_id="v", title="t", channel_name="c", channel_id="UC",
                                     url="u", niche="gaming")


def test_fails(pipeline_db):
    video()
    assert False, "the user's test fails"


def test_leaves_a_transaction_open(pipeline_db):
    LEFT.append(pipeline_db)
    pm.db.atomic().__enter__()
    video()


def test_after_them():
    assert pm.db.obj is None
    assert LEFT[0].is_closed()  # the transaction went with its connection


def test_and_a_fresh_database_again(pipeline_db):
    assert pm.DiscoveredVideo.select().count() == 0
    video()
'''

def test_a_failing_test_or_an_open_transaction_still_unbinds(pytester):
    result = _run(pytester, LEFT_OPEN, "-p", "no:randomly")
    # The open transaction is the test's bug: reported as an error in its teardown, and dropped.
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*transaction is open*"])


STATUSES = '''
import pytest
import pipeline_models as pm
from pipeline_models import Processed, RunStatus

SHORT = {"running": "pending", "review": "review", "approved": "review", "uploaded": "review",
         "rejected": "rejected", "failed": "pending"}
REVIEW = {"review": None, "approved": "approve", "rejected": "reject", "uploaded": "approve"}
FINISHED = ("uploaded", "rejected", "failed")


def fresh(row):
    return type(row).get_by_id(row.id)


@pytest.mark.parametrize("status", [s.value for s in RunStatus])
def test_chain(pipeline_factory, status):
    chain = pipeline_factory.chain(status)
    run = fresh(chain.run)
    assert run.status == status == chain.run.status and run.niche == "gaming"
    worked = status != "pending"
    assert (run.worker == "test-worker") is worked and (run.started_at is not None) is worked
    assert run.retry_count == 0 == chain.run.retry_count  # claim_next counts no retry
    clips = 3 if worked else 0
    # Ranked 1..N, each of a video of its own of the run's niche, marked used.
    assert ([fresh(c).rank_position for c in chain.clips] == [c.rank_position for c in chain.clips]
            == list(range(1, clips + 1)))
    assert [c.discovered_video_id for c in chain.clips] == [v.id for v in chain.videos]
    assert (len({v.id for v in chain.videos}) == len(chain.videos) == pm.Clip.select().count()
            == clips)
    assert all(c.pipeline_run_id == run.id and c.dropped_at is None for c in chain.clips)
    assert all(fresh(v).processed is Processed.used is v.processed and v.niche == run.niche
               for v in chain.videos)
    for name, model in (("script", pm.Script), ("audio", pm.TTSAudio)):
        row = getattr(chain, name)
        assert (row is not None) is worked and model.select().count() == int(worked), name
        if worked:
            assert row.pipeline_run_id == run.id
    # one of each of the top three clips
    assert len(chain.shorts) == pm.Short.select().count() == clips
    for short, clip in zip(chain.shorts, chain.clips):
        assert short.clip_id == clip.id and short.pipeline_run_id == run.id
        assert (fresh(short).status == SHORT[status] == short.status
                and short.youtube_video_id is None)
    assert ((chain.review is not None) is (status in REVIEW)
            and pm.ReviewLog.select().count() == int(status in REVIEW))
    if status in REVIEW:
        review = fresh(chain.review)
        assert (review.action == REVIEW[status] and review.message_id
                and review.pipeline_run_id == run.id)
    assert ((run.youtube_video_id is not None) is (status == "uploaded")
            is (run.youtube_url is not None))
    assert (run.completed_at is not None) is (status in FINISHED)
    if status == "failed":
        assert run.error_message == "failed by pipeline_factory"


def test_a_chain_leaves_its_videos_as_keep_clips_leaves_them(pipeline_factory):
    # the test's own candidate, the niche's best: not taken
    mine = pipeline_factory.video(viral_score=1000.0)
    first, second = (pipeline_factory.chain("review", clips=8),
                     pipeline_factory.chain("approved", clips=10))
    for chain in (first, second):
        assert {(fresh(v).processed, fresh(v).taken_by_run) for v in chain.videos} == {
            (Processed.used, chain.run.id)}
        assert [c.rank_position for c in chain.clips] == list(range(1, len(chain.clips) + 1))
    assert not {v.id for v in first.videos} & {v.id for v in second.videos}
    assert (fresh(mine).processed, fresh(mine).taken_by_run) == (Processed.pending, None)
    assert [v.id for v in pm.get_pending_videos("gaming")] == [mine.id]
    running = pipeline_factory.chain("running")  # its worker is past the candidates: they were kept
    with pytest.raises(ValueError, match=f"run {running.run.id} keeps 3 clips already"):
        running.run.take_candidates()


@pytest.mark.parametrize("status", [s.value for s in RunStatus])
def test_run(pipeline_factory, status):
    run = pipeline_factory.run(status=RunStatus(status))
    assert fresh(run).status == status == run.status
    assert (pm.Clip.select().count() == pm.Short.select().count()
            == pm.DiscoveredVideo.select().count() == 0)
    assert pm.ReviewLog.select().count() == (1 if status in REVIEW else 0)
    assert (fresh(run).youtube_video_id is not None) is (status == "uploaded")


@pytest.mark.parametrize("clips", [1, 8, 10])
def test_chain_of_n_clips_of_a_niche(pipeline_factory, clips):
    chain = pipeline_factory.chain("review", niche="funny", clips=clips)
    assert chain.run.niche == "funny" and {v.niche for v in chain.videos} == {"funny"}
    ranked = chain.run.clips.order_by(pm.Clip.rank_position)
    assert [(c.rank_position, c.discovered_video_id) for c in ranked] == [
        (rank, video.id) for rank, video in enumerate(chain.videos, 1)]
    assert len(set(chain.videos)) == clips and len(chain.shorts) == min(clips, 3)


def test_many_chains_have_unique_ids(pipeline_factory):
    chains = [pipeline_factory.chain(status) for status in [s.value for s in RunStatus] * 3]
    videos = [v.video_id for c in chains for v in c.videos]
    assert len(videos) == len(set(videos)) == 3 * 6 * 3  # pending chains have none yet
    # a cycle of its own each
    assert len({(c.run.niche, c.run.cycle_start) for c in chains}) == len(chains)
    uploaded = [c.run.youtube_video_id for c in chains if c.run.youtube_video_id]
    assert len(uploaded) == len(set(uploaded)) == 3
    assert pm.ReviewLog.select().where(pm.ReviewLog.message_id.is_null()).count() == 0
'''

def test_the_factory_reaches_every_status_as_the_pipeline_would(pytester):
    result = _run(pytester, STATUSES)
    result.assert_outcomes(passed=19)


def test_the_factory_rows_work_with_the_operations(pytester):
    result = _run(pytester, '''
        import datetime
        import pytest
        import pipeline_models as pm


        def test_a_running_run_is_claimed_as_claim_next_claims(pipeline_factory):
            made = pipeline_factory.run(status="running")
            other = pm.PipelineRun.schedule("gaming", pipeline_factory.cycle())
            claimed = pm.PipelineRun.claim_next("w")
            assert claimed.id == other.id
            filled = lambda run: {k for k, v in pm.PipelineRun.get_by_id(run.id).__data__.items()
                                  if v is not None}
            assert filled(made) == filled(claimed)
            assert made.heartbeat(stage="render")
            with made.fenced():
                pipeline_factory.clip(made)
            pm.ReviewLog.request(made, message_id="m1")
            assert made.status == "review"


        def test_the_review_is_answered_by_its_message_id(pipeline_factory):
            chain = pipeline_factory.chain()  # review by default
            review, recorded = pm.ReviewLog.answer(chain.review.message_id, "reject")
            assert recorded and chain.run.refresh().status == "rejected"
            assert [short.refresh().status for short in chain.shorts] == ["rejected"] * 3


        def test_a_skip_drops_the_clips_named_and_ranks_the_rest_again(pipeline_factory):
            chain = pipeline_factory.chain("review", clips=5)
            pm.ReviewLog.answer(chain.review.message_id, "skip", response_detail="skip 2,4")
            kept = (chain.run.clips.where(pm.Clip.dropped_at.is_null())
                    .order_by(pm.Clip.rank_position))
            assert [(c.rank_position, c.id) for c in kept] == [
                (1, chain.clips[0].id), (2, chain.clips[2].id), (3, chain.clips[4].id)]
            assert [video.refresh().processed for video in chain.videos] == [1, 3, 1, 3, 1]
            assert (chain.run.refresh().status, chain.run.current_stage) == ("pending", "render")


        def test_fields_are_written_over_the_defaults(pipeline_factory):
            video = pipeline_factory.video(title="My video", view_count=5, niche="funny")
            assert (video.title, video.view_count, video.niche, video.processed) == (
                "My video", 5, "funny", 0)
            mine = pipeline_factory.video(video_id="abc123")
            # the watch URL of the id given
            assert mine.url == "https://www.youtube.com/watch?v=abc123"
            old = pm.utcnow() - datetime.timedelta(hours=1)
            run = pipeline_factory.run(status="running", niche="funny", heartbeat_at=old)
            assert run.heartbeat_at == old and run.niche == "funny"
            assert pm.PipelineRun.requeue_stale(datetime.timedelta(minutes=10)) == 1
            clip = pipeline_factory.clip(run, video, start_time_seconds=1.0, end_time_seconds=2.0,
                                         clip_duration_seconds=1.0)
            assert (clip.start_time_seconds, clip.pipeline_run_id, clip.discovered_video_id,
                    clip.rank_position) == (1.0, run.id, video.id, 1)
            # the next free rank, of a new video of the run's niche
            second = pipeline_factory.clip(run)
            assert second.rank_position == 2 and second.discovered_video.niche == "funny"
            assert pipeline_factory.script(run, llm_model_used="gpt").llm_model_used == "gpt"
            assert pipeline_factory.audio(run, engine_used="piper").engine_used == "piper"
            short = pipeline_factory.short(run, clip=clip, title="T", youtube_video_id="yt1")
            assert (short.title, short.clip_id, short.youtube_video_id) == ("T", clip.id, "yt1")
            assert short.status == "pending"


        def test_an_uploaded_short_goes_through_mark_uploaded(pipeline_factory):
            run = pipeline_factory.run(status="approved")
            short = pipeline_factory.short(run, status="uploaded")
            assert short.status == "uploaded" and short.youtube_video_id and short.uploaded_at
            # a run is uploaded by its long-form video, not its shorts
            assert run.refresh().status == "approved"
            assert pipeline_factory.short(run, status="uploaded",
                                          youtube_video_id="mine").youtube_video_id == "mine"
            with pytest.raises(pm.InvalidTransition,
                               match="only an approved run's shorts are uploaded"):
                pipeline_factory.short(pipeline_factory.run(status="review"), status="uploaded")


        def test_rows_default_to_a_new_running_run(pipeline_factory):
            short = pipeline_factory.short()
            assert short.pipeline_run.status == "running"
            assert pm.PipelineRun.select().count() == 1
            clip = pipeline_factory.clip()
            assert clip.pipeline_run.status == "running" and clip.rank_position == 1
            assert pm.PipelineRun.select().count() == 2


        def test_a_cycle_has_one_run_and_a_run_one_clip_per_video_and_rank(pipeline_factory):
            chain = pipeline_factory.chain("running")
            assert pm.PipelineRun.schedule(chain.run.niche, chain.run.cycle_start) == chain.run
            with pytest.raises(ValueError,
                               match="Clip.discovered_video: .*a run takes one clip per video"):
                pipeline_factory.clip(chain.run, chain.videos[0])
            with pytest.raises(ValueError,
                               match="Clip.rank_position: .*already has a clip ranked 1"):
                pipeline_factory.clip(chain.run, rank_position=1)
            with pytest.raises(ValueError):
                pipeline_factory.chain("bogus")
            with pytest.raises(ValueError, match="'published' is not one of"):  # 0.1's name
                pipeline_factory.run("published")
            after = pipeline_factory.run()
            # the next cycle
            assert (after.niche, after.cycle_start) == (chain.run.niche, chain.run.cycle_end)


        def test_a_run_the_test_made_itself_is_left_alone(pipeline_factory):
            mine = pm.PipelineRun.schedule("gaming", pipeline_factory.FIRST_CYCLE)
            made = pipeline_factory.run(status="running")
            assert made.id != mine.id and mine.refresh().status == "pending"
    ''')
    result.assert_outcomes(passed=8)

def test_the_fixtures_are_documented_and_not_autouse(pytester):
    result = _run(pytester, "def test_nothing(): pass", "--fixtures")
    result.stdout.fnmatch_lines(["pipeline_db -- *", "*fresh database*", "pipeline_factory -- *"])
    result = _run(pytester, "def test_nothing(tmp_path): pass", "--setup-plan")
    assert ("SETUP    F tmp_path" in result.stdout.str()
            and "pipeline" not in result.stdout.str().split("collected")[1])


def test_with_plugin_autoload_disabled_it_loads_with_dash_p(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_user=README_EXAMPLE)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=0, errors=4)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p",
                                           "pipeline_models.pytest_plugin")
    result.assert_outcomes(passed=4)


def test_a_url_that_is_not_postgresql_is_a_usage_error(pytester):
    pytester.makepyfile(test_user=README_EXAMPLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pipeline-db-url",
                                           "sqlite:///x:secret@h.db")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected a postgresql:// URL*"])


def test_on_postgresql_with_the_url_option_or_the_ini_setting(pytester, pg_server):
    pytester.makepyfile(test_user=README_EXAMPLE, test_left_open=LEFT_OPEN,
                        test_isolation=ISOLATION.replace(
        "isinstance(pipeline_db, peewee.SqliteDatabase)",
        "isinstance(pipeline_db, peewee.PostgresqlDatabase)"))
    before = _throwaway_databases(pg_server)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "-p",
                                           "no:hypothesispytest", "--pipeline-db-url",
                                           pg_server.url)
    # as on SQLite: the session's database is emptied each time
    result.assert_outcomes(passed=11, failed=1, errors=1)
    result.stdout.fnmatch_lines(["pipeline_models: pipeline_db on a throwaway database of "
                                 "postgresql://*"])
    pytester.makepyfile(test_statuses=STATUSES)
    pytester.makeini(f"[pytest]\npipeline_db_url = {pg_server.url}\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                                           "test_statuses.py")
    result.assert_outcomes(passed=19)
    assert _throwaway_databases(pg_server) == before  # dropped at the end of each session


def _throwaway_databases(server):
    query = "SELECT datname FROM pg_database WHERE datname LIKE %s"
    return server.admin.execute_sql(query, ("pipeline_test_%",)).fetchall()



def test_the_docs_show_the_example_this_file_runs():
    page = (Path(__file__).resolve().parent.parent / "docs" / "binding.md").read_text(
        encoding="utf-8")
    assert f"```python\n{README_EXAMPLE}```" in page


def test_an_unknown_status_lists_the_known_ones(pytester):
    pytester.makepyfile('''
import pytest

def test_bogus(pipeline_factory):
    known = "pending, running, review, approved, uploaded, failed, rejected"
    with pytest.raises(ValueError, match=f"'bogus' is not one of: {known}$"):
        pipeline_factory.chain("bogus")
''')
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
