"""The chat bot's queries (pipeline_models.bot) on a fixture pipeline with known numbers, on both
backends: each function's whole result, exactly, and that json.dumps takes it as it is."""
import datetime
import json

import pytest
from conftest import CYCLE_START, make_clip, make_run, make_video

import pipeline_models as pm
from pipeline_models import bot

H = datetime.timedelta(hours=1)
NOW = CYCLE_START + 20 * H + datetime.timedelta(minutes=30)  # 2026-01-01 21:00 UTC
SINCE = CYCLE_START - datetime.timedelta(minutes=30)  # 2026-01-01 00:00 UTC
LONG_SCRIPT = "The ten wildest gaming moments of the day, counted down from ten to one. " * 4


def iso(moment):
    return moment.astimezone(datetime.timezone.utc).isoformat()


@pytest.fixture
def pipeline(database):
    """Two niches with runs, one with videos only (funny), one paused with neither (cooking); sports
    paused too.

    gaming: run 1 uploaded (yt-g0, two shorts), run 2 failed, run 3 running (w1, stage clip), run 4
    in review (3 ranked clips and one dropped, two scripts), runs 5 and 6 pending. sports: run 7
    uploaded (yt-s0), run 8 held (auto-held, reminded), run 9 pending until 22:00, run 10 running
    (no heartbeat), run 11 rejected. gaming's run 12 was uploaded the day before (yt-old). The cap
    is 3.
    """
    T = CYCLE_START
    g = [make_video(f"g{n}", title=f"Gaming video {n}", channel_name=f"Creator {n}",
                    content_id_risk=["high", "low", "unknown", "medium"][n]) for n in range(4)]
    make_video("f0", niche="funny")
    runs = {}
    runs[1] = make_run("gaming", 0, status="uploaded", youtube_video_id="yt-g0",
                       completed_at=T + 5 * H)
    runs[2] = make_run("gaming", 1, status="failed", completed_at=T + 9 * H,
                       error_message="render crashed")
    runs[3] = make_run("gaming", 2, status="running", worker="w1", current_stage="clip",
                       started_at=T + 12 * H, heartbeat_at=T + 20 * H)
    runs[4] = make_run("gaming", 3, status="review", video_duration_seconds=540.5,
                       video_file_size_bytes=123456789, video_file_path="renders/4.mp4",
                       current_stage="review")
    runs[5] = make_run("gaming", 4)
    runs[6] = make_run("gaming", 5)
    runs[7] = make_run("sports", 0, status="uploaded", youtube_video_id="yt-s0",
                       completed_at=T + 20 * H)
    runs[8] = make_run("sports", 1, status="review")
    runs[9] = make_run("sports", 2, not_before=T + 21 * H + 30 * datetime.timedelta(minutes=1),
                       retry_count=1)
    runs[10] = make_run("sports", 3, status="running", worker="w2", started_at=T + 20 * H)
    runs[11] = make_run("sports", 4, status="rejected", completed_at=T + 19 * H)
    runs[12] = make_run("gaming", -4, status="uploaded", youtube_video_id="yt-old",
                        completed_at=T - 20 * H)
    pm.Short.create(pipeline_run=runs[1], status="uploaded", youtube_video_id="ys-g0a",
                    uploaded_at=T + 5 * H)
    pm.Short.create(pipeline_run=runs[1], status="uploaded", youtube_video_id="ys-g0b",
                    uploaded_at=T + 6 * H)
    pm.Short.create(pipeline_run=runs[4], status="review")
    # Run 4's clips: ranks 1-3 kept (risks: clip low/video high, clip medium/video low, none), one
    # dropped.
    make_clip(runs[4], g[0], rank=1, content_id_risk="low", start_time_seconds=5.0,
              end_time_seconds=25.0, clip_duration_seconds=20.0)
    make_clip(runs[4], g[1], rank=2, content_id_risk="medium", start_time_seconds=0.5,
              end_time_seconds=16.0, clip_duration_seconds=15.5)
    make_clip(runs[4], g[2], rank=3)
    make_clip(runs[4], g[3], rank=2, content_id_risk="high", dropped_at=T + 19 * H)
    pm.Script.create(pipeline_run=runs[4], opening_text="An older script.", full_script_json={},
                     total_char_count=16, estimated_duration_seconds=1, llm_model_used="m",
                     generated_at=T + 17 * H)
    pm.Script.create(pipeline_run=runs[4], opening_text="Not the newest of equal times.",
                     full_script_json={}, total_char_count=30, estimated_duration_seconds=2,
                     llm_model_used="m", generated_at=T + 18 * H)
    pm.Script.create(pipeline_run=runs[4], opening_text="Top 3 gaming moments.",
                     closing_text="Subscribe!",
                     full_script_json={"opening": "Top 3 gaming moments.", "closing": "Subscribe!",
                                       "clips": [{"rank": 3, "outro": "Wow.", "intro": "Number 3."},
                      {"rank": 2, "intro": LONG_SCRIPT}]},
                     total_char_count=400, estimated_duration_seconds=30, llm_model_used="m",
                     generated_at=T + 18 * H)
    # Reviews: run 1's answered; run 4's waiting since 18:30; run 8's auto-held, reminded at 16:30.
    pm.ReviewLog.create(pipeline_run=runs[1], sent_at=T + 2 * H, action="approve",
                        responded_at=T + 3 * H)
    pm.ReviewLog.create(pipeline_run=runs[4], message_id="chat:4", sent_at=T + 18 * H)
    pm.ReviewLog.create(pipeline_run=runs[8], message_id="chat:8", sent_at=T + 14 * H,
                        action="hold", auto_held=True, reminded_at=T + 16 * H)
    pm.Analytics.record("yt-g0", view_count=10, measured_at=T + 6 * H)
    pm.Analytics.record("yt-g0", view_count=1000, measured_at=T + 12 * H)
    pm.Analytics.record("ys-g0a", view_count=300, measured_at=T + 12 * H)
    pm.Analytics.record("yt-s0", view_count=2500, measured_at=T + 20 * H)
    pm.Analytics.record("yt-old", view_count=99999, measured_at=T + 12 * H)
    for module, run, at, resolved in (("render", runs[2], T + 8 * H, False), ("upload", runs[8],
                                                                              T + 10 * H, True),
                                      ("discovery", None, T + 11 * H, False), ("render", runs[12],
                                                                               T - 48 * H, True)):
        pm.ErrorLog.create(module=module, error_type="RuntimeError",
                           error_message=f"{module} failed", pipeline_run=run, occurred_at=at,
                           resolved=resolved)
    pm.PipelineRun.pause("sports")
    pm.PipelineRun.pause("cooking")
    pm.PipelineRun.pause("funny")
    pm.PipelineRun.resume("funny")
    pm.ConfigOverride.set("scheduler.max_concurrent_pipelines", 3)
    return runs


