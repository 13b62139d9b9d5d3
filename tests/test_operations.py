"""The operations the pipeline's scripts call: each one call, atomic, and refusing what it must not
do."""
import datetime
from datetime import timedelta

import peewee
import pytest
from conftest import CYCLE_START, aware, make_clip, make_video

import pipeline_models as pm
from pipeline_models import (
    AlreadyAnswered,
    AlreadyUploaded,
    InvalidTransition,
    Processed,
    ReviewAction,
    RunStatus,
    ShortStatus,
    UploadInDoubt,
)

# --- discovery ----------------------------------------------------------------------------------

FOUND = dict(title="First title", channel_name="A creator", channel_id="UC1", niche="gaming")


def test_discover_creates_once_and_refreshes_the_metadata_given(database):
    video, created = pm.DiscoveredVideo.discover("yt1", **FOUND, view_count=10,
                                                 discovery_source="reddit")
    assert created and video.id
    again, created = pm.DiscoveredVideo.discover("yt1", title="New title", view_count=25)
    assert not created and again.id == video.id
    row = pm.DiscoveredVideo.get_by_id(video.id)
    assert (row.title, row.view_count, row.discovery_source) == ("New title", 25, "reddit")
    assert pm.DiscoveredVideo.select().count() == 1


def test_discover_refuses_unknown_fields_and_writes_nothing(database):
    with pytest.raises(TypeError, match="DiscoveredVideo has no settable field titel"):
        pm.DiscoveredVideo.discover("yt1", titel="typo")
    assert pm.DiscoveredVideo.select().count() == 0


def test_discover_with_a_bad_value_writes_nothing(database):
    with pytest.raises(peewee.IntegrityError):
        pm.DiscoveredVideo.discover("yt1", **FOUND, view_count=-5)
    assert pm.DiscoveredVideo.select().count() == 0


# --- run lifecycle ------------------------------------------------------------------------------


def new_run(n=1, niche="gaming"):
    return pm.PipelineRun.schedule(niche, CYCLE_START + timedelta(hours=6 * n))


def test_schedule_queues_a_pending_run(database):
    run = new_run()
    assert run.status is RunStatus.pending or run.status == "pending"
    stored = pm.PipelineRun.get_by_id(run.id)
    assert (stored.status, stored.niche, stored.retry_count, stored.worker) == (RunStatus.pending,
                                                                                "gaming", 0, None)


def test_claim_next_takes_the_run_of_the_earliest_cycle(database):
    later, earlier = new_run(2), new_run(1)

    claimed = pm.PipelineRun.claim_next("worker-a")

    assert claimed.id == earlier.id
    assert (claimed.status, claimed.worker, claimed.retry_count) == (
        RunStatus.running, "worker-a", 0)
    assert (claimed.started_at and claimed.heartbeat_at
            and claimed.started_at.tzinfo == datetime.timezone.utc)
    row = pm.PipelineRun.get_by_id(earlier.id)
    assert (row.status, row.worker, row.claim_token) == (RunStatus.running, "worker-a",
                                                         claimed.claim_token)
    assert pm.PipelineRun.claim_next("worker-b").id == later.id
    assert pm.PipelineRun.claim_next("worker-c") is None


def test_a_run_goes_the_whole_happy_path(database):
    new_run()
    run = pm.PipelineRun.claim_next("w")
    run.advance("review", stage="review")
    run.advance(RunStatus.approved)
    run.mark_uploaded("yt-long")
    row = pm.PipelineRun.get_by_id(run.id)
    assert (row.status, row.current_stage, row.youtube_video_id) == (RunStatus.uploaded, "review",
                                                                     "yt-long")
    assert row.completed_at is not None and row.updated_at >= row.started_at


def walk(run, path):
    """Take `run` along `path`: running by claim_next (the only way in), uploaded by mark_uploaded,
    the rest by advance."""
    for status in path:
        if status == "running":
            run = pm.PipelineRun.claim_next("w")
        elif status == "uploaded":
            run.mark_uploaded("yt-long")
        else:
            run.advance(status, reason="x")
    return run


