/*  peers: ingestd's connections, bounded (see peers.h).

    A dense array of entries and an index by descriptor (descriptors are
    small integers handed out lowest first, so the index stays as large as
    the most connections ever open at once). Finding a connection is O(1);
    choosing the idlest is a scan, done only at the limit, on a failed
    accept or by the idle timeout, never per message.                       */
#include "ingestd/peers.h"
#include "common/buf.h"
#include "common/util.h"

#include <assert.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

//  Bytes a connection sends that ingestd never reads as a message: the
//  ZMTP greeting and handshake (measured: 114 bytes plain, ~600 with CURVE
//  and its metadata), and ZMTP heartbeats a peer sends of its own (a PING,
//  ~40 bytes with CURVE, at whatever interval it set: ingestd sends no
//  pings, so no PONGs, route.c says why; 8 bytes a second is a PING every
//  5 s). Not counted as held.
#define HANDSHAKE_BYTES 2048
#define HEARTBEAT_BYTES 8 //  per second of the connection's age

typedef struct {
    int fd;
    peers_socket_t socket;
    bool dropped; //  shut down, waiting for libzmq to close it
    bool heard;   //  a whole message came on it
    int64_t active_ms;
    int64_t since_ms;  //  accepted (CLOCK_MONOTONIC)
    uint64_t consumed; //  wire bytes ingestd read from it
} s_peer_t;

struct _peers_t {
    size_t max;
    s_peer_t *peers;
    size_t npeers, cap;
    uint32_t *index; //  fd -> position + 1; 0 = none
    size_t index_size;
    size_t live[PEERS_SOCKETS];
    uint64_t dropped[PEERS_REASONS];
    int port[PEERS_SOCKETS]; //  the local port of each socket's connections; 0 = unchecked
    pthread_mutex_t lock;
};

static const char *s_socket_names[] = {"intake", "delivery", "tap"};
static const char *s_reason_names[] = {"over_limit", "idle",       "unread",
                                       "memory",     "tap_topics", "fd_shortage"};

peers_t *
peers_new (size_t max_connections)
{
    peers_t *self = calloc (1, sizeof *self);
    assert (self);
    self->max = max_connections ? max_connections : 1;
    pthread_mutex_init (&self->lock, NULL);
    return self;
}

