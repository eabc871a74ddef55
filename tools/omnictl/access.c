/*  access: grants of per-project access (see access.h).

    Values go through statement parameters; the one identifier that must be
    in SQL text (the role of GRANT omni_viewer TO ...) is quoted by libpq.  */
#include "tools/omnictl/access.h"
#include "common/log.h"
#include "pg/pgconn.h"
#include "testsupport/pgtest.h"
#include "pg/shared_sql.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PATTERN_MAX 1024
#define S_ROLE_MAX    63 //  NAMEDATALEN - 1

struct _access_t {
    omni_pgconn_t *conn;
    char database[128];
};

bool
access_valid_pattern (const char *pattern, char *error, size_t error_size)
{
    size_t len = pattern ? strlen (pattern) : 0;
    if (len == 0) {
        snprintf (error, error_size,
                  "empty pattern (give a LIKE pattern on source names, e.g. "
                  "'github.com/acme/%%')");
        return false;
    }
    if (len > S_PATTERN_MAX) {
        snprintf (error, error_size, "pattern of %zu bytes: at most %d", len, S_PATTERN_MAX);
        return false;
    }
    for (const unsigned char *c = (const unsigned char *) pattern; *c; c++)
        if (*c < 0x20 || *c == 0x7f) {
            snprintf (error, error_size,
                      "pattern holds a control character (byte %zu): source names have none",
                      (size_t) ((const char *) c - pattern));
            return false;
        }
    size_t backslashes = 0;
    while (backslashes < len && pattern[len - 1 - backslashes] == '\\')
        backslashes++;
    if (backslashes % 2) {
        snprintf (error, error_size,
                  "pattern ends with a lone backslash, LIKE's escape character (write \\\\ "
                  "for a backslash, \\%% and \\_ for a literal %% or _)");
        return false;
    }
    return true;
}

bool
access_valid_role (const char *role, char *error, size_t error_size)
{
    size_t len = role ? strlen (role) : 0;
    if (len == 0 || len > S_ROLE_MAX) {
        snprintf (error, error_size, "a role name has 1 to %d bytes, not %zu", S_ROLE_MAX, len);
        return false;
    }
    if (strcmp (role, "omni_viewer") == 0 || strcmp (role, "omni_reader") == 0) {
        snprintf (error, error_size,
                  "%s is one of the shared roles, not a team's: grant to the team's role "
                  "(omni_reader's members see every source already)",
                  role);
        return false;
    }
    return true;
}

//  The server's error and, for the failures an operator meets, what to do
static void
s_error (access_t *self, const char *what, char *out, size_t size)
{
    const char *sqlstate = omni_pgconn_sqlstate (self->conn);
    const char *hint = "";
    if (strcmp (sqlstate, "42501") == 0)
        hint = " (hint: run omnictl as the writers' role, which owns omni_access_grants, or "
               "as a superuser; granting omni_viewer needs a superuser or CREATEROLE)";
    snprintf (out, size, "%s: %s%s", what, omni_pgconn_error (self->conn), hint);
}

access_t *
access_new (const char *dsn, char *error, size_t error_size)
{
    access_t *self = calloc (1, sizeof *self);
    assert (self);
    self->conn = omni_pgconn_new (dsn, error, error_size);
    if (!self->conn) {
        free (self);
        return NULL;
    }
    omni_pgconn_set_backoff (self->conn, 0, 0);
    if (omni_pgconn_ensure (self->conn)) {
        snprintf (error, error_size, "cannot connect to PostgreSQL (%s): %s (hint: --dsn)",
                  omni_pgconn_display (self->conn), omni_pgconn_error (self->conn));
        access_destroy (&self);
        return NULL;
    }
    snprintf (self->database, sizeof self->database, "%s", PQdb (omni_pgconn_handle (self->conn)));
    char present[8];
    if (omni_pgconn_scalar (self->conn,
                            "SELECT to_regclass ('omni_access_grants') IS NOT NULL AND "
                            "to_regprocedure ('omni_visible_patterns(name)') IS NOT NULL",
                            0, NULL, present, sizeof present)) {
        s_error (self, "cannot read the catalog", error, error_size);
        access_destroy (&self);
        return NULL;
    }
    if (strcmp (present, "t")) {
        snprintf (error, error_size,
                  "database \"%s\" has no per-project access tables (omni_access_grants): "
                  "it is not OmniAudit's, or was migrated by an older release (hint: start "
                  "relationald or metricsd of this release on it once; their migrations make "
                  "them)",
                  self->database);
        access_destroy (&self);
        return NULL;
    }
    return self;
}

void
access_destroy (access_t **self_p)
{
    if (!*self_p)
        return;
    access_t *self = *self_p;
    omni_pgconn_destroy (&self->conn);
    free (self);
    *self_p = NULL;
}

typedef struct {
    const char *role, *pattern;
    bool added;
} s_grant_t;

