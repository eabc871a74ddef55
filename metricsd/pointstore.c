/*  pointstore: batches of records -> points in PostgreSQL.

    Why series: a point's identity is its series (name, source, tags) and
    its time. Stored whole in every point, that identity made two wide
    indexes PostgreSQL maintained per point, most of its work. A series is
    now a row of points_series, made once, and a point a 24-byte row of
    points_data keyed by (series_id, time). The ids of the series seen are
    cached here, so a batch of known series is one COPY; new series are
    resolved first, in a short transaction of their own (INSERT ... ON
    CONFLICT DO NOTHING, then read back), so an id in the cache is always
    committed whatever becomes of the batch. The cache is bounded (events
    carry a sha or build_id in their tags: those series are seldom seen
    twice) and emptied at every new session (the database may be another).

    Why the direct COPY, then staging: COPY is the fastest way in but
    cannot resolve conflicts. Most batches hold only new points, so the
    batch is first copied straight into points_data under a savepoint; a
    point that exists fails it on the unique key, and only then is the batch
    staged in a session temporary table (ON COMMIT DELETE ROWS, no WAL) and
    upserted by one INSERT ... SELECT ... ON CONFLICT (series_id, time), so a
    redelivered batch or a re-collected history never doubles a point (the
    last value delivered wins; the batch is deduplicated first, since ON
    CONFLICT cannot touch one row twice in a statement).

    Why the points go in key order: a batch interleaves its series, so in
    delivery order every point lands on another leaf of the (series_id,
    time) index. Grouped by series id and by time within each (a stable
    counting sort, s_order), they go along the index: PostgreSQL spends
    about 30 % less CPU on a batch of new points and the index is a
    fifth smaller. Only the order sent changes; a staged point's `ord`
    stays its place in delivery, so the last delivered still wins.

    Why partitions are made outside the batch transaction: CREATE TABLE ...
    PARTITION OF locks the whole points_data table (ACCESS EXCLUSIVE) until
    its transaction ends; inside a batch that would stall every other writer
    for the batch's duration, and two metricsd doing it could deadlock. So
    each missing partition is made in a short transaction of its own first
    (see metricsd_ensure_partition), and the batch then finds them all. A
    cache of partition bounds keeps this to a lookup per point; it is
    reloaded on reconnect and whenever PostgreSQL says a row has no
    partition (someone dropped one), which fails the batch for a retry.

    Nothing from a record ever becomes SQL text: COPY and parameters only. */
#include "metricsd/pointstore.h"
#include "common/buf.h"
#include "metricsd/derive.h"
#include "metricsd/hostdaily.h"
#include "common/log.h"
#include "pg/pgconn.h"
#include "pg/pgcopy.h"
#include "pg/pgwriter.h"
#include "common/util.h"
#include "client/writer.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_STAGE_DDL                                                                                \
    "CREATE TEMP TABLE IF NOT EXISTS stage_points (ord int4, series_id int8, time timestamptz, "   \
    "value float8) ON COMMIT DELETE ROWS; "                                                        \
    "CREATE TEMP TABLE IF NOT EXISTS stage_series (ord int4, name text, source text, tags text) "  \
    "ON COMMIT DELETE ROWS"

//  $1..$2: the range of staged points (ord) this statement applies to
#define S_INSERT_SQL                                                                               \
    "INSERT INTO points_data AS p (series_id, time, value) "                                       \
    "SELECT DISTINCT ON (s.series_id, s.time) s.series_id, s.time, s.value FROM stage_points s "   \
    "WHERE s.ord BETWEEN $1::int4 AND $2::int4 ORDER BY s.series_id, s.time, s.ord DESC "          \
    "ON CONFLICT (series_id, time) DO UPDATE SET value = excluded.value "                          \
    "WHERE p.value IS DISTINCT FROM excluded.value"

//  New series, $1..$2 a range of staged ones (ord). In key order, so two
//  metricsd making overlapping sets wait for each other, never deadlock.
//  Tags are cast here: a document PostgreSQL refuses fails its own series
//  (see the slow way), not the whole COPY.
#define S_SERIES_INSERT_SQL                                                                        \
    "INSERT INTO points_series (name, source, tags) SELECT DISTINCT name, source, tags::jsonb "    \
    "FROM stage_series WHERE ord BETWEEN $1::int4 AND $2::int4 ORDER BY 1, 2, 3 "                  \
    "ON CONFLICT (name, source, tags) DO NOTHING"
//  Every staged series' id, whoever made it
#define S_SERIES_SELECT_SQL                                                                        \
    "SELECT st.ord, s.id FROM stage_series st JOIN points_series s ON s.name = st.name "           \
    "AND s.source = st.source AND s.tags = st.tags::jsonb"

#define S_ENSURE_SQL                                                                               \
    "SELECT (extract (epoch FROM lo) * 1000000)::int8, (extract (epoch FROM hi) * 1000000)::int8 " \
    "FROM metricsd_ensure_partition (timestamptz 'epoch' + ($1::int8 / 1000000) * interval "       \
    "'1 second' + ($1::int8 % 1000000) * interval '1 microsecond', $2)"

#define S_PARTITIONS_SQL                                                                           \
    "SELECT (extract (epoch FROM lo) * 1000000)::int8, (extract (epoch FROM hi) * 1000000)::int8 " \
    "FROM metricsd_partitions () ORDER BY lo"

//  PostgreSQL's "no partition of relation found for row"
#define S_NO_PARTITION     "23514"
#define S_UNIQUE_VIOLATION "23505"
//  After a batch that met existing points, the next ones go straight to
//  the upsert (a re-collection sends many such batches in a row)
#define S_UPSERTS_AHEAD 16
//  Series ids cached at most (then the cache starts again empty): about
//  200 bytes each; the slots are a power of two over twice that
#define S_SERIES_MAX   100000
#define S_SERIES_SLOTS (1u << 18)
//  Store connections at most, and the fewest points worth sharing out
#define S_CONNECTIONS_MAX 8
#define S_SHARE_MIN       1000

typedef struct {
    int64_t time_ns;
    double value;
    size_t name, name_len, source, source_len, tags, tags_len; //  offsets into `text`
    uint32_t series;                                           //  index into the series cache
} s_point_t;

//  A cached series: its key (name, source and tags text, each length-
//  prefixed) in `keys`, and its id (0 until resolved)
typedef struct {
    uint64_t hash;
    int64_t id; //  -1: PostgreSQL refused the series (its tags)
    size_t key, key_len;
    uint64_t stamp;   //  the last batch that listed it as pending
    uint64_t grouped; //  the last batch s_order gave it a group in
    uint32_t group;   //  its group in that batch
} s_series_t;

typedef struct {
    int64_t lo, hi; //  [lo, hi) in us since the epoch
} s_range_t;

//  A series of the batch in hand (s_order)
typedef struct {
    int64_t id;
    uint32_t series; //  index into the series cache
    uint32_t first;  //  the group's place in delivery order
} s_group_t;

struct _pointstore_t {
    omni_pgconn_t *conn;
    //  The other connections of a shared COPY (connections - 1 of them)
    omni_pgconn_t *extra[S_CONNECTIONS_MAX - 1];
    int nextra;
    //  A COPY encoder per connection: conn's first, then the extras'
    omni_pgcopy_t *copy[S_CONNECTIONS_MAX];
    char *partition_interval;
    tsschema_config_t schema;
    tsschema_state_t state;
    bool ready; //  state describes the database
    //  A permanent problem the schema check found (tsschema_state_t.problem),
    //  read by /health from the HTTP thread
    pthread_mutex_t problem_lock;
    char problem[sizeof ((tsschema_state_t *) 0)->problem];
    derive_t *derive;
    uint64_t skipped_counted[DERIVE_SKIP_COUNT];

    //  The points of the batch in hand
    s_point_t *points;
    size_t npoints, points_cap;
    //  The points in key order (series id, time), as indices into
    //  `points`: the order they are sent in (s_order)
    uint32_t *order;
    size_t order_cap;
    //  s_order's groups: each one's series, then its first place in `order`
    s_group_t *groups;
    uint32_t *starts;
    size_t groups_cap, starts_cap;
    omni_buf_t text; //  the points' name, source and tags
    size_t ignored, refused;
    char refused_error[256];
    int upserts_ahead; //  batches to upsert before trying the direct COPY again

    //  Series ids (open addressing: slot = index + 1, 0 = empty), and the
    //  series of the batch in hand that are not resolved yet
    s_series_t *series;
    size_t nseries;
    uint32_t *slots;
    omni_buf_t keys;
    uint32_t *pending;
    size_t npending, pending_cap;
    uint64_t stamp;      //  batches looked up
    uint64_t generation; //  times the cache was emptied

    //  Native mode: the partitions known to exist, sorted by lo
    s_range_t *parts;
    size_t nparts, parts_cap;

    omni_metric_t *m_points, *m_refused, *m_partitions, *m_ignored, *m_skipped[DERIVE_SKIP_COUNT],
        *m_copied, *m_upserted, *m_dropped, *m_expired, *m_series;
    int64_t retain_ms;
    int64_t retention_done_ms; //  monotonic time of the last retention pass, 0 = none yet
    //  The host figures of closed days (schema 7): the batch's marks, the refresh
    hostdaily_t *hostdaily;
};

static void
s_add (omni_metric_t *metric, uint64_t n)
{
    if (metric && n)
        omni_metric_add (metric, n);
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
    omni_array_reserve (self->parts, self->parts_cap, self->nparts + 1);
    size_t at = self->nparts;
    while (at > 0 && self->parts[at - 1].lo > lo)
        at--;
    memmove (&self->parts[at + 1], &self->parts[at], (self->nparts - at) * sizeof *self->parts);
    self->parts[at] = (s_range_t){lo, hi};
    self->nparts++;
}

static int
s_parts_load (pointstore_t *self)
{
    PGresult *result = omni_pgconn_query (self->conn, S_PARTITIONS_SQL, 0, NULL);
    if (!result)
        return -1;
    self->nparts = 0;
    for (int r = 0; r < PQntuples (result); r++)
        s_parts_insert (self, strtoll (PQgetvalue (result, r, 0), NULL, 10),
                        strtoll (PQgetvalue (result, r, 1), NULL, 10));
    PQclear (result);
    return 0;
}

