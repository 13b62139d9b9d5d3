"""Every hot operation reaches its rows through an index: EXPLAIN QUERY PLAN of the SQL it really
runs.

The statements are captured from peewee's query log while the operation runs, so a change to an
operation's query (or a dropped index) that turns it into a full table scan fails here.
"""
import contextlib
import fnmatch
import itertools
import logging
import re
from datetime import timedelta

import peewee
import pytest
from conftest import CYCLE_START, aware, make_clip

import pipeline_models as pm
from pipeline_models import bot

# Scans that are not of a table: one-row constants, and the one-row results of Analytics.growth()'s
# two seeks. config_overrides is read whole by design: a few settings, whatever the pipeline's size
# (claim_next reads the channels.* keys for the paused niches with a LIKE, which neither backend
# seeks with).
NOT_TABLES = ("CONSTANT", "growth_first", "growth_last", "config_overrides")
# Tables an operation reads whole by design: latest() returns every row of analytics_latest (one per
# video). top(n) walks the same table's view_count index and stops after n rows:
# test_top_reads_only_its_rows. bot.status() counts every run by niche and status (bench/run.py
# --year measures what that costs at a year).
READS_WHOLE = {"latest": ("analytics_latest",), "top": ("analytics_latest",),
               "bot_status": ("pipeline_runs",)}


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.statements = []

    def emit(self, record):
        sql, params = record.msg
        self.statements.append((sql, params))


@contextlib.contextmanager
def captured_sql():
    logger = logging.getLogger("peewee")
    handler, level = _Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.statements
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def table_scans(database, statements):
    """(table, plan line) for each plan line, over all statements, that reads a whole table (or a
    whole index) instead of seeking; scans of NOT_TABLES and of a statement's own WITH tables are
    left out."""
    found = []
    for sql, params in statements:
        if not re.match(r"\s*(WITH|SELECT|UPDATE|DELETE)", sql, re.I):
            continue
        if isinstance(database, peewee.SqliteDatabase):
            plan = [row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]
            # SQLite's plan names a table by its alias in the statement (peewee's "t1"), if it has
            # one.
            tables = dict((alias, table) for table, alias in re.findall(r'"(\w+)" AS "(\w+)"', sql))
            # a CTE's rows, not a table's
            own = re.findall(r"\bWITH\s+(?:RECURSIVE\s+)?(\w+)", sql, re.I)
            # "SCAN t" and "SCAN t USING COVERING INDEX i" both read every row; "SEARCH" seeks.
            scans = [(re.match(r"SCAN (\w+)", line), line) for line in plan]
            found += [(tables.get(scan.group(1), scan.group(1)), line) for scan, line in scans
                      if scan and scan.group(1) not in own]
        else:
            # With sequential scans priced out, a plan that still has one has no index to use: on
            # tables this small PostgreSQL would otherwise rightly choose a scan.
            with database.atomic():
                database.execute_sql("SET LOCAL enable_seqscan = off")
                plan = [row[0] for row in database.execute_sql("EXPLAIN " + sql, params)]
            found += [(line.split("Seq Scan on ")[1].split()[0], line.strip()) for line in plan
                      if "Seq Scan on" in line]
    return [(table, line) for table, line in found if table not in NOT_TABLES]


def full_scans(database, statements, allowed=()):
    """The plan lines, over all statements, that read a whole table (or a whole index) instead of
    seeking.

    Scans of the tables in `allowed` are left out.
    """
    return [line for table, line in table_scans(database, statements) if table not in allowed]


@pytest.fixture
def busy(database):
    """A database with rows in every table the operations touch: 20 runs of two niches, 3 ranked
    clips each."""
    t0 = aware(2026, 1, 1)
    videos = [pm.DiscoveredVideo.discover(f"v{n}", title=f"Video {n}", channel_name="c",
                                          channel_id="UC", niche=("gaming", "funny")[n % 2],
                                          viral_score=float(n))[0]
              for n in range(20)]
    for n in range(20):
        run = pm.PipelineRun.schedule(("gaming", "funny")[n % 2],
                                      CYCLE_START + timedelta(hours=6 * n))
        for rank in (1, 2, 3):
            make_clip(run, videos[(n + rank) % 20], rank=rank)
        pm.Short.create(pipeline_run=run, clip=None, title=f"Short {n}")
        pm.ErrorLog.create(module=f"m{n % 3}", error_type="E", error_message="x", pipeline_run=run,
                           occurred_at=t0 + timedelta(hours=n))
        for hour in range(10):
            pm.Analytics.record(f"s{n}", measured_at=t0 + timedelta(hours=hour), view_count=hour)
    for n in range(5):
        pm.ReviewLog.request(pm.PipelineRun.claim_next("w"), message_id=f"m{n}")
    # No ANALYZE: with statistics of a 20-row table the planner rightly prefers a scan; without them
    # it plans as it would for a large table, which is what this test is about.
    return database


