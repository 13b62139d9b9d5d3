"""The pipeline-models command line: each subcommand's output, and one clear line for every bad
input."""
import datetime
import json
import os
import sqlite3
import subprocess
import sys

import peewee
import pytest
from conftest import CYCLE_START, make_clip, make_video
from playhouse.migrations import Runner

import pipeline_models as pm
from pipeline_models import cli as cli_module
from pipeline_models.cli import main
from pipeline_models.cli_output import table


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit status, stdout, stderr)."""
    def run(*argv):
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err
    return run


@pytest.fixture
def dbfile(fresh_target):
    """A migrated database (a SQLite file or a PostgreSQL database) with a little of everything in
    it, unbound.

    Runs: gaming's first cycle (in review, three ranked clips, a short, an error), gaming's second
    and sports' first (pending). Videos: v0-v2 (gaming; v2 used) and s0 (sports).
    """
    pm.init_db(fresh_target)
    videos = [make_video(f"v{n}", viral_score=float(n)) for n in range(3)]
    make_video("s0", niche="sports", title="A sports video")
    for cycle in range(2):
        pm.PipelineRun.schedule("gaming", CYCLE_START + datetime.timedelta(hours=6 * cycle))
    pm.PipelineRun.schedule("sports", CYCLE_START + datetime.timedelta(minutes=30))
    run = pm.PipelineRun.claim_next("w1")  # the earliest cycle: gaming's first
    with run.fenced():
        for rank, video in enumerate(videos, 1):
            make_clip(run, video, rank=rank)
        pm.Short.create(pipeline_run=run)
    pm.mark_video_processed("v2", pm.Processed.used)
    pm.ReviewLog.request(run, message_id="m1")
    pm.ErrorLog.record(RuntimeError("quota exceeded"), "uploader", pipeline_run=run)
    pm.ErrorLog.create(module="render", error_type="E", error_message="old", resolved=True)
    pm.Analytics.record("yt1", view_count=100, like_count=5)
    pm.Analytics.record("yt2", view_count=900)
    pm.db.obj.close()
    pm.db.initialize(None)
    return fresh_target


def ids(out):
    """The first column of a listing's rows, as ints."""
    return [int(line.split()[0]) for line in out.splitlines()[1:]]


def test_table_names_an_int_enum_and_aligns_it_as_text():
    # Processed is an IntEnum: a table shows its name, left-aligned like other words, not the
    # number.
    rows = [[pm.Processed.used, 5], [pm.Processed.rejected, 12]]
    assert table(["processed", "n"], rows).splitlines() == [
        "processed   n",
        "used        5",
        "rejected   12",
    ]


def test_table_aligns_columns():
    assert table(["name", "n"], [["a", 5], ["long name", 1234], ["c", None]]).splitlines() == [
        "name           n",
        "a              5",
        "long name  1,234",
        "c              -",
    ]


MIGRATIONS = ("0001_original_tables, 0002_review_publish_analytics, 0003_short_upload_claim, "
              "0004_seed_schema, 0005_run_queue, 0006_analytics_latest, 0007_pipeline_tables, "
              "0008_cycle")


def test_init_and_migrate_say_what_was_applied(fresh_target, cli):
    status, out, _ = cli("init", "--db", fresh_target)
    assert status == 0 and " ".join(out.split()).endswith(f": applied {MIGRATIONS}")  # wrapped
    status, out, _ = cli("migrate", "--db", fresh_target)
    assert status == 0 and "nothing to apply" in " ".join(out.split())


@pytest.mark.parametrize("argv, said", [
    (["runs"], "no runs"), (["videos"], "no videos"), (["shorts"], "no shorts"),
    (["reviews"], "no reviews"), (["reviews", "--open"], "no open reviews"),
    (["errors"], "no unresolved errors"),
    (["errors", "--all"], "no errors logged"), (["config", "list"], "no config overrides"),
    (["analytics"], "no analytics snapshots")])
