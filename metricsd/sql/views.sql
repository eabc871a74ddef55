-- metricsd dashboard views over the raw points: plain PostgreSQL, and
-- TimescaleDB under the apache license (no continuous aggregates there).
--
-- Re-applied at start-up whenever this text changed (its checksum is kept in
-- metricsd_settings under 'views'), so each is CREATE OR REPLACE. Under the
-- timescale license rollups.timescaledb.sql replaces some of these with the
-- same columns read from continuous aggregates. A change of columns needs a
-- versioned migration that drops the view first.
--
-- Days, weeks and minutes are UTC; weeks start on Monday. Views are
-- unordered: add ORDER BY.
--
-- Per-project access (docs/operations.md): each view reads with its owner's
-- rights and keeps the points of the sources the caller may see itself
-- (omni_visible_patterns, common/sql/access.sql), rather than being
-- security_invoker over points' row-level security, because the same views
-- must work under TimescaleDB, where viewers get no right on the hypertable
-- and the continuous aggregates cannot have row-level security (see
-- 003_access.timescaledb.sql). security_barrier keeps a caller's own
-- conditions (a leaky function) from running before that filter.

-- Commits per repository (the records' src) and UTC day of the commit time.
CREATE OR REPLACE VIEW commits_per_day WITH (security_barrier = true) AS
SELECT (p.time AT TIME ZONE 'UTC')::date AS day,
       p.source AS repository,
       coalesce (sum (p.value) FILTER (WHERE p.name = 'git.commits'), 0)::bigint AS commits,
       count (DISTINCT p.tags->>'author') FILTER (WHERE p.name = 'git.commits') AS authors,
       coalesce (sum (p.value) FILTER (WHERE p.name = 'git.insertions'), 0)::bigint
           AS insertions,
       coalesce (sum (p.value) FILTER (WHERE p.name = 'git.deletions'), 0)::bigint AS deletions
FROM points p
WHERE p.name IN ('git.commits', 'git.insertions', 'git.deletions')
  AND p.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[])
GROUP BY 1, 2;

CREATE OR REPLACE VIEW commits_per_week WITH (security_barrier = true) AS
SELECT date_trunc ('week', p.time AT TIME ZONE 'UTC')::date AS week,
       p.source AS repository,
       coalesce (sum (p.value) FILTER (WHERE p.name = 'git.commits'), 0)::bigint AS commits,
       count (DISTINCT p.tags->>'author') FILTER (WHERE p.name = 'git.commits') AS authors,
       coalesce (sum (p.value) FILTER (WHERE p.name = 'git.insertions'), 0)::bigint
           AS insertions,
       coalesce (sum (p.value) FILTER (WHERE p.name = 'git.deletions'), 0)::bigint AS deletions
FROM points p
WHERE p.name IN ('git.commits', 'git.insertions', 'git.deletions')
  AND p.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[])
GROUP BY 1, 2;

-- Finished builds per pipeline and week of their start: builds counts the
-- ones with a result (success or failure; cancelled builds have none),
-- success_rate = succeeded / builds. avg_duration covers every build that
-- reported a duration, cancelled ones included.
CREATE OR REPLACE VIEW build_success_weekly WITH (security_barrier = true) AS
SELECT date_trunc ('week', p.time AT TIME ZONE 'UTC')::date AS week,
       p.source,
       p.tags->>'pipeline' AS pipeline,
       count (*) FILTER (WHERE p.name = 'ci.build.success') AS builds,
       coalesce (sum (p.value) FILTER (WHERE p.name = 'ci.build.success'), 0)::bigint
           AS succeeded,
       round ((avg (p.value) FILTER (WHERE p.name = 'ci.build.success'))::numeric, 4)
           AS success_rate,
       (avg (p.value) FILTER (WHERE p.name = 'ci.build.duration'))::double precision
           AS avg_duration
FROM points p
WHERE p.name IN ('ci.build.success', 'ci.build.duration')
  AND p.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[])
GROUP BY 1, 2, 3;

-- Test run durations (seconds) per suite and week; skipped runs have none.
-- Percentiles cannot come from rollups, so this view reads the points in
-- every mode.
CREATE OR REPLACE VIEW test_duration_weekly WITH (security_barrier = true) AS
SELECT date_trunc ('week', p.time AT TIME ZONE 'UTC')::date AS week,
       p.source,
       p.tags->>'suite' AS suite,
       count (*) FILTER (WHERE p.name = 'ci.test.duration') AS runs,
       coalesce (sum (p.value) FILTER (WHERE p.name = 'ci.test.failed'), 0)::bigint AS failed,
       (percentile_cont (0.5) WITHIN GROUP (ORDER BY p.value)
           FILTER (WHERE p.name = 'ci.test.duration')) AS p50,
       (percentile_cont (0.95) WITHIN GROUP (ORDER BY p.value)
           FILTER (WHERE p.name = 'ci.test.duration')) AS p95,
       max (p.value) FILTER (WHERE p.name = 'ci.test.duration') AS max
FROM points p
WHERE p.name IN ('ci.test.duration', 'ci.test.failed')
  AND p.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[])
GROUP BY 1, 2, 3;

-- Host CPU (percent of the interval), memory (bytes) and load per minute,
-- from collectord host (series host.*, tag host).
CREATE OR REPLACE VIEW host_per_minute WITH (security_barrier = true) AS
SELECT date_trunc ('minute', p.time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS minute,
       coalesce (p.tags->>'host', p.source) AS host,
       avg (p.value) FILTER (WHERE p.name = 'host.cpu.user') AS cpu_user,
       avg (p.value) FILTER (WHERE p.name = 'host.cpu.system') AS cpu_system,
       avg (p.value) FILTER (WHERE p.name = 'host.cpu.iowait') AS cpu_iowait,
       avg (p.value) FILTER (WHERE p.name = 'host.mem.total') AS mem_total,
       avg (p.value) FILTER (WHERE p.name = 'host.mem.available') AS mem_available,
       avg (p.value) FILTER (WHERE p.name = 'host.mem.used') AS mem_used,
       avg (p.value) FILTER (WHERE p.name = 'host.load.1') AS load_1
FROM points p
WHERE p.name IN ('host.cpu.user', 'host.cpu.system', 'host.cpu.iowait', 'host.mem.total',
                 'host.mem.available', 'host.mem.used', 'host.load.1')
  AND p.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[])
GROUP BY 1, 2;

GRANT SELECT ON commits_per_day, commits_per_week, build_success_weekly, test_duration_weekly,
                host_per_minute
    TO omni_reader, omni_viewer;
