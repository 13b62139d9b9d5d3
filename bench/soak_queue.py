"""Chaos soak of the run queue: workers that get killed and frozen must never write under a lost lease.

Worker processes claim runs, write clips inside `run.fenced()`, heartbeat, then ask for a review or fail
the run (to retry, or for good). Meanwhile this driver SIGKILLs a random worker every few hundred ms and
starts a replacement, and about once a second SIGSTOPs a worker that holds a run for longer than the
lease, so that it wakes as a zombie whose writes must be refused. A janitor process requeues stale runs
and rejects the reviews the workers asked for (so that videos come round again). Afterwards the database
and the workers' logs are checked against the queue's invariants (see `check`).

    .venv/bin/python bench/soak_queue.py --seconds 300 --workers 16
    .venv/bin/python bench/soak_queue.py --seconds 60 --db postgresql://postgres@127.0.0.1:5432/soak

The --db database must be new and empty: every run and clip in it is checked against this soak's logs.
Without --db a new SQLite file in a temporary directory is used. Exits 0 when every invariant held, 1 when
one failed (each violation is printed). tests/test_queue_chaos.py runs the same soak for ~20 s per backend.
"""
import argparse
import collections
import dataclasses
import datetime
import json
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional

import peewee

import pipeline_models as pm
from pipeline_models import RunStatus

spawn = multiprocessing.get_context("spawn")

# --- the soak's settings --------------------------------------------------------------------------

VIDEOS = 40
LEASE = datetime.timedelta(milliseconds=300)  # requeue_stale's older_than: the lease a heartbeat renews
RETRY_DELAY_SECONDS = 0.05  # queue.retry_delay_seconds: requeued runs come back within ~0.1 s
MAX_ATTEMPTS = pm.PipelineRun.MAX_ATTEMPTS  # the default (3): left as it is, so the default is what is tested
JANITOR_EVERY = 0.1  # seconds between requeue_stale calls
ANSWER_AFTER = datetime.timedelta(milliseconds=200)  # the janitor rejects reviews open for longer
WORK_SECONDS = (0.0, 0.08)  # a worker "works" this long before each clip and before its move: inside the lease
KILL_EVERY = (0.3, 0.9)  # seconds between SIGKILLs
STOP_EVERY = (0.5, 1.2)  # seconds between SIGSTOPs: often, as a zombie meets its run's next holder by chance
STOP_FOR = (2 * LEASE.total_seconds(), 3.3 * LEASE.total_seconds())  # 0.6-1 s: longer than the lease
OUTCOMES = {"review": 7, "retry": 2, "fatal": 1}  # what a worker does with a run it finished, by weight

# The least activity that makes a soak meaningful: fewer, and the invariants may hold vacuously. Low, as
# a loaded 2-CPU machine makes ~60 claims in 20 s; what matters most is that zombies were refused.
ENOUGH = {"claims": 30, "clips": 30, "reviews": 5, "retries": 1, "fatal": 1, "janitor requeues": 1,
          "kills": 3, "stops": 3, "LeaseLost": 1, "LeaseLost after a stall": 1, "LeaseLost in a fenced write": 1}


# --- event logs: one JSON line per event, so a SIGKILLed process loses at most its last line --------


