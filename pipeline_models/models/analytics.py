"""Analytics: snapshots of an uploaded video's YouTube metrics (a run's long-form video or a short),
and what reads them fast (the newest of each video, growth between snapshots) or thins them
(compact)."""
import collections
import datetime
import itertools
import logging
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import peewee
from peewee import Check

from ..bulk import refuse_unknown_fields
from ..db import db, missing_table_error, write_lock
from ..fields import (CheckedBigIntegerField, CheckedCharField, CheckedFloatField, UTCDateTimeField,
                      backend_of, checked_now, utcnow, whole_number)
from .analytics_sql import (LATEST_DROP, LATEST_FILL, LATEST_INDEX, LATEST_KEYS, LATEST_TABLE,
                            LATEST_TYPES, POSTGRES_TRIGGERS, SQLITE_LATEST_REFRESH, SQLITE_TRIGGERS)
from .base import BaseModel, at_least_zero
from .config import ConfigOverride, setting_name

logger = logging.getLogger("pipeline_models")


class Analytics(BaseModel):
    """One snapshot of an uploaded video's YouTube metrics; NULL means "not reported", not zero."""

    youtube_video_id = CheckedCharField(max_length=100,
                                        help_text="the YouTube id of a run's long-form video or of "
                                                  "a short")
    measured_at = UTCDateTimeField(default=utcnow, help_text="when the metrics were read")
    view_count = CheckedBigIntegerField(null=True, constraints=at_least_zero("view_count"),
                                        help_text="views")
    like_count = CheckedBigIntegerField(null=True, constraints=at_least_zero("like_count"),
                                        help_text="likes")
    comment_count = CheckedBigIntegerField(null=True, constraints=at_least_zero("comment_count"),
                                           help_text="comments")
    average_view_duration_seconds = CheckedFloatField(
        null=True, constraints=at_least_zero("average_view_duration_seconds"),
        help_text="how long a view lasts on average")
    click_through_rate = CheckedFloatField(null=True,
                                           help_text="impressions that became views, as a fraction "
                                                     "0..1",
                                           constraints=[Check("click_through_rate >= 0 AND "
                                                              "click_through_rate <= 1")])
    subscriber_gain = CheckedBigIntegerField(null=True,
                                             constraints=at_least_zero("subscriber_gain"),
                                             help_text="subscribers gained through it")
    estimated_revenue_usd = CheckedFloatField(null=True,
                                              constraints=at_least_zero("estimated_revenue_usd"),
                                              help_text="revenue YouTube estimates for it")
    engaged_views = CheckedBigIntegerField(null=True, constraints=at_least_zero("engaged_views"),
                                           help_text="views YouTube counts as engaged")
    shares = CheckedBigIntegerField(null=True, constraints=at_least_zero("shares"),
                                    help_text="shares")
    watch_time_minutes = CheckedFloatField(null=True,
                                           constraints=at_least_zero("watch_time_minutes"),
                                           help_text="total time watched")

    class Meta:
        table_name = "analytics"

    METRICS = ("view_count", "like_count", "comment_count", "average_view_duration_seconds",
               "click_through_rate", "subscriber_gain", "estimated_revenue_usd", "engaged_views",
               "shares", "watch_time_minutes")
    # Cumulative counters: growth is their difference between two snapshots (ratios are not).
    COUNTERS = ("view_count", "like_count", "comment_count", "subscriber_gain",
                "estimated_revenue_usd", "engaged_views", "shares", "watch_time_minutes")

    @classmethod
    def record(cls, youtube_video_id: str, measured_at: Optional[datetime.datetime] = None,
               **metrics: Any) -> "Analytics":
        """Store one snapshot of a video's metrics (now, unless `measured_at` says when); omitted
        metrics are NULL."""
        refuse_unknown_fields(cls, metrics, cls.METRICS)
        # not `or`: False is a bad value, not now
        measured_at = utcnow() if measured_at is None else measured_at
        return cls.create(youtube_video_id=youtube_video_id, measured_at=measured_at, **metrics)

    RECORD_FIELDS = ("youtube_video_id", "measured_at", *METRICS)

    @classmethod
    def _bulk_trigger(cls) -> Optional[Tuple[str, str, str]]:
        """analytics_latest's insert trigger, an upsert per row: a large batch refreshes each video
        once instead."""
        return ("analytics_latest_insert", "youtube_video_id",
                SQLITE_LATEST_REFRESH.format(**_latest_names()))

    @classmethod
    def record_many(cls, rows: Iterable[Any], chunk_size: int = 2000) -> int:
        """Store many snapshots at once: dicts, or tuples in RECORD_FIELDS order; returns how many.

        Validated exactly as record() would, written in one transaction with one prepared statement,
        `chunk_size` rows at a time so a generator of any length keeps memory flat. A bad row aborts
        the whole batch (nothing is written) with an error naming its position.
        """
        return cls.insert_rows(rows, fields=cls.RECORD_FIELDS, chunk_size=chunk_size,
                               none_is_default=("measured_at",))  # as in record(): None means now

    # --- the newest snapshot of each video --------------------------------------------------------
    # analytics_latest holds, per video, a copy of its newest snapshot (greatest (measured_at, id)),
    # kept by triggers on analytics (_latest_schema below): latest() and top(n) read it instead of
    # analytics, so their cost follows the videos they return, whatever the number of snapshots.
    # Triggers, not Python, keep it: every writer of analytics (raw SQL included) keeps it in step.

    @classmethod
    def create_table(cls, safe: bool = True, **options: Any) -> None:
        """peewee's create_table(), and with a new analytics table, analytics_latest and the
        triggers keeping it."""
        database = cls._meta.database
        existed = safe and database.table_exists(cls._meta.table_name)
        super().create_table(safe=safe, **options)
        if not existed:
            for statement in _latest_schema(backend_of(database) == "postgres"):
                database.execute_sql(statement)

    @classmethod
    def drop_table(cls, safe: bool = True, **options: Any) -> None:
        """peewee's drop_table(), and analytics_latest with it (the triggers go with their
        table)."""
        database = cls._meta.database
        super().drop_table(safe=safe, **options)
        for statement in LATEST_DROP[backend_of(database)]:
            database.execute_sql(statement)

    # What latest() runs: every row of the small analytics_latest, in the order of its view_count
    # index.
    _LATEST_SQL = ("SELECT id, youtube_video_id, measured_at, view_count, like_count, "
                   "comment_count, "
                   "average_view_duration_seconds, click_through_rate, subscriber_gain, "
                   "estimated_revenue_usd, "
                   "engaged_views, shares, watch_time_minutes FROM analytics_latest "
                   "ORDER BY view_count DESC NULLS LAST, youtube_video_id")
    # top(n): the same walk of the index, stopped after n rows.
    _TOP_SQL = _LATEST_SQL + " LIMIT {p}"
    # What latest(rows=...) and top(n, rows=...) return, named as peewee names its row types.
    ROW_KINDS = ("models", "tuples", "namedtuples", "dicts")

    @classmethod
    def latest(cls, rows: str = "models") -> List[Any]:
        """The newest snapshot of every video, most viewed first (NULL views last, then by video
        id).

        `rows` as in peewee's query methods: "models" (Analytics instances), "tuples" (in the field
        order, Analytics._meta.sorted_field_names), "namedtuples" (Analytics.Row) or "dicts"; the
        values are the same in each (measured_at an aware UTC datetime), the others cost less than
        models.
        """
        kind = cls._row_kind(rows)
        return cls._rows_as(cls._fetch(cls._LATEST_SQL), kind)

    @classmethod
    def top(cls, n: int = 10, rows: str = "models") -> List[Any]:
        """The newest snapshots of the `n` most viewed videos: latest()'s first `n`, reading only
        those."""
        whole_number("Analytics.top: n", 0, unit="videos")(n)
        kind = cls._row_kind(rows)
        return cls._rows_as(cls._fetch(cls._TOP_SQL.format(p=cls._meta.database.param), (n,)), kind)

    @classmethod
    def _fetch(cls, sql: str, params: Sequence[Any] = ()) -> List[tuple]:
        """Every row of `sql`, on the model's database; a missing table raises TablesMissing, as
        model queries do."""
        database = cls._meta.database
        try:
            return database.execute_sql(sql, params).fetchall()
        except (peewee.OperationalError, peewee.ProgrammingError) as exc:
            missing = missing_table_error(exc, database)
            if missing is None:
                raise
            raise missing from exc

    @classmethod
    def _row_kind(cls, rows: Any) -> str:
        if rows not in cls.ROW_KINDS:
            raise ValueError("Analytics: rows must be one of "
                             f"{', '.join(map(repr, cls.ROW_KINDS))}, not {rows!r}")
        return rows

    @classmethod
    def _rows_as(cls, rows: List[tuple], kind: str) -> List[Any]:
        """Rows of every column in field order, converted as the fields read them, as `kind`
        asks."""
        if not rows:
            return []
        # Column by column: only measured_at needs converting, and zip() moves the rest at C speed.
        columns = list(zip(*rows))
        at = cls._meta.sorted_field_names.index("measured_at")
        columns[at] = _utc_datetimes(columns[at])
        if kind == "tuples":
            return list(zip(*columns))
        if kind == "namedtuples":
            return list(map(cls.Row._make, zip(*columns)))
        names = cls._meta.sorted_field_names
        dicts = list(map(dict, map(zip, itertools.repeat(names), zip(*columns))))
        if kind == "dicts":
            return dicts
        # What peewee's row reader makes (Model(__no_default__=1, **row), then _dirty cleared),
        # without its setattr per field, which costs more than the query.
        made = []
        for data in dicts:
            snapshot = cls.__new__(cls)
            snapshot.__data__, snapshot._dirty, snapshot.__rel__ = data, set(), {}
            made.append(snapshot)
        return made

    # The first snapshot at or after a time, and the newest: two seeks in idx_analytics_video, one
    # statement, two rows of the counters only (end_ tells them apart: UNION ALL promises no order).
    _GROWTH_SQL = """
        SELECT * FROM (SELECT 0 AS end_, measured_at, {counters} FROM analytics
                       WHERE youtube_video_id = {p} AND measured_at >= {p}
                       ORDER BY measured_at, id LIMIT 1) AS growth_first
        UNION ALL
        SELECT * FROM (SELECT 1 AS end_, measured_at, {counters} FROM analytics
                       WHERE youtube_video_id = {p} AND measured_at >= {p}
                       ORDER BY measured_at DESC, id DESC LIMIT 1) AS growth_last
    """

    @classmethod
    def growth(cls, youtube_video_id: str, since: datetime.datetime) -> Optional[Dict[str, Any]]:
        """Change of each counter from the first snapshot at or after `since` to the latest one.

        Returns {"since": ..., "until": ..., "views": +n, ...} (None for a counter either snapshot
        lacks), or None when the video has no snapshot since then.
        """
        if youtube_video_id is None or since is None:
            raise ValueError("Analytics.growth: give a video id and an aware datetime `since`, "
                             f"not {youtube_video_id!r}, {since!r}")
        video, moment = (cls.youtube_video_id.db_value(youtube_video_id),
                         cls.measured_at.db_value(since))
        sql = cls._GROWTH_SQL.format(p=cls._meta.database.param, counters=", ".join(cls.COUNTERS))
        ends = sorted(cls._fetch(sql, (video, moment, video, moment)))
        if not ends:
            return None
        (_, began, *first), (_, until, *last) = ends
        change: Dict[str, Any] = {"since": cls.measured_at.python_value(began),
                                  "until": cls.measured_at.python_value(until)}
        for name, old, new in zip(cls.COUNTERS, first, last):
            change[name] = None if old is None or new is None else new - old
        return change

    # Retention: snapshots older than this are thinned to one per video per UTC day by compact().
    # ConfigOverride COMPACT_AFTER_KEY (a whole number of days) replaces the default at run time.
    COMPACT_AFTER = datetime.timedelta(days=30)
    COMPACT_AFTER_KEY = "analytics.compact_after_days"
    COMPACT_BATCH = 2000

    @classmethod
    def compact(cls, older_than: Optional[datetime.timedelta] = None, *,
                now: Optional[datetime.datetime] = None,
                batch_size: int = COMPACT_BATCH) -> Dict[str, Any]:
        """Thin snapshots older than `older_than` to one per video per UTC day; growth() from
        midnights unchanged.

        The cut-off is `now - older_than` rounded down to a UTC midnight (so whole UTC days are
        thinned; the newest `older_than` and up to a day more stay as they are). Before it, each
        video keeps the first snapshot of each UTC day (the lowest id among equal times: the one
        growth() starts from) and its newest snapshot; everything at or after the cut-off is kept.
        `older_than` defaults to the ConfigOverride 'analytics.compact_after_days' (days), else 30
        days.

        Works through the table in id order, `batch_size` rows per short transaction, pausing
        between them on SQLite, so workers keep claiming meanwhile. Every batch is idempotent: after
        a crash or a kill, running it again finishes the work (a second run deletes nothing).
        Returns {"cutoff": datetime, "deleted": rows removed, "batches": transactions}.
        """
        cutoff = cls._compact_cutoff(older_than, now)
        whole_number("Analytics.compact: batch_size", 1, 10 ** 9, "rows")(batch_size)
        summary: Dict[str, Any] = {"cutoff": cutoff, "deleted": 0, "batches": 0}
        # In id order: snapshots arrive about in time order, so a batch's rows share a few table
        # pages (walking video by video rewrote each page once per video on it: 8x the writes). Rows
        # recorded meanwhile are left to the next run (kept: compaction never needs to delete, only
        # may).
        last = cls.select(peewee.fn.MAX(cls.id)).scalar()
        after = 0
        while last is not None and after < last:
            with write_lock():
                began = time.monotonic()
                deleted, after = cls._compact_batch(after, last, cutoff, batch_size)
                held = time.monotonic() - began
            summary["deleted"] += deleted
            summary["batches"] += 1
            if backend_of(db.obj) == "sqlite":
                # SQLite has no queue for its lock: a waiting writer polls (every 100 ms at most).
                # Leaving the lock free as long as a batch held it lets the polls of workers
                # succeed. (Not counting the checkpoint after the commit, which runs without the
                # lock.)
                time.sleep(held)
        logger.info("compacted analytics before %s: %d snapshots removed in %d batches",
                    cutoff.isoformat(), summary["deleted"], summary["batches"])
        return summary

    @classmethod
    def _compact_cutoff(cls, older_than: Optional[datetime.timedelta],
                        now: Optional[datetime.datetime]) -> datetime.datetime:
        """The UTC midnight at or before `now - older_than` (older_than defaults to the policy)."""
        if older_than is None:
            days = ConfigOverride.value_of(cls.COMPACT_AFTER_KEY)
            older_than = cls.COMPACT_AFTER if days is None else datetime.timedelta(
                days=_compact_after_days(days))
        if not isinstance(older_than, datetime.timedelta):
            raise TypeError("Analytics.compact: older_than must be a datetime.timedelta, e.g. "
                            f"timedelta(days=30), not {type(older_than).__name__}")
        if not datetime.timedelta(0) < older_than <= datetime.timedelta(days=36500):
            raise ValueError("Analytics.compact: older_than must be more than zero and at most "
                             f"100 years, not {older_than}")
        now = checked_now("Analytics.compact", now)
        try:
            return cls._midnight(now - older_than)
        except OverflowError:
            raise ValueError(f"Analytics.compact: now - older_than is before the year 1: "
                             f"{now} - {older_than}") from None

    @staticmethod
    def _midnight(moment: datetime.datetime) -> datetime.datetime:
        """The UTC midnight that starts the UTC day of `moment`."""
        return moment.astimezone(datetime.timezone.utc).replace(hour=0, minute=0, second=0,
                                                                microsecond=0)

    # One batch: the rows with ids in (after, upto] older than the cut-off, less those to keep. For
    # each (video, UTC day) among them, one seek in (youtube_video_id, measured_at) finds the day's
    # first snapshot (wherever its id is); for each video, one seek finds its newest. {day} is the
    # row's UTC midnight as the backend compares it with measured_at: SQLite's fixed-width UTC text
    # begins with the date. COALESCE(.., 0) (no id is 0): a NULL would make NOT IN delete nothing,
    # and filtering it out PostgreSQL seeks twice. (It starts with DELETE, the CTEs inside: Python's
    # sqlite3 counts the rows only of a statement that does.)
    _COMPACT_SQL = """
        DELETE FROM analytics WHERE id IN (
            WITH batch AS (
                SELECT id, youtube_video_id AS vid, measured_at FROM analytics
                WHERE id > {p} AND id <= {p} AND measured_at < {p}
            ), keep AS (
                SELECT COALESCE((SELECT f.id FROM analytics f WHERE f.youtube_video_id = g.vid
                                 AND f.measured_at >= g.day \
ORDER BY f.measured_at, f.id LIMIT 1), 0) AS id
                FROM (SELECT DISTINCT vid, {day} AS day FROM batch) g
                UNION
                SELECT COALESCE((SELECT n.id FROM analytics n WHERE n.youtube_video_id = v.vid
                                 ORDER BY n.measured_at DESC, n.id DESC LIMIT 1), 0)
                FROM (SELECT DISTINCT vid FROM batch) v
            )
            SELECT id FROM batch WHERE id NOT IN (SELECT id FROM keep)
        )
    """
    _DAY = {"sqlite": "substr(measured_at, 1, 10)",
            "postgres": "date_trunc('day', measured_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"}

    @classmethod
    def _compact_batch(cls, after: int, last: int, cutoff: datetime.datetime,
                       batch_size: int) -> Tuple[int, int]:
        """One batch (the caller holds write_lock): the next `batch_size` rows after id `after`, up
        to id `last`, thinned; returns (rows deleted, the id the batch ended at).
        """
        upto = (
            cls.select(cls.id).where(cls.id > after).order_by(cls.id).offset(batch_size - 1)
            .limit(1).scalar())
        upto = last if upto is None else min(upto, last)
        database = db.obj
        sql = cls._COMPACT_SQL.format(p=database.param, day=cls._DAY[backend_of(db)])
        cursor = database.execute_sql(sql, (after, upto, cls.measured_at.db_value(cutoff)))
        return cursor.rowcount, upto


