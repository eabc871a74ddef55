/*  tsschema: metricsd's schema in PostgreSQL, in one of two modes.

    - timescaledb: `points` is a hypertable (create_hypertable); under the
      timescale license, daily and weekly continuous aggregates answer the
      rollup views and chunks older than compress_after are compressed;
      under the apache license, ordinary views.
    - native: `points` is range-partitioned by time; partitions are made by
      metricsd_ensure_partition (see pointstore). Ordinary views.

    The mode is chosen once, when the schema is first created: timescaledb
    when the extension is installed or can be created (packaged, preloaded
    through shared_preload_libraries, and this role may create it: checked
    in the catalog first, because CREATE EXTENSION without the preload ends
    the session with FATAL), else native (or as
    forced by the `mode` setting), and kept in metricsd_settings: a later
    start never converts. Migrations go through pg/migrate.h (advisory lock,
    metricsd_migrations); the views are re-applied when their text changed. */
#ifndef OMNI_METRICSD_TSSCHEMA_H
#define OMNI_METRICSD_TSSCHEMA_H

#include "pg/pgconn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { TSSCHEMA_AUTO = 0, TSSCHEMA_NATIVE, TSSCHEMA_TIMESCALEDB } tsschema_mode_t;

typedef struct {
    tsschema_mode_t want;           //  AUTO: timescaledb when available
    const char *partition_interval; //  day | week | month | year
    int64_t compress_after_ms;      //  timescale license only; 0 = no compression
    //  An earlier CREATE EXTENSION timescaledb ended the session (the
    //  backend died, e.g. FATAL "must be preloaded"): decide without trying
    //  again. Set by the caller from tsschema_state_t.create_ended_session.
    bool skip_create;
} tsschema_config_t;

typedef struct {
    tsschema_mode_t mode; //  what the database uses
    char license[16];     //  timescaledb.license ("" in native mode)
    char version[32];     //  the timescaledb extension version
    bool rollups;         //  continuous aggregates answer the rollup views
    bool compression;     //  a compression policy is set
    int applied;          //  migrations applied by this call
    //  CREATE EXTENSION timescaledb ended the session in this call: the
    //  caller reconnects with config.skip_create set (see pointstore)
    bool create_ended_session;
    //  A problem metricsd cannot fix by retrying, found while the schema is
    //  usable (e.g. compressed chunks under the apache license): logged at
    //  error level, and /health fails naming it. "" when none.
    char problem[512];
} tsschema_state_t;

//  Parses "auto" | "native" | "timescaledb"; -1 on anything else.
int tsschema_parse_mode (const char *text, tsschema_mode_t *mode);
const char *tsschema_mode_name (tsschema_mode_t mode);
//  Whether `unit` is a valid partition_interval.
bool tsschema_valid_interval (const char *unit);

//  Creates or updates the schema. Returns 0 (state filled) or -1 (pgconn's
//  error set or the reason logged), e.g. when the database was created in
//  another mode than the one forced, or mode=timescaledb and the server
//  cannot give TimescaleDB (not packaged, not preloaded, not creatable):
//  those are permanent (omni_pgconn_last_status is PGCONN_FAILED), a lost
//  connection is PGCONN_TRANSIENT.
int tsschema_migrate (omni_pgconn_t *conn, const tsschema_config_t *config,
                      tsschema_state_t *state);

void tsschema_test (bool verbose);

#endif
