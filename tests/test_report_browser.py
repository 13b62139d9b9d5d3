"""The report opens in headless Chromium (Debian's, driven by Playwright): every chart drawn, no
console error, nothing fetched from anywhere but the file itself.

    PIPELINE_MODELS_REQUIRE_BROWSER=1   a missing Chromium or Playwright fails instead of skipping
                                        (CI sets it)
    PIPELINE_MODELS_UPDATE_SCREENSHOT=1 also saves the screenshot of the default demo's report to
                                        docs/report.png (1200 px wide)
"""
import itertools
import json
import os
import random
import shutil
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import pipeline_models as pm
from pipeline_models import report
from pipeline_models.demo import run_demo

CHROMIUM = "/usr/bin/chromium"
REQUIRE_BROWSER = os.environ.get("PIPELINE_MODELS_REQUIRE_BROWSER") == "1"
UPDATE_SCREENSHOT = os.environ.get("PIPELINE_MODELS_UPDATE_SCREENSHOT") == "1"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "report.png"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
HOSTILE = "</script><script>alert(1)</script>"
ALL_CHARTS = {"chart-funnel", "chart-runs-per-day", "chart-uploads", "chart-failures",
              "chart-errors", "chart-reviews", "chart-answers", "chart-cost", "chart-views",
              "chart-content-id", "chart-top-videos"}
RISKS = ["low"] * 40 + ["unknown"] * 4 + ["medium"] * 3 + ["high"]  # a few clips and videos flagged


def _unavailable(reason):
    if REQUIRE_BROWSER:
        pytest.fail(f"the browser test must run (PIPELINE_MODELS_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(f"browser test not run: {reason}")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright, once for the module; a skip (or a failure in CI) without
    them."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        except Error as exc:
            _unavailable(f"{CHROMIUM} did not start: {exc}")
        yield chromium
        chromium.close()


def open_report(browser, path, width=1280):
    """Open the report file in a new empty context; (page, problems) where problems lists console
    errors and warnings, page errors, dialogs and every request but the one for the file itself
    (plotly makes none: not even data: URLs show up as requests)."""
    url = Path(path).resolve().as_uri()
    context = browser.new_context(viewport={"width": width, "height": 900})
    problems = []

    def route(request_route):  # belt and braces: nothing but the file itself is even attempted
        if request_route.request.url != url:
            problems.append(f"routed request: {request_route.request.url[:200]}")
            request_route.abort()
        else:
            request_route.continue_()
    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda msg: msg.type in ("error", "warning")
            and problems.append(f"console {msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"),
                                      dialog.dismiss()))
    page.on("request",
            lambda request: request.url == url or problems.append(f"request: {request.url[:200]}"))
    page.goto(url)
    return page, problems


# What plotly draws for each trace: a g.trace group (scatter, bar, funnel), or a g.hm group (a
# heatmap's image).
TRACE_GROUPS = "g.trace, g.hm"


def rendered_charts(page):
    """{chart id: traces drawn} once every .chart div has its plotly SVG with its traces in it."""
    page.wait_for_function(f"""() => Array.from(document.querySelectorAll('.chart')).every(
        d => d.querySelector('.main-svg') && d.querySelectorAll('{TRACE_GROUPS}').length >= 1)""",
                           timeout=30_000)
    return dict(page.evaluate(f"""() => Array.from(document.querySelectorAll('.chart')).map(
        d => [d.id, d.querySelectorAll('{TRACE_GROUPS}').length])"""))


