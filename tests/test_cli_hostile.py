"""The command line as a user's shell runs it, given hostile input: nothing raw escapes, nothing
foreign is touched, no secret is printed.

Each table of cases runs at once in a module-scoped fixture, and each parametrized test checks its
own result. Every case runs in-process (fast, so every command meets every target); the cases in
SUBPROCESS also run as `python -m pipeline_models` with LC_ALL=C and no PYTHONIOENCODING, the way a
shell runs it, covering every command and every kind of hostile input (a subprocess costs about half
a second: they are chosen, not crossed).
"""
import io
import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from urllib.parse import urlsplit, urlunsplit

import peewee
import pytest
from conftest import CYCLE_START, make_clip, make_video
from playhouse.migrations import Runner

import pipeline_models as pm
from pipeline_models.cli import main

ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "PIPELINE_DB", "LANG",
                                                        "LANGUAGE")}
ENV["LC_ALL"] = "C"

DEEP_JSON = "[" * 3000 + "]" * 3000
HUGE = "99999999999999999999"
NOT_UTF8 = b"caf\xe9"  # Latin-1 bytes: Python gets them as a lone surrogate


class Result:
    """What one run of the command line did."""

    def __init__(self, argv, returncode, stdout, stderr):
        self.argv, self.returncode = argv, returncode
        decode = (lambda b: b.decode("utf-8", "replace")) if isinstance(stdout, bytes) else str
        self.out, self.err = decode(stdout), decode(stderr)

    def check(self, code, message=""):
        """The exit status is `code`, no traceback, a refusal is one line naming `message`."""
        where = (f"{self.argv[:6]}: exit {self.returncode}\nstdout: {self.out[-500:]}\n"
                 f"stderr: {self.err[-2000:]}")
        assert "Traceback" not in self.err and "Traceback" not in self.out, where
        assert self.returncode == code, where
        if code != 0:
            assert self.out == "" and len(self.err.splitlines()) == 1, where
            assert self.err.startswith("pipeline-models: error: "), where
        assert message in self.err, where


