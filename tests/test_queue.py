"""The run queue as a job queue: fenced leases, one active run per video, retries with backoff, a lifecycle
that ends by itself, uploads, stale objects and writes while a loop reads. tests/test_queue_chaos.py runs
the same queue under SIGKILL and SIGSTOP."""
import multiprocessing
import re
from datetime import timedelta

import peewee
import pytest
from playhouse.migrations import Runner

import pipeline_models as pm
from pipeline_models import InvalidTransition, LeaseLost, RunStatus, ShortStatus, VideoStatus

spawn = multiprocessing.get_context("spawn")


def queued(n=1):
    video, _ = pm.DiscoveredVideo.discover(f"video{n}")
    return pm.PipelineRun.start(video)


def later(**delta):
    """A time after every backoff and lease in these tests: the injected clock."""
    return pm.utcnow() + timedelta(**delta)


def row(run):
    return pm.PipelineRun.get_by_id(run.id)


# --- fenced leases ------------------------------------------------------------------------------


def test_a_worker_that_lost_its_lease_changes_nothing_and_the_new_holder_carries_on(database):
    queued()
    a = pm.PipelineRun.claim_next("A")
    with a.fenced():
        pm.Clip.create(pipeline_run=a, start_seconds=0, end_seconds=1, transcript="A, before it stalled")
    # A stalls past its lease; the janitor requeues the run; B claims it after the backoff.
    assert pm.PipelineRun.requeue_stale(timedelta(minutes=1), now=later(minutes=5)) == 1
    b = pm.PipelineRun.claim_next("B", now=later(hours=2))
    assert (b.id, b.worker, b.attempts) == (a.id, "B", 2) and b.claim_token != a.claim_token

    def write_clip():
        with a.fenced():
            pm.Clip.create(pipeline_run=a, start_seconds=1, end_seconds=2, transcript="A, the zombie")

    zombie_writes = [lambda: a.heartbeat(stage="render"), lambda: a.advance("failed", reason="A gives up"),
                     lambda: a.fail("A gives up"), lambda: a.fail("A gives up", retry=False),
                     lambda: pm.ReviewLog.request(a, message_id="chat:A"), write_clip]
    before = pm.PipelineRun.select().dicts().get()
    for write in zombie_writes:
        with pytest.raises(LeaseLost, match=re.escape(
                f"run {a.id}: 'A' no longer holds it (its claim was attempt 1); the run is running under 'B', "
                "attempt 2 now. Nothing was written")):
            write()
    assert pm.PipelineRun.select().dicts().get() == before
    assert [c.transcript for c in pm.Clip.select()] == ["A, before it stalled"]
    assert pm.ReviewLog.select().count() == 0

    assert b.heartbeat(stage="render") is True
    with b.fenced():
        pm.Clip.create(pipeline_run=b, start_seconds=1, end_seconds=2, transcript="B")
    pm.ReviewLog.request(b, message_id="chat:B")
    assert (row(b).status, b.status, row(b).worker) == (RunStatus.awaiting_review, RunStatus.awaiting_review, "B")
    with pytest.raises(LeaseLost, match="the run is awaiting_review now"):
        a.heartbeat()


def test_a_requeued_run_refuses_its_old_worker_before_anyone_claims_it(database):
    queued()
    a = pm.PipelineRun.claim_next("A")
    pm.PipelineRun.requeue_stale(timedelta(seconds=1), now=later(minutes=1))
    with pytest.raises(LeaseLost) as lost:
        pm.ReviewLog.request(a)
    assert (lost.value.run_id, lost.value.status, lost.value.worker) == (a.id, "pending", "A")
    assert "the run is pending now" in str(lost.value) and row(a).status is RunStatus.pending


def test_a_fenced_block_that_fails_writes_nothing(run):
    claimed = pm.PipelineRun.claim_next("w")
    with pytest.raises(ZeroDivisionError):
        with claimed.fenced():
            pm.Clip.create(pipeline_run=claimed, start_seconds=0, end_seconds=1)
            1 / 0
    assert pm.Clip.select().count() == 0


