/*  server: ingestd's event loop (see server.h).

    One thread does all socket and journal work, so the journal needs no
    locks; the HTTP thread only reads counters, under state_lock, which the
    loop holds while a commit changes what the invariant compares.

    Intake is group-committed: every intake message already waiting is
    validated into one LMDB transaction, one fsync, then all their ACKs go
    out. Under load that turns one fsync per batch into one per round.

    Peers are not trusted to follow the conversation. Every socket is
    bounded per peer and in total: high-water marks, a frame size that fits
    the protocol, replies to a peer that does not read dropped and the peer
    disconnected (ROUTER_MANDATORY), a limit on connections with a reserve
    of descriptors, an idle timeout, and a memory budget. libzmq assembles a
    whole multi-part message before handing over its first frame and bounds
    neither a message's frames nor their sum, only each frame: no socket
    option bounds what it holds for a peer. So a guard thread reads
    ingestd's memory every GUARD_MS and, past memory_max less a headroom,
    drops the connections that hold most: what each one's TCP connection
    received less what ingestd read from it (peers.h). Collectors reconnect
    and resend what was not acknowledged: nothing accepted is lost.        */
#include "ingestd/server.h"
#include "common/dirlock.h"
#include "ingestd/journal.h"
#include "common/log.h"
#include "ingestd/peers.h"
#include "common/util.h"
#include "proto/wire.h"

#include <assert.h>
#include <czmq.h>
#include <lmdb.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#define REJECT_TOPIC    "!reject"
#define ROUND_MESSAGES  256        //  intake messages per journal round
#define ROUND_BYTES     (64 << 20) //  or bytes per round
#define DELIVER_RECORDS 1000       //  records per DELIVER message
#define DELIVER_BYTES   (4 << 20)  //  or bytes per DELIVER message
#define SCAN_LIMIT      20000      //  journal entries scanned per DELIVER
#define ENVELOPE_BYTES  (64 << 10) //  an intake frame may exceed max_record_size by this
#define REPLY_HWM       1000       //  replies queued to one peer before it counts as not reading
//  Writers send HELLO, ACK and small CONFLICTs only (wire.h): frames past
//  these are read past, a frame over the bound closes the connection
#define DELIVERY_FRAME_MAX WIRE_DELIVERY_FRAME_MAX
#define DELIVERY_FRAMES    WIRE_DELIVERY_FRAMES
#define INFLIGHT_BYTES     (64 << 20) //  record bytes delivered and unacknowledged, per writer
#define TAP_HWM            10000      //  messages queued to one tap subscriber (a round is a burst)
#define TAP_FRAME_MAX      1024   //  a subscription (longer: connection dropped); fits a handshake
#define HANDSHAKE_MS       10000  //  a connection not through its handshake by then is closed
#define ZMTP_PING_MS       10000  //  ZMTP heartbeats: a peer that does not answer...
#define ZMTP_TIMEOUT_MS    30000  //  ...within this is disconnected
#define FD_RESERVE         64     //  descriptors kept for the journal, /health, logs
#define CONNECTIONS_MAX    4096   //  default limit on connections (each costs libzmq memory)
#define MONITOR_HWM        100000 //  connection events queued for the loop (~100 bytes each)
#define GUARD_MS           5      //  how often the memory guard reads the process's memory
#define GUARD_HEADROOM_MIN (64ULL << 20) //  memory_max less at least this is where shedding starts
#define SHED_FLOOR         (64 << 10)    //  a connection holding less is never shed for memory
#define HELD_MS            5000          //  how often the held_bytes gauges are refreshed
#define SCAN_MS            20   //  from watch_at, connections are looked at this often at least
#define SHED_WAIT_MS       250  //  after a shed, memory must fall within this, else shed again
#define MEMORY_QUIET_MS    1000 //  over budget, nothing to shed: connections silent this long go
#define MEMORY_ALL_MS      500  //  still over budget this long: every intake connection goes
#define TAP_REJECTS_PER_S  1000 //  !reject messages published a second at most
#define TAP_PEER_BYTES     (64 << 10)  //  subscriptions one tap peer may send (beyond heartbeats)
#define TAP_BYTES_MAX      (256 << 10) //  and all of them together
#define HOUSEKEEP_MS       250
#define HEARTBEAT_MS       1000
#define SYNC_MS            50
#define PROBE_MS           1000      //  a journal that failed a write is tried again this often
#define PROBE_MIN          (1 << 20) //  bytes a probe writes at least
#define PROBE_MAX          (64 << 20)
#define SESSION_TIMEOUT_MS 5000 //  default: writers ACK at least every second
#define INSTANCE_MAX       128  //  bytes of a writer instance id kept

typedef struct {
    uint64_t upto;
    uint32_t records;
    uint32_t bytes;
} s_inflight_t;

//  One configured writer and its connection, if any.
typedef struct {
    char *name;
    size_t index;       //  in the journal's writer list
    unsigned role;      //  omni_writer_role_t bit
    zframe_t *peer;     //  routing id of its connection, NULL when none
    int peer_fd;        //  its TCP socket in libzmq, -1 when unknown
    uint64_t sent_upto; //  last offset covered by a DELIVER on this connection
    uint32_t window;    //  credit granted in its last HELLO / ACK (capped by window_max)
    uint32_t inflight_records;
    uint64_t inflight_bytes;
    s_inflight_t *inflight;
    size_t ninflight, inflight_cap;
    _Atomic int64_t last_heard_ms; //  read by /health
    int64_t last_sent_ms;          //  anything sent on this connection
    char instance[INSTANCE_MAX];   //  of the holder; under state_lock for /health
    //  A HELLO of another instance while the holder lives: it waits until
    //  the holder is heard from again (refused) or the holder's session
    //  times out or its connection closes (takes over).
    zframe_t *pending_peer;
    int pending_fd;
    char pending_instance[INSTANCE_MAX];
    uint32_t pending_window;
    int64_t pending_since_ms;
    omni_metric_t *m_refused;
    //  Added to a journal that had records: it starts empty from this offset
    //  (0 = not so), and whether a REPLAY to it came since (under state_lock)
    uint64_t starts_empty;
    bool replay_seen;
    omni_metric_t *m_delivered, *m_acked, *m_lag_records, *m_lag_seconds, *m_connected, *m_latency,
        *m_conflicts;
} s_session_t;

//  The answer owed to one intake message of a round.
typedef struct {
    uint8_t peer[256]; //  ROUTER routing ids are at most 255 bytes
    size_t peer_size;
    int fd; //  its connection (ZMQ_SRCFD), -1 when unknown
    uint8_t seq[8];
    bool has_seq;
    uint32_t accepted, rejected;
    bool malformed;
    char reason[200]; //  of an ERROR, when more can be said than bad_frame
} s_reply_t;

//  An accepted record kept for the tap until the round is committed: its
//  kind and bytes, back to back in one buffer.
typedef struct {
    size_t kind_at, kind_len, record_at, record_len;
} s_tapped_t;

struct _server_t {
    server_config_t config;
    char peer_key[512], peer_writers[512]; //  CURVE metadata of the delivery message in hand
    char writers_text[256];                //  the configured writer names, for messages
    omni_dirlock_t *lock;                  //  one ingestd per journal directory
    journal_t *journal;
    zsock_t *intake, *delivery, *tap;
    zsock_t *monitors[PEERS_SOCKETS]; //  connections accepted and closed, by socket
    peers_t *peers;
    s_session_t *sessions;
    size_t nsessions;
    unsigned configured_roles;
    //  Subscriptions XPUB reported since the tap last had no connection. An
    //  upper bound: an unsubscribe cannot be told from a bogus one (XPUB
    //  reports an unsubscribe of a topic the peer never had as if it were
    //  the last), so they are not counted down. Only a gauge: whether to
    //  publish is whether the tap has a connection.
    uint64_t tap_subscribes;
    size_t tap_record_max;        //  larger records are not published (tap_budget / TAP_HWM)
    int64_t tap_rejects_since_ms; //  rejects published on the tap this second
    uint32_t tap_rejects;
    //  The memory guard (its thread), and what /health shows of it
    pthread_t guard;
    bool guard_started;
    uint64_t shed_at;              //  memory_max less the headroom
    uint64_t watch_at;             //  shed_at less the headroom: large holders go from here
    _Atomic uint64_t memory_used;  //  last read
    _Atomic uint64_t memory_peak;  //  the most read since the start
    _Atomic uint64_t memory_sheds; //  times the guard dropped connections
    _Atomic uint64_t memory_freed; //  bytes the connections it dropped held
    _Atomic int64_t loop_ms;       //  when the event loop last began a turn
    int statm_fd;                  //  /proc/self/statm, for the guard
    size_t fd_limit;               //  the descriptor limit (raised at start)
    uint64_t wire;                 //  bytes of the intake message in hand, as on the wire
    uint64_t dropped_seen[PEERS_REASONS];
    zmq_msg_t frame, head[WIRE_HEAD_MAX]; //  intake parts being received
    s_reply_t *replies;                   //  one per intake message of a round
    s_tapped_t *tapped;                   //  accepted records of the round, for the tap
    size_t ntapped, tapped_cap;
    uint8_t *tap_buf;
    size_t tap_buf_size, tap_buf_cap;
    atomic_bool stopping;
    pthread_mutex_t state_lock;
    bool paused;
    //  A journal that failed a write: intake is not read, and every PROBE_MS
    //  a probe write (then a real round, if one waits) tells whether it
    //  takes writes again. One error line when it starts, one info line when
    //  it ends, debug lines between.
    journal_fault_t fault;
    int64_t fault_since_ms, last_probe_ms;
    size_t probe_bytes;   //  what the failed round needed, for the probe
    char fault_text[768]; //  for /health, under state_lock
    int64_t last_housekeep_ms;
    int64_t last_sync_ms; //  cursors last persisted
    omni_metrics_t *metrics;
    omni_metric_t *m_received, *m_accepted, *m_batches, *m_bytes, *m_rounds, *m_journal_bytes,
        *m_journal_records, *m_paused, *m_commit_latency, *m_trimmed, *m_tap_subscribers,
        *m_replayed, *m_rejected[REJECT_REASON_COUNT + 1], *m_dead_expired,
        *m_fault[JOURNAL_FAULT_COUNT], *m_write_errors;
    omni_metric_t *m_connections[PEERS_SOCKETS], *m_dropped[PEERS_REASONS],
        *m_replies_dropped[PEERS_SOCKETS], *m_tap_skipped, *m_memory, *m_accept_failed,
        *m_hello_ignored, *m_bad_messages, *m_memory_peak, *m_memory_sheds, *m_memory_freed,
        *m_held[PEERS_SOCKETS], *m_tap_rejects_skipped;
    int64_t last_held_ms;
    int64_t last_dead_expire_ms;
};

static const char *
s_reject_label (int reason)
{
    return reason == REJECT_REASON_COUNT ? "bad_frame" : omni_record_reject_name (reason);
}

