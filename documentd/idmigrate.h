/*  idmigrate: converts a database written with BinData _ids (documentd
    before the string _id) to string _ids, collection by collection, once.

    The _id of a document is the record id: formerly BinData subtype 0 of
    its 16 bytes, now the same bytes as 32 lower-case hex digits. The two
    never compare equal, so a database must hold one form only: a writer
    that put hex ids next to BinData ones would store every redelivered or
    re-collected record twice. The form is a property of the database: the
    document {_id: "id_format", value: "hex"} in the collection `omni_meta`,
    written once every collection holds string ids (at once on an empty
    database). Until then documentd writes nothing.

    Per collection C that holds a BinData _id (T = C + "__hexid"):
      1. copy every document of C into T, its _id as hex, in unordered bulk
         inserts of 1000 (a duplicate _id is a copy made by an earlier,
         interrupted run: the writer writes nothing meanwhile);
      2. check that T holds exactly as many documents as were read;
      3. make C's indexes (but _id's) on T, one createIndexes each;
      4. drop C;
      5. rename T to C.
    Every step can be cut off by kill -9 and is done again, or found done,
    at the next run: C and T both there means step 1 (T is filled up
    again), T without C means step 5, C with no BinData _id left means the
    collection is done. Nothing is deleted before its copy is complete and
    counted. Between steps 4 and 5 the collection is missing for readers
    for the time of one rename (longer only if killed just there).
    Standard commands only (find, insert, count, listIndexes, createIndexes,
    drop, renameCollection): MongoDB 5 to 8 and FerretDB alike.           */
#ifndef OMNI_IDMIGRATE_H
#define OMNI_IDMIGRATE_H

#include <mongoc/mongoc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define IDMIGRATE_META   "omni_meta"
#define IDMIGRATE_SUFFIX "__hexid"

//  Told the state in words as it changes (for /health and the log).
typedef void (idmigrate_progress_fn) (void *arg, const char *text);

//  Brings `db` to string _ids for the `count` collections in `names` (the
//  ones documentd writes); other collections are left alone. Returns 1
//  when the database was already marked hex (nothing read but the marker),
//  0 when it is now, -1 on a failure (error set: server away, or refused;
//  call again later, it resumes). `quit`, when it becomes true, stops it
//  between two batches (returns -1). `wc` is the write concern of every
//  write it makes.
int idmigrate_run (mongoc_database_t *db, const mongoc_write_concern_t *wc,
                   const char *const *names, size_t count, idmigrate_progress_fn *progress,
                   void *arg, atomic_bool *quit, char *error, size_t error_size);

//  Whether `db` is marked hex: 1 yes, 0 no, -1 on error (error set).
int idmigrate_marked (mongoc_database_t *db, char *error, size_t error_size);

void idmigrate_test (bool verbose);

#endif
