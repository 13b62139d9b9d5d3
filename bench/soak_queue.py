"""Chaos soak of the run queue: workers that get killed and frozen must never write under a lost
lease.

Worker processes schedule the runs of three niches, one per niche and 6-hour cycle (the scheduler
firing late or twice, from any worker, and discovering a few videos), claim them within the
concurrency cap (2), take their niche's best candidates, keep 1-3 ranked clips (the other candidates
back to pending, or skipped), write shorts inside `run.fenced()`, heartbeat, then ask for a review
or fail the run (to retry, or for good). A janitor process requeues runs whose lease expired and
answers the reviews: approve, reject, hold, skip (clips dropped, the run rendered again) or
redo_script, and taps some answers twice. An uploader process uploads the approved runs' shorts and
long-form videos to a fake channel (its event log), SIGKILLing itself now and then between the
upload claim, the upload and its record, and the next one settles the uploads left in doubt; its
clock runs a simulated day every SIM_DAY seconds, so that the daily upload cap (lowered to
UPLOAD_CAP) is reached and its slots open again. Meanwhile this driver SIGKILLs a random worker
every few hundred ms and starts a replacement, and about once a second SIGSTOPs a worker that holds
a run for longer than the lease, so that it wakes as a zombie whose writes must be refused. A worker
that gets LeaseLost (frozen past its lease, or merely slow) often carries on as a naive one would:
it refreshes its run, maybe after the run moved on, and tries save(), fail(), advance() and a review
request, each of which must raise LeaseLost and write nothing.

Every write to a run is audited by the database: triggers the soak creates (on SQLite and PostgreSQL
alike) record it in soak_audit with the claim its writer believed it held (a worker stamps its claim
token into a column it writes, see `stamped`) and the run's status and claim before the write.
Writes under a lost lease, uploads of a run not approved at the time and runs with two answered
reviews in one round are counted by SQL (see `Audit`). Afterwards the database, its audit and the
processes' logs are checked against the queue's invariants (see `check`): among them, no video in
two runs' clips nor reserved by a finished run, never more than the cap running (the audit replayed
in write order), never more than the daily cap of uploads in 24 hours.

    .venv/bin/python bench/soak_queue.py --seconds 300 --workers 16
    .venv/bin/python bench/soak_queue.py --seconds 60 --db postgresql://postgres@127.0.0.1:5432/soak

The --db database must be new and empty: every run and clip in it is checked against this soak's
logs. Without --db a new SQLite file in a temporary directory is used. Exits 0 when every invariant
held, 1 when one failed (each violation is printed). tests/test_queue_chaos.py runs the same soak
for ~20 s per backend.
"""
import argparse
import collections
import dataclasses
import datetime
import itertools
import json
import multiprocessing
import os
import random
import secrets
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import peewee

import pipeline_models as pm
from pipeline_models import Processed, ReviewAction, RunStatus, ShortStatus
from pipeline_models.db import redact

spawn = multiprocessing.get_context("spawn")

# --- the soak's settings --------------------------------------------------------------------------

# The pipeline's niches, staggered by 30 minutes; cycle k of a niche starts 6 k hours after its
# first.
NICHES = {"gaming": 30, "sports": 60, "funny": 90}  # minutes after midnight of FIRST_DAY
FIRST_DAY = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
VIDEOS_PER_NICHE = 200  # candidates seeded per niche; a kept clip uses its video up
DISCOVERED_PER_SCHEDULE = 2  # videos a scheduler's firing discovers for its niche's cycle
TAKE = (2, 5)  # candidates a run takes (take_candidates' limit)
# clips it keeps of them (keep_clips), the rest back to pending, or skipped (1 in SKIP_OTHERS)
KEEP = (1, 3)
SKIP_OTHERS = 5
MAX_RUNNING = 2  # scheduler.max_concurrent_pipelines: the pipeline's cap, set explicitly
UPLOAD_CAP = 3  # youtube.max_uploads_per_day, lowered from 20 so that a short soak meets it
SIM_DAY = 8.0  # seconds of soak per simulated day of the uploader's clock
SEED_CYCLES = 4  # cycles of each niche scheduled before the chaos, so that workers start at once
CYCLE_EVERY = 0.5  # seconds of the soak per cycle: a new cycle of every niche falls due this often
# a scheduler fires for the current cycle, or again for one it already scheduled
LATE = (0, 0, 1, 2)
# requeue_stale's older_than: the lease a heartbeat renews
LEASE = datetime.timedelta(milliseconds=300)
# queue.retry_delay_seconds: requeued runs come back within ~0.2 s, not 30 s
RETRY_DELAY_SECONDS = 0.05
# the default (3): left as it is, so the default is what is tested
MAX_ATTEMPTS = pm.PipelineRun.MAX_ATTEMPTS
MAX_ROUNDS = 3  # reviews of one run at most: skip and redo_script are answered only before the last
JANITOR_EVERY = 0.1  # seconds between requeue_stale calls
ANSWER_AFTER = datetime.timedelta(milliseconds=200)  # the janitor answers reviews open for longer
# The janitor's answers in turn, so that a short soak meets each kind; skip and redo_script send the
# run back.
ANSWERS = ("approve", "skip", "approve", "reject", "redo_script", "approve", "hold", "approve")
TAP_AGAIN = 0.25  # how often the janitor taps an answer a second time (it must change nothing)
# a worker "works" this long before each clip and before its move: inside the lease
WORK_SECONDS = (0.0, 0.08)
UPLOAD_SECONDS = (0.0, 0.02)  # between an upload's claim, the upload and its record
KILL_EVERY = (0.3, 0.9)  # seconds between SIGKILLs
# seconds between SIGSTOPs: often, as a zombie meets its run's next holder by chance
STOP_EVERY = (0.5, 1.2)
# 0.6-1 s: longer than the lease
STOP_FOR = (2 * LEASE.total_seconds(), 3.3 * LEASE.total_seconds())
# what a worker does with a run it finished, by weight
OUTCOMES = {"review": 7, "retry": 2, "fatal": 1}
# how often a worker that got LeaseLost refreshes its run and writes on, as a naive worker would
ZOMBIE = 0.7
# How long it dawdles first (half the time not at all): the run may have moved on meanwhile,
# reviewed, approved, uploaded, failed, so that the refreshed object shows every status.
ZOMBIE_WAIT = (0.0, 1.0)

# The least activity that makes a soak meaningful: fewer, and the invariants may hold vacuously.
# Low, as a loaded 2-CPU machine makes ~60 claims in 20 s; what matters most is that zombies were
# refused.
ENOUGH = {"claims": 30, "clips": 30, "reviews": 5, "retries": 1, "fatal": 1, "janitor requeues": 1,
          "schedule repeats": 1, "answers approve": 1, "answers skip or redo_script": 1,
          "uploads": 2, "videos taken again": 1, "most running at once": MAX_RUNNING,
          "uploads refused at the cap": 1, "in doubt recovered": 1, "in doubt released": 1,
          "kills": 3, "stops": 3, "LeaseLost": 1, "LeaseLost after a stall": 1,
          "LeaseLost in a fenced write": 1, "zombies": 1, "zombie writes refused": 4,
          "audited writes": 100, "audited worker writes": 30}


def cycle_start(niche: str, cycle: int) -> datetime.datetime:
    """The start of `niche`'s cycle number `cycle`."""
    return FIRST_DAY + datetime.timedelta(minutes=NICHES[niche], hours=6 * cycle)


_STAMPS = itertools.count(1)


def stamped(what: str, token: str) -> str:
    """`what` stamped with the claim token its writer believes it holds: "what#n@token", for the
    audit. The number n makes each stamp new, so that the stamped column changes at every write that
    carries it."""
    return f"{what}#{next(_STAMPS)}@{token}"


def stage_of(current_stage: Optional[str]) -> Optional[str]:
    """The stage a stamped current_stage names ("render#12@token" -> "render")."""
    return current_stage.split("#")[0] if current_stage else current_stage


# --- event logs: one JSON line per event, so a SIGKILLed process loses at most its last line ------


class EventLog:
    """Appends events to a file as JSON lines, each written (not just buffered) before the call
    returns."""

    def __init__(self, path: str) -> None:
        # line buffered: a killed process loses no finished line
        self.file = open(path, "a", buffering=1)

    def write(self, event: str, **fields) -> None:
        """Record one event of its kind (`event`) with its fields."""
        self.file.write(json.dumps({"e": event, **fields}, default=str) + "\n")

    def error(self, op: str, exc: BaseException, **fields) -> None:
        """Record an unexpected exception: any one fails the soak."""
        self.write("error", op=op, error=f"{type(exc).__name__}: {exc}",
                   trace=traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:],
                   **fields)


def read_events(directory: Path) -> List[dict]:
    """Every event in the logs of `directory`, each file in its order; a line cut short by a SIGKILL
    is skipped."""
    events = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # the last line of a killed process
    return events


class Claim(collections.namedtuple("Claim", "token attempt round worker")):
    """One claim of a run: claim_next's token, the attempt (retry_count + 1) and review round
    (reviews the run had) it was made in, the worker. A run's claims follow one another, each after
    a requeue (the next attempt) or a skip or redo_script answer (the next round, whose attempts may
    be counted afresh), so (round, attempt) names one claim, and grows from claim to claim."""

    def __str__(self) -> str:
        return ":".join(map(str, self))

    @classmethod
    def parse(cls, text: str) -> "Claim":
        """The claim written into a clip or a short: "token:attempt:round:worker"."""
        token, attempt, round_, worker = text.split(":")
        return cls(token, int(attempt), int(round_), worker)

    @property
    def key(self) -> Tuple[int, int]:
        """(round, attempt): a later claim of a run has a greater key."""
        return self.round, self.attempt


# --- the worker process ---------------------------------------------------------------------------


