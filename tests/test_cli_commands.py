"""Every command of the command line run as a subprocess, as an operator runs it: its output, its
--json document, and its exit status (0 done, 1 refused or not found, 2 usage), on a SQLite file and
on PostgreSQL."""
import datetime
import json
import os
import re
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import CYCLE_START, make_clip, make_video

import pipeline_models as pm

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
T0 = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)
# the niches are staggered by 30 minutes
SPORTS_CYCLE = CYCLE_START + datetime.timedelta(minutes=30)


def pipeline(*argv, env=None, cwd=None):
    """`python -m pipeline_models ARGV` in a fresh process: (exit status, stdout, stderr)."""
    environment = {k: v for k, v in os.environ.items() if k != "PIPELINE_DB"}
    environment.update(env or {})
    done = subprocess.run([sys.executable, "-m", "pipeline_models", *map(str, argv)],
                          capture_output=True, text=True, encoding="utf-8", env=environment,
                          timeout=120, cwd=cwd)
    return done.returncode, done.stdout, done.stderr


def unwrapped(text):
    """A message as one line: the command wraps it at the output width."""
    return " ".join(text.split())


def run_all(commands):
    """Several commands at once (each is its own process): {command: (status, out, err)}."""
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(commands, pool.map(lambda argv: pipeline(*argv), commands)))


def is_postgres(target):
    return target.startswith("postgresql://")


def unbind():
    pm.db.obj.close()
    pm.db.initialize(None)


def state(target):
    """What a command that changes nothing must leave as it was: every row of every table, and a
    file's bytes."""
    raw = None if is_postgres(target) else open(target, "rb").read()
    pm.init_db(target, readonly=True)
    try:
        rows = {model.__name__: list(model.select().order_by(model._meta.primary_key).tuples())
                for model in pm.ALL_MODELS}
    finally:
        unbind()
    return raw, rows


def build(target):
    """A pipeline with one run of each kind, in the database `target`, unbound again:

    run 1, gaming's first cycle: uploaded (its long-form video yt-long, one short yt-one), three
    ranked clips of vid0-vid2, a script and audio; run 2, sports' first cycle: in review (review
    chat:2), three clips of sp0-sp2, a short, an error; run 3, gaming's second cycle: pending. vid3
    is a candidate not used yet.
    """
    pm.init_db(target)
    gaming = [make_video(f"vid{n}", title=f"Video {n}", channel_name=f"Creator {n}",
                         view_count=100 * n, viral_score=10.0 - n) for n in range(4)]
    sports = [make_video(f"sp{n}", niche="sports", title=f"Match {n}") for n in range(3)]
    pm.PipelineRun.schedule("gaming", CYCLE_START)
    pm.PipelineRun.schedule("sports", SPORTS_CYCLE)
    pm.PipelineRun.schedule("gaming", CYCLE_START + datetime.timedelta(hours=6))
    uploaded = pm.PipelineRun.claim_next("w1")
    with uploaded.fenced():
        clips = [make_clip(uploaded, video, rank=rank, content_id_risk=risk,
                           extraction_method="most_replayed")
                 for rank, (video, risk) in enumerate(zip(gaming, ["low", "high", "medium"]), 1)]
        pm.Script.create(pipeline_run=uploaded, full_script_json={"lines": ["hi"]},
                         total_char_count=2, estimated_duration_seconds=1.5,
                         llm_model_used="gpt-4o", cost_usd=0.25)
        pm.TTSAudio.create(pipeline_run=uploaded, engine_used="piper")
        short = pm.Short.create(pipeline_run=uploaded, clip=clips[0], title="Short one")
    for video in gaming[:3] + sports:
        pm.mark_video_processed(video.video_id, pm.Processed.used)
    pm.ReviewLog.request(uploaded, message_id="chat:1")
    pm.ReviewLog.answer("chat:1", "approve", reviewer="@alice")
    uploaded.refresh()
    uploaded.start_upload()
    uploaded.mark_uploaded("yt-long")
    short.start_upload()
    short.mark_uploaded("yt-one")
    waiting = pm.PipelineRun.claim_next("w2")
    with waiting.fenced():
        sports_clips = [make_clip(waiting, video, rank=rank) for rank,
                        video in enumerate(sports, 1)]
        pm.Short.create(pipeline_run=waiting, clip=sports_clips[0], title="Short two")
    try:
        raise RuntimeError("ffmpeg exited 1\nmoov atom not found")
    except RuntimeError as exc:
        pm.ErrorLog.record(exc, "render", pipeline_run=waiting)
    pm.ReviewLog.request(waiting, message_id="chat:2")
    pm.Analytics.record_many([dict(youtube_video_id="yt-one",
                                   measured_at=T0 + datetime.timedelta(hours=h),
                                   view_count=10 * h) for h in range(3)])
    pm.Analytics.record("yt-long", view_count=500, measured_at=T0)
    pm.ConfigOverride.set("render.fps", 60)
    unbind()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def dbfile(request, tmp_path_factory):
    """The pipeline build() makes, on a SQLite file or a PostgreSQL database; tests only read it
    (see copy)."""
    if request.param == "sqlite":
        target = str(tmp_path_factory.mktemp("cli") / "p.db")
    else:
        target = request.getfixturevalue("pg_server").new_database()
    build(target)
    return target


@pytest.fixture
def copy(dbfile, tmp_path, request):
    """A copy of dbfile's database for a test to change: the file copied, or a PostgreSQL database
    made from it."""
    if not is_postgres(dbfile):
        path = tmp_path / "copy.db"
        path.write_bytes(open(dbfile, "rb").read())
        return str(path)
    server = request.getfixturevalue("pg_server")
    name = "pm_test_" + uuid.uuid4().hex[:12]
    server.admin.execute_sql(f'CREATE DATABASE "{name}" TEMPLATE "{urlsplit(dbfile).path[1:]}"')
    server.created.append(name)
    return urlunsplit(urlsplit(server.url)._replace(path="/" + name))


