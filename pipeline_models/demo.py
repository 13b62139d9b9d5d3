"""`pipeline-models demo`: the whole pipeline simulated on an embedded SQLite file, with two worker processes.

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
import time
from datetime import timedelta
from typing import Any, Callable, List

from .db import db, init_db
from .cli import status_rows, table
from .enums import RunStatus, ShortStatus, VideoStatus
from .errors import PipelineModelsError
from .models import (
    Analytics,
    Clip,
    ConfigOverride,
    DiscoveredVideo,
    ErrorLog,
    PipelineRun,
    ReviewLog,
    Script,
    Short,
    TTSAudio,
)
from .fields import utcnow

MARKER = "demo.database"  # a config key: this file was made by the demo and may be made anew
SOURCES = ["search:how rivers carve canyons", "channel:UCgeodaily", "feed:trending-science", "search:volcano timelapse"]
WORKERS = 2


class RenderCrashed(RuntimeError):
    """The simulated render failure of the demo."""


def _fresh_database(path: str) -> None:
    """Bind a new, empty database at `path`; replace an earlier demo's file, never anyone else's data."""
    if os.path.exists(path):
        init_db(path)
        has_data = DiscoveredVideo.select().exists()
        made_by_demo = ConfigOverride.get(MARKER, False)
        db.obj.close()
        db.initialize(None)
        if has_data and not made_by_demo:
            raise PipelineModelsError(
                f"{path} already holds pipeline data; the demo writes simulated data, so give it a new file "
                "with --db"
            )
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    init_db(path)
    ConfigOverride.set(MARKER, True, updated_by="demo")


def _work(path: str, name: str, fail_run_id: int, start: Any) -> None:
    """A worker process: claim runs until none is left and take each to its review request."""
    init_db(path)
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


def _run_workers(path: str, fail_run_id: int, total: int, progress: Callable[[str], None],
                 every: float) -> None:
    """Run WORKERS worker processes to completion, reporting progress every `every` seconds while they work."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS)
    procs = [ctx.Process(target=_work, args=(path, f"worker-{n + 1}", fail_run_id, start))
             for n in range(WORKERS)]
    for proc in procs:
        proc.start()
    running = {proc.sentinel: proc for proc in procs}
    while running:
        ended = multiprocessing.connection.wait(list(running), timeout=every)
        for sentinel in ended:
            running.pop(sentinel).join()
        if running and not ended:
            waiting = PipelineRun.select().where(PipelineRun.status.in_([RunStatus.pending, RunStatus.running]))
            progress(f"  workers: {total - waiting.count()}/{total} runs through production")
    failed = [proc.exitcode for proc in procs if proc.exitcode != 0]
    if failed:
        raise PipelineModelsError(f"a demo worker process exited with status {failed[0]}")


def run_demo(path: str = "pipeline-demo.db", videos: int = 12, out: Callable[[str], None] = print,
             progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
             progress_every: float = 2.0) -> None:
    """Simulate the pipeline end to end on the SQLite file at `path` and print what happened.

    While the workers run longer than `progress_every` seconds, `progress` gets a line about how far they are.
    """
    rng = random.Random(2026)
    began = time.monotonic()
    _fresh_database(path)
    now = utcnow()

    # Discovery: each video found once, some found again by another source (refreshing its view count).
    for n in range(videos):
        DiscoveredVideo.discover(
            f"demo{n:06d}", title=f"Source video {n}", channel_id=f"UC{n % 5:04d}", channel_title=f"Channel {n % 5}",
            published_at=now - timedelta(days=rng.randint(1, 400)), duration_seconds=float(rng.randint(240, 3600)),
            view_count=rng.randint(10_000, 5_000_000), source=rng.choice(SOURCES))
    for n in range(0, videos, 4):
        DiscoveredVideo.discover(f"demo{n:06d}", view_count=rng.randint(5_000_000, 9_000_000))
    out(f"discovered {DiscoveredVideo.select().count()} videos")

    # Selection: most videos get a run; a few are skipped.
    runs: List[PipelineRun] = []
    for video in DiscoveredVideo.select().order_by(DiscoveredVideo.id):
        if videos >= 4 and video.id % 7 == 0:
            DiscoveredVideo.update(status=VideoStatus.skipped).where(DiscoveredVideo.id == video.id).execute()
        else:
            runs.append(PipelineRun.start(video))
    out(f"queued {len(runs)} runs; skipped the other {videos - len(runs)} of {videos} videos")

    # Production by two worker processes; one render crashes on its first attempt.
    fail_run_id = runs[len(runs) // 2].id
    db.obj.close()  # the workers open their own connections
    _run_workers(path, fail_run_id, len(runs), progress, progress_every)
    crashed = ErrorLog.unresolved("render").first()
    out(f"two workers produced {Short.select().count()} shorts; run {fail_run_id} failed: "
        f"{PipelineRun.get_by_id(fail_run_id).last_error}")

    # The operator resolves the error and retries the run; the workers pick it up again.
    if crashed is not None:
        crashed.resolve()
    PipelineRun.get_by_id(fail_run_id).retry()
    db.obj.close()
    _run_workers(path, fail_run_id, 1, progress, progress_every)
    out(f"retried run {fail_run_id}: now {PipelineRun.get_by_id(fail_run_id).status.value} "
        f"(attempt {PipelineRun.get_by_id(fail_run_id).attempts})")

    # Review: approve most, reject one, edit one, leave one unanswered (auto-held), and a double tap.
    reviews = list(ReviewLog.open())
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
    if unanswered is not None:
        ReviewLog.update(sent_at=now - timedelta(hours=3)).where(ReviewLog.id == unanswered.id).execute()
    held = ReviewLog.hold_stale(timedelta(hours=1))
    out(f"reviews: {len(reviews) - (unanswered is not None)} answered, {held} auto-held, a repeated tap ignored")

    # Upload every approved short once: recording the last upload of a run publishes it, and its video is processed.
    uploaded = []
    for run in PipelineRun.select().where(PipelineRun.status == RunStatus.approved):
        for short in run.shorts.where(Short.status == ShortStatus.rendered):
            short.start_upload()
            short.mark_uploaded(f"yt{run.id:09d}")
            uploaded.append(short)
    published = PipelineRun.select().where(PipelineRun.status == RunStatus.published).count()
    out(f"uploaded {len(uploaded)} shorts; {published} runs published")

    # A week of analytics, sampled every six hours, written in bulk (one transaction).
    def week_of_snapshots():
        for short in uploaded:
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
    Analytics.record_many(week_of_snapshots())
    out(f"recorded {Analytics.select().count()} analytics snapshots over a week")
    best = Analytics.top(1)
    if best:
        out(f"top short: {best[0].youtube_video_id} with {best[0].view_count:,} views")
    out(f"\n{path} after {time.monotonic() - began:.1f} s:\n")
    out(table(["what", "status", "count"], status_rows()))
