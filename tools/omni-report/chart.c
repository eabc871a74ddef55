/*  chart: one drawing code for the SVG of the HTML and the pages of the PDF
    (see chart.h). Three kinds cover the report: bars over time (weeks),
    horizontal bars for named things (authors, languages, tests), lines for
    rates and percentiles. The y axis starts at zero and ends at a round
    number; labels that would collide are thinned, names cut to fit.        */
#include "tools/omni-report/chart.h"
#include "common/buf.h"
#include "common/util.h"

#include <assert.h>
#include <cairo-svg.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TITLE_SIZE 13.0
#define S_TEXT_SIZE  10.0

static const double s_palette[][3] = {{0.16, 0.44, 0.71}, {0.89, 0.42, 0.15}, {0.20, 0.60, 0.33},
                                      {0.75, 0.22, 0.27}, {0.50, 0.36, 0.70}, {0.55, 0.55, 0.55},
                                      {0.60, 0.50, 0.10}, {0.10, 0.65, 0.70}};
#define S_COLOURS (sizeof s_palette / sizeof s_palette[0])

static void
s_colour (cairo_t *cr, size_t series)
{
    const double *c = s_palette[series % S_COLOURS];
    cairo_set_source_rgb (cr, c[0], c[1], c[2]);
}

char *
chart_ellipsize (const char *text, size_t max_bytes)
{
    size_t len = strlen (text);
    if (len <= max_bytes)
        return strdup (text);
    size_t cut = omni_util_utf8_cut (text, len, max_bytes);
    char *out = malloc (cut + 4);
    assert (out);
    memcpy (out, text, cut);
    memcpy (out + cut, "\xE2\x80\xA6", 4); //  …
    return out;
}

static double
s_width (cairo_t *cr, const char *text)
{
    cairo_text_extents_t extents;
    cairo_text_extents (cr, text, &extents);
    return extents.x_advance;
}

char *
chart_fit (cairo_t *cr, const char *text, double max_width)
{
    size_t bytes = strlen (text);
    char *out = strdup (text);
    assert (out);
    while (bytes > 0 && s_width (cr, out) > max_width) {
        free (out);
        bytes = bytes > 8 ? bytes - bytes / 8 : bytes - 1;
        out = chart_ellipsize (text, bytes);
    }
    return out;
}

//  Compact axis numbers: 1.5k, 2M, 0.25.
static void
s_format (double value, char *out, size_t size)
{
    double magnitude = fabs (value);
    if (magnitude >= 1e9)
        snprintf (out, size, "%.3gG", value / 1e9);
    else if (magnitude >= 1e6)
        snprintf (out, size, "%.3gM", value / 1e6);
    else if (magnitude >= 1e4)
        snprintf (out, size, "%.3gk", value / 1e3);
    else if (value == floor (value))
        snprintf (out, size, "%.0f", value);
    else
        snprintf (out, size, "%.3g", value);
}

//  A round step for about `ticks` grid lines up to `max`.
static double
s_step (double max, int ticks)
{
    double raw = max / ticks;
    double power = pow (10, floor (log10 (raw)));
    double fraction = raw / power;
    double nice = fraction <= 1     ? 1
                  : fraction <= 2   ? 2
                  : fraction <= 2.5 ? 2.5
                  : fraction <= 5   ? 5
                                    : 10;
    return nice * power;
}

static void
s_text (cairo_t *cr, const char *text, double x, double y, double align)
{
    cairo_move_to (cr, x - align * s_width (cr, text), y);
    cairo_show_text (cr, text);
}

static void
s_legend (cairo_t *cr, const model_chart_data_t *data, double right, double y)
{
    if (data->nseries < 2)
        return;
    double x = right;
    for (size_t s = data->nseries; s-- > 0;) {
        char *name = chart_fit (cr, data->names[s], 140);
        x -= s_width (cr, name) + 6;
        cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
        s_text (cr, name, x, y, 0);
        x -= 14;
        s_colour (cr, s);
        cairo_rectangle (cr, x, y - 9, 10, 10);
        cairo_fill (cr);
        x -= 10;
        free (name);
    }
}

