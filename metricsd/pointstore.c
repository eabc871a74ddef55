/*  pointstore: batches of records -> points in PostgreSQL.

    Why stage: COPY is the fastest way in but cannot resolve conflicts;
    INSERT ... ON CONFLICT can, and from a staging table it is one statement
    for the whole batch. The staging table is a session temporary table
    (ON COMMIT DELETE ROWS, no WAL). Tags travel as JSON text and become
    jsonb in the INSERT, whose equality ignores key order and spacing; the
    batch is deduplicated on the jsonb key first (DISTINCT ON, last point
    wins), since ON CONFLICT cannot touch one row twice in a statement.

    Why partitions are made outside the batch transaction: CREATE TABLE ...
    PARTITION OF locks the whole points table (ACCESS EXCLUSIVE) until its
    transaction ends; inside a batch that would stall every other writer for
    the batch's duration, and two metricsd doing it could deadlock. So each
    missing partition is made in a short transaction of its own first (see
    metricsd_ensure_partition), and the batch then finds them all. A cache
    of partition bounds keeps this to a lookup per point; it is reloaded on
    reconnect and whenever PostgreSQL says a row has no partition (someone
    dropped one), which fails the batch for a retry.

    Nothing from a record ever becomes SQL text: COPY and parameters only. */
#include "pointstore.h"
#include "derive.h"
#include "log.h"
#include "pgconn.h"
#include "util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_STAGE_DDL                                                                                \
    "CREATE TEMP TABLE IF NOT EXISTS stage_points (ord int4, time timestamptz, name text, "        \
    "value float8, source text, tags text) ON COMMIT DELETE ROWS"

//  $1..$2: the range of staged points (ord) this statement applies to
#define S_INSERT_SQL                                                                               \
    "INSERT INTO points AS p (time, name, value, source, tags) "                                   \
    "SELECT DISTINCT ON (s.name, s.source, s.tags, s.time) s.time, s.name, s.value, s.source, "    \
    "s.tags FROM (SELECT ord, time, name, value, source, tags::jsonb AS tags FROM stage_points "   \
    "WHERE ord BETWEEN $1::int4 AND $2::int4) s "                                                  \
    "ORDER BY s.name, s.source, s.tags, s.time, s.ord DESC "                                       \
    "ON CONFLICT (name, source, tags, time) DO UPDATE SET value = excluded.value "                 \
    "WHERE p.value IS DISTINCT FROM excluded.value"

#define S_ENSURE_SQL                                                                               \
    "SELECT (extract (epoch FROM lo) * 1000000)::int8, (extract (epoch FROM hi) * 1000000)::int8 " \
    "FROM metricsd_ensure_partition (timestamptz 'epoch' + ($1::int8 / 1000000) * interval "       \
    "'1 second' + ($1::int8 % 1000000) * interval '1 microsecond', $2)"

#define S_PARTITIONS_SQL                                                                           \
    "SELECT (extract (epoch FROM lo) * 1000000)::int8, (extract (epoch FROM hi) * 1000000)::int8 " \
    "FROM metricsd_partitions () ORDER BY lo"

//  PostgreSQL's "no partition of relation found for row"
#define S_NO_PARTITION "23514"

typedef struct {
    int64_t time_ns;
    double value;
    size_t name, name_len, source, source_len, tags, tags_len; //  offsets into `text`
} s_point_t;

typedef struct {
    int64_t lo, hi; //  [lo, hi) in us since the epoch
} s_range_t;

struct _pointstore_t {
    pgconn_t *conn;
    char *partition_interval;
    tsschema_config_t schema;
    tsschema_state_t state;
    bool ready; //  state describes the database
    derive_t *derive;
    uint64_t skipped_counted[DERIVE_SKIP_COUNT];

    //  The points of the batch in hand
    s_point_t *points;
    size_t npoints, points_cap;
    char *text;
    size_t text_len, text_cap;
    size_t ignored, refused;
    char refused_error[256];

    //  Native mode: the partitions known to exist, sorted by lo
    s_range_t *parts;
    size_t nparts, parts_cap;

    metric_t *m_points, *m_refused, *m_partitions, *m_ignored, *m_skipped[DERIVE_SKIP_COUNT];
};

static void
s_add (metric_t *metric, uint64_t n)
{
    if (metric && n)
        metric_add (metric, n);
}

//  ---------------------------------------------------------------------------
//  Partition cache (native mode)

static int64_t
s_floor_us (int64_t ns)
{
    return ns / 1000 - (ns % 1000 < 0 ? 1 : 0);
}

