/*  hostdaily: metricsd's share of keeping the host figures of closed days
    (see hostdaily.h; the why and the proof of exactness are in
    sql/007_host_daily.sql and sql/008_host_daily_epoch.sql).

    Why the mark goes first in the batch's transaction: a batch of many
    points is shared over several connections (pointstore's shared COPY),
    which commit before the batch's own. The mark, made first on the
    batch's connection, holds the writers' lock and the rows of the pairs
    it marks until that last commit: a refresh waits for the lock before it
    reads the marks, and one that read an old mark waits for its row and
    then finds a new `gen`, so it never deletes the mark of points it did
    not count. The pairs are in key order (the SQL sorts them), so two
    writers wait, not deadlock.

    Why a set of the pairs marked: the batches of a backlog, or of a
    collection as it runs, hold the same (source, day) pairs again and
    again; marking them all every batch (an upsert and a new gen each) was
    most of what keeping the figures cost a host point. A pair marked by a
    committed batch of this writer stays marked until a refresh deletes
    it, and a refresh that may delete marks takes a new epoch first, which
    the next batch reads and then marks all its pairs again. Only pairs not
    in the set are marked otherwise: once per pair per epoch. The set holds
    committed marks only (a batch's pairs join it after its commit) and is
    forgotten at every new session (the database may be another).

    Why the refresh runs after batches: metricsd has no timer of its own;
    host points come every few minutes, and a day not yet computed is only
    slower to read (omni-report computes it from the points), never wrong. */
#include "metricsd/hostdaily.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Days per refresh statement (a day of one host is 2,880 points at one
//  sample per 2 minutes), how often when nothing is left over, and, while
//  days are left over, the pause after a pass in units of its own time: at
//  most 1/(1 + 19) of the writer's time goes to refreshes
#define S_REFRESH_DAYS     31
#define S_REFRESH_EVERY_MS (60 * 1000)
#define S_REFRESH_PAUSE    19
#define S_NS_PER_DAY       (INT64_C (86400) * 1000000000)
//  Pairs the set of marked ones keeps (hosts x days of a backfill); full,
//  it starts again (the pairs are then marked again, which is never wrong)
#define S_KNOWN_MAX 8192

typedef struct {
    size_t source, len; //  in the set's text
    int64_t day;        //  days since 1970-01-01 (UTC)
    uint64_t hash;
    bool fresh; //  a batch's pair not in the set of marked ones
} s_pair_t;

//  A set of pairs: a batch's (every host point looks its pair up), the
//  marked ones
typedef struct {
    s_pair_t *pairs;
    size_t npairs, cap;
    uint32_t *slots; //  index + 1 into `pairs`, 0 = empty
    size_t nslots;   //  a power of two, at least twice npairs
    omni_buf_t text;
} s_set_t;

struct _hostdaily_t {
    s_set_t batch;
    //  The pairs marked by committed batches under `epoch` (-1: none read)
    s_set_t known;
    int64_t epoch;
    //  What the batch's transaction marked: under `tx_epoch`, every pair
    //  (the epoch had moved) or the fresh ones
    bool marked, tx_all;
    int64_t tx_epoch;
    int64_t refreshed_ms; //  monotonic time of the last refresh, 0 = none
    int64_t took_ms;      //  how long it took
    bool more;            //  the last refresh left pending days
    //  hostdaily_first's parameters
    char known_text[24];
    omni_buf_t sources, days;
    const char *params[3];
};

static void
s_set_clear (s_set_t *set)
{
    set->npairs = 0;
    omni_buf_reset (&set->text);
    if (set->slots)
        memset (set->slots, 0, set->nslots * sizeof *set->slots);
}

static void
s_set_release (s_set_t *set)
{
    free (set->pairs);
    free (set->slots);
    omni_buf_release (&set->text);
}

//  FNV-1a over the source, then the day
static uint64_t
s_hash (const char *source, size_t len, int64_t day)
{
    uint64_t h = UINT64_C (14695981039346656037);
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char) source[i]) * UINT64_C (1099511628211);
    return (h ^ (uint64_t) day) * UINT64_C (1099511628211);
}