# The seed's index names (peewee would name a Meta.indexes entry after its table and columns).
Analytics.add_index(Analytics.youtube_video_id, Analytics.measured_at, name="idx_analytics_video")


def _latest_schema(postgres: bool) -> List[str]:
    """The statements that make analytics_latest, its index and the triggers that keep it, then fill
    it.

    A copy left behind when analytics was dropped without it (the demo drops the model tables) is
    stale: it goes first.
    """
    backend = "postgres" if postgres else "sqlite"
    names = _latest_names()
    types = LATEST_TYPES[backend]
    fields = Analytics._meta.fields
    metrics = [f"{name} {types['float' if isinstance(fields[name], peewee.FloatField) else 'int']}"
               for name in Analytics.METRICS]
    table = LATEST_TABLE[backend].format(latest_columns=",\n    ".join(LATEST_KEYS + metrics))
    triggers = POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS
    return [*LATEST_DROP[backend], table, LATEST_INDEX[backend],
            *(t.format(**names) for t in triggers), LATEST_FILL[backend].format(**names)]


def _latest_names() -> Dict[str, str]:
    """The column lists the analytics_latest statements are formatted with."""
    columns = [f.column_name for f in Analytics._meta.sorted_fields]
    return dict(cols=", ".join(columns), new_cols=", ".join(f"NEW.{c}" for c in columns),
                a_cols=", ".join(f"a.{c}" for c in columns),
                set_cols=", ".join(
                    f"{c} = excluded.{c}" for c in columns if c != "youtube_video_id"))


def _utc_datetimes(values: Sequence[Any]) -> List[Any]:
    """A column of measured_at values as Analytics.measured_at reads them (aware UTC datetimes), at
    once."""
    try:
        if values and isinstance(values[0], str):
            # The fixed-width UTC text the field writes, with its offset added: one C call per
            # value.
            return list(map(datetime.datetime.fromisoformat, map("{}+00:00".format, values)))
        # PostgreSQL's, in the session's zone
        return [value.astimezone(datetime.timezone.utc) for value in values]
    except (TypeError, ValueError, AttributeError):
        # Text some other writer stored in another form: read as the field reads it, value by value.
        return list(map(Analytics.measured_at.python_value, values))


# The rows latest(rows="namedtuples") and top(n, rows="namedtuples") return.
Analytics.Row = collections.namedtuple("AnalyticsRow", Analytics._meta.sorted_field_names)


# The policy's days before compaction, 1 to 36500, or a ValueError naming its ConfigOverride key.
_compact_after_days = whole_number(setting_name(Analytics.COMPACT_AFTER_KEY), 1, 36500, "days")


ConfigOverride.CHECKS[Analytics.COMPACT_AFTER_KEY] = _compact_after_days