class EventLog:
    """Appends events to a file as JSON lines, each written (not just buffered) before the call returns."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", buffering=1)  # line buffered: a killed process loses no finished line

    def write(self, kind: str, **fields) -> None:
        """Record one event of `kind` with its fields."""
        self.file.write(json.dumps({"e": kind, **fields}, default=str) + "\n")

    def error(self, op: str, exc: BaseException, **fields) -> None:
        """Record an unexpected exception: any one fails the soak."""
        self.write("error", op=op, error=f"{type(exc).__name__}: {exc}",
                   trace=traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:], **fields)


def read_events(directory: Path) -> List[dict]:
    """Every event in the logs of `directory`; a line cut short by a SIGKILL is skipped."""
    events = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # the last line of a killed process
    return events


# --- the worker process ----------------------------------------------------------------------------


def worker_main(target: str, name: str, events_path: str, stop_at: float, seed: int) -> None:
    """A worker process: claim runs and work on them until the wall-clock time `stop_at`."""
    log = EventLog(events_path)
    try:
        pm.init_db(target)
        rng = random.Random(seed)
        video_ids = [v.id for v in pm.DiscoveredVideo.select(pm.DiscoveredVideo.id)]
        idle = False
        while time.time() < stop_at:
            if rng.random() < (0.5 if idle else 0.05):
                restart_a_video(rng, video_ids, log)
            run = claim(name, log)
            idle = run is None
            if idle:
                time.sleep(0.02)
            else:
                work_on(run, name, rng, log)
    except Exception as exc:  # init_db and the like: reported, and the soak fails
        log.error("worker", exc)


def restart_a_video(rng: random.Random, video_ids: List[int], log: EventLog) -> None:
    """start() a random video, again=True or not: it must return the active run, never queue a second one.

    With again=True a video whose runs all ended gets a new run: that keeps the queue fed.
    """
    again = rng.random() < 0.5
    try:
        video = pm.DiscoveredVideo.get_by_id(rng.choice(video_ids))
        run = pm.PipelineRun.start(video, again=again)
        log.write("start", video=video.id, run=run.id, again=again)
    except Exception as exc:
        log.error("start", exc)


def claim(name: str, log: EventLog) -> Optional[pm.PipelineRun]:
    """claim_next, logging the claim (before any clip of it can exist) or the error."""
    try:
        run = pm.PipelineRun.claim_next(name)
    except Exception as exc:
        log.error("claim_next", exc)
        time.sleep(0.05)  # an error that repeats must not flood the log
        return None
    if run is not None:
        log.write("claim", run=run.id, attempt=run.attempts, token=run.claim_token, worker=name)
    return run


def work_on(run: pm.PipelineRun, name: str, rng: random.Random, log: EventLog) -> None:
    """Write 1-3 clips under the fence, heartbeating after each, then ask for a review or fail the run.

    A freeze (SIGSTOP) usually lands in a "work" sleep, so the zombie's next call is a fenced clip write,
    or, after the last one, its move of the run.
    """
    progress = time.monotonic()  # when this worker last knew it held the run
    op = "clip"
    try:
        clips = rng.randint(1, 3)
        for i in range(clips):
            time.sleep(rng.uniform(*WORK_SECONDS))
            op = "clip"
            with run.fenced():
                # The claim rides in the clip, for the checks: token, attempt, worker.
                pm.Clip.create(pipeline_run=run, start_seconds=i, end_seconds=i + 1,
                               transcript=f"{run.claim_token}:{run.attempts}:{name}")
            op = "heartbeat"
            run.heartbeat(stage="render" if i == clips - 1 else f"clip {i + 1}")  # the stage it goes into
            progress = time.monotonic()
        time.sleep(rng.uniform(*WORK_SECONDS))  # "rendering": a zombie frozen here tries to move the run
        op = rng.choices(list(OUTCOMES), weights=list(OUTCOMES.values()))[0]
        finish(run, op)
        log.write(op, run=run.id, attempt=run.attempts, token=run.claim_token)
    except pm.LeaseLost:  # requeued while frozen or slow, maybe claimed again: drop the run
        log.write("lost", run=run.id, op=op, stalled=round(time.monotonic() - progress, 3))
    except Exception as exc:
        log.error(op, exc, run=run.id)


def finish(run: pm.PipelineRun, outcome: str) -> None:
    """Move the run on as `outcome` says: a review request, a failure to retry, or a failure for good."""
    if outcome == "review":
        pm.ReviewLog.request(run)
    elif outcome == "retry":
        run.fail("boom")
    else:
        run.fail("fatal", retry=False)


# --- the janitor process ---------------------------------------------------------------------------


def janitor_main(target: str, events_path: str, stop_at: float) -> None:
    """Requeue runs whose lease expired and reject reviews left open, every JANITOR_EVERY s until `stop_at`.

    A process of its own: on SQLite a frozen worker may hold the write lock for a second, and the driver,
    which alone can thaw it, must never wait for that lock.
    """
    log = EventLog(events_path)
    try:
        pm.init_db(target)
    except Exception as exc:
        log.error("janitor", exc)
        return
    while time.time() < stop_at:
        try:
            requeued = pm.PipelineRun.requeue_stale(LEASE)
            if requeued:
                log.write("requeued", n=requeued)
        except Exception as exc:
            log.error("requeue_stale", exc)
        try:
            answered = reject_open_reviews()
            if answered:
                log.write("rejected", n=answered)
        except Exception as exc:
            log.error("respond", exc)
        time.sleep(JANITOR_EVERY)


def reject_open_reviews() -> int:
    """Reject the reviews open for longer than ANSWER_AFTER (their videos may be started again); how many."""
    cutoff = pm.utcnow() - ANSWER_AFTER
    reviews = list(pm.ReviewLog.unanswered().where(pm.ReviewLog.sent_at < cutoff))
    return sum(review.respond("reject", reviewer="soak") for review in reviews)


# --- the driver: seeding, the fleet of workers, the chaos ------------------------------------------


def seed_queue(target: str) -> None:
    """Bind this process to `target`, set the retry delay, and queue a run for each of VIDEOS videos."""
    pm.init_db(target)
    pm.ConfigOverride.set(pm.PipelineRun.RETRY_DELAY_KEY, RETRY_DELAY_SECONDS)
    with pm.db.atomic():
        for i in range(VIDEOS):
            video, _ = pm.DiscoveredVideo.discover(f"soak{i:04d}", title=f"soak video {i}")
            pm.PipelineRun.start(video)


class Fleet:
    """The worker processes: started, killed and replaced, frozen and thawed; it knows which exits it caused."""

    def __init__(self, target: str, directory: Path, stop_at: float, rng: random.Random) -> None:
        self.target, self.directory, self.stop_at, self.rng = target, directory, stop_at, rng
        self.live: Dict[str, multiprocessing.Process] = {}
        self.killed: List[multiprocessing.Process] = []
        self.frozen: Dict[str, float] = {}  # name -> when to thaw it (time.monotonic())
        self.started = self.stops = 0
        self.problems: List[str] = []

    def start(self) -> None:
        """Start one worker under a new name (the name is what the runs' `worker` column shows)."""
        name = f"w{self.started}"
        self.started += 1
        proc = spawn.Process(target=worker_main, name=name, daemon=True,
                             args=(self.target, name, str(self.directory / f"{name}.jsonl"), self.stop_at,
                                   self.rng.randrange(2 ** 32)))
        proc.start()
        self.live[name] = proc

    def kill_one(self) -> None:
        """SIGKILL a random worker that is not frozen (a frozen one must wake, as a zombie) and replace it."""
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
        """SIGSTOP, for longer than the lease, a live worker that holds a running run (at `stage`, if given);
        False if none does."""
        running = (pm.PipelineRun.select(pm.PipelineRun.worker, pm.PipelineRun.current_stage)
                   .where(pm.PipelineRun.status == RunStatus.running))
        holders = sorted({run.worker for run in running if stage in (None, run.current_stage)}
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
        """Wait for every worker to stop at the deadline; a hung or crashed one is a problem."""
        self.thaw(everyone=True)
        end = time.monotonic() + timeout
        for name, proc in self.live.items():
            proc.join(max(0.1, end - time.monotonic()))
            if proc.is_alive():
                self.problems.append(f"worker {name} still running {timeout:.0f} s after the deadline (hung?)")
                proc.kill()
                proc.join(10)
            elif proc.exitcode != 0:
                self.problems.append(f"worker {name} exited with code {proc.exitcode}, not killed by the soak")


def drive(fleet: Fleet, stop_at: float, rng: random.Random) -> None:
    """The chaos, until `stop_at`: a SIGKILL every KILL_EVERY, a SIGSTOP of a run holder every STOP_EVERY.

    Every other SIGSTOP picks a worker about to move its run (stage "render"), so that zombies try moves as
    often as fenced writes (freezes at random mostly land before a clip, there being 1-3 of those).
    """
    now = time.monotonic()
    next_kill, next_stop = now + rng.uniform(*KILL_EVERY), now + rng.uniform(*STOP_EVERY)
    while time.time() < stop_at:
        now = time.monotonic()
        fleet.thaw()
        if now >= next_kill:
            fleet.kill_one()
            next_kill = now + rng.uniform(*KILL_EVERY)
        if now >= next_stop:
            stopped = fleet.freeze_a_holder("render" if fleet.stops % 2 else None)
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
        lines = [f"soak of {self.target}: {self.seconds:.0f} s, {self.workers} workers"]
        lines.append("  " + ", ".join(f"{k}: {v}" for k, v in self.counts.items()))
        lines.append("  runs by status: " + ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())))
        if self.violations:
            shown = self.violations[:30]
            lines.append(f"  {len(self.violations)} VIOLATIONS:")
            lines += [f"    - {v}" for v in shown]
            if len(self.violations) > len(shown):
                lines.append(f"    ... and {len(self.violations) - len(shown)} more")
        else:
            lines.append("  every invariant held")
        return "\n".join(lines)


