/*  journal: ingestd's durable store, on LMDB. It holds every accepted record
    under a journal offset until all configured writers have acknowledged it,
    one durable cursor per writer, the dead-letter area of rejected input,
    and the accounting counters, all changed in crash-safe transactions.     */
#ifndef OMNI_JOURNAL_H
#define OMNI_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOURNAL_ID_SIZE      16
#define JOURNAL_DEAD_RAW_MAX 4096 //  bytes of a rejected input kept for inspection

typedef struct {
    uint64_t received; //  inputs (record frames and malformed messages) seen
    uint64_t accepted; //  records appended
    uint64_t rejected; //  inputs dead-lettered
    uint64_t trimmed;  //  records removed after every writer acknowledged them
} journal_counters_t;

typedef struct _journal_t journal_t;

//  Why the journal takes no writes: the cause of its last failed write
//  transaction. The names are the `cause` label of ingestd's fault metric.
typedef enum {
    JOURNAL_OK = 0,
    JOURNAL_NO_SPACE, //  ENOSPC, or EIO from a short write on a full file system
    JOURNAL_QUOTA,    //  EDQUOT
    JOURNAL_MAP_FULL, //  MDB_MAP_FULL: the LMDB map, not the disk
    JOURNAL_IO_ERROR, //  EIO with space left: the device
    JOURNAL_ERROR,    //  anything else (EROFS, EBADF, ...)
    JOURNAL_STREAM,   //  journal: jetstream: the stream did not store a round (jsjournal.h)
    JOURNAL_FAULT_COUNT
} journal_fault_t;

//  Opens or creates the journal in `dir`. `writers` are the configured
//  writer names (NULL-terminated); a name not seen before gets a cursor at
//  the oldest record still held. `map_size` is LMDB's map (0: 2 x max_bytes
//  + 1 GiB). Returns NULL with `error` filled on failure.
journal_t *journal_new (const char *dir, uint64_t max_bytes, uint64_t dead_max, uint64_t map_size,
                        const char *const *writers, char *error, size_t error_size);
void journal_destroy (journal_t **self_p);

const uint8_t *journal_id (journal_t *self);

//  One write transaction per intake round: begin, append / reject, commit.
int journal_begin (journal_t *self);
//  Returns the new record's offset, 0 on failure (the round must abort).
uint64_t journal_append (journal_t *self, const void *record, size_t size, uint8_t writers,
                         int64_t received_ns);
int journal_reject (journal_t *self, const char *reason, const char *detail, const void *raw,
                    size_t size, int64_t received_ns);
void journal_count_received (journal_t *self, uint64_t inputs);
//  Records accepted into another journal (journal: jetstream): counted as
//  accepted and as acknowledged by all, so that the invariants hold with
//  none of them held here.
void journal_count_forwarded (journal_t *self, uint64_t records);
//  Durable (fsync) when it returns 0. On -1 nothing of the round is kept.
int journal_commit (journal_t *self);
void journal_abort (journal_t *self);

//  Calls `visit` for each record at offset >= from, in order, until it
//  returns false or the journal ends. The pointers are valid during the call.
typedef bool (journal_visit_fn) (void *arg, uint64_t offset, const void *record, size_t size,
                                 uint8_t writers, int64_t received_ns);
int journal_scan (journal_t *self, uint64_t from, journal_visit_fn *visit, void *arg);

//  Cursor of a writer by index in the `writers` list given to journal_new.
uint64_t journal_cursor (journal_t *self, size_t writer);
size_t journal_writer_count (journal_t *self);
//  Whether this writer was new to a journal that had accepted records
//  before (at this opening): what was trimmed before never reaches it.
bool journal_writer_added (journal_t *self, size_t writer);
const char *journal_writer_name (journal_t *self, size_t writer);
//  Moves a writer's cursor (only forward) in memory; journal_sync_cursors
//  persists all moved cursors and trims what every writer is past.
void journal_set_cursor (journal_t *self, size_t writer, uint64_t cursor);
int journal_sync_cursors (journal_t *self);
//  True while a cursor moved in memory is not yet persisted.
bool journal_cursors_pending (journal_t *self);

//  Write failures. Every write (begin, append, reject, commit, sync,
//  probe) that fails keeps its error code (errno or MDB_*) until the next
//  write transaction commits. A commit whose meta page write failed leaves
//  LMDB's environment unusable (MDB_PANIC): the journal reopens it at once,
//  its committed data intact, and reloads its state from it.
int journal_error (journal_t *self);
//  The fault of the last failed write, JOURNAL_OK when none.
journal_fault_t journal_fault (journal_t *self);
journal_fault_t journal_classify (int error, uint64_t free_bytes);
const char *journal_fault_name (journal_fault_t fault);
//  One line for /health: the cause, where, and what to do about it.
void journal_fault_text (journal_t *self, journal_fault_t fault, char *text, size_t size);
//  Writes `size` bytes of scratch entries and removes them again, in two
//  transactions: whether a round of that size would commit now. The pages
//  freed stay in the file for the next round. Returns 0 or -1.
int journal_probe (journal_t *self, size_t size);
//  Bytes free for ingestd on the journal's file system (statvfs).
uint64_t journal_free_bytes (journal_t *self);
const char *journal_dir (journal_t *self);

uint64_t journal_next_offset (journal_t *self);  //  offset the next record gets
uint64_t journal_first_offset (journal_t *self); //  oldest record held (= next when empty)
uint64_t journal_bytes (journal_t *self);        //  bytes of records held
uint64_t journal_records (journal_t *self);      //  records held, by the counters
bool journal_full (journal_t *self);
journal_counters_t journal_counters (journal_t *self);
//  Records actually present, counted by LMDB; callable from another thread.
uint64_t journal_stat_records (journal_t *self);
uint64_t journal_dead_count (journal_t *self);
//  Removes the dead letters received before `older_than_ns` (outside a
//  round); returns how many.
uint64_t journal_expire_dead (journal_t *self, int64_t older_than_ns);
//  Received time of the record at `offset`, 0 if not held.
int64_t journal_received_ns (journal_t *self, uint64_t offset);

void journal_test (bool verbose);

#endif
