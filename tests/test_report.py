"""The HTML report and the status table: the numbers they show (on SQLite and PostgreSQL), the report's
escaping, its file and its extra."""
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
from pipeline_models import ExtraMissing, RunStatus, ShortStatus, queries, report

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
    """A claimed run with a clip of each of `videos` new videos (then of `reuse`'s), ranked 1..N, and a short
    of each of its top `shorts` clips, written under the claim."""
    run = claimed(niche)
    with run.fenced():
        sources = [make_video(f"vid{next(_ids):05d}", niche=niche) for _ in range(videos)] + list(reuse)
        clips = [make_clip(run, video, rank=rank) for rank, video in enumerate(sources, 1)]
        for clip in clips[:shorts]:
            pm.Short.create(pipeline_run=run, clip=clip, title=f"Short of clip {clip.id}")
    return run


def reviewed(niche="gaming", answer=None, detail=None, upload=False, **production):
    """A produced run sent to review, answered with `answer` (and `detail`); its videos uploaded if asked."""
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
                            estimated_duration_seconds=10.0, llm_model_used="m", cost_usd=cost, title=title)


def figures_of(document):
    """The figure JSON the page draws from."""
    match = re.search(r'<script id="figures" type="application/json">(.*?)</script>', document, re.S)
    return json.loads(match.group(1))


def outside_plotly_js(document):
    """The document without the embedded plotly.js (whose source mentions URLs it never fetches here)."""
    start = document.index("<script>")
    return document[:start] + document[document.index("</script>", start):]


# --- the numbers ---------------------------------------------------------------------------------


def test_an_empty_database_says_so_and_draws_no_chart(database):
    numbers = report.data(now=NOW)
    assert numbers["totals"]["runs"] == numbers["totals"]["videos"] == numbers["totals"]["snapshots"] == 0
    assert numbers["funnel"] == [] and numbers["funnel_by_niche"] == {} and numbers["runs_per_day"] == {}
    assert numbers["uploads_per_day"] == {} and numbers["failures"] == {} and numbers["unresolved_errors"] == {}
    assert numbers["top_videos"] == [] and numbers["views"] == {"niches": {}, "unmatched_videos": 0}
    reviews, cost = numbers["reviews"], numbers["llm_cost"]
    assert reviews["answered"] == 0 and reviews["median_seconds"] is None and reviews["p95_seconds"] is None
    assert reviews["oldest_waiting_seconds"] is None and reviews["weeks"] == [] and reviews["answers"] == {}
    assert cost["per_uploaded_run_usd"] is None and cost["all_cost_usd"] == 0 and cost["months"] == []

    document = report.render(now=NOW)
    for says in ("No runs yet", "No videos discovered yet.", "Nothing uploaded yet.",
                 "No failed runs. No unresolved errors.", "No reviews requested yet.", "No scripts written yet.",
                 "No analytics of uploaded videos yet.", "No analytics yet."):
        assert says in document
    assert 'class="chart"' not in document and figures_of(document) == {}