def worker_main(target: str, name: str, events_path: str, epoch: float, stop_at: float,
                seed: int) -> None:
    """A worker process: schedule cycles, claim runs and work on them until the wall-clock time
    `stop_at`."""
    log = EventLog(events_path)
    try:
        pm.init_db(target)
        rng = random.Random(seed)
        idle = False
        while time.time() < stop_at:
            if rng.random() < (0.3 if idle else 0.1):
                schedule_a_cycle(rng, epoch, log)
            claimed = claim(name, rng, log)
            idle = claimed is None
            if idle:
                time.sleep(0.02)
            else:
                work_on(*claimed, rng, log)
    except Exception as exc:  # init_db and the like: reported, and the soak fails
        log.error("worker", exc)


def schedule_a_cycle(rng: random.Random, epoch: float, log: EventLog) -> None:
    """The scheduler of a random niche fires for the cycle now due, or late for one already
    scheduled: it must return that cycle's run, never make a second one."""
    niche = rng.choice(list(NICHES))
    cycle = max(0, SEED_CYCLES + int((time.time() - epoch) / CYCLE_EVERY) - rng.choice(LATE))
    try:
        run = pm.PipelineRun.schedule(niche, cycle_start(niche, cycle))
        log.write("schedule", niche=niche, cycle=cycle, run=run.id)
        # the cycle's discovery: found again when it fires again
        for i in range(DISCOVERED_PER_SCHEDULE):
            pm.DiscoveredVideo.discover(f"{niche}-{cycle}-{i}",
                                        title=f"{niche} cycle {cycle} video {i}",
                                        channel_name="creator", channel_id="UCsoak", niche=niche,
                                        viral_score=rng.uniform(0, 100))
    except Exception as exc:
        log.error("schedule", exc)


def claim(name: str, rng: random.Random, log: EventLog) -> Optional[Tuple[pm.PipelineRun, Claim]]:
    """claim_next, logging the claim (before any clip of it can exist) or the error."""
    try:
        run = pm.PipelineRun.claim_next(name)
    except Exception as exc:
        log.error("claim_next", exc)
        time.sleep(0.05)  # an error that repeats must not flood the log
        return None
    if run is None:
        return None
    try:
        with run.fenced():  # while this claim holds, nobody else may ask for a review of the run
            round_ = run.reviews.count()
    except pm.LeaseLost:  # frozen right after the claim, and requeued meanwhile
        log.write("lost", run=run.id, op="claim", stalled=0)
        if rng.random() < ZOMBIE:
            zombie(run, f"{run.claim_token}:{run.retry_count + 1}:?:{name}", rng, log)
        return None
    except Exception as exc:
        log.error("claim", exc, run=run.id)
        return None
    held = Claim(run.claim_token, run.retry_count + 1, round_, name)
    log.write("claim", run=run.id, claim=str(held))
    return run, held


def work_on(run: pm.PipelineRun, held: Claim, rng: random.Random, log: EventLog) -> None:
    """Unless the run keeps clips already (a retry after they were kept, or a round after a skip or
    redo_script answer), take 2-5 candidates, heartbeat, and keep 1-3 clips of them; then heartbeat,
    write 1-2 shorts, save the rendered video, then ask for a review or fail the run. Each write to
    the run carries the claim's stamp (see `stamped`).

    A freeze (SIGSTOP) usually lands in a "work" sleep, so the zombie's next call is a fenced write
    (the take, the keep, the shorts), or its save or its move of the run. On LeaseLost the worker
    may write on (`zombie`).
    """
    progress = time.monotonic()  # when this worker last knew it held the run
    op = "clip"
    try:
        if not run.clips.where(pm.Clip.dropped_at.is_null()).exists():
            time.sleep(rng.uniform(*WORK_SECONDS))
            taken = run.take_candidates(rng.randint(*TAKE))
            log.write("take", run=run.id, claim=str(held), videos=[video.id for video in taken])
            run.heartbeat(stage=stamped("clips", held.token))
            progress = time.monotonic()
            # cutting: a zombie frozen here tries to keep its clips
            time.sleep(rng.uniform(*WORK_SECONDS))
            others = Processed.skipped if rng.randrange(SKIP_OTHERS) == 0 else Processed.pending
            clips = run.keep_clips([cut(video, held, rng) for video in taken[:rng.randint(*KEEP)]],
                                   min_clips=1, max_clips=KEEP[1], others=others)
            for clip in clips:
                log.write("clip", run=run.id, id=clip.id, claim=str(held))
        op = "heartbeat"
        run.heartbeat(stage=stamped("render", held.token))
        progress = time.monotonic()
        op = "shorts"
        with run.fenced():
            top = list(run.clips.where(pm.Clip.dropped_at.is_null()).order_by(pm.Clip.rank_position)
                       .limit(rng.randint(1, 2)))
            shorts = [
                pm.Short.create(pipeline_run=run, clip=clip, description=str(held)) for clip in top]
        log.write("shorts", run=run.id, ids=[short.id for short in shorts], claim=str(held))
        # "rendering": a zombie frozen here tries to save or move the run
        time.sleep(rng.uniform(*WORK_SECONDS))
        op = "save"
        run.video_file_path = f"renders/{run.id}/{held.token}.mp4"
        run.video_duration_seconds = round(rng.uniform(480, 720), 1)
        run.current_stage = stamped("rendered", held.token)
        run.save()
        log.write("save", run=run.id, claim=str(held))
        # writing the script: a zombie frozen here tries to move the run
        time.sleep(rng.uniform(*WORK_SECONDS))
        op = rng.choices(list(OUTCOMES), weights=list(OUTCOMES.values()))[0]
        review = finish(run, op, held, rng)
        log.write(op, run=run.id, claim=str(held), review=review)
    # requeued while frozen or slow, maybe claimed again: drop the run, or write on
    except pm.LeaseLost:
        log.write("lost", run=run.id, op=op, stalled=round(time.monotonic() - progress, 3))
        if rng.random() < ZOMBIE:
            zombie(run, str(held), rng, log)
    except Exception as exc:
        log.error(op, exc, run=run.id)


def zombie(run: pm.PipelineRun, held: str, rng: random.Random, log: EventLog) -> None:
    """The refresh-then-write zombie: a worker whose lease was lost refreshes its run (now or a
    little later, when the run may have moved on) and tries, in a random order, every write a worker
    makes: save(), fail(), advance() and a review request, each stamped with its lost claim. Each
    must raise LeaseLost and write nothing (the audit counts any write under a lost lease); one
    "zombie" event says which were refused, and anything else is an error."""
    if rng.random() < 0.5:
        time.sleep(rng.uniform(*ZOMBIE_WAIT))
    token = held.split(":")[0]

    def save() -> None:
        run.video_file_path = f"renders/{run.id}/zombie-{token}.mp4"
        run.current_stage = stamped("zombie save", token)
        run.save()

    writes = {
        "save": save,
        "fail": lambda: run.fail(stamped("zombie fail", token), retry=rng.random() < 0.5),
        "advance": lambda: run.advance(RunStatus.failed, stage=stamped("zombie advance", token),
                                       reason=stamped("zombie advance", token)),
        "request": lambda: pm.ReviewLog.request(run, message_id=token),
    }
    refused, accepted = [], []
    try:
        seen = str(run.refresh().status)
    except Exception as exc:
        log.error("zombie refresh", exc, run=run.id)
        return
    for op in rng.sample(list(writes), len(writes)):
        try:
            writes[op]()
        except pm.LeaseLost:
            refused.append(op)
        except Exception as exc:
            log.error(f"zombie {op}", exc, run=run.id, claim=held)
        else:
            accepted.append(op)
    log.write("zombie", run=run.id, claim=held, seen=seen, refused=refused, accepted=accepted)


def cut(video: pm.DiscoveredVideo, held: Claim, rng: random.Random) -> Dict[str, object]:
    """The clip cut from `video`, as keep_clips takes it; the claim rides in it, for the checks:
    token, attempt, round, worker."""
    start = round(rng.uniform(0, 300), 1)
    return dict(discovered_video=video, start_time_seconds=start, end_time_seconds=start + 18,
                clip_duration_seconds=18, extraction_method="most_replayed", transcript=str(held))


def finish(run: pm.PipelineRun, outcome: str, held: Claim, rng: random.Random) -> Optional[int]:
    """Move the run on as `outcome` says: a review request (its id returned), a failure to retry, or
    for good (by fail() or advance()); the failure's reason, or the stage, carries the claim's
    stamp."""
    if outcome == "review":
        # the chat message: one per claim
        return pm.ReviewLog.request(run, message_id=held.token).id
    if outcome == "retry":
        run.fail(stamped("boom", held.token))
    elif rng.random() < 0.5:
        run.fail(stamped("fatal", held.token), retry=False)
    else:
        run.advance(RunStatus.failed, stage=stamped("fatal", held.token),
                    reason="fatal: an error no retry fixes")
    return None


# --- the janitor process --------------------------------------------------------------------------


def janitor_main(target: str, events_path: str, stop_at: float, seed: int) -> None:
    """Requeue runs whose lease expired and answer reviews left open, every JANITOR_EVERY s until
    `stop_at`.

    A process of its own: on SQLite a frozen worker may hold the write lock for a second, and the
    driver, which alone can thaw it, must never wait for that lock.
    """
    log = EventLog(events_path)
    try:
        pm.init_db(target)
    except Exception as exc:
        log.error("janitor", exc)
        return
    rng, answered = random.Random(seed), 0
    while time.time() < stop_at:
        try:
            requeued = pm.PipelineRun.requeue_stale(LEASE)
            if requeued:
                log.write("requeued", n=requeued)
        except Exception as exc:
            log.error("requeue_stale", exc)
        try:
            answered = answer_open_reviews(rng, answered, log)
        except Exception as exc:
            log.error("answer", exc)
        time.sleep(JANITOR_EVERY)


