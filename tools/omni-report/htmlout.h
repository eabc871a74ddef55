/*  htmlout: a report as one self-contained HTML page: inline CSS and SVG
    charts (chart.h), no script, nothing fetched (a Content-Security-Policy
    of default-src 'none' says so to the browser too), every string of the
    data escaped and isolated (<bdi>) so right-to-left names stay in their
    cell. Readable on a laptop and a phone: the layout is one column that
    scales, wide tables scroll inside their own box.                          */
#ifndef OMNI_REPORT_HTMLOUT_H
#define OMNI_REPORT_HTMLOUT_H

#include "tools/omni-report/model.h"
#include "proto/mpjson.h"

#include <stdbool.h>

//  Appends the page of `model` to `buf`. `index_href` and `json_href`
//  (the dashboard's links; NULL for a file) are trusted URLs, escaped too.
void htmlout_render (model_t *model, omni_buf_t *buf, const char *index_href,
                     const char *json_href);

//  Appends `text` with & < > " ' as character references.
void htmlout_escape (omni_buf_t *buf, const char *text);

//  The common head of every page (title escaped), open <body>.
void htmlout_begin (omni_buf_t *buf, const char *title);
void htmlout_end (omni_buf_t *buf);

void htmlout_test (bool verbose);

#endif
