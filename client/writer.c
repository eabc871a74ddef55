/*  writer: the delivery-protocol loop shared by every writer daemon.

    Records of one store batch may span several DELIVER messages; the
    messages are kept until the batch is committed because the decoded
    records point into them. A batch is deduplicated by id before the
    store sees it (last occurrence wins): a collector that resent a batch can
    put the same record twice into the journal, and a store statement such as
    PostgreSQL's INSERT ... ON CONFLICT cannot touch one row twice.

    Why a store thread. Receiving and decoding a batch and committing the
    previous one use different resources (CPU here, the store's disk or
    round trips there), so they overlap: the main thread owns the socket and
    fills one batch while the store thread commits the other, and the main
    thread acknowledges a batch when the store thread says it is committed.
    One batch is committed at a time, in delivery order. A batch committed
    after a RESET or WELCOME belongs to a delivery session that is over: it
    is not acknowledged, ingestd delivers it again, and the idempotent store
    skips it. While the store is away or slow the main thread keeps
    sending heartbeats and keeps reading: once the next batch is full, the
    DELIVERs that come are held (no more than the window ingestd may send)
    and taken up when the batch is free, so heartbeats from ingestd are
    still heard and a busy store is never mistaken for ingestd gone.

    Why conflicts are handled here. A record of an immutable kind under an
    id already stored, with other content, is either a forgery or a
    collector bug: the first stays, and the second is evidence that must
    not vanish. Each store only says which records met such an id (it alone
    can compare with what it holds); the counting, the log line, the
    conflicts file and the report to ingestd's tap are the same for every
    writer, so they live here once. The file is written and fsynced by the
    store thread before the batch counts as committed: a failure to file
    them is a failed commit, retried like one (the store flags the same
    records again), so nothing is acknowledged before the evidence is
    durable. Inside one batch the same applies: the first occurrence of an
    immutable kind's id stays, a later one with other content is a
    conflict, where for mutable kinds the last state wins as before.

    Why messages are received by hand (s_recv). A DELIVER carries one frame
    per record; as a czmq message each record cost a frame and a list node
    (allocations, a socket option read, frees): 1,500 of metricsd's 10,700
    instructions per point (issue 20). The loop receives each frame into one
    zmq_msg_t and copies the record to the end of its message's buffer; the
    head's few frames stay zmq_msg_t, decoded as they come. Messages, with
    their buffers, are reused once their batch is committed. The writer asks
    for DELIVERP (HELLO's features): the records in one frame, which costs
    libzmq one frame where DELIVER costs one per record; an ingestd that does
    not know it sends DELIVER, read as before.

    Why a malformed DELIVERP stops the writer. ACKs are cumulative: a
    DELIVER dropped as unreadable, then a later one acknowledged, would
    acknowledge records never stored. Only a bug or a version skew makes
    one (ingestd packs it; TCP carries it whole), so the writer exits
    saying so, and restarted it is delivered them again from its cursor.   */
#include "client/writer.h"
#include "common/buf.h"
#include "common/idset.h"
#include "common/log.h"
#include "proto/mpjson.h"
#include "common/util.h"
#include "proto/wire.h"
#include "testsupport/testpeer.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define HEARTBEAT_MS 1000

//  A message from ingestd as the loop keeps it (s_recv): its head's frames,
//  decoded into `head` (which points into them), and for a DELIVER its
//  records end to end in `records`, `sizes[i]` bytes each. The decoded
//  records point into `records`: it does not change until the message is
//  released, after its batch is committed.
typedef struct _s_message_t s_message_t;
struct _s_message_t {
    zmq_msg_t parts[WIRE_HEAD_MAX]; //  the head's frames
    size_t nparts;
    size_t frames;         //  frames the message had, head included
    int fed;               //  omni_wire_head_feed's answer: 1 a head, -1 refused
    bool fatal;            //  a DELIVERP whose records cannot be read (fed is -1)
    omni_wire_head_t head; //  when fed is 1
    char why[192];         //  when fed is -1
    omni_buf_t records;
    size_t *sizes;
    size_t count, sizes_cap;
    s_message_t *next; //  in the writer's pool
};

//  Messages kept for reuse, and a buffer over this is freed, not kept:
//  a few DELIVERs of up to 1,000 records are in flight at a time.
#define POOL_MAX        16
#define POOL_BUFFER_MAX (1 << 20)

typedef struct {
    zlist_t *messages; //  DELIVER messages whose records are in the batch
    omni_record_t *records;
    size_t count, capacity;
    msgpack_zone zone;
    uint64_t upto; //  last offset covered by the batch (0 = empty)
    int64_t started_ms;
    uint64_t session; //  the delivery session (WELCOME) it came in
    uint8_t *flags;   //  per record: the store found a conflict
    size_t flags_cap;
    omni_record_t *conflicts; //  records kept out as conflicts, filed with the commit
    size_t nconflicts, conflicts_cap;
    //  Records of an immutable kind whose id came earlier in the batch with
    //  other content: stored after the batch (s_store_later), so that the
    //  store compares them with what it holds, whichever came first
    omni_record_t *later, *round; //  round: room for a round and what remains after it
    size_t nlater, later_cap, round_cap;
} s_batch_t;

struct _omni_writer_t {
    omni_writer_config_t config;
    char *endpoint, *name;
    char instance[160]; //  host:pid@start, sent in HELLO
    char *refusal;      //  why ingestd refused this writer's name, or NULL
    char *fault;        //  what ingestd sent that this writer could not read, or NULL
    writer_store_fn *store_fn;
    void *store;
    zsock_t *dealer;
    omni_curve_watch_t *curve_watch; //  logs a key ingestd refuses

    s_batch_t batches[2];
    s_batch_t *filling;      //  gathering deliveries (main thread)
    s_batch_t *storing;      //  with the store thread, or NULL
    uint64_t session;        //  counts WELCOMEs and RESETs
    uint64_t delivered_upto; //  last offset taken in this session
    uint64_t acked_upto;     //  last offset acknowledged to ingestd
    bool welcomed;
    int64_t last_sent_ms, last_heard_ms;
    zlist_t *held;     //  DELIVERs received while the next batch was full
    s_message_t *pool; //  released messages (main thread)
    size_t pooled;     //  how many
    zmq_msg_t record;  //  a DELIVER's record frames are received into this

    //  The store thread and what passes between it and the main thread.
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    s_batch_t *job;    //  to commit; NULL when the thread is idle
    bool job_draining; //  one attempt only
    int job_result;    //  0 committed, -1 not
    bool quit;
    int done_fd;             //  eventfd the thread signals when a job is over
    omni_idset_t *batch_ids; //  for s_dedup (store thread)

    atomic_bool connected;
    atomic_bool stopping;
    atomic_bool store_ok;
    atomic_int_fast64_t busy_since_ms; //  commit in progress since, 0 = idle
    atomic_int_fast64_t heard_ms;      //  last message from ingestd (for /health)
    atomic_size_t busy_records;
    char last_error[256];        //  under lock
    atomic_bool store_permanent; //  the last failure was WRITER_STORE_PERMANENT
    char last_reset[256];        //  why ingestd last sent RESET, until WELCOME (under lock)
    char *conflicts_path;        //  the conflicts file
    omni_buf_t conflict_buf;     //  its lines (store thread)
    atomic_uint_fast64_t conflicts_total;
    char last_conflict[192]; //  kind and id of the last one (under lock)

