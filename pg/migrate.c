/*  migrate: applies versioned migrations under an advisory lock.          */
#include "pg/migrate.h"
#include "common/log.h"
#include "common/util.h"
#include "testsupport/pgtest.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_HEX_SIZE (2 * SHA256_DIGEST_LENGTH + 1)

int
omni_migrate_version (const omni_migrate_step_t *steps)
{
    int version = 0;
    for (const omni_migrate_step_t *s = steps; s && s->sql; s++)
        version = s->version;
    return version;
}

static void
s_checksum (const char *sql, char hex[S_HEX_SIZE])
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256 ((const unsigned char *) sql, strlen (sql), digest);
    omni_util_hex (digest, SHA256_DIGEST_LENGTH, hex);
}

//  The table name goes into SQL text: it comes from the program, and is
//  checked to be a plain identifier all the same.
static bool
s_identifier (const char *name)
{
    if (!name || !*name || strlen (name) > 60)
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || *c == '_' || (*c >= '0' && *c <= '9' && c > name)))
            return false;
    return true;
}

typedef struct {
    const omni_migrate_config_t *config;
    int applied;
    int version; //  the schema's version once migrated
} s_run_t;

static int
s_migrate (omni_pgconn_t *conn, void *arg)
{
    s_run_t *run = arg;
    const omni_migrate_config_t *config = run->config;
    char sql[512];
    snprintf (sql, sizeof sql, "SELECT pg_advisory_xact_lock (%lld)", config->lock_key);
    if (omni_pgconn_exec (conn, sql) != PGCONN_OK)
        return -1;
    snprintf (sql, sizeof sql,
              "CREATE TABLE IF NOT EXISTS %s (version integer PRIMARY KEY, name text NOT NULL, "
              "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now ())",
              config->table);
    if (omni_pgconn_exec (conn, sql) != PGCONN_OK)
        return -1;
    snprintf (sql, sizeof sql, "SELECT version, checksum FROM %s", config->table);
    PGresult *rows = omni_pgconn_query (conn, sql, 0, NULL);
    if (!rows)
        return -1;
    const omni_migrate_step_t *steps = config->plan (conn, config->arg);
    if (!steps) {
        PQclear (rows);
        return -1;
    }
    int newest = 0;
    for (int r = 0; r < PQntuples (rows); r++) {
        int version = atoi (PQgetvalue (rows, r, 0));
        newest = version > newest ? version : newest;
    }
    int rc = 0;
    for (const omni_migrate_step_t *step = steps; step->sql && rc == 0; step++) {
        char checksum[S_HEX_SIZE];
        s_checksum (step->sql, checksum);
        const char *recorded = NULL;
        for (int r = 0; r < PQntuples (rows); r++)
            if (atoi (PQgetvalue (rows, r, 0)) == step->version)
                recorded = PQgetvalue (rows, r, 1);
        if (recorded) {
            if (strcmp (recorded, checksum))
                log_warn ("schema.changed",
                          "component=%s version=%d name=%s detail=\"the "
                          "embedded migration differs from the one applied\"",
                          config->component, step->version, step->name);
            continue;
        }
        if (omni_pgconn_exec (conn, step->sql) != PGCONN_OK) {
            log_error ("schema.migration_failed", "component=%s version=%d name=%s error=\"%s\"",
                       config->component, step->version, step->name, omni_pgconn_error (conn));
            rc = -1;
            break;
        }
        char version[16];
        snprintf (version, sizeof version, "%d", step->version);
        const char *params[] = {version, step->name, checksum};
        snprintf (sql, sizeof sql, "INSERT INTO %s (version, name, checksum) VALUES ($1, $2, $3)",
                  config->table);
        PGresult *done = omni_pgconn_query (conn, sql, 3, params);
        if (!done) {
            rc = -1;
            break;
        }
        PQclear (done);
        run->applied++;
        log_info ("schema.applied", "component=%s version=%d name=%s", config->component,
                  step->version, step->name);
    }
    PQclear (rows);
    int embedded = omni_migrate_version (steps);
    run->version = newest > embedded ? newest : embedded;
    if (rc == 0 && newest > embedded)
        log_warn ("schema.newer",
                  "component=%s database=%d embedded=%d detail=\"a newer "
                  "release migrated this database\"",
                  config->component, newest, embedded);
    if (rc == 0 && config->after)
        rc = config->after (conn, config->arg);
    return rc;
}

