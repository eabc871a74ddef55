/*  docstore: batches of records into MongoDB, one document per record
    (docmap.h), one collection per kind family (`collection` in the kinds
    table), idempotent on the record id.

    - Each batch is one unordered bulk write per collection. A duplicate key
      on _id means the record is already stored: it counts as written.
    - Kinds with mutable state (git.branch, ci.build, ...) are inserted the
      same way; those whose _id exists are read back (one $in query) and
      replaced when the record's event time (ts_ns) is newer, or the same
      with other content: the newest observation wins whatever the order of
      arrival; an older one, or the very same, counts as stored.
    - A record the server refuses for its content (document over 16 MiB,
      a refusal code about the document itself) goes to `rejected_records`
      with the reason and its msgpack bytes; the batch goes on.
    - Anything else (server away, write concern not satisfied, an error we
      do not know) fails the whole batch: the writer retries, acks nothing.
    The database, URI and write concern are configuration; nothing here is
    specific to one server version (MongoDB 5 to 8, or a MongoDB-wire server).*/
#ifndef OMNI_DOCSTORE_H
#define OMNI_DOCSTORE_H

#include "common/metrics.h"
#include "proto/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *uri;           //  mongodb:// or mongodb+srv://, TLS options included
    const char *database;      //  default "omniaudit"
    const char *write_concern; //  "majority" (default), a number >= 1, or a tag set name
    int64_t write_timeout_ms;  //  wtimeout for the write concern, 0 = none
    size_t batch_size;         //  records per write, sizes the socket timeout (0 = 1000)
} docstore_config_t;

typedef struct _docstore_t docstore_t;

//  Parses the URI and write concern; does not connect. Returns NULL and a
//  reason in `error` (never holding the password) on a bad value. Unless the
//  URI sets them, server selection times out after 5 s and a socket after
//  10 s + 20 ms per record of a batch (30 s for 1000), so a write to a
//  server that is away fails fast and is retried, and one that hangs is
//  given up on (and then waited for as long again before the next).
docstore_t *docstore_new (const docstore_config_t *config, omni_metrics_t *metrics, char *error,
                          size_t error_size);
void docstore_destroy (docstore_t **self_p);

//  The URI for logs, password and secret options masked.
const char *docstore_display (docstore_t *self);

//  Connects and creates the indexes (src, run, ts on every collection),
//  waiting for it. Returns 0 when done, 1 when the server is not reachable.
int docstore_connect (docstore_t *self);

//  Creates the indexes in a thread of its own, retried until done (their
//  state is in docstore_healthy's text); returns at once. Writes do not
//  wait for it.
void docstore_start (docstore_t *self);

//  writer_store_fn: stores the batch; 0 when every record is stored (or
//  already was, or is rejected), -1 on a failure to retry.
int docstore_write (void *self, const omni_record_t *records, size_t count, uint8_t *conflicts,
                    char *error, size_t error_size);

//  health_fn: whether a writable server is known to be up. Never blocks on
//  the network (it reads the driver's view kept by its monitor threads).
bool docstore_healthy (void *self, char *text, size_t size);

//  The URI with the password and secret options replaced by "***"; caller frees.
char *docstore_mask_uri (const char *uri);

void docstore_test (bool verbose);

#endif
