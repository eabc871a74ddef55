/*  jsonout: a report as JSON, every number behind every chart and table.
    Numbers are written as PostgreSQL wrote them (exact), strings escaped by
    proto's omni_mpjson_string, the one JSON string writer of the project.        */
#ifndef OMNI_REPORT_JSONOUT_H
#define OMNI_REPORT_JSONOUT_H

#include "tools/omni-report/model.h"
#include "proto/mpjson.h"

#include <stdbool.h>

//  Appends the JSON document of `model` to `buf`:
//  {"project", "pattern", "since", "until", "generated",
//   "sections": {ID: {"title", "empty", "figures": {ID: value},
//                     "tables": {ID: {"title", "columns": [{id, title, type}],
//                                     "rows": [{COLUMN: value}]}},
//                     "charts": {ID: {"title", "kind", "table", "label",
//                                     "series", "values": [COLUMN], "unit"}}}}}
void jsonout_render (model_t *model, omni_buf_t *buf);

//  Whether `text` is a JSON number as it stands (PostgreSQL also writes
//  NaN and Infinity, which JSON lacks: those become strings).
bool jsonout_is_number (const char *text);

void jsonout_test (bool verbose);

#endif