    omni_metric_t *m_delivered, *m_stored, *m_batches, *m_retries, *m_duplicates, *m_undecodable,
        *m_store_up, *m_latency, *m_acked_offset, *m_conflicts;
};

static omni_metric_t *
s_counter (omni_metrics_t *metrics, const char *name, const char *help)
{
    return metrics ? omni_metrics_counter (metrics, name, help, NULL) : NULL;
}

static void
s_add (omni_metric_t *metric, uint64_t n)
{
    if (metric)
        omni_metric_add (metric, n);
}

static void
s_set (omni_metric_t *metric, double value)
{
    if (metric)
        omni_metric_set (metric, value);
}

static void *s_store_thread (void *arg);

omni_writer_t *
omni_writer_new (const omni_writer_config_t *config, writer_store_fn *store_fn, void *store,
                 omni_metrics_t *metrics)
{
    omni_writer_t *self = calloc (1, sizeof *self);
    assert (self);
    self->config = *config;
    if (!self->config.batch_size)
        self->config.batch_size = 1000;
    if (!self->config.flush_ms)
        self->config.flush_ms = 200;
    if (!self->config.window)
        self->config.window = (uint32_t) (4 * self->config.batch_size);
    if (!self->config.retry_min_ms)
        self->config.retry_min_ms = 100;
    if (!self->config.retry_max_ms)
        self->config.retry_max_ms = 5000;
    self->endpoint = strdup (config->endpoint);
    self->name = strdup (config->name);
    const char *dir =
        config->conflicts_dir && *config->conflicts_dir ? config->conflicts_dir : "var/conflicts";
    self->config.conflicts_dir = NULL; //  the caller's string need not outlive this
    size_t path_size = strlen (dir) + strlen (self->name) + 8;
    self->conflicts_path = malloc (path_size);
    assert (self->conflicts_path);
    snprintf (self->conflicts_path, path_size, "%s/%s.jsonl", dir, self->name);
    atomic_init (&self->conflicts_total, 0);
    //  Host, pid and start time: another process, even with the same pid
    //  after a reboot or in another container, is another instance.
    char host[64] = "localhost", started[32];
    gethostname (host, sizeof host - 1);
    time_t now = time (NULL);
    struct tm tm;
    strftime (started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", gmtime_r (&now, &tm));
    snprintf (self->instance, sizeof self->instance, "%s:%d@%s", host, (int) getpid (), started);
    self->store_fn = store_fn;
    self->store = store;
    for (int b = 0; b < 2; b++) {
        self->batches[b].messages = zlist_new ();
        msgpack_zone_init (&self->batches[b].zone, 64 * 1024);
    }
    self->filling = &self->batches[0];
    self->held = zlist_new ();
    zmq_msg_init (&self->record);
    self->batch_ids = omni_idset_new ();
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    self->done_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert (self->done_fd >= 0);
    atomic_init (&self->connected, false);
    atomic_init (&self->stopping, false);
    atomic_init (&self->store_ok, true);
    atomic_init (&self->busy_since_ms, 0);
    atomic_init (&self->heard_ms, 0);
    atomic_init (&self->busy_records, 0);
    self->m_delivered =
        s_counter (metrics, "records_delivered_total", "Records received from ingestd");
    self->m_stored = s_counter (metrics, "records_stored_total",
                                "Records committed to the store and acknowledged");
    self->m_batches = s_counter (metrics, "batches_total", "Store batches committed");
    self->m_retries = s_counter (metrics, "store_retries_total",
                                 "Store batch writes that failed and were retried");
    self->m_duplicates = s_counter (metrics, "duplicates_in_batch_total",
                                    "Records dropped because the same id was later in the batch");
    self->m_undecodable = s_counter (metrics, "records_undecodable_total",
                                     "Delivered records that failed to decode (skipped)");
    self->m_conflicts =
        s_counter (metrics, "conflicts_total",
                   "Records under an id already stored with other content (immutable kinds): "
                   "the first kept, these filed in the conflicts area");
    if (metrics) {
        self->m_store_up =
            omni_metrics_gauge (metrics, "store_up", "1 when the store accepts writes", NULL);
        self->m_acked_offset =
            omni_metrics_gauge (metrics, "acked_offset", "Last journal offset acknowledged", NULL);
        self->m_latency = omni_metrics_histogram (
            metrics, "batch_write_seconds", "Time to commit one batch to the store", NULL,
            omni_metrics_latency_bounds, omni_metrics_latency_nbounds);
        omni_metric_set (self->m_store_up, 1);
    }
    return self;
}

static bool
s_stopping (omni_writer_t *self)
{
    return zsys_interrupted || atomic_load (&self->stopping);
}

void
omni_writer_stop (omni_writer_t *self)
{
    atomic_store (&self->stopping, true);
}

//  A message to receive into: from the pool, else new
static s_message_t *
s_message_new (omni_writer_t *self)
{
    s_message_t *msg = self->pool;
    if (msg) {
        self->pool = msg->next;
        self->pooled--;
    } else {
        msg = calloc (1, sizeof *msg);
        assert (msg);
    }
    for (size_t i = 0; i < WIRE_HEAD_MAX; i++)
        zmq_msg_init (&msg->parts[i]);
    msg->nparts = msg->frames = msg->count = 0;
    msg->fed = 0;
    msg->fatal = false;
    msg->why[0] = 0;
    omni_buf_reset (&msg->records);
    return msg;
}

static void
s_message_free (s_message_t *msg)
{
    omni_buf_release (&msg->records);
    free (msg->sizes);
    free (msg);
}

//  Back to the pool (or freed when the pool is full or its buffer large)
static void
s_message_release (omni_writer_t *self, s_message_t **msg_p)
{
    s_message_t *msg = *msg_p;
    if (!msg)
        return;
    for (size_t i = 0; i < WIRE_HEAD_MAX; i++)
        zmq_msg_close (&msg->parts[i]);
    if (self->pooled < POOL_MAX && msg->records.capacity <= POOL_BUFFER_MAX) {
        msg->next = self->pool;
        self->pool = msg;
        self->pooled++;
    } else
        s_message_free (msg);
    *msg_p = NULL;
}

//  DELIVERP's frame of records, after its head: into `msg` as a DELIVER's
//  frames would be (its records end to end, their sizes). False when no
//  frame came (the context ends).
static bool
s_recv_packed (omni_writer_t *self, s_message_t *msg)
{
    if (omni_wire_recv_part (zsock_resolve (self->dealer), &self->record, 0)) {
        msg->fed = -1;
        snprintf (msg->why, sizeof msg->why, "DELIVERP cut short");
        return false;
    }
    msg->frames++;
    size_t count;
    const uint8_t *records;
    char why[128];
    const void *frame = zmq_msg_data (&self->record);
    size_t size = zmq_msg_size (&self->record);
    if (omni_wire_unpack (frame, size, &count, &records, why, sizeof why)) {
        msg->fed = -1;
        msg->fatal = true;
        snprintf (msg->why, sizeof msg->why, "DELIVERP up to %" PRIu64 ": %s", msg->head.upto, why);
        return true;
    }
    omni_buf_append (&msg->records, records, size - (size_t) (records - (const uint8_t *) frame));
    omni_array_reserve (msg->sizes, msg->sizes_cap, count);
    for (size_t i = 0; i < count; i++)
        msg->sizes[i] = omni_wire_packed_size (frame, i);
    msg->count = count;
    //  A DELIVER from here on (s_take_deliver, the fuzzer): the same records
    msg->head.command = WIRE_DELIVER;
    return true;
}

//  One message from ingestd, if one is waiting: the head frame by frame
//  through the codec, then a DELIVER's records into the message's buffer;
//  what follows another head (fields of a later version) is dropped.
static s_message_t *
s_recv (omni_writer_t *self)
{
    s_message_t *msg = s_message_new (self);
    bool more = true;
    while (more && msg->nparts < WIRE_HEAD_MAX && msg->fed == 0) {
        zmq_msg_t *part = &msg->parts[msg->nparts];
        if (omni_wire_recv_part (zsock_resolve (self->dealer), part,
                                 msg->nparts ? 0 : ZMQ_DONTWAIT)) {
            if (msg->nparts == 0) { //  nothing waiting after all
                s_message_release (self, &msg);
                return NULL;
            }
            break;
        }
        more = zmq_msg_more (part);
        msg->fed = omni_wire_head_feed (WIRE_DELIVERY, &msg->head, msg->nparts, zmq_msg_data (part),
                                        zmq_msg_size (part), more, msg->why, sizeof msg->why);
        msg->nparts++;
    }
    if (msg->fed == 0) {
        msg->fed = -1;
        snprintf (msg->why, sizeof msg->why, "an incomplete head");
    }
    msg->frames = msg->nparts;
    bool deliver = msg->fed > 0 && msg->head.command == WIRE_DELIVER;
    if (more && msg->fed > 0 && msg->head.command == WIRE_DELIVERP) {
        //  Frames after it are read past below, so the next message starts
        //  where it should
        more = s_recv_packed (self, msg) && zmq_msg_more (&self->record);
        if (more && msg->fed > 0) {
            msg->fed = -1;
            msg->fatal = true;
            snprintf (msg->why, sizeof msg->why, "DELIVERP with more than one frame of records");
        }
    } else if (msg->fed > 0 && msg->head.command == WIRE_DELIVERP) {
        msg->fed = -1;
        msg->fatal = true;
        snprintf (msg->why, sizeof msg->why, "DELIVERP without its frame of records");
    }
    while (more) {
        if (omni_wire_recv_part (zsock_resolve (self->dealer), &self->record, 0)) {
            //  The context ends under it: a DELIVER cut short must not
            //  count as delivered up to its offset
            msg->fed = -1;
            snprintf (msg->why, sizeof msg->why, "cut short after %zu frames", msg->frames);
            break;
        }
        more = zmq_msg_more (&self->record);
        msg->frames++;
        if (deliver) {
            omni_buf_append (&msg->records, zmq_msg_data (&self->record),
                             zmq_msg_size (&self->record));
            *omni_array_push (msg->sizes, msg->count, msg->sizes_cap) =
                zmq_msg_size (&self->record);
        }
    }
    return msg;
}

static void
s_clear_batch (omni_writer_t *self, s_batch_t *batch)
{
    s_message_t *msg;
    while ((msg = zlist_pop (batch->messages)))
        s_message_release (self, &msg);
    batch->count = 0;
    batch->upto = 0;
    batch->nconflicts = batch->nlater = 0;
    msgpack_zone_clear (&batch->zone);
}

void
omni_writer_destroy (omni_writer_t **self_p)
{
    omni_writer_t *self = *self_p;
    if (!self)
        return;
    if (self->thread_started) {
        pthread_mutex_lock (&self->lock);
        self->quit = true;
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->lock);
        pthread_join (self->thread, NULL);
    }
    for (int b = 0; b < 2; b++) {
        s_clear_batch (self, &self->batches[b]);
        zlist_destroy (&self->batches[b].messages);
        msgpack_zone_destroy (&self->batches[b].zone);
        free (self->batches[b].records);
        free (self->batches[b].flags);
        free (self->batches[b].conflicts);
        free (self->batches[b].later);
        free (self->batches[b].round);
    }
    s_message_t *held;
    while ((held = zlist_pop (self->held)))
        s_message_release (self, &held);
    zlist_destroy (&self->held);
    while (self->pool) {
        s_message_t *msg = self->pool;
        self->pool = msg->next;
        s_message_free (msg);
    }
    zmq_msg_close (&self->record);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->wake);
    close (self->done_fd);
    omni_idset_destroy (&self->batch_ids);
    omni_curve_watch_destroy (&self->curve_watch);
    zsock_destroy (&self->dealer);
    free (self->endpoint);
    free (self->name);
    free (self->refusal);
    free (self->fault);
    free (self->conflicts_path);
    omni_buf_release (&self->conflict_buf);
    free (self);
    *self_p = NULL;
}

