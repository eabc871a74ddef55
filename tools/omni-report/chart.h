/*  chart: draws a chart of the model with cairo, once, for every output:
    onto any cairo context (a PDF page) or into an SVG document (the HTML).
    Text is drawn as glyph outlines (cairo's SVG surface embeds them; the PDF
    surface embeds the font), so a chart needs no font from anywhere and a
    hostile label is only shapes.                                             */
#ifndef OMNI_REPORT_CHART_H
#define OMNI_REPORT_CHART_H

#include "tools/omni-report/model.h"

#include <cairo.h>
#include <stdbool.h>

//  The font every output uses (fontconfig resolves it; DejaVu Sans in the
//  build dependencies).
#define CHART_FONT "DejaVu Sans"

//  Draws `chart` with its numbers `data` in the rectangle (x, y, w, h) of
//  `cr`, its title on top. The context's state is restored after.
void chart_draw (cairo_t *cr, const model_chart_t *chart, const model_chart_data_t *data, double x,
                 double y, double w, double h);

//  The chart as an <svg> element for an HTML page (no XML prolog), w × h
//  units, scaling to the width of its container. Every id in it starts
//  with `prefix`, so that several charts can live in one page (cairo
//  numbers its glyph and clip ids from 1 in every document). Caller frees.
char *chart_svg (const model_chart_t *chart, const model_chart_data_t *data, double w, double h,
                 const char *prefix);

//  `text` cut to at most `max_bytes` bytes on a UTF-8 character boundary,
//  with "…" when cut. Caller frees.
char *chart_ellipsize (const char *text, size_t max_bytes);

//  The longest prefix of `text` that fits in `max_width` with the font of
//  `cr`, "…" ended when cut. Caller frees.
char *chart_fit (cairo_t *cr, const char *text, double max_width);

//  Lets cairo's font caches and fontconfig's configuration go, at exit:
//  they live as long as the process, and leak checkers count them.
void chart_shutdown (void);

void chart_test (bool verbose);

#endif
