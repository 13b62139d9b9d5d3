"""The run queue as a job queue: fenced leases, one run per niche and cycle, the pipeline's retry
schedule, a lifecycle that ends with the long-form upload, stale objects and writes while a loop
reads. tests/test_queue_chaos.py runs the same queue under SIGKILL and SIGSTOP."""
import multiprocessing
import re
from datetime import timedelta

import peewee
import pytest
from conftest import CYCLE_START, make_clip, make_video

import pipeline_models as pm
from pipeline_models import InvalidTransition, LeaseLost, Processed, RunStatus, ShortStatus

spawn = multiprocessing.get_context("spawn")


def queued(n=1, niche="gaming"):
    """The run of `niche` for its cycle number `n`."""
    return pm.PipelineRun.schedule(niche, CYCLE_START + timedelta(hours=6 * n))


def later(**delta):
    """A time after every backoff and lease in these tests: the injected clock."""
    return pm.utcnow() + timedelta(**delta)


def row(run):
    return pm.PipelineRun.get_by_id(run.id)


_videos = iter(range(10 ** 6))


def clip_of(run, rank=1, **fields):
    """A clip of a new video, ranked `rank` in `run`."""
    return make_clip(run, make_video(f"src{next(_videos)}"), rank=rank, **fields)


# --- fenced leases ------------------------------------------------------------------------------


def test_a_worker_that_lost_its_lease_changes_nothing_and_the_new_holder_carries_on(database):
    queued()
    a = pm.PipelineRun.claim_next("A")
    with a.fenced():
        clip_of(a, 1, transcript="A, before it stalled")
    # A stalls past its lease; the janitor requeues the run; B claims it after the backoff.
    assert pm.PipelineRun.requeue_stale(timedelta(minutes=1), now=later(minutes=5)) == 1
    b = pm.PipelineRun.claim_next("B", now=later(hours=2))
    assert (b.id, b.worker, b.retry_count) == (a.id, "B", 1) and b.claim_token != a.claim_token

    def write_clip():
        with a.fenced():
            clip_of(a, 2, transcript="A, the zombie")

    zombie_writes = [lambda: a.heartbeat(stage="render"), lambda: a.advance("failed",
                                                                            reason="A gives up"),
                     lambda: a.fail("A gives up"), lambda: a.fail("A gives up", retry=False),
                     lambda: pm.ReviewLog.request(a, message_id="chat:A"), write_clip]
    before = pm.PipelineRun.select().dicts().get()
    for write in zombie_writes:
        with pytest.raises(LeaseLost, match=re.escape(
                f"run {a.id}: 'A' no longer holds it (its claim was attempt 1); the run is running "
                "under 'B', attempt 2 now. Nothing was written")):
            write()
    assert pm.PipelineRun.select().dicts().get() == before
    assert [c.transcript for c in pm.Clip.select()] == ["A, before it stalled"]
    assert pm.ReviewLog.select().count() == 0

    assert b.heartbeat(stage="render") is True
    with b.fenced():
        clip_of(b, 2, transcript="B")
    pm.ReviewLog.request(b, message_id="chat:B")
    assert (row(b).status, b.status, row(b).worker) == (RunStatus.review, RunStatus.review, "B")
    with pytest.raises(LeaseLost, match="the run is review now"):
        a.heartbeat()