void
peers_destroy (peers_t **self_p)
{
    peers_t *self = *self_p;
    if (!self)
        return;
    free (self->peers);
    free (self->index);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

const char *
peers_socket_name (peers_socket_t socket)
{
    return socket < PEERS_SOCKETS ? s_socket_names[socket] : "?";
}

const char *
peers_reason_name (peers_reason_t reason)
{
    return reason < PEERS_REASONS ? s_reason_names[reason] : "?";
}

static s_peer_t *
s_find (peers_t *self, int fd)
{
    if (fd < 0 || (size_t) fd >= self->index_size || !self->index[fd])
        return NULL;
    return &self->peers[self->index[fd] - 1];
}

//  Whether `fd` is still a TCP connection to `port` (the descriptor of a
//  connection libzmq closed may be another's before the table hears of it).
static bool
s_same_port (int fd, int port)
{
    if (!port)
        return true;
    struct sockaddr_storage addr;
    socklen_t size = sizeof addr;
    if (getsockname (fd, (struct sockaddr *) &addr, &size))
        return false;
    if (addr.ss_family == AF_INET)
        return ntohs (((struct sockaddr_in *) &addr)->sin_port) == port;
    if (addr.ss_family == AF_INET6)
        return ntohs (((struct sockaddr_in6 *) &addr)->sin6_port) == port;
    return false;
}

static void
s_drop (peers_t *self, s_peer_t *peer, peers_reason_t reason)
{
    if (peer->dropped)
        return;
    //  libzmq reads end-of-stream and closes the connection and the
    //  descriptor itself; whatever it buffered for the peer goes with it.
    if (s_same_port (peer->fd, self->port[peer->socket]))
        shutdown (peer->fd, SHUT_RDWR);
    peer->dropped = true;
    self->live[peer->socket]--;
    self->dropped[reason]++;
}

//  The connection to give up first: one that never sent a whole message
//  (the oldest of them), else the one silent longest. A writer ACKs every
//  second and a collector sends soon after it connects: an attacker's idle
//  connections go before them. Tap subscribers only read, so silence says
//  nothing about them: they are bounded by PEERS_TAP_MAX instead.
static s_peer_t *
s_idlest (peers_t *self)
{
    s_peer_t *idlest = NULL;
    for (size_t i = 0; i < self->npeers; i++) {
        s_peer_t *peer = &self->peers[i];
        if (peer->dropped || peer->socket == PEERS_TAP)
            continue;
        if (!idlest || (!peer->heard && idlest->heard) ||
            (peer->heard == idlest->heard && peer->active_ms < idlest->active_ms))
            idlest = peer;
    }
    return idlest;
}

static void
s_closed (peers_t *self, int fd)
{
    s_peer_t *peer = s_find (self, fd);
    if (!peer)
        return;
    if (!peer->dropped)
        self->live[peer->socket]--;
    size_t at = self->index[fd] - 1, last = self->npeers - 1;
    self->index[fd] = 0;
    if (at != last) {
        self->peers[at] = self->peers[last];
        self->index[self->peers[at].fd] = (uint32_t) at + 1;
    }
    self->npeers--;
}

static int
s_accepted (peers_t *self, peers_socket_t socket, int fd, int64_t now_ms)
{
    if (fd < 0 || socket >= PEERS_SOCKETS)
        return -1;
    //  A descriptor reused before its DISCONNECTED event was read: the old
    //  connection is over.
    if (s_find (self, fd))
        s_closed (self, fd);
    if ((size_t) fd >= self->index_size) {
        size_t had = self->index_size;
        omni_array_reserve (self->index, self->index_size, (size_t) fd + 1);
        memset (self->index + had, 0, (self->index_size - had) * sizeof *self->index);
    }
    *omni_array_push (self->peers, self->npeers, self->cap) =
        (s_peer_t){fd, socket, false, false, now_ms, omni_util_mono_ms (), 0};
    self->index[fd] = (uint32_t) self->npeers;
    self->live[socket]++;
    s_peer_t *added = &self->peers[self->npeers - 1];
    size_t live = self->live[PEERS_INTAKE] + self->live[PEERS_DELIVERY] + self->live[PEERS_TAP];
    if (socket == PEERS_TAP && self->live[PEERS_TAP] > PEERS_TAP_MAX) {
        s_drop (self, added, PEERS_OVER_LIMIT); //  the subscribers there first keep their view
        return fd;
    }
    if (live <= self->max)
        return -1;
    //  At the limit the idlest goes, not the newcomer: a collector that
    //  connects to send gets in, a connection that only holds a descriptor
    //  does not keep it. Ties go to the older one.
    s_peer_t *idlest = s_idlest (self);
    if (!idlest)
        idlest = added;
    int dropped = idlest->fd;
    s_drop (self, idlest, PEERS_OVER_LIMIT);
    return dropped;
}

int
peers_accepted (peers_t *self, peers_socket_t socket, int fd, int64_t now_ms)
{
    pthread_mutex_lock (&self->lock);
    int dropped = s_accepted (self, socket, fd, now_ms);
    pthread_mutex_unlock (&self->lock);
    return dropped;
}

void
peers_closed (peers_t *self, int fd)
{
    pthread_mutex_lock (&self->lock);
    s_closed (self, fd);
    pthread_mutex_unlock (&self->lock);
}

void
peers_touch (peers_t *self, int fd, int64_t now_ms)
{
    pthread_mutex_lock (&self->lock);
    s_peer_t *peer = s_find (self, fd);
    if (peer) {
        peer->active_ms = now_ms;
        peer->heard = true;
    }
    pthread_mutex_unlock (&self->lock);
}

void
peers_consumed (peers_t *self, int fd, uint64_t wire_bytes)
{
    pthread_mutex_lock (&self->lock);
    s_peer_t *peer = s_find (self, fd);
    if (peer)
        peer->consumed += wire_bytes;
    pthread_mutex_unlock (&self->lock);
}

void
peers_set_port (peers_t *self, peers_socket_t socket, int port)
{
    if (socket < PEERS_SOCKETS)
        self->port[socket] = port;
}

static s_peer_t *
s_live (peers_t *self, peers_socket_t socket, int fd)
{
    s_peer_t *peer = s_find (self, fd);
    return peer && !peer->dropped && peer->socket == socket ? peer : NULL;
}

//  What the peer sent less what is still in the kernel, what ingestd read
//  and what is never read as a message (see HANDSHAKE_BYTES).
static uint64_t
s_held (peers_t *self, s_peer_t *peer, int64_t now_ms)
{
    struct tcp_info info;
    socklen_t size = sizeof info;
    memset (&info, 0, sizeof info);
    (void) self; //  a stale descriptor is told by s_drop, before a shutdown
    if (getsockopt (peer->fd, IPPROTO_TCP, TCP_INFO, &info, &size) ||
        size < offsetof (struct tcp_info, tcpi_bytes_received) + sizeof info.tcpi_bytes_received)
        return 0;
    int unread = 0;
    if (ioctl (peer->fd, FIONREAD, &unread) || unread < 0)
        unread = 0;
    uint64_t age_s = now_ms > peer->since_ms ? (uint64_t) (now_ms - peer->since_ms) / 1000 : 0;
    uint64_t known = (uint64_t) unread + peer->consumed + HANDSHAKE_BYTES + HEARTBEAT_BYTES * age_s;
    return info.tcpi_bytes_received > known ? info.tcpi_bytes_received - known : 0;
}

uint64_t
peers_held (peers_t *self, peers_socket_t socket, int fd)
{
    pthread_mutex_lock (&self->lock);
    s_peer_t *peer = s_live (self, socket, fd);
    uint64_t held = peer ? s_held (self, peer, omni_util_mono_ms ()) : 0;
    pthread_mutex_unlock (&self->lock);
    return held;
}

//  A connection and what it holds.
typedef struct {
    int fd;
    uint64_t held;
} s_holding_t;

static int
s_by_held (const void *a, const void *b)
{
    uint64_t x = ((const s_holding_t *) a)->held, y = ((const s_holding_t *) b)->held;
    return x < y ? 1 : x > y ? -1 : 0;
}

//  The live connections of `socket` holding at least `floor`, with what
//  they hold, largest first; returns how many (`*list` to be freed).
static size_t
s_holding (peers_t *self, peers_socket_t socket, uint64_t floor, s_holding_t **list)
{
    int64_t now = omni_util_mono_ms ();
    *list = NULL;
    size_t n = 0;
    for (size_t i = 0; i < self->npeers; i++) {
        s_peer_t *peer = &self->peers[i];
        if (peer->dropped || peer->socket != socket)
            continue;
        uint64_t held = s_held (self, peer, now);
        if (held < floor || (floor == 0 && held == 0))
            continue;
        if (!*list) {
            *list = malloc (self->npeers * sizeof **list);
            assert (*list);
        }
        (*list)[n++] = (s_holding_t){peer->fd, held};
    }
    if (n > 1)
        qsort (*list, n, sizeof **list, s_by_held);
    return n;
}

size_t
peers_drop_unknown (peers_t *self, peers_socket_t socket, int max_fd, uint64_t over,
                    peers_reason_t reason, uint64_t *freed)
{
    pthread_mutex_lock (&self->lock);
    size_t dropped = 0;
    uint64_t gone = 0;
    int port = socket < PEERS_SOCKETS ? self->port[socket] : 0;
    //  Descriptors are handed out lowest first: past the largest the table
    //  saw, as many as could have come since
    if ((size_t) max_fd > self->index_size + 1024)
        max_fd = (int) self->index_size + 1024;
    for (int fd = 0; port && fd < max_fd; fd++) {
        s_peer_t *known = s_find (self, fd);
        if ((known && known->socket == socket) || !s_same_port (fd, port))
            continue;
        //  Known as another socket's (a descriptor reused) or not at all
        s_peer_t unknown = {fd, socket, false, false, 0, omni_util_mono_ms (), 0};
        uint64_t held = s_held (self, &unknown, unknown.since_ms);
        if (held > over) {
            shutdown (fd, SHUT_RDWR);
            self->dropped[reason]++;
            gone += held;
            dropped++;
        }
    }
    pthread_mutex_unlock (&self->lock);
    if (freed)
        *freed = gone;
    return dropped;
}

uint64_t
peers_held_total (peers_t *self, peers_socket_t socket)
{
    pthread_mutex_lock (&self->lock);
    s_holding_t *list;
    size_t n = s_holding (self, socket, 1, &list);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += list[i].held;
    free (list);
    pthread_mutex_unlock (&self->lock);
    return sum;
}

size_t
peers_shed (peers_t *self, peers_socket_t socket, uint64_t excess, uint64_t floor,
            peers_reason_t reason, uint64_t *freed)
{
    pthread_mutex_lock (&self->lock);
    s_holding_t *list;
    size_t n = s_holding (self, socket, floor, &list), dropped = 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < n && sum < excess; i++) {
        s_drop (self, s_find (self, list[i].fd), reason);
        sum += list[i].held;
        dropped++;
    }
    free (list);
    pthread_mutex_unlock (&self->lock);
    if (freed)
        *freed = sum;
    return dropped;
}

