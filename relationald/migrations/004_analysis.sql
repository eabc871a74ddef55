-- 1. Stored analysis results: the figures of each report per source
-- (`omni-report --intake`, kind analysis.summary), so trends of the figures
-- themselves can be queried: how the bus factor or the success rate of a
-- source moved from one report to the next.
--
-- A record's natural key is (source, day, since, until): the report's UTC
-- date and the period it covered (NULL = open). The kind is mutable: a
-- second report of the same source, day and period replaces the row when
-- it is newer (record ts), as branches and builds are updated; an older
-- one delivered late changes nothing.
--
-- 2. commit_files carries its commit's source_id, and its row-level
-- security policy asks sources like every other table's (a hashed sub-plan
-- over the few visible source ids, once per query) instead of looking each
-- row's commit up by primary key: at 300,000 files that look-up was most of
-- a report's time as a granted role (docs/performance.md, "Reports"). The
-- existing rows get theirs from their commit, once, here.

CREATE TABLE analysis_summaries (
    id            bytea PRIMARY KEY CHECK (length (id) = 16),
    source_id     bigint NOT NULL REFERENCES sources (id),
    day           date NOT NULL,          -- the report's date (UTC)
    since         timestamptz,            -- the period, NULL = open
    until         timestamptz,            -- exclusive
    commits       bigint NOT NULL,        -- reachable commits (commits_canonical)
    authors       bigint NOT NULL,        -- canonical e-mails
    files         bigint NOT NULL,        -- distinct paths touched
    builds        bigint NOT NULL,
    success_rate  double precision,       -- succeeded / (succeeded + failed), NULL = none
    test_runs     bigint NOT NULL,
    tests         bigint NOT NULL,
    code_lines    bigint,                 -- latest code snapshot, NULL = none
    bus_factor    integer,                -- NULL = no commits
    observed      timestamptz NOT NULL,   -- when the report was made (record ts)
    first_seen    timestamptz NOT NULL DEFAULT now (),
    updated       timestamptz NOT NULL DEFAULT now (),
    run_id        text NOT NULL
);
CREATE INDEX analysis_summaries_day ON analysis_summaries (source_id, day);

ALTER TABLE analysis_summaries ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON analysis_summaries FOR SELECT
    USING (source_id IN (SELECT s.id FROM sources s));

-- The figures over time, per source, with its project (docs/queries.md).
CREATE VIEW analysis_trend AS
SELECT sp.source,
       a.day,
       a.since,
       a.until,
       a.commits,
       a.authors,
       a.files,
       a.builds,
       a.success_rate,
       a.test_runs,
       a.tests,
       a.code_lines,
       a.bus_factor,
       a.observed AS reported,
       sp.project
FROM analysis_summaries a
JOIN source_projects sp ON sp.source_id = a.source_id;
ALTER VIEW analysis_trend SET (security_invoker = true);

GRANT SELECT ON analysis_summaries, analysis_trend TO omni_reader, omni_viewer;

ALTER TABLE commit_files ADD COLUMN source_id bigint REFERENCES sources (id);
UPDATE commit_files f SET source_id = c.source_id FROM commits c WHERE c.id = f.commit_id;
ALTER TABLE commit_files ALTER COLUMN source_id SET NOT NULL;
CREATE INDEX commit_files_source ON commit_files (source_id);

DROP POLICY omni_source ON commit_files;
CREATE POLICY omni_source ON commit_files FOR SELECT
    USING (source_id IN (SELECT s.id FROM sources s));
