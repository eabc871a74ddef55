/*  route: ingestd's sockets. Each is bound bounded (high-water marks, a
    frame size, a handshake limit, and TCP keepalives with a limit on data
    left unacknowledged, not ZMTP heartbeats: route.c says why), and a
    message to one peer of a ROUTER is sent never blocking. The sockets are
    bound with ROUTER_MANDATORY and a send high-water mark
    (PEERS_REPLY_HWM): a peer whose queue is full is one that does not read
    what it is sent, and it is disconnected, not waited for, nor silently
    skipped.                                                                */
#ifndef OMNI_ROUTE_H
#define OMNI_ROUTE_H

#include "common/metrics.h"
#include "ingestd/peers.h"
#include "proto/curve.h"
#include "proto/wire.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#define ROUTE_PEER_TIMEOUT_MS 30000

//  What one bound socket allows each of its connections.
typedef struct {
    int sndhwm, rcvhwm; //  messages queued to a peer, whole messages from it
    int64_t frame_max;  //  bytes a frame
    //  A connection whose peer is gone without a FIN (host down, network
    //  cut) is closed within it (whole seconds, at least 2; ingestd's
    //  default ROUTE_PEER_TIMEOUT_MS)
    int64_t peer_timeout_ms;
    //  The kernel's buffers of a connection, bytes; 0: the kernel's own
    //  (autotuned up to megabytes)
    int sndbuf, rcvbuf;
} route_limits_t;

//  Binds a ROUTER or an XPUB on `endpoint` within `limits`; a CURVE server
//  for `which` when `curve` is given. NULL with `error` filled when it
//  cannot bind.
zsock_t *route_bind (int type, const char *endpoint, omni_curve_server_t *curve,
                     omni_curve_socket_t which, const route_limits_t *limits, char *error,
                     size_t error_size);

//  Record frames laid end to end: frame k is data[ends[k - 1] .. ends[k])
//  (from 0 for the first). One buffer per message, where a zmsg_t would be
//  three allocations and a copy per record on delivery's hot path. Under a
//  DELIVERP head they go as one packed frame (omni_wire_send_packed).
typedef struct {
    const char *data;
    const size_t *ends;
    size_t count;
} route_frames_t;

//  Sends `head`, then the frames of `records` (NULL for none), on
//  `sock` (the raw ROUTER of `socket`) to the peer routed by `peer`, on
//  connection `fd`. False when it was not sent: the peer is gone, or its
//  queue is full: then it is dropped from `peers` (it would only fill its
//  queue again) and `unread` counted.
bool route_send (peers_t *peers, peers_socket_t socket, void *sock, const void *peer,
                 size_t peer_size, int fd, const omni_wire_head_t *head,
                 const route_frames_t *records, omni_metric_t *unread);

//  The next event of a socket monitor (zmq_socket_monitor) within
//  `timeout_ms` (0: only one already there): its id, and its value (the
//  descriptor, for ACCEPTED, DISCONNECTED) in `*value`; 0 when none came.
uint16_t route_event (zsock_t *monitor, int timeout_ms, uint32_t *value);

void route_test (bool verbose);

#endif