def test_a_stale_worker_that_refreshes_its_object_still_writes_nothing(database):
    """The zombie of issue 22: A's lease is lost, B finishes the run and it is approved; A refreshes
    its object (which now shows approved) and tries every write a worker makes. Each is refused;
    nothing changes."""
    queued()
    a = pm.PipelineRun.claim_next("A")
    pm.PipelineRun.requeue_stale(timedelta(minutes=1), now=later(minutes=5))
    b = pm.PipelineRun.claim_next("B", now=later(hours=2))
    with b.fenced():
        clip_of(b, 1)
    pm.ReviewLog.request(b, message_id="chat:B").respond("approve")
    assert row(b).status is RunStatus.approved
    a.refresh()
    assert a.status is RunStatus.approved  # it sees the run as it is now...

    def write_clip():
        with a.fenced():
            clip_of(a, 2)

    def save():
        a.video_file_path = "A/zombie.mp4"
        a.save()

    writes = [save, lambda: a.fail("A gives up"), lambda: a.fail("A gives up", retry=False),
              lambda: a.advance("failed", reason="A gives up"),
              lambda: pm.ReviewLog.request(a, message_id="chat:A"),
              lambda: a.heartbeat(stage="render"), write_clip]
    before = [list(m.select().dicts()) for m in (pm.PipelineRun, pm.Clip, pm.ReviewLog,
                                                 pm.DiscoveredVideo)]
    for write in writes:  # ... and still writes as the worker whose claim was attempt 1
        with pytest.raises(LeaseLost, match=re.escape(
                f"run {a.id}: 'A' no longer holds it (its claim was attempt 1); the run is "
                "approved now")):
            write()
    assert [list(m.select().dicts()) for m in (pm.PipelineRun, pm.Clip, pm.ReviewLog,
                                               pm.DiscoveredVideo)] == before
    # An operator's copy, which never held the claim, may still cancel the approved run.
    pm.PipelineRun.get_by_id(a.id).advance("failed", reason="cancelled by the operator")
    assert row(a).status is RunStatus.failed


def test_an_object_that_never_claimed_a_running_run_cannot_write_as_its_worker(database):
    queued()
    pm.PipelineRun.claim_next("w")
    pm.PipelineRun.requeue_stale(timedelta(minutes=1), now=later(minutes=5))
    # pending: it holds no claim, and refresh() gives it none
    operator = pm.PipelineRun.get_by_id(1)
    worker = pm.PipelineRun.claim_next("w2", now=later(hours=2))
    operator.refresh()
    assert operator.status is RunStatus.running
    before = list(pm.PipelineRun.select().dicts())
    for write in (lambda: operator.heartbeat(), lambda: operator.fail("x"),
                  lambda: pm.ReviewLog.request(operator), lambda: operator.advance("failed",
                                                                                   reason="x"),
                  lambda: operator.fenced().__enter__()):
        with pytest.raises(LeaseLost,
                           match=f"run {operator.id} is running under 'w2', attempt 2, and this "
                                 "object holds no claim to it"):
            write()
    assert list(pm.PipelineRun.select().dicts()) == before
    assert worker.heartbeat() and pm.ReviewLog.request(worker).pipeline_run_id == worker.id


def test_the_workers_own_move_out_of_running_releases_its_claim(database):
    queued()
    run = pm.PipelineRun.claim_next("w")
    review = pm.ReviewLog.request(run, message_id="chat:1")
    review.respond("approve", run=run)
    # the same object, now the uploader's: no claim to hold
    run.video_file_path = "renders/final.mp4"
    run.save()
    run.mark_uploaded("yt-long")
    assert (row(run).status, row(run).video_file_path) == (RunStatus.uploaded, "renders/final.mp4")


def test_a_failed_request_keeps_the_claim_of_the_object(database):
    queued(1), queued(2)
    a, b = pm.PipelineRun.claim_next("A"), pm.PipelineRun.claim_next("B")
    pm.ReviewLog.request(a, message_id="dup")
    with pytest.raises(peewee.IntegrityError):
        # the run's move rolled back with the review's insert
        pm.ReviewLog.request(b, message_id="dup")
    assert b.heartbeat() and pm.ReviewLog.request(b, message_id="other").pipeline_run_id == b.id


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
            clip_of(claimed)
            1 / 0
    assert pm.Clip.select().count() == 0 and pm.DiscoveredVideo.select().count() == 0


def test_operations_that_are_not_the_workers_ignore_the_claim(database):
    queued()
    worker = pm.PipelineRun.claim_next("w")
    review = pm.ReviewLog.request(worker, message_id="chat:1")
    # the reviewer's
    assert pm.ReviewLog.answer("chat:1", "approve", reviewer="@alice") == (review, True)
    operator = pm.PipelineRun.get_by_id(worker.id)  # the operator's copy holds no claim
    operator.advance("failed", reason="cancelled by the operator")
    operator.retry()
    assert row(worker).status is RunStatus.pending and row(worker).retry_count == 0