def soak(target: str, seconds: float, workers: int, directory: Path, seed: Optional[int] = None) -> Report:
    """Run the chaos soak on `target` (a SQLite path or a postgresql:// URL) and check the invariants.

    `directory` receives the processes' event logs. This process stays bound to `target` afterwards.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    seed_queue(target)
    stop_at = time.time() + seconds
    janitor = spawn.Process(target=janitor_main, args=(target, str(directory / "janitor.jsonl"), stop_at),
                            daemon=True)
    janitor.start()
    fleet = Fleet(target, directory, stop_at, rng)
    for _ in range(workers):
        fleet.start()
    try:
        drive(fleet, stop_at, rng)
    finally:
        fleet.wait()
        janitor.join(60)
        if janitor.is_alive() or janitor.exitcode != 0:
            fleet.problems.append(f"the janitor did not stop cleanly (exit code {janitor.exitcode})")
            janitor.kill()
    return check(target, seconds, workers, read_events(directory), fleet)


# --- the checks ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Snapshot:
    """The database after the soak, read once: runs by id, their clips in id order, their reviews."""

    runs: Dict[int, pm.PipelineRun]
    clips: Dict[int, List[pm.Clip]]
    reviews: Dict[int, List[pm.ReviewLog]]

    @classmethod
    def read(cls) -> "Snapshot":
        """Read the bound database."""
        runs = {run.id: run for run in pm.PipelineRun.select()}
        clips, reviews = collections.defaultdict(list), collections.defaultdict(list)
        for clip in pm.Clip.select().order_by(pm.Clip.id):
            clips[clip.pipeline_run_id].append(clip)
        for review in pm.ReviewLog.select().order_by(pm.ReviewLog.id):
            reviews[review.pipeline_run_id].append(review)
        return cls(runs, clips, reviews)


class Claim(collections.namedtuple("Claim", "token attempt worker")):
    """One claim of a run: the token claim_next gave, the attempt it counted, the worker it went to."""


def claim_of(clip: pm.Clip) -> Claim:
    """The claim a clip was written under, from its transcript ("token:attempt:worker")."""
    token, attempt, worker = clip.transcript.split(":")
    return Claim(token, int(attempt), worker)


def check(target: str, seconds: float, workers: int, events: List[dict], fleet: Fleet) -> Report:
    """Check every invariant against the database (bound in this process) and the event logs."""
    snap = Snapshot.read()
    violations = list(fleet.problems)
    violations += check_errors(events)
    violations += check_fence(snap)
    violations += check_outcomes(snap, events)
    violations += check_claims(snap, events)
    violations += check_one_active_run(snap)
    violations += check_attempts(snap)
    counts = activity(snap, events, fleet)
    violations += [f"not enough happened for the checks to mean much: {name} {counts[name]} < {least} "
                   "(run longer?)" for name, least in ENOUGH.items() if counts[name] < least]
    statuses = collections.Counter(str(run.status) for run in snap.runs.values())
    return Report(target, seconds, workers, counts, dict(statuses), violations)


def check_errors(events: List[dict]) -> List[str]:
    """No process met an exception other than LeaseLost."""
    return [f"{e.get('op')} raised {e['error']} (run {e.get('run')}) at {' | '.join(e['trace'])!r}"
            for e in events if e["e"] == "error"]


def check_fence(snap: Snapshot) -> List[str]:
    """No write by a lost lease, read from each run's clips and reviews; see the three checks it runs."""
    violations = []
    for run in snap.runs.values():
        clips, reviews = snap.clips.get(run.id, []), snap.reviews.get(run.id, [])
        where = f"run {run.id} ({run.status}, attempt {run.attempts}, token {run.claim_token})"
        found = clips_in_claim_order(clips) + clips_of_current_claim(run, clips, reviews)
        found += clips_after_leaving_running(run, clips, reviews)
        violations += [f"{where}: {v}" for v in found]
    return violations


