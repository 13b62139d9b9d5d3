"""The run queue under chaos, on SQLite and PostgreSQL.

- Workers SIGKILLed and frozen past their lease, on runs scheduled per niche and cycle, never write
  under a lost lease, counted by SQL from the audit the soak's triggers keep of every write to a
  run, even when they refresh their run and write on (the refresh-then-write zombie); no run is
  claimed twice at once; no committed write is lost; no short or long-form video is uploaded twice
  by an uploader that crashes mid-upload, nor uploaded while its run was not approved; no run has
  two answered reviews of one round; one run per niche and cycle; no run has two clips of one video
  or of one rank; no video is in two runs' clips or held by a finished run; never more than the cap
  (2) running, nor more than the daily cap of uploads in 24 hours (the soak is bench/soak_queue.py:
  run it longer there).
- The soak's checks find each kind of violation, in a history made by hand (the audit's among them).
- The refresh-then-write zombie is refused each write, and the audit shows none.
- Two processes racing to upload one short, or one run's long-form video, meet only the errors
  start_upload documents.

PIPELINE_MODELS_CHAOS_SECONDS sets how long the soak's chaos lasts per backend (default 20).
"""
import datetime
import json
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path

import peewee
import pytest

import pipeline_models as pm
from conftest import make_video
from pipeline_models import Processed, RunStatus

# bench/ is a plain directory of scripts; appended, not prepended, so that its run.py shadows
# nothing.
sys.path.append(str(Path(__file__).resolve().parents[1] / "bench"))
import soak_queue  # noqa: E402
from soak_queue import Claim  # noqa: E402

CHAOS_SECONDS = float(os.environ.get("PIPELINE_MODELS_CHAOS_SECONDS", "20"))
WORKERS = 8
UPLOAD_TRIES = 1000  # per process
UPLOAD_HOLD = 0.001  # seconds an upload claim is held at most before its release

spawn = multiprocessing.get_context("spawn")


@pytest.mark.slow
def test_chaos_never_lets_a_lost_lease_write_or_a_run_be_claimed_twice(fresh_target, tmp_path):
    report = soak_queue.soak(str(fresh_target), CHAOS_SECONDS, WORKERS, tmp_path / "events")
    print(report.summary())  # shown with -s, or -rP: what happened, and how much
    assert report.violations == [], report.summary()


# --- the checks, on a history made by hand --------------------------------------------------------


class History:
    """A small soak history made through the package's API, with the events a soak's processes log
    for it."""

    def __init__(self):
        self.events = []
        # a failed run is claimable again at once
        pm.ConfigOverride.set(pm.PipelineRun.RETRY_DELAY_KEY, 0)
        self.videos = [make_video(f"gaming{i:03d}", viral_score=float(i)) for i in range(6)]

    def schedule(self, cycle):
        run = pm.PipelineRun.schedule("gaming", soak_queue.cycle_start("gaming", cycle))
        self.events.append({"e": "schedule", "niche": "gaming", "cycle": cycle, "run": run.id})
        return run

    def claim(self, worker, now=None):
        run = pm.PipelineRun.claim_next(worker, now=now)
        held = Claim(run.claim_token, run.retry_count + 1, run.reviews.count(), worker)
        self.events.append({"e": "claim", "run": run.id, "claim": str(held)})
        return run, held

    def clip(self, run, held, video, rank):
        clip = pm.Clip.create(pipeline_run=run, discovered_video=self.videos[video],
                              rank_position=rank, start_time_seconds=0, end_time_seconds=18,
                              clip_duration_seconds=18, transcript=str(held))
        # as keep_clips settles it
        pm.mark_video_processed(self.videos[video].video_id, Processed.used)
        self.events.append({"e": "clip", "run": run.id, "id": clip.id, "claim": str(held)})
        return clip

    def short(self, run, held, clip):
        short = pm.Short.create(pipeline_run=run, clip=clip, description=str(held))
        self.events.append({"e": "shorts", "run": run.id, "ids": [short.id], "claim": str(held)})
        return short

    def upload(self, kind, row):
        row.start_upload()
        video_id = f"{kind}{row.id}-yt"
        self.events.append({"e": "sent", "kind": kind, "id": row.id, "yt": video_id})
        row.mark_uploaded(video_id)
        self.events.append({"e": "recorded", "kind": kind, "id": row.id, "yt": video_id,
                            "recorded": True})