@pytest.mark.parametrize("path, bad, hint", [
    ([], "review", ""),
    ([], "uploaded", ""),
    ([], "running", ": use claim_next"),
    (["running"], "approved", ""),
    (["running"], "pending", r": use fail\(reason\) or requeue_stale"),
    (["running", "failed"], "pending", r": use retry\(\)"),
    (["running", "review"], "pending", r": use ReviewLog respond\(\) skip or redo_script"),
    (["running", "review", "rejected"], "pending", ""),
    (["running", "review", "approved"], "uploaded", r": use mark_uploaded\(youtube_video_id\)"),
    (["running", "review", "approved", "uploaded"], "failed", ""),
])
def test_disallowed_transitions_raise_naming_both_states_and_change_nothing(database, path, bad,
                                                                            hint):
    run = walk(new_run(), path)
    before = pm.PipelineRun.get_by_id(run.id)
    current = path[-1] if path else "pending"
    with pytest.raises(InvalidTransition,
                       match=f"run {run.id} cannot go from {current} to {bad}{hint}"):
        run.advance(bad, reason="x")
    after = pm.PipelineRun.get_by_id(run.id)
    fields = ("status", "updated_at", "completed_at", "error_message")
    assert [getattr(after, f) for f in fields] == [getattr(before, f) for f in fields]


def test_advance_refuses_an_unknown_status(database):
    run = new_run()
    with pytest.raises(ValueError, match="PipelineRun.status: 'done' is not one of"):
        run.advance("done")


def test_advance_is_a_compare_and_set_and_names_the_status_in_the_database(database):
    new_run()
    pm.ReviewLog.request(pm.PipelineRun.claim_next("w"))
    mine = pm.PipelineRun.get()
    theirs = pm.PipelineRun.get()
    theirs.advance("failed", reason="operator cancelled")
    with pytest.raises(InvalidTransition,
                       match=f"run {mine.id} is failed in the database, not review as "
                             r"this object says .*call \.refresh\(\)"):
        mine.advance("approved")
    assert pm.PipelineRun.get_by_id(mine.id).status is RunStatus.failed
    assert (mine.refresh() is mine and mine.status is RunStatus.failed
            and mine.completed_at is not None)


def test_failing_needs_a_reason_kept_on_one_line(database):
    new_run()
    run = pm.PipelineRun.claim_next("w")
    with pytest.raises(ValueError, match="needs a reason"):
        run.advance("failed")
    assert pm.PipelineRun.get_by_id(run.id).status is RunStatus.running
    run.advance("failed", reason="ffmpeg exited 1\n  moov atom not found\n")
    row = pm.PipelineRun.get_by_id(run.id)
    assert row.error_message == "ffmpeg exited 1 moov atom not found"
    assert row.completed_at is not None


def test_retry_returns_a_failed_run_to_the_queue_with_its_retries_reset(database):
    new_run()
    run = pm.PipelineRun.claim_next("w1")
    run.fail("render crashed")
    run = pm.PipelineRun.claim_next("w1", now=pm.utcnow() + timedelta(minutes=5))
    run.advance("failed", reason="render crashed")
    run.retry()
    row = pm.PipelineRun.get_by_id(run.id)
    assert (row.status, row.completed_at, row.worker, row.retry_count, row.error_message) == (
        RunStatus.pending, None, None, 0, "render crashed")
    assert run.status is RunStatus.pending
    again = pm.PipelineRun.claim_next("w2")
    assert (again.id, again.retry_count, again.worker) == (run.id, 0, "w2")
    with pytest.raises(InvalidTransition,
                       match="cannot go from running to pending: only a failed run is retried"):
        again.retry()


def test_heartbeat_and_requeue_stale(database):
    new_run(1), new_run(2)
    alive = pm.PipelineRun.claim_next("alive")
    dead = pm.PipelineRun.claim_next("dead")
    long_ago = pm.utcnow() - timedelta(minutes=30)
    pm.PipelineRun.update(heartbeat_at=long_ago).execute()
    assert alive.heartbeat(stage="render") is True
    assert pm.PipelineRun.get_by_id(alive.id).current_stage == "render"

    assert pm.PipelineRun.requeue_stale(timedelta(minutes=10)) == 1

    requeued = pm.PipelineRun.get_by_id(dead.id)
    assert (requeued.status, requeued.worker, requeued.retry_count) == (RunStatus.pending, None, 1)
    assert ("attempt 1 of 3 failed: no heartbeat for 0:10:00 (worker 'dead')"
            == requeued.error_message)
    assert requeued.not_before > pm.utcnow()  # the retry delay: not claimable at once
    assert pm.PipelineRun.get_by_id(alive.id).status is RunStatus.running
    with pytest.raises(pm.LeaseLost, match=f"run {dead.id}: 'dead' no longer holds it"):
        dead.heartbeat(stage="upload")  # the dead worker, if it wakes, learns it lost the run
    assert pm.PipelineRun.get_by_id(dead.id).current_stage is None
    assert pm.PipelineRun.requeue_stale(timedelta(minutes=10)) == 0