static void
s_register_metrics (server_t *self)
{
    omni_metrics_t *m = self->metrics;
    self->m_received = omni_metrics_counter (
        m, "records_received_total",
        "Inputs received on intake (record frames and malformed messages)", NULL);
    self->m_accepted =
        omni_metrics_counter (m, "records_accepted_total", "Records validated and journaled", NULL);
    self->m_dead_expired = omni_metrics_counter (
        m, "dead_letters_expired_total", "Dead letters removed by dead_letter_retain", NULL);
    for (int r = 1; r <= REJECT_REASON_COUNT; r++) {
        char labels[64];
        snprintf (labels, sizeof labels, "reason=\"%s\"", s_reject_label (r));
        self->m_rejected[r] = omni_metrics_counter (m, "records_rejected_total",
                                                    "Inputs rejected, by reason", labels);
    }
    self->m_batches =
        omni_metrics_counter (m, "batches_total", "Intake batches acknowledged", NULL);
    self->m_replayed = omni_metrics_counter (
        m, "records_replayed_total",
        "Records accepted from REPLAY messages (omnictl replay), routed to the writers named",
        NULL);
    self->m_bytes = omni_metrics_counter (m, "bytes_received_total", "Record bytes received", NULL);
    self->m_rounds = omni_metrics_counter (m, "journal_commits_total",
                                           "Journal transactions committed (fsync)", NULL);
    self->m_trimmed = omni_metrics_counter (m, "records_acked_by_all_total",
                                            "Records every writer acknowledged (trimmed)", NULL);
    self->m_journal_bytes =
        omni_metrics_gauge (m, "journal_bytes", "Bytes of records in the journal", NULL);
    self->m_journal_records =
        omni_metrics_gauge (m, "journal_records", "Records in the journal", NULL);
    self->m_paused = omni_metrics_gauge (
        m, "intake_paused", "1 while the journal is full or faulted and intake is not acknowledged",
        NULL);
    for (int f = JOURNAL_OK + 1; f < JOURNAL_FAULT_COUNT; f++) {
        char labels[64];
        snprintf (labels, sizeof labels, "cause=\"%s\"", journal_fault_name (f));
        self->m_fault[f] = omni_metrics_gauge (
            m, "journal_fault", "1 while the journal takes no writes, by cause (intake paused)",
            labels);
    }
    self->m_write_errors = omni_metrics_counter (
        m, "journal_write_errors_total",
        "Journal write transactions that failed (intake rounds, cursor syncs, probes)", NULL);
    self->m_tap_subscribers = omni_metrics_gauge (
        m, "tap_subscriptions",
        "Tap subscriptions received since the tap last had no subscriber (an upper bound)", NULL);
    self->m_tap_skipped =
        omni_metrics_counter (m, "tap_records_skipped_total",
                              "Accepted records not published on the tap: larger than its budget "
                              "allows (tap_budget / 10000)",
                              NULL);
    self->m_tap_rejects_skipped = omni_metrics_counter (
        m, "tap_rejects_skipped_total",
        "Rejected inputs not published on the tap's !reject topic: over 1,000 a second (each is "
        "a dead letter all the same)",
        NULL);
    self->m_memory = omni_metrics_gauge (
        m, "memory_bytes", "Anonymous memory of the process (not the journal's map)", NULL);
    self->m_memory_peak = omni_metrics_gauge (
        m, "memory_peak_bytes",
        "The most anonymous memory the guard read since the start (every 5 ms)", NULL);
    self->m_memory_sheds = omni_metrics_counter (
        m, "memory_sheds_total",
        "Times ingestd went over memory_max less its headroom and dropped connections", NULL);
    self->m_memory_freed = omni_metrics_counter (
        m, "memory_shed_bytes_total",
        "Bytes libzmq held for the connections dropped for memory (unacknowledged messages)", NULL);
    self->m_accept_failed =
        omni_metrics_counter (m, "accept_failed_total",
                              "Connections the kernel could not accept (out of descriptors)", NULL);
    self->m_hello_ignored = omni_metrics_counter (
        m, "hello_ignored_total",
        "HELLOs on a connection that holds its writer name with records in flight (not re-sent)",
        NULL);
    self->m_bad_messages = omni_metrics_counter (
        m, "delivery_bad_messages_total",
        "Delivery messages malformed, of unknown commands or writer names", NULL);
    for (int k = 0; k < PEERS_SOCKETS; k++) {
        char labels[64];
        snprintf (labels, sizeof labels, "socket=\"%s\"", peers_socket_name (k));
        self->m_connections[k] =
            omni_metrics_gauge (m, "connections", "Connections open, by socket", labels);
        self->m_held[k] = omni_metrics_gauge (
            m, "held_bytes",
            "Bytes peers sent that ingestd has not read (TCP bytes received less those read, "
            "handshakes and heartbeats): what libzmq holds for them; on the tap, subscriptions",
            labels);
        self->m_replies_dropped[k] = omni_metrics_counter (
            m, "replies_dropped_total",
            "Messages not sent because the peer does not read them (it is disconnected)", labels);
    }
    for (int r = 0; r < PEERS_REASONS; r++) {
        char labels[64];
        snprintf (labels, sizeof labels, "reason=\"%s\"", peers_reason_name (r));
        self->m_dropped[r] = omni_metrics_counter (m, "connections_dropped_total",
                                                   "Connections ingestd closed, by reason", labels);
    }
    self->m_commit_latency =
        omni_metrics_histogram (m, "journal_commit_seconds", "Time of one journal round commit",
                                NULL, omni_metrics_latency_bounds, omni_metrics_latency_nbounds);
    for (size_t i = 0; i < self->nsessions; i++) {
        s_session_t *s = &self->sessions[i];
        char labels[96];
        snprintf (labels, sizeof labels, "writer=\"%s\"", s->name);
        s->m_delivered =
            omni_metrics_counter (m, "records_delivered_total",
                                  "Records sent to a writer (redeliveries included)", labels);
        s->m_acked = omni_metrics_counter (m, "records_acked_total",
                                           "Records a writer acknowledged as stored", labels);
        s->m_lag_records = omni_metrics_gauge (
            m, "writer_lag_records", "Journal offsets not yet acknowledged by a writer", labels);
        s->m_lag_seconds =
            omni_metrics_gauge (m, "writer_lag_seconds",
                                "Age of the oldest record a writer has not acknowledged", labels);
        s->m_connected =
            omni_metrics_gauge (m, "writer_connected", "1 while a writer is connected", labels);
        s->m_refused = omni_metrics_counter (
            m, "writer_refused_total",
            "HELLOs refused because another live instance holds the writer name", labels);
        s->m_conflicts = omni_metrics_counter (
            m, "conflicts_reported_total",
            "Records a writer met under an id it holds with other content (kept out, filed)",
            labels);
        s->m_latency = omni_metrics_histogram (
            m, "end_to_end_seconds", "Received by ingestd to acknowledged by a writer", labels,
            omni_metrics_latency_bounds, omni_metrics_latency_nbounds);
    }
}

//  Binds one of the three sockets, bounded: `sndhwm` messages queued to a
//  peer, `rcvhwm` whole messages from it, `frame_max` bytes a frame. Sends
//  never block (ZMQ_SNDTIMEO 0): a ROUTER with ZMQ_ROUTER_MANDATORY says
//  EAGAIN for a peer whose queue is full instead of dropping in silence.
static zsock_t *
s_bind (int type, const char *endpoint, omni_curve_server_t *curve, omni_curve_socket_t which,
        int sndhwm, int rcvhwm, int64_t frame_max, char *error, size_t error_size)
{
    zsock_t *sock = zsock_new (type);
    assert (sock);
    zsock_set_linger (sock, 0);
    if (curve)
        omni_curve_server_apply (curve, sock, which);
    zsock_set_sndhwm (sock, sndhwm);
    zsock_set_rcvhwm (sock, rcvhwm);
    zsock_set_maxmsgsize (sock, frame_max);
    zsock_set_sndtimeo (sock, 0);
    //  A peer that connects and never finishes its handshake, or stops
    //  answering ZMTP pings (gone without a FIN), frees its descriptor.
    zsock_set_handshake_ivl (sock, HANDSHAKE_MS);
    zsock_set_heartbeat_ivl (sock, ZMTP_PING_MS);
    zsock_set_heartbeat_timeout (sock, ZMTP_TIMEOUT_MS);
    if (type == ZMQ_ROUTER)
        zsock_set_router_mandatory (sock, 1);
    else {
        //  Every subscription is reported, so that they can be counted
        zsock_set_xpub_verbose (sock, 1);
    }
    if (zsock_bind (sock, "%s", endpoint) < 0) {
        snprintf (error, error_size, "cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
    }
    return sock;
}

//  0 in a bound means its default (the self-test and the fuzzer set none).
static void
s_config_defaults (server_config_t *c)
{
    if (!c->window_max)
        c->window_max = SERVER_WINDOW_MAX;
    if (!c->max_batch_records)
        c->max_batch_records = SERVER_BATCH_RECORDS;
    if (!c->max_batch_bytes)
        c->max_batch_bytes = SERVER_BATCH_BYTES;
    if (!c->memory_max)
        c->memory_max = SERVER_MEMORY_MAX;
    if (!c->tap_budget)
        c->tap_budget = SERVER_TAP_BUDGET;
    if (!c->idle_timeout_ms)
        c->idle_timeout_ms = SERVER_IDLE_TIMEOUT_MS;
}

//  Raises the soft descriptor limit to the hard one (the kernel's default
//  soft limit, 1024, is a few idle peers away) and returns the limit.
static size_t
s_raise_fd_limit (void)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit))
        return 1024;
    if (limit.rlim_cur < limit.rlim_max) {
        rlim_t was = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if (setrlimit (RLIMIT_NOFILE, &limit) == 0)
            log_info ("ingestd.fd_limit", "raised_from=%llu to=%llu", (unsigned long long) was,
                      (unsigned long long) limit.rlim_cur);
        else
            getrlimit (RLIMIT_NOFILE, &limit);
    }
    return limit.rlim_cur == RLIM_INFINITY ? (size_t) 1 << 20 : (size_t) limit.rlim_cur;
}

static void *s_guard (void *arg);
static uint64_t s_memory_used (int fd);
static bool s_shed_done (server_t *self, uint64_t used, size_t dropped, uint64_t freed, bool all);

//  The TCP port a socket is bound to (0: not TCP), for peers_set_port.
static int
s_port (zsock_t *sock)
{
    char *endpoint = zsock_last_endpoint (sock);
    const char *colon =
        endpoint && strncmp (endpoint, "tcp://", 6) == 0 ? strrchr (endpoint, ':') : NULL;
    int port = colon ? atoi (colon + 1) : 0;
    zstr_free (&endpoint);
    return port;
}

//  Watches the connections of one socket (ACCEPTED, DISCONNECTED and
//  ACCEPT_FAILED events over an inproc PAIR), for the peers table.
static zsock_t *
s_monitor (server_t *self, zsock_t *sock, peers_socket_t which)
{
    char endpoint[96];
    snprintf (endpoint, sizeof endpoint, "inproc://ingestd-%s-%p", peers_socket_name (which),
              (void *) self);
    int rc =
        zmq_socket_monitor (zsock_resolve (sock), endpoint,
                            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_ACCEPT_FAILED);
    assert (rc == 0);
    //  libzmq's end of the monitor pipe holds 1,000 events and drops the
    //  rest: in an accept storm, with the loop in a long round, an ACCEPTED
    //  event lost is a connection the table never knows (neither the
    //  connection limit nor the memory guard would see it). Ours holds more.
    zsock_t *monitor = zsock_new (ZMQ_PAIR);
    assert (monitor);
    zsock_set_rcvhwm (monitor, MONITOR_HWM);
    rc = zsock_connect (monitor, "%s", endpoint);
    assert (rc == 0);
    return monitor;
}

server_t *
server_new (const server_config_t *config, omni_metrics_t *metrics, char *error, size_t error_size)
{
    server_t *self = calloc (1, sizeof *self);
    assert (self);
    self->statm_fd = -1;
    self->config = *config;
    if (self->config.session_timeout_ms <= 0)
        self->config.session_timeout_ms = SESSION_TIMEOUT_MS;
    s_config_defaults (&self->config);
    self->metrics = metrics;
    pthread_mutex_init (&self->state_lock, NULL);
    zmq_msg_init (&self->frame);
    for (int i = 0; i < WIRE_HEAD_MAX; i++)
        zmq_msg_init (&self->head[i]);
    self->replies = calloc (ROUND_MESSAGES, sizeof *self->replies);
    assert (self->replies);
    atomic_init (&self->stopping, false);
    for (const char *const *w = config->writers; w && *w; w++) {
        unsigned role = omni_kinds_writer_role (*w);
        if (!role) {
            snprintf (error, error_size,
                      "ingestd.writers: unknown writer \"%s\" (expected archive, relational, "
                      "document or metrics)",
                      *w);
            server_destroy (&self);
            return NULL;
        }
        self->configured_roles |= role;
        self->nsessions++;
    }
    //  A second ingestd on a journal in use would register writers in it
    //  and deliver its records twice over.
    if (!(self->lock = omni_dirlock_new (config->journal_dir, "ingestd.lock", error, error_size))) {
        server_destroy (&self);
        return NULL;
    }
    self->journal = journal_new (config->journal_dir, config->journal_max, config->dead_max,
                                 config->journal_map_size, config->writers, error, error_size);
    if (!self->journal) {
        server_destroy (&self);
        return NULL;
    }
    self->sessions = calloc (self->nsessions + 1, sizeof *self->sessions);
    for (size_t i = 0; i < self->nsessions; i++) {
        self->sessions[i].name = strdup (config->writers[i]);
        self->sessions[i].index = i;
        self->sessions[i].role = omni_kinds_writer_role (config->writers[i]);
        self->sessions[i].peer_fd = self->sessions[i].pending_fd = -1;
        size_t used = strlen (self->writers_text);
        snprintf (self->writers_text + used, sizeof self->writers_text - used, "%s%s",
                  used ? "," : "", config->writers[i]);
    }
    s_register_metrics (self);
    for (size_t i = 0; i < self->nsessions; i++) {
        s_session_t *s = &self->sessions[i];
        if (!journal_writer_added (self->journal, s->index))
            continue;
        //  ingestd cannot fill it: what the journal trimmed is only in the
        //  archive, which ingestd does not read (docs/backup.md says why).
        s->starts_empty = journal_cursor (self->journal, s->index);
        log_warn ("journal.writer_starts_empty",
                  "writer=%s from_offset=%" PRIu64
                  " why=\"added to a journal that already had records: it gets only what comes "
                  "from now on\" hint=\"fill it from the archive: omnictl replay "
                  "--archive-dir=ARCHIVE_DIR --intake=%s --writer=%s\"",
                  s->name, s->starts_empty, config->intake, s->name);
    }
    //  The connection limit leaves descriptors for the journal, the HTTP
    //  server and libzmq's own, and for the accepts between a limit being
    //  passed and the idlest connection being dropped.
    size_t fds = s_raise_fd_limit ();
    size_t max = self->config.max_connections;
    size_t room = fds > FD_RESERVE + fds / 8 ? fds - FD_RESERVE - fds / 8 : 16;
    if (!max)
        max = room < CONNECTIONS_MAX ? room : CONNECTIONS_MAX;
    else if (max > room) {
        log_warn ("ingestd.max_connections",
                  "configured=%zu fd_limit=%zu using=%zu why=\"the descriptor limit leaves room "
                  "for no more\" hint=\"raise the hard limit (ulimit -Hn, LimitNOFILE=)\"",
                  max, fds, room);
        max = room;
    }
    self->peers = peers_new (max);
    self->fd_limit = fds;
    //  A record is published on the tap only when its copies queued for a
    //  subscriber that does not read stay within tap_budget.
    self->tap_record_max = (size_t) (self->config.tap_budget / TAP_HWM);
    omni_curve_server_t *curve = config->curve;
    int64_t intake_frame = (int64_t) (config->limits.max_size + ENVELOPE_BYTES);
    if (!(self->intake = s_bind (ZMQ_ROUTER, config->intake, curve, CURVE_INTAKE, REPLY_HWM, 64,
                                 intake_frame, error, error_size)) ||
        !(self->delivery = s_bind (ZMQ_ROUTER, config->delivery, curve, CURVE_DELIVERY, REPLY_HWM,
                                   64, DELIVERY_FRAME_MAX, error, error_size)) ||
        !(self->tap = s_bind (ZMQ_XPUB, config->tap, curve, CURVE_TAP, TAP_HWM, 64, TAP_FRAME_MAX,
                              error, error_size))) {
        server_destroy (&self);
        return NULL;
    }
    //  Also: a writer killed -9 closes its TCP connection at once: its
    //  session ends then, not at the timeout, so a restarted writer goes on.
    //  Intake sends only small replies: a small kernel buffer, so that a
    //  peer that does not read fills its queue soon, not after megabytes
    zsock_set_sndbuf (self->intake, 128 << 10);
    self->monitors[PEERS_INTAKE] = s_monitor (self, self->intake, PEERS_INTAKE);
    self->monitors[PEERS_DELIVERY] = s_monitor (self, self->delivery, PEERS_DELIVERY);
    self->monitors[PEERS_TAP] = s_monitor (self, self->tap, PEERS_TAP);
    zsock_t *bound[PEERS_SOCKETS] = {self->intake, self->delivery, self->tap};
    for (int k = 0; k < PEERS_SOCKETS; k++)
        peers_set_port (self->peers, (peers_socket_t) k, s_port (bound[k]));
    //  Large message buffers (libzmq's frames of records) come from mmap
    //  and go back to the system when freed, not kept in malloc's heap: the
    //  threshold fixed, glibc no longer raises it to the largest freed.
    mallopt (M_MMAP_THRESHOLD, 256 << 10);
    //  The headroom under memory_max: what libzmq's I/O thread can read
    //  between two looks of the guard and the close of what it dropped.
    uint64_t headroom = self->config.memory_max / 8;
    if (headroom < GUARD_HEADROOM_MIN)
        headroom = GUARD_HEADROOM_MIN;
    if (headroom > self->config.memory_max / 2)
        headroom = self->config.memory_max / 2;
    self->shed_at = self->config.memory_max - headroom;
    self->watch_at = self->shed_at > 2 * headroom ? self->shed_at - headroom : self->shed_at / 2;
    self->statm_fd = open ("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (self->statm_fd < 0 || s_memory_used (self->statm_fd) == 0) {
        snprintf (error, error_size, "cannot read /proc/self/statm (the memory guard needs it)");
        server_destroy (&self);
        return NULL;
    }
    if (pthread_create (&self->guard, NULL, s_guard, self)) {
        snprintf (error, error_size, "cannot start the memory guard thread");
        server_destroy (&self);
        return NULL;
    }
    self->guard_started = true;
    log_info ("ingestd.limits",
              "max_connections=%zu fd_limit=%zu memory_max=%" PRIu64 " window_max=%" PRIu32
              " max_batch_records=%zu max_batch_bytes=%" PRIu64 " tap_record_max=%zu "
              "idle_timeout_ms=%" PRId64,
              max, fds, self->config.memory_max, self->config.window_max,
              self->config.max_batch_records, self->config.max_batch_bytes, self->tap_record_max,
              self->config.idle_timeout_ms);
    return self;
}