def test_help_names_the_database_option_and_the_variable():
    status, out, _ = pipeline("--help")
    assert status == 0 and "--db" in out and "PIPELINE_DB" in out and "exit status" in out


def test_version():
    status, out, _ = pipeline("--version")
    assert status == 0 and out == f"pipeline-models {pm.__version__}\n"


def test_db_before_or_after_the_command_and_from_the_environment(dbfile):
    before = pipeline("--db", dbfile, "status")
    after = pipeline("status", "--db", dbfile)
    from_env = pipeline("status", env={"PIPELINE_DB": dbfile})
    assert before == after == from_env and before[0] == 0 and "uploaded" in before[1]


READ_COMMANDS = [("status",), ("runs",), ("videos",), ("shorts",), ("reviews",), ("errors",),
                 ("analytics",), ("config", "list"), ("run", "show", "1"), ("run", "show", "2"),
                 ("errors", "show", "1"), ("runs", "--niche", "gaming"),
                 ("videos", "--niche", "sports"), ("videos", "--processed", "0"), ("queue",),
                 ("stats", "--since", "2000-01-01T00:00"),
                 ("digest", "--since", "2000-01-01T00:00"),
                 ("run", "summary", "1"), ("run", "summary", "2")]


@pytest.fixture(scope="module")
def documents(dbfile):
    """Each read command's --json document, parsed."""
    results = run_all([(*command, "--json", "--db", dbfile) for command in READ_COMMANDS])
    parsed = {}
    for argv, (status, out, err) in results.items():
        assert status == 0 and err == "", (argv, err)
        parsed[" ".join(argv[:-3])] = json.loads(out)  # exactly one JSON document
    return parsed


def timestamps(document):
    """Every value of a timestamp key (ending in _at, a run's cycle and not_before), anywhere in
    `document`."""
    if isinstance(document, dict):
        for key, value in document.items():
            if ((key.endswith("_at") or key in ("cycle_start", "cycle_end", "not_before"))
                    and value is not None):
                yield value
            yield from timestamps(value)
    elif isinstance(document, list):
        for value in document:
            yield from timestamps(value)


def test_every_timestamp_in_json_is_iso_8601_utc(documents):
    found = [value for document in documents.values() for value in timestamps(document)]
    assert len(found) > 60 and all(ISO_UTC.match(value) for value in found), found
    assert documents["runs"][-1]["cycle_start"] == "2026-01-01T00:30:00+00:00"


def test_json_rows_are_keyed_by_the_schema_column_names(documents):
    for command, model in (("runs", pm.PipelineRun), ("videos", pm.DiscoveredVideo),
                           ("shorts", pm.Short), ("reviews", pm.ReviewLog),
                           ("analytics", pm.Analytics), ("config list", pm.ConfigOverride)):
        columns = [field.column_name for field in model._meta.sorted_fields]
        assert documents[command] and all(list(row) == columns
                                          for row in documents[command]), command
    # errors are bot.errors() rows: the columns without the stack trace (errors show has it), and
    # the run's niche.
    assert list(documents["errors"][0]) == ["id", "occurred_at", "module", "error_type",
                                            "error_message", "pipeline_run_id", "niche", "resolved"]
    # a foreign key by its column name
    assert "discovered_video_id" in documents["run show 1"]["clips"][0]


def test_status_json_is_bot_status(documents):
    document = documents["status"]
    assert (document["max_concurrent_pipelines"], document["running"], document["paused"]) == (
        2, 0, [])
    assert document["niches"] == {
        "gaming": {"paused": False, "running": [],
                   "runs": {"pending": 1, "running": 0, "review": 0, "approved": 0, "uploaded": 1,
                            "failed": 0, "rejected": 0},
                   "next": {"id": 3, "cycle_start": "2026-01-01T06:30:00+00:00", "not_before": None,
                            "due": True}},
        "sports": {"paused": False, "running": [],
                   "runs": {"pending": 0, "running": 0, "review": 1, "approved": 0, "uploaded": 0,
                            "failed": 0, "rejected": 0},
                   "next": None}}


def test_bot_commands_json_are_the_bot_queries(documents):
    assert documents["stats --since 2000-01-01T00:00"] == {
        "since": "2000-01-01T00:00:00+00:00", "niches": {
        "gaming": {"uploads": {"long-form": 1, "shorts": 1},
                   "views": {"long-form": 500, "shorts": 20}, "errors": 0},
        "sports": {"uploads": {"long-form": 0, "shorts": 0}, "views": {"long-form": 0, "shorts": 0},
                   "errors": 1}}}
    digest = documents["digest --since 2000-01-01T00:00"]
    assert digest["since"] == "2000-01-01T00:00:00+00:00" and ISO_UTC.match(digest.pop("until"))
    assert digest == {
        "since": "2000-01-01T00:00:00+00:00",
        "runs_uploaded": {"total": 1, "niches": {"gaming": 1}},
        "runs_failed": {"total": 0, "niches": {}},
        "videos_uploaded": {"long-form": {"total": 1, "niches": {"gaming": 1}},
                            "shorts": {"total": 1, "niches": {"gaming": 1}}},
        "pending_review": {"awaiting": 1, "held": 0},
        "top_video": {"youtube_video_id": "yt-long", "kind": "long-form", "niche": "gaming",
                      "run_id": 1, "views": 500}}
    queued = documents["queue"]
    assert (queued["awaiting"], queued["held"]) == (1, 0)
    assert [(r["review_id"], r["message_id"], r["run_id"], r["niche"], r["cycle_start"], r["held"],
             r["reminded"])
            for r in queued["reviews"]] == [(2, "chat:2", 2, "sports", "2026-01-01T01:00:00+00:00",
                                             False, False)]
    assert queued["reviews"][0]["age_seconds"] >= 0
    summary = documents["run summary 1"]
    assert [(c["rank"], c["video_id"], c["title"], c["creator"], c["seconds"], c["content_id_risk"])
            for c in summary["clips"]] == [(1, "vid0", "Video 0", "Creator 0", 18.0, "low"),
                                          (2, "vid1", "Video 1", "Creator 1", 18.0, "high"),
                                          (3, "vid2", "Video 2", "Creator 2", 18.0, "medium")]
    assert summary["content_id_flags"] == [{"rank": 2, "of": "clip", "video_id": "vid1",
                                            "risk": "high"},
                                           {"rank": 3, "of": "clip", "video_id": "vid2",
                                            "risk": "medium"}]
    assert (summary["niche"], summary["cycle_start"], summary["script_preview"]) == (
        "gaming", "2026-01-01T00:30:00+00:00", "hi")
    assert [c["title"] for c in documents["run summary 2"]["clips"]] == [
        "Match 0", "Match 1", "Match 2"]
    assert (documents["run summary 2"]["content_id_flags"],
            documents["run summary 2"]["script_preview"]) == ([], None)


