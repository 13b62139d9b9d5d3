"""Benchmark: pipeline_models against raw sqlite3 and SQLAlchemy 2 on the workloads the pipeline
runs.

    pip install -e . -r bench/requirements.txt
    python bench/run.py                      # everything: bulk ingest at 10k, 100k and 1M rows
    python bench/run.py --write              # and the table into bench/RESULTS.txt and
                                             # docs/performance.md (--page, --results: elsewhere)
    python bench/run.py --keep               # keep the datasets (about 1.5 GB) and reuse them
    python bench/run.py --rows 10000,100000 --repeat 3
    python bench/run.py --pg-ingest-only --pg postgresql://postgres@127.0.0.1/postgres \
        --rows 1000000 --repeat 1

Each workload runs on a new WAL SQLite file, with the package's pragmas (synchronous=NORMAL, 32 MB
cache) on every contender's connection, the same schema for all (made by the package's migrations),
and the same input, produced by the same generator while it is consumed. Times are medians of
--repeat runs (standard library timers); ratios are to raw sqlite3. Peak memory is measured in fresh
processes. Every file and database a run makes is removed when it ends (on an error, Ctrl-C or
SIGTERM too) unless --keep, which keeps the reusable datasets and prints where they are.
"""
import argparse
import datetime
import importlib.util
import itertools
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import timedelta

import peewee

import pipeline_models as pm
from pipeline_models.queries import percentile, status_rows

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 1, 1, tzinfo=UTC)
METRICS = pm.Analytics.RECORD_FIELDS


def snapshots(n, videos=1000):
    """n analytics rows (tuples in RECORD_FIELDS order), hourly per video, made as they are
    consumed."""
    for i in range(n):
        video, hour = i % videos, i // videos
        yield (f"yt{video:07d}", T0 + timedelta(hours=hour, seconds=video), i, i // 40, i // 400,
               31.5, 0.045, i // 1000, None, i // 2, i // 300, i * 0.4)


def fresh_db(directory, name):
    """A new SQLite file with the package's schema and pragmas; the proxy is left bound to it."""
    path = os.path.join(directory, name)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    pm.init_db(path)
    return path


# Every contender's connections get the package's per-connection pragmas (WAL is in the file
# already).
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

INSERT_SQL = "INSERT INTO analytics ({}) VALUES ({})".format(", ".join(METRICS),
                                                             ", ".join("?" * len(METRICS)))


def ingest_raw(path, n):
    """The insertion alone: analytics_latest's trigger dropped, nothing refreshed (a bound, not a
    rival)."""
    conn = raw_connection(path)
    iso = datetime.datetime.isoformat
    conn.execute("BEGIN")
    conn.execute("DROP TRIGGER analytics_latest_insert")
    conn.executemany(INSERT_SQL,
                     ((r[0], iso(r[1], " ", "microseconds")[:26], *r[2:]) for r in snapshots(n)))
    conn.execute("COMMIT")
    conn.close()


def ingest_package(path, n):
    pm.Analytics.record_many(snapshots(n))


def ingest_peewee_insert_many(path, n):
    with pm.db.atomic():
        for batch in peewee.chunked(snapshots(n), 500):
            pm.Analytics.insert_many(batch,
                                     fields=[getattr(pm.Analytics, f) for f in METRICS]).execute()


def sqlalchemy_models():
    from sqlalchemy import BigInteger, DateTime, Float, Integer, String, Text
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
        niche = mapped_column(String(64))
        cycle_start = mapped_column(DateTime)
        cycle_end = mapped_column(DateTime)
        status = mapped_column(String(32))
        retry_count = mapped_column(Integer)
        created_at = mapped_column(DateTime)
        updated_at = mapped_column(DateTime)
        error_message = mapped_column(Text)

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

# The pipeline's niches, staggered by 30 minutes; a run per niche per 6-hour cycle.
NICHES = {"gaming": 30, "sports": 60, "funny": 90, "entertainment": 120}
CYCLE = timedelta(hours=6)


def cycle_of(i):
    """(niche, cycle_start, cycle_end) of the i-th run of a year: the niches in turn, cycle after
    cycle."""
    niche = list(NICHES)[i % len(NICHES)]
    start = T0 + timedelta(minutes=NICHES[niche]) + CYCLE * (i // len(NICHES))
    return niche, start, start + CYCLE


def seed_runs(n):
    """n pending runs, one per niche and cycle."""
    pm.PipelineRun.insert_rows((cycle_of(i) for i in range(n)), fields=("niche", "cycle_start",
                                                                        "cycle_end"))


def sqlite_time(moment):
    """A UTC time as the package stores it in SQLite: 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    return moment.isoformat(" ", "microseconds")[:26]


def creates_raw(path, n):
    conn = raw_connection(path)
    now = sqlite_time(datetime.datetime.now(UTC))
    conn.execute("BEGIN")
    for i in range(n):
        niche, start, end = cycle_of(i)
        conn.execute("INSERT INTO pipeline_runs (niche, cycle_start, cycle_end, status, "
                     "retry_count, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (niche, sqlite_time(start), sqlite_time(end), "pending", 0, now, now))
    conn.execute("COMMIT")
    conn.close()


def creates_package(path, n):
    with pm.db.atomic():
        for i in range(n):
            niche, start, end = cycle_of(i)
            pm.PipelineRun.create(niche=niche, cycle_start=start, cycle_end=end)


def creates_sqlalchemy(path, n):
    _, PipelineRun = sqlalchemy_models()
    now = datetime.datetime.now(UTC)
    with sqlalchemy_session(path) as session, session.begin():
        for i in range(n):
            niche, start, end = cycle_of(i)
            session.add(PipelineRun(niche=niche, cycle_start=start, cycle_end=end, status="pending",
                                    retry_count=0, created_at=now, updated_at=now))
            session.flush()


LATEST_GROUP_BY = """
    SELECT a.* FROM analytics a JOIN (
        SELECT youtube_video_id, MAX(measured_at) AS m FROM analytics GROUP BY youtube_video_id
    ) newest ON a.youtube_video_id = newest.youtube_video_id AND a.measured_at = newest.m"""


def claim_all_raw(path):
    conn = raw_connection(path)
    sql = ("UPDATE pipeline_runs SET status = 'running', worker = ?, claim_token = ?, not_before = "
           "NULL, started_at = ?, heartbeat_at = ?, completed_at = NULL, updated_at = ? "
           "WHERE id = (SELECT id FROM pipeline_runs WHERE status = 'pending' AND (not_before IS "
           "NULL OR not_before <= ?) ORDER BY cycle_start, id LIMIT 1) AND status = 'pending' "
           "RETURNING *")
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
    """A year of the pipeline at its largest: 4 niches, a run per niche per 6-hour cycle, each with
    14 candidate videos found (9 used), 9 ranked clips, 4 shorts, a review and a script; some
    errors. Returns the runs."""
    runs, found, used, shorts_per_run = 365 * 4 * len(NICHES), 14, 9, 4
    # 40 in 50 uploaded, 5 rejected, 3 failed, one in review and one running.
    statuses = ["uploaded"] * 40 + ["rejected"] * 5 + ["failed"] * 3 + ["review", "running"]
    pm.DiscoveredVideo.insert_rows(
        ((f"v{i}", f"video {i}", "a creator", "UCcreator", f"https://www.youtube.com/watch?v=v{i}",
          cycle_of(i // found)[0], int(i % found < used), float(i % found), cycle_of(i // found)[1])
         for i in range(runs * found)),
        fields=("video_id", "title", "channel_name", "channel_id", "url", "niche", "processed",
                "viral_score", "discovered_at"))

    # Uploaded videos get the ids the analytics snapshots use (yt0000000, ...): the long-form, then
    # its shorts.
    def youtube_id(i, short=None):
        return f"yt{i * (1 + shorts_per_run) + (0 if short is None else 1 + short):07d}"

    failed = "gave up after 3 attempts: RuntimeError: render failed"
    pm.PipelineRun.insert_rows(
        ((*cycle_of(i), statuses[i % 50], 2 if statuses[i % 50] == "failed" else 0,
          failed if statuses[i % 50] == "failed" else None, cycle_of(i)[1] + timedelta(minutes=5),
          cycle_of(i)[1] + timedelta(hours=3) if statuses[i % 50] in ("uploaded", "rejected",
                                                                      "failed") else None,
          youtube_id(i) if statuses[i % 50] == "uploaded" else None) for i in range(runs)),
        fields=("niche", "cycle_start", "cycle_end", "status", "retry_count", "error_message",
                "created_at", "completed_at", "youtube_video_id"))
    pm.Clip.insert_rows(((i // used + 1, (i // used) * found + i % used + 1, i % used + 1, 30.0,
                          48.0, 18.0)
                         for i in range(runs * used)),
                        fields=("pipeline_run", "discovered_video", "rank_position",
                                "start_time_seconds", "end_time_seconds", "clip_duration_seconds"))
    short_status = {"uploaded": "uploaded", "rejected": "rejected", "failed": "pending",
                    "review": "review", "running": "pending"}
    pm.Short.insert_rows(((i // shorts_per_run + 1,
                           i // shorts_per_run * used + i % shorts_per_run + 1,
                           short_status[statuses[i // shorts_per_run % 50]],
                           youtube_id(i // shorts_per_run, i % shorts_per_run)
                           if statuses[i // shorts_per_run % 50] == "uploaded" else None)
                          for i in range(runs * shorts_per_run)),
                         fields=("pipeline_run", "clip", "status", "youtube_video_id"))
    # Reviews sent an hour after their run was scheduled, answered 1 to 240 minutes later (the one
    # in review: held, never answered); none for the running run.
    asked = [i for i in range(runs) if statuses[i % 50] != "running"]
    sent = {i: cycle_of(i)[1] + timedelta(minutes=65) for i in asked}
    answer = {"uploaded": "approve", "rejected": "reject", "failed": "approve", "review": None}
    pm.ReviewLog.insert_rows(((i + 1, answer[statuses[i % 50]], sent[i],
                               None if statuses[i % 50] == "review" else sent[i] + timedelta(
                                   minutes=1 + i * 37 % 240),
                               statuses[i % 50] == "review") for i in asked),
                             fields=("pipeline_run", "action", "sent_at", "responded_at",
                                     "auto_held"))
    pm.Script.insert_rows(
        ((i + 1, {}, 900, 60.0, "gpt-4.1-mini", 0.001 + i % 7 * 0.0005) for i in range(runs)),
        fields=("pipeline_run", "full_script_json", "total_char_count",
                "estimated_duration_seconds", "llm_model_used", "cost_usd"))
    pm.ErrorLog.insert_rows(((f"m{i % 6}", "E", "x", i % 10 == 0) for i in range(365 * 15)),
                            fields=("module", "error_type", "error_message", "resolved"))
    return runs


STATUS_RAW = [
    "SELECT status, COUNT(*) FROM pipeline_runs GROUP BY status",
    "SELECT status, COUNT(*) FROM shorts GROUP BY status",
    "SELECT COUNT(*) FROM review_logs WHERE action IS NULL",
    "SELECT COUNT(*) FROM review_logs WHERE action IS NULL AND auto_held = 1",
    "SELECT COUNT(*) FROM error_logs WHERE resolved = 0",
]


# --- retention: Analytics.compact ----------------------------------------------------------------

YEAR_HOURS = 365 * 24


def compaction_options(parser, quick):
    """The compaction workload's command line options."""
    parser.add_argument("--compact-videos", type=int, default=10 if quick else 100,
                        help="videos with a year of hourly snapshots each (8,760 rows) for the "
                             "compaction workload")
    parser.add_argument("--compact-10m", action="store_true",
                        help="also compare compaction's peak RSS at 10M rows with 1M (builds a "
                             "10M-row file: minutes)")


def file_mb(path):
    """The size of a SQLite file and its WAL, in MB."""
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s)) / 1e6