void
server_destroy (server_t **self_p)
{
    server_t *self = *self_p;
    if (!self)
        return;
    if (self->guard_started) {
        atomic_store (&self->stopping, true);
        pthread_join (self->guard, NULL);
    }
    if (self->statm_fd >= 0)
        close (self->statm_fd);
    zsock_t **socks[PEERS_SOCKETS] = {&self->intake, &self->delivery, &self->tap};
    for (int k = 0; k < PEERS_SOCKETS; k++) {
        if (self->monitors[k] && *socks[k])
            zmq_socket_monitor (zsock_resolve (*socks[k]), NULL, 0);
        zsock_destroy (&self->monitors[k]);
        zsock_destroy (socks[k]);
    }
    peers_destroy (&self->peers);
    for (size_t i = 0; self->sessions && i < self->nsessions; i++) {
        zframe_destroy (&self->sessions[i].peer);
        zframe_destroy (&self->sessions[i].pending_peer);
        free (self->sessions[i].inflight);
        free (self->sessions[i].name);
    }
    free (self->sessions);
    journal_destroy (&self->journal);
    omni_dirlock_destroy (&self->lock);
    zmq_msg_close (&self->frame);
    for (int i = 0; i < WIRE_HEAD_MAX; i++)
        zmq_msg_close (&self->head[i]);
    free (self->replies);
    free (self->tapped);
    free (self->tap_buf);
    pthread_mutex_destroy (&self->state_lock);
    free (self);
    *self_p = NULL;
}

void
server_stop (server_t *self)
{
    atomic_store (&self->stopping, true);
}

static bool
s_stopping (server_t *self)
{
    return zsys_interrupted || atomic_load (&self->stopping);
}

//  ---------------------------------------------------------------------------
//  Peers

//  A peer's send queue is full (REPLY_HWM messages it did not read): what
//  would be sent is dropped, and so is the peer, which would only fill the
//  queue again. `fd` is checked against the connections of that socket.
static void
s_peer_unread (server_t *self, peers_socket_t which, int fd)
{
    omni_metric_add (self->m_replies_dropped[which], 1);
    bool dropped = peers_drop (self->peers, which, fd, PEERS_UNREAD);
    uint64_t held;
    if (omni_log_allow ("ingestd.peer_not_reading", peers_socket_name (which), 60000, &held))
        log_warn ("ingestd.peer_not_reading",
                  "socket=%s queued=%d disconnected=%s repeated=%" PRIu64
                  " why=\"a peer that sends without reading the replies\"",
                  peers_socket_name (which), REPLY_HWM, dropped ? "yes" : "no", held);
}

//  Sends `head`, then the frames of `records` (taken; NULL for none), to
//  the peer routed by `peer` (on connection `fd`), never blocking. False
//  when it was not sent: the peer is gone, or does not read (then it is
//  dropped).
static bool
s_route (server_t *self, peers_socket_t which, const void *peer, size_t peer_size, int fd,
         const omni_wire_head_t *head, zmsg_t **records)
{
    void *sock = zsock_resolve (which == PEERS_INTAKE ? self->intake : self->delivery);
    size_t n = records && *records ? zmsg_size (*records) : 0, i = 0;
    //  ROUTER_MANDATORY checks the queue on the routing id: past it, the
    //  rest of the message always goes in.
    bool sent = omni_wire_send_head (sock, peer, peer_size, head, n > 0, ZMQ_DONTWAIT) == 0;
    if (sent)
        for (zframe_t *f = n ? zmsg_first (*records) : NULL; f; f = zmsg_next (*records))
            omni_wire_send_record (sock, zframe_data (f), zframe_size (f), ++i == n);
    else if (zmq_errno () == EAGAIN)
        s_peer_unread (self, which, fd);
    if (records)
        zmsg_destroy (records);
    return sent;
}

