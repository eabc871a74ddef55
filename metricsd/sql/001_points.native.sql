-- metricsd schema, version 1, for plain PostgreSQL (no TimescaleDB).
--
-- Applied once by metricsd at start-up, in the transaction that holds the
-- advisory lock and records it in metricsd_migrations. Never edit a released
-- migration: add the next NNN_name.*.sql. No BEGIN/COMMIT in these files.
--
-- One narrow table of points, range-partitioned by time. Partitions are
-- created by metricsd_ensure_partition: ahead of the data (the current and
-- next period) and on demand for any older or later time, so a point is
-- never refused for want of a partition. There is no DEFAULT partition on
-- purpose: rows parked in one would block creating the real partition.

CREATE TABLE metricsd_settings (
    key    text PRIMARY KEY,
    value  text NOT NULL
);
INSERT INTO metricsd_settings VALUES ('mode', 'native');

CREATE TABLE points (
    time    timestamptz NOT NULL,
    name    text NOT NULL,               -- series, e.g. host.cpu.user, git.commits
    value   double precision NOT NULL,
    source  text NOT NULL,               -- the record's src: repository, CI project, host
    tags    jsonb NOT NULL DEFAULT '{}'  -- e.g. {"host": "web-1"}
) PARTITION BY RANGE (time);

-- Redelivery and re-collection never double a point.
CREATE UNIQUE INDEX points_key ON points (name, source, tags, time);
-- The dashboards' access path: one series over a time range.
CREATE INDEX points_name_time ON points (name, time);

-- The partitions and their bounds, read from the catalog (whoever made them).
CREATE FUNCTION metricsd_partitions ()
RETURNS TABLE (part text, lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT c.relname::text, m[1]::timestamptz, m[2]::timestamptz
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid,
         regexp_match (pg_get_expr (c.relpartbound, c.oid),
                       'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)') AS m
    WHERE i.inhparent = 'points'::regclass
$$;

-- The partition that holds time t, created when missing: [t truncated to
-- `unit` (day | week | month | year, in UTC), + 1 unit), clipped so as not to
-- overlap a neighbour made with another unit. Returns its bounds.
--
-- Concurrency: several metricsd may want the same partition at once. The
-- advisory lock (transaction level) makes them take turns; the second finds
-- it made. CREATE ... PARTITION OF takes an ACCESS EXCLUSIVE lock on points,
-- so metricsd calls this in a short transaction of its own, never inside a
-- batch, and with a lock_timeout: a long query on points makes it fail and
-- retry rather than stall every writer queued behind it.
CREATE FUNCTION metricsd_ensure_partition (t timestamptz, unit text)
RETURNS TABLE (lo timestamptz, hi timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    start timestamptz;
    stop timestamptz;
    pname text;
BEGIN
    IF unit NOT IN ('day', 'week', 'month', 'year') THEN
        RAISE EXCEPTION 'metricsd_ensure_partition: unit must be day, week, month or year, not %',
            unit;
    END IF;
    PERFORM pg_advisory_xact_lock (5723352100006884432);  -- "OmniMetP"
    RETURN QUERY SELECT p.lo, p.hi FROM metricsd_partitions () p WHERE t >= p.lo AND t < p.hi;
    IF FOUND THEN
        RETURN;
    END IF;
    start := date_trunc (unit, t, 'UTC');
    stop := start + ('1 ' || unit)::interval;
    -- greatest / least ignore the NULL of an empty max / min
    SELECT greatest (start, max (p.hi)) INTO start
        FROM metricsd_partitions () p WHERE p.hi > start AND p.hi <= t;
    SELECT least (stop, min (p.lo)) INTO stop
        FROM metricsd_partitions () p WHERE p.lo > t AND p.lo < stop;
    pname := 'points_' || to_char (start AT TIME ZONE 'UTC', 'YYYYMMDD');
    IF start <> date_trunc ('day', start, 'UTC') OR to_regclass (pname) IS NOT NULL THEN
        pname := 'points_' || to_char (start AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MISS');
    END IF;
    EXECUTE format ('CREATE TABLE %I PARTITION OF points FOR VALUES FROM (%L) TO (%L)',
                    pname, start, stop);
    RETURN QUERY SELECT start, stop;
END
$$;