def test_listings_json(documents):
    runs = documents["runs"]
    assert [r["id"] for r in runs] == [3, 2, 1]  # the latest cycle first
    assert [(r["niche"], r["status"], r["retry_count"], r["youtube_video_id"]) for r in runs] == [
        ("gaming", "pending", 0, None), ("sports", "review", 0, None),
        ("gaming", "uploaded", 0, "yt-long")]
    assert [r["id"] for r in documents["runs --niche gaming"]] == [3, 1]
    # processed as the pipeline stores it (an integer; the text listing names it).
    assert {v["video_id"]: (v["niche"], v["processed"]) for v in documents["videos"]} == {
        "vid0": ("gaming", 1), "vid1": ("gaming", 1), "vid2": ("gaming", 1), "vid3": ("gaming", 0),
        "sp0": ("sports", 1), "sp1": ("sports", 1), "sp2": ("sports", 1)}
    assert [v["video_id"] for v in documents["videos --niche sports"]] == ["sp2", "sp1", "sp0"]
    assert [v["video_id"] for v in documents["videos --processed 0"]] == ["vid3"]
    assert [(s["title"], s["status"], s["youtube_video_id"]) for s in documents["shorts"]] == [
        ("Short two", "review", None), ("Short one", "uploaded", "yt-one")]
    # Open reviews first, then the answered ones.
    assert [(r["message_id"], r["action"]) for r in documents["reviews"]] == [
        ("chat:2", None), ("chat:1", "approve")]
    assert [(a["youtube_video_id"], a["view_count"]) for a in documents["analytics"]] == [
        ("yt-long", 500), ("yt-one", 20)]
    assert documents["config list"] == [
        {"key": "render.fps", "value": 60,
         "updated_at": documents["config list"][0]["updated_at"], "updated_by": "system"}]
    [error] = documents["errors"]
    assert (error["error_type"], error["error_message"], error["pipeline_run_id"]) == (
        "RuntimeError", "ffmpeg exited 1\nmoov atom not found", 2)


def test_run_show_json_has_everything_of_the_run(documents):
    shown = documents["run show 1"]
    run = shown["run"]
    assert (run["id"], run["niche"], run["status"], run["youtube_video_id"]) == (
        1, "gaming", "uploaded", "yt-long")
    assert (run["cycle_start"], run["cycle_end"]) == ("2026-01-01T00:30:00+00:00",
                                                      "2026-01-01T06:30:00+00:00")
    assert run["youtube_url"].endswith("yt-long") and run["completed_at"] is not None
    assert [len(shown[part]) for part in ("clips", "scripts", "audio", "shorts", "reviews",
                                          "errors")] == [3, 1, 1, 1, 1, 0]
    # The clips by rank, each with the video it was cut from.
    assert [(c["rank_position"], c["content_id_risk"], c["video"]["video_id"],
             c["video"]["channel_name"])
            for c in shown["clips"]] == [(1, "low", "vid0", "Creator 0"),
                                         (2, "high", "vid1", "Creator 1"),
                                         (3, "medium", "vid2", "Creator 2")]
    assert all(c["discovered_video_id"] == c["video"]["id"] for c in shown["clips"])
    assert shown["clips"][0]["video"]["processed"] == 1 and shown["clips"][0]["dropped_at"] is None
    assert (shown["scripts"][0]["full_script_json"] == {"lines": ["hi"]}
            and shown["scripts"][0]["cost_usd"] == 0.25)
    assert (shown["reviews"][0]["action"] == "approve"
            and shown["shorts"][0]["youtube_url"].endswith("yt-one"))
    assert shown["shorts"][0]["clip_id"] == shown["clips"][0]["id"]
    timings = shown["timings"]
    at = {name: datetime.datetime.fromisoformat(run[name])
          for name in ("created_at", "started_at", "completed_at")}
    assert timings == {  # to the millisecond: queued until claimed, then claimed until uploaded
        "queued_seconds": round((at["started_at"] - at["created_at"]).total_seconds(), 3),
        "running_seconds": round((at["completed_at"] - at["started_at"]).total_seconds(), 3),
        "total_seconds": round((at["completed_at"] - at["created_at"]).total_seconds(), 3)}
    assert all(value >= 0 for value in timings.values()) and timings["running_seconds"] > 0
    waiting = documents["run show 2"]
    assert waiting["run"]["status"] == "review" and waiting["timings"]["total_seconds"] is None
    assert [c["video"]["video_id"] for c in waiting["clips"]] == ["sp0", "sp1", "sp2"]
    assert [e["error_type"] for e in waiting["errors"]] == ["RuntimeError"]


def test_errors_show_json_has_the_stack_trace(documents):
    error = documents["errors show 1"]
    assert error["error_message"] == "ffmpeg exited 1\nmoov atom not found"
    assert error["stack_trace"].startswith("Traceback") and "RuntimeError" in error["stack_trace"]


