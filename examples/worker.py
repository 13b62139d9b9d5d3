"""A pipeline worker, a whole cycle end to end: schedule the niche's run, claim it, take its
candidates, keep its ranked clips, write the script, the audio, the render and the shorts under the
claim, ask for a review, answer it, upload the long-form video and its shorts within the daily cap,
and measure them.

    python examples/worker.py [--db TARGET]

TARGET is anything init_db takes: a new SQLite file, or the URL of an empty PostgreSQL database.
Without --db it runs on a new file in a temporary directory, removed at the end. The slow work
(discovery, downloads, finding the moments, the LLM, TTS, rendering, the uploads) is faked; every
database call is the package's public API, as a worker makes it. Three cycles pass in a moment: the
operations that wait for time (claim_next, fail, start_upload) are given the example's clock, `now`,
where a worker would sleep.
"""
import argparse
import os
import socket
import sys
import tempfile
from datetime import datetime, timedelta, timezone

import pipeline_models as pm

NICHE = "gaming"
# gaming's cycles: 00:30, 06:30, 12:30, 18:30 UTC
FIRST_CYCLE = datetime(2026, 1, 1, 0, 30, tzinfo=timezone.utc)
CYCLE = timedelta(hours=6)
# 14 candidates found a cycle; a run keeps 8-10 of them, ranked, and 3 shorts
CYCLES, FOUND, SHORTS = 3, 14, 3
UPLOADS_PER_DAY = 10  # the channel's cap, lowered from 20 so the example meets it
# the second cycle's first render crashes: the run goes back to the queue and succeeds on attempt 2
FLAKY = 1
# a retried run resumes at the stage it failed at
STAGES = ["discover", "clip", "script", "tts", "render"]


class RenderCrashed(RuntimeError):
    """The faked renderer's failure."""


def open_empty(target):
    """Bind `target` and migrate it, refusing one that holds anything: the example writes made-up
    data."""
    if target.startswith("sqlite:///"):
        path = target[len("sqlite:///"):]
    else:
        path = None if "://" in target else target
    # checked first: init_db would switch it to WAL
    if path and os.path.exists(path) and os.path.getsize(path) > 0:
        sys.exit(f"worker.py: {target} already exists; give --db a new file or an empty database")
    database = pm.init_db(target, upgrade=False)
    if database.get_tables():
        sys.exit("worker.py: the --db database already has tables; give it an empty database")
    pm.migrate()


def plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def cycle_of(run):
    return int((run.cycle_start - FIRST_CYCLE) / CYCLE)


def discover(run):
    """The cycle's candidates: found once each (discover() again would refresh their metadata)."""
    cycle = cycle_of(run)
    for n in range(FOUND):
        score = round(50 + (n * 37 + cycle * 11) % 50 + n / 100, 2)  # made up, distinct
        pm.DiscoveredVideo.discover(f"gm{cycle:02d}vid{n:04d}", title=f"Play {cycle}-{n}",
                                    niche=run.niche, channel_name=f"Creator {n % 4}",
                                    channel_id=f"UCcreator{n % 4}", viral_score=score,
                                    view_count=10_000 * (n + 1), duration_seconds=600,
                                    discovery_source="youtube_trending")


def cut_clips(run):
    """Take the niche's best pending candidates, cut one clip of each, keep the top 8-10 ranked."""
    # the 15 best pending of the niche, reserved for this run alone
    candidates = run.take_candidates()
    failed = candidates[2::7]  # their downloads failed: skipped for good
    moments = [dict(discovered_video=video, start_time_seconds=12.0 + n, end_time_seconds=30.5 + n,
                    clip_duration_seconds=18.5, score=round(video.viral_score * (1 - n / 50), 3),
                    extraction_method="most_replayed",
                    clip_file_path=f"clips/{run.id}-{video.video_id}.mp4")
               for n, video in enumerate(candidates) if video not in failed]
    moments.sort(key=lambda moment: -moment["score"])  # best first: rank 1 is the most viral
    with run.fenced():  # one transaction, only while this worker holds the claim
        for video in failed:
            pm.mark_video_processed(video.video_id, pm.Processed.skipped)
        # ranked 1..N; the candidates not kept go back to pending for the next run
        kept = run.keep_clips(moments)
    print(f"  run {run.id}: took {len(candidates)} candidates, {len(failed)} failed to download, "
          f"kept {len(kept)} ranked clips")


