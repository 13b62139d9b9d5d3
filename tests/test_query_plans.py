"""Every hot operation reaches its rows through an index: EXPLAIN QUERY PLAN of the SQL it really runs.

The statements are captured from peewee's query log while the operation runs, so a change to an
operation's query (or a dropped index) that turns it into a full table scan fails here.
"""
import contextlib
import logging
import re
from datetime import timedelta

import peewee
import pytest
from conftest import aware

import pipeline_models as pm

# Scans that are not of a table: the recursive CTE Analytics.latest() walks, and one-row constants.
NOT_TABLES = ("videos", "CONSTANT")


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


def full_scans(database, statements):
    """The plan lines, over all statements, that read a whole table (or a whole index) instead of seeking."""
    found = []
    for sql, params in statements:
        if not re.match(r"\s*(WITH|SELECT|UPDATE|DELETE)", sql, re.I):
            continue
        if isinstance(database, peewee.SqliteDatabase):
            plan = [row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]
            # "SCAN t" and "SCAN t USING COVERING INDEX i" both read every row; "SEARCH" seeks.
            found += [line for line in plan if re.match(r"SCAN (\w+)", line)
                      and re.match(r"SCAN (\w+)", line).group(1) not in NOT_TABLES]
        else:
            # With sequential scans priced out, a plan that still has one has no index to use: on tables
            # this small PostgreSQL would otherwise rightly choose a scan.
            with database.atomic():
                database.execute_sql("SET LOCAL enable_seqscan = off")
                plan = [row[0] for row in database.execute_sql("EXPLAIN " + sql, params)]
            found += [line.strip() for line in plan if "Seq Scan on" in line]
    return found


@pytest.fixture
def busy(database):
    """A database with rows in every table the operations touch."""
    t0 = aware(2026, 1, 1)
    for n in range(20):
        video, _ = pm.DiscoveredVideo.discover(f"v{n}")
        run = pm.PipelineRun.start(video)
        pm.ErrorLog.create(module=f"m{n % 3}", error_type="E", error_message="x", pipeline_run=run,
                           occurred_at=t0 + timedelta(hours=n))
        for hour in range(10):
            pm.Analytics.record(f"s{n}", measured_at=t0 + timedelta(hours=hour), view_count=hour)
    for n in range(5):
        pm.ReviewLog.request(pm.PipelineRun.claim_next("w"))
    # No ANALYZE: with statistics of a 20-row table the planner rightly prefers a scan; without them it
    # plans as it would for a large table, which is what this test is about.
    return database


def approve_and_upload():
    review = pm.ReviewLog.open().first()
    short = pm.Short.create(pipeline_run=review.pipeline_run_id, status="rendered")
    review.respond("approve")
    short.start_upload()
    short.mark_uploaded("yt-plan")  # the run's last short: publishes it


OPERATIONS = {
    "claim_next": lambda: pm.PipelineRun.claim_next("w2"),
    "claim_heartbeat_fail": lambda: (run := pm.PipelineRun.claim_next("w3")).heartbeat() and run.fail("boom"),
    "start_again": lambda: pm.PipelineRun.start(pm.DiscoveredVideo.get(pm.DiscoveredVideo.youtube_video_id == "v7")),
    "approve_and_upload": approve_and_upload,
    "requeue_stale": lambda: pm.PipelineRun.requeue_stale(timedelta(minutes=5)),
    "latest": lambda: pm.Analytics.latest(),
    "top": lambda: pm.Analytics.top(3),
    "growth": lambda: pm.Analytics.growth("s3", since=aware(2026, 1, 1, 5)),
    "unresolved": lambda: list(pm.ErrorLog.unresolved()),
    "unresolved_module": lambda: list(pm.ErrorLog.unresolved("m1")),
    "hold_stale": lambda: pm.ReviewLog.hold_stale(timedelta(hours=1)),
    "open_reviews": lambda: list(pm.ReviewLog.open()),
    "runs_by_status": lambda: list(pm.PipelineRun.select().where(pm.PipelineRun.status == "pending")
                                   .order_by(pm.PipelineRun.created_at)),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_operation_uses_an_index(busy, name):
    with captured_sql() as statements:
        OPERATIONS[name]()
    assert statements, "the operation ran no SQL to check"
    assert full_scans(busy, statements) == []


def test_the_check_itself_catches_a_full_scan(busy):
    """Guard against a check that cannot fail: a query on an unindexed column is reported."""
    with captured_sql() as statements:
        list(pm.Analytics.select().where(pm.Analytics.like_count > 5))
    (scan,) = full_scans(busy, statements)
    assert scan.startswith(("SCAN t1", "->  Seq Scan on analytics", "Seq Scan on analytics"))
