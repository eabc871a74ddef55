/*  schema: relationald's PostgreSQL schema, owned by versioned migrations
    (relationald/migrations/NNN_name.sql, embedded at build time) that
    pg/migrate.h applies: one transaction under an advisory lock, so
    several relationalds may start at once, each version recorded in
    schema_migrations.                                                       */
#ifndef OMNI_RELATIONALD_SCHEMA_H
#define OMNI_RELATIONALD_SCHEMA_H

#include "pg/migrate.h"
#include "pg/pgconn.h"

#include <stdbool.h>

//  The embedded migrations in version order, ending with {0, NULL, NULL}
//  (generated from the .sql files by pg/embed_sql.sh).
extern const omni_migrate_step_t schema_migrations[];

//  The highest embedded version.
int schema_version (void);

//  Applies the migrations the database lacks. Returns 0 when the schema is
//  current (or newer: logged), else -1 with pgconn's error set.
int schema_migrate (omni_pgconn_t *conn);

void schema_test (bool verbose);

#endif