//  Never blocks: while ingestd is away the socket refuses rather than
//  queueing stale heartbeats; the next heartbeat says the same thing.
//  Returns whether the head went (record frames, if `more`, follow).
static bool
s_send (omni_writer_t *self, const omni_wire_head_t *head, bool more)
{
    self->last_sent_ms = omni_util_mono_ms ();
    return omni_wire_send_head (zsock_resolve (self->dealer), NULL, 0, head, more, ZMQ_DONTWAIT) ==
           0;
}

static void
s_send_hello (omni_writer_t *self)
{
    omni_wire_head_t head = {.command = WIRE_HELLO,
                             .text = self->name,
                             .text_size = strlen (self->name),
                             .window = self->config.window,
                             .instance = self->instance,
                             .instance_size = strlen (self->instance),
                             .features = WIRE_FEATURE_PACKED,
                             .features_size = strlen (WIRE_FEATURE_PACKED)};
    s_send (self, &head, false);
}

static void
s_send_ack (omni_writer_t *self)
{
    omni_wire_head_t head = {
        .command = WIRE_DELIVERY_ACK, .upto = self->acked_upto, .window = self->config.window};
    s_send (self, &head, false);
    s_set (self->m_acked_offset, (double) self->acked_upto);
}

//  ---------------------------------------------------------------------------
//  Store thread

static void
s_add_conflict (s_batch_t *batch, const omni_record_t *record)
{
    *omni_array_push (batch->conflicts, batch->nconflicts, batch->conflicts_cap) = *record;
}

//  Batch positions in id order, then batch order
static int
s_by_id (const void *a, const void *b, void *arg)
{
    const omni_record_t *records = arg;
    size_t i = *(const size_t *) a, j = *(const size_t *) b;
    int c = memcmp (records[i].id, records[j].id, RECORD_ID_SIZE);
    return c ? c : i < j ? -1 : i > j;
}

