"""The compilation cycle's operations, one process: candidates taken once and clips kept, the
concurrency cap and paused channels, runtime config over the pipeline's YAML, reminders, auto-hold
and forced uploads, and the daily upload cap. (Many processes at once:
tests/test_cycle_concurrency.py.)"""
import datetime

import peewee
import pytest

import pipeline_models as pm
from pipeline_models import Processed, ReviewAction, RunStatus, ShortStatus
from tests.conftest import make_run, make_video

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)
HOUR = datetime.timedelta(hours=1)


def candidates(n, niche="gaming", first=0):
    """`n` pending videos of `niche`, scored n..1 (the first the best)."""
    return [make_video(f"{niche}{first + i:03d}", niche=niche, viral_score=float(n - i))
            for i in range(n)]


def claimed(niche="gaming", cycle=0):
    make_run(niche, cycle)
    return pm.PipelineRun.claim_next("w1", niche=niche)


def cut(videos):
    """One clip of each video, best first, as keep_clips takes them."""
    return [dict(discovered_video=v, start_time_seconds=5.0, end_time_seconds=25.0,
                 clip_duration_seconds=20.0)
            for v in videos]


def processed(niche="gaming"):
    return {v.video_id: (int(v.processed), v.taken_by_run) for v in
            pm.DiscoveredVideo.select().where(pm.DiscoveredVideo.niche == niche).order_by(
                pm.DiscoveredVideo.id)}


# --- candidates taken once, clips kept ------------------------------------------------------------

def test_a_run_takes_its_niches_best_pending_candidates_and_no_other_run_gets_them(database):
    videos = candidates(20)
    make_video("sports1", niche="sports", viral_score=99.0)
    pm.mark_video_processed("gaming000", 1)  # used already: not a candidate
    first = claimed()
    taken = first.take_candidates()
    # 15 by default, best first
    assert [v.video_id for v in taken] == [v.video_id for v in videos[1:16]]
    assert all(v.taken_by_run == first.id for v in taken)
    assert [v.video_id for v in pm.get_pending_videos("gaming")] == ["gaming016", "gaming017",
                                                                     "gaming018", "gaming019"]
    second = claimed(cycle=1)
    assert [v.video_id for v in second.take_candidates(10)] == ["gaming016", "gaming017",
                                                                "gaming018", "gaming019"]


def test_a_retried_attempt_gets_its_reservation_back_topped_up(database):
    candidates(5)
    run = claimed()
    assert [v.video_id for v in run.take_candidates(3)] == ["gaming000", "gaming001", "gaming002"]
    run.fail("download failed", now=NOW)
    again = pm.PipelineRun.claim_next("w2", now=NOW + HOUR)
    assert again.id == run.id
    assert [v.video_id for v in again.take_candidates(4)] == ["gaming000", "gaming001", "gaming002",
                                                              "gaming003"]


def test_the_candidate_limit_is_the_channels_config(database):
    candidates(12)
    pm.ConfigOverride.set("channels.gaming.discovery.max_candidates", 12)
    assert len(claimed().take_candidates()) == 12
    with pytest.raises(ValueError,
                       match="ConfigOverride 'channels.sports.discovery.max_candidates' must be a "
                             "whole number from 1 to 1000, not 0"):
        pm.ConfigOverride.set("channels.sports.discovery.max_candidates", 0)
    with pytest.raises(ValueError,
                       match="PipelineRun.take_candidates: limit must be a whole number from 1 to "
                             "1000, not 'many'"):
        claimed(cycle=1).take_candidates("many")


def test_kept_clips_are_ranked_and_the_videos_settle(database):
    videos = candidates(12)
    run = claimed()
    taken = run.take_candidates(12)
    # Two downloads failed: ten clips cut; the top ten are kept, best first.
    kept = run.keep_clips(cut(taken[:10]))
    assert [(c.rank_position, c.discovered_video_id) for c in kept] == [(i + 1, v.id) for i,
                                                                        v in enumerate(videos[:10])]
    states = processed()
    assert [states[v.video_id] for v in videos[:10]] == [(1, run.id)] * 10  # used, and by which run
    assert [states[v.video_id] for v in videos[10:]] == [(0, None)] * 2  # free for the next run
    assert [v.video_id for v in pm.get_pending_videos("gaming")] == ["gaming010", "gaming011"]