# --- one run per niche and cycle ----------------------------------------------------------------


def test_an_operator_retry_queues_the_same_run_again_with_its_retries_counted_afresh(database):
    run = queued()
    claimed = pm.PipelineRun.claim_next("w")
    claimed.fail("boom")
    pm.PipelineRun.claim_next("w", now=later(hours=1)).fail("no source", retry=False)
    assert (row(run).status, row(run).retry_count) == (RunStatus.failed, 1)
    assert queued().id == run.id  # the scheduler firing again does not make a second run
    pm.PipelineRun.get_by_id(run.id).retry()
    assert (row(run).status, row(run).retry_count, row(run).not_before) == (RunStatus.pending, 0,
                                                                            None)
    assert pm.PipelineRun.claim_next("w").id == run.id
    with pytest.raises(InvalidTransition, match="only a failed run is retried"):
        pm.PipelineRun.get_by_id(run.id).retry()


def test_claim_next_takes_the_earliest_cycle_and_may_keep_to_a_niche(database):
    pm.ConfigOverride.set("scheduler.max_concurrent_pipelines", 3)  # three run at once here
    late, early = queued(5), queued(1)
    sports = queued(0, niche="sports")
    assert pm.PipelineRun.claim_next("g", niche="gaming").id == early.id
    assert pm.PipelineRun.claim_next("any").id == sports.id
    assert pm.PipelineRun.claim_next("f", niche="funny") is None
    assert pm.PipelineRun.claim_next("g", niche="gaming").id == late.id
    with pytest.raises(ValueError, match="PipelineRun.niche: claim_next needs the niche's name"):
        pm.PipelineRun.claim_next("g", niche="")