//  Index of the partition holding t, or -1
static ssize_t
s_parts_find (pointstore_t *self, int64_t t)
{
    size_t lo = 0, hi = self->nparts; //  first range with lo > t
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (self->parts[mid].lo <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || t >= self->parts[lo - 1].hi)
        return -1;
    return (ssize_t) lo - 1;
}

static void
s_parts_insert (pointstore_t *self, int64_t lo, int64_t hi)
{
    if (self->nparts == self->parts_cap) {
        self->parts_cap = self->parts_cap ? self->parts_cap * 2 : 64;
        self->parts = realloc (self->parts, self->parts_cap * sizeof *self->parts);
        assert (self->parts);
    }
    size_t at = self->nparts;
    while (at > 0 && self->parts[at - 1].lo > lo)
        at--;
    memmove (&self->parts[at + 1], &self->parts[at], (self->nparts - at) * sizeof *self->parts);
    self->parts[at] = (s_range_t) {lo, hi};
    self->nparts++;
}

static int
s_parts_load (pointstore_t *self)
{
    PGresult *result = pgconn_query (self->conn, S_PARTITIONS_SQL, 0, NULL);
    if (!result)
        return -1;
    self->nparts = 0;
    for (int r = 0; r < PQntuples (result); r++)
        s_parts_insert (self, strtoll (PQgetvalue (result, r, 0), NULL, 10),
                        strtoll (PQgetvalue (result, r, 1), NULL, 10));
    PQclear (result);
    return 0;
}

typedef struct {
    pointstore_t *self;
    int64_t t, lo, hi;
} s_ensure_t;

static int
s_ensure_tx (pgconn_t *conn, void *arg)
{
    s_ensure_t *ensure = arg;
    //  A long query on points holds off the ACCESS EXCLUSIVE lock; rather
    //  than queue every writer behind us, give up and retry the batch.
    if (pgconn_exec (conn, "SET LOCAL lock_timeout = '5s'") != PGCONN_OK)
        return -1;
    char t[32];
    snprintf (t, sizeof t, "%" PRId64, ensure->t);
    const char *params[] = {t, ensure->self->partition_interval};
    PGresult *result = pgconn_query (conn, S_ENSURE_SQL, 2, params);
    if (!result)
        return -1;
    int rc = PQntuples (result) == 1 ? 0 : -1;
    if (rc == 0) {
        ensure->lo = strtoll (PQgetvalue (result, 0, 0), NULL, 10);
        ensure->hi = strtoll (PQgetvalue (result, 0, 1), NULL, 10);
    }
    PQclear (result);
    return rc;
}

//  Makes sure the partition for t (us) exists; fills *hi with its end.
static pgconn_status_t
s_partition_for (pointstore_t *self, int64_t t, int64_t *hi)
{
    ssize_t at = s_parts_find (self, t);
    if (at >= 0) {
        if (hi)
            *hi = self->parts[at].hi;
        return PGCONN_OK;
    }
    s_ensure_t ensure = {self, t, 0, 0};
    pgconn_status_t status = pgconn_transaction (self->conn, s_ensure_tx, &ensure);
    if (status != PGCONN_OK)
        return status;
    if (ensure.lo > t || t >= ensure.hi) {
        log_error ("partition.bad_bounds", "t_us=%" PRId64 " lo=%" PRId64 " hi=%" PRId64, t,
                   ensure.lo, ensure.hi);
        return PGCONN_FAILED;
    }
    s_parts_insert (self, ensure.lo, ensure.hi);
    s_add (self->m_partitions, 1);
    log_info ("partition.ready", "lo_us=%" PRId64 " hi_us=%" PRId64 " partitions=%zu", ensure.lo,
              ensure.hi, self->nparts);
    if (hi)
        *hi = ensure.hi;
    return PGCONN_OK;
}

//  The current period and the next exist before data arrives for them.
static pgconn_status_t
s_partitions_ahead (pointstore_t *self)
{
    int64_t hi;
    pgconn_status_t status = s_partition_for (self, s_floor_us (util_now_ns ()), &hi);
    return status == PGCONN_OK ? s_partition_for (self, hi, NULL) : status;
}