def answer_open_reviews(rng: random.Random, answered: int, log: EventLog) -> int:
    """Answer the reviews open for longer than ANSWER_AFTER, each with the next of ANSWERS (what the
    run allows); tap some answers again. Returns the count of answers given so far."""
    cutoff = pm.utcnow() - ANSWER_AFTER
    for review in list(pm.ReviewLog.unanswered().where(pm.ReviewLog.sent_at < cutoff)):
        action, detail = choose_answer(review, ANSWERS[answered % len(ANSWERS)], rng)
        answered += 1
        _, recorded = pm.ReviewLog.answer(review.message_id, action, response_detail=detail,
                                          reviewer="soak")
        log.write("answer", review=review.id, run=review.pipeline_run_id, action=action,
                  detail=detail, recorded=recorded)
        if rng.random() < TAP_AGAIN:  # the reviewer taps the same button again
            _, again = pm.ReviewLog.answer(review.message_id, action, response_detail=detail,
                                           reviewer="soak")
            log.write("tap again", review=review.id, recorded=again)
    return answered


def choose_answer(review: pm.ReviewLog, action: str, rng: random.Random) -> Tuple[str,
                                                                                  Optional[str]]:
    """`action`, or what stands in for it: a held review is not held again; a run at its last round
    is approved rather than sent back; a skip drops one or two ranks, and needs a clip left over."""
    if action == "hold" and review.action is ReviewAction.hold:
        action = "approve"
    if action in ("skip", "redo_script") and review.pipeline_run.reviews.count() >= MAX_ROUNDS:
        action = "approve"
    if action != "skip":
        return action, None
    kept = review.pipeline_run.clips.where(pm.Clip.dropped_at.is_null())
    ranks = [clip.rank_position for clip in kept]
    if len(ranks) < 2:
        return "redo_script", None
    dropped = sorted(rng.sample(ranks, rng.randint(1, min(2, len(ranks) - 1))))
    return "skip", "skip " + ",".join(map(str, dropped))


# --- the uploader process -------------------------------------------------------------------------


def upload_clock(epoch: float) -> datetime.datetime:
    """The uploaders' simulated clock: FIRST_DAY at the soak's start (`epoch`), a day later every
    SIM_DAY s."""
    return FIRST_DAY + datetime.timedelta(days=(time.time() - epoch) / SIM_DAY)


def uploader_main(target: str, directory: str, number: int, epoch: float, stop_at: float,
                  seed: int) -> None:
    """Uploader number `number`: settle the uploads a killed uploader left in doubt, then upload the
    approved runs' shorts and long-form videos until `stop_at`, on the simulated clock
    (upload_clock), within the daily cap; it SIGKILLs itself in its 1st to 3rd upload, after the
    upload claim (odd numbers: the upload never reached the channel) or after the upload (even: it
    did)."""
    log = EventLog(os.path.join(directory, f"uploader{number}.jsonl"))
    rng = random.Random(seed)
    crash = (rng.randint(1, 3), "claimed" if number % 2 else "sent")
    try:
        pm.init_db(target)
        settle_in_doubt(directory, epoch, log)
        uploads = 0
        while time.time() < stop_at:
            if upload_one(rng, epoch, log, crash if uploads + 1 == crash[0] else None):
                uploads += 1
            else:
                time.sleep(0.05)
    except Exception as exc:
        log.error("upload", exc)


def channel(directory: str) -> Dict[Tuple[str, int], str]:
    """The fake YouTube channel: {(kind, id): video id} of every upload that reached it, from the
    logs."""
    return {(e["kind"], e["id"]): e["yt"] for e in read_events(Path(directory)) if e["e"] == "sent"}


def settle_in_doubt(directory: str, epoch: float, log: EventLog) -> None:
    """Each upload begun and never recorded (its uploader was killed): recorded with the id the
    channel shows, or released when it never reached the channel. Only one uploader runs at a time,
    so none is under way."""
    sent = channel(directory)
    for kind, model in (("short", pm.Short), ("run", pm.PipelineRun)):
        for row in model.select().where(
                model.upload_started_at.is_null(False) & model.youtube_video_id.is_null()):
            if (kind, row.id) in sent:
                recorded = row.mark_uploaded(sent[kind, row.id], uploaded_at=upload_clock(epoch))
                log.write("recovered", kind=kind, id=row.id, yt=sent[kind, row.id],
                          recorded=recorded)
            else:
                row.abandon_upload()
                log.write("abandoned", kind=kind, id=row.id)


def upload_one(rng: random.Random, epoch: float, log: EventLog,
               crash: Optional[Tuple[int, str]] = None) -> bool:
    """Upload one short or long-form video of an approved run (dying at the point `crash` names, if
    given); False when there is none to upload, or the daily cap refuses it (logged with the slot it
    names)."""
    run, short = pm.PipelineRun, pm.Short
    free = short.youtube_video_id.is_null() & short.upload_started_at.is_null()
    shorts = list(short.select().join(run).where(
        free & short.status.in_([ShortStatus.pending, ShortStatus.review])
        & run.status.in_([RunStatus.approved, RunStatus.uploaded])))
    runs = list(
        run.select().where((run.status == RunStatus.approved) & run.upload_started_at.is_null()))
    todo = [("short", row) for row in shorts] + [("run", row) for row in runs]
    if not todo:
        return False
    kind, row = rng.choice(todo)
    now = upload_clock(epoch)
    try:
        row.start_upload(now=now)
    except pm.UploadCapReached as exc:
        log.write("capped", kind=kind, id=row.id, now=now.isoformat(),
                  next_slot=exc.next_slot.isoformat())
        return False
    time.sleep(rng.uniform(*UPLOAD_SECONDS))
    crash_if(crash, "claimed", log)
    video_id = f"{kind}{row.id}-{secrets.token_hex(4)}"
    log.write("sent", kind=kind, id=row.id, yt=video_id)  # the upload reached the channel
    time.sleep(rng.uniform(*UPLOAD_SECONDS))
    crash_if(crash, "sent", log)
    recorded = row.mark_uploaded(video_id, uploaded_at=upload_clock(epoch))
    log.write("recorded", kind=kind, id=row.id, yt=video_id, recorded=recorded)
    return True


def crash_if(crash: Optional[Tuple[int, str]], where: str, log: EventLog) -> None:
    """Die here, as a crash would (SIGKILL, nothing cleaned up), if `crash` names this point."""
    if crash is not None and crash[1] == where:
        log.write("crash", where=where)
        os.kill(os.getpid(), signal.SIGKILL)


# --- the audit: the database records every write to a run, with the claim it was made under -------
#
# Triggers write one soak_audit row per write, in the writer's own transaction (a write rolled back
# leaves none): every insert and update of pipeline_runs, every clip and short inserted (the fenced
# writes), and each short's upload claim, record and release. A worker stamps the claim token it
# believes it holds into a column it writes: current_stage "stage#n@token" (heartbeat, save,
# advance), error_message "...@token" (fail), a clip's transcript and a short's description (its
# claim, token first), a review's message_id (ReviewLog.request writes the stage "review" itself:
# the review's insert puts its message_id on the audit row of the run's move). The row keeps that
# stamp beside the run's status and claim token before the write, so a write under a lost lease is
# one SQL comparison. The janitor's, reviewer's and uploader's writes carry no stamp; they are told
# apart by what they write (AUDIT_KIND), and a write none of them makes is unexplained.

AUDIT_COLUMNS = ("tbl", "op", "row_id", "run_id", "written_at", "run_status", "run_token",
                 "new_status", "new_token", "old_stage", "new_stage", "new_error", "old_upload",
                 "new_upload", "old_video", "new_video", "stamp")


def _audit_triggers(postgres: bool) -> List[Tuple[str, str, str, Optional[str], str]]:
    """(name, event, table, condition, statement) of each audit trigger, in the backend's SQL."""
    now = "CAST(clock_timestamp() AS TEXT)" if postgres else "strftime('%Y-%m-%d %H:%M:%f', 'now')"

    def differs(column: str) -> str:
        return f"NEW.{column} IS {'DISTINCT FROM' if postgres else 'NOT'} OLD.{column}"

    # the token a stamp ends with, "...@<32 hex digits>"; else NULL
    def token_in(value: str) -> str:
        return (f"(CASE WHEN length({value}) >= 33 AND substr({value}, length({value}) - 32, 1) "
                f"= '@' THEN substr({value}, length({value}) - 31) END)")

    def text(value: str) -> str:
        return f"CAST({value} AS TEXT)"

    def insert(**values: str) -> str:
        return (f"INSERT INTO soak_audit ({', '.join(values)}) VALUES "
                f"({', '.join(values.values())})")

    def run_now(column: str, run_id: str = "NEW.pipeline_run_id") -> str:
        return f"(SELECT {column} FROM pipeline_runs WHERE id = {run_id})"

    # A stamp rides in the column the write changed: the failure's reason, else the stage.
    stamp = (f"CASE WHEN {differs('error_message')} AND {token_in('NEW.error_message')} IS NOT "
             f"NULL THEN {token_in('NEW.error_message')} WHEN {differs('current_stage')} "
             f"THEN {token_in('NEW.current_stage')} END")
    uploads = dict(old_upload=text("OLD.upload_started_at"),
                   new_upload=text("NEW.upload_started_at"), old_video="OLD.youtube_video_id",
                   new_video="NEW.youtube_video_id")
    # The request's move to review is the run's last audited write, in the transaction that inserts
    # the review.
    request = ("UPDATE soak_audit SET stamp = NEW.message_id, review_id = NEW.id WHERE id = "
               "(SELECT MAX(id) FROM "
               "soak_audit WHERE run_id = NEW.pipeline_run_id AND tbl = 'pipeline_runs') AND "
               "run_status = 'running' AND new_status = 'review' AND review_id IS NULL")
    return [
        ("soak_audit_run_insert", "INSERT", "pipeline_runs", None, insert(
            tbl="'pipeline_runs'", op="'insert'", row_id="NEW.id", run_id="NEW.id", written_at=now,
            new_status="NEW.status", new_token="NEW.claim_token", new_stage="NEW.current_stage")),
        ("soak_audit_run_update", "UPDATE", "pipeline_runs", None, insert(
            tbl="'pipeline_runs'", op="'update'", row_id="NEW.id", run_id="NEW.id", written_at=now,
            run_status="OLD.status", run_token="OLD.claim_token", new_status="NEW.status",
            new_token="NEW.claim_token", old_stage="OLD.current_stage",
            new_stage="NEW.current_stage", new_error="NEW.error_message", stamp=stamp, **uploads)),
        ("soak_audit_clip_insert", "INSERT", "clips", None, insert(
            tbl="'clips'", op="'insert'", row_id="NEW.id", run_id="NEW.pipeline_run_id",
            written_at=now, run_status=run_now("status"), run_token=run_now("claim_token"),
            stamp="substr(NEW.transcript, 1, 32)")),
        ("soak_audit_short_insert", "INSERT", "shorts", None, insert(
            tbl="'shorts'", op="'insert'", row_id="NEW.id", run_id="NEW.pipeline_run_id",
            written_at=now, run_status=run_now("status"), run_token=run_now("claim_token"),
            stamp="substr(NEW.description, 1, 32)")),
        ("soak_audit_short_upload", "UPDATE", "shorts",
         f"{differs('upload_started_at')} OR {differs('youtube_video_id')}", insert(
            tbl="'shorts'", op="'update'", row_id="NEW.id", run_id="NEW.pipeline_run_id",
            written_at=now, run_status=run_now("status"), run_token=run_now("claim_token"),
            **uploads)),
        ("soak_audit_review_insert", "INSERT", "review_logs", None, request),
    ]


