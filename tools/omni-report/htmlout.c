/*  htmlout: the report as a self-contained HTML page (see htmlout.h).       */
#include "tools/omni-report/htmlout.h"
#include "tools/omni-report/chart.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_CHART_WIDTH  720
#define S_CHART_HEIGHT 280

static const char *s_style =
    "*{box-sizing:border-box}"
    "body{margin:0 auto;max-width:1100px;padding:12px;font:15px/1.45 system-ui,-apple-system,"
    "'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#1d1d1f;background:#f6f7f9}"
    "header{padding:8px 0 4px}h1{font-size:1.5em;margin:0 0 4px;overflow-wrap:anywhere}"
    ".meta{color:#555;margin:0;overflow-wrap:anywhere}nav{margin:8px 0}nav a{margin-right:12px}"
    "section{background:#fff;border:1px solid #dde;border-radius:8px;padding:12px 14px;"
    "margin:14px 0}h2{font-size:1.2em;margin:0 0 8px}h3{font-size:1em;margin:12px 0 6px}"
    ".empty{color:#666;font-style:italic}"
    ".figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px;"
    "margin:0 0 8px}.figures div{background:#f0f3f8;border-radius:6px;padding:6px 8px}"
    ".figures dt{font-size:.8em;color:#555}.figures dd{margin:0;font-size:1.15em;"
    "font-weight:600;overflow-wrap:anywhere}"
    "figure{margin:8px 0}figure svg{display:block;width:100%;height:auto;max-width:"
    "720px}"
    ".scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:.9em;"
    "margin:4px 0 8px}th,td{padding:3px 8px;border-bottom:1px solid #e4e4ea;text-align:left;"
    "vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "td bdi{overflow-wrap:anywhere}th{background:#f0f3f8;position:sticky;top:0}"
    "caption{text-align:left;font-weight:600;padding:4px 0}"
    "footer{color:#777;font-size:.85em;margin:16px 0}"
    "@media (max-width:600px){body{padding:6px;font-size:14px}section{padding:8px}"
    "th,td{padding:2px 5px}}"
    "@media print{body{background:#fff}section{break-inside:avoid-page;border:0}}";

static void
s_text (omni_buf_t *buf, const char *text)
{
    omni_buf_append (buf, text, strlen (text));
}

//  A section's id and title between markup: open, id, middle, title, close.
static void
s_id_title (omni_buf_t *buf, const char *open, const model_section_t *section, const char *middle,
            const char *close)
{
    s_text (buf, open);
    htmlout_escape (buf, section->id);
    s_text (buf, middle);
    htmlout_escape (buf, section->title);
    s_text (buf, close);
}

void
htmlout_escape (omni_buf_t *buf, const char *text)
{
    const char *run = text;
    for (const char *p = text; *p; p++) {
        const char *ref = NULL;
        switch (*p) {
        case '&': ref = "&amp;"; break;
        case '<': ref = "&lt;"; break;
        case '>': ref = "&gt;"; break;
        case '"': ref = "&quot;"; break;
        case '\'': ref = "&#39;"; break;
        }
        if (ref) {
            omni_buf_append (buf, run, (size_t) (p - run));
            s_text (buf, ref);
            run = p + 1;
        }
    }
    s_text (buf, run);
}

void
htmlout_begin (omni_buf_t *buf, const char *title)
{
    s_text (buf, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                 "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                 "style-src 'unsafe-inline'\"><title>");
    htmlout_escape (buf, title);
    s_text (buf, "</title><style>");
    s_text (buf, s_style);
    s_text (buf, "</style></head>\n<body>\n");
}

void
htmlout_end (omni_buf_t *buf)
{
    s_text (buf, "</body></html>\n");
}

//  A value as shown: numbers as they are, an absent one as a dash.
static void
s_cell (omni_buf_t *buf, model_type_t type, const char *value)
{
    s_text (buf, type == MODEL_NUM ? "<td class=\"n\">" : "<td>");
    if (!value)
        s_text (buf, "&#8211;");
    else if (type == MODEL_TEXT) {
        s_text (buf, "<bdi>");
        htmlout_escape (buf, value);
        s_text (buf, "</bdi>");
    } else
        htmlout_escape (buf, value);
    s_text (buf, "</td>");
}

static void
s_table (omni_buf_t *buf, model_table_t *table)
{
    s_text (buf, "<div class=\"scroll\"><table><caption>");
    htmlout_escape (buf, table->title);
    s_text (buf, "</caption><thead><tr>");
    for (size_t c = 0; c < table->ncols; c++) {
        s_text (buf, "<th scope=\"col\">");
        htmlout_escape (buf, table->cols[c].title);
        s_text (buf, "</th>");
    }
    s_text (buf, "</tr></thead><tbody>\n");
    if (table->nrows == 0) {
        char empty[96];
        snprintf (empty, sizeof empty, "<tr><td colspan=\"%zu\" class=\"empty\">none</td></tr>",
                  table->ncols);
        s_text (buf, empty);
    }
    for (size_t r = 0; r < table->nrows; r++) {
        s_text (buf, "<tr>");
        for (size_t c = 0; c < table->ncols; c++)
            s_cell (buf, table->cols[c].type, model_cell (table, r, c));
        s_text (buf, "</tr>\n");
    }
    s_text (buf, "</tbody></table></div>\n");
}

void
htmlout_render (model_t *model, omni_buf_t *buf, const char *index_href, const char *json_href)
{
    char title[512];
    snprintf (title, sizeof title, "OmniAudit report: %s", model_project (model));
    htmlout_begin (buf, title);
    s_text (buf, "<header><h1>OmniAudit report: <bdi>");
    htmlout_escape (buf, model_project (model));
    s_text (buf, "</bdi></h1><p class=\"meta\">Sources matching <code><bdi>");
    htmlout_escape (buf, model_pattern (model));
    s_text (buf, "</bdi></code>; period ");
    htmlout_escape (buf, model_since (model) ? model_since (model) : "from the start");
    s_text (buf, " &#8211; ");
    htmlout_escape (buf, model_until (model) ? model_until (model) : "now");
    s_text (buf, "; made ");
    htmlout_escape (buf, model_generated (model));
    s_text (buf, " (times UTC, weeks start on Monday)</p><nav>");
    if (index_href) {
        s_text (buf, "<a href=\"");
        htmlout_escape (buf, index_href);
        s_text (buf, "\">All projects</a>");
    }
    if (json_href) {
        s_text (buf, "<a href=\"");
        htmlout_escape (buf, json_href);
        s_text (buf, "\">JSON</a>");
    }
    for (size_t i = 0; i < model_sections (model); i++) {
        model_section_t *section = model_section (model, i);
        s_id_title (buf, "<a href=\"#", section, "\">", "</a>");
    }
    s_text (buf, "</nav></header>\n");
    for (size_t i = 0; i < model_sections (model); i++) {
        model_section_t *section = model_section (model, i);
        s_id_title (buf, "<section id=\"", section, "\"><h2>", "</h2>\n");
        if (section->nfigures) {
            s_text (buf, "<dl class=\"figures\">");
            for (size_t f = 0; f < section->nfigures; f++) {
                s_text (buf, "<div><dt>");
                htmlout_escape (buf, section->figures[f].title);
                s_text (buf, "</dt><dd data-id=\"");
                htmlout_escape (buf, section->figures[f].id);
                s_text (buf, "\">");
                htmlout_escape (buf, section->figures[f].value ? section->figures[f].value
                                                               : "\xE2\x80\x93");
                s_text (buf, "</dd></div>");
            }
            s_text (buf, "</dl>\n");
        }
        if (section->empty) {
            s_text (buf, "<p class=\"empty\">");
            htmlout_escape (buf, section->empty);
            s_text (buf, "</p>\n");
        }
        for (size_t c = 0; c < section->ncharts; c++) {
            model_chart_data_t *data = model_chart_data (section, section->charts[c]);
            if (!data)
                continue;
            char prefix[48];
            snprintf (prefix, sizeof prefix, "s%zu-c%zu-", i, c);
            char *svg =
                chart_svg (section->charts[c], data, S_CHART_WIDTH,
                           section->charts[c]->kind == MODEL_HBARS //  as tall as its bars
                               ? 60 + 22.0 * (double) (data->npoints < 30 ? data->npoints : 30)
                               : S_CHART_HEIGHT,
                           prefix);
            s_text (buf, "<figure class=\"chart\" data-chart=\"");
            htmlout_escape (buf, section->charts[c]->id);
            s_text (buf, "\">");
            s_text (buf, svg);
            s_text (buf, "<figcaption hidden>");
            htmlout_escape (buf, section->charts[c]->title);
            s_text (buf, "</figcaption></figure>\n");
            free (svg);
            model_chart_data_destroy (&data);
        }
        for (size_t t = 0; t < section->ntables; t++)
            s_table (buf, section->tables[t]);
        s_text (buf, "</section>\n");
    }
    s_text (buf, "<footer>OmniAudit omni-report. Every number of this page is in its JSON "
                 "(omni-report json).</footer>\n");
    htmlout_end (buf);
}

void
htmlout_test (bool verbose)
{
    (void) verbose;
    omni_buf_t buf = {0};
    htmlout_escape (&buf, "<script>alert('x')</script> & \"q\"");
    assert (strcmp (buf.data, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; "
                              "&quot;q&quot;") == 0);
    omni_buf_reset (&buf);

    const char *hostile = "<script>alert(1)</script>\"' \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d "
                          "\xF0\x9F\x98\x80";
    model_t *model = model_new (hostile, "%", NULL, NULL);
    model_section_t *section = model_section_add (model, "contributors", "Contributors");
    model_table_t *table = model_table_add (section, "top", "Top");
    model_column_add (table, "author_name", "Author", MODEL_TEXT);
    model_column_add (table, "commits", "Commits", MODEL_NUM);
    const char *row[] = {hostile, "3"};
    model_row_add (table, row);
    const char *values[] = {"commits", NULL};
    model_chart_add (section, "top", "Top", MODEL_HBARS, "top", "author_name", NULL, values, NULL);
    model_section_empty (model_section_add (model, "host", "Host"), "no <points>");
    htmlout_render (model, &buf, NULL, NULL);
    assert (strncmp (buf.data, "<!DOCTYPE html>", 15) == 0);
    //  The only <script> is none: the hostile name is text everywhere.
    assert (!strstr (buf.data, "<script"));
    assert (strstr (buf.data, "<bdi>&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39; "
                              "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d \xF0\x9F\x98\x80</bdi>"));
    assert (strstr (buf.data, "<svg ") && strstr (buf.data, "id=\"s0-c0-"));
    assert (strstr (buf.data, "<p class=\"empty\">no &lt;points&gt;</p>"));
    assert (strstr (buf.data, "default-src 'none'"));
    assert (!strstr (buf.data, "http://") || strstr (buf.data, "http://www.w3.org"));
    assert (!strstr (buf.data, "src="));
    omni_buf_release (&buf);
    model_destroy (&model);
    chart_shutdown ();
}
