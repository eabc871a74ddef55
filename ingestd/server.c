/*  server: ingestd's event loop (see server.h).

    One thread does all socket and journal work, so the journal needs no
    locks; the HTTP thread only reads counters, under state_lock, which the
    loop holds while a commit changes what the invariant compares.

    The three protocols are classes of their own: intake (rounds into the
    journal), delivery (writer sessions, credit, cursors) and tap (what is
    published). This file owns what they share: the sockets and their
    monitors, the table of connections, the poll loop that decides when
    each one runs, the journal's fault state and probes, the memory guard
    thread and /health.

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
#include "common/log.h"
#include "common/util.h"
#include "ingestd/delivery.h"
#include "ingestd/intake.h"
#include "ingestd/journal.h"
#include "ingestd/peers.h"
#include "ingestd/route.h"
#include "ingestd/tap.h"
#include "proto/kinds.h"
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

#define ENVELOPE_BYTES (64 << 10) //  an intake frame may exceed max_record_size by this
//  Writers send HELLO, ACK and small CONFLICTs only (wire.h): a frame over
//  the bound closes the connection
#define DELIVERY_FRAME_MAX WIRE_DELIVERY_FRAME_MAX
#define TAP_FRAME_MAX      1024 //  a subscription (longer: connection dropped); fits a handshake
#define TAP_RCVBUF         (8 << 10) //  a tap connection's kernel receive buffer (it holds twice)
#define TAP_BOUND_MS       20        //  how often the guard applies the tap's bounds
#define FD_RESERVE         64        //  descriptors kept for the journal, /health, logs
#define CONNECTIONS_MAX    4096      //  default limit on connections (each costs libzmq memory)
#define MONITOR_HWM        100000    //  connection events queued for the loop (~100 bytes each)
#define GUARD_MS           5         //  how often the memory guard reads the process's memory
#define GUARD_HEADROOM_MIN (64ULL << 20) //  memory_max less at least this is where shedding starts
#define SHED_FLOOR         (64 << 10)    //  a connection holding less is never shed for memory
#define HELD_MS            5000          //  how often the held_bytes gauges are refreshed
#define SCAN_MS            20   //  from watch_at, connections are looked at this often at least
#define SHED_WAIT_MS       250  //  after a shed, memory must fall within this, else shed again
#define MEMORY_QUIET_MS    1000 //  over budget, nothing to shed: connections silent this long go
#define MEMORY_ALL_MS      500  //  still over budget this long: every intake connection goes
#define HOUSEKEEP_MS       250
#define PROBE_MS           1000      //  a journal that failed a write is tried again this often
#define PROBE_MIN          (1 << 20) //  bytes a probe writes at least
#define PROBE_MAX          (64 << 20)
#define SESSION_TIMEOUT_MS 5000 //  default: writers ACK at least every second

struct _server_t {
    server_config_t config;
    omni_dirlock_t *lock; //  one ingestd per journal directory
    journal_t *journal;
    zsock_t *intake, *delivery, *tap;
    zsock_t *monitors[PEERS_SOCKETS]; //  connections accepted and closed, by socket
    peers_t *peers;
    intake_t *intake_side;
    delivery_t *delivery_side;
    tap_t *tap_side;
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
    uint64_t dropped_seen[PEERS_REASONS];
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
    omni_metrics_t *metrics;
    omni_metric_t *m_journal_bytes, *m_journal_records, *m_paused, *m_dead_expired,
        *m_fault[JOURNAL_FAULT_COUNT], *m_write_errors;
    omni_metric_t *m_connections[PEERS_SOCKETS], *m_dropped[PEERS_REASONS], *m_memory,
        *m_accept_failed, *m_memory_peak, *m_memory_sheds, *m_memory_freed, *m_held[PEERS_SOCKETS];
    int64_t last_held_ms;
    int64_t last_dead_expire_ms;
};

static void
s_register_metrics (server_t *self)
{
    omni_metrics_t *m = self->metrics;
    self->m_dead_expired = omni_metrics_counter (
        m, "dead_letters_expired_total", "Dead letters removed by dead_letter_retain", NULL);
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
        //  Counted by intake and delivery (the same series); the tap's stays 0
        omni_metrics_counter (
            m, "replies_dropped_total",
            "Messages not sent because the peer does not read them (it is disconnected)", labels);
    }
    for (int r = 0; r < PEERS_REASONS; r++) {
        char labels[64];
        snprintf (labels, sizeof labels, "reason=\"%s\"", peers_reason_name (r));
        self->m_dropped[r] = omni_metrics_counter (m, "connections_dropped_total",
                                                   "Connections ingestd closed, by reason", labels);
    }
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
    if (!c->peer_timeout_ms)
        c->peer_timeout_ms = ROUTE_PEER_TIMEOUT_MS;
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
    s_register_metrics (self);
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
    omni_curve_server_t *curve = config->curve;
    int64_t intake_frame = (int64_t) (config->limits.max_size + ENVELOPE_BYTES);
    int64_t dead = self->config.peer_timeout_ms;
    //  Intake sends only small replies: a small kernel buffer, so that a
    //  peer that does not read fills its queue soon, not after megabytes.
    //  The tap reads only subscriptions: a small one, so that a flooder
    //  dropped (peers_drop_holding) has little left in the kernel that
    //  libzmq would still read into its trie.
    route_limits_t intake_limits = {PEERS_REPLY_HWM, 64, intake_frame, dead, 128 << 10, 0},
                   delivery_limits = {PEERS_REPLY_HWM, 64, DELIVERY_FRAME_MAX, dead, 0, 0},
                   tap_limits = {TAP_HWM, 64, TAP_FRAME_MAX, dead, 0, TAP_RCVBUF};
    if (!(self->intake = route_bind (ZMQ_ROUTER, config->intake, curve, CURVE_INTAKE,
                                     &intake_limits, error, error_size)) ||
        !(self->delivery = route_bind (ZMQ_ROUTER, config->delivery, curve, CURVE_DELIVERY,
                                       &delivery_limits, error, error_size)) ||
        !(self->tap = route_bind (ZMQ_XPUB, config->tap, curve, CURVE_TAP, &tap_limits, error,
                                  error_size))) {
        server_destroy (&self);
        return NULL;
    }
    //  Also: a writer killed -9 closes its TCP connection at once: its
    //  session ends then, not at the timeout, so a restarted writer goes on.
    self->monitors[PEERS_INTAKE] = s_monitor (self, self->intake, PEERS_INTAKE);
    self->monitors[PEERS_DELIVERY] = s_monitor (self, self->delivery, PEERS_DELIVERY);
    self->monitors[PEERS_TAP] = s_monitor (self, self->tap, PEERS_TAP);
    zsock_t *bound[PEERS_SOCKETS] = {self->intake, self->delivery, self->tap};
    for (int k = 0; k < PEERS_SOCKETS; k++)
        peers_set_port (self->peers, (peers_socket_t) k, s_port (bound[k]));
    self->tap_side = tap_new (self->tap, self->peers, self->config.tap_budget, metrics);
    intake_config_t intake = {config->writers,
                              config->limits,
                              self->config.max_batch_records,
                              self->config.max_batch_bytes,
                              config->curve != NULL,
                              config->stream,
                              config->rejects};
    self->intake_side = intake_new (self->intake, self->journal, self->peers, self->tap_side,
                                    &intake, &self->state_lock, metrics);
    delivery_config_t delivery = {config->writers,
                                  config->limits,
                                  config->curve,
                                  self->config.window_max,
                                  self->config.session_timeout_ms,
                                  config->intake};
    self->delivery_side = delivery_new (self->delivery, self->journal, self->peers, self->tap_side,
                                        &delivery, &self->state_lock, metrics);
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
              "idle_timeout_ms=%" PRId64 " peer_timeout_ms=%" PRId64,
              max, fds, self->config.memory_max, self->config.window_max,
              self->config.max_batch_records, self->config.max_batch_bytes,
              tap_record_max (self->tap_side), self->config.idle_timeout_ms,
              self->config.peer_timeout_ms);
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
    intake_destroy (&self->intake_side);
    delivery_destroy (&self->delivery_side);
    tap_destroy (&self->tap_side);
    zsock_t **socks[PEERS_SOCKETS] = {&self->intake, &self->delivery, &self->tap};
    for (int k = 0; k < PEERS_SOCKETS; k++) {
        if (self->monitors[k] && *socks[k])
            zmq_socket_monitor (zsock_resolve (*socks[k]), NULL, 0);
        zsock_destroy (&self->monitors[k]);
        zsock_destroy (socks[k]);
    }
    peers_destroy (&self->peers);
    journal_destroy (&self->journal);
    omni_dirlock_destroy (&self->lock);
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
    int64_t tap_ms = 0;
    while (!s_stopping (self)) {
        struct timespec pause = {0, GUARD_MS * 1000000L};
        nanosleep (&pause, NULL);
        //  The tap's bound on subscriptions, kept from here: the tap's own
        //  thread may be held inside libzmq by the very flood to be cut,
        //  and every ms a flooder stays, libzmq reads more of it into its
        //  trie (two system calls a tap connection, hence not every tick)
        if (omni_util_mono_ms () - tap_ms >= TAP_BOUND_MS) {
            tap_housekeep (self->tap_side);
            tap_ms = omni_util_mono_ms ();
        }
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

//  The stream (or the rejects stream) did not store a round, or does not
//  answer the probe (`error` says which and why): intake pauses as for a
//  journal fault (JOURNAL_STREAM), probed every second; the collectors
//  send the round again.
static void
s_stream_failed (server_t *self, const char *error)
{
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

//  One intake round, then what it journaled goes out to the writers.
//  Returns 0, or -1 when the journal failed (nothing of the round is
//  acknowledged: the collectors resend it).
static int
s_intake_round (server_t *self)
{
    const char *op;
    size_t bytes;
    int rc = intake_round (self->intake_side, &op, &bytes);
    if (rc > 0)
        s_journal_ok (self);
    else if (rc < 0 && strcmp (op, "stream") == 0)
        s_stream_failed (self, intake_stream_error (self->intake_side));
    else if (rc < 0)
        s_journal_failed (self, op, bytes);
    if (rc < 0 && strcmp (op, "intake_begin") == 0)
        return -1; //  nothing was read
    delivery_pump (self->delivery_side);
    return rc < 0 ? -1 : 0;
}

static int
s_sync_cursors (server_t *self)
{
    int rc = delivery_sync (self->delivery_side);
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
        s_stream_failed (self, jsjournal_error (self->config.stream));
        return;
    }
    if (self->fault == JOURNAL_STREAM && self->config.rejects &&
        jsrejects_probe (self->config.rejects)) {
        s_stream_failed (self, jsrejects_error (self->config.rejects));
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
    if (!journal_full (self->journal) && intake_waiting (self->intake_side))
        s_intake_round (self); //  ends the fault if it commits
    else
        s_journal_ok (self);
}

//  A connection of socket `which` accepted, closed, or not accepted.
static void
s_monitor_event (server_t *self, peers_socket_t which)
{
    uint32_t value = 0;
    uint16_t id = route_event (self->monitors[which], 0, &value);
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
            delivery_disconnected (self->delivery_side, (int) value);
        else if (which == PEERS_TAP)
            tap_closed (self->tap_side);
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
s_housekeep (server_t *self)
{
    if (delivery_housekeep (self->delivery_side))
        s_journal_failed (self, "sync_cursors", 0);
    omni_metric_set (self->m_journal_bytes, (double) journal_bytes (self->journal));
    omni_metric_set (self->m_journal_records, (double) journal_records (self->journal));
    int64_t now_ns = omni_util_now_ns (), now_ms = omni_util_mono_ms ();
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
              self->config.delivery, self->config.tap, delivery_writers (self->delivery_side));
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
        int rc = zmq_poll (items, hold ? 4 : 5, timeout);
        if (rc < 0)
            continue;
        //  Connections first: a drop decided below must know them
        for (int k = 0; k < PEERS_SOCKETS; k++)
            for (int n = 0; n < 1000 && (items[1 + k].revents & ZMQ_POLLIN) &&
                            (zsock_events (self->monitors[k]) & ZMQ_POLLIN);
                 n++)
                s_monitor_event (self, (peers_socket_t) k);
        if ((items[0].revents & ZMQ_POLLIN) &&
            delivery_round (self->delivery_side, self->fault != JOURNAL_OK))
            s_journal_failed (self, "sync_cursors", 0);
        if (!hold && (items[4].revents & ZMQ_POLLIN))
            s_intake_round (self);
        if (self->fault != JOURNAL_OK && omni_util_mono_ms () - self->last_probe_ms >= PROBE_MS)
            s_probe (self);
        if (omni_util_mono_ms () - self->last_housekeep_ms >= HOUSEKEEP_MS) {
            s_housekeep (self);
            delivery_pump (self->delivery_side);
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
        len += (int) strlen (text + len);
        if (self->config.rejects && (size_t) len + 1 < size) {
            text[len++] = '\n';
            jsrejects_status (self->config.rejects, text + len, size - (size_t) len);
        }
        return true;
    }
    delivery_health (self->delivery_side, text, size, len, intake_replayed (self->intake_side));
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
                              0,
                              NULL,
                              NULL};
    assert (server_new (&config, NULL, error, sizeof error) == NULL);
    assert (strstr (error, "nonsense"));
}
