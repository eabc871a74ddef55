/*  gather: reads one report's numbers from PostgreSQL into a model_t:
    relationald's tables and metricsd's points, for the sources whose name
    matches a LIKE pattern, within an optional time range.

    It reads tables under row-level security and relationald's views that
    are security_invoker (commits_canonical: reachable commits, canonical
    authors, as every view counts them), so every number is what the role
    of the connection may see. All sections read one snapshot (a REPEATABLE
    READ, READ ONLY transaction; with many rows the statements run on a
    small pool of connections of the same role that import that snapshot); a section whose query
   fails (no right to a table, a statement timeout) says why and the others are still made.    */
#ifndef OMNI_REPORT_GATHER_H
#define OMNI_REPORT_GATHER_H

#include "tools/omni-report/model.h"
#include "pg/pgconn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *pattern; //  LIKE pattern of source names ("%" = all)
    const char *project; //  what the report is called; NULL = the pattern
    const char *since;   //  timestamptz text, inclusive, or NULL
    const char *until;   //  timestamptz text, exclusive, or NULL
    int top;             //  rows of the top-N tables (contributors, files, tests)
    FILE *explain;       //  non-NULL: every query's plan (EXPLAIN ANALYZE) is written here
    //  Rows (the planner's estimate of points, commits, changed files and
    //  test results) from which the statements run on a pool of connections
    //  in the same snapshot: 0 = 100,000, negative = always
    int64_t pool_min_rows;
    //  Connections of that pool, the first included: 0 = 3, 1 = no pool
    int connections;
    //  Every figure from the rows themselves, not from relationald's totals
    //  nor metricsd's kept days (to compare them; slower)
    bool live;
} gather_options_t;

//  A connection for reports: times shown in UTC, every statement bounded
//  by `statement_timeout_ms` (0 = none), connecting bounded by
//  `connect_timeout_ms`. NULL with `error` saying which server and why.
omni_pgconn_t *gather_connect (const char *dsn, int64_t statement_timeout_ms,
                               int64_t connect_timeout_ms, char *error, size_t error_size);

//  The report, or NULL with `error` when the store could not be read at all
//  (connection lost); sections that failed alone say so in the model.
model_t *gather_report (omni_pgconn_t *conn, const gather_options_t *options, char *error,
                        size_t error_size);

//  The source names the role can see (relationald's sources and metricsd's
//  point sources), sorted, NULL-terminated (free with gather_names_free).
//  NULL with `error` on failure.
char **gather_projects (omni_pgconn_t *conn, char *error, size_t error_size);
void gather_names_free (char ***names_p);

//  `name` as a LIKE pattern that matches it alone (\ % _ escaped). Caller frees.
char *gather_like_literal (const char *name);

void gather_test (bool verbose);

#endif