def test_operations_that_are_not_the_workers_ignore_the_claim(database):
    queued()
    worker = pm.PipelineRun.claim_next("w")
    review = pm.ReviewLog.request(worker, message_id="chat:1")
    assert pm.ReviewLog.answer("chat:1", "approve", reviewer="@alice") == (review, True)  # the reviewer's
    operator = pm.PipelineRun.get_by_id(worker.id)  # the operator's copy holds no claim
    operator.advance("failed", reason="cancelled by the operator")
    operator.retry()
    assert row(worker).status is RunStatus.pending and row(worker).attempts == 0


# --- one active run per video -------------------------------------------------------------------


def test_start_is_idempotent_and_queues_again_only_when_asked(database):
    video, _ = pm.DiscoveredVideo.discover("v")
    first = pm.PipelineRun.start(video)
    assert pm.PipelineRun.start(video).id == first.id and video.status is VideoStatus.selected
    claimed = pm.PipelineRun.claim_next("w")
    assert pm.PipelineRun.start(video).id == first.id  # running: still the one active run
    claimed.fail("unplayable source", retry=False)
    assert pm.PipelineRun.start(video).id == first.id  # ended: its last run, not a second pass
    assert pm.DiscoveredVideo.get_by_id(video.id).status is VideoStatus.skipped
    second = pm.PipelineRun.start(video, again=True)
    assert second.id != first.id and second.status is RunStatus.pending
    assert pm.PipelineRun.start(video, again=True).id == second.id  # active: again cannot make two
    assert pm.DiscoveredVideo.get_by_id(video.id).status is VideoStatus.selected
    assert pm.PipelineRun.select().count() == 2


def test_the_database_keeps_one_active_run_per_video_whoever_writes(database):
    run = queued()
    with pytest.raises(peewee.IntegrityError):
        with pm.db.atomic():
            pm.PipelineRun.create(discovered_video=run.discovered_video_id)
    for status in ("published", "rejected", "failed"):  # ended runs do not count
        pm.PipelineRun.create(discovered_video=run.discovered_video_id, status=status)
    assert pm.PipelineRun.select().count() == 4


def test_an_operator_retry_cannot_make_a_second_active_run(database):
    first = queued()
    pm.PipelineRun.claim_next("w").fail("boom", retry=False)
    second = pm.PipelineRun.start(first.discovered_video, again=True)
    with pytest.raises(InvalidTransition, match=f"its video already has the active run {second.id}"):
        pm.PipelineRun.get_by_id(first.id).retry()
    assert row(first).status is RunStatus.failed