def test_the_funnel_counts_each_video_once_at_the_furthest_step_its_clips_reached(database):
    make_video("only-found-1"), make_video("only-found-2")
    running = produced(videos=2)  # used in a clip, not reviewed yet
    reviewed(videos=2)  # waiting for an answer
    reviewed(answer="reject", videos=1)
    skipped = reviewed(answer="skip", detail="skip 2", videos=3)  # its clip ranked 2 dropped: reviewed, no further
    again = pm.PipelineRun.claim_next("w1", niche="gaming")
    assert again.id == skipped.id and again.current_stage == "render"
    pm.ReviewLog.request(again, message_id="m-again").respond("approve", run=again)
    uploaded(again)
    reviewed(answer="approve", videos=1)  # approved, not uploaded yet
    reused = pm.DiscoveredVideo.get(pm.DiscoveredVideo.id == running.clips[0].discovered_video_id)
    reviewed(answer="approve", upload=True, videos=1, reuse=[reused])  # the running run's video goes further
    reviewed("sports", answer="approve", upload=True, videos=2)
    make_video("sports-found", niche="sports")
    direct = make_run("sports", cycle=10, status="uploaded")  # made directly: approved and reviewed all the same
    make_clip(direct, make_video("direct", niche="sports"))
    pm.PipelineRun.schedule("gaming", CYCLE_START + timedelta(days=30))  # pending, no clips: nothing

    numbers = report.data(now=NOW)
    assert numbers["funnel_by_niche"] == {
        "gaming": [("discovered", 12), ("used in a clip", 10), ("in a reviewed run", 9), ("approved", 5),
                   ("uploaded", 4)],
        "sports": [("discovered", 4), ("used in a clip", 3), ("in a reviewed run", 3), ("approved", 3),
                   ("uploaded", 3)]}
    assert numbers["funnel"] == [("discovered", 16), ("used in a clip", 13), ("in a reviewed run", 12),
                                 ("approved", 8), ("uploaded", 7)]
    assert [step for step, _ in numbers["funnel"]] == list(report.FUNNEL_STEPS)
    traces = figures_of(report.render(now=NOW))["chart-funnel"]["data"]
    assert [(t["name"], t["x"]) for t in traces] == [("gaming", [12, 10, 9, 5, 4]), ("sports", [4, 3, 3, 3, 3])]


def test_runs_by_outcome_per_niche_use_the_utc_day_each_cycle_started(database):
    for niche, start, status in [
            ("gaming", aware(2026, 1, 1, 0, 30), "uploaded"),
            ("gaming", aware(2026, 1, 2, 0, 30, hours=2), "failed"),  # 22:30 UTC on the 1st
            ("gaming", aware(2026, 1, 2, 6, 30), "review"), ("gaming", aware(2026, 1, 2, 12, 30), "approved"),
            ("gaming", aware(2026, 1, 2, 18, 30), "rejected"), ("sports", aware(2026, 1, 2, 1), "pending"),
            ("sports", aware(2026, 1, 5, 19), "uploaded")]:
        pm.PipelineRun.create(niche=niche, cycle_start=start, cycle_end=start + timedelta(hours=6), status=status)

    per_niche = report.data(now=NOW)["runs_per_day"]
    assert per_niche == {"gaming": {"2026-01-01": {"uploaded": 1, "failed": 1},
                                    "2026-01-02": {"in review": 1, "in progress": 1, "rejected": 1}},
                         "sports": {"2026-01-02": {"in progress": 1}, "2026-01-05": {"uploaded": 1}}}
    assert list(per_niche["gaming"]) == sorted(per_niche["gaming"])
    figure = figures_of(report.render(now=NOW))["chart-runs-per-day"]
    assert [a["text"] for a in figure["layout"]["annotations"]] == ["gaming", "sports"]  # a panel per niche
    assert sorted((t["name"], t["y"]) for t in figure["data"] if t["xaxis"] == "x2") == [
        ("in progress", [0, 1, 0]), ("uploaded", [0, 0, 1])]  # sports, on the days of every niche


