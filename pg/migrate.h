/*  migrate: versioned schema migrations for any daemon that owns tables in
    PostgreSQL (relationald's schema, metricsd's tsschema).

    Everything happens in one transaction that first takes a transaction-
    level advisory lock (the component's own key), so daemons starting at the
    same moment apply each migration once: the second waits, then finds the
    versions recorded. The lock goes with the commit or rollback, even if the
    process dies. Each applied version is recorded with its SHA-256 in the
    component's own table, so two components can share a database; an
    applied migration whose text changed since is reported, not re-applied.

    Two hooks give a component what a static list cannot:
    - `plan` runs first under the lock and returns the steps to apply, so a
      component can choose variants (metricsd: TimescaleDB or native
      partitions, by what the server offers and what it chose before);
    - `after` runs once the steps are applied, in the same transaction, for
      work redone at every start (views, policies, settings).                 */
#ifndef OMNI_MIGRATE_H
#define OMNI_MIGRATE_H

#include "pg/pgconn.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    int version;      //  > 0, increasing
    const char *name; //  e.g. "points"
    const char *sql;  //  one or more statements, no BEGIN/COMMIT, NUL-terminated
} omni_migrate_step_t;

typedef struct {
    const char *component; //  for logs, e.g. "metricsd"
    const char *table;     //  where versions are recorded, e.g. "metricsd_migrations"
    long long lock_key;    //  pg_advisory_xact_lock key, unique per component
    //  Returns the steps (ending with {0, NULL, NULL}) or NULL after an
    //  error (pgconn's error set, or logged).
    const omni_migrate_step_t *(*plan) (omni_pgconn_t *conn, void *arg);
    //  Optional; non-zero rolls everything back.
    int (*after) (omni_pgconn_t *conn, void *arg);
    void *arg;
} omni_migrate_config_t;

//  Applies the steps the database lacks. Returns 0 when the schema is
//  current (or newer: logged), else -1 (nothing applied, pgconn's error
//  set). `applied` (may be NULL) receives the number of steps applied.
int omni_migrate_run (omni_pgconn_t *conn, const omni_migrate_config_t *config, int *applied);

//  The highest version in `steps`.
int omni_migrate_version (const omni_migrate_step_t *steps);

void omni_migrate_test (bool verbose);

#endif
