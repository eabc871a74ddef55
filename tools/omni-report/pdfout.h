/*  pdfout: a report as a PDF (cairo's PDF surface, fonts embedded as
    subsets): A4 pages, each section from a new page, the same charts as the
    HTML (chart_draw), tables that go on over as many pages as they need,
    their header repeated on each.                                            */
#ifndef OMNI_REPORT_PDFOUT_H
#define OMNI_REPORT_PDFOUT_H

#include "tools/omni-report/model.h"

#include <stdbool.h>
#include <stddef.h>

//  The page layout, in points (the tests count pages with it): a table
//  row is PDFOUT_ROW high, between PDFOUT_TOP and PDFOUT_BOTTOM.
#define PDFOUT_WIDTH  595.28
#define PDFOUT_HEIGHT 841.89
#define PDFOUT_MARGIN 40.0
#define PDFOUT_TOP    60.0
#define PDFOUT_BOTTOM (PDFOUT_HEIGHT - 50.0)
#define PDFOUT_ROW    13.0

//  Writes the PDF of `model` to `path`. Returns the number of pages, or
//  -1 with `error` filled.
int pdfout_render (model_t *model, const char *path, char *error, size_t error_size);

void pdfout_test (bool verbose);

#endif