size_t
peers_drop_holding (peers_t *self, peers_socket_t socket, uint64_t over, uint64_t total,
                    peers_reason_t reason, uint64_t *freed)
{
    pthread_mutex_lock (&self->lock);
    s_holding_t *list;
    size_t n = s_holding (self, socket, 1, &list), dropped = 0;
    uint64_t sum = 0, gone = 0;
    for (size_t i = 0; i < n; i++)
        sum += list[i].held;
    for (size_t i = 0; i < n; i++)
        if (list[i].held > over || sum > total) {
            s_drop (self, s_find (self, list[i].fd), reason);
            sum -= list[i].held;
            gone += list[i].held;
            dropped++;
        }
    free (list);
    pthread_mutex_unlock (&self->lock);
    if (freed)
        *freed = gone;
    return dropped;
}

bool
peers_known (peers_t *self, peers_socket_t socket, int fd)
{
    pthread_mutex_lock (&self->lock);
    bool known = s_live (self, socket, fd) != NULL;
    pthread_mutex_unlock (&self->lock);
    return known;
}

bool
peers_drop (peers_t *self, peers_socket_t socket, int fd, peers_reason_t reason)
{
    pthread_mutex_lock (&self->lock);
    s_peer_t *peer = s_live (self, socket, fd);
    if (peer)
        s_drop (self, peer, reason);
    pthread_mutex_unlock (&self->lock);
    return peer != NULL;
}