def test_read_commands_as_text(dbfile):
    results = run_all([(*command, "--db", dbfile) for command in READ_COMMANDS])
    out = {" ".join(argv[:-2]): result[1] for argv, result in results.items()}
    assert all(result[0] == 0 and result[2] == "" for result in results.values())
    assert out["runs"].splitlines()[0].split()[:4] == ["id", "niche", "cycle_start", "(UTC)"]
    assert out["runs"].splitlines()[3].split() == ["1", "gaming", "2026-01-01", "00:30", "uploaded",
                                                   "review", "w1", "0", "yt-long", "-"]
    assert [line.split()[0] for line in out["runs --niche gaming"].splitlines()[1:]] == ["3", "1"]
    videos = {line.split()[1]: line.split() for line in out["videos"].splitlines()[1:]}
    assert videos["vid0"][2:6] == ["gaming", "10.00", "used", "unknown"]
    assert videos["vid3"][2:6] == ["gaming", "7.00", "pending", "unknown"]
    assert videos["vid1"][-3:] == ["Creator", "1", "Video", "1"][-3:]
    assert [line.split()[1] for line in out["videos --processed 0"].splitlines()[1:]] == ["vid3"]
    assert "Short one" in out["shorts"] and "yt-one" in out["shorts"]
    assert out["reviews"].index("chat:2") < out["reviews"].index("chat:1")  # open first
    assert "ffmpeg exited 1 …" in out["errors"]  # one line per error
    page = out["run show 1"]
    assert page.startswith("run 1: uploaded, gaming, the cycle 2026-01-01 00:30 to 2026-01-01 "
                           "06:30 UTC\n")
    assert "  youtube_video_id        yt-long\n" in page and "  retry_count             0\n" in page
    clips = page.split("\nclips:\n")[1].split("\n\n")[0].splitlines()
    assert clips[0].split() == ["rank_position", "id", "video_id", "title", "channel_name",
                                "start_time_seconds", "clip_duration_seconds", "content_id_risk",
                                "dropped_at", "(UTC)"]
    assert [line.split() for line in clips[1:]] == [
        [str(rank), str(rank), f"vid{rank - 1}", "Video", str(rank - 1), "Creator", str(rank - 1),
         "10.00", "18.00", risk, "-"] for rank, risk in ((1, "low"), (2, "high"), (3, "medium"))]
    assert "scripts:" in page and "gpt-4o" in page and "errors: none" in page
    assert "  error_message           -\n" in page
    assert "\nerrors:\n" in out["run show 2"] and "ffmpeg exited 1 …" in out["run show 2"]
    assert "message:\nffmpeg exited 1\nmoov atom not found" in out["errors show 1"]
    assert [line.split()[:3] for line in out["status"].splitlines()[1:3]] == [
        ["gaming", "no", "1"], ["sports", "no", "0"]]
    assert out["status"].endswith("\n0 of at most 2 runs running; paused: none\n")
    assert out["stats --since 2000-01-01T00:00"].splitlines()[2:] == [
        "gaming          1       1              500            20       0",
        "sports          0       0                0             0       1"]
    assert out["queue"].splitlines()[1].split()[:5] == ["2", "2", "sports", "2026-01-01", "01:00"]
    assert out["queue"].endswith("\n\n1 awaiting an answer, 0 held\n")
    assert out["digest --since 2000-01-01T00:00"].splitlines()[1:] == [
        "runs uploaded: 1 (gaming 1)", "runs failed: 0", "long-form videos uploaded: 1 (gaming 1)",
        "shorts uploaded: 1 (gaming 1)", "pending review: 1 awaiting an answer, 0 held",
        "top video: yt-long (long-form, gaming, run 1): 500 views"]
    summary = out["run summary 1"].splitlines()
    assert summary[0] == ("run 1 (gaming, uploaded): the cycle 2026-01-01 00:30 to "
                          "2026-01-01 06:30 UTC")
    assert summary[4].split() == ["1", "vid0", "Video", "0", "Creator", "0", "18.00", "10.00",
                                  "28.00"]
    assert summary[-2:] == ["content-ID flags: rank 2 clip vid1 high; rank 3 clip vid2 medium",
                            "script: hi"]
    assert "stack trace:\nTraceback (most recent call last):" in out["errors show 1"]


@pytest.mark.parametrize("argv, code, message", [
    (("run", "show", "99"), 1, "no run with id 99"),
    (("errors", "show", "99"), 1, "no error with id 99"),
    (("retry", "99"), 1, "no run with id 99"),
    (("resolve", "99"), 1, "no error with id 99"),
    (("review", "answer", "chat:99", "approve"), 1, "no review with message id or id 'chat:99'"),
    (("config", "get", "nope"), 1, "no config override named 'nope'"),
    (("retry", "3"), 1, "run 3 is already pending: only a failed run is retried"),
    (("retry", "1"), 1, "run 1 cannot go from uploaded to pending: only a failed run is retried"),
    (("config", "set", "k", '{"a":'), 1, "VALUE '{\"a\":' is not JSON"),
    (("review", "answer", "chat:2", "maybe"), 2, "argument action: invalid choice: 'maybe'"),
    # the old answer
    (("review", "answer", "chat:2", "edit"), 2, "argument action: invalid choice: 'edit'"),
    (("review", "answer", "chat:2", "skip"), 2,
     "skip needs the ranks of the clips to drop, e.g. pipeline-models "
     "review answer chat:2 skip 4,7"),
    (("review", "answer", "chat:2", "skip", "9"), 1,
     "run 2 has no clip ranked 9 (its ranks: 1, 2, 3)"),
    (("review", "answer", "chat:2", "skip", "1,2,3"), 1,
     "would drop every clip of run 2; reject it instead"),
    (("review", "answer", "chat:2", "skip", "two"), 1, "'two' in 'skip two' is not a rank"),
    (("review", "answer", "chat:2", "hold", "later", "--detail", "later"), 2,
     "give the answer's detail once"),
    (("review", "answer", "chat:1", "reject"), 1,
     "review 1 was already answered approve by @alice; refusing reject"),
    (("run", "show"), 2, "the following arguments are required: RUN_ID"),
    (("run", "delete", "1"), 2, "invalid choice: 'delete'"),
    (("videos", "--processed", "lost"), 1,
     "'lost' is not one of: pending (0), used (1), skipped (2), rejected (3)"),
    (("videos", "--status", "new"), 2, "unrecognized arguments: --status new"),
    (("runs", "--status", "published"), 1,
     "PipelineRun.status: 'published' is not one of: pending, running, review"),
    (("shorts", "--limit", "0"), 2,
     "argument --limit: the value must be a whole number, 1 or more, not 0"),
    (("errors", "show", "x"), 2, "argument ERROR_ID: invalid int value: 'x'"),
    (("report", "--top", "0"), 2,
     "argument --top: the value must be a whole number from 1 to 100, not 0"),
    # An empty filter is refused like an unknown one, not read as no filter at all.
    (("runs", "--status", ""), 1, "PipelineRun.status: '' is not one of: pending, running"),
    (("videos", "--processed", ""), 1, "DiscoveredVideo.processed: '' is not one of"),
    (("shorts", "--status", ""), 1, "Short.status: '' is not one of"),
    (("runs", "--niche", ""), 1, "--niche is empty: give a niche's name, e.g. gaming"),
    (("videos", "--niche", ""), 1, "--niche is empty: give a niche's name, e.g. gaming"),
    (("errors", "--module", ""), 1, "--module is empty: give a module's name"),
    # The listing's options mean nothing to one error.
    (("errors", "--all", "show", "1"), 2, "errors show takes no --all"),
    (("errors", "--limit", "5", "show", "1"), 2, "errors show takes no --limit"),
    (("errors", "--module", "render", "show", "1"), 2, "errors show takes no --module"),
    (("review", "answer", "chat:2", "approve", "--by-review-id"), 1, "no review with id 'chat:2'"),
    (("review", "answer", "2", "approve", "--by-message-id"), 1, "no review with message id '2'"),
    (("review", "answer", "2", "approve", "--by-message-id", "--by-review-id"), 2,
     "not allowed with argument"),
])
def test_refusals_exit_as_documented_and_change_nothing(dbfile, argv, code, message):
    before = state(dbfile)
    status, out, err = pipeline(*argv, "--db", dbfile)
    assert ((status, out) == (code, "") and err.startswith("pipeline-models: error: ")
            and message in err), err
    assert err.count("\n") == 1 and state(dbfile) == before


