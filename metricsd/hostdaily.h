/*  hostdaily: keeps metricsd's host figures of closed days (metricsd
    schemas 7 and 8, sql/007_host_daily.sql, sql/008_host_daily_epoch.sql):
    marks the (source, day) pairs of a batch's host points in the batch's
    transaction (those it has not marked since the last refresh), and has
    the pending closed days computed from time to time.                   */
#ifndef OMNI_METRICSD_HOSTDAILY_H
#define OMNI_METRICSD_HOSTDAILY_H

#include "pg/pgconn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _hostdaily_t hostdaily_t;

hostdaily_t *hostdaily_new (void);
void hostdaily_destroy (hostdaily_t **self_p);

//  Starts the pairs of a new batch
void hostdaily_reset (hostdaily_t *self);

//  A point of the batch: its (source, UTC day) is kept when its series is
//  one of the host figures' (host.cpu.user, host.cpu.system, host.mem.used,
//  host.load.1). A caller may leave out the points of a (series, day) it
//  gave already: the pairs are a set.
void hostdaily_add (hostdaily_t *self, const char *name, size_t name_len, const char *source,
                    size_t source_len, int64_t time_ns);

//  A time's UTC day, days since 1970-01-01: what hostdaily_add keeps
int64_t hostdaily_day (int64_t time_ns);

//  The statement that marks the batch's pairs as pending, to send first in
//  the batch's transaction (before its points, see hostdaily.c), with its
//  BEGIN (omni_pgconn_transaction_first): it marks those not marked by a
//  committed batch since the last refresh. No sql when there are none.
//  Valid until the next call on `self`.
void hostdaily_first (hostdaily_t *self, omni_pgconn_stmt_t *first);
//  With that statement's `result` (NULL: none sent), in the transaction on
//  `conn`: marks every pair when a refresh moved the epoch since. OK when
//  all is marked.
omni_pgconn_status_t hostdaily_marked (hostdaily_t *self, omni_pgconn_t *conn, PGresult *result);
//  The batch's transaction committed: its marked pairs need no mark until
//  the next refresh. Call only then (a rolled back mark is gone).
void hostdaily_committed (hostdaily_t *self);

//  A new session (the database may be another): every pair is marked again
void hostdaily_forget (hostdaily_t *self);

//  Computes pending closed days on `conn` (outside any transaction) when
//  due: every minute, and while a pass leaves some over, again after 19
//  times its own time (at most a minute). `force`: now, and until none is
//  left or `budget_ms` has gone.
//  Returns the days computed, -1 on an error (logged; tried again later).
int hostdaily_refresh (hostdaily_t *self, omni_pgconn_t *conn, bool force, int64_t budget_ms);

void hostdaily_test (bool verbose);

#endif
