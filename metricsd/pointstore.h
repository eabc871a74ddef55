/*  pointstore: metricsd's store, the writer_store_fn that turns a batch of
    records into time-series points (derive.h) and writes them into the
    `points` table (tsschema.h) in one transaction: COPY (binary) into a
    session temporary staging table, then one INSERT ... SELECT ... ON
    CONFLICT (name, source, tags, time) DO UPDATE, so a redelivered batch or
    a re-collected history never doubles a point (the last value delivered
    wins). The batch is acknowledged only after COMMIT.

    In native mode, every partition a batch needs exists before the batch
    transaction starts: missing ones (old history, far future) are created
    on demand, and the current and next period ahead of time.               */
#ifndef OMNI_METRICSD_POINTSTORE_H
#define OMNI_METRICSD_POINTSTORE_H

#include "common/metrics.h"
#include "proto/record.h"
#include "metricsd/tsschema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *dsn;                //  libpq conninfo or URI; NULL or "" = PG* environment
    tsschema_mode_t mode;           //  auto | native | timescaledb
    const char *partition_interval; //  day | week | month | year
    int64_t compress_after_ms;      //  TimescaleDB (timescale license); 0 = never
    bool create_database;           //  create the dsn's database when it does not exist
    //  Points older than this go (0 = never): before a batch, at most hourly,
    //  native partitions whose whole range is older are dropped (TimescaleDB:
    //  drop_chunks); points delivered older than this are not written.
    int64_t retain_ms;
    //  Connections a batch of new points is copied over at once (1..8):
    //  the points are dealt by series, each share copied in a transaction
    //  of its own, and all committed only once every COPY went through.
    //  0 = 1.
    int connections;
} pointstore_config_t;

typedef struct _pointstore_t pointstore_t;

//  Does not connect. `metrics` may be NULL. Returns NULL when the dsn
//  cannot be parsed or a setting is invalid: `error` starts with the key
//  ("dsn: ...", "partition_interval: ...") and never holds the password.
pointstore_t *pointstore_new (const pointstore_config_t *config, omni_metrics_t *metrics,
                              char *error, size_t error_size);
void pointstore_destroy (pointstore_t **self_p);

//  Connects now and applies the schema. Returns 0 when ready, 1 when
//  PostgreSQL cannot be reached or refuses for now (no such database or
//  role, authentication: /health says which; writes retry later), -1 when
//  it answers but the schema cannot be applied (a start-up error).
int pointstore_connect (pointstore_t *self);

//  writer_store_fn: 0 once the batch's points are committed, -1 when
//  PostgreSQL is away or failing (the writer retries the batch),
//  WRITER_STORE_PERMANENT when it refuses this writer until an operator acts.
int pointstore_write (void *self, const omni_record_t *records, size_t count, uint8_t *conflicts,
                      char *error, size_t error_size);

//  health_fn: whether PostgreSQL accepts connections (a fresh connection
//  attempt, at most once a second) and the schema check found no permanent
//  problem (e.g. compressed chunks under TimescaleDB's apache license: the
//  text names it and what to do); safe from any thread.
bool pointstore_healthy (void *self, char *text, size_t size);

//  The conninfo for logs, password masked.
const char *pointstore_display (pointstore_t *self);

//  The schema's mode and features as log fields, e.g. "mode=native
//  partition_interval=month partitions=4"; "mode=unknown" before the first
//  connection.
void pointstore_describe (pointstore_t *self, char *text, size_t size);

void pointstore_test (bool verbose);

#endif