def test_config_set_json_or_string(copy):
    assert pipeline("config", "set", "voices", '["alloy", "echo"]', "--db", copy)[:2] == (
        0, 'voices = ["alloy", "echo"]\n')
    assert pipeline("config", "set", "greeting", '{"a":', "--string", "--db", copy)[:2] == (
        0, 'greeting = "{\\"a\\":"\n')
    assert pipeline("config", "get", "voices", "--db", copy)[:2] == (0, '["alloy", "echo"]\n')
    assert pipeline("config", "get", "greeting", "--db", copy)[:2] == (0, '"{\\"a\\":"\n')


def failed_run_and_error(target, reason, exc, module):
    """In the database `target`: a run failed for good with `reason` after a retry, and `exc`
    recorded against it by `module`."""
    pm.init_db(target)
    pm.PipelineRun.schedule("gaming", CYCLE_START)
    run = pm.PipelineRun.claim_next("w")
    run.fail("a first failure")
    run = pm.PipelineRun.claim_next("w", now=pm.utcnow() + datetime.timedelta(minutes=1))
    run.fail(reason, retry=False)
    assert run.retry_count == 1 and run.status is pm.RunStatus.failed
    error = pm.ErrorLog.record(exc, module, pipeline_run=run)
    unbind()
    return run, error


def test_no_message_prints_a_password_that_the_listings_hide(fresh_target):
    run, error = failed_run_and_error(fresh_target, "RuntimeError: could not connect to "
                                      "postgresql://u:secret@127.0.0.1:1/x (refused)",
                                      RuntimeError("boom"), "postgresql://u:secret@db/x")
    path = fresh_target
    retried = pipeline("retry", run.id, "--db", path)
    assert (retried[0], unwrapped(retried[1])) == (
        0, f"run {run.id} queued again, its retries counted afresh (it failed: RuntimeError: "
           "could not connect to postgresql://u:***@127.0.0.1:1/x (refused))")
    resolved = pipeline("resolve", error.id, "--db", path)
    assert resolved[:2] == (0,
                            f"error {error.id} (postgresql://u:***@db/x: RuntimeError) resolved\n")
    url = "postgresql://u:secret@127.0.0.1:1/x"
    dsn = '{"dsn": "host=h password=secret", "url": "postgresql://u:secret@h/x"}'
    outputs = [pipeline("config", "set", "url", url, "--string", "--db", path),
               pipeline("config", "set", "dsn", dsn, "--db", path),
               pipeline("config", "get", "url", "--db", path),
               pipeline("config", "get", "dsn", "--db", path),
               pipeline("config", "list", "--db", path),
               pipeline("config", "list", "--json", "--db", path),
               pipeline("runs", "--db", path), pipeline("runs", "--json", "--db", path),
               pipeline("run", "show", run.id, "--db", path),
               pipeline("errors", "--all", "--db", path)]
    assert all(status == 0 and "secret" not in out + err for status, out, err in outputs), outputs
    assert outputs[0][1] == 'url = "postgresql://u:***@127.0.0.1:1/x"\n'
    assert outputs[2][1] == '"postgresql://u:***@127.0.0.1:1/x"\n'
    # Redacted string by string, so the JSON stays JSON (redacting its text would eat the closing
    # quote).
    assert json.loads(outputs[3][1]) == {"dsn": "host=h password=***",
                                         "url": "postgresql://u:***@h/x"}
    assert json.loads(outputs[1][1].split(" = ", 1)[1]) == json.loads(outputs[3][1])
    assert "u:***@127.0.0.1" in json.loads(outputs[7][1])[0]["error_message"]
    pm.init_db(path, readonly=True)
    # stored as given: only what is shown is redacted
    assert pm.ConfigOverride.value_of("url") == url
    assert "u:secret@" in pm.PipelineRun.get_by_id(run.id).error_message


