/*  jsbatch: many records in one JetStream message (ingestd's `journal:
    jetstream`), written by ingestd and split again by the writers'
    bridge (client/jsdelivery.c).

    A batch message carries two headers, `Omni-Batch: 1` (the layout's
    version) and `Omni-Records: N`, and its body is a msgpack array of N
    bin items, each one record's encoded bytes as ingestd accepted them.
    A message without `Omni-Batch` is one record, its body the record's
    bytes: what ingestd published before batches, still read as such.
    Its message id (Nats-Msg-Id) is "ob1-" and a hash of the subject and
    the records' ids in order, so that the same records sent again on the
    same route (a collector's batch sent again, to this or another
    ingestd) are dropped by the stream's duplicate window as one record's
    id was. The decoder takes no NATS type, so that it can be fuzzed.      */
#ifndef OMNI_JSBATCH_H
#define OMNI_JSBATCH_H

#include "common/buf.h"
#include "proto/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OMNI_JS_BATCH_HEADER   "Omni-Batch"
#define OMNI_JS_BATCH_VERSION  "1"
#define OMNI_JS_RECORDS_HEADER "Omni-Records"
#define OMNI_JS_BATCH_ID_SIZE  37 //  "ob1-" + 32 hex digits + NUL
#define OMNI_JS_BATCH_OVERHEAD 10 //  body bytes beyond the records of a batch of one

//  A batch being filled; zero-initialised it is empty and usable.
typedef struct {
    omni_buf_t body; //  array head (5 bytes, count written at finish) then bin items
    omni_buf_t ids;  //  the records' ids, in order
    uint32_t count;
} omni_js_batch_t;

void omni_js_batch_release (omni_js_batch_t *self);
//  Empties the batch (keeps its memory).
void omni_js_batch_reset (omni_js_batch_t *self);
//  The body's size with one more record of `size` bytes.
size_t omni_js_batch_size_with (const omni_js_batch_t *self, size_t size);
void omni_js_batch_add (omni_js_batch_t *self, const uint8_t *id, const void *data, size_t size);
//  Writes the count into the body and names the message: `msg_id` gets
//  OMNI_JS_BATCH_ID_SIZE bytes. The body is then self->body.data/size.
void omni_js_batch_finish (omni_js_batch_t *self, const char *subject, char *msg_id);

//  One record in a message's body.
typedef struct {
    const void *data;
    size_t size;
} omni_js_part_t;

//  Splits a message's body into its records: `version` and `records` are
//  its Omni-Batch and Omni-Records header values, or NULL when absent (no
//  Omni-Batch: one record, the whole body). Fills `*parts` (grown as
//  needed, `*cap` items; the caller frees it) and returns how many (>= 1),
//  pointing into `data`; or -1 with `why` (an unknown version, a count
//  that is not the header's, a truncated or malformed body, bytes after
//  the last record, an empty record).
int omni_js_batch_split (const char *version, const char *records, const void *data, size_t size,
                         omni_js_part_t **parts, size_t *cap, char *why, size_t why_size);

void omni_js_batch_test (bool verbose);

#endif