# --- reviews ------------------------------------------------------------------------------------


def reviewed_run(database, message_id="chat:1", clips=0):
    """A run under review with `clips` clips ranked 1..N (each of a video of its own) and a short of
    the first."""
    new_run()
    run = pm.PipelineRun.claim_next("w")
    with run.fenced():
        for rank in range(1, clips + 1):
            make_clip(run, make_video(f"v{rank}"), rank=rank)
        short = pm.Short.create(pipeline_run=run)
    review = pm.ReviewLog.request(run, message_id=message_id)
    assert short.refresh().status is ShortStatus.review  # the run's shorts went to review with it
    return run, review


def test_request_moves_the_run_to_review(database):
    run, review = reviewed_run(database)
    assert pm.PipelineRun.get_by_id(run.id).status is RunStatus.review
    row = pm.ReviewLog.get_by_id(review.id)
    assert row.action is None and row.sent_at is not None and row.message_id == "chat:1"


def test_request_on_a_run_that_is_not_running_writes_nothing(database):
    run = new_run()
    with pytest.raises(InvalidTransition):
        pm.ReviewLog.request(run)
    assert pm.ReviewLog.select().count() == 0


@pytest.mark.parametrize("action, outcome", [
    ("approve", RunStatus.approved), ("reject", RunStatus.rejected), ("hold", RunStatus.review),
    ("redo_script", RunStatus.pending)])
def test_respond_records_the_answer_and_moves_the_run(database, action, outcome):
    run, review = reviewed_run(database)
    assert review.respond(action, response_detail="ok", reviewer="@alice") is True
    row = pm.ReviewLog.get_by_id(review.id)
    assert (row.action, row.response_detail, row.reviewer) == (ReviewAction(action), "ok", "@alice")
    assert row.responded_at is not None
    assert pm.PipelineRun.get_by_id(run.id).status is outcome and run.status is outcome


def test_a_rejection_rejects_the_runs_shorts_not_yet_uploaded(database):
    run, review = reviewed_run(database)
    review.respond("reject", response_detail="off-topic")
    assert {s.status for s in pm.Short.select()} == {ShortStatus.rejected}
    assert pm.PipelineRun.get_by_id(run.id).completed_at is not None


def test_a_held_review_stays_in_review_and_may_be_answered_later(database):
    run, review = reviewed_run(database, message_id="chat:5")
    assert pm.ReviewLog.answer("chat:5", "hold", reviewer="@alice")[1] is True
    assert pm.ReviewLog.answer("chat:5", "hold")[1] is False  # a second tap
    # held: still waiting for a verdict
    assert [r.id for r in pm.ReviewLog.unanswered()] == [review.id]
    assert pm.PipelineRun.get_by_id(run.id).status is RunStatus.review
    assert pm.ReviewLog.answer("chat:5", "approve", reviewer="@bob")[1] is True
    row = pm.ReviewLog.get_by_id(review.id)
    assert (row.action, row.reviewer) == (ReviewAction.approve, "@bob")
    assert pm.PipelineRun.get_by_id(run.id).status is RunStatus.approved
    assert list(pm.ReviewLog.unanswered()) == []


