"""`pipeline-models demo`: the pipeline's cycles simulated on a SQLite file (or PostgreSQL), on
a simulated clock.

`niches` niches (of gaming, sports, funny, entertainment; 2), four 6-hour cycles a day for `days`
days (3), every step one of the package's operations: the scheduler schedules each niche's run at
its cycle's start (PipelineRun.schedule); three workers claim them (claim_next: at most 2 running,
a paused niche waits); a run discovers its cycle's candidates (DiscoveredVideo.discover), takes
the niche's 15 best pending ones (take_candidates), cuts a clip of each (a few downloads fail) and
keeps the top 8-10 ranked (keep_clips), writes the script, the TTS audio, the long-form render and
3-5 shorts, and asks for a review (ReviewLog.request). The reviewers give every answer (a button
tapped twice too); a janitor reminds the late ones (due_reminders, mark_reminded) and auto-holds
those nobody answers (hold_stale), then uploaded by /force_upload. One niche is paused for a
morning. The uploader uploads each approved run's video, then its shorts (start_upload,
mark_uploaded) within a daily cap of 10 a niche, waiting for the slot UploadCapReached names.
Analytics of both are sampled every 6 hours.

What goes wrong grows with the story (_Plan): of every 12 runs one fails for good (its script, TTS
or render, every attempt) and one fails once and is retried; of every 24 runs one gets each answer
that is not a prompt approve, and one is answered late; at least one of each while runs are enough.

Time is simulated (operations take it as `now=`; what others stamp is set to it after); the story
lies in the past, takes seconds, and is the same for the same shape, seed and day on any backend.
"""
import heapq
import itertools
import math
import random
import sys
import time
from collections import Counter, deque
from datetime import datetime, timedelta
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Set, Tuple

from .cli_output import plural, shown, table
from .demo_db import MARKER, fresh_database  # noqa: F401  (MARKER: importable from here)
from .enums import (ContentIdRisk, ExtractionMethod, Processed, ReviewAction, RunStatus,
                    ShortStatus)
from .errors import PipelineModelsError, UploadCapReached
from .fields import utcnow, whole_number
from .models import (ALL_MODELS, Analytics, Clip, ConfigOverride, DiscoveredVideo,  # noqa: F401
                     ErrorLog, PipelineRun, ReviewLog, Script, Short, TTSAudio,
                     mark_video_processed)  # ALL_MODELS: importable from here, as in 0.2.0
from .models.uploads import UploadOnce
from .queries import status_rows

SOURCES = ["youtube_trending", "youtube_search", "reddit"]
SEED = 2026  # the demo's randomness: the same seed, the same story
WORKERS = 3  # one more than the concurrency cap lets run at once: the cap has something to refuse
# The niches `niches=N` takes the first N of, and their YouTube category.
NICHES = {"gaming": 20, "sports": 17, "funny": 23, "entertainment": 24}
MAX_DAYS = 30  # days=, at most: a month of 4 niches' cycles takes about 3 minutes
CYCLES = 4  # cycles a day, one every 6 hours; a niche's start 30 minutes after the one before
UPLOADS_A_NICHE = 10  # the daily upload cap, per niche: below what they make, so uploads wait
_SNAPSHOTS = 12  # analytics every 6 hours for 3 days after each upload
_DOWNLOAD_FAILS = 0.12  # the share of candidates whose download fails (while enough are left)
# The stages a run fails at, in turn: a run fails every attempt (for good) or its first only.
_FAILING = ("tts", "render", "script")
# The reviewers' first answers other than a prompt approve, in turn; "unanswered": nobody answers.
_ROLES = ("reject", "hold", "skip", "redo_script", "unanswered", "held_then_approved")
_FORCED_AFTER = timedelta(hours=7)  # unanswered: reminded at 2 h, auto-held at 4 h, forced at 7 h
_PAUSE = (timedelta(hours=5), timedelta(hours=12, minutes=45))  # a niche paused, from a day's start
_JANITOR = timedelta(minutes=10)  # how often the reminder and auto-hold cron runs
_STAGES = {"discover": (3, 6), "clip": (15, 25), "script": (2, 4), "tts": (3, 6),
           "render": (18, 28)}  # minutes
_UPLOAD_MINUTES = {"run": 6, "short": 1}  # how long an upload takes
_SHOWN = 4  # the runs that failed the summary names, one a line