def write_script(run):
    clips = list(
        run.clips.where(pm.Clip.dropped_at.is_null()).order_by(pm.Clip.rank_position.desc()))
    intros = [f"Number {c.rank_position}: {c.discovered_video.title} by "
              f"{c.discovered_video.channel_name}."
              for c in clips]  # the countdown, from the last rank to number 1
    prompt, completion = 1800 + run.id, 400 + run.id
    with run.fenced():
        pm.Script.create(pipeline_run=run,
                         opening_text=f"The {len(clips)} best {run.niche} plays today.",
                         closing_text="Subscribe.", full_script_json={"clips": intros},
                         total_char_count=sum(map(len, intros)),
                         estimated_duration_seconds=round(sum(map(len, intros)) / 15, 1),
                         llm_model_used="gpt-4.1-mini", title=f"Top {len(clips)} {run.niche} plays",
                         prompt_tokens=prompt, completion_tokens=completion,
                         cost_usd=round(prompt * 0.4e-6 + completion * 1.6e-6, 6))


def speak(run):
    script = run.scripts.order_by(pm.Script.id.desc()).first()  # the current script: the newest
    with run.fenced():
        pm.TTSAudio.create(pipeline_run=run, engine_used="piper", voice_profile="en_US-amy",
                           audio_file_path=f"audio/{run.id}.wav",
                           duration_seconds=script.estimated_duration_seconds)


def render(run):
    """The long-form countdown and a short of each of the top ranks."""
    if cycle_of(run) == FLAKY and run.retry_count == 0 and not run.reviews.exists():
        raise RenderCrashed(f"ffmpeg exited 1 rendering run {run.id}: moov atom not found")
    clips = list(run.clips.where(pm.Clip.dropped_at.is_null()).order_by(pm.Clip.rank_position))
    with run.fenced():
        run.video_file_path, run.video_duration_seconds = f"renders/{run.id}.mp4", 540.0
        run.video_file_size_bytes = 540 * 1_000_000
        run.save(only=[pm.PipelineRun.video_file_path, pm.PipelineRun.video_duration_seconds,
                       pm.PipelineRun.video_file_size_bytes])
        for clip in clips[:SHORTS]:
            pm.Short.create(pipeline_run=run, clip=clip,
                            title=f"#{clip.rank_position}: {clip.discovered_video.title}",
                            file_path=f"shorts/{run.id}-{clip.rank_position}.mp4",
                            duration_seconds=18.5)


WORK = {"discover": discover, "clip": cut_clips, "script": write_script, "tts": speak,
        "render": render}


def work(worker, now):
    """Claim runs until none is due, taking each to its review request; returns the clock when
    done."""
    while True:
        # within the cap of 2 running at once
        run = pm.PipelineRun.claim_next(worker, niche=NICHE, now=now)
        if run is None:
            # A failed run waits out its backoff (not_before) in the queue: a worker sleeps until it
            # is due.
            waiting = (pm.PipelineRun.select().where((pm.PipelineRun.status == pm.RunStatus.pending)
                                                     & pm.PipelineRun.not_before.is_null(False))
                       .order_by(pm.PipelineRun.not_before).first())
            if waiting is None:
                return now
            now = max(now, waiting.not_before)
            continue
        print(f"claimed run {run.id} ({run.niche}, cycle {run.cycle_start:%Y-%m-%d %H:%M} UTC), "
              f"attempt {run.retry_count + 1}, at stage {run.current_stage or 'discover'}")
        first = STAGES.index(run.current_stage) if run.current_stage in STAGES else 0
        try:
            for stage in STAGES[first:]:
                # between slow steps: requeue_stale sees the worker alive
                run.heartbeat(stage=stage)
                with pm.ErrorLog.capture(stage, pipeline_run=run):  # recorded, then re-raised
                    WORK[stage](run)
        except pm.LeaseLost:
            continue  # requeued while this worker stalled: another worker has it now
        except RenderCrashed as exc:
            # pending again after 30 s; the third failed attempt fails it for good
            run.fail(exc, now=now)
            print(f"  run {run.id}: {run.error_message}; due again at {run.not_before:%H:%M:%S}")
            continue
        review = pm.ReviewLog.request(run, message_id=f"chat:42:{run.id}:{run.reviews.count() + 1}")
        print(f"  run {run.id}: review requested ({review.message_id}), now {run.status}")