def test_only_the_top_max_clips_are_kept_and_the_rest_may_be_skipped(database):
    candidates(13)
    run = claimed()
    taken = run.take_candidates(13)
    kept = run.keep_clips(cut(taken[:12]), others=Processed.skipped, max_clips=9)
    assert [c.rank_position for c in kept] == list(range(1, 10))
    assert sorted(state for state, _ in processed().values()) == [1] * 9 + [2] * 4
    assert list(pm.get_pending_videos("gaming")) == []


def test_too_few_clips_is_an_error_naming_the_run_and_the_count_and_changes_nothing(database):
    candidates(10)
    run = claimed()
    taken = run.take_candidates(10)
    before = processed()
    with pytest.raises(ValueError,
                       match=f"PipelineRun.keep_clips: run {run.id} has 7 clips; it needs at least "
                             "8 "
                             r"\(channels.gaming.video.min_clips\)"):
        run.keep_clips(cut(taken[:7]))
    assert processed() == before and pm.Clip.select().count() == 0
    pm.ConfigOverride.set("channels.gaming.video.min_clips", 7)
    assert len(run.keep_clips(cut(taken[:7]))) == 7


@pytest.mark.parametrize("bad, message", [
    (lambda taken, other: cut([other] + taken[:8]),
     "Clip.discovered_video: video {other} is not a candidate run"),
    (lambda taken, other: cut([taken[0]] + taken[:8]),
     "Clip.discovered_video: video {first} has two clips"),
    (lambda taken, other: [dict(c, rank_position=1) for c in cut(taken[:8])],
     "Clip.rank_position: keep_clips sets"),
    (lambda taken, other: cut(taken[:7]) + [dict(cut(taken[7:8])[0], clip_duration_seconds=-1)],
     "Clip.clip_duration_seconds"),
])
def test_a_bad_clip_is_refused_naming_it_and_changes_nothing(database, bad, message):
    candidates(10)
    other = make_video("elsewhere", viral_score=0.0)
    run = claimed()
    taken = run.take_candidates(9)
    before = processed()
    with pytest.raises((ValueError, peewee.IntegrityError),
                       match=message.format(other=other.id, first=taken[0].id)):
        run.keep_clips(bad(taken, other))
    assert processed() == before and pm.Clip.select().count() == 0


def test_a_run_that_kept_its_clips_takes_and_keeps_no_more(database):
    candidates(10)
    run = claimed()
    taken = run.take_candidates(10)
    run.keep_clips(cut(taken[:8]))
    for again in (lambda: run.take_candidates(), lambda: run.keep_clips(cut(taken[:8]))):
        with pytest.raises(ValueError, match=f"run {run.id} keeps 8 clips already"):
            again()


def test_a_lost_lease_takes_and_keeps_nothing(database):
    candidates(10)
    run = claimed()
    pm.PipelineRun.requeue_stale(datetime.timedelta(seconds=1), now=pm.utcnow() + HOUR)
    before = processed()
    for write in (lambda: run.take_candidates(),
                  lambda: run.keep_clips(cut(pm.DiscoveredVideo.select()[:8]))):
        with pytest.raises(pm.LeaseLost):
            write()
    assert processed() == before


def test_a_run_finished_without_keeping_frees_its_candidates(database):
    candidates(4)
    run = claimed()
    run.take_candidates(4)
    run.fail("no video downloadable", retry=False)
    assert set(processed().values()) == {(0, None)}
    assert len(pm.get_pending_videos("gaming")) == 4


# --- the concurrency cap and paused channels ------------------------------------------------------

