"""`pipeline-models demo`: the pipeline's cycles simulated on a SQLite file (or PostgreSQL), on a simulated clock.

Two niches, four 6-hour cycles a day for three days, every step one of the package's operations: the scheduler
schedules each niche's run at its cycle's start (PipelineRun.schedule); three workers claim them
(PipelineRun.claim_next: at most 2 running at once, a paused niche waits); a run discovers its cycle's candidates
(DiscoveredVideo.discover), takes the niche's 15 best pending ones (run.take_candidates), cuts one clip of each (a
few downloads fail: skipped) and keeps the top 8-10 ranked (run.keep_clips: the rest go back to pending, or are
skipped by the day's last cycle), writes the script, the TTS audio, the long-form render and 3-5 shorts of the top
ranks, and asks for a review (ReviewLog.request). One render crashes once and is retried; one TTS fails every
attempt. The reviewers give every answer: approve (one button tapped twice), reject, hold (one approved later, one
left held), `skip 4,7` (rendered again) and redo_script (written again); a janitor reminds the late ones
(ReviewLog.due_reminders, mark_reminded) and auto-holds one nobody answers (ReviewLog.hold_stale), which is then
uploaded by /force_upload (ReviewLog.force_upload). The sports channel is paused for a morning. The uploader
uploads each approved run's long-form video, then its shorts, each once (start_upload, mark_uploaded) within the
daily cap of 20: an upload past it waits for the slot UploadCapReached names. Analytics of both are sampled every
6 hours.

Time is simulated (operations take it as `now=`; what others stamp is set to it after); the story lies in the
past, takes seconds, and is the same for the same --videos, seed and day, on either backend.
"""
import heapq
import itertools
import os
import random
import sys
import time
from collections import Counter, deque
from datetime import datetime, timedelta
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlparse

import peewee
from playhouse import db_url
from playhouse.migrations import Runner

from .cli_output import plural, shown, table
from .db import MIGRATIONS_DIR, database_for, db, init_db, open_connection, redact
from .enums import ContentIdRisk, ExtractionMethod, Processed, ReviewAction, RunStatus, ShortStatus
from .errors import CannotOpenDatabase, PipelineModelsError, SchemaMismatch, UploadCapReached
from .fields import utcnow
from .models import (ALL_MODELS, Analytics, Clip, ConfigOverride, DiscoveredVideo, ErrorLog, PipelineRun, ReviewLog,
                     Script, Short, TTSAudio, mark_video_processed)
from .queries import status_rows

MARKER = "demo.database"  # a config key: this database was made by the demo and may be made anew
SOURCES = ["youtube_trending", "youtube_search", "reddit"]
SEED = 2026  # the demo's randomness: the same seed, the same story
WORKERS = 3  # one more than the concurrency cap lets run at once, so the cap has something to refuse
_NICHES = {"gaming": 30, "sports": 60}  # minutes past midnight of the first cycle: staggered by 30 minutes
_DAYS, _CYCLES = 3, 4  # days, and cycles a day
_BEFORE = 14  # days before today the first cycle begins: the deferred uploads and their analytics end days ago
_SNAPSHOTS = 12  # analytics every 6 hours for 3 days after each upload
_DOWNLOAD_FAILS = 0.12  # the share of candidates whose download fails (while enough are left)
# The runs whose work fails, and the reviewers' answers other than a prompt approve, by (niche, cycle number).
_FLAKY, _DOOMED = ("gaming", 2), ("sports", 5)  # a render crashes once; the TTS fails every attempt
_ANSWERS = {("gaming", 1): "reject", ("sports", 2): "skip", ("gaming", 4): "redo_script",
            ("sports", 7): "hold", ("gaming", 8): "hold", ("gaming", 6): None}  # None: nobody answers
