-- Projects, not paths (docs/queries.md describes every view).
--
-- - projects: a source belongs to a project, named by the collector's
--   `project` setting in run.start; a source no run named is its own project
--   (source_projects gives both).
-- - commits: the .mailmap's canonical author and committer (NULL when the
--   mailmap leaves them as they are; the raw columns stay as git stores
--   them), and `reachable`, cleared by git.unreachable when the collector
--   no longer reaches a commit it sent (amended, rebased, a branch deleted).
--   The views count reachable commits only.
-- - commit_files: old_path, when git's default rename detection (50 %
--   similarity) pairs the file with one deleted in the same commit; the
--   numbers stay those of --no-renames. Binary files have NULL insertions
--   and deletions, as 001 said (they were stored as 0).
-- - tags: tagger_tz, minutes east of UTC.
--
-- Old data keeps its path sources: a source named by its .git directory
-- (before 003) and the same repository's URL source are two sources. Give
-- both one project (collectord --project) to see them together: the
-- project_* views count a commit (a sha) once per project.

ALTER TABLE commits
    ADD COLUMN author_name_mailmap     text,   -- .mailmap's name, NULL when unchanged
    ADD COLUMN author_email_mailmap    text,
    ADD COLUMN committer_name_mailmap  text,
    ADD COLUMN committer_email_mailmap text,
    ADD COLUMN reachable               boolean NOT NULL DEFAULT true,
    ADD COLUMN unreachable_since       timestamptz;  -- when a run first missed it

ALTER TABLE commit_files ADD COLUMN old_path text;  -- the path it was renamed from
CREATE INDEX commit_files_path ON commit_files (path);

UPDATE commit_files SET insertions = NULL, deletions = NULL WHERE is_binary;

ALTER TABLE tags ADD COLUMN tagger_tz smallint;      -- UTC offset, minutes

CREATE TABLE projects (
    source_id  bigint PRIMARY KEY REFERENCES sources (id),
    project    text NOT NULL,
    observed   timestamptz NOT NULL,                 -- run.start of the naming run
    run_id     text NOT NULL
);
CREATE INDEX projects_project ON projects (project);

ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON projects FOR SELECT
    USING (source_id IN (SELECT s.id FROM sources s));

-- ---------------------------------------------------------------------------
-- Views. Days and weeks are UTC, weeks start on Monday. Existing views keep
-- their columns (new ones are appended), so dashboards built on them work.

CREATE VIEW source_projects AS
SELECT s.id AS source_id, s.name AS source, coalesce (p.project, s.name) AS project
FROM sources s
LEFT JOIN projects p ON p.source_id = s.id;

-- A commit as the views count it: reachable, with its canonical people.
CREATE VIEW commits_canonical AS
SELECT c.*,
       coalesce (c.author_name_mailmap, c.author_name) AS author,
       coalesce (c.author_email_mailmap, c.author_email) AS email,
       sp.source, sp.project
FROM commits c
JOIN source_projects sp ON sp.source_id = c.source_id
WHERE c.reachable;

CREATE OR REPLACE VIEW contributors AS
SELECT c.source,
       c.email AS author_email,
       (array_agg (c.author ORDER BY c.author_time DESC, c.sha))[1] AS author_name,
       count(*) AS commits,
       count(*) FILTER (WHERE cardinality (c.parents) > 1) AS merges,
       sum(c.insertions) AS insertions,
       sum(c.deletions) AS deletions,
       min(c.author_time) AS first_commit,
       max(c.author_time) AS last_commit,
       min(c.project) AS project
FROM commits_canonical c
GROUP BY c.source, c.email;

-- Per project: a sha is counted once however many of the project's sources
-- hold it (two clones named differently, an old path source).
CREATE VIEW project_contributors AS
WITH one AS (
    SELECT DISTINCT ON (c.project, c.sha) c.*
    FROM commits_canonical c
    ORDER BY c.project, c.sha, c.source
)
SELECT one.project,
       one.email AS author_email,
       (array_agg (one.author ORDER BY one.author_time DESC, one.sha))[1] AS author_name,
       count(*) AS commits,
       count(*) FILTER (WHERE cardinality (one.parents) > 1) AS merges,
       sum(one.insertions) AS insertions,
       sum(one.deletions) AS deletions,
       min(one.author_time) AS first_commit,
       max(one.author_time) AS last_commit
