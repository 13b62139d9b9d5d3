"""The pytest plugin the package ships (pipeline_models.pytest_plugin), run on users' test files with pytester."""
import importlib.metadata
import textwrap
from pathlib import Path

import pytest

import pipeline_models as pm

pytest_plugins = ["pytester"]

# The README's complete example test file ("Testing your pipeline code"), run as written below.
README_EXAMPLE = '''\
import pipeline_models as pm


def test_a_video_is_queued_once(pipeline_db):
    video, created = pm.DiscoveredVideo.discover("dQw4w9WgXcQ", title="A source video")
    assert created and pm.PipelineRun.start(video) == pm.PipelineRun.start(video)
    assert pm.PipelineRun.select().count() == 1


def test_every_test_starts_empty(pipeline_db):
    assert pm.DiscoveredVideo.select().count() == 0


def test_the_reviewer_approves(pipeline_factory):
    chain = pipeline_factory.chain("awaiting_review")
    pm.ReviewLog.answer(chain.review.message_id, "approve", reviewer="@alice")
    assert chain.run.refresh().status == "approved"


def test_the_last_upload_publishes_the_run(pipeline_factory):
    chain = pipeline_factory.chain("approved")
    chain.short.mark_uploaded("yt-short-1")
    assert chain.run.refresh().status == "published"
    assert chain.video.refresh().status == "processed"
'''

