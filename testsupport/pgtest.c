/*  pgtest: databases of their own for self-tests, and the checks they make.

    Each self-test gets a fresh UTF-8 database named after its pid and tag,
    so self-tests run side by side and beside a pipeline on the same server;
    drop only ever removes a database of that name pattern.                 */
#include "testsupport/pgtest.h"
#include "common/buf.h"

#include <assert.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *
s_admin_conninfo (void)
{
    const char *dsn = getenv ("OMNI_TEST_PG_DSN");
    return dsn && *dsn ? dsn : "host=127.0.0.1 port=5432 user=postgres dbname=postgres";
}

//  `base` with its dbname replaced; values quoted for the key=value form.
static char *
s_conninfo_with_dbname (const char *base, const char *dbname)
{
    PQconninfoOption *options = PQconninfoParse (base, NULL);
    if (!options)
        return NULL;
    omni_buf_t out = {0};
    for (PQconninfoOption *o = options; o->keyword; o++) {
        const char *value = strcmp (o->keyword, "dbname") == 0 ? dbname : o->val;
        if (!value)
            continue;
        omni_buf_printf (&out, "%s%s='", out.size ? " " : "", o->keyword);
        for (const char *p = value; *p; p++) {
            if (*p == '\'' || *p == '\\')
                omni_buf_append_char (&out, '\\');
            omni_buf_append_char (&out, *p);
        }
        omni_buf_append_char (&out, '\'');
    }
    PQconninfoFree (options);
    return omni_buf_detach (&out);
}

static char *
s_dbname (const char *conninfo)
{
    PQconninfoOption *options = PQconninfoParse (conninfo, NULL);
    char *name = NULL;
    for (PQconninfoOption *o = options; o && o->keyword; o++)
        if (strcmp (o->keyword, "dbname") == 0 && o->val)
            name = strdup (o->val);
    PQconninfoFree (options);
    return name;
}

char *
pgtest_db_new (const char *tag)
{
    PGconn *admin = PQconnectdb (s_admin_conninfo ());
    if (PQstatus (admin) != CONNECTION_OK) {
        fprintf (stderr, "pgtest_db_new: no server: %s", PQerrorMessage (admin));
        //  make test starts the services: there, a missing server is a failure.
        assert (!getenv ("OMNI_REQUIRE_SERVICES"));
        PQfinish (admin);
        return NULL;
    }
    //  "does not exist, skipping" is no news to a test
    PQclear (PQexec (admin, "SET client_min_messages = warning"));
    char dbname[64];
    snprintf (dbname, sizeof dbname, "omni_test_%d_%s", (int) getpid (), tag);
    char sql[256];
    //  The name is ours (pid and a literal tag), not data
    snprintf (sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    PQclear (PQexec (admin, sql));
    snprintf (sql, sizeof sql,
              "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
              dbname);
    PGresult *result = PQexec (admin, sql);
    bool ok = PQresultStatus (result) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf (stderr, "pgtest_db_new: %s", PQerrorMessage (admin));
    PQclear (result);
    PQfinish (admin);
    return ok ? s_conninfo_with_dbname (s_admin_conninfo (), dbname) : NULL;
}

void
pgtest_db_drop (const char *conninfo)
{
    if (!conninfo)
        return;
    char *dbname = s_dbname (conninfo);
    if (!dbname || strncmp (dbname, "omni_test_", 10) != 0) {
        free (dbname);
        return; //  only ever drop what pgtest_db_new made
    }
    PGconn *admin = PQconnectdb (s_admin_conninfo ());
    if (PQstatus (admin) == CONNECTION_OK) {
        char sql[256];
        snprintf (sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
        PQclear (PQexec (admin, sql));
    }
    PQfinish (admin);
    free (dbname);
}

char *
pgtest_value (omni_pgconn_t *conn, const char *sql)
{
    PGresult *result = omni_pgconn_query (conn, sql, 0, NULL);
    if (!result || PQntuples (result) != 1) {
        fprintf (stderr, "%s\n  %s\n", sql, result ? "not one row" : omni_pgconn_error (conn));
        assert (false);
    }
    char *value = strdup (PQgetisnull (result, 0, 0) ? "NULL" : PQgetvalue (result, 0, 0));
    assert (value);
    PQclear (result);
    return value;
}

void
pgtest_expect (omni_pgconn_t *conn, const char *sql, const char *expected)
{
    char *value = pgtest_value (conn, sql);
    if (strcmp (value, expected)) {
        fprintf (stderr, "%s\n  got      %s\n  expected %s\n", sql, value, expected);
        assert (false);
    }
    free (value);
}

void
pgtest_end_session (omni_pgconn_t *conn, const char *conninfo)
{
    PGconn *other = PQconnectdb (conninfo);
    assert (PQstatus (other) == CONNECTION_OK);
    char sql[128];
    snprintf (sql, sizeof sql, "SELECT pg_terminate_backend (%d)",
              PQbackendPID (omni_pgconn_handle (conn)));
    PQclear (PQexec (other, sql));
    PQfinish (other);
}

typedef struct {
    const char *conninfo;
    pgtest_fn *fn;
    void *arg;
    int index;
    pthread_barrier_t *start;
    int rc;
} s_parallel_t;

static void *
s_parallel (void *arg_)
{
    s_parallel_t *run = arg_;
    char error[256];
    omni_pgconn_t *conn = omni_pgconn_new (run->conninfo, error, sizeof error);
    bool up = conn && omni_pgconn_ensure (conn) == 0;
    pthread_barrier_wait (run->start);
    run->rc = up ? run->fn (conn, run->arg, run->index) : -1;
    if (run->rc)
        fprintf (stderr, "pgtest_parallel: thread %d failed: %s\n", run->index,
                 conn ? omni_pgconn_error (conn) : error);
    omni_pgconn_destroy (&conn);
    return NULL;
}

int
pgtest_parallel (const char *conninfo, int n, pgtest_fn *fn, void *arg)
{
    enum { MAX = 16 };
    assert (n > 0 && n <= MAX);
    pthread_t threads[MAX];
    s_parallel_t runs[MAX];
    pthread_barrier_t start;
    assert (pthread_barrier_init (&start, NULL, (unsigned) n) == 0);
    for (int i = 0; i < n; i++) {
        runs[i] = (s_parallel_t){conninfo, fn, arg, i, &start, -2};
        assert (pthread_create (&threads[i], NULL, s_parallel, &runs[i]) == 0);
    }
    int failed = 0;
    for (int i = 0; i < n; i++) {
        pthread_join (threads[i], NULL);
        failed += runs[i].rc != 0;
    }
    pthread_barrier_destroy (&start);
    return failed;
}
