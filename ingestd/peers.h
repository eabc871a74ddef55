/*  peers: the TCP connections ingestd's sockets accepted, by descriptor, as
    their socket monitors report them, with when each last sent a whole
    message. libzmq accepts whatever comes and offers no way to close one
    connection of a ROUTER or XPUB; this table is how ingestd bounds them: a
    limit on connections (the idlest goes when a new one comes at the limit),
    an idle timeout, and dropping a peer that does not read its replies.

    Dropping is shutdown(2) of the descriptor, never close(2): libzmq owns
    it, sees the connection end and closes it itself, and the descriptor
    cannot be reused under it meanwhile. Only descriptors in the table are
    ever shut down, so a stale number never touches a journal or log file. */
#ifndef OMNI_PEERS_H
#define OMNI_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { PEERS_INTAKE = 0, PEERS_DELIVERY, PEERS_TAP, PEERS_SOCKETS } peers_socket_t;

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

void peers_test (bool verbose);

#endif
