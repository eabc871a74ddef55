-- Every <testcase> of a JUnit report is a result (collectord junit): repeated
-- cases are numbered, reruns keep every attempt, and "disabled" (never run) is
-- a status of its own.
--   occurrence: the n-th result of the same suite, class and name in its build
--               (0 for the first), part of the record id
--   retried:    an attempt run again; a later result of the same case holds the
--               outcome (passed after failing: flaky)
ALTER TABLE ci_tests
    ADD COLUMN occurrence integer NOT NULL DEFAULT 0,
    ADD COLUMN retried boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN ci_tests.status IS 'passed | failed | error | skipped | disabled';
COMMENT ON COLUMN ci_builds.tests IS
    '{total, passed, failed, error, skipped, disabled, retried}: total is the sum and equals '
    'the build''s ci_tests rows (collectord junit); unreadable: report files that did not parse';

-- Runs that ran: neither skipped nor disabled, and not an attempt a rerun replaced
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
WHERE t.status NOT IN ('skipped', 'disabled') AND NOT t.retried
GROUP BY sp.source, sp.project, t.suite, t.class, t.name;

-- A rerun's outcome is its final result (flaky when it passed after failing):
-- the retried attempts would count the same failure twice, as a flip
CREATE OR REPLACE VIEW flakiest_tests AS
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

ALTER VIEW slowest_tests SET (security_invoker = true);
ALTER VIEW flakiest_tests SET (security_invoker = true);
