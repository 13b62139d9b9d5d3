"""`pipeline-models demo`: the pipeline simulated on a SQLite file (or PostgreSQL), a worker process per niche.

Two niches, four 6-hour cycles a day for a few days, as PIPELINE.md describes them: the scheduler schedules
each niche's run for each cycle (PipelineRun.schedule); a worker process per niche claims them earliest
cycle first, discovers the cycle's candidates (DiscoveredVideo.discover, with niche and viral_score), cuts
8-10 clips of distinct pending videos (get_pending_videos; a failed download skips a candidate) and ranks
them (1 = most viral), marks their videos used, writes the script, the TTS audio, the long-form render and
3-5 shorts under its claim (run.fenced()), and asks for a review. One render crashes once and is retried
(attempt 2), one TTS fails every attempt (failed for good). The reviewers approve most, reject one, hold
two (one approved later), skip two clips of one (rendered again), ask one script again, leave one
unanswered (auto-held), and tap one button twice. The approved runs upload their long-form video and
their shorts once each; analytics of both are sampled every 6 hours. Everything goes through the
package's own operations, on timestamps laid out afterwards in each run's cycle (_retime), all in the past.
The output is the same for the same --videos and day, on either backend, whatever the machine's speed (but
for the time it took).
"""
import multiprocessing
import multiprocessing.connection
import os
import random
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlparse

import peewee
from playhouse import db_url
from playhouse.migrations import Runner

from .cli_output import plural, shown, table
from .db import MIGRATIONS_DIR, _connect, _database_for, db, init_db, redact
from .enums import ContentIdRisk, ExtractionMethod, Processed, RunStatus, ShortStatus
from .errors import CannotOpenDatabase, PipelineModelsError, SchemaMismatch
from .fields import UTCDateTimeField, utcnow
from .models import (ALL_MODELS, Analytics, Clip, ConfigOverride, DiscoveredVideo, ErrorLog, PipelineRun, ReviewLog,
                     Script, Short, TTSAudio, get_pending_videos, mark_video_processed)
from .queries import status_rows

MARKER = "demo.database"  # a config key: this database was made by the demo and may be made anew
SOURCES = ["youtube_trending", "youtube_search", "reddit"]
WORKERS = 2  # one per niche: each niche's runs are made in cycle order, so each takes what the one before left
_NICHES = {"gaming": 30, "sports": 60}  # minutes past midnight of the first cycle: staggered by 30 minutes
_DAYS, _CYCLES = 3, 4  # days, and cycles a day
_MIN_CLIPS, _MAX_CLIPS, _BUFFER = 8, 10, 2  # a run takes its best pending candidates, keeps 8-10 clips
_SNAPSHOTS = 12  # analytics every 6 hours for 3 days after each upload
_RETRY_DELAY = 0.05  # seconds: the pipeline's 30 s, compressed as the demo compresses its days
# The runs whose work fails, and the reviewers' answers other than approve, by (niche, cycle number).
_FLAKY, _DOOMED = ("gaming", 2), ("sports", 5)  # a render crashes once; the TTS fails every attempt
_ANSWERS = {("gaming", 1): "reject", ("sports", 2): "skip", ("gaming", 4): "redo_script", ("sports", 7): "hold",
            ("gaming", 8): "hold"}
_HELD_THEN_APPROVED = ("sports", 7)
_STAGES = ("discover", "clip", "script", "tts", "render")  # a retried or sent-back run resumes at its stage


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
        # The worker processes each open the target: an in-memory database would be a new one in each.
        raise _refuse(target, "its worker processes need a database they can all open, such as a file")
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
    database = _database_for(target, readonly=readonly)
    _connect(database, target, check_file=False)
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



# --- the worker processes ----------------------------------------------------------------------------------

def _work(target: str, name: str, niche: str, videos: int, start: Any) -> None:
    """A worker process: claim `niche`'s runs until none is left; a failure is one line on stderr, not a traceback."""
    try:
        _claim_and_produce(target, name, niche, videos, start)
    except threading.BrokenBarrierError:  # the other worker failed before starting, and says why
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C reached the whole process group: the parent says so
        sys.exit(130)
    except Exception as exc:
        try:
            print(f"pipeline-models: demo {name}: {type(exc).__name__}: {' '.join(redact(exc).split())}",
                  file=sys.stderr, flush=True)
        except (OSError, ValueError):  # stderr closed: the parent still reports the exit status
            pass
        sys.exit(1)