@pytest.fixture
def audited(database):
    """The test's database with the soak's audit (its table and triggers), removed afterwards: on
    PostgreSQL the database is the session's."""
    soak_queue.remove_audit(database)
    soak_queue.install_audit(database)
    yield database
    soak_queue.remove_audit(database)


@pytest.fixture
def history(audited):
    """Run 1: claimed, two clips, a short, reviewed, skip 1, claimed again, reviewed, approved,
    uploaded. Run 2: claimed, a clip, failed to retry, claimed again (attempt 2), a clip, still
    running."""
    made = History()
    one, two = made.schedule(0), made.schedule(1)
    made.first = one
    made.schedule(0)  # the scheduler firing again: the same run
    run, held = made.claim("w1")
    assert run.id == one.id
    first = made.clip(run, held, 0, 1)
    made.clip(run, held, 1, 2)
    made.short(run, held, first)
    review = pm.ReviewLog.request(run, message_id=held.token)
    made.events.append({"e": "review", "run": run.id, "claim": str(held), "review": review.id})
    pm.ReviewLog.answer(held.token, "skip", response_detail="skip 1", reviewer="soak")
    made.events.append({"e": "answer", "review": review.id, "run": run.id, "action": "skip",
                        "detail": "skip 1", "recorded": True})
    run, held = made.claim("w2")
    assert (run.id, held.key) == (one.id, (1, 1))
    made.short(run, held, made.clip(run, held, 2, 2))
    review = pm.ReviewLog.request(run, message_id=held.token)
    made.events.append({"e": "review", "run": run.id, "claim": str(held), "review": review.id})
    made.approved_by = held
    pm.ReviewLog.answer(held.token, "approve", reviewer="soak")
    made.events.append({"e": "answer", "review": review.id, "run": run.id, "action": "approve",
                        "detail": None, "recorded": True})
    made.upload("short", pm.Short.select().where(pm.Short.description == str(held)).get())
    made.upload("run", pm.PipelineRun.get_by_id(run.id))

    run, held = made.claim("w3")
    assert run.id == two.id
    made.clip(run, held, 3, 1)  # of videos of its own: a video is in one run's clips
    # a worker's write carries its claim, for the audit
    run.fail(soak_queue.stamped("boom", held.token))
    made.events.append({"e": "retry", "run": run.id, "claim": str(held), "review": None})
    made.older = held
    run, held = made.claim("w4")
    assert (run.id, held.key) == (two.id, (0, 2))
    made.clip(run, held, 4, 2)
    made.second, made.current = run, held
    return made


def _found(history, tamper=None):
    """The soak's violations of the history, after `tamper(history)` (rolled back afterwards)."""
    with pm.db.atomic() as transaction:
        if tamper is not None:
            tamper(history)
        found = soak_queue.check_all(soak_queue.Snapshot.read(), history.events)
        transaction.rollback()
    return found


def _zombie_clip(history):
    """The first claim of run 2, requeued, writes a clip after its next claim did."""
    history.clip(history.second, history.older, 5, 3)


def _claimed_twice(history):
    """Run 2 claimed a second time in its current attempt and round, under another token."""
    twice = history.current._replace(token="f" * 32, worker="w9")
    history.events.append({"e": "claim", "run": history.second.id, "claim": str(twice)})


def _lost_write(history):
    clip = history.clip(history.second, history.current, 5, 3)
    pm.Clip.delete().where(pm.Clip.id == clip.id).execute()


def _uploaded_twice(history):
    sent = next(e for e in history.events if e["e"] == "sent" and e["kind"] == "short")
    history.events.append({**sent, "yt": "a-second-upload"})


def _long_form_uploaded_twice(history):
    sent = next(e for e in history.events if e["e"] == "sent" and e["kind"] == "run")
    history.events.append({**sent, "yt": "a-second-upload"})


def _two_answered_reviews(history):
    first = pm.ReviewLog.get(pm.ReviewLog.action == "skip")
    (pm.ReviewLog.update(action="approve", response_detail=None)
     .where(pm.ReviewLog.id == first.id).execute())