//  The slot of a pair: where it is, or the empty one it goes to
static uint32_t *
s_set_slot (s_set_t *set, const char *source, size_t len, int64_t day, uint64_t hash)
{
    for (size_t i = hash & (set->nslots - 1);; i = (i + 1) & (set->nslots - 1)) {
        uint32_t *slot = &set->slots[i];
        if (*slot == 0)
            return slot;
        const s_pair_t *k = &set->pairs[*slot - 1];
        if (k->hash == hash && k->day == day && k->len == len &&
            memcmp (set->text.data + k->source, source, len) == 0)
            return slot;
    }
}

//  Adds a pair unless there; returns it
static s_pair_t *
s_set_add (s_set_t *set, const char *source, size_t len, int64_t day, uint64_t hash)
{
    if (2 * (set->npairs + 1) > set->nslots) {
        free (set->slots);
        set->nslots = set->nslots ? 2 * set->nslots : 64;
        set->slots = calloc (set->nslots, sizeof *set->slots);
        assert (set->slots);
        for (size_t i = 0; i < set->npairs; i++) {
            const s_pair_t *p = &set->pairs[i];
            *s_set_slot (set, set->text.data + p->source, p->len, p->day, p->hash) =
                (uint32_t) (i + 1);
        }
    }
    uint32_t *slot = s_set_slot (set, source, len, day, hash);
    if (*slot == 0) {
        *omni_array_push (set->pairs, set->npairs, set->cap) =
            (s_pair_t){set->text.size, len, day, hash, false};
        omni_buf_append (&set->text, source, len);
        *slot = (uint32_t) set->npairs;
    }
    return &set->pairs[*slot - 1];
}

hostdaily_t *
hostdaily_new (void)
{
    hostdaily_t *self = calloc (1, sizeof *self);
    assert (self);
    self->epoch = -1;
    return self;
}

void
hostdaily_destroy (hostdaily_t **self_p)
{
    hostdaily_t *self = *self_p;
    if (!self)
        return;
    s_set_release (&self->batch);
    s_set_release (&self->known);
    omni_buf_release (&self->sources);
    omni_buf_release (&self->days);
    free (self);
    *self_p = NULL;
}

void
hostdaily_reset (hostdaily_t *self)
{
    s_set_clear (&self->batch);
    self->marked = false;
}

void
hostdaily_forget (hostdaily_t *self)
{
    s_set_clear (&self->known);
    self->epoch = -1;
}

static bool
s_host_name (const char *name, size_t len)
{
    static const char *names[] = {"host.cpu.user", "host.cpu.system", "host.mem.used",
                                  "host.load.1", NULL};
    for (int i = 0; names[i]; i++)
        if (strlen (names[i]) == len && memcmp (names[i], name, len) == 0)
            return true;
    return false;
}

void
hostdaily_add (hostdaily_t *self, const char *name, size_t name_len, const char *source,
               size_t source_len, int64_t time_ns)
{
    if (!s_host_name (name, name_len))
        return;
    int64_t day = hostdaily_day (time_ns);
    s_set_add (&self->batch, source, source_len, day, s_hash (source, source_len, day));
}

int64_t
hostdaily_day (int64_t time_ns)
{
    return time_ns / S_NS_PER_DAY - (time_ns % S_NS_PER_DAY < 0);
}

//  The batch's pairs (every one, or the fresh ones) as two array literals,
//  parameters: a source is data, quoted (" and the backslash escaped), never
//  SQL text
static void
s_arrays (hostdaily_t *self, bool all, omni_buf_t *sources, omni_buf_t *days)
{
    omni_buf_append_char (sources, '{');
    omni_buf_append_char (days, '{');
    bool first = true;
    for (size_t i = 0; i < self->batch.npairs; i++) {
        const s_pair_t *p = &self->batch.pairs[i];
        if (!all && !p->fresh)
            continue;
        omni_buf_append_str (sources, first ? "\"" : ",\"");
        for (size_t k = 0; k < p->len; k++) {
            char c = self->batch.text.data[p->source + k];
            if (c == '"' || c == '\\')
                omni_buf_append_char (sources, '\\');
            omni_buf_append_char (sources, c);
        }
        omni_buf_append_char (sources, '"');
        time_t t = (time_t) (p->day * 86400);
        struct tm tm;
        gmtime_r (&t, &tm);
        omni_buf_printf (days, "%s%04d-%02d-%02d", first ? "" : ",", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday);
        first = false;
    }
    omni_buf_append_char (sources, '}');
    omni_buf_append_char (days, '}');
}

