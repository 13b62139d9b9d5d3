"""The HTML report: the numbers it shows (on SQLite and PostgreSQL), its escaping, its file and its extra."""
import html
import json
import os
import re
import stat
import subprocess
import sys
from datetime import timedelta

import peewee
import pytest
from conftest import aware

import pipeline_models as pm
from pipeline_models import ExtraMissing, RunStatus, queries, report

NOW = aware(2026, 3, 1, 12)
HOSTILE = "</script><script>alert(1)</script>"


def claimed(youtube_video_id, **discovered):
    """A new video's run, claimed by a worker (running)."""
    video, _ = pm.DiscoveredVideo.discover(youtube_video_id, **discovered)
    run = pm.PipelineRun.start(video)
    got = pm.PipelineRun.claim_next("w1")
    assert got.id == run.id
    return got


def reviewed(youtube_video_id, answer=None, upload=False):
    """A run taken through production to a review request, answered with `answer`; its short uploaded if asked."""
    run = claimed(youtube_video_id)
    short = pm.Short.create(pipeline_run=run, status="rendered", title=f"Short of {youtube_video_id}")
    pm.ReviewLog.request(run, message_id=f"m-{youtube_video_id}-{run.id}")
    if answer:
        pm.ReviewLog.answer(f"m-{youtube_video_id}-{run.id}", answer, reviewer="@alice")
    if upload:
        short.mark_uploaded(f"yt-{youtube_video_id}-{run.id}")
    return run


def script(run, cost):
    return pm.Script.create(pipeline_run=run, full_script_json={"beats": []}, total_char_count=100,
                            estimated_duration_seconds=10.0, llm_model_used="m", cost_usd=cost)


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
    assert numbers["funnel"] == [] and numbers["runs_per_day"] == {} and numbers["failures"] == {}
    assert numbers["unresolved_errors"] == {} and numbers["top_shorts"] == []
    reviews, cost = numbers["reviews"], numbers["llm_cost"]
    assert reviews["answered"] == 0 and reviews["median_seconds"] is None and reviews["p95_seconds"] is None
    assert reviews["oldest_open_seconds"] is None and reviews["weeks"] == []
    assert cost["per_published_short_usd"] is None and cost["all_cost_usd"] == 0 and cost["months"] == []

    document = report.render(now=NOW)
    for says in ("No runs yet", "No videos discovered yet.", "No failed runs. No unresolved errors.",
                 "No reviews requested yet.", "No scripts written yet.", "No analytics yet."):
        assert says in document
    assert 'class="chart"' not in document and figures_of(document) == {}


def test_the_funnel_counts_each_video_once_at_the_furthest_step_it_reached(database):
    pm.DiscoveredVideo.discover("only-found")
    pm.Short.create(pipeline_run=claimed("has-a-short"), status="rendered")
    reviewed("waiting")
    reviewed("rejected", "reject")
    reviewed("approved", "edit")
    reviewed("published", "approve", upload=True)
    first = claimed("second-try")
    first.fail("no clips", retry=False)
    pm.PipelineRun.start(first.discovered_video, again=True)
    retried = pm.PipelineRun.claim_next("w1")
    short = pm.Short.create(pipeline_run=retried, status="rendered")
    pm.ReviewLog.request(retried, message_id="m-second")
    pm.ReviewLog.answer("m-second", "approve")
    short.mark_uploaded("yt-second")
    pm.PipelineRun.start(pm.DiscoveredVideo.discover("queued")[0])  # last: claim_next takes the oldest run

    assert report.data(now=NOW)["funnel"] == [
        ("discovered", 8), ("selected (has a run)", 7), ("produced a short", 6), ("sent to review", 5),
        ("approved", 3), ("published", 2)]


def test_runs_per_day_by_outcome_use_the_utc_day_each_run_was_queued(database):
    for n, (created, status) in enumerate([
            (aware(2026, 1, 1, 10), "published"),
            (aware(2026, 1, 2, 0, 30, hours=2), "failed"),  # 22:30 UTC on the 1st
            (aware(2026, 1, 2, 9), "pending"), (aware(2026, 1, 2, 10), "approved"),
            (aware(2026, 1, 2, 11), "rejected"), (aware(2026, 1, 5, 23, 59), "published")]):
        video = pm.DiscoveredVideo.create(youtube_video_id=f"v{n}")
        pm.PipelineRun.create(discovered_video=video, status=status, created_at=created)

    per_day = report.data(now=NOW)["runs_per_day"]
    assert per_day == {"2026-01-01": {"published": 1, "failed": 1},
                       "2026-01-02": {"in progress": 2, "rejected": 1},
                       "2026-01-05": {"published": 1}}
    assert list(per_day) == sorted(per_day)


