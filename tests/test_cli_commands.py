"""Every command of the command line run as a subprocess, as an operator runs it: its output, its --json
document, and its exit status (0 done, 1 refused or not found, 2 usage)."""
import datetime
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import pipeline_models as pm

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
T0 = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)


def pipeline(*argv, env=None, cwd=None):
    """`python -m pipeline_models ARGV` in a fresh process: (exit status, stdout, stderr)."""
    environment = {k: v for k, v in os.environ.items() if k != "PIPELINE_DB"}
    environment.update(env or {})
    done = subprocess.run([sys.executable, "-m", "pipeline_models", *map(str, argv)], capture_output=True,
                          text=True, encoding="utf-8", env=environment, timeout=120, cwd=cwd)
    return done.returncode, done.stdout, done.stderr


def run_all(commands):
    """Several commands at once (each is its own process): {command: (status, out, err)}."""
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(commands, pool.map(lambda argv: pipeline(*argv), commands)))


@pytest.fixture(scope="module")
def dbfile(tmp_path_factory):
    """A pipeline with one run of each kind: published, awaiting review (with an error), pending."""
    path = tmp_path_factory.mktemp("cli") / "p.db"
    pm.init_db(path)
    videos = [pm.DiscoveredVideo.discover(f"vid{n}", title=f"Video {n}", view_count=100 * n)[0] for n in range(3)]
    for video in videos:
        pm.PipelineRun.start(video)
    published = pm.PipelineRun.claim_next("w1")
    with published.fenced():
        clip = pm.Clip.create(pipeline_run=published, start_seconds=1.0, end_seconds=30.0, score=0.5)
        pm.Script.create(pipeline_run=published, full_script_json={"lines": ["hi"]}, total_char_count=2,
                         estimated_duration_seconds=1.5, llm_model_used="gpt-4o", cost_usd=0.25)
        pm.TTSAudio.create(pipeline_run=published, engine_used="piper")
        short = pm.Short.create(pipeline_run=published, clip=clip, status="rendered", title="Short one")
    pm.ReviewLog.request(published, message_id="chat:1")
    pm.ReviewLog.answer("chat:1", "approve", reviewer="@alice")
    short.start_upload()
    short.mark_uploaded("yt-one")
    waiting = pm.PipelineRun.claim_next("w2")
    try:
        raise RuntimeError("ffmpeg exited 1\nmoov atom not found")
    except RuntimeError as exc:
        pm.ErrorLog.record(exc, "render", pipeline_run=waiting)
    pm.Short.create(pipeline_run=waiting, status="rendered", title="Short two")
    pm.ReviewLog.request(waiting, message_id="chat:2")
    pm.Analytics.record_many([dict(youtube_video_id="yt-one", measured_at=T0 + datetime.timedelta(hours=h),
                                   view_count=10 * h) for h in range(3)])
    pm.ConfigOverride.set("render.fps", 60)
    pm.db.obj.close()
    pm.db.initialize(None)
    return str(path)


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
    assert before == after == from_env and before[0] == 0 and "published" in before[1]