void
hostdaily_first (hostdaily_t *self, omni_pgconn_stmt_t *first)
{
    self->marked = false;
    *first = (omni_pgconn_stmt_t){NULL, 0, NULL};
    if (self->batch.npairs == 0)
        return;
    for (size_t i = 0; i < self->batch.npairs; i++) {
        s_pair_t *p = &self->batch.pairs[i];
        p->fresh = self->epoch < 0 || self->known.npairs == 0 ||
                   *s_set_slot (&self->known, self->batch.text.data + p->source, p->len, p->day,
                                p->hash) == 0;
    }
    snprintf (self->known_text, sizeof self->known_text, "%" PRId64, self->epoch);
    omni_buf_reset (&self->sources);
    omni_buf_reset (&self->days);
    s_arrays (self, false, &self->sources, &self->days);
    self->params[0] = self->known_text;
    self->params[1] = self->sources.data;
    self->params[2] = self->days.data;
    *first = (omni_pgconn_stmt_t){
        "SELECT metricsd_host_daily_mark_new ($1::int8, $2::text[], $3::date[])", 3, self->params};
}

omni_pgconn_status_t
hostdaily_marked (hostdaily_t *self, omni_pgconn_t *conn, PGresult *result)
{
    self->marked = false;
    if (self->batch.npairs == 0)
        return PGCONN_OK;
    assert (result);
    self->tx_epoch = strtoll (PQgetvalue (result, 0, 0), NULL, 10);
    //  A refresh since: every pair again, with a new gen
    self->tx_all = self->tx_epoch != self->epoch;
    if (self->tx_all) {
        omni_buf_reset (&self->sources);
        omni_buf_reset (&self->days);
        s_arrays (self, true, &self->sources, &self->days);
        const char *params[] = {self->sources.data, self->days.data};
        PGresult *all = omni_pgconn_query (
            conn, "SELECT metricsd_host_daily_mark ($1::text[], $2::date[])", 2, params);
        if (!all)
            return omni_pgconn_last_status (conn);
        PQclear (all);
    }
    self->marked = true;
    return PGCONN_OK;
}

void
hostdaily_committed (hostdaily_t *self)
{
    if (!self->marked)
        return;
    if (self->tx_all) {
        s_set_clear (&self->known);
        self->epoch = self->tx_epoch;
    }
    for (size_t i = 0; i < self->batch.npairs; i++) {
        const s_pair_t *p = &self->batch.pairs[i];
        if (!self->tx_all && !p->fresh)
            continue;
        if (self->known.npairs == S_KNOWN_MAX)
            s_set_clear (&self->known);
        s_set_add (&self->known, self->batch.text.data + p->source, p->len, p->day, p->hash);
    }
    self->marked = false;
}

//  Whether a refresh is due at `now`. Days left over are computed soon, not
//  after every batch: in a backlog of closed days every batch leaves some,
//  and a pass (31 days of percentiles, up to a second) after each batch
//  would be most of the writer's time, computing again days still filling.
static bool
s_due (hostdaily_t *self, int64_t now)
{
    int64_t pause = S_REFRESH_EVERY_MS;
    if (self->more && self->took_ms * S_REFRESH_PAUSE < pause)
        pause = self->took_ms * S_REFRESH_PAUSE;
    return !self->refreshed_ms || now - self->refreshed_ms >= pause;
}

