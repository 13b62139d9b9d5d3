"""`pipeline-models demo`: the whole pipeline simulated on a SQLite file (or PostgreSQL), with two worker processes.

Discover videos, queue runs, let two worker processes claim them (clips, script with token costs, TTS,
render, review request), fail one render and retry it, answer the reviews (one rejected, one edited, one
left unanswered and auto-held, one button tapped twice), upload the approved shorts once each, sample a
week of analytics, and print the status table. Everything goes through the package's own operations.
"""
import multiprocessing
import multiprocessing.connection
import os
import random
import sys
import threading
import time
from datetime import timedelta
from typing import Any, Callable, Dict, Iterator, List, Optional
from urllib.parse import urlparse

import peewee
from playhouse import db_url
from playhouse.migrations import Runner

from .cli_output import plural, shown, table
from .db import MIGRATIONS_DIR, _connect, _database_for, _is_postgres, db, init_db, redact
from .enums import RunStatus, ShortStatus, VideoStatus
from .errors import CannotOpenDatabase, PipelineModelsError, SchemaMismatch
from .fields import UTCDateTimeField, utcnow
from .models import (ALL_MODELS, Analytics, Clip, ConfigOverride, DiscoveredVideo, ErrorLog, PipelineRun, ReviewLog,
                     Script, Short, TTSAudio)
from .queries import status_rows

MARKER = "demo.database"  # a config key: this database was made by the demo and may be made anew
SOURCES = ["search:how rivers carve canyons", "channel:UCgeodaily", "feed:trending-science", "search:volcano timelapse"]
WORKERS = 2


class RenderCrashed(RuntimeError):
    """The simulated render failure of the demo."""


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


def _work(target: str, name: str, fail_run_id: int, start: Any) -> None:
    """A worker process: claim runs until none is left; a failure is one line on stderr, not a traceback."""
    try:
        _claim_and_produce(target, name, fail_run_id, start)
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


def _claim_and_produce(target: str, name: str, fail_run_id: int, start: Any) -> None:
    """Claim runs until none is left and take each to its review request."""
    init_db(target)
    start.wait()  # both workers begin claiming together, as workers of a running pipeline would
    rng = random.Random(name)
    while True:
        run = PipelineRun.claim_next(name)
        if run is None:
            break
        try:
            with ErrorLog.capture("render", pipeline_run=run):
                crash = run.id == fail_run_id and not ErrorLog.select().where(ErrorLog.pipeline_run == run).exists()
                _produce(run, rng, crash=crash)  # the first render of that run crashes
        except RenderCrashed as exc:
            run.fail(exc, retry=False)  # for good: the operator retries it below
            continue
        ReviewLog.request(run, message_id=f"chat:4242:{run.id}:{run.attempts}")
    db.obj.close()


def _produce(run: PipelineRun, rng: random.Random, crash: bool) -> None:
    """One run's production: clips, script, TTS and a rendered short, in one transaction fenced by the claim."""
    with run.fenced():
        run.heartbeat(stage="clip")
        clips = []
        start = rng.uniform(0, 120)
        for _ in range(rng.randint(2, 3)):
            end = start + rng.uniform(25, 58)
            clips.append(Clip.create(pipeline_run=run, start_seconds=round(start, 2), end_seconds=round(end, 2),
                                     score=round(rng.random(), 3), file_path=f"clips/{run.id}-{len(clips)}.mp4"))
            start = end + rng.uniform(5, 60)
        run.heartbeat(stage="script")
        prompt, completion = rng.randint(900, 2500), rng.randint(200, 700)
        opening, closing = "You won't believe how old this is.", "Follow for more."
        beats = ["It started as a trickle.", "Then the river found a fault.", "Six million years later: this."]
        narration = len(opening) + sum(map(len, beats)) + len(closing)
        Script.create(pipeline_run=run, opening_text=opening, closing_text=closing,
                      full_script_json={"opening": opening, "beats": beats, "closing": closing},
                      total_char_count=narration, estimated_duration_seconds=round(narration / 15, 1),
                      llm_model_used="gpt-4.1-mini", title=f"Short #{run.id}", prompt_tokens=prompt,
                      completion_tokens=completion, cost_usd=round(prompt * 0.4e-6 + completion * 1.6e-6, 6))
        run.heartbeat(stage="tts")
        TTSAudio.create(pipeline_run=run, engine_used="openai", voice_profile="alloy",
                        audio_file_path=f"audio/{run.id}.wav", duration_seconds=round(rng.uniform(40, 58), 1))
        run.heartbeat(stage="render")
        if crash:
            raise RenderCrashed(f"ffmpeg exited 1 rendering run {run.id}: moov atom not found")
        best = max(clips, key=lambda c: c.score)
        Short.create(pipeline_run=run, clip=best, status=ShortStatus.rendered, file_path=f"shorts/{run.id}.mp4",
                     title=f"Short #{run.id}", duration_seconds=round(best.end_seconds - best.start_seconds, 1))