def test_skip_drops_the_ranks_named_rejects_their_videos_and_renders_again(database):
    run, review = reviewed_run(database, clips=5)
    assert review.respond("skip", response_detail="skip 2,4", reviewer="@alice") is True
    clips = list(pm.Clip.select().order_by(pm.Clip.id))
    assert [(c.discovered_video.video_id, c.rank_position, c.dropped_at is not None)
            for c in clips] == [
        ("v1", 1, False), ("v2", 2, True), ("v3", 2, False), ("v4", 4, True), ("v5", 3, False)]
    assert {v.video_id: v.processed for v in pm.DiscoveredVideo.select()} == {
        "v1": 0, "v2": Processed.rejected, "v3": 0, "v4": Processed.rejected, "v5": 0}
    back = pm.PipelineRun.get_by_id(run.id)
    assert (back.status, back.current_stage, back.worker) == (RunStatus.pending, "render", None)
    assert {s.status for s in pm.Short.select()} == {ShortStatus.rejected}  # rendered again
    again = pm.PipelineRun.claim_next("w2")
    assert again.id == run.id and again.current_stage == "render"
    assert [c.rank_position for c in again.clips.where(pm.Clip.dropped_at.is_null())
            .order_by(pm.Clip.rank_position)] == [1, 2, 3]


def test_redo_script_sends_the_run_back_to_the_script_stage_with_its_retries_afresh(database):
    run, review = reviewed_run(database, clips=2)
    # it failed twice on the way
    pm.PipelineRun.update(retry_count=2).where(pm.PipelineRun.id == run.id).execute()
    pm.Script.create(pipeline_run=run, full_script_json={"opening": "old"}, total_char_count=3,
                     estimated_duration_seconds=1, llm_model_used="m")
    review.respond("redo_script", reviewer="@alice")
    back = pm.PipelineRun.get_by_id(run.id)
    assert (back.status, back.current_stage, back.retry_count) == (RunStatus.pending, "script", 0)
    assert (pm.Script.select().count() == 1
            and pm.Clip.select().where(pm.Clip.dropped_at.is_null()).count() == 2)


@pytest.mark.parametrize("detail, message", [
    ("skip 11", "run 1 has no clip ranked 11 \\(its ranks: 1, 2, 3\\)"),
    ("skip x", "'x' in 'skip x' is not a rank"),
    ("skip", "skip needs the ranks to drop, e.g. 'skip 4,7', not 'skip'"),
    (None, "skip needs the ranks to drop"),
    ("skip 1,2,3", "'skip 1,2,3' would drop every clip of run 1; reject it instead"),
    ("skip -1", "'-1' in 'skip -1' is not a rank"),
])
def test_a_bad_skip_is_refused_naming_it_and_changes_nothing(database, detail, message):
    run, review = reviewed_run(database, clips=3)
    before = [list(m.select().dicts()) for m in (pm.Clip, pm.DiscoveredVideo, pm.PipelineRun,
                                                 pm.Short)]
    with pytest.raises(ValueError, match="ReviewLog.response_detail: " + message):
        review.respond("skip", response_detail=detail)
    assert [list(m.select().dicts()) for m in (pm.Clip, pm.DiscoveredVideo, pm.PipelineRun,
                                               pm.Short)] == before
    assert pm.ReviewLog.get_by_id(review.id).action is None and run.status is RunStatus.review


def test_a_second_different_answer_is_an_error_and_changes_nothing(database):
    run, review = reviewed_run(database)
    review.respond("approve", reviewer="@alice")
    with pytest.raises(AlreadyAnswered,
                       match="already answered approve by @alice; refusing reject"):
        pm.ReviewLog.get_by_id(review.id).respond("reject", reviewer="@bob")
    row = pm.ReviewLog.get_by_id(review.id)
    assert (row.action, row.reviewer) == (ReviewAction.approve, "@alice")
    assert pm.PipelineRun.get_by_id(run.id).status is RunStatus.approved


def test_a_second_tap_on_the_same_message_changes_nothing(database):
    run, review = reviewed_run(database, message_id="chat:77")
    first = pm.ReviewLog.answer("chat:77", "approve", reviewer="@alice")
    responded_at = pm.ReviewLog.get_by_id(review.id).responded_at
    second = pm.ReviewLog.answer("chat:77", "approve", reviewer="@alice")
    assert (first[1], second[1]) == (True, False)
    assert pm.ReviewLog.get_by_id(review.id).responded_at == responded_at
    assert pm.PipelineRun.get_by_id(run.id).status is RunStatus.approved


