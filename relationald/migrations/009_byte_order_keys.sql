-- Identifiers in byte order: the text columns that key or index the rows
-- written at volume take the "C" collation (docs/performance.md, "Issue 20,
-- fifth pass"). Under the database's default collation PostgreSQL compares
-- them through the locale (glibc's strcoll even under C.UTF-8, with no
-- abbreviated keys in sorts; or ICU): under en_US.UTF-8, the usual default
-- of a packaged server, 40 % of PostgreSQL's CPU per test result went there.
-- Every index entry and every sort of a statement trigger's grouping
-- (migration 8) pays it.
--
-- These are identifiers whose order means nothing to a reader: test suite,
-- class and name, pipeline and build id, commit sha, author e-mail, file
-- path. Equality is the same (both collations are deterministic); ORDER BY,
-- ranges and min/max on them follow the bytes (for UTF-8, the code points:
-- 'Z' before 'a'), the same on every server, whatever its locale. A LIKE
-- 'prefix%' on them can use their indexes now. Names people read (sources,
-- projects, branches, tags, authors' names, languages) keep the database's
-- collation; so do status words (a handful per source) and free text.
--
-- A column compared with one of the default collation (a parameter, a
-- constant, a staging table's column) is compared in "C": an implicit
-- non-default collation wins over the default one. The totals and the rows
-- they count change together, so reports read from either order alike.
--
-- ALTER ... TYPE text COLLATE "C" rewrites no table (the bytes are the same),
-- it rebuilds the indexes on those columns. The views that read them are
-- dropped first and made again as their latest migration made them (003,
-- 005), commits_canonical with the columns its c.* named then (006 added
-- content to commits after it), with their security_invoker and grants
-- (002, 003).

DROP VIEW file_churn, contributors, project_contributors, commit_activity_daily,
          commit_activity_weekly, commits_canonical, build_success_rate, slowest_tests,
          flakiest_tests;

ALTER TABLE commits
    ALTER COLUMN sha TYPE text COLLATE "C",
    ALTER COLUMN author_email TYPE text COLLATE "C",
    ALTER COLUMN author_email_mailmap TYPE text COLLATE "C";
ALTER TABLE commit_files
    ALTER COLUMN path TYPE text COLLATE "C",
    ALTER COLUMN old_path TYPE text COLLATE "C";
ALTER TABLE commit_author_totals ALTER COLUMN email TYPE text COLLATE "C";
ALTER TABLE commit_path_totals ALTER COLUMN path TYPE text COLLATE "C";
ALTER TABLE ci_builds
    ALTER COLUMN pipeline TYPE text COLLATE "C",
    ALTER COLUMN build_id TYPE text COLLATE "C";
ALTER TABLE ci_tests
    ALTER COLUMN suite TYPE text COLLATE "C",
    ALTER COLUMN class TYPE text COLLATE "C",
    ALTER COLUMN name TYPE text COLLATE "C",
    ALTER COLUMN pipeline TYPE text COLLATE "C",
    ALTER COLUMN build_id TYPE text COLLATE "C";
ALTER TABLE ci_test_totals
    ALTER COLUMN suite TYPE text COLLATE "C",
    ALTER COLUMN class TYPE text COLLATE "C",
    ALTER COLUMN name TYPE text COLLATE "C";

-- ---------------------------------------------------------------------------
-- The views, as 003 and 005 made them

CREATE VIEW commits_canonical AS
SELECT c.id, c.source_id, c.sha, c.parents, c.author_name, c.author_email, c.author_time,
       c.author_tz, c.committer_name, c.committer_email, c.committer_time, c.committer_tz,
       c.message, c.files_changed, c.insertions, c.deletions, c.raw, c.run_id,
       c.author_name_mailmap, c.author_email_mailmap, c.committer_name_mailmap,
       c.committer_email_mailmap, c.reachable, c.unreachable_since,
       coalesce (c.author_name_mailmap, c.author_name) AS author,
       coalesce (c.author_email_mailmap, c.author_email) AS email,
       sp.source, sp.project
FROM commits c
JOIN source_projects sp ON sp.source_id = c.source_id
WHERE c.reachable;

CREATE VIEW contributors AS
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

CREATE VIEW commit_activity_daily AS
SELECT c.source,
       (c.author_time AT TIME ZONE 'UTC')::date AS day,
       count(*) AS commits,
       count(DISTINCT c.email) AS authors,
       sum(c.insertions) AS insertions,
       sum(c.deletions) AS deletions,
       min(c.project) AS project
FROM commits_canonical c
GROUP BY c.source, (c.author_time AT TIME ZONE 'UTC')::date;

CREATE VIEW commit_activity_weekly AS
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

CREATE VIEW build_success_rate AS
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

CREATE VIEW slowest_tests AS
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
WHERE t.status NOT IN ('skipped', 'disabled') AND NOT t.retried
GROUP BY sp.source, sp.project, t.suite, t.class, t.name;

CREATE VIEW flakiest_tests AS
WITH ordered AS (
    SELECT t.source_id, t.suite, t.class, t.name, t.status, coalesce (t.flaky, false) AS flaky,
           lag(t.status) OVER (PARTITION BY t.source_id, t.suite, t.class, t.name
                               ORDER BY t.observed, t.occurrence, t.id) AS previous
    FROM ci_tests t
    WHERE t.status IN ('passed', 'failed', 'error') AND NOT t.retried
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

ALTER VIEW commits_canonical SET (security_invoker = true);
ALTER VIEW contributors SET (security_invoker = true);
ALTER VIEW project_contributors SET (security_invoker = true);
ALTER VIEW commit_activity_daily SET (security_invoker = true);
ALTER VIEW commit_activity_weekly SET (security_invoker = true);
ALTER VIEW build_success_rate SET (security_invoker = true);
ALTER VIEW file_churn SET (security_invoker = true);
ALTER VIEW slowest_tests SET (security_invoker = true);
ALTER VIEW flakiest_tests SET (security_invoker = true);

GRANT SELECT ON commits_canonical, contributors, project_contributors, commit_activity_daily,
                commit_activity_weekly, build_success_rate, file_churn, slowest_tests,
                flakiest_tests
    TO omni_reader, omni_viewer;