class RenderCrashed(RuntimeError):
    """The simulated render failure of the demo."""


class SynthesisFailed(RuntimeError):
    """The simulated TTS failure of the demo."""


class ScriptTimedOut(RuntimeError):
    """The simulated LLM failure of the demo."""


_FAILURES = {"render": (RenderCrashed, "ffmpeg exited 1 rendering run {}: moov atom not found"),
             "tts": (SynthesisFailed, "xtts_v2: CUDA out of memory synthesising run {}"),
             "script": (ScriptTimedOut, "gpt-4.1-mini: no answer in 60 s writing run {}'s script")}


# --- the simulation -----------------------------------------------------------------------------

_Key = Tuple[str, int]  # a run's niche and cycle number


class _Plan:
    """What goes wrong, and how the reviewers answer, by (niche, cycle number), seeded.

    Of every 12 runs one fails for good and one fails once (retried), at the stages of _FAILING in
    turn; of every 24 one gets each of _ROLES and one is answered late (2.5 hours: reminded), at
    least one of each: at most half of the runs that do not fail get another answer than approve.
    """

    def __init__(self, keys: List[_Key], seed: int) -> None:
        rng = random.Random(f"{seed}:plan")
        order = sorted(keys)
        rng.shuffle(order)
        failing, per_role = max(1, round(len(keys) / 12)), max(1, round(len(keys) / 24))
        doomed, rest = order[:failing], order[failing:]
        flaky = rng.sample(rest, min(len(rest), failing))
        self.fails: Dict[_Key, Tuple[str, bool]] = {  # key -> (stage, every attempt)
            **{key: (_FAILING[n % 3], False) for n, key in enumerate(flaky, 1)},
            **{key: (_FAILING[n % 3], True) for n, key in enumerate(doomed)}}
        roles = [role for _ in range(per_role) for role in _ROLES][:(len(rest) + 1) // 2]
        self.roles: Dict[_Key, str] = dict(zip(rest, roles))
        self.late: Set[_Key] = set(rest[len(roles):len(roles) + per_role])

    def failure(self, key: _Key, stage: str, run: PipelineRun) -> Optional[Exception]:
        """The exception `run` (of `key`) raises at `stage` in its attempt now, if any."""
        where, always = self.fails.get(key, ("", False))
        if where != stage or (run.retry_count and not always):
            return None
        kind, text = _FAILURES[stage]
        return kind(text.format(run.id))


def _ranked(run: PipelineRun) -> List[Clip]:
    return list(run.clips.where(Clip.dropped_at.is_null()).order_by(Clip.rank_position))


def _stamp(model: Any, row_id: Any, **times: datetime) -> None:
    """Set times an operation took from the machine's clock to the simulated ones."""
    model.update(**times).where(model._meta.primary_key == row_id).execute()


class _Story:
    """The simulated pipeline: a clock, its events, workers, reviewers, uploader and janitor.

    Events are (time, order, what, arguments): handled in time order, ties in the order they were
    made, so the same seed tells the same story.
    """

    def __init__(self, niches: List[str], days: int, videos: int, seed: int, first: datetime):
        self.niches, self.days, self.videos, self.seed = niches, days, videos, seed
        self.events: List[Tuple[datetime, int, str, Tuple[Any, ...]]] = []
        self.order = itertools.count()
        self.now = first
        # The cycles' starts, staggered by 30 minutes a niche.
        self.starts = sorted(
            (first + timedelta(hours=6 * cycle, minutes=30 * (n + 1)), niche, cycle)
            for cycle in range(days * CYCLES) for n, niche in enumerate(niches))
        self.plan = _Plan([(niche, cycle) for _, niche, cycle in self.starts], seed)
        self.paused = niches[1] if len(niches) > 1 else niches[0]  # paused for a morning
        self.idle = [f"worker-{n + 1}" for n in range(WORKERS)]  # those without a run, by name
        self.held: Dict[str, PipelineRun] = {}  # worker -> the run it claimed (holds the claim)
        self.cycles: Dict[int, _Key] = {}  # run id -> (niche, cycle number)
        self.uploads: Deque[Tuple[str, int]] = deque()  # ("run" | "short", id), in upload order
        self.uploading = False
        self.said: Counter = Counter()  # what happened, for the summary
        self.most_running = 0

    # the clock
    def at(self, when: datetime, what: str, *args: Any) -> None:
        heapq.heappush(self.events, (when, next(self.order), what, args))

    def rng(self, *words: Any) -> random.Random:
        return random.Random(":".join(map(str, (self.seed, *words))))

    def run_until_done(self, progress: Callable[[str], None], every: float) -> None:
        """Handle the events in time order until none is left (the janitor while others are)."""
        shown_at = time.monotonic()
        while self.events:
            self.now, _, what, args = heapq.heappop(self.events)
            getattr(self, "_" + what)(*args)
            if what == "janitor" and self.events:
                self.at(self.now + _JANITOR, "janitor")
            self._dispatch()
            if time.monotonic() - shown_at >= every:
                shown_at = time.monotonic()
                done = PipelineRun.select().where(
                    PipelineRun.status.not_in([RunStatus.pending, RunStatus.running])).count()
                progress(f"  simulated {self.now:%Y-%m-%d %H:%M}: {done}/{len(self.starts)} runs "
                         "through production")

    # the scheduler and the operator
    def _cycle(self, niche: str, cycle: int, start: datetime) -> None:
        """A cycle begins: the scheduler schedules its run."""
        run = PipelineRun.schedule(niche, start)
        _stamp(PipelineRun, run.id, created_at=start, updated_at=start)
        self.cycles[run.id] = (niche, cycle)

    def _pause(self, niche: str, paused: bool) -> None:
        """The operator pauses `niche` (paused), or resumes it."""
        (PipelineRun.pause if paused else PipelineRun.resume)(niche, updated_by="@ops")
        _stamp(ConfigOverride, PipelineRun.PAUSED_KEY.format(niche), updated_at=self.now)

    def _wake(self) -> None:
        """A requeued run is due again: _dispatch claims it."""

    # the workers
    def _dispatch(self) -> None:
        """Each idle worker asks for a run; the cap of 2 running (or an empty queue) says no."""
        while self.idle:
            run = PipelineRun.claim_next(self.idle[0], now=self.now)
            if run is None:
                due = PipelineRun.select().where(
                    (PipelineRun.status == RunStatus.pending)
                    & (PipelineRun.cycle_start <= self.now)
                    & (PipelineRun.not_before.is_null() | (PipelineRun.not_before <= self.now))
                    & PipelineRun.niche.not_in(sorted(PipelineRun.paused_niches()) or [""]))
                if due.exists():  # a run was due and a worker free: only the cap kept it waiting
                    self.said["cap waits"] += 1
                return
            worker = self.idle.pop(0)
            self.held[worker] = run
            running = PipelineRun.select().where(PipelineRun.status == RunStatus.running).count()
            self.most_running = max(self.most_running, running)
            stage = run.current_stage if run.current_stage in _STAGES else "discover"
            self._begin(worker, run, stage)

    def _begin(self, worker: str, run: PipelineRun, stage: str) -> None:
        run.heartbeat(stage=stage)  # between slow steps: the queue sees the worker alive
        _stamp(PipelineRun, run.id, heartbeat_at=self.now, updated_at=self.now)
        low, high = _STAGES[stage]
        took = self.rng(*self.cycles[run.id], stage, run.retry_count,
                        run.reviews.count()).uniform(low, high)
        self.at(self.now + timedelta(minutes=took), "stage_done", worker, stage)

    def _stage_done(self, worker: str, stage: str) -> None:
        """The worker finished the slow part of `stage`: its results are written under the claim."""
        run = self.held[worker]
        niche, cycle = self.cycles[run.id]
        rng = self.rng(niche, cycle, stage, run.reviews.count())
        try:
            # Outside the stage's transaction: the error is kept when the stage rolls back.
            with ErrorLog.capture(stage, pipeline_run=run):
                failure = self.plan.failure((niche, cycle), stage, run)
                if failure:
                    raise failure
                getattr(self, "_" + stage)(run, niche, cycle, rng)
        except tuple(kind for kind, _ in _FAILURES.values()) as exc:
            error = ErrorLog.select().where(ErrorLog.pipeline_run == run.id).order_by(
                ErrorLog.id.desc()).first()
            _stamp(ErrorLog, error.id, occurred_at=self.now)
            run.fail(exc, now=self.now)  # pending after 30 s, then 90 s; the third is for good
            _stamp(PipelineRun, run.id, updated_at=self.now,
                   **({"completed_at": self.now} if run.status is RunStatus.failed else {}))
            if run.status is RunStatus.pending:
                self.at(run.not_before, "wake")
            self._free(worker)
            return
        later = list(_STAGES)[list(_STAGES).index(stage) + 1:]
        if later:
            self._begin(worker, run, later[0])
            return
        review = ReviewLog.request(run, message_id=f"chat:4242:{run.id}:{run.reviews.count() + 1}")
        _stamp(ReviewLog, review.id, sent_at=self.now)
        _stamp(PipelineRun, run.id, updated_at=self.now)
        self._free(worker)
        self._reviewer(run, review)

    def _free(self, worker: str) -> None:
        del self.held[worker]
        self.idle = sorted(self.idle + [worker])

    def _candidates(self, niche: str, cycle: int) -> List[Dict[str, Any]]:
        """The videos discovery finds for `niche`'s cycle number `cycle`, the same every time."""
        rng = self.rng(niche, cycle, "discovery")
        found = []
        for n in range(self.videos):
            views, hours = rng.randint(20_000, 3_000_000), rng.uniform(1, 6)
            creator = rng.randint(1, 40)
            found.append(dict(
                video_id=f"{niche[:2]}{cycle:03d}x{n:05d}",
                title=f"{niche.title()} moment {cycle}-{n}",
                channel_name=f"{niche.title()} creator {creator}",
                channel_id=f"UC{niche[:2]}{creator:04d}",
                niche=niche, category_id=NICHES[niche], duration_seconds=rng.randint(240, 1800),
                view_count=views, like_count=views // rng.randint(20, 60),
                comment_count=views // rng.randint(200, 900), view_velocity=round(views / hours, 1),
                viral_score=round(rng.uniform(20, 100), 2), discovery_source=rng.choice(SOURCES),
                age_hours=hours,
                content_id_risk=rng.choices(list(ContentIdRisk), weights=[6, 2, 1, 3])[0]))
        return found

    # the stages
    def _discover(self, run: PipelineRun, niche: str, cycle: int, rng: random.Random) -> None:
        """The cycle's candidates, once each; the first of the cycle before found again, hotter."""
        for candidate in self._candidates(niche, cycle):
            age = timedelta(hours=candidate.pop("age_hours"))
            video, created = DiscoveredVideo.discover(candidate.pop("video_id"),
                                                      published_at=self.now - age, **candidate)
            if created:
                _stamp(DiscoveredVideo, video.id, discovered_at=self.now)
        again = self._candidates(niche, cycle - 1)[0] if cycle else {}
        # The cycle before's run may still be discovering (a paused niche's runs start at once).
        found = DiscoveredVideo.select().where(DiscoveredVideo.video_id == again.get("video_id"))
        if found.exists():
            DiscoveredVideo.discover(again["video_id"], view_count=again["view_count"] * 3,
                                     viral_score=min(100.0, again["viral_score"] * 1.5))

    def _clip(self, run: PipelineRun, niche: str, cycle: int, rng: random.Random) -> None:
        """Take the niche's best pending candidates, cut a clip of each, keep the top ranked."""
        candidates = run.take_candidates()  # 15: reserved for this run, no other run gets them
        self.said["taken"] += len(candidates)
        low = ConfigOverride.setting(PipelineRun.MIN_CLIPS_KEY.format(niche), PipelineRun.MIN_CLIPS)
        cut, failed = [], []
        for video in candidates:
            # A download fails now and then, while enough are left.
            if rng.random() < _DOWNLOAD_FAILS and len(candidates) - len(failed) > low:
                failed.append(video)
                continue
            # At most 25 s, under 10 % of the video.
            length = round(min(rng.uniform(15, 25), video.duration_seconds / 10), 2)
            begin = round(rng.uniform(0, video.duration_seconds - length), 2)
            cut.append(dict(
                discovered_video=video, start_time_seconds=begin, end_time_seconds=begin + length,
                clip_duration_seconds=length,
                extraction_method=rng.choices(list(ExtractionMethod), weights=[5, 3, 2, 1])[0],
                score=round(video.viral_score * rng.uniform(0.7, 1.3), 2),
                content_id_risk=video.content_id_risk, transcript=f"What happens in {video.title}.",
                clip_file_path=f"clips/{run.id}/{video.video_id}.mp4", created_at=self.now))
        # A day's last cycle leaves nothing stale for tomorrow: its candidates not kept are skipped,
        # not pending (the demo's last day has no tomorrow: its leftovers stay pending, to look at).
        last = cycle % CYCLES == CYCLES - 1 and cycle < (self.days - 1) * CYCLES
        others = Processed.skipped if last else Processed.pending
        with run.fenced():  # the failed downloads and the kept clips in one transaction
            for video in failed:
                mark_video_processed(video.video_id, Processed.skipped)
            kept = run.keep_clips(sorted(cut, key=lambda clip: -clip["score"]), others=others)
        self.said["download failed"] += len(failed)
        self.said["kept"] += len(kept)

    def _script(self, run: PipelineRun, niche: str, cycle: int, rng: random.Random) -> None:
        """The countdown's narration, from the last rank to rank 1, with what the LLM call cost."""
        clips = _ranked(run)[::-1]
        opening = f"The {len(clips)} wildest {niche} moments of the day."
        closing = "Subscribe for the next countdown."
        parts = [{"rank": c.rank_position, "intro": f"Number {c.rank_position}.",
                  "outro": "Unbelievable."} for c in clips]
        narration = len(opening) + len(closing) + sum(len(p["intro"]) + len(p["outro"])
                                                      for p in parts)
        prompt, completion = rng.randint(1500, 4000), rng.randint(400, 1200)
        with run.fenced():
            Script.create(pipeline_run=run, opening_text=opening, closing_text=closing,
                          full_script_json={"opening": opening, "clips": parts, "closing": closing},
                          total_char_count=narration,
                          estimated_duration_seconds=round(narration / 15, 1),
                          llm_model_used="gpt-4.1-mini", title=f"Top {len(clips)} {niche} moments",
                          prompt_tokens=prompt, completion_tokens=completion,
                          cost_usd=round(prompt * 0.4e-6 + completion * 1.6e-6, 6),
                          generated_at=self.now)

    def _tts(self, run: PipelineRun, niche: str, cycle: int, rng: random.Random) -> None:
        script = run.scripts.order_by(Script.generated_at.desc(), Script.id.desc()).first()
        with run.fenced():
            TTSAudio.create(pipeline_run=run, voice_profile="narrator",
                            engine_used=rng.choice(["xtts_v2", "styletts2", "piper"]),
                            audio_file_path=f"audio/{run.id}-{run.audio.count() + 1}.wav",
                            duration_seconds=script.estimated_duration_seconds,
                            generated_at=self.now)

    def _render(self, run: PipelineRun, niche: str, cycle: int, rng: random.Random) -> None:
        """The long-form countdown (8-10 minutes) and 3-5 shorts of its top ranks."""
        clips = _ranked(run)
        with run.fenced():
            run.video_file_path = (f"renders/{niche}/{run.cycle_start:%Y%m%d-%H%M}-"
                                   f"{run.reviews.count() + 1}.mp4")
            run.video_duration_seconds = round(rng.uniform(480, 600), 1)
            run.video_file_size_bytes = int(run.video_duration_seconds * rng.uniform(0.9e6, 1.3e6))
            run.save(only=[PipelineRun.video_file_path, PipelineRun.video_duration_seconds,
                           PipelineRun.video_file_size_bytes])
            for clip in clips[:rng.randint(3, 5)]:
                source = DiscoveredVideo.get_by_id(clip.discovered_video_id)
                Short.create(pipeline_run=run, clip=clip,
                             file_path=f"shorts/{run.id}/{clip.rank_position}.mp4",
                             duration_seconds=clip.clip_duration_seconds, created_at=self.now,
                             title=f"#{clip.rank_position}: {source.title}",
                             description=(f"Clip of {source.title} by {source.channel_name}: "
                                          f"{source.url}"))

    # the reviewers, the janitor, /force_upload
    def _reviewer(self, run: PipelineRun, review: ReviewLog) -> None:
        """When, and how, the reviewers answer a request just sent."""
        key = self.cycles[run.id]
        first = review.message_id.endswith(":1")
        role = self.plan.roles.get(key, "approve") if first else "approve"  # redone work: approved
        if role == "unanswered":  # reminded, auto-held by the janitor, then forced
            self.at(self.now + _FORCED_AFTER, "force", run.id)
            return
        action = "hold" if role == "held_then_approved" else role
        attempt = review.message_id.rsplit(":", 1)[1]
        minutes = 150.0 if key in self.plan.late and first else min(
            100.0, self.rng(*key, attempt).lognormvariate(3.0, 0.8))
        detail = None
        if action == "skip":
            ranks = [clip.rank_position for clip in _ranked(run)]
            wanted = [rank for rank in (4, 7) if rank in ranks] if len(ranks) >= 8 else ranks[-1:]
            action, detail = (("skip", "skip " + ",".join(map(str, wanted))) if len(ranks) > 1
                              else ("approve", None))
        answered = self.now + timedelta(minutes=minutes)
        self.at(answered, "answer", review.message_id, action, detail, "@alice")
        if role == "held_then_approved":
            self.at(answered + timedelta(hours=5), "answer", review.message_id, "approve", None,
                    "@bob")

    def _answer(self, message_id: str, action: str, detail: Optional[str], reviewer: str) -> None:
        """A reviewer taps an answer on the chat message `message_id`."""
        review, recorded = ReviewLog.answer(message_id, action, response_detail=detail,
                                            reviewer=reviewer)
        if not recorded:
            return
        self.said[detail or action] += 1
        _stamp(ReviewLog, review.id, responded_at=self.now)
        run = PipelineRun.get_by_id(review.pipeline_run_id)
        done = {"completed_at": self.now} if run.status is RunStatus.rejected else {}
        _stamp(PipelineRun, run.id, updated_at=self.now, **done)
        if action == "skip":
            Clip.update(dropped_at=self.now).where((Clip.pipeline_run == run.id)
                                                   & (Clip.dropped_at > self.now)).execute()
        if run.status is RunStatus.approved:
            if not self.said["double tap"]:  # the button tapped twice: the second changes nothing
                self.said["double tap"] += 1
                changed = ReviewLog.answer(message_id, action, reviewer=reviewer)[1]
                self.said["double tap changed it"] += changed
            self._approved(run)

    def _janitor(self) -> None:
        """The cron: remind each late review once, auto-hold those nobody answered in 4 hours."""
        for review in ReviewLog.due_reminders(now=self.now):
            if review.mark_reminded(now=self.now):  # True for one caller only: one reminder each
                self.said["reminded"] += 1
        self.said["auto-held"] += ReviewLog.hold_stale(now=self.now)

    def _force(self, run_id: int) -> None:
        """/force_upload: an operator approves the auto-held run."""
        held = ReviewLog.force_upload(run_id, reviewer="@ops")
        _stamp(ReviewLog, held.id, responded_at=self.now)
        _stamp(PipelineRun, run_id, updated_at=self.now)
        self.said["forced"] += 1
        self._approved(PipelineRun.get_by_id(run_id))

    # the uploader
    def _approved(self, run: PipelineRun) -> None:
        self.uploads.append(("run", run.id))
        if not self.uploading:
            self.uploading = True
            self.at(self.now + timedelta(minutes=5), "upload")

    def _upload(self) -> None:
        """Upload the next video in line, within the daily cap: past it, wait for the slot named."""
        kind, row_id = self.uploads[0]
        row = PipelineRun.get_by_id(row_id) if kind == "run" else Short.get_by_id(row_id)
        try:
            row.start_upload(now=self.now)
        except UploadCapReached as full:
            self.said["deferred"] += 1
            self.at(full.next_slot, "upload")
            return
        self.uploads.popleft()
        done = self.now + timedelta(minutes=_UPLOAD_MINUTES[kind])
        if kind == "run":
            row.mark_uploaded(f"lf{row.id:05d}", uploaded_at=done)
            _stamp(PipelineRun, row.id, updated_at=done)
            shorts = row.shorts.where(Short.status == ShortStatus.review).order_by(Short.id)
            self.uploads.extendleft(("short", short.id) for short in reversed(list(shorts)))
        else:
            row.mark_uploaded(f"sh{row.pipeline_run_id:05d}r{row.clip.rank_position}",
                              uploaded_at=done)
        self.said[f"uploaded {kind}"] += 1
        self.uploading = bool(self.uploads)
        if self.uploading:
            self.at(done, "upload")


# --- the demo -----------------------------------------------------------------------------------

def run_demo(target: str = "pipeline-demo.db", videos: int = 12, out: Callable[[str], None] = print,
             progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
             progress_every: float = 2.0, seed: int = SEED, *, niches: int = 2,
             days: int = 3) -> None:
    """Simulate the pipeline on `target` and print what happened: the first `niches` of NICHES (1
    to 4), four cycles a day for `days` days (1 to 30), `videos` candidates discovered per niche per
    cycle.

    `target` is a SQLite file path or URL, or a PostgreSQL URL: a new or empty database, or one an
    earlier demo made (made anew); anything else is refused, unchanged, with PipelineModelsError. A
    bad `niches`, `days` or `videos` is a ValueError naming it, with nothing written. While it runs
    longer than `progress_every` seconds, `progress` gets a line about how far it is. The same
    `seed` tells the same story.
    """
    for name, value, highest in (("niches", niches, len(NICHES)), ("days", days, MAX_DAYS),
                                 ("videos", videos, 10_000)):  # checked before anything is written
        whole_number(f"run_demo: {name}", 1, highest)(value)
    began = time.monotonic()
    fresh_database(target)
    names = list(NICHES)[:niches]
    # Fewer candidates a cycle than a countdown's 8: the channels make do. Two runs may take theirs
    # at once (a paused niche resumed): fewer than both takes need, each takes one cycle's at most.
    run, least = PipelineRun, {PipelineRun.MIN_CLIPS_KEY: videos < PipelineRun.MIN_CLIPS}
    least[run.CANDIDATES_KEY] = 2 * videos < run.CANDIDATES + run.MIN_CLIPS
    for key in [key.format(niche) for key, needed in least.items() if needed for niche in names]:
        ConfigOverride.set(key, videos, updated_by="demo")
    if UPLOADS_A_NICHE * niches != UploadOnce.MAX_UPLOADS:
        ConfigOverride.set(UploadOnce.MAX_UPLOADS_KEY, UPLOADS_A_NICHE * niches, updated_by="demo")
    # The story ends days ago: each day's runs and their uploads (their cap lets through 10 of the
    # up to 24 a niche makes a day: 2.4 days of uploading a day), then the analytics of 3 days.
    before = math.ceil(3.4 * days) + 5
    first = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=before)
    story = _Story(names, days, videos, seed, first)
    for start, niche, cycle in story.starts:
        story.at(start, "cycle", niche, cycle, start)
    paused = first + timedelta(days=min(1, days - 1))
    story.at(paused + _PAUSE[0], "pause", story.paused, True)
    story.at(paused + _PAUSE[1], "pause", story.paused, False)
    story.at(first + _JANITOR, "janitor")
    story.run_until_done(progress, progress_every)
    # The scheduler restarted fires every cycle again: the same runs, none made twice.
    again = {PipelineRun.schedule(niche, start).id for start, niche, _ in story.starts}
    if again != set(story.cycles):
        raise PipelineModelsError(f"the scheduler made {len(again - set(story.cycles))} runs twice")
    # The operator marks resolved the errors of the runs that recovered; the failed runs' stay open.
    recovered = PipelineRun.select(PipelineRun.id).where(PipelineRun.status != RunStatus.failed)
    for error in ErrorLog.unresolved().where(ErrorLog.pipeline_run.in_(recovered)):
        error.resolve()
    _report(out, story, first)
    _record_analytics(out, story.now)
    out(f"\n{shown(target)} after {time.monotonic() - began:.1f} s:\n")
    out(table(["what", "status", "count"], status_rows()))


