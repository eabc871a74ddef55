/*  peers: ingestd's connections, bounded (see peers.h).

    A dense array of entries and an index by descriptor (descriptors are
    small integers handed out lowest first, so the index stays as large as
    the most connections ever open at once). Finding a connection is O(1);
    choosing the idlest is a scan, done only at the limit, on a failed
    accept or by the idle timeout, never per message.                       */
#include "peers.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int fd;
    peers_socket_t socket;
    bool dropped; //  shut down, waiting for libzmq to close it
    bool heard;   //  a whole message came on it
    int64_t active_ms;
} s_peer_t;

struct _peers_t {
    size_t max;
    s_peer_t *peers;
    size_t npeers, cap;
    uint32_t *index; //  fd -> position + 1; 0 = none
    size_t index_size;
    size_t live[PEERS_SOCKETS];
    uint64_t dropped[PEERS_REASONS];
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

static void
s_drop (peers_t *self, s_peer_t *peer, peers_reason_t reason)
{
    if (peer->dropped)
        return;
    //  libzmq reads end-of-stream and closes the connection and the
    //  descriptor itself; whatever it buffered for the peer goes with it.
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

int
peers_accepted (peers_t *self, peers_socket_t socket, int fd, int64_t now_ms)
{
    if (fd < 0 || socket >= PEERS_SOCKETS)
        return -1;
    //  A descriptor reused before its DISCONNECTED event was read: the old
    //  connection is over.
    if (s_find (self, fd))
        peers_closed (self, fd);
    if ((size_t) fd >= self->index_size) {
        size_t size = self->index_size ? self->index_size : 256;
        while (size <= (size_t) fd)
            size *= 2;
        self->index = realloc (self->index, size * sizeof *self->index);
        assert (self->index);
        memset (self->index + self->index_size, 0, (size - self->index_size) * sizeof *self->index);
        self->index_size = size;
    }
    if (self->npeers == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 64;
        self->peers = realloc (self->peers, self->cap * sizeof *self->peers);
        assert (self->peers);
    }
    self->peers[self->npeers] = (s_peer_t){fd, socket, false, false, now_ms};
    self->index[fd] = (uint32_t) ++self->npeers;
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

void
peers_closed (peers_t *self, int fd)
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

void
peers_touch (peers_t *self, int fd, int64_t now_ms)
{
    s_peer_t *peer = s_find (self, fd);
    if (peer) {
        peer->active_ms = now_ms;
        peer->heard = true;
    }
}

bool
peers_known (peers_t *self, peers_socket_t socket, int fd)
{
    s_peer_t *peer = s_find (self, fd);
    return peer && !peer->dropped && peer->socket == socket;
}

bool
peers_drop (peers_t *self, peers_socket_t socket, int fd, peers_reason_t reason)
{
    if (!peers_known (self, socket, fd))
        return false;
    s_drop (self, s_find (self, fd), reason);
    return true;
}

size_t
peers_drop_silent (peers_t *self, peers_socket_t socket, int64_t before_ms, bool unheard,
                   peers_reason_t reason)
{
    size_t dropped = 0;
    for (size_t i = 0; i < self->npeers; i++) {
        s_peer_t *peer = &self->peers[i];
        if (!peer->dropped && peer->socket == socket &&
            (peer->active_ms < before_ms || (unheard && !peer->heard))) {
            s_drop (self, peer, reason);
            dropped++;
        }
    }
    return dropped;
}

bool
peers_drop_idlest (peers_t *self, peers_reason_t reason)
{
    s_peer_t *idlest = s_idlest (self);
    if (idlest)
        s_drop (self, idlest, reason);
    return idlest != NULL;
}

size_t
peers_count (peers_t *self, peers_socket_t socket)
{
    return socket < PEERS_SOCKETS ? self->live[socket] : 0;
}

uint64_t
peers_dropped (peers_t *self, peers_reason_t reason)
{
    return reason < PEERS_REASONS ? self->dropped[reason] : 0;
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
    assert (strcmp (peers_socket_name (PEERS_DELIVERY), "delivery") == 0);
    peers_destroy (&peers);
    assert (!peers);
    for (int i = 0; i < N; i++) {
        close (pairs[i][0]);
        close (pairs[i][1]);
    }
}
