/*  shared_sql: SQL that more than one component applies (pg/sql/),
    embedded at build time (pg/embed_sql.sh), each a NUL-terminated string.
    relationald's migrations include the same files with psql's \ir, which
    the same generator resolves, so each file is written once.              */
#ifndef OMNI_SHARED_SQL_H
#define OMNI_SHARED_SQL_H

//  pg/sql/access.sql: omni_reader, omni_viewer, omni_access_grants and
//  omni_visible_patterns (), idempotent (docs/operations.md).
extern const char omni_shared_sql_access[];

#endif
