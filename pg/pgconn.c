/*  pgconn: a libpq connection that reconnects by itself (COPY: pgcopy.c).

    The conninfo is parsed once (PQconninfoParse) into keyword/value arrays
    that every connect and ping reuses; that is also what makes masking the
    password reliable, whatever the spelling (key=value or URI). We always
    ask for client_encoding UTF8 because records are UTF-8 by contract.

    Why failover needs nothing of its own here. A multi-host conninfo with
    target_session_attrs=read-write is libpq's: every (re)connect goes down
    the list to the first server that takes writes, so after a standby is
    promoted the next reconnect finds it. What this file adds is telling
    the cases apart that would otherwise look fine: a session on a server
    that refuses writes (25006, a standby) is dropped so that the next one
    looks again, and a statement the server answered with the synchronous-
    replication warning ("canceling wait for synchronous replication":
    committed on this server only, the standby never confirmed) counts as
    failed, not committed, so a writer does not acknowledge what a failover
    could lose; the stores are idempotent, so doing it again is safe.       */
#include "pg/pgconn.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "testsupport/pgtest.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct _omni_pgconn_t {
    const char **keywords, **values; //  for PQconnectdbParams and PQpingParams
    char *display;
    PGconn *conn;
    atomic_bool up;
    int64_t backoff_min_ms, backoff_max_ms, backoff_ms, next_attempt_ms;
    bool logged_down;
    pgconn_setup_fn *setup;
    void *setup_arg;
    omni_metric_t *m_connects; //  omni_pgconn_set_metrics
    //  The server warned that it stopped waiting for the synchronous
    //  standby: what it committed meanwhile is not confirmed (s_notice)
    bool unconfirmed;
    char error[1024];  //  one line, for logs
    char detail[4096]; //  as the server wrote it
    char sqlstate[6];
    bool create_database; //  omni_pgconn_set_create_database
    //  The last permanent refusal, for /health from another thread
    pthread_mutex_t refused_lock;
    char refused[768];
    omni_pgconn_status_t last_status;
    atomic_llong ping_at_ms;
    atomic_bool ping_ok;
};

//  ---------------------------------------------------------------------------
//  Construction