FROM one
GROUP BY one.project, one.email;

CREATE OR REPLACE VIEW commit_activity_daily AS
SELECT c.source,
       (c.author_time AT TIME ZONE 'UTC')::date AS day,
       count(*) AS commits,
       count(DISTINCT c.email) AS authors,
       sum(c.insertions) AS insertions,
       sum(c.deletions) AS deletions,
       min(c.project) AS project
FROM commits_canonical c
GROUP BY c.source, (c.author_time AT TIME ZONE 'UTC')::date;

-- Every week from a source's first commit to its last, empty weeks as zeros.
CREATE OR REPLACE VIEW commit_activity_weekly AS
WITH span AS (
    SELECT c.source_id, c.source, min(c.project) AS project,
           date_trunc('week', min(c.author_time) AT TIME ZONE 'UTC') AS lo,
           date_trunc('week', max(c.author_time) AT TIME ZONE 'UTC') AS hi
    FROM commits_canonical c
    GROUP BY c.source_id, c.source
), weeks AS (
    SELECT span.source_id, span.source, span.project, w::date AS week
    FROM span, generate_series (span.lo, span.hi, interval '1 week') w
)
SELECT weeks.source,
       weeks.week,
       count(c.id) AS commits,
       count(DISTINCT c.email) AS authors,
       coalesce (sum(c.insertions), 0) AS insertions,
       coalesce (sum(c.deletions), 0) AS deletions,
       weeks.project
FROM weeks
LEFT JOIN commits_canonical c
       ON c.source_id = weeks.source_id
      AND date_trunc('week', c.author_time AT TIME ZONE 'UTC')::date = weeks.week
GROUP BY weeks.source, weeks.week, weeks.project;

-- success_rate = succeeded / (succeeded + failed): cancelled builds and
-- builds with no result (status other: running, skipped, neutral...) are out,
-- as in metricsd's build_success_weekly. `builds` counts every build.
CREATE OR REPLACE VIEW build_success_rate AS
SELECT sp.source,
       b.pipeline,
       date_trunc('week', coalesce (b.started, b.finished, b.observed) AT TIME ZONE 'UTC')::date
           AS week,
       count(*) AS builds,
       count(*) FILTER (WHERE b.status = 'success') AS succeeded,
       count(*) FILTER (WHERE b.status = 'failure') AS failed,
       count(*) FILTER (WHERE b.status = 'cancelled') AS cancelled,
       round(count(*) FILTER (WHERE b.status = 'success')::numeric
             / nullif (count(*) FILTER (WHERE b.status IN ('success', 'failure')), 0), 4)
           AS success_rate,
       count(*) FILTER (WHERE b.status NOT IN ('success', 'failure', 'cancelled')) AS other,
       sp.project
FROM ci_builds b
JOIN source_projects sp ON sp.source_id = b.source_id
GROUP BY sp.source, sp.project, b.pipeline,
         date_trunc('week', coalesce (b.started, b.finished, b.observed) AT TIME ZONE 'UTC')::date;

CREATE OR REPLACE VIEW slowest_tests AS
SELECT sp.source,
       t.suite, t.class, t.name,
       count(*) AS runs,
       avg(t.duration) AS avg_duration,
       max(t.duration) AS max_duration,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration) AS p95_duration,
       max(t.observed) AS last_run,
       sp.project
FROM ci_tests t
JOIN source_projects sp ON sp.source_id = t.source_id
WHERE t.status <> 'skipped'
GROUP BY sp.source, sp.project, t.suite, t.class, t.name;

CREATE OR REPLACE VIEW flakiest_tests AS
WITH ordered AS (
    SELECT t.source_id, t.suite, t.class, t.name, t.status, coalesce (t.flaky, false) AS flaky,
           lag(t.status) OVER (PARTITION BY t.source_id, t.suite, t.class, t.name
                               ORDER BY t.observed, t.id) AS previous
    FROM ci_tests t
    WHERE t.status IN ('passed', 'failed', 'error')
)
SELECT sp.source,
       o.suite, o.class, o.name,
       count(*) AS runs,
       count(*) FILTER (WHERE o.status = 'passed') AS passed,
       count(*) FILTER (WHERE o.status <> 'passed') AS failed,
       count(*) FILTER (WHERE o.flaky) AS flaky_runs,
       count(*) FILTER (WHERE o.previous IS NOT NULL
                        AND (o.previous = 'passed') <> (o.status = 'passed')) AS flips,
       round((count(*) FILTER (WHERE o.flaky)
              + count(*) FILTER (WHERE o.previous IS NOT NULL
                                 AND (o.previous = 'passed') <> (o.status = 'passed')))::numeric
             / count(*), 4) AS flakiness,
       sp.project