def year_of_hourly(directory, name, videos):
    """A new file holding a year of hourly snapshots of `videos` videos; the proxy is left bound to
    it."""
    path = fresh_db(directory, name)
    pm.Analytics.record_many(snapshots(videos * YEAR_HOURS, videos=videos))
    return path


def compact_year():
    """Compact a year of hourly snapshots (2026) as at its end: daily before the last 30 days."""
    return pm.Analytics.compact(timedelta(days=30), now=T0 + timedelta(days=365))


def probe(function, *argv):
    """This module's `function(*argv)` in a fresh process, its stdin and stdout piped."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import run; run.{function}(*sys.argv[1:])")
    return subprocess.Popen([sys.executable, "-c", code, *map(str, argv)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def claimer_probe(path):
    """A worker claiming a run every 10 ms until its stdin closes; prints how long claim_next took,
    as JSON."""
    pm.init_db(path)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    seconds, failures = [], []
    while not stop.is_set():
        started = time.perf_counter()
        try:
            pm.PipelineRun.claim_next("bench-claimer")  # BEGIN IMMEDIATE: waits for the write lock
        except Exception as exc:  # "database is locked" after the busy timeout, above all
            failures.append(f"{type(exc).__name__}: {exc}")
        seconds.append(time.perf_counter() - started)
        time.sleep(0.01)
    seconds.sort()
    print(json.dumps({"claims": len(seconds), "max": seconds[-1],
                      "p99": seconds[int(len(seconds) * 0.99)], "failed": len(failures),
                      "failures": failures[:3]}), flush=True)


def compact_probe(path):
    """Compact the year of hourly snapshots at `path`; print the process's peak RSS in MB and the
    seconds it took."""
    pm.init_db(path)
    started = time.perf_counter()
    compact_year()
    seconds = time.perf_counter() - started
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, seconds, flush=True)


def compaction_workloads(args, directory, add, checks):
    """A year of hourly snapshots compacted to daily after 30 days, while a worker claims runs; then
    VACUUM."""
    videos = args.compact_videos
    path = year_of_hourly(directory, "compact.db", videos)
    # runs enough for the claimer: 100 claims a second for the whole compaction
    seed_runs(50 * videos)
    rows = pm.Analytics.select().count()
    pm.db.obj.close()  # the WAL checkpointed into the file
    size_before = file_mb(path)

    claimer = probe("claimer_probe", path)
    assert claimer.stdout.readline().strip() == "ready"
    pm.init_db(path)
    started = time.perf_counter()
    done = compact_year()
    seconds = time.perf_counter() - started
    claimer.stdin.close()
    claims = json.loads(claimer.stdout.readline())
    claimer.wait()
    counts = pm.Analytics.select(peewee.fn.COUNT(pm.Analytics.id)).group_by(
        pm.Analytics.youtube_video_id)
    per_video = sorted({n for n, in counts.tuples()})
    pm.db.obj.close()
    size_compacted = file_mb(path)

    # The documented step: `compact --vacuum` (nothing is old enough at --older-than 36500: only the
    # VACUUM).
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline_models", "compact", "--vacuum", "--older-than",
                    "36500", "--db", path], check=True, capture_output=True)
    vacuum_seconds = time.perf_counter() - started
    size_after = file_mb(path)

    name = (f"compact a year of hourly snapshots to daily after 30 days, {videos:,} videos "
            f"({rows:,} rows)")
    add(name, f"pipeline_models Analytics.compact ({done['batches']:,} batches)", seconds, None)
    add(name, "then pipeline-models compact --vacuum", vacuum_seconds, None)
    checks.append((f"compaction after 30 days: rows per video of {YEAR_HOURS:,} hourly = 30 x 24 + "
                   "335", per_video == [30 * 24 + 335],
                   f"{', '.join(map(str, per_video))} ({YEAR_HOURS / per_video[0]:.1f}x fewer), "
                   f"{seconds:.1f} s"))
    checks.append(("compaction + VACUUM: the file at most 1/7 of its size",
                   size_after * 7 <= size_before,
                   f"{size_before:.1f} MB -> {size_compacted:.1f} MB compacted -> {size_after:.1f} "
                   f"MB after VACUUM ({size_before / size_after:.1f}x smaller)"))
    checks.append(("compaction: a worker's claim_next during it takes at most 1 s, none fails",
                   claims["max"] <= 1 and claims["failed"] == 0,
                   f"max {claims['max']:.3f} s, p99 {claims['p99']:.3f} s over "
                   f"{claims['claims']:,} claims, {claims['failed']} failed {claims['failures']}"))

    if args.compact_10m:
        peaks = {}
        for target in (1_000_000, 10_000_000):
            rss_path = year_of_hourly(directory, "compact-rss.db", target // YEAR_HOURS)
            pm.db.obj.close()
            proc = probe("compact_probe", rss_path)
            peaks[target], seconds = map(float, proc.communicate()[0].split())
            add(f"compact a year of hourly snapshots, {target // YEAR_HOURS:,} videos ({target:,} "
                "rows), no claimer", "pipeline_models Analytics.compact", seconds, None)
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(rss_path + suffix):
                    os.remove(rss_path + suffix)
        small, large = peaks[1_000_000], peaks[10_000_000]
        checks.append(("peak RSS, compaction: 10M rows within 10% of 1M", large <= 1.1 * small,
                       f"{small:.0f} MB -> {large:.0f} MB"))


# --- latest(), top(n) and growth() at 1M and 10M snapshots; bytes per snapshot; the triggers' cost

# The previous release's latest(): a skip-scan of idx_analytics_video, one seek per video for the
# next video id and one for its newest snapshot; its top(n) was latest()'s first n. For contrast.
SKIP_SCAN_LATEST = """
    WITH RECURSIVE videos(vid) AS (
        SELECT MIN(youtube_video_id) FROM analytics
        UNION ALL
        SELECT (SELECT MIN(youtube_video_id) FROM analytics WHERE youtube_video_id > vid)
        FROM videos WHERE vid IS NOT NULL
    )
    SELECT a.* FROM videos JOIN analytics a ON a.id = (
        SELECT id FROM analytics WHERE youtube_video_id = videos.vid
        ORDER BY measured_at DESC, id DESC LIMIT 1)
    ORDER BY a.view_count IS NULL, a.view_count DESC, a.youtube_video_id"""


def query_options(parser, quick):
    """The query workloads' command line options."""
    parser.add_argument("--big", type=int, default=20_000 if quick else 10_000_000,
                        help="snapshots in the large query dataset (10M by default: building it "
                             "takes minutes; with --keep, once: it is kept in --query-data)")
    parser.add_argument("--small", type=int, default=2_000 if quick else 1_000_000,
                        help="snapshots in the small query dataset, which the large one is "
                             "compared with")
    parser.add_argument("--query-videos", type=int, default=50 if quick else 5_000,
                        help="videos in both datasets")
    parser.add_argument("--query-data", metavar="DIR",
                        help="directory keeping the SQLite datasets between runs (default with "
                             f"--keep: {os.path.join(tempfile.gettempdir(), 'pm-bench-queries')}; "
                             "PostgreSQL keeps databases pm_bench_q_ROWS_VIDEOS with --keep); "
                             "without either, they are removed at the end")