size_t
peers_drop_silent (peers_t *self, peers_socket_t socket, int64_t before_ms, bool unheard,
                   peers_reason_t reason)
{
    pthread_mutex_lock (&self->lock);
    size_t dropped = 0;
    for (size_t i = 0; i < self->npeers; i++) {
        s_peer_t *peer = &self->peers[i];
        if (!peer->dropped && peer->socket == socket &&
            (peer->active_ms < before_ms || (unheard && !peer->heard))) {
            s_drop (self, peer, reason);
            dropped++;
        }
    }
    pthread_mutex_unlock (&self->lock);
    return dropped;
}

bool
peers_drop_idlest (peers_t *self, peers_reason_t reason)
{
    pthread_mutex_lock (&self->lock);
    s_peer_t *idlest = s_idlest (self);
    if (idlest)
        s_drop (self, idlest, reason);
    pthread_mutex_unlock (&self->lock);
    return idlest != NULL;
}

size_t
peers_count (peers_t *self, peers_socket_t socket)
{
    pthread_mutex_lock (&self->lock);
    size_t n = socket < PEERS_SOCKETS ? self->live[socket] : 0;
    pthread_mutex_unlock (&self->lock);
    return n;
}

uint64_t
peers_dropped (peers_t *self, peers_reason_t reason)
{
    pthread_mutex_lock (&self->lock);
    uint64_t n = reason < PEERS_REASONS ? self->dropped[reason] : 0;
    pthread_mutex_unlock (&self->lock);
    return n;
}

size_t
peers_limit (peers_t *self)
{
    return self->max;
}

//  --------------------------------------------------------------------------
//  Self test

//  Whether the far end of a socket pair sees its peer shut down.
static bool
s_was_shut (int far)
{
    char byte;
    return recv (far, &byte, 1, MSG_DONTWAIT) == 0;
}

//  `held` is `expected` less the heartbeat allowance of a few seconds (the
//  test may be slow on a loaded machine)
static bool
s_about (uint64_t held, uint64_t expected)
{
    return held <= expected && held + 10 * HEARTBEAT_BYTES >= expected;
}

