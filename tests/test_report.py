"""The HTML report and the status table: the numbers they show (on SQLite and PostgreSQL), the
report's escaping, its file and its extra."""
import html
import itertools
import json
import os
import re
import stat
import subprocess
import sys
from datetime import timedelta

import peewee
import pytest
from conftest import CYCLE_START, aware, make_clip, make_run, make_video

import pipeline_models as pm
from pipeline_models import ExtraMissing, RunStatus, ShortStatus, queries, report, report_charts

NOW = aware(2026, 3, 1, 12)
HOSTILE = "</script><script>alert(1)</script>"
_ids = itertools.count(1)


def claimed(niche="gaming"):
    """The niche's run of its next cycle, scheduled and claimed by a worker (running)."""
    cycle = pm.PipelineRun.select().where(pm.PipelineRun.niche == niche).count()
    run = pm.PipelineRun.schedule(niche, CYCLE_START + timedelta(hours=6 * cycle))
    got = pm.PipelineRun.claim_next("w1", niche=niche)
    assert got.id == run.id
    return got


def produced(niche="gaming", videos=2, shorts=1, reuse=()):
    """A claimed run with a clip of each of `videos` new videos (then of `reuse`'s), ranked 1..N,
    and a short of each of its top `shorts` clips, written under the claim."""
    run = claimed(niche)
    with run.fenced():
        sources = ([make_video(f"vid{next(_ids):05d}", niche=niche) for _ in range(videos)]
                   + list(reuse))
        clips = [make_clip(run, video, rank=rank) for rank, video in enumerate(sources, 1)]
        for clip in clips[:shorts]:
            pm.Short.create(pipeline_run=run, clip=clip, title=f"Short of clip {clip.id}")
    return run


def reviewed(niche="gaming", answer=None, detail=None, upload=False, **production):
    """A produced run sent to review, answered with `answer` (and `detail`); its videos uploaded if
    asked."""
    run = produced(niche, **production)
    review = pm.ReviewLog.request(run, message_id=f"m-{run.id}-{next(_ids)}")
    if answer:
        review.respond(answer, response_detail=detail, reviewer="@alice", run=run)
    if upload:
        uploaded(run)
    return run


def uploaded(run, at=None):
    """Upload an approved run's long-form video and its shorts in review, as the uploader does."""
    run.start_upload()
    run.mark_uploaded(f"lf-{run.id}", uploaded_at=at)
    for short in run.shorts.where(pm.Short.status == ShortStatus.review):
        short.start_upload()
        short.mark_uploaded(f"sh-{short.id}", uploaded_at=at)


def script(run, cost, title=None):
    return pm.Script.create(pipeline_run=run, full_script_json={"clips": []}, total_char_count=100,
                            estimated_duration_seconds=10.0, llm_model_used="m", cost_usd=cost,
                            title=title)


def figures_of(document):
    """The figure JSON the page draws from."""
    match = re.search(r'<script id="figures" type="application/json">(.*?)</script>', document,
                      re.S)
    return json.loads(match.group(1))


def outside_plotly_js(document):
    """The document without the embedded plotly.js (whose source mentions URLs it never fetches
    here)."""
    start = document.index("<script>")
    return document[:start] + document[document.index("</script>", start):]


# --- the numbers ---------------------------------------------------------------------------------


def test_an_empty_database_says_so_and_draws_no_chart(database):
    numbers = report.data(now=NOW)
    assert (numbers["totals"]["runs"] == numbers["totals"]["videos"]
            == numbers["totals"]["snapshots"] == 0)
    assert (numbers["funnel"] == [] and numbers["funnel_by_niche"] == {}
            and numbers["runs_per_day"] == {})
    assert (numbers["uploads_per_day"] == {} and numbers["failures"] == {}
            and numbers["unresolved_errors"] == {})
    assert numbers["top_videos"] == [] and numbers["views"] == {"niches": {}, "audience": {},
                                                                "unmatched_videos": 0}
    assert numbers["content_id"] == {} and numbers["failures_by_niche"] == {}
    assert numbers["totals"]["paused_niches"] == []
    assert numbers["upload_cap"] == {"cap": 20, "key": "youtube.max_uploads_per_day",
                                     "days_at_cap": 0, "last_24_hours": 0, "next_slot": None}
    reviews, cost = numbers["reviews"], numbers["llm_cost"]
    assert (reviews["answered"] == 0 and reviews["median_seconds"] is None
            and reviews["p95_seconds"] is None)
    assert reviews["oldest_waiting_seconds"] is None and reviews["niches"] == {}
    assert reviews["answers"] == dict.fromkeys(report.ANSWERS, 0)
    assert (cost["per_uploaded_run_usd"] is None and cost["all_cost_usd"] == 0
            and cost["months"] == [])

    document = report.render(now=NOW)
    for says in ("No runs yet", "No videos discovered yet.",
                 "Nothing uploaded yet. 0 of the 20 a day",
                 "No clip or source video of medium or high risk.",
                 "No failed runs. No unresolved errors.", "No reviews requested yet.",
                 "No scripts written yet.", "No analytics of uploaded videos yet.",
                 "No analytics yet."):
        assert says in document
    assert 'class="chart"' not in document and figures_of(document) == {}