def test_a_skip_with_other_ranks_is_a_different_answer(database):
    run, review = reviewed_run(database, message_id="chat:8", clips=4)
    pm.ReviewLog.answer("chat:8", "skip", response_detail="skip 4")
    # a second tap
    assert pm.ReviewLog.answer("chat:8", "skip", response_detail="skip 4")[1] is False
    assert pm.ReviewLog.answer("chat:8", "skip")[1] is False  # the button again, without words
    with pytest.raises(AlreadyAnswered,
                       match="already answered skip by someone; refusing skip \\('skip 2'\\)"):
        pm.ReviewLog.answer("chat:8", "skip", response_detail="skip 2")
    assert pm.ReviewLog.get_by_id(review.id).response_detail == "skip 4"
    assert pm.Clip.select().where(pm.Clip.dropped_at.is_null(False)).count() == 1


@pytest.mark.parametrize("message_id", [None, "", "  ", 5])
def test_answer_without_a_message_id_answers_nothing(database, message_id):
    run, review = reviewed_run(database, message_id=None)  # a review asked without a chat message
    with pytest.raises(ValueError, match=("ReviewLog.message_id: answer needs the id of the "
                                          "tapped chat message")):
        pm.ReviewLog.answer(message_id, "approve")
    assert pm.ReviewLog.get_by_id(review.id).action is None
    assert pm.PipelineRun.get_by_id(run.id).status is RunStatus.review


def test_respond_refuses_a_missing_action_or_a_run_id(database):
    run, review = reviewed_run(database)
    with pytest.raises(ValueError, match="ReviewLog.action: respond needs the answer"):
        review.respond(None)
    with pytest.raises(ValueError,
                       match="ReviewLog.action: 'edit' is not one of: approve, reject, hold, skip, "
                             "redo_script"):
        review.respond("edit")
    with pytest.raises(TypeError, match="ReviewLog.respond: run must be a PipelineRun"):
        review.respond("approve", run=run.id)
    assert pm.ReviewLog.get_by_id(review.id).action is None


def test_answer_to_an_unknown_message(database):
    with pytest.raises(pm.ReviewLog.DoesNotExist, match="chat:404"):
        pm.ReviewLog.answer("chat:404", "approve")


def test_an_answer_to_a_run_no_longer_in_review_is_refused_and_writes_nothing(database):
    run, review = reviewed_run(database)
    pm.PipelineRun.get_by_id(run.id).advance("failed", reason="operator cancelled")
    with pytest.raises(InvalidTransition,
                       match=f"run {run.id} cannot go from failed to approved: review "
                             f"{review.id} is of a run no longer in review"):
        review.respond("approve")
    assert pm.ReviewLog.get_by_id(review.id).action is None


def test_hold_stale_auto_holds_only_old_unanswered_reviews(database):
    for n in range(3):
        new_run(n)
    runs, reviews = [], []
    # each sent to review before the next is claimed: never over the cap of 2 running
    for _ in range(3):
        runs.append(pm.PipelineRun.claim_next("w"))
        reviews.append(pm.ReviewLog.request(runs[-1]))
    old, answered, fresh = reviews
    two_hours_ago = pm.utcnow() - timedelta(hours=2)
    (pm.ReviewLog.update(sent_at=two_hours_ago)
     .where(pm.ReviewLog.id.in_([old.id, answered.id])).execute())
    answered.respond("approve")

    assert pm.ReviewLog.hold_stale(timedelta(hours=1)) == 1
    assert pm.ReviewLog.hold_stale(timedelta(hours=1)) == 0  # already held
    held = {r.id: (r.auto_held, r.action) for r in pm.ReviewLog.select()}
    assert held == {old.id: (True, ReviewAction.hold), answered.id: (False, ReviewAction.approve),
                    fresh.id: (False, None)}
    assert [r.id for r in pm.ReviewLog.unanswered()] == [old.id, fresh.id]
    # held: neither uploaded nor dropped
    assert pm.PipelineRun.get_by_id(runs[0].id).status is RunStatus.review
    pm.ReviewLog.get_by_id(old.id).respond("approve")  # an auto-held review may still be answered
    assert pm.PipelineRun.get_by_id(runs[0].id).status is RunStatus.approved


# --- uploads ------------------------------------------------------------------------------------


def rendered_short(database):
    """A short of an approved run, ready to upload."""
    run, review = reviewed_run(database)
    review.respond("approve")
    return pm.Short.get(pm.Short.pipeline_run == run.id)


