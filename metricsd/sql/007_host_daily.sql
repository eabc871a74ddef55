-- metricsd schema, version 7, both modes: the host figures of closed days.
--
-- omni-report's host section gives per UTC day the median and 95th
-- percentile of CPU busy (user + system), memory used and load of a
-- source's host samples (a sample: one host at one time). A year of
-- samples every two minutes is 1,000,000 points, sorted again at every
-- request (0.9 s of a dashboard page's 2 s: docs/performance.md, "Reports").
-- A day wholly in the past changes only when a point lands in it late, so
-- its figures are computed once and kept here, per source and day;
-- omni-report reads them for the days they cover and computes the others
-- (the current day, a day with a late point not yet counted again) from
-- the points.
--
-- Exact percentiles: TimescaleDB's continuous aggregates cannot hold them
-- without the Toolkit (Timescale License), so this is a plain table kept by
-- metricsd in both modes.
--
-- How it stays exact:
-- - host_daily_pending: the (source, day) pairs whose points changed since
--   their figures were computed. metricsd marks the pairs of a batch's
--   host points (metricsd_host_daily_mark) in the batch's transaction, so a
--   point is never committed without its mark; a mark already there gets a
--   new `gen`.
-- - metricsd_host_daily_refresh computes the pending days before today
--   (UTC): it reads the marks (and their gen), computes those days from the
--   points, stores the figures and deletes the marks whose gen is still the
--   one it read, in one transaction. A point committed after the figures
--   were read has bumped its mark's gen (or made a new mark), so its mark
--   stays and the day is computed again; one refresh at a time (an advisory
--   lock), so two cannot store figures out of order.
-- - A reader uses a day's row only when the day has no mark, in its own
--   snapshot: the figures and the marks' deletion commit together.
-- - Retention: days whose points were dropped are marked
--   (metricsd_host_daily_forget), and the next refresh removes their rows.
--
-- Access: row-level security on the caller's sources, as every reader of
-- points gets (omni_visible_patterns); plain tables, so also under
-- TimescaleDB (docs/operations.md, "Per-project access").

CREATE SEQUENCE host_daily_gen;

CREATE TABLE host_daily (
    source   text NOT NULL,
    day      date NOT NULL,           -- UTC
    samples  bigint NOT NULL,         -- (time, host) samples of the day
    -- percentile_cont (ARRAY[0.5, 0.95]) of the day's samples, as the
    -- report computes them from the points; NULL when no sample has it
    cpu      double precision[],      -- host.cpu.user + host.cpu.system
    mem      double precision[],      -- host.mem.used (the largest of a sample's)
    load     double precision[],      -- host.load.1
    computed timestamptz NOT NULL DEFAULT now (),
    PRIMARY KEY (source, day)
);

CREATE TABLE host_daily_pending (
    source  text NOT NULL,
    day     date NOT NULL,
    gen     bigint NOT NULL DEFAULT nextval ('host_daily_gen'),
    PRIMARY KEY (source, day)
);

-- The writer's marks: the (source, day) pairs of a batch's host points, in
-- the batch's transaction. Key order, so that two writers wait for each
-- other rather than deadlock.
CREATE FUNCTION metricsd_host_daily_mark (sources text[], days date[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO host_daily_pending AS q (source, day)
    SELECT DISTINCT s, d FROM unnest (sources, days) u (s, d) ORDER BY 1, 2
    ON CONFLICT (source, day) DO UPDATE SET gen = nextval ('host_daily_gen');
$$;

-- The figures of the (source, day) pairs `todo`, from the points: the
-- statement omni-report runs on the points, per source (its samples are
-- (time, source, host), as there).
CREATE FUNCTION metricsd_host_daily_compute (todo host_daily_pending[])
RETURNS TABLE (source text, day date, samples bigint, cpu double precision[],
               mem double precision[], load double precision[])
LANGUAGE sql STABLE AS $$
    WITH t AS (SELECT DISTINCT u.source, u.day FROM unnest (todo) u),
    g AS (SELECT s.id, s.source, s.tags->>'host' AS host,
                 s.name IN ('host.cpu.user', 'host.cpu.system') AS is_cpu,
                 s.name = 'host.mem.used' AS is_mem, s.name = 'host.load.1' AS is_load
          FROM points_series s
          WHERE s.name IN ('host.cpu.user', 'host.cpu.system', 'host.mem.used', 'host.load.1')
            AND s.source IN (SELECT t.source FROM t)),
    smp AS (SELECT t.source, t.day,
                   sum (p.value) FILTER (WHERE g.is_cpu) AS cpu,
                   max (p.value) FILTER (WHERE g.is_mem) AS mem,
                   max (p.value) FILTER (WHERE g.is_load) AS load
            FROM t JOIN g ON g.source = t.source
            JOIN points_data p ON p.series_id = g.id
             AND p.time >= t.day::timestamp AT TIME ZONE 'UTC'
             AND p.time < (t.day + 1)::timestamp AT TIME ZONE 'UTC'
            GROUP BY t.source, t.day, p.time, g.host)
    SELECT smp.source, smp.day, count(*),
           percentile_cont (ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY smp.cpu),
           percentile_cont (ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY smp.mem),
           percentile_cont (ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY smp.load)
    FROM smp GROUP BY smp.source, smp.day;
$$;

-- Computes up to `max_days` pending closed days (before today, UTC), oldest
-- first; returns how many, or -1 when another refresh is running. Each
-- statement of this function sees what was committed when it began (read
-- committed), which the marks' gen makes safe (see above).
CREATE FUNCTION metricsd_host_daily_refresh (max_days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    todo host_daily_pending[];
BEGIN
    IF NOT pg_try_advisory_xact_lock (5723352100006884407) THEN  -- "OmniMetR"
        RETURN -1;
    END IF;
    SELECT array_agg (q ORDER BY q.day, q.source) INTO todo
    FROM (SELECT * FROM host_daily_pending
          WHERE day < (now () AT TIME ZONE 'UTC')::date
          ORDER BY day, source LIMIT max_days) q;
    IF todo IS NULL THEN
        RETURN 0;
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS host_daily_new (LIKE host_daily) ON COMMIT DELETE ROWS;
    INSERT INTO host_daily_new (source, day, samples, cpu, mem, load, computed)
    SELECT c.source, c.day, c.samples, c.cpu, c.mem, c.load, now ()
    FROM metricsd_host_daily_compute (todo) c;
    -- Days without a point any more (retention) keep no row
    DELETE FROM host_daily h USING unnest (todo) u
    WHERE h.source = u.source AND h.day = u.day
      AND NOT EXISTS (SELECT 1 FROM host_daily_new n WHERE n.source = u.source AND n.day = u.day);
    INSERT INTO host_daily AS h SELECT * FROM host_daily_new ORDER BY source, day
    ON CONFLICT (source, day) DO UPDATE SET samples = excluded.samples, cpu = excluded.cpu,
        mem = excluded.mem, load = excluded.load, computed = excluded.computed;
    DELETE FROM host_daily_pending q USING unnest (todo) u
    WHERE q.source = u.source AND q.day = u.day AND q.gen = u.gen;
    RETURN cardinality (todo);
END $$;

-- Retention dropped the points before `cut`: the days kept for that time
-- are counted again (a day the cut leaves points in gets the same figures
-- back; one without points loses its row).
CREATE FUNCTION metricsd_host_daily_forget (cut timestamptz) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO host_daily_pending AS q (source, day)
    SELECT source, day FROM host_daily
    WHERE day::timestamp AT TIME ZONE 'UTC' < cut ORDER BY 1, 2
    ON CONFLICT (source, day) DO UPDATE SET gen = nextval ('host_daily_gen');
$$;

-- The days of the points stored before this version
INSERT INTO host_daily_pending (source, day)
SELECT DISTINCT s.source, (p.time AT TIME ZONE 'UTC')::date
FROM points_data p JOIN points_series s ON s.id = p.series_id
WHERE s.name IN ('host.cpu.user', 'host.cpu.system', 'host.mem.used', 'host.load.1')
ORDER BY 1, 2;

ALTER TABLE host_daily ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON host_daily FOR SELECT
    USING (source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[]));
ALTER TABLE host_daily_pending ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON host_daily_pending FOR SELECT
    USING (source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[]));
GRANT SELECT ON host_daily, host_daily_pending TO omni_reader, omni_viewer;