//  us since the epoch -> "1990-03-01T00:00:00Z", for logs
static const char *
s_iso (int64_t us, char text[32])
{
    int64_t seconds = us / 1000000 - (us % 1000000 < 0 ? 1 : 0);
    time_t t = (time_t) seconds;
    struct tm tm;
    gmtime_r (&t, &tm);
    strftime (text, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

typedef struct {
    pointstore_t *self;
    int64_t t, lo, hi;
} s_ensure_t;

static int
s_ensure_tx (omni_pgconn_t *conn, void *arg)
{
    s_ensure_t *ensure = arg;
    //  A long query on points holds off the ACCESS EXCLUSIVE lock; rather
    //  than queue every writer behind us, give up and retry the batch.
    if (omni_pgconn_exec (conn, "SET LOCAL lock_timeout = '5s'") != PGCONN_OK)
        return -1;
    char t[32];
    snprintf (t, sizeof t, "%" PRId64, ensure->t);
    const char *params[] = {t, ensure->self->partition_interval};
    PGresult *result = omni_pgconn_query (conn, S_ENSURE_SQL, 2, params);
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
static omni_pgconn_status_t
s_partition_for (pointstore_t *self, int64_t t, int64_t *hi)
{
    ssize_t at = s_parts_find (self, t);
    if (at >= 0) {
        if (hi)
            *hi = self->parts[at].hi;
        return PGCONN_OK;
    }
    s_ensure_t ensure = {self, t, 0, 0};
    omni_pgconn_status_t status = omni_pgconn_transaction (self->conn, s_ensure_tx, &ensure);
    if (status != PGCONN_OK)
        return status;
    if (ensure.lo > t || t >= ensure.hi) {
        log_error ("partition.bad_bounds", "t_us=%" PRId64 " lo=%" PRId64 " hi=%" PRId64, t,
                   ensure.lo, ensure.hi);
        return PGCONN_FAILED;
    }
    s_parts_insert (self, ensure.lo, ensure.hi);
    s_add (self->m_partitions, 1);
    char from[32], to[32];
    log_info ("partition.ready", "from=%s to=%s partitions=%zu", s_iso (ensure.lo, from),
              s_iso (ensure.hi, to), self->nparts);
    if (hi)
        *hi = ensure.hi;
    return PGCONN_OK;
}

//  The current period and the next exist before data arrives for them.
static omni_pgconn_status_t
s_partitions_ahead (pointstore_t *self)
{
    int64_t hi;
    omni_pgconn_status_t status = s_partition_for (self, s_floor_us (omni_util_now_ns ()), &hi);
    return status == PGCONN_OK ? s_partition_for (self, hi, NULL) : status;
}

//  Every partition the batch needs: one lookup per point, a transaction
//  per missing partition.
static omni_pgconn_status_t
s_partitions_for_batch (pointstore_t *self)
{
    omni_pgconn_status_t status = s_partitions_ahead (self);
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
//  Series cache: (name, source, tags text) -> id

static void
s_series_clear (pointstore_t *self)
{
    self->nseries = 0;
    omni_buf_reset (&self->keys);
    self->generation++;
    if (self->slots)
        memset (self->slots, 0, S_SERIES_SLOTS * sizeof *self->slots);
}

static void
s_key_part (pointstore_t *self, const char *text, size_t len)
{
    uint32_t n = (uint32_t) len;
    omni_buf_append (&self->keys, &n, sizeof n);
    omni_buf_append (&self->keys, text, len);
}

static uint64_t
s_mix (uint64_t hash, uint64_t word)
{
    hash = (hash ^ word) * UINT64_C (0x9e3779b97f4a7c15);
    return hash ^ (hash >> 32);
}

//  Eight bytes a step (a byte a step was a tenth of metricsd's work per
//  point): keys are short and made by derive, not chosen to collide; the
//  length ends each part, so parts cannot trade bytes
static uint64_t
s_hash (const char *data, size_t len, uint64_t hash)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t word;
        memcpy (&word, data + i, 8);
        hash = s_mix (hash, word);
    }
    uint64_t tail = 0;
    memcpy (&tail, data + i, len - i);
    return s_mix (s_mix (hash, tail), len);
}

//  Whether a cached key (each part but the last length-prefixed) is the
//  point's
static bool
s_key_is (const char *key, const char *name, uint32_t name_len, const char *source,
          uint32_t source_len, const char *tags, size_t tags_len)
{
    uint32_t n;
    memcpy (&n, key, sizeof n);
    if (n != name_len || memcmp (key + sizeof n, name, name_len))
        return false;
    key += sizeof n + name_len;
    memcpy (&n, key, sizeof n);
    if (n != source_len || memcmp (key + sizeof n, source, source_len))
        return false;
    return memcmp (key + sizeof n + source_len, tags, tags_len) == 0;
}

//  The cache entry of a point's series, added (id 0, pending) when new:
//  the point's text is hashed and compared where it is, the key made only
//  for a new series.
static uint32_t
s_series_of (pointstore_t *self, const s_point_t *p)
{
    const char *text = self->text.data;
    const char *name = text + p->name, *source = text + p->source, *tags = text + p->tags;
    size_t len = 2 * sizeof (uint32_t) + p->name_len + p->source_len + p->tags_len;
    uint64_t hash = s_hash (
        tags, p->tags_len,
        s_hash (source, p->source_len, s_hash (name, p->name_len, UINT64_C (0xcbf29ce484222325))));
    uint32_t slot = (uint32_t) hash & (S_SERIES_SLOTS - 1);
    while (self->slots[slot]) {
        s_series_t *entry = &self->series[self->slots[slot] - 1];
        if (entry->hash == hash && entry->key_len == len &&
            s_key_is (self->keys.data + entry->key, name, (uint32_t) p->name_len, source,
                      (uint32_t) p->source_len, tags, p->tags_len))
            return self->slots[slot] - 1;
        slot = (slot + 1) & (S_SERIES_SLOTS - 1);
    }
    size_t start = self->keys.size;
    s_key_part (self, name, p->name_len);
    s_key_part (self, source, p->source_len);
    omni_buf_append (&self->keys, tags, p->tags_len);
    assert (self->keys.size - start == len);
    uint32_t at = (uint32_t) self->nseries++;
    self->series[at] = (s_series_t){hash, 0, start, len, 0, 0, 0};
    self->slots[slot] = at + 1;
    return at;
}

//  Every point's series entry; the unresolved ones listed in `pending`
static void
s_series_lookup (pointstore_t *self)
{
    if (!self->slots) {
        self->slots = calloc (S_SERIES_SLOTS, sizeof *self->slots);
        self->series = malloc (S_SERIES_MAX * sizeof *self->series);
        assert (self->slots && self->series);
    }
    //  Room for every point of the batch as a new series
    if (self->nseries + self->npoints > S_SERIES_MAX)
        s_series_clear (self);
    assert (self->npoints <= S_SERIES_MAX);
    omni_array_reserve (self->pending, self->pending_cap, self->npoints);
    self->npending = 0;
    self->stamp++;
    for (size_t i = 0; i < self->npoints; i++) {
        s_point_t *p = &self->points[i];
        p->series = s_series_of (self, p);
        //  New, or left unresolved by a batch that failed
        s_series_t *entry = &self->series[p->series];
        if (entry->id == 0 && entry->stamp != self->stamp) {
            entry->stamp = self->stamp;
            self->pending[self->npending++] = p->series;
        }
    }
}

//  ---------------------------------------------------------------------------
//  Connection setup: schema, staging table, statement, partitions

static int
s_setup (omni_pgconn_t *conn, void *arg)
{
    pointstore_t *self = arg;
    int rc = tsschema_migrate (conn, &self->schema, &self->state);
    //  Never try CREATE EXTENSION again in this process: the next session
    //  decides from the catalog alone (native in auto mode)
    if (self->state.create_ended_session)
        self->schema.skip_create = true;
    pthread_mutex_lock (&self->problem_lock);
    //  A refusal was logged by tsschema; a problem of a usable schema (the
    //  license) is logged here once, not at every reconnect of a retry
    if (rc == 0 && *self->state.problem && strcmp (self->problem, self->state.problem))
        log_error ("schema.license_problem", "permanent=yes detail=\"%s\"", self->state.problem);
    if (rc == 0 && !*self->state.problem && *self->problem)
        log_info ("schema.problem_cleared", "was=\"%s\"", self->problem);
    snprintf (self->problem, sizeof self->problem, "%s", self->state.problem);
    pthread_mutex_unlock (&self->problem_lock);
    if (rc)
        return -1;
    self->ready = true;
    //  Another session may be another database (or the same one restored)
    s_series_clear (self);
    hostdaily_forget (self->hostdaily);
    PGconn *handle = omni_pgconn_handle (conn);
    if (omni_pgconn_exec (conn, S_STAGE_DDL) != PGCONN_OK ||
        omni_pgconn_check (conn, PQprepare (handle, "ins_points", S_INSERT_SQL, 2, NULL)) !=
            PGCONN_OK ||
        omni_pgconn_check (conn, PQprepare (handle, "ins_series", S_SERIES_INSERT_SQL, 2, NULL)) !=
            PGCONN_OK)
        return -1;
    if (self->state.mode == TSSCHEMA_NATIVE &&
        (s_parts_load (self) || s_partitions_ahead (self) != PGCONN_OK))
        return -1;
    char text[256];
    pointstore_describe (self, text, sizeof text);
    log_info ("schema.ready", "%s", text);
    return 0;
}

pointstore_t *
pointstore_new (const pointstore_config_t *config, omni_metrics_t *metrics, char *error,
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
    if (config->retain_ms < 0) {
        snprintf (error, error_size, "retain: must not be negative");
        return NULL;
    }
    int connections = config->connections ? config->connections : 1;
    if (connections < 1 || connections > S_CONNECTIONS_MAX) {
        snprintf (error, error_size, "connections: %d is not 1 to %d", connections,
                  S_CONNECTIONS_MAX);
        return NULL;
    }
    char why[512];
    omni_pgconn_t *conn = omni_pgconn_new (config->dsn, why, sizeof why);
    if (!conn) {
        snprintf (error, error_size, "dsn: %s", why);
        return NULL;
    }
    pointstore_t *self = calloc (1, sizeof *self);
    assert (self);
    self->conn = conn;
    self->partition_interval = strdup (interval);
    assert (self->partition_interval);
    self->retain_ms = config->retain_ms;
    self->schema = (tsschema_config_t){config->mode, self->partition_interval,
                                       config->compress_after_ms, false};
    pthread_mutex_init (&self->problem_lock, NULL);
    self->derive = derive_new ();
    self->hostdaily = hostdaily_new ();
    //  Under the writer's own retry backoff, so a server back up is seen
    //  at the writer's next attempt
    omni_pgconn_set_backoff (conn, 50, 1000);
    omni_pgconn_set_setup (conn, s_setup, self);
    omni_pgconn_set_create_database (conn, config->create_database);
    omni_pgconn_set_metrics (conn, metrics);
    //  Plain sessions: they only COPY into points_data, which the main
    //  connection's setup made
    for (self->nextra = 0; self->nextra < connections - 1; self->nextra++) {
        self->extra[self->nextra] = omni_pgconn_new (config->dsn, why, sizeof why);
        assert (self->extra[self->nextra]); //  the same dsn parsed above
        omni_pgconn_set_backoff (self->extra[self->nextra], 50, 1000);
        omni_pgconn_set_metrics (self->extra[self->nextra], metrics);
    }
    for (int i = 0; i <= self->nextra; i++)
        self->copy[i] = omni_pgcopy_new ();
    if (metrics) {
        self->m_points =
            omni_metrics_counter (metrics, "points_written_total",
                                  "Points written in committed batches (new or updated)", NULL);
        self->m_refused =
            omni_metrics_counter (metrics, "points_refused_total",
                                  "Points PostgreSQL refused for their content (dropped)", NULL);
        self->m_partitions =
            omni_metrics_counter (metrics, "partitions_ensured_total",
                                  "Partitions created or found on demand (native mode)", NULL);
        self->m_copied =
            omni_metrics_counter (metrics, "batches_copied_total",
                                  "Batches of new points copied straight into points", NULL);
        self->m_upserted =
            omni_metrics_counter (metrics, "batches_upserted_total",
                                  "Batches staged and upserted (some points existed)", NULL);
        self->m_series = omni_metrics_counter (
            metrics, "series_resolved_total",
            "Series ids read or made in PostgreSQL (not found in the cache)", NULL);
        self->m_ignored = omni_metrics_counter (metrics, "records_ignored_total",
                                                "Records of kinds without derivation rules", NULL);
        self->m_dropped =
            omni_metrics_counter (metrics, "partitions_dropped_total",
                                  "Partitions (TimescaleDB: chunks) dropped by retain", NULL);
        self->m_expired = omni_metrics_counter (metrics, "points_expired_total",
                                                "Points older than retain, not written", NULL);
        for (int r = 0; r < DERIVE_SKIP_COUNT; r++) {
            char labels[64];
            snprintf (labels, sizeof labels, "reason=\"%s\"", derive_skip_name ((derive_skip_t) r));
            self->m_skipped[r] =
                omni_metrics_counter (metrics, "points_skipped_total",
                                      "Points not made from a record, by reason", labels);
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
    omni_pgconn_destroy (&self->conn);
    for (int i = 0; i < self->nextra; i++)
        omni_pgconn_destroy (&self->extra[i]);
    for (int i = 0; i <= self->nextra; i++)
        omni_pgcopy_destroy (&self->copy[i]);
    pthread_mutex_destroy (&self->problem_lock);
    derive_destroy (&self->derive);
    hostdaily_destroy (&self->hostdaily);
    free (self->partition_interval);
    free (self->points);
    free (self->order);
    free (self->groups);
    free (self->starts);
    omni_buf_release (&self->text);
    free (self->parts);
    free (self->series);
    free (self->slots);
    omni_buf_release (&self->keys);
    free (self->pending);
    free (self);
    *self_p = NULL;
}

const char *
pointstore_display (pointstore_t *self)
{
    return omni_pgconn_display (self->conn);
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
    bool skipped = self->schema.skip_create;
    int rc = omni_pgconn_ensure (self->conn);
    if (rc && !skipped && self->schema.skip_create) {
        //  CREATE EXTENSION ended the session: decide again now, without
        //  it, so start-up ends native (auto) or exits (mode=timescaledb)
        //  instead of reporting a server that is merely away. The wait is
        //  pgconn's reconnect backoff (50 ms here).
        int64_t until = omni_util_mono_ms () + 2000;
        while ((rc = omni_pgconn_ensure (self->conn)) != 0 &&
               omni_pgconn_last_status (self->conn) == PGCONN_TRANSIENT &&
               omni_util_mono_ms () < until)
            nanosleep (&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    if (rc == 0) {
        //  The closed days left pending (by a migration, a stop), for a while
        hostdaily_refresh (self->hostdaily, self->conn, true, 2000);
        return 0;
    }
    return omni_pgwriter_connect_failed (self->conn);
}

bool
pointstore_healthy (void *self_, char *text, size_t size)
{
    pointstore_t *self = self_;
    pthread_mutex_lock (&self->problem_lock);
    bool problem = *self->problem != 0;
    if (problem)
        snprintf (text, size, "permanent: %s", self->problem);
    pthread_mutex_unlock (&self->problem_lock);
    if (problem)
        return false;
    return omni_pgwriter_healthy (self->conn, text, size);
}

//  ---------------------------------------------------------------------------
//  The batch: records -> points in memory -> staging -> points table

static size_t
s_text_add (pointstore_t *self, const char *text, size_t len)
{
    size_t at = self->text.size;
    omni_buf_append (&self->text, text, len);
    return at;
}

static void
s_point (void *arg, const derive_point_t *p)
{
    pointstore_t *self = arg;
    s_point_t *point = omni_array_push (self->points, self->npoints, self->points_cap);
    point->time_ns = p->time_ns;
    point->value = p->value;
    point->name = s_text_add (self, p->name, p->name_len);
    point->name_len = p->name_len;
    point->source = s_text_add (self, p->source, p->source_len);
    point->source_len = p->source_len;
    //  Commits give four points with the same tags: store them once
    if (self->npoints > 1) {
        s_point_t *prev = point - 1;
        if (prev->tags_len == p->tags_len &&
            memcmp (self->text.data + prev->tags, p->tags, p->tags_len) == 0) {
            point->tags = prev->tags;
            point->tags_len = prev->tags_len;
            return;
        }
    }
    point->tags = s_text_add (self, p->tags, p->tags_len);
    point->tags_len = p->tags_len;
}

static void
s_derive (pointstore_t *self, const omni_record_t *records, size_t count)
{
    self->npoints = 0;
    omni_buf_reset (&self->text);
    self->ignored = 0;
    self->refused = 0;
    self->refused_error[0] = 0;
    for (size_t i = 0; i < count; i++)
        if (derive_record (self->derive, &records[i], s_point, self) == 0 &&
            !derive_wants (records[i].spec))
            self->ignored++;
}

//  One prepared statement over a range of staged rows (ord lo..hi)
static omni_pgconn_status_t
s_exec_range (omni_pgconn_t *conn, const char *statement, size_t lo, size_t hi)
{
    char lo_text[24], hi_text[24];
    snprintf (lo_text, sizeof lo_text, "%zu", lo);
    snprintf (hi_text, sizeof hi_text, "%zu", hi);
    const char *params[] = {lo_text, hi_text};
    return omni_pgconn_check (
        conn, PQexecPrepared (omni_pgconn_handle (conn), statement, 2, params, NULL, NULL, 0));
}

//  Runs `statement` over the staged rows 0..n-1, or, slow, row by row under
//  savepoints: a row PostgreSQL refuses for its content is marked in
//  `refused` (and the first error kept), the others go on. Fails on any
//  other error.
static int
s_exec_rows (pointstore_t *self, const char *statement, size_t n, bool slow, bool *refused)
{
    omni_pgconn_t *conn = self->conn;
    if (!slow)
        return s_exec_range (conn, statement, 0, n - 1) == PGCONN_OK ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        if (refused[i])
            continue;
        if (omni_pgconn_exec (conn, "SAVEPOINT one") != PGCONN_OK)
            return -1;
        omni_pgconn_status_t status = s_exec_range (conn, statement, i, i);
        if (status == PGCONN_CONTENT && strcmp (omni_pgconn_sqlstate (conn), S_NO_PARTITION)) {
            refused[i] = true;
            if (!self->refused_error[0])
                snprintf (self->refused_error, sizeof self->refused_error, "%s %s",
                          omni_pgconn_sqlstate (conn), omni_pgconn_error (conn));
            if (omni_pgconn_exec (conn, "ROLLBACK TO SAVEPOINT one") != PGCONN_OK)
                return -1;
        } else if (status != PGCONN_OK ||
                   omni_pgconn_exec (conn, "RELEASE SAVEPOINT one") != PGCONN_OK)
            return -1;
    }
    return 0;
}

typedef struct {
    pointstore_t *self;
    bool slow;     //  series by series under savepoints, marking refused ones
    bool *refused; //  per pending series (slow)
    int64_t *ids;  //  per pending series, filled by the transaction
} s_series_tx_t;

//  The pending series: staged by one binary COPY (tags as text), made when
//  missing, then every one's id read back.
static int
s_series_tx (omni_pgconn_t *conn, void *arg)
{
    s_series_tx_t *tx = arg;
    pointstore_t *self = tx->self;
    if (omni_pgcopy_begin (self->copy[0], conn, "stage_series", "ord, name, source, tags",
                           PGCOPY_BINARY))
        return -1;
    for (size_t i = 0; i < self->npending; i++) {
        const s_series_t *entry = &self->series[self->pending[i]];
        const char *key = self->keys.data + entry->key, *end = key + entry->key_len;
        omni_pgcopy_row (self->copy[0], 4);
        omni_pgcopy_int4 (self->copy[0], (int32_t) i);
        for (int part = 0; part < 2; part++) { //  name, source: length-prefixed
            uint32_t len;
            memcpy (&len, key, sizeof len);
            omni_pgcopy_text (self->copy[0], key + sizeof len, len);
            key += sizeof len + len;
        }
        omni_pgcopy_text (self->copy[0], key, (size_t) (end - key));
    }
    if (omni_pgcopy_end (self->copy[0]) != PGCONN_OK)
        return -1;
    if (s_exec_rows (self, "ins_series", self->npending, tx->slow, tx->refused))
        return -1;
    for (size_t i = 0; tx->slow && i < self->npending; i++) {
        //  Out of the way of the read below, which casts the tags again
        char ord[24];
        snprintf (ord, sizeof ord, "%zu", i);
        const char *params[] = {ord};
        PGresult *result =
            tx->refused[i] ? omni_pgconn_query (
                                 conn, "DELETE FROM stage_series WHERE ord = $1::int4", 1, params)
                           : NULL;
        if (tx->refused[i] && !result)
            return -1;
        if (result)
            PQclear (result);
    }
    PGresult *result = omni_pgconn_query (conn, S_SERIES_SELECT_SQL, 0, NULL);
    if (!result)
        return -1;
    for (int r = 0; r < PQntuples (result); r++) {
        size_t ord = (size_t) strtoul (PQgetvalue (result, r, 0), NULL, 10);
        if (ord < self->npending)
            tx->ids[ord] = strtoll (PQgetvalue (result, r, 1), NULL, 10);
    }
    PQclear (result);
    return 0;
}

//  Gives every point's series an id (or -1: refused by PostgreSQL). The
//  ids enter the cache only once their transaction committed.
static omni_pgconn_status_t
s_series_resolve (pointstore_t *self)
{
    if (self->npending == 0)
        return PGCONN_OK;
    uint64_t generation = self->generation;
    int64_t *ids = calloc (self->npending, sizeof *ids);
    bool *refused = calloc (self->npending, sizeof *refused);
    assert (ids && refused);
    s_series_tx_t tx = {self, false, refused, ids};
    omni_pgconn_status_t status = omni_pgconn_transaction (self->conn, s_series_tx, &tx);
    if (status == PGCONN_CONTENT && strcmp (omni_pgconn_sqlstate (self->conn), S_NO_PARTITION)) {
        log_warn ("series.content_refused",
                  "series=%zu sqlstate=%s error=\"%s\" detail=\"storing series by series\"",
                  self->npending, omni_pgconn_sqlstate (self->conn),
                  omni_pgconn_error (self->conn));
        memset (ids, 0, self->npending * sizeof *ids);
        tx.slow = true;
        status = omni_pgconn_transaction (self->conn, s_series_tx, &tx);
    }
    //  A new session (a reconnect) emptied the cache under this batch: the
    //  points' entries are gone, the batch is tried again
    if (generation != self->generation)
        status = PGCONN_TRANSIENT;
    else if (status == PGCONN_OK) {
        for (size_t i = 0; i < self->npending; i++) {
            s_series_t *entry = &self->series[self->pending[i]];
            entry->id = refused[i] ? -1 : ids[i];
            //  Every staged series that was not refused was read back
            assert (entry->id != 0);
        }
        s_add (self->m_series, self->npending);
    }
    free (ids);
    free (refused);
    return status;
}

//  Points whose series PostgreSQL refused are dropped (counted as refused)
static void
s_drop_refused (pointstore_t *self)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->npoints; i++)
        if (self->series[self->points[i].series].id > 0)
            self->points[kept++] = self->points[i];
    self->refused += self->npoints - kept;
    self->npoints = kept;
}

//  ---------------------------------------------------------------------------
//  Key order: a batch interleaves its series (a host sends all its figures
//  at once, and a batch holds many hosts), so in delivery order each point
//  goes down the (series_id, time) index to another leaf than the one
//  before. Sent grouped by series, in id order, and by time within each,
//  they go along the index: each leaf is found once per series and filled
//  before it splits, PostgreSQL spends less CPU and the index is smaller
//  (docs/performance.md, issue 20, fifth pass). The grouping is a counting
//  sort over the batch's series, O(n) and stable; so is the time order
//  within a series (a series' points nearly always come in time order).
//  Only the order sent changes: a staged point's `ord` is still its place
//  in delivery, so the last delivered of a (series, time) still wins.

static int
s_group_cmp (const void *a_, const void *b_)
{
    const s_group_t *a = a_, *b = b_;
    //  Two cached keys (tags texts) may name one series: delivery decides
    if (a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return a->first < b->first ? -1 : a->first > b->first;
}

typedef struct {
    int64_t time_ns;
    uint32_t point;
} s_timed_t;

static int
s_timed_cmp (const void *a_, const void *b_)
{
    const s_timed_t *a = a_, *b = b_;
    if (a->time_ns != b->time_ns)
        return a->time_ns < b->time_ns ? -1 : 1;
    return a->point < b->point ? -1 : a->point > b->point;
}

//  One series' points (order[lo..hi)) by time, ties in delivery order
static void
s_order_times (pointstore_t *self, size_t lo, size_t hi)
{
    uint32_t *order = self->order;
    size_t i = lo + 1;
    while (i < hi && self->points[order[i - 1]].time_ns <= self->points[order[i]].time_ns)
        i++;
    if (i >= hi)
        return; //  in order already: the common case
    s_timed_t *timed = malloc ((hi - lo) * sizeof *timed);
    assert (timed);
    for (size_t k = lo; k < hi; k++)
        timed[k - lo] = (s_timed_t){self->points[order[k]].time_ns, order[k]};
    qsort (timed, hi - lo, sizeof *timed, s_timed_cmp);
    for (size_t k = lo; k < hi; k++)
        order[k] = timed[k - lo].point;
    free (timed);
}

//  self->order: the batch's points in (series id, time) order
static void
s_order (pointstore_t *self)
{
    size_t n = self->npoints;
    omni_array_reserve (self->order, self->order_cap, n);
    //  The batch's series (s_series_lookup stamped this batch)
    size_t ngroups = 0;
    for (size_t i = 0; i < n; i++) {
        s_series_t *entry = &self->series[self->points[i].series];
        if (entry->grouped == self->stamp)
            continue;
        entry->grouped = self->stamp;
        s_group_t group = {entry->id, self->points[i].series, (uint32_t) ngroups};
        *omni_array_push (self->groups, ngroups, self->groups_cap) = group;
    }
    s_group_t *groups = self->groups;
    qsort (groups, ngroups, sizeof *groups, s_group_cmp);
    //  Counting sort: each group's size, then its first place
    omni_array_reserve (self->starts, self->starts_cap, ngroups + 1);
    uint32_t *starts = self->starts;
    memset (starts, 0, (ngroups + 1) * sizeof *starts);
    for (size_t g = 0; g < ngroups; g++)
        self->series[groups[g].series].group = (uint32_t) g;
    for (size_t i = 0; i < n; i++)
        starts[self->series[self->points[i].series].group + 1]++;
    for (size_t g = 0; g < ngroups; g++)
        starts[g + 1] += starts[g];
    for (size_t i = 0; i < n; i++)
        self->order[starts[self->series[self->points[i].series].group]++] = (uint32_t) i;
    //  starts[g] is now group g's end, the next one's start
    for (size_t g = 0, lo = 0; g < ngroups; lo = starts[g], g++)
        s_order_times (self, lo, starts[g]);
}

//  The batch's points by one binary COPY on `conn`, either into the
//  staging table (with each point's place in the batch, `ord`) or straight
//  into points_data; with `shares` > 1, only the points whose series id is
//  `share` modulo `shares`.
static omni_pgconn_status_t
s_copy (pointstore_t *self, omni_pgconn_t *conn, omni_pgcopy_t *copy, bool staged, int share,
        int shares)
{
    if (omni_pgcopy_begin (copy, conn, staged ? "stage_points" : "points_data",
                           staged ? "ord, series_id, time, value" : "series_id, time, value",
                           PGCOPY_BINARY))
        return omni_pgconn_last_status (conn);
    for (size_t k = 0; k < self->npoints; k++) {
        uint32_t i = self->order[k];
        const s_point_t *p = &self->points[i];
        int64_t id = self->series[p->series].id;
        if (shares > 1 && id % shares != share)
            continue;
        omni_pgcopy_row (copy, staged ? 4 : 3);
        if (staged)
            omni_pgcopy_int4 (copy, (int32_t) i);
        omni_pgcopy_int8 (copy, id);
        omni_pgcopy_timestamptz_ns (copy, p->time_ns);
        omni_pgcopy_float8 (copy, p->value);
    }
    return omni_pgcopy_end (copy);
}

//  One share of a shared COPY, on an extra connection: BEGIN and COPY,
//  the transaction left open for the batch to commit or roll back
typedef struct {
    pointstore_t *self;
    omni_pgconn_t *conn;
    omni_pgcopy_t *copy;
    int share, shares;
    omni_pgconn_status_t status;
    bool open; //  a transaction is open
} s_share_t;

static void *
s_share_run (void *arg)
{
    s_share_t *share = arg;
    share->open = false;
    share->status = omni_pgconn_ensure (share->conn) ? omni_pgconn_last_status (share->conn)
                                                     : omni_pgconn_exec (share->conn, "BEGIN");
    if (share->status == PGCONN_OK) {
        share->open = true;
        share->status =
            s_copy (share->self, share->conn, share->copy, false, share->share, share->shares);
    }
    return NULL;
}

typedef struct {
    pointstore_t *self;
    bool direct;   //  try the COPY straight into points_data first
    bool slow;     //  point by point under savepoints, marking refused ones
    bool *refused; //  per point (slow)
    //  A share on an extra connection failed: its SQLSTATE and error
    char sqlstate[6];
    char error[256];
} s_tx_t;

//  The direct COPY dealt over every connection by series (so that no two
//  connections ever insert the same key, which would make one wait for
//  the other's commit, and this thread for both: a deadlock PostgreSQL
//  cannot see). The extra connections commit first, once every COPY went
//  through; the batch transaction last. A crash between those commits
//  leaves part of the batch stored and unacknowledged: delivered again, it
//  meets its own points and is upserted, so each point is still stored
//  once.
static int
s_shared_copy (s_tx_t *tx)
{
    pointstore_t *self = tx->self;
    int shares = self->nextra + 1;
    s_share_t share[S_CONNECTIONS_MAX];
    pthread_t threads[S_CONNECTIONS_MAX];
    for (int i = 0; i < self->nextra; i++) {
        share[i] =
            (s_share_t){self, self->extra[i], self->copy[i + 1], i + 1, shares, PGCONN_OK, false};
        int rc = pthread_create (&threads[i], NULL, s_share_run, &share[i]);
        assert (rc == 0);
    }
    omni_pgconn_status_t status = s_copy (self, self->conn, self->copy[0], false, 0, shares);
    for (int i = 0; i < self->nextra; i++)
        pthread_join (threads[i], NULL);
    for (int i = 0; i < self->nextra && status == PGCONN_OK; i++)
        if (share[i].status != PGCONN_OK) {
            snprintf (tx->sqlstate, sizeof tx->sqlstate, "%s",
                      omni_pgconn_sqlstate (share[i].conn));
            snprintf (tx->error, sizeof tx->error, "%s", omni_pgconn_error (share[i].conn));
            status = share[i].status;
        }
    for (int i = 0; i < self->nextra; i++) {
        if (!share[i].open)
            continue;
        if (status == PGCONN_OK) {
            omni_pgconn_status_t commit = omni_pgconn_commit (share[i].conn);
            if (commit != PGCONN_OK) {
                snprintf (tx->sqlstate, sizeof tx->sqlstate, "%s",
                          omni_pgconn_sqlstate (share[i].conn));
                snprintf (tx->error, sizeof tx->error, "commit of a share: %s",
                          omni_pgconn_error (share[i].conn));
                status = commit;
            }
        } else if (omni_pgconn_exec (share[i].conn, "ROLLBACK") != PGCONN_OK)
            omni_pgconn_reset (share[i].conn);
    }
    return status == PGCONN_OK ? 0 : -1;
}

//  The fast way for points that are all new, the common case: the batch
//  transaction is one COPY straight into points_data (COPY batches its heap
//  and index insertions; an INSERT ... SELECT ... ON CONFLICT does them row
//  by row, at about half the rate), without a savepoint (a subtransaction
//  per batch, and two more round trips). A point that exists already fails
//  it on the unique key (23505): the transaction is rolled back and the
//  batch goes the staging way in a new one (pointstore_write).
static int
s_batch_tx (omni_pgconn_t *conn, PGresult *first, void *arg)
{
    (void) conn;
    s_tx_t *tx = arg;
    pointstore_t *self = tx->self;
    //  The host days' mark went first, with the BEGIN (s_batch_run), so that
    //  its lock and rows are held until the batch commits (hostdaily.c)
    if (hostdaily_marked (self->hostdaily, self->conn, first) != PGCONN_OK)
        return -1;
    if (tx->direct && self->nextra > 0 && self->npoints >= S_SHARE_MIN)
        return s_shared_copy (tx);
    if (tx->direct)
        return s_copy (self, self->conn, self->copy[0], false, 0, 1) == PGCONN_OK ? 0 : -1;
    if (s_copy (self, self->conn, self->copy[0], true, 0, 1) != PGCONN_OK)
        return -1;
    return s_exec_rows (self, "ins_points", self->npoints, tx->slow, tx->refused);
}

//  One batch transaction, its BEGIN carrying the host days' mark
static omni_pgconn_status_t
s_batch_run (pointstore_t *self, s_tx_t *tx)
{
    omni_pgconn_stmt_t first;
    hostdaily_first (self->hostdaily, &first);
    return omni_pgconn_transaction_first (self->conn, &first, s_batch_tx, tx);
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
s_failed (pointstore_t *self, omni_pgconn_status_t status, size_t count, char *error,
          size_t error_size)
{
    const char *sqlstate = omni_pgconn_sqlstate (self->conn);
    pthread_mutex_lock (&self->problem_lock);
    bool problem = *self->problem != 0;
    pthread_mutex_unlock (&self->problem_lock);
    //  The cause first: the writer's line has room for little more
    snprintf (error, error_size, "%spostgresql: %s%s%s",
              problem ? "permanent problem, see /health and schema.license_problem; " : "",
              sqlstate, *sqlstate ? " " : "", omni_pgconn_error (self->conn));
    if (strcmp (sqlstate, S_NO_PARTITION) == 0) {
        //  A partition we knew of is gone: learn the truth, then retry
        log_warn ("partition.missing", "error=\"%s\" detail=\"reloading partitions\"",
                  omni_pgconn_error (self->conn));
        if (s_parts_load (self))
            omni_pgconn_reset (self->conn);
    } else if (status != PGCONN_TRANSIENT) {
        //  Not the server going away: a schema or statement problem an
        //  operator must see. A fresh session rebuilds the staging table
        //  and statement in case they were the problem.
        log_error ("batch.failed", "records=%zu points=%zu sqlstate=%s error=\"%s\"", count,
                   self->npoints, sqlstate, omni_pgconn_error (self->conn));
        omni_pgconn_reset (self->conn);
    }
    return status == PGCONN_PERMANENT ? WRITER_STORE_PERMANENT : -1;
}

//  ---------------------------------------------------------------------------
//  Retention

#define S_RETENTION_EVERY_MS (3600 * 1000)

//  $1: the cut, us since the epoch
#define S_CUT_SQL                                                                                  \
    "(timestamptz 'epoch' + ($1::int8 / 1000000) * interval '1 second' + ($1::int8 % 1000000) * "  \
    "interval '1 microsecond')"
//  Native: the partitions whose whole range is before the cut
#define S_OLD_PARTS_SQL                                                                            \
    "SELECT format ('DROP TABLE %I', part), part, lo::text, hi::text FROM metricsd_partitions () " \
    "WHERE hi <= " S_CUT_SQL " ORDER BY lo"
//  TimescaleDB: chunks whose whole range is before the cut (drop_chunks
//  never drops a chunk that holds newer rows); returns their names
#define S_DROP_CHUNKS_SQL "SELECT drop_chunks ('points_data', older_than => " S_CUT_SQL ")::text"

typedef struct {
    pointstore_t *self;
    int64_t cut_us;
    PGresult *dropped; //  what went, for the log after the commit
} s_retention_t;

static int
s_retention_tx (omni_pgconn_t *conn, void *arg)
{
    s_retention_t *r = arg;
    //  DROP TABLE takes an ACCESS EXCLUSIVE lock on points: as for a new
    //  partition, give up rather than queue every writer behind a long query
    if (omni_pgconn_exec (conn, "SET LOCAL lock_timeout = '5s'") != PGCONN_OK)
        return -1;
    char cut[32];
    snprintf (cut, sizeof cut, "%" PRId64, r->cut_us);
    const char *params[] = {cut};
    bool native = r->self->state.mode == TSSCHEMA_NATIVE;
    r->dropped = omni_pgconn_query (conn, native ? S_OLD_PARTS_SQL : S_DROP_CHUNKS_SQL, 1, params);
    if (!r->dropped)
        return -1;
    for (int i = 0; native && i < PQntuples (r->dropped); i++)
        if (omni_pgconn_exec (conn, PQgetvalue (r->dropped, i, 0)) != PGCONN_OK)
            return -1;
    //  The kept host figures of the days dropped are counted again (gone)
    if (PQntuples (r->dropped) > 0) {
        PGresult *forget =
            omni_pgconn_query (conn, "SELECT metricsd_host_daily_forget " S_CUT_SQL, 1, params);
        if (!forget)
            return -1;
        PQclear (forget);
    }
    return 0;
}

//  One retention pass; a failure is logged and tried again at the next batch.
static void
s_retention (pointstore_t *self)
{
    char text[32];
    s_retention_t r = {self, s_floor_us (omni_util_now_ns ()) - self->retain_ms * 1000, NULL};
    omni_pgconn_status_t status = omni_pgconn_transaction (self->conn, s_retention_tx, &r);
    if (status != PGCONN_OK) {
        log_error ("retention.failed", "cut=%s sqlstate=%s error=\"%s\"", s_iso (r.cut_us, text),
                   omni_pgconn_sqlstate (self->conn), omni_pgconn_error (self->conn));
        if (r.dropped)
            PQclear (r.dropped);
        return;
    }
    bool native = self->state.mode == TSSCHEMA_NATIVE;
    int n = PQntuples (r.dropped);
    for (int i = 0; i < n; i++) {
        if (native)
            log_info ("partition.dropped", "partition=%s from=\"%s\" to=\"%s\" cut=%s",
                      PQgetvalue (r.dropped, i, 1), PQgetvalue (r.dropped, i, 2),
                      PQgetvalue (r.dropped, i, 3), s_iso (r.cut_us, text));
        else
            log_info ("chunk.dropped", "chunk=%s cut=%s", PQgetvalue (r.dropped, i, 0),
                      s_iso (r.cut_us, text));
    }
    PQclear (r.dropped);
    s_add (self->m_dropped, (uint64_t) n);
    if (native && n > 0 && s_parts_load (self))
        omni_pgconn_reset (self->conn);
    self->retention_done_ms = omni_util_mono_ms ();
}

//  Points older than the retention are not written: they would make a
//  partition the next pass drops again.
static void
s_drop_expired (pointstore_t *self)
{
    int64_t cut_ns = omni_util_now_ns () - self->retain_ms * 1000000;
    size_t kept = 0;
    for (size_t i = 0; i < self->npoints; i++)
        if (self->points[i].time_ns >= cut_ns)
            self->points[kept++] = self->points[i];
    if (kept < self->npoints) {
        log_info ("points.expired", "count=%zu retain_ms=%" PRId64, self->npoints - kept,
                  self->retain_ms);
        s_add (self->m_expired, self->npoints - kept);
        self->npoints = kept;
    }
}

int
pointstore_write (void *self_, const omni_record_t *records, size_t count, uint8_t *conflicts,
                  char *error, size_t error_size)
{
    pointstore_t *self = self_;
    (void) conflicts; //  points are keyed on series and time: see docs/metricsd.md
    if (omni_pgconn_ensure (self->conn)) {
        snprintf (error, error_size, "postgresql: %s", omni_pgconn_error (self->conn));
        return omni_pgconn_last_status (self->conn) == PGCONN_PERMANENT ? WRITER_STORE_PERMANENT
                                                                        : -1;
    }
    if (self->retain_ms > 0 &&
        (self->retention_done_ms == 0 ||
         omni_util_mono_ms () - self->retention_done_ms >= S_RETENTION_EVERY_MS))
        s_retention (self);
    s_derive (self, records, count);
    s_count_skipped (self);
    s_add (self->m_ignored, self->ignored);
    if (self->retain_ms > 0)
        s_drop_expired (self);
    if (self->npoints == 0)
        return 0;
    s_series_lookup (self);
    uint64_t generation = self->generation;
    omni_pgconn_status_t status = s_series_resolve (self);
    if (status == PGCONN_OK) {
        s_drop_refused (self);
        s_order (self);
    }
    if (status == PGCONN_OK && self->npoints > 0 && self->state.mode == TSSCHEMA_NATIVE)
        status = s_partitions_for_batch (self);
    //  In key order a series' points of one day are next to each other:
    //  each (series, day) is given to hostdaily once
    hostdaily_reset (self->hostdaily);
    uint32_t last_series = UINT32_MAX;
    int64_t last_day = 0;
    for (size_t k = 0; status == PGCONN_OK && k < self->npoints; k++) {
        const s_point_t *p = &self->points[self->order[k]];
        int64_t day = hostdaily_day (p->time_ns);
        if (p->series == last_series && day == last_day)
            continue;
        last_series = p->series;
        last_day = day;
        hostdaily_add (self->hostdaily, self->text.data + p->name, p->name_len,
                       self->text.data + p->source, p->source_len, p->time_ns);
    }
    s_tx_t tx = {self, self->upserts_ahead == 0, false, NULL, "", ""};
    size_t dropped = 0; //  points refused in the batch itself
    if (self->upserts_ahead > 0)
        self->upserts_ahead--;
    if (status == PGCONN_OK && self->npoints > 0)
        status = s_batch_run (self, &tx);
    if (tx.direct && (strcmp (tx.sqlstate, S_UNIQUE_VIOLATION) == 0 ||
                      (status == PGCONN_CONTENT &&
                       strcmp (omni_pgconn_sqlstate (self->conn), S_UNIQUE_VIOLATION) == 0))) {
        //  Some points exist (a redelivery, a re-collection): upsert, and
        //  the next batches too
        self->upserts_ahead = S_UPSERTS_AHEAD;
        tx.direct = false;
        status = s_batch_run (self, &tx);
    }
    if (status == PGCONN_CONTENT && strcmp (omni_pgconn_sqlstate (self->conn), S_NO_PARTITION)) {
        //  Not expected (points are numbers, derive bounds times and
        //  values): find the points PostgreSQL refuses, drop them, keep the
        //  rest
        log_warn ("batch.content_refused",
                  "points=%zu sqlstate=%s error=\"%s\" detail=\"storing "
                  "point by point\"",
                  self->npoints, omni_pgconn_sqlstate (self->conn), omni_pgconn_error (self->conn));
        bool *refused = calloc (self->npoints, sizeof *refused);
        assert (refused);
        tx = (s_tx_t){self, false, true, refused, "", ""};
        status = s_batch_run (self, &tx);
        for (size_t i = 0; status == PGCONN_OK && i < self->npoints; i++)
            dropped += refused[i];
        free (refused);
    }
    //  A reconnect inside emptied the series cache: ids may be stale
    if (status == PGCONN_OK && generation != self->generation) {
        snprintf (error, error_size, "postgresql: session changed during the batch, again");
        return -1;
    }
    if (status != PGCONN_OK && *tx.error) {
        //  A share on another connection failed (the batch was rolled back)
        snprintf (error, error_size, "postgresql: %s%s%s", tx.sqlstate, *tx.sqlstate ? " " : "",
                  tx.error);
        log_warn ("batch.share_failed", "sqlstate=%s error=\"%s\"", tx.sqlstate, tx.error);
        if (strcmp (tx.sqlstate, S_NO_PARTITION) == 0 && s_parts_load (self))
            omni_pgconn_reset (self->conn);
        return status == PGCONN_PERMANENT ? WRITER_STORE_PERMANENT : -1;
    }
    if (status != PGCONN_OK)
        return s_failed (self, status, count, error, error_size);
    self->refused += dropped;
    if (self->refused) {
        log_warn ("points.refused", "count=%zu batch=%zu error=\"%s\"", self->refused,
                  self->npoints, self->refused_error);
        s_add (self->m_refused, self->refused);
    }
    s_add (self->m_points, self->npoints - dropped);
    s_add (tx.direct ? self->m_copied : self->m_upserted, 1);
    hostdaily_committed (self->hostdaily);
    //  The closed days pending, when due (a failure is logged, tried later)
    hostdaily_refresh (self->hostdaily, self->conn, false, 0);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Self-test: every answer checked against numbers computed here, from the
//  same inputs, without the code under test.

#include "metricsd/sql.h"
#include "metricsd/testrec.h"
#include "testsupport/pgtest.h"
#include "testsupport/selftest.h"

#include <czmq.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

#define D0 INT64_C (1704067200) //  Monday 2024-01-01 00:00 UTC
//  The stored points with their series, where partitions are asked about
#define S_DATA_OF "points_data d JOIN points_series s ON s.id = d.series_id"
#define NS        INT64_C (1000000000)

typedef struct {
    const char *src, *sha, *email;
    int64_t time; //  committer time, s
    int files, ins, del;
} s_commit_t;

//  Two commits by one author in the same second; days and weeks edges;
//  author times all on one old day (the committer time must decide).
static const s_commit_t s_commits[] = {
    {"repo-a", "a1", "ann@example.org", D0 + 36000, 3, 10, 2},
    {"repo-a", "a2", "ann@example.org", D0 + 36000, 1, 5, 0},
    {"repo-a", "a3", "bob@example.org", D0 + 86399, 2, 7, 7},
    {"repo-a", "a4", "bob@example.org", D0 + 86400, 1, 1, 1},
    {"repo-a", "a5", "ann@example.org", D0 + 7 * 86400 + 5, 4, 40, 4},
    {"repo-a", "a6", "cy@example.org", D0 - 1, 1, 2, 3},
    {"repo-b", "b1", "ann@example.org", D0 + 100, 1, 1, 0},
};
#define S_COMMITS (sizeof s_commits / sizeof s_commits[0])

typedef struct {
    const char *pipeline, *build_id, *status;
    int64_t started; //  s, 0 = absent (then the record time D0 + 4000)
    double duration; //  < 0 = absent
} s_build_t;

static const s_build_t s_builds[] = {
    {"deploy", "1", "success", D0 + 1000, 30.5},
    {"deploy", "2", "failure", D0 + 2000, 12.25},
    {"deploy", "3", "success", D0 + 2000, 20},
    {"deploy", "4", "cancelled", D0 + 3000, 5},
    {"deploy", "5", "running", 0, -1},
    {"nightly", "1", "failure", D0 + 5000, 100},
    {"deploy", "6", "success", D0 + 7 * 86400, 10},
};
#define S_BUILDS (sizeof s_builds / sizeof s_builds[0])

typedef struct {
    const char *suite, *name, *status;
    int64_t ts; //  s
    double duration;
} s_run_t;

static const s_run_t s_runs[] = {
    {"unit", "t1", "passed", D0 + 100, 0.5},  {"unit", "t2", "failed", D0 + 100, 1.5},
    {"unit", "t3", "error", D0 + 100, 2.0},   {"unit", "t4", "passed", D0 + 100, 4.0},
    {"unit", "t5", "passed", D0 + 100, 10.0}, {"unit", "t6", "skipped", D0 + 100, 0},
    {"slow", "s1", "passed", D0 + 200, 60.0}, {"unit", "t1", "passed", D0 + 8 * 86400, 3.0},
};
#define S_RUNS (sizeof s_runs / sizeof s_runs[0])

//  Points these inputs make: 4 per commit; builds: 5 results and 6
//  durations; tests: 2 per run that was not skipped; host: 5
#define S_POINTS (4 * S_COMMITS + 11 + 2 * (S_RUNS - 1) + 5)

static void
s_date (int64_t seconds, char *text, size_t size)
{
    time_t t = (time_t) seconds;
    struct tm tm;
    gmtime_r (&t, &tm);
    strftime (text, size, "%Y-%m-%d", &tm);
}

static int64_t
s_day (int64_t t)
{
    return (t >= 0 ? t : t - 86399) / 86400 * 86400;
}

//  1970-01-01 was a Thursday; weeks start on Monday
static int64_t
s_week (int64_t t)
{
    int64_t day = s_day (t) / 86400;
    int64_t weekday = ((day + 3) % 7 + 7) % 7;
    return (day - weekday) * 86400;
}

static void
s_batch (testrec_t *recs)
{
    for (size_t i = 0; i < S_COMMITS; i++) {
        const s_commit_t *c = &s_commits[i];
        testrec_commit (recs, c->src, c->sha, c->email, D0 - 400 * 86400, c->time, c->files, c->ins,
                        c->del);
    }
    for (size_t i = 0; i < S_BUILDS; i++) {
        const s_build_t *b = &s_builds[i];
        testrec_build (recs, "ci", (D0 + 4000) * NS, b->pipeline, b->build_id, b->status, "main",
                       b->started * NS, b->duration);
    }
    for (size_t i = 0; i < S_RUNS; i++) {
        const s_run_t *r = &s_runs[i];
        testrec_test_case (recs, "ci", r->ts * NS, r->suite, NULL, r->name, r->status, r->duration,
                           "b1");
    }
    int64_t minute = D0 + 600;
    testrec_metric (recs, "web-1", minute * NS, "host.cpu.user", 10, "web-1");
    testrec_metric (recs, "web-1", (minute + 20) * NS, "host.cpu.user", 20, "web-1");
    testrec_metric (recs, "web-1", (minute + 40) * NS + 123456789, "host.cpu.user", 30, "web-1");
    testrec_metric (recs, "web-1", (minute + 60) * NS, "host.cpu.user", 50, "web-1");
    msgpack_packer *pk = testrec_begin (recs, "metric", "web-1", minute * NS, 2);
    omni_record_pack_kv (pk, "name", "host.mem.used");
    omni_record_pack_kv_double (pk, "value", 1000);
    testrec_tag (recs, "host", "web-1");
    testrec_end (recs);
    //  Not for metricsd: ignored
    pk = testrec_begin (recs, "git.branch", "repo-a", D0 * NS, 3);
    omni_record_pack_kv (pk, "name", "main");
    omni_record_pack_kv (pk, "target", "a5");
    msgpack_pack_str_with_body (pk, "head", 4);
    msgpack_pack_true (pk);
    testrec_end (recs);
}

static void
s_exec (omni_pgconn_t *pg, const char *sql)
{
    if (omni_pgconn_exec (pg, sql) != PGCONN_OK)
        fprintf (stderr, "%s: %s\n", sql, omni_pgconn_error (pg));
    assert (omni_pgconn_last_status (pg) == PGCONN_OK);
}

static int
s_write (pointstore_t *store, testrec_t *recs)
{
    char error[512] = "";
    int rc = pointstore_write (store, testrec_records (recs), testrec_count (recs), NULL, error,
                               sizeof error);
    if (rc)
        fprintf (stderr, "pointstore_write: %s\n", error);
    return rc;
}

static void
s_append (char *out, size_t size, const char *text)
{
    size_t len = strlen (out);
    snprintf (out + len, size - len, "%s%s", len ? "," : "", text);
}

//  commits_per_day or _week, as the view's rows joined: "date:repo:commits:
//  authors:insertions:deletions,..." in date, repo order
static void
s_expected_commits (bool weekly, char *out, size_t size)
{
    *out = 0;
    bool done[S_COMMITS] = {false};
    for (;;) {
        //  the smallest (bucket, src) not done yet
        ssize_t first = -1;
        for (size_t i = 0; i < S_COMMITS; i++) {
            if (done[i])
                continue;
            int64_t bi = weekly ? s_week (s_commits[i].time) : s_day (s_commits[i].time);
            int64_t bf = first < 0 ? 0
                         : weekly  ? s_week (s_commits[first].time)
                                   : s_day (s_commits[first].time);
            if (first < 0 || bi < bf ||
                (bi == bf && strcmp (s_commits[i].src, s_commits[first].src) < 0))
                first = (ssize_t) i;
        }
        if (first < 0)
            break;
        int64_t bucket = weekly ? s_week (s_commits[first].time) : s_day (s_commits[first].time);
        const char *src = s_commits[first].src;
        int commits = 0, ins = 0, del = 0, authors = 0;
        const char *seen[S_COMMITS];
        for (size_t i = 0; i < S_COMMITS; i++) {
            const s_commit_t *c = &s_commits[i];
            int64_t b = weekly ? s_week (c->time) : s_day (c->time);
            if (done[i] || b != bucket || strcmp (c->src, src))
                continue;
            done[i] = true;
            commits++;
            ins += c->ins;
            del += c->del;
            bool known = false;
            for (int a = 0; a < authors; a++)
                known |= strcmp (seen[a], c->email) == 0;
            if (!known)
                seen[authors++] = c->email;
        }
        char date[16], row[128];
        s_date (bucket, date, sizeof date);
        snprintf (row, sizeof row, "%s:%s:%d:%d:%d:%d", date, src, commits, authors, ins, del);
        s_append (out, size, row);
    }
}

//  build_success_weekly: "week:pipeline:builds:succeeded:rate:avg_duration"
static void
s_expected_builds (const char *const *override, char *out, size_t size)
{
    *out = 0;
    //  weeks and pipelines in order: W0 deploy, W0 nightly, W1 deploy
    const int64_t weeks[] = {s_week (D0), s_week (D0), s_week (D0 + 7 * 86400)};
    const char *pipelines[] = {"deploy", "nightly", "deploy"};
    for (int k = 0; k < 3; k++) {
        int builds = 0, succeeded = 0, durations = 0;
        double total = 0;
        for (size_t i = 0; i < S_BUILDS; i++) {
            const s_build_t *b = &s_builds[i];
            const char *status = override && override[i] ? override[i] : b->status;
            int64_t t = b->started ? b->started : D0 + 4000;
            if (s_week (t) != weeks[k] || strcmp (b->pipeline, pipelines[k]))
                continue;
            if (strcmp (status, "success") == 0 || strcmp (status, "failure") == 0) {
                builds++;
                succeeded += strcmp (status, "success") == 0;
            }
            if (b->duration >= 0) {
                durations++;
                total += b->duration;
            }
        }
        char date[16], row[128];
        s_date (weeks[k], date, sizeof date);
        snprintf (row, sizeof row, "%s:%s:%d:%d:%.4f:%g", date, pipelines[k], builds, succeeded,
                  (double) succeeded / builds, total / durations);
        s_append (out, size, row);
    }
}

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  percentile_cont: linear interpolation between the closest ranks
static double
s_percentile (double *values, size_t n, double fraction)
{
    qsort (values, n, sizeof *values, s_cmp_double);
    double pos = fraction * (double) (n - 1);
    size_t lo = (size_t) floor (pos);
    if (lo + 1 >= n)
        return values[n - 1];
    return values[lo] + (pos - (double) lo) * (values[lo + 1] - values[lo]);
}

static void
s_check_test_durations (omni_pgconn_t *pg)
{
    const struct {
        const char *suite;
        int64_t week;
    } groups[] = {{"slow", s_week (D0)}, {"unit", s_week (D0)}, {"unit", s_week (D0 + 8 * 86400)}};
    PGresult *result = omni_pgconn_query (pg,
                                          "SELECT week, suite, runs, failed, p50, p95, max "
                                          "FROM test_duration_weekly ORDER BY week, suite",
                                          0, NULL);
    assert (result && PQntuples (result) == 3);
    for (int g = 0; g < 3; g++) {
        double values[S_RUNS];
        size_t n = 0;
        int failed = 0;
        for (size_t i = 0; i < S_RUNS; i++) {
            const s_run_t *r = &s_runs[i];
            if (strcmp (r->suite, groups[g].suite) || s_week (r->ts) != groups[g].week ||
                strcmp (r->status, "skipped") == 0)
                continue;
            values[n++] = r->duration;
            failed += strcmp (r->status, "passed") != 0;
        }
        char date[16];
        s_date (groups[g].week, date, sizeof date);
        assert (strcmp (PQgetvalue (result, g, 0), date) == 0);
        assert (strcmp (PQgetvalue (result, g, 1), groups[g].suite) == 0);
        assert (atoi (PQgetvalue (result, g, 2)) == (int) n);
        assert (atoi (PQgetvalue (result, g, 3)) == failed);
        double p50 = s_percentile (values, n, 0.5), p95 = s_percentile (values, n, 0.95);
        assert (fabs (strtod (PQgetvalue (result, g, 4), NULL) - p50) < 1e-9);
        assert (fabs (strtod (PQgetvalue (result, g, 5), NULL) - p95) < 1e-9);
        assert (strtod (PQgetvalue (result, g, 6), NULL) == values[n - 1]);
    }
    PQclear (result);
}

static const char *s_commits_sql =
    "SELECT coalesce (string_agg (day || ':' || repository || ':' || commits || ':' || authors "
    "|| ':' || insertions || ':' || deletions, ',' ORDER BY day, repository), '') "
    "FROM commits_per_day WHERE repository LIKE 'repo-%'";
static const char *s_weekly_sql =
    "SELECT coalesce (string_agg (week || ':' || repository || ':' || commits || ':' || authors "
    "|| ':' || insertions || ':' || deletions, ',' ORDER BY week, repository), '') "
    "FROM commits_per_week WHERE repository LIKE 'repo-%'";
static const char *s_builds_sql =
    "SELECT string_agg (week || ':' || pipeline || ':' || builds || ':' || succeeded || ':' "
    "|| success_rate || ':' || avg_duration, ',' ORDER BY week, pipeline) "
    "FROM build_success_weekly";

static void
s_check_views (omni_pgconn_t *pg, const char *const *build_override)
{
    char expected[4096];
    s_expected_commits (false, expected, sizeof expected);
    if (omni_log_enabled (LOGL_DEBUG))
        fprintf (stderr, "commits_per_day: %s\n", expected);
    pgtest_expect (pg, s_commits_sql, expected);
    s_expected_commits (true, expected, sizeof expected);
    pgtest_expect (pg, s_weekly_sql, expected);
    s_expected_builds (build_override, expected, sizeof expected);
    if (omni_log_enabled (LOGL_DEBUG))
        fprintf (stderr, "build_success_weekly: %s\n", expected);
    pgtest_expect (pg, s_builds_sql, expected);
    s_check_test_durations (pg);
    //  Host: the minute of D0 + 600 has three CPU samples and memory, the
    //  next one a single sample
    pgtest_expect (pg,
                   "SELECT string_agg (minute || ' ' || host || ' ' || cpu_user || ' ' || "
                   "coalesce (mem_used::text, '-'), ',' ORDER BY minute) FROM host_per_minute",
                   "2024-01-01 00:10:00+00 web-1 20 1000,2024-01-01 00:11:00+00 web-1 50 -");
}

//  The rollup views (TimescaleDB, timescale license) read continuous
//  aggregates. Here the aggregates are emulated by plain tables of the
//  same shape (date_trunc for time_bucket), in a schema of their own: the
//  rollup views must answer exactly what the raw views answer.
static void
s_check_rollup_views (omni_pgconn_t *pg)
{
    s_exec (pg, "DROP SCHEMA IF EXISTS rollup CASCADE; CREATE SCHEMA rollup");
    s_exec (pg, "CREATE TABLE rollup.points_daily AS SELECT date_trunc ('day', time, 'UTC') AS "
                "bucket, series_id, count (*) AS points, sum (value) AS total, "
                "min (value) AS low, max (value) AS high FROM points_data GROUP BY 1, 2");
    s_exec (pg, "CREATE TABLE rollup.points_weekly AS SELECT date_trunc ('week', time, 'UTC') AS "
                "bucket, series_id, count (*) AS points, sum (value) AS total, "
                "min (value) AS low, max (value) AS high FROM points_data GROUP BY 1, 2");
    s_exec (pg, "SET search_path = rollup, public");
    s_exec (pg, sql_rollup_views);
    s_exec (pg, "SET search_path = public");
    const char *views[] = {"commits_per_day", "commits_per_week", "build_success_weekly", NULL};
    for (int v = 0; v < 3; v++) {
        char sql[512];
        snprintf (sql, sizeof sql,
                  "SELECT (SELECT count (*) FROM public.%s) || ' ' || (SELECT count (*) FROM "
                  "(SELECT * FROM public.%s EXCEPT SELECT * FROM rollup.%s) d) || ' ' || "
                  "(SELECT count (*) FROM (SELECT * FROM rollup.%s EXCEPT SELECT * FROM "
                  "public.%s) d)",
                  views[v], views[v], views[v], views[v], views[v]);
        char *value = pgtest_value (pg, sql);
        assert (strcmp (strchr (value, ' '), " 0 0") == 0 && atoi (value) > 0);
        free (value);
        //  Same columns, same types
        snprintf (sql, sizeof sql,
                  "SELECT (SELECT string_agg (column_name || ' ' || data_type, ',' ORDER BY "
                  "ordinal_position) FROM information_schema.columns WHERE table_schema = "
                  "'public' AND table_name = '%s') = (SELECT string_agg (column_name || ' ' || "
                  "data_type, ',' ORDER BY ordinal_position) FROM information_schema.columns "
                  "WHERE table_schema = 'rollup' AND table_name = '%s')",
                  views[v], views[v]);
        pgtest_expect (pg, sql, "t");
    }
    s_exec (pg, "DROP SCHEMA rollup CASCADE");
}

typedef struct {
    const char *dsn;
    int base; //  which old months
    int rc;
} s_writer_arg_t;

//  A second metricsd writing old points at the same time as another one:
//  both need the same new partitions.
static void *
s_writer_thread (void *arg_)
{
    s_writer_arg_t *arg = arg_;
    char error[256];
    pointstore_config_t config = {arg->dsn, TSSCHEMA_NATIVE, "month", 0, false, 0, 1};
    pointstore_t *store = pointstore_new (&config, NULL, error, sizeof error);
    assert (store);
    testrec_t *recs = testrec_new ();
    for (int m = 0; m < 12; m++) {
        //  1980-01-15 + m months, roughly; 3 points each, shared by both threads
        int64_t t = INT64_C (316828800) + (int64_t) m * 30 * 86400 + arg->base;
        testrec_metric (recs, "old", t * NS, "legacy", m, "h");
    }
    arg->rc = s_write (store, recs);
    testrec_destroy (&recs);
    pointstore_destroy (&store);
    return NULL;
}

void
pointstore_test (bool verbose)
{
    omni_log_init ("pointstore-test", verbose ? "debug" : "error", "kv");
    char error[256];
    pointstore_config_t bad = {"port='unterminated", TSSCHEMA_NATIVE, "month", 0, false, 0, 1};
    assert (pointstore_new (&bad, NULL, error, sizeof error) == NULL);
    bad = (pointstore_config_t){"", TSSCHEMA_NATIVE, "fortnight", 0, false, 0, 1};
    assert (pointstore_new (&bad, NULL, error, sizeof error) == NULL);
    assert (strstr (error, "partition_interval"));
    char *dsn = pgtest_db_new ("pointstore");
    if (!dsn) {
        selftest_skip ("no PostgreSQL server ($OMNI_TEST_PG_DSN, else 127.0.0.1:5432)");
    }
    omni_metrics_t *metrics = omni_metrics_new ("test_");
    pointstore_config_t config = {dsn, TSSCHEMA_NATIVE, "month", 0, false, 0, 1};
    pointstore_t *store = pointstore_new (&config, metrics, error, sizeof error);
    assert (store);
    char text[256];
    pointstore_describe (store, text, sizeof text);
    assert (strcmp (text, "mode=unknown") == 0);
    assert (pointstore_connect (store) == 0);
    pointstore_describe (store, text, sizeof text);
    //  Made ahead of the data: this month and the next
    assert (strcmp (text, "mode=native partition_interval=month partitions=2") == 0);
    omni_pgconn_t *pg = omni_pgconn_new (dsn, error, sizeof error);
    assert (pg && omni_pgconn_ensure (pg) == 0);
    s_exec (pg, "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO'");

    //  A batch; the same batch again; every record twice in one batch
    testrec_t *recs = testrec_new ();
    s_batch (recs);
    assert (s_write (store, recs) == 0);
    char count[32];
    snprintf (count, sizeof count, "%zu", S_POINTS);
    pgtest_expect (pg, "SELECT count (*) FROM points", count);
    s_check_views (pg, NULL);
    //  New points were copied straight in; the second time they exist, so
    //  the batch is upserted
    //  Every series was resolved once, and made once
    char *series = pgtest_value (pg, "SELECT count (*) FROM points_series");
    char resolved[64];
    snprintf (resolved, sizeof resolved, "test_series_resolved_total %s\n", series);
    free (series);
    char *rendered = omni_metrics_render (metrics);
    assert (strstr (rendered, "test_batches_copied_total 1\n"));
    assert (strstr (rendered, "test_batches_upserted_total 0\n"));
    assert (strstr (rendered, resolved));
    free (rendered);
    //  Again: the series ids come from the cache
    assert (s_write (store, recs) == 0);
    pgtest_expect (pg, "SELECT count (*) FROM points", count);
    rendered = omni_metrics_render (metrics);
    assert (strstr (rendered, "test_batches_upserted_total 1\n"));
    assert (strstr (rendered, resolved));
    free (rendered);
    s_batch (recs);
    assert (s_write (store, recs) == 0);
    pgtest_expect (pg, "SELECT count (*) FROM points", count);
    s_check_views (pg, NULL);
    s_check_rollup_views (pg);
    //  The records' source is kept, and tags are jsonb
    pgtest_expect (pg,
                   "SELECT source || ' ' || (tags->>'author') || ' ' || value FROM points "
                   "WHERE name = 'git.insertions' AND tags->>'sha' = 'a1'",
                   "repo-a ann@example.org 10");

    //  A build seen again with another outcome: the value moves, no new point
    testrec_clear (recs);
    testrec_build (recs, "ci", (D0 + 4000) * NS, "deploy", "2", "success", "main", (D0 + 2000) * NS,
                   12.25);
    assert (s_write (store, recs) == 0);
    pgtest_expect (pg, "SELECT count (*) FROM points", count);
    const char *override[S_BUILDS] = {NULL, "success"};
    s_check_views (pg, override);

    //  Points older than any partition (and beyond the next one): their
    //  partitions appear, they are stored
    pgtest_expect (pg, "SELECT count (*) FROM metricsd_partitions ()",
                   "4"); //  + Jan 2024, Dec 2023
    testrec_clear (recs);
    testrec_metric (recs, "old-host", INT64_C (636508800) * NS, "legacy.value", 42, "old-host");
    testrec_commit (recs, "repo-old", "o1", "old@example.org", 0, INT64_C (636595200), 1, 1, 1);
    testrec_metric (recs, "old-host", INT64_C (-86400) * NS, "legacy.value", 7, "old-host");
    testrec_metric (recs, "far", INT64_C (9000000000) * NS, "future.value", 1, NULL);
    assert (s_write (store, recs) == 0);
    pgtest_expect (pg, "SELECT count (*) FROM metricsd_partitions ()", "7");
    pgtest_expect (pg,
                   "SELECT d.value || ' ' || d.tableoid::regclass FROM " S_DATA_OF
                   " WHERE s.name = 'legacy.value' AND d.time = '1990-03-04 00:00+00'",
                   "42 points_data_19900301");
    pgtest_expect (pg,
                   "SELECT d.tableoid::regclass || ' ' || d.value FROM " S_DATA_OF
                   " WHERE s.name = 'legacy.value' AND d.time < '1970-01-01'",
                   "points_data_19691201 7");
    pgtest_expect (pg, "SELECT count (*) FROM points WHERE source = 'repo-old'", "4");
    pgtest_expect (pg, "SELECT commits FROM commits_per_day WHERE repository = 'repo-old'", "1");
    pointstore_describe (store, text, sizeof text);
    assert (strstr (text, "partitions=7"));

    //  Two metricsd needing the same new partitions at once
    s_writer_arg_t args[2] = {{dsn, 0, -2}, {dsn, 0, -2}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        assert (pthread_create (&threads[i], NULL, s_writer_thread, &args[i]) == 0);
    for (int i = 0; i < 2; i++) {
        pthread_join (threads[i], NULL);
        assert (args[i].rc == 0);
    }
    pgtest_expect (pg,
                   "SELECT count (*) || ' ' || count (DISTINCT d.tableoid) FROM " S_DATA_OF
                   " WHERE s.name = 'legacy'",
                   "12 12");
    pgtest_expect (pg, "SELECT count (*) FROM metricsd_partitions ()", "19");

    //  A batch of new points shared over three connections, then the same
    //  batch again (a share meets its points: the batch is upserted), and
    //  with a value changed; a store with too many connections is refused
    bad = (pointstore_config_t){dsn, TSSCHEMA_NATIVE, "month", 0, false, 0, 9};
    assert (!pointstore_new (&bad, NULL, error, sizeof error) && strstr (error, "connections"));
    pointstore_config_t shared_config = {dsn, TSSCHEMA_NATIVE, "month", 0, false, 0, 3};
    pointstore_t *shared = pointstore_new (&shared_config, metrics, error, sizeof error);
    assert (shared && pointstore_connect (shared) == 0);
    testrec_clear (recs);
    for (int i = 0; i < 3000; i++) {
        char host[16];
        snprintf (host, sizeof host, "s%d", i % 7);
        testrec_metric (recs, host, (D0 + 100000 + i / 7) * NS, "shared", i, host);
    }
    assert (s_write (shared, recs) == 0);
    static const char *shared_sql =
        "SELECT count (*) || ' ' || sum (value) FROM points WHERE name = 'shared'";
    pgtest_expect (pg, shared_sql, "3000 4498500");
    assert (s_write (shared, recs) == 0);
    pgtest_expect (pg, shared_sql, "3000 4498500");
    testrec_clear (recs);
    testrec_metric (recs, "s0", (D0 + 100000) * NS, "shared", 1000000, "s0");
    assert (s_write (shared, recs) == 0);
    pgtest_expect (pg, shared_sql, "3000 5498500");
    pointstore_destroy (&shared);

    //  Key order (s_order): series interleaved, one of them delivered in
    //  reverse time order, and one (series, time) three times, once under
    //  another tags text of the same series ({"a","b"} and {"b","a"} are
    //  one jsonb): the last delivered value is the one stored
    testrec_clear (recs);
    for (int t = 0; t < 10; t++)
        for (int h = 0; h < 5; h++) {
            char host[16];
            snprintf (host, sizeof host, "k%d", h);
            int64_t at = h == 3 ? 9 - t : t; //  k3 backwards
            testrec_metric (recs, host, (D0 + 200000 + at) * NS, "keyed", h * 100 + at, host);
        }
    testrec_metric (recs, "k2", (D0 + 200003) * NS, "keyed", 7777, "k2");
    msgpack_packer *kpk = testrec_begin (recs, "metric", "k9", (D0 + 200004) * NS, 2);
    omni_record_pack_kv (kpk, "name", "keyed");
    omni_record_pack_kv_double (kpk, "value", 1);
    testrec_tag (recs, "a", "1");
    testrec_tag (recs, "b", "2");
    testrec_end (recs);
    testrec_metric (recs, "k2", (D0 + 200003) * NS, "keyed", 9999, "k2");
    kpk = testrec_begin (recs, "metric", "k9", (D0 + 200004) * NS, 2);
    omni_record_pack_kv (kpk, "name", "keyed");
    omni_record_pack_kv_double (kpk, "value", 2);
    testrec_tag (recs, "b", "2");
    testrec_tag (recs, "a", "1");
    testrec_end (recs);
    assert (s_write (store, recs) == 0);
    static const char *keyed_sql =
        "SELECT count (*) || ' ' || sum (value) FROM points WHERE name = 'keyed'";
    //  50 points, sum of h * 100 + t = 10 * 1000 + 5 * 45 = 10225, with
    //  k2's 203 replaced by 9999; k9's one point is 2
    pgtest_expect (pg, keyed_sql, "51 20023");
    pgtest_expect (pg,
                   "SELECT string_agg (value::text, ' ' ORDER BY time) FROM points WHERE "
                   "name = 'keyed' AND source = 'k3'",
                   "300 301 302 303 304 305 306 307 308 309");
    //  Existing points (upserted): the same rule
    testrec_clear (recs);
    testrec_metric (recs, "k2", (D0 + 200003) * NS, "keyed", 5, "k2");
    testrec_metric (recs, "k1", (D0 + 200003) * NS, "keyed", 6, "k1");
    testrec_metric (recs, "k2", (D0 + 200003) * NS, "keyed", 203, "k2");
    assert (s_write (store, recs) == 0);
    pgtest_expect (pg, keyed_sql, "51 10130");

    //  Host points in key order: each (source, day) of the batch is marked
    //  for the host figures, a series that crosses midnight on both days
    testrec_clear (recs);
    for (int i = 0; i < 3; i++) {
        int64_t midnight = D0 + 10 * 86400; //  2024-01-11
        testrec_metric (recs, "hd-a", (midnight - 10 + i * 10) * NS, "host.cpu.user", i, "hd-a");
        testrec_metric (recs, "hd-b", (midnight - 30 + i) * NS, "host.cpu.user", i, "hd-b");
        testrec_metric (recs, "hd-a", (midnight - 10 + i * 10) * NS, "host.mem.used", i, "hd-a");
    }
    assert (s_write (store, recs) == 0);
    pgtest_expect (pg,
                   "SELECT string_agg (source || ' ' || day, ',' ORDER BY source, day) FROM "
                   "(SELECT source, day FROM host_daily_pending UNION SELECT source, day FROM "
                   "host_daily) d WHERE source LIKE 'hd-_'",
                   "hd-a 2024-01-10,hd-a 2024-01-11,hd-b 2024-01-10");

    //  A partition dropped behind our back: the write fails, then succeeds
    s_exec (pg, "DROP TABLE points_data_19900301");
    testrec_clear (recs);
    testrec_metric (recs, "old-host", INT64_C (636508800) * NS, "legacy.value", 42, "old-host");
    assert (pointstore_write (store, testrec_records (recs), 1, NULL, error, sizeof error) == -1);
    assert (strstr (error, "23514"));
    assert (s_write (store, recs) == 0);
    pgtest_expect (pg, "SELECT count (*) FROM points_data_19900301", "1");

    //  Points that cannot be made are counted, the rest stored
    testrec_clear (recs);
    char huge[1500];
    memset (huge, 'x', sizeof huge - 1);
    huge[sizeof huge - 1] = 0;
    testrec_metric (recs, "web-2", (D0 + 5) * NS, "m", 1, huge);
    testrec_metric (recs, "web-2", (D0 + 5) * NS, "m", 2, "web-2");
    assert (s_write (store, recs) == 0);
    pgtest_expect (pg, "SELECT count (*) FROM points WHERE source = 'web-2'", "1");
    //  A batch with nothing for metricsd: acknowledged, nothing written
    testrec_clear (recs);
    msgpack_packer *pk = testrec_begin (recs, "git.tag", "repo-a", D0 * NS, 3);
    omni_record_pack_kv (pk, "name", "v1");
    omni_record_pack_kv (pk, "target", "a1");
    msgpack_pack_str_with_body (pk, "annotated", 9);
    msgpack_pack_false (pk);
    testrec_end (recs);
    assert (s_write (store, recs) == 0);

    rendered = omni_metrics_render (metrics);
    assert (strstr (rendered, "test_points_skipped_total{reason=\"too_large\"} 1"));
    assert (strstr (rendered, "test_records_ignored_total 5"));
    free (rendered);

    //  The session ends under the store (server restart, network): the
    //  write fails (the writer retries), and a later one goes through
    pgtest_expect (pg,
                   "SELECT count (pg_terminate_backend (pid)) FROM pg_stat_activity WHERE "
                   "datname = current_database () AND pid <> pg_backend_pid ()",
                   "1");
    testrec_clear (recs);
    testrec_metric (recs, "web-3", (D0 + 5) * NS, "m", 3, NULL);
    int rc = pointstore_write (store, testrec_records (recs), 1, NULL, error, sizeof error);
    int64_t deadline = omni_util_mono_ms () + 10000;
    while (rc != 0 && omni_util_mono_ms () < deadline) {
        assert (strstr (error, "postgresql"));
        zclock_sleep (20);
        rc = pointstore_write (store, testrec_records (recs), 1, NULL, error, sizeof error);
    }
    assert (rc == 0);
    pgtest_expect (pg, "SELECT count (*) FROM points WHERE source = 'web-3'", "1");
    assert (pointstore_healthy (store, text, sizeof text));
    //  A permanent problem found by the schema check (here set by hand: the
    //  license case needs TimescaleDB) fails /health naming it, and a failed
    //  batch says so first; the next clean check clears it
    snprintf (store->problem, sizeof store->problem, "license=apache but 3 chunks ...");
    assert (!pointstore_healthy (store, text, sizeof text));
    assert (strcmp (text, "permanent: license=apache but 3 chunks ...") == 0);
    char failed[256];
    assert (omni_pgconn_exec (store->conn, "SELECT no_such_function ()") == PGCONN_FAILED);
    assert (s_failed (store, PGCONN_FAILED, 1, failed, sizeof failed) == -1);
    assert (strncmp (failed, "permanent problem, see /health", 30) == 0);
    assert (pointstore_connect (store) == 0); //  s_failed reset the session
    assert (pointstore_healthy (store, text, sizeof text));

    //  A server that is not there: -1 and unhealthy
    pointstore_config_t away_config = {
        "host=127.0.0.1 port=1 connect_timeout=1", TSSCHEMA_AUTO, "month", 0, false, 0, 1};
    pointstore_t *away = pointstore_new (&away_config, NULL, error, sizeof error);
    assert (away);
    assert (pointstore_connect (away) == 1);
    assert (pointstore_write (away, testrec_records (recs), 1, NULL, error, sizeof error) == -1);
    assert (strstr (error, "postgresql"));
    assert (!pointstore_healthy (away, text, sizeof text));
    pointstore_destroy (&away);
    //  A database set up natively, metricsd told to use TimescaleDB: refused
    pointstore_config_t forced = {dsn, TSSCHEMA_TIMESCALEDB, "month", 0, false, 0, 1};
    away = pointstore_new (&forced, NULL, error, sizeof error);
    assert (pointstore_connect (away) == -1);
    pointstore_destroy (&away);

    testrec_destroy (&recs);
    omni_pgconn_destroy (&pg);
    pointstore_destroy (&store);
    assert (store == NULL);
    omni_metrics_destroy (&metrics);
    pgtest_db_drop (dsn);
    free (dsn);
}