static void
s_hbars (cairo_t *cr, const model_chart_data_t *data, double x, double y, double w, double h,
         double max)
{
    double label_width = fmin (w * 0.35, 200);
    double plot_x = x + label_width + 8, plot_w = w - label_width - 8 - 48;
    //  Rows stay readable: what does not fit is left to the table.
    double row = fmax (fmin (h / (double) data->npoints, 22), 12);
    size_t shown = (size_t) fmin ((double) data->npoints, floor (h / row));
    if (shown < data->npoints) {
        shown = shown > 1 ? shown - 1 : shown;
        char note[96];
        snprintf (note, sizeof note, "first %zu of %zu (all in the table)", shown, data->npoints);
        cairo_set_source_rgb (cr, 0.4, 0.4, 0.4);
        s_text (cr, note, x + w, y + h - 2, 1);
    }
    for (size_t i = 0; i < shown; i++) {
        double value = data->values[i];
        double top = y + row * (double) i;
        char *label = chart_fit (cr, data->labels[i], label_width);
        cairo_set_source_rgb (cr, 0.15, 0.15, 0.15);
        s_text (cr, label, plot_x - 6, top + row * 0.5 + 3.5, 1);
        free (label);
        if (isnan (value))
            continue;
        s_colour (cr, 0);
        cairo_rectangle (cr, plot_x, top + row * 0.15, fmax (plot_w * value / max, 1), row * 0.7);
        cairo_fill (cr);
        char text[32];
        s_format (value, text, sizeof text);
        cairo_set_source_rgb (cr, 0.3, 0.3, 0.3);
        s_text (cr, text, plot_x + plot_w * value / max + 4, top + row * 0.5 + 3.5, 0);
    }
}

//  Vertical bars or lines over the labels, with a y axis.
static void
s_plot (cairo_t *cr, const model_chart_t *chart, const model_chart_data_t *data, double x, double y,
        double w, double h, double max)
{
    double axis_width = 44, label_height = 18;
    double plot_x = x + axis_width, plot_w = w - axis_width - 8;
    double plot_y = y, plot_h = h - label_height;
    int ticks = 4;
    double step = s_step (max, ticks);
    double top = step * ceil (max / step);
    if (chart->unit && strcmp (chart->unit, "rate") == 0)
        top = 1, step = 0.25;
    //  Grid and y labels.
    cairo_set_line_width (cr, 0.5);
    for (double v = 0; v <= top + step / 2; v += step) {
        double gy = plot_y + plot_h - plot_h * v / top;
        cairo_set_source_rgb (cr, 0.85, 0.85, 0.85);
        cairo_move_to (cr, plot_x, gy);
        cairo_line_to (cr, plot_x + plot_w, gy);
        cairo_stroke (cr);
        char text[32];
        s_format (v, text, sizeof text);
        cairo_set_source_rgb (cr, 0.35, 0.35, 0.35);
        s_text (cr, text, plot_x - 4, gy + 3.5, 1);
    }
    size_t n = data->npoints;
    double slot = plot_w / (double) n;
    //  x labels: as many as fit, evenly spaced, the first always.
    double widest = 0;
    for (size_t i = 0; i < n; i++)
        widest = fmax (widest, s_width (cr, data->labels[i]));
    size_t every = (size_t) ceil ((widest + 8) / slot);
    every = every ? every : 1;
    cairo_set_source_rgb (cr, 0.35, 0.35, 0.35);
    for (size_t i = 0; i < n; i += every)
        s_text (cr, data->labels[i], plot_x + slot * ((double) i + 0.5), plot_y + plot_h + 13, 0.5);
    if (chart->kind == MODEL_BARS) {
        double group = slot * 0.8, bar = group / (double) data->nseries;
        for (size_t s = 0; s < data->nseries; s++) {
            s_colour (cr, s);
            for (size_t i = 0; i < n; i++) {
                double value = data->values[s * n + i];
                if (isnan (value) || value <= 0)
                    continue;
                double bh = plot_h * value / top;
                cairo_rectangle (cr, plot_x + slot * (double) i + slot * 0.1 + bar * (double) s,
                                 plot_y + plot_h - bh, fmax (bar - (bar > 3 ? 1 : 0), 0.8), bh);
            }
            cairo_fill (cr);
        }
    } else {
        cairo_set_line_width (cr, 2);
        cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
        for (size_t s = 0; s < data->nseries; s++) {
            s_colour (cr, s);
            bool drawing = false;
            for (size_t i = 0; i < n; i++) {
                double value = data->values[s * n + i];
                if (isnan (value)) {
                    drawing = false; //  a gap: no line across missing weeks
                    continue;
                }
                double px = plot_x + slot * ((double) i + 0.5);
                double py = plot_y + plot_h - plot_h * value / top;
                if (drawing)
                    cairo_line_to (cr, px, py);
                else
                    cairo_move_to (cr, px, py);
                drawing = true;
            }
            cairo_stroke (cr);
            //  Points, so that a single value (one week) is still seen.
            for (size_t i = 0; i < n && n <= 120; i++) {
                double value = data->values[s * n + i];
                if (isnan (value))
                    continue;
                cairo_arc (cr, plot_x + slot * ((double) i + 0.5),
                           plot_y + plot_h - plot_h * value / top, 2.5, 0, 2 * M_PI);
                cairo_fill (cr);
            }
        }
    }
    cairo_set_source_rgb (cr, 0.4, 0.4, 0.4);
    cairo_set_line_width (cr, 1);
    cairo_move_to (cr, plot_x, plot_y + plot_h);
    cairo_line_to (cr, plot_x + plot_w, plot_y + plot_h);
    cairo_stroke (cr);
}