def _claim_and_produce(target: str, name: str, niche: str, videos: int, start: Any) -> None:
    """Claim the niche's runs, earliest cycle first, and take each to its review request; a failed attempt is
    retried after the retry delay, so a run waiting for it is waited for."""
    init_db(target)
    start.wait()  # the workers begin together, as the workers of a running pipeline would
    while True:
        run = PipelineRun.claim_next(name, niche=niche)
        if run is None:
            pending = (PipelineRun.niche == niche) & (PipelineRun.status == RunStatus.pending)
            waiting = PipelineRun.select().where(pending).order_by(PipelineRun.not_before).first()
            if waiting is None:
                break
            time.sleep(max(0.0, ((waiting.not_before or utcnow()) - utcnow()).total_seconds()) + 0.01)
            continue
        try:
            _produce(run, videos)
        except (RenderCrashed, SynthesisFailed) as exc:  # recorded in ErrorLog by the stage that failed
            run.fail(exc)  # pending again after the retry delay; after the third attempt, failed for good
            continue
        ReviewLog.request(run, message_id=f"chat:4242:{run.id}:{run.reviews.count() + 1}")
    db.obj.close()


def _produce(run: PipelineRun, videos: int) -> None:
    """Take `run` from its stage to the end of its render: a retried attempt, or a run a reviewer sent back,
    resumes at the stage it was at. Each stage's writes are one transaction under the claim."""
    cycle = PipelineRun.select().where((PipelineRun.niche == run.niche)
                                       & (PipelineRun.cycle_start < run.cycle_start)).count()
    first = _STAGES.index(run.current_stage) if run.current_stage in _STAGES else 0
    for stage in _STAGES[first:]:
        run.heartbeat(stage=stage)  # between slow steps: the queue sees the worker alive; LeaseLost if not
        # Seeded by the run, its stage and its round of review: the same work whichever process does it, when.
        rng = random.Random(f"{run.niche}:{cycle}:{stage}:{run.reviews.count()}")
        with ErrorLog.capture(stage, pipeline_run=run):  # outside the stage's transaction: kept when it rolls back
            _STAGE_WORK[stage](run, cycle, rng, videos)


def _candidates(niche: str, cycle: int, videos: int) -> List[Dict[str, Any]]:
    """The videos discovery finds for `niche`'s cycle number `cycle`, the same every time (seeded)."""
    rng = random.Random(f"{niche}:{cycle}:discovery")
    found = []
    for n in range(videos):
        views, hours = rng.randint(20_000, 3_000_000), rng.uniform(1, 6)
        creator = rng.randint(1, 40)
        found.append(dict(
            video_id=f"{niche[:2]}{cycle:03d}x{n:05d}", title=f"{niche.title()} moment {cycle}-{n}",
            channel_name=f"{niche.title()} creator {creator}", channel_id=f"UC{niche[:2]}{creator:04d}", niche=niche,
            category_id=20 if niche == "gaming" else 17, duration_seconds=rng.randint(240, 1800), view_count=views,
            like_count=views // rng.randint(20, 60), comment_count=views // rng.randint(200, 900),
            view_velocity=round(views / hours, 1), viral_score=round(rng.uniform(20, 100), 2),
            discovery_source=rng.choice(SOURCES), age_hours=hours,
            content_id_risk=rng.choices(list(ContentIdRisk), weights=[6, 2, 1, 3])[0]))
    return found


def _discover(run: PipelineRun, cycle: int, rng: random.Random, videos: int) -> None:
    """The cycle's candidates, each recorded once; the first of the cycle before is found again, hotter."""
    for candidate in _candidates(run.niche, cycle, videos):
        age = timedelta(hours=candidate.pop("age_hours"))
        DiscoveredVideo.discover(candidate.pop("video_id"), published_at=utcnow() - age, **candidate)
    if cycle:
        again = _candidates(run.niche, cycle - 1, 1)[0]
        DiscoveredVideo.discover(again["video_id"], view_count=again["view_count"] * 3,
                                 viral_score=min(100.0, again["viral_score"] * 1.5))


