/*  pgconn: one libpq connection that comes back by itself. It connects from
    a conninfo string or URI (or from the PG* environment when empty),
    reconnects with exponential backoff after a failure, tells whether the
    server is up and runs a function inside a transaction. COPY goes through
    an encoder of its own over the connection (pg/pgcopy.h).

    Errors are sorted into two classes because writers act on them
    differently: a transient error (connection lost, server shutting down,
    out of resources, deadlock) means "retry the whole batch later"; a
    content error (SQLSTATE class 22 data exception, 23 integrity violation,
    54 program limit) means "this data is refused, whatever the retry".

    A multi-host conninfo ("host=a,b target_session_attrs=read-write") is
    libpq's own: each (re)connect takes the first server that accepts
    writes, so the writers follow a failover to a promoted standby. A
    session that meets a standby (25006) is closed so the next looks again.

    The password is never logged: omni_pgconn_display gives the conninfo with
    the password masked, for log lines.                                       */
#ifndef OMNI_PGCONN_H
#define OMNI_PGCONN_H

#include "common/metrics.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _omni_pgconn_t omni_pgconn_t;

typedef enum {
    PGCONN_OK = 0,
    PGCONN_TRANSIENT, //  server away, connection lost, deadlock: retry later
    PGCONN_CONTENT,   //  the data was refused (SQLSTATE class 22, 23, 54)
    PGCONN_FAILED,    //  anything else (SQL or schema error): a bug or an operator's problem
    PGCONN_PERMANENT  //  refused until an operator acts: no such database or role, wrong
                      //  password, no pg_hba.conf entry, permission denied (class 28, 3D000,
                      //  42501); omni_pgconn_error ends with a hint
} omni_pgconn_status_t;

//  Called after every successful (re)connect, e.g. to apply migrations and
//  prepare statements. Returning -1 closes the connection and counts as a
//  failed attempt.
typedef int (pgconn_setup_fn) (omni_pgconn_t *conn, void *arg);

//  `conninfo` is "key=value ..." or a postgresql:// URI; NULL or "" takes
//  everything from the PG* environment. Returns NULL (with `error` filled)
//  when the string cannot be parsed. Does not connect.
omni_pgconn_t *omni_pgconn_new (const char *conninfo, char *error, size_t error_size);
void omni_pgconn_destroy (omni_pgconn_t **self_p);

//  Reconnect backoff: the first retry after `min_ms`, doubling up to `max_ms`
//  (defaults 100 ms and 5 s).
void omni_pgconn_set_backoff (omni_pgconn_t *self, int64_t min_ms, int64_t max_ms);
void omni_pgconn_set_setup (omni_pgconn_t *self, pgconn_setup_fn *setup, void *arg);
//  Counts the sessions opened in `metrics`' postgres_connects_total (the
//  same series for every connection given the same `metrics`); NULL: none.
void omni_pgconn_set_metrics (omni_pgconn_t *self, omni_metrics_t *metrics);

//  When the database does not exist, create it (connected to the same
//  server's `postgres` database with the same credentials) instead of
//  reporting it as a permanent error. Off by default: a typo in a database
//  name should say so, not make a new empty database.
void omni_pgconn_set_create_database (omni_pgconn_t *self, bool create);

//  The conninfo for logs, password masked, e.g. "host=db user=omni password=***".
const char *omni_pgconn_display (omni_pgconn_t *self);

//  Makes sure the connection is up: connects now if it is down and the
//  backoff has passed. Returns 0 when up, -1 when down (omni_pgconn_error says why).
int omni_pgconn_ensure (omni_pgconn_t *self);
//  Closes the connection; the next ensure reconnects (after the backoff).
void omni_pgconn_reset (omni_pgconn_t *self);

//  Whether the connection is up; safe from any thread.
bool omni_pgconn_is_up (omni_pgconn_t *self);

//  Whether the last attempt was refused for good (PGCONN_PERMANENT), with
//  the error and its hint in `text`; safe from any thread, e.g. /health.
bool omni_pgconn_refused (omni_pgconn_t *self, char *text, size_t size);
//  Asks the server whether it accepts connections, on a fresh connection
//  attempt (PQping), so it is safe from any thread, e.g. /health. Results
//  are cached for `cache_ms`.
bool omni_pgconn_ping (omni_pgconn_t *self, int64_t cache_ms);

