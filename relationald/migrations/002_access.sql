-- Per-project access (docs/operations.md, "Per-project access"): the shared
-- roles, grants table and policy function, then row-level security on every
-- table that holds a source's data, and the views made security_invoker so
-- that it applies through them too (a view otherwise reads with its owner's
-- rights, and the owner bypasses row-level security).
--
-- The \ir line is psql's include, so psql runs this file as it is;
-- gen_migrations.sh puts the included file's text in its place.
\ir ../../pg/sql/access.sql

-- A source's rows are visible when its name is LIKE one of the caller's
-- patterns. Tables keyed by source_id ask sources, whose own policy then
-- applies (a hashed sub-plan over the few sources, once per query);
-- commit_files asks its commit by primary key.
ALTER TABLE sources ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON sources FOR SELECT
    USING (name LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[]));

ALTER TABLE runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON runs FOR SELECT USING (source_id IN (SELECT s.id FROM sources s));
ALTER TABLE commits ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON commits FOR SELECT USING (source_id IN (SELECT s.id FROM sources s));
ALTER TABLE branches ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON branches FOR SELECT USING (source_id IN (SELECT s.id FROM sources s));
ALTER TABLE tags ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON tags FOR SELECT USING (source_id IN (SELECT s.id FROM sources s));
ALTER TABLE ci_builds ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON ci_builds FOR SELECT
    USING (source_id IN (SELECT s.id FROM sources s));
ALTER TABLE ci_tests ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON ci_tests FOR SELECT
    USING (source_id IN (SELECT s.id FROM sources s));
ALTER TABLE code_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON code_stats FOR SELECT
    USING (source_id IN (SELECT s.id FROM sources s));

ALTER TABLE commit_files ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON commit_files FOR SELECT
    USING (EXISTS (SELECT 1 FROM commits c WHERE c.id = commit_files.commit_id));

-- Refused records keep their source's name
ALTER TABLE rejected_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON rejected_records FOR SELECT
    USING (source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[]));

ALTER VIEW contributors SET (security_invoker = true);
ALTER VIEW commit_activity_daily SET (security_invoker = true);
ALTER VIEW commit_activity_weekly SET (security_invoker = true);
ALTER VIEW build_success_rate SET (security_invoker = true);
ALTER VIEW slowest_tests SET (security_invoker = true);
ALTER VIEW flakiest_tests SET (security_invoker = true);

-- Named one by one, never ALL TABLES: the migration tables and the grants
-- stay the writers' own. A later migration that adds a table or a view of a
-- source's data adds its policy (or security_invoker) and its grant here.
GRANT SELECT ON sources, runs, commits, commit_files, branches, tags, ci_builds, ci_tests,
                code_stats, rejected_records, contributors, commit_activity_daily,
                commit_activity_weekly, build_success_rate, slowest_tests, flakiest_tests
    TO omni_reader, omni_viewer;
