/*  pdfout: the report as a paginated PDF (see pdfout.h). A cursor walks
    down the page; anything that does not fit what is left starts a new
    page, so a long table goes on over pages with its header repeated.       */
#include "tools/omni-report/pdfout.h"
#include "tools/omni-report/chart.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <cairo-pdf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_CONTENT_WIDTH (PDFOUT_WIDTH - 2 * PDFOUT_MARGIN)
#define S_CHART_HEIGHT  220.0
#define S_TABLE_FONT    7.5

typedef struct {
    cairo_t *cr;
    model_t *model;
    int page;
    double y;
    const char *section; //  title, repeated "(continued)" on the next pages
} s_pdf_t;

static void
s_font (cairo_t *cr, double size, bool bold)
{
    cairo_select_font_face (cr, CHART_FONT, CAIRO_FONT_SLANT_NORMAL,
                            bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size (cr, size);
}

static double
s_width (cairo_t *cr, const char *text)
{
    cairo_text_extents_t extents;
    cairo_text_extents (cr, text, &extents);
    return extents.x_advance;
}

static void
s_show (cairo_t *cr, const char *text, double x, double y, double max_width)
{
    char *fit = chart_fit (cr, text, max_width);
    cairo_move_to (cr, x, y);
    cairo_show_text (cr, fit);
    free (fit);
}

//  A new page with its running header and number.
static void
s_page (s_pdf_t *self, bool continued)
{
    if (self->page > 0)
        cairo_show_page (self->cr);
    self->page++;
    cairo_t *cr = self->cr;
    s_font (cr, 8, false);
    cairo_set_source_rgb (cr, 0.45, 0.45, 0.45);
    char head[64];
    snprintf (head, sizeof head, "page %d", self->page);
    s_show (cr, "OmniAudit report", PDFOUT_MARGIN, 30, 100);
    s_show (cr, model_project (self->model), PDFOUT_MARGIN + 90, 30, S_CONTENT_WIDTH - 160);
    cairo_move_to (cr, PDFOUT_WIDTH - PDFOUT_MARGIN - s_width (cr, head), 30);
    cairo_show_text (cr, head);
    self->y = PDFOUT_TOP;
    if (continued && self->section) {
        s_font (cr, 12, true);
        cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
        char title[300];
        snprintf (title, sizeof title, "%s (continued)", self->section);
        s_show (cr, title, PDFOUT_MARGIN, self->y + 12, S_CONTENT_WIDTH);
        self->y += 24;
    }
}

static void
s_need (s_pdf_t *self, double height)
{
    if (self->y + height > PDFOUT_BOTTOM)
        s_page (self, true);
}

//  The background of a table row, in colour r, g, b.
static void
s_band (s_pdf_t *self, double r, double g, double b)
{
    cairo_set_source_rgb (self->cr, r, g, b);
    cairo_rectangle (self->cr, PDFOUT_MARGIN, self->y, S_CONTENT_WIDTH, PDFOUT_ROW);
    cairo_fill (self->cr);
}

static void
s_table_header (s_pdf_t *self, model_table_t *table, const double *widths)
{
    cairo_t *cr = self->cr;
    s_band (self, 0.92, 0.93, 0.96);
    s_font (cr, S_TABLE_FONT, true);
    cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
    double x = PDFOUT_MARGIN;
    for (size_t c = 0; c < table->ncols; c++) {
        s_show (cr, table->cols[c].title, x + 2, self->y + 9.5, widths[c] - 4);
        x += widths[c];
    }
    self->y += PDFOUT_ROW;
}

//  A cell as printed: times to the minute (the JSON keeps them whole), so
//  that a table of eight columns fits the width of a page.
static const char *
s_display (model_table_t *table, size_t row, size_t col, char *scratch, size_t size)
{
    const char *cell = model_cell (table, row, col);
    if (!cell)
        return "\xE2\x80\x93";
    if (table->cols[col].type == MODEL_TIME && strlen (cell) == 22 &&
        strcmp (cell + 19, "+00") == 0) {
        snprintf (scratch, size, "%.16s", cell);
        return scratch;
    }
    return cell;
}

static void
s_table (s_pdf_t *self, model_table_t *table)
{
    char scratch[32];
    cairo_t *cr = self->cr;
    //  Column widths from the widest text, scaled to the page.
    double *widths = calloc (table->ncols, sizeof (double));
    assert (widths);
    double total = 0;
    for (size_t c = 0; c < table->ncols; c++) {
        s_font (cr, S_TABLE_FONT, true);
        double w = s_width (cr, table->cols[c].title);
        s_font (cr, S_TABLE_FONT, false);
        for (size_t r = 0; r < table->nrows && r < 500; r++)
            w = fmax (w, s_width (cr, s_display (table, r, c, scratch, sizeof scratch)));
        widths[c] = fmin (w + 8, 200);
        total += widths[c];
    }
    //  Spare width goes to every column; a lack of it is taken from text
    //  columns only (names, paths), which can be cut: numbers cannot.
    double fixed = 0;
    for (size_t c = 0; c < table->ncols; c++)
        fixed += table->cols[c].type == MODEL_TEXT ? 0 : widths[c];
    for (size_t c = 0; c < table->ncols; c++)
        if (total <= S_CONTENT_WIDTH || fixed >= S_CONTENT_WIDTH)
            widths[c] *= S_CONTENT_WIDTH / total;
        else if (table->cols[c].type == MODEL_TEXT)
            widths[c] *= (S_CONTENT_WIDTH - fixed) / (total - fixed);

    s_need (self, 16 + 2 * PDFOUT_ROW);
    s_font (cr, 10, true);
    cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
    s_show (cr, table->title, PDFOUT_MARGIN, self->y + 11, S_CONTENT_WIDTH);
    self->y += 16;
    s_table_header (self, table, widths);
    if (table->nrows == 0) {
        s_font (cr, S_TABLE_FONT, false);
        s_show (cr, "none", PDFOUT_MARGIN + 2, self->y + 9.5, 100);
        self->y += PDFOUT_ROW;
    }
    for (size_t r = 0; r < table->nrows; r++) {
        if (self->y + PDFOUT_ROW > PDFOUT_BOTTOM) {
            s_page (self, true);
            s_table_header (self, table, widths);
        }
        if (r % 2)
            s_band (self, 0.97, 0.97, 0.98);
        s_font (cr, S_TABLE_FONT, false);
        cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
        double x = PDFOUT_MARGIN;
        for (size_t c = 0; c < table->ncols; c++) {
            const char *cell = s_display (table, r, c, scratch, sizeof scratch);
            if (table->cols[c].type == MODEL_NUM) {
                char *fit = chart_fit (cr, cell, widths[c] - 4);
                cairo_move_to (cr, x + widths[c] - 2 - s_width (cr, fit), self->y + 9.5);
                cairo_show_text (cr, fit);
                free (fit);
            } else
                s_show (cr, cell, x + 2, self->y + 9.5, widths[c] - 4);
            x += widths[c];
        }
        self->y += PDFOUT_ROW;
    }
    self->y += 10;
    free (widths);
}

static void
s_section (s_pdf_t *self, model_section_t *section)
{
    cairo_t *cr = self->cr;
    self->section = section->title;
    s_page (self, false);
    s_font (cr, 16, true);
    cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
    s_show (cr, section->title, PDFOUT_MARGIN, self->y + 16, S_CONTENT_WIDTH);
    self->y += 28;
    //  Figures in two columns: "Title  value".
    s_font (cr, 10, false);
    for (size_t f = 0; f < section->nfigures; f++) {
        const model_figure_t *figure = &section->figures[f];
        double x = PDFOUT_MARGIN + (f % 2 ? S_CONTENT_WIDTH / 2 : 0);
        cairo_set_source_rgb (cr, 0.35, 0.35, 0.35);
        s_show (cr, figure->title, x, self->y + 11, 150);
        cairo_set_source_rgb (cr, 0.05, 0.05, 0.05);
        s_font (cr, 10, true);
        s_show (cr, figure->value ? figure->value : "\xE2\x80\x93", x + 110, self->y + 11,
                S_CONTENT_WIDTH / 2 - 115);
        s_font (cr, 10, false);
        if (f % 2 || f + 1 == section->nfigures)
            self->y += 16;
    }
    if (section->nfigures)
        self->y += 6;
    if (section->empty) {
        cairo_select_font_face (cr, CHART_FONT, CAIRO_FONT_SLANT_ITALIC, CAIRO_FONT_WEIGHT_NORMAL);
        cairo_set_source_rgb (cr, 0.4, 0.4, 0.4);
        s_show (cr, section->empty, PDFOUT_MARGIN, self->y + 11, S_CONTENT_WIDTH);
        self->y += 20;
    }
    for (size_t c = 0; c < section->ncharts; c++) {
        model_chart_data_t *data = model_chart_data (section, section->charts[c]);
        if (!data)
            continue;
        s_need (self, S_CHART_HEIGHT);
        chart_draw (cr, section->charts[c], data, PDFOUT_MARGIN, self->y, S_CONTENT_WIDTH,
                    S_CHART_HEIGHT);
        self->y += S_CHART_HEIGHT + 8;
        model_chart_data_destroy (&data);
    }
    for (size_t t = 0; t < section->ntables; t++)
        s_table (self, section->tables[t]);
}

int
pdfout_render (model_t *model, const char *path, char *error, size_t error_size)
{
    cairo_surface_t *surface = cairo_pdf_surface_create (path, PDFOUT_WIDTH, PDFOUT_HEIGHT);
    if (cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS) {
        snprintf (error, error_size, "cannot write %s: %s", path,
                  cairo_status_to_string (cairo_surface_status (surface)));
        cairo_surface_destroy (surface);
        return -1;
    }
    char title[512];
    snprintf (title, sizeof title, "OmniAudit report: %s", model_project (model));
    cairo_pdf_surface_set_metadata (surface, CAIRO_PDF_METADATA_TITLE, title);
    cairo_pdf_surface_set_metadata (surface, CAIRO_PDF_METADATA_CREATOR, "OmniAudit omni-report");
    s_pdf_t self = {.cr = cairo_create (surface), .model = model};
    for (size_t i = 0; i < model_sections (model); i++)
        s_section (&self, model_section (model, i));
    if (self.page == 0)
        s_page (&self, false);
    cairo_show_page (self.cr);
    cairo_status_t status = cairo_status (self.cr);
    cairo_destroy (self.cr);
    cairo_surface_finish (surface);
    if (status == CAIRO_STATUS_SUCCESS)
        status = cairo_surface_status (surface);
    cairo_surface_destroy (surface);
    if (status != CAIRO_STATUS_SUCCESS) {
        snprintf (error, error_size, "cannot write %s: %s", path, cairo_status_to_string (status));
        return -1;
    }
    return self.page;
}

void
pdfout_test (bool verbose)
{
    (void) verbose;
    char *dir = selftest_tmpdir ("pdfout");
    char path[512];
    snprintf (path, sizeof path, "%s/r.pdf", dir);
    model_t *model = model_new ("repo", "%", NULL, NULL);
    model_section_t *section = model_section_add (model, "contributors", "Contributors");
    model_figure_add (section, "bus_factor", "Bus factor", MODEL_NUM, "2");
    model_table_t *table = model_table_add (section, "top", "Top");
    model_column_add (table, "author_name", "Author", MODEL_TEXT);
    model_column_add (table, "commits", "Commits", MODEL_NUM);
    //  A table far longer than a page goes on over the next pages.
    for (int i = 0; i < 200; i++) {
        char name[32], commits[16];
        snprintf (name, sizeof name, "author %d", i);
        snprintf (commits, sizeof commits, "%d", 1000 - i);
        const char *row[] = {name, commits};
        model_row_add (table, row);
    }
    const char *values[] = {"commits", NULL};
    model_chart_add (section, "top", "Top", MODEL_HBARS, "top", "author_name", NULL, values, NULL);
    model_section_empty (model_section_add (model, "host", "Host"), "no points");
    char error[256];
    int pages = pdfout_render (model, path, error, sizeof error);
    //  Page 1: title, figure, chart, then rows; the rest on full pages.
    int per_page = (int) ((PDFOUT_BOTTOM - PDFOUT_TOP - 24 - PDFOUT_ROW) / PDFOUT_ROW);
    assert (pages >= 2 + (200 - per_page) / per_page && pages <= 2 + 200 / per_page + 1);
    struct stat st;
    assert (stat (path, &st) == 0 && st.st_size > 1000);
    FILE *file = fopen (path, "rb");
    char head[8] = "";
    assert (fread (head, 1, 5, file) == 5 && memcmp (head, "%PDF-", 5) == 0);
    fclose (file);
    assert (pdfout_render (model, "/nonexistent/dir/r.pdf", error, sizeof error) == -1);
    assert (strstr (error, "/nonexistent/dir/r.pdf"));
    model_destroy (&model);
    unlink (path);
    selftest_rmtree (dir);
    free (dir);
    chart_shutdown ();
}