static int
s_grant (omni_pgconn_t *conn, void *arg)
{
    s_grant_t *grant = arg;
    const char *params[] = {grant->role, grant->pattern};
    PGresult *result = omni_pgconn_query (conn,
                                          "INSERT INTO omni_access_grants (role, pattern) "
                                          "VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING role",
                                          2, params);
    if (!result)
        return -1;
    grant->added = PQntuples (result) == 1;
    PQclear (result);
    char *quoted =
        PQescapeIdentifier (omni_pgconn_handle (conn), grant->role, strlen (grant->role));
    if (!quoted)
        return -1;
    char sql[256];
    snprintf (sql, sizeof sql, "GRANT omni_viewer TO %s", quoted);
    PQfreemem (quoted);
    return omni_pgconn_exec (conn, sql) == PGCONN_OK ? 0 : -1;
}

//  " (N of M sources here match now)" when this database has relationald's
//  sources table, so a mistyped pattern shows at once; else "".
static void
s_matching (access_t *self, const char *pattern, char *out, size_t size)
{
    *out = 0;
    char present[8], count[64];
    if (omni_pgconn_scalar (self->conn, "SELECT to_regclass ('sources') IS NOT NULL", 0, NULL,
                            present, sizeof present) ||
        strcmp (present, "t"))
        return;
    const char *params[] = {pattern};
    if (omni_pgconn_scalar (self->conn,
                            "SELECT count (*) FILTER (WHERE name LIKE $1) || ' of ' || count (*) "
                            "FROM sources",
                            1, params, count, sizeof count) == 0)
        snprintf (out, size, " (%s sources here match now)", count);
}

int
access_grant (access_t *self, const char *role, const char *pattern, char *out, size_t out_size)
{
    const char *params[] = {role};
    char found[8];
    if (omni_pgconn_scalar (self->conn, "SELECT count (*) FROM pg_roles WHERE rolname = $1", 1,
                            params, found, sizeof found)) {
        s_error (self, "cannot read pg_roles", out, out_size);
        return -1;
    }
    if (strcmp (found, "1")) {
        snprintf (out, out_size,
                  "no such role \"%s\" (hint: create it first, e.g. CREATE ROLE \"%s\" LOGIN "
                  "PASSWORD '...'; names are case-sensitive)",
                  role, role);
        return -1;
    }
    s_grant_t grant = {role, pattern, false};
    if (omni_pgconn_transaction (self->conn, s_grant, &grant) != PGCONN_OK) {
        s_error (self, "grant failed", out, out_size);
        return -1;
    }
    char matching[96];
    s_matching (self, pattern, matching, sizeof matching);
    snprintf (out, out_size, "%s %s the sources LIKE '%s' in database \"%s\"%s",
              grant.added ? "granted" : "already granted:", role, pattern, self->database,
              matching);
    return 0;
}

int
access_revoke (access_t *self, const char *role, const char *pattern, char *out, size_t out_size)
{
    const char *params[] = {role, pattern};
    PGresult *result = omni_pgconn_query (self->conn,
                                          "WITH gone AS (DELETE FROM omni_access_grants "
                                          "WHERE role = $1 AND pattern = $2 RETURNING role) "
                                          "SELECT (SELECT count (*) FROM gone), "
                                          "(SELECT count (*) FROM omni_access_grants "
                                          " WHERE role = $1) - (SELECT count (*) FROM gone)",
                                          2, params);
    if (!result) {
        s_error (self, "revoke failed", out, out_size);
        return -1;
    }
    bool removed = strcmp (PQgetvalue (result, 0, 0), "1") == 0;
    long left = atol (PQgetvalue (result, 0, 1));
    PQclear (result);
    if (!removed) {
        snprintf (out, out_size,
                  "%s has no grant '%s' in database \"%s\" (hint: omnictl grants lists them; "
                  "the pattern must be written as granted)",
                  role, pattern, self->database);
        return -1;
    }
    snprintf (out, out_size,
              "revoked %s the sources LIKE '%s' in database \"%s\"; %ld grant%s left", role,
              pattern, self->database, left, left == 1 ? "" : "s");
    return 0;
}

char *
access_list (access_t *self, char *error, size_t error_size)
{
    PGresult *result =
        omni_pgconn_query (self->conn,
                           "SELECT g.role, g.pattern, to_char (g.granted AT TIME ZONE 'UTC', "
                           "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), r.rolname IS NULL "
                           "FROM omni_access_grants g LEFT JOIN pg_roles r ON r.rolname = g.role "
                           "ORDER BY g.role, g.pattern",
                           0, NULL);
    if (!result) {
        s_error (self, "cannot read omni_access_grants", error, error_size);
        return NULL;
    }
    int rows = PQntuples (result);
    int wrole = 4, wpattern = 7;
    for (int r = 0; r < rows; r++) {
        int l = (int) strlen (PQgetvalue (result, r, 0));
        wrole = l > wrole ? l : wrole;
        l = (int) strlen (PQgetvalue (result, r, 1));
        wpattern = l > wpattern ? l : wpattern;
    }
    size_t cap = 256 + (size_t) rows * (size_t) (wrole + wpattern + 64);
    char *text = malloc (cap);
    assert (text);
    size_t at = 0;
    if (rows == 0)
        at += (size_t) snprintf (text, cap, "no grants in database \"%s\"\n", self->database);
    else
        at += (size_t) snprintf (text, cap, "%-*s  %-*s  %s\n", wrole, "ROLE", wpattern, "PATTERN",
                                 "GRANTED");
    for (int r = 0; r < rows; r++)
        at += (size_t) snprintf (
            text + at, cap - at, "%-*s  %-*s  %s%s\n", wrole, PQgetvalue (result, r, 0), wpattern,
            PQgetvalue (result, r, 1), PQgetvalue (result, r, 2),
            strcmp (PQgetvalue (result, r, 3), "t") == 0 ? "  (no such role: dropped?)" : "");
    PQclear (result);
    return text;
}