FROM ordered o
JOIN source_projects sp ON sp.source_id = o.source_id
GROUP BY sp.source, sp.project, o.suite, o.class, o.name
HAVING count(*) FILTER (WHERE o.flaky) > 0
    OR count(*) FILTER (WHERE o.previous IS NOT NULL
                        AND (o.previous = 'passed') <> (o.status = 'passed')) > 0;

-- Churn per file, following renames: each path a reachable commit touched
-- is mapped to the name it has after its renames (a rename is a changed
-- file with old_path; a path renamed away more than once follows the
-- latest). Numbers are the --no-renames ones: a renamed file's own row
-- counts its edit against the deleted old file's content as git does.
CREATE VIEW file_churn AS
WITH RECURSIVE touched AS (
    SELECT c.source_id, c.source, c.project, c.sha, c.author_time, f.path, f.old_path,
           f.insertions, f.deletions, f.is_binary
    FROM commits_canonical c
    JOIN commit_files f ON f.commit_id = c.id
), renamed AS (
    SELECT DISTINCT ON (t.source_id, t.old_path) t.source_id, t.old_path, t.path
    FROM touched t
    WHERE t.old_path IS NOT NULL AND t.old_path <> t.path
    ORDER BY t.source_id, t.old_path, t.author_time DESC, t.sha
), follow (source_id, start, path, seen) AS (
    SELECT DISTINCT t.source_id, t.path, t.path, ARRAY[t.path]
    FROM touched t
    UNION ALL
    SELECT f.source_id, f.start, r.path, f.seen || r.path
    FROM follow f
    JOIN renamed r ON r.source_id = f.source_id AND r.old_path = f.path
    WHERE NOT r.path = ANY (f.seen)
), final AS (
    SELECT DISTINCT ON (source_id, start) source_id, start, path, seen
    FROM follow
    ORDER BY source_id, start, cardinality (seen) DESC
)
SELECT t.source,
       fi.path,
       count(DISTINCT t.sha) AS commits,
       coalesce (sum(t.insertions), 0) AS insertions,
       coalesce (sum(t.deletions), 0) AS deletions,
       count(*) FILTER (WHERE t.is_binary) AS binary_changes,
       min(t.author_time) AS first_change,
       max(t.author_time) AS last_change,
       array_agg (DISTINCT t.path ORDER BY t.path) FILTER (WHERE t.path <> fi.path)
           AS former_paths,
       min(t.project) AS project
FROM touched t
JOIN final fi ON fi.source_id = t.source_id AND fi.start = t.path
GROUP BY t.source, fi.path;

-- Lines of code per language at each revision the code collector counted,
-- at the revision's commit time (the records' ts).
CREATE VIEW code_size AS
SELECT sp.source,
       cs.rev,
       min(cs.observed) AS at,
       cs.language,
       sum(cs.files) AS files,
       sum(cs.code) AS code,
       sum(cs.comment) AS comment,
       sum(cs.blank) AS blank,
       sp.project
FROM code_stats cs
JOIN source_projects sp ON sp.source_id = cs.source_id
WHERE cs.path IS NULL
GROUP BY sp.source, sp.project, cs.rev, cs.language;

ALTER VIEW source_projects SET (security_invoker = true);
ALTER VIEW commits_canonical SET (security_invoker = true);
ALTER VIEW contributors SET (security_invoker = true);
ALTER VIEW project_contributors SET (security_invoker = true);
ALTER VIEW commit_activity_daily SET (security_invoker = true);
ALTER VIEW commit_activity_weekly SET (security_invoker = true);
ALTER VIEW build_success_rate SET (security_invoker = true);
ALTER VIEW slowest_tests SET (security_invoker = true);
ALTER VIEW flakiest_tests SET (security_invoker = true);
ALTER VIEW file_churn SET (security_invoker = true);
ALTER VIEW code_size SET (security_invoker = true);

GRANT SELECT ON projects, source_projects, commits_canonical, project_contributors, file_churn,
                code_size
    TO omni_reader, omni_viewer;