def test_uploads_per_day_count_long_form_and_shorts_by_niche(database):
    gaming = make_run("gaming", status="approved")
    gaming.mark_uploaded("lf-g", uploaded_at=aware(2026, 2, 1, 23, 30))
    for n, at in enumerate([aware(2026, 2, 2, 0, 30, hours=2), aware(2026, 2, 2, 9)]):  # 22:30 UTC on the 1st
        pm.Short.create(pipeline_run=gaming).mark_uploaded(f"sh-g{n}", uploaded_at=at)
    pm.Short.create(pipeline_run=gaming, status="failed")  # not uploaded: not counted
    sports = make_run("sports", status="approved")
    sports.mark_uploaded("lf-s", uploaded_at=aware(2026, 2, 2, 10))
    pm.Short.create(pipeline_run=sports).mark_uploaded("sh-s", uploaded_at=aware(2026, 2, 2, 11))
    later = make_run("gaming", cycle=1, status="approved")  # its shorts first; its long-form video not yet
    pm.Short.create(pipeline_run=later).mark_uploaded("sh-later", uploaded_at=aware(2026, 2, 3, 8))
    make_run("gaming", cycle=2, status="rejected")
    pm.Short.create(pipeline_run=make_run("gaming", cycle=3, status="rejected"), status="rejected")

    per_day = report.data(now=NOW)["uploads_per_day"]
    assert per_day == {"2026-02-01": {"gaming": {"long-form": 1, "shorts": 1}},
                       "2026-02-02": {"gaming": {"long-form": 0, "shorts": 1}, "sports": {"long-form": 1, "shorts": 1}},
                       "2026-02-03": {"gaming": {"long-form": 0, "shorts": 1}}}
    assert list(per_day) == sorted(per_day)
    document = report.render(now=NOW)
    assert "2 long-form videos and 4 shorts uploaded on 3 days; the busiest, 2026-02-02, had 3." in document
    traces = figures_of(document)["chart-uploads"]["data"]
    assert [(t["name"], t["y"]) for t in traces] == [("gaming: long-form", [1, 0, 0]), ("gaming: shorts", [1, 1, 1]),
                                                     ("sports: long-form", [0, 1, 0]), ("sports: shorts", [0, 1, 0])]


def test_failed_runs_by_stage_and_error_type(database):
    start = pm.utcnow()
    run = claimed()
    run.heartbeat(stage="render")
    pm.ErrorLog.record(RuntimeError("first"), "render", pipeline_run=run)
    pm.ErrorLog.record(ValueError("then this"), "render", pipeline_run=run)  # the newest names the type
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
    pm.log_error("uploader", "QuotaExceeded", "quota exhausted", pipeline_run_id=run.id)  # the pipeline's helper
    run.fail("quota exhausted", retry=False)
    run = claimed("sports")
    run.heartbeat(stage="upload")
    run.fail("quota exhausted", retry=False)  # nothing logged

    stalled = claimed("funny")  # its worker died: the lease expires, and with one attempt allowed it fails
    assert pm.PipelineRun.requeue_stale(timedelta(minutes=10), max_attempts=1, now=start + timedelta(hours=1)) == 1
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
    assert numbers["unresolved_errors"] == {("render", "RuntimeError"): 1, ("render", "ValueError"): 1,
                                            ("render", "RenderCrashed"): 1, ("tts", "KeyError"): 1,
                                            ("uploader", "OSError"): 1, ("uploader", "QuotaExceeded"): 1}


def test_charts_fold_rare_error_types_into_other(database):
    for n in range(report.MAX_ERROR_TYPES + 2):  # type E0 once, E1 twice, ...: E0 and E1 are the rarest
        for _ in range(n + 1):
            pm.ErrorLog.create(module="uploader" if n % 2 else "render", error_type=f"E{n}", error_message="x")
    numbers = report.data(now=NOW)
    assert len(numbers["unresolved_errors"]) == report.MAX_ERROR_TYPES + 2  # the numbers keep every type
    traces = figures_of(report.render(now=NOW))["chart-errors"]["data"]
    assert [t["name"] for t in traces] == [f"E{n}" for n in range(11, 1, -1)] + ["other"]
    assert traces[-1]["x"] == [2, 1] and traces[-1]["y"] == ["uploader", "render"]  # E1 twice, E0 once


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


