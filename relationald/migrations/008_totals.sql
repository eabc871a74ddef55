-- Totals per source, kept as rows are written (docs/performance.md, "Reports",
-- the fourth pass): omni-report's summary counted every commit, changed file
-- and test result of a project at each request (0.43 s of PostgreSQL at
-- 100,000 commits, 300,000 files, 200,000 results), its most changed files
-- grouped the 300,000 files again (0.21 s). These tables hold the same
-- figures grouped by source and by what the report counts distinct, so a
-- report reads a few thousand rows instead:
--
-- - commit_author_totals: reachable commits per source and canonical e-mail
--   (commits_canonical's `email`), with the first and last author time:
--   commits, authors, first and last commit, the bus factor.
-- - commit_path_totals: the changed files of reachable commits per source
--   and path (rows, insertions, deletions): files touched, most changed files.
-- - ci_build_totals: builds per source and status: builds, success rate,
--   builds by outcome.
-- - ci_test_totals: results per source and test (suite, class, name; a NULL
--   class as '', as the report's distinct count of tests takes it).
--
-- They are kept by statement-level triggers on the tables they count, with
-- the statement's transition tables, so they change in the transaction and
-- the statement that change the rows, whoever writes them (relationald's
-- batches, a migration, an operator's SQL): always exact, never a moment
-- behind. A redelivered batch inserts no row (ON CONFLICT), so it adds
-- nothing. Additive figures are added and subtracted; a commit's group
-- (first and last times) is counted again from commits when one leaves it,
-- which only a commit made unreachable, remapped or deleted does. A
-- TRUNCATE counts everything again. Rows whose count falls to zero go.
--
-- Row-level security as every table of a source's data (002_access.sql): a
-- role sees the totals of the sources it may see.

CREATE TABLE commit_author_totals (
    source_id     bigint NOT NULL REFERENCES sources (id),
    email         text NOT NULL,          -- canonical (coalesce (author_email_mailmap, author_email))
    commits       bigint NOT NULL,        -- reachable commits
    first_commit  timestamptz NOT NULL,   -- min (author_time) of them
    last_commit   timestamptz NOT NULL,   -- max (author_time)
    PRIMARY KEY (source_id, email)
);

CREATE TABLE commit_path_totals (
    source_id   bigint NOT NULL REFERENCES sources (id),
    path        text NOT NULL,
    commits     bigint NOT NULL,          -- commit_files rows of reachable commits
    insertions  bigint NOT NULL,          -- their sum, binary files (NULL) left out
    deletions   bigint NOT NULL,
    PRIMARY KEY (source_id, path)
);

CREATE TABLE ci_build_totals (
    source_id  bigint NOT NULL REFERENCES sources (id),
    status     text NOT NULL,
    builds     bigint NOT NULL,
    PRIMARY KEY (source_id, status)
);

CREATE TABLE ci_test_totals (
    source_id  bigint NOT NULL REFERENCES sources (id),
    suite      text NOT NULL,
    class      text NOT NULL,             -- '' for a NULL class
    name       text NOT NULL,
    runs       bigint NOT NULL,           -- ci_tests rows
    PRIMARY KEY (source_id, suite, class, name)
);

-- ---------------------------------------------------------------------------
-- Additive totals: deltas per key, rows at zero removed. Each function takes
-- the statement's rows as they were (o) and are (n), either may be empty.
-- Security definer: row-level security must not hide rows from the count
-- (a writer role may be limited too), and the totals are the owner's.

-- Changed files of reachable commits, per (source, path): a file row counts
-- while its commit is reachable.
CREATE FUNCTION commit_path_totals_add (d commit_path_totals[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    INSERT INTO commit_path_totals AS t (source_id, path, commits, insertions, deletions)
    SELECT source_id, path, sum (commits), sum (insertions), sum (deletions)
    FROM unnest (d) GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (source_id, path) DO UPDATE SET commits = t.commits + excluded.commits,
        insertions = t.insertions + excluded.insertions,
        deletions = t.deletions + excluded.deletions;
    DELETE FROM commit_path_totals t USING (SELECT DISTINCT source_id, path FROM unnest (d)) k
    WHERE t.source_id = k.source_id AND t.path = k.path AND t.commits = 0;
$$;

-- A batch's files look their commits up by primary key: the transition
-- table has no statistics, and a hash join would read every commit of the
-- database for each batch (90 ms a batch at 30,000 commits, measured)
CREATE FUNCTION commit_files_totals () RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    d commit_path_totals[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- Only added: straight in, the write path's common case
        INSERT INTO commit_path_totals AS t (source_id, path, commits, insertions, deletions)
        SELECT f.source_id, f.path, count(*), coalesce (sum (f.insertions), 0),
               coalesce (sum (f.deletions), 0)
        FROM n f JOIN commits c ON c.id = f.commit_id WHERE c.reachable
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (source_id, path) DO UPDATE SET commits = t.commits + excluded.commits,
            insertions = t.insertions + excluded.insertions,
            deletions = t.deletions + excluded.deletions;
        RETURN NULL;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg (x) INTO d FROM (
            SELECT ROW (f.source_id, f.path, -1, -coalesce (f.insertions, 0),
                        -coalesce (f.deletions, 0))::commit_path_totals AS x
            FROM o f JOIN commits c ON c.id = f.commit_id WHERE c.reachable
            UNION ALL
            SELECT ROW (f.source_id, f.path, 1, coalesce (f.insertions, 0),
                        coalesce (f.deletions, 0))::commit_path_totals
            FROM n f JOIN commits c ON c.id = f.commit_id WHERE c.reachable) u;
    ELSE
        -- DELETE: a commit deleted with its files (ON DELETE CASCADE) is gone
        -- by now, so the rows of its sources are counted again (rare: OmniAudit
        -- deletes no commit).
        PERFORM relational_totals_recount (ARRAY (SELECT DISTINCT source_id FROM o));
        RETURN NULL;
    END IF;
    IF d IS NOT NULL THEN
        PERFORM commit_path_totals_add (d);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ci_build_totals_add (d ci_build_totals[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    INSERT INTO ci_build_totals AS t (source_id, status, builds)
    SELECT source_id, status, sum (builds) FROM unnest (d) GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (source_id, status) DO UPDATE SET builds = t.builds + excluded.builds;
    DELETE FROM ci_build_totals t USING (SELECT DISTINCT source_id, status FROM unnest (d)) k
    WHERE t.source_id = k.source_id AND t.status = k.status AND t.builds = 0;
$$;

-- A build's status changes (a later observation of a mutable build)
CREATE FUNCTION ci_builds_totals () RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    d ci_build_totals[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ci_build_totals AS t (source_id, status, builds)
        SELECT source_id, status, count(*) FROM n GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (source_id, status) DO UPDATE SET builds = t.builds + excluded.builds;
        RETURN NULL;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg (x) INTO d FROM (
            SELECT ROW (source_id, status, -1)::ci_build_totals AS x FROM o
            UNION ALL SELECT ROW (source_id, status, 1)::ci_build_totals FROM n) u;
    ELSE
        SELECT array_agg (ROW (source_id, status, -1)::ci_build_totals) INTO d FROM o;
    END IF;
    IF d IS NOT NULL THEN
        PERFORM ci_build_totals_add (d);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ci_test_totals_add (d ci_test_totals[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    INSERT INTO ci_test_totals AS t (source_id, suite, class, name, runs)
    SELECT source_id, suite, class, name, sum (runs) FROM unnest (d)
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (source_id, suite, class, name) DO UPDATE SET runs = t.runs + excluded.runs;
    DELETE FROM ci_test_totals t
    USING (SELECT DISTINCT source_id, suite, class, name FROM unnest (d)) k
    WHERE t.source_id = k.source_id AND t.suite = k.suite AND t.class = k.class
      AND t.name = k.name AND t.runs = 0;
$$;

-- Test results are immutable but for their content hash: an UPDATE that
-- changes no counted column adds nothing
CREATE FUNCTION ci_tests_totals () RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    d ci_test_totals[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ci_test_totals AS t (source_id, suite, class, name, runs)
        SELECT source_id, suite, coalesce (class, ''), name, count(*) FROM n
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (source_id, suite, class, name) DO UPDATE SET runs = t.runs + excluded.runs;
        RETURN NULL;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg (x) INTO d FROM (
            SELECT ROW (o.source_id, o.suite, coalesce (o.class, ''), o.name, -1)::ci_test_totals
                   AS x
            FROM o JOIN n ON n.id = o.id
            WHERE (o.source_id, o.suite, coalesce (o.class, ''), o.name)
                  IS DISTINCT FROM (n.source_id, n.suite, coalesce (n.class, ''), n.name)
            UNION ALL
            SELECT ROW (n.source_id, n.suite, coalesce (n.class, ''), n.name, 1)::ci_test_totals
            FROM o JOIN n ON n.id = o.id
            WHERE (o.source_id, o.suite, coalesce (o.class, ''), o.name)
                  IS DISTINCT FROM (n.source_id, n.suite, coalesce (n.class, ''), n.name)) u;
    ELSE
        SELECT array_agg (ROW (source_id, suite, coalesce (class, ''), name, -1)::ci_test_totals)
        INTO d FROM o;
    END IF;
    IF d IS NOT NULL THEN
        PERFORM ci_test_totals_add (d);
    END IF;
    RETURN NULL;
END $$;

-- ---------------------------------------------------------------------------
-- Commits: per (source, canonical e-mail). Inserted reachable commits are
-- added (count, and the first and last times widened). A commit that
-- leaves a group or changes in it (made unreachable or reachable again, a
-- new mailmap address, another time) has its groups counted again from
-- commits, and its files added to or taken from commit_path_totals when its
-- reachability changed.

-- The groups of some sources (NULL: every source) counted from commits
CREATE FUNCTION commit_author_count (sources bigint[]) RETURNS SETOF commit_author_totals
LANGUAGE sql STABLE AS $$
    SELECT source_id, coalesce (author_email_mailmap, author_email), count(*),
           min (author_time), max (author_time)
    FROM commits WHERE reachable AND (sources IS NULL OR source_id = ANY (sources))
    GROUP BY 1, 2;
$$;

-- The groups `k` (source, e-mail) counted again from commits
CREATE FUNCTION commit_author_totals_recount (k commit_author_totals[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    DELETE FROM commit_author_totals t USING unnest (k) u
    WHERE t.source_id = u.source_id AND t.email = u.email;
    INSERT INTO commit_author_totals
    SELECT * FROM commit_author_count (ARRAY (SELECT DISTINCT source_id FROM unnest (k))) c
    WHERE (c.source_id, c.email) IN (SELECT source_id, email FROM unnest (k))
    ORDER BY 1, 2;
$$;

CREATE FUNCTION commits_totals () RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    k commit_author_totals[];
    d commit_path_totals[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO commit_author_totals AS t (source_id, email, commits, first_commit,
                                               last_commit)
        SELECT source_id, coalesce (author_email_mailmap, author_email), count(*),
               min (author_time), max (author_time)
        FROM n WHERE reachable GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (source_id, email) DO UPDATE SET commits = t.commits + excluded.commits,
            first_commit = least (t.first_commit, excluded.first_commit),
            last_commit = greatest (t.last_commit, excluded.last_commit);
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM relational_totals_recount (ARRAY (SELECT DISTINCT source_id FROM o));
        RETURN NULL;
    END IF;
    -- UPDATE: only the rows whose counted columns changed (most updates fill
    -- in a content hash, or change nothing: the statement of relationald's
    -- batch that may update a commit runs for every batch of commits)
    SELECT array_agg (DISTINCT x) INTO k FROM (
        SELECT ROW (o.source_id, coalesce (o.author_email_mailmap, o.author_email), 0,
                    'epoch', 'epoch')::commit_author_totals AS x, n.id
        FROM o JOIN n ON n.id = o.id
        WHERE (o.source_id, coalesce (o.author_email_mailmap, o.author_email), o.reachable,
               o.author_time) IS DISTINCT FROM
              (n.source_id, coalesce (n.author_email_mailmap, n.author_email), n.reachable,
               n.author_time)
        UNION ALL
        SELECT ROW (n.source_id, coalesce (n.author_email_mailmap, n.author_email), 0,
                    'epoch', 'epoch')::commit_author_totals, n.id
        FROM o JOIN n ON n.id = o.id
        WHERE (o.source_id, coalesce (o.author_email_mailmap, o.author_email), o.reachable,
               o.author_time) IS DISTINCT FROM
              (n.source_id, coalesce (n.author_email_mailmap, n.author_email), n.reachable,
               n.author_time)) u;
    IF k IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM commit_author_totals_recount (k);
    -- The files of commits whose reachability changed
    SELECT array_agg (ROW (f.source_id, f.path, s.sign, s.sign * coalesce (f.insertions, 0),
                           s.sign * coalesce (f.deletions, 0))::commit_path_totals)
    INTO d FROM (SELECT n.id, CASE WHEN n.reachable THEN 1 ELSE -1 END AS sign
                 FROM o JOIN n ON n.id = o.id WHERE o.reachable <> n.reachable) s
    JOIN commit_files f ON f.commit_id = s.id;
    IF d IS NOT NULL THEN
        PERFORM commit_path_totals_add (d);
    END IF;
    RETURN NULL;
END $$;

-- ---------------------------------------------------------------------------
-- Everything of some sources (NULL: every source) counted again from the
-- rows: after a DELETE of commits or files, a TRUNCATE, and once here for
-- the rows already stored.
CREATE FUNCTION relational_totals_recount (sources bigint[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    DELETE FROM commit_author_totals WHERE sources IS NULL OR source_id = ANY (sources);
    DELETE FROM commit_path_totals WHERE sources IS NULL OR source_id = ANY (sources);
    DELETE FROM ci_build_totals WHERE sources IS NULL OR source_id = ANY (sources);
    DELETE FROM ci_test_totals WHERE sources IS NULL OR source_id = ANY (sources);
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
    INSERT INTO ci_test_totals (source_id, suite, class, name, runs)
    SELECT source_id, suite, coalesce (class, ''), name, count(*) FROM ci_tests
    WHERE sources IS NULL OR source_id = ANY (sources) GROUP BY 1, 2, 3, 4;
$$;

CREATE FUNCTION relational_totals_truncated () RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM relational_totals_recount (NULL);
    RETURN NULL;
END $$;

-- Each counted table: its function (TABLE_totals ()) for INSERT, UPDATE and
-- DELETE, each event with its transition tables; TRUNCATE counts all again.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['commits', 'commit_files', 'ci_builds', 'ci_tests'] LOOP
        EXECUTE format ('CREATE TRIGGER %1$I AFTER INSERT ON %2$I REFERENCING NEW TABLE AS n '
                        'FOR EACH STATEMENT EXECUTE FUNCTION %3$I ()',
                        t || '_totals_insert', t, t || '_totals');
        EXECUTE format ('CREATE TRIGGER %1$I AFTER UPDATE ON %2$I REFERENCING OLD TABLE AS o '
                        'NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION %3$I ()',
                        t || '_totals_update', t, t || '_totals');
        EXECUTE format ('CREATE TRIGGER %1$I AFTER DELETE ON %2$I REFERENCING OLD TABLE AS o '
                        'FOR EACH STATEMENT EXECUTE FUNCTION %3$I ()',
                        t || '_totals_delete', t, t || '_totals');
        EXECUTE format ('CREATE TRIGGER %1$I AFTER TRUNCATE ON %2$I '
                        'FOR EACH STATEMENT EXECUTE FUNCTION relational_totals_truncated ()',
                        t || '_totals_truncate', t);
    END LOOP;
END $$;

-- The rows already stored
SELECT relational_totals_recount (NULL);

ALTER TABLE commit_author_totals ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON commit_author_totals FOR SELECT
    USING (source_id IN (SELECT s.id FROM sources s));
ALTER TABLE commit_path_totals ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON commit_path_totals FOR SELECT
    USING (source_id IN (SELECT s.id FROM sources s));
ALTER TABLE ci_build_totals ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON ci_build_totals FOR SELECT
    USING (source_id IN (SELECT s.id FROM sources s));
ALTER TABLE ci_test_totals ENABLE ROW LEVEL SECURITY;
CREATE POLICY omni_source ON ci_test_totals FOR SELECT
    USING (source_id IN (SELECT s.id FROM sources s));

GRANT SELECT ON commit_author_totals, commit_path_totals, ci_build_totals, ci_test_totals
    TO omni_reader, omni_viewer;