def _report(out: Callable[[str], None], story: _Story, first: datetime) -> None:
    said, niches = story.said, story.niches
    listed = " and ".join(filter(None, (", ".join(niches[:-1]), niches[-1])))
    out(f"scheduled {plural(PipelineRun.select().count(), 'run')}: {listed}, {CYCLES} cycles a day "
        f"for {plural(story.days, 'day')} from {first:%Y-%m-%d} (scheduled again after a restart: "
        "the same runs)")
    out(f"{WORKERS} workers, at most {story.most_running} runs at once "
        f"({plural(said['cap waits'], 'claim')} waited for the cap of {PipelineRun.MAX_RUNNING}), "
        f"{story.paused} paused for {(_PAUSE[1] - _PAUSE[0]).total_seconds() / 3600:g} hours")
    with_clips = PipelineRun.select().join(Clip).distinct().count()
    out(f"discovered {plural(DiscoveredVideo.select().count(), 'video')}, took "
        f"{plural(said['taken'], 'candidate')} ({said['download failed']} failed to download) and "
        f"kept {plural(said['kept'], 'ranked clip')} ({said['kept'] / max(1, with_clips):.1f} a "
        f"run); rendered {plural(Short.select().count(), 'short')}")
    failed = list(PipelineRun.select().where(PipelineRun.error_message.is_null(False))
                  .order_by(PipelineRun.id))
    for run in failed[:_SHOWN]:
        how = ("failed for good" if run.status is RunStatus.failed
               else f"now {run.status}, after a retry")
        out(f"run {run.id} ({run.niche}) {how}: {shown(run.error_message)}")
    if len(failed) > _SHOWN:
        out(f"and {plural(len(failed) - _SHOWN, 'more run')} that failed at least once "
            f"({sum(run.status is RunStatus.failed for run in failed)} of all for good)")
    answers = [(what, n) for what, n in said.items()
               if what in {a.value for a in ReviewAction} or what.startswith("skip ")]
    out(f"reviews: {sum(n for _, n in answers)} answered (" + ", ".join(
        f"{n} {what}" for what, n in sorted(answers, key=lambda a: (-a[1], a[0]))) + "), "
        f"{plural(said['reminded'], 'reminder')}, {said['auto-held']} auto-held, "
        f"{plural(said['forced'], 'forced upload')}; "
        + ("a repeated tap " + ("changed it" if said["double tap changed it"] else "ignored")))
    cap = ConfigOverride.setting(UploadOnce.MAX_UPLOADS_KEY, UploadOnce.MAX_UPLOADS)
    out(f"uploaded {plural(said['uploaded run'], 'long-form video')} and "
        f"{plural(said['uploaded short'], 'short')} (at most {cap} in 24 hours: the uploader "
        f"waited {plural(said['deferred'], 'time')} for the next slot)")