def test_the_funnel_counts_each_video_once_at_the_furthest_step_its_clips_reached(database):
    make_video("only-found-1"), make_video("only-found-2")
    running = produced(videos=2)  # used in a clip, not reviewed yet
    reviewed(videos=2)  # waiting for an answer
    reviewed(answer="reject", videos=1)
    # its clip ranked 2 dropped: reviewed, no further
    skipped = reviewed(answer="skip", detail="skip 2", videos=3)
    again = pm.PipelineRun.claim_next("w1", niche="gaming")
    assert again.id == skipped.id and again.current_stage == "render"
    pm.ReviewLog.request(again, message_id="m-again").respond("approve", run=again)
    uploaded(again)
    reviewed(answer="approve", videos=1)  # approved, not uploaded yet
    reused = pm.DiscoveredVideo.get(pm.DiscoveredVideo.id == running.clips[0].discovered_video_id)
    # the running run's video goes further
    reviewed(answer="approve", upload=True, videos=1, reuse=[reused])
    reviewed("sports", answer="approve", upload=True, videos=2)
    make_video("sports-found", niche="sports")
    # made directly: approved and reviewed all the same
    direct = make_run("sports", cycle=10, status="uploaded")
    make_clip(direct, make_video("direct", niche="sports"))
    # pending, no clips: nothing
    pm.PipelineRun.schedule("gaming", CYCLE_START + timedelta(days=30))

    numbers = report.data(now=NOW)
    assert numbers["funnel_by_niche"] == {
        "gaming": [("discovered", 12), ("used in a clip", 10), ("in a reviewed run", 9),
                   ("approved", 5), ("uploaded", 4)],
        "sports": [("discovered", 4), ("used in a clip", 3), ("in a reviewed run", 3), ("approved",
                                                                                        3),
                   ("uploaded", 3)]}
    assert numbers["funnel"] == [("discovered", 16), ("used in a clip", 13), ("in a reviewed run",
                                                                              12),
                                 ("approved", 8), ("uploaded", 7)]
    assert [step for step, _ in numbers["funnel"]] == list(report.FUNNEL_STEPS)
    traces = figures_of(report.render(now=NOW))["chart-funnel"]["data"]
    assert [(t["name"], t["x"]) for t in traces] == [("gaming", [12, 10, 9, 5, 4]), ("sports", [4,
                                                                                                3,
                                                                                                3,
                                                                                                3,
                                                                                                3])]


def test_runs_by_outcome_per_niche_use_the_utc_day_each_cycle_started(database):
    for niche, start, status in [
            ("gaming", aware(2026, 1, 1, 0, 30), "uploaded"),
            ("gaming", aware(2026, 1, 2, 0, 30, hours=2), "failed"),  # 22:30 UTC on the 1st
            ("gaming", aware(2026, 1, 2, 6, 30), "review"), ("gaming", aware(2026, 1, 2, 12, 30),
                                                             "approved"),
            ("gaming", aware(2026, 1, 2, 18, 30), "rejected"), ("sports", aware(2026, 1, 2, 1),
                                                                "pending"),
            ("sports", aware(2026, 1, 5, 19), "uploaded")]:
        pm.PipelineRun.create(niche=niche, cycle_start=start, cycle_end=start + timedelta(hours=6),
                              status=status)

    per_niche = report.data(now=NOW)["runs_per_day"]
    assert per_niche == {
        "gaming": {"2026-01-01": {"uploaded": 1, "failed": 1},
                   "2026-01-02": {"in review": 1, "in progress": 1, "rejected": 1}},
        "sports": {"2026-01-02": {"in progress": 1}, "2026-01-05": {"uploaded": 1}}}
    assert list(per_niche["gaming"]) == sorted(per_niche["gaming"])
    figure = figures_of(report.render(now=NOW))["chart-runs-per-day"]
    # a panel per niche
    assert [a["text"] for a in figure["layout"]["annotations"]] == ["gaming", "sports"]
    assert sorted((t["name"], t["y"]) for t in figure["data"] if t["xaxis"] == "x2") == [
        ("in progress", [0, 1, 0]), ("uploaded", [0, 0, 1])]  # sports, on the days of every niche


def test_uploads_per_day_count_long_form_and_shorts_by_niche(database):
    gaming = make_run("gaming", status="approved")
    gaming.mark_uploaded("lf-g", uploaded_at=aware(2026, 2, 1, 23, 30))
    # 22:30 UTC on the 1st
    for n, at in enumerate([aware(2026, 2, 2, 0, 30, hours=2), aware(2026, 2, 2, 9)]):
        pm.Short.create(pipeline_run=gaming).mark_uploaded(f"sh-g{n}", uploaded_at=at)
    pm.Short.create(pipeline_run=gaming, status="failed")  # not uploaded: not counted
    sports = make_run("sports", status="approved")
    sports.mark_uploaded("lf-s", uploaded_at=aware(2026, 2, 2, 10))
    pm.Short.create(pipeline_run=sports).mark_uploaded("sh-s", uploaded_at=aware(2026, 2, 2, 11))
    # its shorts first; its long-form video not yet
    later = make_run("gaming", cycle=1, status="approved")
    pm.Short.create(pipeline_run=later).mark_uploaded("sh-later", uploaded_at=aware(2026, 2, 3, 8))
    make_run("gaming", cycle=2, status="rejected")
    pm.Short.create(pipeline_run=make_run("gaming", cycle=3, status="rejected"), status="rejected")

    per_day = report.data(now=NOW)["uploads_per_day"]
    assert per_day == {"2026-02-01": {"gaming": {"long-form": 1, "shorts": 1}},
                       "2026-02-02": {"gaming": {"long-form": 0, "shorts": 1},
                                      "sports": {"long-form": 1, "shorts": 1}},
                       "2026-02-03": {"gaming": {"long-form": 0, "shorts": 1}}}
    assert list(per_day) == sorted(per_day)
    document = report.render(now=NOW)
    # Recorded without a start (upload_started_at): counted on the day recorded, as the cap counts
    # them.
    assert ("2 long-form videos and 4 shorts uploaded on 3 days; the busiest, 2026-02-02, had 3; 0 "
            "days at the cap. "
            "0 of the 20 a day (youtube.max_uploads_per_day) in the last 24 hours; one may start "
            "now.") in document
    traces = figures_of(document)["chart-uploads"]["data"]
    assert [(t["name"], t["y"]) for t in traces] == [("gaming: long-form", [1, 0, 0]),
                                                     ("gaming: shorts", [1, 1, 1]),
                                                     ("sports: long-form", [0, 1, 0]),
                                                     ("sports: shorts", [0, 1, 0])]


