/*  schema: applies the embedded migrations.

    Everything happens in one transaction that first takes a transaction-
    level advisory lock, so a second relationald starting at the same moment
    waits, then finds the versions recorded and applies nothing. The lock is
    released by the commit or the rollback, even if the process dies.
    Each applied migration's SHA-256 is kept: a released migration that was
    edited afterwards is reported, not silently ignored.                      */
#include "schema.h"
#include "log.h"
#include "util.h"

#include <assert.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  "OmniRel1": the advisory lock key of relationald's migrations
#define SCHEMA_LOCK_KEY "5723297880566770993"

int
schema_version (void)
{
    int version = 0;
    for (const schema_migration_t *m = schema_migrations; m->sql; m++)
        version = m->version;
    return version;
}

static void
s_checksum (const schema_migration_t *m, char hex[2 * SHA256_DIGEST_LENGTH + 1])
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256 ((const unsigned char *) m->sql, m->size, digest);
    util_hex (digest, SHA256_DIGEST_LENGTH, hex);
}

typedef struct {
    int applied, current;
} s_result_t;

static int
s_migrate (pgconn_t *conn, void *arg)
{
    s_result_t *result = arg;
    if (pgconn_exec (conn, "SELECT pg_advisory_xact_lock (" SCHEMA_LOCK_KEY ")") != PGCONN_OK
        || pgconn_exec (conn, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                              " version integer PRIMARY KEY,"
                              " name text NOT NULL,"
                              " checksum text NOT NULL,"
                              " applied_at timestamptz NOT NULL DEFAULT now ())")
               != PGCONN_OK)
        return -1;
    PGresult *rows = pgconn_query (conn, "SELECT version, checksum FROM schema_migrations", 0,
                                   NULL);
    if (!rows)
        return -1;
    int newest = 0;
    for (int r = 0; r < PQntuples (rows); r++) {
        int version = atoi (PQgetvalue (rows, r, 0));
        newest = version > newest ? version : newest;
    }
    int rc = 0;
    for (const schema_migration_t *m = schema_migrations; m->sql && rc == 0; m++) {
        char checksum[2 * SHA256_DIGEST_LENGTH + 1];
        s_checksum (m, checksum);
        const char *recorded = NULL;
        for (int r = 0; r < PQntuples (rows); r++)
            if (atoi (PQgetvalue (rows, r, 0)) == m->version)
                recorded = PQgetvalue (rows, r, 1);
        if (recorded) {
            if (strcmp (recorded, checksum))
                log_warn ("schema.changed", "version=%d name=%s detail=\"the embedded "
                          "migration differs from the one applied\"", m->version, m->name);
            continue;
        }
        if (pgconn_exec (conn, m->sql) != PGCONN_OK) {
            log_error ("schema.migration_failed", "version=%d name=%s error=\"%s\"", m->version,
                       m->name, pgconn_error (conn));
            rc = -1;
            break;
        }
        char version[16];
        snprintf (version, sizeof version, "%d", m->version);
        const char *params[] = {version, m->name, checksum};
        PGresult *done = pgconn_query (conn, "INSERT INTO schema_migrations (version, name, "
                                             "checksum) VALUES ($1, $2, $3)",
                                       3, params);
        if (!done) {
            rc = -1;
            break;
        }
        PQclear (done);
        result->applied++;
        log_info ("schema.applied", "version=%d name=%s", m->version, m->name);
    }
    PQclear (rows);
    if (newest > schema_version ())
        log_warn ("schema.newer", "database=%d embedded=%d detail=\"a newer relationald "
                  "migrated this database\"", newest, schema_version ());
    result->current = newest > schema_version () ? newest : schema_version ();
    return rc;
}

int
schema_migrate (pgconn_t *conn)
{
    s_result_t result = {0, 0};
    if (pgconn_transaction (conn, s_migrate, &result) != PGCONN_OK)
        return -1;
    if (result.applied)
        log_info ("schema.migrated", "applied=%d version=%d", result.applied, result.current);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Self-test: a fresh database migrated by several connections at once

typedef struct {
    const char *dsn;
    int rc;
} s_thread_arg_t;

static void *
s_migrate_thread (void *arg_)
{
    s_thread_arg_t *arg = arg_;
    char error[256];
    pgconn_t *conn = pgconn_new (arg->dsn, error, sizeof error);
    assert (conn);
    arg->rc = pgconn_ensure (conn) == 0 ? schema_migrate (conn) : -1;
    pgconn_destroy (&conn);
    return NULL;
}

static long
s_count (pgconn_t *conn, const char *sql)
{
    PGresult *result = pgconn_query (conn, sql, 0, NULL);
    assert (result && PQntuples (result) == 1);
    long n = atol (PQgetvalue (result, 0, 0));
    PQclear (result);
    return n;
}

void
schema_test (bool verbose)
{
    if (!verbose)
        log_init ("schema-test", "error", "kv");
    assert (schema_version () >= 1);
    int previous = 0;
    for (const schema_migration_t *m = schema_migrations; m->sql; m++) {
        assert (m->version > previous);
        assert (strlen (m->sql) == m->size); //  no NUL inside, all bytes embedded
        previous = m->version;
    }
    char *dsn = pgconn_testdb_new ("schema");
    if (!dsn) {
        fprintf (stderr, "schema_test: no PostgreSQL server, skipped\n");
        return;
    }
    //  Four relationalds start at the same moment
    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    s_thread_arg_t args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (s_thread_arg_t) {dsn, -2};
        assert (pthread_create (&threads[i], NULL, s_migrate_thread, &args[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join (threads[i], NULL);
        assert (args[i].rc == 0);
    }
    char error[256];
    pgconn_t *conn = pgconn_new (dsn, error, sizeof error);
    assert (pgconn_ensure (conn) == 0);
    char sql[128];
    snprintf (sql, sizeof sql, "SELECT count (*) FROM schema_migrations WHERE version <= %d",
              schema_version ());
    assert (s_count (conn, sql) == schema_version ());
    assert (s_count (conn, "SELECT count (*) FROM information_schema.views WHERE table_name IN "
                           "('contributors', 'commit_activity_daily', 'commit_activity_weekly', "
                           "'build_success_rate', 'slowest_tests', 'flakiest_tests')")
            == 6);
    //  Again: nothing to apply, still fine
    assert (schema_migrate (conn) == 0);
    assert (s_count (conn, "SELECT count (*) FROM schema_migrations") == schema_version ());
    //  A database migrated by a newer relationald is accepted
    assert (pgconn_exec (conn, "INSERT INTO schema_migrations VALUES (9999, 'future', 'x')")
            == PGCONN_OK);
    assert (schema_migrate (conn) == 0);
    pgconn_destroy (&conn);
    pgconn_testdb_drop (dsn);
    free (dsn);
}