def install_audit(database: peewee.Database) -> None:
    """Create soak_audit and the triggers that fill it, in `database` (SQLite or PostgreSQL)."""
    postgres = isinstance(database, peewee.PostgresqlDatabase)
    key = "SERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    integers = ("row_id", "run_id")
    columns = ", ".join(
        f"{name} {'INTEGER' if name in integers else 'TEXT'}" for name in AUDIT_COLUMNS)
    with database.atomic():
        database.execute_sql(f"CREATE TABLE soak_audit (id {key}, {columns}, review_id INTEGER)")
        for name, event, table, condition, statement in _audit_triggers(postgres):
            when = f" WHEN ({condition})" if condition else ""
            if postgres:
                database.execute_sql(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
                                     f"AS $body$ BEGIN {statement}; RETURN NULL; END $body$")
                database.execute_sql(f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH "
                                     f"ROW{when} EXECUTE FUNCTION {name}()")
            else:
                database.execute_sql(f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH "
                                     f"ROW{when} BEGIN {statement}; END")


def remove_audit(database: peewee.Database) -> None:
    """Drop the audit's triggers (and functions) and soak_audit: the database is as it was
    before."""
    postgres = isinstance(database, peewee.PostgresqlDatabase)
    with database.atomic():
        for name, _, table, _, _ in _audit_triggers(postgres):
            database.execute_sql(
                f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgres else ""))
            if postgres:
                database.execute_sql(f"DROP FUNCTION IF EXISTS {name}()")
        database.execute_sql("DROP TABLE IF EXISTS soak_audit")


# What each audited write was, by SQL: a worker's writes carry a stamp; the others' are known by
# their shape.
AUDIT_KIND = """CASE
    WHEN tbl = 'pipeline_runs' AND op = 'insert' THEN 'schedule'
    WHEN tbl = 'clips' THEN 'clip'
    WHEN tbl = 'shorts' AND op = 'insert' THEN 'short'
    WHEN COALESCE(old_video, '') <> COALESCE(new_video, '') THEN 'upload record'
    WHEN old_upload IS NULL AND new_upload IS NOT NULL THEN 'upload claim'
    WHEN old_upload IS NOT NULL AND new_upload IS NULL THEN 'upload release'
    WHEN stamp IS NOT NULL AND review_id IS NOT NULL THEN 'request'
    WHEN stamp IS NOT NULL AND new_status = run_status THEN 'heartbeat or save'
    WHEN stamp IS NOT NULL THEN 'fail or advance'
    WHEN run_status = 'pending' AND new_status = 'running'
        AND COALESCE(new_token, '') <> COALESCE(run_token, '')
        THEN 'claim'
    WHEN run_status = 'running' AND new_status IN ('pending', 'failed')
        AND replace(new_error, 'no heartbeat for', '') <> new_error
        AND COALESCE(new_stage, '') = COALESCE(old_stage, '') THEN 'requeue'
    WHEN run_status = 'review' AND new_status IN ('approved', 'rejected', 'pending') THEN 'answer'
    ELSE 'unexplained'
END"""
WORKER_KINDS = ("clip", "short", "request", "heartbeat or save", "fail or advance")
AUDITED = "SELECT a.*, {kind} AS kind FROM soak_audit a".format(kind=AUDIT_KIND)

# A stamped write (a worker's) lands on a run running under the claim it stamps, or it is a lost
# lease's.
UNDER_A_LOST_LEASE = f"""SELECT id, kind, tbl, row_id, run_id, stamp, run_status, run_token
FROM ({AUDITED}) w
WHERE stamp IS NOT NULL
    AND (COALESCE(run_status, '') <> 'running' OR COALESCE(run_token, '') <> stamp)
ORDER BY id"""

# Uploads (claims and records) of a run not approved at the time: a short's run approved or
# uploaded, the run's own video only from approved.
NOT_APPROVED_UPLOADS = f"""SELECT id, kind, tbl, row_id, run_id, run_status FROM ({AUDITED}) w
WHERE kind IN ('upload claim', 'upload record')
    AND NOT (COALESCE(run_status, '') = 'approved' OR (tbl = 'shorts' AND run_status = 'uploaded'))
ORDER BY id"""

# A review's round is how many of its run's reviews before it were answered skip or redo_script.
ANSWERED_TWICE_IN_A_ROUND = """SELECT pipeline_run_id, review_round, COUNT(*) FROM (
    SELECT r.pipeline_run_id, r.action, (SELECT COUNT(*) FROM review_logs e
        WHERE e.pipeline_run_id = r.pipeline_run_id AND e.id < r.id
            AND e.action IN ('skip', 'redo_script')) AS review_round
    FROM review_logs r) x
WHERE action IS NOT NULL
GROUP BY pipeline_run_id, review_round HAVING COUNT(*) > 1 ORDER BY pipeline_run_id"""

# A review inserted without the run's audited move to review under a claim (message_id) in its
# transaction.
REVIEWS_WITHOUT_A_REQUEST = """SELECT r.id, r.pipeline_run_id FROM review_logs r
WHERE NOT EXISTS (SELECT 1 FROM soak_audit a WHERE a.review_id = r.id AND a.stamp IS NOT NULL)
ORDER BY r.id"""


@dataclasses.dataclass
class Audit:
    """What the audit log says, read by SQL: writes by kind and the writes no soak may make."""

    kinds: Dict[str, int]
    lost: List[tuple]  # writes under a lost lease
    not_approved: List[tuple]  # uploads of a run not approved at the time
    answered_twice: List[tuple]  # (run, round, answered reviews) with two or more
    unrequested: List[tuple]  # reviews with no audited request
    unexplained: List[tuple]  # writes no process of the soak makes
    zombie_writes: int  # audited writes stamped by a zombie's save, fail or advance

    @classmethod
    def read(cls, database: peewee.Database) -> "Audit":
        """Read the audit of `database` (made by install_audit)."""
        def rows(sql: str) -> List[tuple]:
            return [tuple(row) for row in database.execute_sql(sql)]

        zombie = rows("SELECT COUNT(*) FROM soak_audit WHERE replace(new_stage, 'zombie', '') <> "
                      "new_stage OR replace(new_error, 'zombie', '') <> new_error")[0][0]
        return cls(kinds=dict(rows(f"SELECT kind, COUNT(*) FROM ({AUDITED}) w GROUP BY kind")),
                   lost=rows(UNDER_A_LOST_LEASE), not_approved=rows(NOT_APPROVED_UPLOADS),
                   answered_twice=rows(ANSWERED_TWICE_IN_A_ROUND),
                   unrequested=rows(REVIEWS_WITHOUT_A_REQUEST),
                   unexplained=rows("SELECT id, tbl, op, row_id, run_id, run_status, new_status, "
                                    "old_stage, "
                                    f"new_stage, new_error FROM ({AUDITED}) w WHERE kind = "
                                    "'unexplained' ORDER BY id"),
                   zombie_writes=zombie)

    def violations(self, snap: "Snapshot", events: List[dict]) -> List[str]:
        """Each write the audit shows no soak may make, and any sign that the audit missed
        writes."""
        found = [f"audit {i}: a {kind} ({tbl} {row}) of run {run} stamped with claim {stamp}, made "
                 f"while the run was {status} under {token}: a write under a lost lease"
                 for i, kind, tbl, row, run, stamp, status, token in self.lost]
        found += [f"audit {i}: an {kind} of {tbl} {row} while its run {run} was {status}: an "
                  "upload of a run not "
                  "approved" for i, kind, tbl, row, run, status in self.not_approved]
        found += [f"run {run} has {n} answered reviews in round {round_}" for run, round_,
                  n in self.answered_twice]
        found += [f"review {review} of run {run} was inserted without its run's move to review "
                  "under a claim"
                  for review, run in self.unrequested]
        found += [f"audit {row[0]}: an unexplained write {row[1:]}" for row in self.unexplained]
        if self.zombie_writes:
            found.append(f"the audit has {self.zombie_writes} writes stamped by a zombie's save, "
                         "fail or advance")
        # The audit saw everything: each row the soak made, each claim a worker logged.
        expected = {"schedule": len(snap.runs), "clip": sum(map(len, snap.clips.values())),
                    "short": sum(map(len, snap.shorts.values())),
                    "request": sum(map(len, snap.reviews.values()))}
        found += [f"the audit has {self.kinds.get(kind, 0)} {kind} writes, the database {n} rows"
                  for kind, n in expected.items() if self.kinds.get(kind, 0) != n]
        claims = sum(1 for e in events if e["e"] == "claim")
        if self.kinds.get("claim", 0) < claims:
            found.append(f"the audit has {self.kinds.get('claim', 0)} claims, the workers logged "
                         f"{claims}")
        return found

    def counts(self) -> Dict[str, int]:
        """The figures for the summary."""
        return {"audited writes": sum(self.kinds.values()),
                "audited worker writes": sum(self.kinds.get(kind, 0) for kind in WORKER_KINDS),
                "writes under a lost lease": len(self.lost),
                "two-answer runs": len({row[0] for row in self.answered_twice}),
                "non-approved uploads": len(self.not_approved),
                "unexplained writes": len(self.unexplained)}