//  One record per id, keeping batch order. A batch rarely holds an id twice
//  (a collector resent a batch), so one pass over a set says whether it
//  does; only then are the records grouped by id: for a mutable kind the
//  last state wins; for the others the first stays, the same content again
//  is dropped, and other content is kept aside for s_store_later.
static void
s_dedup (omni_writer_t *self, s_batch_t *batch)
{
    if (batch->count < 2)
        return;
    omni_idset_reset (self->batch_ids);
    bool twice = false;
    for (size_t i = 0; i < batch->count && !twice; i++)
        twice = !omni_idset_insert (self->batch_ids, batch->records[i].id);
    if (!twice)
        return;
    omni_record_t *records = batch->records;
    size_t n = batch->count, dropped = 0;
    size_t *order = malloc (n * sizeof *order);
    uint8_t *keep = calloc (n, 1);
    assert (order && keep);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r (order, n, sizeof *order, s_by_id, records);
    for (size_t g = 0, e; g < n; g = e) {
        for (e = g + 1;
             e < n && memcmp (records[order[e]].id, records[order[g]].id, RECORD_ID_SIZE) == 0; e++)
            ;
        const omni_record_t *first = &records[order[g]];
        if (e - g == 1 || (first->spec && first->spec->mutable_state)) {
            keep[order[e - 1]] = 1;
            dropped += e - g - 1;
            continue;
        }
        keep[order[g]] = 1;
        uint8_t content[RECORD_CONTENT_SIZE], other[RECORD_CONTENT_SIZE];
        omni_record_content_hash (first, content);
        for (size_t k = g + 1; k < e; k++) {
            omni_record_content_hash (&records[order[k]], other);
            if (memcmp (content, other, RECORD_CONTENT_SIZE) == 0) {
                dropped++;
                continue;
            }
            *omni_array_push (batch->later, batch->nlater, batch->later_cap) = records[order[k]];
            //  Room for a round and what remains after it (s_store_all)
            omni_array_reserve (batch->round, batch->round_cap, 2 * batch->later_cap);
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i])
            records[kept++] = records[i];
    batch->count = kept;
    s_add (self->m_duplicates, dropped);
    free (order);
    free (keep);
}

