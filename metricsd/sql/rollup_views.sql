-- The dashboard views of views.sql that the rollups can answer, read from
-- the continuous aggregates points_daily and points_weekly (see
-- rollups.timescaledb.sql) with exactly the same columns and types, so a
-- dashboard never knows which it reads. Buckets are UTC (time_bucket on
-- timestamptz), weeks start on Monday, as date_trunc's.
-- They filter on the caller's sources as views.sql does: continuous
-- aggregates cannot have row-level security, and viewers get no right on
-- them.

CREATE OR REPLACE VIEW commits_per_day WITH (security_barrier = true) AS
SELECT (r.bucket AT TIME ZONE 'UTC')::date AS day,
       r.source AS repository,
       coalesce (sum (r.total) FILTER (WHERE r.name = 'git.commits'), 0)::bigint AS commits,
       count (DISTINCT r.tags->>'author') FILTER (WHERE r.name = 'git.commits') AS authors,
       coalesce (sum (r.total) FILTER (WHERE r.name = 'git.insertions'), 0)::bigint
           AS insertions,
       coalesce (sum (r.total) FILTER (WHERE r.name = 'git.deletions'), 0)::bigint AS deletions
FROM points_daily r
WHERE r.name IN ('git.commits', 'git.insertions', 'git.deletions')
  AND r.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[])
GROUP BY 1, 2;

CREATE OR REPLACE VIEW commits_per_week WITH (security_barrier = true) AS
SELECT (r.bucket AT TIME ZONE 'UTC')::date AS week,
       r.source AS repository,
       coalesce (sum (r.total) FILTER (WHERE r.name = 'git.commits'), 0)::bigint AS commits,
       count (DISTINCT r.tags->>'author') FILTER (WHERE r.name = 'git.commits') AS authors,
       coalesce (sum (r.total) FILTER (WHERE r.name = 'git.insertions'), 0)::bigint
           AS insertions,
       coalesce (sum (r.total) FILTER (WHERE r.name = 'git.deletions'), 0)::bigint AS deletions
FROM points_weekly r
WHERE r.name IN ('git.commits', 'git.insertions', 'git.deletions')
  AND r.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[])
GROUP BY 1, 2;

CREATE OR REPLACE VIEW build_success_weekly WITH (security_barrier = true) AS
SELECT (r.bucket AT TIME ZONE 'UTC')::date AS week,
       r.source,
       r.tags->>'pipeline' AS pipeline,
       coalesce (sum (r.points) FILTER (WHERE r.name = 'ci.build.success'), 0)::bigint
           AS builds,
       coalesce (sum (r.total) FILTER (WHERE r.name = 'ci.build.success'), 0)::bigint
           AS succeeded,
       round ((sum (r.total) FILTER (WHERE r.name = 'ci.build.success')
               / nullif (sum (r.points) FILTER (WHERE r.name = 'ci.build.success'), 0)
                     ::double precision)::numeric, 4) AS success_rate,
       (sum (r.total) FILTER (WHERE r.name = 'ci.build.duration')
        / nullif (sum (r.points) FILTER (WHERE r.name = 'ci.build.duration'), 0)
              ::double precision)::double precision AS avg_duration
FROM points_weekly r
WHERE r.name IN ('ci.build.success', 'ci.build.duration')
  AND r.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[])
GROUP BY 1, 2, 3;