//  Every partition the batch needs: one lookup per point, a transaction
//  per missing partition.
static pgconn_status_t
s_partitions_for_batch (pointstore_t *self)
{
    pgconn_status_t status = s_partitions_ahead (self);
    int64_t lo = 1, hi = 0; //  the last partition used: consecutive points share it
    for (size_t i = 0; i < self->npoints && status == PGCONN_OK; i++) {
        int64_t t = s_floor_us (self->points[i].time_ns);
        if (t >= lo && t < hi)
            continue;
        status = s_partition_for (self, t, NULL);
        ssize_t at = s_parts_find (self, t);
        if (status == PGCONN_OK && at >= 0) {
            lo = self->parts[at].lo;
            hi = self->parts[at].hi;
        }
    }
    return status;
}

//  ---------------------------------------------------------------------------
//  Connection setup: schema, staging table, statement, partitions

static int
s_setup (pgconn_t *conn, void *arg)
{
    pointstore_t *self = arg;
    if (tsschema_migrate (conn, &self->schema, &self->state))
        return -1;
    self->ready = true;
    if (pgconn_exec (conn, S_STAGE_DDL) != PGCONN_OK
        || pgconn_check (conn, PQprepare (pgconn_handle (conn), "ins_points", S_INSERT_SQL, 2,
                                          NULL))
               != PGCONN_OK)
        return -1;
    if (self->state.mode == TSSCHEMA_NATIVE
        && (s_parts_load (self) || s_partitions_ahead (self) != PGCONN_OK))
        return -1;
    char text[256];
    pointstore_describe (self, text, sizeof text);
    log_info ("schema.ready", "%s", text);
    return 0;
}

pointstore_t *
pointstore_new (const pointstore_config_t *config, metrics_t *metrics, char *error,
                size_t error_size)
{
    const char *interval = config->partition_interval ? config->partition_interval : "month";
    if (!tsschema_valid_interval (interval)) {
        snprintf (error, error_size, "partition_interval: '%s' is not day, week, month or year",
                  interval);
        return NULL;
    }
    if (config->compress_after_ms < 0) {
        snprintf (error, error_size, "compress_after: must not be negative");
        return NULL;
    }
    pgconn_t *conn = pgconn_new (config->dsn, error, error_size);
    if (!conn)
        return NULL;
    pointstore_t *self = calloc (1, sizeof *self);
    assert (self);
    self->conn = conn;
    self->partition_interval = strdup (interval);
    assert (self->partition_interval);
    self->schema = (tsschema_config_t) {config->mode, self->partition_interval,
                                        config->compress_after_ms};
    self->derive = derive_new ();
    //  Under the writer's own retry backoff, so a server back up is seen
    //  at the writer's next attempt
    pgconn_set_backoff (conn, 50, 1000);
    pgconn_set_setup (conn, s_setup, self);
    if (metrics) {
        self->m_points = metrics_counter (metrics, "points_written_total",
                                          "Points written in committed batches (new or updated)",
                                          NULL);
        self->m_refused = metrics_counter (metrics, "points_refused_total",
                                           "Points PostgreSQL refused for their content (dropped)",
                                           NULL);
        self->m_partitions = metrics_counter (metrics, "partitions_ensured_total",
                                              "Partitions created or found on demand (native mode)",
                                              NULL);
        self->m_ignored = metrics_counter (metrics, "records_ignored_total",
                                           "Records of kinds without derivation rules", NULL);
        for (int r = 0; r < DERIVE_SKIP_COUNT; r++) {
            char labels[64];
            snprintf (labels, sizeof labels, "reason=\"%s\"", derive_skip_name ((derive_skip_t) r));
            self->m_skipped[r] = metrics_counter (metrics, "points_skipped_total",
                                                  "Points not made from a record, by reason",
                                                  labels);
        }
    }
    return self;
}

void
pointstore_destroy (pointstore_t **self_p)
{
    pointstore_t *self = *self_p;
    if (!self)
        return;
    pgconn_destroy (&self->conn);
    derive_destroy (&self->derive);
    free (self->partition_interval);
    free (self->points);
    free (self->text);
    free (self->parts);
    free (self);
    *self_p = NULL;
}

const char *
pointstore_display (pointstore_t *self)
{
    return pgconn_display (self->conn);
}

void
pointstore_describe (pointstore_t *self, char *text, size_t size)
{
    const tsschema_state_t *s = &self->state;
    if (!self->ready)
        snprintf (text, size, "mode=unknown");
    else if (s->mode == TSSCHEMA_NATIVE)
        snprintf (text, size, "mode=native partition_interval=%s partitions=%zu",
                  self->partition_interval, self->nparts);
    else {
        char compression[64] = "off";
        if (s->compression)
            snprintf (compression, sizeof compression, "after_%" PRId64 "ms",
                      self->schema.compress_after_ms);
        snprintf (text, size, "mode=timescaledb version=%s license=%s rollups=%s compression=%s",
                  s->version, *s->license ? s->license : "unknown",
                  s->rollups ? "continuous_aggregates" : "views", compression);
    }
}