def test_failed_runs_by_stage_and_error_type(database):
    start = pm.utcnow()
    run = claimed()
    run.heartbeat(stage="render")
    pm.ErrorLog.record(RuntimeError("first"), "render", pipeline_run=run)
    # the newest names the type
    pm.ErrorLog.record(ValueError("then this"), "render", pipeline_run=run)
    run.fail(ValueError("then this"), retry=False)

    class RenderCrashed(Exception):
        pass
    run = claimed()
    run.heartbeat(stage="render")
    with pytest.raises(RenderCrashed), pm.ErrorLog.capture("render", pipeline_run=run):
        raise RenderCrashed("moov atom not found")
    run.fail(RenderCrashed("moov atom not found"), retry=False)

    run = claimed("sports")
    run.heartbeat(stage="upload")
    # the pipeline's helper
    pm.log_error("uploader", "QuotaExceeded", "quota exhausted", pipeline_run_id=run.id)
    run.fail("quota exhausted", retry=False)
    run = claimed("sports")
    run.heartbeat(stage="upload")
    run.fail("quota exhausted", retry=False)  # nothing logged

    # its worker died: the lease expires, and with one attempt allowed it fails
    stalled = claimed("funny")
    assert pm.PipelineRun.requeue_stale(timedelta(minutes=10), max_attempts=1,
                                        now=start + timedelta(hours=1)) == 1
    assert stalled.refresh().status is RunStatus.failed

    run = claimed("funny")  # an attempt failed, the run is queued again: not a failed run
    run.heartbeat(stage="tts")
    pm.ErrorLog.record(KeyError("voice"), "tts", pipeline_run=run)
    run.fail(KeyError("voice"))
    assert run.status is RunStatus.pending and run.error_message

    pm.ErrorLog.record(OSError("disk full"), "uploader").resolve()
    pm.ErrorLog.record(OSError("HTTP 503"), "uploader")

    numbers = report.data(now=NOW)
    assert numbers["failures"] == {("render", "ValueError"): 1, ("render", "RenderCrashed"): 1,
                                   ("upload", "QuotaExceeded"): 1, ("upload", report.NOT_LOGGED): 1,
                                   (report.NO_STAGE, report.LEASE_EXPIRED): 1}
    assert numbers["unresolved_errors"] == {("render", "RuntimeError"): 1,
                                            ("render", "ValueError"): 1,
                                            ("render", "RenderCrashed"): 1, ("tts", "KeyError"): 1,
                                            ("uploader", "OSError"): 1, ("uploader",
                                                                         "QuotaExceeded"): 1}


def test_charts_fold_rare_error_types_into_other(database):
    # type E0 once, E1 twice, ...: E0 and E1 are the rarest
    for n in range(report.MAX_ERROR_TYPES + 2):
        for _ in range(n + 1):
            pm.ErrorLog.create(module="uploader" if n % 2 else "render", error_type=f"E{n}",
                               error_message="x")
    numbers = report.data(now=NOW)
    # the numbers keep every type
    assert len(numbers["unresolved_errors"]) == report.MAX_ERROR_TYPES + 2
    traces = figures_of(report.render(now=NOW))["chart-errors"]["data"]
    assert [t["name"] for t in traces] == [f"E{n}" for n in range(11, 1, -1)] + ["other"]
    # E1 twice, E0 once
    assert traces[-1]["x"] == [2, 1] and traces[-1]["y"] == ["uploader", "render"]


def test_percentile_is_nearest_rank():
    assert report.percentile(list(range(1, 21)), 95) == 19  # ceil(0.95 * 20) = 19th value
    assert report.percentile(list(range(1, 101)), 95) == 95
    assert report.percentile(list(range(1, 22)), 95) == 20  # ceil(19.95) = 20th
    assert report.percentile([7], 95) == 7 and report.percentile([1, 2], 50) == 1
    assert report.percentile([1, 2, 3], 100) == 3
    with pytest.raises(ValueError):
        report.percentile([], 95)
    with pytest.raises(ValueError):
        report.percentile([1], 0)


def test_reviews_without_answer_times_say_so_and_draw_no_latency_chart(database):
    run = make_run()
    pm.ReviewLog.create(pipeline_run=run, sent_at=NOW - timedelta(hours=1))
    document = report.render(now=NOW)
    assert ("0 answered: none with an answer time (responded_at). 0 auto-held (nobody answered in "
            "time), 0 approved "
            "by force_upload; 1 open and 0 held, the oldest sent 1.0 h ago.") in document
    assert "chart-reviews" not in figures_of(document) and "No answers yet." in document

    # answered by other code, without responded_at
    pm.ReviewLog.create(pipeline_run=run, action="approve")
    reviews = report.data(now=NOW)["reviews"]
    assert (reviews["answered"], reviews["timed"], reviews["median_seconds"]) == (1, 0, None)
    assert reviews["niches"]["gaming"]["answers"]["approve"] == 1
    document = report.render(now=NOW)
    assert ("1 answered: none with an answer time" in document
            and "chart-reviews" not in figures_of(document))

    sent = aware(2026, 2, 2, 9)
    pm.ReviewLog.create(pipeline_run=run, action="approve", sent_at=sent,
                        responded_at=sent + timedelta(minutes=3))
    document = report.render(now=NOW)
    assert ("2 answered: median latency 3.0 min, p95 3.0 min "
            "(of the 1 with an answer time)") in document
    # in minutes
    assert figures_of(document)["chart-reviews"]["data"][0]["y"] == [pytest.approx(3.0)]


