/*  schema: relationald's migrations, applied by pg/migrate.c.

    The table name and the lock key are what databases migrated by earlier
    releases know: they never change.                                        */
#include "relationald/schema.h"
#include "common/log.h"
#include "testsupport/pgtest.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TABLE "schema_migrations"
//  The advisory lock key of relationald's migrations
#define S_LOCK_KEY 5723297880566770993LL

int
schema_version (void)
{
    return omni_migrate_version (schema_migrations);
}

//  Always the same steps: relationald has no variants
static const omni_migrate_step_t *
s_plan (omni_pgconn_t *conn, void *arg)
{
    (void) conn;
    (void) arg;
    return schema_migrations;
}

int
schema_migrate (omni_pgconn_t *conn)
{
    const omni_migrate_config_t config = {"relationald", S_TABLE, S_LOCK_KEY, s_plan, NULL, NULL};
    return omni_migrate_run (conn, &config, NULL);
}

//  ---------------------------------------------------------------------------
//  Self-test: a fresh database migrated by several connections at once

static int
s_test_start (omni_pgconn_t *conn, void *arg, int index)
{
    (void) arg;
    (void) index;
    return schema_migrate (conn);
}

static long
s_count (omni_pgconn_t *conn, const char *sql)
{
    char *value = pgtest_value (conn, sql);
    long n = atol (value);
    free (value);
    return n;
}

//  ---------------------------------------------------------------------------
//  Self-test: a database that an earlier release migrated, with rows, then
//  migrated to the newest version

//  The steps up to `version`, as an earlier release embedded them
typedef struct {
    int version;
    omni_migrate_step_t steps[64];
} s_upto_t;

static const omni_migrate_step_t *
s_plan_upto (omni_pgconn_t *conn, void *arg)
{
    (void) conn;
    s_upto_t *upto = arg;
    size_t n = 0;
    for (const omni_migrate_step_t *m = schema_migrations; m->sql && m->version <= upto->version;
         m++) {
        assert (n + 1 < sizeof upto->steps / sizeof upto->steps[0]);
        upto->steps[n++] = *m;
    }
    upto->steps[n] = (omni_migrate_step_t){0, NULL, NULL};
    return upto->steps;
}

//  What the views are (definition, options, grants), as one digest
#define S_VIEWS_DIGEST                                                                             \
    "SELECT md5 (string_agg (c.relname || pg_get_viewdef (c.oid) || "                              \
    "coalesce (c.reloptions::text, '') || coalesce (c.relacl::text, ''), ',' "                     \
    "ORDER BY c.relname)) FROM pg_class c "                                                        \
    "WHERE c.relkind = 'v' AND c.relnamespace = 'public'::regnamespace"
//  What the views and the totals hold, as one digest
#define S_ROWS_DIGEST                                                                              \
    "SELECT count (*) || ' ' || md5 (string_agg (r, ',' ORDER BY r)) FROM ("                       \
    "SELECT 'a' || x::text AS r FROM contributors x UNION ALL "                                    \
    "SELECT 'b' || x::text FROM project_contributors x UNION ALL "                                 \
    "SELECT 'c' || x::text FROM commit_activity_weekly x UNION ALL "                               \
    "SELECT 'd' || x::text FROM file_churn x UNION ALL "                                           \
    "SELECT 'e' || x::text FROM build_success_rate x UNION ALL "                                   \
    "SELECT 'f' || x::text FROM slowest_tests x UNION ALL "                                        \
    "SELECT 'g' || x::text FROM flakiest_tests x UNION ALL "                                       \
    "SELECT 'h' || x::text FROM commit_author_totals x UNION ALL "                                 \
    "SELECT 'i' || x::text FROM commit_path_totals x UNION ALL "                                   \
    "SELECT 'j' || x::text FROM ci_test_totals x) u"