int
omni_migrate_run (omni_pgconn_t *conn, const omni_migrate_config_t *config, int *applied)
{
    assert (config->plan && config->component);
    assert (s_identifier (config->table));
    s_run_t run = {config, 0, 0};
    omni_pgconn_status_t status = omni_pgconn_transaction (conn, s_migrate, &run);
    if (applied)
        *applied = status == PGCONN_OK ? run.applied : 0;
    if (status != PGCONN_OK)
        return -1;
    if (run.applied)
        log_info ("schema.migrated", "component=%s applied=%d version=%d", config->component,
                  run.applied, run.version);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Self-test: several daemons migrating one fresh database at once

static const omni_migrate_step_t s_steps_v1[] = {
    {1, "one", "CREATE TABLE t_one (n int); INSERT INTO t_one VALUES (1)"}, {0, NULL, NULL}};
static const omni_migrate_step_t s_steps_v2[] = {
    {1, "one", "CREATE TABLE t_one (n int); INSERT INTO t_one VALUES (1)"},
    {2, "two", "INSERT INTO t_one VALUES (2)"},
    {0, NULL, NULL}};
static const omni_migrate_step_t s_steps_bad[] = {
    {1, "one", "CREATE TABLE t_one (n int); INSERT INTO t_one VALUES (1)"},
    {2, "two", "INSERT INTO t_one VALUES (2)"},
    {3, "bad", "INSERT INTO t_one VALUES (3); SELECT no_such_function ()"},
    {0, NULL, NULL}};

typedef struct {
    const omni_migrate_step_t *steps;
    int afters;
} s_test_arg_t;

static const omni_migrate_step_t *
s_test_plan (omni_pgconn_t *conn, void *arg)
{
    (void) conn;
    return ((s_test_arg_t *) arg)->steps;
}

static int
s_test_after (omni_pgconn_t *conn, void *arg)
{
    ((s_test_arg_t *) arg)->afters++;
    return omni_pgconn_exec (conn,
                             "CREATE OR REPLACE VIEW t_view AS SELECT count (*) AS n FROM t_one") ==
                   PGCONN_OK
               ? 0
               : -1;
}

//  One daemon of several starting at once: the steps up to version 2
static int
s_test_start (omni_pgconn_t *conn, void *arg, int index)
{
    s_test_arg_t targ = {s_steps_v2, 0};
    omni_migrate_config_t config = {"test",      "test_migrations", 4242,
                                    s_test_plan, s_test_after,      &targ};
    return omni_migrate_run (conn, &config, &((int *) arg)[index]);
}

void
omni_migrate_test (bool verbose)
{
    if (!verbose)
        omni_log_init ("migrate-test", "error", "kv");
    assert (s_identifier ("metricsd_migrations"));
    assert (!s_identifier ("x; DROP TABLE y"));
    assert (!s_identifier ("1abc"));
    assert (omni_migrate_version (s_steps_v2) == 2);
    char *dsn = pgtest_db_new ("migrate");
    if (!dsn) {
        selftest_skip ("no PostgreSQL server ($OMNI_TEST_PG_DSN, else 127.0.0.1:5432)");
    }
    char error[256];
    omni_pgconn_t *conn = omni_pgconn_new (dsn, error, sizeof error);
    assert (conn && omni_pgconn_ensure (conn) == 0);

    //  Version 1, then 2 on top
    s_test_arg_t arg = {s_steps_v1, 0};
    omni_migrate_config_t config = {"test",      "test_migrations", 4242,
                                    s_test_plan, s_test_after,      &arg};
    int applied = -1;
    assert (omni_migrate_run (conn, &config, &applied) == 0 && applied == 1);
    pgtest_expect (conn, "SELECT n FROM t_view", "1");
    arg.steps = s_steps_v2;
    assert (omni_migrate_run (conn, &config, &applied) == 0 && applied == 1);
    pgtest_expect (conn, "SELECT n FROM t_view", "2");
    assert (arg.afters == 2);

    //  A failing step rolls back everything of that run
    arg.steps = s_steps_bad;
    assert (omni_migrate_run (conn, &config, &applied) == -1 && applied == 0);
    pgtest_expect (conn, "SELECT count (*) FROM t_one", "2");
    pgtest_expect (conn, "SELECT max (version) FROM test_migrations", "2");

    //  A newer database is accepted; another component's table is separate
    arg.steps = s_steps_v1;
    assert (omni_migrate_run (conn, &config, &applied) == 0 && applied == 0);
    s_test_arg_t other_arg = {s_steps_v1, 0};
    omni_migrate_config_t other = {"other", "other_migrations", 4343, s_test_plan,
                                   NULL,    &other_arg};
    //  Its step 1 conflicts with ours (t_one exists): it fails on its own
    assert (omni_migrate_run (conn, &other, &applied) == -1);
    pgtest_expect (conn, "SELECT to_regclass ('other_migrations') IS NULL", "t");
    omni_pgconn_destroy (&conn);
    pgtest_db_drop (dsn);
    free (dsn);

    //  Four daemons start at the same moment on a fresh database
    dsn = pgtest_db_new ("migrate2");
    assert (dsn);
    int applied_by[4] = {0};
    assert (pgtest_parallel (dsn, 4, s_test_start, applied_by) == 0);
    assert (applied_by[0] + applied_by[1] + applied_by[2] + applied_by[3] == 2);
    conn = omni_pgconn_new (dsn, error, sizeof error);
    assert (omni_pgconn_ensure (conn) == 0);
    pgtest_expect (conn, "SELECT count (*) || ' ' || sum (n) FROM t_one", "2 3");
    omni_pgconn_destroy (&conn);
    pgtest_db_drop (dsn);
    free (dsn);
}