def test_pause_and_resume_a_niche(copy):
    assert pipeline("pause", "gaming", "--db", copy)[:2] == (
        0, "gaming paused: its runs are not claimed until `resume gaming`; running ones finish\n")
    assert pipeline("pause", "gaming", "--db", copy)[:2] == (
        0, "gaming is already paused: nothing changed\n")
    status, out, _ = pipeline("pause", "cooking", "--by", "@ops", "--db", copy)
    assert (status, unwrapped(out)) == (
        0,
        "cooking paused: its runs are not claimed until `resume cooking`; running ones finish; no "
        "run or video has the niche cooking yet")
    document = json.loads(pipeline("status", "--json", "--db", copy)[1])
    assert (document["paused"] == ["cooking", "gaming"]
            and document["niches"]["gaming"]["paused"] is True)
    overrides = {c["key"]: (c["value"], c["updated_by"])
                 for c in json.loads(pipeline("config", "list", "--json", "--db", copy)[1])}
    assert (overrides["channels.gaming.paused"] == (True, "cli")
            and overrides["channels.cooking.paused"] == (True, "@ops"))
    pm.init_db(copy)
    try:
        # gaming's pending run 3 is not claimed while it is paused
        assert pm.PipelineRun.claim_next("w9") is None
    finally:
        unbind()
    assert pipeline("resume", "gaming", "--db", copy)[:2] == (
        0, "gaming resumed: its runs are claimed again\n")
    assert pipeline("resume", "gaming", "--db", copy)[:2] == (
        0, "gaming is not paused: nothing changed\n")
    assert json.loads(pipeline("status", "--json", "--db", copy)[1])["paused"] == ["cooking"]
    pm.init_db(copy)
    try:
        assert pm.PipelineRun.claim_next("w9").id == 3
    finally:
        unbind()


def test_bot_commands_refuse_bad_input(dbfile):
    status, out, err = pipeline("stats", "--since", "yesterday", "--db", dbfile)
    assert (status, out) == (2, "") and (
        "argument --since: since: 'yesterday' is neither a time ago (30m, 6h, 7d)") in err
    status, out, err = pipeline("run", "summary", "99", "--db", dbfile)
    assert (status, out, err) == (1, "", "pipeline-models: error: no run with id 99\n")


def test_report_to_stdout(tmp_path, dbfile):
    status, out, err = pipeline("report", "-o", "-", "--db", dbfile, cwd=tmp_path)
    assert (status == 0 and err == "" and out.lower().startswith("<!doctype html>")
            and out.rstrip().endswith("</html>"))
    assert "yt-one" in out and os.listdir(tmp_path) == []  # no file named "-"


def test_review_answers_skip_hold_and_repeats(copy):
    assert pipeline("review", "answer", "chat:2", "hold", "--reviewer", "@bo", "--db",
                    copy)[:2] == (
        0, "review 2 answered hold: run 2 stays in review, to be answered again\n")
    assert pipeline("review", "answer", "chat:2", "hold", "--db", copy)[:2] == (
        0, "review 2 was already answered hold: nothing changed (run 2 is in review)\n")
    # A held review is still open: listed first, and answered later.
    status, out, _ = pipeline("reviews", "--open", "--db", copy)
    assert status == 0 and [line.split()[:4] for line in out.splitlines()[1:]] == [
        ["2", "2", "chat:2", "held"]]
    # once, among the open ones, then the answered
    status, out, _ = pipeline("reviews", "--db", copy)
    assert status == 0 and [line.split()[:4] for line in out.splitlines()[1:]] == [
        ["2", "2", "chat:2", "held"], ["1", "1", "chat:1", "approve"]]
    queued = json.loads(pipeline("queue", "--json", "--db", copy)[1])
    assert (queued["awaiting"], queued["held"],
            [(r["review_id"], r["held"], r["auto_held"])
             for r in queued["reviews"]]) == (0, 1, [(2, True, False)])
    status, out, _ = pipeline("review", "answer", "chat:2", "skip", "2", "--reviewer", "@bo",
                              "--db", copy)
    assert (status, out) == (0, "review 2 answered skip 2: run 2 is now pending at stage render\n")
    # The same answer again (by the review's id, the detail as the bot stores it) is a repeat:
    # nothing changes.
    assert pipeline("review", "answer", "2", "skip", "--detail", "skip 2", "--db", copy)[:2] == (
        0, "review 2 was already answered skip 2: nothing changed (run 2 is pending)\n")
    status, _, err = pipeline("review", "answer", "2", "reject", "--db", copy)
    assert status == 1 and "review 2 was already answered skip by @bo; refusing reject" in err
    pm.init_db(copy, readonly=True)
    try:
        review = pm.ReviewLog.get_by_id(2)
        assert (review.action, review.response_detail, review.reviewer) == (
            pm.ReviewAction.skip, "skip 2", "@bo")
        run = pm.PipelineRun.get_by_id(2)
        assert (run.status, run.current_stage) == (pm.RunStatus.pending, "render")
        clips = {c.discovered_video.video_id: (c.rank_position, c.dropped_at is not None)
                 for c in run.clips}
        # the rest ranked 1..N again
        assert clips == {"sp0": (1, False), "sp1": (2, True), "sp2": (2, False)}
        assert (pm.DiscoveredVideo.get(pm.DiscoveredVideo.video_id == "sp1").processed
                is pm.Processed.rejected)
        assert pm.Short.get(pm.Short.title == "Short two").status is pm.ShortStatus.rejected
    finally:
        unbind()
    # run show: the dropped clip after the others, marked.
    status, out, _ = pipeline("run", "show", "2", "--db", copy)
    rows = [line.split() for line in out.split("\nclips:\n")[1].split("\n\n")[0].splitlines()[1:]]
    assert status == 0 and [(row[0], row[2], row[-1] != "-") for row in rows] == [
        ("1", "sp0", False), ("2", "sp2", False), ("2", "sp1", True)]
    status, out, _ = pipeline("videos", "--processed", "rejected", "--db", copy)
    assert status == 0 and [line.split()[1] for line in out.splitlines()[1:]] == ["sp1"]


