"""analytics_latest: a copy of each video's newest analytics snapshot (greatest (measured_at, id)),
kept by triggers on analytics, so that Analytics.latest() and top(n) read one row per video whatever
the number of snapshots. Filled from the rows already there, in the migration's transaction (seconds
at ten million rows: one seek per video in idx_analytics_video).

SQLite: a WITHOUT ROWID table keyed by the video and three row triggers. PostgreSQL: four statement
triggers (a COPY or a multi-row INSERT costs one upsert per video), whose functions are
analytics_latest_*(). The seed's tables, columns and idx_analytics_video are unchanged.
"""
from pipeline_models.fields import backend_of

# analytics' columns, in its order, as 0004 left them.
COLUMNS = ("id", "youtube_video_id", "measured_at", "view_count", "like_count", "comment_count",
           "average_view_duration_seconds", "click_through_rate", "subscriber_gain",
           "estimated_revenue_usd", "engaged_views", "shares", "watch_time_minutes")
NAMES = dict(cols=", ".join(COLUMNS), new_cols=", ".join(f"NEW.{c}" for c in COLUMNS),
             a_cols=", ".join(f"a.{c}" for c in COLUMNS),
             set_cols=", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "youtube_video_id"))

TABLE = {
    "sqlite": """CREATE TABLE analytics_latest (
    id INTEGER NOT NULL,
    youtube_video_id VARCHAR(100) NOT NULL PRIMARY KEY,
    measured_at TIMESTAMPTZ NOT NULL,
    view_count INTEGER,
    like_count INTEGER,
    comment_count INTEGER,
    average_view_duration_seconds REAL,
    click_through_rate REAL,
    subscriber_gain INTEGER,
    estimated_revenue_usd REAL,
    engaged_views INTEGER,
    shares INTEGER,
    watch_time_minutes REAL
) WITHOUT ROWID""",
    "postgres": """CREATE TABLE analytics_latest (
    id INTEGER NOT NULL,
    youtube_video_id VARCHAR(100) NOT NULL PRIMARY KEY,
    measured_at TIMESTAMPTZ NOT NULL,
    view_count BIGINT,
    like_count BIGINT,
    comment_count BIGINT,
    average_view_duration_seconds DOUBLE PRECISION,
    click_through_rate DOUBLE PRECISION,
    subscriber_gain BIGINT,
    estimated_revenue_usd DOUBLE PRECISION,
    engaged_views BIGINT,
    shares BIGINT,
    watch_time_minutes DOUBLE PRECISION
)""",
}

INDEX = {
    "sqlite": "CREATE INDEX analytics_latest_view_count ON analytics_latest (view_count)",
    "postgres": "CREATE INDEX analytics_latest_view_count ON analytics_latest "
                "(view_count DESC NULLS LAST, youtube_video_id)",
}

SQLITE_TRIGGERS = [
    """CREATE TRIGGER analytics_latest_insert AFTER INSERT ON analytics
BEGIN
    INSERT INTO analytics_latest ({cols}) VALUES ({new_cols})
    ON CONFLICT (youtube_video_id) DO UPDATE SET {set_cols}
    WHERE (excluded.measured_at, excluded.id) > (analytics_latest.measured_at, analytics_latest.id);
END""",
    """CREATE TRIGGER analytics_latest_delete AFTER DELETE ON analytics
WHEN OLD.id = (SELECT id FROM analytics_latest WHERE youtube_video_id = OLD.youtube_video_id)
BEGIN
    DELETE FROM analytics_latest WHERE youtube_video_id = OLD.youtube_video_id;
    INSERT INTO analytics_latest ({cols}) SELECT {cols} FROM analytics
    WHERE youtube_video_id = OLD.youtube_video_id ORDER BY measured_at DESC, id DESC LIMIT 1;
END""",
    """CREATE TRIGGER analytics_latest_update AFTER UPDATE ON analytics
BEGIN
    DELETE FROM analytics_latest WHERE youtube_video_id IN (OLD.youtube_video_id, \
NEW.youtube_video_id);
    INSERT INTO analytics_latest ({cols}) SELECT {cols} FROM analytics
    WHERE youtube_video_id = OLD.youtube_video_id ORDER BY measured_at DESC, id DESC LIMIT 1;
    INSERT INTO analytics_latest ({cols}) SELECT {cols} FROM analytics
    WHERE youtube_video_id = NEW.youtube_video_id AND NEW.youtube_video_id <> OLD.youtube_video_id
    ORDER BY measured_at DESC, id DESC LIMIT 1;
END""",
]

POSTGRES_TRIGGERS = [
    """CREATE FUNCTION analytics_latest_refresh(videos VARCHAR[]) RETURNS void LANGUAGE sql AS $$
    DELETE FROM analytics_latest WHERE youtube_video_id = ANY (videos);
    INSERT INTO analytics_latest ({cols})
    SELECT newest.* FROM unnest(videos) AS v (vid) CROSS JOIN LATERAL (
        SELECT {cols} FROM analytics WHERE youtube_video_id = v.vid
        ORDER BY measured_at DESC, id DESC LIMIT 1) AS newest;
$$""",
    """CREATE FUNCTION analytics_latest_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_latest AS l ({cols})
    SELECT DISTINCT ON (youtube_video_id) {cols} FROM new_rows
    ORDER BY youtube_video_id, measured_at DESC, id DESC
    ON CONFLICT (youtube_video_id) DO UPDATE SET {set_cols}
    WHERE (excluded.measured_at, excluded.id) > (l.measured_at, l.id);
    RETURN NULL;
END $$""",
    """CREATE FUNCTION analytics_latest_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analytics_latest_refresh(ARRAY(
        SELECT l.youtube_video_id FROM analytics_latest l
        JOIN old_rows o ON o.youtube_video_id = l.youtube_video_id AND o.id = l.id));
    RETURN NULL;
END $$""",
    """CREATE FUNCTION analytics_latest_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analytics_latest_refresh(ARRAY(
        SELECT youtube_video_id FROM old_rows UNION SELECT youtube_video_id FROM new_rows));
    RETURN NULL;
END $$""",
    """CREATE FUNCTION analytics_latest_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE analytics_latest;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER analytics_latest_insert AFTER INSERT ON analytics REFERENCING NEW TABLE AS "
    "new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics_latest_insert()",
    "CREATE TRIGGER analytics_latest_delete AFTER DELETE ON analytics REFERENCING OLD TABLE AS "
    "old_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics_latest_delete()",
    "CREATE TRIGGER analytics_latest_update AFTER UPDATE ON analytics "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION analytics_latest_update()",
    "CREATE TRIGGER analytics_latest_truncate AFTER TRUNCATE ON analytics "
    "FOR EACH STATEMENT EXECUTE FUNCTION analytics_latest_truncate()",
]

FILL = {
    "sqlite": """WITH RECURSIVE videos (vid) AS (
    SELECT MIN(youtube_video_id) FROM analytics
    UNION ALL
    SELECT (SELECT MIN(youtube_video_id) FROM analytics WHERE youtube_video_id > vid) \
FROM videos WHERE vid IS NOT NULL
)
INSERT INTO analytics_latest ({cols})
SELECT {a_cols} FROM videos JOIN analytics a ON a.id = (
    SELECT id FROM analytics WHERE youtube_video_id = videos.vid \
ORDER BY measured_at DESC, id DESC LIMIT 1)""",
    "postgres": """WITH RECURSIVE videos (vid) AS (
    SELECT MIN(youtube_video_id) FROM analytics
    UNION ALL
    SELECT (SELECT MIN(youtube_video_id) FROM analytics WHERE youtube_video_id > vid) \
FROM videos WHERE vid IS NOT NULL
)
INSERT INTO analytics_latest ({cols})
SELECT newest.* FROM videos CROSS JOIN LATERAL (
    SELECT {cols} FROM analytics WHERE youtube_video_id = videos.vid
    ORDER BY measured_at DESC, id DESC LIMIT 1) AS newest""",
}

DROP = {
    "sqlite": ["DROP TABLE IF EXISTS analytics_latest"],
    "postgres": ["DROP TABLE IF EXISTS analytics_latest"] + [
        f"DROP FUNCTION IF EXISTS analytics_latest_{name}" for name in ("insert", "delete",
                                                                        "update", "truncate",
                                                                       "refresh")],
}


def _backend(db):
    return backend_of(db)


def up(migrator, db):
    backend = _backend(db)
    triggers = POSTGRES_TRIGGERS if backend == "postgres" else SQLITE_TRIGGERS
    # A copy left behind when analytics was dropped without it (the demo drops the model tables) is
    # stale.
    for statement in [*DROP[backend], TABLE[backend], INDEX[backend],
                      *(t.format(**NAMES) for t in triggers), FILL[backend].format(**NAMES)]:
        db.execute_sql(statement)


def down(migrator, db):
    backend = _backend(db)
    if backend == "sqlite":
        for name in ("insert", "delete", "update"):
            db.execute_sql(f"DROP TRIGGER IF EXISTS analytics_latest_{name}")
    else:
        for name in ("insert", "delete", "update", "truncate"):
            db.execute_sql(f"DROP TRIGGER IF EXISTS analytics_latest_{name} ON analytics")
    for statement in DROP[backend]:
        db.execute_sql(statement)
