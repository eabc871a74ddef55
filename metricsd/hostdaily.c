/*  hostdaily: metricsd's share of keeping the host figures of closed days
    (see hostdaily.h; the why and the proof of exactness are in
    sql/007_host_daily.sql).

    Why the mark goes first in the batch's transaction: a batch of many
    points is shared over several connections (pointstore's shared COPY),
    which commit before the batch's own. The mark, made first on the
    batch's connection, holds its row until that last commit: a refresh
    that read the old mark waits for it there and then finds a new `gen`,
    so it never deletes the mark of points it did not count. The pairs are
    in key order (the SQL sorts them), so two writers wait, not deadlock.

    Why the refresh runs after batches: metricsd has no timer of its own;
    host points come every few minutes, and a day not yet computed is only
    slower to read (omni-report computes it from the points), never wrong. */
#include "metricsd/hostdaily.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Days per refresh statement (a day of one host is 2,880 points at one
//  sample per 2 minutes), and how often when nothing is left over
#define S_REFRESH_DAYS     31
#define S_REFRESH_EVERY_MS (60 * 1000)
#define S_NS_PER_DAY       (INT64_C (86400) * 1000000000)

typedef struct {
    size_t source, len; //  in `text`
    int64_t day;        //  days since 1970-01-01 (UTC)
} s_pair_t;

struct _hostdaily_t {
    s_pair_t *pairs;
    size_t npairs, cap;
    omni_buf_t text;      //  the pairs' sources
    int64_t refreshed_ms; //  monotonic time of the last refresh, 0 = none
    bool more;            //  the last refresh left pending days
};

hostdaily_t *
hostdaily_new (void)
{
    hostdaily_t *self = calloc (1, sizeof *self);
    assert (self);
    return self;
}

void
hostdaily_destroy (hostdaily_t **self_p)
{
    hostdaily_t *self = *self_p;
    if (!self)
        return;
    free (self->pairs);
    omni_buf_release (&self->text);
    free (self);
    *self_p = NULL;
}

void
hostdaily_reset (hostdaily_t *self)
{
    self->npairs = 0;
    omni_buf_reset (&self->text);
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
    int64_t day = time_ns / S_NS_PER_DAY - (time_ns % S_NS_PER_DAY < 0);
    //  A batch holds the points of a few hosts: the pairs are few
    for (size_t i = self->npairs; i-- > 0;) {
        s_pair_t *p = &self->pairs[i];
        if (p->day == day && p->len == source_len &&
            memcmp (self->text.data + p->source, source, source_len) == 0)
            return;
    }
    *omni_array_push (self->pairs, self->npairs, self->cap) =
        (s_pair_t){self->text.size, source_len, day};
    omni_buf_append (&self->text, source, source_len);
}

omni_pgconn_status_t
hostdaily_mark (hostdaily_t *self, omni_pgconn_t *conn)
{
    if (self->npairs == 0)
        return PGCONN_OK;
    //  Array literals as parameters: a source is data, quoted (" and the
    //  backslash escaped), never SQL text
    omni_buf_t sources = {0}, days = {0};
    omni_buf_append_char (&sources, '{');
    omni_buf_append_char (&days, '{');
    for (size_t i = 0; i < self->npairs; i++) {
        const s_pair_t *p = &self->pairs[i];
        omni_buf_append_str (&sources, i ? ",\"" : "\"");
        for (size_t k = 0; k < p->len; k++) {
            char c = self->text.data[p->source + k];
            if (c == '"' || c == '\\')
                omni_buf_append_char (&sources, '\\');
            omni_buf_append_char (&sources, c);
        }
        omni_buf_append_char (&sources, '"');
        time_t t = (time_t) (p->day * 86400);
        struct tm tm;
        gmtime_r (&t, &tm);
        omni_buf_printf (&days, "%s%04d-%02d-%02d", i ? "," : "", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday);
    }
    omni_buf_append_char (&sources, '}');
    omni_buf_append_char (&days, '}');
    const char *params[] = {sources.data, days.data};
    PGresult *result = omni_pgconn_query (
        conn, "SELECT metricsd_host_daily_mark ($1::text[], $2::date[])", 2, params);
    omni_buf_release (&sources);
    omni_buf_release (&days);
    if (!result)
        return omni_pgconn_last_status (conn);
    PQclear (result);
    return PGCONN_OK;
}