def counts(**given):
    return {**{state.value: 0 for state in pm.RunStatus}, **given}


def test_status(pipeline):
    result = bot.status(NOW)
    assert json.loads(json.dumps(result)) == result
    assert result == {
        "now": "2026-01-01T21:00:00+00:00",
        "finished_since": "2025-12-25T21:00:00+00:00",
        "max_concurrent_pipelines": 3,
        "running": 2,
        "paused": ["cooking", "sports"],
        "niches": {
            "cooking": {"paused": True, "runs": counts(), "running": [], "next": None},
            "funny": {"paused": False, "runs": counts(), "running": [], "next": None},
            "gaming": {
                "paused": False,
                "runs": counts(pending=2, running=1, review=1, uploaded=2, failed=1),
                "running": [{"id": 3, "cycle_start": "2026-01-01T12:30:00+00:00", "stage": "clip",
                             "worker": "w1", "heartbeat_at": "2026-01-01T20:30:00+00:00",
                             "heartbeat_age_seconds": 1800.0}],
                "next": {"id": 5, "cycle_start": "2026-01-02T00:30:00+00:00", "not_before": None,
                         "due": True}},
            "sports": {
                "paused": True,
                "runs": counts(pending=1, running=1, review=1, uploaded=1, rejected=1),
                "running": [{"id": 10, "cycle_start": "2026-01-01T18:30:00+00:00", "stage": None,
                             "worker": "w2", "heartbeat_at": None, "heartbeat_age_seconds": None}],
                "next": {"id": 9, "cycle_start": "2026-01-01T12:30:00+00:00",
                         "not_before": "2026-01-01T22:00:00+00:00", "due": False}},
        },
    }