def _start_all(target, barrier, ids, out):
    pm.init_db(target)
    barrier.wait()
    started = [pm.PipelineRun.start(pm.DiscoveredVideo.get(pm.DiscoveredVideo.youtube_video_id == v)).id
               for v in ids]
    with open(out, "w") as fh:
        fh.write(" ".join(map(str, started)))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_processes_starting_the_same_videos_at_once_queue_each_once(backend, request, tmp_path):
    target = str(tmp_path / "q.db") if backend == "sqlite" else request.getfixturevalue("pg_server").new_database()
    pm.init_db(target)
    ids = [f"v{n}" for n in range(30)]
    for video_id in ids:
        pm.DiscoveredVideo.discover(video_id)
    pm.db.obj.close()
    barrier = spawn.Barrier(4)
    outs = [tmp_path / f"out{n}" for n in range(4)]
    procs = [spawn.Process(target=_start_all, args=(target, barrier, ids[n:] + ids[:n], str(outs[n])))
             for n in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    pm.init_db(target)
    assert pm.PipelineRun.select().count() == 30
    runs = {int(x) for out in outs for x in out.read_text().split()}
    assert runs == {r.id for r in pm.PipelineRun.select()}
    pm.db.obj.close()


# --- retries with backoff and a limit -----------------------------------------------------------


def test_a_failed_attempt_waits_out_an_exponential_backoff_with_jitter_then_gives_up(database):
    run = queued()
    delay = pm.PipelineRun.RETRY_DELAY
    for attempt in (1, 2):
        claimed = pm.PipelineRun.claim_next("w", now=later(days=attempt))
        assert (claimed.id, claimed.attempts) == (run.id, attempt)
        failed_at = later(days=attempt, minutes=1)
        claimed.fail(RuntimeError("ffmpeg exited 1"), now=failed_at)
        due = row(run).not_before
        backoff = delay * 2 ** (attempt - 1)
        assert failed_at + backoff / 2 <= due <= failed_at + backoff  # "equal jitter": half to all of it
        assert row(run).last_error == f"attempt {attempt} of 3 failed: RuntimeError: ffmpeg exited 1"
        assert pm.PipelineRun.claim_next("early", now=due - timedelta(microseconds=1)) is None
        assert row(run).status is RunStatus.pending
    last = pm.PipelineRun.claim_next("w", now=due)
    assert last.attempts == 3
    last.fail("ffmpeg exited 1", now=later(days=4))
    gave_up = row(run)
    assert (gave_up.status, gave_up.last_error) == (RunStatus.failed, "gave up after 3 attempts: ffmpeg exited 1")
    assert gave_up.finished_at is not None and pm.DiscoveredVideo.get().status is VideoStatus.skipped
    assert pm.PipelineRun.claim_next("w", now=later(days=30)) is None


def test_jitter_spreads_runs_that_failed_together(database):
    runs = [queued(n) for n in range(20)]
    now = later(minutes=1)
    for _ in runs:
        pm.PipelineRun.claim_next("w").fail("rate limited", now=now)
    assert len({row(r).not_before for r in runs}) == 20


def test_max_attempts_per_call_and_by_config(database):
    run = queued()
    pm.PipelineRun.claim_next("w").fail("boom", max_attempts=1)
    assert row(run).last_error == "gave up after 1 attempts: boom"

    pm.ConfigOverride.set("queue.max_attempts", 2)
    pm.ConfigOverride.set("queue.retry_delay_seconds", 0)
    run = queued(2)
    pm.PipelineRun.claim_next("w").fail("boom")
    assert row(run).status is RunStatus.pending
    pm.PipelineRun.claim_next("w").fail("boom")
    assert row(run).last_error == "gave up after 2 attempts: boom"


@pytest.mark.parametrize("key, value, message", [
    ("queue.max_attempts", 0, "ConfigOverride 'queue.max_attempts' must be a whole number from 1 to 1000, not 0"),
    ("queue.max_attempts", "3", "must be a whole number from 1 to 1000, not '3'"),
    ("queue.retry_delay_seconds", -1, "'queue.retry_delay_seconds' must be a number of seconds from 0 to 86400"),
])
def test_a_bad_retry_policy_is_refused_by_name_and_changes_nothing(database, key, value, message):
    queued()
    claimed = pm.PipelineRun.claim_next("w")
    with pytest.raises(ValueError, match=re.escape(message)):
        pm.ConfigOverride.set(key, value)  # refused at once, not in every worker later
    assert pm.ConfigOverride.value_of(key) is None
    pm.ConfigOverride.insert(key=key, value=value).execute()  # other code may write it: checked where it is read
    with pytest.raises(ValueError, match=re.escape(message)):
        claimed.fail("boom")
    assert row(claimed).status is RunStatus.running
    with pytest.raises(ValueError, match="max_attempts must be a whole number"):
        claimed.fail("boom", max_attempts=True)


def test_a_worker_fails_a_run_for_good_at_once(database):
    run = queued()
    pm.PipelineRun.claim_next("w").fail(ValueError("not a video"), retry=False)
    assert (row(run).status, row(run).last_error) == (RunStatus.failed, "ValueError: not a video")
    with pytest.raises(ValueError, match="give the error or a reason"):
        pm.PipelineRun.get_by_id(run.id).fail("  ")


def test_requeue_stale_gives_up_after_max_attempts(database):
    run = queued()
    for attempt in (1, 2, 3):
        pm.PipelineRun.claim_next("poison", now=later(days=attempt))
        assert pm.PipelineRun.requeue_stale(timedelta(minutes=10), now=later(days=attempt, hours=1)) == 1
    gave_up = row(run)
    assert gave_up.status is RunStatus.failed and gave_up.attempts == 3
    assert gave_up.last_error == "gave up after 3 attempts: no heartbeat for 0:10:00 (worker 'poison')"


@pytest.mark.parametrize("bad, error", [
    (timedelta(minutes=-10), ValueError), (timedelta(0), ValueError), (timedelta.max, ValueError),
    (timedelta(days=367), ValueError), (600, TypeError), (None, TypeError)])
def test_bad_durations_are_refused_and_change_nothing(database, bad, error):
    queued()
    pm.PipelineRun.claim_next("alive")
    pm.ReviewLog.create(pipeline_run=pm.PipelineRun.get())
    with pytest.raises(error, match="requeue_stale: older_than must be"):
        pm.PipelineRun.requeue_stale(bad)
    with pytest.raises(error, match="hold_stale: older_than must be"):
        pm.ReviewLog.hold_stale(bad)
    assert pm.PipelineRun.get().status is RunStatus.running and pm.ReviewLog.get().auto_held is False


# --- the lifecycle ------------------------------------------------------------------------------


def test_from_discovery_to_published_and_processed(database):
    video, _ = pm.DiscoveredVideo.discover("dQw4w9WgXcQ", title="Canyons", view_count=1200)
    assert video.status is VideoStatus.new
    pm.PipelineRun.start(video)
    run = pm.PipelineRun.claim_next("host-a:1")
    with run.fenced():
        clip = pm.Clip.create(pipeline_run=run, start_seconds=3, end_seconds=40)
        pm.Script.create(pipeline_run=run, full_script_json={"beats": ["a"]}, total_char_count=1,
                         estimated_duration_seconds=0.1, llm_model_used="m")
        pm.TTSAudio.create(pipeline_run=run, engine_used="piper")
        shorts = [pm.Short.create(pipeline_run=run, clip=clip, status=ShortStatus.rendered) for _ in range(2)]
    review = pm.ReviewLog.request(run, message_id="chat:9")
    assert run.status is RunStatus.awaiting_review
    review.respond("approve", reviewer="@alice")
    assert run.status is RunStatus.approved  # the object request() was given, updated by respond()

    shorts[0].start_upload()
    shorts[0].mark_uploaded("yt-one")
    assert row(run).status is RunStatus.approved  # one short still to upload
    shorts[1].start_upload()
    shorts[1].mark_uploaded("yt-two")
    published = row(run)
    assert published.status is RunStatus.published and published.finished_at is not None
    assert shorts[1].pipeline_run.status is RunStatus.published and run.status is RunStatus.published
    assert pm.DiscoveredVideo.get_by_id(video.id).status is VideoStatus.processed
    assert pm.PipelineRun.start(video).id == run.id  # a processed video is not queued again


def test_an_approval_after_every_upload_publishes_at_once(database):
    queued()
    run = pm.PipelineRun.claim_next("w")
    with run.fenced():
        short = pm.Short.create(pipeline_run=run, status=ShortStatus.rendered)
    pm.ReviewLog.request(run, message_id="chat:1")
    short.start_upload()
    short.mark_uploaded("yt-early")  # uploaded (unlisted) before the verdict
    assert row(run).status is RunStatus.awaiting_review
    mine = pm.PipelineRun.get_by_id(run.id)
    pm.ReviewLog.answer("chat:1", "edit", response_detail="new title", run=mine)
    assert row(run).status is RunStatus.published and mine.status is RunStatus.published


def test_a_rejection_skips_the_video_and_its_shorts_are_never_uploaded(database):
    run = queued()
    claimed = pm.PipelineRun.claim_next("w")
    with claimed.fenced():
        short = pm.Short.create(pipeline_run=claimed, status=ShortStatus.rendered)
    pm.ReviewLog.request(claimed).respond("reject", response_detail="off-topic")
    assert pm.DiscoveredVideo.get().status is VideoStatus.skipped and claimed.status is RunStatus.rejected
    for upload in (short.start_upload, lambda: short.mark_uploaded("yt-x")):
        with pytest.raises(InvalidTransition, match=f"short {short.id} cannot go from rejected to uploaded"):
            upload()
    assert pm.Short.get_by_id(short.id).youtube_video_id is None and pm.PipelineRun.start(run.discovered_video).id == run.id


def test_transition_tables_name_only_real_statuses():
    for model, enum in ((pm.PipelineRun, RunStatus), (pm.Short, ShortStatus), (pm.DiscoveredVideo, VideoStatus)):
        assert set(model.TRANSITIONS) == set(enum), model.__name__
        assert all(set(targets) <= set(enum) for targets in model.TRANSITIONS.values()), model.__name__
    assert set(pm.PipelineRun.VIDEO_AFTER) <= set(RunStatus)
    for source, target in pm.PipelineRun._THROUGH:
        assert target in pm.PipelineRun.TRANSITIONS[source]


# --- uploads and stale objects ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, "", "   ", 42])
def test_mark_uploaded_refuses_a_missing_or_blank_video_id(run, bad):
    short = pm.Short.create(pipeline_run=run, status=ShortStatus.rendered)
    with pytest.raises(ValueError, match="Short.youtube_video_id: mark_uploaded needs the video id"):
        short.mark_uploaded(bad)
    stored = pm.Short.get_by_id(short.id)
    assert (stored.status, stored.youtube_video_id, stored.youtube_url) == (ShortStatus.rendered, None, None)


def test_refresh_reloads_any_model_and_says_when_the_row_is_gone(run):
    short = pm.Short.create(pipeline_run=run, title="old")
    pm.Short.update(title="new").execute()
    assert short.refresh().title == "new" and not short.dirty_fields
    pm.ConfigOverride.set("k", 1)
    setting = pm.ConfigOverride.get_by_id("k")
    pm.ConfigOverride.set("k", [2])
    assert setting.refresh().value == [2]
    short.delete_instance()
    with pytest.raises(pm.Short.DoesNotExist):
        short.refresh()


def test_a_stale_copy_is_told_to_refresh_and_then_works(database):
    queued()
    run = pm.PipelineRun.claim_next("w")
    review = pm.ReviewLog.request(run, message_id="chat:1")
    stale = pm.PipelineRun.get_by_id(run.id)  # awaiting_review
    pm.ReviewLog.answer("chat:1", "approve")  # another call, not given `stale`
    with pytest.raises(InvalidTransition, match="is approved in the database, not awaiting_review") as error:
        stale.advance("published")
    assert (error.value.current, error.value.copy, error.value.target) == ("approved", "awaiting_review", "published")
    assert stale.refresh().advance("published").status is RunStatus.published
    assert review.pipeline_run is run and run.status is RunStatus.awaiting_review  # answer() was not given it


def test_save_writes_only_what_changed_so_a_stale_copy_undoes_nothing(database):
    queued()
    operator = pm.PipelineRun.get_by_id(1)  # pending, read before the worker moved the run on
    worker = pm.PipelineRun.claim_next("w")
    pm.ReviewLog.request(worker, message_id="chat:1")
    pm.ReviewLog.answer("chat:1", "approve")
    operator.current_stage = "note from the operator"
    operator.save()
    saved = row(worker)
    assert (saved.status, saved.worker, saved.attempts, saved.current_stage) == (
        RunStatus.approved, "w", 1, "note from the operator")

    short = pm.Short.create(pipeline_run=worker, status=ShortStatus.rendered)
    copy = pm.Short.get_by_id(short.id)
    short.start_upload()
    short.mark_uploaded("yt1")
    copy.title = "a better title"
    copy.save()
    uploaded = pm.Short.get_by_id(short.id)
    assert (uploaded.status, uploaded.youtube_video_id) == (ShortStatus.uploaded, "yt1")
    assert uploaded.title == "a better title"
    with pytest.raises(pm.AlreadyUploaded):
        copy.start_upload()


@pytest.mark.parametrize("name, value", [("status", "published"), ("worker", "someone"), ("attempts", 0),
                                         ("claim_token", "f" * 32), ("not_before", None)])
def test_save_refuses_the_queue_fields_of_an_existing_run(database, name, value):
    queued()
    run = pm.PipelineRun.claim_next("w")
    before = pm.PipelineRun.select().dicts().get()
    setattr(run, name, value)
    run.current_stage = "render"
    with pytest.raises(ValueError, match=rf"PipelineRun\.{name}: save\(\) does not move a run; use claim_next"):
        run.save()
    assert pm.PipelineRun.select().dicts().get() == before
    with pytest.raises(ValueError, match=r"PipelineRun\.attempts: "):  # a bad value is refused for what it is
        pm.PipelineRun(id=run.id, attempts=2 ** 40).save()
    made = pm.PipelineRun.create(discovered_video=pm.DiscoveredVideo.discover("v2")[0], status="published")
    assert row(made).status is RunStatus.published  # a new row may be made in any status


def test_a_worker_that_lost_its_lease_cannot_save_the_run(database):
    queued()
    a = pm.PipelineRun.claim_next("A")
    token = a.claim_token
    a.current_stage = "clip"
    a.save()  # while it holds the claim
    assert row(a).current_stage == "clip"
    pm.PipelineRun.requeue_stale(timedelta(minutes=1), now=later(minutes=5))
    b = pm.PipelineRun.claim_next("B", now=later(hours=2))
    before = pm.PipelineRun.select().dicts().get()
    a.current_stage = "A, the zombie"
    with pytest.raises(LeaseLost, match="'A' no longer holds it"):
        a.save()
    assert pm.PipelineRun.select().dicts().get() == before
    # refresh() keeps the object's own claim: a zombie that reloads the run does not become its holder
    with pytest.raises(LeaseLost, match="'A' no longer holds it"):
        a.refresh().heartbeat(stage="A, refreshed")
    assert (a.worker, a.attempts, a.claim_token, a.current_stage) == ("A", 1, token, "clip") and token != b.claim_token
    assert b.refresh().heartbeat(stage="render") and row(b).current_stage == "render"


def test_a_failed_request_leaves_the_run_object_as_it_was(database):
    queued(1), queued(2)
    a, b = pm.PipelineRun.claim_next("A"), pm.PipelineRun.claim_next("B")
    pm.ReviewLog.request(a, message_id="dup")
    for bad in ("dup", 5, "x" * 129):
        with pytest.raises((peewee.IntegrityError, ValueError)):
            pm.ReviewLog.request(b, message_id=bad)
        assert (b.status, b.current_stage, b._dirty) == (RunStatus.running, None, set())
        assert row(b).status is RunStatus.running
    b.fail(RuntimeError("the worker's own handler still works"))
    assert row(b).status is RunStatus.pending


@pytest.mark.parametrize("call, error, message", [
    (lambda run: pm.PipelineRun.claim_next(None), ValueError, "PipelineRun.worker: claim_next needs the worker"),
    (lambda run: pm.PipelineRun.claim_next("  "), ValueError, "PipelineRun.worker: claim_next needs the worker"),
    (lambda run: pm.PipelineRun.claim_next("w", now=pm.utcnow().replace(tzinfo=None)), ValueError,
     "claim_next: now must be an aware datetime"),
    (lambda run: pm.PipelineRun.requeue_stale(timedelta(minutes=1), now="now"), ValueError,
     "requeue_stale: now must be an aware datetime"),
    (lambda run: pm.PipelineRun.requeue_stale(timedelta(minutes=1), max_attempts=0), ValueError,
     "max_attempts must be a whole number from 1 to 1000, not 0"),
    (lambda run: run.fail(None), TypeError, "PipelineRun.fail: give the exception or a reason"),
    (lambda run: run.fail("boom", now=pm.utcnow().replace(tzinfo=None)), ValueError,
     "fail: now must be an aware datetime"),
    (lambda run: run.advance(None), ValueError, r"PipelineRun.status: advance needs the status"),
    (lambda run: pm.ReviewLog.request(run.id), TypeError, "ReviewLog.request: run must be a PipelineRun"),
    (lambda run: pm.DiscoveredVideo.discover(""), ValueError, "DiscoveredVideo.youtube_video_id: discover needs"),
    (lambda run: pm.DiscoveredVideo.discover(None), ValueError, "DiscoveredVideo.youtube_video_id: discover needs"),
])
def test_bad_arguments_to_the_queue_are_refused_by_name_and_change_nothing(database, call, error, message):
    queued()
    claimed = pm.PipelineRun.claim_next("w")
    before = [list(m.select().dicts()) for m in (pm.PipelineRun, pm.DiscoveredVideo, pm.ReviewLog)]
    with pytest.raises(error, match=re.escape(message)):
        call(claimed)
    assert [list(m.select().dicts()) for m in (pm.PipelineRun, pm.DiscoveredVideo, pm.ReviewLog)] == before


def test_insert_rows_of_runs_selects_their_videos_as_start_does(database):
    videos = [pm.DiscoveredVideo.discover(f"bulk{n}")[0] for n in range(3)]
    done = pm.DiscoveredVideo.discover("done")[0]
    assert pm.PipelineRun.insert_rows([{"discovered_video": v} for v in videos]
                                      + [{"discovered_video": done, "status": "published"}]) == 4
    statuses = {v.youtube_video_id: v.status for v in pm.DiscoveredVideo.select()}
    assert statuses == {"bulk0": VideoStatus.selected, "bulk1": VideoStatus.selected,
                        "bulk2": VideoStatus.selected, "done": VideoStatus.processed}
    with pytest.raises(peewee.IntegrityError, match="row 1"):  # a second active run: nothing written
        pm.PipelineRun.insert_rows([{"discovered_video": done}, {"discovered_video": videos[0]}])
    assert pm.PipelineRun.select().count() == 4
    assert pm.DiscoveredVideo.get_by_id(done.id).status is VideoStatus.processed


# --- writes while a loop reads (SQLite) ---------------------------------------------------------


def _commit_on_signal(path, go, done):
    pm.init_db(path)
    while go.wait(10):
        go.clear()
        pm.ConfigOverride.set("other.process", pm.utcnow().isoformat())
        done.set()


@pytest.fixture
def other_process(tmp_path):
    """A SQLite file and a second process that commits a write to it whenever asked: call the fixture's value."""
    path = str(tmp_path / "shared.db")
    pm.init_db(path)
    go, done = spawn.Event(), spawn.Event()
    proc = spawn.Process(target=_commit_on_signal, args=(path, go, done), daemon=True)
    proc.start()

    def commit():
        done.clear()
        go.set()
        assert done.wait(20), "the other process did not commit"

    yield commit
    proc.kill()
    proc.join()
    pm.db.obj.close()


def test_a_loop_over_a_query_may_write_while_another_process_commits(other_process):
    for n in range(5):
        queued(n)
        pm.PipelineRun.claim_next("w").fail("boom", retry=False)
    retried = []
    for run in pm.PipelineRun.select().where(pm.PipelineRun.status == RunStatus.failed):
        other_process()  # commits between the loop's rows: an open read would now pin a stale snapshot
        run.retry()
        retried.append(run.id)
    assert len(retried) == 5 and {r.status for r in pm.PipelineRun.select()} == {RunStatus.pending}
    for video in pm.DiscoveredVideo.select():  # a backref query and a plain write, too
        other_process()
        pm.ErrorLog.create(module="janitor", error_type="E", error_message=video.youtube_video_id)
    assert pm.ErrorLog.select().count() == 5


def test_a_write_inside_a_streaming_iterator_says_what_to_do(other_process):
    for n in range(3):
        queued(n)
        pm.PipelineRun.claim_next("w").fail("boom", retry=False)
    with pytest.raises(pm.BusySnapshot, match=r"Read the rows first \(list\(query\)"):
        for run in pm.PipelineRun.select().iterator():
            other_process()
            run.retry()
    assert {r.status for r in pm.PipelineRun.select()} == {RunStatus.failed}


# --- the migration ------------------------------------------------------------------------------


T = "2026-01-01 00:00:00.000000"


def test_0005_keeps_every_run_and_closes_duplicate_active_ones(fresh_target):
    from playhouse import db_url

    database = db_url.connect(fresh_target) if "://" in fresh_target else peewee.SqliteDatabase(fresh_target)
    Runner(database, str(pm.MIGRATIONS_DIR)).up("0004_seed_schema")
    database.execute_sql("INSERT INTO discovered_videos (id, youtube_video_id, discovered_at, status) "
                         f"VALUES (1, 'a', '{T}', 'selected'), (2, 'b', '{T}', 'selected')")
    statuses = [(1, "pending"), (1, "running"), (1, "published"), (1, "pending"), (2, "approved")]
    for n, (video, status) in enumerate(statuses, start=1):
        database.execute_sql("INSERT INTO pipeline_runs (id, discovered_video_id, status, attempts, created_at, "
                             f"updated_at) VALUES ({n}, {video}, '{status}', 0, '{T}', '{T}')")
    database.close()

    pm.init_db(fresh_target)
    runs = {r.id: (r.status.value, r.last_error) for r in pm.PipelineRun.select()}
    closed = "closed by migration 0005: run 2 is the active run of its video"
    assert runs == {1: ("failed", closed), 2: ("running", None), 3: ("published", None), 4: ("failed", closed),
                    5: ("approved", None)}
    assert pm.PipelineRun.get_by_id(1).finished_at is not None
    with pytest.raises(peewee.IntegrityError):
        pm.PipelineRun.create(id=6, discovered_video=2)
    pm.db.obj.close()


def test_a_failure_whose_message_no_database_stores_is_recorded_escaped(database):
    run = queued()
    pm.PipelineRun.claim_next("w").fail(OSError("cannot open clip\udcff.mp4\x00"), retry=False)
    assert row(run).last_error == "OSError: cannot open clip\\udcff.mp4\\x00"
