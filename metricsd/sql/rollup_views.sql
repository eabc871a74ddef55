-- The dashboard views of views.sql that the rollups can answer, read from
-- the continuous aggregates points_daily and points_weekly (see
-- rollups.timescaledb.sql) joined to their series (points_series), with
-- exactly the same columns and types, so a dashboard never knows which it
-- reads. Buckets are UTC (time_bucket on
-- timestamptz), weeks start on Monday, as date_trunc's.
-- They filter on the caller's sources as views.sql does: continuous
-- aggregates cannot have row-level security, and viewers get no right on
-- them.

CREATE OR REPLACE VIEW commits_per_day WITH (security_barrier = true) AS
SELECT (d.bucket AT TIME ZONE 'UTC')::date AS day,
       s.source AS repository,
       coalesce (sum (d.total) FILTER (WHERE s.name = 'git.commits'), 0)::bigint AS commits,
       count (DISTINCT s.tags->>'author') FILTER (WHERE s.name = 'git.commits') AS authors,
       coalesce (sum (d.total) FILTER (WHERE s.name = 'git.insertions'), 0)::bigint
           AS insertions,
       coalesce (sum (d.total) FILTER (WHERE s.name = 'git.deletions'), 0)::bigint AS deletions
FROM points_daily d
JOIN points_series s ON s.id = d.series_id
WHERE s.name IN ('git.commits', 'git.insertions', 'git.deletions')
  AND s.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[])
GROUP BY 1, 2;

CREATE OR REPLACE VIEW commits_per_week WITH (security_barrier = true) AS
SELECT (d.bucket AT TIME ZONE 'UTC')::date AS week,
       s.source AS repository,
       coalesce (sum (d.total) FILTER (WHERE s.name = 'git.commits'), 0)::bigint AS commits,
       count (DISTINCT s.tags->>'author') FILTER (WHERE s.name = 'git.commits') AS authors,
       coalesce (sum (d.total) FILTER (WHERE s.name = 'git.insertions'), 0)::bigint
           AS insertions,
       coalesce (sum (d.total) FILTER (WHERE s.name = 'git.deletions'), 0)::bigint AS deletions
FROM points_weekly d
JOIN points_series s ON s.id = d.series_id
WHERE s.name IN ('git.commits', 'git.insertions', 'git.deletions')
  AND s.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[])
GROUP BY 1, 2;

CREATE OR REPLACE VIEW build_success_weekly WITH (security_barrier = true) AS
SELECT (d.bucket AT TIME ZONE 'UTC')::date AS week,
       s.source,
       s.tags->>'pipeline' AS pipeline,
       coalesce (sum (d.points) FILTER (WHERE s.name = 'ci.build.success'), 0)::bigint
           AS builds,
       coalesce (sum (d.total) FILTER (WHERE s.name = 'ci.build.success'), 0)::bigint
           AS succeeded,
       round ((sum (d.total) FILTER (WHERE s.name = 'ci.build.success')
               / nullif (sum (d.points) FILTER (WHERE s.name = 'ci.build.success'), 0)
                     ::double precision)::numeric, 4) AS success_rate,
       (sum (d.total) FILTER (WHERE s.name = 'ci.build.duration')
        / nullif (sum (d.points) FILTER (WHERE s.name = 'ci.build.duration'), 0)
              ::double precision)::double precision AS avg_duration
FROM points_weekly d
JOIN points_series s ON s.id = d.series_id
WHERE s.name IN ('ci.build.success', 'ci.build.duration')
  AND s.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[])
GROUP BY 1, 2, 3;
