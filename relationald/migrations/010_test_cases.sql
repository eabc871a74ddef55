-- The test totals without a write per test and batch (docs/performance.md,
-- "Issue 20, eighth pass"). Migration 8 kept runs per test in
-- ci_test_totals: every batch of results added to the row of each test it
-- held, an INSERT ... ON CONFLICT DO UPDATE per test. A suite runs in every
-- build, so each batch rewrote the rows of all its tests (a new row version,
-- its index entry and its WAL each), and that trigger was two thirds of
-- PostgreSQL's work per result. What omni-report reads from them is the
-- tests of a source (counted distinct) and its runs (summed), so:
--
-- - ci_test_cases: the tests of a source, one row per (source, suite,
--   class, name) ever run. A batch inserts the tests it holds with ON
--   CONFLICT DO NOTHING: a test already known costs a lookup in its key,
--   no write.
-- - ci_test_runs: results per source, one row per source, to which a batch
--   adds its count. Two writers adding to one source wait for each other's
--   commit on that row, as migration 8's rows per test (and ci_build_totals'
--   per status) made them do; a row per writing backend would spare that
--   wait, but a store rebuilt from the archive would then hold other rows
--   than the one it replaces (test_archive compares them).
-- - ci_test_totals is now a view of both with the same columns; its runs
--   per test are counted from ci_tests when asked for (a query that does not
--   read runs does not read ci_tests: the join below is removed by the
--   planner, as its side is unique on the join's columns).
--
-- Still kept by the statement triggers of migration 8 in the statement that
-- writes the results, so always exact. A DELETE of results, or an UPDATE
-- that changes a result's source or test, counts the sources it touches
-- again (rare: OmniAudit deletes no result, and updates only content).

-- No foreign key to sources: a check per new test (as ci_tests has none,
-- migration 7); a source with results cannot be deleted (ci_tests_keep_source)
CREATE TABLE ci_test_cases (
    source_id  bigint NOT NULL,
    suite      text COLLATE "C" NOT NULL,
    class      text COLLATE "C" NOT NULL,   -- '' for a NULL class
    name       text COLLATE "C" NOT NULL,
    PRIMARY KEY (source_id, suite, class, name)
);

CREATE TABLE ci_test_runs (
    source_id  bigint PRIMARY KEY REFERENCES sources (id),
    runs       bigint NOT NULL                -- ci_tests rows
);

-- The tests and runs of some sources (NULL: every source) counted again
CREATE FUNCTION ci_test_totals_recount (sources bigint[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    DELETE FROM ci_test_cases WHERE sources IS NULL OR source_id = ANY (sources);
    DELETE FROM ci_test_runs WHERE sources IS NULL OR source_id = ANY (sources);
    INSERT INTO ci_test_cases (source_id, suite, class, name)
    SELECT DISTINCT source_id, suite, coalesce (class, ''), name FROM ci_tests
    WHERE sources IS NULL OR source_id = ANY (sources);
    INSERT INTO ci_test_runs (source_id, runs)
    SELECT source_id, count(*) FROM ci_tests
    WHERE sources IS NULL OR source_id = ANY (sources) GROUP BY 1;
$$;

-- A batch's tests once each (a suite's results repeat its tests from build to
-- build): a known test is then looked up once per batch, not once per
-- result. Not sorted: a sort of a batch's 5,000 tests cost PostgreSQL a
-- sixth more per result (docs/performance.md, "Issue 20, eighth pass").
-- Unsorted, two writers inserting the same new tests in another order can
-- deadlock; PostgreSQL then aborts one, whose batch is retried as after any
-- transient failure (class 40), and a known test takes no lock.
CREATE OR REPLACE FUNCTION ci_tests_totals () RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    touched bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ci_test_cases (source_id, suite, class, name)
        SELECT source_id, suite, coalesce (class, ''), name FROM n GROUP BY 1, 2, 3, 4
        ON CONFLICT DO NOTHING;
        INSERT INTO ci_test_runs AS t (source_id, runs)
        SELECT source_id, count(*) FROM n GROUP BY 1 ORDER BY 1
        ON CONFLICT (source_id) DO UPDATE SET runs = t.runs + excluded.runs;
    ELSIF TG_OP = 'UPDATE' THEN
        -- The sources of the rows whose counted columns changed, before and
        -- after: none when only content is filled in (most updates)
        touched := ARRAY (
            SELECT DISTINCT s FROM o JOIN n ON n.id = o.id,
                   LATERAL (VALUES (o.source_id), (n.source_id)) v (s)
            WHERE (o.source_id, o.suite, coalesce (o.class, ''), o.name)
                  IS DISTINCT FROM (n.source_id, n.suite, coalesce (n.class, ''), n.name));
        IF cardinality (touched) > 0 THEN
            PERFORM ci_test_totals_recount (touched);
        END IF;
    ELSE
        PERFORM ci_test_totals_recount (ARRAY (SELECT DISTINCT source_id FROM o));
    END IF;
    RETURN NULL;
END $$;

-- As migration 8's, with the tests counted into the new tables
CREATE OR REPLACE FUNCTION relational_totals_recount (sources bigint[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    DELETE FROM commit_author_totals WHERE sources IS NULL OR source_id = ANY (sources);
    DELETE FROM commit_path_totals WHERE sources IS NULL OR source_id = ANY (sources);
    DELETE FROM ci_build_totals WHERE sources IS NULL OR source_id = ANY (sources);
    INSERT INTO commit_author_totals SELECT * FROM commit_author_count (sources);
    INSERT INTO commit_path_totals (source_id, path, commits, insertions, deletions)
    SELECT f.source_id, f.path, count(*), coalesce (sum (f.insertions), 0),
           coalesce (sum (f.deletions), 0)
    FROM commit_files f JOIN commits c ON c.id = f.commit_id
    WHERE c.reachable AND (sources IS NULL OR f.source_id = ANY (sources))
    GROUP BY 1, 2;
    INSERT INTO ci_build_totals (source_id, status, builds)
    SELECT source_id, status, count(*) FROM ci_builds
    WHERE sources IS NULL OR source_id = ANY (sources) GROUP BY 1, 2;
    SELECT ci_test_totals_recount (sources);
$$;

-- The tests already counted: migration 8's rows, grouped
INSERT INTO ci_test_cases (source_id, suite, class, name)
SELECT source_id, suite, class, name FROM ci_test_totals;
INSERT INTO ci_test_runs (source_id, runs)
SELECT source_id, sum (runs) FROM ci_test_totals GROUP BY 1;
DROP FUNCTION ci_test_totals_add (ci_test_totals[]);
DROP TABLE ci_test_totals;

CREATE VIEW ci_test_totals WITH (security_invoker = true) AS
SELECT c.source_id, c.suite, c.class, c.name, coalesce (r.runs, 0) AS runs
FROM ci_test_cases c
LEFT JOIN (SELECT source_id, suite, coalesce (class, '') AS class, name, count(*) AS runs
           FROM ci_tests GROUP BY 1, 2, 3, 4) r
       ON r.source_id = c.source_id AND r.suite = c.suite AND r.class = c.class
          AND r.name = c.name;

ALTER TABLE ci_test_cases ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON ci_test_cases FOR SELECT
    USING (source_id IN (SELECT s.id FROM sources s));
ALTER TABLE ci_test_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON ci_test_runs FOR SELECT
    USING (source_id IN (SELECT s.id FROM sources s));

GRANT SELECT ON ci_test_cases, ci_test_runs, ci_test_totals TO omni_reader, omni_viewer;