//  Commits, files, builds and results numbered from..to, whose keys sort
//  one way by bytes ('Z' before 'a') and another by language
static void
s_test_rows (omni_pgconn_t *conn, int from, int to)
{
    static const char *inserts[] = {
        "INSERT INTO commits (id, source_id, sha, parents, author_name, author_email, "
        "author_time, author_tz, committer_name, committer_email, committer_time, committer_tz, "
        "message, files_changed, insertions, deletions, run_id) "
        "SELECT substr (sha256 (('c' || i)::bytea), 1, 16), 1, md5 (i::text), '{}', 'N' || i, "
        "(ARRAY['Zed@x.example', 'alice@x.example', 'émile@x.example'])[i % 3 + 1], "
        "'2024-01-01'::timestamptz + i * interval '1 day', 0, 'N', 'n@x.example', "
        "'2024-01-01'::timestamptz + i * interval '1 day', 0, 'm', 2, i, 1, 'r' "
        "FROM generate_series ($1::int, $2::int) i",
        "INSERT INTO commit_files (commit_id, source_id, path, insertions, deletions, old_path) "
        "SELECT substr (sha256 (('c' || i)::bytea), 1, 16), 1, p, i, 1, "
        "CASE WHEN i % 4 = 3 AND p = 'Zeta.c' THEN 'zeta.c' END "
        "FROM generate_series ($1::int, $2::int) i, unnest (ARRAY['Zeta.c', 'alpha/' || i % 2 || "
        "'.c']) p",
        "INSERT INTO ci_builds (id, source_id, pipeline, build_id, status, sha, started, observed, "
        "run_id) SELECT substr (sha256 (('b' || i)::bytea), 1, 16), 1, "
        "(ARRAY['CI', 'ci'])[i % 2 + 1], i::text, (ARRAY['success', 'failure'])[i % 2 + 1], "
        "md5 (i::text), '2024-01-01'::timestamptz + i * interval '1 day', now (), 'r' "
        "FROM generate_series ($1::int, $2::int) i",
        "INSERT INTO ci_tests (id, source_id, suite, class, name, status, duration, pipeline, "
        "build_id, observed, run_id) "
        "SELECT substr (sha256 (('t' || i || n)::bytea), 1, 16), 1, 'Unit', "
        "CASE WHEN n = 'b' THEN NULL ELSE 'Klass' END, n, "
        "CASE WHEN (i + length (n)) % 3 = 0 THEN 'failed' ELSE 'passed' END, i * 0.5, "
        "(ARRAY['CI', 'ci'])[i % 2 + 1], i::text, "
        "'2024-01-01'::timestamptz + i * interval '1 day', 'r' "
        "FROM generate_series ($1::int, $2::int) i, unnest (ARRAY['Zed', 'b', 'éa']) n"};
    for (size_t k = 0; k < sizeof inserts / sizeof inserts[0]; k++) {
        char lo[16], hi[16];
        snprintf (lo, sizeof lo, "%d", from);
        snprintf (hi, sizeof hi, "%d", to);
        const char *params[] = {lo, hi};
        PGresult *result = omni_pgconn_query (conn, inserts[k], 2, params);
        assert (result);
        PQclear (result);
    }
}

//  The test totals as they are, and as the rows count them
#define S_TEST_FIGURES                                                                             \
    "SELECT (SELECT count (*) FROM ci_test_totals) || ' ' || "                                     \
    "(SELECT sum (runs) FROM ci_test_totals) || ' ' || "                                           \
    "(SELECT sum (runs) FROM ci_test_runs) || ' ' || "                                             \
    "(SELECT count (*) FROM ci_test_cases)"
#define S_TEST_COUNTED                                                                             \
    "SELECT count (*) || ' ' || sum (n) || ' ' || sum (n) || ' ' || count (*) FROM "               \
    "(SELECT count (*) AS n FROM ci_tests GROUP BY source_id, suite, coalesce (class, ''), "       \
    "name) g"

//  Writer `index` of four at once: 20 statements of 100 results each, of
//  tests drawn from 150 that every writer shares, in an order of its own,
//  so that each statement meets tests that others are inserting. A
//  deadlock (two statements taking new tests in other orders) is retried,
//  as relationald retries a batch after a transient failure.
static int
s_test_writer (omni_pgconn_t *conn, void *arg, int index)
{
    int *deadlocks = arg;
    for (int round = 0; round < 20; round++) {
        char sql[1024];
        snprintf (sql, sizeof sql,
                  "INSERT INTO ci_tests (id, source_id, suite, class, name, status, duration, "
                  "pipeline, build_id, observed, run_id) SELECT substr (sha256 (('w%d.%d.' || "
                  "i)::bytea), 1, 16), 1 + i %% 2, 'Par', NULL, 't' || (i * 7 + %d) %% 150, "
                  "'passed', 1, 'ci', '%d', now (), 'r' FROM generate_series (1, 100) i "
                  "ORDER BY md5 (i || '%d')",
                  index, round, round * 13 + index * 37, round, index);
        omni_pgconn_status_t status;
        while ((status = omni_pgconn_exec (conn, sql)) != PGCONN_OK) {
            if (strcmp (omni_pgconn_sqlstate (conn), "40P01") != 0)
                return -1;
            __atomic_add_fetch (deadlocks, 1, __ATOMIC_RELAXED);
        }
    }
    return 0;
}