def _answered(action, detail=None):
    review = pm.ReviewLog.unanswered().first()
    review.respond(action, response_detail=detail)
    return review


def approve_and_upload():
    review = _answered("approve")
    run = pm.PipelineRun.get_by_id(review.pipeline_run_id)
    short = run.shorts.first()
    short.start_upload()
    short.mark_uploaded("yt-plan-short")
    run.start_upload()
    run.mark_uploaded("yt-plan-long")  # the long-form video: the run is uploaded


def clips_of_a_run():
    return list(
        pm.PipelineRun.get(pm.PipelineRun.niche == "gaming").clips.order_by(pm.Clip.rank_position))


def take_candidates():
    """A new gaming run, of a cycle before the others (claimed first), takes 3 of its niche's
    candidates."""
    pm.PipelineRun.schedule("gaming", CYCLE_START - timedelta(hours=6))
    return pm.PipelineRun.claim_next("w4", niche="gaming").take_candidates(3)


def analytics_of_a_run():
    """Every snapshot of a run's videos: its long-form video's and its shorts' (analytics is keyed
    by either)."""
    run = 3
    ids = (pm.PipelineRun.select(pm.PipelineRun.youtube_video_id).where(pm.PipelineRun.id == run)
           | pm.Short.select(pm.Short.youtube_video_id).where(pm.Short.pipeline_run == run))
    return list(pm.Analytics.select().where(pm.Analytics.youtube_video_id.in_(ids)))