void
chart_draw (cairo_t *cr, const model_chart_t *chart, const model_chart_data_t *data, double x,
            double y, double w, double h)
{
    cairo_save (cr);
    cairo_rectangle (cr, x, y, w, h);
    cairo_clip (cr);
    cairo_set_source_rgb (cr, 1, 1, 1);
    cairo_paint (cr);
    cairo_select_font_face (cr, CHART_FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size (cr, S_TITLE_SIZE);
    cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
    char *title = chart_fit (cr, chart->title, w - 8);
    s_text (cr, title, x + 4, y + 16, 0);
    free (title);
    cairo_select_font_face (cr, CHART_FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size (cr, S_TEXT_SIZE);
    s_legend (cr, data, x + w - 4, y + 34);
    double top = y + (data->nseries > 1 ? 44 : 28);
    double max = 0;
    bool any = false;
    for (size_t i = 0; i < data->nseries * data->npoints; i++)
        if (!isnan (data->values[i])) {
            max = fmax (max, data->values[i]);
            any = true;
        }
    if (!any || data->npoints == 0) {
        cairo_set_source_rgb (cr, 0.4, 0.4, 0.4);
        s_text (cr, "no values", x + w / 2, top + (h - top + y) / 2, 0.5);
    } else {
        max = max > 0 ? max : 1;
        if (chart->kind == MODEL_HBARS)
            s_hbars (cr, data, x + 4, top, w - 8, y + h - top - 4, max);
        else
            s_plot (cr, chart, data, x + 4, top, w - 8, y + h - top - 4, max);
    }
    cairo_restore (cr);
}

static cairo_status_t
s_write (void *closure, const unsigned char *data, unsigned int length)
{
    omni_buf_append (closure, (const char *) data, length);
    return CAIRO_STATUS_SUCCESS;
}

char *
chart_svg (const model_chart_t *chart, const model_chart_data_t *data, double w, double h,
           const char *prefix)
{
    omni_buf_t raw = {0};
    cairo_surface_t *surface = cairo_svg_surface_create_for_stream (s_write, &raw, w, h);
    cairo_svg_surface_restrict_to_version (surface, CAIRO_SVG_VERSION_1_1);
    cairo_t *cr = cairo_create (surface);
    chart_draw (cr, chart, data, 0, 0, w, h);
    cairo_destroy (cr);
    cairo_surface_finish (surface);
    cairo_surface_destroy (surface);
    assert (raw.data);
    //  cairo's output, made fit for inlining: from <svg on, the root's
    //  fixed size replaced by the container's width (the viewBox keeps the
    //  proportions), and the ids prefixed.
    omni_buf_t out = {0};
    const char *p = strstr (raw.data, "<svg");
    assert (p);
    const char *root_end = strchr (p, '>');
    char root[160];
    snprintf (root, sizeof root,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" "
              "xmlns:xlink=\"http://www.w3.org/1999/xlink\" viewBox=\"0 0 %g %g\" "
              "width=\"100%%\" role=\"img\"",
              w, h);
    omni_buf_append_str (&out, root);
    p = root_end;
    size_t prefix_len = strlen (prefix);
    while (*p) {
        const char *markers[] = {"id=\"", "href=\"#", "url(#"};
        const char *next = NULL;
        size_t marker_len = 0;
        for (size_t i = 0; i < 3; i++) {
            const char *hit = strstr (p, markers[i]);
            if (hit && (!next || hit < next)) {
                next = hit;
                marker_len = strlen (markers[i]);
            }
        }
        if (!next) {
            omni_buf_append_str (&out, p);
            break;
        }
        omni_buf_append (&out, p, (size_t) (next - p) + marker_len);
        omni_buf_append (&out, prefix, prefix_len);
        p = next + marker_len;
    }
    omni_buf_release (&raw);
    return out.data;
}

void
chart_shutdown (void)
{
    cairo_debug_reset_static_data ();
    FcFini ();
}

void
chart_test (bool verbose)
{
    (void) verbose;
    char *cut = chart_ellipsize ("caf\xC3\xA9!", 4); //  inside é: cut before it
    assert (strcmp (cut, "caf\xE2\x80\xA6") == 0);
    free (cut);
    cut = chart_ellipsize ("short", 10);
    assert (strcmp (cut, "short") == 0);
    free (cut);
    char text[32];
    s_format (1500000, text, sizeof text);
    assert (strcmp (text, "1.5M") == 0);
    s_format (0.25, text, sizeof text);
    assert (strcmp (text, "0.25") == 0);
    assert (s_step (97, 4) == 25 && s_step (1, 4) == 0.25);

    model_t *model = model_new ("p", "%", NULL, NULL);
    model_section_t *section = model_section_add (model, "s", "S");
    model_table_t *table = model_table_add (section, "t", "T");
    model_column_add (table, "week", "Week", MODEL_TIME);
    model_column_add (table, "n", "N", MODEL_NUM);
    model_column_add (table, "m", "M", MODEL_NUM);
    const char *rows[][3] = {{"2024-01-01", "3", "1"},
                             {"2024-01-08", "0", NULL},
                             {"<script>alert(1)</script>", "5", "2"}};
    for (size_t i = 0; i < 3; i++)
        model_row_add (table, rows[i]);
    const char *values[] = {"n", "m", NULL};
    for (model_chart_kind_t kind = MODEL_BARS; kind <= MODEL_LINES; kind++) {
        model_chart_t *chart =
            model_chart_add (section, "c", "Title \"quoted\" & <b>", kind, "t", "week", NULL,
                             values, kind == MODEL_LINES ? "rate" : NULL);
        model_chart_data_t *data = model_chart_data (section, chart);
        char *svg = chart_svg (chart, data, 600, 260, "c7-");
        //  Text is outlines: no label, title or tag of the data in the markup.
        assert (strncmp (svg, "<svg ", 5) == 0 && !strstr (svg, "<?xml"));
        assert (!strstr (svg, "script") && !strstr (svg, "quoted") && !strstr (svg, "<text"));
        assert (strstr (svg, "viewBox=\"0 0 600 260\""));
        //  Every id and reference carries the prefix.
        for (const char *p = svg; (p = strstr (p, "id=\"")); p += 4)
            assert (strncmp (p + 4, "c7-", 3) == 0);
        for (const char *p = svg; (p = strstr (p, "href=\"#")); p += 7)
            assert (strncmp (p + 7, "c7-", 3) == 0);
        assert (strstr (svg, "<path") && strstr (svg, "</svg>"));
        free (svg);
        //  The same drawing on a PDF-like surface (an image here) paints
        //  something other than white inside the plot.
        cairo_surface_t *image = cairo_image_surface_create (CAIRO_FORMAT_RGB24, 600, 260);
        cairo_t *cr = cairo_create (image);
        chart_draw (cr, chart, data, 0, 0, 600, 260);
        cairo_destroy (cr);
        cairo_surface_flush (image);
        unsigned char *pixels = cairo_image_surface_get_data (image);
        int stride = cairo_image_surface_get_stride (image);
        size_t coloured = 0;
        for (int y = 60; y < 240; y++)
            for (int x = 60; x < 590; x++) {
                unsigned char *px = pixels + y * stride + x * 4;
                coloured += px[0] != px[1] || px[1] != px[2]; //  not grey: a series colour
            }
        assert (coloured > 100);
        cairo_surface_destroy (image);
        model_chart_data_destroy (&data);
    }
    model_destroy (&model);
    chart_shutdown ();
}
