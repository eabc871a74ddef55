/*  analysis: a report's per-source figures as analysis.summary records (see
    analysis.h).

    The figures come from the model, not from a query of their own: the
    records hold exactly the numbers the report shows, read in the report's
    snapshot. Cells are PostgreSQL's text: a count is sent as an integer, a
    rate (numeric with a point) as a double; a NULL cell is left out (the
    kind's optional fields).                                                  */
#include "tools/omni-report/analysis.h"
#include "client/intake_client.h"
#include "proto/kinds.h"
#include "proto/record.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_KIND "analysis.summary"

//  PostgreSQL's text of a timestamptz ("2024-01-15 00:00:00+00", maybe
//  with a fraction and an offset with minutes) as ns since epoch.
static bool
s_time_ns (const char *text, int64_t *ns)
{
    struct tm tm = {0};
    int consumed = 0;
    if (sscanf (text, "%4d-%2d-%2d %2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = text + consumed;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 9)
                frac = frac * 10 + (*p - '0');
        for (; digits < 9; digits++)
            frac *= 10;
    }
    int sign = *p == '-' ? -1 : 1;
    if (*p != '+' && *p != '-')
        return false;
    int hours = 0, minutes = 0, seconds = 0;
    if (sscanf (p + 1, "%2d:%2d:%2d", &hours, &minutes, &seconds) < 1)
        return false;
    time_t t = timegm (&tm);
    *ns = ((int64_t) t - sign * (hours * 3600 + minutes * 60 + seconds)) * 1000000000 + frac;
    return true;
}

int
analysis_records (model_t *model, int64_t ts, analysis_fn *fn, void *arg, char *error,
                  size_t error_size)
{
    //  The summary section's per-source table; none when nothing matched
    model_table_t *table = NULL;
    for (size_t i = 0; i < model_sections (model) && !table; i++)
        if (strcmp (model_section (model, i)->id, "summary") == 0)
            table = model_table_find (model_section (model, i), "sources");
    if (!table)
        return 0;
    int source_col = model_column_find (table, "source");
    assert (source_col >= 0);
    int64_t since = 0, until = 0;
    if (model_since (model) && !s_time_ns (model_since (model), &since)) {
        snprintf (error, error_size, "cannot read the period's start \"%s\"", model_since (model));
        return -1;
    }
    if (model_until (model) && !s_time_ns (model_until (model), &until)) {
        snprintf (error, error_size, "cannot read the period's end \"%s\"", model_until (model));
        return -1;
    }
    char day[16], run[64];
    time_t seconds = (time_t) (ts / 1000000000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    strftime (day, sizeof day, "%Y-%m-%d", &tm);
    strftime (run, sizeof run, "report-%Y%m%dT%H%M%SZ", &tm);

    omni_record_encoder_t *enc = omni_record_encoder_new ();
    int count = 0;
    for (size_t r = 0; r < table->nrows; r++) {
        size_t fields = 1 + (model_since (model) != NULL) + (model_until (model) != NULL);
        for (size_t c = 0; c < table->ncols; c++)
            fields += (int) c != source_col && model_cell (table, r, c);
        omni_record_encoder_begin (enc, S_KIND, model_cell (table, r, (size_t) source_col),
                                   "omni-report", run, ts);
        msgpack_packer *pk = omni_record_encoder_body (enc);
        msgpack_pack_map (pk, fields);
        omni_record_pack_str (pk, "day");
        omni_record_pack_str (pk, day);
        if (model_since (model)) {
            omni_record_pack_str (pk, "since");
            msgpack_pack_int64 (pk, since);
        }
        if (model_until (model)) {
            omni_record_pack_str (pk, "until");
            msgpack_pack_int64 (pk, until);
        }
        for (size_t c = 0; c < table->ncols; c++) {
            const char *cell = model_cell (table, r, c);
            if ((int) c == source_col || !cell)
                continue;
            omni_record_pack_str (pk, table->cols[c].id);
            char *end;
            errno = 0;
            if (strchr (cell, '.'))
                msgpack_pack_double (pk, strtod (cell, &end));
            else
                msgpack_pack_int64 (pk, strtoll (cell, &end, 10));
            if (*end || errno) {
                snprintf (error, error_size, "%s of %s: \"%s\" is not a number", table->cols[c].id,
                          model_cell (table, r, (size_t) source_col), cell);
                omni_record_encoder_destroy (&enc);
                return -1;
            }
        }
        const void *data;
        size_t size;
        char detail[256];
        if (omni_record_encoder_end (enc, &data, &size, detail, sizeof detail) != 0) {
            snprintf (error, error_size, "record of %s: %s",
                      model_cell (table, r, (size_t) source_col), detail);
            omni_record_encoder_destroy (&enc);
            return -1;
        }
        if (fn (arg, data, size) != 0) {
            snprintf (error, error_size, "ingestd did not acknowledge (give_up)");
            omni_record_encoder_destroy (&enc);
            return -1;
        }
        count++;
    }
    omni_record_encoder_destroy (&enc);
    return count;
}

static int
s_send (void *arg, const void *data, size_t size)
{
    return omni_intake_client_send ((omni_intake_client_t *) arg, data, size);
}

int
analysis_send (model_t *model, int64_t ts, const analysis_config_t *config, char *error,
               size_t error_size)
{
    omni_intake_config_t intake = {
        .endpoint = config->endpoint, .give_up_ms = config->give_up_ms, .curve = config->curve};
    omni_intake_client_t *client = omni_intake_client_new (&intake);
    int count = analysis_records (model, ts, s_send, client, error, error_size);
    if (count >= 0 && omni_intake_client_flush (client) != 0) {
        snprintf (error, error_size, "ingestd at %s did not acknowledge the records",
                  config->endpoint);
        count = -1;
    }
    if (count >= 0 && omni_intake_client_rejected (client)) {
        snprintf (error, error_size,
                  "ingestd at %s refused %" PRIu64 " of %d records (an ingestd older than "
                  "the kind " S_KIND " does not know it; see its dead letters)",
                  config->endpoint, omni_intake_client_rejected (client), count);
        count = -1;
    }
    omni_intake_client_destroy (&client);
    return count;
}

//  ---------------------------------------------------------------------------

typedef struct {
    omni_record_t records[4];
    msgpack_zone zone;
    void *copies[4];
    size_t count;
} s_collected_t;

static int
s_collect (void *arg, const void *data, size_t size)
{
    s_collected_t *self = arg;
    assert (self->count < 4);
    void *copy = malloc (size);
    assert (copy);
    memcpy (copy, data, size);
    self->copies[self->count] = copy;
    char detail[128];
    assert (omni_record_decode (&self->records[self->count], &self->zone, copy, size,
                                &omni_record_default_limits, detail, sizeof detail) == REJECT_NONE);
    self->count++;
    return 0;
}

static void
s_collected_free (s_collected_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        free (self->copies[i]);
    msgpack_zone_destroy (&self->zone);
}

void
analysis_test (bool verbose)
{
    (void) verbose;
    int64_t ns;
    assert (s_time_ns ("2024-01-15 00:00:00+00", &ns) && ns == 1705276800000000000);
    assert (s_time_ns ("2024-01-15 01:30:00.25+01:30", &ns) && ns == 1705276800250000000);
    assert (s_time_ns ("2024-01-14 23:00:00-01", &ns) && ns == 1705276800000000000);
    assert (!s_time_ns ("infinity", &ns) && !s_time_ns ("2024-01-15 00:00:00", &ns));

    model_t *model = model_new ("p", "%", "2024-01-15 00:00:00+00", NULL);
    model_section_t *section = model_section_add (model, "summary", "Summary");
    model_table_t *table = model_table_add (section, "sources", "Per source");
    //  The columns of gather's per-source table
    const char *cols[] = {"source",       "commits",   "authors", "files",      "builds",
                          "success_rate", "test_runs", "tests",   "code_lines", "bus_factor"};
    for (size_t c = 0; c < 10; c++)
        model_column_add (table, cols[c], cols[c], c ? MODEL_NUM : MODEL_TEXT);
    const char *row1[] = {
        "github.com/acme/api", "11", "5", "4", "8", "0.6667", "30", "3", NULL, "2"};
    const char *row2[] = {"github.com/acme/web", "0", "0", "0", "0", NULL, "0", "0", "2650", NULL};
    model_row_add (table, row1);
    model_row_add (table, row2);

    int64_t ts = 1705312800000000000; //  2024-01-15 10:00 UTC
    s_collected_t got = {0};
    msgpack_zone_init (&got.zone, 4096);
    char error[256];
    int n = analysis_records (model, ts, s_collect, &got, error, sizeof error);
    if (n != 2)
        fprintf (stderr, "analysis: %d %s\n", n, error);
    assert (n == 2);
    omni_record_t *r = &got.records[0];
    assert (omni_record_str_eq (r->kind, S_KIND) &&
            omni_record_str_eq (r->src, "github.com/acme/api"));
    assert (r->spec == omni_kinds_lookup (S_KIND, strlen (S_KIND)) && r->ts == ts);
    omni_record_str_t s;
    int64_t v;
    double d;
    assert (omni_record_field_str (r->body, "day", &s) && omni_record_str_eq (s, "2024-01-15"));
    assert (omni_record_field_int (r->body, "since", &v) && v == 1705276800000000000);
    assert (!omni_record_field (r->body, "until") && !omni_record_field (r->body, "code_lines"));
    assert (omni_record_field_int (r->body, "commits", &v) && v == 11);
    assert (omni_record_field_num (r->body, "success_rate", &d) && d == 0.6667);
    r = &got.records[1];
    assert (!omni_record_field (r->body, "success_rate") &&
            !omni_record_field (r->body, "bus_factor"));
    assert (omni_record_field_int (r->body, "code_lines", &v) && v == 2650);
    uint8_t first[RECORD_ID_SIZE], again[RECORD_ID_SIZE];
    memcpy (first, got.records[0].id, RECORD_ID_SIZE);
    s_collected_free (&got);

    //  Later the same day: the same ids (the record replaces); another
    //  day: new ones
    memset (&got, 0, sizeof got);
    msgpack_zone_init (&got.zone, 4096);
    assert (analysis_records (model, ts + 3600000000000, s_collect, &got, error, sizeof error) ==
            2);
    memcpy (again, got.records[0].id, RECORD_ID_SIZE);
    assert (memcmp (first, again, RECORD_ID_SIZE) == 0);
    s_collected_free (&got);
    memset (&got, 0, sizeof got);
    msgpack_zone_init (&got.zone, 4096);
    assert (analysis_records (model, ts + 86400000000000, s_collect, &got, error, sizeof error) ==
            2);
    assert (memcmp (first, got.records[0].id, RECORD_ID_SIZE) != 0);
    s_collected_free (&got);

    //  A cell that is not a number is an error, not a wrong figure
    const char *bad[] = {"x", "12abc", "1", "1", "1", NULL, "1", "1", NULL, NULL};
    model_row_add (table, bad);
    memset (&got, 0, sizeof got);
    msgpack_zone_init (&got.zone, 4096);
    assert (analysis_records (model, ts, s_collect, &got, error, sizeof error) == -1);
    assert (strstr (error, "12abc"));
    s_collected_free (&got);
    model_destroy (&model);

    //  Nothing matched: no summary table, no record
    model = model_new ("p", "%", NULL, NULL);
    model_section_add (model, "summary", "Summary");
    assert (analysis_records (model, ts, s_collect, NULL, error, sizeof error) == 0);
    model_destroy (&model);
}