# --- the driver: seeding, the fleet of workers, the chaos -----------------------------------------


def seed_queue(target: str) -> None:
    """Bind this process to `target`, install the audit, set the retry delay and the caps, discover
    each niche's videos and schedule its first SEED_CYCLES cycles."""
    install_audit(pm.init_db(target))
    pm.ConfigOverride.set(pm.PipelineRun.RETRY_DELAY_KEY, RETRY_DELAY_SECONDS)
    pm.ConfigOverride.set(pm.PipelineRun.MAX_RUNNING_KEY, MAX_RUNNING)
    pm.ConfigOverride.set(pm.PipelineRun.MAX_UPLOADS_KEY, UPLOAD_CAP)
    with pm.db.atomic():
        for niche in NICHES:
            for i in range(VIDEOS_PER_NICHE):
                pm.DiscoveredVideo.discover(f"{niche}{i:03d}", title=f"{niche} video {i}",
                                            channel_name="creator", channel_id="UCsoak",
                                            niche=niche, viral_score=float(i))
            for cycle in range(SEED_CYCLES):
                pm.PipelineRun.schedule(niche, cycle_start(niche, cycle))


class Fleet:
    """The worker processes and the uploader: started, killed and replaced, frozen and thawed; it
    knows which exits it caused."""

    def __init__(self, target: str, directory: Path, epoch: float, stop_at: float,
                 rng: random.Random) -> None:
        self.target, self.directory, self.epoch = target, directory, epoch
        self.stop_at, self.rng = stop_at, rng
        self.live: Dict[str, multiprocessing.Process] = {}
        self.killed: List[multiprocessing.Process] = []
        self.frozen: Dict[str, float] = {}  # name -> when to thaw it (time.monotonic())
        self.started = self.stops = self.uploaders = 0
        self.uploader: Optional[multiprocessing.Process] = None
        self.problems: List[str] = []

    def start(self) -> None:
        """Start one worker under a new name (the name is what the runs' `worker` column shows)."""
        name = f"w{self.started}"
        self.started += 1
        proc = spawn.Process(target=worker_main, name=name, daemon=True,
                             args=(self.target, name, str(self.directory / f"{name}.jsonl"),
                                   self.epoch, self.stop_at, self.rng.randrange(2 ** 32)))
        proc.start()
        self.live[name] = proc

    def keep_an_uploader(self) -> None:
        """Start the uploader, or a new one once the last has died (killed by itself: any other end
        is a problem); one at a time, so that an upload in doubt is always a dead uploader's."""
        if self.uploader is not None:
            if self.uploader.is_alive():
                return
            self.uploader.join()
            if self.uploader.exitcode not in (0, -signal.SIGKILL):
                self.problems.append(f"uploader {self.uploaders} exited with code "
                                     f"{self.uploader.exitcode}")
        if time.time() < self.stop_at:
            self.uploaders += 1
            self.uploader = spawn.Process(target=uploader_main, daemon=True, args=(
                self.target, str(self.directory), self.uploaders, self.epoch, self.stop_at,
                self.rng.randrange(2 ** 32)))
            self.uploader.start()

    def kill_one(self) -> None:
        """SIGKILL a random worker that is not frozen (a frozen one must wake, as a zombie) and
        replace it."""
        awake = [name for name in self.live if name not in self.frozen]
        if not awake:
            return
        name = self.rng.choice(awake)
        proc = self.live.pop(name)
        proc.kill()
        proc.join(10)
        self.killed.append(proc)
        self.start()

    def freeze_a_holder(self, stage: Optional[str] = None) -> bool:
        """SIGSTOP, for longer than the lease, a live worker that holds a running run (at `stage`,
        if given); False if none does."""
        running = (pm.PipelineRun.select(pm.PipelineRun.worker, pm.PipelineRun.current_stage)
                   .where(pm.PipelineRun.status == RunStatus.running))
        holders = sorted({run.worker for run in running if stage in (None,
                                                                     stage_of(run.current_stage))}
                         & set(self.live) - set(self.frozen))
        if not holders:
            return False
        name = self.rng.choice(holders)
        os.kill(self.live[name].pid, signal.SIGSTOP)
        self.frozen[name] = time.monotonic() + self.rng.uniform(*STOP_FOR)
        self.stops += 1
        return True

    def thaw(self, everyone: bool = False) -> None:
        """SIGCONT the frozen workers whose time is up (all of them with `everyone`)."""
        now = time.monotonic()
        for name, until in list(self.frozen.items()):
            if everyone or now >= until:
                os.kill(self.live[name].pid, signal.SIGCONT)
                del self.frozen[name]

    def wait(self, timeout: float = 60) -> None:
        """Wait for every worker and the uploader to stop at the deadline; a hung or crashed one is
        a problem."""
        self.thaw(everyone=True)
        end = time.monotonic() + timeout
        procs = dict(self.live, uploader=self.uploader) if self.uploader is not None else self.live
        for name, proc in procs.items():
            proc.join(max(0.1, end - time.monotonic()))
            if proc.is_alive():
                self.problems.append(f"{name} still running {timeout:.0f} s after the deadline "
                                     "(hung?)")
                proc.kill()
                proc.join(10)
            elif proc.exitcode != 0 and not (
                    name == "uploader" and proc.exitcode == -signal.SIGKILL):
                self.problems.append(f"worker {name} exited with code {proc.exitcode}, not killed "
                                     "by the soak")


def drive(fleet: Fleet, stop_at: float, rng: random.Random) -> None:
    """The chaos, until `stop_at`: a SIGKILL every KILL_EVERY, a SIGSTOP of a run holder every
    STOP_EVERY.

    Every other SIGSTOP picks a worker that has made its clips (stage "render": about to save the
    run) or saved it (stage "rendered": about to move it), so that zombies try saves and moves as
    often as fenced writes (freezes at random mostly land before a clip, there being 1-3 of those).
    """
    now = time.monotonic()
    next_kill, next_stop = now + rng.uniform(*KILL_EVERY), now + rng.uniform(*STOP_EVERY)
    while time.time() < stop_at:
        now = time.monotonic()
        fleet.thaw()
        fleet.keep_an_uploader()
        if now >= next_kill:
            fleet.kill_one()
            next_kill = now + rng.uniform(*KILL_EVERY)
        if now >= next_stop:
            stopped = fleet.freeze_a_holder((None, "render", None, "rendered")[fleet.stops % 4])
            # No such holder right now (all idle, or frozen, or elsewhere): try again shortly.
            next_stop = now + (rng.uniform(*STOP_EVERY) if stopped else 0.02)
        time.sleep(0.02)


@dataclasses.dataclass
class Report:
    """What a soak did and which invariants it broke."""

    target: str
    seconds: float
    workers: int
    counts: Dict[str, int]
    statuses: Dict[str, int]
    violations: List[str]

    def summary(self) -> str:
        """A few lines for people: the activity, the runs by status, and the verdict."""
        lines = [f"soak of {redact(str(self.target))}: {self.seconds:.0f} s, {self.workers} "
                 "workers"]
        lines.append("  " + ", ".join(f"{k}: {v}" for k, v in self.counts.items()))
        lines.append("  runs by status: " + ", ".join(f"{k} {v}" for k,
                                                      v in sorted(self.statuses.items())))
        if self.violations:
            shown = self.violations[:30]
            lines.append(f"  {len(self.violations)} VIOLATIONS:")
            lines += [f"    - {v}" for v in shown]
            if len(self.violations) > len(shown):
                lines.append(f"    ... and {len(self.violations) - len(shown)} more")
        else:
            lines.append("  every invariant held")
        return "\n".join(lines)