//  What libzmq would hold: bytes a TCP connection received, read from the
//  kernel (as libzmq's I/O thread does) and not counted as consumed.
static void
s_test_held (void)
{
    int listener = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    socklen_t size = sizeof addr;
    assert (bind (listener, (struct sockaddr *) &addr, sizeof addr) == 0);
    assert (listen (listener, 4) == 0);
    assert (getsockname (listener, (struct sockaddr *) &addr, &size) == 0);
    int client[2], server[2];
    for (int i = 0; i < 2; i++) {
        client[i] = socket (AF_INET, SOCK_STREAM, 0);
        assert (connect (client[i], (struct sockaddr *) &addr, sizeof addr) == 0);
        server[i] = accept (listener, NULL, NULL);
        assert (server[i] >= 0);
    }
    peers_t *peers = peers_new (10);
    peers_set_port (peers, PEERS_INTAKE, ntohs (addr.sin_port));
    static char buf[200000];
    size_t sent[2] = {100000, 200000};
    for (int i = 0; i < 2; i++) {
        assert (peers_accepted (peers, PEERS_INTAKE, server[i], 0) == -1);
        assert (write (client[i], buf, sent[i]) == (ssize_t) sent[i]);
    }
    //  Still in the kernel: nothing held. Read, not consumed: held, less
    //  the handshake allowance; consumed: not held
    for (int i = 0; i < 2; i++) {
        size_t got = 0;
        while (got < sent[i]) {
            ssize_t n = read (server[i], buf, sent[i] - got);
            assert (n > 0);
            got += (size_t) n;
        }
    }
    assert (s_about (peers_held (peers, PEERS_INTAKE, server[0]), 100000 - HANDSHAKE_BYTES));
    assert (peers_held (peers, PEERS_TAP, server[0]) == 0); //  not a tap connection
    peers_consumed (peers, server[0], 100000 - HANDSHAKE_BYTES - 1000);
    assert (s_about (peers_held (peers, PEERS_INTAKE, server[0]), 1000));
    uint64_t total = peers_held_total (peers, PEERS_INTAKE);
    assert (total <= 201000 - HANDSHAKE_BYTES &&
            total + 20 * HEARTBEAT_BYTES >= 201000 - HANDSHAKE_BYTES);
    //  Holding 198,000 and 1,000: covering 50,000 takes the larger alone,
    //  the floor keeps the smaller
    uint64_t freed = 0;
    assert (peers_shed (peers, PEERS_INTAKE, 50000, 2000, PEERS_MEMORY, &freed) == 1);
    assert (s_about (freed, 200000 - HANDSHAKE_BYTES));
    assert (read (client[1], buf, 1) == 0); //  shut down
    assert (peers_shed (peers, PEERS_INTAKE, 50000, 2000, PEERS_MEMORY, &freed) == 0 && !freed);
    assert (peers_drop_holding (peers, PEERS_INTAKE, 999, UINT64_MAX, PEERS_TAP_TOPICS, &freed) ==
                1 &&
            s_about (freed, 1000));
    assert (peers_dropped (peers, PEERS_MEMORY) == 1 &&
            peers_dropped (peers, PEERS_TAP_TOPICS) == 1);
    //  A connection the table does not know yet: found by its port
    int late = socket (AF_INET, SOCK_STREAM, 0);
    assert (connect (late, (struct sockaddr *) &addr, sizeof addr) == 0);
    int late_server = accept (listener, NULL, NULL);
    assert (late_server >= 0);
    assert (write (late, buf, 50000) == 50000);
    size_t got = 0;
    while (got < 50000) {
        ssize_t n = read (late_server, buf, 50000 - got);
        assert (n > 0);
        got += (size_t) n;
    }
    assert (peers_drop_unknown (peers, PEERS_INTAKE, late_server + 1, 10000, PEERS_MEMORY,
                                &freed) == 1);
    assert (freed == 50000 - HANDSHAKE_BYTES);
    assert (read (late, buf, 1) == 0); //  shut down
    assert (peers_drop_unknown (peers, PEERS_TAP, late_server + 1, 0, PEERS_MEMORY, &freed) == 0);
    close (late);
    close (late_server);
    //  A descriptor that is no longer a connection to the port is not shut
    //  down (the table has a stale entry for it)
    peers_t *stale = peers_new (10);
    peers_set_port (stale, PEERS_INTAKE, ntohs (addr.sin_port) + 1);
    assert (peers_accepted (stale, PEERS_INTAKE, client[0], 0) == -1);
    assert (peers_drop (stale, PEERS_INTAKE, client[0], PEERS_IDLE));
    assert (write (client[0], "x", 1) == 1); //  still open
    peers_destroy (&stale);
    peers_destroy (&peers);
    for (int i = 0; i < 2; i++) {
        close (client[i]);
        close (server[i]);
    }
    close (listener);
}