//  Migration 10 on a database at 9 (`kept`: its S_ROWS_DIGEST): the test
//  totals (a view of the tests and runs per source now) hold what they
//  held, count on as results come, go and change, and a query that does not
//  read runs per test does not read ci_tests
static void
s_test_cases (omni_pgconn_t *conn, const char *dsn, const char *kept)
{
    int applied = 0;
    const omni_migrate_config_t all = {"relationald", S_TABLE, S_LOCK_KEY, s_plan, NULL, NULL};
    assert (omni_migrate_run (conn, &all, &applied) == 0);
    assert (applied == schema_version () - 9);
    pgtest_expect (conn, S_ROWS_DIGEST, kept);
    pgtest_expect (conn, S_TEST_FIGURES, "3 60 60 3");
    //  Results of a test known, and of new tests (from 21, each a test of
    //  its own), from a second source
    s_test_rows (conn, 21, 24);
    assert (omni_pgconn_exec (conn, "INSERT INTO sources (name) VALUES ('other'); "
                                    "INSERT INTO ci_tests (id, source_id, suite, class, name, "
                                    "status, duration, pipeline, build_id, observed, run_id) "
                                    "SELECT "
                                    "substr (sha256 (('o' || i)::bytea), 1, 16), 2, 'Unit', "
                                    "NULL, 'o' || i % 3, 'passed', 1, 'ci', i::text, now (), 'r' "
                                    "FROM generate_series (1, 7) i") == PGCONN_OK);
    pgtest_expect (conn, S_TEST_FIGURES, "6 79 79 6");
    char *counted = pgtest_value (conn, S_TEST_COUNTED);
    pgtest_expect (conn, S_TEST_FIGURES, counted);
    free (counted);
    pgtest_expect (
        conn,
        "SELECT string_agg (source_id || ':' || class || ':' || name || '=' || runs, ' ' "
        "ORDER BY source_id, class, name) FROM ci_test_totals",
        "1::b=24 1:Klass:Zed=24 1:Klass:éa=24 2::o0=2 2::o1=3 2::o2=2");
    //  A result gone, one renamed, one moved to the other source: counted again
    assert (omni_pgconn_exec (conn, "DELETE FROM ci_tests WHERE source_id = 2 AND name = 'o0'; "
                                    "UPDATE ci_tests SET name = 'renamed' WHERE source_id = 1 "
                                    "AND name = 'b' AND build_id = '21'; "
                                    "UPDATE ci_tests SET source_id = 2 WHERE source_id = 1 AND "
                                    "name = 'Zed' AND build_id = '22'; "
                                    "UPDATE ci_tests SET duration = 1") == PGCONN_OK);
    pgtest_expect (
        conn,
        "SELECT string_agg (source_id || ':' || class || ':' || name || '=' || runs, ' ' "
        "ORDER BY source_id, class, name) FROM ci_test_totals",
        "1::b=23 1::renamed=1 1:Klass:Zed=23 1:Klass:éa=24 2::o1=3 2::o2=2 "
        "2:Klass:Zed=1");
    counted = pgtest_value (conn, S_TEST_COUNTED);
    pgtest_expect (conn, S_TEST_FIGURES, counted);
    char *figures = pgtest_value (conn, "SELECT string_agg (x::text, ' ' ORDER BY x::text) FROM "
                                        "ci_test_totals x");
    assert (omni_pgconn_exec (conn, "SELECT relational_totals_recount (NULL)") == PGCONN_OK);
    pgtest_expect (conn, "SELECT string_agg (x::text, ' ' ORDER BY x::text) FROM ci_test_totals x",
                   figures);
    pgtest_expect (conn, S_TEST_FIGURES, counted);
    free (figures);
    free (counted);
    //  Four writers at once, every one meeting tests new to the others
    int deadlocks = 0;
    assert (pgtest_parallel (dsn, 4, s_test_writer, &deadlocks) == 0);
    counted = pgtest_value (conn, S_TEST_COUNTED);
    pgtest_expect (conn, S_TEST_FIGURES, counted);
    free (counted);
    pgtest_expect (conn, "SELECT count (*) FROM ci_test_cases WHERE suite = 'Par'", "300");
    pgtest_expect (conn, "SELECT sum (runs) FROM ci_test_totals WHERE suite = 'Par'", "8000");
    //  Counting tests reads the tests only
    PGresult *plan = omni_pgconn_query (
        conn, "EXPLAIN SELECT source_id, count (*) FROM ci_test_totals GROUP BY 1", 0, NULL);
    assert (plan);
    for (int r = 0; r < PQntuples (plan); r++)
        assert (!strstr (PQgetvalue (plan, r, 0), "ci_tests"));
    PQclear (plan);
    assert (omni_pgconn_exec (conn, "TRUNCATE ci_tests") == PGCONN_OK);
    pgtest_expect (conn,
                   "SELECT (SELECT count (*) FROM ci_test_cases) + (SELECT count (*) FROM "
                   "ci_test_runs)",
                   "0");
}