def test_claim_next_never_lets_more_than_the_cap_run(database):
    for cycle in range(4):
        make_run(cycle=cycle)
    first, second = pm.PipelineRun.claim_next("a"), pm.PipelineRun.claim_next("b")
    # the earliest cycles first
    assert second.cycle_start - first.cycle_start == datetime.timedelta(hours=6)
    # two run already: the pipeline's max_concurrent_pipelines
    assert pm.PipelineRun.claim_next("c") is None
    first.advance("failed", reason="boom")
    assert pm.PipelineRun.claim_next("c") is not None
    pm.ConfigOverride.set("scheduler.max_concurrent_pipelines", 3)
    assert pm.PipelineRun.claim_next("d") is not None
    assert pm.PipelineRun.select().where(pm.PipelineRun.status == RunStatus.running).count() == 3
    with pytest.raises(ValueError,
                       match="ConfigOverride 'scheduler.max_concurrent_pipelines' must be a whole "
                             "number"):
        pm.ConfigOverride.set("scheduler.max_concurrent_pipelines", -1)


def test_a_paused_niche_is_not_claimed_until_resumed(database):
    gaming, sports = make_run("gaming"), make_run("sports", cycle=1)
    pm.PipelineRun.pause("gaming", updated_by="@alice")
    assert pm.PipelineRun.paused_niches() == {"gaming"}
    assert pm.ConfigOverride.value_of("channels.gaming.paused") is True
    assert pm.PipelineRun.claim_next("w").id == sports.id
    assert pm.PipelineRun.claim_next("w") is None
    pm.PipelineRun.resume("gaming")
    assert pm.PipelineRun.paused_niches() == set()
    assert pm.PipelineRun.claim_next("w").id == gaming.id
    for bad in ("", "a.b"):
        with pytest.raises(ValueError, match="PipelineRun.niche: pause needs"):
            pm.PipelineRun.pause(bad)
    with pytest.raises(ValueError,
                       match="ConfigOverride 'channels.gaming.paused' must be true or false, not "
                             "'yes'"):
        pm.ConfigOverride.set("channels.gaming.paused", "yes")


# --- runtime config over the pipeline's YAML ------------------------------------------------------

YAML = {"scheduler": {"max_concurrent_pipelines": 2},
        "channels": {"gaming": {"video": {"min_clips": 8, "max_clips": 10}, "name": "Gaming"}},
        "youtube": {"max_uploads_per_day": 20}}


def test_overlay_lays_dotted_overrides_over_the_yaml_and_returns_a_new_dict(database):
    pm.ConfigOverride.set("channels.gaming.video.max_clips", 9)
    pm.ConfigOverride.set("channels.sports.paused", True)
    pm.ConfigOverride.set("telegram.quiet_hours", ["23:00", "07:00"])
    pm.ConfigOverride.set("youtube.max_uploads_per_day", None)  # null: the value below stands
    merged = pm.ConfigOverride.overlay(YAML)
    assert merged == {"scheduler": {"max_concurrent_pipelines": 2},
                      "channels": {"gaming": {"video": {"min_clips": 8, "max_clips": 9},
                                              "name": "Gaming"},
                                   "sports": {"paused": True}},
                      "youtube": {"max_uploads_per_day": 20},
                      "telegram": {"quiet_hours": ["23:00", "07:00"]}}
    assert (YAML["channels"]["gaming"]["video"]["max_clips"] == 10
            and "sports" not in YAML["channels"])


@pytest.mark.parametrize("key, value, message", [
    ("channels.gaming.name.short", "G",
     "'channels.gaming.name.short' crosses 'channels.gaming.name', which is "
     "'Gaming', not a section"),
    ("channels.gaming", 5, "'channels.gaming' would replace the section 'channels.gaming' with 5"),
])
def test_an_override_that_does_not_fit_the_yaml_is_an_error_naming_the_key(database, key, value,
                                                                           message):
    pm.ConfigOverride.set(key, value)
    with pytest.raises(ValueError, match="ConfigOverride.key: " + message):
        pm.ConfigOverride.overlay(YAML)


def test_a_key_with_an_empty_part_is_refused(database):
    for key in ("a..b", ".a", "a."):
        with pytest.raises(ValueError, match="has an empty part"):
            pm.ConfigOverride.set(key, 1)
    assert pm.ConfigOverride.select().count() == 0