int
hostdaily_refresh (hostdaily_t *self, omni_pgconn_t *conn, bool force, int64_t budget_ms)
{
    int64_t now = omni_util_mono_ms ();
    if (!force && !s_due (self, now))
        return 0;
    int total = 0;
    char sql[80], out[32];
    snprintf (sql, sizeof sql, "SELECT metricsd_host_daily_refresh (%d)", S_REFRESH_DAYS);
    do {
        if (omni_pgconn_scalar (conn, sql, 0, NULL, out, sizeof out) != 0) {
            log_warn ("host_daily.refresh_failed", "sqlstate=%s error=\"%s\"",
                      omni_pgconn_sqlstate (conn), omni_pgconn_error (conn));
            self->refreshed_ms = omni_util_mono_ms ();
            self->took_ms = self->refreshed_ms - now;
            self->more = false;
            return -1;
        }
        int n = atoi (out);
        self->more = n == S_REFRESH_DAYS; //  -1: another metricsd's refresh runs
        total += n > 0 ? n : 0;
    } while (force && self->more && omni_util_mono_ms () - now < budget_ms);
    self->refreshed_ms = omni_util_mono_ms ();
    self->took_ms = self->refreshed_ms - now;
    if (total > 0)
        log_info ("host_daily.refreshed", "days=%d more=%s", total, self->more ? "yes" : "no");
    return total;
}

//  ---------------------------------------------------------------------------
//  Self-test: the kept figures against the same figures computed from the
//  points, after a late point and after retention.

#include "metricsd/tsschema.h"
#include "testsupport/pgtest.h"

#include <pthread.h>
#include <stdatomic.h>

//  A day's figures computed from the points, and kept, as text
#define S_LIVE_SQL                                                                                 \
    "SELECT string_agg (concat_ws (' ', source, day, samples, cpu, mem, load), ',' "               \
    "ORDER BY source, day) FROM metricsd_host_daily_compute (ARRAY (SELECT ROW (s.source, "        \
    "(p.time AT TIME ZONE 'UTC')::date, 0)::host_daily_pending FROM points_data p "                \
    "JOIN points_series s ON s.id = p.series_id GROUP BY 1))"
#define S_KEPT_SQL                                                                                 \
    "SELECT string_agg (concat_ws (' ', source, day, samples, cpu, mem, load), ',' "               \
    "ORDER BY source, day) FROM host_daily"

//  A session on the test's database
static omni_pgconn_t *
s_test_conn (const char *dsn)
{
    char error[256];
    omni_pgconn_t *conn = omni_pgconn_new (dsn, error, sizeof error);
    assert (conn && omni_pgconn_ensure (conn) == 0);
    return conn;
}

//  A batch's transaction opened as pointstore's: BEGIN with the mark, then
//  the mark of every pair if the epoch moved
static void
s_test_begin (hostdaily_t *self, omni_pgconn_t *conn)
{
    omni_pgconn_stmt_t first;
    hostdaily_first (self, &first);
    PGresult *result;
    assert (omni_pgconn_begin (conn, &first, &result) == PGCONN_OK);
    assert (hostdaily_marked (self, conn, result) == PGCONN_OK);
    PQclear (result);
}

//  A refresh on its own connection (a thread: it waits for a lock)
typedef struct {
    hostdaily_t *self;
    omni_pgconn_t *conn;
    int days;
    atomic_bool done;
} s_test_refresh_t;

static void *
s_test_refresh (void *arg)
{
    s_test_refresh_t *r = arg;
    r->days = hostdaily_refresh (r->self, r->conn, true, 10000);
    atomic_store (&r->done, true);
    return NULL;
}