//  Every statement we send is ours, so notices (e.g. "table exists,
//  skipping") are noise in the daemon's log, but one WARNING matters: the
//  one syncrep.c sends when a commit stops waiting for the synchronous
//  standby (cancelled: a statement_timeout, pg_cancel_backend) and returns
//  anyway. Told by the source file, which is not translated.
static void
s_notice (void *arg, const PGresult *result)
{
    omni_pgconn_t *self = arg;
    const char *severity = PQresultErrorField (result, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *file = PQresultErrorField (result, PG_DIAG_SOURCE_FILE);
    if (severity && file && strcmp (severity, "WARNING") == 0 && strcmp (file, "syncrep.c") == 0)
        self->unconfirmed = true;
}

static char *
s_strdup (const char *text)
{
    char *copy = strdup (text ? text : "");
    assert (copy);
    return copy;
}

static bool
s_is_secret (const char *keyword)
{
    return strstr (keyword, "password") != NULL;
}

static void
s_display_add (omni_buf_t *display, const char *key, const char *value)
{
    omni_buf_printf (display, "%s%s=%s", display->size ? " " : "", key, value);
}

omni_pgconn_t *
omni_pgconn_new (const char *conninfo, char *error, size_t error_size)
{
    char *errmsg = NULL;
    PQconninfoOption *options = PQconninfoParse (conninfo ? conninfo : "", &errmsg);
    if (!options) {
        snprintf (error, error_size, "bad conninfo: %s", errmsg ? errmsg : "out of memory");
        //  The message never quotes the string, so it cannot leak a password
        size_t n = strlen (error);
        while (n && (error[n - 1] == '\n' || error[n - 1] == ' '))
            error[--n] = 0;
        PQfreemem (errmsg);
        return NULL;
    }
    omni_pgconn_t *self = calloc (1, sizeof *self);
    assert (self);
    size_t count = 0;
    for (PQconninfoOption *o = options; o->keyword; o++)
        count++;
    self->keywords = calloc (count + 4, sizeof (char *));
    self->values = calloc (count + 4, sizeof (char *));
    assert (self->keywords && self->values);
    size_t n = 0;
    bool has_timeout = getenv ("PGCONNECT_TIMEOUT") != NULL;
    for (PQconninfoOption *o = options; o->keyword; o++) {
        if (!o->val || strcmp (o->keyword, "client_encoding") == 0)
            continue;
        has_timeout |= strcmp (o->keyword, "connect_timeout") == 0;
        self->keywords[n] = s_strdup (o->keyword);
        self->values[n++] = s_strdup (o->val);
    }
    self->keywords[n] = s_strdup ("client_encoding");
    self->values[n++] = s_strdup ("UTF8");
    self->keywords[n] = s_strdup ("fallback_application_name");
    self->values[n++] = s_strdup ("omniaudit");
    if (!has_timeout) {
        //  A server that drops packets must not hold the writer for minutes
        self->keywords[n] = s_strdup ("connect_timeout");
        self->values[n++] = s_strdup ("5");
    }
    PQconninfoFree (options);

    //  What we connect to, for logs: the explicit options, then the
    //  defaults (environment) for the address, never a password's value.
    omni_buf_t display = {0};
    static const char *shown[] = {
        "host", "hostaddr", "port", "dbname", "user", "target_session_attrs", NULL};
    PQconninfoOption *defaults = PQconndefaults ();
    for (int i = 0; shown[i]; i++) {
        const char *value = NULL;
        for (size_t k = 0; k < n; k++)
            if (strcmp (self->keywords[k], shown[i]) == 0)
                value = self->values[k];
        for (PQconninfoOption *o = defaults; !value && o && o->keyword; o++)
            if (strcmp (o->keyword, shown[i]) == 0)
                value = o->val;
        //  libpq's default, "any", says nothing about a failover setup
        if (value && strcmp (shown[i], "target_session_attrs") == 0 && strcmp (value, "any") == 0)
            value = NULL;
        if (value)
            s_display_add (&display, shown[i], value);
    }
    for (size_t k = 0; k < n; k++)
        if (s_is_secret (self->keywords[k]))
            s_display_add (&display, self->keywords[k], "***");
    PQconninfoFree (defaults);
    self->display = omni_buf_detach (&display);

    self->backoff_min_ms = 100;
    self->backoff_max_ms = 5000;
    self->backoff_ms = self->backoff_min_ms;
    atomic_init (&self->up, false);
    pthread_mutex_init (&self->refused_lock, NULL);
    atomic_init (&self->ping_at_ms, 0);
    atomic_init (&self->ping_ok, false);
    return self;
}

void
omni_pgconn_destroy (omni_pgconn_t **self_p)
{
    omni_pgconn_t *self = *self_p;
    if (!self)
        return;
    if (self->conn)
        PQfinish (self->conn);
    for (size_t i = 0; self->keywords[i]; i++) {
        free ((char *) self->keywords[i]);
        free ((char *) self->values[i]);
    }
    free (self->keywords);
    free (self->values);
    free (self->display);
    pthread_mutex_destroy (&self->refused_lock);
    free (self);
    *self_p = NULL;
}

void
omni_pgconn_set_backoff (omni_pgconn_t *self, int64_t min_ms, int64_t max_ms)
{
    self->backoff_min_ms = min_ms > 0 ? min_ms : 1;
    self->backoff_max_ms = max_ms >= self->backoff_min_ms ? max_ms : self->backoff_min_ms;
    self->backoff_ms = self->backoff_min_ms;
}

void
omni_pgconn_set_create_database (omni_pgconn_t *self, bool create)
{
    self->create_database = create;
}

void
omni_pgconn_set_metrics (omni_pgconn_t *self, omni_metrics_t *metrics)
{
    if (metrics)
        self->m_connects = omni_metrics_counter (
            metrics, "postgres_connects_total",
            "PostgreSQL sessions opened: the first, then one per reconnect (server restarted, "
            "connection lost, failover to a promoted standby)",
            NULL);
}

void
omni_pgconn_set_setup (omni_pgconn_t *self, pgconn_setup_fn *setup, void *arg)
{
    self->setup = setup;
    self->setup_arg = arg;
}

const char *
omni_pgconn_display (omni_pgconn_t *self)
{
    return self->display;
}

//  ---------------------------------------------------------------------------
//  Connection state

static void
s_set_error (omni_pgconn_t *self, omni_pgconn_status_t status, const char *sqlstate,
             const char *text)
{
    self->last_status = status;
    if (status == PGCONN_PERMANENT || status == PGCONN_OK) {
        pthread_mutex_lock (&self->refused_lock);
        snprintf (self->refused, sizeof self->refused, "%s",
                  status == PGCONN_PERMANENT && text ? text : "");
        pthread_mutex_unlock (&self->refused_lock);
    }
    snprintf (self->sqlstate, sizeof self->sqlstate, "%s", sqlstate ? sqlstate : "");
    snprintf (self->error, sizeof self->error, "%s", text ? text : "");
    snprintf (self->detail, sizeof self->detail, "%s", text ? text : "");
    size_t d = strlen (self->detail);
    while (d && (self->detail[d - 1] == '\n' || self->detail[d - 1] == ' '))
        self->detail[--d] = 0;
    //  libpq messages end with a newline and may span lines; logs want one
    for (char *p = self->error; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t' || *p == '"')
            *p = *p == '"' ? '\'' : ' ';
    size_t n = strlen (self->error);
    while (n && self->error[n - 1] == ' ')
        self->error[--n] = 0;
}

static void
s_mark_down (omni_pgconn_t *self)
{
    if (self->conn) {
        PQfinish (self->conn);
        self->conn = NULL;
    }
    atomic_store (&self->up, false);
    self->next_attempt_ms = omni_util_mono_ms () + self->backoff_ms;
    self->backoff_ms =
        self->backoff_ms * 2 > self->backoff_max_ms ? self->backoff_max_ms : self->backoff_ms * 2;
    if (!self->logged_down) {
        if (self->last_status == PGCONN_PERMANENT)
            log_error ("pg.refused",
                       "conninfo=\"%s\" sqlstate=%s error=\"%s\" detail=\"permanent: retried "
                       "every %lld ms until an operator fixes it\"",
                       self->display, self->sqlstate, self->error,
                       (long long) self->backoff_max_ms);
        else
            log_warn ("pg.down", "conninfo=\"%s\" error=\"%s\"", self->display, self->error);
        self->logged_down = true;
    }
}

void
omni_pgconn_reset (omni_pgconn_t *self)
{
    if (self->conn) {
        PQfinish (self->conn);
        self->conn = NULL;
    }
    atomic_store (&self->up, false);
}

//  A connection refused for a reason that will not pass by itself. libpq
//  gives no SQLSTATE for a failed connection, only the server's message
//  (FATAL text, English unless the server's lc_messages says otherwise) or
//  its own: matched here, and told apart from a server that is away.
typedef struct {
    const char *match, *also; //  both in the message (`also` may be NULL)
    const char *sqlstate;
    const char *hint;
} s_refusal_t;

static const s_refusal_t s_refusals[] = {
    {"database \"", "does not exist", "3D000",
     "create the database (createdb NAME), fix dbname in the dsn, or set create_database: true"},
    {"role \"", "does not exist", "28000", "create the role or fix the user in the dsn"},
    {"password authentication failed", NULL, "28P01",
     "check the password: the dsn, PGPASSWORD or ~/.pgpass"},
    {"no password supplied", NULL, "28P01",
     "the server wants a password: put it in the dsn, PGPASSWORD or ~/.pgpass"},
    {"no pg_hba.conf entry", NULL, "28000",
     "allow this host, user and database in the server's pg_hba.conf and reload it"},
    {"authentication failed", NULL, "28000", "check the user and its credentials in the dsn"},
    {"permission denied for database", NULL, "42501",
     "GRANT CONNECT ON DATABASE to the writer's role"},
    {NULL, NULL, NULL, NULL}};

static const s_refusal_t *
s_connect_refusal (const char *message)
{
    for (const s_refusal_t *r = s_refusals; r->match; r++)
        if (strstr (message, r->match) && (!r->also || strstr (message, r->also)))
            return r;
    return NULL;
}

static bool
s_missing_database (const char *message)
{
    return strstr (message, "database \"") && strstr (message, "does not exist");
}

//  libpq's messages end with a newline; logs and /health want one line.
static const char *
s_trim (const char *message)
{
    static __thread char line[512];
    snprintf (line, sizeof line, "%s", message);
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t len = strlen (line);
    while (len && line[len - 1] == ' ')
        line[--len] = 0;
    return line;
}

//  CREATE DATABASE on the same server, through its maintenance database,
//  with the same credentials. Returns 0 when it exists now.
static int
s_create_database (omni_pgconn_t *self)
{
    size_t n = 0;
    while (self->keywords[n])
        n++;
    const char **values = calloc (n + 1, sizeof *values);
    const char *dbname = NULL;
    for (size_t i = 0; i < n; i++) {
        values[i] = self->values[i];
        if (strcmp (self->keywords[i], "dbname") == 0) {
            dbname = self->values[i];
            values[i] = "postgres";
        }
    }
    int rc = -1;
    if (dbname && *dbname) {
        PGconn *admin = PQconnectdbParams (self->keywords, values, 0);
        if (PQstatus (admin) == CONNECTION_OK) {
            char *quoted = PQescapeIdentifier (admin, dbname, strlen (dbname));
            char sql[600];
            snprintf (sql, sizeof sql, "CREATE DATABASE %s", quoted ? quoted : "\"\"");
            PQfreemem (quoted);
            PGresult *result = PQexec (admin, sql);
            const char *state = PQresultErrorField (result, PG_DIAG_SQLSTATE);
            //  42P04: created meanwhile by someone else, as good
            if (PQresultStatus (result) == PGRES_COMMAND_OK ||
                (state && !strcmp (state, "42P04"))) {
                log_info ("pg.database_created", "dbname=%s conninfo=\"%s\"", dbname,
                          self->display);
                rc = 0;
            } else
                log_error ("pg.create_database_failed",
                           "dbname=%s error=\"%s\" hint=\"create it by hand, or give the "
                           "writer's role CREATEDB\"",
                           dbname, s_trim (PQresultErrorMessage (result)));
            PQclear (result);
        } else
            log_error ("pg.create_database_failed", "dbname=%s error=\"%s\"", dbname,
                       s_trim (PQerrorMessage (admin)));
        PQfinish (admin);
    }
    free (values);
    return rc;
}

int
omni_pgconn_ensure (omni_pgconn_t *self)
{
    if (self->conn && PQstatus (self->conn) == CONNECTION_OK)
        return 0;
    if (self->conn) {
        s_set_error (self, PGCONN_TRANSIENT, "08006", PQerrorMessage (self->conn));
        s_mark_down (self);
    }
    int64_t now = omni_util_mono_ms ();
    if (now < self->next_attempt_ms) {
        if (!*self->error)
            s_set_error (self, PGCONN_TRANSIENT, "08006", "reconnecting");
        return -1;
    }
    self->conn = PQconnectdbParams (self->keywords, self->values, 0);
    if (self->conn && PQstatus (self->conn) != CONNECTION_OK && self->create_database &&
        s_missing_database (PQerrorMessage (self->conn)) && s_create_database (self) == 0) {
        PQfinish (self->conn);
        self->conn = PQconnectdbParams (self->keywords, self->values, 0);
    }
    if (!self->conn || PQstatus (self->conn) != CONNECTION_OK) {
        const char *message = self->conn ? PQerrorMessage (self->conn) : "out of memory";
        const s_refusal_t *refusal = s_connect_refusal (message);
        if (refusal) {
            char text[768];
            snprintf (text, sizeof text, "%s (hint: %s)", s_trim (message), refusal->hint);
            s_set_error (self, PGCONN_PERMANENT, refusal->sqlstate, text);
        } else
            s_set_error (self, PGCONN_TRANSIENT, "08006", message);
        s_mark_down (self);
        return -1;
    }
    PQsetNoticeReceiver (self->conn, s_notice, self);
    self->unconfirmed = false;
    atomic_store (&self->up, true);
    if (self->setup && self->setup (self, self->setup_arg) != 0) {
        if (self->last_status == PGCONN_OK)
            s_set_error (self, PGCONN_FAILED, "", "connection setup failed");
        //  The server going away meanwhile (a failover) is no setup bug
        if (self->last_status == PGCONN_TRANSIENT)
            log_warn ("pg.setup_failed", "conninfo=\"%s\" error=\"%s\"", self->display,
                      self->error);
        else
            log_error ("pg.setup_failed", "conninfo=\"%s\" error=\"%s\"", self->display,
                       self->error);
        s_mark_down (self);
        return -1;
    }
    //  The server it is, of several in a multi-host conninfo
    log_info ("pg.connected", "conninfo=\"%s\" server=%s:%s server_version=%d", self->display,
              PQhost (self->conn), PQport (self->conn), PQserverVersion (self->conn));
    if (self->m_connects)
        omni_metric_add (self->m_connects, 1);
    self->logged_down = false;
    self->backoff_ms = self->backoff_min_ms;
    s_set_error (self, PGCONN_OK, "", "");
    return 0;
}

bool
omni_pgconn_is_up (omni_pgconn_t *self)
{
    return atomic_load (&self->up);
}

bool
omni_pgconn_refused (omni_pgconn_t *self, char *text, size_t size)
{
    pthread_mutex_lock (&self->refused_lock);
    bool refused = *self->refused != 0;
    if (refused)
        snprintf (text, size, "%s", self->refused);
    pthread_mutex_unlock (&self->refused_lock);
    return refused;
}

bool
omni_pgconn_ping (omni_pgconn_t *self, int64_t cache_ms)
{
    int64_t now = omni_util_mono_ms ();
    long long at = atomic_load (&self->ping_at_ms);
    if (at && now - at < cache_ms)
        return atomic_load (&self->ping_ok);
    bool ok = PQpingParams (self->keywords, self->values, 0) == PQPING_OK;
    atomic_store (&self->ping_ok, ok);
    atomic_store (&self->ping_at_ms, (long long) omni_util_mono_ms ());
    return ok;
}

PGconn *
omni_pgconn_handle (omni_pgconn_t *self)
{
    return self->conn && atomic_load (&self->up) ? self->conn : NULL;
}

static omni_pgconn_status_t
s_classify (const char *sqlstate)
{
    if (!sqlstate || strlen (sqlstate) != 5)
        return PGCONN_FAILED;
    static const char *transient[] = {"08", "53", "57", "58", "40", NULL};
    static const char *content[] = {"22", "23", "54", NULL};
    //  lock_not_available; read_only_sql_transaction: a standby (or a
    //  primary that was demoted), the next session may find the primary
    if (strcmp (sqlstate, "55P03") == 0 || strcmp (sqlstate, "25006") == 0)
        return PGCONN_TRANSIENT;
    //  insufficient_privilege, invalid_catalog_name, class 28 (authorization)
    if (strcmp (sqlstate, "42501") == 0 || strcmp (sqlstate, "3D000") == 0 ||
        strncmp (sqlstate, "28", 2) == 0)
        return PGCONN_PERMANENT;
    for (int i = 0; transient[i]; i++)
        if (strncmp (sqlstate, transient[i], 2) == 0)
            return PGCONN_TRANSIENT;
    for (int i = 0; content[i]; i++)
        if (strncmp (sqlstate, content[i], 2) == 0)
            return PGCONN_CONTENT;
    return PGCONN_FAILED;
}

//  After a result the server gave as done: whether it came with the
//  synchronous-replication warning. Then what it committed is on this
//  server only; a failover now would lose it, so it counts as a failure
//  (transient: the caller tries again, on a new session), and the session
//  ends, since what the caller cached from it may not survive either.
static bool
s_unconfirmed (omni_pgconn_t *self)
{
    if (!self->unconfirmed)
        return false;
    self->unconfirmed = false;
    s_set_error (self, PGCONN_TRANSIENT, "57014",
                 "the server stopped waiting for the synchronous standby: committed on the "
                 "primary only, so counted as not committed");
    log_warn ("pg.unconfirmed", "conninfo=\"%s\" error=\"%s\"", self->display, self->error);
    s_mark_down (self);
    return true;
}

omni_pgconn_status_t
omni_pgconn_check (omni_pgconn_t *self, PGresult *result)
{
    ExecStatusType status = result ? PQresultStatus (result) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_COPY_IN ||
        status == PGRES_EMPTY_QUERY) {
        PQclear (result);
        if (s_unconfirmed (self))
            return PGCONN_TRANSIENT;
        self->last_status = PGCONN_OK;
        return PGCONN_OK;
    }
    self->unconfirmed = false; //  a failure already
    if (!self->conn || PQstatus (self->conn) != CONNECTION_OK) {
        s_set_error (self, PGCONN_TRANSIENT, "08006",
                     self->conn ? PQerrorMessage (self->conn) : "not connected");
        PQclear (result);
        s_mark_down (self);
        return PGCONN_TRANSIENT;
    }
    const char *sqlstate = result ? PQresultErrorField (result, PG_DIAG_SQLSTATE) : NULL;
    const char *message = result ? PQresultErrorMessage (result) : PQerrorMessage (self->conn);
    s_set_error (self, s_classify (sqlstate), sqlstate, message);
    PQclear (result);
    //  A server that is shutting down (57P01..) closes the session next; on
    //  one that refuses writes, only a new session can find the primary
    if (self->last_status == PGCONN_TRANSIENT &&
        (strncmp (self->sqlstate, "57P", 3) == 0 || strcmp (self->sqlstate, "25006") == 0))
        s_mark_down (self);
    return self->last_status;
}

omni_pgconn_status_t
omni_pgconn_exec (omni_pgconn_t *self, const char *sql)
{
    if (!omni_pgconn_handle (self)) {
        s_set_error (self, PGCONN_TRANSIENT, "08003", "not connected");
        return PGCONN_TRANSIENT;
    }
    return omni_pgconn_check (self, PQexec (self->conn, sql));
}

int
omni_pgconn_scalar (omni_pgconn_t *self, const char *sql, int nparams, const char *const *params,
                    char *out, size_t size)
{
    PGresult *result = omni_pgconn_query (self, sql, nparams, params);
    if (!result)
        return -1;
    snprintf (out, size, "%s",
              PQntuples (result) > 0 && !PQgetisnull (result, 0, 0) ? PQgetvalue (result, 0, 0)
                                                                    : "");
    PQclear (result);
    return 0;
}

PGresult *
omni_pgconn_query (omni_pgconn_t *self, const char *sql, int nparams, const char *const *values)
{
    if (!omni_pgconn_handle (self)) {
        s_set_error (self, PGCONN_TRANSIENT, "08003", "not connected");
        return NULL;
    }
    PGresult *result = PQexecParams (self->conn, sql, nparams, NULL, values, NULL, NULL, 0);
    ExecStatusType status = result ? PQresultStatus (result) : PGRES_FATAL_ERROR;
    if ((status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) && !self->unconfirmed) {
        self->last_status = PGCONN_OK;
        return result;
    }
    omni_pgconn_check (self, result);
    return NULL;
}

const char *
omni_pgconn_error (omni_pgconn_t *self)
{
    return self->error;
}

const char *
omni_pgconn_error_detail (omni_pgconn_t *self)
{
    return self->detail;
}

const char *
omni_pgconn_sqlstate (omni_pgconn_t *self)
{
    return self->sqlstate;
}

omni_pgconn_status_t
omni_pgconn_last_status (omni_pgconn_t *self)
{
    return self->last_status;
}

void
omni_pgconn_fail (omni_pgconn_t *self, omni_pgconn_status_t status, const char *sqlstate,
                  const char *text)
{
    s_set_error (self, status, sqlstate, text);
}

//  After a failure inside a transaction: ROLLBACK, keeping the first error
//  (the rollback's own result is not news)
static void
s_rollback (omni_pgconn_t *self)
{
    omni_pgconn_status_t status = self->last_status;
    char error[sizeof self->error], detail[sizeof self->detail];
    char sqlstate[sizeof self->sqlstate];
    memcpy (error, self->error, sizeof error);
    memcpy (detail, self->detail, sizeof detail);
    memcpy (sqlstate, self->sqlstate, sizeof sqlstate);
    if (omni_pgconn_handle (self))
        omni_pgconn_exec (self, "ROLLBACK");
    memcpy (self->error, error, sizeof error);
    memcpy (self->detail, detail, sizeof detail);
    memcpy (self->sqlstate, sqlstate, sizeof sqlstate);
    self->last_status = status;
}

//  The next result of a pipeline and the NULL that ends it; NULL when there
//  is none (the connection failed)
static PGresult *
s_pipeline_result (PGconn *conn)
{
    PGresult *result = PQgetResult (conn);
    if (result) {
        PGresult *extra;
        while ((extra = PQgetResult (conn)) != NULL)
            PQclear (extra);
    }
    return result;
}

//  Why a pipeline: a batch of a writer is a few statements, and on a local
//  server each one's round trip (two context switches, a wake-up of the
//  backend) costs about what the server spends on a small statement. BEGIN
//  alone is one such round trip that carries nothing, so it goes with the
//  transaction's first statement. Both are sent, then one Sync: a failing
//  BEGIN aborts the statement (PGRES_PIPELINE_ABORTED); a failing statement
//  leaves the transaction aborted, rolled back here as in a transaction.
static omni_pgconn_status_t
s_begin_pipeline (omni_pgconn_t *self, const omni_pgconn_stmt_t *first, PGresult **result)
{
    PGconn *conn = self->conn;
    if (!PQenterPipelineMode (conn))
        return omni_pgconn_check (self, NULL);
    PGresult *begin = NULL, *stmt = NULL, *sync = NULL;
    bool sent =
        PQsendQueryParams (conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
        PQsendQueryParams (conn, first->sql, first->nparams, NULL, first->values, NULL, NULL, 0) &&
        PQpipelineSync (conn);
    if (sent && (begin = s_pipeline_result (conn)) != NULL &&
        (stmt = s_pipeline_result (conn)) != NULL)
        sync = PQgetResult (conn);
    bool synced = sync && PQresultStatus (sync) == PGRES_PIPELINE_SYNC;
    PQclear (sync);
    if (!synced || !PQexitPipelineMode (conn)) {
        //  Sent or read in part: the session's state is unknown, a new one
        //  starts clean
        PQclear (begin);
        PQclear (stmt);
        s_set_error (self, PGCONN_TRANSIENT, "08006", PQerrorMessage (conn));
        s_mark_down (self);
        return PGCONN_TRANSIENT;
    }
    omni_pgconn_status_t status = omni_pgconn_check (self, begin);
    if (status != PGCONN_OK) {
        PQclear (stmt);
        if (omni_pgconn_handle (self) && PQtransactionStatus (self->conn) != PQTRANS_IDLE)
            s_rollback (self);
        return status;
    }
    ExecStatusType done = PQresultStatus (stmt);
    if ((done == PGRES_TUPLES_OK || done == PGRES_COMMAND_OK) && !self->unconfirmed) {
        *result = stmt;
        return PGCONN_OK;
    }
    status = omni_pgconn_check (self, stmt);
    s_rollback (self);
    return status;
}

omni_pgconn_status_t
omni_pgconn_begin (omni_pgconn_t *self, const omni_pgconn_stmt_t *first, PGresult **result)
{
    *result = NULL;
    if (!omni_pgconn_handle (self)) {
        s_set_error (self, PGCONN_TRANSIENT, "08003", "not connected");
        return PGCONN_TRANSIENT;
    }
    if (!first || !first->sql)
        return omni_pgconn_exec (self, "BEGIN");
    return s_begin_pipeline (self, first, result);
}

typedef struct {
    pgconn_tx_fn *fn;
    void *arg;
} s_plain_t;

static int
s_plain (omni_pgconn_t *conn, PGresult *first, void *arg)
{
    (void) first;
    s_plain_t *plain = arg;
    return plain->fn (conn, plain->arg);
}

omni_pgconn_status_t
omni_pgconn_transaction (omni_pgconn_t *self, pgconn_tx_fn *fn, void *arg)
{
    s_plain_t plain = {fn, arg};
    return omni_pgconn_transaction_first (self, NULL, s_plain, &plain);
}

omni_pgconn_status_t
omni_pgconn_transaction_first (omni_pgconn_t *self, const omni_pgconn_stmt_t *first,
                               pgconn_tx_first_fn *fn, void *arg)
{
    if (omni_pgconn_ensure (self))
        return PGCONN_TRANSIENT;
    PGresult *result;
    omni_pgconn_status_t status = omni_pgconn_begin (self, first, &result);
    if (status != PGCONN_OK)
        return status;
    self->last_status = PGCONN_OK;
    int rc = fn (self, result, arg);
    PQclear (result);
    if (rc != 0) {
        status = self->last_status != PGCONN_OK ? self->last_status : PGCONN_FAILED;
        if (status == PGCONN_FAILED && !*self->error)
            s_set_error (self, PGCONN_FAILED, "", "transaction function failed");
        self->last_status = status;
        s_rollback (self);
        return status;
    }
    return omni_pgconn_commit (self);
}

omni_pgconn_status_t
omni_pgconn_commit (omni_pgconn_t *self)
{
    if (!omni_pgconn_handle (self)) {
        s_set_error (self, PGCONN_TRANSIENT, "08003", "not connected");
        return PGCONN_TRANSIENT;
    }
    PGresult *result = PQexec (self->conn, "COMMIT");
    //  COMMIT of a transaction that already failed answers "ROLLBACK"
    bool rolled_back = result && PQresultStatus (result) == PGRES_COMMAND_OK &&
                       strcmp (PQcmdStatus (result), "COMMIT") != 0;
    omni_pgconn_status_t status = omni_pgconn_check (self, result);
    if (status == PGCONN_OK && rolled_back) {
        s_set_error (self, PGCONN_FAILED, "25P02", "transaction was rolled back");
        status = PGCONN_FAILED;
    }
    return status;
}

//  ---------------------------------------------------------------------------
//  Self-test, against a real server in a database of its own

typedef struct {
    int calls;
    bool fail;
} s_test_arg_t;

static int
s_test_setup (omni_pgconn_t *conn, void *arg)
{
    s_test_arg_t *self = arg;
    self->calls++;
    return omni_pgconn_exec (conn, "SET TIME ZONE 'UTC'") == PGCONN_OK && !self->fail ? 0 : -1;
}

static int
s_test_tx_insert (omni_pgconn_t *conn, void *arg)
{
    (void) arg;
    return omni_pgconn_exec (conn, "INSERT INTO t_tx VALUES (1)") == PGCONN_OK ? 0 : -1;
}

static int
s_test_tx_fail (omni_pgconn_t *conn, void *arg)
{
    (void) arg;
    omni_pgconn_exec (conn, "INSERT INTO t_tx VALUES (2)");
    return omni_pgconn_exec (conn, "SELECT 1/0") == PGCONN_OK ? 0 : -1;
}

static int
s_test_tx_swallow (omni_pgconn_t *conn, void *arg)
{
    (void) arg;
    omni_pgconn_exec (conn, "INSERT INTO t_tx VALUES (3)");
    omni_pgconn_exec (conn, "SELECT 1/0");
    return 0; //  pretends all went well: the commit must still refuse
}

typedef struct {
    int calls;
    char value[16];
    bool fail;
} s_test_first_t;

static int
s_test_tx_first (omni_pgconn_t *conn, PGresult *first, void *arg)
{
    s_test_first_t *self = arg;
    self->calls++;
    if (first)
        snprintf (self->value, sizeof self->value, "%s", PQgetvalue (first, 0, 0));
    if (self->fail)
        return omni_pgconn_exec (conn, "SELECT 1/0") == PGCONN_OK ? 0 : -1;
    return 0;
}

void
omni_pgconn_test (bool verbose)
{
    if (!verbose)
        omni_log_init ("pgconn-test", "error", "kv");
    //  Parsing and masking need no server
    char error[256];
    assert (omni_pgconn_new ("host=x 'unterminated", error, sizeof error) == NULL);
    assert (strstr (error, "bad conninfo"));
    omni_pgconn_t *conn = omni_pgconn_new (
        "host=db.example port=6543 user=omni password=s3cret dbname=a", error, sizeof error);
    assert (conn);
    assert (!strstr (omni_pgconn_display (conn), "s3cret"));
    assert (strstr (omni_pgconn_display (conn), "password=***"));
    assert (strstr (omni_pgconn_display (conn), "host=db.example"));
    assert (!strstr (omni_pgconn_display (conn), "target_session_attrs"));
    omni_pgconn_destroy (&conn);
    assert (conn == NULL);
    conn = omni_pgconn_new ("postgresql://omni:hunter2@db.example:6543/audit", error, sizeof error);
    assert (conn);
    assert (!strstr (omni_pgconn_display (conn), "hunter2"));
    assert (strstr (omni_pgconn_display (conn), "dbname=audit"));
    omni_pgconn_destroy (&conn);

    //  A server that is not there: down, backoff, no ping
    conn = omni_pgconn_new ("host=127.0.0.1 port=1 connect_timeout=2", error, sizeof error);
    omni_pgconn_set_backoff (conn, 50, 200);
    assert (omni_pgconn_ensure (conn) == -1);
    assert (!omni_pgconn_is_up (conn));
    assert (omni_pgconn_last_status (conn) == PGCONN_TRANSIENT);
    assert (omni_pgconn_ensure (conn) == -1); //  within the backoff: no attempt
    assert (strlen (omni_pgconn_error (conn)) > 0);
    assert (!omni_pgconn_ping (conn, 0));
    assert (omni_pgconn_exec (conn, "SELECT 1") == PGCONN_TRANSIENT);
    omni_pgconn_destroy (&conn);

    char *dsn = pgtest_db_new ("pgconn");
    if (!dsn) {
        selftest_skip ("no PostgreSQL server ($OMNI_TEST_PG_DSN, else 127.0.0.1:5432)");
    }
    conn = omni_pgconn_new (dsn, error, sizeof error);
    assert (conn);
    s_test_arg_t arg = {0, false};
    omni_pgconn_set_setup (conn, s_test_setup, &arg);
    omni_pgconn_set_backoff (conn, 10, 50);
    assert (omni_pgconn_ensure (conn) == 0);
    assert (omni_pgconn_is_up (conn) && arg.calls == 1);
    assert (omni_pgconn_ping (conn, 1000));
    pgtest_expect (conn, "SHOW client_encoding", "UTF8");
    pgtest_expect (conn, "SHOW TIME ZONE", "UTC");

    //  Parameters carry hostile text verbatim
    const char *params[] = {"'); DROP TABLE x; --", NULL};
    PGresult *result = omni_pgconn_query (conn, "SELECT $1::text, $2::text IS NULL", 2, params);
    assert (result && strcmp (PQgetvalue (result, 0, 0), params[0]) == 0);
    assert (strcmp (PQgetvalue (result, 0, 1), "t") == 0);
    PQclear (result);

    //  Error classes
    assert (omni_pgconn_exec (conn, "SELECT 1/0") == PGCONN_CONTENT);
    assert (strcmp (omni_pgconn_sqlstate (conn), "22012") == 0);
    assert (omni_pgconn_exec (conn, "SELEKT") == PGCONN_FAILED);
    assert (strstr (omni_pgconn_error (conn), "syntax"));
    assert (omni_pgconn_exec (conn, "CREATE TABLE t_tx (n int PRIMARY KEY)") == PGCONN_OK);
    assert (omni_pgconn_exec (conn, "INSERT INTO t_tx VALUES (0); INSERT INTO t_tx VALUES (0)") ==
            PGCONN_CONTENT);
    assert (strcmp (omni_pgconn_sqlstate (conn), "23505") == 0);

    //  A multi-host conninfo whose first server is not there: the second,
    //  which takes writes, is the one connected (and counted). A session
    //  that refuses writes (as a standby does: 25006) is transient and
    //  closed, so the next session can find the primary.
    {
        PGconn *h = omni_pgconn_handle (conn);
        char multi[1024];
        int used = snprintf (multi, sizeof multi,
                             "host=127.0.0.1,%s port=1,%s dbname=%s user=%s "
                             "target_session_attrs=read-write",
                             PQhost (h), PQport (h), PQdb (h), PQuser (h));
        if (PQpass (h) && *PQpass (h))
            snprintf (multi + used, sizeof multi - (size_t) used, " password=%s", PQpass (h));
        omni_pgconn_t *both = omni_pgconn_new (multi, error, sizeof error);
        assert (both);
        assert (strstr (omni_pgconn_display (both), "port=1,"));
        assert (strstr (omni_pgconn_display (both), "target_session_attrs=read-write"));
        omni_metrics_t *metrics = omni_metrics_new ("t_");
        omni_pgconn_set_metrics (both, metrics);
        omni_metric_t *connects =
            omni_metrics_counter (metrics, "postgres_connects_total", "", NULL);
        omni_pgconn_set_backoff (both, 10, 50);
        assert (omni_pgconn_ensure (both) == 0);
        assert (strcmp (PQport (omni_pgconn_handle (both)), PQport (h)) == 0);
        assert (omni_metric_value (connects) == 1);
        assert (omni_pgconn_exec (both, "SET default_transaction_read_only = on") == PGCONN_OK);
        assert (omni_pgconn_exec (both, "CREATE TABLE t_ro (n int)") == PGCONN_TRANSIENT);
        assert (strcmp (omni_pgconn_sqlstate (both), "25006") == 0);
        assert (!omni_pgconn_is_up (both));
        int64_t until = omni_util_mono_ms () + 5000;
        while (omni_pgconn_ensure (both) != 0 && omni_util_mono_ms () < until)
            usleep (10000);
        assert (omni_pgconn_exec (both, "CREATE TABLE t_ro (n int)") == PGCONN_OK);
        assert (omni_metric_value (connects) == 2);
        omni_pgconn_destroy (&both);
        omni_metrics_destroy (&metrics);
    }

    //  Transactions: committed, rolled back on failure, and a swallowed
    //  error still cannot commit
    assert (omni_pgconn_transaction (conn, s_test_tx_insert, NULL) == PGCONN_OK);
    assert (omni_pgconn_transaction (conn, s_test_tx_fail, NULL) == PGCONN_CONTENT);
    assert (strcmp (omni_pgconn_sqlstate (conn), "22012") == 0);
    assert (omni_pgconn_transaction (conn, s_test_tx_swallow, NULL) != PGCONN_OK);
    pgtest_expect (conn, "SELECT string_agg (n::text, ',' ORDER BY n) FROM t_tx", "1");

    //  A first statement sent with the BEGIN: its result goes to the
    //  function, inside the transaction; failing, it rolls back without
    //  calling the function; the function failing rolls back the first
    const char *four[] = {"4"};
    omni_pgconn_stmt_t first = {"INSERT INTO t_tx VALUES ($1::int) RETURNING n * 10", 1, four};
    s_test_first_t seen = {0, "", false};
    assert (omni_pgconn_transaction_first (conn, &first, s_test_tx_first, &seen) == PGCONN_OK);
    assert (seen.calls == 1 && strcmp (seen.value, "40") == 0);
    assert (omni_pgconn_transaction_first (conn, &first, s_test_tx_first, &seen) == PGCONN_CONTENT);
    assert (strcmp (omni_pgconn_sqlstate (conn), "23505") == 0 && seen.calls == 1);
    assert (PQtransactionStatus (omni_pgconn_handle (conn)) == PQTRANS_IDLE);
    const char *five[] = {"5"};
    first.values = five;
    seen.fail = true;
    assert (omni_pgconn_transaction_first (conn, &first, s_test_tx_first, &seen) == PGCONN_CONTENT);
    assert (strcmp (omni_pgconn_sqlstate (conn), "22012") == 0 && seen.calls == 2);
    first.sql = "SELEKT";
    assert (omni_pgconn_transaction_first (conn, &first, s_test_tx_first, &seen) == PGCONN_FAILED);
    assert (strstr (omni_pgconn_error (conn), "syntax") && seen.calls == 2);
    //  Without a first statement: BEGIN alone, as omni_pgconn_transaction
    assert (omni_pgconn_transaction_first (conn, NULL, s_test_tx_first, &seen) != PGCONN_OK);
    assert (seen.calls == 3);
    seen.fail = false;
    //  Left open by omni_pgconn_begin, then committed by hand
    first = (omni_pgconn_stmt_t){"INSERT INTO t_tx VALUES ($1::int)", 1, five};
    assert (omni_pgconn_begin (conn, &first, &result) == PGCONN_OK && result);
    PQclear (result);
    assert (PQtransactionStatus (omni_pgconn_handle (conn)) == PQTRANS_INTRANS);
    assert (omni_pgconn_commit (conn) == PGCONN_OK);
    pgtest_expect (conn, "SELECT string_agg (n::text, ',' ORDER BY n) FROM t_tx", "1,4,5");

    //  The server ends our session: transient, then a reconnect (which runs
    //  the setup again)
    pgtest_end_session (conn, dsn);
    first = (omni_pgconn_stmt_t){"SELECT 1", 0, NULL};
    assert (omni_pgconn_transaction_first (conn, &first, s_test_tx_first, &seen) ==
            PGCONN_TRANSIENT);
    assert (!omni_pgconn_is_up (conn) && seen.calls == 3);
    assert (omni_pgconn_exec (conn, "SELECT 1") == PGCONN_TRANSIENT);
    assert (!omni_pgconn_is_up (conn));
    int64_t deadline = omni_util_mono_ms () + 5000;
    while (omni_pgconn_ensure (conn) != 0 && omni_util_mono_ms () < deadline)
        usleep (10000);
    assert (omni_pgconn_is_up (conn) && arg.calls == 2);
    assert (omni_pgconn_exec (conn, "SELECT 1") == PGCONN_OK);

    //  A failing setup keeps the connection down
    omni_pgconn_reset (conn);
    arg.fail = true;
    usleep (60000);
    assert (omni_pgconn_ensure (conn) == -1 && !omni_pgconn_is_up (conn));
    arg.fail = false;
    deadline = omni_util_mono_ms () + 5000;
    while (omni_pgconn_ensure (conn) != 0 && omni_util_mono_ms () < deadline)
        usleep (10000);
    assert (omni_pgconn_is_up (conn));

    omni_pgconn_destroy (&conn);
    pgtest_db_drop (dsn);
    //  Dropped: a new connection to it fails
    conn = omni_pgconn_new (dsn, error, sizeof error);
    assert (omni_pgconn_ensure (conn) == -1);
    omni_pgconn_destroy (&conn);
    free (dsn);
}