def test_the_packages_own_keys_are_read_through_the_same_names(database):
    pm.ConfigOverride.set("channels.gaming.video.max_clips", 9)
    merged = pm.ConfigOverride.overlay(YAML)
    assert pm.ConfigOverride.setting("channels.gaming.video.max_clips", 10) == 9 == \
        merged["channels"]["gaming"]["video"]["max_clips"]
    assert pm.ConfigOverride.setting("youtube.max_uploads_per_day", 20) == 20
    # A bad value written past set() (straight into the table) is refused when read, naming the key.
    pm.ConfigOverride.insert(key="scheduler.max_concurrent_pipelines", value="two").execute()
    with pytest.raises(ValueError,
                       match="'scheduler.max_concurrent_pipelines' must be a whole number"):
        pm.PipelineRun.claim_next("w")


# --- reminders, auto-hold, forced uploads ---------------------------------------------------------

def reviewed(cycle=0, sent_at=NOW, message_id=None):
    run = claimed(cycle=cycle)
    review = pm.ReviewLog.request(run, message_id=message_id)
    pm.ReviewLog.update(sent_at=sent_at).where(pm.ReviewLog.id == review.id).execute()
    return run, pm.ReviewLog.get_by_id(review.id)


def test_each_review_is_reminded_once_after_two_hours(database):
    pm.ConfigOverride.set("scheduler.max_concurrent_pipelines", 10)
    _, old = reviewed(0, NOW - 3 * HOUR)
    _, young = reviewed(1, NOW - HOUR)
    _, answered = reviewed(2, NOW - 3 * HOUR)
    answered.respond("approve")
    assert [r.id for r in pm.ReviewLog.due_reminders(now=NOW)] == [old.id]
    assert old.mark_reminded(now=NOW) is True and old.reminded_at == NOW
    # a second janitor: nothing to send
    assert pm.ReviewLog.get_by_id(old.id).mark_reminded(now=NOW) is False
    assert list(pm.ReviewLog.due_reminders(now=NOW)) == []
    assert [r.id for r in pm.ReviewLog.due_reminders(now=NOW + 2 * HOUR)] == [young.id]
    assert answered.mark_reminded(now=NOW) is False
    pm.ConfigOverride.set("review.reminder_hours", 0.5)
    assert [r.id for r in pm.ReviewLog.due_reminders(now=NOW)] == [young.id]


def test_unanswered_reviews_are_auto_held_after_four_hours_and_may_still_be_answered(database):
    pm.ConfigOverride.set("scheduler.max_concurrent_pipelines", 10)
    run, stale = reviewed(0, NOW - 5 * HOUR, message_id="m1")
    _, fresh = reviewed(1, NOW - 3 * HOUR)
    assert pm.ReviewLog.hold_stale(now=NOW) == 1
    assert pm.ReviewLog.hold_stale(now=NOW) == 0  # another janitor, the next minute
    row = pm.ReviewLog.get_by_id(stale.id)
    assert (row.action, row.auto_held) == (ReviewAction.hold, True)
    assert pm.ReviewLog.get_by_id(fresh.id).action is None
    # not uploaded, not discarded
    assert pm.PipelineRun.get_by_id(run.id).status is RunStatus.review
    assert pm.ReviewLog.answer("m1", "approve")[1] is True
    assert pm.PipelineRun.get_by_id(run.id).status is RunStatus.approved


def test_force_upload_approves_a_held_run(database):
    run, review = reviewed(0, NOW - 5 * HOUR)
    pm.ReviewLog.hold_stale(now=NOW)
    assert pm.ReviewLog.force_upload(run.id, reviewer="@alice").id == review.id
    row = pm.ReviewLog.get_by_id(review.id)
    assert (row.action, row.response_detail, row.reviewer) == (ReviewAction.approve, "force_upload",
                                                               "@alice")
    assert pm.PipelineRun.get_by_id(run.id).status is RunStatus.approved
    with pytest.raises(pm.InvalidTransition, match="has no held review"):
        pm.ReviewLog.force_upload(run)
    with pytest.raises(pm.PipelineRun.DoesNotExist, match="no run has the id 999"):
        pm.ReviewLog.force_upload(999)


