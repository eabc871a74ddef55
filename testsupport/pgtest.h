/*  pgtest: PostgreSQL for the self-tests of the classes that use it.

    Test support, not pgconn's job: it lives here so that no program links
    it (tools/check-binaries.sh) and pgconn.c keeps to the connection and
    its COPY encoder.                                                       */
#ifndef OMNI_PGTEST_H
#define OMNI_PGTEST_H

#include "pg/pgconn.h"

//  Creates a fresh UTF-8
//  database omni_test_<pid>_<tag> on the server named by $OMNI_TEST_PG_DSN
//  (else host=127.0.0.1 port=5432 user=postgres dbname=postgres) and
//  returns a conninfo for it (caller frees), or NULL when there is no server.
char *pgtest_db_new (const char *tag);
//  Drops the database made by pgtest_db_new (closing its sessions).
void pgtest_db_drop (const char *conninfo);
//  The one value `sql` returns, as text ("NULL" for SQL NULL; caller frees).
//  An error or another number of rows fails the test, saying why.
char *pgtest_value (omni_pgconn_t *conn, const char *sql);
//  Asserts that `sql` returns the one value `expected`, printing both if not.
void pgtest_expect (omni_pgconn_t *conn, const char *sql, const char *expected);
//  The server ends `conn`'s session (pg_terminate_backend from another
//  session to `conninfo`), as a server restart or a network fault would.
void pgtest_end_session (omni_pgconn_t *conn, const char *conninfo);
//  What several daemons do at the same moment: `n` threads (at most 16),
//  each with a connection of its own to `conninfo`, run fn (conn, arg, i)
//  together once all are connected. Returns how many failed (fn returned
//  non-zero, printed with omni_pgconn_error, or could not connect).
typedef int (pgtest_fn) (omni_pgconn_t *conn, void *arg, int index);
int pgtest_parallel (const char *conninfo, int n, pgtest_fn *fn, void *arg);

#endif