int
pointstore_connect (pointstore_t *self)
{
    if (pgconn_ensure (self->conn) == 0)
        return 0;
    return pgconn_last_status (self->conn) == PGCONN_TRANSIENT ? 1 : -1;
}

bool
pointstore_healthy (void *self_, char *text, size_t size)
{
    pointstore_t *self = self_;
    bool ok = pgconn_ping (self->conn, 1000);
    if (ok)
        snprintf (text, size, "postgresql ok");
    else
        snprintf (text, size, "postgresql not reachable (%s)", pgconn_display (self->conn));
    return ok;
}

//  ---------------------------------------------------------------------------
//  The batch: records -> points in memory -> staging -> points table

static size_t
s_text_add (pointstore_t *self, const char *text, size_t len)
{
    if (self->text_len + len > self->text_cap) {
        self->text_cap = (self->text_len + len) * 2 + 4096;
        self->text = realloc (self->text, self->text_cap);
        assert (self->text);
    }
    size_t at = self->text_len;
    memcpy (self->text + at, text, len);
    self->text_len += len;
    return at;
}

static void
s_point (void *arg, const derive_point_t *p)
{
    pointstore_t *self = arg;
    if (self->npoints == self->points_cap) {
        self->points_cap = self->points_cap ? self->points_cap * 2 : 1024;
        self->points = realloc (self->points, self->points_cap * sizeof *self->points);
        assert (self->points);
    }
    s_point_t *point = &self->points[self->npoints++];
    point->time_ns = p->time_ns;
    point->value = p->value;
    point->name = s_text_add (self, p->name, p->name_len);
    point->name_len = p->name_len;
    point->source = s_text_add (self, p->source, p->source_len);
    point->source_len = p->source_len;
    //  Commits give four points with the same tags: store them once
    if (self->npoints > 1) {
        s_point_t *prev = point - 1;
        if (prev->tags_len == p->tags_len
            && memcmp (self->text + prev->tags, p->tags, p->tags_len) == 0) {
            point->tags = prev->tags;
            point->tags_len = prev->tags_len;
            return;
        }
    }
    point->tags = s_text_add (self, p->tags, p->tags_len);
    point->tags_len = p->tags_len;
}

static void
s_derive (pointstore_t *self, const record_t *records, size_t count)
{
    self->npoints = 0;
    self->text_len = 0;
    self->ignored = 0;
    self->refused = 0;
    for (size_t i = 0; i < count; i++)
        if (derive_record (self->derive, &records[i], s_point, self) == 0
            && !derive_wants (records[i].spec))
            self->ignored++;
}

static pgconn_status_t
s_stage (pointstore_t *self)
{
    if (pgconn_copy_begin (self->conn, "stage_points", NULL, PGCONN_COPY_BINARY))
        return pgconn_last_status (self->conn);
    for (size_t i = 0; i < self->npoints; i++) {
        const s_point_t *p = &self->points[i];
        pgconn_copy_row (self->conn, 6);
        pgconn_copy_int4 (self->conn, (int32_t) i);
        pgconn_copy_timestamptz_ns (self->conn, p->time_ns);
        pgconn_copy_text (self->conn, self->text + p->name, p->name_len);
        pgconn_copy_float8 (self->conn, p->value);
        pgconn_copy_text (self->conn, self->text + p->source, p->source_len);
        pgconn_copy_text (self->conn, self->text + p->tags, p->tags_len);
    }
    return pgconn_copy_end (self->conn);
}

static pgconn_status_t
s_insert (pointstore_t *self, size_t lo, size_t hi)
{
    char lo_text[24], hi_text[24];
    snprintf (lo_text, sizeof lo_text, "%zu", lo);
    snprintf (hi_text, sizeof hi_text, "%zu", hi);
    const char *params[] = {lo_text, hi_text};
    return pgconn_check (self->conn, PQexecPrepared (pgconn_handle (self->conn), "ins_points", 2,
                                                     params, NULL, NULL, 0));
}

typedef struct {
    pointstore_t *self;
    bool slow; //  point by point under savepoints, dropping refused points
} s_tx_t;

