/*  archive_ids: the ids the archive holds, in two levels of its LMDB state.

    Ids are hashes: in one B-tree every new id lands on a random page, so a
    batch of N ids would copy and write about N pages. So a batch only
    writes its new ids packed, one value per sixteenth of the key range
    ("slice") in the "recent" table, and keeps them in memory for lookups;
    while they are over a threshold that grows with the archive, each batch
    merges one slice, sorted, into the "ids" tree. A lookup asks the memory
    set, then a Bloom filter of the tree, then the tree.

    The index writes into the archive's transaction (archive_ids_put), so
    that a batch's ids and its files' lengths commit together; a merge is a
    transaction of its own.                                                  */
#ifndef OMNI_ARCHIVERD_ARCHIVE_IDS_H
#define OMNI_ARCHIVERD_ARCHIVE_IDS_H

#include "common/metrics.h"
#include "proto/record.h"

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _archive_ids_t archive_ids_t;

//  Makes the LMDB map larger after MDB_MAP_FULL; returns 0 when it did.
typedef int (archive_ids_grow_fn) (void *arg);

//  `metrics` may be NULL. `grow` is called when a merge fills the map.
archive_ids_t *archive_ids_new (omni_metrics_t *metrics, archive_ids_grow_fn *grow, void *grow_arg);
void archive_ids_destroy (archive_ids_t **self_p);

//  Opens the "ids" and "recent" tables in `txn` (of the state's
//  environment, which later merges use), loads the recent ids into memory
//  and builds the tree's filter. Returns an LMDB code.
int archive_ids_open (archive_ids_t *self, MDB_txn *txn);

//  A batch: begin with room for `max_new` new keys, then find and add its
//  keys, put them into the batch's transaction, and commit or abort.
void archive_ids_begin (archive_ids_t *self, size_t max_new);
//  Whether `key` is held (in memory, else in the tree). Returns an LMDB code.
int archive_ids_find (archive_ids_t *self, MDB_txn *txn, const uint8_t key[RECORD_ID_SIZE],
                      bool *found);
//  A new key of the batch: found by the next finds at once, so that a
//  duplicate inside a batch is found too.
void archive_ids_add (archive_ids_t *self, const uint8_t key[RECORD_ID_SIZE]);
//  The batch's new keys into "recent". Returns an LMDB code.
int archive_ids_put (archive_ids_t *self, MDB_txn *txn);
//  After the batch's transaction committed.
void archive_ids_commit (archive_ids_t *self);
//  After it failed: the batch's keys leave the memory set.
void archive_ids_abort (archive_ids_t *self);

//  Merges one slice when the recent ids are over the threshold; a failure
//  is logged and tried again when they have doubled (the batch that came
//  before is durable whatever the merge does).
void archive_ids_maintain (archive_ids_t *self);
//  Merges the next slice now. -1 with `error` filled on failure.
int archive_ids_merge (archive_ids_t *self, char *error, size_t error_size);

//  Ids held, in both levels; in memory ("recent"); in the tree.
uint64_t archive_ids_count (archive_ids_t *self);
uint64_t archive_ids_recent_count (archive_ids_t *self);
uint64_t archive_ids_tree_count (archive_ids_t *self);

//  The merge threshold's bounds (tests make merges happen with small ones).
void archive_ids_set_merge_bounds (size_t min, size_t max);

void archive_ids_test (bool verbose);

#endif