//  The libpq handle, NULL while down. For PQexecPrepared and friends; pass
//  their result to omni_pgconn_check.
PGconn *omni_pgconn_handle (omni_pgconn_t *self);

//  Classifies a result (NULL = the call failed), remembers the error text
//  and SQLSTATE, marks the connection down when it was lost, and clears the
//  result. Returns PGCONN_OK for PGRES_COMMAND_OK / TUPLES_OK / COPY_IN,
//  unless the server warned it stopped waiting for the synchronous standby
//  (what it committed is on the primary only): then PGCONN_TRANSIENT
//  (SQLSTATE 57014), and the session is closed.
omni_pgconn_status_t omni_pgconn_check (omni_pgconn_t *self, PGresult *result);

//  Runs one or more SQL commands (simple query protocol). No record text
//  ever goes into `sql`: values go through parameters or COPY.
omni_pgconn_status_t omni_pgconn_exec (omni_pgconn_t *self, const char *sql);
//  Runs one command with text parameters (NULL value = SQL NULL) and
//  returns its result (caller PQclears), or NULL after an error.
PGresult *omni_pgconn_query (omni_pgconn_t *self, const char *sql, int nparams,
                             const char *const *values);

//  The first value of a one-row query into `out` ("" for no row or NULL).
//  Returns -1 after an error (omni_pgconn_error says which), else 0.
int omni_pgconn_scalar (omni_pgconn_t *self, const char *sql, int nparams,
                        const char *const *params, char *out, size_t size);

//  The last error (one line, for logs), as the server wrote it (with its
//  DETAIL lines, for storing), its SQLSTATE ("" if none) and its class.
const char *omni_pgconn_error (omni_pgconn_t *self);
const char *omni_pgconn_error_detail (omni_pgconn_t *self);
const char *omni_pgconn_sqlstate (omni_pgconn_t *self);
omni_pgconn_status_t omni_pgconn_last_status (omni_pgconn_t *self);
//  Records an error found on the client's side (e.g. by pgcopy: "not
//  connected") as the last error, as if the server had said it.
void omni_pgconn_fail (omni_pgconn_t *self, omni_pgconn_status_t status, const char *sqlstate,
                       const char *text);

//  Runs `fn` between BEGIN and COMMIT; rolls back when `fn` returns
//  non-zero or the commit fails. Returns PGCONN_OK only once committed;
//  otherwise the class of the first error (PGCONN_FAILED when `fn` failed
//  without a server error).
typedef int (pgconn_tx_fn) (omni_pgconn_t *conn, void *arg);
omni_pgconn_status_t omni_pgconn_transaction (omni_pgconn_t *self, pgconn_tx_fn *fn, void *arg);

//  A statement with text parameters (NULL value = SQL NULL); `sql` NULL: none
typedef struct {
    const char *sql;
    int nparams;
    const char *const *values;
} omni_pgconn_stmt_t;

//  BEGIN, and `first` (NULL or no sql: BEGIN alone) in the same round trip
//  (libpq's pipeline mode). Returns PGCONN_OK with the transaction open and
//  `first`'s result in `*result` (caller PQclears; NULL without `first`);
//  otherwise the class of the error, the transaction rolled back.
omni_pgconn_status_t omni_pgconn_begin (omni_pgconn_t *self, const omni_pgconn_stmt_t *first,
                                        PGresult **result);
//  omni_pgconn_transaction whose BEGIN carries `first` (omni_pgconn_begin):
//  `fn` gets its result (cleared after `fn`), a round trip fewer than
//  running it first in `fn`. A failing `first` rolls back, `fn` not called.
typedef int (pgconn_tx_first_fn) (omni_pgconn_t *conn, PGresult *first, void *arg);
omni_pgconn_status_t omni_pgconn_transaction_first (omni_pgconn_t *self,
                                                    const omni_pgconn_stmt_t *first,
                                                    pgconn_tx_first_fn *fn, void *arg);
//  COMMIT of a transaction opened by hand (BEGIN through omni_pgconn_exec):
//  PGCONN_OK only when the server answered COMMIT, and without the
//  synchronous-replication warning (see omni_pgconn_check); a transaction
//  that had failed answers ROLLBACK: PGCONN_FAILED (25P02).
omni_pgconn_status_t omni_pgconn_commit (omni_pgconn_t *self);

void omni_pgconn_test (bool verbose);

#endif