def test_upload_once(database):
    short = rendered_short(database)
    short.start_upload()
    assert short.mark_uploaded("yt-abc") is True
    row = pm.Short.get_by_id(short.id)
    assert (row.status, row.youtube_video_id, row.youtube_url) == (
        ShortStatus.uploaded, "yt-abc", "https://youtube.com/shorts/yt-abc")
    assert row.uploaded_at is not None
    assert short.mark_uploaded("yt-abc") is False  # a retried write of the same upload
    with pytest.raises(AlreadyUploaded, match="already on YouTube as yt-abc"):
        pm.Short.get_by_id(short.id).start_upload()
    with pytest.raises(AlreadyUploaded, match="refusing to record yt-other"):
        pm.Short.get_by_id(short.id).mark_uploaded("yt-other")
    assert pm.Short.get_by_id(short.id).youtube_video_id == "yt-abc"


def test_the_long_form_video_is_uploaded_once_too(database):
    run, review = reviewed_run(database)
    review.respond("approve")
    run.start_upload()
    with pytest.raises(UploadInDoubt,
                       match=f"run {run.id} began uploading at .* recorded no video id"):
        pm.PipelineRun.get_by_id(run.id).start_upload()
    run.abandon_upload()
    assert (pm.PipelineRun.get_by_id(run.id).upload_started_at is None
            and run.upload_started_at is None)
    run.start_upload()
    assert run.mark_uploaded("yt-long", youtube_url="https://youtu.be/yt-long") is True
    with pytest.raises(AlreadyUploaded, match=(f"run {run.id} is already on YouTube as yt-long; "
                                               "refusing to record x")):
        run.mark_uploaded("x")
    row = pm.PipelineRun.get_by_id(run.id)
    assert (row.status, row.youtube_url, row.completed_at is not None) == (
        RunStatus.uploaded, "https://youtu.be/yt-long", True)


def test_a_short_of_a_run_not_approved_is_not_uploaded(database):
    run, review = reviewed_run(database)
    short = pm.Short.get()
    for upload in (short.start_upload, lambda: short.mark_uploaded("yt-early")):
        with pytest.raises(InvalidTransition,
                           match=f"its run {run.id} is review: only an approved run's shorts"):
            upload()
    row = pm.Short.get_by_id(short.id)
    assert (row.status, row.youtube_video_id, row.upload_started_at) == (ShortStatus.review, None,
                                                                         None)


def test_a_crash_between_upload_and_write_is_seen_by_the_retry(database):
    short = rendered_short(database)
    short.start_upload()
    # ... the upload reaches YouTube, then the process dies before mark_uploaded ...
    retry = pm.Short.get_by_id(short.id)
    with pytest.raises(UploadInDoubt, match="check the channel"):
        retry.start_upload()
    retry.mark_uploaded("found-on-channel")  # the operator found it
    assert pm.Short.get_by_id(short.id).youtube_video_id == "found-on-channel"


def test_abandoned_upload_can_start_again(database):
    short = rendered_short(database)
    short.start_upload()
    short.abandon_upload()  # e.g. HTTP 400 before any bytes were accepted
    pm.Short.get_by_id(short.id).start_upload()
    assert pm.Short.get_by_id(short.id).upload_started_at is not None


def test_abandoning_an_upload_that_was_recorded_leaves_the_object_as_the_row(database):
    short = rendered_short(database)
    short.start_upload()
    pm.Short.get_by_id(short.id).mark_uploaded("yt-1")  # another process recorded it
    started = short.upload_started_at
    short.abandon_upload()  # too late: the upload is recorded
    row = pm.Short.get_by_id(short.id)
    assert ((row.youtube_video_id, row.upload_started_at) == ("yt-1", started)
            and short.upload_started_at == started)


def test_two_uploaders_cannot_both_claim(database):
    short = rendered_short(database)
    a, b = pm.Short.get_by_id(short.id), pm.Short.get_by_id(short.id)
    a.start_upload()
    with pytest.raises(UploadInDoubt):
        b.start_upload()


# --- analytics ----------------------------------------------------------------------------------


def test_record_and_refuse_unknown_metrics(database):
    snap = pm.Analytics.record("v1", view_count=10, like_count=1)
    assert pm.Analytics.get_by_id(snap.id).view_count == 10
    with pytest.raises(TypeError, match="no settable field views"):
        pm.Analytics.record("v1", views=10)
    assert pm.Analytics.select().count() == 1


