"""The report opens in headless Chromium (Debian's, driven by Playwright): every chart drawn, no console error,
nothing fetched from anywhere but the file itself.

    PIPELINE_MODELS_REQUIRE_BROWSER=1   a missing Chromium or Playwright fails instead of skipping (CI sets it)
    PIPELINE_MODELS_UPDATE_SCREENSHOT=1 also saves the screenshot of a busier database to docs/report.png
"""
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

CHROMIUM = "/usr/bin/chromium"
REQUIRE_BROWSER = os.environ.get("PIPELINE_MODELS_REQUIRE_BROWSER") == "1"
UPDATE_SCREENSHOT = os.environ.get("PIPELINE_MODELS_UPDATE_SCREENSHOT") == "1"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "report.png"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
HOSTILE = "</script><script>alert(1)</script>"
ALL_CHARTS = {"chart-funnel", "chart-runs-per-day", "chart-failures", "chart-errors", "chart-reviews", "chart-cost",
              "chart-top-shorts"}


def _unavailable(reason):
    if REQUIRE_BROWSER:
        pytest.fail(f"the browser test must run (PIPELINE_MODELS_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(f"browser test not run: {reason}")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright, once for the module; a skip (or a failure in CI) without them."""
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


def open_report(browser, path):
    """Open the report file in a new empty context; (page, problems) where problems lists console errors and
    warnings, page errors, dialogs and every request but the one for the file itself (plotly makes none: not
    even data: URLs show up as requests)."""
    url = Path(path).resolve().as_uri()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    problems = []

    def route(request_route):  # belt and braces: nothing but the file itself is even attempted
        if request_route.request.url != url:
            problems.append(f"routed request: {request_route.request.url[:200]}")
            request_route.abort()
        else:
            request_route.continue_()
    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda msg: msg.type in ("error", "warning") and problems.append(f"console {msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("request", lambda request: request.url == url or problems.append(f"request: {request.url[:200]}"))
    page.goto(url)
    return page, problems


# What plotly draws for each trace: a g.trace group (scatter, bar, funnel), or a g.hm group (a heatmap's image).
TRACE_GROUPS = "g.trace, g.hm"


def rendered_charts(page):
    """{chart id: traces drawn} once every .chart div has its plotly SVG with its traces in it."""
    page.wait_for_function(f"""() => Array.from(document.querySelectorAll('.chart')).every(
        d => d.querySelector('.main-svg') && d.querySelectorAll('{TRACE_GROUPS}').length >= 1)""", timeout=30_000)
    return dict(page.evaluate(f"""() => Array.from(document.querySelectorAll('.chart')).map(
        d => [d.id, d.querySelectorAll('{TRACE_GROUPS}').length])"""))


def png_size(data):
    """(width, height) of a PNG, read from its IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def populate(days=21, per_day=6, seed=7, now=NOW, hostile=True):
    """A small but complete pipeline: every chart has something to draw; with `hostile`, the most viewed
    short's title, an error's module and its type are markup that must stay text."""
    rng = random.Random(seed)
    start = now - timedelta(days=days)
    stages = ["clip", "script", "tts", "render", "upload"]
    kinds = ["RenderCrashed", "RateLimitError", "TimeoutError", "FFmpegError"]
    uploaded = []
    with pm.db.atomic():
        for n in range(days * per_day):
            created = start + timedelta(hours=24 * n / per_day + rng.random())
            video = pm.DiscoveredVideo.create(youtube_video_id=f"src{n:05d}", title=f"Source video {n}",
                                              discovered_at=created - timedelta(hours=2))
            roll = rng.random()
            status = ("published" if roll < 0.68 else "rejected" if roll < 0.78 else "failed" if roll < 0.9
                      else "awaiting_review" if roll < 0.95 else "pending")
            if created > now - timedelta(hours=12):
                status = "pending"
            stage = rng.choice(stages) if status == "failed" else "review" if status != "pending" else None
            run = pm.PipelineRun.create(
                discovered_video=video, status=status, current_stage=stage, attempts=1, created_at=created,
                finished_at=created + timedelta(hours=6) if status in ("published", "rejected", "failed") else None)
            if status == "failed":
                if rng.random() < 0.25:  # the worker stalled: requeue_stale gave up, no ErrorLog row
                    pm.PipelineRun.update(last_error="gave up after 3 attempts: no heartbeat for 0:10:00 "
                                                     "(worker 'w1')").where(pm.PipelineRun.id == run.id).execute()
                else:
                    pm.ErrorLog.create(pipeline_run=run, module=stage, error_type=rng.choice(kinds),
                                       error_message="ffmpeg exited 1", occurred_at=created + timedelta(hours=1),
                                       resolved=rng.random() < 0.5)
            if status == "pending" or (status == "failed" and stage == "clip"):
                continue
            pm.Script.create(pipeline_run=run, full_script_json={"beats": []}, total_char_count=600,
                             estimated_duration_seconds=40.0, llm_model_used="gpt-4.1-mini",
                             generated_at=created + timedelta(minutes=20),
                             cost_usd=round(rng.uniform(0.001, 0.006), 6))
            if status == "failed":
                continue
            sent = created + timedelta(hours=1)
            late = rng.random() < 0.08
            latency = timedelta(minutes=rng.lognormvariate(3.0, 0.8) + (90 if late else 0))
            answered = status != "awaiting_review"
            pm.ReviewLog.create(pipeline_run=run, sent_at=sent, auto_held=late or not answered,
                                responded_at=sent + latency if answered else None,
                                action=None if not answered else "reject" if status == "rejected" else "approve")
            title = HOSTILE if hostile and n == 3 else f"Short #{n}: how rivers carve canyons"
            short = pm.Short.create(pipeline_run=run, title=title, status={"published": "uploaded",
                                    "rejected": "rejected"}.get(status, "rendered"), created_at=sent)
            if status == "published":
                pm.Short.update(youtube_video_id=f"yt{n:07d}", uploaded_at=created + timedelta(hours=6)).where(
                    pm.Short.id == short.id).execute()
                rate = 3000 if hostile and n == 3 else rng.randint(50, 900)
                uploaded.append((f"yt{n:07d}", created + timedelta(hours=6), rate))
        for n in range(days * 2):
            pm.ErrorLog.create(module=rng.choice(["uploader", "analytics", "discovery"]),
                               error_type=rng.choice(["HttpError", "QuotaExceeded", "TimeoutError"]),
                               error_message="503 Service Unavailable", occurred_at=start + timedelta(hours=n * 11),
                               resolved=rng.random() < 0.4)
        if hostile:
            pm.ErrorLog.create(module=HOSTILE, error_type=HOSTILE, error_message=HOSTILE)

    def snapshots():
        for video, since, rate in uploaded:
            views, when = 0, since
            while when <= now:
                views += int(rate * rng.uniform(0.5, 1.5))
                yield dict(youtube_video_id=video, measured_at=when, view_count=views, like_count=views // 30)
                when += timedelta(hours=6)
    pm.Analytics.record_many(snapshots())


def test_the_report_renders_every_chart_offline(browser, tmp_path):
    pm.init_db(str(tmp_path / "pipeline.db"))
    if UPDATE_SCREENSHOT:  # the README's picture: a busier pipeline, and no markup in its titles
        populate(days=60, per_day=12, now=NOW, hostile=False)
    else:
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
    assert page.evaluate("document.querySelectorAll('script').length") == 4  # none came from the data
    if not UPDATE_SCREENSHOT:
        text = page.evaluate("document.body.innerText")
        assert HOSTILE in text  # shown as text, in the top shorts' table and the module table
        legend = page.evaluate("Array.from(document.querySelectorAll('#chart-top-shorts .legendtext'))"
                               ".map(t => t.textContent)")
        assert HOSTILE in legend  # plotly shows the title as typed, not as markup
        ticks = page.evaluate("Array.from(document.querySelectorAll('#chart-errors .ytick')).map(t => t.textContent)")
        assert HOSTILE in ticks

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    width, height = png_size(shot.read_bytes())
    assert width == 1280 and height > 2500 and shot.stat().st_size > 100_000
    assert problems == []
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
    assert page.evaluate("typeof Plotly") == "object"  # the embedded library loaded, and drew nothing
    assert page.evaluate("document.querySelectorAll('.chart').length") == 0
    text = page.evaluate("document.body.innerText")
    assert "No runs yet" in text and "No videos discovered yet" in text and "No analytics yet" in text
    assert problems == []
    page.context.close()


def test_the_checks_catch_a_request_a_console_error_and_a_dialog(browser, tmp_path):
    """The harness itself: a page that fetches, logs an error and opens a dialog is caught on all three."""
    path = tmp_path / "leaky.html"
    path.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/pixel.png">'
                    '<script>console.error("boom"); alert("hi")</script>')
    page, problems = open_report(browser, path)
    page.wait_for_load_state("load")
    assert "console error: boom" in problems and "dialog: hi" in problems
    assert "routed request: http://127.0.0.1:9/pixel.png" in problems
    page.context.close()