def _cut(run: PipelineRun, cycle: int, rng: random.Random, videos: int) -> None:
    """8-10 clips, each of a different pending video of the niche, best candidates first, ranked by virality."""
    pending = list(get_pending_videos(run.niche).limit(_MAX_CLIPS + _BUFFER))
    want = rng.randint(_MIN_CLIPS, _MAX_CLIPS)
    cut, skipped = [], []
    for video in pending:
        if len(cut) == want:
            break
        if rng.random() < 0.1 and len(pending) - len(skipped) > want:  # a failed download, while the buffer lasts
            skipped.append(video)
            continue
        length = round(min(rng.uniform(15, 25), video.duration_seconds / 10), 2)  # at most 25 s, under 10 %
        begin = round(rng.uniform(0, video.duration_seconds - length), 2)
        cut.append((video, dict(start_time_seconds=begin, end_time_seconds=begin + length, clip_duration_seconds=length,
                                extraction_method=rng.choices(list(ExtractionMethod), weights=[5, 3, 2, 1])[0],
                                score=round(video.viral_score * rng.uniform(0.7, 1.3), 2),
                                content_id_risk=video.content_id_risk, transcript=f"What happens in {video.title}.")))
    with run.fenced():
        for rank, (video, moment) in enumerate(sorted(cut, key=lambda c: -c[1]["score"]), 1):
            Clip.create(pipeline_run=run, discovered_video=video, rank_position=rank,
                        clip_file_path=f"clips/{run.id}/{rank:02d}.mp4", **moment)
            mark_video_processed(video.video_id, Processed.used)
        for video in skipped:
            mark_video_processed(video.video_id, Processed.skipped)


def _kept(run: PipelineRun) -> List[Clip]:
    return list(run.clips.where(Clip.dropped_at.is_null()).order_by(Clip.rank_position))


def _write_script(run: PipelineRun, cycle: int, rng: random.Random, videos: int) -> None:
    """The narration of the countdown, from the last rank to rank 1, with what the LLM call cost."""
    clips = _kept(run)[::-1]
    opening, closing = f"The {len(clips)} wildest {run.niche} moments of the day.", "Subscribe for the next countdown."
    parts = [{"rank": c.rank_position, "intro": f"Number {c.rank_position}.", "outro": "Unbelievable."} for c in clips]
    narration = len(opening) + len(closing) + sum(len(p["intro"]) + len(p["outro"]) for p in parts)
    prompt, completion = rng.randint(1500, 4000), rng.randint(400, 1200)
    with run.fenced():
        Script.create(pipeline_run=run, opening_text=opening, closing_text=closing,
                      full_script_json={"opening": opening, "clips": parts, "closing": closing},
                      total_char_count=narration, estimated_duration_seconds=round(narration / 15, 1),
                      llm_model_used="gpt-4.1-mini", title=f"Top {len(clips)} {run.niche} moments",
                      prompt_tokens=prompt, completion_tokens=completion,
                      cost_usd=round(prompt * 0.4e-6 + completion * 1.6e-6, 6))


def _speak(run: PipelineRun, cycle: int, rng: random.Random, videos: int) -> None:
    if (run.niche, cycle) == _DOOMED:
        raise SynthesisFailed(f"xtts_v2: CUDA out of memory synthesising run {run.id}")
    script = run.scripts.order_by(Script.generated_at.desc(), Script.id.desc()).first()
    with run.fenced():
        TTSAudio.create(pipeline_run=run, engine_used=rng.choice(["xtts_v2", "styletts2", "piper"]),
                        voice_profile="narrator", audio_file_path=f"audio/{run.id}-{run.audio.count() + 1}.wav",
                        duration_seconds=script.estimated_duration_seconds)


def _render(run: PipelineRun, cycle: int, rng: random.Random, videos: int) -> None:
    """The long-form countdown and 3-5 shorts of its top clips."""
    if (run.niche, cycle) == _FLAKY and run.retry_count == 0:
        raise RenderCrashed(f"ffmpeg exited 1 rendering run {run.id}: moov atom not found")
    clips = _kept(run)
    with run.fenced():
        run.video_file_path = f"renders/{run.niche}/{run.cycle_start:%Y%m%d-%H%M}-{run.reviews.count() + 1}.mp4"
        run.video_duration_seconds = round(sum(c.clip_duration_seconds for c in clips) + rng.uniform(300, 400), 1)
        run.video_file_size_bytes = int(run.video_duration_seconds * rng.uniform(0.9e6, 1.3e6))
        run.save(only=[PipelineRun.video_file_path, PipelineRun.video_duration_seconds,
                       PipelineRun.video_file_size_bytes])
        for clip in clips[:rng.randint(3, 5)]:
            source = DiscoveredVideo.get_by_id(clip.discovered_video_id)
            Short.create(pipeline_run=run, clip=clip, file_path=f"shorts/{run.id}/{clip.rank_position}.mp4",
                         duration_seconds=clip.clip_duration_seconds, title=f"#{clip.rank_position}: {source.title}",
                         description=f"Clip of {source.title} by {source.channel_name}: {source.url}")


