/*  model: one audit report as data, before any rendering: sections, each
    with headline figures, tables and charts. A chart owns no numbers: it
    names a table of its section and the columns it draws, so the JSON (the
    tables) holds every number behind every chart, and the HTML and PDF draw
    exactly what the JSON says.

    Cell values are kept as the text PostgreSQL sent (its text output is
    exact: a numeric stays "0.6667", a float8 the shortest text that reads
    back the same), tagged with a type that decides how each renderer
    writes them (a JSON number or string, right-aligned or not).             */
#ifndef OMNI_REPORT_MODEL_H
#define OMNI_REPORT_MODEL_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    MODEL_TEXT, //  a JSON string
    MODEL_NUM,  //  a JSON number (the text is PostgreSQL's, or ours)
    MODEL_TIME  //  a JSON string: a date or an ISO-8601 time
} model_type_t;

typedef enum {
    MODEL_BARS,  //  vertical bars per label, one group per label when several series
    MODEL_HBARS, //  horizontal bars, labels on the left (names, languages)
    MODEL_LINES  //  one line per series
} model_chart_kind_t;

typedef struct {
    char *id;    //  JSON key
    char *title; //  column header
    model_type_t type;
} model_column_t;

typedef struct {
    char *id;
    char *title;
    size_t ncols, nrows, cap; //  cap: cells allocated
    size_t cols_cap;
    model_column_t *cols;
    char **cells; //  nrows * ncols, NULL = SQL NULL
} model_table_t;

typedef struct {
    char *id;
    char *title;
    model_chart_kind_t kind;
    char *table;   //  id of a table of the same section
    char *label;   //  column of the x labels (the category)
    char *series;  //  column whose values name the series (pivot), or NULL
    char **values; //  columns drawn, NULL-terminated (with a pivot: one)
    char *unit;    //  axis note, e.g. "%" or "bytes"; may be NULL
} model_chart_t;

typedef struct {
    char *id, *title;
    model_type_t type;
    char *value; //  NULL = no value
} model_figure_t;

typedef struct {
    char *id;
    char *title;
    char *empty; //  why there is nothing to show, or NULL
    size_t nfigures, ntables, ncharts;
    size_t figures_cap, tables_cap, charts_cap;
    model_figure_t *figures;
    model_table_t **tables;
    model_chart_t **charts;
} model_section_t;

typedef struct _model_t model_t;

//  `project` names what the report covers; `pattern` the LIKE pattern of
//  sources it was built from; since/until may be NULL.
model_t *model_new (const char *project, const char *pattern, const char *since, const char *until);
void model_destroy (model_t **self_p);

const char *model_project (model_t *self);
const char *model_pattern (model_t *self);
const char *model_since (model_t *self);
const char *model_until (model_t *self);
//  UTC time the report was made, ISO-8601.
const char *model_generated (model_t *self);

model_section_t *model_section_add (model_t *self, const char *id, const char *title);
size_t model_sections (model_t *self);
model_section_t *model_section (model_t *self, size_t index);

//  Marks the section as having nothing to show, with the reason.
void model_section_empty (model_section_t *section, const char *why);
void model_figure_add (model_section_t *section, const char *id, const char *title,
                       model_type_t type, const char *value);
const model_figure_t *model_figure (model_section_t *section, const char *id);

model_table_t *model_table_add (model_section_t *section, const char *id, const char *title);
model_table_t *model_table_find (model_section_t *section, const char *id);
void model_column_add (model_table_t *table, const char *id, const char *title, model_type_t type);
int model_column_find (model_table_t *table, const char *id);
//  Appends a row of ncols values (NULL = SQL NULL), copied.
void model_row_add (model_table_t *table, const char *const *values);
const char *model_cell (model_table_t *table, size_t row, size_t col);

//  `values` is a NULL-terminated list of column ids.
model_chart_t *model_chart_add (model_section_t *section, const char *id, const char *title,
                                model_chart_kind_t kind, const char *table, const char *label,
                                const char *series, const char *const *values, const char *unit);

//  A chart's numbers, resolved against its table: npoints labels, nseries
//  series of npoints values (NAN where missing). Pivoted charts get one
//  series per distinct value of the series column, in order of appearance.
typedef struct {
    size_t npoints, nseries;
    char **labels;
    char **names;
    double *values; //  nseries * npoints
} model_chart_data_t;

//  NULL when the chart's table or columns do not exist.
model_chart_data_t *model_chart_data (model_section_t *section, const model_chart_t *chart);
void model_chart_data_destroy (model_chart_data_t **self_p);

const char *model_type_name (model_type_t type);
const char *model_chart_kind_name (model_chart_kind_t kind);

void model_test (bool verbose);

#endif