_HELD_THEN_APPROVED = ("sports", 7)  # approved 5 hours after the hold; ("gaming", 8) is left held
_LATE = ("sports", 3)  # answered after 2.5 hours: reminded first
_FORCED_AFTER = timedelta(hours=7)  # the unanswered review: reminded at 2 h, auto-held at 4 h, forced at 7 h
_PAUSE = (timedelta(days=1, hours=5), timedelta(days=1, hours=12, minutes=45))  # sports paused, from day 1's start
_JANITOR = timedelta(minutes=10)  # how often the reminder and auto-hold cron runs
_STAGES = {"discover": (3, 6), "clip": (15, 25), "script": (2, 4), "tts": (3, 6), "render": (18, 28)}  # minutes
_UPLOAD_MINUTES = {"run": 6, "short": 1}  # how long an upload takes


class RenderCrashed(RuntimeError):
    """The simulated render failure of the demo."""


class SynthesisFailed(RuntimeError):
    """The simulated TTS failure of the demo."""


def _fresh_database(target: str) -> None:
    """Bind a new, empty pipeline database at `target`; remake an earlier demo's, refuse anyone else's.

    Usable: a missing or 0-byte SQLite file, a PostgreSQL database without any table, or a database whose
    ConfigOverride MARKER says the demo made it. Anything else is refused with nothing changed.
    """
    path = _sqlite_path(target)
    if path is None:
        _empty_postgres(target)
    else:
        _empty_sqlite(target, path)
    init_db(target)
    ConfigOverride.set(MARKER, True, updated_by="demo")


def _refuse(target: str, why: str) -> PipelineModelsError:
    return PipelineModelsError(
        f"the demo will not use {redact(target)!r}: {why}; it writes simulated data, so it only uses a new or "
        "empty database or one an earlier demo made: give --db a new SQLite file (or an empty PostgreSQL database)")


def _sqlite_path(target: str) -> Optional[str]:
    """The file of a SQLite target, None for a PostgreSQL URL; any other target is refused."""
    scheme = urlparse(target).scheme if "://" in target else ""
    if scheme in ("postgres", "postgresql"):
        return None
    if scheme not in ("", "sqlite"):
        raise _refuse(target, "the demo runs on a SQLite file or a PostgreSQL database")
    path = db_url.parseresult_to_dict(urlparse(target))["database"] if scheme else target
    if not path or path == ":memory:" or path.startswith("file:"):
        # The demo's database is for looking at afterwards (status, report): an in-memory one is gone at exit.
        raise _refuse(target, "its database is left to look at afterwards, which an in-memory one is not; "
                              "give a file")
    return path


def _empty_sqlite(target: str, path: str) -> None:
    """Make way for a new database file at `path`: nothing there yet, or an earlier demo's file (removed)."""
    # SQLite would read a leftover -wal or -journal into a new file of the same name: they go with their
    # file, and only with a file the demo made.
    if os.path.isdir(path):
        raise _refuse(target, "it is a directory")
    beside = [path + suffix for suffix in ("-wal", "-shm", "-journal") if os.path.lexists(path + suffix)]
    if not os.path.exists(path) or (os.path.isfile(path) and os.path.getsize(path) == 0):
        if beside:
            raise _refuse(target, f"{beside[0]!r} is left beside it, which SQLite would read into a new database")
        return
    why = _not_made_by_demo(target)
    if why:
        raise _refuse(target, why)
    for name in [path] + beside:
        os.remove(name)


