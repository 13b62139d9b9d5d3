"""An end-to-end worker: claim a run, write its artefacts under the claim, ask for a review, upload, publish, measure.

    python examples/worker.py [--db TARGET]

TARGET is anything init_db takes: a new SQLite file, or the URL of an empty PostgreSQL database. Without
--db it runs on a new file in a temporary directory, removed at the end. The slow work (cutting, the LLM,
TTS, rendering, the upload) is faked; every database call is the package's public API, as a worker makes it.
"""
import argparse
import os
import socket
import sys
import tempfile
import time
from datetime import timedelta

import pipeline_models as pm

VIDEOS = {"canyon00001": "How rivers carve canyons", "volcano0002": "Volcano timelapse",
          "glacier0003": "A glacier calving"}
FLAKY = "volcano0002"  # its first render crashes: the run goes back to the queue and succeeds on attempt 2


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


def produce(run):
    """One attempt at a run: the slow work first, outside any transaction, then its results under the claim."""
    run.heartbeat(stage="clip")  # between slow steps: requeue_stale sees the worker alive; LeaseLost if not
    clips = [dict(start_seconds=12.0 + 60 * n, end_seconds=55.5 + 60 * n, score=0.9 - 0.2 * n) for n in range(2)]
    run.heartbeat(stage="script")
    beats = ["It started as a trickle.", "Then the river found a fault.", "Six million years later: this."]
    prompt, completion = 1800 + run.id, 400 + run.id
    script = dict(opening_text="You won't believe how old this is.", closing_text="Follow for more.",
                  full_script_json={"beats": beats}, total_char_count=sum(map(len, beats)),
                  estimated_duration_seconds=round(sum(map(len, beats)) / 15, 1), llm_model_used="gpt-4.1-mini",
                  prompt_tokens=prompt, completion_tokens=completion,
                  cost_usd=round(prompt * 0.4e-6 + completion * 1.6e-6, 6))
    run.heartbeat(stage="tts")
    audio = dict(engine_used="piper", voice_profile="en_US-amy", audio_file_path=f"audio/{run.id}.wav",
                 duration_seconds=41.5)
    run.heartbeat(stage="render")
    if run.discovered_video.youtube_video_id == FLAKY and run.attempts == 1:
        raise RenderCrashed(f"ffmpeg exited 1 rendering run {run.id}: moov atom not found")
    with run.fenced():  # all or nothing, and only while this worker still holds the claim
        cut = [pm.Clip.create(pipeline_run=run, file_path=f"clips/{run.id}-{n}.mp4", **c) for n, c in enumerate(clips)]
        pm.Script.create(pipeline_run=run, title=f"Short #{run.id}", **script)
        pm.TTSAudio.create(pipeline_run=run, **audio)
        pm.Short.create(pipeline_run=run, clip=cut[0], status=pm.ShortStatus.rendered, title=f"Short #{run.id}",
                        file_path=f"shorts/{run.id}.mp4", duration_seconds=43.5)
    print(f"  run {run.id}: 2 clips, a script ({prompt}+{completion} tokens, ${script['cost_usd']}), "
          f"TTS audio, a rendered short")


def work(worker):
    """Claim runs until the queue is empty, taking each to its review request; returns the runs it reviewed."""
    reviewed = []
    while True:
        run = pm.PipelineRun.claim_next(worker)
        if run is None:
            # A run that failed waits out its backoff (not_before) in the queue: poll until it is due.
            waiting = (pm.PipelineRun.select().where(pm.PipelineRun.status == pm.RunStatus.pending)
                       .order_by(pm.PipelineRun.not_before).first())
            if waiting is None:
                return reviewed
            due = waiting.not_before or pm.utcnow()  # None: another worker is claiming it right now
            time.sleep(max(0.0, (due - pm.utcnow()).total_seconds()) + 0.05)
            continue
        print(f"claimed run {run.id} ({run.discovered_video.title}), attempt {run.attempts}")
        try:
            with pm.ErrorLog.capture("render", pipeline_run=run):  # recorded, then re-raised
                produce(run)
        except pm.LeaseLost:
            continue  # requeued while this worker stalled: another worker has it now
        except RenderCrashed as exc:
            run.fail(exc)  # pending again after a backoff; the third failed attempt fails it for good
            print(f"  run {run.id}: {run.last_error}; due again in "
                  f"{(run.not_before - pm.utcnow()).total_seconds():.1f} s")
            continue
        pm.ReviewLog.request(run, message_id=f"chat:42:{run.id}:{run.attempts}")  # as the chat bot's message id
        print(f"  run {run.id}: review requested, now {run.status}")
        reviewed.append(run)