def png_size(data):
    """(width, height) of a PNG, read from its IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def populate(days=21, niches=("gaming", "sports"), seed=7, now=NOW, hostile=True):
    """A small but complete pipeline: each niche's run for each 6-hour cycle takes 12 candidates and
    keeps 8 ranked clips (some of medium or high Content ID risk), reviews answered every way
    (auto-held, forced uploads), long-form and 3 shorts uploaded within the cap and measured,
    failures and errors; every chart has something to draw. With `hostile`, the most viewed short's
    title, an error's module and its type are markup that must stay text."""
    rng = random.Random(seed)
    start = now - timedelta(days=days)
    stages = ["clip", "script", "tts", "render", "upload"]
    kinds = ["RenderCrashed", "RateLimitError", "TimeoutError", "FFmpegError"]
    measured, videos = [], itertools.count()
    with pm.db.atomic():
        for cycle in range(days * 4):
            for offset, niche in enumerate(niches):
                cycle_start = start + timedelta(hours=6 * cycle, minutes=30 * (offset + 1))
                roll = rng.random()
                status = ("uploaded" if roll < 0.68 else "rejected" if roll < 0.78
                          else "failed" if roll < 0.9 else "review" if roll < 0.95 else "pending")
                if cycle_start > now - timedelta(hours=12):
                    status = "pending"
                elif hostile and cycle == 3:
                    status = "uploaded"  # its top short, the most viewed, has the hostile title
                stage = (rng.choice(stages) if status == "failed"
                         else None if status == "pending" else "review")
                done = cycle_start + timedelta(hours=rng.uniform(2, 6))
                run = pm.PipelineRun.create(
                    niche=niche, cycle_start=cycle_start,
                    cycle_end=cycle_start + timedelta(hours=6), status=status, current_stage=stage,
                    created_at=cycle_start, started_at=cycle_start + timedelta(minutes=1),
                    completed_at=done if status in ("uploaded", "rejected", "failed") else None)
                found = [pm.DiscoveredVideo.create(
                    video_id=f"src{next(videos):06d}", title="A source video",
                    channel_name="A creator", channel_id="UCcreator",
                    url="https://www.youtube.com/watch?v=x", niche=niche,
                    viral_score=rng.uniform(1, 100),
                    discovered_at=cycle_start - timedelta(minutes=rng.randint(1, 300)),
                    content_id_risk=rng.choice(RISKS)) for _ in range(12)]
                if status == "failed":
                    # the worker stalled: requeue_stale gave up, no ErrorLog row
                    if rng.random() < 0.25:
                        stalled = "gave up after 3 attempts: no heartbeat for 0:10:00 (worker 'w1')"
                        pm.PipelineRun.update(error_message=stalled).where(
                            pm.PipelineRun.id == run.id).execute()
                    else:
                        pm.ErrorLog.create(pipeline_run=run, module=stage,
                                           error_type=rng.choice(kinds),
                                           error_message="ffmpeg exited 1", occurred_at=done,
                                           resolved=rng.random() < 0.5)
                if status == "pending" or (status == "failed" and stage == "clip"):
                    continue
                clips = [pm.Clip.create(pipeline_run=run, discovered_video=video,
                                        rank_position=rank, start_time_seconds=10.0,
                                        end_time_seconds=28.0, clip_duration_seconds=18.0,
                                        content_id_risk=rng.choice(RISKS))
                         for rank, video in enumerate(found[:8], 1)]
                pm.Script.create(pipeline_run=run, full_script_json={"clips": []},
                                 total_char_count=600, estimated_duration_seconds=40.0,
                                 llm_model_used="gpt-4.1-mini",
                                 generated_at=cycle_start + timedelta(minutes=20),
                                 title=f"{niche} countdown {cycle}",
                                 cost_usd=round(rng.uniform(0.001, 0.006), 6))
                if status == "failed":
                    continue
                sent = cycle_start + timedelta(hours=1)
                late = rng.random() < 0.08
                latency = timedelta(minutes=rng.lognormvariate(3.0, 0.8) + (90 if late else 0))
                # a first answer sent it back: skip or redo_script
                if status == "uploaded" and rng.random() < 0.15:
                    action = rng.choice(["skip", "redo_script"])
                    pm.ReviewLog.create(pipeline_run=run, sent_at=sent - timedelta(minutes=30),
                                        action=action, responded_at=sent - timedelta(minutes=20),
                                        response_detail="skip 8" if action == "skip" else None)
                    if action == "skip":
                        pm.Clip.update(dropped_at=sent).where(pm.Clip.id == clips[7].id).execute()
                # held, then /force_upload
                waiting, forced = status == "review", status == "uploaded" and late
                pm.ReviewLog.create(pipeline_run=run, sent_at=sent,
                                    auto_held=late or (waiting and rng.random() < 0.5),
                                    responded_at=None if waiting else sent + latency,
                                    response_detail="force_upload" if forced else None,
                                    action=("hold" if waiting
                                            else "reject" if status == "rejected" else "approve"))
                for rank, clip in enumerate(clips[:3], 1):
                    title = (HOSTILE if hostile and cycle == 3 and rank == 1
                             else f"#{rank} of {niche} countdown {cycle}")
                    short = pm.Short.create(
                        pipeline_run=run, clip=clip, title=title, created_at=sent,
                        status=status if status in ("uploaded", "rejected") else "review")
                    if status == "uploaded":
                        pm.Short.update(youtube_video_id=f"sh{short.id:07d}", uploaded_at=done,
                                        upload_started_at=done).where(
                            pm.Short.id == short.id).execute()
                        measured.append((f"sh{short.id:07d}", done,
                                         3000 if title == HOSTILE else rng.randint(50, 900)))
                if status == "uploaded":
                    long_form = pm.PipelineRun.update(youtube_video_id=f"lf{run.id:07d}",
                                                      upload_started_at=done)
                    long_form.where(pm.PipelineRun.id == run.id).execute()
                    measured.append((f"lf{run.id:07d}", done, rng.randint(100, 1500)))
        for n in range(days * 2):
            pm.ErrorLog.create(module=rng.choice(["uploader", "analytics", "discovery"]),
                               error_type=rng.choice(["HttpError", "QuotaExceeded",
                                                      "TimeoutError"]),
                               error_message="503 Service Unavailable",
                               occurred_at=start + timedelta(hours=n * 11),
                               resolved=rng.random() < 0.4)
        if hostile:
            pm.ErrorLog.create(module=HOSTILE, error_type=HOSTILE, error_message=HOSTILE)
        # A cap every day's uploads fit under: 4 cycles a niche, each a long-form video and 3
        # shorts.
        pm.ConfigOverride.set("youtube.max_uploads_per_day", 16 * len(niches))
        pm.PipelineRun.pause(niches[-1])

    def snapshots():
        for video, since, rate in measured:
            views, when = 0, since
            while when <= now:
                views += int(rate * rng.uniform(0.5, 1.5))
                yield dict(youtube_video_id=video, measured_at=when, view_count=views,
                           like_count=views // 30, subscriber_gain=views // 500,
                           click_through_rate=rng.uniform(0.02, 0.09),
                           average_view_duration_seconds=rng.uniform(15, 200))
                when += timedelta(hours=6)
    pm.Analytics.record_many(snapshots())