def test_review_latency_median_p95_and_auto_held(database):
    run = make_run()
    for minutes in range(1, 21):  # 1..10 min in the week of Monday 5 January, 11..20 in the next
        sent = aware(2026, 1, 6 if minutes <= 10 else 13, 9)
        if minutes == 10:
            sent = aware(2026, 1, 12, 1, 30, hours=2)  # Monday locally, Sunday 23:30 UTC: the first week
        pm.ReviewLog.create(pipeline_run=run, sent_at=sent, responded_at=sent + timedelta(minutes=minutes),
                            action="approve", auto_held=minutes == 20)  # the slowest: auto-held, answered later
    held = aware(2026, 1, 13, 10)  # a reviewer's hold: not an answer yet, so no latency
    pm.ReviewLog.create(pipeline_run=run, sent_at=held, responded_at=held + timedelta(minutes=3), action="hold")
    pm.ReviewLog.create(pipeline_run=run, sent_at=aware(2026, 1, 14, 8), action="hold", auto_held=True)  # still held
    pm.ReviewLog.create(pipeline_run=run, sent_at=NOW - timedelta(hours=2))  # open, not held yet

    reviews = report.data(now=NOW)["reviews"]
    assert (reviews["requested"], reviews["answered"], reviews["timed"]) == (23, 20, 20)
    assert (reviews["open"], reviews["held"]) == (1, 2)
    assert reviews["median_seconds"] == pytest.approx(10.5 * 60, abs=0.01)
    assert reviews["p95_seconds"] == pytest.approx(19 * 60, abs=0.01)
    assert (reviews["auto_held"], reviews["auto_held_waiting"], reviews["auto_held_answered"]) == (2, 1, 1)
    assert reviews["oldest_waiting_seconds"] == (NOW - held).total_seconds()
    first, second = reviews["weeks"]  # the week of the open review, neither answered nor auto-held, has none
    assert (first["week"], first["timed"], first["auto_held"]) == ("2026-01-05", 10, 0)
    assert first["median_seconds"] == pytest.approx(5.5 * 60, abs=0.01)
    assert first["p95_seconds"] == pytest.approx(10 * 60, abs=0.01)
    assert (second["week"], second["timed"], second["auto_held"]) == ("2026-01-12", 10, 2)
    assert second["median_seconds"] == pytest.approx(15.5 * 60, abs=0.01)
    assert second["p95_seconds"] == pytest.approx(20 * 60, abs=0.01)

    document = report.render(now=NOW)
    assert "median latency 10.5 min, p95 19.0 min" in document
    assert "2 auto-held (nobody answered in time): 1 still held, 1 answered later" in document
    assert "1 open and 2 held, the oldest sent 47.1 d ago" in document


def test_reviews_without_answer_times_or_weeks_say_so_and_draw_no_chart(database):
    run = make_run()
    pm.ReviewLog.create(pipeline_run=run, sent_at=NOW - timedelta(hours=1))
    document = report.render(now=NOW)
    assert "No reviews answered yet. 0 auto-held" in document and "the oldest sent 1.0 h ago" in document
    assert "chart-reviews" not in figures_of(document) and "No answers yet." in document

    pm.ReviewLog.create(pipeline_run=run, action="approve")  # answered by other code, without responded_at
    reviews = report.data(now=NOW)["reviews"]
    assert (reviews["answered"], reviews["timed"], reviews["median_seconds"]) == (1, 0, None)
    document = report.render(now=NOW)
    assert "1 answered, none with an answer time" in document and "chart-reviews" not in figures_of(document)

    sent = aware(2026, 2, 2, 9)
    pm.ReviewLog.create(pipeline_run=run, action="approve", sent_at=sent, responded_at=sent + timedelta(minutes=3))
    document = report.render(now=NOW)
    assert "2 answered: median latency 3.0 min, p95 3.0 min (of the 1 with an answer time)" in document
    assert "chart-reviews" in figures_of(document)


