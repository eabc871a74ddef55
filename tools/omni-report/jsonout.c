/*  jsonout: the report as JSON (see jsonout.h). Written by hand over
    omni_buf_t rather than through a DOM library: the document is a
    straight walk over the model, and values must keep PostgreSQL's exact
    text, which a DOM would turn into doubles.                               */
#include "tools/omni-report/jsonout.h"

#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static void
s_text (omni_buf_t *buf, const char *text)
{
    omni_buf_append (buf, text, strlen (text));
}

static void
s_string (omni_buf_t *buf, const char *text)
{
    if (text)
        omni_mpjson_string (buf, text, strlen (text));
    else
        s_text (buf, "null");
}

static void
s_key (omni_buf_t *buf, const char *key, bool first)
{
    if (!first)
        s_text (buf, ",");
    s_string (buf, key);
    s_text (buf, ":");
}

bool
jsonout_is_number (const char *text)
{
    //  -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    const char *p = text;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (isdigit ((unsigned char) *p))
            p++;
    else
        return false;
    if (*p == '.') {
        p++;
        if (!isdigit ((unsigned char) *p))
            return false;
        while (isdigit ((unsigned char) *p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit ((unsigned char) *p))
            return false;
        while (isdigit ((unsigned char) *p))
            p++;
    }
    return *p == 0;
}

static void
s_value (omni_buf_t *buf, model_type_t type, const char *value)
{
    if (value && type == MODEL_NUM && jsonout_is_number (value))
        s_text (buf, value);
    else
        s_string (buf, value);
}

static void
s_table (omni_buf_t *buf, model_table_t *table)
{
    s_text (buf, "{");
    s_key (buf, "title", true);
    s_string (buf, table->title);
    s_key (buf, "columns", false);
    s_text (buf, "[");
    for (size_t c = 0; c < table->ncols; c++) {
        s_text (buf, c ? ",{" : "{");
        s_key (buf, "id", true);
        s_string (buf, table->cols[c].id);
        s_key (buf, "title", false);
        s_string (buf, table->cols[c].title);
        s_key (buf, "type", false);
        s_string (buf, model_type_name (table->cols[c].type));
        s_text (buf, "}");
    }
    s_text (buf, "]");
    s_key (buf, "rows", false);
    s_text (buf, "[");
    for (size_t r = 0; r < table->nrows; r++) {
        s_text (buf, r ? ",\n{" : "\n{");
        for (size_t c = 0; c < table->ncols; c++) {
            s_key (buf, table->cols[c].id, c == 0);
            s_value (buf, table->cols[c].type, model_cell (table, r, c));
        }
        s_text (buf, "}");
    }
    s_text (buf, "]}");
}

static void
s_chart (omni_buf_t *buf, const model_chart_t *chart)
{
    s_text (buf, "{");
    s_key (buf, "title", true);
    s_string (buf, chart->title);
    s_key (buf, "kind", false);
    s_string (buf, model_chart_kind_name (chart->kind));
    s_key (buf, "table", false);
    s_string (buf, chart->table);
    s_key (buf, "label", false);
    s_string (buf, chart->label);
    s_key (buf, "series", false);
    s_string (buf, chart->series);
    s_key (buf, "values", false);
    s_text (buf, "[");
    for (size_t i = 0; chart->values[i]; i++) {
        if (i)
            s_text (buf, ",");
        s_string (buf, chart->values[i]);
    }
    s_text (buf, "]");
    s_key (buf, "unit", false);
    s_string (buf, chart->unit);
    s_text (buf, "}");
}

void
jsonout_render (model_t *model, omni_buf_t *buf)
{
    s_text (buf, "{");
    s_key (buf, "project", true);
    s_string (buf, model_project (model));
    s_key (buf, "pattern", false);
    s_string (buf, model_pattern (model));
    s_key (buf, "since", false);
    s_string (buf, model_since (model));
    s_key (buf, "until", false);
    s_string (buf, model_until (model));
    s_key (buf, "generated", false);
    s_string (buf, model_generated (model));
    s_key (buf, "sections", false);
    s_text (buf, "{");
    for (size_t i = 0; i < model_sections (model); i++) {
        model_section_t *section = model_section (model, i);
        s_text (buf, i ? ",\n" : "\n");
        s_key (buf, section->id, true);
        s_text (buf, "{");
        s_key (buf, "title", true);
        s_string (buf, section->title);
        s_key (buf, "empty", false);
        s_string (buf, section->empty);
        s_key (buf, "figures", false);
        s_text (buf, "{");
        for (size_t f = 0; f < section->nfigures; f++) {
            s_key (buf, section->figures[f].id, f == 0);
            s_value (buf, section->figures[f].type, section->figures[f].value);
        }
        s_text (buf, "}");
        s_key (buf, "tables", false);
        s_text (buf, "{");
        for (size_t t = 0; t < section->ntables; t++) {
            s_key (buf, section->tables[t]->id, t == 0);
            s_table (buf, section->tables[t]);
        }
        s_text (buf, "}");
        s_key (buf, "charts", false);
        s_text (buf, "{");
        for (size_t c = 0; c < section->ncharts; c++) {
            s_key (buf, section->charts[c]->id, c == 0);
            s_chart (buf, section->charts[c]);
        }
        s_text (buf, "}}");
    }
    s_text (buf, "}}\n");
}

void
jsonout_test (bool verbose)
{
    (void) verbose;
    assert (jsonout_is_number ("0") && jsonout_is_number ("-12.5e+3") &&
            jsonout_is_number ("0.6667"));
    assert (!jsonout_is_number ("NaN") && !jsonout_is_number ("Infinity") &&
            !jsonout_is_number ("") && !jsonout_is_number ("01") && !jsonout_is_number ("1.") &&
            !jsonout_is_number ("2024-01-01"));
    model_t *model = model_new ("a\"b</script>", "%", NULL, "2024-01-01 00:00:00+00");
    model_section_t *section = model_section_add (model, "summary", "Summary");
    model_figure_add (section, "commits", "Commits", MODEL_NUM, "12");
    model_figure_add (section, "rate", "Rate", MODEL_NUM, NULL);
    model_figure_add (section, "odd", "Odd", MODEL_NUM, "NaN");
    model_table_t *table = model_table_add (section, "t", "T");
    model_column_add (table, "name", "Name", MODEL_TEXT);
    model_column_add (table, "n", "N", MODEL_NUM);
    const char *row[] = {"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d \"x\"\n", "0.6667"};
    model_row_add (table, row);
    const char *values[] = {"n", NULL};
    model_chart_add (section, "c", "C", MODEL_BARS, "t", "name", NULL, values, NULL);
    model_section_empty (model_section_add (model, "host", "Host"), "no points");
    omni_buf_t buf = {0};
    jsonout_render (model, &buf);
    const char *expected = "{\"project\":\"a\\\"b</script>\",\"pattern\":\"%\",\"since\":null,"
                           "\"until\":\"2024-01-01 00:00:00+00\",\"generated\":\"";
    assert (strncmp (buf.data, expected, strlen (expected)) == 0);
    assert (strstr (buf.data, "\"figures\":{\"commits\":12,\"rate\":null,\"odd\":\"NaN\"}"));
    assert (strstr (buf.data, "\"rows\":[\n{\"name\":\"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d "
                              "\\\"x\\\"\\n\",\"n\":0.6667}]"));
    assert (strstr (buf.data, "\"values\":[\"n\"],\"unit\":null}"));
    assert (strstr (buf.data, "\"host\":{\"title\":\"Host\",\"empty\":\"no points\""));
    omni_buf_release (&buf);
    model_destroy (&model);
}
