/*  jsjournal: ingestd's records journaled in a NATS JetStream stream (the
    `journal: jetstream` mode), for deployments past one machine: the
    stream is replicated by the cluster, any number of ingestd instances
    publish into it, and each writer pulls from a durable consumer of its
    own. An intake round publishes its accepted records asynchronously and
    waits for every publish ack (the stream stored the record on a quorum
    of its replicas) before the round's batches are acknowledged. The
    records of a collector's batch go in as few messages as their routes
    allow (proto/jsbatch.h), each named by a hash of its records' ids, so
    the stream drops a batch a collector sends twice within its duplicate
    window.                                                               */
#ifndef OMNI_JSJOURNAL_H
#define OMNI_JSJOURNAL_H

#include "common/metrics.h"
#include "proto/record.h"

#include <nats/nats.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *const *urls;     //  NATS servers, NULL-terminated (nats://host:port)
    const char *stream;          //  stream name; subjects <lower(stream)>.rec.>
    int replicas;                //  1..5
    bool memory;                 //  memory storage instead of file (tests, benchmarks)
    int64_t duplicate_window_ms; //  the stream's duplicate window
    int64_t ack_timeout_ms;      //  a round waits this long for its publish acks
    uint64_t max_record_size;    //  must fit the servers' max_payload
    int64_t ack_wait_ms;         //  a new consumer's ack wait: a message a writer instance took
                                 //  and did not acknowledge goes to another after this (0 = 30 s)
    const char *const *writers;  //  configured writers: a durable consumer each, NULL-terminated
} jsjournal_config_t;

//  Why jsjournal_new failed: the exit status ingestd gives it.
typedef enum {
    JSJOURNAL_UNREACHABLE = 1, //  no server answered, or JetStream did not
    JSJOURNAL_MISMATCH = 2,    //  the cluster holds the stream or a consumer with other settings
} jsjournal_failure_t;

typedef struct _jsjournal_t jsjournal_t;

//  Connects, creates the stream and the writers' consumers where missing,
//  and checks them where present. Returns NULL with `error` and `*failure`.
jsjournal_t *jsjournal_new (const jsjournal_config_t *config, jsjournal_failure_t *failure,
                            char *error, size_t error_size);
void jsjournal_destroy (jsjournal_t **self_p);

//  One round: begin, publish each accepted record (grouped by subject:
//  a group goes out when full), flush at the end of each collector batch
//  (its groups go out), then complete (0: every record published since
//  begin is stored) or abort (forget what is pending: the collectors send
//  the round again). publish, flush: 0, or -1 when nats.c refused.
void jsjournal_begin (jsjournal_t *self);
int jsjournal_publish (jsjournal_t *self, const omni_record_t *record, const void *data,
                       size_t size, unsigned writers);
int jsjournal_flush (jsjournal_t *self);
int jsjournal_complete (jsjournal_t *self);
void jsjournal_abort (jsjournal_t *self);
//  Records, and messages holding them, published since begin.
uint64_t jsjournal_published (jsjournal_t *self);
uint64_t jsjournal_messages (jsjournal_t *self);

//  Why the last publish, complete or probe failed (for the fault text).
const char *jsjournal_error (jsjournal_t *self);

//  Whether the stream answers now, with a leader. Returns 0 or -1.
int jsjournal_probe (jsjournal_t *self);

//  One line for /health: the stream's messages, replicas current, and per
//  consumer what is pending and redelivered. From the HTTP thread, and
//  with `text` NULL (the gauges alone) from the /metrics watcher's.
void jsjournal_status (jsjournal_t *self, char *text, size_t size);

//  Registers the stream's and consumers' gauges (stream_messages,
//  stream_bytes, stream_replicas_current, consumer_pending,
//  consumer_ack_pending, consumer_redelivered{writer}, all in messages)
//  and refreshes them every 2 s in a thread of its own until destroy; and
//  the counters of what the stream acknowledged,
//  stream_published_messages_total and stream_published_records_total.
void jsjournal_metrics (jsjournal_t *self, omni_metrics_t *metrics);

const char *jsjournal_stream (jsjournal_t *self);
//  The connection to the cluster, for the rejects stream (jsrejects.h):
//  valid until destroy.
natsConnection *jsjournal_connection (jsjournal_t *self);

void jsjournal_test (bool verbose);

#endif