def test_failed_runs_by_stage_and_error_type(database):
    start = pm.utcnow()
    run = claimed("two-errors")
    run.heartbeat(stage="render")
    pm.ErrorLog.record(RuntimeError("first"), "render", pipeline_run=run)
    pm.ErrorLog.record(ValueError("then this"), "render", pipeline_run=run)  # the newest names the type
    run.fail(ValueError("then this"), retry=False)

    class RenderCrashed(Exception):
        pass
    run = claimed("crashed")
    run.heartbeat(stage="render")
    with pytest.raises(RenderCrashed), pm.ErrorLog.capture("render", pipeline_run=run):
        raise RenderCrashed("moov atom not found")
    run.fail(RenderCrashed("moov atom not found"), retry=False)

    run = claimed("unlogged")
    run.heartbeat(stage="upload")
    run.fail("quota exhausted", retry=False)

    stalled = claimed("stalled")  # its worker died: the lease expires, and with one attempt allowed it fails
    assert pm.PipelineRun.requeue_stale(timedelta(minutes=10), max_attempts=1, now=start + timedelta(hours=1)) == 1
    assert stalled.refresh().status is RunStatus.failed

    run = claimed("will-retry")  # an attempt failed, the run is queued again: not a failed run
    run.heartbeat(stage="tts")
    pm.ErrorLog.record(KeyError("voice"), "tts", pipeline_run=run)
    run.fail(KeyError("voice"))
    assert run.status is RunStatus.pending and run.last_error

    pm.ErrorLog.record(OSError("disk full"), "uploader").resolve()
    pm.ErrorLog.record(OSError("HTTP 503"), "uploader")

    numbers = report.data(now=NOW)
    assert numbers["failures"] == {("render", "ValueError"): 1, ("render", "RenderCrashed"): 1,
                                   ("upload", report.NOT_LOGGED): 1, (report.NO_STAGE, report.LEASE_EXPIRED): 1}
    assert numbers["unresolved_errors"] == {("render", "RuntimeError"): 1, ("render", "ValueError"): 1,
                                            ("render", "RenderCrashed"): 1, ("tts", "KeyError"): 1,
                                            ("uploader", "OSError"): 1}


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
    run = pm.PipelineRun.create(discovered_video=pm.DiscoveredVideo.create(youtube_video_id="v"))
    for minutes in range(1, 21):  # 1..10 min in the week of Monday 5 January, 11..20 in the next
        sent = aware(2026, 1, 6 if minutes <= 10 else 13, 9)
        if minutes == 10:
            sent = aware(2026, 1, 12, 1, 30, hours=2)  # Monday locally, Sunday 23:30 UTC: the first week
        pm.ReviewLog.create(pipeline_run=run, sent_at=sent, responded_at=sent + timedelta(minutes=minutes),
                            action="approve", auto_held=minutes == 20)  # the slowest: held, then answered late
    pm.ReviewLog.create(pipeline_run=run, sent_at=aware(2026, 1, 14, 8), auto_held=True)  # held, still open
    pm.ReviewLog.create(pipeline_run=run, sent_at=NOW - timedelta(hours=2))  # open, not held yet

    reviews = report.data(now=NOW)["reviews"]
    assert (reviews["requested"], reviews["answered"], reviews["timed"], reviews["open"]) == (22, 20, 20, 2)
    assert reviews["median_seconds"] == pytest.approx(10.5 * 60, abs=0.01)
    assert reviews["p95_seconds"] == pytest.approx(19 * 60, abs=0.01)
    assert (reviews["auto_held"], reviews["auto_held_open"], reviews["auto_held_answered"]) == (2, 1, 1)
    assert reviews["oldest_open_seconds"] == (NOW - aware(2026, 1, 14, 8)).total_seconds()
    first, second = reviews["weeks"]  # the week of the open review, neither answered nor held, has no figures
    assert (first["week"], first["timed"], first["auto_held"]) == ("2026-01-05", 10, 0)
    assert first["median_seconds"] == pytest.approx(5.5 * 60, abs=0.01)
    assert first["p95_seconds"] == pytest.approx(10 * 60, abs=0.01)
    assert (second["week"], second["timed"], second["auto_held"]) == ("2026-01-12", 10, 2)
    assert second["median_seconds"] == pytest.approx(15.5 * 60, abs=0.01)
    assert second["p95_seconds"] == pytest.approx(20 * 60, abs=0.01)

    document = report.render(now=NOW)
    assert "median latency 10.5 min, p95 19.0 min" in document
    assert "2 auto-held (nobody answered in time): 1 still open, 1 answered late" in document