def test_redo_script_makes_the_next_script_the_current_one(database):
    run, review = reviewed()
    first = pm.Script.create(pipeline_run=run, full_script_json={"v": 1}, total_char_count=1,
                             estimated_duration_seconds=1, llm_model_used="m")
    review.respond("redo_script")
    again = pm.PipelineRun.claim_next("w2")
    assert again.current_stage == "script"
    with again.fenced():
        second = pm.Script.create(pipeline_run=again, full_script_json={"v": 2}, total_char_count=1,
                                  estimated_duration_seconds=1, llm_model_used="m")
    scripts = again.scripts.order_by(pm.Script.generated_at.desc(), pm.Script.id.desc())
    assert [s.id for s in scripts] == [second.id, first.id]  # the current first, the older kept


# --- the daily upload cap -------------------------------------------------------------------------

def approved(cycle, shorts=0):
    run, review = reviewed(cycle)
    made = [pm.Short.create(pipeline_run=run) for _ in range(shorts)]
    review.respond("approve")
    return pm.PipelineRun.get_by_id(run.id), made


def test_uploads_past_the_daily_cap_are_refused_saying_when_the_next_slot_opens(database):
    pm.ConfigOverride.set("scheduler.max_concurrent_pipelines", 10)
    pm.ConfigOverride.set("youtube.max_uploads_per_day", 3)
    run, shorts = approved(0, shorts=3)
    run.start_upload(now=NOW - 23 * HOUR)
    run.mark_uploaded("long1")
    shorts[0].start_upload(now=NOW - 2 * HOUR)
    shorts[1].start_upload(now=NOW - HOUR)
    with pytest.raises(pm.UploadCapReached,
                       match=f"short {shorts[2].id}: the daily upload cap is reached \\(3 uploads "
                             "in 24 hours, youtube.max_uploads_per_day\\); the next slot opens at "
                             "2026-03-01 13:00:00 UTC") as refused:
        shorts[2].start_upload(now=NOW)
    assert refused.value.next_slot == NOW + HOUR
    assert pm.Short.get_by_id(shorts[2].id).upload_started_at is None
    shorts[2].start_upload(now=NOW + HOUR)  # the long-form upload left the window


def test_an_abandoned_upload_frees_its_slot_and_a_recorded_one_counts_when_begun_elsewhere(
        database):
    pm.ConfigOverride.set("youtube.max_uploads_per_day", 1)
    run, (short,) = approved(0, shorts=1)
    short.start_upload(now=NOW)
    with pytest.raises(pm.UploadCapReached):
        run.start_upload(now=NOW)
    short.abandon_upload()
    run.start_upload(now=NOW)
    pm.ConfigOverride.set("youtube.max_uploads_per_day", 2)
    short.mark_uploaded("s1", uploaded_at=NOW)  # uploaded by hand, recorded here: it counts
    assert pm.PipelineRun.next_upload_slot(now=NOW) == NOW + 24 * HOUR
    assert [t for t in pm.Short.uploads_since(NOW - HOUR)] == [NOW, NOW]


def test_a_cap_of_zero_stops_every_upload(database):
    pm.ConfigOverride.set("youtube.max_uploads_per_day", 0)
    run, _ = approved(0)
    with pytest.raises(pm.UploadCapReached):
        run.start_upload(now=NOW)
    assert pm.PipelineRun.get_by_id(run.id).upload_started_at is None


def test_shorts_of_a_rejected_run_never_upload(database):
    run, review = reviewed()
    short = pm.Short.create(pipeline_run=run)
    review.respond("reject")
    with pytest.raises(pm.InvalidTransition, match="only an approved run's shorts are uploaded"):
        short.start_upload()
    assert pm.Short.get_by_id(short.id).status is ShortStatus.rejected