def _backdate(by: timedelta) -> None:
    """Move every timestamp in the database `by` into the past, in one transaction."""
    with db.atomic():
        for model in ALL_MODELS:
            for field in model._meta.sorted_fields:
                if not isinstance(field, UTCDateTimeField):
                    continue
                column = peewee.Entity(field.column_name)
                if _is_postgres():
                    earlier = peewee.NodeList((column, peewee.SQL("- %s::interval", [f"{by.total_seconds()} seconds"])))
                else:  # fixed-width UTC text: datetime() keeps whole seconds, the microseconds are kept as they are
                    earlier = (peewee.fn.datetime(column, f"-{by.total_seconds()} seconds")
                               .concat(peewee.fn.substr(column, 20)))
                model.update({field: earlier}).where(field.is_null(False)).execute()


def _run_workers(target: str, fail_run_id: int, total: int, progress: Callable[[str], None],
                 every: float) -> None:
    """Run WORKERS worker processes to completion, reporting progress every `every` seconds while they work."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS)
    procs = [ctx.Process(target=_work, args=(target, f"worker-{n + 1}", fail_run_id, start))
             for n in range(WORKERS)]
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


def run_demo(target: str = "pipeline-demo.db", videos: int = 12, out: Callable[[str], None] = print,
             progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
             progress_every: float = 2.0) -> None:
    """Simulate the pipeline end to end on `target` and print what happened.

    `target` is a SQLite file path or URL, or a PostgreSQL URL: a new or empty database, or one an earlier
    demo made (made anew); anything else is refused, unchanged, with PipelineModelsError. While the workers
    run longer than `progress_every` seconds, `progress` gets a line about how far they are.
    """
    rng = random.Random(2026)  # one sequence for the whole demo: discovery first, then the analytics
    began = time.monotonic()
    _fresh_database(target)
    _discover_videos(videos, rng, out)
    runs = _queue_runs(videos, out)
    fail_run_id = _produce_with_workers(target, runs, progress, progress_every, out)
    _retry_failed_run(target, fail_run_id, progress, progress_every, out)
    _answer_reviews(out)
    _upload_approved(out)
    # All that happened a week ago, so that the week of analytics after the uploads is in the past too.
    _backdate(timedelta(days=7))
    _record_week_of_analytics(rng, out)
    out(f"\n{shown(target)} after {time.monotonic() - began:.1f} s:\n")
    out(table(["what", "status", "count"], status_rows()))


def _discover_videos(videos: int, rng: random.Random, out: Callable[[str], None]) -> None:
    """Discovery: each video found once, some found again by another source (refreshing its view count)."""
    now = utcnow()
    for n in range(videos):
        DiscoveredVideo.discover(
            f"demo{n:06d}", title=f"Source video {n}", channel_id=f"UC{n % 5:04d}", channel_title=f"Channel {n % 5}",
            published_at=now - timedelta(days=rng.randint(1, 400)), duration_seconds=float(rng.randint(240, 3600)),
            view_count=rng.randint(10_000, 5_000_000), source=rng.choice(SOURCES))
    for n in range(0, videos, 4):
        DiscoveredVideo.discover(f"demo{n:06d}", view_count=rng.randint(5_000_000, 9_000_000))
    out(f"discovered {plural(DiscoveredVideo.select().count(), 'video')}")


def _queue_runs(videos: int, out: Callable[[str], None]) -> List[PipelineRun]:
    """Selection: most videos get a run; a few are skipped. Returns the runs, in the order of their videos."""
    runs: List[PipelineRun] = []
    for video in DiscoveredVideo.select().order_by(DiscoveredVideo.id):
        if videos >= 4 and video.id % 7 == 0:
            DiscoveredVideo.update(status=VideoStatus.skipped).where(DiscoveredVideo.id == video.id).execute()
        else:
            runs.append(PipelineRun.start(video))
    skipped = videos - len(runs)
    out(f"queued {plural(len(runs), 'run')}"
        + (f"; skipped the other {skipped} of {videos} videos" if skipped else ", one per video"))
    return runs


def _produce_with_workers(target: str, runs: List[PipelineRun], progress: Callable[[str], None], every: float,
                          out: Callable[[str], None]) -> int:
    """Production by two worker processes; one render crashes on its first attempt. Returns that run's id."""
    fail_run_id = runs[len(runs) // 2].id
    db.obj.close()  # the workers open their own connections
    _run_workers(target, fail_run_id, len(runs), progress, every)
    out(f"two workers produced {plural(Short.select().count(), 'short')}; run {fail_run_id} failed: "
        f"{shown(PipelineRun.get_by_id(fail_run_id).last_error)}")
    return fail_run_id


def _retry_failed_run(target: str, fail_run_id: int, progress: Callable[[str], None], every: float,
                      out: Callable[[str], None]) -> None:
    """The operator resolves the error and retries the run; the workers pick it up again."""
    crashed = ErrorLog.unresolved("render").first()
    if crashed is not None:
        crashed.resolve()
    PipelineRun.get_by_id(fail_run_id).retry()
    db.obj.close()
    _run_workers(target, fail_run_id, 1, progress, every)
    out(f"retried run {fail_run_id}: now {PipelineRun.get_by_id(fail_run_id).status.value} "
        f"(attempt {PipelineRun.get_by_id(fail_run_id).attempts})")


def _answer_reviews(out: Callable[[str], None]) -> None:
    """Review: approve most, reject one, edit one, leave one unanswered (auto-held), and a double tap."""
    reviews = list(ReviewLog.unanswered())
    unanswered = reviews[-1] if len(reviews) > 1 else None
    for n, review in enumerate(reviews):
        if review is unanswered:
            continue
        action = "reject" if n == 1 else "edit" if n == 2 else "approve"
        detail = "Title: 'This canyon is younger than you'" if action == "edit" else None
        ReviewLog.answer(review.message_id, action, response_detail=detail, reviewer="@alice")
    if reviews[:1]:
        _, changed = ReviewLog.answer(reviews[0].message_id, "approve", reviewer="@alice")  # the second tap
        assert not changed
    # Nobody answers the last one: the demo's reviewers get no time at all (a pipeline would give them an hour).
    held = ReviewLog.hold_stale(timedelta(microseconds=1)) if unanswered is not None else 0
    out(f"reviews: {len(reviews) - (unanswered is not None)} answered, {held} auto-held"
        + (", a repeated tap ignored" if reviews else ""))


def _upload_approved(out: Callable[[str], None]) -> None:
    """Upload every approved short once: recording the last upload of a run publishes it, and its video is processed."""
    uploaded = []
    for run in PipelineRun.select().where(PipelineRun.status == RunStatus.approved):
        for short in run.shorts.where(Short.status == ShortStatus.rendered):
            short.start_upload()
            short.mark_uploaded(f"yt{run.id:09d}")
            uploaded.append(short)
    published = PipelineRun.select().where(PipelineRun.status == RunStatus.published).count()
    out(f"uploaded {plural(len(uploaded), 'short')}; {plural(published, 'run')} published")


def _week_of_snapshots(rng: random.Random) -> Iterator[Dict[str, Any]]:
    """Every uploaded short's analytics for a week after its upload, sampled every six hours."""
    for short in Short.select().where(Short.status == ShortStatus.uploaded).order_by(Short.id):
        views = 0
        for step in range(7 * 4):
            views += rng.randint(50, 5000)
            yield dict(youtube_video_id=short.youtube_video_id,
                       measured_at=short.uploaded_at + timedelta(hours=6 * step),
                       view_count=views, like_count=views // 25, comment_count=views // 400,
                       average_view_duration_seconds=rng.uniform(15, 45),
                       click_through_rate=rng.uniform(0.02, 0.09), subscriber_gain=views // 1000,
                       estimated_revenue_usd=None if step < 8 else views * 2e-5,
                       engaged_views=int(views * 0.6), shares=views // 300, watch_time_minutes=views * 0.4)


def _record_week_of_analytics(rng: random.Random, out: Callable[[str], None]) -> None:
    """A week of analytics, sampled every six hours, written in bulk (one transaction); then the top short."""
    Analytics.record_many(_week_of_snapshots(rng))
    out(f"recorded {plural(Analytics.select().count(), 'analytics snapshot')} over a week")
    best = Analytics.top(1)
    if best:
        out(f"top short: {best[0].youtube_video_id} with {best[0].view_count:,} views")