int
hostdaily_refresh (hostdaily_t *self, omni_pgconn_t *conn, bool force, int64_t budget_ms)
{
    int64_t now = omni_util_mono_ms ();
    if (!force && !self->more && self->refreshed_ms &&
        now - self->refreshed_ms < S_REFRESH_EVERY_MS)
        return 0;
    int total = 0;
    char sql[80], out[32];
    snprintf (sql, sizeof sql, "SELECT metricsd_host_daily_refresh (%d)", S_REFRESH_DAYS);
    do {
        if (omni_pgconn_scalar (conn, sql, 0, NULL, out, sizeof out) != 0) {
            log_warn ("host_daily.refresh_failed", "sqlstate=%s error=\"%s\"",
                      omni_pgconn_sqlstate (conn), omni_pgconn_error (conn));
            self->refreshed_ms = omni_util_mono_ms ();
            self->more = false;
            return -1;
        }
        int n = atoi (out);
        self->more = n == S_REFRESH_DAYS; //  -1: another metricsd's refresh runs
        total += n > 0 ? n : 0;
    } while (force && self->more && omni_util_mono_ms () - now < budget_ms);
    self->refreshed_ms = omni_util_mono_ms ();
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

//  A day's figures computed from the points, and kept, as text
#define S_LIVE_SQL                                                                                 \
    "SELECT string_agg (concat_ws (' ', source, day, samples, cpu, mem, load), ',' "               \
    "ORDER BY source, day) FROM metricsd_host_daily_compute (ARRAY (SELECT ROW (s.source, "        \
    "(p.time AT TIME ZONE 'UTC')::date, 0)::host_daily_pending FROM points_data p "                \
    "JOIN points_series s ON s.id = p.series_id GROUP BY 1))"
#define S_KEPT_SQL                                                                                 \
    "SELECT string_agg (concat_ws (' ', source, day, samples, cpu, mem, load), ',' "               \
    "ORDER BY source, day) FROM host_daily"

//  A refresh on its own connection (a thread: it waits for a lock)
typedef struct {
    hostdaily_t *self;
    omni_pgconn_t *conn;
    int days;
} s_test_refresh_t;

static void *
s_test_refresh (void *arg)
{
    s_test_refresh_t *r = arg;
    r->days = hostdaily_refresh (r->self, r->conn, true, 10000);
    return NULL;
}

//  A batch that commits while a refresh runs: the refresh read the day's
//  mark before the batch's points were committed and computed the day
//  without them; the batch's mark (made first, held until its commit)
//  makes the refresh wait at its DELETE and then find another gen, so the
//  day stays pending, never kept without the late points.
static void
s_test_race (hostdaily_t *self, const char *dsn)
{
    char error[256];
    omni_pgconn_t *batch = omni_pgconn_new (dsn, error, sizeof error);
    omni_pgconn_t *other = omni_pgconn_new (dsn, error, sizeof error);
    assert (batch && omni_pgconn_ensure (batch) == 0);
    assert (other && omni_pgconn_ensure (other) == 0);
    //  A pending closed day, whose old mark the refresh will read
    assert (omni_pgconn_exec (other, "SELECT metricsd_host_daily_mark (ARRAY['a'], "
                                     "ARRAY['2024-01-03'::date])") == PGCONN_OK);
    hostdaily_reset (self);
    hostdaily_add (self, "host.cpu.user", 13, "a", 1, INT64_C (1704286800) * 1000000000);
    assert (omni_pgconn_exec (batch, "BEGIN") == PGCONN_OK);
    assert (hostdaily_mark (self, batch) == PGCONN_OK);
    assert (omni_pgconn_exec (batch, "INSERT INTO points_data VALUES (5, '2024-01-03 13:00Z', "
                                     "5e6)") == PGCONN_OK);
    hostdaily_t *refresher = hostdaily_new ();
    s_test_refresh_t r = {refresher, other, 0};
    pthread_t thread;
    assert (pthread_create (&thread, NULL, s_test_refresh, &r) == 0);
    //  The refresh waits for the batch's mark (its readiness: a lock wait)
    omni_pgconn_t *watch = omni_pgconn_new (dsn, error, sizeof error);
    assert (watch && omni_pgconn_ensure (watch) == 0);
    for (;;) {
        char *waiting = pgtest_value (watch, "SELECT count(*) FROM pg_stat_activity WHERE "
                                             "wait_event_type = 'Lock' AND query LIKE "
                                             "'%metricsd_host_daily_refresh%'");
        bool found = strcmp (waiting, "0") != 0;
        free (waiting);
        if (found)
            break;
        nanosleep (&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
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

static void
s_test_batch (hostdaily_t *self, omni_pgconn_t *conn, const char *sql, const char *source,
              const char *name, int64_t time_ns)
{
    hostdaily_reset (self);
    hostdaily_add (self, name, strlen (name), source, strlen (source), time_ns);
    hostdaily_add (self, name, strlen (name), source, strlen (source), time_ns);
    assert (self->npairs == 1);
    assert (omni_pgconn_exec (conn, "BEGIN") == PGCONN_OK);
    assert (hostdaily_mark (self, conn) == PGCONN_OK);
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
    assert (self->npairs == 2 && self->pairs[0].day == -1 && self->pairs[1].day == 0);

    char *dsn = pgtest_db_new ("hostdaily");
    assert (dsn);
    char error[256];
    omni_pgconn_t *conn = omni_pgconn_new (dsn, error, sizeof error);
    assert (conn && omni_pgconn_ensure (conn) == 0);
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

    s_test_race (self, dsn);

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
