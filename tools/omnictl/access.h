/*  access: omnictl's side of per-project access in PostgreSQL (the grants
    table, roles and policies that relationald's and metricsd's migrations
    make: pg/sql/access.sql, docs/operations.md).

    omnictl grant ROLE PATTERN    ROLE may read the sources LIKE PATTERN
    omnictl revoke ROLE PATTERN   that grant removed
    omnictl grants                every grant of the database

    A grant is a row of omni_access_grants plus ROLE's membership in
    omni_viewer, which gives SELECT on the tables and views (rows restricted
    by the policies). A revoke removes the row only: membership is
    cluster-wide and another database may still grant ROLE something, and
    without a grant here ROLE sees no row here.                              */
#ifndef OMNICTL_ACCESS_H
#define OMNICTL_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct _access_t access_t;

//  Whether `pattern` is a usable LIKE pattern on source names: not empty,
//  at most 1024 bytes, no control character, not ending with a lone
//  backslash (LIKE's escape). False with `error` filled (and a hint).
bool access_valid_pattern (const char *pattern, char *error, size_t error_size);
//  Whether `role` may be given grants: a name PostgreSQL can hold (1-63
//  bytes), and not omni_viewer or omni_reader themselves.
bool access_valid_role (const char *role, char *error, size_t error_size);

//  Connects to `dsn` (conninfo or URI; empty = the PG* environment) and
//  checks that the database has the access tables (migrated by relationald
//  or metricsd). NULL with `error` filled (the cause and a hint) if not.
access_t *access_new (const char *dsn, char *error, size_t error_size);
void access_destroy (access_t **self_p);

//  Each returns 0 with `out` filled (what was done, for the operator), or
//  -1 with `out` filled with the error (the cause and a hint).
int access_grant (access_t *self, const char *role, const char *pattern, char *out,
                  size_t out_size);
int access_revoke (access_t *self, const char *role, const char *pattern, char *out,
                   size_t out_size);
//  The grants as a table (caller frees), NULL with `error` filled.
char *access_list (access_t *self, char *error, size_t error_size);

void access_test (bool verbose);

#endif