def test_reviews_without_answer_times_or_weeks_say_so_and_draw_no_chart(database):
    run = pm.PipelineRun.create(discovered_video=pm.DiscoveredVideo.create(youtube_video_id="v"))
    pm.ReviewLog.create(pipeline_run=run, sent_at=NOW - timedelta(hours=1))
    document = report.render(now=NOW)
    assert "No reviews answered yet. 0 auto-held" in document and "the oldest sent 1.0 h ago" in document
    assert "chart-reviews" not in figures_of(document)

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


def test_llm_cost_per_published_short(database):
    def run(name, status, finished_at=None):
        video = pm.DiscoveredVideo.create(youtube_video_id=name)
        return pm.PipelineRun.create(discovered_video=video, status=status, finished_at=finished_at)
    a = run("a", "published", aware(2026, 2, 1, 0, 30, hours=1))  # 23:30 UTC on 31 January
    script(a, 0.10), script(a, 0.05)  # two attempts' scripts: both are what the short cost
    pm.Short.create(pipeline_run=a, status="uploaded", youtube_video_id="a1")
    pm.Short.create(pipeline_run=a, status="uploaded", youtube_video_id="a2")
    pm.Short.create(pipeline_run=a, status="failed")
    b = run("b", "published", aware(2026, 2, 3))
    script(b, 0.30), script(b, None)  # no cost recorded: counts as nothing
    pm.Short.create(pipeline_run=b, status="uploaded", youtube_video_id="b1")
    c = run("c", "rejected", aware(2026, 2, 4))
    script(c, 0.20)
    pm.Short.create(pipeline_run=c, status="rejected")
    d = run("d", "approved")  # one of its two shorts uploaded: not published yet
    script(d, 0.07)
    pm.Short.create(pipeline_run=d, status="uploaded", youtube_video_id="d1")
    pm.Short.create(pipeline_run=d, status="rendered")

    cost = report.data(now=NOW)["llm_cost"]
    assert cost["published_shorts"] == 3 and cost["scripts"] == 6
    assert cost["published_cost_usd"] == pytest.approx(0.45)
    assert cost["per_published_short_usd"] == pytest.approx(0.15)
    assert cost["all_cost_usd"] == pytest.approx(0.72)
    assert cost["all_in_per_published_short_usd"] == pytest.approx(0.24)
    assert [(m["month"], m["shorts"]) for m in cost["months"]] == [("2026-01", 2), ("2026-02", 1)]
    assert [m["per_short_usd"] for m in cost["months"]] == [pytest.approx(0.075), pytest.approx(0.30)]
    assert "$0.1500 per published short" in report.render(now=NOW)


def test_top_shorts_view_curves(database):
    t1, t2, t3 = aware(2026, 2, 1), aware(2026, 2, 2), aware(2026, 2, 3)
    pm.Analytics.record("vidA", measured_at=t1, view_count=10)
    pm.Analytics.record("vidA", measured_at=t2, like_count=3)  # views not reported: not a point
    pm.Analytics.record("vidA", measured_at=t3, view_count=200)
    pm.Analytics.record("vidB", measured_at=t2, view_count=120)
    pm.Analytics.record("vidB", measured_at=t1, view_count=100)
    pm.Analytics.record("vidC", measured_at=t1, view_count=5)
    pm.Analytics.record("vidC", measured_at=t2, view_count=30)
    run = pm.PipelineRun.create(discovered_video=pm.DiscoveredVideo.create(youtube_video_id="src"))
    pm.Short.create(pipeline_run=run, status="uploaded", youtube_video_id="vidA", title="The best one")

    top = report.data(now=NOW, top=2)["top_shorts"]
    assert [(s["youtube_video_id"], s["title"], s["view_count"]) for s in top] == [
        ("vidA", "The best one", 200), ("vidB", None, 120)]
    assert top[0]["curve"] == [(t1, 10), (t3, 200)] and top[1]["curve"] == [(t1, 100), (t2, 120)]
    assert top[0]["measured_at"] == t3

    document = report.render(now=NOW, top=2)
    assert "chart-top-shorts" in figures_of(document) and "vidC" not in document

    pm.Analytics.record("vidA", measured_at=aware(2026, 2, 4), like_count=9)  # its newest has no view count
    top = report.data(now=NOW, top=3)["top_shorts"]
    assert [s["youtube_video_id"] for s in top] == ["vidB", "vidC", "vidA"] and top[2]["view_count"] is None
    assert top[2]["curve"] == [(t1, 10), (t3, 200)]
    assert "has 120 views" in report.render(now=NOW, top=3)
    assert "No top shorts asked for" in report.render(now=NOW, top=0)


