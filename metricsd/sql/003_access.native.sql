-- metricsd schema, version 3, native partitions: per-project access
-- (docs/operations.md, "Per-project access"). Version 2 is the shared
-- common/sql/access.sql: omni_reader, omni_viewer, omni_access_grants and
-- omni_visible_patterns ().
--
-- Row-level security on points: a viewer reads the points of the sources
-- it was granted. It is on the partitioned table, so it applies to every
-- query through points; the partitions themselves get no grant (made later
-- by metricsd_ensure_partition, they have none), so no one reads around it.
-- The dashboard views (views.sql) filter on the same function themselves.
ALTER TABLE points ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON points FOR SELECT
    USING (source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[]));
GRANT SELECT ON points TO omni_reader, omni_viewer;