def clips_in_claim_order(clips: List[pm.Clip]) -> List[str]:
    """In id order a run's clips go attempt after attempt, one token per attempt.

    Id order is commit order within a run: a clip is inserted while its writer holds the run's lock, which
    the next claim has to wait for. So a zombie's clip after a newer claim's clip breaks this.
    """
    violations = []
    for before, after in zip(clips, clips[1:]):
        older, newer = claim_of(before), claim_of(after)
        if newer.attempt < older.attempt or (newer.attempt == older.attempt and newer != older):
            violations.append(f"clip {after.id} by {newer} came after clip {before.id} by {older}: "
                              "a write by a lost lease")
    return violations


def clips_of_current_claim(run: pm.PipelineRun, clips: List[pm.Clip], reviews: List[pm.ReviewLog]) -> List[str]:
    """The clips of the run's current attempt were written under its current token; and a run a worker moved
    on (reviewed, or failed by the worker, not the janitor) has clips of its current claim, as the worker
    writes clips before it moves the run, and only the claim holder may move it."""
    violations = []
    claims = {claim_of(clip) for clip in clips}
    for claim in claims:
        if claim.attempt > run.attempts or (claim.attempt == run.attempts and claim.token != run.claim_token):
            violations.append(f"clips by {claim}, which is not a claim the run had")
    current = {(c.token, c.attempt) for c in claims}
    if moved_by_worker(run, reviews) and (run.claim_token, run.attempts) not in current:
        violations.append("moved on by a worker, but no clip of its current claim: a lost lease moved it")
    return violations


