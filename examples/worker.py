"""An end-to-end worker: claim a niche's run, build its ranked clips, write them under the claim, ask for a
review, then upload the long-form video and its shorts and measure them.

    python examples/worker.py [--db TARGET]

TARGET is anything init_db takes: a new SQLite file, or the URL of an empty PostgreSQL database. Without
--db it runs on a new file in a temporary directory, removed at the end. The slow work (discovery, downloads,
finding the moments, the LLM, TTS, rendering, the uploads) is faked; every database call is the package's
public API, as a worker makes it.
"""
import argparse
import os
import socket
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

import pipeline_models as pm

NICHE = "gaming"
FIRST_CYCLE = datetime(2026, 1, 1, 0, 30, tzinfo=timezone.utc)  # gaming's cycles: 00:30, 06:30, 12:30, 18:30 UTC
CYCLE = timedelta(hours=6)
CYCLES, CANDIDATES, CLIPS, SHORTS = 3, 10, 8, 3  # a run keeps its 8 best candidates, ranked, and 3 shorts
FLAKY = 1  # the second cycle's first render crashes: the run goes back to the queue and succeeds on attempt 2


class RenderCrashed(RuntimeError):
    """The faked renderer's failure."""


def open_empty(target):
    """Bind `target` and migrate it, refusing one that holds anything: the example writes made-up data."""
    path = target[len("sqlite:///"):] if target.startswith("sqlite:///") else None if "://" in target else target
    if path and os.path.exists(path) and os.path.getsize(path) > 0:  # checked first: init_db would switch it to WAL
        sys.exit(f"worker.py: {target} already exists; give --db a new file or an empty database")
    database = pm.init_db(target, upgrade=False)
    if database.get_tables():
        sys.exit("worker.py: the --db database already has tables; give it an empty database")
    pm.migrate()


def cycle_of(run):
    return int((run.cycle_start - FIRST_CYCLE) / CYCLE)


def discover(run):
    """The cycle's candidates: found once each (discover() again would refresh their metadata)."""
    cycle = cycle_of(run)
    for n in range(CANDIDATES):
        score = round(50 + (n * 37 + cycle * 11) % 50 + n / 100, 2)  # made up, distinct
        pm.DiscoveredVideo.discover(f"gm{cycle:02d}vid{n:04d}", title=f"Play {cycle}-{n}", niche=run.niche,
                                    channel_name=f"Creator {n % 4}", channel_id=f"UCcreator{n % 4}",
                                    viral_score=score, view_count=10_000 * (n + 1), discovery_source="youtube_trending")


def produce(run):
    """One attempt at a run: the slow work first, outside any transaction, then its results under the claim."""
    run.heartbeat(stage="discover")  # between slow steps: requeue_stale sees the worker alive; LeaseLost if not
    discover(run)
    run.heartbeat(stage="clip")
    pending = list(pm.get_pending_videos(run.niche).limit(CLIPS))  # the best candidates not used yet
    moments = sorted(((video, 12.0 + n, 12.0 + n + 18.5, video.viral_score * (1 - n / 50))
                      for n, video in enumerate(pending)), key=lambda moment: -moment[3])  # rank 1: most viral
    run.heartbeat(stage="script")
    intros = [f"Number {rank}: {video.title} by {video.channel_name}." for rank, (video, *_) in enumerate(moments, 1)]
    prompt, completion = 1800 + run.id, 400 + run.id
    script = dict(opening_text=f"The {len(moments)} best {run.niche} plays today.", closing_text="Subscribe.",
                  full_script_json={"clips": intros[::-1]}, total_char_count=sum(map(len, intros)),
                  estimated_duration_seconds=round(sum(map(len, intros)) / 15, 1), llm_model_used="gpt-4.1-mini",
                  title=f"Top {len(moments)} {run.niche} plays", prompt_tokens=prompt, completion_tokens=completion,
                  cost_usd=round(prompt * 0.4e-6 + completion * 1.6e-6, 6))
    run.heartbeat(stage="tts")
    audio = dict(engine_used="piper", voice_profile="en_US-amy", audio_file_path=f"audio/{run.id}.wav",
                 duration_seconds=script["estimated_duration_seconds"])
    run.heartbeat(stage="render")
    if cycle_of(run) == FLAKY and run.retry_count == 0:
        raise RenderCrashed(f"ffmpeg exited 1 rendering run {run.id}: moov atom not found")
    with run.fenced():  # all or nothing, and only while this worker still holds the claim
        clips = []
        for rank, (video, start, end, score) in enumerate(moments, 1):
            clips.append(pm.Clip.create(pipeline_run=run, discovered_video=video, rank_position=rank,
                                        start_time_seconds=start, end_time_seconds=end,
                                        clip_duration_seconds=end - start, score=score,
                                        extraction_method="most_replayed", clip_file_path=f"clips/{run.id}-{rank}.mp4"))
            pm.mark_video_processed(video.video_id, pm.Processed.used)  # never a candidate again
        pm.Script.create(pipeline_run=run, **script)
        pm.TTSAudio.create(pipeline_run=run, **audio)
        run.video_file_path, run.video_duration_seconds = f"renders/{run.id}.mp4", 540.0
        run.save(only=[pm.PipelineRun.video_file_path, pm.PipelineRun.video_duration_seconds])
        for clip in clips[:SHORTS]:  # the top ranks make the shorts
            pm.Short.create(pipeline_run=run, clip=clip, title=f"#{clip.rank_position} of run {run.id}",
                            file_path=f"shorts/{run.id}-{clip.rank_position}.mp4", duration_seconds=18.5)
    print(f"  run {run.id}: {len(clips)} ranked clips, a script ({prompt}+{completion} tokens, "
          f"${script['cost_usd']}), TTS audio, a long-form render and {SHORTS} shorts")


