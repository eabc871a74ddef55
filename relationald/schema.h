/*  schema: relationald's PostgreSQL schema, owned by versioned migrations
    (relationald/migrations/NNN_name.sql, embedded at build time). Applying
    them is safe when several relationalds start at once: one transaction
    under an advisory lock, each version recorded in schema_migrations.      */
#ifndef OMNI_RELATIONALD_SCHEMA_H
#define OMNI_RELATIONALD_SCHEMA_H

#include "pgconn.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    int version;
    const char *name;
    const char *sql;
    size_t size;
} schema_migration_t;

//  The embedded migrations in version order, ending with {0, NULL}
//  (generated from the .sql files by gen_migrations.sh).
extern const schema_migration_t schema_migrations[];

//  The highest embedded version.
int schema_version (void);

//  Applies the migrations the database lacks. Returns 0 when the schema is
//  current (or newer: logged), else -1 with pgconn's error set.
int schema_migrate (pgconn_t *conn);

void schema_test (bool verbose);

#endif