def test_an_empty_listing_says_so_and_its_json_is_an_empty_list(fresh_target, cli, argv, said):
    pm.init_db(fresh_target)
    pm.db.obj.close()
    pm.db.initialize(None)
    assert cli(*argv, "--db", fresh_target) == (0, said + "\n", "")
    assert cli(*argv, "--json", "--db", fresh_target) == (0, "[]\n", "")


def test_messages_wrap_at_the_terminal_width_else_100(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = "a-long-file-name-" * 3 + ".db"  # kept whole on its line
    monkeypatch.delenv("COLUMNS", raising=False)  # not a terminal (captured): 100 columns
    status, out, _ = cli("init", "--db", target)
    lines = out.splitlines()
    assert status == 0 and len(lines) > 1 and max(map(len, lines)) <= 100
    assert lines[0].startswith(target)
    assert all(line.startswith("  ") for line in lines[1:])  # a continuation is indented
    assert " ".join(out.split()) == f"{target}: applied {MIGRATIONS}"
    monkeypatch.setenv("COLUMNS", "60")  # read first by shutil.get_terminal_size, as a terminal
    status, out, _ = cli("pause", "cooking", "--db", target)
    assert status == 0 and len(out.splitlines()) == 3 and max(map(len, out.splitlines())) <= 60
    monkeypatch.setenv("COLUMNS", "300")
    status, out, _ = cli("resume", "cooking", "--db", target)  # short enough: one line
    assert (status, out) == (0, "cooking resumed: its runs are claimed again; no run or video has "
                                "the niche cooking yet\n")


def test_db_defaults_to_the_environment_then_pipeline_db(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIPELINE_DB", raising=False)
    assert cli("init")[0] == 0 and (tmp_path / "pipeline.db").exists()
    monkeypatch.setenv("PIPELINE_DB", str(tmp_path / "env.db"))
    assert cli("init")[0] == 0 and (tmp_path / "env.db").exists()


def week_ago():
    now = datetime.datetime.now(datetime.timezone.utc)
    return f"{now - datetime.timedelta(days=7):%Y-%m-%d %H:%M}"


def test_status(dbfile, cli):
    before = week_ago()
    status, out, err = cli("status", "--db", dbfile)
    after = week_ago()
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["niche", "paused", "pending", "running", "review", "approved",
                                "uploaded", "failed", "rejected", "next", "run", "next",
                                "cycle_start", "(UTC)", "due"]
    # Per niche its runs by status and the next run (gaming's second cycle, sports' first), due.
    assert lines[1].split() == ["gaming", "no", "1", "0", "1", "0", "0", "0", "0", "2",
                                "2026-01-01", "06:30", "yes"]
    assert lines[2].split() == ["sports", "no", "1", "0", "0", "0", "0", "0", "0", "3",
                                "2026-01-01", "01:00", "yes"]
    assert len({len(line) for line in lines[:3]}) == 1  # aligned: every row ends in the same column
    # (the minute the command ran, should the clock have turned one meanwhile)
    assert lines[3:] in (["", "uploaded, failed and rejected: the runs finished in the last 7 days "
                          f"(since {since} UTC)", "", "0 of at most 2 runs running; paused: none"]
                         for since in (before, after))


def test_runs_lists_and_filters(dbfile, cli):
    status, out, _ = cli("runs", "--db", dbfile)
    assert status == 0 and out.splitlines()[0].split() == [
        "id", "niche", "cycle_start", "(UTC)", "status", "current_stage", "worker", "retry_count",
        "youtube_video_id", "error_message"]
    assert ids(out) == [2, 3, 1]  # the latest cycle first: gaming 06:30, sports 01:00, gaming 00:30
    assert out.splitlines()[3].split()[:6] == ["1", "gaming", "2026-01-01", "00:30", "review",
                                               "review"]
    status, out, _ = cli("runs", "--db", dbfile, "--status", "review")
    assert status == 0 and ids(out) == [1] and " w1 " in out
    status, out, _ = cli("runs", "--db", dbfile, "--status", "pending", "--limit", "1")
    assert ids(out) == [2]
    status, out, _ = cli("runs", "--db", dbfile, "--niche", "sports")
    assert status == 0 and ids(out) == [3] and "gaming" not in out
    status, out, _ = cli("runs", "--niche", "gaming", "--status", "pending", "--db", dbfile)
    assert status == 0 and ids(out) == [2]
    # no such niche: no runs, not an error
    status, out, _ = cli("runs", "--niche", "cooking", "--db", dbfile)
    assert (status, out) == (0, "no runs\n")
    assert cli("runs", "--niche", "cooking", "--json", "--db", dbfile)[:2] == (0, "[]\n")


def test_videos_lists_and_filters(dbfile, cli):
    status, out, _ = cli("videos", "--db", dbfile)
    lines = out.splitlines()
    assert status == 0 and lines[0].split() == [
        "id", "video_id", "niche", "viral_score", "processed", "content_id_risk", "discovered_at",
        "(UTC)", "channel_name", "title"]
    assert ids(out) == [4, 3, 2, 1]  # newest first
    # processed by its name, not the pipeline's number; the risk by its value.
    assert lines[2].split()[:6] == ["3", "v2", "gaming", "2.00", "used", "unknown"]
    assert lines[4].split()[:6] == ["1", "v0", "gaming", "0", "pending", "unknown"]
    assert ids(cli("videos", "--niche", "sports", "--db", dbfile)[1]) == [4]
    for state in ("used", "1"):
        assert ids(cli("videos", "--processed", state, "--db", dbfile)[1]) == [3]
    pending = cli("videos", "--processed", "pending", "--niche", "gaming", "--db", dbfile)[1]
    assert ids(pending) == [2, 1]
    assert cli("videos", "--processed", "rejected", "--db", dbfile)[1] == "no videos\n"
    status, out, err = cli("videos", "--processed", "new", "--db", dbfile)
    assert (status, out) == (1, "") and err == (
        "pipeline-models: error: DiscoveredVideo.processed: 'new' is not one of: pending (0), "
        "used (1), skipped (2), rejected (3)\n")


def test_reviews_show_held_and_auto_held_reviews_as_open(dbfile, cli):
    pm.init_db(dbfile)
    pm.ReviewLog.update(sent_at=pm.utcnow() - datetime.timedelta(hours=5)).execute()
    assert pm.ReviewLog.hold_stale(datetime.timedelta(hours=4)) == 1  # nobody answered in time
    pm.db.obj.close()
    status, out, _ = cli("reviews", "--db", dbfile)
    rows = [line.split()[:4] for line in out.splitlines()[1:]]
    assert status == 0 and rows == [["1", "1", "m1", "auto-held"]]
    assert cli("reviews", "--open", "--db", dbfile)[1] == out  # still open: it may be answered
    status, out, _ = cli("reviews", "--json", "--db", dbfile)
    assert [(r["action"], r["auto_held"]) for r in json.loads(out)] == [("hold", True)]
    queued = json.loads(cli("queue", "--json", "--db", dbfile)[1])
    held = [(r["run_id"], r["auto_held"]) for r in queued["reviews"]]
    assert (queued["awaiting"], queued["held"], held) == (0, 1, [(1, True)])
    status, out, _ = cli("review", "answer", "m1", "approve", "--db", dbfile)
    assert (status, out) == (0, "review 1 answered approve: run 1 is now approved\n")
    status, out, _ = cli("reviews", "--db", dbfile)
    assert [line.split()[:4] for line in out.splitlines()[1:]] == [["1", "1", "m1", "approve"]]
    assert cli("reviews", "--open", "--db", dbfile)[1] == "no open reviews\n"


def test_errors_and_resolve(dbfile, cli):
    status, out, _ = cli("errors", "--db", dbfile)
    assert status == 0 and "quota exceeded" in out and "old" not in out
    # the seed's column names, and niche
    assert out.splitlines()[0].split() == ["id", "occurred_at", "(UTC)", "module", "error_type",
                                           "error_message", "pipeline_run_id", "niche", "resolved"]
    assert out.splitlines()[1].split()[-3:] == ["1", "gaming", "no"]
    assert "old" in cli("errors", "--db", dbfile, "--all")[1]
    assert "quota" not in cli("errors", "--db", dbfile, "--module", "render")[1]
    error_id = out.splitlines()[1].split()[0]
    status, out, _ = cli("resolve", error_id, "--db", dbfile)
    assert status == 0 and f"error {error_id} (uploader: RuntimeError) resolved" in out
    assert "quota" not in cli("errors", "--db", dbfile)[1]


def test_retry_a_failed_run(dbfile, cli):
    pm.init_db(dbfile)
    later = pm.utcnow() + datetime.timedelta(hours=1)
    run = pm.PipelineRun.claim_next("w2")
    run.fail("first try")  # back to pending, its retry counted
    run = pm.PipelineRun.claim_next("w2", now=later)
    run.fail("render crashed", retry=False)
    assert (run.id, run.status, run.retry_count) == (3, pm.RunStatus.failed, 1)
    pm.db.obj.close()
    status, out, _ = cli("retry", run.id, "--db", dbfile)
    assert status == 0
    assert out == (f"run {run.id} queued again, its retries counted afresh (it failed: render "
                   "crashed)\n")
    status, out, err = cli("retry", run.id, "--db", dbfile)
    assert status == 1 and err.strip() == (f"pipeline-models: error: run {run.id} is already "
                                           "pending: only a failed run is retried")
    status, out, err = cli("retry", 1, "--db", dbfile)  # in review, not failed
    assert status == 1
    assert "run 1 cannot go from review to pending: only a failed run is retried" in err
    pm.init_db(dbfile)
    run = pm.PipelineRun.get_by_id(run.id)
    assert (run.status, run.retry_count, run.not_before, run.worker) == (
        pm.RunStatus.pending, 0, None, None)
    assert pm.PipelineRun.get_by_id(1).status is pm.RunStatus.review


def test_config_get_set_list(dbfile, cli):
    assert cli("config", "set", "render.fps", "60", "--db", dbfile, "--by", "alice")[0] == 0
    assert cli("config", "set", "greeting", "hello there", "--string", "--db", dbfile)[0] == 0
    assert cli("config", "set", "voices", '["alloy", "echo"]', "--db", dbfile)[0] == 0
    assert cli("config", "get", "render.fps", "--db", dbfile)[1] == "60\n"
    assert cli("config", "get", "greeting", "--db", dbfile)[1] == '"hello there"\n'
    out = cli("config", "list", "--db", dbfile)[1]
    assert out.splitlines()[0].split() == ["key", "value", "updated_by", "updated_at", "(UTC)"]
    assert "alice" in out and '["alloy", "echo"]' in out
    pm.init_db(dbfile)
    assert pm.ConfigOverride.value_of("render.fps") == 60
    assert pm.ConfigOverride.value_of("voices") == ["alloy", "echo"]


def test_analytics_best_first(dbfile, cli):
    status, out, _ = cli("analytics", "--db", dbfile, "--top", "5")
    lines = out.splitlines()
    assert status == 0 and lines[1].startswith("yt2") and lines[2].startswith("yt1")
    assert lines[0].split() == ["youtube_video_id", "measured_at", "(UTC)", "view_count",
                                "like_count", "comment_count", "click_through_rate",
                                "subscriber_gain", "estimated_revenue_usd"]
    assert len(cli("analytics", "--db", dbfile, "--top", "1")[1].splitlines()) == 2


@pytest.mark.parametrize("argv, message, code", [
    (["runs", "--status", "bogus"],
     "PipelineRun.status: 'bogus' is not one of: pending, running, review", 1),
    # the old names are gone
    (["runs", "--status", "awaiting_review"], "'awaiting_review' is not one of", 1),
    (["shorts", "--status", "rendered"],
     "Short.status: 'rendered' is not one of: pending, review, uploaded", 1),
    (["videos", "--status", "new"], "unrecognized arguments: --status new", 2),
    (["runs", "--niche", ""], "--niche is empty: give a niche's name", 1),
    (["videos", "--niche", " "], "--niche is empty: give a niche's name", 1),
    (["shorts", "--niche", "gaming"], "unrecognized arguments: --niche gaming", 2),
    (["resolve", "9999"], "no error with id 9999", 1),
    (["retry", "9999"], "no run with id 9999", 1),
    (["resolve", "abc"], "invalid int value: 'abc'", 2),
    (["config", "get", "missing"], "no config override named 'missing'", 1),
    (["frobnicate"], "invalid choice: 'frobnicate'", 2),
    (["runs", "--limit", "x"], "invalid int value", 2),
])
def test_bad_input_is_one_line_on_stderr(dbfile, cli, argv, message, code):
    status, out, err = cli(*argv, "--db", dbfile)
    assert status == code and out == ""
    assert len(err.splitlines()) == 1 and message in err
    assert err.startswith("pipeline-models: error: ")


def test_unreadable_databases(tmp_path, cli):
    garbage = tmp_path / "g.db"
    garbage.write_text("not a database")
    status, _, err = cli("status", "--db", garbage)
    assert status == 1 and err.strip() == (f"pipeline-models: error: cannot open database "
                                           f"'{garbage}': the file is not a SQLite database")
    for command in (["status"], ["runs"], ["config", "list"], ["retry", "1"],
                    ["config", "set", "k", "1"]):
        status, _, err = cli(*command, "--db", tmp_path / "missing.db")
        assert status == 1 and "so no database yet" in err and "pipeline-models init" in err
        assert len(err.splitlines()) == 1
    assert not (tmp_path / "missing.db").exists()  # only init and migrate create a database
    status, _, err = cli("status", "--db", "mysqlx://nope")
    assert status == 1 and "cannot open database 'mysqlx://nope'" in err


def test_write_commands_refuse_other_databases_unchanged(tmp_path, cli):
    foreign = tmp_path / "notes.db"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE notes (text)")
    connection.commit()
    connection.close()
    before = foreign.read_bytes()
    for command in (["retry", "1"], ["resolve", "1"], ["config", "set", "k", "1"]):
        status, _, err = cli(*command, "--db", foreign)
        assert status == 1 and "it is not a pipeline database" in err
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_write_commands_refuse_an_older_database_rather_than_migrate_it(tmp_path, cli):
    path = tmp_path / "old.db"
    database = peewee.SqliteDatabase(path)
    Runner(database, str(pm.MIGRATIONS_DIR)).up("0003_short_upload_claim")
    database.close()
    before = path.read_bytes()
    status, _, err = cli("config", "set", "k", "1", "--db", path)
    assert status == 1 and "pipeline-models migrate" in err and path.read_bytes() == before
    assert cli("migrate", "--db", path)[0] == 0
    assert cli("config", "set", "k", "1", "--db", path)[0] == 0


@pytest.mark.parametrize("argv, option", [
    (["runs", "--limit", "-1"], "--limit"),
    (["runs", "--limit", "0"], "--limit"),
    (["runs", "--limit", "99999999999999999999"], "--limit"),
    (["errors", "--limit", "9" * 5000], "--limit"),  # more digits than int() converts
    (["analytics", "--top", "-1"], "--top"),
    (["retry", "99999999999999999999"], "RUN_ID"),
    (["resolve", "-5"], "ERROR_ID"),
    (["demo", "--videos", str(10 ** 20)], "--videos"),
    (["demo", "--videos", "0"], "--videos"),
])
def test_numbers_out_of_range_are_usage_errors(tmp_path, cli, argv, option):
    status, out, err = cli(*argv, "--db", tmp_path / "never.db")
    assert status == 2 and out == "" and len(err.splitlines()) == 1
    assert f"argument {option}: " in err
    assert len(err) < 300 and not (tmp_path / "never.db").exists()


def test_largest_id_is_looked_up(dbfile, cli):
    status, _, err = cli("retry", 2 ** 63 - 1, "--db", dbfile)
    assert status == 1 and f"no run with id {2 ** 63 - 1}" in err


def test_deeply_nested_json_value_is_refused_in_one_line(dbfile, cli):
    status, out, err = cli("config", "set", "k", "[" * 3000 + "]" * 3000, "--db", dbfile)
    assert status == 1 and out == "" and len(err.splitlines()) == 1 and "nested too deeply" in err


def test_an_unexpected_error_is_one_line_and_debug_shows_its_traceback(dbfile, cli, monkeypatch):
    def broken(args):
        raise KeyError("postgresql://u:s3cret@db/x")
    monkeypatch.setattr(cli_module, "cmd_status", broken)
    status, out, err = cli("status", "--db", dbfile)
    assert status == 1 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("pipeline-models: error: unexpected KeyError: ") and "--debug" in err
    assert "s3cret" not in err and "u:***@db" in err
    for argv in (["--debug", "status"], ["status", "--debug"]):
        status, _, err = cli(*argv, "--db", dbfile)
        assert status == 1 and "Traceback (most recent call last)" in err and "in broken" in err
        assert err.splitlines()[-1].startswith("pipeline-models: error: unexpected KeyError")
        assert "s3cret" not in err


def test_debug_shows_the_traceback_of_a_refusal_too(tmp_path, cli):
    status, _, err = cli("status", "--debug", "--db", tmp_path / "missing.db")
    assert status == 1 and "Traceback" in err and "CannotOpenDatabase" in err
    assert err.splitlines()[-1].startswith("pipeline-models: error: cannot open database")


def test_messages_are_one_line_of_printable_text(dbfile, cli):
    pm.init_db(dbfile)
    pm.ErrorLog.record(RuntimeError("red \x1b[31m alert\nsecond line 💥"), "render")
    pm.db.obj.close()
    status, out, _ = cli("errors", "--db", dbfile)
    # One row per error: its first line, control characters escaped; `errors show` prints the rest.
    assert status == 0 and "red \\x1b[31m alert …" in out
    assert "second line" not in out and "\x1b" not in out
    status, _, err = cli("runs", "--status", "bad\x1b[2J\nline", "--db", dbfile)
    assert status == 1 and len(err.splitlines()) == 1 and "\x1b" not in err


def test_config_set_refused_value_changes_nothing(dbfile, cli):
    cli("config", "set", "k", "1", "--db", dbfile)
    # A value over 255 characters is fine (a key that long is not).
    status, _, err = cli("config", "set", "k", "x" * 300, "--string", "--db", dbfile)
    assert status == 0
    status, _, err = cli("config", "set", "y" * 300, "1", "--db", dbfile)
    assert status == 1 and "ConfigOverride.key" in err and len(err.splitlines()) == 1
    pm.init_db(dbfile)
    assert pm.ConfigOverride.as_dict() == {"k": "x" * 300}


@pytest.mark.slow
def test_console_script_and_module_entry_points(dbfile):
    for argv in (["pipeline-models"], [sys.executable, "-m", "pipeline_models"]):
        exe = argv[0]
        if exe == "pipeline-models":  # the console script beside this Python
            exe = os.path.join(os.path.dirname(sys.executable), exe)
        out = subprocess.run([exe, *argv[1:], "status", "--db", str(dbfile)], capture_output=True,
                             text=True)
        assert out.returncode == 0 and out.stdout.startswith("niche   paused  pending"), out.stderr
        bad = subprocess.run([exe, *argv[1:], "runs", "--status", "x", "--db", str(dbfile)],
                             capture_output=True, text=True)
        assert bad.returncode == 1 and "Traceback" not in bad.stderr
        assert len(bad.stderr.splitlines()) == 1