def soak(target: str, seconds: float, workers: int, directory: Path,
         seed: Optional[int] = None) -> Report:
    """Run the chaos soak on `target` (a SQLite path or a postgresql:// URL) and check the
    invariants.

    `directory` receives the processes' event logs. This process stays bound to `target` afterwards.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    seed_queue(target)
    epoch = time.time()
    stop_at = epoch + seconds
    janitor = spawn.Process(target=janitor_main, daemon=True,
                            args=(target, str(directory / "janitor.jsonl"), stop_at,
                                  rng.randrange(2 ** 32)))
    janitor.start()
    fleet = Fleet(target, directory, epoch, stop_at, rng)
    for _ in range(workers):
        fleet.start()
    try:
        drive(fleet, stop_at, rng)
    finally:
        fleet.wait()
        janitor.join(60)
        if janitor.is_alive() or janitor.exitcode != 0:
            fleet.problems.append("the janitor did not stop cleanly (exit code "
                                  f"{janitor.exitcode})")
            janitor.kill()
    return check(target, seconds, workers, read_events(directory), fleet)


# --- the checks -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Snapshot:
    """The database after the soak, read once: runs by id; their clips, shorts and reviews in id
    order."""

    runs: Dict[int, pm.PipelineRun]
    clips: Dict[int, List[pm.Clip]]
    shorts: Dict[int, List[pm.Short]]
    reviews: Dict[int, List[pm.ReviewLog]]
    videos: Dict[int, pm.DiscoveredVideo]

    @classmethod
    def read(cls) -> "Snapshot":
        """Read the bound database."""
        runs = {run.id: run for run in pm.PipelineRun.select()}
        by_run = []
        for model in (pm.Clip, pm.Short, pm.ReviewLog):
            rows = collections.defaultdict(list)
            for row in model.select().order_by(model.id):
                rows[row.pipeline_run_id].append(row)
            by_run.append(rows)
        return cls(runs, *by_run, {video.id: video for video in pm.DiscoveredVideo.select()})

    def writes(self, run_id: int) -> List[Tuple[str, List[peewee.Model]]]:
        """The run's writes under its claims, each kind in id order: ("clip", clips), ("short",
        shorts)."""
        return [("clip", self.clips.get(run_id, [])), ("short", self.shorts.get(run_id, []))]


def claim_of(row: peewee.Model) -> Claim:
    """The claim a clip (its transcript) or a short (its description) was written under."""
    return Claim.parse(row.transcript if isinstance(row, pm.Clip) else row.description)


def check(target: str, seconds: float, workers: int, events: List[dict], fleet: Fleet) -> Report:
    """Check every invariant against the database (bound in this process) and the event logs."""
    snap = Snapshot.read()
    violations = list(fleet.problems) + check_all(snap, events)
    counts = {**activity(snap, events, fleet), **Audit.read(pm.db.obj).counts()}
    violations += [f"not enough happened for the checks to mean much: {name} {counts[name]} < "
                   f"{least} "
                   "(run longer?)" for name, least in ENOUGH.items() if counts[name] < least]
    statuses = collections.Counter(str(run.status) for run in snap.runs.values())
    return Report(target, seconds, workers, counts, dict(statuses), violations)


def check_all(snap: Snapshot, events: List[dict]) -> List[str]:
    """Every invariant's violations, from the database snapshot, its audit and the logs."""
    claims = given_claims(events)
    return (Audit.read(pm.db.obj).violations(snap, events) + check_zombies(events)
            + check_errors(events) + check_claims(snap, events) + check_fence(snap, claims)
            + check_outcomes(snap, events, claims) + check_reviews(snap, claims)
            + check_cycles(snap, events) + check_clips(snap) + check_uploads(snap, events)
            + check_committed(snap, events) + check_attempts(snap)
            + check_videos(snap) + check_running_cap() + check_daily_cap(snap, events))


def given_claims(events: List[dict]) -> Dict[str, Tuple[int, Claim]]:
    """{token: (run id, claim)} of the claims workers logged."""
    return {claim.token: (e["run"], claim) for e in events if e["e"] == "claim"
            for claim in [Claim.parse(e["claim"])]}


def check_zombies(events: List[dict]) -> List[str]:
    """Every write a zombie tried after refreshing its run was refused with LeaseLost (the audit
    checks that none was written)."""
    return [f"run {e['run']}: the zombie {e['claim']}, after refresh() showed it {e['seen']}, was "
            f"let {op}"
            for e in events if e["e"] == "zombie" for op in e["accepted"]]


def check_errors(events: List[dict]) -> List[str]:
    """No process met an exception other than LeaseLost, and a second tap on an answer changed
    nothing."""
    violations = [f"{e.get('op')} raised {e['error']} (run {e.get('run')}) at "
                  f"{' | '.join(e['trace'])!r}"
                  for e in events if e["e"] == "error"]
    violations += [f"review {e['review']}: the reviewer's answer was not recorded" for e in events
                   if e["e"] == "answer" and not e["recorded"]]
    violations += [
        f"review {e['review']}: a second tap on the same answer changed it again" for e in events
        if e["e"] == "tap again" and e["recorded"]]
    return violations


def check_claims(snap: Snapshot, events: List[dict]) -> List[str]:
    """No run claimed twice at once: one token per (run, round, attempt) and one (run, round,
    attempt) per token, among the claims workers logged and those their writes carry. And every
    write was made under a claim its worker was given."""
    given = {(e["run"], Claim.parse(e["claim"])) for e in events if e["e"] == "claim"}
    written = {(run_id, claim_of(row)) for run_id in snap.runs for _,
               rows in snap.writes(run_id) for row in rows}
    tokens, uses = collections.defaultdict(set), collections.defaultdict(set)
    for run_id, claim in given | written:
        tokens[run_id, claim.key].add(claim.token)
        uses[claim.token].add((run_id, claim.key))
    violations = [f"run {run_id} was claimed {len(found)} times in (round, attempt) {key}: "
                  f"{sorted(found)}"
                  for (run_id, key), found in sorted(tokens.items()) if len(found) > 1]
    violations += [f"token {token} was given {len(found)} times: (run, (round, attempt)) "
                   f"{sorted(found)}"
                   for token, found in uses.items() if len(found) > 1]
    violations += [f"run {run_id}: writes by {claim}, a claim no worker was given"
                   for run_id, claim in sorted(written - given)]
    return violations


def check_fence(snap: Snapshot, claims: Dict[str, Tuple[int, Claim]]) -> List[str]:
    """No write by a lost lease, read from each run's clips, shorts and reviews; see the checks it
    runs."""
    violations = []
    for run in snap.runs.values():
        current = current_claim(run, snap, claims)
        where = (f"run {run.id} ({run.status}, retry_count {run.retry_count}, "
                 f"claim {current or run.claim_token})")
        found = []
        for kind, rows in snap.writes(run.id):
            found += writes_in_claim_order(kind, rows) + writes_after_leaving_running(run, kind,
                                                                                      rows, snap)
        found += writes_of_current_claim(run, snap, current)
        violations += [f"{where}: {v}" for v in found]
    return violations


def current_claim(run: pm.PipelineRun, snap: Snapshot,
                  claims: Dict[str, Tuple[int, Claim]]) -> Optional[Claim]:
    """The run's last claim (its claim_token's), from the logs or its writes; None if neither knows
    it."""
    if run.claim_token in claims:
        return claims[run.claim_token][1]
    for _, rows in snap.writes(run.id):
        for row in rows:
            if claim_of(row).token == run.claim_token:
                return claim_of(row)
    return None


def writes_in_claim_order(kind: str, rows: List[peewee.Model]) -> List[str]:
    """In id order a run's clips (and its shorts) go claim after claim: (round, attempt) never goes
    down, and one token per (round, attempt).

    Id order is commit order within a run: a row is inserted while its writer holds the run's lock,
    which the next claim has to wait for. So a zombie's write after a newer claim's write breaks
    this.
    """
    violations = []
    for before, after in zip(rows, rows[1:]):
        older, newer = claim_of(before), claim_of(after)
        if newer.key < older.key or (newer.key == older.key and newer != older):
            violations.append(f"{kind} {after.id} by {newer} came after {kind} {before.id} by "
                              f"{older}: a write by a lost lease")
    return violations


def writes_of_current_claim(run: pm.PipelineRun, snap: Snapshot,
                            current: Optional[Claim]) -> List[str]:
    """Every write's claim is the run's last claim or an earlier one; and a run a worker moved on
    (asked for a review, or failed, as the janitor's requeue does not) has clips or shorts of its
    last claim, as the worker writes them before it moves the run, and only the claim holder may
    move it."""
    reviews = len(snap.reviews.get(run.id, []))
    # Unlogged (its worker was killed at once), the last claim wrote nothing: then bound by the
    # database.
    last = current.key if current is not None else (reviews, run.retry_count + 1)
    violations = []
    for kind, rows in snap.writes(run.id):
        for claim in {claim_of(row) for row in rows}:
            if claim.key > last or (current is not None and claim.key == last and claim != current):
                violations.append(f"{kind}s by {claim}, which is not a claim the run had")
    # A claim of a run that keeps clips already (a retry, a later round) cuts none, but writes
    # shorts.
    tokens = {claim_of(row).token for _, rows in snap.writes(run.id) for row in rows}
    if moved_by_worker(run, current, reviews) and run.claim_token not in tokens:
        violations.append("moved on by a worker, but no clip or short of its last claim: a lost "
                          "lease moved it")
    return violations


def moved_by_worker(run: pm.PipelineRun, current: Optional[Claim], reviews: int) -> bool:
    """True when a worker, not the janitor, made the run's last move out of running: a review
    request (the run is in review or beyond, or pending after a skip or redo_script answer to it) or
    a failure."""
    if run.status in (RunStatus.review, RunStatus.approved, RunStatus.uploaded, RunStatus.rejected):
        return True
    if run.status is RunStatus.pending:
        # its claim asked for the last review
        return current is not None and current.round < reviews
    return run.status is RunStatus.failed and "no heartbeat" not in (run.error_message or "")


def writes_after_leaving_running(run: pm.PipelineRun, kind: str, rows: List[peewee.Model],
                                 snap: Snapshot) -> List[str]:
    """No write is newer than the moment the run last left running (its last review's sent_at,
    completed_at of a failed run, updated_at of a pending one): those moves are timed inside the
    run's lock, after any fenced transaction of the run committed."""
    left = left_running_at(run, snap.reviews.get(run.id, []))
    late = [row for row in rows if left is not None and row.created_at > left]
    if not late:
        return []
    return [f"{len(late)} {kind}s written after the run left running at {left}, e.g. {kind} "
            f"{late[0].id} by {claim_of(late[0])} at {late[0].created_at}"]