def query_dataset_sqlite(directory, rows, videos):
    """A SQLite file of `rows` hourly snapshots of `videos` videos, made once and kept in
    `directory`."""
    os.makedirs(directory, exist_ok=True)
    name = f"analytics-{rows}-{videos}.db"
    path, building = os.path.join(directory, name), os.path.join(directory, name + ".building")
    if os.path.exists(path) and not os.path.exists(building):
        return path
    # a run killed while building leaves this: the next one starts again
    open(building, "w").close()
    fresh_db(directory, name)
    pm.Analytics.record_many(snapshots(rows, videos=videos))
    pm.db.execute_sql("ANALYZE")
    pm.db.obj.close()
    os.remove(building)
    return path


def pg_url(url, name):
    """`url` with its database replaced by `name`."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def query_dataset_postgres(url, rows, videos):
    """A PostgreSQL database of the same snapshots, loaded once with one COPY and kept; returns its
    URL."""
    import psycopg

    name = f"pm_bench_q_{rows}_{videos}"
    with psycopg.connect(url, autocommit=True) as server:
        done = server.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE "
                              "datname = %s", (name,)).fetchone()
        if done and done[0] == "complete":
            return pg_url(url, created(url, name))
        server.execute(f'DROP DATABASE IF EXISTS "{name}"')
        server.execute(f'CREATE DATABASE "{created(url, name)}"')
    target = pg_url(url, name)
    pm.init_db(target).close()
    with psycopg.connect(target, autocommit=True) as conn:
        with conn.transaction(), conn.cursor().copy(
                f"COPY analytics ({', '.join(METRICS)}) FROM STDIN") as copy:
            for row in snapshots(rows, videos=videos):
                copy.write_row(row)
        conn.execute("VACUUM ANALYZE")
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS 'complete'")
    return target


def query_contenders(backend, raw, videos):
    """(workload, [(contender, function)], repeat) for one dataset; `raw` runs SQL through the raw
    driver."""
    mark = "?" if backend == "SQLite" else "%s"
    video, since = f"yt{videos // 2:07d}", T0 + timedelta(hours=1, seconds=videos // 2)
    growth_sql = pm.Analytics._GROWTH_SQL.format(p=mark, counters=", ".join(pm.Analytics.COUNTERS))
    growth_params = (video, pm.Analytics.measured_at.db_value(since)) * 2
    driver = "raw sqlite3" if backend == "SQLite" else "raw psycopg"
    return [
        ("latest(), every video", [
            (f"{driver}, same query", lambda: raw(pm.Analytics._LATEST_SQL)),
            ("Analytics.latest(rows='tuples')", lambda: pm.Analytics.latest(rows="tuples")),
            ("Analytics.latest(rows='namedtuples')",
             lambda: pm.Analytics.latest(rows="namedtuples")),
            ("Analytics.latest(rows='dicts')", lambda: pm.Analytics.latest(rows="dicts")),
            ("Analytics.latest() (models)", lambda: pm.Analytics.latest()),
            (f"{driver}, previous release's skip-scan", lambda: raw(SKIP_SCAN_LATEST)),
        ], 30),
        ("top(10)", [
            (f"{driver}, same query", lambda: raw(pm.Analytics._TOP_SQL.format(p=mark), (10,))),
            ("Analytics.top(10) (models)", lambda: pm.Analytics.top(10)),
            (f"{driver}, previous release's skip-scan", lambda: raw(SKIP_SCAN_LATEST)[:10]),
        ], 60),
        ("growth() of one video", [
            (f"{driver}, same query", lambda: raw(growth_sql, growth_params)),
            ("Analytics.growth()", lambda: pm.Analytics.growth(video, since)),
        ], 200),
    ]


def storage_sqlite(path):
    """Bytes per snapshot (dbstat: pages of table and indexes) of ours and of raw tables of the same
    values."""
    conn = raw_connection(path)
    rows = conn.execute("SELECT COUNT(*) FROM analytics").fetchone()[0]

    def pages(*names):
        marks = ", ".join("?" * len(names))
        return conn.execute(f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})",
                            names).fetchone()[0] or 0

    ours = {"table": pages("analytics"), "index": pages("idx_analytics_video"),
            "latest": pages("analytics_latest", "analytics_latest_view_count")}
    # The same values in their tightest natural types, in a scratch file: the time as INTEGER
    # microseconds since 1970 instead of 26 characters of text.
    scratch = path + ".raw"

    def is_float(metric):
        return isinstance(getattr(pm.Analytics, metric), peewee.FloatField)

    if os.path.exists(scratch):
        os.remove(scratch)
    conn.execute("ATTACH DATABASE ? AS raw", (scratch,))
    conn.execute("CREATE TABLE raw.analytics (id INTEGER PRIMARY KEY, youtube_video_id TEXT, "
                 "measured_at INTEGER, "
                 + ", ".join(f"{m} {'REAL' if is_float(m) else 'INTEGER'}"
                             for m in pm.Analytics.METRICS) + ")")
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO raw.analytics SELECT id, youtube_video_id, "
                 f"CAST(round((julianday(measured_at) - 2440587.5) * 86400000000) AS INTEGER), "
                 f"{', '.join(pm.Analytics.METRICS)} FROM main.analytics ORDER BY id")
    conn.execute("COMMIT")
    raw_pages = "SELECT SUM(pgsize) FROM dbstat WHERE schema = 'raw' AND name = ?"
    raw_table = conn.execute(raw_pages, ("analytics",)).fetchone()[0]
    conn.execute("CREATE INDEX raw.raw_video ON analytics (youtube_video_id, measured_at)")
    raw_index = conn.execute(raw_pages, ("raw_video",)).fetchone()[0]
    conn.execute("DETACH DATABASE raw")
    conn.close()
    os.remove(scratch)
    return rows, ours, {"table": raw_table, "index": raw_index}


def storage_postgres(url):
    """Bytes per snapshot (pg_relation_size) of ours and of a raw table of the same values, columns
    aligned."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM analytics").fetchone()[0]
        size = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        ours = {"table": size("SELECT pg_table_size('analytics')"),
                "index": size("SELECT pg_indexes_size('analytics')"),
                "latest": size("SELECT pg_total_relation_size('analytics_latest')")}
        # Widest types first (no alignment padding), the id last: what a careful hand would make.
        wide = [m for m in pm.Analytics.METRICS]
        conn.execute("DROP TABLE IF EXISTS raw_analytics")
        conn.execute(f"CREATE TABLE raw_analytics AS SELECT measured_at, {', '.join(wide)}, id, "
                     "youtube_video_id FROM analytics ORDER BY id")
        conn.execute("VACUUM ANALYZE raw_analytics")
        raw_table = size("SELECT pg_table_size('raw_analytics')")
        conn.execute("CREATE INDEX raw_analytics_video ON raw_analytics (youtube_video_id, "
                     "measured_at)")
        raw_index = size("SELECT pg_indexes_size('raw_analytics')")
        conn.execute("DROP TABLE raw_analytics")
    return rows, ours, {"table": raw_table, "index": raw_index}


def storage_check(backend, rows, ours, raw):
    """The bytes per snapshot as a check: analytics_latest, the price of fast queries, adds under
    1%."""
    per = {k: v / rows for k, v in ours.items()}
    raw_per = {k: v / rows for k, v in raw.items()}
    total = sum(per.values())
    detail = (f"{total:.1f} B/snapshot = analytics {per['table']:.1f} + its indexes "
              f"{per['index']:.1f} + analytics_latest {per['latest']:.2f}; raw table of the same "
              f"values {raw_per['table']:.1f}, with the same (video, time) index "
              f"{raw_per['table'] + raw_per['index']:.1f} "
              f"({total / (raw_per['table'] + raw_per['index']):.2f} x)")
    return (f"{backend}, bytes per snapshot at {rows:,} rows: analytics_latest adds under 1%",
            per["latest"] < 0.01 * total, detail)


def trigger_cost(backend, directory, url, rows, add):
    """What keeping analytics_latest costs an ingest: record_many (and on PostgreSQL, COPY) with and
    without."""
    name = (f"{backend}: ingest {rows:,} snapshots of 5,000 videos, without and with the "
            "analytics_latest triggers")
    bulk, copied = {}, {}
    for triggers in (False, True):
        if backend == "SQLite":
            fresh_db(directory, "triggers.db")
        else:
            import psycopg

            with psycopg.connect(url, autocommit=True) as server:
                server.execute('DROP DATABASE IF EXISTS "pm_bench_triggers"')
                server.execute(f'CREATE DATABASE "{created(url, "pm_bench_triggers")}"')
            pm.init_db(pg_url(url, "pm_bench_triggers"))
        if not triggers:
            on = "" if backend == "SQLite" else " ON analytics"
            for trigger in ("insert", "delete", "update") + (
                    () if backend == "SQLite" else ("truncate",)):
                pm.db.execute_sql(f"DROP TRIGGER analytics_latest_{trigger}{on}")
        started = time.perf_counter()
        pm.Analytics.record_many(snapshots(rows, videos=5000))
        bulk[triggers] = time.perf_counter() - started
        add(name, f"record_many, {'with' if triggers else 'without'} triggers", bulk[triggers],
            bulk[False])
        if backend == "PostgreSQL":
            import psycopg

            pm.db.execute_sql("TRUNCATE analytics")
            with psycopg.connect(pg_url(url, "pm_bench_triggers"), autocommit=True) as conn:
                started = time.perf_counter()
                with conn.transaction(), conn.cursor().copy(
                        f"COPY analytics ({', '.join(METRICS)}) FROM STDIN") as copy:
                    for row in snapshots(rows, videos=5000):
                        copy.write_row(row)
                copied[triggers] = time.perf_counter() - started
            add(name, f"one COPY (raw psycopg), {'with' if triggers else 'without'} triggers",
                copied[triggers], copied[False])
        pm.db.obj.close()


