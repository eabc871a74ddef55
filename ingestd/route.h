/*  route: sends a message to one peer of a ROUTER socket of ingestd,
    never blocking. The sockets are bound with ROUTER_MANDATORY and a send
    high-water mark (PEERS_REPLY_HWM): a peer whose queue is full is one
    that does not read what it is sent, and it is disconnected, not waited
    for, nor silently skipped.                                              */
#ifndef OMNI_ROUTE_H
#define OMNI_ROUTE_H

#include "common/metrics.h"
#include "ingestd/peers.h"
#include "proto/wire.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

//  Sends `head`, then the frames of `records` (taken; NULL for none), on
//  `sock` (the raw ROUTER of `socket`) to the peer routed by `peer`, on
//  connection `fd`. False when it was not sent: the peer is gone, or its
//  queue is full: then it is dropped from `peers` (it would only fill its
//  queue again) and `unread` counted.
bool route_send (peers_t *peers, peers_socket_t socket, void *sock, const void *peer,
                 size_t peer_size, int fd, const omni_wire_head_t *head, zmsg_t **records,
                 omni_metric_t *unread);

#endif