def test_review_answers_per_niche_and_the_status_table(database):
    reviewed(answer="approve")
    reviewed(answer="reject")
    reviewed(answer="hold")
    reviewed(answer="skip", detail="skip 1")  # back to pending, at the render stage
    reviewed("sports", answer="redo_script")  # back to pending, at the script stage
    reviewed("funny")
    assert pm.ReviewLog.hold_stale(timedelta(microseconds=1)) == 1  # only funny's is unanswered: auto-held
    reviewed("entertainment")  # open

    answers = report.data(now=NOW)["reviews"]["answers"]
    zero = dict.fromkeys(["approve", "reject", "hold", "skip", "redo_script"], 0)
    assert answers == {"funny": {**zero, "hold": 1},  # entertainment's review has no answer yet
                       "gaming": {**zero, "approve": 1, "reject": 1, "hold": 1, "skip": 1},
                       "sports": {**zero, "redo_script": 1}}
    assert list(answers) == sorted(answers)
    traces = figures_of(report.render(now=NOW))["chart-answers"]["data"]
    assert [(t["name"], t["y"]) for t in traces if t["name"] == "gaming"] == [("gaming", [1, 1, 1, 1, 0])]

    rows = {(what, status): count for what, status, count in queries.status_rows()}
    assert [status for what, status in rows if what == "runs"] == [s.value for s in RunStatus]
    assert [status for what, status in rows if what == "shorts"] == [s.value for s in ShortStatus]
    assert {status: count for (what, status), count in rows.items() if what == "runs" and count} == {
        "pending": 2, "review": 3, "approved": 1, "rejected": 1}
    assert {status: count for (what, status), count in rows.items() if what == "shorts" and count} == {
        "review": 4, "rejected": 3}  # the approved run's short waits for its upload
    assert [(status, count) for (what, status), count in rows.items() if what == "reviews"] == [
        ("open", 1), ("held", 2), ("of which auto-held", 1)]
    pm.ErrorLog.create(module="m", error_type="E", error_message="x")
    pm.ErrorLog.create(module="m", error_type="E", error_message="y").resolve()
    assert queries.status_rows()[-1] == ["errors", "unresolved", 1]