def query_workloads(args, directory, add, checks):
    """latest(), top(10), growth() on --small and --big snapshots of --query-videos videos, on
    SQLite and (with --pg) PostgreSQL, against their SQL through the raw driver; bytes per snapshot;
    the triggers' ingest cost.

    Each round times every contender once on each dataset, in turn: a shared machine's drift then
    weighs on all alike, and the medians of the rounds compare the two sizes and the contenders
    fairly.
    """
    videos = args.query_videos
    # kept between runs only when asked: otherwise in the run's directory
    if args.query_data is None:
        args.query_data = (os.path.join(tempfile.gettempdir(), "pm-bench-queries") if args.keep
                           else os.path.join(directory, "queries"))
    for backend in ["SQLite"] + (["PostgreSQL"] if args.pg else []):
        bound, connections, plans = {}, [], {}
        for rows in (args.small, args.big):
            if backend == "SQLite":
                target = query_dataset_sqlite(args.query_data, rows, videos)
                conn = raw_connection(target)
                raw = (lambda conn: lambda sql, params=(): conn.execute(sql, params).fetchall())(
                    conn)
            else:
                import psycopg

                target = query_dataset_postgres(args.pg, rows, videos)
                conn = psycopg.connect(target, autocommit=True)
                raw = (lambda conn: lambda sql, params=None: conn.execute(sql, params).fetchall())(
                    conn)
            connections.append(conn)
            bound[rows] = pm.init_db(target)
            plans[rows] = query_contenders(backend, raw, videos)
        times = {}
        for index, (workload, contenders, repeat) in enumerate(plans[args.small]):
            samples = {}
            for round_ in range(repeat + 1):  # round 0 warms caches and plans: not counted
                for rows in (args.small, args.big):
                    pm.db.initialize(bound[rows])
                    for contender, run in plans[rows][index][1]:
                        started = time.perf_counter()
                        run()
                        if round_:
                            samples.setdefault((rows, contender), []).append(
                                time.perf_counter() - started)
            for rows in (args.small, args.big):
                name = f"{backend}: {workload}, {rows:,} snapshots of {videos:,} videos"
                base = statistics.median(samples[rows, contenders[0][0]])
                for contender, _ in contenders:
                    times[rows, workload, contender] = statistics.median(samples[rows, contender])
                    add(name, contender, times[rows, workload, contender], base)
        for database in bound.values():
            database.close()
        for conn in connections:
            conn.close()
        pm.db.initialize(None)
        try:
            target = (query_dataset_sqlite(args.query_data, args.big, videos) if backend == "SQLite"
                      else query_dataset_postgres(args.pg, args.big, videos))
            stored = storage_sqlite(target) if backend == "SQLite" else storage_postgres(target)
            checks.append(storage_check(backend, *stored))
        except sqlite3.OperationalError as exc:  # "no such table: dbstat": SQLite built without it
            checks.append((f"{backend}, bytes per snapshot", False, f"not measured: {exc}"))
        query_checks(backend, args.small, args.big, times, checks)
        trigger_cost(backend, directory, args.pg, min(args.small, 100_000), add)
        if backend == "PostgreSQL":
            import psycopg

            with psycopg.connect(args.pg, autocommit=True) as server:
                kept = ([f"pm_bench_q_{rows}_{videos}" for rows in (args.small, args.big)]
                        if args.keep else [])
                for name in {"pm_bench_triggers", f"pm_bench_q_{args.small}_{videos}",
                             f"pm_bench_q_{args.big}_{videos}"} - set(kept):
                    server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query_checks(backend, small, big, times, checks):
    """The issue's targets for latest(), top(10) and growth(), from the medians in `times`."""
    raw_time = times[big, "latest(), every video",
                     f"{'raw sqlite3' if backend == 'SQLite' else 'raw psycopg'}, "
                     f"same query"]
    for kind in ("tuples", "namedtuples", "dicts", "models"):
        contender = ("Analytics.latest() (models)" if kind == "models"
                     else f"Analytics.latest(rows='{kind}')")
        ours = times[big, "latest(), every video", contender]
        checks.append((f"{backend}: {contender} at {big:,} snapshots: at most 1.5 x its SQL "
                       "through the raw driver", ours <= 1.5 * raw_time, f"{ours / raw_time:.2f} "
                                                                         "x"))
    top = times[big, "top(10)", "Analytics.top(10) (models)"]
    checks.append((f"{backend}: top(10) at {big:,} snapshots: at most 20 ms", top <= 0.020,
                   f"{top * 1000:.2f} ms"))
    growth = times[big, "growth() of one video", "Analytics.growth()"]
    checks.append((f"{backend}: growth() at {big:,} snapshots: at most 2 ms", growth <= 0.002,
                   f"{growth * 1000:.3f} ms"))
    for workload, contender in [("latest(), every video", "Analytics.latest(rows='tuples')"),
                                ("latest(), every video", "Analytics.latest() (models)"),
                                ("top(10)", "Analytics.top(10) (models)"),
                                ("growth() of one video", "Analytics.growth()")]:
        ratio = times[big, workload, contender] / times[small, workload, contender]
        checks.append((f"{backend}: {contender} at {big:,} snapshots at most 1.5 x its time at "
                       f"{small:,}", ratio <= 1.5, f"{ratio:.2f} x"))


# --- PostgreSQL bulk ingest: COPY ----------------------------------------------------------------

# analytics' written columns as PostgreSQL types, for the raw binary COPY (psycopg needs them to
# write binary).
PG_INGEST_TYPES = ["varchar", "timestamptz", "int8", "int8", "int8", "float8", "float8", "int8",
                   "float8", "int8", "int8", "float8"]


def ingest_pg_options(parser, quick):
    """The PostgreSQL ingest workload's command line options."""
    parser.add_argument("--pg-ingest-only", action="store_true",
                        help="run only the PostgreSQL bulk ingest (at --rows, on --pg) and its "
                             "memory check")
    parser.add_argument("--pg-executemany-max", type=int, default=100_000, metavar="ROWS",
                        help="above this many rows, leave psycopg's executemany out and run "
                             "SQLAlchemy once (a statement per row, or per 1,000, each firing "
                             "analytics_latest's statement trigger: ten minutes a run at 1M)")
    parser.add_argument("--pg-rss", metavar="SMALL,LARGE",
                        help="row counts whose PostgreSQL ingest peak RSS is compared (default: "
                             "the smallest and largest --rows; the target is 1000000,10000000)")


# (server URL, database name) of every PostgreSQL database this run created: dropped at its end
# unless --keep keeps it (only the reusable datasets, pm_bench_q_* and pm_bench_year_*), even after
# an error.
MADE_DATABASES = []


def created(url, name):
    """Note that this run created database `name` on the server at `url`; return `name`."""
    if (url, name) not in MADE_DATABASES:
        MADE_DATABASES.append((url, name))
    return name


def drop_made_databases(keep):
    """Drop the PostgreSQL databases this run created; with `keep`, all but the reusable
    datasets."""
    import psycopg

    for url, name in MADE_DATABASES:
        if keep and name.startswith(("pm_bench_q_", "pm_bench_year_")):
            continue
        try:
            with psycopg.connect(url, autocommit=True) as server:
                server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        # the server gone: say what is left rather than hide the first error
        except psycopg.Error as exc:
            print(f"could not drop database {name}: {exc}", file=sys.stderr)


def fresh_pg_db(url, name):
    """A new database `name` on the server at `url`, migrated by the package; returns its URL
    (nothing bound)."""
    import psycopg

    created(url, name)
    with psycopg.connect(url, autocommit=True) as server:
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.execute(f'CREATE DATABASE "{name}"')
    target = pg_url(url, name)
    pm.init_db(target).close()
    pm.db.initialize(None)
    with psycopg.connect(target, autocommit=True) as conn:
        try:
            # no checkpoint of the set-up's writes lands in a contender's time
            conn.execute("CHECKPOINT")
        except psycopg.Error:  # not a superuser (nor pg_checkpoint): only noisier
            pass
    return target


def pg_copy(state, n, binary=True):
    """psycopg 3's COPY of the rows as the generator makes them: already the Python values COPY
    writes."""
    with state["conn"] as conn, conn.cursor().copy(
            f"COPY analytics ({', '.join(METRICS)}) FROM STDIN" + (
                " (FORMAT BINARY)" if binary else "")) as copy:
        if binary:
            copy.set_types(PG_INGEST_TYPES)
        for row in snapshots(n):
            copy.write_row(row)


def pg_executemany(state, n):
    sql = "INSERT INTO analytics ({}) VALUES ({})".format(", ".join(METRICS),
                                                          ", ".join(["%s"] * len(METRICS)))
    with state["conn"] as conn:
        conn.cursor().executemany(sql, snapshots(n))


def pg_record_many(state, n):
    pm.Analytics.record_many(snapshots(n))


def pg_sqlalchemy(state, n):
    from sqlalchemy import insert
    from sqlalchemy.orm import Session

    Analytics, _ = sqlalchemy_models()
    with Session(state["engine"]) as session, session.begin():
        for batch in peewee.chunked(snapshots(n), 2000):
            session.execute(insert(Analytics), [dict(zip(METRICS, row)) for row in batch])
    state["engine"].dispose()


