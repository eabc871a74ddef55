/*  analysis: a report's figures as records of kind analysis.summary, one per
    source (the summary section's "sources" table), sent through ingestd so
    that every store keeps them: relationald's analysis_summaries (trends of
    the figures, under the same row-level security as the data), documentd's
    collection, the archive.

    The record's source is the source the figures are of, its natural key
    the report's day (UTC) and period (since, until; absent = open), so a
    second report of the same day and period replaces the first (a mutable
    kind: the newer record wins in every store). Per-source figures do not
    depend on the pattern or the role that made the report (a role sees all
    of a source or none of it), so two reports covering one source agree.    */
#ifndef OMNI_REPORT_ANALYSIS_H
#define OMNI_REPORT_ANALYSIS_H

#include "proto/curve.h"
#include "tools/omni-report/model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *endpoint;             //  ingestd's intake
    const omni_curve_client_t *curve; //  NULL = no CURVE
    int64_t give_up_ms;               //  fail when ingestd acknowledges nothing this long
} analysis_config_t;

//  Receives each encoded record; returns 0, or -1 to stop.
typedef int (analysis_fn) (void *arg, const void *data, size_t size);

//  Encodes the report's per-source figures, made at `ts` (ns since epoch,
//  which also gives the day), and passes each record to `fn`. Returns the
//  number of records, or -1 with `error`.
int analysis_records (model_t *model, int64_t ts, analysis_fn *fn, void *arg, char *error,
                      size_t error_size);

//  Sends them to ingestd and waits for its acknowledgement. Returns the
//  number of records ingestd accepted, or -1 with `error` (unreachable,
//  or records refused: an ingestd older than the kind).
int analysis_send (model_t *model, int64_t ts, const analysis_config_t *config, char *error,
                   size_t error_size);

void analysis_test (bool verbose);

#endif
