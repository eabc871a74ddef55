/*  model: the report as data (see model.h). Plain arrays grown by
    doubling: a report holds a few sections of a few tables, and the
    largest table is the length of the history in weeks or the top N.        */
#include "tools/omni-report/model.h"
#include "common/buf.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct _model_t {
    char *project, *pattern, *since, *until;
    char generated[32];
    size_t nsections, sections_cap;
    model_section_t **sections;
};

static char *
s_dup (const char *text)
{
    if (!text)
        return NULL;
    char *copy = strdup (text);
    assert (copy);
    return copy;
}

model_t *
model_new (const char *project, const char *pattern, const char *since, const char *until)
{
    model_t *self = calloc (1, sizeof *self);
    assert (self);
    self->project = s_dup (project);
    self->pattern = s_dup (pattern);
    self->since = s_dup (since);
    self->until = s_dup (until);
    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    strftime (self->generated, sizeof self->generated, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return self;
}

static void
s_table_destroy (model_table_t *table)
{
    for (size_t i = 0; i < table->nrows * table->ncols; i++)
        free (table->cells[i]);
    for (size_t i = 0; i < table->ncols; i++) {
        free (table->cols[i].id);
        free (table->cols[i].title);
    }
    free (table->cells);
    free (table->cols);
    free (table->id);
    free (table->title);
    free (table);
}

static void
s_chart_destroy (model_chart_t *chart)
{
    for (size_t i = 0; chart->values[i]; i++)
        free (chart->values[i]);
    free (chart->values);
    free (chart->id);
    free (chart->title);
    free (chart->table);
    free (chart->label);
    free (chart->series);
    free (chart->unit);
    free (chart);
}

void
model_destroy (model_t **self_p)
{
    model_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nsections; i++) {
        model_section_t *section = self->sections[i];
        for (size_t f = 0; f < section->nfigures; f++) {
            free (section->figures[f].id);
            free (section->figures[f].title);
            free (section->figures[f].value);
        }
        for (size_t t = 0; t < section->ntables; t++)
            s_table_destroy (section->tables[t]);
        for (size_t c = 0; c < section->ncharts; c++)
            s_chart_destroy (section->charts[c]);
        free (section->figures);
        free (section->tables);
        free (section->charts);
        free (section->id);
        free (section->title);
        free (section->empty);
        free (section);
    }
    free (self->sections);
    free (self->project);
    free (self->pattern);
    free (self->since);
    free (self->until);
    free (self);
    *self_p = NULL;
}

const char *
model_project (model_t *self)
{
    return self->project;
}

const char *
model_pattern (model_t *self)
{
    return self->pattern;
}

const char *
model_since (model_t *self)
{
    return self->since;
}

const char *
model_until (model_t *self)
{
    return self->until;
}

const char *
model_generated (model_t *self)
{
    return self->generated;
}

model_section_t *
model_section_add (model_t *self, const char *id, const char *title)
{
    model_section_t *section = calloc (1, sizeof *section);
    assert (section);
    section->id = s_dup (id);
    section->title = s_dup (title);
    *omni_array_push (self->sections, self->nsections, self->sections_cap) = section;
    return section;
}

size_t
model_sections (model_t *self)
{
    return self->nsections;
}

model_section_t *
model_section (model_t *self, size_t index)
{
    return index < self->nsections ? self->sections[index] : NULL;
}

void
model_section_empty (model_section_t *section, const char *why)
{
    free (section->empty);
    section->empty = s_dup (why);
}

void
model_figure_add (model_section_t *section, const char *id, const char *title, model_type_t type,
                  const char *value)
{
    model_figure_t *figure =
        omni_array_push (section->figures, section->nfigures, section->figures_cap);
    figure->id = s_dup (id);
    figure->title = s_dup (title);
    figure->type = type;
    figure->value = s_dup (value);
}

const model_figure_t *
model_figure (model_section_t *section, const char *id)
{
    for (size_t i = 0; i < section->nfigures; i++)
        if (strcmp (section->figures[i].id, id) == 0)
            return &section->figures[i];
    return NULL;
}

model_table_t *
model_table_add (model_section_t *section, const char *id, const char *title)
{
    model_table_t *table = calloc (1, sizeof *table);
    assert (table);
    table->id = s_dup (id);
    table->title = s_dup (title);
    *omni_array_push (section->tables, section->ntables, section->tables_cap) = table;
    return table;
}