def _two_runs_of_a_cycle(history):
    pm.db.execute_sql("DROP INDEX idx_pipeline_runs_niche")
    pm.PipelineRun.create(niche="gaming", cycle_start=history.second.cycle_start,
                          cycle_end=history.second.cycle_end)


def _schedule_got_another_run(history):
    history.events.append({"e": "schedule", "niche": "gaming", "cycle": 1,
                           "run": history.second.id + 100})


def _two_clips_of_a_video(history):
    # insert(), not create(): past the model's own refusal, as a second client's write would be.
    pm.Clip.insert(pipeline_run=history.second.id, discovered_video=history.videos[4].id,
                   rank_position=3, start_time_seconds=0, end_time_seconds=18,
                   clip_duration_seconds=18, transcript=str(history.current)).execute()


def _two_clips_of_a_rank(history):
    pm.db.execute_sql("DROP INDEX clips_rank_in_run")
    pm.Clip.insert(pipeline_run=history.second.id, discovered_video=history.videos[5].id,
                   rank_position=2, start_time_seconds=0, end_time_seconds=18,
                   clip_duration_seconds=18, transcript=str(history.current)).execute()


def _stale_save(history):
    """Run 2's first claim, requeued, saves the run its next claim holds (an UPDATE past the fence,
    as a package whose fence failed would write)."""
    pm.PipelineRun.update(current_stage=soak_queue.stamped("render", history.older.token)).where(
        pm.PipelineRun.id == history.second.id).execute()


def _stale_fail_of_an_uploaded_run(history):
    """The claim that asked for run 1's approved review fails the run after its upload (issue 22's
    zombie)."""
    (pm.PipelineRun.update(status="failed",
                           error_message=soak_queue.stamped("boom", history.approved_by.token))
     .where(pm.PipelineRun.id == history.first.id).execute())


def _stale_request(history):
    """Run 2's first claim asks for a review of the run its next claim holds."""
    pm.PipelineRun.update(status="review", current_stage="review").where(
        pm.PipelineRun.id == history.second.id).execute()
    pm.ReviewLog.create(pipeline_run=history.second.id, message_id=history.older.token)


def _short_upload_of_a_running_run(history):
    short = history.short(history.second, history.current,
                          pm.Clip.get(pm.Clip.transcript == str(history.current)))
    pm.Short.update(upload_started_at=pm.utcnow()).where(pm.Short.id == short.id).execute()


def _long_form_upload_of_a_running_run(history):
    pm.PipelineRun.update(upload_started_at=pm.utcnow()).where(
        pm.PipelineRun.id == history.second.id).execute()


def _answered_again_in_its_round(history):
    """Run 1 reviewed (and answered) a second time in its last round."""
    pm.ReviewLog.insert(pipeline_run=history.first.id, message_id="again", action="approve",
                        responded_at=pm.utcnow()).execute()


def _review_without_a_request(history):
    pm.ReviewLog.insert(pipeline_run=history.second.id, message_id="unasked").execute()


def _unexplained_write(history):
    """Run 1, uploaded, put back to pending: no process of the soak makes that write."""
    pm.PipelineRun.update(status="pending").where(pm.PipelineRun.id == history.first.id).execute()


def _unaudited_clip(history):
    postgres = isinstance(pm.db.obj, peewee.PostgresqlDatabase)
    pm.db.execute_sql("DROP TRIGGER soak_audit_clip_insert" + (" ON clips" if postgres else ""))
    history.clip(history.second, history.current, 5, 3)


def _video_in_two_runs(history):
    """Run 2 cuts a clip of video 0, which run 1 had a clip of."""
    history.clip(history.second, history.current, 0, 3)


def _video_held_by_a_finished_run(history):
    pm.DiscoveredVideo.update(taken_by_run=history.first.id).where(
        pm.DiscoveredVideo.id == history.videos[5].id).execute()


def _kept_clip_of_an_unused_video(history):
    video = pm.DiscoveredVideo
    video.update(processed=Processed.pending).where(video.id == history.videos[4].id).execute()


def _three_running(history):
    """Runs 1 (uploaded) and 3 put to running beside run 2, past claim_next and its cap."""
    third = history.schedule(2)
    pm.PipelineRun.update(status="running").where(
        pm.PipelineRun.id.in_([history.first.id, third.id])).execute()