//  The process's anonymous memory: resident pages less file-backed ones
//  (the journal's map is file-backed, and the kernel's to reclaim).
static uint64_t
s_memory_used (int fd)
{
    char text[128];
    ssize_t n = pread (fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = 0;
    unsigned long long size, resident, shared;
    if (sscanf (text, "%llu %llu %llu", &size, &resident, &shared) != 3 || resident < shared)
        return 0;
    return (uint64_t) (resident - shared) * (uint64_t) sysconf (_SC_PAGESIZE);
}

//  Over budget and no connection holds what is over: what does. malloc's
//  view (its heaps in use and free, and what it mapped for large blocks:
//  libzmq's messages of records), what peers hold in libzmq, and how long
//  the event loop has been in one round (a pipe closed by a drop is freed
//  only when the loop next polls).
static void
s_memory_unattributed (server_t *self, uint64_t used, int64_t now)
{
    uint64_t held;
    if (!omni_log_allow ("ingestd.memory_unattributed", "", 10000, &held))
        return;
    struct mallinfo2 info = mallinfo2 ();
    log_warn ("ingestd.memory_unattributed",
              "bytes=%" PRIu64 " heap_in_use=%zu heap_free=%zu mmapped=%zu held_intake=%" PRIu64
              " held_delivery=%" PRIu64 " held_tap=%" PRIu64 " loop_busy_ms=%" PRId64
              " repeated=%" PRIu64,
              used, info.uordblks, info.fordblks, info.hblkhd,
              peers_held_total (self->peers, PEERS_INTAKE),
              peers_held_total (self->peers, PEERS_DELIVERY),
              peers_held_total (self->peers, PEERS_TAP), now - atomic_load (&self->loop_ms), held);
}

//  Drops connections for memory: those holding most, intake first (a
//  message being built), then delivery, until what they held covers
//  `excess`. Returns the bytes they held.
static uint64_t
s_shed (server_t *self, uint64_t used, uint64_t excess, int64_t now, int64_t over_since)
{
    //  Every connection holding more than half the headroom goes at once:
    //  while the largest is being closed the next would go on growing.
    uint64_t freed = 0, more = 0, big = (self->config.memory_max - self->shed_at) / 2;
    size_t dropped =
        peers_drop_holding (self->peers, PEERS_INTAKE, big, UINT64_MAX, PEERS_MEMORY, &freed);
    if (freed < excess) {
        dropped +=
            peers_shed (self->peers, PEERS_INTAKE, excess - freed, SHED_FLOOR, PEERS_MEMORY, &more);
        freed += more;
    }
    if (freed < excess) {
        dropped += peers_shed (self->peers, PEERS_DELIVERY, excess - freed, SHED_FLOOR,
                               PEERS_MEMORY, &more);
        freed += more;
    }
    if (freed < excess) {
        dropped += peers_drop_unknown (self->peers, PEERS_INTAKE, (int) self->fd_limit, SHED_FLOOR,
                                       PEERS_MEMORY, &more);
        freed += more;
    }
    bool all = false;
    if (!dropped)
        s_memory_unattributed (self, used, now);
    if (!dropped && now - over_since >= MEMORY_QUIET_MS) {
        //  Nothing holds what is over: not a message being built. The
        //  connections that sent nothing lately go (a tap subscriber that
        //  does not read is such), and still over after MEMORY_ALL_MS more,
        //  every intake connection.
        all = now - over_since >= MEMORY_QUIET_MS + MEMORY_ALL_MS;
        for (int k = 0; k < PEERS_SOCKETS; k++)
            dropped += peers_drop_silent (
                self->peers, (peers_socket_t) k,
                all && k == PEERS_INTAKE ? INT64_MAX : now - MEMORY_QUIET_MS, true, PEERS_MEMORY);
    }
    return s_shed_done (self, used, dropped, freed, all) ? (freed ? freed : excess) : 0;
}

//  From watch_at on: every connection holding more than half the headroom
//  goes at once. Well before the budget is near, and all of them: while
//  the largest is being closed the next would go on growing. A collector
//  holds its batches in flight, a few MiB. Returns the bytes they held.
static uint64_t
s_shed_big (server_t *self, uint64_t used)
{
    uint64_t big = (self->config.memory_max - self->shed_at) / 2, freed = 0, more = 0;
    size_t dropped =
        peers_drop_holding (self->peers, PEERS_INTAKE, big, UINT64_MAX, PEERS_MEMORY, &freed);
    dropped +=
        peers_drop_holding (self->peers, PEERS_DELIVERY, big, UINT64_MAX, PEERS_MEMORY, &more);
    freed += more;
    //  A connection accepted while the event loop is busy in a long round
    //  is not in the table until the loop reads its ACCEPTED event: found
    //  by its port, or it would build a giant message unseen
    dropped += peers_drop_unknown (self->peers, PEERS_INTAKE, (int) self->fd_limit, big,
                                   PEERS_MEMORY, &more);
    freed += more;
    return s_shed_done (self, used, dropped, freed, false) ? freed : 0;
}

//  Counts and logs a shed of `dropped` connections; false when none.
static bool
s_shed_done (server_t *self, uint64_t used, size_t dropped, uint64_t freed, bool all)
{
    if (!dropped)
        return false;
    atomic_fetch_add (&self->memory_sheds, 1);
    atomic_fetch_add (&self->memory_freed, freed);
    omni_metric_add (self->m_memory_sheds, 1);
    omni_metric_add (self->m_memory_freed, freed);
    uint64_t held;
    if (omni_log_allow ("ingestd.memory_over", "", 10000, &held))
        log_warn ("ingestd.memory_over",
                  "bytes=%" PRIu64 " shed_at=%" PRIu64 " memory_max=%" PRIu64
                  " dropped_connections=%zu held_bytes=%" PRIu64 " all=%s repeated=%" PRIu64
                  " why=\"peers made libzmq hold messages not yet whole; the connections "
                  "holding most were closed (collectors resend what was not acknowledged)\"",
                  used, self->shed_at, self->config.memory_max, dropped, freed, all ? "yes" : "no",
                  held);
    return true;
}

//  The memory guard: a thread of its own, so that a long journal commit
//  does not leave libzmq reading unwatched. Every GUARD_MS it reads the
//  process's anonymous memory; past shed_at (memory_max less a headroom:
//  what one libzmq I/O thread can read in a few checks) it first gives
//  freed memory back to the system, then drops the connections holding
//  most. What they held is freed once libzmq has closed them, so that much
//  is not shed for again until memory falls or SHED_WAIT_MS passed.
static void *
s_guard (void *arg)
{
    server_t *self = arg;
    int64_t over_since = 0, shed_ms = 0, scan_ms = 0;
    uint64_t pending = 0, level = 0; //  held by the connections dropped, memory then
    uint64_t scan_used = 0;
    uint64_t headroom = self->config.memory_max - self->shed_at;
    //  Opened once: a peer holding every descriptor (EMFILE) would
    //  otherwise blind the guard while another builds a giant message
    int statm = self->statm_fd;
    while (!s_stopping (self)) {
        struct timespec pause = {0, GUARD_MS * 1000000L};
        nanosleep (&pause, NULL);
        uint64_t used = s_memory_used (statm);
        atomic_store (&self->memory_used, used);
        if (used > atomic_load (&self->memory_peak))
            atomic_store (&self->memory_peak, used);
        int64_t now = omni_util_mono_ms ();
        //  Looking at every connection costs two system calls each: from
        //  watch_at on, every SCAN_MS, or at once when memory grew fast
        if (used > self->watch_at &&
            (now - scan_ms >= SCAN_MS || used > scan_used + headroom / 4)) {
            scan_ms = now;
            scan_used = used;
            uint64_t freed = s_shed_big (self, used);
            if (freed) {
                uint64_t fallen = level > used ? level - used : 0;
                pending =
                    (now - shed_ms < SHED_WAIT_MS && pending > fallen ? pending - fallen : 0) +
                    freed;
                level = used;
                shed_ms = now;
            }
        }
        if (used <= self->shed_at) {
            if (over_since && now - over_since >= 1000)
                log_info ("ingestd.memory_ok",
                          "bytes=%" PRIu64 " shed_at=%" PRIu64 " lasted_ms=%" PRId64, used,
                          self->shed_at, now - over_since);
            over_since = 0;
            pending = 0;
            continue;
        }
        if (!over_since) {
            over_since = now;
            //  Memory freed but kept by malloc (libzmq's messages come and
            //  go in its I/O thread's arena) goes back first
            malloc_trim (0);
            used = s_memory_used (statm);
            if (used <= self->shed_at)
                continue;
        }
        if (now - shed_ms >= SHED_WAIT_MS)
            pending = 0;
        uint64_t fallen = level > used ? level - used : 0;
        uint64_t waiting = pending > fallen ? pending - fallen : 0;
        if (used - waiting <= self->shed_at)
            continue;
        //  Below shed_at by a quarter of the headroom, not just under it
        uint64_t excess =
            used - waiting - self->shed_at + (self->config.memory_max - self->shed_at) / 4;
        uint64_t freed = s_shed (self, used, excess, now, over_since);
        if (freed) {
            pending = waiting + freed;
            level = used;
            shed_ms = now;
        }
    }
    return NULL;
}

//  ---------------------------------------------------------------------------
//  Tap

//  Whether anyone may listen on the tap: nothing is copied for it otherwise.
//  A connection, not a count of subscriptions, which a peer's bogus
//  unsubscribes could drive to nothing; XPUB filters by topic itself.
static bool
s_tap_open (server_t *self)
{
    return peers_count (self->peers, PEERS_TAP) > 0;
}

//  Rejects are published at most TAP_REJECTS_PER_S a second: one message
//  of 60,000 bad frames would otherwise fill a subscriber's queue (TAP_HWM)
//  and push out the accepted records published after it. The rest are
//  counted; every one is a dead letter all the same.
static void
s_tap_reject (server_t *self, const char *reason, const char *detail, const void *raw, size_t size)
{
    if (!s_tap_open (self))
        return;
    int64_t now = omni_util_mono_ms ();
    if (now - self->tap_rejects_since_ms >= 1000) {
        self->tap_rejects_since_ms = now;
        self->tap_rejects = 0;
    }
    if (self->tap_rejects >= TAP_REJECTS_PER_S) {
        omni_metric_add (self->m_tap_rejects_skipped, 1);
        return;
    }
    self->tap_rejects++;
    void *sock = zsock_resolve (self->tap);
    if (zmq_send (sock, REJECT_TOPIC, strlen (REJECT_TOPIC), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return;
    zmq_send (sock, reason, strlen (reason), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (sock, detail, strlen (detail), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (sock, raw, size < JOURNAL_DEAD_RAW_MAX ? size : JOURNAL_DEAD_RAW_MAX,
              ZMQ_SNDMORE | ZMQ_DONTWAIT);
    //  The raw frame is cut at JOURNAL_DEAD_RAW_MAX: the whole size says how
    //  much was refused (a 100 MiB frame is not a 4 KiB one).
    uint8_t whole[8];
    omni_util_put_be (whole, size, 8);
    zmq_send (sock, whole, sizeof whole, ZMQ_DONTWAIT);
}

//  libzmq keeps every subscription in a trie, which a peer could grow
//  without end, and does not say which connection one came on. What a tap
//  connection sent is all subscriptions (and heartbeats), so its TCP byte
//  count (peers_held) is what it made the trie hold: a peer past
//  TAP_PEER_BYTES goes, and while all of them together are past
//  TAP_BYTES_MAX, the largest. A real omni-tap sends a few hundred bytes:
//  it keeps its subscriptions and its records whatever others send.
static void
s_tap_subscriptions (server_t *self)
{
    zframe_t *frame;
    for (int i = 0; i < 10000 && (frame = zframe_recv_nowait (self->tap)); i++) {
        if (zframe_size (frame) >= 1 && zframe_data (frame)[0] == 1)
            self->tap_subscribes++;
        zframe_destroy (&frame);
    }
    size_t dropped = peers_drop_holding (self->peers, PEERS_TAP, TAP_PEER_BYTES, TAP_BYTES_MAX,
                                         PEERS_TAP_TOPICS, NULL);
    uint64_t held;
    if (dropped && omni_log_allow ("tap.too_many_subscriptions", "", 60000, &held))
        log_warn ("tap.too_many_subscriptions",
                  "dropped_connections=%zu peer_limit=%d total_limit=%d repeated=%" PRIu64
                  " why=\"subscriptions past their bound (each costs memory in libzmq); the "
                  "other subscribers keep theirs\"",
                  dropped, TAP_PEER_BYTES, TAP_BYTES_MAX, held);
    omni_metric_set (self->m_tap_subscribers, (double) self->tap_subscribes);
}

//  ---------------------------------------------------------------------------
//  Intake
//
//  Frames are received straight into zmq_msg_t (no czmq frame or list node
//  per record) and each record frame is validated and appended as soon as it
//  is received, so a round holds no record in memory beyond the LMDB write
//  transaction, except copies for the tap while someone subscribes.

static void
s_tap_keep (server_t *self, const omni_record_t *record, const void *data, size_t size)
{
    if (size > self->tap_record_max) {
        omni_metric_add (self->m_tap_skipped, 1);
        return;
    }
    if (self->ntapped == self->tapped_cap) {
        self->tapped_cap = self->tapped_cap ? self->tapped_cap * 2 : 1024;
        self->tapped = realloc (self->tapped, self->tapped_cap * sizeof *self->tapped);
        assert (self->tapped);
    }
    if (self->tap_buf_size + record->kind.len + size > self->tap_buf_cap) {
        while (self->tap_buf_size + record->kind.len + size > self->tap_buf_cap)
            self->tap_buf_cap = self->tap_buf_cap ? self->tap_buf_cap * 2 : 1 << 20;
        self->tap_buf = realloc (self->tap_buf, self->tap_buf_cap);
        assert (self->tap_buf);
    }
    s_tapped_t *t = &self->tapped[self->ntapped++];
    t->kind_at = self->tap_buf_size;
    t->kind_len = record->kind.len;
    memcpy (self->tap_buf + t->kind_at, record->kind.ptr, record->kind.len);
    t->record_at = t->kind_at + t->kind_len;
    t->record_len = size;
    memcpy (self->tap_buf + t->record_at, data, size);
    self->tap_buf_size = t->record_at + size;
}

//  A frame's bytes on the wire: ZMTP 3 puts a flags byte and a 1- or
//  8-byte size before it; CURVE sends it as a MESSAGE command of 33 bytes
//  more ("\x07MESSAGE", an 8-byte nonce, a flags byte and a 16-byte MAC).
//  Exact, or the count of what libzmq holds would drift on a long-lived
//  connection; a peer that frames more loosely only looks larger.
static uint64_t
s_wire_size (server_t *self, size_t size)
{
    uint64_t body = size + (self->config.curve ? 33 : 0);
    return body + (body > 255 ? 9 : 2);
}

//  Receives the next part of a multipart message already arriving.
static int
s_recv_part (server_t *self, zmq_msg_t *msg)
{
    void *sock = zsock_resolve (self->intake);
    int rc;
    while ((rc = zmq_msg_recv (msg, sock, 0)) < 0 && zmq_errno () == EINTR)
        ;
    if (rc >= 0)
        self->wire += s_wire_size (self, zmq_msg_size (msg));
    return rc < 0 ? -1 : 0;
}

//  Receives and discards the rest of a message; returns the parts dropped.
static size_t
s_drain_parts (server_t *self, bool more)
{
    size_t parts = 0;
    while (more && s_recv_part (self, &self->frame) == 0) {
        parts++;
        more = zmq_msg_more (&self->frame);
    }
    return parts;
}

//  Dead-letters a message that is not a well-formed BATCH: `why` is the
//  reason the peer is told, or NULL for the usual one; `codec` what the
//  codec found wrong with the head.
static int
s_intake_malformed (server_t *self, zmq_msg_t *head, size_t nhead, bool more, s_reply_t *reply,
                    int64_t now, const char *why, const char *codec)
{
    size_t frames = nhead + s_drain_parts (self, more);
    char detail[256];
    if (why)
        snprintf (detail, sizeof detail, "%s", why);
    else
        snprintf (detail, sizeof detail,
                  "expected \"" WIRE_INTAKE_SIGNATURE
                  "\" \"BATCH\" seq:u64 record..., got %zu frames: %s",
                  frames, codec ? codec : "no head");
    const void *raw = nhead >= 1 ? zmq_msg_data (&head[0]) : (const void *) "";
    size_t size = nhead >= 1 ? zmq_msg_size (&head[0]) : 0;
    journal_count_received (self->journal, 1);
    if (journal_reject (self->journal, "bad_frame", detail, raw, size, now))
        return -1;
    omni_metric_add (self->m_received, 1);
    omni_metric_add (self->m_rejected[REJECT_REASON_COUNT], 1);
    s_tap_reject (self, "bad_frame", detail, raw, size);
    //  A peer can send these as fast as it likes: the first, then one a
    //  minute (the counter and the dead letters have them all)
    uint64_t held;
    if (omni_log_allow ("intake.bad_frame", "", 60000, &held))
        log_warn ("intake.bad_frame", "detail=\"%s\" repeated=%" PRIu64, detail, held);
    reply->malformed = true;
    reply->rejected = 1;
    snprintf (reply->reason, sizeof reply->reason, "%s", why ? why : "");
    if (nhead >= 3 && zmq_msg_size (&head[2]) == 8) {
        memcpy (reply->seq, zmq_msg_data (&head[2]), 8);
        reply->has_seq = true;
    }
    return 0;
}

//  The writers a REPLAY message is routed to, from its writers frame: names
//  separated by commas, each a configured writer; empty = every configured
//  writer. Never the archive: replay reads the archive, and a record sent
//  back into it would only be skipped there, at the cost of a lookup.
//  Returns 0, or -1 with `why` filled.
static int
s_replay_route (server_t *self, const char *data, size_t size, uint8_t *route, char *why,
                size_t why_size)
{
    unsigned mask = 0;
    for (size_t at = 0; at < size;) {
        const char *comma = memchr (data + at, ',', size - at);
        size_t len = comma ? (size_t) (comma - (data + at)) : size - at;
        char name[32];
        snprintf (name, sizeof name, "%.*s", (int) (len < 31 ? len : 31), data + at);
        unsigned role = len < 31 ? omni_kinds_writer_role (name) : 0;
        if (role == WRITER_ARCHIVE) {
            snprintf (why, why_size,
                      "REPLAY never routes to the archive (it is what replay reads)");
            return -1;
        }
        if (!role || !(self->configured_roles & role)) {
            snprintf (why, why_size, "REPLAY to writer \"%.31s\", not in ingestd.writers (%.80s)",
                      name, self->writers_text);
            return -1;
        }
        mask |= role;
        at += len + 1;
    }
    if (size == 0)
        mask = self->configured_roles;
    mask &= ~(unsigned) WRITER_ARCHIVE;
    if (!mask) {
        snprintf (why, why_size, "REPLAY with no writer to route to but the archive (%.80s)",
                  self->writers_text);
        return -1;
    }
    *route = (uint8_t) mask;
    return 0;
}

//  Receives and journals one intake message, if one is waiting; fills the
//  reply. Returns 1 when a message was handled, 0 when none was waiting, -1
//  when the journal failed (the round must abort, nothing is acknowledged).
static int
s_intake_message_read (server_t *self, s_reply_t *reply, size_t *bytes)
{
    void *sock = zsock_resolve (self->intake);
    if (zmq_msg_recv (&self->frame, sock, ZMQ_DONTWAIT) < 0)
        return 0;
    int64_t now = omni_util_now_ns ();
    reply->peer_size = zmq_msg_size (&self->frame);
    if (reply->peer_size > sizeof reply->peer)
        reply->peer_size = sizeof reply->peer;
    memcpy (reply->peer, zmq_msg_data (&self->frame), reply->peer_size);
    reply->has_seq = false;
    reply->accepted = reply->rejected = 0;
    reply->malformed = false;
    reply->reason[0] = 0;
    reply->fd = -1;
    bool more = zmq_msg_more (&self->frame);
    size_t nhead = 0;
    omni_wire_head_t head = {0};
    char why[160] = "an incomplete head";
    int fed = 0;
    //  The head, frame by frame through the codec; three frames even when
    //  it is refused sooner, so that the ERROR echoes a seq where one was
    while (more && nhead < WIRE_HEAD_MAX && (fed == 0 || (fed < 0 && nhead < 3))) {
        zmq_msg_t *part = &self->head[nhead];
        if (s_recv_part (self, part))
            break;
        more = zmq_msg_more (part);
        *bytes += zmq_msg_size (part);
        if (nhead == 0) {
            //  The routing id frame is the ROUTER's own: the first frame
            //  of the body carries the connection
            reply->fd = zmq_msg_get (part, ZMQ_SRCFD);
            peers_touch (self->peers, reply->fd, omni_util_mono_ms ());
        }
        if (fed == 0)
            fed = omni_wire_head_feed (WIRE_INTAKE, &head, nhead, zmq_msg_data (part),
                                       zmq_msg_size (part), more, why, sizeof why);
        nhead++;
    }
    if (fed > 0 && !omni_wire_carries_records (head.command))
        snprintf (why, sizeof why, "%s is not sent to ingestd",
                  omni_wire_command_name (head.command));
    if (fed <= 0 || !omni_wire_carries_records (head.command))
        return s_intake_malformed (self, self->head, nhead, more, reply, now,
                                   head.command == WIRE_REPLAY ? why : NULL, why)
                   ? -1
                   : 1;
    omni_util_put_be (reply->seq, head.seq, 8);
    reply->has_seq = true;
    uint8_t route = 0xff; //  a BATCH goes wherever its kind goes
    bool replay = head.command == WIRE_REPLAY;
    if (replay) {
        if (s_replay_route (self, head.text, head.text_size, &route, why, sizeof why))
            return s_intake_malformed (self, self->head, nhead, more, reply, now, why, NULL) ? -1
                                                                                             : 1;
        for (size_t i = 0; i < self->nsessions; i++)
            if (self->sessions[i].role & route)
                self->sessions[i].replay_seen = true; //  under state_lock (the round's)
    }
    size_t frames = 0, record_bytes = 0;
    bool tap = s_tap_open (self), over = false;
    int rc = 1;
    while (more) {
        if (s_recv_part (self, &self->frame)) {
            rc = -1;
            break;
        }
        more = zmq_msg_more (&self->frame);
        const void *data = zmq_msg_data (&self->frame);
        size_t size = zmq_msg_size (&self->frame);
        if (frames >= self->config.max_batch_records ||
            record_bytes + size > self->config.max_batch_bytes) {
            //  libzmq held the whole message already; what ingestd does
            //  with it stays bounded: the rest is one bad input.
            over = true;
            s_drain_parts (self, more);
            more = false;
            break;
        }
        frames++;
        record_bytes += size;
        omni_record_t record;
        char detail[256];
        omni_record_reject_t reason =
            omni_record_check (&record, data, size, &self->config.limits, detail, sizeof detail);
        if (reason == REJECT_NONE)
            reason = omni_record_check_id (&record, detail, sizeof detail);
        if (reason == REJECT_NONE) {
            uint8_t writers = (uint8_t) (record.spec->writers & route);
            if (self->config.stream
                    ? jsjournal_publish (self->config.stream, &record, data, size, writers) != 0
                    : !journal_append (self->journal, data, size, writers, now)) {
                rc = -1;
                break;
            }
            reply->accepted++;
            if (tap) //  published after the commit
                s_tap_keep (self, &record, data, size);
        } else {
            const char *name = omni_record_reject_name (reason);
            if (journal_reject (self->journal, name, detail, data, size, now)) {
                rc = -1;
                break;
            }
            reply->rejected++;
            omni_metric_add (self->m_rejected[reason], 1);
            s_tap_reject (self, name, detail, data, size);
            log_debug ("intake.reject", "reason=%s detail=\"%s\" bytes=%zu", name, detail, size);
        }
    }
    if (rc < 0) {
        s_drain_parts (self, more);
        return -1;
    }
    journal_count_received (self->journal, frames);
    if (over) {
        snprintf (why, sizeof why,
                  "batch over max_batch_records (%zu) or max_batch_bytes (%" PRIu64
                  "): the rest of it is refused",
                  self->config.max_batch_records, self->config.max_batch_bytes);
        uint32_t accepted = reply->accepted, rejected = reply->rejected;
        if (s_intake_malformed (self, self->head, 0, false, reply, now, why, NULL))
            return -1;
        reply->accepted = accepted;
        reply->rejected += rejected;
    }
    if (replay)
        omni_metric_add (self->m_replayed, reply->accepted);
    omni_metric_add (self->m_received, frames);
    omni_metric_add (self->m_bytes, record_bytes);
    *bytes += record_bytes;
    return 1;
}

//  The same, counting what was read from the connection (its routing id
//  frame is the ROUTER's, not on the wire): what libzmq still holds for it
//  is what it received less that (peers_held).
static int
s_intake_message (server_t *self, s_reply_t *reply, size_t *bytes)
{
    self->wire = 0;
    int rc = s_intake_message_read (self, reply, bytes);
    if (rc != 0 && reply->fd >= 0)
        peers_consumed (self->peers, reply->fd, self->wire);
    return rc;
}

static void
s_send_intake_reply (server_t *self, s_reply_t *reply)
{
    omni_wire_head_t head = {.command = WIRE_INTAKE_ACK,
                             .seq = reply->has_seq ? omni_util_get_be (reply->seq, 8) : 0,
                             .accepted = reply->accepted,
                             .rejected = reply->rejected};
    char text[320] =
        "bad_frame: malformed intake message, see " WIRE_INTAKE_SIGNATURE " in PROTOCOL.md";
    if (reply->malformed) {
        if (*reply->reason)
            snprintf (text, sizeof text, "bad_frame: %s", reply->reason);
        head.command = WIRE_INTAKE_ERROR;
        head.text = text;
        head.text_size = strlen (text);
    }
    s_route (self, PEERS_INTAKE, reply->peer, reply->peer_size, reply->fd, &head, NULL);
}

static void s_pump_all (server_t *self);

//  A journal write failed (`op`, of a round of `bytes`): the journal is
//  faulted until a probe succeeds. Nothing was acknowledged for it.
static void
s_journal_failed (server_t *self, const char *op, size_t bytes)
{
    journal_fault_t fault = journal_fault (self->journal);
    if (fault == JOURNAL_OK)
        fault = JOURNAL_ERROR; //  failed without an LMDB error: still not written
    omni_metric_add (self->m_write_errors, 1);
    char text[sizeof self->fault_text];
    journal_fault_text (self->journal, fault, text, sizeof text);
    const char *error = mdb_strerror (journal_error (self->journal));
    int64_t now = omni_util_mono_ms ();
    bool starting = self->fault == JOURNAL_OK;
    if (starting) {
        self->fault_since_ms = now;
        log_error ("journal.fault", "cause=%s op=%s error=\"%s\" dir=%s detail=\"%s\"",
                   journal_fault_name (fault), op, error, journal_dir (self->journal), text);
    } else if (fault != self->fault)
        log_warn ("journal.fault", "cause=%s previous=%s op=%s error=\"%s\" detail=\"%s\"",
                  journal_fault_name (fault), journal_fault_name (self->fault), op, error, text);
    else
        log_debug ("journal.fault", "cause=%s op=%s error=\"%s\"", journal_fault_name (fault), op,
                   error);
    if (self->fault != JOURNAL_OK)
        omni_metric_set (self->m_fault[self->fault], 0);
    omni_metric_set (self->m_fault[fault], 1);
    pthread_mutex_lock (&self->state_lock);
    self->fault = fault;
    snprintf (self->fault_text, sizeof self->fault_text, "%s", text);
    pthread_mutex_unlock (&self->state_lock);
    //  Probes keep their own pace: failed syncs between them do not delay them.
    if (starting)
        self->last_probe_ms = now;
    if (bytes) {
        //  The probe writes what the failed round needed, with room for
        //  LMDB's pages: a success means the next such round fits.
        size_t probe = bytes * 2;
        self->probe_bytes = probe < PROBE_MIN ? PROBE_MIN : probe > PROBE_MAX ? PROBE_MAX : probe;
    } else if (!self->probe_bytes)
        self->probe_bytes = PROBE_MIN;
}

//  The journal took a write of every kind that had failed: the fault is over.
static void
s_journal_ok (server_t *self)
{
    if (self->fault == JOURNAL_OK)
        return;
    log_info ("journal.fault_cleared", "cause=%s lasted_ms=%" PRId64 " dir=%s",
              journal_fault_name (self->fault), omni_util_mono_ms () - self->fault_since_ms,
              journal_dir (self->journal));
    omni_metric_set (self->m_fault[self->fault], 0);
    pthread_mutex_lock (&self->state_lock);
    self->fault = JOURNAL_OK;
    self->fault_text[0] = 0;
    pthread_mutex_unlock (&self->state_lock);
    self->probe_bytes = 0;
}

//  journal: jetstream. The round's records were published; it is durable
//  once every publish ack came. Waited for without state_lock (called with
//  it held): nothing /health compares changes before the commit, and the
//  wait may last the publish timeout. Returns 0, or -1 when the round must
//  abort.
static int
s_stream_round (server_t *self)
{
    jsjournal_t *stream = self->config.stream;
    pthread_mutex_unlock (&self->state_lock);
    int rc = jsjournal_complete (stream);
    pthread_mutex_lock (&self->state_lock);
    if (rc) {
        jsjournal_abort (stream);
        return -1;
    }
    journal_count_forwarded (self->journal, jsjournal_published (stream));
    return 0;
}

//  The stream did not store a round: intake pauses as for a journal fault
//  (JOURNAL_STREAM), probed every second; the collectors send it again.
static void
s_stream_failed (server_t *self)
{
    const char *error = jsjournal_error (self->config.stream);
    omni_metric_add (self->m_write_errors, 1);
    int64_t now = omni_util_mono_ms ();
    if (self->fault == JOURNAL_OK) {
        self->fault_since_ms = now;
        self->last_probe_ms = now;
        log_error ("journal.fault", "cause=stream stream=%s error=\"%s\"",
                   jsjournal_stream (self->config.stream), error);
    } else
        log_debug ("journal.fault", "cause=stream error=\"%s\"", error);
    if (self->fault != JOURNAL_OK)
        omni_metric_set (self->m_fault[self->fault], 0);
    omni_metric_set (self->m_fault[JOURNAL_STREAM], 1);
    pthread_mutex_lock (&self->state_lock);
    self->fault = JOURNAL_STREAM;
    snprintf (self->fault_text, sizeof self->fault_text,
              "journal: %s: intake paused, nothing of the round acknowledged; ingestd retries "
              "every second and resumes by itself",
              error);
    pthread_mutex_unlock (&self->state_lock);
}

//  One intake round: every message waiting, journaled in one transaction,
//  then acknowledged. Returns 0, or -1 when the journal failed (nothing of
//  the round is acknowledged: the collectors resend it).
static int
s_intake_round (server_t *self)
{
    s_reply_t *replies = self->replies;
    size_t count = 0, bytes = 0;
    pthread_mutex_lock (&self->state_lock);
    if (journal_begin (self->journal)) {
        pthread_mutex_unlock (&self->state_lock);
        s_journal_failed (self, "intake_begin", 0);
        return -1;
    }
    int64_t start = omni_util_mono_ms ();
    bool failed = false, stream_failed = false;
    if (self->config.stream)
        jsjournal_begin (self->config.stream);
    self->ntapped = 0;
    self->tap_buf_size = 0;
    while (count < ROUND_MESSAGES && bytes < ROUND_BYTES) {
        int rc = s_intake_message (self, &replies[count], &bytes);
        if (rc == 0)
            break;
        count++;
        if (rc < 0) {
            failed = true;
            break;
        }
    }
    if (!failed && count && self->config.stream)
        failed = stream_failed = s_stream_round (self);
    int rc = failed ? -1 : count ? journal_commit (self->journal) : 0;
    if (failed || !count)
        journal_abort (self->journal);
    pthread_mutex_unlock (&self->state_lock);
    if (stream_failed) {
        s_stream_failed (self);
        return -1;
    }
    if (rc == 0 && count) {
        s_journal_ok (self);
        omni_metric_add (self->m_rounds, 1);
        omni_metric_observe (self->m_commit_latency,
                             (double) (omni_util_mono_ms () - start) / 1000.0);
        uint64_t accepted = 0, batches = 0;
        for (size_t i = 0; i < count; i++) {
            accepted += replies[i].accepted;
            batches += !replies[i].malformed;
            s_send_intake_reply (self, &replies[i]);
        }
        omni_metric_add (self->m_accepted, accepted);
        omni_metric_add (self->m_batches, batches);
        void *sock = zsock_resolve (self->tap);
        for (size_t i = 0; i < self->ntapped; i++) {
            const s_tapped_t *t = &self->tapped[i];
            if (zmq_send (sock, self->tap_buf + t->kind_at, t->kind_len,
                          ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
                zmq_send (sock, self->tap_buf + t->record_at, t->record_len, ZMQ_DONTWAIT);
        }
    } else if (rc != 0)
        //  Nothing acknowledged: the collectors resend, nothing is lost.
        s_journal_failed (self, "intake", bytes);
    //  A burst leaves the tap buffer large; do not keep it.
    if (self->tap_buf_cap > (8 << 20)) {
        free (self->tap_buf);
        self->tap_buf = NULL;
        self->tap_buf_cap = 0;
    }
    s_pump_all (self);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Delivery

typedef struct {
    s_session_t *session;
    zmsg_t *msg;
    size_t records, bytes, scanned;
    uint32_t credit;
    uint64_t upto;
} s_fill_t;

static bool
s_fill (void *arg, uint64_t offset, const void *record, size_t size, uint8_t writers,
        int64_t received_ns)
{
    s_fill_t *fill = arg;
    (void) received_ns;
    if (writers & fill->session->role) {
        if (fill->records >= fill->credit || fill->records >= DELIVER_RECORDS ||
            (fill->records > 0 && fill->bytes + size > DELIVER_BYTES))
            return false;
        zmsg_addmem (fill->msg, record, size);
        fill->records++;
        fill->bytes += size;
    }
    fill->upto = offset;
    return ++fill->scanned < SCAN_LIMIT;
}

//  Sends DELIVER messages to one writer while it has credit and the journal
//  has records past what it was sent.
static void
s_pump (server_t *self, s_session_t *s)
{
    uint64_t last = journal_next_offset (self->journal) - 1;
    //  Bounded by the writer's window, not by a message count: a writer with
    //  a large batch must get it without waiting for the next poll round.
    while (s->peer && s->sent_upto < last) {
        //  Credit in records, and in bytes: a window of small records is
        //  not a window of 4 MiB ones
        if (s->inflight_records >= s->window || s->inflight_bytes >= INFLIGHT_BYTES)
            return;
        //  An offset range with nothing for this writer also needs an ACK
        //  before it can be trimmed, but it costs no credit; still, do not
        //  pile up empty messages.
        s_fill_t fill = {s, zmsg_new (), 0, 0, 0, s->window - s->inflight_records, s->sent_upto};
        journal_scan (self->journal, s->sent_upto + 1, s_fill, &fill);
        if (fill.upto <= s->sent_upto) {
            zmsg_destroy (&fill.msg);
            return;
        }
        if (fill.records == 0 && s->ninflight > 0 && s->inflight[s->ninflight - 1].records == 0) {
            zmsg_destroy (&fill.msg);
            return;
        }
        //  Not sent: the writer is gone or does not read (then it is
        //  dropped); its session ends with its connection
        omni_wire_head_t head = {.command = WIRE_DELIVER, .upto = fill.upto};
        if (!s_route (self, PEERS_DELIVERY, zframe_data (s->peer), zframe_size (s->peer),
                      s->peer_fd, &head, &fill.msg))
            return;
        s->last_sent_ms = omni_util_mono_ms ();
        if (s->ninflight == s->inflight_cap) {
            s->inflight_cap = s->inflight_cap ? s->inflight_cap * 2 : 16;
            s->inflight = realloc (s->inflight, s->inflight_cap * sizeof *s->inflight);
            assert (s->inflight);
        }
        s->inflight[s->ninflight++] =
            (s_inflight_t){fill.upto, (uint32_t) fill.records, (uint32_t) fill.bytes};
        s->inflight_records += (uint32_t) fill.records;
        s->inflight_bytes += fill.bytes;
        s->sent_upto = fill.upto;
        omni_metric_add (s->m_delivered, fill.records);
    }
}

static void
s_pump_all (server_t *self)
{
    for (size_t i = 0; i < self->nsessions; i++)
        s_pump (self, &self->sessions[i]);
}

static void
s_delivery_reply (server_t *self, zframe_t *peer, int fd, omni_wire_command_t command,
                  const char *text)
{
    omni_wire_head_t head = {.command = command, .text = text, .text_size = strlen (text)};
    s_route (self, PEERS_DELIVERY, zframe_data (peer), zframe_size (peer), fd, &head, NULL);
}

static s_session_t *
s_session_by_peer (server_t *self, zframe_t *peer)
{
    for (size_t i = 0; i < self->nsessions; i++)
        if (self->sessions[i].peer && zframe_eq (self->sessions[i].peer, peer))
            return &self->sessions[i];
    return NULL;
}

//  The instance id of a HELLO (its optional last field), cut to printable
//  characters without blanks or quotes so that logs and /health show it as is.
static void
s_instance (const omni_wire_head_t *hello, char *out, size_t size)
{
    size_t n = 0;
    const uint8_t *data = (const uint8_t *) hello->instance;
    for (size_t i = 0; data && i < hello->instance_size && n + 1 < size; i++)
        out[n++] = data[i] > 0x20 && data[i] < 0x7f && data[i] != '"' && data[i] != '\\'
                       ? (char) data[i]
                       : '_';
    out[n] = 0;
}

static const char *
s_shown (const char *instance)
{
    return *instance ? instance : "unnamed"; //  a writer without instance ids
}

//  Refuses the waiting HELLO: the holder was heard from after it came.
static void
s_refuse_pending (server_t *self, s_session_t *s)
{
    int64_t heard_ms = omni_util_mono_ms () - s->last_heard_ms;
    char text[512];
    snprintf (text, sizeof text,
              "writer name \"%s\" is held by live instance %s (heard from %.1fs ago, after this "
              "HELLO); one writer per name: stop one of them",
              s->name, s_shown (s->instance), (double) heard_ms / 1000.0);
    s_delivery_reply (self, s->pending_peer, s->pending_fd, WIRE_REFUSED, text);
    omni_metric_add (s->m_refused, 1);
    log_error ("delivery.writer_refused",
               "writer=%s instance=%s holder=%s holder_heard_ms=%" PRId64 " waited_ms=%" PRId64,
               s->name, s_shown (s->pending_instance), s_shown (s->instance), heard_ms,
               omni_util_mono_ms () - s->pending_since_ms);
    zframe_destroy (&s->pending_peer);
}

//  `peer` holds the writer name from now on.
static void
s_welcome (server_t *self, s_session_t *s, zframe_t *peer, int fd, const char *instance,
           uint32_t window)
{
    bool same_peer = s->peer && zframe_eq (s->peer, peer);
    if (s->peer && !same_peer && *instance && strcmp (instance, s->instance) == 0)
        log_info ("delivery.writer_reconnected", "writer=%s instance=%s", s->name, instance);
    else if (s->peer && !same_peer)
        log_warn ("delivery.writer_replaced",
                  "writer=%s instance=%s previous=%s previous_silent_ms=%" PRId64, s->name,
                  s_shown (instance), s_shown (s->instance),
                  omni_util_mono_ms () - s->last_heard_ms);
    if (s->pending_peer && zframe_eq (s->pending_peer, peer))
        zframe_destroy (&s->pending_peer);
    //  A new connection for this name: whatever the old one had in flight
    //  is delivered again from the durable cursor.
    zframe_destroy (&s->peer);
    s->peer = zframe_dup (peer);
    s->peer_fd = fd;
    pthread_mutex_lock (&self->state_lock);
    snprintf (s->instance, sizeof s->instance, "%s", instance);
    pthread_mutex_unlock (&self->state_lock);
    s->window = window;
    s->sent_upto = journal_cursor (self->journal, s->index) - 1;
    s->ninflight = 0;
    s->inflight_records = 0;
    s->inflight_bytes = 0;
    s->last_heard_ms = omni_util_mono_ms ();
    omni_wire_head_t head = {.command = WIRE_WELCOME, .cursor = s->sent_upto + 1};
    _Static_assert(JOURNAL_ID_SIZE == WIRE_JOURNAL_ID, "WELCOME carries the journal's id");
    memcpy (head.journal, journal_id (self->journal), WIRE_JOURNAL_ID);
    s_route (self, PEERS_DELIVERY, zframe_data (peer), zframe_size (peer), fd, &head, NULL);
    omni_metric_set (s->m_connected, 1);
    log_info ("delivery.hello", "writer=%s instance=%s cursor=%" PRIu64 " window=%u", s->name,
              s_shown (instance), s->sent_upto + 1, s->window);
    //  The holder just spoke: a HELLO waiting for the name is refused.
    if (s->pending_peer)
        s_refuse_pending (self, s);
}

//  The holder of a name with a HELLO waiting was silent for the session
//  timeout: the waiting writer takes over.
static void
s_expire_holder (server_t *self, s_session_t *s)
{
    if (!s->pending_peer ||
        omni_util_mono_ms () - s->last_heard_ms < self->config.session_timeout_ms)
        return;
    zframe_t *peer = s->pending_peer;
    s->pending_peer = NULL;
    char instance[INSTANCE_MAX];
    snprintf (instance, sizeof instance, "%s", s->pending_instance);
    s_welcome (self, s, peer, s->pending_fd, instance, s->pending_window);
    zframe_destroy (&peer);
}

//  A malformed delivery message or a HELLO for no configured writer: the
//  first is logged, then one a minute (a peer decides how many come).
static void
s_delivery_bad (server_t *self, zframe_t *peer, int fd, const char *what, const char *detail)
{
    omni_metric_add (self->m_bad_messages, 1);
    uint64_t held;
    if (omni_log_allow ("delivery.bad_message", "", 60000, &held))
        log_warn ("delivery.bad_message", "what=%s detail=\"%s\" repeated=%" PRIu64, what, detail,
                  held);
    if (peer)
        s_delivery_reply (self, peer, fd, WIRE_RESET, detail);
}

//  A writer name as it must be on the wire: 1..WRITER_NAME_MAX printable
//  characters, no blanks, quotes, backslashes or NULs ("archive\0evil" is
//  not "archive"). Whether it is configured is asked after.
#define WRITER_NAME_MAX 32
static bool
s_writer_name_ok (const void *name, size_t size)
{
    const uint8_t *data = name;
    if (size == 0 || size > WRITER_NAME_MAX)
        return false;
    for (size_t i = 0; i < size; i++)
        if (data[i] <= 0x20 || data[i] >= 0x7f || data[i] == '"' || data[i] == '\\')
            return false;
    return true;
}

static void
s_handle_hello (server_t *self, zframe_t *peer, int fd, const omni_wire_head_t *hello)
{
    if (!s_writer_name_ok (hello->text, hello->text_size)) {
        //  In hex: the name may hold a NUL, which no %s shows
        char hex[2 * WRITER_NAME_MAX + 1];
        size_t shown = hello->text_size < WRITER_NAME_MAX ? hello->text_size : WRITER_NAME_MAX;
        omni_util_hex ((const uint8_t *) hello->text, shown, hex);
        char detail[256];
        snprintf (detail, sizeof detail,
                  "malformed HELLO: a writer name is 1..%d printable characters without blanks "
                  "(got %zu bytes, hex %s%s)",
                  WRITER_NAME_MAX, hello->text_size, hex, shown < hello->text_size ? "..." : "");
        s_delivery_bad (self, peer, fd, "writer_name", detail);
        return;
    }
    //  Optional: a writer of before instance ids sends none.
    char instance[INSTANCE_MAX];
    s_instance (hello, instance, sizeof instance);
    uint32_t window = hello->window;
    //  A window is what ingestd agrees to hold for the writer
    if (window > self->config.window_max)
        window = self->config.window_max;
    char *name = strndup (hello->text, hello->text_size);
    //  CURVE lets any writer key in on delivery: the name must be its own
    char refusal[256];
    if (!omni_curve_server_writer_allowed_meta (self->config.curve, self->peer_key,
                                                self->peer_writers, name, refusal,
                                                sizeof refusal)) {
        s_delivery_reply (self, peer, fd, WIRE_RESET, refusal);
        free (name);
        return;
    }
    s_session_t *s = NULL;
    for (size_t i = 0; i < self->nsessions; i++)
        if (strcmp (self->sessions[i].name, name) == 0)
            s = &self->sessions[i];
    if (!s) {
        char text[256];
        snprintf (text, sizeof text, "writer \"%.64s\" is not configured in ingestd.writers", name);
        //  The writer says HELLO every second until it is configured here;
        //  one key for every name, so that a peer inventing names gets no
        //  more lines than one that repeats one
        omni_metric_add (self->m_bad_messages, 1);
        uint64_t held;
        if (omni_log_allow ("delivery.unknown_writer", "", 60000, &held))
            log_warn ("delivery.unknown_writer",
                      "writer=%.64s configured=%s repeated=%" PRIu64
                      " hint=\"add it to ingestd.writers (and restart ingestd), or stop that "
                      "writer\"",
                      name, self->writers_text, held);
        s_delivery_reply (self, peer, fd, WIRE_RESET, text);
        free (name);
        return;
    }
    free (name);
    //  A HELLO again on the connection that holds the name, with records in
    //  flight to it: the WELCOME it waits for is on its way. Welcoming it
    //  again would send everything in flight once more, per HELLO.
    if (s->peer && zframe_eq (s->peer, peer) && s->ninflight > 0) {
        omni_metric_add (self->m_hello_ignored, 1);
        s->window = window;
        s->last_heard_ms = omni_util_mono_ms ();
        uint64_t held;
        if (omni_log_allow ("delivery.hello_again", s->name, 60000, &held))
            log_info ("delivery.hello_again",
                      "writer=%s instance=%s inflight=%zu repeated=%" PRIu64
                      " why=\"a HELLO on a welcomed connection; nothing is sent again\"",
                      s->name, s_shown (instance), s->ninflight, held);
        return;
    }
    //  The same connection (HELLO after RESET), the same instance on a new
    //  connection (reconnected), or a holder silent for the timeout (crashed,
    //  killed, partitioned): the name is this writer's.
    if (!s->peer || zframe_eq (s->peer, peer) ||
        (*instance && strcmp (instance, s->instance) == 0) ||
        omni_util_mono_ms () - s->last_heard_ms >= self->config.session_timeout_ms) {
        s_welcome (self, s, peer, fd, instance, window);
        return;
    }
    //  Another instance while the holder lives. Refusing at once would lock
    //  out a writer restarted right after a kill -9 (its old session looks
    //  alive until the timeout): it waits for proof either way. A writer
    //  repeats its HELLO every second until answered.
    if (!s->pending_peer || !zframe_eq (s->pending_peer, peer)) {
        if (!s->pending_peer)
            log_info ("delivery.hello_waiting",
                      "writer=%s instance=%s holder=%s holder_heard_ms=%" PRId64, s->name,
                      s_shown (instance), s_shown (s->instance),
                      omni_util_mono_ms () - s->last_heard_ms);
        zframe_destroy (&s->pending_peer);
        s->pending_peer = zframe_dup (peer);
        s->pending_since_ms = omni_util_mono_ms ();
    }
    s->pending_fd = fd;
    snprintf (s->pending_instance, sizeof s->pending_instance, "%s", instance);
    s->pending_window = window;
}

//  An ACK, or NULL for one the codec refused.
static void
s_handle_ack (server_t *self, zframe_t *peer, int fd, const omni_wire_head_t *ack)
{
    s_session_t *s = s_session_by_peer (self, peer);
    if (!s) {
        s_delivery_reply (self, peer, fd, WIRE_RESET, "unknown connection, send HELLO");
        return;
    }
    if (!ack) {
        s_delivery_bad (self, NULL, fd, "ack", "malformed ACK");
        return;
    }
    uint64_t upto = ack->upto;
    s->window = ack->window;
    if (s->window > self->config.window_max)
        s->window = self->config.window_max;
    s->last_heard_ms = omni_util_mono_ms ();
    if (s->pending_peer)
        s_refuse_pending (self, s); //  the holder is alive

    if (upto > s->sent_upto)
        upto = s->sent_upto; //  cannot acknowledge what it was not sent
    if (upto + 1 <= journal_cursor (self->journal, s->index))
        return;
    size_t done = 0;
    uint64_t records = 0, bytes = 0;
    while (done < s->ninflight && s->inflight[done].upto <= upto) {
        bytes += s->inflight[done].bytes;
        records += s->inflight[done++].records;
    }
    s->inflight_bytes -= bytes;
    memmove (s->inflight, s->inflight + done, (s->ninflight - done) * sizeof *s->inflight);
    s->ninflight -= done;
    s->inflight_records -= (uint32_t) records;
    omni_metric_add (s->m_acked, records);
    int64_t received = journal_received_ns (self->journal, upto);
    if (received)
        omni_metric_observe (s->m_latency, (double) (omni_util_now_ns () - received) / 1e9);
    journal_set_cursor (self->journal, s->index, upto + 1);
}

//  Persists moved cursors and trims. A failure is part of the journal's
//  fault; the cursors stay moved in memory and are synced when possible.
//  A writer met records under ids it holds with other content and kept
//  them out of its store (it filed them): they are counted and published
//  on the tap as "conflict.<kind>" (writer name, record), so that an
//  operator watching sees the evidence. Only from a writer's session.
static void
s_handle_conflict (server_t *self, zframe_t *peer, zmsg_t *msg)
{
    s_session_t *s = s_session_by_peer (self, peer);
    if (!s)
        return;
    for (zframe_t *frame = zmsg_next (msg); frame; frame = zmsg_next (msg)) {
        omni_record_t record;
        if (omni_record_check (&record, zframe_data (frame), zframe_size (frame),
                               &self->config.limits, NULL, 0) != REJECT_NONE)
            continue;
        omni_metric_add (s->m_conflicts, 1);
        if (!s_tap_open (self))
            continue;
        char topic[128];
        int len =
            snprintf (topic, sizeof topic, "conflict.%.*s", (int) record.kind.len, record.kind.ptr);
        void *sock = zsock_resolve (self->tap);
        if (zmq_send (sock, topic, (size_t) len < sizeof topic ? (size_t) len : sizeof topic - 1,
                      ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            continue;
        zmq_send (sock, s->name, strlen (s->name), ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send (sock, zframe_data (frame), zframe_size (frame), ZMQ_DONTWAIT);
    }
}

static int
s_sync_cursors (server_t *self)
{
    pthread_mutex_lock (&self->state_lock);
    uint64_t trimmed_before = journal_counters (self->journal).trimmed;
    int rc = journal_sync_cursors (self->journal);
    uint64_t trimmed = journal_counters (self->journal).trimmed - trimmed_before;
    pthread_mutex_unlock (&self->state_lock);
    omni_metric_add (self->m_trimmed, trimmed);
    self->last_sync_ms = omni_util_mono_ms ();
    if (rc)
        s_journal_failed (self, "sync_cursors", 0);
    return rc;
}

//  Every PROBE_MS while faulted: a probe write of what the failed round
//  needed, then the cursors, then a real round if collectors wait. Only
//  when all of that is written is the fault over.
static void
s_probe (server_t *self)
{
    self->last_probe_ms = omni_util_mono_ms ();
    if (self->fault == JOURNAL_STREAM && jsjournal_probe (self->config.stream)) {
        s_stream_failed (self);
        return;
    }
    pthread_mutex_lock (&self->state_lock);
    int rc = journal_probe (self->journal, self->probe_bytes);
    pthread_mutex_unlock (&self->state_lock);
    if (rc) {
        s_journal_failed (self, "probe", 0);
        return;
    }
    if (journal_cursors_pending (self->journal) && s_sync_cursors (self))
        return;
    if (!journal_full (self->journal) && (zsock_events (self->intake) & ZMQ_POLLIN))
        s_intake_round (self); //  ends the fault if it commits
    else
        s_journal_ok (self);
}

//  A delivery message, and the socket its body came in on (ZMQ_SRCFD: the
//  routing id frame is made by the ROUTER and carries none), which the
//  monitor's DISCONNECTED events name.
static zmsg_t *
s_recv_delivery (server_t *self, int *fd)
{
    void *sock = zsock_resolve (self->delivery);
    zmsg_t *msg = zmsg_new ();
    zmq_msg_t part;
    zmq_msg_init (&part);
    bool more = true;
    size_t parts = 0;
    uint64_t wire = 0; //  the body's bytes on the wire (the routing id is the ROUTER's)
    while (more) {
        int rc;
        while ((rc = zmq_msg_recv (&part, sock, 0)) < 0 && zmq_errno () == EINTR)
            ;
        if (rc < 0) {
            zmsg_destroy (&msg);
            break;
        }
        if (parts > 0)
            wire += s_wire_size (self, zmq_msg_size (&part));
        if (zmsg_size (msg) == 1) {
            *fd = zmq_msg_get (&part, ZMQ_SRCFD);
            //  Copied into the zmsg the frames lose it: the CURVE metadata of
            //  the connection, for the writer-name check of a HELLO
            const char *key = self->config.curve ? zmq_msg_gets (&part, "User-Id") : NULL;
            const char *writers =
                self->config.curve ? zmq_msg_gets (&part, CURVE_WRITERS_PROPERTY) : NULL;
            snprintf (self->peer_key, sizeof self->peer_key, "%s", key ? key : "");
            snprintf (self->peer_writers, sizeof self->peer_writers, "%s", writers ? writers : "");
            peers_touch (self->peers, *fd, omni_util_mono_ms ());
        }
        //  Frames past what any command has are read past, not kept: a
        //  message of many frames costs no more than a short one here.
        if (++parts <= DELIVERY_FRAMES)
            zmsg_addmem (msg, zmq_msg_data (&part), zmq_msg_size (&part));
        more = zmq_msg_more (&part);
    }
    zmq_msg_close (&part);
    if (*fd >= 0)
        peers_consumed (self->peers, *fd, wire);
    return msg;
}

//  A delivery connection closed: if it held a writer name, the session is
//  over (a HELLO waiting takes over now); a waiting HELLO on it is dropped.
static void
s_delivery_disconnected (server_t *self, uint32_t value)
{
    {
        for (size_t i = 0; i < self->nsessions; i++) {
            s_session_t *s = &self->sessions[i];
            //  The kernel reuses descriptors: when the holder and a waiting
            //  HELLO share this one, the closed connection is the older, the
            //  holder's. A stale event costs a writer one HELLO more.
            if (s->peer && s->peer_fd == (int) value) {
                log_info ("delivery.writer_disconnected", "writer=%s instance=%s", s->name,
                          s_shown (s->instance));
                s->peer_fd = -1;
                s->last_heard_ms = omni_util_mono_ms () - self->config.session_timeout_ms;
                s_expire_holder (self, s);
            } else if (s->pending_peer && s->pending_fd == (int) value)
                zframe_destroy (&s->pending_peer);
        }
    }
}

//  A connection of socket `which` accepted, closed, or not accepted.
static void
s_monitor_event (server_t *self, peers_socket_t which)
{
    zmsg_t *event = zmsg_recv_nowait (self->monitors[which]);
    zframe_t *head = event ? zmsg_first (event) : NULL;
    if (!head || zframe_size (head) != 6) {
        zmsg_destroy (&event);
        return;
    }
    uint16_t id;
    uint32_t value;
    memcpy (&id, zframe_data (head), 2);
    memcpy (&value, zframe_data (head) + 2, 4);
    zmsg_destroy (&event);
    uint64_t held;
    if (id == ZMQ_EVENT_ACCEPTED) {
        int dropped = peers_accepted (self->peers, which, (int) value, omni_util_mono_ms ());
        if (dropped >= 0 && omni_log_allow ("ingestd.connection_limit", "", 60000, &held))
            log_warn ("ingestd.connection_limit",
                      "socket=%s limit=%zu repeated=%" PRIu64
                      " why=\"the idlest connection was closed for a new one\" "
                      "hint=\"many idle peers: a client leaking connections, or an attack; "
                      "max_connections\"",
                      peers_socket_name (which), peers_limit (self->peers), held);
    } else if (id == ZMQ_EVENT_DISCONNECTED) {
        peers_closed (self->peers, (int) value);
        if (which == PEERS_DELIVERY)
            s_delivery_disconnected (self, value);
        else if (which == PEERS_TAP && peers_count (self->peers, PEERS_TAP) == 0) {
            self->tap_subscribes = 0; //  no one left: their subscriptions are gone
            omni_metric_set (self->m_tap_subscribers, 0);
        }
    } else if (id == ZMQ_EVENT_ACCEPT_FAILED) {
        //  libzmq retries a failed accept at once, and again, while the
        //  listening socket has a connection waiting: out of descriptors
        //  that spins. Closing the idlest connection ends it.
        omni_metric_add (self->m_accept_failed, 1);
        bool freed = (value == EMFILE || value == ENFILE) &&
                     peers_drop_idlest (self->peers, PEERS_FD_SHORTAGE);
        if (omni_log_allow ("ingestd.accept_failed", "", 60000, &held))
            log_error ("ingestd.accept_failed",
                       "socket=%s error=\"%s\" connections=%zu freed=%s repeated=%" PRIu64
                       " hint=\"raise the descriptor limit or lower max_connections\"",
                       peers_socket_name (which), strerror ((int) value),
                       peers_count (self->peers, PEERS_INTAKE) +
                           peers_count (self->peers, PEERS_DELIVERY) +
                           peers_count (self->peers, PEERS_TAP),
                       freed ? "yes" : "no", held);
    }
}

static void
s_delivery_round (server_t *self)
{
    for (int i = 0; i < 256 && (zsock_events (self->delivery) & ZMQ_POLLIN); i++) {
        int fd = -1;
        zmsg_t *msg = s_recv_delivery (self, &fd);
        if (!msg)
            break;
        zframe_t *peer = zmsg_pop (msg);
        omni_wire_head_t head = {0};
        char why[128] = "no frames";
        bool ok = peer && omni_wire_decode (WIRE_DELIVERY, msg, &head, why, sizeof why) == 0;
        if (ok && head.command == WIRE_HELLO)
            s_handle_hello (self, peer, fd, &head);
        else if (head.command == WIRE_HELLO) {
            char detail[160];
            snprintf (detail, sizeof detail, "malformed HELLO: %s", why);
            s_delivery_bad (self, peer, fd, "hello", detail);
        } else if (head.command == WIRE_DELIVERY_ACK)
            s_handle_ack (self, peer, fd, ok ? &head : NULL);
        else if (ok && head.command == WIRE_CONFLICT)
            s_handle_conflict (self, peer, msg);
        else if (ok) //  one of those ingestd sends
            s_delivery_bad (self, NULL, fd, "command", "unknown command");
        else
            s_delivery_bad (self, NULL, fd, head.command ? "command" : "message", why);
        zframe_destroy (&peer);
        zmsg_destroy (&msg);
    }
    //  Cursors are persisted (one fsync) at most every SYNC_MS, not per ACK:
    //  after a crash a writer receives at most that much again, and writers
    //  are idempotent. A full journal is synced at once so it can drain
    //  (but a faulted one no faster than SYNC_MS: it is failing).
    if (omni_util_mono_ms () - self->last_sync_ms >= SYNC_MS ||
        (journal_full (self->journal) && self->fault == JOURNAL_OK))
        s_sync_cursors (self);
    s_pump_all (self);
}

static void
s_housekeep (server_t *self)
{
    //  Trimming may lag behind ACKs (it is chunked): finish it here.
    s_sync_cursors (self);
    omni_metric_set (self->m_journal_bytes, (double) journal_bytes (self->journal));
    omni_metric_set (self->m_journal_records, (double) journal_records (self->journal));
    int64_t now_ns = omni_util_now_ns (), now_ms = omni_util_mono_ms ();
    uint64_t next = journal_next_offset (self->journal);
    for (size_t i = 0; i < self->nsessions; i++) {
        s_session_t *s = &self->sessions[i];
        uint64_t cursor = journal_cursor (self->journal, s->index);
        omni_metric_set (s->m_lag_records, (double) (next - cursor));
        int64_t oldest = cursor < next ? journal_received_ns (self->journal, cursor) : 0;
        omni_metric_set (s->m_lag_seconds, oldest ? (double) (now_ns - oldest) / 1e9 : 0);
        s_expire_holder (self, s);
        bool alive = s->peer && now_ms - s->last_heard_ms < self->config.session_timeout_ms;
        if (s->peer && now_ms - s->last_sent_ms >= HEARTBEAT_MS) {
            //  An idle writer hears from us too, so it can tell ingestd is up.
            omni_wire_head_t head = {.command = WIRE_HEARTBEAT,
                                     .cursor = journal_cursor (self->journal, s->index)};
            s_route (self, PEERS_DELIVERY, zframe_data (s->peer), zframe_size (s->peer), s->peer_fd,
                     &head, NULL);
            s->last_sent_ms = now_ms;
        }
        omni_metric_set (s->m_connected, alive ? 1 : 0);
    }
    if (self->config.dead_retain_ms > 0 && now_ms - self->last_dead_expire_ms >= 1000) {
        uint64_t expired =
            journal_expire_dead (self->journal, now_ns - self->config.dead_retain_ms * 1000000);
        if (expired) {
            omni_metric_add (self->m_dead_expired, expired);
            log_info ("journal.dead_letters_expired",
                      "count=%" PRIu64 " retain_ms=%" PRId64 " kept=%" PRIu64, expired,
                      self->config.dead_retain_ms, journal_dead_count (self->journal));
        }
        self->last_dead_expire_ms = now_ms;
    }
    //  Collectors and writers that went quiet give their descriptors back
    //  (a collector reconnects when it has something to send); tap
    //  subscribers only read, and are bounded by the connection limit.
    int64_t quiet_since = now_ms - self->config.idle_timeout_ms;
    peers_drop_silent (self->peers, PEERS_INTAKE, quiet_since, false, PEERS_IDLE);
    peers_drop_silent (self->peers, PEERS_DELIVERY, quiet_since, false, PEERS_IDLE);
    for (int k = 0; k < PEERS_SOCKETS; k++)
        omni_metric_set (self->m_connections[k], (double) peers_count (self->peers, k));
    omni_metric_set (self->m_memory, (double) atomic_load (&self->memory_used));
    if (now_ms - self->last_held_ms >= HELD_MS) {
        //  Two system calls a connection: not every tick
        omni_metric_set (self->m_held[PEERS_INTAKE],
                         (double) peers_held_total (self->peers, PEERS_INTAKE));
        omni_metric_set (self->m_held[PEERS_DELIVERY],
                         (double) peers_held_total (self->peers, PEERS_DELIVERY));
        omni_metric_set (self->m_held[PEERS_TAP],
                         (double) peers_held_total (self->peers, PEERS_TAP));
        self->last_held_ms = now_ms;
    }
    omni_metric_set (self->m_memory_peak, (double) atomic_load (&self->memory_peak));
    for (int r = 0; r < PEERS_REASONS; r++) {
        uint64_t dropped = peers_dropped (self->peers, r);
        omni_metric_add (self->m_dropped[r], dropped - self->dropped_seen[r]);
        self->dropped_seen[r] = dropped;
    }
    self->last_housekeep_ms = now_ms;
}

int
server_run (server_t *self)
{
    log_info ("ingestd.ready", "intake=%s delivery=%s tap=%s writers=%zu", self->config.intake,
              self->config.delivery, self->config.tap, self->nsessions);
    while (!s_stopping (self)) {
        atomic_store (&self->loop_ms, omni_util_mono_ms ());
        bool full = journal_full (self->journal);
        bool faulted = self->fault != JOURNAL_OK;
        bool hold = full || faulted;
        if (hold != self->paused) {
            self->paused = hold;
            omni_metric_set (self->m_paused, hold);
            if (hold)
                log_info ("intake.paused", "reason=%s journal_bytes=%" PRIu64 " limit=%" PRIu64,
                          faulted ? journal_fault_name (self->fault) : "journal_full",
                          journal_bytes (self->journal), self->config.journal_max);
            else
                log_info ("intake.resumed", "journal_bytes=%" PRIu64 " limit=%" PRIu64,
                          journal_bytes (self->journal), self->config.journal_max);
        }
        zmq_pollitem_t items[] = {
            {zsock_resolve (self->delivery), 0, ZMQ_POLLIN, 0},
            {zsock_resolve (self->tap), 0, ZMQ_POLLIN, 0},
            {zsock_resolve (self->monitors[PEERS_INTAKE]), 0, ZMQ_POLLIN, 0},
            {zsock_resolve (self->monitors[PEERS_DELIVERY]), 0, ZMQ_POLLIN, 0},
            {zsock_resolve (self->monitors[PEERS_TAP]), 0, ZMQ_POLLIN, 0},
            {zsock_resolve (self->intake), 0, ZMQ_POLLIN, 0}};
        //  While the journal is full or faulted intake is not read: no ACKs
        //  go out and the collectors wait (backpressure).
        long timeout = HOUSEKEEP_MS;
        if (faulted) {
            int64_t probe_in = self->last_probe_ms + PROBE_MS - omni_util_mono_ms ();
            timeout = probe_in < 0 ? 0 : probe_in < timeout ? (long) probe_in : timeout;
        }
        int rc = zmq_poll (items, hold ? 5 : 6, timeout);
        if (rc < 0)
            continue;
        //  Connections first: a drop decided below must know them
        for (int k = 0; k < PEERS_SOCKETS; k++)
            for (int n = 0; n < 1000 && (items[2 + k].revents & ZMQ_POLLIN) &&
                            (zsock_events (self->monitors[k]) & ZMQ_POLLIN);
                 n++)
                s_monitor_event (self, (peers_socket_t) k);
        if (items[1].revents & ZMQ_POLLIN)
            s_tap_subscriptions (self);
        if (items[0].revents & ZMQ_POLLIN)
            s_delivery_round (self);
        if (!hold && (items[5].revents & ZMQ_POLLIN))
            s_intake_round (self);
        if (self->fault != JOURNAL_OK && omni_util_mono_ms () - self->last_probe_ms >= PROBE_MS)
            s_probe (self);
        if (omni_util_mono_ms () - self->last_housekeep_ms >= HOUSEKEEP_MS) {
            s_housekeep (self);
            s_pump_all (self);
        }
    }
    journal_counters_t c = journal_counters (self->journal);
    log_info ("ingestd.stop",
              "received=%" PRIu64 " accepted=%" PRIu64 " rejected=%" PRIu64 " acked_by_all=%" PRIu64
              " in_journal=%" PRIu64,
              c.received, c.accepted, c.rejected, c.trimmed, journal_records (self->journal));
    return 0;
}

bool
server_healthy (void *self_, char *text, size_t size)
{
    server_t *self = self_;
    pthread_mutex_lock (&self->state_lock);
    journal_counters_t c = journal_counters (self->journal);
    uint64_t held = journal_stat_records (self->journal);
    bool full = journal_full (self->journal);
    char fault[sizeof self->fault_text];
    snprintf (fault, sizeof fault, "%s", self->fault != JOURNAL_OK ? self->fault_text : "");
    pthread_mutex_unlock (&self->state_lock);
    if (*fault) {
        //  The cause first: a collector that gave up points here.
        snprintf (text, size,
                  "%s\nreceived=%" PRIu64 " accepted=%" PRIu64 " rejected=%" PRIu64
                  " acked_by_all=%" PRIu64 " in_journal=%" PRIu64,
                  fault, c.received, c.accepted, c.rejected, c.trimmed, held);
        return false;
    }
    if (c.accepted != c.trimmed + held) {
        snprintf (text, size,
                  "invariant violated: accepted %" PRIu64 " != acked_by_all %" PRIu64
                  " + in_journal %" PRIu64,
                  c.accepted, c.trimmed, held);
        return false;
    }
    if (c.received != c.accepted + c.rejected) {
        snprintf (text, size,
                  "invariant violated: received %" PRIu64 " != accepted %" PRIu64
                  " + rejected %" PRIu64,
                  c.received, c.accepted, c.rejected);
        return false;
    }
    int len = snprintf (text, size,
                        "ok received=%" PRIu64 " accepted=%" PRIu64 " rejected=%" PRIu64
                        " acked_by_all=%" PRIu64 " in_journal=%" PRIu64 "%s",
                        c.received, c.accepted, c.rejected, c.trimmed, held,
                        full ? " intake=paused(journal full)" : "");
    //  The memory guard: where memory is against its budget, and how often
    //  connections were dropped to keep it there
    if (len >= 0 && (size_t) len < size)
        len += snprintf (text + len, size - (size_t) len,
                         "\nmemory bytes=%" PRIu64 " peak=%" PRIu64 " shed_at=%" PRIu64
                         " memory_max=%" PRIu64 " sheds=%" PRIu64 " shed_bytes=%" PRIu64,
                         atomic_load (&self->memory_used), atomic_load (&self->memory_peak),
                         self->shed_at, self->config.memory_max, atomic_load (&self->memory_sheds),
                         atomic_load (&self->memory_freed));
    //  journal: jetstream: the stream and the writers' consumers instead
    if (self->config.stream && len >= 0 && (size_t) len + 1 < size) {
        text[len++] = '\n';
        jsjournal_status (self->config.stream, text + len, size - (size_t) len);
        return true;
    }
    //  Which instance holds each writer name (omnictl status shows it): the
    //  first place to look when a writer is refused.
    int64_t now = omni_util_mono_ms ();
    for (size_t i = 0; i < self->nsessions && len >= 0 && (size_t) len < size; i++) {
        s_session_t *s = &self->sessions[i];
        int64_t heard = s->last_heard_ms;
        pthread_mutex_lock (&self->state_lock);
        if (!*s->instance && heard == 0)
            len += snprintf (text + len, size - (size_t) len, "\nwriter=%s holder=none", s->name);
        else
            len += snprintf (text + len, size - (size_t) len, "\nwriter=%s holder=%s heard=%.1fs%s",
                             s->name, *s->instance ? s->instance : "unnamed",
                             (double) (now - heard) / 1000.0,
                             now - heard < self->config.session_timeout_ms ? "" : " (expired)");
        if (s->starts_empty && len >= 0 && (size_t) len < size)
            len += snprintf (text + len, size - (size_t) len,
                             " starts_empty=%" PRIu64 " replay=%s fill=\"omnictl replay "
                             "--archive-dir=ARCHIVE_DIR --intake=%s --writer=%s\"",
                             s->starts_empty, s->replay_seen ? "seen" : "none", self->config.intake,
                             s->name);
        pthread_mutex_unlock (&self->state_lock);
    }
    return true;
}

void
server_test (bool verbose)
{
    (void) verbose;
    //  The whole server is exercised over real sockets by tests/ (every
    //  daemon as its own process); here, the start-up checks.
    char error[256];
    const char *bad[] = {"archive", "nonsense", NULL};
    server_config_t config = {"tcp://127.0.0.1:*",
                              "tcp://127.0.0.1:*",
                              "tcp://127.0.0.1:*",
                              "/nonexistent-dir-for-test",
                              1 << 20,
                              10,
                              bad,
                              omni_record_default_limits,
                              NULL,
                              0,
                              0,
                              0,
                              0,
                              0,
                              0,
                              0,
                              0,
                              0,
                              0,
                              NULL};
    assert (server_new (&config, NULL, error, sizeof error) == NULL);
    assert (strstr (error, "nonsense"));
}