def left_running_at(run: pm.PipelineRun,
                    reviews: List[pm.ReviewLog]) -> Optional[datetime.datetime]:
    """When the run last stopped running, timed inside the move's lock; None while it still runs."""
    if run.status in (RunStatus.review, RunStatus.approved, RunStatus.uploaded, RunStatus.rejected):
        return reviews[-1].sent_at if reviews else run.updated_at
    if run.status is RunStatus.failed:
        return run.completed_at
    if run.status is RunStatus.pending:
        # the requeue's or the answer's time: nothing else writes a pending run
        return run.updated_at
    return None


def check_outcomes(snap: Snapshot, events: List[dict],
                   claims: Dict[str, Tuple[int, Claim]]) -> List[str]:
    """Each failure for good a worker made was made by the run's last claim holder; each retry it
    made left the run requeued (pending under its claim, or claimed again since).

    Runs never leave failed for another claim in the soak (nobody calls retry()), so a failed run
    still carries the token of the worker that failed it.
    """
    violations = []
    for e in events:
        run = snap.runs.get(e.get("run"))
        if e["e"] not in ("retry", "fatal") or run is None:
            continue
        claim = Claim.parse(e["claim"])
        final = e["e"] == "fatal" or claim.attempt >= MAX_ATTEMPTS
        if final and (run.status, run.claim_token, run.retry_count + 1) != (RunStatus.failed,
                                                                            claim.token,
                                                                            claim.attempt):
            violations.append(f"run {run.id}: a worker's {e['e']} by {claim} succeeded, but the "
                              "run is "
                              f"{run.status} at retry_count {run.retry_count} under "
                              f"{run.claim_token}")
        elif not final and not requeued_by(run, claim, current_claim(run, snap, claims),
                                           len(snap.reviews.get(run.id, []))):
            violations.append(f"run {run.id}: a worker's retry by {claim} succeeded, but the run "
                              "is "
                              f"{run.status} at retry_count {run.retry_count} under "
                              f"{run.claim_token}")
    return violations


def requeued_by(run: pm.PipelineRun, claim: Claim, current: Optional[Claim], reviews: int) -> bool:
    """Whether the run is where a worker's successful retry (fail("boom")) left it: pending under
    that worker's claim with its failed attempt counted, or claimed again since (a later claim;
    unlogged, it left the failed attempt counted or a later round)."""
    if run.claim_token == claim.token:
        return run.status is RunStatus.pending and run.retry_count == claim.attempt
    if current is not None:
        return current.key > claim.key
    return (reviews, run.retry_count) >= (claim.round, claim.attempt)


def check_reviews(snap: Snapshot, claims: Dict[str, Tuple[int, Claim]]) -> List[str]:
    """No run with two answered reviews of one round: SQL finds no run with two reviews open at once
    or two answered approve or reject; and a run's reviews follow one another, round after round
    (each asked by the last claim of its round, after the one before was answered skip or
    redo_script)."""
    review = pm.ReviewLog
    violations = []
    for what, where in (("open", review.action.is_null() | (review.action == ReviewAction.hold)),
                        ("answered approve or reject", review.action.in_([ReviewAction.approve,
                                                                           ReviewAction.reject]))):
        doubled = (
            review.select(review.pipeline_run, peewee.fn.COUNT(review.id).alias("n")).where(where)
            .group_by(review.pipeline_run).having(peewee.fn.COUNT(review.id) > 1))
        violations += [f"run {row.pipeline_run_id} has {row.n} reviews {what}" for row in doubled]
    for run_id, reviews in snap.reviews.items():
        for number, (asked, later) in enumerate(zip(reviews, reviews[1:] + [None])):
            by = claims.get(asked.message_id, (None, None))[1]
            if by is None or claims[asked.message_id][0] != run_id or by.round != number:
                violations.append(f"run {run_id}: review {asked.id} (its number {number + 1}) was "
                                  f"asked by {by}, not by a claim of the run's round {number}")
            elif any(other.round == by.round and other.attempt > by.attempt
                     for other_run, other in claims.values() if other_run == run_id):
                violations.append(f"run {run_id}: review {asked.id} was asked by {by}, after the "
                                  "run was claimed again in that round: a lost lease asked")
            if later is not None and (asked.action not in (ReviewAction.skip,
                                                           ReviewAction.redo_script)
                                      or later.sent_at < asked.responded_at):
                violations.append(f"run {run_id}: review {later.id} was asked while review "
                                  f"{asked.id} was "
                                  f"{asked.action or 'open'} (answered {asked.responded_at})")
    return violations


def check_cycles(snap: Snapshot, events: List[dict]) -> List[str]:
    """One run per (niche, cycle_start) (SQL), and every scheduler firing for a cycle got that
    cycle's run."""
    run = pm.PipelineRun
    doubled = (run.select(run.niche, run.cycle_start, peewee.fn.COUNT(run.id).alias("n"))
               .group_by(run.niche, run.cycle_start).having(peewee.fn.COUNT(run.id) > 1))
    violations = [
        f"{row.niche} has {row.n} runs of the cycle starting {row.cycle_start}" for row in doubled]
    of_cycle = {(r.niche, r.cycle_start): r.id for r in snap.runs.values()}
    for e in events:
        if e["e"] == "schedule":
            start = cycle_start(e["niche"], e["cycle"])
            if of_cycle.get((e["niche"], start)) != e["run"]:
                violations.append(f"schedule({e['niche']!r}, {start}) returned run {e['run']}, but "
                                  f"that cycle's run is {of_cycle.get((e['niche'], start))}")
    violations += [
        f"run {r.id}: cycle {r.cycle_start} to {r.cycle_end}, not 6 hours"
        for r in snap.runs.values() if r.cycle_end - r.cycle_start != datetime.timedelta(hours=6)]
    return violations


def check_clips(snap: Snapshot) -> List[str]:
    """No run with two clips of one video or two (kept) clips of one rank (SQL); a run's kept clips
    are ranked 1..N, of its niche's videos; a clip a skip dropped has its video rejected."""
    clip = pm.Clip
    count = peewee.fn.COUNT(clip.id)
    violations = [
        f"run {row.pipeline_run_id} has {row.n} clips of video {row.discovered_video_id}" for row in
        clip.select(clip.pipeline_run, clip.discovered_video, count.alias("n"))
        .group_by(clip.pipeline_run, clip.discovered_video).having(count > 1)]
    violations += [
        f"run {row.pipeline_run_id} has {row.n} clips ranked {row.rank_position}" for row in
        clip.select(clip.pipeline_run, clip.rank_position, count.alias("n"))
        .where(clip.dropped_at.is_null()).group_by(clip.pipeline_run, clip.rank_position)
        .having(count > 1)]
    for run_id, clips in snap.clips.items():
        ranks = sorted(c.rank_position for c in clips if c.dropped_at is None)
        if ranks != list(range(1, len(ranks) + 1)):
            violations.append(f"run {run_id}: its clips are ranked {ranks}, not 1..{len(ranks)}")
        niche = snap.runs[run_id].niche
        violations += [f"clip {c.id} of run {run_id} ({niche}) is of a "
                       f"{snap.videos[c.discovered_video_id].niche} "
                       "video" for c in clips if snap.videos[c.discovered_video_id].niche != niche]
        violations += [f"clip {c.id} was dropped, but its video {c.discovered_video_id} is "
                       f"{snap.videos[c.discovered_video_id].processed!s}, not rejected"
                       for c in clips if c.dropped_at is not None
                       and snap.videos[c.discovered_video_id].processed != Processed.rejected]
    return violations


def check_uploads(snap: Snapshot, events: List[dict]) -> List[str]:
    """No short or long-form video uploaded twice (sent to the channel twice); each one the database
    has as uploaded is the one the channel shows; only an approved run's shorts, and its video, were
    uploaded."""
    sent = collections.defaultdict(list)
    for e in events:
        if e["e"] == "sent":
            sent[e["kind"], e["id"]].append(e["yt"])
    violations = [f"{kind} {row_id} was uploaded {len(ids)} times: {ids}" for (kind, row_id),
                  ids in sent.items()
                  if len(ids) > 1]
    rows = [("run", run) for run in snap.runs.values()] + [
        ("short", short) for shorts in snap.shorts.values() for short in shorts]
    for kind, row in rows:
        if row.youtube_video_id is not None and sent.get((kind, row.id)) != [row.youtube_video_id]:
            violations.append(f"{kind} {row.id} is recorded as uploaded as {row.youtube_video_id}, "
                              f"but the channel has {sent.get((kind, row.id))}")
        uploaded = row.youtube_video_id is not None
        if kind == "run" and uploaded != (row.status is RunStatus.uploaded):
            violations.append(f"run {row.id} is {row.status} with long-form video "
                              f"{row.youtube_video_id}")
        if kind == "short" and uploaded != (row.status is ShortStatus.uploaded):
            violations.append(f"short {row.id} is {row.status} with video {row.youtube_video_id}")
        if kind == "short" and uploaded and snap.runs[row.pipeline_run_id].status not in (
                RunStatus.approved,
                RunStatus.uploaded):
            violations.append(f"short {row.id} was uploaded, but its run is "
                              f"{snap.runs[row.pipeline_run_id].status}")
    return violations