def cli(*argv, cwd=None, env=None, close_stdout=False):
    """Run `python -m pipeline_models *argv` (bytes arguments are passed as they are)."""
    argv = [a if isinstance(a, bytes) else str(a) for a in argv]
    command = [sys.executable, "-m", "pipeline_models", *argv]
    if not close_stdout:
        done = subprocess.run(command, cwd=cwd, env=env or ENV, capture_output=True, timeout=120)
        return Result(argv, done.returncode, done.stdout, done.stderr)
    # The reader goes away before the first line, as `| head -0` would: every write meets a closed
    # pipe.
    proc = subprocess.Popen(command, cwd=cwd, env=env or ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.wait(120)
    return Result(argv, proc.returncode, b"", stderr)


def in_process(*argv, cwd=None, env=None):
    """Run main(argv) in this process, in `cwd`, with os.environ as `env` (bytes become the
    surrogates Python makes)."""
    argv = [os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    saved_cwd, saved_env = os.getcwd(), dict(os.environ)
    try:
        os.chdir(cwd or saved_cwd)
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as exc:  # --help
                status = exc.code
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        pm.db.initialize(None)
    return Result(argv, status, out.getvalue(), err.getvalue())


def run_all(cases, subprocess_ids=(), **kwargs):
    """{case id: (in-process Result, subprocess Result or None)} of (id, argv) cases.

    The subprocesses run four at a time while the in-process runs go one by one.
    """
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case_id: pool.submit(cli, *argv, **kwargs) for case_id,
                   argv in cases if case_id in subprocess_ids}
        kwargs.pop("close_stdout", None)
        local = {case_id: in_process(*argv, **kwargs) for case_id, argv in cases}
        return {case_id: (local[case_id], futures[case_id].result() if case_id in futures else None)
                for case_id, _ in cases}


def check(results, case_id, code, message=""):
    """Both runs of a case: in-process and, if it was chosen, as a subprocess."""
    for result in results[case_id]:
        if result is not None:
            result.check(code, message)


def snapshot(directory):
    """Every name in `directory` with its bytes (None for a directory)."""
    return {name: None if os.path.isdir(os.path.join(directory, name)) else
            open(os.path.join(directory, name), "rb").read() for name in sorted(
                os.listdir(directory))}


def make_pipeline_database(path):
    """An up-to-date pipeline database with non-ASCII data, a run in review with a clip, an error,
    unbound again."""
    pm.init_db(path)
    video = make_video("v1", title="café 💥", channel_name="Créateur 🎮")
    pm.PipelineRun.schedule("gaming", CYCLE_START)
    run = pm.PipelineRun.claim_next("w1")
    with run.fenced():
        make_clip(run, video)
    pm.ReviewLog.request(run, message_id="m1")
    pm.ErrorLog.record(RuntimeError("render crashed 💥 à la café\nsecond line"), "render",
                       pipeline_run=run)
    pm.ConfigOverride.set("greeting", "héllo 👋")
    pm.Analytics.record("yt1", view_count=100)
    pm.db.obj.close()
    pm.db.initialize(None)


def make_old_database(path):
    """A pipeline database of an older release: migrated up to 0003 only."""
    database = peewee.SqliteDatabase(path)
    Runner(database, str(pm.MIGRATIONS_DIR)).up("0003_short_upload_claim")
    database.close()


def make_foreign_database(path):
    """Another application's SQLite file."""
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (text TEXT)")
    connection.execute("INSERT INTO notes VALUES ('mine, not yours')")
    connection.commit()
    connection.close()


READ_COMMANDS = [["status"], ["runs"], ["errors", "--all"], ["analytics"], ["config", "get",
                                                                            "greeting"],
                 ["config", "list"], ["videos"], ["shorts"], ["reviews"], ["run", "show", "1"],
                 ["errors", "show", "1"], ["status", "--json"], ["runs", "--json"], ["runs",
                                                                                     "--niche",
                                                                                     "gaming",
                                                                                     "--status",
                                                                                     "review"],
                 ["videos", "--niche", "gaming", "--processed", "pending", "--json"], ["queue"],
                 ["stats"], ["digest", "--json"], ["run", "summary", "1"]]
WRITE_COMMANDS = [["resolve", "1"], ["retry", "1"], ["config", "set", "k", "1"], ["review",
                                                                                  "answer", "m1",
                                                                                  "approve"],
                  ["review", "answer", "m1", "skip", "1"], ["compact"], ["pause", "gaming"],
                  ["resume", "gaming"]]

# (target, exit status, what the error says)
TARGETS = [
    ("pipeline.db", 0, ""),
    ("foreign.db", 1, "it is not a pipeline database"),
    ("zero.db", 1, "the file is empty, so no database yet"),
    ("missing.db", 1, "there is no such file, so no database yet"),
    ("a_directory", 1, "it is a directory"),
    ("old.db", 1, "needs the migrations 0004_seed_schema, 0005_run_queue, 0006_analytics_latest, "
                  "0007_pipeline_tables, 0008_cycle: apply them with `pipeline-models migrate`"),
]

# (id, argv, exit status, what stderr says): every one is refused, so none may change a file.
CASES = [
    (f"{' '.join(command)} @ {target}", [*command, "--db", target], code, message)
    for command in READ_COMMANDS for target, code, message in TARGETS
] + [
    (f"{' '.join(command)} @ {target}", [*command, "--db", target], code, message)
    for command in WRITE_COMMANDS for target, code, message in TARGETS if target != "pipeline.db"
] + [
    ("limit -1", ["runs", "--limit", "-1"], 2,
     "argument --limit: the value must be a whole number, 1 or more, not -1"),
    ("limit 0", ["errors", "--limit", "0"], 2,
     "argument --limit: the value must be a whole number, 1 or more, not 0"),
    ("limit huge", ["runs", "--limit", HUGE], 2,
     "argument --limit: the value must be a whole number from 1 to 9223372036854775807, not"),
    ("limit 5000 digits", ["errors", "--limit", "9" * 5000], 2,
     "argument --limit: invalid int value"),
    ("limit float", ["runs", "--limit", "1e3"], 2, "argument --limit: invalid int value"),
    ("top -1", ["analytics", "--top", "-1"], 2,
     "argument --top: the value must be a whole number, 1 or more, not -1"),
    ("retry huge", ["retry", HUGE], 2, "argument RUN_ID: "),
    ("resolve -5", ["resolve", "-5"], 2,
     "argument ERROR_ID: the value must be a whole number, 1 or more, not -5"),
    ("videos 10**20", ["demo", "--videos", str(10 ** 20)], 2, "argument --videos: "),
    ("videos 0", ["demo", "--videos", "0"], 2, "argument --videos: "),
    ("status not UTF-8", ["runs", "--status", NOT_UTF8], 2, "is not valid UTF-8 text"),
    ("key not UTF-8", ["config", "set", NOT_UTF8, "1"], 2, "is not valid UTF-8 text"),
    ("status unknown", ["runs", "--status", "café💥"], 1, "'café💥' is not one of"),
    ("old status", ["runs", "--status", "published"], 1,
     "'published' is not one of: pending, running, review"),
    ("niche not UTF-8", ["videos", "--niche", NOT_UTF8], 2, "is not valid UTF-8 text"),
    ("niche empty", ["runs", "--niche", ""], 1, "--niche is empty"),
    ("processed unknown", ["videos", "--processed", "café💥"], 1,
     "DiscoveredVideo.processed: 'café💥' is not one of"),
    ("skip without ranks", ["review", "answer", "m1", "skip"], 2,
     "skip needs the ranks of the clips to drop"),
    ("skip rank unknown", ["review", "answer", "m1", "skip", "💥"], 1,
     "'💥' in 'skip 💥' is not a rank"),
    ("deep JSON", ["config", "set", "k", DEEP_JSON], 1, "nested too deeply"),
    ("key missing", ["config", "get", "nope 💥"], 1, "no config override named 'nope 💥'"),
    ("unknown command", ["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ("since unknown", ["stats", "--since", "café💥"], 2,
     "argument --since: since: 'café💥' is neither a time ago"),
    ("since negative", ["digest", "--since=-6h"], 2,
     "argument --since: since: '-6h' is neither a time ago"),
    ("pause dotted", ["pause", "a.b"], 1,
     "PipelineRun.niche: pause needs a niche's name without dots, not 'a.b'"),
    ("resume empty", ["resume", " "], 1,
     "PipelineRun.niche: resume needs the niche's name, e.g. 'gaming', not ' '"),
    ("demo @ foreign.db", ["demo", "--db", "foreign.db"], 1,
     "the demo will not use 'foreign.db': it is not a pipe"),
    ("demo @ sqlite URL", ["demo", "--db", "sqlite:///foreign.db"], 1,
     "the demo will not use 'sqlite:///foreign.db'"),
    ("demo @ pipeline.db", ["demo", "--db", "pipeline.db"], 1,
     "pipeline data the demo did not make"),
    ("demo @ old.db", ["demo", "--db", "old.db"], 1, "an older release"),
    ("demo @ zero.db, a -wal beside", ["demo", "--db", "zero.db"], 1,
     "'zero.db-wal' is left beside it"),
    ("demo @ a_directory", ["demo", "--db", "a_directory"], 1, "it is a directory"),
    ("demo @ :memory:", ["demo", "--db", ":memory:"], 1, "an in-memory one is not"),
]

# Run as subprocesses too: every command, every kind of target and of hostile input at least once.
SUBPROCESS = {f"{' '.join(command)} @ pipeline.db" for command in READ_COMMANDS} | {
    "runs @ foreign.db", "status @ zero.db", "analytics @ missing.db", "config list @ a_directory",
    "errors --all @ old.db", "resolve 1 @ foreign.db", "retry 1 @ zero.db",
    "config set k 1 @ old.db", "limit huge", "limit 5000 digits", "top -1", "retry huge",
    "resolve -5", "videos 10**20", "status not UTF-8", "status unknown", "deep JSON", "key missing",
    "demo @ foreign.db", "demo @ sqlite URL", "demo @ pipeline.db", "niche not UTF-8",
    "processed unknown", "skip rank unknown", "review answer m1 skip 1 @ missing.db",
}
CLOSED = [["runs"], ["errors", "--all"], ["config", "list"]]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A directory of targets: pipeline.db, old.db, foreign.db, zero.db (0 bytes, a stray
    zero.db-wal beside it), a_directory/; missing.db is not there."""
    directory = tmp_path_factory.mktemp("targets")
    make_pipeline_database(directory / "pipeline.db")
    make_old_database(directory / "old.db")
    make_foreign_database(directory / "foreign.db")
    (directory / "zero.db").touch()
    (directory / "zero.db-wal").write_bytes(b"not the demo's")
    (directory / "a_directory").mkdir()
    return directory


@pytest.fixture(scope="module")
def runs(files):
    """Every case, and the read commands with stdout closed early (as `| head` does); the files
    before and after."""
    before = snapshot(files)
    results = run_all([(case_id, argv) for case_id, argv, _, _ in CASES], SUBPROCESS, cwd=files)
    closed = [(" ".join(command), [*command, "--db", "pipeline.db"]) for command in CLOSED]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {("closed", case_id): pool.submit(cli, *argv, cwd=files, close_stdout=True)
                   for case_id, argv in closed}
        # A locale, or PYTHONIOENCODING, that cannot write the data: the output is UTF-8 all the
        # same.
        futures["ascii"] = pool.submit(cli, "errors", "--db", "pipeline.db", cwd=files,
                                       env=dict(ENV, PYTHONIOENCODING="ascii"))
        results.update({case_id: future.result() for case_id, future in futures.items()})
    return before, results, snapshot(files)


@pytest.mark.parametrize("case_id, argv, code, message", CASES, ids=[case[0] for case in CASES])
def test_every_command_on_every_target_and_hostile_input(runs, case_id, argv, code, message):
    _, results, _ = runs
    check(results, case_id, code, message)
    if code == 0:
        assert all(result.out.strip() and result.err == "" for result in results[case_id] if result)


def test_output_is_utf8_under_the_c_locale(runs):
    _, results, _ = runs
    shell = results["errors --all @ pipeline.db"][1]
    # one row: the first line, and a mark that more follows
    assert "render crashed 💥 à la café …" in shell.out
    assert results["config get greeting @ pipeline.db"][1].out == '"héllo 👋"\n'
    assert "'café💥'" in results["status unknown"][1].err
    results["ascii"].check(0)
    assert "render crashed 💥 à la café" in results["ascii"].out


@pytest.mark.parametrize("command", [" ".join(command) for command in CLOSED])
def test_closed_stdout_ends_quietly(runs, command):
    _, results, _ = runs
    result = results["closed", command]
    assert result.returncode == 141 and result.err == "", (result.returncode, result.err)


def test_nothing_read_or_refused_changed_a_file(runs):
    before, _, after = runs
    assert after.keys() == before.keys()  # no -wal, -shm or -journal, and missing.db still missing
    for name in before:
        assert after[name] == before[name], f"{name} changed"


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered stdout", "PYTHONUNBUFFERED"])
def test_the_demo_remakes_its_own_file_and_finishes_when_stdout_is_closed(tmp_path, buffered):
    # here: the other cases do not need the demo to import
    from pipeline_models.demo_db import fresh_database

    fresh_database(str(tmp_path / "own.db"))  # as an earlier demo left it
    make_video("from-the-earlier-demo")
    pm.db.obj.close()
    # Buffered (a terminal user's default), the unsent report must not break a later flush (starting
    # a worker process flushes stdout) and stop the demo half-way.
    env = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    result = cli("demo", "--db", "sqlite:///own.db", cwd=tmp_path, env=env, close_stdout=True)
    assert result.returncode == 141 and "Traceback" not in result.err, result.err
    assert sorted(os.listdir(tmp_path)) == ["own.db"]  # its -wal and -shm went with its connections
    pm.init_db(tmp_path / "own.db", readonly=True)
    videos = pm.DiscoveredVideo.select()
    assert videos.count() and not videos.where(
        pm.DiscoveredVideo.video_id == "from-the-earlier-demo").exists()
    # finished
    assert pm.PipelineRun.select().where(pm.PipelineRun.status == pm.RunStatus.uploaded).exists()
    assert not pm.PipelineRun.select().where(pm.PipelineRun.status == pm.RunStatus.running).exists()


# PostgreSQL


def _connect(url):
    parts = urlsplit(url)
    database = peewee.PostgresqlDatabase(parts.path.lstrip("/"), host=parts.hostname,
                                         port=parts.port, user=parts.username,
                                         password=parts.password)
    database.connect()
    return database


def schema(url):
    """Every column of every table at `url`, the row counts of the pipeline tables and the migration
    history."""
    database = _connect(url)
    try:
        columns = database.execute_sql(
            "SELECT table_schema, table_name, column_name, data_type FROM "
            "information_schema.columns "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "ORDER BY 1, 2, 3").fetchall()
        tables = {row[1] for row in columns}
        counts = {m._meta.table_name: database.execute_sql('SELECT COUNT(*) FROM '
                                                           f'"{m._meta.table_name}"').fetchone()
                  for m in pm.ALL_MODELS if m._meta.table_name in tables}
        history = (database.execute_sql("SELECT name FROM schema_migration ORDER BY name")
                   .fetchall() if "schema_migration" in tables else [])
        return columns, counts, history
    finally:
        database.close()


@pytest.fixture(scope="module")
def pg(pg_server):
    """An empty PostgreSQL database, a pipeline one the demo did not make, and a URL with a
    password."""
    empty = pg_server.new_database()
    pipeline = pg_server.new_database()
    make_pipeline_database(pipeline)
    parts = urlsplit(pg_server.url)
    secret = urlunsplit(
        parts._replace(
            netloc=f"{parts.username or 'postgres'}:s3cret@{parts.hostname}:{parts.port}",
            path="/nosuchdb"))
    return empty, pipeline, secret


def test_postgresql_read_and_write_commands_change_no_schema(pg):
    empty, pipeline, _ = pg
    before = {url: schema(url) for url in (empty, pipeline)}
    assert before[empty] == ([], {}, [])
    cases = [
        (f"{' '.join(c)} @ empty", [*c, "--db", empty]) for c in READ_COMMANDS + WRITE_COMMANDS]
    cases += [(f"{' '.join(c)} @ pipeline", [*c, "--db", pipeline]) for c in READ_COMMANDS]
    cases += [("review answer m1 skip 9 @ pipeline", ["review", "answer", "m1", "skip", "9", "--db",
                                                      pipeline])]
    shell = {"runs @ empty", "status @ empty", "config set k 1 @ empty", "config list @ pipeline",
             "runs --niche gaming --status review @ pipeline", "review answer m1 skip 9 @ pipeline"}
    results = run_all(cases, shell)
    for command in READ_COMMANDS + WRITE_COMMANDS:
        check(results, f"{' '.join(command)} @ empty", 1, "it is not a pipeline database")
    for command in READ_COMMANDS:
        check(results, f"{' '.join(command)} @ pipeline", 0)
    check(results, "review answer m1 skip 9 @ pipeline", 1,
          "run 1 has no clip ranked 9 (its ranks: 1)")
    shown = results["runs --niche gaming --status review @ pipeline"][1].out.splitlines()
    assert [line.split()[:4] for line in shown[1:]] == [["1", "gaming", "2026-01-01", "00:30"]]
    assert {url: schema(url) for url in (empty, pipeline)} == before


def test_the_demo_refuses_a_postgresql_database_it_did_not_make(pg):
    empty, pipeline, _ = pg
    before = schema(pipeline)
    results = run_all([("demo @ pipeline", ["demo", "--db", pipeline])], {"demo @ pipeline"})
    check(results, "demo @ pipeline", 1, "pipeline data the demo did not make")
    assert schema(pipeline) == before


def test_no_command_prints_a_password(pg):
    _, _, secret = pg
    commands = [["init"], ["migrate"], *READ_COMMANDS, *WRITE_COMMANDS]
    cases = [(" ".join(c), [*c, "--db", secret]) for c in commands]
    cases += [("--debug " + " ".join(c), ["--debug", *c, "--db", secret]) for c in (["status"],
                                                                                    ["retry", "1"])]
    results = run_all(cases, {"init", "status", "config set k 1", "review answer m1 skip 1",
                              "--debug retry 1"})
    # With the URL in $PIPELINE_DB: a command that defaults to it, and every help text.
    env = dict(ENV, PIPELINE_DB=secret)
    helps = [["--help"]] + [
        [*c[:2 if c[0] == "config" else 1], "--help"] for c in commands + [["demo"]]]
    results.update(run_all([(" ".join(h), h) for h in helps] + [("status from $PIPELINE_DB",
                                                                 ["status"])],
                           {"--help", "status --help", "status from $PIPELINE_DB"}, env=env))
    for case_id, pair in results.items():
        for result in filter(None, pair):
            assert "s3cret" not in result.out + result.err, case_id
            if case_id.endswith("--help"):
                assert result.returncode == 0 and "usage: pipeline-models" in result.out, case_id
            else:
                assert result.returncode == 1 and "postgres:***@" in result.err, (case_id,
                                                                                  result.err)
                assert ("Traceback" in result.err) == case_id.startswith("--debug"), (case_id,
                                                                                      result.err)
    assert "now postgresql://postgres:***@" in " ".join(results["status --help"][1].out.split())


def test_the_demo_prints_no_password(pg):
    _, _, secret = pg
    results = run_all([("demo", ["demo", "--db", secret]), ("--debug demo", ["--debug", "demo",
                                                                             "--db", secret])],
                      {"demo"})
    for case_id, pair in results.items():
        for result in filter(None, pair):
            assert "s3cret" not in result.out + result.err, case_id
            assert result.returncode == 1 and "postgres:***@" in result.err, (case_id, result.err)
            assert ("Traceback" in result.err) == case_id.startswith("--debug"), (case_id,
                                                                                  result.err)