_STAGE_WORK = {"discover": _discover, "clip": _cut, "script": _write_script, "tts": _speak, "render": _render}


def _run_workers(target: str, videos: int, total: int, progress: Callable[[str], None], every: float) -> None:
    """Run a worker process per niche to completion, reporting progress every `every` seconds while they work."""
    db.obj.close()  # the workers open their own connections
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS)
    procs = [ctx.Process(target=_work, args=(target, f"worker-{n + 1}", niche, videos, start))
             for n, niche in enumerate(_NICHES)]
    for proc in procs:
        proc.start()
    running = {proc.sentinel: proc for proc in procs}
    while running:
        ended = multiprocessing.connection.wait(list(running), timeout=every)
        for sentinel in ended:
            proc = running.pop(sentinel)
            proc.join()
            if proc.exitcode != 0:
                start.abort()  # a worker still waiting for it to start would wait forever
        if running and not ended:
            waiting = PipelineRun.select().where(PipelineRun.status.in_([RunStatus.pending, RunStatus.running]))
            progress(f"  workers: {total - waiting.count()}/{total} runs through production")
    failed = [proc.exitcode for proc in procs if proc.exitcode != 0]
    if failed:
        raise PipelineModelsError(f"a demo worker process exited with status {failed[0]}")


# --- the demo ----------------------------------------------------------------------------------------------

def run_demo(target: str = "pipeline-demo.db", videos: int = 12, out: Callable[[str], None] = print,
             progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
             progress_every: float = 2.0) -> None:
    """Simulate the pipeline on `target`, `videos` candidates discovered per niche per cycle, and print what
    happened.

    `target` is a SQLite file path or URL, or a PostgreSQL URL: a new or empty database, or one an earlier
    demo made (made anew); anything else is refused, unchanged, with PipelineModelsError. While the workers
    run longer than `progress_every` seconds, `progress` gets a line about how far they are.
    """
    began = time.monotonic()
    _fresh_database(target)
    ConfigOverride.set(PipelineRun.RETRY_DELAY_KEY, _RETRY_DELAY, updated_by="demo")
    phases = [utcnow()]  # when each phase began: the retimed runs wait for a reviewer, a worker, between them
    total = _schedule(out)
    _run_workers(target, videos, total, progress, progress_every)
    _report_production(out)
    _resolve_recovered()
    phases.append(utcnow())
    _answer_reviews(out)
    phases.append(utcnow())
    _run_workers(target, videos, total, progress, progress_every)  # the runs sent back: rendered or written again
    phases.append(utcnow())
    _answer_again(out)
    phases.append(utcnow())
    _upload_approved(out)
    ConfigOverride.delete_by_id(PipelineRun.RETRY_DELAY_KEY)  # the database keeps the pipeline's retry delay
    _retime(phases, videos)
    _record_analytics(out)
    out(f"\n{shown(target)} after {time.monotonic() - began:.1f} s:\n")
    out(table(["what", "status", "count"], status_rows()))


def _first_cycle_day() -> datetime:
    """Midnight (UTC) of the first day: every run, its uploads and their analytics end days before now."""
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=_DAYS + 5)


def _schedule(out: Callable[[str], None]) -> int:
    """The scheduler: each niche's run of each 6-hour cycle, scheduled twice (idempotent: once each)."""
    first = _first_cycle_day()
    starts = [(first + timedelta(hours=6 * cycle, minutes=minutes), niche)
              for cycle in range(_DAYS * _CYCLES) for niche, minutes in _NICHES.items()]
    for _ in range(2):  # the scheduler firing again (a restart) gets the same runs
        runs = {PipelineRun.schedule(niche, start).id for start, niche in sorted(starts)}
    out(f"scheduled {plural(len(runs), 'run')}: {' and '.join(_NICHES)}, {_CYCLES} cycles a day for {_DAYS} days "
        f"from {first:%Y-%m-%d}")
    return len(runs)


def _report_production(out: Callable[[str], None]) -> None:
    clips = Clip.select().count()
    in_review = PipelineRun.select().where(PipelineRun.status == RunStatus.review).count()
    out(f"{WORKERS} workers, one per niche, discovered {plural(DiscoveredVideo.select().count(), 'video')} and cut "
        f"{plural(clips, 'ranked clip')} ({clips / max(1, PipelineRun.select().join(Clip).distinct().count()):.1f} "
        f"a run); {plural(in_review, 'run')} sent to review with {plural(Short.select().count(), 'short')}")
    for run in PipelineRun.select().where(PipelineRun.error_message.is_null(False)).order_by(PipelineRun.id):
        how = "failed for good" if run.status is RunStatus.failed else f"now {run.status}, after a retry"
        out(f"run {run.id} ({run.niche}) {how}: {shown(run.error_message)}")