@pytest.mark.parametrize("action, status, stage", [("approve", "approved", None),
                                                   ("reject", "rejected", None),
                                                   ("redo_script", "pending", "script")])
def test_review_answer_moves_the_run(copy, action, status, stage):
    said = f"run 2 is now {status}" + (f" at stage {stage}" if stage else "")
    assert pipeline("review", "answer", "2", action, "--db", copy)[:2] == (
        0, f"review 2 answered {action}: {said}\n")
    pm.init_db(copy, readonly=True)
    try:
        run = pm.PipelineRun.get_by_id(2)
        assert run.status == status and (stage is None or run.current_stage == stage)
        assert pm.ReviewLog.get_by_id(2).action == action
    finally:
        unbind()


def test_review_key_that_is_both_a_message_id_and_another_reviews_id_is_refused(fresh_target):
    pm.init_db(fresh_target)
    for n in range(2):
        pm.PipelineRun.schedule(f"niche{n}", CYCLE_START)
        pm.ReviewLog.request(pm.PipelineRun.claim_next("w", niche=f"niche{n}"),
                             message_id="1" if n else "m")
    unbind()
    path = fresh_target
    status, _, err = pipeline("review", "answer", "1", "approve", "--db", path)
    assert status == 1 and "'1' is the message id of review 2 and the id of review 1" in err
    assert "say which with --by-message-id or --by-review-id" in err
    pm.init_db(path, readonly=True)
    assert pm.ReviewLog.select().where(pm.ReviewLog.action.is_null(False)).count() == 0
    unbind()
    # Following that advice answers the one meant, each way.
    assert pipeline("review", "answer", "1", "reject", "--by-message-id", "--db", path)[:2] == (
        0, "review 2 answered reject: run 2 is now rejected\n")
    assert pipeline("review", "answer", "1", "approve", "--by-review-id", "--db", path)[:2] == (
        0, "review 1 answered approve: run 1 is now approved\n")


def test_review_usage_line_can_be_copied(copy):
    status, out, _ = pipeline("review", "answer", "--help")
    usage = " ".join(out.split("\n\n")[0].split())  # argparse's own, wrapped
    assert status == 0 and usage == (
        "usage: pipeline-models review answer [-h] [--db TARGET] [--debug] "
        "[--by-message-id | --by-review-id] [--detail TEXT] [--reviewer NAME] MESSAGE_ID|REVIEW_ID "
        "{approve,reject,hold,skip,redo_script} [DETAIL ...]"), usage
    # the command as the usage line spells it, filled in
    words = usage.split()[1:4] + ["chat:2", "skip", "1,3"]
    assert pipeline(*words[1:], "--db", copy)[:2] == (
        0, "review 2 answered skip 1,3: run 2 is now pending at stage render\n")


def test_errors_help_names_one_metavar_for_limit():
    status, out, _ = pipeline("errors", "--help")
    assert status == 0 and "[--limit N]" in out and "--limit N " in out and "LIMIT" not in out


def test_listing_help_names_the_new_vocabulary():
    runs, videos, shorts = (pipeline(command, "--help")[1]
                            for command in ("runs", "videos", "shorts"))
    assert ("pending, running, review, approved, uploaded, failed, rejected"
            in " ".join(runs.split()))
    assert "--niche NICHE" in runs and "--niche NICHE" in videos and "--niche" not in shorts
    assert "pending (0), used (1), skipped (2), rejected (3)" in " ".join(videos.split())
    assert "pending, review, uploaded, failed, rejected" in " ".join(shorts.split())


def test_report_writes_one_html_file_and_changes_nothing(tmp_path, dbfile):
    before = state(dbfile)
    status, out, err = pipeline("report", "-o", tmp_path / "r.html", "--db", dbfile)
    assert status == 0 and err == "" and out.startswith(f"wrote {tmp_path / 'r.html'}: 3 runs, 1 "
                                                        "uploaded, ")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert html.lower().startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "yt-one" in html and state(dbfile) == before


def test_report_without_the_extra_names_it(tmp_path, dbfile):
    shim = tmp_path / "shim" / "plotly"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('plotly is not installed here')\n")
    status, out, err = pipeline("report", "-o", tmp_path / "r.html", "--db", dbfile,
                                env={"PYTHONPATH": str(shim.parent)})
    assert (status, out) == (1, "") and "install the 'report' extra" in err and ".[report]" in err
    assert not (tmp_path / "r.html").exists()


def test_report_of_an_empty_database_says_so(tmp_path, fresh_target):
    assert pipeline("init", "--db", fresh_target)[0] == 0
    status, out, _ = pipeline("report", "-o", tmp_path / "r.html", "--db", fresh_target)
    assert status == 0 and out.startswith(f"wrote {tmp_path / 'r.html'}: 0 runs, 0 uploaded")
    assert "no runs yet" in (tmp_path / "r.html").read_text(encoding="utf-8").lower()


def test_write_commands_as_an_operator_runs_them(fresh_target):
    path = fresh_target
    status, out, _ = pipeline("init", "--db", path)
    assert status == 0 and "applied 0001_original_tables" in unwrapped(out)
    assert unwrapped(out).endswith(", 0007_pipeline_tables, 0008_cycle")
    migrated = unwrapped(pipeline("migrate", "--db", path)[1])
    assert migrated.endswith(": schema up to date, nothing to apply")
    run, error = failed_run_and_error(path, "render crashed", RuntimeError("quota"), "uploader")
    assert pipeline("retry", run.id, "--db", path)[:2] == (
        0, f"run {run.id} queued again, its retries counted afresh (it failed: render crashed)\n")
    assert pipeline("resolve", error.id, "--db", path)[:2] == (
        0, f"error {error.id} (uploader: RuntimeError) resolved\n")
    assert pipeline("config", "set", "render.fps", "60", "--by", "ops", "--db", path)[:2] == (
        0, "render.fps = 60\n")
    pm.init_db(path, readonly=True)
    run = pm.PipelineRun.get_by_id(run.id)
    assert (run.status, run.retry_count, run.not_before) == (pm.RunStatus.pending, 0, None)
    assert pm.ErrorLog.get_by_id(error.id).resolved
    assert pm.ConfigOverride.value_of("render.fps") == 60
    assert pm.ConfigOverride.get_by_id("render.fps").updated_by == "ops"