def _snapshots(rng: random.Random, until: datetime) -> Iterator[Dict[str, Any]]:
    """Each uploaded video's analytics, every 6 hours from its upload until `until`."""
    uploads = [(r.youtube_video_id, r.completed_at, 400) for r in PipelineRun.select().where(
        PipelineRun.status == RunStatus.uploaded).order_by(PipelineRun.id)]
    uploads += [(s.youtube_video_id, s.uploaded_at, 2500) for s in Short.select().where(
        Short.status == ShortStatus.uploaded).order_by(Short.youtube_video_id)]
    for video, since, pace in uploads:
        views = 0
        for step in range(_SNAPSHOTS):
            if since + timedelta(hours=6 * step) > until:
                break
            views += int(pace * rng.uniform(0.2, 3.0))
            watched = rng.uniform(90, 300) if pace == 400 else rng.uniform(8, 20)
            yield dict(youtube_video_id=video, measured_at=since + timedelta(hours=6 * step),
                       view_count=views, like_count=views // 25, comment_count=views // 400,
                       average_view_duration_seconds=watched,
                       click_through_rate=rng.uniform(0.02, 0.09), subscriber_gain=views // 1000,
                       estimated_revenue_usd=None if step < 4 else views * 2e-5,
                       engaged_views=int(views * 0.6), shares=views // 300,
                       watch_time_minutes=views * 0.4)


def _record_analytics(out: Callable[[str], None], last: datetime) -> None:
    """Analytics of the long-form videos and the shorts, in bulk (one transaction); the top one."""
    until = last + timedelta(days=_SNAPSHOTS // 4)
    Analytics.record_many(_snapshots(random.Random(SEED), until))
    out(f"recorded {plural(Analytics.select().count(), 'analytics snapshot')}, every 6 hours for "
        f"{_SNAPSHOTS // 4} days after each upload")
    for best in Analytics.top(1):
        long_form = PipelineRun.select().where(
            PipelineRun.youtube_video_id == best.youtube_video_id).exists()
        out(f"top video: {best.youtube_video_id} ({'long-form' if long_form else 'short'}) with "
            f"{best.view_count:,} views")