def test_latest_is_the_newest_snapshot_of_each_video_most_viewed_first(database):
    t0 = aware(2026, 11, 1)
    for hour in range(5):
        pm.Analytics.record("a", measured_at=t0 + timedelta(hours=hour), view_count=100 * hour)
        pm.Analytics.record("b", measured_at=t0 + timedelta(hours=hour, minutes=1),
                            view_count=1000 + hour)
    pm.Analytics.record("c", measured_at=t0, view_count=None, like_count=3)  # views not reported
    latest = pm.Analytics.latest()
    assert [(a.youtube_video_id, a.view_count) for a in latest] == [("b", 1004), ("a", 400), ("c",
                                                                                              None)]
    assert latest[0].measured_at == t0 + timedelta(hours=4, minutes=1)
    assert [a.youtube_video_id for a in pm.Analytics.top(2)] == ["b", "a"]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_top_refuses_a_count_that_is_not_a_whole_number(database, bad):
    pm.Analytics.record("a", view_count=1)
    with pytest.raises(ValueError, match="Analytics.top: n must be a whole number"):
        pm.Analytics.top(bad)
    assert pm.Analytics.top(0) == [] and len(pm.Analytics.top(5)) == 1


def test_latest_on_no_data(database):
    assert pm.Analytics.latest() == []


def test_growth_between_the_first_snapshot_since_and_the_latest(database):
    t0 = aware(2026, 11, 1)
    pm.Analytics.record("a", measured_at=t0, view_count=100, like_count=1,
                        estimated_revenue_usd=None)
    pm.Analytics.record("a", measured_at=t0 + timedelta(days=1), view_count=150, like_count=5,
                        estimated_revenue_usd=0.5)
    pm.Analytics.record("a", measured_at=t0 + timedelta(days=2), view_count=400, like_count=9,
                        estimated_revenue_usd=1.25)
    pm.Analytics.record("other", measured_at=t0 + timedelta(days=3), view_count=10**6)

    change = pm.Analytics.growth("a", since=t0 + timedelta(hours=1))

    assert change["since"] == t0 + timedelta(days=1) and change["until"] == t0 + timedelta(days=2)
    assert (change["view_count"], change["like_count"], change["estimated_revenue_usd"]) == (250, 4,
                                                                                             0.75)
    assert change["comment_count"] is None  # not reported: no made-up zero
    assert set(change) == {"since", "until", *pm.Analytics.COUNTERS}
    assert pm.Analytics.growth("a", since=t0 + timedelta(days=5)) is None


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [5, 2.5, True, False, "text", None, [1, "two"], {"a": {"b": [1]}},
                                   1e16, 1.5e300, 2 ** 70, -0.0, "5", {"n": 1e16}])
def test_config_values_keep_their_type(database, value):
    pm.ConfigOverride.set("k", value)
    got = pm.ConfigOverride.value_of("k")
    assert got == value and type(got) is type(value)


def test_config_set_replaces_and_records_who(database):
    pm.ConfigOverride.set("render.fps", 30)
    pm.ConfigOverride.set("render.fps", 60, updated_by="alice")
    row = pm.ConfigOverride.get(pm.ConfigOverride.key == "render.fps")  # peewee's get still works
    assert (row.value, row.updated_by) == (60, "alice")
    assert pm.ConfigOverride.select().count() == 1
    assert pm.ConfigOverride.get_by_id("render.fps").value == 60


def test_config_get_default_and_as_dict(database):
    assert pm.ConfigOverride.value_of("missing") is None
    assert pm.ConfigOverride.value_of("missing", 7) == 7
    assert pm.ConfigOverride.value_of("missing", default=[]) == []
    pm.ConfigOverride.set("b", 2)
    pm.ConfigOverride.set("a", {"x": 1})
    assert pm.ConfigOverride.as_dict() == {"a": {"x": 1}, "b": 2}


def test_config_refuses_what_json_cannot_hold(database):
    pm.ConfigOverride.set("k", 1)
    for bad in ({1, 2}, object(), float("nan"), b"bytes"):
        with pytest.raises(ValueError, match="ConfigOverride.value"):
            pm.ConfigOverride.set("k", bad)
    assert pm.ConfigOverride.value_of("k") == 1