def upload(queue, now):
    """The uploader: each video once, the long-form video first, then its shorts, within the daily
    cap.

    Returns the clock: past the cap, the uploader waits for the slot UploadCapReached names."""
    while queue:
        video = queue[0]
        try:
            # AlreadyUploaded / UploadInDoubt instead of a second copy on the channel
            video.start_upload(now=now)
        except pm.UploadCapReached as full:
            name = "run" if isinstance(video, pm.PipelineRun) else "short"
            print(f"  {name} {video.id}: cap reached, waiting until "
                  f"{full.next_slot:%Y-%m-%d %H:%M}")
            now = full.next_slot
            continue
        queue.pop(0)
        now += timedelta(minutes=2)  # the upload itself
        if isinstance(video, pm.PipelineRun):
            # (the id YouTube's API returned)
            video.mark_uploaded(f"lf{video.id:09d}", uploaded_at=now)
            queue[:0] = list(
                video.shorts.where(pm.Short.status == pm.ShortStatus.review).order_by(pm.Short.id))
        else:
            video.mark_uploaded(f"sh{video.id:09d}", uploaded_at=now)
    return now


def main():
    """Run a few cycles of one niche with one worker, and print each step."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db",
                        help="a new SQLite file or an empty PostgreSQL URL (default: a temporary "
                             "file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="worker-example-") as tmp:
        target = args.db or os.path.join(tmp, "worker-example.db")
        open_empty(target)
        pm.ConfigOverride.set("youtube.max_uploads_per_day", UPLOADS_PER_DAY,
                              updated_by="worker example")
        worker = f"{socket.gethostname()}:{os.getpid()}"
        runs, now = [], FIRST_CYCLE
        for n in range(CYCLES):
            # The scheduler, at each cycle's start: scheduling a cycle again returns the same run.
            now = max(now, FIRST_CYCLE + n * CYCLE)
            run = pm.PipelineRun.schedule(NICHE, FIRST_CYCLE + n * CYCLE)
            # the scheduler firing twice
            assert pm.PipelineRun.schedule(NICHE, run.cycle_start) == run
            runs.append(run)
            now = work(worker, now)

            # The chat bot: the reviewer answers. The second cycle's clip ranked 2 is dropped:
            # rendered again.
            for review in pm.ReviewLog.unanswered().where(pm.ReviewLog.pipeline_run == run.id):
                if n == FLAKY and review.message_id.endswith(":1"):
                    pm.ReviewLog.answer(review.message_id, "skip", response_detail="skip 2",
                                        reviewer="@alice")
                    print(f"  run {run.id}: @alice skips clip 2; the run goes back to "
                          f"{run.refresh().current_stage}")
                    now = work(worker, now)
                    review = (pm.ReviewLog.unanswered()
                              .where(pm.ReviewLog.pipeline_run == run.id).get())
                _, recorded = pm.ReviewLog.answer(review.message_id, "approve", reviewer="@alice")
                # a double tap
                _, again = pm.ReviewLog.answer(review.message_id, "approve", reviewer="@alice")
                print(f"  run {run.id}: approved by @alice; a repeated tap "
                      f"{'changed it' if again else 'was ignored'}")
            # The worker's run object may be stale: another call moved the row. Refresh before
            # deciding.
            run.refresh()
            now = upload([run] if run.status == pm.RunStatus.approved else [], now)
            print(f"  run {run.id}: {run.refresh().status} as {run.youtube_video_id} with "
                  f"{run.shorts.where(pm.Short.status == pm.ShortStatus.uploaded).count()} shorts")

        # The analytics sampler: every 6 hours for a day after each upload, long-form and shorts, in
        # bulk.
        uploaded = [(r.youtube_video_id, r.completed_at) for r in runs if r.youtube_video_id]
        uploaded += [(s.youtube_video_id, s.uploaded_at) for s in
                     pm.Short.select().where(pm.Short.status == pm.ShortStatus.uploaded).order_by(
                         pm.Short.id)]
        pm.Analytics.record_many(
            dict(youtube_video_id=video, measured_at=since + timedelta(hours=6 * h),
                 view_count=h * 100 * n, like_count=h * 4 * n, click_through_rate=0.05)
            for n, (video, since) in enumerate(uploaded, 1) for h in range(5))
        growth = pm.Analytics.growth(uploaded[0][0], since=uploaded[0][1])
        print(f"{uploaded[0][0]} (long-form): +{growth['view_count']:,} views, "
              f"+{growth['like_count']} likes in a day")
        best = pm.Analytics.top(1)[0]
        print(f"top video: {best.youtube_video_id} with {best.view_count:,} views")
        print("runs:",
              ", ".join(f"{r.id} {r.refresh().status} after {plural(r.reviews.count(), 'review')}"
                        for r in runs),
              f"| errors recorded: {pm.ErrorLog.select().count()}")
        pm.db.close()


if __name__ == "__main__":
    main()