model_table_t *
model_table_find (model_section_t *section, const char *id)
{
    for (size_t i = 0; i < section->ntables; i++)
        if (strcmp (section->tables[i]->id, id) == 0)
            return section->tables[i];
    return NULL;
}

void
model_column_add (model_table_t *table, const char *id, const char *title, model_type_t type)
{
    assert (table->nrows == 0); //  columns come first
    *omni_array_push (table->cols, table->ncols, table->cols_cap) =
        (model_column_t){s_dup (id), s_dup (title), type};
}

int
model_column_find (model_table_t *table, const char *id)
{
    for (size_t i = 0; i < table->ncols; i++)
        if (strcmp (table->cols[i].id, id) == 0)
            return (int) i;
    return -1;
}

void
model_row_add (model_table_t *table, const char *const *values)
{
    omni_array_reserve (table->cells, table->cap, (table->nrows + 1) * table->ncols);
    for (size_t i = 0; i < table->ncols; i++)
        table->cells[table->nrows * table->ncols + i] = s_dup (values[i]);
    table->nrows++;
}

const char *
model_cell (model_table_t *table, size_t row, size_t col)
{
    assert (row < table->nrows && col < table->ncols);
    return table->cells[row * table->ncols + col];
}

model_chart_t *
model_chart_add (model_section_t *section, const char *id, const char *title,
                 model_chart_kind_t kind, const char *table, const char *label, const char *series,
                 const char *const *values, const char *unit)
{
    model_chart_t *chart = calloc (1, sizeof *chart);
    assert (chart);
    chart->id = s_dup (id);
    chart->title = s_dup (title);
    chart->kind = kind;
    chart->table = s_dup (table);
    chart->label = s_dup (label);
    chart->series = s_dup (series);
    chart->unit = s_dup (unit);
    size_t n = 0;
    while (values[n])
        n++;
    chart->values = calloc (n + 1, sizeof (char *));
    assert (chart->values);
    for (size_t i = 0; i < n; i++)
        chart->values[i] = s_dup (values[i]);
    *omni_array_push (section->charts, section->ncharts, section->charts_cap) = chart;
    return chart;
}

static size_t
s_index_of (char **names, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp (names[i], name) == 0)
            return i;
    return count;
}

static double
s_number (const char *text)
{
    if (!text)
        return NAN;
    char *end;
    double value = strtod (text, &end);
    return end == text ? NAN : value;
}

model_chart_data_t *
model_chart_data (model_section_t *section, const model_chart_t *chart)
{
    model_table_t *table = model_table_find (section, chart->table);
    if (!table)
        return NULL;
    int label = model_column_find (table, chart->label);
    int series = chart->series ? model_column_find (table, chart->series) : -1;
    if (label < 0 || (chart->series && series < 0))
        return NULL;
    size_t nvalues = 0;
    int value_cols[16];
    for (; chart->values[nvalues] && nvalues < 16; nvalues++) {
        value_cols[nvalues] = model_column_find (table, chart->values[nvalues]);
        if (value_cols[nvalues] < 0)
            return NULL;
    }
    model_chart_data_t *data = calloc (1, sizeof *data);
    assert (data);
    data->labels = calloc (table->nrows + 1, sizeof (char *));
    data->names = calloc (series >= 0 ? table->nrows + 1 : nvalues + 1, sizeof (char *));
    assert (data->labels && data->names);
    //  Labels (and series names when pivoting) in order of first appearance.
    for (size_t r = 0; r < table->nrows; r++) {
        const char *text = model_cell (table, r, (size_t) label);
        text = text ? text : "";
        if (s_index_of (data->labels, data->npoints, text) == data->npoints)
            data->labels[data->npoints++] = s_dup (text);
        if (series >= 0) {
            const char *name = model_cell (table, r, (size_t) series);
            name = name ? name : "";
            if (s_index_of (data->names, data->nseries, name) == data->nseries)
                data->names[data->nseries++] = s_dup (name);
        }
    }
    if (series < 0) {
        data->nseries = nvalues;
        for (size_t i = 0; i < nvalues; i++)
            data->names[i] = s_dup (table->cols[value_cols[i]].title);
    }
    size_t total = data->nseries * data->npoints;
    data->values = malloc ((total ? total : 1) * sizeof (double));
    assert (data->values);
    for (size_t i = 0; i < total; i++)
        data->values[i] = NAN;
    for (size_t r = 0; r < table->nrows; r++) {
        const char *text = model_cell (table, r, (size_t) label);
        size_t point = s_index_of (data->labels, data->npoints, text ? text : "");
        if (series >= 0) {
            const char *name = model_cell (table, r, (size_t) series);
            size_t s = s_index_of (data->names, data->nseries, name ? name : "");
            data->values[s * data->npoints + point] =
                s_number (model_cell (table, r, (size_t) value_cols[0]));
        } else
            for (size_t s = 0; s < nvalues; s++)
                data->values[s * data->npoints + point] =
                    s_number (model_cell (table, r, (size_t) value_cols[s]));
    }
    return data;
}