def clips_after_leaving_running(run: pm.PipelineRun, clips: List[pm.Clip], reviews: List[pm.ReviewLog]) -> List[str]:
    """No clip is newer than the moment the run last left running (its review's sent_at, finished_at of a
    failed run, updated_at of a requeued one): those moves are timed inside the run's lock, after any clip
    transaction of the run committed."""
    left = left_running_at(run, reviews)
    late = [clip for clip in clips if left is not None and clip.created_at > left]
    if not late:
        return []
    return [f"{len(late)} clips written after the run left running at {left}, e.g. clip {late[0].id} by "
            f"{claim_of(late[0])} at {late[0].created_at}"]


def left_running_at(run: pm.PipelineRun, reviews: List[pm.ReviewLog]) -> Optional[datetime.datetime]:
    """When the run last stopped running, timed inside the move's lock; None while it still runs."""
    if reviews:
        return reviews[0].sent_at
    if run.status is RunStatus.failed:
        return run.finished_at
    if run.status is RunStatus.pending:
        return run.updated_at  # the requeue's time (or the queueing's): nothing else writes a pending run
    return None


def moved_by_worker(run: pm.PipelineRun, reviews: List[pm.ReviewLog]) -> bool:
    """True when a worker, not the janitor, made the run's last move out of running."""
    if reviews:
        return True
    return run.status is RunStatus.failed and "no heartbeat" not in (run.last_error or "")


def check_outcomes(snap: Snapshot, events: List[dict]) -> List[str]:
    """Each review, and each failure for good, a worker made was made by the run's last claim holder, once.

    Runs never leave awaiting_review, rejected or failed for another claim in the soak (nobody calls
    retry()), so the run still carries the token and attempt of the worker that moved it there.
    """
    violations = []
    for run_id, reviews in snap.reviews.items():
        if len(reviews) > 1:
            violations.append(f"run {run_id} has {len(reviews)} review requests: a lost lease asked too")
    for e in events:
        run = snap.runs.get(e.get("run"))
        final = e["e"] in ("review", "fatal") or (e["e"] == "retry" and e["attempt"] >= MAX_ATTEMPTS)
        if final and run is not None and (run.claim_token, run.attempts) != (e["token"], e["attempt"]):
            violations.append(f"run {run.id}: a worker's {e['e']} at attempt {e['attempt']} succeeded, but the "
                              f"run's claim is now attempt {run.attempts} ({run.claim_token}), not that "
                              f"worker's ({e['token']})")
        elif e["e"] == "retry" and run is not None and not final and not requeued_by(run, e):
            violations.append(f"run {run.id}: a worker's retry at attempt {e['attempt']} succeeded, but the "
                              f"run is {run.status} at attempt {run.attempts} under {run.claim_token}")
    return violations


def requeued_by(run: pm.PipelineRun, retry: dict) -> bool:
    """Whether the run is where the worker's successful retry (fail("boom")) left it: pending under that
    worker's claim, or claimed again since (a later attempt)."""
    if run.attempts != retry["attempt"]:
        return run.attempts > retry["attempt"]
    return run.status is RunStatus.pending and run.claim_token == retry["token"]