def _schedule_all(target, barrier, cycles, out):
    pm.init_db(target)
    barrier.wait()
    made = [pm.PipelineRun.schedule(niche, CYCLE_START + timedelta(hours=6 * n)).id for niche,
            n in cycles]
    with open(out, "w") as fh:
        fh.write(" ".join(map(str, made)))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_schedulers_firing_at_once_in_several_processes_make_each_run_once(backend, request,
                                                                           tmp_path):
    target = (str(tmp_path / "q.db") if backend == "sqlite"
              else request.getfixturevalue("pg_server").new_database())
    pm.init_db(target)
    pm.db.obj.close()
    cycles = [(niche, n) for niche in ("gaming", "sports", "funny") for n in range(10)]
    barrier = spawn.Barrier(4)
    outs = [tmp_path / f"out{n}" for n in range(4)]
    procs = [spawn.Process(target=_schedule_all, args=(target, barrier, cycles[n:] + cycles[:n],
                                                       str(outs[n])))
             for n in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    pm.init_db(target)
    assert pm.PipelineRun.select().count() == 30
    made = [[int(x) for x in out.read_text().split()] for out in outs]
    assert {run for ids in made for run in ids} == {r.id for r in pm.PipelineRun.select()}
    # Each process got the one run of each cycle, whoever inserted it.
    by_cycle = [dict(zip(cycles[n:] + cycles[:n], ids)) for n, ids in enumerate(made)]
    assert all(found == by_cycle[0] for found in by_cycle)
    pm.db.obj.close()


# --- retries with backoff and a limit -----------------------------------------------------------


def test_a_failed_attempt_is_retried_after_30_then_90_seconds_then_fails_for_good(database):
    run = queued()
    failed_at = later(days=1)
    for attempt, delay in ((1, 30), (2, 90)):
        claimed = pm.PipelineRun.claim_next("w", now=failed_at)
        assert (claimed.id, claimed.retry_count) == (run.id, attempt - 1)
        claimed.fail(RuntimeError("ffmpeg exited 1"), now=failed_at)
        due = row(run).not_before
        # the pipeline's schedule, to the microsecond
        assert due == failed_at + timedelta(seconds=delay)
        assert (row(run).retry_count, row(run).error_message) == (
            attempt, f"attempt {attempt} of 3 failed: RuntimeError: ffmpeg exited 1")
        assert pm.PipelineRun.claim_next("early", now=due - timedelta(microseconds=1)) is None
        assert row(run).status is RunStatus.pending
        failed_at = due
    last = pm.PipelineRun.claim_next("w", now=due)
    assert last.retry_count == 2
    last.fail("ffmpeg exited 1", now=due)
    gave_up = row(run)
    assert (gave_up.status, gave_up.error_message) == (RunStatus.failed,
                                                       "gave up after 3 attempts: ffmpeg exited 1")
    assert gave_up.completed_at is not None and gave_up.retry_count == 2
    assert pm.PipelineRun.claim_next("w", now=later(days=30)) is None


def test_the_first_delay_comes_from_the_config_and_each_one_is_three_times_the_last(database):
    pm.ConfigOverride.set("queue.retry_delay_seconds", 10)
    pm.ConfigOverride.set("queue.max_attempts", 5)
    run = queued()
    now = later(minutes=1)
    delays = []
    for _ in range(4):
        pm.PipelineRun.claim_next("w", now=now).fail("rate limited", now=now)
        delays.append((row(run).not_before - now).total_seconds())
        now = row(run).not_before
    assert delays == [10, 30, 90, 270] and row(run).status is RunStatus.pending


def test_max_attempts_per_call_and_by_config(database):
    run = queued()
    pm.PipelineRun.claim_next("w").fail("boom", max_attempts=1)
    assert row(run).error_message == "gave up after 1 attempts: boom"

    pm.ConfigOverride.set("queue.max_attempts", 2)
    pm.ConfigOverride.set("queue.retry_delay_seconds", 0)
    run = queued(2)
    pm.PipelineRun.claim_next("w").fail("boom")
    assert row(run).status is RunStatus.pending
    pm.PipelineRun.claim_next("w").fail("boom")
    assert row(run).error_message == "gave up after 2 attempts: boom"


@pytest.mark.parametrize("key, value, message", [
    ("queue.max_attempts", 0,
     "ConfigOverride 'queue.max_attempts' must be a whole number from 1 to 1000, not 0"),
    ("queue.max_attempts", "3", "must be a whole number from 1 to 1000, not '3'"),
    ("queue.retry_delay_seconds", -1,
     "'queue.retry_delay_seconds' must be a number of seconds from 0 to 86400"),
])
def test_a_bad_retry_policy_is_refused_by_name_and_changes_nothing(database, key, value, message):
    queued()
    claimed = pm.PipelineRun.claim_next("w")
    with pytest.raises(ValueError, match=re.escape(message)):
        pm.ConfigOverride.set(key, value)  # refused at once, not in every worker later
    assert pm.ConfigOverride.value_of(key) is None
    # other code may write it: checked where it is read
    pm.ConfigOverride.insert(key=key, value=value).execute()
    with pytest.raises(ValueError, match=re.escape(message)):
        claimed.fail("boom")
    assert row(claimed).status is RunStatus.running
    with pytest.raises(ValueError, match="max_attempts must be a whole number"):
        claimed.fail("boom", max_attempts=True)


@pytest.mark.parametrize("key, value, message", [
    ("queue.max_attempts", -5,
     "ConfigOverride 'queue.max_attempts' must be a whole number from 1 to 1000, not -5"),
    ("scheduler.max_concurrent_pipelines", 1001,
     "ConfigOverride 'scheduler.max_concurrent_pipelines' must be a whole number from 0 to 1000, "
     "not 1001"),
])
def test_a_refused_setting_names_the_setting_and_no_model(database, key, value, message):
    # The setting's own message, whole: not the model that reads it ("PipelineRun: ConfigOverride").
    with pytest.raises(ValueError) as refused:
        pm.ConfigOverride.set(key, value)
    assert str(refused.value) == message


def test_a_worker_fails_a_run_for_good_at_once(database):
    run = queued()
    pm.PipelineRun.claim_next("w").fail(ValueError("not a video"), retry=False)
    assert (row(run).status, row(run).error_message) == (RunStatus.failed,
                                                         "ValueError: not a video")
    with pytest.raises(ValueError, match="give the error or a reason"):
        pm.PipelineRun.get_by_id(run.id).fail("  ")


def test_requeue_stale_gives_up_after_max_attempts(database):
    run = queued()
    for attempt in (1, 2, 3):
        pm.PipelineRun.claim_next("poison", now=later(days=attempt))
        assert pm.PipelineRun.requeue_stale(timedelta(minutes=10),
                                            now=later(days=attempt, hours=1)) == 1
    gave_up = row(run)
    assert gave_up.status is RunStatus.failed and gave_up.retry_count == 2
    assert gave_up.error_message == ("gave up after 3 attempts: no heartbeat for 0:10:00 "
                                     "(worker 'poison')")


@pytest.mark.parametrize("bad, error", [
    (timedelta(minutes=-10), ValueError), (timedelta(0), ValueError), (timedelta.max, ValueError),
    (timedelta(days=367), ValueError), (600, TypeError)])
def test_bad_durations_are_refused_and_change_nothing(database, bad, error):
    queued()
    pm.PipelineRun.claim_next("alive")
    pm.ReviewLog.create(pipeline_run=pm.PipelineRun.get())
    with pytest.raises(error, match="requeue_stale: older_than must be"):
        pm.PipelineRun.requeue_stale(bad)
    with pytest.raises(error, match="hold_stale: older_than must be"):
        pm.ReviewLog.hold_stale(bad)
    assert (pm.PipelineRun.get().status is RunStatus.running
            and pm.ReviewLog.get().auto_held is False)


def test_requeue_stale_needs_its_age_while_hold_stale_defaults_to_the_review_timeout(database):
    queued()
    pm.PipelineRun.claim_next("alive")
    with pytest.raises(TypeError, match="requeue_stale: older_than must be a datetime.timedelta"):
        pm.PipelineRun.requeue_stale(None)
    pm.ReviewLog.create(pipeline_run=pm.PipelineRun.get(), sent_at=pm.utcnow() - timedelta(hours=3))
    assert pm.ReviewLog.hold_stale(None) == 0  # 4 hours, review.timeout_hours
    pm.ConfigOverride.set("review.timeout_hours", 2)
    assert pm.ReviewLog.hold_stale(None) == 1


# --- the lifecycle ------------------------------------------------------------------------------


def test_from_discovery_to_the_uploaded_compilation(database):
    for n in range(12):
        pm.DiscoveredVideo.discover(f"cand{n:02d}", title=f"Clip {n}", channel_name=f"Creator {n}",
                                    channel_id=f"UC{n}", niche="gaming", viral_score=float(n))
    pm.PipelineRun.schedule("gaming", CYCLE_START)
    run = pm.PipelineRun.claim_next("host-a:1")
    candidates = list(pm.get_pending_videos("gaming").limit(10))
    with run.fenced():
        clips = [pm.Clip.create(pipeline_run=run, discovered_video=video, rank_position=rank,
                                start_time_seconds=5, end_time_seconds=25, clip_duration_seconds=20)
                 for rank, video in enumerate(candidates, 1)]
        for video in candidates:
            pm.mark_video_processed(video.video_id, Processed.used)
        pm.Script.create(pipeline_run=run, full_script_json={"opening": "a"}, total_char_count=1,
                         estimated_duration_seconds=0.1, llm_model_used="m")
        pm.TTSAudio.create(pipeline_run=run, engine_used="piper")
        shorts = [pm.Short.create(pipeline_run=run, clip=clip) for clip in clips[:3]]
    run.video_file_path, run.video_duration_seconds = "renders/gaming.mp4", 540.0
    run.save()
    # best score: rank 1
    assert [c.discovered_video.video_id for c in clips[:2]] == ["cand11", "cand10"]
    assert [v.video_id for v in pm.get_pending_videos("gaming")] == ["cand01", "cand00"]
    # nothing goes up before a human approves
    for upload in (run.start_upload, shorts[0].start_upload):
        with pytest.raises(InvalidTransition, match="running"):
            upload()
    review = pm.ReviewLog.request(run, message_id="chat:9")
    assert (run.status is RunStatus.review
            and {s.refresh().status for s in shorts} == {ShortStatus.review})
    review.respond("approve", reviewer="@alice")
    assert run.status is RunStatus.approved  # the object request() was given, updated by respond()

    for n, short in enumerate(shorts):
        short.start_upload()
        short.mark_uploaded(f"yt-short-{n}")
    # shorts do not finish the run: the long-form video does
    assert row(run).status is RunStatus.approved
    run.start_upload()
    assert run.mark_uploaded("yt-long") is True
    uploaded = row(run)
    assert (uploaded.status, uploaded.youtube_video_id, uploaded.youtube_url) == (
        RunStatus.uploaded, "yt-long", "https://www.youtube.com/watch?v=yt-long")
    assert uploaded.completed_at is not None and run.status is RunStatus.uploaded
    assert run.mark_uploaded("yt-long") is False  # a retry of the record changes nothing
    with pytest.raises(pm.AlreadyUploaded, match=f"run {run.id} is already on YouTube as yt-long"):
        run.start_upload()
    # A short of an uploaded run may still go up (the long form went first).
    late = pm.Short.create(pipeline_run=run, clip=clips[3])
    late.start_upload()
    assert late.mark_uploaded("yt-short-late") and pm.PipelineRun.schedule("gaming",
                                                                           CYCLE_START).id == run.id


def test_a_rejected_run_uploads_nothing(database):
    run = queued()
    claimed = pm.PipelineRun.claim_next("w")
    with claimed.fenced():
        clip_of(claimed)
        short = pm.Short.create(pipeline_run=claimed)
    pm.ReviewLog.request(claimed).respond("reject", response_detail="off-topic")
    assert claimed.status is RunStatus.rejected and row(run).completed_at is not None
    for upload in (short.start_upload, lambda: short.mark_uploaded("yt-x")):
        with pytest.raises(InvalidTransition,
                           match=f"short {short.id} cannot go from rejected to uploaded: its run "
                                 f"{run.id} is rejected"):
            upload()
    for upload in (claimed.start_upload, lambda: claimed.mark_uploaded("yt-long")):
        with pytest.raises(InvalidTransition,
                           match=f"run {run.id} cannot go from rejected to uploaded"):
            upload()
    assert (pm.Short.get_by_id(short.id).youtube_video_id is None
            and row(run).youtube_video_id is None)
    assert (pm.Short.get_by_id(short.id).upload_started_at is None
            and row(run).upload_started_at is None)


def test_transition_tables_name_only_real_statuses():
    for model, enum in ((pm.PipelineRun, RunStatus), (pm.Short, ShortStatus)):
        assert set(model.TRANSITIONS) == set(enum), model.__name__
        assert all(set(targets) <= set(enum)
                   for targets in model.TRANSITIONS.values()), model.__name__
    assert set(pm.ReviewLog.OUTCOME) == set(pm.ReviewAction)
    assert all(
        outcome in pm.PipelineRun.TRANSITIONS[RunStatus.review] or outcome is RunStatus.review
        for outcome in pm.ReviewLog.OUTCOME.values())
    for source, target in pm.PipelineRun._THROUGH:
        assert target in pm.PipelineRun.TRANSITIONS[source]


# --- uploads and stale objects ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, "", "   ", 42])
def test_mark_uploaded_refuses_a_missing_or_blank_video_id(run, bad):
    short = pm.Short.create(pipeline_run=run, status=ShortStatus.review)
    with pytest.raises(ValueError,
                       match="Short.youtube_video_id: mark_uploaded needs the video id"):
        short.mark_uploaded(bad)
    with pytest.raises(ValueError,
                       match="PipelineRun.youtube_video_id: mark_uploaded needs the video id"):
        run.mark_uploaded(bad)
    stored = pm.Short.get_by_id(short.id)
    assert (stored.status, stored.youtube_video_id, stored.youtube_url) == (ShortStatus.review,
                                                                            None, None)
    assert (row(run).status, row(run).youtube_video_id) == (RunStatus.pending, None)


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
    stale = pm.PipelineRun.get_by_id(run.id)  # review
    pm.ReviewLog.answer("chat:1", "approve")  # another call, not given `stale`
    with pytest.raises(InvalidTransition, match="is approved in the database, not review") as error:
        stale.advance("failed", reason="cancelled")
    assert (error.value.current, error.value.copy, error.value.target) == ("approved", "review",
                                                                           "failed")
    assert stale.refresh().advance("failed", reason="cancelled").status is RunStatus.failed
    # answer() was not given it
    assert review.pipeline_run is run and run.status is RunStatus.review


def test_save_writes_only_what_changed_so_a_stale_copy_undoes_nothing(database):
    queued()
    operator = pm.PipelineRun.get_by_id(1)  # pending, read before the worker moved the run on
    worker = pm.PipelineRun.claim_next("w")
    pm.ReviewLog.request(worker, message_id="chat:1")
    pm.ReviewLog.answer("chat:1", "approve")
    operator.current_stage = "note from the operator"
    operator.save()
    saved = row(worker)
    assert (saved.status, saved.worker, saved.retry_count, saved.current_stage) == (
        RunStatus.approved, "w", 0, "note from the operator")

    short = pm.Short.create(pipeline_run=worker, status=ShortStatus.review)
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


@pytest.mark.parametrize("name, value", [("status", "uploaded"), ("worker", "someone"),
                                         ("retry_count", 0), ("claim_token", "f" * 32),
                                         ("not_before", None), ("completed_at", None),
                                         ("youtube_video_id", "long1"),
                                         ("upload_started_at", None)])
def test_save_refuses_the_queue_fields_of_an_existing_run(database, name, value):
    queued()
    run = pm.PipelineRun.claim_next("w")
    before = pm.PipelineRun.select().dicts().get()
    setattr(run, name, value)
    run.current_stage = "render"
    with pytest.raises(ValueError,
                       match=rf"PipelineRun\.{name}: save\(\) does not move a run; use claim_next"):
        run.save()
    assert pm.PipelineRun.select().dicts().get() == before
    # a bad value is refused for what it is
    with pytest.raises(ValueError, match=r"PipelineRun\.retry_count: "):
        pm.PipelineRun(id=run.id, retry_count=2 ** 40).save()
    made = pm.PipelineRun.create(niche="sports", cycle_start=CYCLE_START, cycle_end=later(days=1),
                                 status="uploaded")
    assert row(made).status is RunStatus.uploaded  # a new row may be made in any status


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
    # refresh() keeps the object's own claim: a zombie that reloads the run does not become its
    # holder
    with pytest.raises(LeaseLost, match="'A' no longer holds it"):
        a.refresh().heartbeat(stage="A, refreshed")
    assert (a.worker, a.retry_count, a.claim_token, a.current_stage) == ("A", 0, token, "clip")
    assert token != b.claim_token
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
    (lambda run: pm.PipelineRun.claim_next(None), ValueError,
     "PipelineRun.worker: claim_next needs the worker"),
    (lambda run: pm.PipelineRun.claim_next("  "), ValueError,
     "PipelineRun.worker: claim_next needs the worker"),
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
    (lambda run: pm.ReviewLog.request(run.id), TypeError,
     "ReviewLog.request: run must be a PipelineRun"),
    (lambda run: pm.DiscoveredVideo.discover(""), ValueError,
     "DiscoveredVideo.video_id: discover needs"),
    (lambda run: pm.DiscoveredVideo.discover(None), ValueError,
     "DiscoveredVideo.video_id: discover needs"),
    (lambda run: pm.PipelineRun.schedule("gaming", "tomorrow"), ValueError,
     "PipelineRun.cycle_start: schedule"),
    (lambda run: run.mark_uploaded("yt", uploaded_at="soon"), ValueError,
     "PipelineRun.completed_at:"),
])
def test_bad_arguments_to_the_queue_are_refused_by_name_and_change_nothing(database, call, error,
                                                                           message):
    queued()
    claimed = pm.PipelineRun.claim_next("w")
    before = [list(m.select().dicts()) for m in (pm.PipelineRun, pm.DiscoveredVideo, pm.ReviewLog)]
    with pytest.raises(error, match=re.escape(message)):
        call(claimed)
    assert [list(m.select().dicts())
            for m in (pm.PipelineRun, pm.DiscoveredVideo, pm.ReviewLog)] == before