static int
s_batch_tx (pgconn_t *conn, void *arg)
{
    s_tx_t *tx = arg;
    pointstore_t *self = tx->self;
    pgconn_status_t status = s_stage (self);
    if (status != PGCONN_OK)
        return -1;
    if (!tx->slow)
        return s_insert (self, 0, self->npoints - 1) == PGCONN_OK ? 0 : -1;
    for (size_t i = 0; i < self->npoints; i++) {
        if (pgconn_exec (conn, "SAVEPOINT one") != PGCONN_OK)
            return -1;
        status = s_insert (self, i, i);
        if (status == PGCONN_CONTENT && strcmp (pgconn_sqlstate (conn), S_NO_PARTITION)) {
            if (!self->refused++)
                snprintf (self->refused_error, sizeof self->refused_error, "%s %s",
                          pgconn_sqlstate (conn), pgconn_error (conn));
            if (pgconn_exec (conn, "ROLLBACK TO SAVEPOINT one") != PGCONN_OK)
                return -1;
        }
        else if (status != PGCONN_OK || pgconn_exec (conn, "RELEASE SAVEPOINT one") != PGCONN_OK)
            return -1;
    }
    return 0;
}

static void
s_count_skipped (pointstore_t *self)
{
    for (int r = 0; r < DERIVE_SKIP_COUNT; r++) {
        uint64_t now = derive_skipped (self->derive, (derive_skip_t) r);
        if (now > self->skipped_counted[r]) {
            log_warn ("points.skipped", "reason=%s count=%" PRIu64,
                      derive_skip_name ((derive_skip_t) r), now - self->skipped_counted[r]);
            s_add (self->m_skipped[r], now - self->skipped_counted[r]);
            self->skipped_counted[r] = now;
        }
    }
}

static int
s_failed (pointstore_t *self, pgconn_status_t status, size_t count, char *error,
          size_t error_size)
{
    const char *sqlstate = pgconn_sqlstate (self->conn);
    snprintf (error, error_size, "postgresql: %s%s%s", sqlstate, *sqlstate ? " " : "",
              pgconn_error (self->conn));
    if (strcmp (sqlstate, S_NO_PARTITION) == 0) {
        //  A partition we knew of is gone: learn the truth, then retry
        log_warn ("partition.missing", "error=\"%s\" detail=\"reloading partitions\"",
                  pgconn_error (self->conn));
        if (s_parts_load (self))
            pgconn_reset (self->conn);
    }
    else if (status != PGCONN_TRANSIENT) {
        //  Not the server going away: a schema or statement problem an
        //  operator must see. A fresh session rebuilds the staging table
        //  and statement in case they were the problem.
        log_error ("batch.failed", "records=%zu points=%zu sqlstate=%s error=\"%s\"", count,
                   self->npoints, sqlstate, pgconn_error (self->conn));
        pgconn_reset (self->conn);
    }
    return -1;
}

int
pointstore_write (void *self_, const record_t *records, size_t count, char *error,
                  size_t error_size)
{
    pointstore_t *self = self_;
    if (pgconn_ensure (self->conn)) {
        snprintf (error, error_size, "postgresql: %s", pgconn_error (self->conn));
        return -1;
    }
    s_derive (self, records, count);
    s_count_skipped (self);
    s_add (self->m_ignored, self->ignored);
    if (self->npoints == 0)
        return 0;
    pgconn_status_t status = PGCONN_OK;
    if (self->state.mode == TSSCHEMA_NATIVE)
        status = s_partitions_for_batch (self);
    s_tx_t tx = {self, false};
    if (status == PGCONN_OK)
        status = pgconn_transaction (self->conn, s_batch_tx, &tx);
    if (status == PGCONN_CONTENT && strcmp (pgconn_sqlstate (self->conn), S_NO_PARTITION)) {
        //  Not expected (derive bounds what could be refused): find the
        //  points PostgreSQL refuses, drop them, keep the rest
        log_warn ("batch.content_refused", "points=%zu sqlstate=%s error=\"%s\" detail=\"storing "
                  "point by point\"",
                  self->npoints, pgconn_sqlstate (self->conn), pgconn_error (self->conn));
        tx.slow = true;
        self->refused = 0;
        status = pgconn_transaction (self->conn, s_batch_tx, &tx);
    }
    if (status != PGCONN_OK)
        return s_failed (self, status, count, error, error_size);
    if (self->refused) {
        log_warn ("points.refused", "count=%zu batch=%zu error=\"%s\"", self->refused,
                  self->npoints, self->refused_error);
        s_add (self->m_refused, self->refused);
    }
    s_add (self->m_points, self->npoints - self->refused);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Self-test

void
pointstore_test (bool verbose)
{
    (void) verbose;
}