def _empty_postgres(target: str) -> None:
    """Make way for the demo's tables: a database without tables, or an earlier demo's (its tables dropped)."""
    reader = _postgres(target, readonly=True)
    try:
        # Tables and views of every schema: data in any of them is someone's.
        found = reader.execute_sql(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname !~ '^pg_(toast|temp_)' LIMIT 1").fetchone()
        why = found and _not_made_by_demo(target, reader)
    finally:
        reader.close()
        db.initialize(None)
    if why:
        raise _refuse(target, why)
    if not found:
        return
    writer = _postgres(target, readonly=False)
    try:
        # Only what the package made: the pipeline tables (their sequences go with them) and the migration
        # history. No CASCADE: should anything else depend on them, the drop fails and nothing is dropped.
        names = [model._meta.table_name for model in ALL_MODELS]
        names.append(Runner(writer, str(MIGRATIONS_DIR)).History._meta.table_name)
        with writer.atomic():
            writer.execute_sql("DROP TABLE IF EXISTS " + ", ".join(f'"{name}"' for name in names))
    finally:
        writer.close()


def _postgres(target: str, readonly: bool) -> peewee.Database:
    """A connection to the PostgreSQL database of `target`; `readonly`: a session that refuses every write."""
    # init_db's own way of opening it, so a failure (no driver, a refused connection) reads as status's does.
    database = database_for(target, readonly=readonly)
    open_connection(database, target, check_file=False)
    return database


def _not_made_by_demo(target: str, database: Optional[peewee.Database] = None) -> str:
    """Why `target` (or `database`, already open on it) is not a database the demo made; "" when it is."""
    try:
        init_db(database or target, readonly=True)  # reads only: someone else's file stays byte for byte as it was
        made = ConfigOverride.value_of(MARKER, False) is True
    except SchemaMismatch:
        # Whether the demo made it cannot be read without migrating it, which is for its owner to decide.
        return ("it is a pipeline database of an older release (if an earlier demo made it, "
                f"`pipeline-models migrate --db {redact(target)}` lets the demo make it anew)")
    except CannotOpenDatabase as exc:
        return exc.reason.split(";")[0]  # the reason, without its advice to make it a pipeline database
    finally:
        if db.obj is not None and db.obj is not database:  # the caller closes its own
            db.obj.close()
        db.initialize(None)
    return "" if made else "it holds pipeline data the demo did not make"



# --- the simulation -----------------------------------------------------------------------------------------

def _ranked(run: PipelineRun) -> List[Clip]:
    return list(run.clips.where(Clip.dropped_at.is_null()).order_by(Clip.rank_position))


def _stamp(model: Any, row_id: Any, **times: datetime) -> None:
    """Set times an operation took from the machine's clock to the simulated ones (it takes no now=)."""
    model.update(**times).where(model._meta.primary_key == row_id).execute()


class _Story:
    """The simulated pipeline: a clock, the events due on it, the workers, the reviewers, the uploader, a janitor.

    Events are (time, order, what, arguments): handled in time order, ties in the order they were made, so
    the same seed tells the same story.
    """

    def __init__(self, videos: int, seed: int, first: datetime) -> None:
        self.videos, self.seed, self.first = videos, seed, first
        self.events: List[Tuple[datetime, int, str, Tuple[Any, ...]]] = []
        self.order = itertools.count()
        self.now = first
        self.idle = [f"worker-{n + 1}" for n in range(WORKERS)]  # the workers without a run, in name order
        self.held: Dict[str, PipelineRun] = {}  # worker -> the run object it claimed (it holds the claim)
        self.cycles: Dict[int, Tuple[str, int]] = {}  # run id -> (niche, cycle number)
        self.uploads: Deque[Tuple[str, int]] = deque()  # ("run" | "short", id), in the order they go out
        self.uploading = False
        self.said: Counter = Counter()  # what happened, for the summary
        self.most_running = 0

    # the clock
    def at(self, when: datetime, what: str, *args: Any) -> None:
        heapq.heappush(self.events, (when, next(self.order), what, args))

    def rng(self, *words: Any) -> random.Random:
        return random.Random(":".join(map(str, (self.seed, *words))))

    def run_until_done(self, progress: Callable[[str], None], every: float, total: int) -> None:
        """Handle the events in time order until none is left (the janitor runs while anything else is due)."""
        shown_at = time.monotonic()
        while self.events:
            self.now, _, what, args = heapq.heappop(self.events)
            getattr(self, "_" + what)(*args)
            if what == "janitor" and self.events:
                self.at(self.now + _JANITOR, "janitor")
            self._dispatch()
            if time.monotonic() - shown_at >= every:
                shown_at = time.monotonic()
                done = PipelineRun.select().where(PipelineRun.status.not_in([RunStatus.pending, RunStatus.running]))
                progress(f"  simulated {self.now:%Y-%m-%d %H:%M}: {done.count()}/{total} runs through production")

    # the scheduler and the operator
    def _cycle(self, niche: str, cycle: int, start: datetime) -> None:
        """A cycle begins: the scheduler schedules its run."""
        run = PipelineRun.schedule(niche, start)
        _stamp(PipelineRun, run.id, created_at=start, updated_at=start)
        self.cycles[run.id] = (niche, cycle)

    def _pause(self, niche: str) -> None:
        PipelineRun.pause(niche, updated_by="@ops")
        _stamp(ConfigOverride, PipelineRun.PAUSED_KEY.format(niche), updated_at=self.now)
        self.said["paused"] += 1

    def _resume(self, niche: str) -> None:
        PipelineRun.resume(niche, updated_by="@ops")
        _stamp(ConfigOverride, PipelineRun.PAUSED_KEY.format(niche), updated_at=self.now)

    def _wake(self) -> None:
        """A requeued run is due again: _dispatch claims it."""

    # the workers
    def _dispatch(self) -> None:
        """Each idle worker asks for a run; the cap of 2 running (or an empty queue) sends the rest away."""
        while self.idle:
            run = PipelineRun.claim_next(self.idle[0], now=self.now)
            if run is None:
                due = PipelineRun.select().where(
                    (PipelineRun.status == RunStatus.pending) & (PipelineRun.cycle_start <= self.now)
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
        run.heartbeat(stage=stage)  # between slow steps: the queue sees the worker alive; LeaseLost if not
        _stamp(PipelineRun, run.id, heartbeat_at=self.now, updated_at=self.now)
        low, high = _STAGES[stage]
        took = self.rng(*self.cycles[run.id], stage, run.retry_count, run.reviews.count()).uniform(low, high)
        self.at(self.now + timedelta(minutes=took),
                "stage_done", worker, stage)

    def _stage_done(self, worker: str, stage: str) -> None:
        """The worker finished the slow part of `stage`: its results are written under the claim."""
        run = self.held[worker]
        niche, cycle = self.cycles[run.id]
        rng = self.rng(niche, cycle, stage, run.reviews.count())
        try:
            with ErrorLog.capture(stage, pipeline_run=run):  # outside the stage's transaction: kept when it rolls back
                getattr(self, "_" + stage)(run, niche, cycle, rng)
        except (RenderCrashed, SynthesisFailed) as exc:
            error = ErrorLog.select().where(ErrorLog.pipeline_run == run.id).order_by(ErrorLog.id.desc()).first()
            _stamp(ErrorLog, error.id, occurred_at=self.now)
            run.fail(exc, now=self.now)  # pending after 30 s, then 90 s; the third failed attempt is for good
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
        """The videos discovery finds for `niche`'s cycle number `cycle`, the same every time (seeded)."""
        rng = self.rng(niche, cycle, "discovery")
        found = []
        for n in range(self.videos):
            views, hours = rng.randint(20_000, 3_000_000), rng.uniform(1, 6)
            creator = rng.randint(1, 40)
            found.append(dict(
                video_id=f"{niche[:2]}{cycle:03d}x{n:05d}", title=f"{niche.title()} moment {cycle}-{n}",
                channel_name=f"{niche.title()} creator {creator}", channel_id=f"UC{niche[:2]}{creator:04d}",
                niche=niche, category_id=20 if niche == "gaming" else 17, duration_seconds=rng.randint(240, 1800),
                view_count=views, like_count=views // rng.randint(20, 60), comment_count=views // rng.randint(200, 900),
                view_velocity=round(views / hours, 1), viral_score=round(rng.uniform(20, 100), 2),
                discovery_source=rng.choice(SOURCES), age_hours=hours,
                content_id_risk=rng.choices(list(ContentIdRisk), weights=[6, 2, 1, 3])[0]))
        return found

    # the stages
    def _discover(self, run: PipelineRun, niche: str, cycle: int, rng: random.Random) -> None:
        """The cycle's candidates, each recorded once; the first of the cycle before is found again, hotter."""
        for candidate in self._candidates(niche, cycle):
            age = timedelta(hours=candidate.pop("age_hours"))
            video, created = DiscoveredVideo.discover(candidate.pop("video_id"), published_at=self.now - age,
                                                      **candidate)
            if created:
                _stamp(DiscoveredVideo, video.id, discovered_at=self.now)
        if cycle:
            again = self._candidates(niche, cycle - 1)[0]
            DiscoveredVideo.discover(again["video_id"], view_count=again["view_count"] * 3,
                                     viral_score=min(100.0, again["viral_score"] * 1.5))

    def _clip(self, run: PipelineRun, niche: str, cycle: int, rng: random.Random) -> None:
        """Take the niche's best pending candidates, cut one clip of each (some downloads fail), keep the top ranked."""
        candidates = run.take_candidates()  # 15: reserved for this run, no other run gets them
        self.said["taken"] += len(candidates)
        low = ConfigOverride.setting(PipelineRun.MIN_CLIPS_KEY.format(niche), PipelineRun.MIN_CLIPS)
        cut, failed = [], []
        for video in candidates:
            if rng.random() < _DOWNLOAD_FAILS and len(candidates) - len(failed) > low:  # while enough are left
                failed.append(video)
                continue
            length = round(min(rng.uniform(15, 25), video.duration_seconds / 10), 2)  # at most 25 s, under 10 %
            begin = round(rng.uniform(0, video.duration_seconds - length), 2)
            cut.append(dict(discovered_video=video, start_time_seconds=begin, end_time_seconds=begin + length,
                            clip_duration_seconds=length,
                            extraction_method=rng.choices(list(ExtractionMethod), weights=[5, 3, 2, 1])[0],
                            score=round(video.viral_score * rng.uniform(0.7, 1.3), 2),
                            content_id_risk=video.content_id_risk, transcript=f"What happens in {video.title}.",
                            clip_file_path=f"clips/{run.id}/{video.video_id}.mp4", created_at=self.now))
        # A day's last cycle leaves nothing stale for tomorrow: its candidates not kept are skipped, not pending
        # (the demo's last day has no tomorrow: its leftovers stay pending, to look at).
        last = cycle % _CYCLES == _CYCLES - 1 and cycle < (_DAYS - 1) * _CYCLES
        others = Processed.skipped if last else Processed.pending
        with run.fenced():  # the failed downloads and the kept clips in one transaction
            for video in failed:
                mark_video_processed(video.video_id, Processed.skipped)
            kept = run.keep_clips(sorted(cut, key=lambda clip: -clip["score"]), others=others)
        self.said["download failed"] += len(failed)
        self.said["kept"] += len(kept)

    def _script(self, run: PipelineRun, niche: str, cycle: int, rng: random.Random) -> None:
        """The narration of the countdown, from the last rank to rank 1, with what the LLM call cost."""
        clips = _ranked(run)[::-1]
        opening, closing = f"The {len(clips)} wildest {niche} moments of the day.", "Subscribe for the next countdown."
        parts = [{"rank": c.rank_position, "intro": f"Number {c.rank_position}.", "outro": "Unbelievable."}
                 for c in clips]
        narration = len(opening) + len(closing) + sum(len(p["intro"]) + len(p["outro"]) for p in parts)
        prompt, completion = rng.randint(1500, 4000), rng.randint(400, 1200)
        with run.fenced():
            Script.create(pipeline_run=run, opening_text=opening, closing_text=closing,
                          full_script_json={"opening": opening, "clips": parts, "closing": closing},
                          total_char_count=narration, estimated_duration_seconds=round(narration / 15, 1),
                          llm_model_used="gpt-4.1-mini", title=f"Top {len(clips)} {niche} moments",
                          prompt_tokens=prompt, completion_tokens=completion,
                          cost_usd=round(prompt * 0.4e-6 + completion * 1.6e-6, 6), generated_at=self.now)

    def _tts(self, run: PipelineRun, niche: str, cycle: int, rng: random.Random) -> None:
        if (niche, cycle) == _DOOMED:
            raise SynthesisFailed(f"xtts_v2: CUDA out of memory synthesising run {run.id}")
        script = run.scripts.order_by(Script.generated_at.desc(), Script.id.desc()).first()
        with run.fenced():
            TTSAudio.create(pipeline_run=run, engine_used=rng.choice(["xtts_v2", "styletts2", "piper"]),
                            voice_profile="narrator", audio_file_path=f"audio/{run.id}-{run.audio.count() + 1}.wav",
                            duration_seconds=script.estimated_duration_seconds, generated_at=self.now)

    def _render(self, run: PipelineRun, niche: str, cycle: int, rng: random.Random) -> None:
        """The long-form countdown (8-10 minutes) and 3-5 shorts of its top ranks."""
        if (niche, cycle) == _FLAKY and run.retry_count == 0:
            raise RenderCrashed(f"ffmpeg exited 1 rendering run {run.id}: moov atom not found")
        clips = _ranked(run)
        with run.fenced():
            run.video_file_path = f"renders/{niche}/{run.cycle_start:%Y%m%d-%H%M}-{run.reviews.count() + 1}.mp4"
            run.video_duration_seconds = round(rng.uniform(480, 600), 1)
            run.video_file_size_bytes = int(run.video_duration_seconds * rng.uniform(0.9e6, 1.3e6))
            run.save(only=[PipelineRun.video_file_path, PipelineRun.video_duration_seconds,
                           PipelineRun.video_file_size_bytes])
            for clip in clips[:rng.randint(3, 5)]:
                source = DiscoveredVideo.get_by_id(clip.discovered_video_id)
                Short.create(pipeline_run=run, clip=clip, file_path=f"shorts/{run.id}/{clip.rank_position}.mp4",
                             duration_seconds=clip.clip_duration_seconds, created_at=self.now,
                             title=f"#{clip.rank_position}: {source.title}",
                             description=f"Clip of {source.title} by {source.channel_name}: {source.url}")

    # the reviewers, the janitor, /force_upload
    def _reviewer(self, run: PipelineRun, review: ReviewLog) -> None:
        """When, and how, the reviewers answer a request just sent."""
        key = self.cycles[run.id]
        first = review.message_id.endswith(":1")
        action = _ANSWERS.get(key, "approve") if first else "approve"  # the work redone is approved
        if action is None:  # nobody answers: reminded, auto-held by the janitor, then forced
            self.at(self.now + _FORCED_AFTER, "force", run.id)
            return
        latency = timedelta(minutes=150) if key == _LATE and first else timedelta(
            minutes=min(100.0, self.rng(*key, review.message_id.rsplit(":", 1)[1]).lognormvariate(3.0, 0.8)))
        detail = None
        if action == "skip":
            ranks = [clip.rank_position for clip in _ranked(run)]
            wanted = [rank for rank in (4, 7) if rank in ranks] if len(ranks) >= 8 else ranks[-1:]
            action, detail = ("skip", "skip " + ",".join(map(str, wanted))) if len(ranks) > 1 else ("approve", None)
        self.at(self.now + latency, "answer", review.message_id, action, detail, "@alice")
        if key == _HELD_THEN_APPROVED and first:
            self.at(self.now + latency + timedelta(hours=5), "answer", review.message_id, "approve", None, "@bob")

    def _answer(self, message_id: str, action: str, detail: Optional[str], reviewer: str) -> None:
        """A reviewer taps an answer on the chat message `message_id`."""
        review, recorded = ReviewLog.answer(message_id, action, response_detail=detail, reviewer=reviewer)
        if not recorded:
            return
        self.said[detail or action] += 1
        _stamp(ReviewLog, review.id, responded_at=self.now)
        run = PipelineRun.get_by_id(review.pipeline_run_id)
        stamps = {"updated_at": self.now, **({"completed_at": self.now} if run.status is RunStatus.rejected else {})}
        _stamp(PipelineRun, run.id, **stamps)
        if action == "skip":
            Clip.update(dropped_at=self.now).where((Clip.pipeline_run == run.id) & (Clip.dropped_at > self.now)
                                                   ).execute()
        if run.status is RunStatus.approved:
            if not self.said["double tap"]:  # the button tapped twice: the second tap changes nothing
                self.said["double tap"] += 1
                self.said["double tap changed it"] += ReviewLog.answer(message_id, action, reviewer=reviewer)[1]
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
        """Upload the next video in line, within the daily cap: past it, wait for the slot the refusal names."""
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
            row.mark_uploaded(f"sh{row.pipeline_run_id:05d}r{row.clip.rank_position}", uploaded_at=done)
        self.said[f"uploaded {kind}"] += 1
        self.uploading = bool(self.uploads)
        if self.uploading:
            self.at(done, "upload")


# --- the demo ----------------------------------------------------------------------------------------------

def run_demo(target: str = "pipeline-demo.db", videos: int = 12, out: Callable[[str], None] = print,
             progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
             progress_every: float = 2.0, seed: int = SEED) -> None:
    """Simulate the pipeline on `target`, `videos` candidates discovered per niche per cycle, and print what
    happened.

    `target` is a SQLite file path or URL, or a PostgreSQL URL: a new or empty database, or one an earlier
    demo made (made anew); anything else is refused, unchanged, with PipelineModelsError. While it runs
    longer than `progress_every` seconds, `progress` gets a line about how far it is. The same `seed`
    tells the same story.
    """
    began = time.monotonic()
    _fresh_database(target)
    if videos < PipelineRun.MIN_CLIPS:  # fewer candidates a cycle than a countdown's 8: the channels make do
        for niche in _NICHES:
            ConfigOverride.set(PipelineRun.MIN_CLIPS_KEY.format(niche), videos, updated_by="demo")
    first = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=_BEFORE)
    story = _Story(videos, seed, first)
    starts = sorted((first + timedelta(hours=6 * cycle, minutes=minutes), niche, cycle)
                    for cycle in range(_DAYS * _CYCLES) for niche, minutes in _NICHES.items())
    for start, niche, cycle in starts:
        story.at(start, "cycle", niche, cycle, start)
    story.at(first + _PAUSE[0], "pause", "sports")
    story.at(first + _PAUSE[1], "resume", "sports")
    story.at(first + _JANITOR, "janitor")
    story.run_until_done(progress, progress_every, len(starts))
    # The scheduler restarted fires every cycle again: the same runs, none made twice.
    again = {PipelineRun.schedule(niche, start).id for start, niche, _ in starts}
    if again != set(story.cycles):
        raise PipelineModelsError(f"the scheduler made {len(again - set(story.cycles))} runs twice")
    # The operator marks resolved the errors of the runs that recovered; those of the failed run stay open.
    recovered = PipelineRun.select(PipelineRun.id).where(PipelineRun.status != RunStatus.failed)
    for error in ErrorLog.unresolved().where(ErrorLog.pipeline_run.in_(recovered)):
        error.resolve()
    _report(out, story, first)
    _record_analytics(out, story.now)
    out(f"\n{shown(target)} after {time.monotonic() - began:.1f} s:\n")
    out(table(["what", "status", "count"], status_rows()))


def _report(out: Callable[[str], None], story: _Story, first: datetime) -> None:
    said = story.said
    out(f"scheduled {plural(PipelineRun.select().count(), 'run')}: {' and '.join(_NICHES)}, {_CYCLES} cycles a day for {_DAYS} days "
        f"from {first:%Y-%m-%d} (scheduled again after a restart: the same runs)")
    out(f"{WORKERS} workers, at most {story.most_running} runs at once ({plural(said['cap waits'], 'claim')} "
        f"waited for the cap of {PipelineRun.MAX_RUNNING}), sports paused for "
        f"{(_PAUSE[1] - _PAUSE[0]).total_seconds() / 3600:g} hours")
    out(f"discovered {plural(DiscoveredVideo.select().count(), 'video')}, took {plural(said['taken'], 'candidate')} "
        f"({said['download failed']} failed to download) and kept {plural(said['kept'], 'ranked clip')} "
        f"({said['kept'] / max(1, PipelineRun.select().join(Clip).distinct().count()):.1f} a run); "
        f"rendered {plural(Short.select().count(), 'short')}")
    for run in PipelineRun.select().where(PipelineRun.error_message.is_null(False)).order_by(PipelineRun.id):
        how = "failed for good" if run.status is RunStatus.failed else f"now {run.status}, after a retry"
        out(f"run {run.id} ({run.niche}) {how}: {shown(run.error_message)}")
    answers = [(what, n) for what, n in said.items()
               if what in {a.value for a in ReviewAction} or what.startswith("skip ")]
    out(f"reviews: {sum(n for _, n in answers)} answered (" + ", ".join(
        f"{n} {what}" for what, n in sorted(answers, key=lambda a: (-a[1], a[0]))) + f"), "
        f"{plural(said['reminded'], 'reminder')}, {said['auto-held']} auto-held, {said['forced']} forced upload; "
        + ("a repeated tap changed it" if said["double tap changed it"] else "a repeated tap ignored"))
    out(f"uploaded {plural(said['uploaded run'], 'long-form video')} and {plural(said['uploaded short'], 'short')} "
        f"(at most {PipelineRun.MAX_UPLOADS} in 24 hours: the uploader "
        f"waited {plural(said['deferred'], 'time')} for the next slot)")


def _snapshots(rng: random.Random, until: datetime) -> Iterator[Dict[str, Any]]:
    """Every uploaded video's analytics, every 6 hours from its upload until `until`: long-form first, then shorts."""
    uploads = [(r.youtube_video_id, r.completed_at, 400) for r in
               PipelineRun.select().where(PipelineRun.status == RunStatus.uploaded).order_by(PipelineRun.id)]
    uploads += [(s.youtube_video_id, s.uploaded_at, 2500) for s in
                Short.select().where(Short.status == ShortStatus.uploaded).order_by(Short.youtube_video_id)]
    for video, since, pace in uploads:
        views = 0
        for step in range(_SNAPSHOTS):
            if since + timedelta(hours=6 * step) > until:
                break
            views += int(pace * rng.uniform(0.2, 3.0))
            yield dict(youtube_video_id=video, measured_at=since + timedelta(hours=6 * step), view_count=views,
                       like_count=views // 25, comment_count=views // 400,
                       average_view_duration_seconds=rng.uniform(90, 300) if pace == 400 else rng.uniform(8, 20),
                       click_through_rate=rng.uniform(0.02, 0.09), subscriber_gain=views // 1000,
                       estimated_revenue_usd=None if step < 4 else views * 2e-5,
                       engaged_views=int(views * 0.6), shares=views // 300, watch_time_minutes=views * 0.4)


def _record_analytics(out: Callable[[str], None], last: datetime) -> None:
    """Analytics of the long-form videos and the shorts, written in bulk (one transaction); then the top video."""
    until = last + timedelta(days=_SNAPSHOTS // 4)
    Analytics.record_many(_snapshots(random.Random(SEED), until))
    out(f"recorded {plural(Analytics.select().count(), 'analytics snapshot')}, every 6 hours for "
        f"{_SNAPSHOTS // 4} days after each upload")
    for best in Analytics.top(1):
        long_form = PipelineRun.select().where(PipelineRun.youtube_video_id == best.youtube_video_id).exists()
        out(f"top video: {best.youtube_video_id} ({'long-form' if long_form else 'short'}) with {best.view_count:,} views")