def check_committed(snap: Snapshot, events: List[dict]) -> List[str]:
    """No lost committed write: every write a process logged after it committed is in the database
    as logged (runs scheduled, clips, shorts, reviews asked, answers and uploads recorded)."""
    clips = {c.id: c for rows in snap.clips.values() for c in rows}
    shorts = {s.id: s for rows in snap.shorts.values() for s in rows}
    reviews = {r.id: r for rows in snap.reviews.values() for r in rows}
    # the last of each
    answers = {e["review"]: e for e in events if e["e"] == "answer" and e["recorded"]}
    violations = []
    for e in events:
        kind = e["e"]
        if kind == "schedule" and e["run"] not in snap.runs:
            violations.append(f"run {e['run']} was scheduled for {e['niche']} cycle {e['cycle']}, "
                              "and is gone")
        elif kind == "clip" and (e["id"] not in clips or (clips[e["id"]].pipeline_run_id,
                                                          clips[e["id"]].transcript)
                                 != (e["run"], e["claim"])):
            violations.append(f"clip {e['id']} of run {e['run']} by {e['claim']} was committed, "
                              "and is lost")
        elif kind == "shorts":
            violations += [
                f"short {i} of run {e['run']} by {e['claim']} was committed, and is lost"
                for i in e["ids"]
                if i not in shorts or (shorts[i].pipeline_run_id, shorts[i].description)
                != (e["run"], e["claim"])]
        elif kind == "review" and (e["review"] not in reviews or reviews[e["review"]].message_id
                                   != Claim.parse(e["claim"]).token):
            violations.append(f"review {e['review']} asked by {e['claim']} was committed, and is "
                              "lost")
        elif kind in ("recorded", "recovered") and e["recorded"]:
            row = snap.runs.get(e["id"]) if e["kind"] == "run" else shorts.get(e["id"])
            if row is None or row.youtube_video_id != e["yt"]:
                violations.append(f"the upload of {e['kind']} {e['id']} as {e['yt']} was recorded, "
                                  "and is lost")
    for review_id, e in answers.items():
        row = reviews.get(review_id)
        if row is None or (str(row.action), row.response_detail) != (e["action"], e["detail"]):
            violations.append(f"review {review_id} was last answered {e['action']} "
                              f"{e['detail'] or ''}, but "
                              f"it has {row and row.action} {row and row.response_detail}")
    return violations


def check_videos(snap: Snapshot) -> List[str]:
    """No video in two runs' clips (SQL); a video a run holds (taken, not settled) is held by a run
    that may still use it, pending or running; a kept clip's video is used, or rejected once a skip
    dropped the clip."""
    clip = pm.Clip
    runs = peewee.fn.COUNT(clip.pipeline_run.distinct())
    violations = [f"video {row.discovered_video_id} is in the clips of {row.n} runs" for row in
                  clip.select(clip.discovered_video, runs.alias("n")).group_by(
                      clip.discovered_video).having(runs > 1)]
    for video in snap.videos.values():
        holder = snap.runs.get(video.taken_by_run)
        if video.processed is Processed.pending and video.taken_by_run is not None and (
                holder is None or holder.status not in (RunStatus.pending, RunStatus.running)):
            violations.append(f"video {video.id} is held by run {video.taken_by_run}, which is "
                              f"{holder.status if holder else 'gone'}")
    for clips in snap.clips.values():
        for c in clips:
            state = snap.videos[c.discovered_video_id].processed
            if c.dropped_at is None and state is not Processed.used:
                violations.append(f"video {c.discovered_video_id} has a kept clip ({c.id}) but is "
                                  f"{state!s}, not used")
    return violations


def most_running() -> int:
    """The most runs running at once, replaying the audit's writes to runs in their order (a claim
    waits until the moves out of running it counted have committed, so the replay never undercounts
    a claim's)."""
    running = most = 0
    for old, new in pm.db.execute_sql("SELECT run_status, new_status FROM soak_audit WHERE tbl = "
                                      "'pipeline_runs' ORDER BY id"):
        running += (new == "running") - (old == "running")
        most = max(most, running)
    return most


def check_running_cap() -> List[str]:
    """Never more than MAX_RUNNING runs running at once (scheduler.max_concurrent_pipelines), by the
    audit."""
    most = most_running()
    if most <= MAX_RUNNING:
        return []
    return [f"{most} runs were running at once; the cap is {MAX_RUNNING}"]


def upload_times(snap: Snapshot) -> List[datetime.datetime]:
    """When each upload counted against the daily cap began, oldest first (released claims are not
    counted)."""
    rows = list(snap.runs.values()) + [short for shorts in snap.shorts.values() for short in shorts]
    return sorted(row.upload_started_at for row in rows if row.upload_started_at is not None)


def most_uploads_in_a_day(snap: Snapshot) -> int:
    """The most uploads that began within 24 hours (a window ending at an upload's start)."""
    times = upload_times(snap)
    return max((sum(1 for t in times[:i + 1] if t > at - pm.Short.DAY) for i,
                at in enumerate(times)), default=0)


def check_daily_cap(snap: Snapshot, events: List[dict]) -> List[str]:
    """Never more than UPLOAD_CAP uploads began in 24 hours (youtube.max_uploads_per_day), and each
    refusal named a slot within the next 24 hours that an upload counted then leaves the window
    at."""
    most = most_uploads_in_a_day(snap)
    violations = ([f"{most} uploads began within 24 hours; the daily cap is {UPLOAD_CAP}"]
                  if most > UPLOAD_CAP else [])
    for e in events:
        if e["e"] == "capped":
            now, slot = (datetime.datetime.fromisoformat(e[k]) for k in ("now", "next_slot"))
            if not now < slot <= now + pm.Short.DAY:
                violations.append(f"{e['kind']} {e['id']} was refused at {now}, told the next slot "
                                  f"opens at {slot}")
    return violations


def check_attempts(snap: Snapshot) -> List[str]:
    """No run over MAX_ATTEMPTS attempts (none pending with them used up), and every failed run says
    why."""
    violations = []
    for run in snap.runs.values():
        if run.retry_count > MAX_ATTEMPTS - 1:
            violations.append(f"run {run.id} is {run.status} at retry_count {run.retry_count} (max "
                              f"{MAX_ATTEMPTS} attempts)")
        if run.status is RunStatus.failed and not (run.error_message or "").strip():
            violations.append(f"run {run.id} failed with no error_message")
        if (run.error_message or "").startswith("gave up after") and (
                run.status is not RunStatus.failed or run.retry_count != MAX_ATTEMPTS - 1
                or not run.error_message.startswith(f"gave up after {MAX_ATTEMPTS} attempts")):
            violations.append(f"run {run.id} is {run.status}, {run.error_message!r} at retry_count "
                              f"{run.retry_count}")
    return violations


def activity(snap: Snapshot, events: List[dict], fleet: Fleet) -> Dict[str, int]:
    """How much of each thing happened, for the summary and the ENOUGH check."""
    kinds = collections.Counter(e["e"] for e in events)
    answers = collections.Counter(e["action"] for e in events if e["e"] == "answer")
    scheduled = collections.Counter(
        (e["niche"], e["cycle"]) for e in events if e["e"] == "schedule")
    taken = collections.defaultdict(set)  # video -> the runs that took it
    for e in events:
        for video in e["videos"] if e["e"] == "take" else ():
            taken[video].add(e["run"])
    lease = LEASE.total_seconds()
    return {
        "claims": kinds["claim"],
        "clips": sum(map(len, snap.clips.values())),
        "shorts": sum(map(len, snap.shorts.values())),
        "reviews": sum(map(len, snap.reviews.values())),
        "retries": kinds["retry"],
        "fatal": kinds["fatal"],
        "janitor requeues": sum(e["n"] for e in events if e["e"] == "requeued"),
        "runs": len(snap.runs),
        "schedules": kinds["schedule"],
        "schedule repeats": sum(n - 1 for n in scheduled.values()),
        "answers approve": answers["approve"],
        "answers reject": answers["reject"],
        "answers hold": answers["hold"],
        "answers skip or redo_script": answers["skip"] + answers["redo_script"],
        "taps again": kinds["tap again"],
        "uploads": sum(1 for e in events if e["e"] in ("recorded", "recovered") and e["recorded"]),
        "uploader crashes": kinds["crash"],
        "in doubt recovered": kinds["recovered"],
        "in doubt released": kinds["abandoned"],
        "kills": len(fleet.killed),
        "stops": fleet.stops,
        "LeaseLost": kinds["lost"],
        "LeaseLost after a stall": sum(
            1 for e in events if e["e"] == "lost" and e["stalled"] > lease),
        "LeaseLost in a fenced write": sum(
            1 for e in events if e["e"] == "lost" and e["op"] in ("clip", "shorts")),
        "LeaseLost in a move": sum(1 for e in events if e["e"] == "lost" and e["op"] in OUTCOMES),
        "zombies": kinds["zombie"],
        "zombies that saw the run moved on": sum(1 for e in events if e["e"] == "zombie"
                                                 and e["seen"] not in ("pending", "running")),
        "zombie writes refused": sum(len(e["refused"]) for e in events if e["e"] == "zombie"),
        "zombie writes accepted": sum(len(e["accepted"]) for e in events if e["e"] == "zombie"),
        "videos taken again": sum(1 for runs in taken.values() if len(runs) > 1),  # by another run
        "most running at once": most_running(),
        "uploads refused at the cap": kinds["capped"],
        "most uploads in 24 h": most_uploads_in_a_day(snap),
        "errors": kinds["error"],
    }


# --- the command line -----------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    """Run a soak from the command line; 0 if every invariant held, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60,
                        help="how long the chaos lasts (default 60)")
    parser.add_argument("--workers", type=int, default=8,
                        help="worker processes at any time (default 8)")
    parser.add_argument("--db",
                        help="a new, empty postgresql:// database or SQLite path (default: a "
                             "temporary file)")
    parser.add_argument("--seed", type=int, help="seed the driver's choices (kills, freezes)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak_queue_") as tmp:
        target = args.db or os.path.join(tmp, "soak.db")
        report = soak(target, args.seconds, args.workers, Path(tmp) / "events", seed=args.seed)
    print(report.summary())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
