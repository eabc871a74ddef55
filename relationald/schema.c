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
}