def _resolve_recovered() -> None:
    """The operator marks resolved the errors of the runs that recovered; those of the failed run stay open."""
    recovered = PipelineRun.select(PipelineRun.id).where(PipelineRun.status != RunStatus.failed)
    for error in ErrorLog.unresolved().where(ErrorLog.pipeline_run.in_(recovered)):
        error.resolve()


def _cycle_of(run: PipelineRun) -> Tuple[str, int]:
    """(niche, cycle number) of a run: its place among the niche's runs."""
    earlier = PipelineRun.select().where((PipelineRun.niche == run.niche) & (PipelineRun.cycle_start < run.cycle_start))
    return run.niche, earlier.count()


def _answer_reviews(out: Callable[[str], None]) -> None:
    """The reviewers' first answers, in cycle order; the last request is left unanswered, and auto-held."""
    reviews = list(ReviewLog.select(ReviewLog, PipelineRun).join(PipelineRun).where(ReviewLog.action.is_null())
                   .order_by(PipelineRun.cycle_start, PipelineRun.niche))
    said: Counter = Counter()
    for review in reviews[:-1]:
        action, detail = _ANSWERS.get(_cycle_of(review.pipeline_run), "approve"), None
        if action == "skip":
            ranks = [clip.rank_position for clip in _kept(review.pipeline_run)]
            wanted = [rank for rank in (4, 7) if rank in ranks] if len(ranks) >= 8 else ranks[-1:]
            action, detail = ("skip", "skip " + ",".join(map(str, wanted))) if len(ranks) > 1 else ("approve", None)
        ReviewLog.answer(review.message_id, action, response_detail=detail, reviewer="@alice")
        said[detail or action] += 1
    first = next((r for r in reviews if r.refresh().action == "approve"), None)
    if first is not None:  # the button tapped twice: the second tap changes nothing
        _, again = ReviewLog.answer(first.message_id, "approve", reviewer="@alice")
    # Nobody answers the last one: the demo's reviewers get no time at all (the pipeline gives them 4 hours).
    held = ReviewLog.hold_stale(timedelta(microseconds=1)) if reviews else 0
    out(f"reviews: {sum(said.values())} answered (" + ", ".join(f"{n} {what}" for what, n in said.most_common())
        + f"), {held} auto-held" + ("" if first is None else "; a repeated tap changed it" if again
                                     else "; a repeated tap ignored"))


def _answer_again(out: Callable[[str], None]) -> None:
    """The runs rendered or written again are approved; so is one of the held ones."""
    redone = PipelineRun.select().where(PipelineRun.status == RunStatus.review).order_by(PipelineRun.id)
    answered = []
    for run in redone:
        review = run.reviews.order_by(ReviewLog.id.desc()).first()
        if review.action is None or (review.action == "hold" and not review.auto_held
                                     and _cycle_of(run) == _HELD_THEN_APPROVED):
            ReviewLog.answer(review.message_id, "approve", reviewer="@bob")
            answered.append(f"{run.id}" + (" (held before)" if review.action == "hold" else ""))
    out(f"the workers made the runs sent back again; approved runs {', '.join(answered) or 'none'}")


def _upload_approved(out: Callable[[str], None]) -> None:
    """Upload each approved run's long-form video, then its shorts, each once."""
    shorts = 0
    for run in PipelineRun.select().where(PipelineRun.status == RunStatus.approved).order_by(PipelineRun.id):
        run.start_upload()  # AlreadyUploaded / UploadInDoubt instead of a second copy on the channel
        run.mark_uploaded(f"lf{run.id:05d}")  # (the id YouTube's API returned)
        for short in run.shorts.where(Short.status == ShortStatus.review).order_by(Short.id):
            short.start_upload()
            short.mark_uploaded(f"sh{run.id:05d}r{short.clip.rank_position}")
            shorts += 1
    uploaded = PipelineRun.select().where(PipelineRun.status == RunStatus.uploaded).count()
    out(f"uploaded {plural(uploaded, 'long-form video')} and {plural(shorts, 'short')}")