def test_demo_as_a_subprocess(tmp_path):
    status, out, err = pipeline("demo", "--db", tmp_path / "d.db")
    assert status == 0 and out.rstrip().splitlines()[-1].split()[:2] == [
        "errors", "unresolved"], err
    # Its history is coherent: nothing in the future, nothing before what caused it.
    pm.init_db(tmp_path / "d.db", readonly=True)
    now = pm.utcnow()
    for model in pm.ALL_MODELS:
        for field in model._meta.sorted_fields:
            if (isinstance(field, pm.fields.UTCDateTimeField)
                    and field.name not in ("cycle_start", "cycle_end")):
                latest = (model.select(field).order_by(field.desc())
                          .where(field.is_null(False)).first())
                assert latest is None or getattr(latest, field.name) <= now, (
                    model.__name__, field.name)
    uploaded = list(pm.PipelineRun.select().where(pm.PipelineRun.status == pm.RunStatus.uploaded))
    assert uploaded
    for run in uploaded:
        ranks = sorted(c.rank_position for c in run.clips if c.dropped_at is None)
        assert ranks == list(range(1, len(ranks) + 1)) and run.youtube_video_id
        review = run.reviews.order_by(pm.ReviewLog.sent_at.desc()).first()
        assert run.created_at <= review.sent_at <= review.responded_at <= run.completed_at
        first = pm.Analytics.select().where(pm.Analytics.youtube_video_id == run.youtube_video_id)
        assert all(snapshot.measured_at >= run.completed_at for snapshot in first)


def test_data_cannot_drive_the_terminal_in_any_output(fresh_target):
    path = fresh_target
    pm.init_db(path)
    video = make_video("vid", title="clear \x1b[2J title \u202ereversed",
                       channel_name="chan\x1b]0;x\x07nel")
    pm.PipelineRun.schedule("gam\x1bing", CYCLE_START)
    run = pm.PipelineRun.claim_next("w")
    with run.fenced():
        make_clip(run, video)
    run.fail("bad \x1b]0;title\x07 \u202e x", retry=False)
    error = pm.ErrorLog.record(RuntimeError("boom"), "mod\x1b[31m", pipeline_run=run)
    pm.ConfigOverride.set("evil", "\u202eevil\x7f")
    pm.PipelineRun.schedule("sports", CYCLE_START)
    pm.PipelineRun.claim_next("w\r\nx")
    unbind()
    outputs = [pipeline("retry", run.id, "--db", path), pipeline("resolve", error.id, "--db", path),
               pipeline("config", "set", "k\x1b[2J", "1", "--db", path),
               pipeline("config", "get", "evil", "--db", path),
               pipeline("videos", "--db", path), pipeline("videos", "--json", "--db", path),
               pipeline("run", "show", run.id, "--db", path), pipeline("runs", "--db", path),
               pipeline("run", "show", run.id + 1, "--db", path),
               pipeline("runs", "--niche", "gam\x1bing", "--db", path)]
    for status, out, err in outputs:
        assert status == 0 and err == "", err
        assert not any(ch in out for ch in "\x1b\x07\x7f\u202e\r"), out
    # Messages escape as the tables do (\x1b, not JSON's \u001b), and a value with a line break is
    # escaped in full, not cut at it; only a JSON value (config get, --json) keeps JSON's escapes.
    assert "(it failed: bad \\x1b]0;title\\x07 \\u202e x)" in outputs[0][1]
    assert outputs[1][1] == f"error {error.id} (mod\\x1b[31m: RuntimeError) resolved\n"
    assert outputs[2][1] == "k\\x1b[2J = 1\n"
    assert ("clear \\x1b[2J title \\u202ereversed" in outputs[4][1]
            and "chan\\x1b]0;x\\x07nel" in outputs[4][1])
    assert outputs[6][1].startswith(f"run {run.id}: pending, gam\\x1bing, the cycle ")
    assert ("clear \\x1b[2J title \\u202ereversed" in outputs[6][1]
            and "chan\\x1b]0;x\\x07nel" in outputs[6][1])
    assert " w\\r\\nx " in outputs[7][1] and "  worker                  w\\r\\nx\n" in outputs[8][1]
    assert [line.split()[:2] for line in outputs[9][1].splitlines()[1:]] == [
        [str(run.id), "gam\\x1bing"]]
    assert json.loads(outputs[3][1]) == "\u202eevil\x7f"  # escaped, and still the same JSON value
    titles = {v["video_id"]: (v["title"], v["channel_name"]) for v in json.loads(outputs[5][1])}
    assert titles["vid"] == ("clear \x1b[2J title \u202ereversed", "chan\x1b]0;x\x07nel")


def test_write_failures_are_one_line_and_exit_1(tmp_path, dbfile):
    status, _, err = pipeline("report", "-o", tmp_path / "no" / "r.html", "--db", dbfile)
    assert (status == 1 and f"there is no directory {tmp_path / 'no'}" in err
            and "unexpected" not in err)
    status, _, err = pipeline("report", "-o", tmp_path, "--db", dbfile)
    assert status == 1 and "is a directory: give a file" in err and os.listdir(tmp_path) == []
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "pipeline_models", "runs", "--db", dbfile],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == ("pipeline-models: error: cannot write the output: "
                           "No space left on device\n")


def test_resolving_twice_says_nothing_changed_and_blank_keys_are_refused(copy):
    assert pipeline("resolve", "1", "--db", copy)[1] == "error 1 (render: RuntimeError) resolved\n"
    assert pipeline("resolve", "1", "--db", copy)[:2] == (
        0, "error 1 (render: RuntimeError) was already resolved: nothing changed\n")
    status, _, err = pipeline("config", "set", " ", "1", "--db", copy)
    assert status == 1 and "ConfigOverride.key: give the setting a name, not ' '" in err
