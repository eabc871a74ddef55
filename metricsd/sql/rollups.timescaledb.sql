-- metricsd rollups for TimescaleDB under the timescale license (as in the
-- official image): daily and weekly continuous aggregates of every series,
-- refreshed by policies. rollup_views.sql then redefines the views of
-- views.sql that they can answer, with the same columns. Applied after
-- views.sql whenever this text changed; only in TimescaleDB mode.
--
-- The aggregates keep the series (points_series: name, source, tags), so
-- any view can be rebuilt from them (count, sum, min, max per bucket); they
-- read points_data alone, as continuous aggregates must read a hypertable,
-- and rollup_views.sql joins the series. Real-time aggregation is on
-- (materialized_only = false): recent points not yet materialized are
-- read from the hypertable. Points written into an already materialized
-- range (an old history collected late) are picked up by the next refresh
-- (the invalidation log), within the policy's schedule.
-- Percentiles (test_duration_weekly) and per-minute host views stay on the
-- raw points.

CREATE MATERIALIZED VIEW IF NOT EXISTS points_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket (INTERVAL '1 day', time) AS bucket, series_id,
       count (*) AS points, sum (value) AS total, min (value) AS low, max (value) AS high
FROM points_data
GROUP BY time_bucket (INTERVAL '1 day', time), series_id
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS points_weekly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket (INTERVAL '1 week', time) AS bucket, series_id,
       count (*) AS points, sum (value) AS total, min (value) AS low, max (value) AS high
FROM points_data
GROUP BY time_bucket (INTERVAL '1 week', time), series_id
WITH NO DATA;

-- start_offset NULL: refresh from the beginning of time, so late history
-- is rolled up too; end_offset keeps the open bucket to real-time reads.
SELECT add_continuous_aggregate_policy ('points_daily', start_offset => NULL,
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes',
    if_not_exists => true);
SELECT add_continuous_aggregate_policy ('points_weekly', start_offset => NULL,
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour',
    if_not_exists => true);