_GAPS = [(1, 5), None, (2, 10), None, (5, 30)]  # minutes, after each phase began; None: a reviewer's latency


def _retime(phases: List[datetime], videos: int) -> None:
    """Lay each run's timestamps out in its cycle, in their order, in one transaction: the first at the cycle's
    start, a real millisecond a simulated second (at most a minute) within a phase, and between phases the
    wait for a worker, a reviewer or the uploader (seeded). Its videos' discovery moves with it."""
    models = [m for m in ALL_MODELS if m not in (PipelineRun, DiscoveredVideo) and "pipeline_run" in m._meta.fields]
    with db.atomic():
        for run in list(PipelineRun.select().order_by(PipelineRun.id)):
            niche, cycle = _cycle_of(run)
            ids = [candidate["video_id"] for candidate in _candidates(niche, cycle, videos)]
            rows = [run, *DiscoveredVideo.select().where(DiscoveredVideo.video_id.in_(ids))]
            rows += [row for model in models for row in model.select().where(model.pipeline_run == run.id)]
            fields = {row: [f for f in type(row)._meta.sorted_fields if isinstance(f, UTCDateTimeField)
                            and f.name not in ("cycle_start", "cycle_end", "published_at")] for row in rows}
            stamps = sorted({getattr(row, f.name) for row in rows for f in fields[row]} - {None})
            rng, moved, at = random.Random(f"{niche}:{cycle}:retime"), {}, run.cycle_start
            for before, when in zip([None, *stamps], stamps):
                if before is not None:
                    crossed = [k for k, began in enumerate(phases) if before < began <= when]
                    at += sum((_gap(rng, k) for k in crossed), timedelta()) if crossed else min(
                        (when - before) * 1000, timedelta(minutes=1))
                moved[when] = at
            for row in rows:
                changes = {f: moved[getattr(row, f.name)] for f in fields[row] if getattr(row, f.name) is not None}
                if isinstance(row, DiscoveredVideo) and row.published_at is not None:
                    changes[DiscoveredVideo.published_at] = changes[DiscoveredVideo.discovered_at] - (
                        row.discovered_at - row.published_at)
                type(row).update(changes).where(type(row).id == row.id).execute()


def _gap(rng: random.Random, phase: int) -> timedelta:
    span = _GAPS[phase]
    if span is None:  # a reviewer: mostly within the half hour, a few hours at worst (auto-held at 4)
        return timedelta(minutes=min(210.0, rng.lognormvariate(3.0, 0.9)))
    return timedelta(minutes=rng.uniform(*span))


def _snapshots(rng: random.Random) -> Iterator[Dict[str, Any]]:
    """Every uploaded video's analytics, every 6 hours from its upload: long-form videos first, then shorts."""
    uploads = [(r.youtube_video_id, r.completed_at, 400) for r in
               PipelineRun.select().where(PipelineRun.status == RunStatus.uploaded).order_by(PipelineRun.id)]
    uploads += [(s.youtube_video_id, s.uploaded_at, 2500) for s in
                Short.select().where(Short.status == ShortStatus.uploaded).order_by(Short.youtube_video_id)]
    for video, since, pace in uploads:
        views = 0
        for step in range(_SNAPSHOTS):
            views += int(pace * rng.uniform(0.2, 3.0))
            yield dict(youtube_video_id=video, measured_at=since + timedelta(hours=6 * step), view_count=views,
                       like_count=views // 25, comment_count=views // 400,
                       average_view_duration_seconds=rng.uniform(90, 300) if pace == 400 else rng.uniform(8, 20),
                       click_through_rate=rng.uniform(0.02, 0.09), subscriber_gain=views // 1000,
                       estimated_revenue_usd=None if step < 4 else views * 2e-5,
                       engaged_views=int(views * 0.6), shares=views // 300, watch_time_minutes=views * 0.4)


def _record_analytics(out: Callable[[str], None]) -> None:
    """Analytics of the long-form videos and the shorts, written in bulk (one transaction); then the top video."""
    Analytics.record_many(_snapshots(random.Random(2026)))
    out(f"recorded {plural(Analytics.select().count(), 'analytics snapshot')}, every 6 hours for "
        f"{_SNAPSHOTS // 4} days after each upload")
    best = Analytics.top(1)
    if best:
        kind = "long-form" if PipelineRun.select().where(PipelineRun.youtube_video_id == best[0].youtube_video_id
                                                          ).exists() else "short"
        out(f"top video: {best[0].youtube_video_id} ({kind}) with {best[0].view_count:,} views")