//  Waits until a refresh on another connection waits for a lock (or has
//  ended without: then the test fails on what it stored)
static void
s_test_wait_refresh (omni_pgconn_t *watch, s_test_refresh_t *r)
{
    while (!atomic_load (&r->done)) {
        char *waiting = pgtest_value (watch, "SELECT count(*) FROM pg_stat_activity WHERE "
                                             "wait_event_type = 'Lock' AND query LIKE "
                                             "'%metricsd_host_daily_refresh%'");
        bool found = strcmp (waiting, "0") != 0;
        free (waiting);
        if (found)
            return;
        nanosleep (&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
}

//  A batch that commits while a refresh runs: the refresh read the day's
//  mark before the batch's points were committed and computed the day
//  without them; the batch's mark (made first, held until its commit)
//  makes the refresh wait at its DELETE and then find another gen, so the
//  day stays pending, never kept without the late points. The mark is
//  version 7's, without the writers' lock (as retention's, or a batch that
//  began after the refresh's new epoch): with it, the refresh would wait
//  for the batch before reading the marks (s_test_skipped).
static void
s_test_race (const char *dsn)
{
    omni_pgconn_t *batch = s_test_conn (dsn);
    omni_pgconn_t *other = s_test_conn (dsn);
    //  A pending closed day, whose old mark the refresh will read
    assert (omni_pgconn_exec (other, "SELECT metricsd_host_daily_mark (ARRAY['a'], "
                                     "ARRAY['2024-01-03'::date])") == PGCONN_OK);
    assert (omni_pgconn_exec (batch, "BEGIN") == PGCONN_OK);
    assert (omni_pgconn_exec (batch, "SELECT metricsd_host_daily_mark (ARRAY['a'], "
                                     "ARRAY['2024-01-03'::date])") == PGCONN_OK);
    assert (omni_pgconn_exec (batch, "INSERT INTO points_data VALUES (5, '2024-01-03 13:00Z', "
                                     "5e6)") == PGCONN_OK);
    hostdaily_t *refresher = hostdaily_new ();
    s_test_refresh_t r = {refresher, other, 0, false};
    pthread_t thread;
    assert (pthread_create (&thread, NULL, s_test_refresh, &r) == 0);
    //  The refresh waits for the batch's mark (its readiness: a lock wait)
    omni_pgconn_t *watch = s_test_conn (dsn);
    s_test_wait_refresh (watch, &r);
    assert (omni_pgconn_exec (batch, "COMMIT") == PGCONN_OK);
    pthread_join (thread, NULL);
    assert (r.days == 1);
    //  Still pending, and computed with the late point the next time
    pgtest_expect (watch, "SELECT count(*) FROM host_daily_pending WHERE day = '2024-01-03'", "1");
    assert (hostdaily_refresh (refresher, watch, true, 10000) == 1);
    char *live = pgtest_value (watch, S_LIVE_SQL);
    pgtest_expect (watch, S_KEPT_SQL, live);
    free (live);
    hostdaily_destroy (&refresher);
    omni_pgconn_destroy (&watch);
    omni_pgconn_destroy (&other);
    omni_pgconn_destroy (&batch);
}

//  One batch of one point of source "a" in a day, on `conn`: marked, then
//  the point, left open (the caller commits)
static void
s_test_open_batch (hostdaily_t *self, omni_pgconn_t *conn, const char *time, int64_t time_ns)
{
    hostdaily_reset (self);
    hostdaily_add (self, "host.cpu.user", 13, "a", 1, time_ns);
    s_test_begin (self, conn);
    const char *params[] = {time};
    PGresult *result = omni_pgconn_query (
        conn, "INSERT INTO points_data VALUES (5, $1::timestamptz, 7e6)", 1, params);
    assert (result);
    PQclear (result);
}

//  A pair marked by a committed batch is not marked again until a refresh;
//  a refresh that may delete marks waits for the batches that read the
//  epoch before its own (they hold the writers' lock), so a batch that
//  skipped its mark has its points counted: the kept day equals the one
//  computed from the points, with none pending. Without the wait the
//  refresh would delete the mark of points it did not count.
static void
s_test_skipped (hostdaily_t *self, const char *dsn)
{
    omni_pgconn_t *batch = s_test_conn (dsn);
    omni_pgconn_t *other = s_test_conn (dsn);
    omni_pgconn_t *watch = s_test_conn (dsn);
    int64_t day4 = INT64_C (1704326400) * 1000000000; //  2024-01-04
    hostdaily_forget (self);
    //  Marked (every pair: no epoch known yet), committed, then known
    s_test_open_batch (self, batch, "2024-01-04 10:00Z", day4 + INT64_C (36000) * 1000000000);
    assert (self->tx_all && self->batch.pairs[0].fresh);
    assert (omni_pgconn_exec (batch, "COMMIT") == PGCONN_OK);
    hostdaily_committed (self);
    assert (self->known.npairs == 1 && self->epoch >= 0);
    char *gen = pgtest_value (watch, "SELECT gen FROM host_daily_pending WHERE day = '2024-01-04'");
    //  Skipped: the mark keeps its gen
    s_test_open_batch (self, batch, "2024-01-04 11:00Z", day4 + INT64_C (39600) * 1000000000);
    assert (!self->tx_all && !self->batch.pairs[0].fresh);
    pgtest_expect (watch, "SELECT gen FROM host_daily_pending WHERE day = '2024-01-04'", gen);
    free (gen);
    //  A refresh now: it waits for the open batch, then counts its point
    hostdaily_t *refresher = hostdaily_new ();
    s_test_refresh_t r = {refresher, other, 0, false};
    pthread_t thread;
    assert (pthread_create (&thread, NULL, s_test_refresh, &r) == 0);
    s_test_wait_refresh (watch, &r);
    assert (omni_pgconn_exec (batch, "COMMIT") == PGCONN_OK);
    hostdaily_committed (self);
    pthread_join (thread, NULL);
    assert (r.days == 1);
    pgtest_expect (watch, "SELECT count(*) FROM host_daily_pending", "0");
    char *live = pgtest_value (watch, S_LIVE_SQL);
    pgtest_expect (watch, S_KEPT_SQL, live);
    free (live);
    //  The refresh took a new epoch: the next batch marks its pairs again
    int64_t epoch = self->epoch;
    s_test_open_batch (self, batch, "2024-01-04 12:00Z", day4 + INT64_C (43200) * 1000000000);
    assert (self->tx_all && self->tx_epoch > epoch);
    assert (omni_pgconn_exec (batch, "COMMIT") == PGCONN_OK);
    hostdaily_committed (self);
    pgtest_expect (watch, "SELECT count(*) FROM host_daily_pending WHERE day = '2024-01-04'", "1");
    assert (hostdaily_refresh (refresher, watch, true, 10000) == 1);
    live = pgtest_value (watch, S_LIVE_SQL);
    pgtest_expect (watch, S_KEPT_SQL, live);
    free (live);
    //  A batch rolled back: the next one's reset drops what it marked, so
    //  its new pair never joins the set
    s_test_open_batch (self, batch, "2024-01-05 12:00Z", day4 + INT64_C (129600) * 1000000000);
    assert (self->batch.pairs[0].fresh);
    assert (omni_pgconn_exec (batch, "ROLLBACK") == PGCONN_OK);
    hostdaily_reset (self);
    hostdaily_committed (self);
    assert (self->known.npairs == 1);
    hostdaily_destroy (&refresher);
    omni_pgconn_destroy (&watch);
    omni_pgconn_destroy (&other);
    omni_pgconn_destroy (&batch);
}

//  A batch open for longer than the refresh waits (a stalled writer): the
//  refresh gives up after 2 s, as if another ran, so that the writers
//  queued behind its wait go on; its days stay pending
static void
s_test_stalled (hostdaily_t *self, const char *dsn)
{
    omni_pgconn_t *batch = s_test_conn (dsn);
    omni_pgconn_t *other = s_test_conn (dsn);
    assert (omni_pgconn_exec (other, "SELECT metricsd_host_daily_mark (ARRAY['a'], "
                                     "ARRAY['2024-01-04'::date])") == PGCONN_OK);
    int64_t day4 = INT64_C (1704326400) * 1000000000; //  2024-01-04
    s_test_open_batch (self, batch, "2024-01-04 13:00Z", day4 + INT64_C (46800) * 1000000000);
    hostdaily_t *refresher = hostdaily_new ();
    int64_t start = omni_util_mono_ms ();
    assert (hostdaily_refresh (refresher, other, true, 10000) == 0);
    assert (omni_util_mono_ms () - start >= 2000);
    pgtest_expect (other, "SELECT count(*) FROM host_daily_pending WHERE day = '2024-01-04'", "1");
    //  Its lock_timeout was the transaction's only
    pgtest_expect (other, "SELECT current_setting ('lock_timeout')", "0");
    assert (omni_pgconn_exec (batch, "COMMIT") == PGCONN_OK);
    hostdaily_committed (self);
    assert (hostdaily_refresh (refresher, other, true, 10000) == 1);
    char *live = pgtest_value (other, S_LIVE_SQL);
    pgtest_expect (other, S_KEPT_SQL, live);
    free (live);
    hostdaily_destroy (&refresher);
    omni_pgconn_destroy (&other);
    omni_pgconn_destroy (&batch);
}

static void
s_test_batch (hostdaily_t *self, omni_pgconn_t *conn, const char *sql, const char *source,
              const char *name, int64_t time_ns)
{
    hostdaily_reset (self);
    hostdaily_add (self, name, strlen (name), source, strlen (source), time_ns);
    hostdaily_add (self, name, strlen (name), source, strlen (source), time_ns);
    assert (self->batch.npairs == 1);
    s_test_begin (self, conn);
    assert (omni_pgconn_exec (conn, sql) == PGCONN_OK);
    assert (omni_pgconn_exec (conn, "COMMIT") == PGCONN_OK);
}

void
hostdaily_test (bool verbose)
{
    (void) verbose;
    hostdaily_t *self = hostdaily_new ();
    //  Days of times before the epoch, other series left out
    hostdaily_add (self, "host.cpu.user", 13, "s", 1, -1);
    hostdaily_add (self, "git.commits", 11, "s", 1, 0);
    hostdaily_add (self, "host.load.1", 11, "s", 1, 0);
    assert (self->batch.npairs == 2 && self->batch.pairs[0].day == -1 &&
            self->batch.pairs[1].day == 0);
    //  The sets past their first tables: a batch's pair once however often
    //  it comes; the marked ones start again past S_KNOWN_MAX
    hostdaily_reset (self);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < S_KNOWN_MAX + 100; i++) {
            char source[16];
            int n = snprintf (source, sizeof source, "h%d", i / 3);
            hostdaily_add (self, "host.mem.used", 13, source, (size_t) n, S_NS_PER_DAY * (i % 3));
        }
    assert (self->batch.npairs == S_KNOWN_MAX + 100);
    for (size_t i = 0; i < self->batch.npairs; i++)
        self->batch.pairs[i].fresh = true;
    self->marked = true;
    self->tx_all = false;
    hostdaily_committed (self);
    assert (self->known.npairs == 100 && !self->marked);
    hostdaily_reset (self);
    hostdaily_forget (self);
    assert (self->known.npairs == 0 && self->epoch == -1);
    //  Due: at once the first time; every minute; while days are left over,
    //  after 19 times the last pass's time (at most a minute)
    assert (s_due (self, 5));
    self->refreshed_ms = 1000;
    self->took_ms = 100;
    assert (!s_due (self, 60999) && s_due (self, 61000));
    self->more = true;
    assert (!s_due (self, 2899) && s_due (self, 2900));
    self->took_ms = 10000;
    assert (!s_due (self, 60999) && s_due (self, 61000));
    self->took_ms = 0;
    assert (s_due (self, 1000));
    self->refreshed_ms = self->took_ms = 0;
    self->more = false;

    char *dsn = pgtest_db_new ("hostdaily");
    assert (dsn);
    omni_pgconn_t *conn = s_test_conn (dsn);
    tsschema_config_t config = {TSSCHEMA_NATIVE, "month", 0, false};
    tsschema_state_t state;
    assert (tsschema_migrate (conn, &config, &state) == 0);
    //  Two sources (one with a " and a \ in its name), two hosts of one,
    //  two days, a second memory series of a host
    assert (omni_pgconn_exec (
                conn, "SELECT metricsd_ensure_partition ('2024-01-01', 'month'); "
                      "INSERT INTO points_series (id, name, source, tags) VALUES "
                      "(1, 'host.cpu.user', 'a', '{\"host\": \"h\"}'), "
                      "(2, 'host.cpu.system', 'a', '{\"host\": \"h\"}'), "
                      "(3, 'host.mem.used', 'a', '{\"host\": \"h\"}'), "
                      "(4, 'host.mem.used', 'a', '{\"host\": \"h\", \"dev\": \"x\"}'), "
                      "(5, 'host.cpu.user', 'a', '{\"host\": \"h2\"}'), "
                      "(6, 'host.load.1', 'b\"\\', '{\"host\": \"h\"}'); "
                      "INSERT INTO points_data SELECT 1 + i % 6, '2024-01-02'::timestamptz + "
                      "(i / 6) * interval '7 minutes', (i * 37) % 101 FROM generate_series "
                      "(0, 6 * 400) i") == PGCONN_OK);
    assert (omni_pgconn_exec (conn,
                              "DELETE FROM host_daily_pending; INSERT INTO "
                              "host_daily_pending (source, day) SELECT s.source, "
                              "(p.time AT TIME ZONE 'UTC')::date FROM points_data p JOIN "
                              "points_series s ON s.id = p.series_id GROUP BY 1, 2") == PGCONN_OK);
    char *live = pgtest_value (conn, S_LIVE_SQL);
    assert (hostdaily_refresh (self, conn, true, 10000) == 4);
    pgtest_expect (conn, S_KEPT_SQL, live);
    pgtest_expect (conn, "SELECT count(*) FROM host_daily_pending", "0");
    //  Not due again yet: nothing asked
    assert (hostdaily_refresh (self, conn, false, 0) == 0);
    free (live);

    //  A late point in a closed day: marked with its batch, counted again
    s_test_batch (self, conn, "INSERT INTO points_data VALUES (5, '2024-01-02 23:59:59Z', 1e6)",
                  "a", "host.cpu.user", INT64_C (1704239999) * 1000000000);
    pgtest_expect (conn, "SELECT string_agg (source || ' ' || day, ',') FROM host_daily_pending",
                   "a 2024-01-02");
    live = pgtest_value (conn, S_LIVE_SQL);
    assert (hostdaily_refresh (self, conn, true, 10000) == 1);
    pgtest_expect (conn, S_KEPT_SQL, live);
    free (live);
    //  The escaped source
    s_test_batch (self, conn, "SELECT 1", "b\"\\", "host.load.1",
                  INT64_C (1704240000) * 1000000000);
    pgtest_expect (conn, "SELECT source || ' ' || day FROM host_daily_pending", "b\"\\ 2024-01-03");
    assert (hostdaily_refresh (self, conn, true, 10000) == 1);

    s_test_race (dsn);
    s_test_skipped (self, dsn);
    s_test_stalled (self, dsn);

    //  Retention: the days of dropped points are marked, then lose their rows
    assert (omni_pgconn_exec (conn,
                              "DELETE FROM points_data WHERE time < '2024-01-03'; "
                              "SELECT metricsd_host_daily_forget ('2024-01-03')") == PGCONN_OK);
    pgtest_expect (conn, "SELECT count(*) FROM host_daily_pending", "2");
    assert (hostdaily_refresh (self, conn, true, 10000) == 2);
    live = pgtest_value (conn, S_LIVE_SQL);
    pgtest_expect (conn, S_KEPT_SQL, live);
    pgtest_expect (conn, "SELECT min (day) FROM host_daily", "2024-01-03");
    free (live);
    //  Today is never computed: it is still open
    assert (omni_pgconn_exec (conn, "INSERT INTO host_daily_pending (source, day) VALUES ('a', "
                                    "(now () AT TIME ZONE 'UTC')::date)") == PGCONN_OK);
    assert (hostdaily_refresh (self, conn, true, 10000) == 0);
    pgtest_expect (conn, "SELECT count(*) FROM host_daily_pending", "1");

    hostdaily_destroy (&self);
    assert (!self);
    omni_pgconn_destroy (&conn);
    pgtest_db_drop (dsn);
    free (dsn);
}