def pg_ingest_setup(url, contender):
    """A fresh database for one run of `contender`, connected as it connects (outside the timed
    part)."""
    import psycopg

    target = fresh_pg_db(url, "pm_bench_ingest")
    if contender == pg_record_many:
        pm.init_db(target)
        return {}
    if contender == pg_sqlalchemy:
        from sqlalchemy import create_engine

        engine = create_engine(target.replace("postgresql://", "postgresql+psycopg://", 1))
        engine.connect().close()  # the pool keeps the connection
        return {"engine": engine}
    return {"conn": psycopg.connect(target)}


def pg_ingest_probe(url, rows):
    """record_many of `rows` snapshots into a new database; prints the process's peak RSS in MB."""
    pm.init_db(fresh_pg_db(url, "pm_bench_ingest_rss"))
    pm.Analytics.record_many(snapshots(int(rows)))
    pm.db.obj.close()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, flush=True)


def pg_ingest_workloads(args, sizes, add, checks):
    """With --pg: the SQLite ingest's rows on PostgreSQL, against psycopg 3's COPY of the same rows;
    peak RSS."""
    if not args.pg:
        return
    import psycopg

    with psycopg.connect(args.pg) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
    have_sqla = importlib.util.find_spec("sqlalchemy") is not None
    for n in sizes:
        name = f"PostgreSQL {version}: bulk ingest analytics, {n:,} rows"
        contenders = [("psycopg 3 COPY (binary) of pre-converted rows", pg_copy),
                      ("psycopg 3 COPY (text) of pre-converted rows",
                       lambda state, n: pg_copy(state, n, False)),
                      ("pipeline_models record_many", pg_record_many)]
        if n <= args.pg_executemany_max:
            contenders.append(("psycopg 3 executemany", pg_executemany))
        if have_sqla:
            contenders.append(("SQLAlchemy 2 bulk insert (psycopg 3)", pg_sqlalchemy))
        per = {}
        for contender, fn in contenders:
            repeat = args.repeat
            # twelve minutes a run at 1M: one run
            if fn is pg_sqlalchemy and n > args.pg_executemany_max:
                contender, repeat = contender + ", one run", 1
            per[fn] = timed(lambda: pg_ingest_setup(args.pg, fn), lambda state: fn(state, n),
                            repeat)
            add(name, contender, per[fn], per[pg_copy])
        ours, copy = per[pg_record_many], per[pg_copy]
        checks.append((f"{name}: at most 1.5 x psycopg 3 COPY", ours <= 1.5 * copy,
                       f"{ours / copy:.2f} x"))
        if have_sqla:
            sqla = per[pg_sqlalchemy]
            checks.append((f"{name}: faster than SQLAlchemy 2", ours < sqla,
                           f"{ours / sqla:.2f} x SQLAlchemy"))
    small, large = (int(s) for s in args.pg_rss.split(",")) if args.pg_rss else (min(sizes),
                                                                                 max(sizes))
    rss = {}
    created(args.pg, "pm_bench_ingest_rss")  # by the probe's process: dropped by this one
    for rows in (small, large):
        out, _ = probe("pg_ingest_probe", args.pg, rows).communicate()
        rss[rows] = float(out.strip().splitlines()[-1])
    checks.append((f"PostgreSQL: peak RSS, ingest from a generator: {large:,} rows within 10% of "
                   f"{small:,}", rss[large] <= 1.1 * rss[small],
                   f"{rss[small]:.0f} MB -> {rss[large]:.0f} MB"))
    with psycopg.connect(args.pg, autocommit=True) as server:
        for name in ("pm_bench_ingest", "pm_bench_ingest_rss"):
            server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_ingest_report(args):
    """--pg-ingest-only: the PostgreSQL ingest workloads alone, printed as the full run prints
    them."""
    if not args.pg:
        sys.exit("--pg-ingest-only needs a server: --pg URL or PIPELINE_MODELS_BENCH_PG")
    results, checks = [], []
    pg_ingest_workloads(args, [int(s) for s in args.rows.split(",")],
                        lambda w, c, s, base: results.append((w, c, s, s / base if base else None)),
                        checks)
    print(render(args, results, checks), end="")  # a part of the table: --write is for a full run


# --- the cycle's hot paths at a year's size: take_candidates(15), bot.status/queue/digest() -------

# A year of the pipeline at its largest: 4 niches x 4 cycles a day x 365 days = 5,840 runs, each
# finding 205 videos (1,197,200 in all), taking the 15 best, keeping 10 clips (used), the 5 others
# skipped; the finds no run took are skipped when they are 2 days old (the pipeline's discovery ages
# them out), so the last 2 days' finds are pending. A smaller dataset is the same shape over fewer
# days.
FOUND_PER_RUN, TAKEN_PER_RUN, CLIPS_PER_RUN, PENDING_DAYS = 205, 15, 10, 2
YEAR_RUNS = 365 * 4 * len(NICHES)
# The older runs' outcomes, in turn: 42 in 50 uploaded, 5 rejected, 3 failed (after their review:
# approved).
OUTCOMES = ["uploaded"] * 42 + ["rejected"] * 5 + ["failed"] * 3
UPLOADED = ("uploaded", "forced")  # "forced": held, then uploaded by /force_upload


def cycle_options(parser, quick):
    """The cycle workload's command line options."""
    parser.add_argument("--year", action="store_true",
                        help="run only the cycle's hot paths (take_candidates, "
                             "bot.status/queue/digest) at --cycle-videos, on SQLite and, with --pg "
                             "or $PIPELINE_MODELS_TEST_PG, PostgreSQL")
    parser.add_argument("--cycle-videos",
                        default="3000,10000" if quick else f"10000,{YEAR_RUNS * FOUND_PER_RUN}",
                        help="discovered videos of the small and the large dataset (runs, clips, "
                             "shorts, reviews, scripts and analytics in proportion); default "
                             "10,000 and a year's 1,197,200")
    parser.add_argument("--cycle-repeat", type=int, default=5 if quick else 200,
                        help="timed calls of each operation per dataset (after one untimed "
                             "warm-up)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the datasets (the cycle's in --cycle-data, the queries' in "
                             "--query-data; on PostgreSQL databases pm_bench_year_N and "
                             "pm_bench_q_ROWS_VIDEOS) and reuse them next time; without it every "
                             "file and database made is removed at the end")
    parser.add_argument("--cycle-data",
                        default=os.path.join(tempfile.gettempdir(), "pm-bench-year"),
                        help="directory of the SQLite cycle datasets with --keep")