def test_review_answers_per_niche_and_the_status_table(database):
    reviewed(answer="approve")
    reviewed(answer="reject")
    reviewed(answer="hold")
    reviewed(answer="skip", detail="skip 1")  # back to pending, at the render stage
    reviewed("sports", answer="redo_script")  # back to pending, at the script stage
    reviewed("funny")
    # only funny's is unanswered: auto-held
    assert pm.ReviewLog.hold_stale(timedelta(microseconds=1)) == 1
    reviewed("entertainment")  # open

    niches = report.data(now=NOW)["reviews"]["niches"]
    zero = dict.fromkeys(report.ANSWERS, 0)
    assert {niche: got["answers"] for niche, got in niches.items()} == {
        "entertainment": zero,  # its review has no answer yet
        "funny": {**zero, "auto_held": 1},
        "gaming": {**zero, "approve": 1, "reject": 1, "hold": 1, "skip": 1},
        "sports": {**zero, "redo_script": 1}}
    assert list(niches) == sorted(niches)
    # the niches with an answer
    traces = figures_of(report.render(now=NOW))["chart-answers"]["data"]
    assert [(t["name"], t["y"]) for t in traces if t["name"] in ("approve", "hold")] == [
        ("approve", [0, 1, 0]), ("hold", [0, 1, 0])]

    rows = {(what, status): count for what, status, count in queries.status_rows()}
    assert [status for what, status in rows if what == "runs"] == [s.value for s in RunStatus]
    assert [status for what, status in rows if what == "shorts"] == [s.value for s in ShortStatus]
    assert {status: count for (what, status),
            count in rows.items() if what == "runs" and count} == {
        "pending": 2, "review": 3, "approved": 1, "rejected": 1}
    assert {status: count for (what, status),
            count in rows.items() if what == "shorts" and count} == {
        "review": 4, "rejected": 3}  # the approved run's short waits for its upload
    assert [(status, count) for (what, status), count in rows.items() if what == "reviews"] == [
        ("open", 1), ("held", 2), ("of which auto-held", 1)]
    pm.ErrorLog.create(module="m", error_type="E", error_message="x")
    pm.ErrorLog.create(module="m", error_type="E", error_message="y").resolve()
    assert queries.status_rows()[-1] == ["errors", "unresolved", 1]


# --- the cycle: a small pipeline of known numbers, made through the package's operations ----------

# the report's "now": the cap's last 24 hours are Feb 1 12:00 to Feb 2 12:00
REPORT_NOW = aware(2026, 2, 2, 12)
VIDEO_DAY, UPLOAD_DAY = aware(2026, 2, 1, 10), aware(2026, 2, 2, 11)


def produced_run(niche, cycle, clip_risks=("low",) * 3, video_risks=("low",) * 3, shorts=2):
    """The niche's run of `cycle`: claimed, 4 candidates taken (the 4th of high risk and never cut),
    the top 3 kept as clips with the risks given by rank (clip's, video's), shorts of the top
    `shorts`, sent to review."""
    for n, risk in enumerate([*video_risks, "high"]):
        make_video(f"{niche}-{cycle}-{n}", niche=niche, viral_score=100.0 - n, content_id_risk=risk)
    pm.PipelineRun.schedule(niche, CYCLE_START + timedelta(hours=6 * cycle))
    run = pm.PipelineRun.claim_next("w1", niche=niche)
    assert run.cycle_start == CYCLE_START + timedelta(hours=6 * cycle)
    candidates = run.take_candidates(limit=4)
    clips = run.keep_clips([dict(discovered_video=video, start_time_seconds=5.0,
                                 end_time_seconds=20.0, clip_duration_seconds=15.0,
                                 content_id_risk=risk)
                            for video, risk in zip(candidates, clip_risks)],
                           others=pm.Processed.skipped, min_clips=3, max_clips=3)
    with run.fenced():
        for clip in clips[:shorts]:
            pm.Short.create(pipeline_run=run, clip=clip,
                            title=f"{niche} short of rank {clip.rank_position}")
    review = pm.ReviewLog.request(run, message_id=f"m-{niche}-{cycle}")
    return run, review


def failed_run(niche, cycle, stage, error=None):
    """The niche's run of `cycle`, failed for good at `stage`, with `error` logged if given."""
    pm.PipelineRun.schedule(niche, CYCLE_START + timedelta(hours=6 * cycle))
    run = pm.PipelineRun.claim_next("w1", niche=niche)
    run.heartbeat(stage=stage)
    if error is not None:
        pm.ErrorLog.record(error, stage, pipeline_run=run)
    run.fail(error or "gave up", retry=False)
    return run


def at(review, sent, minutes=None):
    """Set a review's times: sent at `sent`, answered `minutes` later (respond() stamps the clock's
    time)."""
    responded = None if minutes is None else sent + timedelta(minutes=minutes)
    (pm.ReviewLog.update(sent_at=sent, responded_at=responded)
     .where(pm.ReviewLog.id == review.id).execute())


def upload(item, video_id, when, record=True):
    """Begin an upload at `when` (counted against the cap) and record it a minute later, unless
    `record` is False (then it stays in doubt, and still counts)."""
    item.start_upload(now=when)
    if record:
        item.mark_uploaded(video_id, uploaded_at=when + timedelta(minutes=1))


class RenderCrashed(Exception):
    pass