def check_claims(snap: Snapshot, events: List[dict]) -> List[str]:
    """No run claimed twice in one attempt, and a token of its own for every claim: one token per (run,
    attempt) and one (run, attempt) per token, among the claims workers logged and those clips carry.
    And every clip was written under a claim its worker was given."""
    given = {(e["run"], Claim(e["token"], e["attempt"], e["worker"])) for e in events if e["e"] == "claim"}
    written = {(run_id, claim_of(clip)) for run_id, clips in snap.clips.items() for clip in clips}
    tokens, uses = collections.defaultdict(set), collections.defaultdict(set)
    for run_id, claim in given | written:
        tokens[run_id, claim.attempt].add(claim.token)
        uses[claim.token].add((run_id, claim.attempt))
    violations = [f"run {run_id} was claimed {len(found)} times in attempt {attempt}: {sorted(found)}"
                  for (run_id, attempt), found in sorted(tokens.items()) if len(found) > 1]
    violations += [f"token {token} was given {len(found)} times: (run, attempt) {sorted(found)}"
                   for token, found in uses.items() if len(found) > 1]
    violations += [f"run {run_id}: clips by {claim}, a claim no worker was given"
                   for run_id, claim in sorted(written - given)]
    return violations


def check_one_active_run(snap: Snapshot) -> List[str]:
    """No video with two active runs, now (SQL) or ever (a video's runs follow one another)."""
    Run = pm.PipelineRun
    doubled = (Run.select(Run.discovered_video, peewee.fn.COUNT(Run.id).alias("n"))
               .where(Run.status.in_(Run.ACTIVE)).group_by(Run.discovered_video)
               .having(peewee.fn.COUNT(Run.id) > 1))
    violations = [f"video {row.discovered_video_id} has {row.n} active runs" for row in doubled]
    by_video = collections.defaultdict(list)
    for run in sorted(snap.runs.values(), key=lambda run: run.id):
        by_video[run.discovered_video_id].append(run)
    for video_id, runs in by_video.items():
        for before, after in zip(runs, runs[1:]):  # a run is queued only once every earlier one has ended
            if before.status not in Run.FINISHED or before.finished_at > after.created_at:
                violations.append(f"video {video_id}: run {after.id} was queued at {after.created_at} while "
                                  f"run {before.id} was still active ({before.status}, finished {before.finished_at})")
    return violations


def check_attempts(snap: Snapshot) -> List[str]:
    """No run over MAX_ATTEMPTS attempts (none pending at it), and every failed run says why."""
    violations = []
    for run in snap.runs.values():
        if run.attempts > MAX_ATTEMPTS or (run.status is RunStatus.pending and run.attempts >= MAX_ATTEMPTS):
            violations.append(f"run {run.id} is {run.status} after {run.attempts} attempts (max {MAX_ATTEMPTS})")
        if run.status is RunStatus.failed and not (run.last_error or "").strip():
            violations.append(f"run {run.id} failed with no last_error")
        if (run.last_error or "").startswith("gave up after") and run.attempts != MAX_ATTEMPTS:
            violations.append(f"run {run.id} {run.last_error!r} at attempt {run.attempts}")
    return violations


def activity(snap: Snapshot, events: List[dict], fleet: Fleet) -> Dict[str, int]:
    """How much of each thing happened, for the summary and the ENOUGH check."""
    kinds = collections.Counter(e["e"] for e in events)
    lease = LEASE.total_seconds()
    return {
        "claims": kinds["claim"],
        "clips": sum(map(len, snap.clips.values())),
        "reviews": sum(map(len, snap.reviews.values())),
        "retries": kinds["retry"],
        "fatal": kinds["fatal"],
        "janitor requeues": sum(e["n"] for e in events if e["e"] == "requeued"),
        "starts": kinds["start"],
        "kills": len(fleet.killed),
        "stops": fleet.stops,
        "LeaseLost": kinds["lost"],
        "LeaseLost after a stall": sum(1 for e in events if e["e"] == "lost" and e["stalled"] > lease),
        "LeaseLost in a fenced write": sum(1 for e in events if e["e"] == "lost" and e["op"] == "clip"),
        "LeaseLost in a move": sum(1 for e in events if e["e"] == "lost" and e["op"] in OUTCOMES),
        "errors": kinds["error"],
    }


# --- the command line ------------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    """Run a soak from the command line; 0 if every invariant held, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="how long the chaos lasts (default 60)")
    parser.add_argument("--workers", type=int, default=8, help="worker processes at any time (default 8)")
    parser.add_argument("--db", help="a new, empty postgresql:// database or SQLite path (default: a temporary file)")
    parser.add_argument("--seed", type=int, help="seed the driver's choices (kills, freezes)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak_queue_") as tmp:
        target = args.db or os.path.join(tmp, "soak.db")
        report = soak(target, args.seconds, args.workers, Path(tmp) / "events", seed=args.seed)
    print(report.summary())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
