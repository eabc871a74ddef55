/*  jsdelivery: a writer's records from its durable consumer of the
    JetStream stream (ingestd's `journal: jetstream`), handed to the writer
    loop as ingestd's delivery would hand them: it speaks the delivery
    protocol (proto/PROTOCOL.md) on an inproc endpoint the loop connects
    to, so the loop's batching, deduplication, conflicts, store thread and
    backpressure are the same for both sources. Messages are pulled within
    the writer's window and acknowledged to the stream only once the loop
    acknowledged them, i.e. after the store committed them; one that is
    not comes again after the consumer's ack wait (to this or another
    instance: any number of instances share a consumer). A message holds
    one record or a batch of them (proto/jsbatch.h): each record is handed
    on with an offset of its own, and a message is acknowledged once all
    its records are committed.                                             */
#ifndef OMNI_JSDELIVERY_H
#define OMNI_JSDELIVERY_H

#include "common/metrics.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *const *urls; //  NATS servers, NULL-terminated
    const char *stream;      //  the stream ingestd journals into
    const char *name;        //  writer role = the consumer's durable name
    const char *aside_dir;   //  where messages that do not split are kept (the conflicts_dir),
                             //  or NULL: they are then left unacknowledged
    omni_metrics_t *metrics; //  for the messages and records counters, or NULL
} omni_jsdelivery_config_t;

typedef struct _omni_jsdelivery_t omni_jsdelivery_t;

//  Starts pulling in a thread of its own: it connects (and reconnects)
//  to the cluster and binds to the writer's consumer, retrying every
//  second while either is missing. Returns NULL with `error` on a bad
//  stream or writer name.
omni_jsdelivery_t *omni_jsdelivery_new (const omni_jsdelivery_config_t *config, char *error,
                                        size_t error_size);
void omni_jsdelivery_destroy (omni_jsdelivery_t **self_p);

//  The endpoint to give the writer loop (omni_writer_config_t.endpoint).
const char *omni_jsdelivery_endpoint (omni_jsdelivery_t *self);

void omni_jsdelivery_test (bool verbose);

#endif