def _past_the_daily_cap(history):
    """Five more shorts of run 1 began uploading now, past start_upload and its cap: seven in 24
    hours."""
    pm.Short.insert_many([dict(pipeline_run=history.first.id, description=str(history.approved_by),
                               upload_started_at=pm.utcnow())] * 5).execute()


def _a_slot_past_a_day(history):
    now = pm.utcnow()
    history.events.append({"e": "capped", "kind": "short", "id": 1, "now": now.isoformat(),
                           "next_slot": (now + datetime.timedelta(hours=25)).isoformat()})


@pytest.mark.parametrize("tamper, expected", [
    (_zombie_clip, "came after clip"),
    (_claimed_twice, "was claimed 2 times in (round, attempt) (0, 2)"),
    (_lost_write, "was committed, and is lost"),
    (_uploaded_twice, "was uploaded 2 times"),
    (_long_form_uploaded_twice, "was uploaded 2 times"),
    (_two_answered_reviews, "has 2 reviews answered approve or reject"),
    (_two_runs_of_a_cycle, "has 2 runs of the cycle starting"),
    (_schedule_got_another_run, "returned run"),
    (_two_clips_of_a_video, "clips of video"),
    (_two_clips_of_a_rank, "has 2 clips ranked 2"),
    (_stale_save, "a heartbeat or save (pipeline_runs 2) of run 2 stamped with claim"),
    (_stale_fail_of_an_uploaded_run, "made while the run was uploaded under"),
    (_stale_request, "a request (pipeline_runs 2) of run 2 stamped with claim"),
    (_zombie_clip, "a clip (clips 6) of run 2 stamped with claim"),
    (_short_upload_of_a_running_run, "while its run 2 was running: an upload of a run not "
                                     "approved"),
    (_long_form_upload_of_a_running_run,
     "an upload claim of pipeline_runs 2 while its run 2 was running"),
    (_answered_again_in_its_round, "run 1 has 2 answered reviews in round 1"),
    (_two_answered_reviews, "run 1 has 2 answered reviews in round 0"),
    (_review_without_a_request, "was inserted without its run's move to review under a claim"),
    (_unexplained_write, "an unexplained write"),
    (_unaudited_clip, "the audit has 5 clip writes, the database 6 rows"),
    (_video_in_two_runs, "video 1 is in the clips of 2 runs"),
    (_video_held_by_a_finished_run, "video 6 is held by run 1, which is uploaded"),
    (_kept_clip_of_an_unused_video, "video 5 has a kept clip (5) but is pending, not used"),
    (_three_running, "3 runs were running at once; the cap is 2"),
    (_past_the_daily_cap, "7 uploads began within 24 hours; the daily cap is 3"),
    (_a_slot_past_a_day, "was refused at"),
])
def test_the_soaks_checks_find_each_kind_of_violation(history, tamper, expected):
    assert _found(history) == []  # the history as made breaks nothing
    found = _found(history, tamper)
    assert any(expected in violation for violation in found), found


# --- the refresh-then-write zombie ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))  # the zombie tries its writes in a random order
def test_a_zombie_that_refreshes_its_run_is_refused_every_write_and_the_audit_shows_none(audited,
                                                                                         tmp_path,
                                                                                         seed):
    """Issue 22's zombie, as the soak's workers play it: A's lease is lost, B claims the run, writes
    a clip and asks for the review, which is approved; A refreshes its run (it shows approved) and
    tries save(), fail(), advance() and a review request. Each raises LeaseLost, and the audit has
    no write under a lost lease."""
    made = History()
    made.schedule(0)
    zombie, held = made.claim("A")
    later = pm.utcnow() + datetime.timedelta(minutes=5)
    assert pm.PipelineRun.requeue_stale(datetime.timedelta(minutes=1), now=later) == 1
    # the requeued run is due again at `later` (no retry delay)
    run, current = made.claim("B", now=later)
    made.clip(run, current, 0, 1)
    pm.ReviewLog.request(run, message_id=current.token).respond("approve")
    before = [list(m.select().dicts()) for m in (pm.PipelineRun, pm.Clip, pm.ReviewLog)]

    soak_queue.zombie(zombie, str(held), random.Random(seed),
                      soak_queue.EventLog(str(tmp_path / "w.jsonl")))

    events = soak_queue.read_events(tmp_path)
    assert [
        (e["e"], e.get("seen"), sorted(e.get("refused", [])),
         e.get("accepted")) for e in events] == [
        ("zombie", "approved", ["advance", "fail", "request", "save"], [])], events
    assert [list(m.select().dicts()) for m in (pm.PipelineRun, pm.Clip, pm.ReviewLog)] == before
    audit = soak_queue.Audit.read(pm.db.obj)
    assert (audit.lost, audit.zombie_writes, audit.unexplained) == ([], 0, [])
    assert pm.PipelineRun.get_by_id(run.id).status is RunStatus.approved