def test_the_arguments_are_checked(database):
    with pytest.raises(ValueError, match="aware"):
        report.data(now=NOW.replace(tzinfo=None))
    for bad in (-1, True, 2.5):
        with pytest.raises(ValueError, match="top"):
            report.render(now=NOW, top=bad)


def test_the_report_reads_in_the_callers_transaction_too(database):
    reviewed("v", "approve", upload=True)
    with pm.db.atomic():  # a savepoint then: PostgreSQL's SET TRANSACTION must not be sent
        assert report.data(now=NOW)["totals"]["published_runs"] == 1
        pm.DiscoveredVideo.discover("after")
    assert pm.DiscoveredVideo.select().count() == 2


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
    reviewed("v", "approve", upload=True)
    pm.Analytics.record("yt-v-1", view_count=5)
    pm.db.obj.close()
    pm.init_db(fresh_target, readonly=True)  # SQLite: an immutable file; PostgreSQL: a read-only session
    document = report.render(now=NOW)
    assert "1 published" in document and len(figures_of(document)) >= 4


# --- the page ------------------------------------------------------------------------------------


def test_database_text_is_escaped_everywhere(database):
    run = claimed("v", title=HOSTILE)
    run.heartbeat(stage=HOSTILE)
    pm.ErrorLog.create(pipeline_run=run, module=HOSTILE, error_type=HOSTILE, error_message=HOSTILE)
    run.fail(HOSTILE, retry=False)
    published = reviewed("w", "approve")
    pm.Short.update(title=HOSTILE).where(pm.Short.pipeline_run == published.id).execute()
    published.shorts[0].mark_uploaded("yt-w")
    pm.Analytics.record("yt-w", view_count=9, measured_at=aware(2026, 2, 1))
    pm.Analytics.record("yt-w", view_count=99, measured_at=aware(2026, 2, 2))

    document = report.render(now=NOW)
    assert HOSTILE not in document and "alert(1)</script>" not in document
    assert document.count("<script") == 4  # plotly.js, the figures, the config, the drawing: nothing from the data
    assert html.escape(HOSTILE) in document  # in the tables, as text
    match = re.search(r'<script id="figures" type="application/json">(.*?)</script>', document, re.S)
    assert "<" not in match.group(1)  # the JSON cannot close its tag
    as_plotly_text = html.escape(HOSTILE, quote=False)  # plotly shows it as typed instead of reading tags
    labels = json.dumps(figures_of(document))
    for chart in ("chart-failures", "chart-errors", "chart-top-shorts"):
        assert as_plotly_text in json.dumps(figures_of(document)[chart]), chart
    assert HOSTILE not in labels


def test_plotly_text_shows_dollars_and_markup_as_typed():
    assert report._label_text("$x$ <b>&") == "&#36;x&#36; &lt;b&gt;&amp;"


def test_the_page_fetches_nothing(database):
    reviewed("v", "approve", upload=True)
    pm.Analytics.record("yt-v-1", view_count=5)
    document = report.render(now=NOW)
    rest = outside_plotly_js(document)
    assert "http://" not in rest and "https://" not in rest  # no CDN, font, MathJax or link anywhere
    assert not re.search(r"<(link|img|iframe|object|embed)\b|\bsrc=", rest, re.I)
    assert "default-src 'none'" in document  # and the browser is told to refuse any request all the same
    assert document.count("plotly.js v") == 1  # embedded once


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
    reviewed("v", "approve", upload=True)
    path = tmp_path / "report.html"
    summary = report.write(str(path), now=NOW)
    written = path.read_text(encoding="utf-8")
    assert written == report.render(now=NOW)
    assert summary == report.ReportSummary(str(path), 1, 1, len(figures_of(written)), len(written.encode()))
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