def test_the_report_renders_every_chart_offline(browser, tmp_path):
    pm.init_db(str(tmp_path / "pipeline.db"))
    populate()
    path = tmp_path / "report.html"
    summary = report.write(str(path), now=NOW)
    assert summary.charts == len(ALL_CHARTS)

    page, problems = open_report(browser, path)
    drawn = rendered_charts(page)
    figures = json.loads(page.evaluate("document.getElementById('figures').textContent"))
    assert set(drawn) == set(figures) == ALL_CHARTS
    for chart_id, traces in drawn.items():  # every trace of every figure has its group in the SVG
        assert traces == len(figures[chart_id]["data"]) >= 1, chart_id
    # none came from the data
    assert page.evaluate("document.querySelectorAll('script').length") == 4
    text = page.evaluate("document.body.innerText")
    assert HOSTILE in text  # shown as text, in the top videos' table and the module table
    legend = page.evaluate("Array.from(document.querySelectorAll('#chart-top-videos .legendtext'))"
                           ".map(t => t.textContent)")
    assert "shorts: " + HOSTILE in legend  # plotly shows the title as typed, not as markup
    ticks = page.evaluate("Array.from(document.querySelectorAll('#chart-errors .ytick'))"
                          ".map(t => t.textContent)")
    assert HOSTILE in ticks

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    width, height = png_size(shot.read_bytes())
    assert width == 1280 and height > 2500 and shot.stat().st_size > 100_000
    assert problems == []
    page.context.close()


def test_the_default_demo_s_report_draws_every_chart(browser, tmp_path, monkeypatch):
    """The report of `pipeline-models demo` as it stands: every chart drawn, the per-day ones and
    the failures with more than one bar or cell (the docs' picture, with
    PIPELINE_MODELS_UPDATE_SCREENSHOT=1)."""
    monkeypatch.chdir(tmp_path)  # the page names the database as the docs' commands do
    path = "pipeline-demo.db"
    run_demo(path, out=lambda line: None, progress=lambda line: None)
    pm.init_db(path, readonly=True)
    summary = report.write(str(tmp_path / "report.html"))
    assert summary.charts == len(ALL_CHARTS)
    page, problems = open_report(browser, tmp_path / "report.html", width=1200)
    drawn = rendered_charts(page)
    figures = json.loads(page.evaluate("document.getElementById('figures').textContent"))
    assert set(drawn) == ALL_CHARTS and all(drawn[c] == len(figures[c]["data"]) for c in drawn)
    for chart in ("chart-runs-per-day", "chart-uploads"):  # more than one day's bars
        assert len({x for trace in figures[chart]["data"] for x in trace["x"]}) > 1, chart
    heatmap = figures["chart-failures"]["data"][0]["z"]
    # More than one (stage, error type) cell.
    assert sum(cell is not None for row in heatmap for cell in row) > 1
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    width, height = png_size(shot.read_bytes())
    assert width == 1200 and height > 2500 and problems == []
    if UPDATE_SCREENSHOT:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    page.context.close()


def test_an_empty_database_opens_cleanly(browser, tmp_path):
    pm.init_db(str(tmp_path / "empty.db"))
    path = tmp_path / "report.html"
    assert report.write(str(path), now=NOW).charts == 0
    page, problems = open_report(browser, path)
    page.wait_for_load_state("load")
    # the embedded library loaded, and drew nothing
    assert page.evaluate("typeof Plotly") == "object"
    assert page.evaluate("document.querySelectorAll('.chart').length") == 0
    text = page.evaluate("document.body.innerText")
    assert ("No runs yet" in text and "No videos discovered yet" in text
            and "No analytics yet" in text)
    assert problems == []
    page.context.close()


def test_the_checks_catch_a_request_a_console_error_and_a_dialog(browser, tmp_path):
    """The harness itself: a page that fetches, logs an error and opens a dialog is caught on all
    three."""
    path = tmp_path / "leaky.html"
    path.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/pixel.png">'
                    '<script>console.error("boom"); alert("hi")</script>')
    page, problems = open_report(browser, path)
    page.wait_for_load_state("load")
    assert "console error: boom" in problems and "dialog: hi" in problems
    assert "routed request: http://127.0.0.1:9/pixel.png" in problems
    page.context.close()
