/*  pgwriter: the connection verdicts the two PostgreSQL writers share.     */
#include "pg/pgwriter.h"
#include "testsupport/pgtest.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
omni_pgwriter_connect_failed (omni_pgconn_t *conn)
{
    omni_pgconn_status_t status = omni_pgconn_last_status (conn);
    return status == PGCONN_TRANSIENT || status == PGCONN_PERMANENT ? 1 : -1;
}

bool
omni_pgwriter_healthy (omni_pgconn_t *conn, char *text, size_t size)
{
    if (omni_pgconn_refused (conn, text, size))
        return false;
    bool ok = omni_pgconn_ping (conn, 1000);
    if (ok)
        snprintf (text, size, "postgresql ok");
    else
        snprintf (text, size, "postgresql not reachable (%s)", omni_pgconn_display (conn));
    return ok;
}

void
omni_pgwriter_test (bool verbose)
{
    (void) verbose;
    char error[256], text[512];
    //  Nothing listens there: away, asked again, unhealthy
    omni_pgconn_t *away =
        omni_pgconn_new ("host=127.0.0.1 port=1 connect_timeout=2", error, sizeof error);
    assert (away);
    assert (omni_pgconn_ensure (away) == -1);
    assert (omni_pgwriter_connect_failed (away) == 1);
    assert (!omni_pgwriter_healthy (away, text, sizeof text));
    assert (strncmp (text, "postgresql not reachable (host=127.0.0.1 port=1", 47) == 0);
    omni_pgconn_destroy (&away);

    char *conninfo = pgtest_db_new ("pgwriter");
    if (!conninfo)
        selftest_skip ("no PostgreSQL server");
    omni_pgconn_t *conn = omni_pgconn_new (conninfo, error, sizeof error);
    assert (conn && omni_pgconn_ensure (conn) == 0);
    assert (omni_pgwriter_healthy (conn, text, sizeof text));
    assert (strcmp (text, "postgresql ok") == 0);
    omni_pgconn_destroy (&conn);
    pgtest_db_drop (conninfo);
    free (conninfo);
}