def test_llm_cost_per_uploaded_compilation(database):
    a = make_run(status="uploaded", completed_at=aware(2026, 2, 1, 0, 30, hours=1))  # 23:30 UTC on 31 January
    script(a, 0.10), script(a, 0.05)  # a redo_script's first script and the second: both are what it cost
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
    pm.Analytics.record("LF-G", measured_at=t1, view_count=100, subscriber_gain=5, click_through_rate=0.04)
    pm.Analytics.record("LF-G", measured_at=t2, view_count=300, subscriber_gain=9, click_through_rate=0.06,
                        average_view_duration_seconds=200.0)  # the newest counts
    pm.Analytics.record("SH-G1", measured_at=t1, view_count=50, click_through_rate=0.10)
    pm.Analytics.record("SH-G2", measured_at=t1, view_count=70)  # no CTR reported: not in the mean
    pm.Analytics.record("LF-S", measured_at=t1, view_count=40)
    pm.Analytics.record("STRAY", measured_at=t1, view_count=999)  # neither a run's nor a short's

    views = report.data(now=NOW)["views"]
    assert views["unmatched_videos"] == 1
    assert views["niches"] == {
        "gaming": {"long-form": {"videos": 1, "views": 300, "subscriber_gain": 9, "click_through_rate": 0.06,
                                 "average_view_duration_seconds": 200.0},
                   "shorts": {"videos": 2, "views": 120, "subscriber_gain": None, "click_through_rate": 0.10,
                              "average_view_duration_seconds": None}},
        "sports": {"long-form": {"videos": 1, "views": 40, "subscriber_gain": None, "click_through_rate": None,
                                 "average_view_duration_seconds": None}}}
    document = report.render(now=NOW)
    assert "340 views of long-form videos and 120 of shorts in 2 niches" in document
    assert "1 video with snapshots is neither a run&#x27;s nor a short&#x27;s." in document
    traces = figures_of(document)["chart-views"]["data"]
    assert [(t["name"], t["y"]) for t in traces] == [("long-form", [300, 40]), ("shorts", [120, 0])]


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
    script(run, 0.01, title="Old title"), script(run, 0.01, title="Top 10 of the week"), script(run, 0.01)

    top = report.data(now=NOW, top=2)["top_videos"]
    assert [(v["youtube_video_id"], v["kind"], v["niche"], v["title"], v["view_count"]) for v in top] == [
        ("vidA", "shorts", "sports", "The best one", 200), ("vidB", "long-form", "sports", "Top 10 of the week", 120)]
    assert top[0]["curve"] == [(t1, 10), (t3, 200)] and top[1]["curve"] == [(t1, 100), (t2, 120)]
    assert top[0]["measured_at"] == t3

    document = report.render(now=NOW, top=2)
    traces = figures_of(document)["chart-top-videos"]["data"]
    assert [(t["name"], t["line"]["dash"]) for t in traces] == [("shorts: The best one", "dot"),
                                                                 ("long-form: Top 10 of the week", "solid")]
    assert "vidC" not in document

    pm.Analytics.record("vidA", measured_at=aware(2026, 2, 4), like_count=9)  # its newest has no view count
    top = report.data(now=NOW, top=3)["top_videos"]
    assert [(v["youtube_video_id"], v["kind"]) for v in top] == [("vidB", "long-form"), ("vidC", None),
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
    pm.init_db(fresh_target, readonly=True)  # SQLite: an immutable file; PostgreSQL: a read-only session
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
    uploaded(done)
    short = done.shorts[0]
    pm.Analytics.record(short.youtube_video_id, view_count=9, measured_at=aware(2026, 2, 1))
    pm.Analytics.record(short.youtube_video_id, view_count=99, measured_at=aware(2026, 2, 2))

    document = report.render(now=NOW)
    assert HOSTILE not in document and "alert(1)</script>" not in document
    assert document.count("<script") == 4  # plotly.js, the figures, the config, the drawing: nothing from the data
    assert html.escape(HOSTILE) in document  # in the tables, as text
    match = re.search(r'<script id="figures" type="application/json">(.*?)</script>', document, re.S)
    assert "<" not in match.group(1)  # the JSON cannot close its tag
    as_plotly_text = html.escape(HOSTILE, quote=False)  # plotly shows it as typed instead of reading tags
    figures = figures_of(document)
    for chart in ("chart-funnel", "chart-runs-per-day", "chart-uploads", "chart-failures", "chart-errors",
                  "chart-answers", "chart-views", "chart-top-videos"):
        assert as_plotly_text in json.dumps(figures[chart]), chart
    assert HOSTILE not in json.dumps(figures)


def test_plotly_text_shows_dollars_and_markup_as_typed():
    assert report._label_text("$x$ <b>&") == "&#36;x&#36; &lt;b&gt;&amp;"


def test_the_page_fetches_nothing_and_defines_its_numbers(database):
    run = reviewed(answer="approve", upload=True)
    pm.Analytics.record(run.youtube_video_id, view_count=5)
    document = report.render(now=NOW)
    rest = outside_plotly_js(document)
    assert "http://" not in rest and "https://" not in rest  # no CDN, font, MathJax or link anywhere
    assert not re.search(r"<(link|img|iframe|object|embed)\b|\bsrc=", rest, re.I)
    assert "default-src 'none'" in document  # and the browser is told to refuse any request all the same
    assert document.count("plotly.js v") == 1  # embedded once
    definitions = re.findall(r"<li>(.*?)</li>", document)  # the docstring's, one item per number
    assert len(definitions) == 10 and definitions[0].startswith("Funnel, per niche: discovered videos")
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
    assert summary == report.ReportSummary(str(path), 2, 1, len(figures_of(written)), len(written.encode()))
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # an ordinary file, not mkstemp's private one
    assert os.listdir(tmp_path) == ["report.html"]


def test_a_failed_write_leaves_the_old_file_untouched(database, tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("the old report")

    def broken(page, numbers):
        raise RuntimeError("rendering failed")
    monkeypatch.setattr(report, "_cost_section", broken)
    with pytest.raises(RuntimeError, match="rendering failed"):
        report.write(str(path), now=NOW)
    assert path.read_text() == "the old report" and os.listdir(tmp_path) == ["report.html"]
    monkeypatch.undo()

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(report.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        report.write(str(path), now=NOW)
    assert path.read_text() == "the old report" and os.listdir(tmp_path) == ["report.html"]  # no temp file left

    missing = tmp_path / "new.html"
    with pytest.raises(OSError):
        report.write(str(missing), now=NOW)
    assert not missing.exists()
