/*  jsrejects: what ingestd rejects, in a JetStream stream of its own
    (journal: jetstream), so that an operator finds every ingestd's rejects
    in one place, kept by the cluster, and not only in the dead-letter area
    of the instance that happened to receive them.

    A reject is stored the way the LMDB journal stores a dead letter: in
    the round that read it. Its publish is asynchronous like the records',
    and the round waits for its ack too: a collector's batch is
    acknowledged (its rejected count included) only once the rejects stream
    holds its rejects, and a round whose rejects the stream did not store
    is not acknowledged at all (intake pauses, the collectors send it
    again). The local dead-letter area keeps them as well.

    The stream has limits retention (age and bytes; the oldest go first),
    the journal stream's replicas and storage, subjects
    <prefix>.rejects.<reason>, and each message is the input's bytes with
    headers saying why, when and from whom (proto/jetstream.h). A resent
    batch's rejects are dropped by the stream: their message id is a hash
    of the reason, the bytes, the collector's host, the batch's seq and the
    record's place in it.                                                  */
#ifndef OMNI_JSREJECTS_H
#define OMNI_JSREJECTS_H

#include "common/metrics.h"
#include "ingestd/jsjournal.h"
#include "proto/record.h"

#include <nats/nats.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *journal_stream;  //  the records' stream: the subjects' prefix
    const char *name;            //  the rejects stream; NULL or "" = <journal_stream>_REJECTS
    int replicas;                //  as the records' stream
    bool memory;                 //  as the records' stream
    int64_t max_age_ms;          //  rejects older than this go (0 = no limit but bytes)
    int64_t max_bytes;           //  past this the oldest go (> 0)
    int64_t duplicate_window_ms; //  a resent batch's rejects are dropped within it (0 = 2 min)
    int64_t ack_timeout_ms;      //  a round waits this long for the acks (0 = 10 s)
    size_t keep_max;             //  bytes of an input kept: the record size limit
} jsrejects_config_t;

//  One rejected input, as intake saw it.
typedef struct {
    const char *reason; //  omni_record_reject_name, or "bad_frame"
    const char *detail;
    const void *raw; //  the record frame, or a malformed message's first frame
    size_t size;
    int64_t received_ns;
    int fd;                      //  its connection (the peer's address), -1 when unknown
    const char *key;             //  the collector's CURVE certificate name, or NULL
    uint64_t seq;                //  its batch's seq (0: none)
    size_t frame;                //  its place in the batch from 1 (0: the message itself)
    const omni_record_t *record; //  what the check read of it (kind, src, col), or NULL
} jsrejects_input_t;

typedef struct _jsrejects_t jsrejects_t;

//  Makes the rejects stream on `nc` (not owned; it outlives this), or
//  checks the one there. Returns NULL with `error` and `*failure`.
jsrejects_t *jsrejects_new (natsConnection *nc, const jsrejects_config_t *config,
                            jsjournal_failure_t *failure, char *error, size_t error_size);
void jsrejects_destroy (jsrejects_t **self_p);

//  This ingestd, for the Omni-Ingestd header: its host and journal id.
void jsrejects_set_instance (jsrejects_t *self, const uint8_t *journal_id, size_t id_size);

//  One round, as jsjournal's: begin, publish each reject, then complete
//  (0: every reject published since begin is stored) or abort.
void jsrejects_begin (jsrejects_t *self);
int jsrejects_publish (jsrejects_t *self, const jsrejects_input_t *input);
int jsrejects_complete (jsrejects_t *self);
void jsrejects_abort (jsrejects_t *self);
//  Rejects published since begin.
uint64_t jsrejects_published (jsrejects_t *self);

//  Why the last publish, complete or probe failed; "" after begin.
const char *jsrejects_error (jsrejects_t *self);
//  Whether the stream answers now, with a leader. Returns 0 or -1.
int jsrejects_probe (jsrejects_t *self);

//  One line for /health: "rejects NAME: messages=... replicas=... current=...";
//  with `text` NULL the gauges alone (the /metrics watcher's thread).
void jsrejects_status (jsrejects_t *self, char *text, size_t size);
//  Registers rejects_stream_messages, rejects_stream_bytes and
//  rejects_stream_replicas_current, refreshed every 2 s by a thread.
void jsrejects_metrics (jsrejects_t *self, omni_metrics_t *metrics);

const char *jsrejects_name (jsrejects_t *self);

void jsrejects_test (bool verbose);

#endif
