"""The SQL of analytics_latest, the newest snapshot of each video, and of the triggers on analytics
that keep it, for SQLite and PostgreSQL; formatted with the column lists of Analytics
(analytics._latest_names)."""

# --- analytics_latest: the newest snapshot of each video, kept by triggers on analytics -----------
# A copy of each video's newest row of analytics (greatest (measured_at, id)), with analytics'
# columns (no CHECKs: every row comes from analytics, which checked it). Migration 0006 makes the
# same (tests/test_migrations compares them); a migration that rebuilds analytics must make the
# triggers again.

# {latest_columns}: LATEST_KEYS, then analytics' metrics, typed as each backend names their types.
LATEST_TABLE = {
    "sqlite": "CREATE TABLE analytics_latest (\n    {latest_columns}\n) WITHOUT ROWID",
    "postgres": "CREATE TABLE analytics_latest (\n    {latest_columns}\n)",
}
LATEST_TYPES = {  # by the kind of analytics' column
    "sqlite": {"int": "INTEGER", "float": "REAL"},
    "postgres": {"int": "BIGINT", "float": "DOUBLE PRECISION"},
}
LATEST_KEYS = ["id INTEGER NOT NULL", "youtube_video_id VARCHAR(100) NOT NULL PRIMARY KEY",
                "measured_at TIMESTAMPTZ NOT NULL"]

# top(n) walks this index from its most viewed end. SQLite reads an ascending index backwards
# (NULLs, its smallest values, come last; only rows of equal views are sorted, by video id, among
# themselves): cheaper to keep than a descending one, since a video's views grow and its entry
# mostly moves towards the end, where SQLite inserts fastest (a descending one doubled the triggers'
# cost). PostgreSQL gets the query's exact order.
LATEST_INDEX = {
    "sqlite": "CREATE INDEX analytics_latest_view_count ON analytics_latest (view_count)",
    "postgres": "CREATE INDEX analytics_latest_view_count ON analytics_latest "
                "(view_count DESC NULLS LAST, youtube_video_id)",
}

# Row triggers on SQLite. A snapshot replaces the copy only when newer, so one that arrives late
# never moves it back; deleting the newest snapshot (and any update: rare) recomputes the video with
# one seek in idx_analytics_video; deleting an older one (compaction) costs one look-up.
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

# Statement triggers on PostgreSQL: a COPY or a multi-row INSERT costs one upsert per video, not per
# row. (Row triggers would cost one per row; and each update of a row keeps a version of it until
# the transaction ends, so a transaction that records the same video in many statements makes each
# upsert slower.)
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

# Fills analytics_latest from the rows already there: the skip-scan of idx_analytics_video, one seek
# per video for the next video id and one for its newest snapshot (seconds at ten million rows).
LATEST_FILL = {
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

# What a bulk insert runs per video instead of analytics_latest_insert (Analytics._bulk_trigger):
# the video's newest snapshot, one seek in idx_analytics_video, copied over.
SQLITE_LATEST_REFRESH = """INSERT INTO analytics_latest ({cols})
SELECT {cols} FROM analytics WHERE id = (
    SELECT id FROM analytics WHERE youtube_video_id = ? ORDER BY measured_at DESC, id DESC LIMIT 1)
ON CONFLICT (youtube_video_id) DO UPDATE SET {set_cols}"""

LATEST_DROP = {
    "sqlite": ["DROP TABLE IF EXISTS analytics_latest"],
    "postgres": ["DROP TABLE IF EXISTS analytics_latest"] + [
        f"DROP FUNCTION IF EXISTS analytics_latest_{name}" for name in ("insert", "delete",
                                                                        "update", "truncate",
                                                                       "refresh")],
}