def year_shape(videos):
    """(runs, cycles, pending_cycles) of a dataset of about `videos` discovered videos."""
    cycles = max(round(videos / (FOUND_PER_RUN * len(NICHES))), 4)
    # The last 2 days' finds are pending; a dataset of fewer days keeps at least half of them
    # processed.
    return cycles * len(NICHES), cycles, min(PENDING_DAYS * 4, cycles // 2)


def run_fate(i, cycles):
    """What became of run i (0-based) of a dataset of `cycles` cycles, the last of which began just
    now.

    The last cycle's runs are pending (due); the one before: two in review unanswered, one uploaded
    and one failed within the last 6 hours; two cycles back: one held by the janitor, one approved
    waiting for an upload slot; older ones as OUTCOMES says, but one in 97 held by the janitor: held
    still within 3 days, uploaded by a /force_upload after that ("forced")."""
    age, niche = cycles - 1 - i // len(NICHES), i % len(NICHES)
    if age == 0:
        return "pending"
    if age == 1:
        return ("review", "review", "uploaded", "failed")[niche]
    if age == 2:
        return ("held", "approved", "uploaded", "uploaded")[niche]
    if i % 97 == 0:
        return "held" if age < 12 else "forced"
    return OUTCOMES[i % len(OUTCOMES)]


def cycle_dataset(videos, now):
    """Fill the bound (empty, migrated) database with a pipeline of about `videos` discovered videos
    whose last cycle began just before `now`. Returns the number of videos."""
    runs, cycles, pending_cycles = year_shape(videos)
    # the last niche's cycle began 30 min ago
    origin = now - CYCLE * (cycles - 1) - timedelta(minutes=150)

    def start(i):
        return origin + CYCLE * (i // len(NICHES)) + timedelta(
            minutes=NICHES[list(NICHES)[i % len(NICHES)]])

    fates = [run_fate(i, cycles) for i in range(runs)]
    reviewed = [fate != "pending" for fate in fates]

    def video_rows():
        for i in range(runs):
            niche, age = list(NICHES)[i % len(NICHES)], cycles - 1 - i // len(NICHES)
            first = i * FOUND_PER_RUN
            for j in range(FOUND_PER_RUN):
                n = first + j
                if not reviewed[i] or (j >= TAKEN_PER_RUN and age < pending_cycles):
                    processed = 0
                elif j < CLIPS_PER_RUN:
                    processed = 1
                elif j < CLIPS_PER_RUN + 2 and i % 10 == 3:
                    processed = 3  # a reviewer's skip dropped its clip
                else:
                    processed = 2
                yield (f"y{n:010d}", f"video {n}", f"creator {n % 977}", f"UC{n % 977:022d}",
                       f"https://www.youtube.com/watch?v=y{n:010d}", niche,
                       n * 7919 % 10007 / 100.0, start(i) - CYCLE + timedelta(seconds=j * 100),
                       processed, n * 31 % 2_000_000, 60 + n % 900)

    pm.DiscoveredVideo.insert_rows(video_rows(), fields=(
        "video_id", "title", "channel_name", "channel_id", "url", "niche", "viral_score",
        "discovered_at", "processed", "view_count", "duration_seconds"), chunk_size=5000)

    def finished(i):
        return start(i) + timedelta(hours=27 if fates[i] == "forced" else 3, minutes=i % 90)

    status = {"held": "review", "forced": "uploaded"}

    def run_rows():
        for i, fate in enumerate(fates):
            done = fate in ("uploaded", "forced", "rejected", "failed")
            yield (*cycle_of_run(i, start), status.get(fate, fate), 2 if fate == "failed" else 0,
                   None if fate == "pending" else start(i) + timedelta(minutes=2),
                   finished(i) if done else None,
                   f"L{i:09d}" if fate in UPLOADED else None,
                   f"https://youtu.be/L{i:09d}" if fate in UPLOADED else None,
                   None if fate == "pending" else 480.0 + i % 120,
                   None if fate == "pending" else 200_000_000 + i,
                   ("gave up after 3 attempts: RuntimeError: render failed" if fate == "failed"
                    else None),
                   start(i) - timedelta(minutes=5), finished(i) if done else start(i))

    pm.PipelineRun.insert_rows(run_rows(), fields=(
        "niche", "cycle_start", "cycle_end", "status", "retry_count", "started_at", "completed_at",
        "youtube_video_id", "youtube_url", "video_duration_seconds", "video_file_size_bytes",
        "error_message", "created_at", "updated_at"))

    # Clips: the run's first 10 finds ranked 1..10; one run in 10 also has two clips a skip dropped.
    def clip_rows():
        for i in range(runs):
            if not reviewed[i]:
                continue
            first = i * FOUND_PER_RUN + 1
            for j in range(CLIPS_PER_RUN + (2 if i % 10 == 3 else 0)):
                dropped = start(i) + timedelta(hours=2) if j >= CLIPS_PER_RUN else None
                yield (i + 1, first + j, j + 1 if j < CLIPS_PER_RUN else j - CLIPS_PER_RUN + 4,
                       30.0 + j, 48.0 + j, 18.0,
                       ("low", "low", "medium", "high")[(i + j) % 4] if j % 5 == 0 else "low",
                       dropped)

    pm.Clip.insert_rows(clip_rows(), fields=("pipeline_run", "discovered_video", "rank_position",
                                             "start_time_seconds", "end_time_seconds",
                                             "clip_duration_seconds", "content_id_risk",
                                             "dropped_at"), chunk_size=5000)
    clip_ids = {}  # (run, rank) -> clip id, in insertion order
    clip_id = 0
    for i in range(runs):
        if reviewed[i]:
            for j in range(CLIPS_PER_RUN + (2 if i % 10 == 3 else 0)):
                clip_id += 1
                if j < CLIPS_PER_RUN:
                    clip_ids[i, j + 1] = clip_id

    short_status = {"uploaded": "uploaded", "forced": "uploaded", "rejected": "rejected",
                    "failed": "pending", "review": "review",
                    "held": "review", "approved": "pending"}
    shorts = [(i, k) for i in range(runs) if reviewed[i] for k in range(3 + i % 3)]  # 3 to 5 a run
    pm.Short.insert_rows(((i + 1, clip_ids[i, k + 1], short_status[fates[i]], f"short {i}.{k}",
                           f"S{i:08d}{k}" if fates[i] in UPLOADED else None,
                           (finished(i) + timedelta(minutes=10 * (k + 1)) if fates[i] in UPLOADED
                            else None))
                          for i, k in shorts),
                         fields=("pipeline_run", "clip", "status", "title", "youtube_video_id",
                                 "uploaded_at"),
                         chunk_size=5000)

    # Reviews: sent 65 minutes into the cycle, answered 1 to 240 minutes later; one run in 10 was
    # first answered skip or redo_script and asked again. The two unanswered ones of the last cycle
    # but one were sent 1 and 2.5 hours ago (one reminded); the held ones were auto-held by the
    # janitor after 4 hours.
    answer = {"uploaded": "approve", "rejected": "reject", "failed": "approve",
              "approved": "approve", "review": None, "held": "hold"}

    def review_rows():
        for i, fate in enumerate(fates):
            if not reviewed[i]:
                continue
            sent = start(i) + timedelta(minutes=65)
            if i % 10 == 3:
                yield (i + 1, "skip" if i % 20 == 3 else "redo_script",
                       "skip 4,7" if i % 20 == 3 else None, sent - timedelta(minutes=50),
                       sent - timedelta(minutes=40), False, None, f"m{i}a")
            if fate == "review":
                sent = now - timedelta(minutes=60 if i % len(NICHES) == 0 else 150)
                reminded = sent + timedelta(hours=2) if i % len(NICHES) == 1 else None
                yield (i + 1, None, None, sent, None, False, reminded, f"m{i}")
            # auto-held after 4 hours, reminded at 2; forced a day later
            elif fate in ("held", "forced"):
                yield (i + 1, "approve" if fate == "forced" else "hold",
                       "force_upload" if fate == "forced" else None, sent,
                       sent + timedelta(hours=4 if fate == "held" else 24), True,
                       sent + timedelta(hours=2), f"m{i}")
            else:
                yield (i + 1, answer[fate], None, sent, sent + timedelta(minutes=1 + i * 37 % 240),
                       False, None, f"m{i}")

    pm.ReviewLog.insert_rows(review_rows(), fields=("pipeline_run", "action", "response_detail",
                                                    "sent_at", "responded_at", "auto_held",
                                                    "reminded_at", "message_id"))
    pm.Script.insert_rows(((i + 1, {"clips": CLIPS_PER_RUN}, 900, 62.0, "gpt-4.1-mini", 0.0015,
                            start(i) + timedelta(minutes=30 + 5 * n), f"Opening of run {i}. " * 15)
                           for i in range(runs) if reviewed[i] for n in range(
                               2 if i % 20 == 13 else 1)),
                          fields=("pipeline_run", "full_script_json", "total_char_count",
                                  "estimated_duration_seconds", "llm_model_used", "cost_usd",
                                  "generated_at", "opening_text"))
    pm.ErrorLog.insert_rows(((i + 1, "render", "RuntimeError", "render failed",
                              start(i) + timedelta(hours=h),
                              cycles - 1 - i // len(NICHES) > 8) for i, fate in enumerate(fates)
                             if fate == "failed" for h in (1, 2, 3)),
                            fields=("pipeline_run", "module", "error_type", "error_message",
                                    "occurred_at", "resolved"))

    # Analytics of every uploaded video (long-form and shorts): snapshots 1 h, 6 h, 1, 3, 7 and 30
    # days after its upload, those already taken.
    def snapshot_rows():
        for i, fate in enumerate(fates):
            if fate not in UPLOADED:
                continue
            ids = [(f"L{i:09d}", finished(i))] + [(f"S{i:08d}{k}",
                                                   finished(i) + timedelta(minutes=10 * (k + 1)))
                                                   for k in range(3 + i % 3)]
            for video, uploaded in ids:
                for hours in (1, 6, 24, 72, 168, 720):
                    at = uploaded + timedelta(hours=hours)
                    if at < now:
                        views = (i * 131 % 5000 + 100) * hours
                        yield (video, at, views, views // 40, views // 400, 31.5, 0.045,
                               views // 1000, None, views // 2, views // 300, views * 0.4)

    pm.Analytics.record_many(snapshot_rows())
    return runs * FOUND_PER_RUN


def cycle_of_run(i, start):
    """(niche, cycle_start, cycle_end) of run i, given the dataset's start(i)."""
    return list(NICHES)[i % len(NICHES)], start(i), start(i) + CYCLE


def cycle_dataset_sqlite(directory, videos, keep):
    """A SQLite file holding cycle_dataset(videos): with `keep`, made once in `directory` and
    reused."""
    os.makedirs(directory, exist_ok=True)
    name = f"year-{videos}.db"
    path, building = os.path.join(directory, name), os.path.join(directory, name + ".building")
    if keep and os.path.exists(path) and not os.path.exists(building):
        return path
    # a run killed while building leaves this: the next one starts again
    open(building, "w").close()
    fresh_db(directory, name)
    cycle_dataset(videos, datetime.datetime.now(UTC))
    pm.db.obj.close()  # no ANALYZE: nothing in the package runs one, so the plans must not need it
    os.remove(building)
    return path


def cycle_dataset_postgres(url, videos, keep):
    """A PostgreSQL database holding cycle_dataset(videos) (insert_rows streams COPY), analysed as
    autovacuum would have after a year; with `keep`, made once and reused. Returns its URL."""
    import psycopg

    name = f"pm_bench_year_{videos}"
    with psycopg.connect(url, autocommit=True) as server:
        done = server.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE "
                              "datname = %s", (name,)).fetchone()
        if keep and done and done[0] == "complete":
            return pg_url(url, created(url, name))
    target = fresh_pg_db(url, name)
    pm.init_db(target)
    cycle_dataset(videos, datetime.datetime.now(UTC))
    pm.db.obj.close()
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS 'complete'")
    return target


def cycle_operations():
    """([(name, setup, run)], the runs claimed) on the bound dataset: run() is timed, setup()
    (untimed) comes before each call.

    take_candidates(15) is taken by two runs claimed for this (the due runs of two niches) in turn,
    the state restored between calls: the 15 videos taken are free again, as they were. The bot's
    queries are left out when pipeline_models has no bot module."""
    try:
        from pipeline_models import bot
    except ImportError:
        bot = None
    now = pm.PipelineRun.select(peewee.fn.MAX(pm.PipelineRun.cycle_start)).scalar() + timedelta(
        minutes=30)
    claimed = [pm.PipelineRun.claim_next("bench", niche=niche) for niche in list(NICHES)[:2]]
    assert all(claimed), "the dataset's last cycle has a due run of each niche"
    taken, turn = [], itertools.count()

    def restore():
        if taken:
            video = pm.DiscoveredVideo
            ids = [v.id for v in taken.pop()]
            video.update(taken_by_run=None).where(video.id.in_(ids)).execute()

    def take():
        videos = claimed[next(turn) % 2].take_candidates(15)
        assert len(videos) == 15
        taken.append(videos)

    operations = [("take_candidates(15)", restore, take)]
    if bot is not None:
        def nothing():
            pass
        operations += [("bot.status()", nothing, lambda: bot.status(now=now)),
                       ("bot.queue()", nothing, lambda: bot.queue(now=now)),
                       ("bot.digest(since=6 hours ago)", nothing,
                        lambda: bot.digest(since=now - timedelta(hours=6),
                                             now=now))]
    return operations, claimed


def release_claims(claimed):
    """Put the runs cycle_operations() claimed back as they were in the dataset: pending,
    unclaimed."""
    run = pm.PipelineRun
    run.update(status="pending", worker=None, claim_token=None, started_at=None,
               heartbeat_at=None).where(
        run.id.in_([r.id for r in claimed])).execute()


def ms(seconds):
    return seconds * 1000


def cycle_workloads(args, checks):
    """The cycle's hot paths at --cycle-videos (small, large) on SQLite and, with a server,
    PostgreSQL: each timed --cycle-repeat times per dataset, the datasets in turn call by call (a
    shared machine's drift weighs on both alike). Returns the table's lines; appends the targets to
    `checks`."""
    small, big = (int(s) for s in args.cycle_videos.split(","))
    server = args.pg or os.environ.get("PIPELINE_MODELS_TEST_PG")
    directory = args.cycle_data if args.keep else tempfile.mkdtemp(prefix="pm-bench-year-")
    rows, made = [], []
    try:
        for backend in ["SQLite"] + (["PostgreSQL"] if server else []):
            bound, operations, claims, counts = {}, {}, {}, {}
            for videos in (small, big):
                started = time.perf_counter()
                if backend == "SQLite":
                    target = cycle_dataset_sqlite(directory, videos, args.keep)
                else:
                    target = cycle_dataset_postgres(server, videos, args.keep)
                    made.append(target)
                print(f"{backend}: the dataset of {videos:,} videos in "
                      f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
                bound[videos] = pm.init_db(target)
                counts[videos] = {model.__name__: model.select().count() for model in (
                    pm.DiscoveredVideo, pm.PipelineRun, pm.Clip, pm.Short)}
                operations[videos], claims[videos] = cycle_operations()
            samples = {}
            for index, (name, _, _) in enumerate(operations[small]):
                # round 0 warms caches and plans: not counted
                for round_ in range(args.cycle_repeat + 1):
                    for videos in (small, big):
                        pm.db.initialize(bound[videos])
                        _, setup, run = operations[videos][index]
                        setup()
                        started = time.perf_counter()
                        run()
                        if round_:
                            samples.setdefault((name, videos), []).append(
                                time.perf_counter() - started)
                    for videos in (small, big):
                        pm.db.initialize(bound[videos])
                        operations[videos][index][1]()  # the last take's videos freed
            for videos in (small, big):
                pm.db.initialize(bound[videos])
                release_claims(claims[videos])
                bound[videos].close()
            pm.db.initialize(None)
            for name, _, _ in operations[small]:
                timings = {}
                for videos in (small, big):
                    values = sorted(samples[name, videos])
                    timings[videos] = statistics.median(values), percentile(values, 95), values[0]
                    c = counts[videos]
                    rows.append((backend, name,
                                 f"{c['DiscoveredVideo']:,} videos, {c['PipelineRun']:,} runs, "
                                 f"{c['Clip']:,} clips, {c['Short']:,} shorts",
                                 *map(ms, timings[videos]),
                                 timings[videos][0] / timings[small][0]))
                median, p95, _ = timings[big]
                ratio = median / timings[small][0]
                checks.append((f"{backend}: {name} at {counts[big]['DiscoveredVideo']:,} videos: "
                               "at most 5 ms and at most 1.5 x its time at "
                               f"{counts[small]['DiscoveredVideo']:,}",
                               median <= 0.005 and ratio <= 1.5,
                               f"median {ms(median):.2f} ms (p95 {ms(p95):.2f}), {ratio:.2f} x"))
    finally:
        pm.db.initialize(None)
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
            if made:
                import psycopg

                with psycopg.connect(server, autocommit=True) as conn:
                    for target in made:
                        name = urllib.parse.urlsplit(target).path.lstrip("/")
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return cycle_table(rows, args.cycle_repeat)


def cycle_table(rows, repeat):
    """The cycle workload's lines: per backend and operation, each dataset's median and p95 in
    ms."""
    if not rows:
        return []
    width = max(len(r[2]) for r in rows)
    lines = [f"the cycle's hot paths (python bench/run.py --year): {repeat} calls per dataset "
             "after a warm-up, the datasets in turn; ms; ratio of medians to the smaller "
             "dataset's.",
             "A year: 4 niches x 4 cycles a day x 365 days; each run found 205 videos, took 15, "
             "kept 10 clips (used), skipped 5;",
             "finds no run took are skipped after 2 days (the last 2 days' are pending: 6,140 at a "
             "year); 3 to 5 shorts a run;",
             "a review each (one run in 10 answered skip or redo_script first), a script, "
             "analytics of every upload. The smaller",
             "dataset is the same shape over 3 days. take_candidates(15) by a claimed run, its 15 "
             "videos freed after each call;",
             "status(now), queue(now), digest(6 hours before now, now). SQLite without ANALYZE "
             "(nothing runs one); PostgreSQL", "after VACUUM ANALYZE (as autovacuum would have).",
             "",
             f"{'backend':<10}  {'operation':<29}  {'dataset':<{width}}  {'median':>7}  {'p95':>7} "
             f" {'min':>7}  {'ratio':>5}"]
    for backend, name, dataset, median, p95, least, ratio in rows:
        lines.append(f"{backend:<10}  {name:<29}  {dataset:<{width}}  {median:>7.3f}  {p95:>7.3f}  "
                     f"{least:>7.3f}  {ratio:>5.2f}")
    return lines


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
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model "
                                                                                       "name"))
    except (OSError, StopIteration):
        pass
    try:
        import sqlalchemy
        sqla = sqlalchemy.__version__
    except ImportError:
        sqla = "not installed"
    try:
        import psycopg
        libpq = psycopg.pq.version()
        pg = f", psycopg {psycopg.__version__} (libpq {libpq // 10000}.{libpq % 100})"
    except ImportError:
        pg = ""
    return (f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores; Python "
            f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, peewee "
            f"{peewee.__version__}, SQLAlchemy {sqla}{pg}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # PIPELINE_MODELS_BENCH_QUICK=1 (set by tests/test_readme_shell.py and tests/test_bench.py):
    # small defaults, so the documented command is seen to work in seconds; its numbers are not the
    # published ones.
    quick = os.environ.get("PIPELINE_MODELS_BENCH_QUICK") == "1"
    parser.add_argument("--rows", default="2000" if quick else "10000,100000,1000000",
                        help="bulk ingest sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=1 if quick else 3,
                        help="runs per measurement; the median is shown")
    parser.add_argument("--write", action="store_true",
                        help="also write the table into --results and into --page between its "
                             "markers")
    parser.add_argument("--page", metavar="PATH", default=PAGE,
                        help="the Markdown page --write puts the table in (default: "
                             "docs/performance.md)")
    parser.add_argument("--results", metavar="PATH", default=RESULTS,
                        help="the text file --write puts the table in (default: bench/RESULTS.txt)")
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pg", default=os.environ.get("PIPELINE_MODELS_BENCH_PG"), metavar="URL",
                        help="also run on this PostgreSQL server (a database it may create "
                             "databases on): the ingest and query workloads; default: "
                             "$PIPELINE_MODELS_BENCH_PG")
    compaction_options(parser, quick)
    query_options(parser, quick)
    ingest_pg_options(parser, quick)
    cycle_options(parser, quick)
    args = parser.parse_args()
    if args.memory_probe:
        return memory_probe(args.memory_probe)
    # A SIGTERM (a CI timeout, `kill`) raises SystemExit as Ctrl-C raises KeyboardInterrupt: either
    # way the `finally` below removes what the run made.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        if args.pg_ingest_only:
            return pg_ingest_report(args)
        if args.year:
            return year_report(args)
        return full_report(args)
    finally:
        if MADE_DATABASES:
            drop_made_databases(args.keep)
        if args.keep:
            kept(args)


def kept(args):
    """With --keep: say where the kept datasets are (to stderr: stdout is the table)."""
    places = [path for path in (args.query_data, args.cycle_data) if path and os.path.isdir(path)]
    places += [f"database {name} on --pg" for _, name in MADE_DATABASES
               if name.startswith(("pm_bench_q_", "pm_bench_year_"))]
    print(
        "--keep: the datasets are kept (and reused next time) in " + ", ".join(
            places or ["nothing"])
        + "; remove them by hand when done", file=sys.stderr)


def full_report(args):
    """The default run: every workload; the table printed and, with --write, written."""
    try:
        import sqlalchemy  # noqa: F401
        have_sqla = True
    except ImportError:
        have_sqla = False
        print("SQLAlchemy is not installed (pip install -r bench/requirements.txt): its rows are "
              "left out", file=sys.stderr)
    if args.write:
        page_text(args.page)  # a page without its markers is refused now, not after an hour's run
    sizes = [int(s) for s in args.rows.split(",")]
    results, checks = [], []
    tmp = tempfile.mkdtemp(prefix="pm-bench-")
    try:
        table = all_workloads(args, sizes, have_sqla, tmp, results, checks)
    finally:
        pm.db.initialize(None)
        shutil.rmtree(tmp, ignore_errors=True)
    print(table, end="")
    if args.write:
        write(table, args.page, args.results)


def all_workloads(args, sizes, have_sqla, tmp, results, checks):
    """Every workload of a full run, in its order; the table as render() makes it."""

    def add(workload, contender, seconds, raw):
        results.append((workload, contender, seconds, seconds / raw if raw else None))

    for n in sizes:
        name = f"bulk ingest analytics, {n:,} rows"
        per = {}
        for contender, fn in [("raw sqlite3 executemany, no trigger", ingest_raw),
                              ("pipeline_models record_many", ingest_package),
                              ("peewee insert_many", ingest_peewee_insert_many)] + (
                [("SQLAlchemy 2 bulk insert", ingest_sqlalchemy)] if have_sqla else []):
            def setup():
                path = fresh_db(tmp, "ingest.db")
                if fn in (ingest_raw, ingest_sqlalchemy):
                    pm.db.obj.close()
                return path
            per[contender] = timed(setup, lambda path: fn(path, n), args.repeat)
            add(name, contender, per[contender], per["raw sqlite3 executemany, no trigger"])
        ours, raw = per["pipeline_models record_many"], per["raw sqlite3 executemany, no trigger"]
        checks.append((f"{name}: at most 1.5 x raw sqlite3", ours <= 1.5 * raw,
                       f"{ours / raw:.2f} x"))
        if have_sqla:
            sqla = per["SQLAlchemy 2 bulk insert"]
            checks.append((f"{name}: faster than SQLAlchemy 2", ours < sqla,
                           f"{ours / sqla:.2f} x SQLAlchemy"))
    pg_ingest_workloads(args, sizes, add, checks)

    n = 5000
    name = f"row-by-row creates of runs in one transaction, {n:,}"
    per = {}

    def setup_runs():
        return fresh_db(tmp, "runs.db")
    for contender, fn in [("raw sqlite3 execute", creates_raw), ("pipeline_models create",
                                                                 creates_package)] + (
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
        raw = timed(lambda: None, lambda _: conn.execute(pm.Analytics._LATEST_SQL).fetchall(),
                    args.repeat * 3)
        add(name, "raw sqlite3, same query", raw, raw)
        latest[per_video] = timed(lambda: pm.init_db(path), lambda _: pm.Analytics.latest(),
                                  args.repeat * 3)
        add(name, "pipeline_models Analytics.latest()", latest[per_video], raw)
        group_by = timed(lambda: None, lambda _: conn.execute(LATEST_GROUP_BY).fetchall(),
                         args.repeat * 3)
        add(name, "raw sqlite3, GROUP BY MAX (for contrast)", group_by, raw)
        conn.close()
    checks.append(("Analytics.latest(): 100 snapshots/video at most 1.5 x its time at 10",
                   latest[100] <= 1.5 * latest[10], f"{latest[100] / latest[10]:.2f} x"))

    n = 2000
    name = f"claim_next until the queue is empty, {n:,} runs"

    def setup_queue():
        path = fresh_db(tmp, "queue.db")
        seed_runs(n)
        return path
    raw = timed(lambda: (setup_queue(), pm.db.obj.close())[0], claim_all_raw, args.repeat)
    add(name, "raw sqlite3, same statement", raw, raw)
    ours = timed(setup_queue, lambda _: claim_all_package(_), args.repeat)
    add(name, "pipeline_models claim_next", ours, raw)

    path = fresh_db(tmp, "year.db")
    runs = busy_year()
    name = f"status summary, a year of the pipeline ({len(NICHES)} niches, {runs:,} runs)"
    conn = raw_connection(path)
    raw = timed(lambda: None, lambda _: [conn.execute(sql).fetchall() for sql in STATUS_RAW],
                args.repeat * 3)
    add(name, "raw sqlite3, same counts", raw, raw)
    ours = timed(lambda: pm.init_db(path), lambda _: status_rows(), args.repeat * 3)
    add(name, "pipeline_models status", ours, raw)
    conn.close()

    # The HTML report on the same year, with analytics as big as the largest ingest (a million by
    # default).
    have_plotly = importlib.util.find_spec("plotly") is not None
    if not have_plotly:
        print("plotly is not installed (pip install -e '.[report]'): the report's row is left out",
              file=sys.stderr)
    else:
        from pipeline_models import report
        pm.init_db(path)
        pm.Analytics.record_many(snapshots(max(sizes), videos=2000))
        pm.db.obj.close()  # no ANALYZE: the report must not need one to be fast
        name = f"HTML report, the pipeline's year and {max(sizes):,} analytics snapshots"
        seconds = timed(lambda: pm.init_db(path, readonly=True), lambda _: report.render(),
                        args.repeat)
        add(name, "pipeline_models report.render()", seconds, None)
        checks.append((f"report on a year of the pipeline ({max(sizes):,} snapshots): at most 5 "
                       "seconds", seconds <= 5, f"{seconds:.2f} s"))

    compaction_workloads(args, tmp, add, checks)
    query_workloads(args, tmp, add, checks)

    small, large = min(sizes), max(sizes)
    rss_small, rss_large = peak_rss_mb(small), peak_rss_mb(large)
    checks.append((f"peak RSS, ingest from a generator: {large:,} rows vs {small:,}",
                   rss_large - rss_small < 50, f"{rss_small:.0f} MB -> {rss_large:.0f} MB"))

    cycle = cycle_workloads(args, checks)
    return render(args, results, checks, cycle)


def year_report(args):
    """--year: the cycle's hot paths alone; with --write, their part of bench/RESULTS.txt is
    replaced."""
    checks = []
    lines = [f"machine: {machine()}", f"load average before: {os.getloadavg()[0]:.2f}", ""]
    lines += cycle_workloads(args, checks)
    lines[1] += f", after: {os.getloadavg()[0]:.2f}"
    lines += ["", "targets:"] + [f"  [{'met ' if ok else 'MISS'}] {text}: {detail}" for text, ok,
                                 detail in checks]
    table = "\n".join(line.rstrip() for line in lines) + "\n"
    print(table, end="")
    if args.write:
        write_year(table, args.results)


def render(args, results, checks, cycle=()):
    """The results table, the cycle's table and the targets, as printed and as written by
    --write."""
    lines = [f"machine: {machine()}",
             f"median of {args.repeat} runs (x3 for the queries); ratio to the first "
             "contender of each workload (raw sqlite3 or the raw driver where there is one)", ""]
    width = max(len(r[0]) for r in results)
    cwidth = max(len(r[1]) for r in results)
    lines.append(f"{'workload':<{width}}  {'contender':<{cwidth}}  {'median s':>9}  {'ratio':>6}")
    previous = None
    for workload, contender, seconds, ratio in results:
        shown = workload if workload != previous else ""
        previous = workload
        shown_ratio = "-" if ratio is None else f"{ratio:.2f}"  # no raw contender to compare with
        lines.append(f"{shown:<{width}}  {contender:<{cwidth}}  {seconds:>9.4f}  {shown_ratio:>6}")
    if cycle:
        lines += [""] + list(cycle)
    lines += ["", "targets:"] + [f"  [{'met ' if ok else 'MISS'}] {text}: {detail}" for text, ok,
                                 detail in checks]
    return "\n".join(line.rstrip() for line in lines) + "\n"


HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.path.join(HERE, os.pardir, "docs", "performance.md")
RESULTS = os.path.join(HERE, "RESULTS.txt")
# The page's generated part: what is between these two comments is replaced, nothing else.
PAGE_START, PAGE_END = "<!-- bench: generated by bench/run.py -->", "<!-- /bench -->"


def page_text(page):
    """The text of `page`; exits, saying why, if it lacks the two markers."""
    with open(page) as source:
        text = source.read()
    if PAGE_START not in text or PAGE_END not in text.partition(PAGE_START)[2]:
        sys.exit(f"{page}: no {PAGE_START} ... {PAGE_END} markers to put the table between")
    return text


def write(table, page=PAGE, results=RESULTS):
    """The table into `results` and into `page`, between its two markers."""
    text = page_text(page)
    with open(results, "w") as out:
        out.write(table)
    start, end = text.index(PAGE_START) + len(PAGE_START), text.index(PAGE_END)
    with open(page, "w") as out:
        out.write(text[:start] + "\n```text\n" + table + "```\n" + text[end:])
    print(f"written: {os.path.normpath(results)} and {os.path.normpath(page)}", file=sys.stderr)


YEAR_START = "--- python bench/run.py --year --write: start ---"
YEAR_END = "--- python bench/run.py --year --write: end ---"


def write_year(table, path=RESULTS):
    """The --year table into `path` (bench/RESULTS.txt), in place of the previous one (else at its
    end)."""
    with open(path) as results:
        text = results.read()
    if YEAR_START in text and YEAR_END in text:
        text = text[:text.index(YEAR_START)] + text[text.index(YEAR_END) + len(YEAR_END) + 1:]
    with open(path, "w") as results:
        results.write(text.rstrip("\n") + "\n\n" + YEAR_START + "\n" + table + YEAR_END + "\n")
    print(f"written: {os.path.relpath(path)}")


if __name__ == "__main__":
    sys.exit(main())