def test_status_next_run_is_due_once_its_backoff_passed_and_follows_claims(pipeline):
    later = datetime.datetime(2026, 1, 1, 22, 0, tzinfo=datetime.timezone.utc)
    assert bot.status(later)["niches"]["sports"]["next"]["due"] is True  # not_before <= now
    pm.PipelineRun.resume("sports")
    claimed = pm.PipelineRun.claim_next("w3", niche="sports", now=later)
    assert claimed.id == 9
    result = bot.status(later)
    assert (result["niches"]["sports"]["next"] is None and result["running"] == 3
            and result["paused"] == ["cooking"])
    assert [run["id"] for run in result["niches"]["sports"]["running"]] == [9, 10]
    assert result["niches"]["sports"]["running"][0]["heartbeat_age_seconds"] == 0.0


def test_status_of_an_empty_database(database):
    assert bot.status(NOW) == {"now": "2026-01-01T21:00:00+00:00",
                               "finished_since": "2025-12-25T21:00:00+00:00",
                               "max_concurrent_pipelines": 2, "running": 0, "paused": [],
                               "niches": {}}


def test_status_counts_the_runs_finished_in_the_last_week_and_every_active_one(database):
    old = make_run("travel", cycle=-40, status="uploaded", completed_at=NOW - 8 * 24 * H)
    make_run("travel", cycle=-39, status="failed", completed_at=NOW - 6 * 24 * H)
    make_run("travel", cycle=-38, status="review")
    runs = bot.status(NOW)["niches"]["travel"]["runs"]
    # the upload of 8 days ago is history: /stats and the report
    assert runs == counts(failed=1, review=1)
    assert pm.PipelineRun.get_by_id(old.id).status is pm.RunStatus.uploaded


def test_stats(pipeline):
    result = bot.stats(SINCE)
    assert json.loads(json.dumps(result)) == result
    assert result == {"since": "2026-01-01T00:00:00+00:00", "niches": {
        "(none)": {"uploads": {"long-form": 0, "shorts": 0}, "views": {"long-form": 0, "shorts": 0},
                   "errors": 1},
        "gaming": {"uploads": {"long-form": 1, "shorts": 2},
                   "views": {"long-form": 1000, "shorts": 300}, "errors": 1},
        "sports": {"uploads": {"long-form": 1, "shorts": 0},
                   "views": {"long-form": 2500, "shorts": 0}, "errors": 1},
    }}
    # A timedelta counts back from now: three days before the fixture's day take in gaming's old
    # upload and error.
    wide = bot.stats(datetime.datetime.now(datetime.timezone.utc)
                     - (CYCLE_START - 72 * H))["niches"]
    assert wide["gaming"] == {"uploads": {"long-form": 2, "shorts": 2},
                              "views": {"long-form": 100999, "shorts": 300}, "errors": 2}


def test_stats_later_counts_only_what_came_after(pipeline):
    result = bot.stats(CYCLE_START + 5 * H + datetime.timedelta(minutes=1))["niches"]
    assert result["gaming"] == {"uploads": {"long-form": 0, "shorts": 1},
                                "views": {"long-form": 0, "shorts": 0}, "errors": 1}
    assert (result["sports"]["uploads"] == {"long-form": 1, "shorts": 0}
            and result["(none)"]["errors"] == 1)


def test_errors(pipeline):
    result = bot.errors()
    assert json.loads(json.dumps(result)) == result
    assert result == [
        {"id": 3, "occurred_at": "2026-01-01T11:30:00+00:00", "module": "discovery",
         "error_type": "RuntimeError", "error_message": "discovery failed", "pipeline_run_id": None,
         "niche": None, "resolved": False},
        {"id": 2, "occurred_at": "2026-01-01T10:30:00+00:00", "module": "upload",
         "error_type": "RuntimeError", "error_message": "upload failed", "pipeline_run_id": 8,
         "niche": "sports", "resolved": True},
        {"id": 1, "occurred_at": "2026-01-01T08:30:00+00:00", "module": "render",
         "error_type": "RuntimeError", "error_message": "render failed", "pipeline_run_id": 2,
         "niche": "gaming", "resolved": False},
        {"id": 4, "occurred_at": "2025-12-30T00:30:00+00:00", "module": "render",
         "error_type": "RuntimeError", "error_message": "render failed", "pipeline_run_id": 12,
         "niche": "gaming", "resolved": True},
    ]
    assert [e["id"] for e in bot.errors(2)] == [3, 2]
    assert [e["id"] for e in bot.errors(unresolved=True)] == [3, 1]
    assert [e["id"] for e in bot.errors(module="render")] == [1, 4]
    assert [e["id"] for e in bot.errors(1, unresolved=True, module="render")] == [1]