//  Appends the batch's conflicts to the conflicts file, one JSON line each,
//  and fsyncs it. Returns -1 with `error` set when that fails.
static int
s_file_conflicts (omni_writer_t *self, s_batch_t *batch, char *error, size_t error_size)
{
    omni_buf_t *buf = &self->conflict_buf;
    omni_buf_reset (buf);
    char head[160];
    int64_t now = omni_util_now_ns ();
    for (size_t i = 0; i < batch->nconflicts; i++) {
        snprintf (head, sizeof head,
                  "{\"writer\":\"%s\",\"detected_ns\":%" PRId64 ",\"record\":", self->name, now);
        omni_buf_append (buf, head, strlen (head));
        omni_mpjson_record (buf, &batch->conflicts[i]);
        omni_buf_append (buf, "}\n", 2);
    }
    char *dir = strdup (self->conflicts_path);
    assert (dir);
    *strrchr (dir, '/') = 0;
    int fd = omni_util_mkdirs (dir)
                 ? -1
                 : open (self->conflicts_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    int err = errno;
    free (dir);
    bool ok = fd >= 0;
    for (size_t done = 0; ok && done < buf->size;) {
        ssize_t n = write (fd, buf->data + done, buf->size - done);
        if (n < 0 && errno == EINTR)
            continue;
        ok = n > 0;
        err = errno;
        done += ok ? (size_t) n : 0;
    }
    if (ok && fsync (fd) != 0) {
        ok = false;
        err = errno;
    }
    if (fd >= 0)
        close (fd);
    if (!ok)
        snprintf (error, error_size,
                  "conflicts file %s: %s (conflicts are filed before their batch is acknowledged)",
                  self->conflicts_path, strerror (err));
    return ok ? 0 : -1;
}

//  The conflicts of a committed batch: counted, logged, shown in /health
//  and sent to ingestd for its tap (best effort: the file has them). Only
//  what ingestd's delivery socket takes is sent (wire.h): a larger frame
//  would close the connection before the ACK that follows, the batch would
//  come again, and its conflicts with it, for ever.
static void
s_report_conflicts (omni_writer_t *self, s_batch_t *batch)
{
    bool sent = false;
    size_t in_message = 0;
    for (size_t i = 0; i < batch->nconflicts; i++) {
        const omni_record_t *record = &batch->conflicts[i];
        bool fits = record->raw_size <= WIRE_DELIVERY_FRAME_MAX;
        char id[2 * RECORD_ID_SIZE + 1], kind[64];
        omni_util_hex (record->id, RECORD_ID_SIZE, id);
        snprintf (kind, sizeof kind, "%.*s", (int) (record->kind.len < 63 ? record->kind.len : 63),
                  record->kind.ptr);
        uint64_t held;
        if (omni_log_allow ("writer.conflict", kind, 10000, &held))
            log_warn ("writer.conflict",
                      "writer=%s kind=%s id=%s file=%s repeated=%" PRIu64 " tap=%s"
                      " detail=\"other content under an id already stored: the first is kept, "
                      "this one filed\"",
                      self->name, kind, id, self->conflicts_path, held,
                      fits ? "yes" : "no (larger than a delivery frame)");
        pthread_mutex_lock (&self->lock);
        snprintf (self->last_conflict, sizeof self->last_conflict, "%s/%s", kind, id);
        pthread_mutex_unlock (&self->lock);
        if (!fits)
            continue;
        //  The rest of a message whose head went never blocks
        if (in_message == 0) {
            omni_wire_head_t head = {.command = WIRE_CONFLICT};
            sent = s_send (self, &head, true);
        }
        size_t left = 0; //  records that will still go in this message
        for (size_t j = i + 1;
             j < batch->nconflicts && in_message + 1 + left < WIRE_CONFLICT_RECORDS; j++)
            left += batch->conflicts[j].raw_size <= WIRE_DELIVERY_FRAME_MAX;
        bool last = left == 0;
        if (sent)
            omni_wire_send_record (zsock_resolve (self->dealer), record->raw, record->raw_size,
                                   last);
        in_message = last ? 0 : in_message + 1;
    }
    atomic_fetch_add (&self->conflicts_total, batch->nconflicts);
    s_add (self->m_conflicts, batch->nconflicts);
}

//  Commits the batch, retrying with backoff while the store is away. Returns
//  0 when committed, -1 when stopped before a commit (the batch stays
//  unacknowledged and ingestd will deliver it again); a draining batch gets
//  one attempt.
static int s_commit_attempts (omni_writer_t *self, s_batch_t *batch, bool draining);

static int
s_commit (omni_writer_t *self, s_batch_t *batch, bool draining)
{
    s_dedup (self, batch);
    atomic_store (&self->busy_records, batch->count);
    atomic_store (&self->busy_since_ms, omni_util_mono_ms ());
    int rc = s_commit_attempts (self, batch, draining);
    atomic_store (&self->busy_since_ms, 0);
    return rc;
}

//  One store call; the records it flags join the batch's conflicts
static int
s_store_round (omni_writer_t *self, s_batch_t *batch, const omni_record_t *records, size_t count,
               char *error, size_t error_size)
{
    memset (batch->flags, 0, count);
    int rc = self->store_fn (self->store, records, count, batch->flags, error, error_size);
    for (size_t i = 0; rc == 0 && i < count; i++)
        if (batch->flags[i])
            s_add_conflict (batch, &records[i]);
    return rc;
}

//  The batch, then what s_dedup kept aside, in rounds of distinct ids: the
//  store compares each with what it holds by then (the batch's first
//  occurrence, or an earlier record), so the one flagged is the one that
//  came second, wherever the first was. Rare, so a round is a store call.
static int
s_store_all (omni_writer_t *self, s_batch_t *batch, char *error, size_t error_size)
{
    batch->nconflicts = 0;
    int rc = s_store_round (self, batch, batch->records, batch->count, error, error_size);
    size_t left = batch->nlater;
    omni_record_t *rest = batch->round + batch->later_cap;
    if (left)
        memcpy (rest, batch->later, left * sizeof *rest);
    while (rc == 0 && left) {
        omni_idset_reset (self->batch_ids);
        size_t n = 0, kept = 0;
        for (size_t i = 0; i < left; i++)
            if (omni_idset_insert (self->batch_ids, rest[i].id))
                batch->round[n++] = rest[i];
            else
                rest[kept++] = rest[i];
        rc = s_store_round (self, batch, batch->round, n, error, error_size);
        left = kept;
    }
    return rc;
}

static int
s_commit_attempts (omni_writer_t *self, s_batch_t *batch, bool draining)
{
    int64_t backoff = self->config.retry_min_ms;
    size_t records = batch->count + batch->nlater;
    while (batch->count > 0) {
        char error[256] = "";
        int64_t start = omni_util_mono_ms ();
        int rc = s_store_all (self, batch, error, sizeof error);
        if (rc == 0 && batch->nconflicts)
            rc = s_file_conflicts (self, batch, error, sizeof error);
        if (rc == 0) {
            if (self->m_latency)
                omni_metric_observe (self->m_latency,
                                     (double) (omni_util_mono_ms () - start) / 1000.0);
            if (!atomic_load (&self->store_ok)) {
                log_info ("store.recovered", "writer=%s", self->name);
                atomic_store (&self->store_ok, true);
                s_set (self->m_store_up, 1);
            }
            s_add (self->m_stored, records - batch->nconflicts);
            s_add (self->m_batches, 1);
            return 0;
        }
        s_add (self->m_retries, 1);
        bool permanent = rc == WRITER_STORE_PERMANENT;
        if (atomic_load (&self->store_ok) || permanent != atomic_load (&self->store_permanent)) {
            if (permanent)
                log_error ("store.refused",
                           "writer=%s records=%zu error=\"%s\" detail=\"permanent: an operator "
                           "must act; retried every %lld ms, nothing is acknowledged meanwhile\"",
                           self->name, batch->count, error, (long long) self->config.retry_max_ms);
            else
                log_warn ("store.failed", "writer=%s records=%zu error=\"%s\"", self->name,
                          batch->count, error);
        }
        atomic_store (&self->store_permanent, permanent);
        pthread_mutex_lock (&self->lock);
        snprintf (self->last_error, sizeof self->last_error, "%s", error);
        pthread_mutex_unlock (&self->lock);
        atomic_store (&self->store_ok, false);
        s_set (self->m_store_up, 0);
        if (draining || s_stopping (self))
            return -1;
        //  Nothing will change by itself: ask again at the ceiling only
        if (permanent)
            backoff = self->config.retry_max_ms;
        int64_t until = omni_util_mono_ms () + backoff;
        while (!s_stopping (self) && omni_util_mono_ms () < until)
            zclock_sleep (50);
        if (s_stopping (self))
            return -1;
        backoff = backoff * 2 > self->config.retry_max_ms ? self->config.retry_max_ms : backoff * 2;
    }
    return 0;
}

static void *
s_store_thread (void *arg)
{
    omni_writer_t *self = arg;
    pthread_mutex_lock (&self->lock);
    while (true) {
        while (!self->job && !self->quit)
            pthread_cond_wait (&self->wake, &self->lock);
        if (!self->job)
            break;
        s_batch_t *batch = self->job;
        bool draining = self->job_draining;
        pthread_mutex_unlock (&self->lock);
        int rc = s_commit (self, batch, draining);
        pthread_mutex_lock (&self->lock);
        self->job = NULL;
        self->job_result = rc;
        uint64_t one = 1;
        if (write (self->done_fd, &one, sizeof one) != sizeof one)
            assert (false); //  an eventfd takes 8 bytes until 2^64 - 2
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

//  ---------------------------------------------------------------------------
//  Main thread

//  Hands the filling batch to the store thread and starts a new one.
static void
s_start_commit (omni_writer_t *self, bool draining)
{
    assert (!self->storing && self->filling->upto);
    if (!self->thread_started) {
        int rc = pthread_create (&self->thread, NULL, s_store_thread, self);
        assert (rc == 0);
        self->thread_started = true;
    }
    self->storing = self->filling;
    self->filling = self->storing == &self->batches[0] ? &self->batches[1] : &self->batches[0];
    pthread_mutex_lock (&self->lock);
    self->job = self->storing;
    self->job_draining = draining;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
}

//  Takes back the batch the store thread is done with (waiting for it when
//  `wait`): acknowledges it if it was committed in the current session.
//  Returns its result, or 1 when it is not done yet.
static int
s_finish_commit (omni_writer_t *self, bool wait)
{
    if (!self->storing)
        return 0;
    uint64_t count;
    while (read (self->done_fd, &count, sizeof count) != sizeof count) {
        if (!wait)
            return 1;
        zmq_pollitem_t item = {NULL, self->done_fd, ZMQ_POLLIN, 0};
        zmq_poll (&item, 1, HEARTBEAT_MS);
    }
    pthread_mutex_lock (&self->lock);
    int rc = self->job_result;
    pthread_mutex_unlock (&self->lock);
    s_batch_t *batch = self->storing;
    self->storing = NULL;
    if (rc == 0 && batch->nconflicts)
        s_report_conflicts (self, batch);
    if (rc == 0 && batch->session == self->session && batch->upto > self->acked_upto) {
        self->acked_upto = batch->upto;
        s_send_ack (self);
    }
    s_clear_batch (self, batch);
    return rc;
}

//  A batch whose records all failed to decode is done at once.
static void
s_flush (omni_writer_t *self, bool draining)
{
    if (self->filling->count == 0) {
        self->acked_upto = self->filling->upto;
        s_clear_batch (self, self->filling);
        s_send_ack (self);
    } else
        s_start_commit (self, draining);
}

//  Takes a DELIVER's records into the filling batch
static void
s_handle_deliver (omni_writer_t *self, s_message_t *msg, uint64_t upto)
{
    if (upto <= self->acked_upto || upto <= self->delivered_upto)
        return; //  stale: from before a RESET
    s_batch_t *batch = self->filling;
    size_t frames = msg->count;
    s_add (self->m_delivered, frames);
    omni_array_reserve (batch->records, batch->capacity, batch->count + frames);
    omni_array_reserve (batch->flags, batch->flags_cap, batch->count + frames);
    const char *data = msg->records.data;
    for (size_t i = 0; i < frames; data += msg->sizes[i++]) {
        char detail[256];
        omni_record_t *record = &batch->records[batch->count];
        if (omni_record_decode (record, &batch->zone, data, msg->sizes[i], NULL, detail,
                                sizeof detail) != REJECT_NONE) {
            //  ingestd validated it, so this is a version skew between
            //  ingestd and this writer: say so loudly, do not block.
            log_error ("record.undecodable", "writer=%s detail=\"%s\"", self->name, detail);
            s_add (self->m_undecodable, 1);
            continue;
        }
        batch->count++;
    }
    if (batch->upto == 0) {
        batch->started_ms = omni_util_mono_ms ();
        batch->session = self->session;
    }
    batch->upto = upto;
    self->delivered_upto = upto;
}

//  A new delivery session (WELCOME, RESET): what is in hand is delivered
//  again, and a commit still running is not acknowledged when it ends.
static void
s_new_session (omni_writer_t *self)
{
    s_message_t *held;
    while ((held = zlist_pop (self->held)))
        s_message_release (self, &held);
    s_clear_batch (self, self->filling);
    self->session++;
    self->delivered_upto = 0;
}

//  Takes a DELIVER (its head decoded: s_recv) into the filling batch,
//  which keeps the message while its records are in use.
static void
s_take_deliver (omni_writer_t *self, s_message_t *msg)
{
    assert (msg->fed > 0 && msg->head.command == WIRE_DELIVER);
    s_handle_deliver (self, msg, msg->head.upto);
    if (self->filling->count > 0)
        zlist_append (self->filling->messages, msg);
    else
        s_message_release (self, &msg);
}

//  A reason ingestd sent (RESET, ERROR), as a string
static char *
s_reason (const omni_wire_head_t *head)
{
    char *text = head->text_size ? strndup (head->text, head->text_size) : strdup ("");
    assert (text);
    return text;
}

//  One message from ingestd; takes `msg`. Returns false when the writer
//  must stop (ingestd refused its name). Apart from the loop so that the
//  delivery fuzzer drives exactly what the loop does.
static bool
s_handle_message (omni_writer_t *self, s_message_t *msg)
{
    const omni_wire_head_t head = msg->head;
    bool keep = false;
    if (msg->fatal) {
        self->fault = strdup (msg->why);
        assert (self->fault);
        log_error ("delivery.unreadable",
                   "writer=%s delivery=%s why=\"%s\" hint=\"a version skew "
                   "between ingestd and this writer, or a bug: the writer stops rather than "
                   "acknowledge past records it did not store, and is delivered them again when "
                   "restarted\"",
                   self->name, self->endpoint, msg->why);
        s_message_release (self, &msg);
        return false;
    } else if (msg->fed < 0) {
        //  A peer decides how many come: once, then once a minute
        uint64_t held;
        if (omni_log_allow ("delivery.bad_message", "", 60000, &held))
            log_warn ("delivery.bad_message", "writer=%s frames=%zu why=\"%s\" repeated=%" PRIu64,
                      self->name, msg->frames, msg->why, held);
    } else if (head.command == WIRE_DELIVER && self->welcomed) {
        //  A full batch waits for the commit in progress: deliveries are
        //  held meanwhile (within the window), so heartbeats are heard
        bool busy = self->storing && self->filling->count >= self->config.batch_size;
        if (busy || zlist_size (self->held))
            zlist_append (self->held, msg); //  in order, after those held
        else
            s_take_deliver (self, msg);
        keep = true;
    } else if (head.command == WIRE_WELCOME) {
        uint64_t start = head.cursor;
        s_new_session (self);
        self->acked_upto = start ? start - 1 : 0;
        self->welcomed = true;
        pthread_mutex_lock (&self->lock);
        self->last_reset[0] = 0;
        pthread_mutex_unlock (&self->lock);
        atomic_store (&self->connected, true);
        char hex[2 * WIRE_JOURNAL_ID + 1];
        omni_util_hex (head.journal, WIRE_JOURNAL_ID, hex);
        log_info ("delivery.welcome", "writer=%s journal=%s cursor=%" PRIu64, self->name, hex,
                  start);
    } else if (head.command == WIRE_REFUSED && !self->welcomed) {
        //  Another live instance holds the name. Exit, not retry: two
        //  writers under one name is a deployment mistake to fix,
        //  and a supervisor restarting this one tries again anyway.
        self->refusal = head.text_size ? s_reason (&head) : strdup ("no reason given");
        log_error ("delivery.refused", "writer=%s instance=%s delivery=%s reason=\"%s\"",
                   self->name, self->instance, self->endpoint, self->refusal);
        s_message_release (self, &msg);
        return false;
    } else if (head.command == WIRE_RESET) {
        //  HELLO again on the next heartbeat, not at once: an ingestd
        //  that refuses this writer would otherwise be flooded.
        char *text = s_reason (&head);
        //  Refused again every second while ingestd does not know
        //  this writer: said once a minute, with /health telling it
        uint64_t held;
        if (omni_log_allow ("delivery.reset", text, 60000, &held))
            log_info ("delivery.reset", "writer=%s reason=\"%s\" repeated=%" PRIu64, self->name,
                      text, held);
        pthread_mutex_lock (&self->lock);
        snprintf (self->last_reset, sizeof self->last_reset, "%s", text);
        pthread_mutex_unlock (&self->lock);
        free (text);
        self->welcomed = false;
        atomic_store (&self->connected, false);
        s_new_session (self);
    }
    if (!keep)
        s_message_release (self, &msg);
    return true;
}

int
omni_writer_run (omni_writer_t *self)
{
    self->dealer = zsock_new (ZMQ_DEALER);
    assert (self->dealer);
    zsock_set_linger (self->dealer, 1000);
    zsock_set_rcvhwm (self->dealer, 0);
    zsock_set_sndhwm (self->dealer, 100);
    zsock_set_sndtimeo (self->dealer, 0);
    zsock_set_reconnect_ivl (self->dealer, 100);
    zsock_set_reconnect_ivl_max (self->dealer, 2000);
    if (self->config.curve) {
        omni_curve_client_apply (self->config.curve, self->dealer);
        self->curve_watch = omni_curve_watch_new (self->dealer, self->endpoint);
    }
    if (zsock_connect (self->dealer, "%s", self->endpoint) != 0) {
        log_error ("delivery.endpoint", "endpoint=%s error=\"%s\"", self->endpoint,
                   zmq_strerror (zmq_errno ()));
        return -1;
    }
    log_info ("writer.start",
              "writer=%s instance=%s delivery=%s batch_size=%zu flush_ms=%" PRId64 " window=%u",
              self->name, self->instance, self->endpoint, self->config.batch_size,
              self->config.flush_ms, self->config.window);
    s_send_hello (self);
    self->last_heard_ms = omni_util_mono_ms ();
    while (!s_stopping (self)) {
        int64_t now = omni_util_mono_ms ();
        long timeout = HEARTBEAT_MS;
        if (self->filling->upto && !self->storing) {
            int64_t due = self->filling->started_ms + self->config.flush_ms - now;
            timeout = due < 0 ? 0 : due < timeout ? (long) due : timeout;
        }
        //  A full batch waits for the commit in progress; until then
        //  ingestd's deliveries are held, within the window.
        bool full = self->storing && self->filling->count >= self->config.batch_size;
        while (!full && zlist_size (self->held)) {
            s_message_t *held = zlist_pop (self->held);
            s_take_deliver (self, held);
            full = self->storing && self->filling->count >= self->config.batch_size;
        }
        zmq_pollitem_t items[] = {{zsock_resolve (self->dealer), 0, ZMQ_POLLIN, 0},
                                  {NULL, self->done_fd, ZMQ_POLLIN, 0}};
        int rc = zmq_poll (items, 2, timeout);
        if (rc < 0)
            continue;
        if ((items[1].revents & ZMQ_POLLIN) && s_finish_commit (self, false) < 0)
            break;
        now = omni_util_mono_ms ();
        if (items[0].revents & ZMQ_POLLIN) {
            s_message_t *msg = s_recv (self);
            if (!msg)
                continue;
            self->last_heard_ms = now;
            atomic_store (&self->heard_ms, now);
            if (!s_handle_message (self, msg))
                break;
        }
        if (self->filling->upto && !self->storing &&
            (self->filling->count >= self->config.batch_size ||
             now - self->filling->started_ms >= self->config.flush_ms || self->filling->count == 0))
            s_flush (self, false);
        if (omni_util_mono_ms () - self->last_sent_ms >= HEARTBEAT_MS) {
            if (self->welcomed)
                s_send_ack (self);
            else
                s_send_hello (self);
        }
        omni_curve_watch_poll (self->curve_watch);
        if (omni_util_mono_ms () - self->last_heard_ms > 3 * HEARTBEAT_MS)
            atomic_store (&self->connected, false);
        else if (self->welcomed)
            atomic_store (&self->connected, true);
    }
    //  Drain: the commit in progress ends (it is not retried once stopping),
    //  then the batch in hand is committed and acknowledged if the store
    //  takes it now; otherwise it stays unacknowledged for redelivery.
    int rc = s_finish_commit (self, true);
    if (rc == 0 && self->filling->upto) {
        s_flush (self, true);
        rc = s_finish_commit (self, true);
    }
    log_info ("writer.stop", "writer=%s acked_upto=%" PRIu64 " drained=%s", self->name,
              self->acked_upto, rc == 0 ? "yes" : "no");
    return self->refusal || self->fault ? -1 : 0;
}

const char *
omni_writer_instance (omni_writer_t *self)
{
    return self->instance;
}

const char *
omni_writer_refusal (omni_writer_t *self)
{
    return self->refusal;
}

const char *
omni_writer_fault (omni_writer_t *self)
{
    return self->fault;
}

bool
omni_writer_healthy (void *self_, char *text, size_t size)
{
    omni_writer_t *self = self_;
    bool connected = atomic_load (&self->connected);
    bool store_ok = atomic_load (&self->store_ok);
    int64_t now = omni_util_mono_ms ();
    int64_t busy_since = atomic_load (&self->busy_since_ms);
    int64_t heard = atomic_load (&self->heard_ms);
    //  A commit that takes longer than a heartbeat is worth telling apart
    //  from ingestd being gone: both stop the acks.
    char busy[96] = "";
    if (busy_since && now - busy_since >= HEARTBEAT_MS)
        snprintf (busy, sizeof busy, " store_busy=%.1fs records=%zu",
                  (double) (now - busy_since) / 1000.0, atomic_load (&self->busy_records));
    pthread_mutex_lock (&self->lock);
    if (!store_ok)
        snprintf (text, size, "store %s: %s%s",
                  atomic_load (&self->store_permanent) ? "refuses this writer (permanent)" : "down",
                  self->last_error, busy);
    else if (!connected && *self->last_reset)
        snprintf (text, size, "not connected to ingestd at %s: %s", self->endpoint,
                  self->last_reset);
    else if (!connected && heard)
        snprintf (text, size, "ingestd gone: nothing heard from %s for %.1fs%s", self->endpoint,
                  (double) (now - heard) / 1000.0, busy);
    else if (!connected)
        snprintf (text, size, "not connected to ingestd at %s", self->endpoint);
    else
        snprintf (text, size, "ok writer=%s acked_upto=%" PRIu64 " instance=%s%s", self->name,
                  self->acked_upto, self->instance, busy);
    //  Evidence of forgery or a collector bug: said while healthy too
    uint64_t conflicts = atomic_load (&self->conflicts_total);
    size_t len = strlen (text);
    if (conflicts && len + 1 < size)
        snprintf (text + len, size - len, " conflicts=%" PRIu64 " last=%s file=%s", conflicts,
                  self->last_conflict, self->conflicts_path);
    pthread_mutex_unlock (&self->lock);
    return connected && store_ok;
}

//  ---------------------------------------------------------------------------
//  Self-test: the test peer's delivery side delivers records; a fake store
//  fails once, then commits. The ACK must come only after the commit and must
//  cover the last offset.

typedef struct {
    int calls, failures_left;
    size_t stored;
    atomic_bool hold; //  the store is slow: a commit waits while set
    //  What it holds: ids and content hashes, to flag conflicts as a store does
    uint8_t ids[64][RECORD_ID_SIZE], contents[64][RECORD_CONTENT_SIZE];
    size_t held;
} s_test_store_t;

static int
s_test_store (void *store, const omni_record_t *records, size_t count, uint8_t *conflicts,
              char *error, size_t error_size)
{
    s_test_store_t *self = store;
    while (atomic_load (&self->hold))
        zclock_sleep (10);
    self->calls++;
    if (self->failures_left > 0) {
        self->failures_left--;
        snprintf (error, error_size, "simulated outage");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        uint8_t content[RECORD_CONTENT_SIZE];
        omni_record_content_hash (&records[i], content);
        size_t at = 0;
        while (at < self->held && memcmp (self->ids[at], records[i].id, RECORD_ID_SIZE) != 0)
            at++;
        if (at < self->held && memcmp (self->contents[at], content, RECORD_CONTENT_SIZE) != 0) {
            conflicts[i] = 1;
            continue;
        }
        if (at == self->held && self->held < 64) {
            memcpy (self->ids[at], records[i].id, RECORD_ID_SIZE);
            memcpy (self->contents[at], content, RECORD_CONTENT_SIZE);
            self->held++;
        }
        self->stored++;
    }
    return 0;
}

//  A DELIVER of metric records named `names`, covering offsets up to `upto`
static void
s_test_deliver (testpeer_t *ingestd, omni_record_encoder_t *enc, uint64_t upto, const char **names,
                int count, bool frames)
{
    zmsg_t *records = zmsg_new ();
    for (int i = 0; i < count; i++) {
        omni_record_encoder_begin (enc, "metric", "h", "c", "r", 7);
        msgpack_packer *pk = omni_record_encoder_body (enc);
        msgpack_pack_map (pk, 2);
        msgpack_pack_str_with_body (pk, "name", 4);
        msgpack_pack_str_with_body (pk, names[i], strlen (names[i]));
        msgpack_pack_str_with_body (pk, "value", 5);
        msgpack_pack_double (pk, i);
        const void *data;
        size_t size;
        assert (omni_record_encoder_end (enc, &data, &size, NULL, 0) == 0);
        zmsg_addmem (records, data, size);
    }
    if (frames)
        testpeer_deliver_frames (ingestd, upto, &records);
    else
        testpeer_deliver (ingestd, upto, &records); //  DELIVERP: the writer asks for it
}

static void
s_writer_actor (zsock_t *pipe, void *args)
{
    omni_writer_t *writer = args;
    zsock_signal (pipe, 0);
    omni_writer_run (writer);
    zsock_signal (pipe, 0);
}

void
omni_writer_test (bool verbose)
{
    (void) verbose;
    testpeer_t *ingestd = testpeer_new ();
    s_test_store_t store = {.failures_left = 1};
    char conflicts_dir[64];
    snprintf (conflicts_dir, sizeof conflicts_dir, "/tmp/writer-test-%d", (int) getpid ());
    omni_writer_config_t config = {
        testpeer_delivery_endpoint (ingestd), "archive", 10, 50, 100, 20, 100, NULL, conflicts_dir};
    omni_writer_t *writer = omni_writer_new (&config, s_test_store, &store, NULL);
    zactor_t *actor = zactor_new (s_writer_actor, writer);

    //  The instance id: this host and pid.
    char name[32], instance[160];
    assert (testpeer_hello (ingestd, name, sizeof name, instance, sizeof instance) == 100);
    assert (streq (name, "archive"));
    char pid[32];
    snprintf (pid, sizeof pid, ":%d@", (int) getpid ());
    assert (strstr (instance, pid) && strcmp (instance, omni_writer_instance (writer)) == 0);
    testpeer_welcome (ingestd, 1);

    //  Two records with the same id and one other, covering offsets 1..5.
    omni_record_encoder_t *enc = omni_record_encoder_new ();
    const char *names[] = {"a", "b", "a"};
    s_test_deliver (ingestd, enc, 5, names, 3, true);

    //  Heartbeats may come first; wait for the ACK that moves to 5.
    assert (testpeer_await_ack (ingestd, 5, -1) == 5);
    //  One failure, then the batch and, in a store call of its own, the
    //  second "a": other content (value 2, not 0) under the id of the first,
    //  which the store then holds: a conflict, filed, reported to ingestd
    //  before the batch's ACK and said in /health
    assert (store.calls == 3);
    assert (store.stored == 2);
    uint64_t acked_before;
    assert (testpeer_conflicts (ingestd, &acked_before) == 1 && acked_before < 5);
    char path[128], text[256];
    snprintf (path, sizeof path, "%s/archive.jsonl", conflicts_dir);
    FILE *file = fopen (path, "r");
    assert (file && fgets (text, sizeof text, file));
    assert (strncmp (text, "{\"writer\":\"archive\",\"detected_ns\":", 34) == 0);
    assert (strstr (text, "\"kind\":\"metric\"") && strstr (text, "\"value\":2"));
    assert (!fgets (text, sizeof text, file)); //  one line
    fclose (file);
    omni_writer_healthy (writer, text, sizeof text);
    assert (strstr (text, " conflicts=1 last=metric/"));

    //  A slow store: one batch committing, the next full, a third held.
    //  ingestd's heartbeats are still heard, so /health stays "ok" and
    //  says the store is busy; then everything is acknowledged.
    atomic_store (&store.hold, true);
    const char *many[] = {"c", "d", "e", "f", "g", "h", "i", "j", "k", "l"};
    for (uint64_t upto = 15; upto <= 35; upto += 10)
        s_test_deliver (ingestd, enc, upto, many, 10, false);
    int64_t until = omni_util_mono_ms () + 3500;
    while (omni_util_mono_ms () < until) {
        testpeer_heartbeat (ingestd, 6);
        //  The writer's own heartbeats (ACKs of 5) read meanwhile
        assert (testpeer_await_ack (ingestd, 6, 500) == 5);
    }
    bool healthy = omni_writer_healthy (writer, text, sizeof text);
    if (verbose || !healthy)
        printf ("  busy: %s\n", text);
    assert (healthy && strstr (text, "store_busy="));
    atomic_store (&store.hold, false);
    assert (testpeer_await_ack (ingestd, 35, -1) == 35);
    assert (store.stored == 2 + 3 * 10);
    omni_record_encoder_destroy (&enc);
    omni_writer_stop (writer);
    zactor_destroy (&actor); //  waits for the drain
    assert (omni_writer_healthy (writer, text, sizeof text) || strstr (text, "ingestd"));
    assert (!omni_writer_refusal (writer));
    omni_writer_destroy (&writer);
    assert (writer == NULL);

    //  ingestd refuses the name (another live instance holds it): the
    //  writer stops with the reason instead of trying again. The first
    //  writer's last messages may still be queued: read past.
    store = (s_test_store_t){.failures_left = 0};
    writer = omni_writer_new (&config, s_test_store, &store, NULL);
    actor = zactor_new (s_writer_actor, writer);
    testpeer_hello (ingestd, name, sizeof name, instance, sizeof instance);
    testpeer_refuse (ingestd, "writer name \"archive\" is held by live instance h:1@t");
    zsock_wait (actor); //  omni_writer_run returned by itself
    assert (omni_writer_refusal (writer) && strstr (omni_writer_refusal (writer), "h:1@t"));
    zactor_destroy (&actor);
    omni_writer_destroy (&writer);

    //  A DELIVERP whose records cannot be read: the writer stops, saying
    //  why, and acknowledges nothing past what it stored (the DELIVERP
    //  after it, readable, is not taken).
    store = (s_test_store_t){.failures_left = 0};
    writer = omni_writer_new (&config, s_test_store, &store, NULL);
    actor = zactor_new (s_writer_actor, writer);
    testpeer_hello (ingestd, name, sizeof name, instance, sizeof instance);
    testpeer_welcome (ingestd, 1);
    enc = omni_record_encoder_new ();
    s_test_deliver (ingestd, enc, 3, names, 3, false);
    assert (testpeer_await_ack (ingestd, 3, -1) == 3 && store.stored == 2);
    const uint8_t lying[] = {0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 9, 0x80};
    testpeer_deliver_packed (ingestd, 6, lying, sizeof lying);
    s_test_deliver (ingestd, enc, 9, many, 3, false);
    zsock_wait (actor); //  omni_writer_run returned by itself
    assert (!omni_writer_refusal (writer));
    assert (omni_writer_fault (writer) && strstr (omni_writer_fault (writer), "DELIVERP up to 6"));
    assert (testpeer_await_ack (ingestd, 4, 300) == 3 && store.stored == 2);
    zactor_destroy (&actor);
    omni_writer_destroy (&writer);
    omni_record_encoder_destroy (&enc);
    testpeer_destroy (&ingestd);
    unlink (path);
    rmdir (conflicts_dir);
}
