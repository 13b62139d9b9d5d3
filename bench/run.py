"""Benchmark: pipeline_models against raw sqlite3 and SQLAlchemy 2 on the workloads the pipeline runs.

    pip install -e . -r bench/requirements.txt
    python bench/run.py                      # everything: bulk ingest at 10k, 100k and 1M rows
    python bench/run.py --rows 10000,100000 --repeat 3

Each workload runs on a new WAL SQLite file, with the package's pragmas (synchronous=NORMAL, 32 MB
cache) on every contender's connection, the same schema for all (made by the package's migrations),
and the same input, produced by the same generator while it is consumed. Times are medians of
--repeat runs (standard library timers); ratios are to raw sqlite3. Peak memory is measured in fresh
processes.
"""
import argparse
import datetime
import importlib.util
import os
import platform
import resource
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

import peewee

import pipeline_models as pm
from pipeline_models.cli import status_rows

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 1, 1, tzinfo=UTC)
METRICS = pm.Analytics.RECORD_FIELDS


def snapshots(n, videos=1000):
    """n analytics rows (tuples in RECORD_FIELDS order), hourly per video, made as they are consumed."""
    for i in range(n):
        video, hour = i % videos, i // videos
        yield (f"yt{video:07d}", T0 + timedelta(hours=hour, seconds=video), i, i // 40, i // 400, 31.5, 0.045,
               i // 1000, None, i // 2, i // 300, i * 0.4)


def fresh_db(directory, name):
    """A new SQLite file with the package's schema and pragmas; the proxy is left bound to it."""
    path = os.path.join(directory, name)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    pm.init_db(path)
    return path


# Every contender's connections get the package's per-connection pragmas (WAL is in the file already).
PRAGMAS = [f"PRAGMA {k} = {v}" for k, v in pm.SQLITE_FILE_PRAGMAS.items() if k != "journal_mode"]


def raw_connection(path):
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


def timed(setup, run, repeat):
    """Median seconds of run(state) over `repeat` runs, each after a fresh setup()."""
    times = []
    for _ in range(repeat):
        state = setup()
        started = time.perf_counter()
        run(state)
        times.append(time.perf_counter() - started)
        if pm.db.obj is not None:
            pm.db.obj.close()
    return statistics.median(times)


# --- bulk ingest ---------------------------------------------------------------------------------

INSERT_SQL = "INSERT INTO analytics ({}) VALUES ({})".format(", ".join(METRICS), ", ".join("?" * len(METRICS)))


def ingest_raw(path, n):
    conn = raw_connection(path)
    iso = datetime.datetime.isoformat
    conn.execute("BEGIN")
    conn.executemany(INSERT_SQL, ((r[0], iso(r[1], " ", "microseconds")[:26], *r[2:]) for r in snapshots(n)))
    conn.execute("COMMIT")
    conn.close()


def ingest_package(path, n):
    pm.Analytics.record_many(snapshots(n))


def ingest_peewee_insert_many(path, n):
    with pm.db.atomic():
        for batch in peewee.chunked(snapshots(n), 500):
            pm.Analytics.insert_many(batch, fields=[getattr(pm.Analytics, f) for f in METRICS]).execute()


def sqlalchemy_models():
    from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, String, Text
    from sqlalchemy.orm import DeclarativeBase, mapped_column

    class Base(DeclarativeBase):
        pass

    class Analytics(Base):
        __tablename__ = "analytics"
        id = mapped_column(Integer, primary_key=True)
        youtube_video_id = mapped_column(String(100))
        measured_at = mapped_column(DateTime)
        view_count = mapped_column(BigInteger)
        like_count = mapped_column(BigInteger)
        comment_count = mapped_column(BigInteger)
        average_view_duration_seconds = mapped_column(Float)
        click_through_rate = mapped_column(Float)
        subscriber_gain = mapped_column(BigInteger)
        estimated_revenue_usd = mapped_column(Float)
        engaged_views = mapped_column(BigInteger)
        shares = mapped_column(BigInteger)
        watch_time_minutes = mapped_column(Float)

    class PipelineRun(Base):
        __tablename__ = "pipeline_runs"
        id = mapped_column(Integer, primary_key=True)
        discovered_video_id = mapped_column(ForeignKey("discovered_videos.id"))
        status = mapped_column(String(255))
        attempts = mapped_column(Integer)
        created_at = mapped_column(DateTime)
        updated_at = mapped_column(DateTime)
        last_error = mapped_column(Text)

    class DiscoveredVideo(Base):
        __tablename__ = "discovered_videos"
        id = mapped_column(Integer, primary_key=True)

    return Analytics, PipelineRun


def sqlalchemy_session(path):
    from sqlalchemy import create_engine, event
    from sqlalchemy.orm import Session

    engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", lambda conn, _: [conn.execute(pragma) for pragma in PRAGMAS])
    return Session(engine)


def ingest_sqlalchemy(path, n):
    from sqlalchemy import insert

    Analytics, _ = sqlalchemy_models()
    with sqlalchemy_session(path) as session, session.begin():
        for batch in peewee.chunked(snapshots(n), 2000):
            session.execute(insert(Analytics), [dict(zip(METRICS, row)) for row in batch])


# --- row by row, queries -------------------------------------------------------------------------

def seed_videos(n):
    pm.DiscoveredVideo.insert_rows([(f"v{i}",) for i in range(n)], fields=("youtube_video_id",))


def creates_raw(path, n):
    conn = raw_connection(path)
    now = datetime.datetime.now(UTC).isoformat(" ", "microseconds")[:26]
    conn.execute("BEGIN")
    for i in range(n):
        conn.execute("INSERT INTO pipeline_runs (discovered_video_id, status, attempts, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?)", (i + 1, "pending", 0, now, now))
    conn.execute("COMMIT")
    conn.close()


def creates_package(path, n):
    with pm.db.atomic():
        for i in range(n):
            pm.PipelineRun.create(discovered_video=i + 1)


def creates_sqlalchemy(path, n):
    _, PipelineRun = sqlalchemy_models()
    now = datetime.datetime.now(UTC)
    with sqlalchemy_session(path) as session, session.begin():
        for i in range(n):
            session.add(PipelineRun(discovered_video_id=i + 1, status="pending", attempts=0,
                                    created_at=now, updated_at=now))
            session.flush()


LATEST_GROUP_BY = """
    SELECT a.* FROM analytics a JOIN (
        SELECT youtube_video_id, MAX(measured_at) AS m FROM analytics GROUP BY youtube_video_id
    ) newest ON a.youtube_video_id = newest.youtube_video_id AND a.measured_at = newest.m"""


def claim_all_raw(path):
    conn = raw_connection(path)
    sql = ("UPDATE pipeline_runs SET status = 'running', worker = ?, attempts = attempts + 1, claim_token = ?, "
           "not_before = NULL, started_at = ?, heartbeat_at = ?, finished_at = NULL, updated_at = ? "
           "WHERE id = (SELECT id FROM pipeline_runs WHERE status = 'pending' AND (not_before IS NULL OR "
           "not_before <= ?) ORDER BY created_at, id LIMIT 1) RETURNING *")
    while True:
        now = datetime.datetime.now(UTC).isoformat(" ", "microseconds")[:26]
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(sql, ("w", secrets.token_hex(16), now, now, now, now)).fetchone()
        conn.execute("COMMIT")
        if row is None:
            break
    conn.close()


def claim_all_package(path):
    while pm.PipelineRun.claim_next("w") is not None:
        pass


def busy_year():
    """A year of a busy pipeline: 50 runs a day, a short, a review and a script each, some errors."""
    days, per_day = 365, 50
    seed_videos(days * per_day)
    statuses = ["published"] * 40 + ["rejected"] * 5 + ["failed"] * 3 + ["awaiting_review", "running"]
    pm.PipelineRun.insert_rows(
        ((i + 1, statuses[i % 50], 1, T0 + timedelta(minutes=i * 29)) for i in range(days * per_day)),
        fields=("discovered_video", "status", "attempts", "created_at"))
    pm.Short.insert_rows(((i + 1, "uploaded" if i % 50 < 40 else "rendered") for i in range(days * per_day)),
                         fields=("pipeline_run", "status"))
    # Reviews sent an hour after their run was queued, answered 1 to 240 minutes later (one in 50 never: held).
    sent = [T0 + timedelta(minutes=i * 29 + 60) for i in range(days * per_day)]
    pm.ReviewLog.insert_rows(((i + 1, None if i % 50 == 48 else "approve", sent[i],
                               None if i % 50 == 48 else sent[i] + timedelta(minutes=1 + i * 37 % 240), i % 50 == 48)
                              for i in range(days * per_day)),
                             fields=("pipeline_run", "action", "sent_at", "responded_at", "auto_held"))
    pm.Script.insert_rows(((i + 1, {}, 900, 60.0, "gpt-4.1-mini", 0.001 + i % 7 * 0.0005) for i in range(days * per_day)),
                          fields=("pipeline_run", "full_script_json", "total_char_count", "estimated_duration_seconds",
                                  "llm_model_used", "cost_usd"))
    pm.ErrorLog.insert_rows(((f"m{i % 6}", "E", "x", i % 10 == 0) for i in range(days * 15)),
                            fields=("module", "error_type", "error_message", "resolved"))


STATUS_RAW = [
    "SELECT status, COUNT(*) FROM pipeline_runs GROUP BY status",
    "SELECT status, COUNT(*) FROM shorts GROUP BY status",
    "SELECT COUNT(*) FROM review_logs WHERE action IS NULL",
    "SELECT COUNT(*) FROM review_logs WHERE action IS NULL AND auto_held = 1",
    "SELECT COUNT(*) FROM error_logs WHERE resolved = 0",
]


# --- the run -------------------------------------------------------------------------------------

def peak_rss_mb(rows):
    """Peak RSS (MB) of a fresh process that ingests `rows` analytics rows from a generator."""
    out = subprocess.run([sys.executable, __file__, "--memory-probe", str(rows)], check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip())


def memory_probe(rows):
    with tempfile.TemporaryDirectory() as tmp:
        fresh_db(tmp, "m.db")
        pm.Analytics.record_many(snapshots(rows))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def machine():
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import sqlalchemy
        sqla = sqlalchemy.__version__
    except ImportError:
        sqla = "not installed"
    return (f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores; Python "
            f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, peewee {peewee.__version__}, "
            f"SQLAlchemy {sqla}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # PIPELINE_MODELS_BENCH_QUICK=1 (set by tests/test_readme_shell.py): small defaults, so the README's
    # command is seen to work in seconds; its numbers are not the published ones.
    quick = os.environ.get("PIPELINE_MODELS_BENCH_QUICK") == "1"
    parser.add_argument("--rows", default="2000" if quick else "10000,100000,1000000",
                        help="bulk ingest sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=1 if quick else 3,
                        help="runs per measurement; the median is shown")
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        return memory_probe(args.memory_probe)
    try:
        import sqlalchemy  # noqa: F401
        have_sqla = True
    except ImportError:
        have_sqla = False
        print("SQLAlchemy is not installed (pip install -r bench/requirements.txt): its rows are left out\n")
    sizes = [int(s) for s in args.rows.split(",")]
    results, checks = [], []
    tmp = tempfile.mkdtemp(prefix="pm-bench-")

    def add(workload, contender, seconds, raw):
        results.append((workload, contender, seconds, seconds / raw if raw else None))

    for n in sizes:
        name = f"bulk ingest analytics, {n:,} rows"
        per = {}
        for contender, fn in [("raw sqlite3 executemany", ingest_raw), ("pipeline_models record_many", ingest_package),
                              ("peewee insert_many", ingest_peewee_insert_many)] + (
                [("SQLAlchemy 2 bulk insert", ingest_sqlalchemy)] if have_sqla else []):
            def setup():
                path = fresh_db(tmp, "ingest.db")
                if fn in (ingest_raw, ingest_sqlalchemy):
                    pm.db.obj.close()
                return path
            per[contender] = timed(setup, lambda path: fn(path, n), args.repeat)
            add(name, contender, per[contender], per["raw sqlite3 executemany"])
        ours, raw = per["pipeline_models record_many"], per["raw sqlite3 executemany"]
        checks.append((f"{name}: at most 1.5 x raw sqlite3", ours <= 1.5 * raw, f"{ours / raw:.2f} x"))
        if have_sqla:
            sqla = per["SQLAlchemy 2 bulk insert"]
            checks.append((f"{name}: faster than SQLAlchemy 2", ours < sqla, f"{ours / sqla:.2f} x SQLAlchemy"))

    n = 5000
    name = f"row-by-row creates of runs in one transaction, {n:,}"
    per = {}

    def setup_runs():
        path = fresh_db(tmp, "runs.db")
        seed_videos(n)  # one run per video: a video has one active run
        return path
    for contender, fn in [("raw sqlite3 execute", creates_raw), ("pipeline_models create", creates_package)] + (
            [("SQLAlchemy 2 ORM add + flush", creates_sqlalchemy)] if have_sqla else []):
        per[contender] = timed(setup_runs, lambda path: fn(path, n), args.repeat)
        add(name, contender, per[contender], per["raw sqlite3 execute"])

    latest = {}
    for per_video in (10, 100):
        path = fresh_db(tmp, f"latest{per_video}.db")
        pm.Analytics.record_many(snapshots(1000 * per_video))
        pm.db.execute_sql("ANALYZE")
        name = f"latest snapshot of 1,000 videos, {per_video} snapshots each"
        conn = raw_connection(path)
        raw = timed(lambda: None, lambda _: conn.execute(pm.Analytics._LATEST_SQL).fetchall(), args.repeat * 3)
        add(name, "raw sqlite3, same query", raw, raw)
        latest[per_video] = timed(lambda: pm.init_db(path), lambda _: pm.Analytics.latest(), args.repeat * 3)
        add(name, "pipeline_models Analytics.latest()", latest[per_video], raw)
        group_by = timed(lambda: None, lambda _: conn.execute(LATEST_GROUP_BY).fetchall(), args.repeat * 3)
        add(name, "raw sqlite3, GROUP BY MAX (for contrast)", group_by, raw)
        conn.close()
    checks.append(("Analytics.latest(): 100 snapshots/video at most 1.5 x its time at 10",
                   latest[100] <= 1.5 * latest[10], f"{latest[100] / latest[10]:.2f} x"))

    n = 2000
    name = f"claim_next until the queue is empty, {n:,} runs"

    def setup_queue():
        path = fresh_db(tmp, "queue.db")
        seed_videos(n)
        pm.PipelineRun.insert_rows(((i + 1,) for i in range(n)), fields=("discovered_video",))
        return path
    raw = timed(lambda: (setup_queue(), pm.db.obj.close())[0], claim_all_raw, args.repeat)
    add(name, "raw sqlite3, same statement", raw, raw)
    ours = timed(setup_queue, lambda _: claim_all_package(_), args.repeat)
    add(name, "pipeline_models claim_next", ours, raw)

    path = fresh_db(tmp, "year.db")
    busy_year()
    name = "status summary, a year of a busy pipeline (18,250 runs)"
    conn = raw_connection(path)
    raw = timed(lambda: None, lambda _: [conn.execute(sql).fetchall() for sql in STATUS_RAW], args.repeat * 3)
    add(name, "raw sqlite3, same counts", raw, raw)
    ours = timed(lambda: pm.init_db(path), lambda _: status_rows(), args.repeat * 3)
    add(name, "pipeline_models status", ours, raw)
    conn.close()

    # The HTML report on the same year, with analytics as big as the largest ingest (a million by default).
    have_plotly = importlib.util.find_spec("plotly") is not None
    if not have_plotly:
        print("plotly is not installed (pip install -e '.[report]'): the report's row is left out\n")
    else:
        from pipeline_models import report
        pm.init_db(path)
        pm.Analytics.record_many(snapshots(max(sizes), videos=2000))
        pm.db.obj.close()  # no ANALYZE: the report must not need one to be fast
        name = f"HTML report, the busy year and {max(sizes):,} analytics snapshots"
        seconds = timed(lambda: pm.init_db(path, readonly=True), lambda _: report.render(), args.repeat)
        add(name, "pipeline_models report.render()", seconds, None)
        checks.append((f"report on a year of a busy pipeline ({max(sizes):,} snapshots): at most 5 seconds",
                       seconds <= 5, f"{seconds:.2f} s"))

    small, large = min(sizes), max(sizes)
    rss_small, rss_large = peak_rss_mb(small), peak_rss_mb(large)
    checks.append((f"peak RSS, ingest from a generator: {large:,} rows vs {small:,}", rss_large - rss_small < 50,
                   f"{rss_small:.0f} MB -> {rss_large:.0f} MB"))

    print(f"machine: {machine()}\nmedian of {args.repeat} runs (x3 for the queries); ratio to raw sqlite3\n")
    width = max(len(r[0]) for r in results)
    cwidth = max(len(r[1]) for r in results)
    print(f"{'workload':<{width}}  {'contender':<{cwidth}}  {'median s':>9}  {'ratio':>6}")
    previous = None
    for workload, contender, seconds, ratio in results:
        shown = workload if workload != previous else ""
        previous = workload
        shown_ratio = "-" if ratio is None else f"{ratio:.2f}"  # no raw sqlite3 contender to compare with
        print(f"{shown:<{width}}  {contender:<{cwidth}}  {seconds:>9.4f}  {shown_ratio:>6}")
    print("\ntargets:")
    for text, ok, detail in checks:
        print(f"  [{'met ' if ok else 'MISS'}] {text}: {detail}")


if __name__ == "__main__":
    sys.exit(main())