@pytest.mark.parametrize("limit", [0, -1, True, 1.5, "5", None])
def test_errors_refuses_a_bad_limit(database, limit):
    with pytest.raises(ValueError, match="errors: limit must be a whole number of errors"):
        bot.errors(limit)


def test_queue(pipeline):
    result = bot.queue(NOW)
    assert json.loads(json.dumps(result)) == result
    assert result == {"now": "2026-01-01T21:00:00+00:00", "awaiting": 1, "held": 1, "reviews": [
        {"review_id": 3, "message_id": "chat:8", "run_id": 8, "niche": "sports",
         "cycle_start": "2026-01-01T06:30:00+00:00", "cycle_end": "2026-01-01T12:30:00+00:00",
         "sent_at": "2026-01-01T14:30:00+00:00", "age_seconds": 6.5 * 3600, "held": True,
         "auto_held": True, "reminded": True, "reminded_at": "2026-01-01T16:30:00+00:00"},
        {"review_id": 2, "message_id": "chat:4", "run_id": 4, "niche": "gaming",
         "cycle_start": "2026-01-01T18:30:00+00:00", "cycle_end": "2026-01-02T00:30:00+00:00",
         "sent_at": "2026-01-01T18:30:00+00:00", "age_seconds": 2.5 * 3600, "held": False,
         "auto_held": False, "reminded": False, "reminded_at": None},
    ]}


def test_queue_follows_answers_reminders_and_auto_hold(pipeline):
    [due] = pm.ReviewLog.due_reminders(now=NOW)
    assert due.mark_reminded(now=NOW)
    assert pm.ReviewLog.hold_stale(datetime.timedelta(hours=2), now=NOW) == 1
    waiting = bot.queue(NOW)
    assert (waiting["awaiting"], waiting["held"]) == (0, 2)
    assert [(r["run_id"], r["held"], r["auto_held"], r["reminded_at"])
            for r in waiting["reviews"]] == [
        (8, True, True, "2026-01-01T16:30:00+00:00"), (4, True, True, "2026-01-01T21:00:00+00:00")]
    pm.ReviewLog.force_upload(8)
    assert [r["run_id"] for r in bot.queue(NOW)["reviews"]] == [4]
    pm.ReviewLog.get_by_id(2).respond("reject")
    assert bot.queue(NOW) == {"now": "2026-01-01T21:00:00+00:00", "awaiting": 0, "held": 0,
                              "reviews": []}


def test_digest(pipeline):
    result = bot.digest(SINCE, now=NOW)
    assert json.loads(json.dumps(result)) == result
    assert result == {
        "since": "2026-01-01T00:00:00+00:00", "until": "2026-01-01T21:00:00+00:00",
        "runs_uploaded": {"total": 2, "niches": {"gaming": 1, "sports": 1}},
        "runs_failed": {"total": 1, "niches": {"gaming": 1}},
        "videos_uploaded": {"long-form": {"total": 2, "niches": {"gaming": 1, "sports": 1}},
                            "shorts": {"total": 2, "niches": {"gaming": 2}}},
        "pending_review": {"awaiting": 1, "held": 1},
        "top_video": {"youtube_video_id": "yt-s0", "kind": "long-form", "niche": "sports",
                      "run_id": 7, "views": 2500},
    }


def test_digest_of_a_period_is_bounded_by_now_and_since(pipeline):
    # Until 20:00 sports' upload (20:30) has not happened: gaming's long-form video is the top one.
    early = bot.digest(6 * H, now=CYCLE_START + 19 * H + datetime.timedelta(minutes=30))
    assert (early["since"] == "2026-01-01T14:00:00+00:00"
            and early["runs_uploaded"] == {"total": 0, "niches": {}})
    assert (early["top_video"] is None
            and early["videos_uploaded"]["shorts"] == {"total": 0, "niches": {}})
    middle = bot.digest(CYCLE_START + 5 * H, now=CYCLE_START + 10 * H)
    assert middle["runs_uploaded"] == {"total": 1, "niches": {"gaming": 1}}
    assert middle["runs_failed"] == {"total": 1, "niches": {"gaming": 1}}
    assert middle["top_video"] == {"youtube_video_id": "yt-g0", "kind": "long-form",
                                   "niche": "gaming", "run_id": 1, "views": 1000}
    # A short can be the top video.
    pm.Analytics.record("ys-g0b", view_count=5000, measured_at=NOW)
    assert bot.digest(SINCE, now=NOW)["top_video"] == {"youtube_video_id": "ys-g0b",
                                                       "kind": "shorts", "niche": "gaming",
                                                       "run_id": 1, "views": 5000}


