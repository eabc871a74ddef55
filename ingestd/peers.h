/*  peers: the TCP connections ingestd's sockets accepted, by descriptor, as
    their socket monitors report them, with when each last sent a whole
    message. libzmq accepts whatever comes and offers no way to close one
    connection of a ROUTER or XPUB; this table is how ingestd bounds them: a
    limit on connections (the idlest goes when a new one comes at the limit),
    an idle timeout, and dropping a peer that does not read its replies.

    Dropping is shutdown(2) of the descriptor, never close(2): libzmq owns
    it, sees the connection end and closes it itself, and the descriptor
    cannot be reused under it meanwhile. Only descriptors in the table are
    ever shut down, so a stale number never touches a journal or log file;
    with the port the socket listens on known, a descriptor is shut down
    only while it is still a connection to that port.

    What libzmq holds for a connection is measured, not guessed: the bytes
    its TCP connection received (TCP_INFO) less those still in the kernel
    (FIONREAD) and those ingestd read from it as whole messages. libzmq
    hands over no part of a multi-part message before its last frame came,
    so one building a giant message shows here, and only here. On the tap,
    where ingestd reads nothing, it is what a subscriber sent: its
    subscriptions, which libzmq keeps in a trie.

    Every function may be called from any thread (one lock): ingestd's
    memory guard runs in a thread of its own.                              */
#ifndef OMNI_PEERS_H
#define OMNI_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { PEERS_INTAKE = 0, PEERS_DELIVERY, PEERS_TAP, PEERS_SOCKETS } peers_socket_t;

//  Replies queued to one intake or delivery peer before it counts as not
//  reading them (its socket's send high-water mark).
#define PEERS_REPLY_HWM 1000

//  Tap subscribers at most (a debug view), whatever the connection limit.
#define PEERS_TAP_MAX 64

//  Why a connection was dropped (metrics label, log value).
typedef enum {
    PEERS_OVER_LIMIT = 0, //  the idlest, for a new connection at the limit
    PEERS_IDLE,           //  no message within the idle timeout
    PEERS_UNREAD,         //  replies not read: its send queue is full
    PEERS_MEMORY,         //  ingestd over its memory budget
    PEERS_TAP_TOPICS,     //  the tap's subscriptions over their bound
    PEERS_FD_SHORTAGE,    //  an accept failed for want of descriptors
    PEERS_REASONS
} peers_reason_t;

typedef struct _peers_t peers_t;

//  At most `max_connections` over all sockets.
peers_t *peers_new (size_t max_connections);
void peers_destroy (peers_t **self_p);

const char *peers_socket_name (peers_socket_t socket);
const char *peers_reason_name (peers_reason_t reason);

//  A connection accepted at `now_ms`. At the limit the idlest intake or
//  delivery connection is dropped for it (one never heard from first); a
//  tap subscriber over PEERS_TAP_MAX is dropped itself. Returns the
//  descriptor dropped, or -1.
int peers_accepted (peers_t *self, peers_socket_t socket, int fd, int64_t now_ms);
//  Its connection ended (the descriptor may be reused from now on).
void peers_closed (peers_t *self, int fd);
//  A whole message came on it.
void peers_touch (peers_t *self, int fd, int64_t now_ms);
//  ingestd read `wire_bytes` from it (frames and their ZMTP headers).
void peers_consumed (peers_t *self, int fd, uint64_t wire_bytes);
//  The connections of `socket` are to this local TCP port (0 = unchecked).
void peers_set_port (peers_t *self, peers_socket_t socket, int port);
//  Bytes received on a live connection of `socket` and not read by
//  ingestd (see above); 0 when unknown (not TCP) or not such a connection.
uint64_t peers_held (peers_t *self, peers_socket_t socket, int fd);
//  Connections to the port of `socket` that the table does not know yet
//  (accepted, their ACCEPTED event not read: the event loop is busy), found
//  by scanning descriptors below `max_fd` (and 1,024 past the largest the
//  table saw): drops those holding more than
//  `over` (ingestd read nothing from them). Returns how many, and what they
//  held in `freed`. Needs the port (peers_set_port).
size_t peers_drop_unknown (peers_t *self, peers_socket_t socket, int max_fd, uint64_t over,
                           peers_reason_t reason, uint64_t *freed);
//  What the live connections of `socket` hold together.
uint64_t peers_held_total (peers_t *self, peers_socket_t socket);
//  Drops the connections of `socket` holding most, largest first, each
//  holding at least `floor` bytes, until what they hold sums to `excess`;
//  returns how many, and that sum in `freed`.
size_t peers_shed (peers_t *self, peers_socket_t socket, uint64_t excess, uint64_t floor,
                   peers_reason_t reason, uint64_t *freed);
//  Drops each connection of `socket` holding more than `over` bytes; and
//  while they all hold more than `total` together, the largest. Returns how
//  many went, and what they held in `freed` (may be NULL).
size_t peers_drop_holding (peers_t *self, peers_socket_t socket, uint64_t over, uint64_t total,
                           peers_reason_t reason, uint64_t *freed);
//  Whether `fd` is a live (not dropped) connection of `socket`.
bool peers_known (peers_t *self, peers_socket_t socket, int fd);
//  Drops one connection of `socket`; false when `fd` is not one.
bool peers_drop (peers_t *self, peers_socket_t socket, int fd, peers_reason_t reason);
//  Drops the connections of `socket` without a message since `before_ms`
//  (every one with INT64_MAX), and with `unheard` those that never sent a
//  whole message, however young; returns how many.
size_t peers_drop_silent (peers_t *self, peers_socket_t socket, int64_t before_ms, bool unheard,
                          peers_reason_t reason);
//  Drops the idlest connection of any socket; false when there is none.
bool peers_drop_idlest (peers_t *self, peers_reason_t reason);

//  Live connections of `socket`, and drops by reason since the start.
size_t peers_count (peers_t *self, peers_socket_t socket);
uint64_t peers_dropped (peers_t *self, peers_reason_t reason);
size_t peers_limit (peers_t *self);

//  A frame's bytes on the wire, for peers_consumed (with CURVE or not; per
//  record frame of intake, so inline). ZMTP 3 puts a flags byte and a 1- or
//  8-byte size before a frame; CURVE sends it as a MESSAGE command of 33
//  bytes more ("\x07MESSAGE", an 8-byte nonce, a flags byte and a 16-byte
//  MAC). Exact, or the count of what libzmq holds would drift on a
//  long-lived connection; a peer that frames more loosely only looks larger.
static inline uint64_t
peers_wire_size (size_t size, bool curve)
{
    uint64_t body = size + (curve ? 33 : 0);
    return body + (body > 255 ? 9 : 2);
}

void peers_test (bool verbose);

#endif