//  ---------------------------------------------------------------------------
//  Self-test: against the real server, a database of its own migrated with
//  the shared access SQL, and a login role of its own (roles are the
//  cluster's: the name is unique, and the role is dropped at the end).

void
access_test (bool verbose)
{
    if (!verbose)
        omni_log_init ("access-test", "error", "kv");
    char error[1024];
    assert (access_valid_pattern ("github.com/acme/%", error, sizeof error));
    assert (access_valid_pattern ("a\\\\", error, sizeof error));
    assert (!access_valid_pattern ("", error, sizeof error) && strstr (error, "empty"));
    assert (!access_valid_pattern (NULL, error, sizeof error));
    assert (!access_valid_pattern ("acme\\", error, sizeof error) && strstr (error, "backslash"));
    assert (!access_valid_pattern ("a\tb", error, sizeof error) && strstr (error, "control"));
    char big[S_PATTERN_MAX + 2];
    memset (big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert (!access_valid_pattern (big, error, sizeof error));
    assert (access_valid_role ("team_acme", error, sizeof error));
    assert (!access_valid_role ("", error, sizeof error));
    assert (!access_valid_role ("omni_viewer", error, sizeof error) && strstr (error, "shared"));
    assert (!access_valid_role ("omni_reader", error, sizeof error));

    char *dsn = pgtest_db_new ("access");
    if (!dsn) {
        fprintf (stderr, "access_test: no PostgreSQL server, skipped\n");
        return;
    }
    //  Not migrated: a clear error naming the database and the remedy
    assert (!access_new (dsn, error, sizeof error));
    assert (strstr (error, "no per-project access tables") && strstr (error, "relationald"));
    omni_pgconn_t *admin = omni_pgconn_new (dsn, error, sizeof error);
    assert (admin && omni_pgconn_ensure (admin) == 0);
    assert (omni_pgconn_exec (admin, "BEGIN") == PGCONN_OK);
    assert (omni_pgconn_exec (admin, omni_shared_sql_access) == PGCONN_OK);
    assert (omni_pgconn_exec (admin,
                              "CREATE TABLE sources (id int, name text); INSERT INTO sources "
                              "VALUES (1, 'github.com/acme/a'), (2, 'github.com/other/b'); "
                              "COMMIT") == PGCONN_OK);
    char role[64], sql[256];
    snprintf (role, sizeof role, "omni_test_access_%d", (int) getpid ());
    snprintf (sql, sizeof sql, "CREATE ROLE %s LOGIN", role);
    assert (omni_pgconn_exec (admin, sql) == PGCONN_OK);

    access_t *access = access_new (dsn, error, sizeof error);
    assert (access);
    char out[1024];
    assert (access_grant (access, "no_such_role_omni", "x%", out, sizeof out) == -1);
    assert (strstr (out, "no such role \"no_such_role_omni\""));
    assert (access_grant (access, role, "github.com/acme/%", out, sizeof out) == 0);
    assert (strstr (out, "granted") && strstr (out, "1 of 2 sources"));
    assert (access_grant (access, role, "github.com/acme/%", out, sizeof out) == 0);
    assert (strstr (out, "already granted"));
    //  The grant is a row, and membership of omni_viewer
    snprintf (sql, sizeof sql, "SELECT pg_has_role ('%s', 'omni_viewer', 'MEMBER')", role);
    pgtest_expect (admin, sql, "t");
    snprintf (sql, sizeof sql, "SELECT array_to_string (omni_visible_patterns ('%s'), ',')", role);
    pgtest_expect (admin, sql, "github.com/acme/%");
    char *list = access_list (access, error, sizeof error);
    assert (list && strstr (list, "ROLE") && strstr (list, role) &&
            strstr (list, "github.com/acme/%"));
    free (list);
    assert (access_revoke (access, role, "github.com/%", out, sizeof out) == -1);
    assert (strstr (out, "has no grant"));
    assert (access_revoke (access, role, "github.com/acme/%", out, sizeof out) == 0);
    assert (strstr (out, "revoked") && strstr (out, "0 grants left"));
    list = access_list (access, error, sizeof error);
    assert (list && strstr (list, "no grants"));
    free (list);
    access_destroy (&access);
    assert (!access);

    snprintf (sql, sizeof sql, "REVOKE omni_viewer FROM %s; DROP ROLE %s", role, role);
    assert (omni_pgconn_exec (admin, sql) == PGCONN_OK);
    omni_pgconn_destroy (&admin);
    pgtest_db_drop (dsn);
    free (dsn);
}