@pytest.fixture
def cycle(database):
    """Two niches through the cycle (a third paused), every answer once, with known numbers:

    gaming  g1 approve, uploaded with one short      clip 1 of high risk, video of clip 2 medium
            g2 reject                                 video of clip 1 high
            g3 hold (a reviewer's)
            g4 auto-held, then force_upload, uploaded
            g5 skip 2 (back to render)                clip 2 of medium risk: dropped by the skip
            g6 failed at render, RenderCrashed logged
    sports  s1 redo_script (back to script)
            s2 auto-held, still held
            s3 approve, uploaded, its short in doubt  clip 1 and its video medium
            s4 failed at download, nothing logged
            s5 open
    Uploads under a cap of 3 a day: Feb 1 g1 and its short; Feb 2 s3, s3's short (in doubt) and g4;
    then s3's second short is refused (UploadCapReached) until Feb 3 11:00.
    """
    pm.ConfigOverride.set("youtube.max_uploads_per_day", 3)
    pm.PipelineRun.pause("funny")
    g1, r1 = produced_run("gaming", 0, clip_risks=("high", "low", "low"), video_risks=("low",
                                                                                       "medium",
                                                                                       "low"))
    g2, r2 = produced_run("gaming", 1, video_risks=("high", "low", "low"))
    g3, r3 = produced_run("gaming", 2)
    g4, r4 = produced_run("gaming", 3)
    g5, r5 = produced_run("gaming", 4, clip_risks=("low", "medium", "low"))
    failed_run("gaming", 5, "render", RenderCrashed("moov atom not found"))
    s1, q1 = produced_run("sports", 0)
    s2, q2 = produced_run("sports", 1)
    s3, q3 = produced_run("sports", 2, clip_risks=("medium", "low", "low"), video_risks=("medium",
                                                                                         "low",
                                                                                         "low"))
    failed_run("sports", 3, "download")
    s5, q5 = produced_run("sports", 4)

    day = aware(2026, 1, 1, 8)
    for review, minutes, answer in ((r1, 10, "approve"), (r2, 20, "reject"), (r3, 3, "hold"),
                                    (r5, 30, "skip 2"), (q1, 40, "redo_script"),
                                    (q3, 60, "approve")):
        action, _, detail = answer.partition(" ")
        review.respond(action, response_detail=answer if detail else None, reviewer="@alice")
        at(review, day, minutes)
    for review in (r4, q2):
        at(review, day)
    at(q5, aware(2026, 2, 2, 9))  # sent this morning: not auto-held yet
    # r4, q2: 4 hours without an answer
    assert pm.ReviewLog.hold_stale(now=day + timedelta(hours=5)) == 2
    pm.ReviewLog.force_upload(g4, reviewer="@bob")
    at(r4, day, 300)

    g1, g4, s3 = (run.refresh() for run in (g1, g4, s3))
    upload(g1, "LF-G1", VIDEO_DAY)
    upload(g1.shorts.order_by(pm.Short.id)[0], "SH-G1", VIDEO_DAY + timedelta(minutes=5))
    upload(s3, "LF-S3", UPLOAD_DAY)
    s3_shorts = list(s3.shorts.order_by(pm.Short.id))
    upload(s3_shorts[0], None, UPLOAD_DAY + timedelta(minutes=5), record=False)
    upload(g4, "LF-G4", UPLOAD_DAY + timedelta(minutes=10))
    with pytest.raises(pm.UploadCapReached):
        upload(s3_shorts[1], "SH-S3", UPLOAD_DAY + timedelta(minutes=15))

    for video, views, gain, ctr in (("LF-G1", 1000, 10, 0.05), ("SH-G1", 3000, 4, 0.10), ("LF-G4",
                                                                                          500, 6,
                                                                                          0.03),
                                    ("LF-S3", 200, None, None)):
        # an older one
        pm.Analytics.record(video, measured_at=aware(2026, 2, 2), view_count=views // 2)
        pm.Analytics.record(video, measured_at=REPORT_NOW, view_count=views, subscriber_gain=gain,
                            click_through_rate=ctr)
    return report.data(now=REPORT_NOW)


def test_the_cycle_runs_by_outcome_and_paused_niches(cycle):
    assert cycle["runs_per_day"] == {
        "gaming": {"2026-01-01": {"uploaded": 2, "rejected": 1, "in review": 1},
                   "2026-01-02": {"in progress": 1, "failed": 1}},
        "sports": {"2026-01-01": {"in progress": 1, "in review": 1, "uploaded": 1, "failed": 1},
                   "2026-01-02": {"in review": 1}}}
    assert cycle["totals"]["paused_niches"] == ["funny"] and cycle["totals"]["niches"] == ["funny",
                                                                                           "gaming",
                                                                                           "sports"]
    assert "Paused (not claimed): funny." in report.render(now=REPORT_NOW)


def test_the_cycle_reviews_latency_and_answers_per_niche(cycle):
    reviews = cycle["reviews"]
    zero = dict.fromkeys(report.ANSWERS, 0)
    gaming, sports = reviews["niches"]["gaming"], reviews["niches"]["sports"]
    assert gaming["answers"] == {**zero, "approve": 1, "force_upload": 1, "reject": 1, "hold": 1,
                                 "skip": 1}
    assert sports["answers"] == {**zero, "approve": 1, "auto_held": 1, "redo_script": 1}
    counted = ("requested", "answered", "open", "held", "auto_held", "force_upload", "timed")
    assert [gaming[key] for key in counted] == [5, 4, 0, 1, 1, 1, 4]
    assert [sports[key] for key in counted] == [4, 2, 1, 1, 1, 0, 2]
    assert [reviews[key] for key in counted] == [9, 6, 1, 2, 2, 1, 6]
    # Minutes to the answer: gaming 10, 20, 30 and the forced 300; sports 40 and 60.
    assert (gaming["median_seconds"], gaming["p95_seconds"]) == (pytest.approx(25 * 60),
                                                                 pytest.approx(300 * 60))
    assert (sports["median_seconds"], sports["p95_seconds"]) == (pytest.approx(50 * 60),
                                                                 pytest.approx(60 * 60))
    assert (reviews["median_seconds"], reviews["p95_seconds"]) == (pytest.approx(35 * 60),
                                                                   pytest.approx(300 * 60))
    assert reviews["oldest_waiting_seconds"] == (REPORT_NOW - aware(2026, 1, 1, 8)).total_seconds()
    assert reviews["answers"] == {**zero, "approve": 2, "force_upload": 1, "reject": 1, "hold": 1,
                                  "auto_held": 1, "skip": 1, "redo_script": 1}

    document = report.render(now=REPORT_NOW)
    assert ("6 answered: median latency 35.0 min, p95 5.0 h. 2 auto-held (nobody answered in "
            "time), 1 approved "
            "by force_upload; 1 open and 2 held, the oldest sent 32.2 d ago.") in document
    figures = figures_of(document)
    assert [(t["name"], t["y"]) for t in figures["chart-reviews"]["data"]] == [
        # hours
        ("median latency", pytest.approx([25 / 60, 50 / 60])),
        ("p95 latency", pytest.approx([5.0, 1.0]))]
    assert [(t["name"], t["y"]) for t in figures["chart-answers"]["data"]] == [
        (answer, [gaming["answers"][answer], sports["answers"][answer]])
        for answer in report.ANSWERS]


def test_the_cycle_uploads_per_day_against_the_cap(cycle):
    assert cycle["uploads_per_day"] == {
        "2026-02-01": {"gaming": {"long-form": 1, "shorts": 1}},
        "2026-02-02": {"gaming": {"long-form": 1, "shorts": 0}, "sports": {"long-form": 1,
                                                                           "shorts": 1}}}
    assert cycle["upload_cap"] == {"cap": 3, "key": "youtube.max_uploads_per_day", "days_at_cap": 1,
                                   "last_24_hours": 3, "next_slot": aware(2026, 2, 3, 11)}
    document = report.render(now=REPORT_NOW)
    assert ("3 long-form videos and 2 shorts uploaded on 2 days; the busiest, 2026-02-02, had 3; 1 "
            "day at the cap. "
            "3 of the 3 a day (youtube.max_uploads_per_day) in the last 24 hours; the next slot "
            "opens 2026-02-03 11:00:00 UTC.") in document
    shapes = figures_of(document)["chart-uploads"]["layout"]["shapes"]
    assert [(shape["y0"], shape["y1"]) for shape in shapes] == [(3, 3)]  # the cap's line


def test_the_cycle_views_subscribers_and_ctr_per_niche(cycle):
    views = cycle["views"]
    assert views["niches"]["gaming"]["long-form"] == {
        "videos": 2, "views": 1500, "subscriber_gain": 16,
        "click_through_rate": pytest.approx(0.04), "average_view_duration_seconds": None}
    assert views["niches"]["gaming"]["shorts"] == {
        "videos": 1, "views": 3000, "subscriber_gain": 4, "click_through_rate": pytest.approx(0.10),
        "average_view_duration_seconds": None}
    assert views["niches"]["sports"] == {"long-form": {
        "videos": 1, "views": 200, "subscriber_gain": None, "click_through_rate": None,
        "average_view_duration_seconds": None}}  # its short is in doubt: no id, no analytics
    assert views["audience"] == {
        "gaming": {"videos": 3, "views": 4500, "subscriber_gain": 20,
                   "click_through_rate": pytest.approx(0.06)},
        "sports": {"videos": 1, "views": 200, "subscriber_gain": None, "click_through_rate": None}}
    traces = figures_of(report.render(now=REPORT_NOW))["chart-views"]["data"]
    assert [(t["name"], t["xaxis"], t["y"]) for t in traces] == [
        ("long-form", "x", [1500, 200]), ("long-form", "x2", [16, None]),
        ("long-form", "x3", [0.04, None]),
        ("shorts", "x", [3000, None]), ("shorts", "x2", [4, None]), ("shorts", "x3", [0.10, None])]


def test_the_cycle_content_id_flags_per_niche(cycle):
    assert cycle["content_id"] == {
        "gaming": {"clips": {"medium": 1, "high": 1}, "videos": {"medium": 1, "high": 1},
                   "flagged": 4, "dropped": 1, "runs": {"uploaded": 1, "rejected": 1}},
        "sports": {"clips": {"medium": 1, "high": 0}, "videos": {"medium": 1, "high": 0},
                   "flagged": 1, "dropped": 0, "runs": {"uploaded": 1}}}
    document = report.render(now=REPORT_NOW)
    assert ("5 clips flagged (the clip&#x27;s or its source video&#x27;s risk medium or high), 1 "
            "dropped by a reviewer&#x27;s skip; 2 uploaded runs still had one.") in document
    traces = figures_of(document)["chart-content-id"]["data"]
    assert [(t["name"], t["y"]) for t in traces] == [
        ("clips: medium", [1, 1]), ("clips: high", [1, 0]),
        ("videos: medium", [1, 1]), ("videos: high", [1, 0])]


def test_the_cycle_failures_by_niche_and_stage(cycle):
    assert cycle["failures"] == {("render", "RenderCrashed"): 1, ("download", report.NOT_LOGGED): 1}
    assert cycle["failures_by_niche"] == {"gaming": {"render": 1}, "sports": {"download": 1}}
    assert cycle["unresolved_errors"] == {("render", "RenderCrashed"): 1}


def test_llm_cost_per_uploaded_compilation(database):
    # 23:30 UTC on 31 January
    a = make_run(status="uploaded", completed_at=aware(2026, 2, 1, 0, 30, hours=1))
    # a redo_script's first script and the second: both are what it cost
    script(a, 0.10), script(a, 0.05)
    b = make_run(cycle=1, status="uploaded", completed_at=aware(2026, 2, 3))
    script(b, 0.30), script(b, None)  # no cost recorded: counts as nothing
    c = make_run(cycle=2, status="rejected", completed_at=aware(2026, 2, 4))
    script(c, 0.20)
    d = make_run(cycle=3, status="approved")  # not uploaded yet
    script(d, 0.07)

    cost = report.data(now=NOW)["llm_cost"]
    assert cost["uploaded_runs"] == 2 and cost["scripts"] == 6
    assert cost["uploaded_cost_usd"] == pytest.approx(0.45)
    assert cost["per_uploaded_run_usd"] == pytest.approx(0.225)
    assert cost["all_cost_usd"] == pytest.approx(0.72)
    assert cost["all_in_per_uploaded_run_usd"] == pytest.approx(0.36)
    assert [(m["month"], m["runs"]) for m in cost["months"]] == [("2026-01", 1), ("2026-02", 1)]
    assert [m["per_run_usd"] for m in cost["months"]] == [pytest.approx(0.15), pytest.approx(0.30)]
    assert "$0.2250 per uploaded compilation" in report.render(now=NOW)


def test_long_form_and_shorts_views_per_niche_through_both_kinds_of_id(database):
    gaming = make_run("gaming", status="approved")
    gaming.mark_uploaded("LF-G")
    shorts = [pm.Short.create(pipeline_run=gaming) for _ in range(2)]
    shorts[0].mark_uploaded("SH-G1"), shorts[1].mark_uploaded("SH-G2")
    sports = make_run("sports", status="approved")
    sports.mark_uploaded("LF-S")
    t1, t2 = aware(2026, 2, 1), aware(2026, 2, 2)
    pm.Analytics.record("LF-G", measured_at=t1, view_count=100, subscriber_gain=5,
                        click_through_rate=0.04)
    pm.Analytics.record("LF-G", measured_at=t2, view_count=300, subscriber_gain=9,
                        # the newest counts
                        click_through_rate=0.06, average_view_duration_seconds=200.0)
    pm.Analytics.record("SH-G1", measured_at=t1, view_count=50, click_through_rate=0.10)
    pm.Analytics.record("SH-G2", measured_at=t1, view_count=70)  # no CTR reported: not in the mean
    pm.Analytics.record("LF-S", measured_at=t1, view_count=40)
    pm.Analytics.record("STRAY", measured_at=t1, view_count=999)  # neither a run's nor a short's

    views = report.data(now=NOW)["views"]
    assert views["unmatched_videos"] == 1
    assert views["niches"] == {
        "gaming": {"long-form": {"videos": 1, "views": 300, "subscriber_gain": 9,
                                 "click_through_rate": 0.06,
                                 "average_view_duration_seconds": 200.0},
                   "shorts": {"videos": 2, "views": 120, "subscriber_gain": None,
                              "click_through_rate": 0.10, "average_view_duration_seconds": None}},
        "sports": {"long-form": {"videos": 1, "views": 40, "subscriber_gain": None,
                                 "click_through_rate": None,
                                 "average_view_duration_seconds": None}}}
    document = report.render(now=NOW)
    assert "340 views of long-form videos and 120 of shorts in 2 niches" in document
    assert "1 video with snapshots is neither a run&#x27;s nor a short&#x27;s." in document
    traces = figures_of(document)["chart-views"]["data"]
    # then subscribers (x2), CTR (x3)
    views_panel = [(t["name"], t["y"]) for t in traces if t["xaxis"] == "x"]
    # sports has no shorts measured
    assert views_panel == [("long-form", [300, 40]), ("shorts", [120, None])]
    assert views["audience"] == {  # both kinds: CTR the mean of the two reported
        "gaming": {"videos": 3, "views": 420, "subscriber_gain": 9,
                   "click_through_rate": pytest.approx(0.08)},
        "sports": {"videos": 1, "views": 40, "subscriber_gain": None, "click_through_rate": None}}
    assert "gaming gained the most subscribers (9)" in document


def test_top_videos_long_form_and_shorts_view_curves(database):
    t1, t2, t3 = aware(2026, 2, 1), aware(2026, 2, 2), aware(2026, 2, 3)
    pm.Analytics.record("vidA", measured_at=t1, view_count=10)
    pm.Analytics.record("vidA", measured_at=t2, like_count=3)  # views not reported: not a point
    pm.Analytics.record("vidA", measured_at=t3, view_count=200)
    pm.Analytics.record("vidB", measured_at=t2, view_count=120)
    pm.Analytics.record("vidB", measured_at=t1, view_count=100)
    pm.Analytics.record("vidC", measured_at=t1, view_count=5)
    pm.Analytics.record("vidC", measured_at=t2, view_count=30)
    run = make_run("sports", status="approved")
    pm.Short.create(pipeline_run=run, title="The best one").mark_uploaded("vidA")
    run.mark_uploaded("vidB")
    (script(run, 0.01, title="Old title"), script(run, 0.01, title="Top 10 of the week"),
     script(run, 0.01))

    top = report.data(now=NOW, top=2)["top_videos"]
    assert [
        (v["youtube_video_id"], v["kind"], v["niche"], v["title"],
         v["view_count"]) for v in top] == [
        ("vidA", "shorts", "sports", "The best one", 200), ("vidB", "long-form", "sports",
                                                            "Top 10 of the week", 120)]
    assert top[0]["curve"] == [(t1, 10), (t3, 200)] and top[1]["curve"] == [(t1, 100), (t2, 120)]
    assert top[0]["measured_at"] == t3

    document = report.render(now=NOW, top=2)
    traces = figures_of(document)["chart-top-videos"]["data"]
    assert [(t["name"], t["line"]["dash"]) for t in traces] == [("shorts: The best one", "dot"),
                                                                 ("long-form: Top 10 of the week",
                                                                  "solid")]
    assert "vidC" not in document

    # its newest has no view count
    pm.Analytics.record("vidA", measured_at=aware(2026, 2, 4), like_count=9)
    top = report.data(now=NOW, top=3)["top_videos"]
    assert [(v["youtube_video_id"], v["kind"]) for v in top] == [("vidB", "long-form"), ("vidC",
                                                                                         None),
                                                                 ("vidA", "shorts")]
    assert top[2]["view_count"] is None and top[2]["curve"] == [(t1, 10), (t3, 200)]
    assert "has 120 views" in report.render(now=NOW, top=3)
    assert "No top videos asked for" in report.render(now=NOW, top=0)


def test_the_arguments_are_checked(database):
    with pytest.raises(ValueError, match="aware"):
        report.data(now=NOW.replace(tzinfo=None))
    for bad in (-1, True, 2.5):
        with pytest.raises(ValueError, match="top"):
            report.render(now=NOW, top=bad)


def test_the_report_reads_in_the_callers_transaction_too(database):
    reviewed(answer="approve", upload=True)
    with pm.db.atomic():  # a savepoint then: PostgreSQL's SET TRANSACTION must not be sent
        assert report.data(now=NOW)["totals"]["uploaded_runs"] == 1
        make_video("after")
    assert pm.DiscoveredVideo.select().count() == 3


def test_on_postgresql_every_query_reads_one_read_only_snapshot(database, monkeypatch):
    if not isinstance(database, peewee.PostgresqlDatabase):
        pytest.skip("PostgreSQL only: SQLite's transaction is one snapshot already")
    seen = {}
    reviews = queries._reviews  # report's numbers are queried in queries.py

    def spy(now):
        for setting in ("transaction_isolation", "transaction_read_only"):
            seen[setting] = pm.db.execute_sql(f"SHOW {setting}").fetchone()[0]
        return reviews(now)
    monkeypatch.setattr(queries, "_reviews", spy)
    report.data(now=NOW)
    assert seen == {"transaction_isolation": "repeatable read", "transaction_read_only": "on"}


def test_the_report_only_reads(fresh_target):
    pm.init_db(fresh_target)
    run = reviewed(answer="approve", upload=True)
    pm.Analytics.record(run.youtube_video_id, view_count=5)
    pm.db.obj.close()
    # SQLite: an immutable file; PostgreSQL: a read-only session
    pm.init_db(fresh_target, readonly=True)
    document = report.render(now=NOW)
    assert "1 uploaded" in document and len(figures_of(document)) >= 6


# --- the page ------------------------------------------------------------------------------------


def test_database_text_is_escaped_everywhere(database):
    run = claimed(HOSTILE)  # a niche's name is text from the database too
    run.heartbeat(stage=HOSTILE)
    pm.ErrorLog.create(pipeline_run=run, module=HOSTILE, error_type=HOSTILE, error_message=HOSTILE)
    run.fail(HOSTILE, retry=False)
    done = reviewed(HOSTILE, answer="approve")
    pm.Short.update(title=HOSTILE).where(pm.Short.pipeline_run == done.id).execute()
    # flagged
    pm.Clip.update(content_id_risk="high").where(pm.Clip.pipeline_run == done.id).execute()
    uploaded(done)
    short = done.shorts[0]
    pm.Analytics.record(short.youtube_video_id, view_count=9, measured_at=aware(2026, 2, 1))
    pm.Analytics.record(short.youtube_video_id, view_count=99, measured_at=aware(2026, 2, 2))

    document = report.render(now=NOW)
    assert HOSTILE not in document and "alert(1)</script>" not in document
    # plotly.js, the figures, the config, the drawing: nothing from the data
    assert document.count("<script") == 4
    assert html.escape(HOSTILE) in document  # in the tables, as text
    match = re.search(r'<script id="figures" type="application/json">(.*?)</script>', document,
                      re.S)
    assert "<" not in match.group(1)  # the JSON cannot close its tag
    # plotly shows it as typed instead of reading tags
    as_plotly_text = html.escape(HOSTILE, quote=False)
    figures = figures_of(document)
    for chart in ("chart-funnel", "chart-runs-per-day", "chart-uploads", "chart-failures",
                  "chart-errors", "chart-reviews", "chart-answers", "chart-views",
                  "chart-content-id", "chart-top-videos"):
        assert as_plotly_text in json.dumps(figures[chart]), chart
    assert HOSTILE not in json.dumps(figures)


def test_plotly_text_shows_dollars_and_markup_as_typed():
    assert report_charts._label_text("$x$ <b>&") == "&#36;x&#36; &lt;b&gt;&amp;"


def test_the_page_fetches_nothing_and_defines_its_numbers(database):
    run = reviewed(answer="approve", upload=True)
    pm.Analytics.record(run.youtube_video_id, view_count=5)
    document = report.render(now=NOW)
    rest = outside_plotly_js(document)
    # no CDN, font, MathJax or link anywhere
    assert "http://" not in rest and "https://" not in rest
    assert not re.search(r"<(link|img|iframe|object|embed)\b|\bsrc=", rest, re.I)
    # and the browser is told to refuse any request all the same
    assert "default-src 'none'" in document
    assert document.count("plotly.js v") == 1  # embedded once
    definitions = re.findall(r"<li>(.*?)</li>", document)  # the docstring's, one item per number
    assert len(definitions) == 11 and definitions[0].startswith("Funnel, per niche: discovered "
                                                                "videos")
    assert definitions[-1].startswith("Top videos:") and all("\n" not in d for d in definitions)


def test_without_plotly_the_report_names_its_extra(database, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)  # as if it were not installed
    with pytest.raises(ExtraMissing) as caught:
        report.render(now=NOW)
    assert caught.value.extra == "report" and caught.value.package == "plotly"
    assert "install the 'report' extra" in str(caught.value) and ".[report]" in str(caught.value)
    assert report.data(now=NOW)["totals"]["runs"] == 0  # the numbers need no plotly


def test_the_module_imports_without_plotly():
    code = "import sys; sys.modules['plotly'] = None; import pipeline_models.report; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


# --- the file ------------------------------------------------------------------------------------


def test_write_writes_the_whole_report(database, tmp_path):
    reviewed(answer="approve", upload=True)
    reviewed(answer="reject")
    path = tmp_path / "report.html"
    summary = report.write(str(path), now=NOW)
    written = path.read_text(encoding="utf-8")
    assert written == report.render(now=NOW)
    assert summary == report.ReportSummary(str(path), 2, 1, len(figures_of(written)),
                                           len(written.encode()))
    umask = os.umask(0o022)
    os.umask(umask)
    # an ordinary file, not mkstemp's private one
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["report.html"]


def test_a_failed_write_leaves_the_old_file_untouched(database, tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("the old report")

    def broken(page, numbers):
        raise RuntimeError("rendering failed")
    monkeypatch.setattr(report, "SECTIONS", report.SECTIONS[:-1] + (broken,))
    with pytest.raises(RuntimeError, match="rendering failed"):
        report.write(str(path), now=NOW)
    assert path.read_text() == "the old report" and os.listdir(tmp_path) == ["report.html"]
    monkeypatch.undo()

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(report.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        report.write(str(path), now=NOW)
    # no temp file left
    assert path.read_text() == "the old report" and os.listdir(tmp_path) == ["report.html"]

    missing = tmp_path / "new.html"
    with pytest.raises(OSError):
        report.write(str(missing), now=NOW)
    assert not missing.exists()