OPERATIONS = {
    "claim_next": lambda: pm.PipelineRun.claim_next("w2"),
    "claim_next_of_a_niche": lambda: pm.PipelineRun.claim_next("w2", niche="funny"),
    "claim_heartbeat_fail": lambda: ((run := pm.PipelineRun.claim_next("w3")).heartbeat()
                                     and run.fail("boom")),
    "schedule_again": lambda: pm.PipelineRun.schedule("funny",
                                                      CYCLE_START + timedelta(hours=6 * 7)),
    "discover_again": lambda: pm.DiscoveredVideo.discover("v7", viral_score=99.0),
    "get_pending_videos": lambda: list(pm.get_pending_videos("gaming")),
    "mark_video_processed": lambda: pm.mark_video_processed("v8", pm.Processed.used),
    "clips_of_a_run": clips_of_a_run,
    "take_candidates": take_candidates,
    "approve_and_upload": approve_and_upload,
    "reject": lambda: _answered("reject"),
    "skip": lambda: _answered("skip", "skip 2"),
    "redo_script": lambda: _answered("redo_script"),
    "hold": lambda: _answered("hold"),
    "requeue_stale": lambda: pm.PipelineRun.requeue_stale(timedelta(minutes=5)),
    "latest": lambda: pm.Analytics.latest(),
    "top": lambda: pm.Analytics.top(3),
    "growth": lambda: pm.Analytics.growth("s3", since=aware(2026, 1, 1, 5)),
    "analytics_of_a_video": lambda: list(
        pm.Analytics.select().where(pm.Analytics.youtube_video_id == "s3")
        .order_by(pm.Analytics.measured_at)),
    "analytics_of_a_run": analytics_of_a_run,
    "log_error": lambda: pm.log_error("render", "E", "x", pipeline_run_id=2),
    "unresolved": lambda: list(pm.ErrorLog.unresolved()),
    "unresolved_module": lambda: list(pm.ErrorLog.unresolved("m1")),
    "hold_stale": lambda: pm.ReviewLog.hold_stale(timedelta(hours=1)),
    "open_reviews": lambda: list(pm.ReviewLog.unanswered()),
    "runs_by_status": lambda: list(pm.PipelineRun.select().where(pm.PipelineRun.status == "pending")
                                   .order_by(pm.PipelineRun.cycle_start)),
    "bot_status": lambda: bot.status(),
    "bot_queue": lambda: bot.queue(),
    "bot_digest": lambda: bot.digest(timedelta(hours=6)),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_operation_uses_an_index(busy, name):
    with captured_sql() as statements:
        OPERATIONS[name]()
    assert statements, "the operation ran no SQL to check"
    assert full_scans(busy, statements, READS_WHOLE.get(name, ())) == []


# The pipeline's hot queries, and the index each must use (any of those named) on the table it
# reads. An index on status and more (status, completed_at for the digest) serves the claim as well
# as status alone.
HOT = {
    "claim_next": ("pipeline_runs", ["idx_pipeline_runs_status", "idx_pipeline_runs_status_*"]),
    "claim_next_of_a_niche": ("pipeline_runs", ["idx_pipeline_runs_status",
                                                "idx_pipeline_runs_status_*",
                                                "idx_pipeline_runs_niche"]),
    "schedule_again": ("pipeline_runs", ["idx_pipeline_runs_niche"]),
    # All of a niche's candidates: on a small table PostgreSQL may rightly seek by niche and sort
    # the few rows.
    "get_pending_videos": ("discovered_videos", ["idx_discovered_videos_candidates",
                                                 "idx_discovered_videos_niche"]),
    "mark_video_processed": ("discovered_videos", ["discovered_videos_video_id"]),
    "clips_of_a_run": ("clips", ["idx_clips_pipeline", "clips_rank_in_run"]),
    "analytics_of_a_video": ("analytics", ["idx_analytics_video"]),
    "analytics_of_a_run": ("analytics", ["idx_analytics_video"]),
}


def index_used(database, statements, table):
    """The indexes the plans of `statements` read `table` through (a primary key seek counts as
    "pkey")."""
    found = set()
    for sql, params in statements:
        if not re.match(r"\s*(WITH|SELECT|UPDATE|DELETE)", sql, re.I) or table not in sql:
            continue
        if isinstance(database, peewee.SqliteDatabase):
            # SQLite's plan names a table by its alias in the statement (peewee's "t1"), if it has
            # one.
            names = "|".join([table, *re.findall(rf'"{table}" AS "(\w+)"', sql)])
            plan = [row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]
            for line in plan:
                seek = re.match(rf"(?:SEARCH|SCAN) (?:{names})\b USING (?:COVERING )?INDEX (\w+)",
                                line)
                if seek:
                    found.add(seek.group(1))
                elif re.match(rf"SEARCH (?:{names})\b USING INTEGER PRIMARY KEY", line):
                    found.add("pkey")
        else:
            with database.atomic():
                database.execute_sql("SET LOCAL enable_seqscan = off")
                plan = [row[0] for row in database.execute_sql("EXPLAIN " + sql, params)]
            for line in plan:
                seek = re.search(rf"Index(?: Only)? Scan(?: Backward)? using (\w+) on {table}\b|"
                                 rf"Bitmap Index Scan on (\w+)", line)
                if seek:
                    name = seek.group(1) or seek.group(2)
                    found.add("pkey" if name == f"{table}_pkey" else name)
    return found


@pytest.mark.parametrize("name", sorted(HOT))
def test_a_hot_query_reads_its_table_through_its_index(busy, name):
    table, indexes = HOT[name]
    with captured_sql() as statements:
        OPERATIONS[name]()
    used = index_used(busy, statements, table)
    assert any(fnmatch.fnmatchcase(index, pattern) for index in used for pattern in indexes), (name,
                                                                                               used)


def test_take_candidates_reads_the_free_candidates_from_their_index(busy):
    """The take reads the niche's best free candidates through idx_discovered_videos_candidates
    (their order is the index's: no sort) and reserves them by primary key: its cost follows the 15
    rows it takes."""
    with captured_sql() as statements:
        taken = take_candidates()
    assert [v.viral_score for v in taken] == [18.0, 16.0, 14.0]
    free = [(sql, params) for sql, params in statements
            if (re.match(r"\s*SELECT", sql) and '"discovered_videos"' in sql
                and "LIMIT" in sql and "ORDER BY" in sql)]
    reserve = [(sql, params) for sql, params in statements
               if re.match(r'\s*UPDATE "discovered_videos"', sql)]
    assert len(free) == 1 and len(reserve) == 1, statements
    assert index_used(busy, free, "discovered_videos") == {"idx_discovered_videos_candidates"}
    assert index_used(busy, reserve, "discovered_videos") == {"pkey"}
    (sql, params), = free
    plan = _plan(busy, sql, params) if isinstance(busy, peewee.SqliteDatabase) else [
        row[0] for row in busy.execute_sql("EXPLAIN (COSTS OFF) " + sql, params)]
    assert not any("TEMP B-TREE" in line or re.match(r"\s*(->\s*)?Sort", line)
                   for line in plan), plan


@pytest.mark.parametrize("name", ["bot_status", "bot_queue", "bot_digest"])
def test_the_bots_queries_never_read_the_discovered_videos(busy, name):
    """A year holds a million discovered videos: status, queue and digest reach none of them row by
    row (status lists the niches by one index seek each)."""
    with captured_sql() as statements:
        OPERATIONS[name]()
    assert [line for table,
            line in table_scans(busy, statements) if table == "discovered_videos"] == []


def test_the_check_itself_catches_a_full_scan(busy):
    """Guard against a check that cannot fail: a query on an unindexed column is reported."""
    with captured_sql() as statements:
        list(pm.Analytics.select().where(pm.Analytics.like_count > 5))
    (scan,) = full_scans(busy, statements)
    assert scan.startswith(("SCAN t1", "->  Seq Scan on analytics", "Seq Scan on analytics"))
    with captured_sql() as statements:
        list(pm.DiscoveredVideo.select().where(pm.DiscoveredVideo.title == "x"))
    assert [table for table, _ in table_scans(busy, statements)] == ["discovered_videos"]


# --- Analytics: latest(), top(n) and growth() read what they return, and the triggers seek --------

def _snapshots(videos, per_video, first_video=0, t0=aware(2026, 1, 1)):
    """record_many rows: `per_video` hourly snapshots of each video, views growing, some not
    reported."""
    return (
        (f"p{v:05d}", t0 + timedelta(hours=h, seconds=v), None if v % 97 == 5 else v * 10 + h)
        + (None,) * 9
        for h in range(per_video) for v in range(first_video, first_video + videos))


@pytest.fixture
def many_videos(database):
    """2,000 videos of 3 snapshots and one of 200, analysed: PostgreSQL then plans as for a large
    table."""
    pm.Analytics.record_many(_snapshots(2000, 3))
    pm.Analytics.record_many(
        ("long", aware(2026, 1, 1) - timedelta(hours=h), h) + (None,) * 9 for h in range(200))
    database.execute_sql("ANALYZE")
    return database


def _plan(database, sql, params):
    """The plan's lines: SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN ANALYZE (with actual row
    counts)."""
    if isinstance(database, peewee.SqliteDatabase):
        return [row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]
    return [
        row[0] for row in database.execute_sql("EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF) " + sql,
                                               params)]


def _only_statement(operation):
    with captured_sql() as statements:
        operation()
    (statement,) = statements
    return statement


def test_top_reads_only_its_rows(many_videos):
    """top(n) walks analytics_latest's view_count index and stops after n rows: no sort of every
    video."""
    sql, params = _only_statement(lambda: pm.Analytics.top(5))
    plan = _plan(many_videos, sql, params)
    if isinstance(many_videos, peewee.SqliteDatabase):
        # Backwards along the index; only rows of equal views are sorted (by video id) among
        # themselves.
        assert plan == ["SCAN analytics_latest USING INDEX analytics_latest_view_count",
                        "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"]
    else:
        assert plan[0].startswith("Limit (actual rows=5 ")
        assert re.match(r"->  Index Scan using analytics_latest_view_count on analytics_latest "
                        r"\(actual rows=5 loops=1\)", plan[1].strip()), plan
        assert not any("Sort" in line or "analytics " in line for line in plan), plan


def test_latest_reads_one_row_per_video_and_no_snapshot_table(many_videos):
    sql, params = _only_statement(lambda: pm.Analytics.latest(rows="tuples"))
    plan = _plan(many_videos, sql, params)
    if isinstance(many_videos, peewee.SqliteDatabase):
        assert plan == ["SCAN analytics_latest USING INDEX analytics_latest_view_count",
                        "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"]
    else:  # all of a small table: the planner may rightly read it in order, or read it and sort it
        scans = [line.strip() for line in plan if "Scan" in line]
        assert len(scans) == 1 and re.search(r"Scan.* on analytics_latest \(actual rows=2001 "
                                             r"loops=1\)", scans[0]), plan


def test_growth_is_two_seeks_reading_two_rows(many_videos):
    sql, params = _only_statement(lambda: pm.Analytics.growth("long", since=aware(2025, 12, 25)))
    plan = _plan(many_videos, sql, params)
    if isinstance(many_videos, peewee.SqliteDatabase):
        seeks = [line for line in plan if line.startswith("SEARCH analytics USING INDEX "
                                                          "idx_analytics_video "
                                                            "(youtube_video_id=? AND "
                                                            "measured_at>?)")]
        assert len(seeks) == 2 and full_scans(many_videos, [(sql, params)]) == [], plan
    else:
        scans = [line.strip() for line in plan if "Scan" in line and "Subquery Scan" not in line]
        assert len(scans) == 2 and all("using idx_analytics_video on analytics" in s
                                       for s in scans), plan
        # Each stops at the first snapshot past its end (one more to see that no other has the same
        # time).
        assert all(int(re.search(r"actual rows=(\d+)", s).group(1)) <= 2 for s in scans), plan


def test_triggers_seek_on_postgresql(many_videos):
    """Recording, deleting the newest snapshot and updating one: no sequential scan of either
    table."""
    if isinstance(many_videos, peewee.SqliteDatabase):
        pytest.skip("PostgreSQL's per-transaction scan counters; SQLite: "
                    "test_cost_follows_what_is_returned")
    # The backend's counts not yet reported (those of its last second's transactions too), read
    # twice inside one transaction: the difference is this transaction's.
    scans = ("SELECT relname, seq_scan FROM pg_stat_xact_user_tables "
             "WHERE relname IN ('analytics', 'analytics_latest') ORDER BY relname")
    newest = pm.Analytics.select(peewee.fn.MAX(pm.Analytics.id)).where(
        pm.Analytics.youtube_video_id == "p00042")
    with many_videos.atomic():
        before = many_videos.execute_sql(scans).fetchall()
        pm.Analytics.record("p00042", view_count=10**9)
        pm.Analytics.record_many([("p00043", aware(2027, 1, 1), 1) + (None,) * 9,
                                  ("p00044", aware(2027, 1, 1), 2) + (None,) * 9])
        pm.Analytics.delete().where(pm.Analytics.id == newest.scalar()).execute()
        pm.Analytics.update(like_count=1).where(pm.Analytics.id == newest.scalar()).execute()
        assert many_videos.execute_sql(scans).fetchall() == before
    assert pm.Analytics.top(1)[0].youtube_video_id == "p01999"


def _vm_steps(database, operation):
    """How many SQLite virtual machine instructions `operation` runs: its work, independent of the
    clock."""
    steps = itertools.count()
    connection = database.connection()
    connection.set_progress_handler(lambda: next(steps) and 0, 1)
    try:
        operation()
    finally:
        connection.set_progress_handler(None, 1)
    return next(steps)


def test_cost_follows_what_is_returned(database):
    """SQLite: the work of each read, and of each trigger, stays the same with ten times the
    snapshots.

    (A B-tree seek is one instruction, however deep the tree: a scan would show as instructions per
    row.)
    """
    if not isinstance(database, peewee.SqliteDatabase):
        pytest.skip("SQLite's instruction count; PostgreSQL: test_triggers_seek_on_postgresql")
    t1 = aware(2026, 2, 1)

    def work():
        old = pm.Analytics.get(
            (pm.Analytics.youtube_video_id == "p00007") & (pm.Analytics.view_count == 70))
        steps = {
            "latest": _vm_steps(database, lambda: pm.Analytics.latest(rows="tuples")),
            "top": _vm_steps(database, lambda: pm.Analytics.top(3)),
            "growth": _vm_steps(database, lambda: pm.Analytics.growth("p00007", since=aware(2026, 1,
                                                                                            1))),
            "record": _vm_steps(database, lambda: pm.Analytics.record("p00008", measured_at=t1,
                                                                      view_count=9)),
            "record late": _vm_steps(database, lambda: pm.Analytics.record("p00009",
                                                                           measured_at=aware(2025,
                                                                                             1,
                                                                                             1))),
            "delete an old one": _vm_steps(database, lambda: old.delete_instance()),
        }
        newest = pm.Analytics.select().where(pm.Analytics.youtube_video_id == "p00008").order_by(
            pm.Analytics.measured_at.desc()).first()
        steps["delete the newest"] = _vm_steps(database, lambda: newest.delete_instance())
        return steps

    pm.Analytics.record_many(_snapshots(100, 10))
    small = work()
    # the same videos, ten times the rows
    pm.Analytics.record_many(_snapshots(100, 90, t0=aware(2026, 1, 2)))
    large = work()
    assert pm.Analytics.select().count() == 10_000 - 1 - 1 + 2
    for name in small:
        assert large[name] <= small[name] * 1.1 + 20, (name, small[name], large[name])
