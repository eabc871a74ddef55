/*  tap: what ingestd publishes on its XPUB tap for omni-tap and operators
    (PROTOCOL.md, Tap): every accepted record under its kind, once its round
    is committed; every rejected input under "!reject"; every conflict a
    writer reports under "conflict.<kind>". Nothing is copied while no one
    is connected, and a subscriber costs ingestd a bounded amount whatever
    it does: records larger than tap_budget / TAP_HWM are not published,
    rejects at most 1,000 a second, subscriptions per peer and in total.

    The server binds the XPUB socket and reads its monitor; from tap_new on
    a thread of tap's serves the socket (the server touches it again only
    once tap_destroy returned): a flood of subscriptions can hold that
    thread, never ingestd's event loop (tap.c says why).                   */
#ifndef OMNI_TAP_H
#define OMNI_TAP_H

#include "common/metrics.h"
#include "ingestd/peers.h"
#include "proto/record.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Messages queued to one tap subscriber (a round is a burst): the
//  socket's send high-water mark.
#define TAP_HWM 10000

typedef struct _tap_t tap_t;

//  Publishes on `sock` (an XPUB, not owned, served by tap's thread until
//  tap_destroy) while `peers` has a tap connection; a record over
//  `budget` / TAP_HWM bytes is not published.
tap_t *tap_new (zsock_t *sock, peers_t *peers, uint64_t budget, omni_metrics_t *metrics);
void tap_destroy (tap_t **self_p);

//  Whether anyone may listen (false for a NULL tap: nothing is published).
bool tap_open (tap_t *self);
//  The largest record published.
size_t tap_record_max (tap_t *self);

//  A round of intake begins: nothing kept (a NULL tap: nothing to do).
void tap_round_begin (tap_t *self);
//  An accepted record of the round, kept until the round ends.
void tap_keep (tap_t *self, const omni_record_t *record, const void *data, size_t size);
//  The round ends: its records are published when it was committed.
void tap_round_end (tap_t *self, bool committed);

//  A rejected input: "!reject" reason detail raw (cut at
//  JOURNAL_DEAD_RAW_MAX) size:u64.
void tap_reject (tap_t *self, const char *reason, const char *detail, const void *raw, size_t size);
//  A conflict `writer` reported: "conflict.<kind>" writer record.
void tap_conflict (tap_t *self, const char *writer, const omni_record_t *record, const void *data,
                   size_t size);

//  Drops the tap connections past their bounds (from the memory guard's
//  thread: the tap's thread does too, but a flood may be holding it).
void tap_housekeep (tap_t *self);
//  A tap connection closed (after peers_closed).
void tap_closed (tap_t *self);

void tap_test (bool verbose);

#endif