//  Migration 9 on a database migrated to 8, with rows: the key columns in
//  byte order, the views as they were, holding what they held, the totals
//  kept on as rows come
static void
s_test_upgrade (void)
{
    char *dsn = pgtest_db_new ("schema9");
    assert (dsn);
    char error[256];
    omni_pgconn_t *conn = omni_pgconn_new (dsn, error, sizeof error);
    assert (omni_pgconn_ensure (conn) == 0);
    s_upto_t upto = {.version = 8};
    const omni_migrate_config_t config = {"relationald", S_TABLE, S_LOCK_KEY,
                                          s_plan_upto,   NULL,    &upto};
    assert (omni_migrate_run (conn, &config, NULL) == 0);
    assert (omni_pgconn_exec (conn, "INSERT INTO sources (name) VALUES ('src')") == PGCONN_OK);
    s_test_rows (conn, 1, 12);
    char *views = pgtest_value (conn, S_VIEWS_DIGEST);
    char *rows = pgtest_value (conn, S_ROWS_DIGEST);
    assert (s_count (conn,
                     "SELECT count (*) FROM pg_attribute WHERE attcollation = "
                     "'pg_catalog.\"C\"'::regcollation AND attrelid = 'ci_tests'::regclass") == 0);

    int applied = 0;
    upto.version = 9;
    assert (omni_migrate_run (conn, &config, &applied) == 0);
    assert (applied == 1);
    pgtest_expect (conn, S_VIEWS_DIGEST, views);
    pgtest_expect (conn, S_ROWS_DIGEST, rows);
    pgtest_expect (
        conn,
        "SELECT string_agg (attrelid::regclass || '.' || attname, ' ' "
        "ORDER BY attrelid::regclass::text, attnum) FROM pg_attribute "
        "WHERE attcollation = 'pg_catalog.\"C\"'::regcollation AND atttypid = 'text'::regtype "
        "AND attrelid IN "
        "(SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relkind = 'r')",
        "ci_builds.pipeline ci_builds.build_id ci_test_totals.suite "
        "ci_test_totals.class ci_test_totals.name ci_tests.suite ci_tests.class "
        "ci_tests.name ci_tests.pipeline ci_tests.build_id commit_author_totals.email "
        "commit_files.path commit_files.old_path commit_path_totals.path commits.sha "
        "commits.author_email commits.author_email_mailmap");
    //  Byte order whatever the server's locale
    pgtest_expect (conn, "SELECT string_agg (DISTINCT path, ' ' ORDER BY path) FROM commit_files",
                   "Zeta.c alpha/0.c alpha/1.c");
    pgtest_expect (conn, "SELECT string_agg (email, ' ' ORDER BY email) FROM commit_author_totals",
                   "Zed@x.example alice@x.example émile@x.example");
    //  The triggers count on; the totals equal a count of the rows
    s_test_rows (conn, 13, 20);
    pgtest_expect (conn,
                   "SELECT (SELECT sum (runs) FROM ci_test_totals) || ' ' || "
                   "(SELECT sum (commits) FROM commit_path_totals) || ' ' || "
                   "(SELECT sum (commits) FROM commit_author_totals)",
                   "60 40 20");
    char *kept = pgtest_value (conn, S_ROWS_DIGEST);
    assert (omni_pgconn_exec (conn, "SELECT relational_totals_recount (NULL)") == PGCONN_OK);
    pgtest_expect (conn, S_ROWS_DIGEST, kept);
    //  A prefix LIKE on a path can use its index now (not under a locale)
    assert (omni_pgconn_exec (conn, "SET enable_seqscan = off; SET enable_bitmapscan = off") ==
            PGCONN_OK);
    pgtest_expect (conn,
                   "SELECT count (*) FROM commit_files WHERE path LIKE 'alpha/%' "
                   "AND path >= 'Zz'",
                   "20");
    PGresult *plan = omni_pgconn_query (
        conn, "EXPLAIN SELECT * FROM commit_files WHERE path LIKE 'al%'", 0, NULL);
    assert (plan && PQntuples (plan) >= 1);
    assert (strstr (PQgetvalue (plan, 0, 0), "Index Scan using commit_files_path"));
    PQclear (plan);
    assert (omni_pgconn_exec (conn, "RESET enable_seqscan; RESET enable_bitmapscan") == PGCONN_OK);
    s_test_cases (conn, dsn, kept);
    free (kept);
    free (views);
    free (rows);
    omni_pgconn_destroy (&conn);
    pgtest_db_drop (dsn);
    free (dsn);
}

