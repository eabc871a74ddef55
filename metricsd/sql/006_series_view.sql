-- metricsd schema, version 6, both modes: the series a reader may see, and
-- each point's series id.
--
-- `points` gives each point its series' name, source and tags: what a
-- reader of single points wants. A reader that groups many points by
-- sample (omni-report's host section: a year of host.* points every two
-- minutes, 1,000,000 points) then hashes those texts and takes the host
-- out of the tags once per point. With the series readable and the series
-- id on each point, it does that once per series and groups the points by
-- (time, a number) (docs/performance.md, "Reports").
--
-- Both filter on the caller's sources as `points` does (005_points_view.sql:
-- security_barrier, no right on the tables for viewers). The new column of
-- `points` comes last, so the dashboard views (views.sql) and any reader
-- that names its columns are unchanged.
CREATE OR REPLACE VIEW points WITH (security_barrier = true) AS
SELECT d.time, s.name, d.value, s.source, s.tags, d.series_id
FROM points_data d
JOIN points_series s ON s.id = d.series_id
WHERE s.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[]);

CREATE VIEW series WITH (security_barrier = true) AS
SELECT s.id, s.name, s.source, s.tags
FROM points_series s
WHERE s.source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[]);

GRANT SELECT ON series TO omni_reader, omni_viewer;