# Each test sees an empty database of its own, bound only while it runs; tests without the fixture see nothing.
ISOLATION = '''
import peewee
import pytest
import pipeline_models as pm


def test_first_writes(pipeline_db):
    assert pm.db.obj is pipeline_db and isinstance(pipeline_db, peewee.SqliteDatabase)
    video = pm.DiscoveredVideo.create(youtube_video_id="first")
    pm.PipelineRun.start(video)
    pm.ConfigOverride.set("render.fps", 60)
    assert pm.DiscoveredVideo.select().count() == 1


def test_second_sees_none_of_it(pipeline_db):
    assert pm.db.obj is pipeline_db
    for model in pm.ALL_MODELS:
        assert model.select().count() == 0, model
    assert pm.DiscoveredVideo.create(youtube_video_id="second").id == 1  # ids start again too


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
    return run("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)  # hypothesis: seconds a run


def test_the_entry_point_is_registered():
    found = importlib.metadata.entry_points()
    group = found.select(group="pytest11") if hasattr(found, "select") else found.get("pytest11", [])
    assert {(ep.name, ep.value) for ep in group} >= {("pipeline_models", "pipeline_models.pytest_plugin")}


def test_the_readme_example_runs_as_written(pytester):
    # A subprocess, as a user runs it: the plugin comes in through its entry point, with no conftest.
    result = _run(pytester, README_EXAMPLE, subprocess=True)
    result.assert_outcomes(passed=4)


def test_each_test_gets_a_fresh_database_bound_only_while_it_runs(pytester):
    result = _run(pytester, ISOLATION, "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    assert pm.db.obj is None  # the in-process run left this process's proxy as it found it


def test_the_schema_is_what_the_migrations_make(pytester):
    result = _run(pytester, '''
        import peewee
        import pytest
        import pipeline_models as pm


        def schema(database):
            return database.execute_sql("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()


        def test_same_schema_as_init_db(pipeline_db):
            reference = peewee.SqliteDatabase(":memory:")
            pm.init_db(reference)
            pm.db.initialize(pipeline_db)
            assert schema(pipeline_db) == schema(reference)
            assert pm.migrate() == []  # the migration history came along: nothing is pending
            names = [row[0] for row in pipeline_db.execute_sql("SELECT name FROM schema_migration ORDER BY id")]
            assert names == sorted(p.stem for p in pm.MIGRATIONS_DIR.glob("0*.py"))


        def test_check_constraints(pipeline_db):
            with pytest.raises(peewee.IntegrityError, match="CHECK"):
                pm.DiscoveredVideo.insert(youtube_video_id="v", view_count=-1).execute()
            run = pm.PipelineRun.create(discovered_video=pm.DiscoveredVideo.create(youtube_video_id="w"))
            with pytest.raises(peewee.IntegrityError, match="CHECK"):  # raw SQL: no Python check before the database's
                pipeline_db.execute_sql("UPDATE pipeline_runs SET status = 'bogus' WHERE id = ?", (run.id,))


        def test_foreign_keys(pipeline_db):
            assert pipeline_db.pragma("foreign_keys") == 1
            with pytest.raises(peewee.IntegrityError, match="FOREIGN KEY"):
                pm.Clip.create(pipeline_run=42, start_seconds=0, end_seconds=1)


        def test_one_active_run_per_video(pipeline_db):
            video = pm.DiscoveredVideo.create(youtube_video_id="v")
            pm.PipelineRun.create(discovered_video=video)
            with pytest.raises(peewee.IntegrityError, match="UNIQUE"):
                pm.PipelineRun.create(discovered_video=video)
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


def test_fails(pipeline_db):
    pm.DiscoveredVideo.create(youtube_video_id="v")
    assert False, "the user's test fails"


def test_leaves_a_transaction_open(pipeline_db):
    LEFT.append(pipeline_db)
    pm.db.atomic().__enter__()
    pm.DiscoveredVideo.create(youtube_video_id="v")


def test_after_them():
    assert pm.db.obj is None
    assert LEFT[0].is_closed()  # the transaction went with its connection


def test_and_a_fresh_database_again(pipeline_db):
    assert pm.DiscoveredVideo.select().count() == 0
    pm.DiscoveredVideo.create(youtube_video_id="v")
'''


def test_a_failing_test_or_an_open_transaction_still_unbinds(pytester):
    result = _run(pytester, LEFT_OPEN, "-p", "no:randomly")
    # The open transaction is the test's bug: reported as an error in its teardown, and dropped.
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*transaction is open*"])


STATUSES = '''
import pytest
import pipeline_models as pm
from pipeline_models import RunStatus, ShortStatus

VIDEO = {"pending": "selected", "running": "selected", "awaiting_review": "selected", "approved": "selected",
         "rejected": "skipped", "published": "processed", "failed": "skipped"}
SHORT = {"running": "rendered", "awaiting_review": "rendered", "approved": "rendered", "rejected": "rejected",
         "published": "uploaded", "failed": "rendered"}
REVIEW = {"awaiting_review": None, "approved": "approve", "rejected": "reject", "published": "approve"}


def fresh(row):
    return type(row).get_by_id(row.id)


@pytest.mark.parametrize("status", [s.value for s in RunStatus])
def test_chain(pipeline_factory, status):
    chain = pipeline_factory.chain(status)
    run = fresh(chain.run)
    assert run.status == status == chain.run.status
    assert fresh(chain.video).status == VIDEO[status] == chain.video.status
    assert run.discovered_video_id == chain.video.id
    worked = status != "pending"
    assert (run.worker == "test-worker") is worked and (run.attempts == int(worked))
    for name, model in (("clip", pm.Clip), ("script", pm.Script), ("audio", pm.TTSAudio), ("short", pm.Short)):
        row = getattr(chain, name)
        assert (row is not None) is worked and model.select().count() == int(worked), name
        if worked:
            assert row.pipeline_run_id == run.id
    if worked:
        assert fresh(chain.short).status == SHORT[status] == chain.short.status
        assert chain.short.clip_id == chain.clip.id
    assert (chain.review is not None) is (status in REVIEW)
    if status in REVIEW:
        review = fresh(chain.review)
        assert review.action == REVIEW[status] and review.message_id
    if status == "published":
        assert chain.short.youtube_video_id and chain.short.uploaded_at
    if status in ("published", "rejected", "failed"):
        assert run.finished_at is not None
    if status == "failed":
        assert run.last_error == "failed by pipeline_factory"


@pytest.mark.parametrize("status", [s.value for s in RunStatus])
def test_run(pipeline_factory, status):
    run = pipeline_factory.run(status=RunStatus(status))
    assert fresh(run).status == status
    assert fresh(run.discovered_video).status == VIDEO[status]
    assert pm.Short.select().count() == (1 if status == "published" else 0)


def test_many_chains_have_unique_ids(pipeline_factory):
    chains = [pipeline_factory.chain(status) for status in [s.value for s in RunStatus] * 3]
    assert len({c.video.youtube_video_id for c in chains}) == len(chains)
    uploaded = [c.short.youtube_video_id for c in chains if c.short and c.short.youtube_video_id]
    assert len(uploaded) == len(set(uploaded)) == 3
    assert pm.ReviewLog.select().where(pm.ReviewLog.message_id.is_null()).count() == 0
'''


def test_the_factory_reaches_every_status_as_the_pipeline_would(pytester):
    result = _run(pytester, STATUSES)
    result.assert_outcomes(passed=15)


def test_the_factory_rows_work_with_the_operations(pytester):
    result = _run(pytester, '''
        import datetime
        import pytest
        import pipeline_models as pm


        def test_a_running_run_is_claimed_as_claim_next_claims(pipeline_factory):
            made = pipeline_factory.run(status="running")
            other = pm.PipelineRun.start(pipeline_factory.video())
            claimed = pm.PipelineRun.claim_next("w")
            assert claimed.id == other.id
            filled = lambda run: {k for k, v in pm.PipelineRun.get_by_id(run.id).__data__.items() if v is not None}
            assert filled(made) == filled(claimed)
            assert made.heartbeat(stage="render")
            with made.fenced():
                pm.Clip.create(pipeline_run=made, start_seconds=1, end_seconds=2)
            pm.ReviewLog.request(made, message_id="m1")
            assert made.status == "awaiting_review"


        def test_the_review_is_answered_by_its_message_id(pipeline_factory):
            chain = pipeline_factory.chain()  # awaiting_review by default
            review, recorded = pm.ReviewLog.answer(chain.review.message_id, "reject")
            assert recorded and chain.run.refresh().status == "rejected"
            assert chain.short.refresh().status == "rejected"


        def test_fields_are_written_over_the_defaults(pipeline_factory):
            video = pipeline_factory.video(title="My video", view_count=5)
            assert (video.title, video.view_count) == ("My video", 5)
            old = pm.utcnow() - datetime.timedelta(hours=1)
            run = pipeline_factory.run(video, status="running", heartbeat_at=old)
            assert run.heartbeat_at == old and run.discovered_video_id == video.id
            assert pm.PipelineRun.requeue_stale(datetime.timedelta(minutes=10)) == 1
            clip = pipeline_factory.clip(run, start_seconds=1.0, end_seconds=2.0)
            assert (clip.start_seconds, clip.pipeline_run_id) == (1.0, run.id)
            assert pipeline_factory.script(run, llm_model_used="gpt").llm_model_used == "gpt"
            assert pipeline_factory.audio(run, engine_used="piper").engine_used == "piper"
            short = pipeline_factory.short(run, clip=clip, title="T", youtube_video_id="yt1")
            assert (short.title, short.clip_id, short.youtube_video_id) == ("T", clip.id, "yt1")
            assert short.status == "rendered"


        def test_an_uploaded_short_goes_through_mark_uploaded(pipeline_factory):
            run = pipeline_factory.run(status="approved")
            short = pipeline_factory.short(run, status="uploaded")
            assert short.status == "uploaded" and short.youtube_video_id and short.uploaded_at
            assert run.refresh().status == "published"
            assert pipeline_factory.short(status="uploaded", youtube_video_id="mine").youtube_video_id == "mine"


        def test_rows_default_to_a_new_running_run(pipeline_factory):
            short = pipeline_factory.short()
            assert short.pipeline_run.status == "running"
            assert pm.PipelineRun.select().count() == 1


        def test_a_second_active_run_of_a_video_is_refused(pipeline_factory):
            chain = pipeline_factory.chain("running")
            with pytest.raises(ValueError, match="already has the active run"):
                pipeline_factory.run(chain.video)
            with pytest.raises(ValueError):
                pipeline_factory.chain("bogus")
            done = pipeline_factory.chain("published")
            again = pipeline_factory.run(done.video)  # a video whose runs all ended is queued again
            assert again.id != done.run.id and again.refresh().status == "pending"
    ''')
    result.assert_outcomes(passed=6)


def test_the_fixtures_are_documented_and_not_autouse(pytester):
    result = _run(pytester, "def test_nothing(): pass", "--fixtures")
    result.stdout.fnmatch_lines(["pipeline_db -- *", "*fresh database*", "pipeline_factory -- *"])
    result = _run(pytester, "def test_nothing(tmp_path): pass", "--setup-plan")
    assert "SETUP    F tmp_path" in result.stdout.str() and "pipeline" not in result.stdout.str().split("collected")[1]


def test_with_plugin_autoload_disabled_it_loads_with_dash_p(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_user=README_EXAMPLE)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=0, errors=4)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "pipeline_models.pytest_plugin")
    result.assert_outcomes(passed=4)


def test_a_url_that_is_not_postgresql_is_a_usage_error(pytester):
    pytester.makepyfile(test_user=README_EXAMPLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pipeline-db-url", "sqlite:///x:secret@h.db")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected a postgresql:// URL*"])


def test_on_postgresql_with_the_url_option_or_the_ini_setting(pytester, pg_server):
    pytester.makepyfile(test_user=README_EXAMPLE, test_left_open=LEFT_OPEN, test_isolation=ISOLATION.replace(
        "isinstance(pipeline_db, peewee.SqliteDatabase)", "isinstance(pipeline_db, peewee.PostgresqlDatabase)"))
    before = _throwaway_databases(pg_server)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:hypothesispytest",
                                           "--pipeline-db-url", pg_server.url)
    result.assert_outcomes(passed=11, failed=1, errors=1)  # as on SQLite: the session's database is emptied each time
    result.stdout.fnmatch_lines(["pipeline_models: pipeline_db on a throwaway database of postgresql://*"])
    pytester.makepyfile(test_statuses=STATUSES)
    pytester.makeini(f"[pytest]\npipeline_db_url = {pg_server.url}\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "test_statuses.py")
    result.assert_outcomes(passed=15)
    assert _throwaway_databases(pg_server) == before  # dropped at the end of each session


def _throwaway_databases(server):
    query = "SELECT datname FROM pg_database WHERE datname LIKE %s"
    return server.admin.execute_sql(query, ("pipeline_test_%",)).fetchall()



def test_the_readme_shows_the_example_this_file_runs():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"```python\n{README_EXAMPLE}```" in readme


def test_an_unknown_status_lists_the_known_ones(pytester):
    pytester.makepyfile('''
import pytest

def test_bogus(pipeline_factory):
    with pytest.raises(ValueError, match="'bogus' is not one of: pending, running, awaiting_review"):
        pipeline_factory.chain("bogus")
''')
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