void
schema_test (bool verbose)
{
    if (!verbose)
        omni_log_init ("schema-test", "error", "kv");
    assert (schema_version () >= 1);
    int previous = 0;
    for (const omni_migrate_step_t *m = schema_migrations; m->sql; m++) {
        assert (m->version > previous);
        assert (strlen (m->sql) > 0); //  a NUL inside is refused by pg/embed_sql.sh
        previous = m->version;
    }
    char *dsn = pgtest_db_new ("schema");
    if (!dsn) {
        selftest_skip ("no PostgreSQL server ($OMNI_TEST_PG_DSN, else 127.0.0.1:5432)");
    }
    //  Four relationalds start at the same moment
    assert (pgtest_parallel (dsn, 4, s_test_start, NULL) == 0);
    char error[256];
    omni_pgconn_t *conn = omni_pgconn_new (dsn, error, sizeof error);
    assert (omni_pgconn_ensure (conn) == 0);
    char sql[128];
    snprintf (sql, sizeof sql, "SELECT count (*) FROM schema_migrations WHERE version <= %d",
              schema_version ());
    assert (s_count (conn, sql) == schema_version ());
    assert (s_count (conn, "SELECT count (*) FROM information_schema.views WHERE table_name IN "
                           "('contributors', 'commit_activity_daily', 'commit_activity_weekly', "
                           "'build_success_rate', 'slowest_tests', 'flakiest_tests')") == 6);
    //  Again: nothing to apply, still fine
    assert (schema_migrate (conn) == 0);
    assert (s_count (conn, "SELECT count (*) FROM schema_migrations") == schema_version ());
    //  The checksums are the SHA-256 of the embedded text, as earlier
    //  releases recorded them: their databases are current, not "changed"
    for (const omni_migrate_step_t *m = schema_migrations; m->sql; m++) {
        char version[16];
        snprintf (version, sizeof version, "%d", m->version);
        const char *params[] = {version, m->sql};
        PGresult *result = omni_pgconn_query (conn,
                                              "SELECT count (*) FROM schema_migrations WHERE "
                                              "version = $1::int AND checksum = encode (sha256 "
                                              "(convert_to ($2, 'UTF8')), 'hex')",
                                              2, params);
        assert (result && strcmp (PQgetvalue (result, 0, 0), "1") == 0);
        PQclear (result);
    }
    //  A database migrated by a newer relationald is accepted
    assert (omni_pgconn_exec (conn, "INSERT INTO schema_migrations VALUES (9999, 'future', 'x')") ==
            PGCONN_OK);
    assert (schema_migrate (conn) == 0);
    omni_pgconn_destroy (&conn);
    pgtest_db_drop (dsn);
    free (dsn);
    s_test_upgrade ();
}