void
model_chart_data_destroy (model_chart_data_t **self_p)
{
    model_chart_data_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->npoints; i++)
        free (self->labels[i]);
    for (size_t i = 0; i < self->nseries; i++)
        free (self->names[i]);
    free (self->labels);
    free (self->names);
    free (self->values);
    free (self);
    *self_p = NULL;
}

const char *
model_type_name (model_type_t type)
{
    return type == MODEL_NUM ? "number" : type == MODEL_TIME ? "time" : "text";
}

const char *
model_chart_kind_name (model_chart_kind_t kind)
{
    return kind == MODEL_BARS ? "bars" : kind == MODEL_HBARS ? "hbars" : "lines";
}

void
model_test (bool verbose)
{
    (void) verbose;
    model_t *model = model_new ("repo", "repo%", NULL, "2024-02-01");
    assert (strcmp (model_project (model), "repo") == 0 && !model_since (model));
    assert (strlen (model_generated (model)) == 20);
    model_section_t *section = model_section_add (model, "code", "Code");
    model_figure_add (section, "lines", "Lines", MODEL_NUM, "42");
    assert (strcmp (model_figure (section, "lines")->value, "42") == 0);
    assert (!model_figure (section, "nope"));
    model_table_t *table = model_table_add (section, "trend", "Trend");
    model_column_add (table, "snapshot", "Snapshot", MODEL_TEXT);
    model_column_add (table, "language", "Language", MODEL_TEXT);
    model_column_add (table, "code", "Code", MODEL_NUM);
    //  Enough rows to grow the cell array more than once.
    for (int i = 0; i < 40; i++) {
        char snapshot[16], code[16];
        snprintf (snapshot, sizeof snapshot, "s%d", i / 2);
        snprintf (code, sizeof code, "%d", i);
        const char *row[] = {snapshot, i % 2 ? "C" : "Python", code};
        model_row_add (table, row);
    }
    const char *null_row[] = {"s20", "C", NULL};
    model_row_add (table, null_row);
    assert (table->nrows == 41 && !model_cell (table, 40, 2));
    const char *values[] = {"code", NULL};
    model_chart_t *chart = model_chart_add (section, "trend", "Trend", MODEL_LINES, "trend",
                                            "snapshot", "language", values, NULL);
    model_chart_data_t *data = model_chart_data (section, chart);
    assert (data && data->npoints == 21 && data->nseries == 2);
    assert (strcmp (data->names[0], "Python") == 0 && strcmp (data->names[1], "C") == 0);
    assert (data->values[0] == 0 && data->values[21 + 0] == 1 && data->values[20] != 38);
    assert (isnan (data->values[20]) && isnan (data->values[21 + 20]));
    model_chart_data_destroy (&data);
    assert (!data);
    //  Unpivoted: one series per value column, named by its title.
    const char *both[] = {"code", "code", NULL};
    chart = model_chart_add (section, "two", "Two", MODEL_BARS, "trend", "language", NULL, both,
                             "lines");
    data = model_chart_data (section, chart);
    assert (data && data->npoints == 2 && data->nseries == 2 && data->values[0] == 38);
    assert (strcmp (data->names[1], "Code") == 0);
    model_chart_data_destroy (&data);
    const char *missing[] = {"nope", NULL};
    chart = model_chart_add (section, "bad", "Bad", MODEL_BARS, "trend", "language", NULL, missing,
                             NULL);
    assert (!model_chart_data (section, chart));
    model_section_empty (section, "nothing");
    assert (strcmp (model_section (model, 0)->empty, "nothing") == 0 && !model_section (model, 1));
    model_destroy (&model);
    assert (!model);
}