def main():
    """Run the pipeline for a few videos, one worker, and print each step."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="a new SQLite file or an empty PostgreSQL URL (default: a temporary file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="worker-example-") as tmp:
        target = args.db or os.path.join(tmp, "worker-example.db")
        open_empty(target)
        # The retry policy: 3 attempts, the first retry 30 s after a failure, doubling. 1 s keeps the example short.
        pm.ConfigOverride.set("queue.retry_delay_seconds", 1, updated_by="worker example")

        videos = [pm.DiscoveredVideo.discover(vid, title=title, source="search:geology")[0]
                  for vid, title in VIDEOS.items()]
        runs = [pm.PipelineRun.start(video) for video in videos]  # idempotent: a video is queued once
        print(f"discovered {len(videos)} videos, queued runs {[r.id for r in runs]}")

        reviewed = work(f"{socket.gethostname()}:{os.getpid()}")

        # The chat bot, elsewhere: a reviewer taps "approve" (twice, on the first message: ignored).
        for review in pm.ReviewLog.unanswered():
            pm.ReviewLog.answer(review.message_id, "approve", reviewer="@alice")
        _, again = pm.ReviewLog.answer(f"chat:42:{reviewed[0].id}:{reviewed[0].attempts}", "approve")
        print(f"reviews: {len(reviewed)} approved by @alice; a repeated tap {'changed it' if again else 'was ignored'}")
        # The worker's run objects still say awaiting_review: another call moved the rows. Refresh before deciding.
        print(f"run {reviewed[0].id} as the worker holds it: {reviewed[0].status}; "
              f"after refresh(): {reviewed[0].refresh().status}")

        # The uploader: claim each short once, upload, record the id; the last short of a run publishes it.
        for short in pm.Short.select().where(pm.Short.status == pm.ShortStatus.rendered).order_by(pm.Short.id):
            short.start_upload()  # AlreadyUploaded / UploadInDoubt instead of a second copy on the channel
            short.mark_uploaded(f"yt{short.id:09d}")  # (the id YouTube's API returned)
        print("published:", {r.id: r.refresh().status.value for r in runs})

        # The analytics sampler: a snapshot at upload, then a day of hourly ones in bulk (simulated times).
        for short in pm.Short.select().order_by(pm.Short.id):
            pm.Analytics.record(short.youtube_video_id, measured_at=short.uploaded_at, view_count=0, like_count=0)
            pm.Analytics.record_many(
                dict(youtube_video_id=short.youtube_video_id, measured_at=short.uploaded_at + timedelta(hours=h),
                     view_count=h * 100 * short.id, like_count=h * 4 * short.id, click_through_rate=0.05)
                for h in range(1, 25))
            growth = pm.Analytics.growth(short.youtube_video_id, since=short.uploaded_at)
            print(f"{short.youtube_video_id}: +{growth['view_count']:,} views, +{growth['like_count']} likes in a day")
        best = pm.Analytics.top(1)[0]
        print(f"top short: {best.youtube_video_id} with {best.view_count:,} views")

        print("runs:", ", ".join(f"{r.id} {r.status} after {r.attempts} attempt(s)" for r in runs),
              f"| errors recorded: {pm.ErrorLog.select().count()}")
        pm.db.close()


if __name__ == "__main__":
    main()
