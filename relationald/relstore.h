/*  relstore: relationald's store, the writer_store_fn that puts a batch of
    records into PostgreSQL tables. One transaction per batch: the records
    are copied (COPY, binary) into temporary staging tables, then one
    INSERT ... SELECT ... ON CONFLICT per table moves them into the real
    tables, keyed on the record id, so that a redelivered or re-collected
    record never makes a second row. A record PostgreSQL refuses for its
    content is isolated (savepoints, by halving the batch) and kept in
    rejected_records with the error; the rest of the batch is stored.         */
#ifndef OMNI_RELATIONALD_RELSTORE_H
#define OMNI_RELATIONALD_RELSTORE_H

#include "common/metrics.h"
#include "proto/record.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct _relstore_t relstore_t;

//  `dsn` is a libpq conninfo or URI; NULL or "" uses the PG* environment.
//  Does not connect. `metrics` may be NULL. Returns NULL when the dsn
//  cannot be parsed (error says why, never with the password).
relstore_t *relstore_new (const char *dsn, omni_metrics_t *metrics, char *error, size_t error_size);
void relstore_destroy (relstore_t **self_p);

//  Create the dsn's database when it does not exist (config create_database).
void relstore_set_create_database (relstore_t *self, bool create);

//  Connects now and applies the migrations. Returns 0 when ready, 1 when
//  PostgreSQL cannot be reached or refuses for now (no such database or
//  role, authentication: /health says which; writes retry later), -1 when
//  it answers but the schema cannot be applied (a start-up error).
int relstore_connect (relstore_t *self);

//  writer_store_fn: 0 once the batch is committed (refused records are in
//  rejected_records), -1 when PostgreSQL is away or failing (retry later),
//  WRITER_STORE_PERMANENT when it refuses this writer until an operator acts.
int relstore_write (void *self, const omni_record_t *records, size_t count, uint8_t *conflicts,
                    char *error, size_t error_size);

//  health_fn: whether PostgreSQL accepts connections (checked on a fresh
//  connection attempt, at most once a second); safe from any thread.
bool relstore_healthy (void *self, char *text, size_t size);

//  The conninfo for logs, password masked.
const char *relstore_display (relstore_t *self);

void relstore_test (bool verbose);

#endif