# --- the upload race ------------------------------------------------------------------------------


def _upload_worker(target, model_name, row_id, barrier, out):
    """Try UPLOAD_TRIES times to claim the video for upload and release it; count how each try
    ended."""
    pm.init_db(target)
    model = getattr(pm, model_name)
    result = {"uploads": 0, "in_doubt": 0, "already": 0, "errors": 0, "first_errors": []}
    barrier.wait()
    for _ in range(UPLOAD_TRIES):
        try:
            row = model.get_by_id(row_id)
            row.start_upload()
            result["uploads"] += 1
            # "Uploading" for a moment: a short's release takes no lock its run's holds, so on
            # PostgreSQL a release at once slips in before the other process (queued on the run's
            # lock) reads the short, and a loaded machine's two processes would take turns without
            # ever meeting the other's claim.
            time.sleep(random.uniform(0, UPLOAD_HOLD))
            row.abandon_upload()
            # And a moment before the next try: released and at once claimed again, on SQLite the
            # other process (waiting in its busy handler) may never find the video free, and never
            # claim it.
            time.sleep(random.uniform(0, UPLOAD_HOLD))
        except pm.UploadInDoubt:  # the other process holds the claim right now
            result["in_doubt"] += 1
        except pm.AlreadyUploaded:
            result["already"] += 1
        except Exception as exc:  # anything else fails the test
            result["errors"] += 1
            if len(result["first_errors"]) < 10:
                result["first_errors"].append(f"{type(exc).__name__}: {exc}")
    with open(out, "w") as fh:
        json.dump(result, fh)


def _approved_run_with_a_short():
    """A run taken through the queue to approved (its uploads may start), with one short."""
    pm.PipelineRun.schedule("gaming", datetime.datetime(2026, 1, 1, 0, 30,
                                                        tzinfo=datetime.timezone.utc))
    run = pm.PipelineRun.claim_next("worker")
    short = pm.Short.create(pipeline_run=run)
    pm.ReviewLog.request(run).respond("approve")
    return run, short


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["Short", "PipelineRun"])
def test_two_processes_racing_to_upload_one_video_meet_only_the_documented_errors(fresh_target,
                                                                                  tmp_path,
                                                                                   model_name):
    pm.init_db(fresh_target)
    run, short = _approved_run_with_a_short()
    row_id = short.id if model_name == "Short" else run.id  # a short, or the run's long-form video
    pm.db.obj.close()
    pm.db.initialize(None)

    barrier = spawn.Barrier(2)
    outs = [str(tmp_path / f"upload{n}.json") for n in range(2)]
    procs = [spawn.Process(target=_upload_worker, args=(str(fresh_target), model_name, row_id,
                                                        barrier, out))
             for out in outs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0, f"upload worker exited {proc.exitcode}"
    results = [json.loads(Path(out).read_text()) for out in outs]
    print("upload race:", results)

    assert [(r["errors"], r["first_errors"]) for r in results] == [(0, [])] * 2
    assert [r["uploads"] + r["in_doubt"] + r["already"] for r in results] == [UPLOAD_TRIES] * 2
    assert all(r["already"] == 0 for r in results)  # nobody recorded a video id
    # the race really ran
    assert all(r["in_doubt"] > 0 and r["uploads"] > 0 for r in results), results
    pm.init_db(fresh_target)
    row = getattr(pm, model_name).get_by_id(row_id)
    assert (row.upload_started_at, row.youtube_video_id) == (None, None)  # every claim was released
    assert pm.PipelineRun.get_by_id(run.id).status is pm.RunStatus.approved  # still to be uploaded