def test_insert_rows_of_runs_keeps_one_run_per_niche_and_cycle(database):
    start = CYCLE_START
    rows = [dict(niche=niche, cycle_start=start, cycle_end=start + timedelta(hours=6))
            for niche in ("a", "b")]
    assert pm.PipelineRun.insert_rows(rows) == 2
    # the cycle of niche a again: nothing written
    with pytest.raises(peewee.IntegrityError, match="row 1"):
        pm.PipelineRun.insert_rows([dict(rows[0], niche="c"), rows[0]])
    assert sorted(r.niche for r in pm.PipelineRun.select()) == ["a", "b"]


# --- writes while a loop reads (SQLite) ---------------------------------------------------------


def _commit_on_signal(path, go, done):
    pm.init_db(path)
    while go.wait(10):
        go.clear()
        pm.ConfigOverride.set("other.process", pm.utcnow().isoformat())
        done.set()


@pytest.fixture
def other_process(tmp_path):
    """A SQLite file and a second process that commits a write to it whenever asked: call the
    fixture's value."""
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
        # commits between the loop's rows: an open read would now pin a stale snapshot
        other_process()
        run.retry()
        retried.append(run.id)
    assert len(retried) == 5 and {r.status for r in pm.PipelineRun.select()} == {RunStatus.pending}
    for run in pm.PipelineRun.select():  # a plain write, too
        other_process()
        pm.ErrorLog.create(module="janitor", error_type="E", error_message=run.niche)
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
    from playhouse.migrations import Runner

    database = (db_url.connect(fresh_target) if "://" in fresh_target
                else peewee.SqliteDatabase(fresh_target))
    Runner(database, str(pm.MIGRATIONS_DIR)).up("0004_seed_schema")
    database.execute_sql("INSERT INTO discovered_videos (id, youtube_video_id, discovered_at, "
                         f"status) VALUES (1, 'a', '{T}', 'selected'), (2, 'b', '{T}', 'selected')")
    statuses = [(1, "pending"), (1, "running"), (1, "published"), (1, "pending"), (2, "approved")]
    for n, (video, status) in enumerate(statuses, start=1):
        database.execute_sql("INSERT INTO pipeline_runs (id, discovered_video_id, status, "
                             "attempts, created_at, "
                             f"updated_at) VALUES ({n}, {video}, '{status}', 0, '{T}', '{T}')")
    database.close()

    # 0005, then the later migrations (0007 renames the statuses and columns)
    pm.init_db(fresh_target)
    runs = {r.id: (r.status.value, r.error_message) for r in pm.PipelineRun.select()}
    closed = "closed by migration 0005: run 2 is the active run of its video"
    assert runs == {1: ("failed", closed), 2: ("running", None), 3: ("uploaded", None),
                    4: ("failed", closed), 5: ("approved", None)}
    assert pm.PipelineRun.get_by_id(1).completed_at is not None
    pm.db.obj.close()


def test_a_failure_whose_message_no_database_stores_is_recorded_escaped(database):
    run = queued()
    pm.PipelineRun.claim_next("w").fail(OSError("cannot open clip\udcff.mp4\x00"), retry=False)
    assert row(run).error_message == "OSError: cannot open clip\\udcff.mp4\\x00"
