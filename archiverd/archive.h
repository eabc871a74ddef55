/*  archive: archiverd's store, the writer_store_fn that appends each record
    as one JSON line (omni_mpjson_record) to <dir>/<kind>/<YYYY-MM-DD>.jsonl, by
    the UTC date of its event time. Exactly once per record id, across
    redeliveries, re-collections and crashes: a state store in LMDB
    (<dir>/.state) holds the ids already archived (the recent ones also in
    memory, merged into a B-tree in bulk) and the committed length of every
    file; at start-up every file is cut back to its committed length and
    files the state does not know are removed. Large batches are turned
    into JSON by two threads.                                                */
#ifndef OMNI_ARCHIVERD_ARCHIVE_H
#define OMNI_ARCHIVERD_ARCHIVE_H

#include "common/metrics.h"
#include "proto/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _archive_t archive_t;

//  Opens or creates the archive in `dir` and recovers it (truncates files
//  to their committed length, removes uncommitted ones). Refuses (NULL,
//  `error` says why) when another process has the archive open, or when
//  the archive holds .jsonl files but has no state (they are never deleted
//  on a guess). `metrics` may be NULL.
archive_t *archive_new (const char *dir, omni_metrics_t *metrics, char *error, size_t error_size);
void archive_destroy (archive_t **self_p);

//  writer_store_fn: appends the records whose ids are not archived yet,
//  fsyncs the files, commits their ids and the new file lengths. Returns 0
//  once durable, -1 (nothing committed, `error` says why) on a failure
//  such as a full disk; the same batch can then be given again.
int archive_write (void *self, const omni_record_t *records, size_t count, uint8_t *conflicts,
                   char *error, size_t error_size);

//  Cold storage and retention. Files of event dates that ended
//  compress_after ago or more are compressed (<date>[.N].jsonl.zst, zstd at
//  compress_level, with a checksum); files older than their kind's
//  retention are removed. `retain`: "KIND=DURATION" or "KIND=forever",
//  "*=DURATION" for every kind not named; a kind not named is kept forever.
typedef struct {
    int64_t compress_after_ms; //  0: never
    int compress_level;        //  0: 3
    const char *const *retain; //  NULL-terminated, or NULL
} archive_policy_t;

//  -1 with `error` on a bad retain entry (nothing changed).
int archive_set_policy (archive_t *self, const archive_policy_t *policy, char *error,
                        size_t error_size);

//  One pass of cold storage and retention, as of `now_ns`. Safe next to
//  archive_write from another thread; each file is one step.
void archive_maintain (archive_t *self, int64_t now_ns);

//  A thread that runs archive_maintain now and then every `interval_ms`,
//  until archive_destroy. -1 if it cannot start.
int archive_start_maintenance (archive_t *self, int64_t interval_ms);

//  Number of record ids archived, by the state store.
uint64_t archive_id_count (archive_t *self);

//  Of those, the ids held in memory until their slice is merged.
uint64_t archive_recent_id_count (archive_t *self);

//  The directory name a kind is stored under: the kind itself when it is
//  made only of [a-z0-9._-]; otherwise upper case is folded, anything else
//  becomes '_', and a name that would be hidden or too long is made safe.
//  Writes at most `size` bytes, NUL-terminated; returns the length.
size_t archive_kind_dir (const char *kind, size_t len, char *out, size_t size);

//  The UTC date "YYYY-MM-DD" of an event time in ns since the epoch.
void archive_date (int64_t ts_ns, char out[11]);

void archive_test (bool verbose);

#endif