void
peers_test (bool verbose)
{
    (void) verbose;
    enum { N = 4 };
    int pairs[N][2];
    for (int i = 0; i < N; i++)
        assert (socketpair (AF_UNIX, SOCK_STREAM, 0, pairs[i]) == 0);

    peers_t *peers = peers_new (3);
    assert (peers_limit (peers) == 3);
    assert (peers_accepted (peers, PEERS_INTAKE, pairs[0][0], 100) == -1);
    assert (peers_accepted (peers, PEERS_INTAKE, pairs[1][0], 200) == -1);
    assert (peers_accepted (peers, PEERS_TAP, pairs[2][0], 300) == -1);
    assert (peers_count (peers, PEERS_INTAKE) == 2 && peers_count (peers, PEERS_TAP) == 1);
    //  The first spoke since, the second never did: at the limit the
    //  second goes (not the tap subscriber, older and silent as it is)
    peers_touch (peers, pairs[0][0], 400);
    assert (peers_accepted (peers, PEERS_DELIVERY, pairs[3][0], 500) == pairs[1][0]);
    assert (s_was_shut (pairs[1][1]) && !s_was_shut (pairs[0][1]));
    assert (peers_dropped (peers, PEERS_OVER_LIMIT) == 1);
    assert (peers_count (peers, PEERS_INTAKE) == 1 &&
            !peers_known (peers, PEERS_INTAKE, pairs[1][0]));
    //  Dropped but not yet closed: dropping again does nothing
    assert (!peers_drop (peers, PEERS_INTAKE, pairs[1][0], PEERS_UNREAD));
    peers_closed (peers, pairs[1][0]);
    peers_closed (peers, pairs[1][0]); //  a second event for it changes nothing
    //  Only a connection of the socket named is dropped, and never twice
    assert (!peers_drop (peers, PEERS_DELIVERY, pairs[0][0], PEERS_UNREAD));
    assert (!peers_drop (peers, PEERS_INTAKE, 12345, PEERS_UNREAD));
    assert (peers_drop (peers, PEERS_INTAKE, pairs[0][0], PEERS_UNREAD));
    assert (s_was_shut (pairs[0][1]) && peers_dropped (peers, PEERS_UNREAD) == 1);
    peers_closed (peers, pairs[0][0]);
    //  Silent since before 400: the tap (300), not delivery (500); with no
    //  intake or delivery connection left, there is no idlest to drop
    peers_touch (peers, pairs[3][0], 500);
    assert (peers_drop_silent (peers, PEERS_TAP, 400, false, PEERS_IDLE) == 1);
    assert (peers_drop_silent (peers, PEERS_DELIVERY, 400, false, PEERS_IDLE) == 0);
    assert (peers_drop_idlest (peers, PEERS_FD_SHORTAGE));
    assert (s_was_shut (pairs[3][1]));
    //  Tap subscribers beyond PEERS_TAP_MAX: the newcomer goes
    peers_t *taps = peers_new (1000);
    for (int i = 0; i < PEERS_TAP_MAX; i++)
        assert (peers_accepted (taps, PEERS_TAP, 1000 + i, i) == -1);
    assert (peers_accepted (taps, PEERS_TAP, 2000, 99) == 2000);
    assert (peers_count (taps, PEERS_TAP) == PEERS_TAP_MAX);
    peers_destroy (&taps);
    assert (!peers_drop_idlest (peers, PEERS_FD_SHORTAGE));
    assert (peers_count (peers, PEERS_DELIVERY) == 0 && peers_count (peers, PEERS_TAP) == 0);
    for (int i = 0; i < N; i++)
        peers_closed (peers, pairs[i][0]);
    //  Never heard from, however young: dropped when asked for
    assert (peers_accepted (peers, PEERS_INTAKE, pairs[0][0], 900) == -1);
    assert (peers_drop_silent (peers, PEERS_INTAKE, 0, false, PEERS_MEMORY) == 0);
    assert (peers_drop_silent (peers, PEERS_INTAKE, 0, true, PEERS_MEMORY) == 1);
    peers_closed (peers, pairs[0][0]);
    //  A descriptor reused: the old entry goes
    assert (peers_accepted (peers, PEERS_TAP, pairs[2][0], 600) == -1);
    assert (peers_accepted (peers, PEERS_INTAKE, pairs[2][0], 700) == -1);
    assert (peers_count (peers, PEERS_TAP) == 0 && peers_count (peers, PEERS_INTAKE) == 1);
    assert (strcmp (peers_reason_name (PEERS_TAP_TOPICS), "tap_topics") == 0);
    s_test_held ();
    assert (strcmp (peers_socket_name (PEERS_DELIVERY), "delivery") == 0);
    peers_destroy (&peers);
    assert (!peers);
    for (int i = 0; i < N; i++) {
        close (pairs[i][0]);
        close (pairs[i][1]);
    }
}