READ_COMMANDS = [("status",), ("runs",), ("videos",), ("shorts",), ("reviews",), ("errors",), ("analytics",),
                 ("config", "list"), ("run", "show", "1"), ("errors", "show", "1")]


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
    """Every value of a key ending in _at, anywhere in `document`."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key.endswith("_at") and value is not None:
                yield value
            yield from timestamps(value)
    elif isinstance(document, list):
        for value in document:
            yield from timestamps(value)


def test_every_timestamp_in_json_is_iso_8601_utc(documents):
    found = [value for document in documents.values() for value in timestamps(document)]
    assert len(found) > 20 and all(ISO_UTC.match(value) for value in found), found


def test_json_rows_are_keyed_by_the_schema_column_names(documents):
    for command, model in (("runs", pm.PipelineRun), ("videos", pm.DiscoveredVideo), ("shorts", pm.Short),
                           ("reviews", pm.ReviewLog), ("errors", pm.ErrorLog), ("analytics", pm.Analytics),
                           ("config list", pm.ConfigOverride)):
        columns = [field.column_name for field in model._meta.sorted_fields]
        assert documents[command] and all(list(row) == columns for row in documents[command]), command


def test_status_json_counts(documents):
    assert documents["status"]["runs"] == {"pending": 1, "running": 0, "awaiting_review": 1, "approved": 0,
                                           "rejected": 0, "published": 1, "failed": 0}
    assert documents["status"]["shorts"]["uploaded"] == 1 and documents["status"]["shorts"]["rendered"] == 1
    assert documents["status"]["reviews"] == {"open": 1, "auto_held": 0}
    assert documents["status"]["errors"] == {"unresolved": 1}


def test_listings_json(documents):
    assert [r["id"] for r in documents["runs"]] == [3, 2, 1]  # newest first
    assert [r["status"] for r in documents["runs"]] == ["pending", "awaiting_review", "published"]
    assert {v["youtube_video_id"]: v["status"] for v in documents["videos"]} == {
        "vid0": "processed", "vid1": "selected", "vid2": "selected"}
    assert [(s["title"], s["status"], s["youtube_video_id"]) for s in documents["shorts"]] == [
        ("Short two", "rendered", None), ("Short one", "uploaded", "yt-one")]
    # Open reviews first, then the answered ones.
    assert [(r["message_id"], r["action"]) for r in documents["reviews"]] == [("chat:2", None), ("chat:1", "approve")]
    assert [(a["youtube_video_id"], a["view_count"]) for a in documents["analytics"]] == [("yt-one", 20)]
    assert documents["config list"] == [{"key": "render.fps", "value": 60, "updated_at": documents["config list"][0][
        "updated_at"], "updated_by": "system"}]
    [error] = documents["errors"]
    assert (error["error_type"], error["error_message"], error["pipeline_run_id"]) == (
        "RuntimeError", "ffmpeg exited 1\nmoov atom not found", 2)


def test_run_show_json_has_everything_of_the_run(documents):
    shown = documents["run show 1"]
    assert shown["run"]["id"] == 1 and shown["run"]["status"] == "published"
    assert shown["video"]["youtube_video_id"] == "vid0"
    assert [len(shown[part]) for part in ("clips", "scripts", "audio", "shorts", "reviews", "errors")] == [
        1, 1, 1, 1, 1, 0]
    assert shown["scripts"][0]["full_script_json"] == {"lines": ["hi"]} and shown["scripts"][0]["cost_usd"] == 0.25
    assert shown["reviews"][0]["action"] == "approve" and shown["shorts"][0]["youtube_url"].endswith("yt-one")
    timings = shown["timings"]
    assert set(timings) == {"queued_seconds", "running_seconds", "total_seconds"}
    assert all(value >= 0 for value in timings.values())
    assert timings["total_seconds"] >= timings["running_seconds"]


def test_errors_show_json_has_the_stack_trace(documents):
    error = documents["errors show 1"]
    assert error["error_message"] == "ffmpeg exited 1\nmoov atom not found"
    assert error["stack_trace"].startswith("Traceback") and "RuntimeError" in error["stack_trace"]


def test_read_commands_as_text(dbfile):
    results = run_all([(*command, "--db", dbfile) for command in READ_COMMANDS])
    out = {" ".join(argv[:-2]): result[1] for argv, result in results.items()}
    assert all(result[0] == 0 and result[2] == "" for result in results.values())
    assert out["runs"].splitlines()[0].split()[:3] == ["id", "status", "stage"]
    assert "vid0" in out["videos"] and "processed" in out["videos"]
    assert "Short one" in out["shorts"] and "yt-one" in out["shorts"]
    assert out["reviews"].index("chat:2") < out["reviews"].index("chat:1")  # open first
    assert "ffmpeg exited 1 …" in out["errors"]  # one line per error
    assert "scripts:" in out["run show 1"] and "gpt-4o" in out["run show 1"] and "errors: none" in out["run show 1"]
    assert "message:\nffmpeg exited 1\nmoov atom not found" in out["errors show 1"]
    assert "stack trace:\nTraceback (most recent call last):" in out["errors show 1"]


@pytest.mark.parametrize("argv, code, message", [
    (("run", "show", "99"), 1, "no run with id 99"),
    (("errors", "show", "99"), 1, "no error with id 99"),
    (("retry", "99"), 1, "no run with id 99"),
    (("resolve", "99"), 1, "no error with id 99"),
    (("review", "answer", "chat:99", "approve"), 1, "no review with message id or id 'chat:99'"),
    (("config", "get", "nope"), 1, "no config override named 'nope'"),
    (("retry", "3"), 1, "run 3 is already pending: only a failed run is retried"),
    (("config", "set", "k", '{"a":'), 1, "VALUE '{\"a\":' is not JSON"),
    (("review", "answer", "chat:2", "maybe"), 2, "argument action: invalid choice: 'maybe'"),
    (("run", "show"), 2, "the following arguments are required: RUN_ID"),
    (("run", "delete", "1"), 2, "invalid choice: 'delete'"),
    (("videos", "--status", "lost"), 1, "'lost' is not one of: new, selected, skipped, processed"),
    (("shorts", "--limit", "0"), 2, "argument --limit: 0 is out of range"),
    (("errors", "show", "x"), 2, "argument ERROR_ID: invalid int value: 'x'"),
    (("report", "--top", "0"), 2, "argument --top: 0 is out of range"),
    # An empty filter is refused like an unknown one, not read as no filter at all.
    (("runs", "--status", ""), 1, "PipelineRun.status: '' is not one of: pending, running"),
    (("videos", "--status", ""), 1, "DiscoveredVideo.status: '' is not one of"),
    (("shorts", "--status", ""), 1, "Short.status: '' is not one of"),
    (("errors", "--module", ""), 1, "--module is empty: give a module's name"),
    # The listing's options mean nothing to one error.
    (("errors", "--all", "show", "1"), 2, "errors show takes no --all"),
    (("errors", "--limit", "5", "show", "1"), 2, "errors show takes no --limit"),
    (("errors", "--module", "render", "show", "1"), 2, "errors show takes no --module"),
    (("review", "answer", "chat:2", "approve", "--by-review-id"), 1, "no review with id 'chat:2'"),
    (("review", "answer", "2", "approve", "--by-message-id"), 1, "no review with message id '2'"),
    (("review", "answer", "2", "approve", "--by-message-id", "--by-review-id"), 2, "not allowed with argument"),
])
def test_refusals_exit_as_documented_and_change_nothing(dbfile, argv, code, message):
    before = open(dbfile, "rb").read()
    status, out, err = pipeline(*argv, "--db", dbfile)
    assert (status, out) == (code, "") and err.startswith("pipeline-models: error: ") and message in err, err
    assert err.count("\n") == 1 and open(dbfile, "rb").read() == before


def test_config_set_json_or_string(tmp_path, dbfile):
    path = tmp_path / "c.db"
    path.write_bytes(open(dbfile, "rb").read())
    assert pipeline("config", "set", "voices", '["alloy", "echo"]', "--db", path)[:2] == (
        0, 'voices = ["alloy", "echo"]\n')
    assert pipeline("config", "set", "greeting", '{"a":', "--string", "--db", path)[:2] == (
        0, 'greeting = "{\\"a\\":"\n')
    assert pipeline("config", "get", "voices", "--db", path)[:2] == (0, '["alloy", "echo"]\n')
    assert pipeline("config", "get", "greeting", "--db", path)[:2] == (0, '"{\\"a\\":"\n')


def failed_run_and_error(path, reason, exc, module):
    """In the database at `path`: a run failed for good with `reason`, and `exc` recorded against it by `module`."""
    pm.init_db(path)
    video, _ = pm.DiscoveredVideo.discover("vid")
    pm.PipelineRun.start(video)
    run = pm.PipelineRun.claim_next("w")
    run.fail(reason, retry=False)
    error = pm.ErrorLog.record(exc, module, pipeline_run=run)
    pm.db.obj.close()
    return run, error


def test_no_message_prints_a_password_that_the_listings_hide(tmp_path):
    path = tmp_path / "p.db"
    run, error = failed_run_and_error(path, "RuntimeError: could not connect to postgresql://u:secret@127.0.0.1:1/x "
                                      "(refused)", RuntimeError("boom"), "postgresql://u:secret@db/x")
    retried = pipeline("retry", run.id, "--db", path)
    assert retried[:2] == (0, f"run {run.id} queued again, its attempts counted afresh (it failed: RuntimeError: "
                              "could not connect to postgresql://u:***@127.0.0.1:1/x (refused))\n")
    resolved = pipeline("resolve", error.id, "--db", path)
    assert resolved[:2] == (0, f"error {error.id} (postgresql://u:***@db/x: RuntimeError) resolved\n")
    url = "postgresql://u:secret@127.0.0.1:1/x"
    dsn = '{"dsn": "host=h password=secret", "url": "postgresql://u:secret@h/x"}'
    outputs = [pipeline("config", "set", "url", url, "--string", "--db", path),
               pipeline("config", "set", "dsn", dsn, "--db", path),
               pipeline("config", "get", "url", "--db", path), pipeline("config", "get", "dsn", "--db", path),
               pipeline("config", "list", "--db", path), pipeline("config", "list", "--json", "--db", path)]
    assert all(status == 0 and "secret" not in out + err for status, out, err in outputs), outputs
    assert outputs[0][1] == 'url = "postgresql://u:***@127.0.0.1:1/x"\n'
    assert outputs[2][1] == '"postgresql://u:***@127.0.0.1:1/x"\n'
    # Redacted string by string, so the JSON stays JSON (redacting its text would eat the closing quote).
    assert json.loads(outputs[3][1]) == {"dsn": "host=h password=***", "url": "postgresql://u:***@h/x"}
    assert json.loads(outputs[1][1].split(" = ", 1)[1]) == json.loads(outputs[3][1])
    pm.init_db(path, readonly=True)
    assert pm.ConfigOverride.value_of("url") == url  # stored as given: only what is shown is redacted


def test_report_to_stdout(tmp_path, dbfile):
    status, out, err = pipeline("report", "-o", "-", "--db", dbfile, cwd=tmp_path)
    assert status == 0 and err == "" and out.lower().startswith("<!doctype html>") and out.rstrip().endswith("</html>")
    assert "yt-one" in out and os.listdir(tmp_path) == []  # no file named "-"


def test_review_answer_by_message_id_or_review_id(tmp_path, dbfile):
    path = tmp_path / "r.db"
    path.write_bytes(open(dbfile, "rb").read())
    status, out, _ = pipeline("review", "answer", "chat:2", "edit", "--detail", "shorter title", "--reviewer", "@bo",
                              "--db", path)
    assert (status, out) == (0, "review 2 answered edit: run 2 is now approved\n")
    # The same answer again (by the review's id this time) is a repeat: nothing changes, exit 0.
    assert pipeline("review", "answer", "2", "edit", "--db", path)[:2] == (
        0, "review 2 was already answered edit: nothing changed (run 2 is approved)\n")
    status, _, err = pipeline("review", "answer", "2", "reject", "--db", path)
    assert status == 1 and "review 2 was already answered edit by @bo; refusing reject" in err
    pm.init_db(path, readonly=True)
    review = pm.ReviewLog.get_by_id(2)
    assert (review.action, review.response_detail, review.reviewer) == (pm.ReviewAction.edit, "shorter title", "@bo")
    assert pm.PipelineRun.get_by_id(2).status is pm.RunStatus.approved


def test_review_key_that_is_both_a_message_id_and_another_reviews_id_is_refused(tmp_path):
    path = tmp_path / "a.db"
    pm.init_db(path)
    for n in range(2):
        video, _ = pm.DiscoveredVideo.discover(f"v{n}")
        pm.PipelineRun.start(video)
        pm.ReviewLog.request(pm.PipelineRun.claim_next("w"), message_id="1" if n else "m")
    pm.db.obj.close()
    status, _, err = pipeline("review", "answer", "1", "approve", "--db", path)
    assert status == 1 and "'1' is the message id of review 2 and the id of review 1" in err
    assert "add --by-message-id or --by-review-id to say which one you mean" in err
    assert pm.ReviewLog.select().where(pm.ReviewLog.action.is_null(False)).count() == 0
    # Following that advice answers the one meant, each way.
    assert pipeline("review", "answer", "1", "reject", "--by-message-id", "--db", path)[:2] == (
        0, "review 2 answered reject: run 2 is now rejected\n")
    assert pipeline("review", "answer", "1", "approve", "--by-review-id", "--db", path)[:2] == (
        0, "review 1 answered approve: run 1 is now approved\n")


def test_review_usage_line_can_be_copied(tmp_path, dbfile):
    status, out, _ = pipeline("review", "--help")
    usage = out.splitlines()[0]
    assert status == 0 and usage.startswith(
        "usage: pipeline-models review answer MESSAGE_ID|REVIEW_ID {approve,reject,edit}"), usage
    path = tmp_path / "r.db"
    path.write_bytes(open(dbfile, "rb").read())
    words = usage.split()[1:4] + ["chat:2", "approve"]  # the command as the usage line spells it, filled in
    assert pipeline(*words[1:], "--db", path)[:2] == (0, "review 2 answered approve: run 2 is now approved\n")


def test_errors_help_names_one_metavar_for_limit():
    status, out, _ = pipeline("errors", "--help")
    assert status == 0 and "[--limit N]" in out and "--limit N " in out and "LIMIT" not in out


def test_report_writes_one_html_file_and_changes_nothing(tmp_path, dbfile):
    before = open(dbfile, "rb").read()
    status, out, err = pipeline("report", "-o", tmp_path / "r.html", "--db", dbfile)
    assert status == 0 and err == "" and out.startswith(f"wrote {tmp_path / 'r.html'}: 3 runs, 1 published, ")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert html.lower().startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "yt-one" in html and open(dbfile, "rb").read() == before


def test_report_without_the_extra_names_it(tmp_path, dbfile):
    shim = tmp_path / "shim" / "plotly"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('plotly is not installed here')\n")
    status, out, err = pipeline("report", "-o", tmp_path / "r.html", "--db", dbfile,
                                env={"PYTHONPATH": str(shim.parent)})
    assert (status, out) == (1, "") and "install the 'report' extra" in err and ".[report]" in err
    assert not (tmp_path / "r.html").exists()


def test_report_of_an_empty_database_says_so(tmp_path):
    path = tmp_path / "empty.db"
    assert pipeline("init", "--db", path)[0] == 0
    status, out, _ = pipeline("report", "-o", tmp_path / "r.html", "--db", path)
    assert status == 0 and out.startswith(f"wrote {tmp_path / 'r.html'}: 0 runs, 0 published")
    assert "no runs yet" in (tmp_path / "r.html").read_text(encoding="utf-8").lower()


def test_write_commands_as_an_operator_runs_them(tmp_path):
    path = tmp_path / "w.db"
    status, out, _ = pipeline("init", "--db", path)
    assert status == 0 and out.startswith(f"{path}: applied 0001_original_tables")
    assert pipeline("migrate", "--db", path)[:2] == (0, f"{path}: schema up to date, nothing to apply\n")
    run, error = failed_run_and_error(path, "render crashed", RuntimeError("quota"), "uploader")
    assert pipeline("retry", run.id, "--db", path)[:2] == (
        0, f"run {run.id} queued again, its attempts counted afresh (it failed: render crashed)\n")
    assert pipeline("resolve", error.id, "--db", path)[:2] == (
        0, f"error {error.id} (uploader: RuntimeError) resolved\n")
    assert pipeline("config", "set", "render.fps", "60", "--by", "ops", "--db", path)[:2] == (0, "render.fps = 60\n")
    assert run.refresh().status is pm.RunStatus.pending and error.refresh().resolved
    assert pm.ConfigOverride.value_of("render.fps") == 60
    assert pm.ConfigOverride.get_by_id("render.fps").updated_by == "ops"


def test_demo_as_a_subprocess(tmp_path):
    status, out, _ = pipeline("demo", "--videos", "1", "--db", tmp_path / "d.db")
    assert status == 0 and out.startswith("discovered 1 video\nqueued 1 run, one per video\n")
    # The one run is the one whose first render crashes; retried, it is published: counts read right at 0 and 1.
    assert "two workers produced 0 shorts; run 1 failed: RenderCrashed" in out
    assert "\nuploaded 1 short; 1 run published\n" in out
    # Its history is coherent: nothing in the future, nothing before what caused it.
    pm.init_db(tmp_path / "d.db", readonly=True)
    now = pm.utcnow()
    for model in pm.ALL_MODELS:
        for field in model._meta.sorted_fields:
            if isinstance(field, pm.fields.UTCDateTimeField):
                latest = model.select(field).order_by(field.desc()).where(field.is_null(False)).first()
                assert latest is None or getattr(latest, field.name) <= now, (model.__name__, field.name)
    run, short = pm.PipelineRun.get(), pm.Short.get()
    assert run.created_at <= pm.ReviewLog.get().sent_at <= short.uploaded_at <= run.finished_at
    assert pm.Analytics.select().where(pm.Analytics.measured_at < short.uploaded_at).count() == 0
    assert pm.Analytics.select().count() == 28


def test_data_cannot_drive_the_terminal_in_any_output(tmp_path):
    path = tmp_path / "t.db"
    pm.init_db(path)
    video, _ = pm.DiscoveredVideo.discover("vid", title="clear \x1b[2J title \u202ereversed")
    pm.PipelineRun.start(video)
    run = pm.PipelineRun.claim_next("w")
    run.fail("bad \x1b]0;title\x07 \u202e x", retry=False)
    error = pm.ErrorLog.record(RuntimeError("boom"), "mod\x1b[31m", pipeline_run=run)
    pm.ConfigOverride.set("evil", "\u202eevil\x7f")
    other, _ = pm.DiscoveredVideo.discover("vid2")
    pm.PipelineRun.start(other)
    pm.PipelineRun.claim_next("w\r\nx")
    pm.db.obj.close()
    outputs = [pipeline("retry", run.id, "--db", path), pipeline("resolve", error.id, "--db", path),
               pipeline("config", "set", "k\x1b[2J", "1", "--db", path),
               pipeline("config", "get", "evil", "--db", path),
               pipeline("videos", "--db", path), pipeline("videos", "--json", "--db", path),
               pipeline("run", "show", run.id, "--db", path), pipeline("runs", "--db", path),
               pipeline("run", "show", run.id + 1, "--db", path)]
    for status, out, err in outputs:
        assert status == 0 and err == "", err
        assert not any(ch in out for ch in "\x1b\x07\x7f\u202e\r"), out
    # Messages escape as the tables do (\x1b, not JSON's \u001b), and a value with a line break is escaped
    # in full, not cut at it; only a JSON value (config get, --json) keeps JSON's escapes.
    assert "(it failed: bad \\x1b]0;title\\x07 \\u202e x)" in outputs[0][1]
    assert outputs[1][1] == f"error {error.id} (mod\\x1b[31m: RuntimeError) resolved\n"
    assert outputs[2][1] == "k\\x1b[2J = 1\n"
    assert "clear \\x1b[2J title \\u202ereversed" in outputs[4][1]
    assert " w\\r\\nx " in outputs[7][1] and "  worker              w\\r\\nx\n" in outputs[8][1]
    assert json.loads(outputs[3][1]) == "\u202eevil\x7f"  # escaped, and still the same JSON value
    titles = {v["youtube_video_id"]: v["title"] for v in json.loads(outputs[5][1])}
    assert titles["vid"] == "clear \x1b[2J title \u202ereversed"


def test_write_failures_are_one_line_and_exit_1(tmp_path, dbfile):
    status, _, err = pipeline("report", "-o", tmp_path / "no" / "r.html", "--db", dbfile)
    assert status == 1 and f"there is no directory {tmp_path / 'no'}" in err and "unexpected" not in err
    status, _, err = pipeline("report", "-o", tmp_path, "--db", dbfile)
    assert status == 1 and "is a directory: give a file" in err and os.listdir(tmp_path) == []
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "pipeline_models", "runs", "--db", dbfile], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == "pipeline-models: error: cannot write the output: No space left on device\n"


def test_resolving_twice_says_nothing_changed_and_blank_keys_are_refused(tmp_path, dbfile):
    path = tmp_path / "x.db"
    path.write_bytes(open(dbfile, "rb").read())
    assert pipeline("resolve", "1", "--db", path)[1] == "error 1 (render: RuntimeError) resolved\n"
    assert pipeline("resolve", "1", "--db", path)[:2] == (
        0, "error 1 (render: RuntimeError) was already resolved: nothing changed\n")
    status, _, err = pipeline("config", "set", " ", "1", "--db", path)
    assert status == 1 and "ConfigOverride.key: give the setting a name, not ' '" in err
