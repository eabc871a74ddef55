-- metricsd schema, version 5, both modes: `points` as readers knew it.
--
-- Version 4 split points into points_series and points_data; this view
-- gives the old columns (time, name, value, source, tags) back, for the
-- dashboard views (views.sql) and anyone reading raw points. It filters on
-- the caller's sources itself, as the dashboard views do (security_barrier
-- keeps a caller's own conditions from running before that filter), so
-- viewers read through it and get no right on the tables: in native mode
-- the partitions made later have no grant anyway, under TimescaleDB
-- chunks would take the hypertable's grants but not a policy.
CREATE VIEW points WITH (security_barrier = true) AS
SELECT d.time, s.name, d.value, s.source, s.tags
FROM points_data d
JOIN points_series s ON s.id = d.series_id
WHERE s.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[]);

GRANT SELECT ON points TO omni_reader, omni_viewer;
GRANT SELECT ON points_data, points_series TO omni_reader;