def test_review_summary(pipeline):
    result = bot.review_summary(pipeline[4])
    assert json.loads(json.dumps(result)) == result
    assert result == {
        "run_id": 4, "niche": "gaming", "status": "review",
        "cycle_start": "2026-01-01T18:30:00+00:00", "cycle_end": "2026-01-02T00:30:00+00:00",
        "video_duration_seconds": 540.5, "video_file_size_bytes": 123456789,
        "video_file_path": "renders/4.mp4", "clips": [
            {"rank": 1, "clip_id": 1, "video_id": "g0", "title": "Gaming video 0",
             "creator": "Creator 0", "seconds": 20.0, "start_seconds": 5.0, "end_seconds": 25.0,
             "content_id_risk": "low", "video_content_id_risk": "high"},
            {"rank": 2, "clip_id": 2, "video_id": "g1", "title": "Gaming video 1",
             "creator": "Creator 1", "seconds": 15.5, "start_seconds": 0.5, "end_seconds": 16.0,
             "content_id_risk": "medium", "video_content_id_risk": "low"},
            {"rank": 3, "clip_id": 3, "video_id": "g2", "title": "Gaming video 2",
             "creator": "Creator 2", "seconds": 18.0, "start_seconds": 10.0, "end_seconds": 28.0,
             "content_id_risk": "unknown", "video_content_id_risk": "unknown"},
        ],
        "content_id_flags": [{"rank": 1, "of": "video", "video_id": "g0", "risk": "high"},
                             {"rank": 2, "of": "clip", "video_id": "g1", "risk": "medium"}],
        "script_id": 3,
        "script_preview": ("Top 3 gaming moments. Number 3. Wow. " + LONG_SCRIPT
                           + "Subscribe!")[:200],
    }
    assert len(result["script_preview"]) == 200 and bot.review_summary(4) == result  # by id too


def test_review_summary_follows_a_skip_and_a_new_script(pipeline):
    review = pm.ReviewLog.get_by_id(2)
    review.respond("skip", "skip 2")
    result = bot.review_summary(4)
    assert [(c["rank"], c["video_id"]) for c in result["clips"]] == [(1, "g0"), (2, "g2")]
    assert result["content_id_flags"] == [{"rank": 1, "of": "video", "video_id": "g0",
                                           "risk": "high"}]
    pm.Script.create(pipeline_run=4, opening_text="Redone.", full_script_json=["and", {"b": "two",
                                                                                       "a": "one"}],
                     total_char_count=7, estimated_duration_seconds=1, llm_model_used="m",
                     generated_at=CYCLE_START + 19 * H)
    assert bot.review_summary(4)["script_preview"] == "Redone. and one two"


def test_review_summary_of_a_run_with_nothing_yet(pipeline):
    result = bot.review_summary(pipeline[5])
    assert (result["clips"], result["content_id_flags"], result["script_id"],
            result["script_preview"]) == (
        [], [], None, None)
    assert (result["video_duration_seconds"], result["video_file_size_bytes"]) == (None, None)
    with pytest.raises(pm.PipelineRun.DoesNotExist, match="no run has the id 99"):
        bot.review_summary(99)
    with pytest.raises(TypeError, match="review_summary: run must be a PipelineRun or its id"):
        bot.review_summary("4")


@pytest.mark.parametrize("since", [datetime.datetime(2026, 1, 1), "6h", -H, None])
def test_since_must_be_an_aware_datetime_or_a_timedelta(database, since):
    for query in (bot.stats, bot.digest):
        with pytest.raises(ValueError, match="since must be an aware datetime or a timedelta"):
            query(since)


def test_parse_since_reads_a_time_ago_or_an_iso_time():
    assert bot.parse_since("30m") == datetime.timedelta(minutes=30)
    assert bot.parse_since("6h") == 6 * H and bot.parse_since("7d") == datetime.timedelta(days=7)
    assert bot.parse_since("2026-01-01T00:30") == CYCLE_START  # UTC unless it says otherwise
    assert bot.parse_since("2026-01-01T02:30+02:00") == CYCLE_START
    for text in ("yesterday", "-6h", "6 h", "6w", "", "٦h"):
        with pytest.raises(ValueError, match="is neither a time ago"):
            bot.parse_since(text)