def work(worker):
    """Claim runs until the queue is empty, taking each to its review request; returns the runs it reviewed."""
    reviewed = []
    while True:
        run = pm.PipelineRun.claim_next(worker, niche=NICHE)  # the earliest cycle first
        if run is None:
            # A run that failed waits out its backoff (not_before) in the queue: poll until it is due.
            waiting = (pm.PipelineRun.select().where(pm.PipelineRun.status == pm.RunStatus.pending)
                       .order_by(pm.PipelineRun.not_before).first())
            if waiting is None:
                return reviewed
            due = waiting.not_before or pm.utcnow()  # None: another worker is claiming it right now
            time.sleep(max(0.0, (due - pm.utcnow()).total_seconds()) + 0.05)
            continue
        print(f"claimed run {run.id} ({run.niche}, cycle {run.cycle_start:%Y-%m-%d %H:%M} UTC), "
              f"attempt {run.retry_count + 1}")
        try:
            with pm.ErrorLog.capture("render", pipeline_run=run):  # recorded, then re-raised
                produce(run)
        except pm.LeaseLost:
            continue  # requeued while this worker stalled: another worker has it now
        except RenderCrashed as exc:
            run.fail(exc)  # pending again after a backoff; the third failed attempt fails it for good
            print(f"  run {run.id}: {run.error_message}; due again in "
                  f"{(run.not_before - pm.utcnow()).total_seconds():.1f} s")
            continue
        pm.ReviewLog.request(run, message_id=f"chat:42:{run.id}:{run.retry_count + 1}")  # the chat bot's message
        print(f"  run {run.id}: review requested, now {run.status}")
        reviewed.append(run)


def main():
    """Run a few cycles of one niche with one worker, and print each step."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="a new SQLite file or an empty PostgreSQL URL (default: a temporary file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="worker-example-") as tmp:
        target = args.db or os.path.join(tmp, "worker-example.db")
        open_empty(target)
        # The retry policy: 3 attempts, 30 s after the first failure, 90 s after the second. 1 s keeps it short.
        pm.ConfigOverride.set("queue.retry_delay_seconds", 1, updated_by="worker example")

        # The scheduler: one run per niche per 6-hour cycle; scheduling a cycle again returns the same run.
        runs = [pm.PipelineRun.schedule(NICHE, FIRST_CYCLE + n * CYCLE) for n in range(CYCLES)]
        again = pm.PipelineRun.schedule(NICHE, FIRST_CYCLE)  # the scheduler firing twice, or after a restart
        print(f"scheduled runs {[r.id for r in runs]} of {NICHE}; scheduled again, cycle 1 is run {again.id}")

        reviewed = work(f"{socket.gethostname()}:{os.getpid()}")

        # The chat bot, elsewhere: a reviewer taps "approve" (twice, on the first message: ignored).
        for review in pm.ReviewLog.unanswered():
            pm.ReviewLog.answer(review.message_id, "approve", reviewer="@alice")
        _, again = pm.ReviewLog.answer(f"chat:42:{reviewed[0].id}:1", "approve")
        print(f"reviews: {len(reviewed)} approved by @alice; a repeated tap {'changed it' if again else 'was ignored'}")
        # The worker's run objects still say review: another call moved the rows. Refresh before deciding.
        print(f"run {reviewed[0].id} as the worker holds it: {reviewed[0].status}; "
              f"after refresh(): {reviewed[0].refresh().status}")

        # The uploader: claim each video once, upload it, record the id: the long-form video, then its shorts.
        uploaded = []
        approved = pm.PipelineRun.select().where(pm.PipelineRun.status == pm.RunStatus.approved)
        for run in approved.order_by(pm.PipelineRun.id):
            run.start_upload()  # AlreadyUploaded / UploadInDoubt instead of a second copy on the channel
            run.mark_uploaded(f"lf{run.id:09d}")  # (the id YouTube's API returned); the run is now uploaded
            uploaded.append((run.youtube_video_id, run.completed_at))
            for short in run.shorts.order_by(pm.Short.id):
                short.start_upload()
                short.mark_uploaded(f"sh{short.id:09d}")
                uploaded.append((short.youtube_video_id, short.uploaded_at))
        print(f"uploaded {len(runs)} long-form videos and {len(uploaded) - len(runs)} shorts")

        # The analytics sampler: a snapshot at upload, then a day of hourly ones in bulk (simulated times).
        for n, (video, since) in enumerate(uploaded, 1):
            pm.Analytics.record(video, measured_at=since, view_count=0, like_count=0)
            pm.Analytics.record_many(
                dict(youtube_video_id=video, measured_at=since + timedelta(hours=h), view_count=h * 100 * n,
                     like_count=h * 4 * n, click_through_rate=0.05) for h in range(1, 25))
        growth = pm.Analytics.growth(uploaded[0][0], since=uploaded[0][1])
        print(f"{uploaded[0][0]} (long-form): +{growth['view_count']:,} views, +{growth['like_count']} likes in a day")
        best = pm.Analytics.top(1)[0]
        print(f"top video: {best.youtube_video_id} with {best.view_count:,} views")

        print("runs:", ", ".join(f"{r.id} {r.refresh().status} after {r.retry_count + 1} attempt(s)" for r in runs),
              f"| errors recorded: {pm.ErrorLog.select().count()}")
        pm.db.close()


if __name__ == "__main__":
    main()