# --- errors -------------------------------------------------------------------------------------


def boom():
    raise RuntimeError("render failed: out of disk")


def test_record_fills_type_message_and_traceback(run):
    try:
        boom()
    except RuntimeError as exc:
        error = pm.ErrorLog.record(exc, "render", pipeline_run=run)
    row = pm.ErrorLog.get_by_id(error.id)
    assert (row.error_type, row.error_message, row.module) == ("RuntimeError",
                                                               "render failed: out of disk",
                                                               "render")
    assert "in boom" in row.stack_trace and row.stack_trace.startswith("Traceback")
    assert row.pipeline_run_id == run.id and row.resolved is False


def test_capture_records_after_the_block_rolled_back_and_reraises(run):
    with pytest.raises(RuntimeError):
        with pm.ErrorLog.capture("render", pipeline_run=run):
            with pm.db.atomic():
                make_clip(run, make_video("src"))
                boom()
    assert pm.Clip.select().count() == 0  # the block's work rolled back
    (error,) = pm.ErrorLog.select()
    assert (error.module, error.error_type, error.pipeline_run_id) == ("render", "RuntimeError",
                                                                       run.id)


def test_capture_as_a_decorator(database):
    @pm.ErrorLog.capture("uploader")
    def upload():
        raise ValueError("quota")

    with pytest.raises(ValueError, match="quota"):
        upload()
    assert pm.ErrorLog.get().error_message == "quota"


def test_capture_lets_a_clean_block_pass(database):
    with pm.ErrorLog.capture("x"):
        pass
    assert pm.ErrorLog.select().count() == 0


def test_record_inside_a_rolled_back_transaction_is_lost_with_it(database):
    with pytest.raises(RuntimeError):
        with pm.db.atomic():
            pm.ErrorLog.record(RuntimeError("inside"), "m")
            raise RuntimeError("rollback")
    assert pm.ErrorLog.select().count() == 0


def test_capture_never_hides_the_original_error(database, monkeypatch):
    def broken(*args, **kwargs):
        raise peewee.OperationalError("disk I/O error")

    monkeypatch.setattr(pm.ErrorLog, "record", broken)
    with pytest.raises(RuntimeError, match="out of disk"):
        with pm.ErrorLog.capture("render"):
            boom()


def test_unresolved_and_resolve(database):
    t0 = aware(2026, 11, 1)
    a = pm.ErrorLog.create(module="render", error_type="E", error_message="a", occurred_at=t0)
    b = pm.ErrorLog.create(module="upload", error_type="E", error_message="b",
                           occurred_at=t0 + timedelta(1))
    c = pm.ErrorLog.create(module="render", error_type="E", error_message="c",
                           occurred_at=t0 + timedelta(2))
    assert [e.id for e in pm.ErrorLog.unresolved()] == [c.id, b.id, a.id]
    assert [e.id for e in pm.ErrorLog.unresolved("render")] == [c.id, a.id]
    c.resolve()
    assert pm.ErrorLog.get_by_id(c.id).resolved is True
    assert [e.id for e in pm.ErrorLog.unresolved("render")] == [a.id]


@pytest.mark.parametrize("status", ["pending", "running", "review", "failed", "rejected"])
def test_uploads_start_only_for_an_approved_run(database, status):
    """A short, and the run's long-form video, of a run in any other status: InvalidTransition
    naming the run's status, and no upload claim or video id written."""
    run = new_run()
    short = pm.Short.create(pipeline_run=run)
    pm.PipelineRun.update(status=status).where(pm.PipelineRun.id == run.id).execute()
    run = pm.PipelineRun.get_by_id(run.id)
    for upload in (short.start_upload, lambda: short.mark_uploaded("yt-s"), run.start_upload,
                   lambda: run.mark_uploaded("yt-l")):
        with pytest.raises(InvalidTransition,
                           match=f"(its run {run.id} is {status}|run {run.id} cannot go from "
                                 f"{status} to uploaded)"):
            upload()
    stored_short = pm.Short.get_by_id(short.id)
    assert (stored_short.upload_started_at, stored_short.youtube_video_id) == (None, None)
    stored = pm.PipelineRun.get_by_id(run.id)
    assert (stored.status, stored.upload_started_at, stored.youtube_video_id) == (status, None,
                                                                                  None)
