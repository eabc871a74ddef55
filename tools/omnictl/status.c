/*  status: the deployment table (see status.h).

    A daemon is recognised by the prefix of its metric names (omni_ingestd_,
    omni_archiverd_, ...), not by the name the operator gave it, so targets
    can be named after hosts or shards. A writer's lag is not in its own
    metrics: only ingestd knows how far behind its journal a writer is, so
    it is read from every ingestd of the deployment and summed (one per
    shard, each with its own writers).                                        */
#include "tools/omnictl/status.h"
#include "common/buf.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/metrics.h"
#include "tools/omnictl/promtext.h"
#include "tools/omnictl/target.h"

#include <assert.h>
#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATUS_COLUMNS 7

struct _status_t {
    target_t **targets;
    size_t ntargets;
    int64_t timeout_ms;
    bool sampled;
};

//  Writer daemons and the writer name ingestd knows them by.
static const struct {
    const char *daemon, *writer;
} s_writer_roles[] = {{"archiverd", "archive"},
                      {"relationald", "relational"},
                      {"documentd", "document"},
                      {"metricsd", "metrics"},
                      {NULL, NULL}};

//  Counters whose names say something went wrong.
static const char *s_error_words[] = {"reject", "refus", "retr",        "error",
                                      "fail",   "drop",  "undecodable", NULL};

//  Counters that measure a daemon's throughput, in order of preference.
static const char *s_rate_counters[] = {"records_accepted_total", "records_stored_total",
                                        "records_sent_total", "records_received_total", NULL};

//  ---------------------------------------------------------------------------
//  Text helpers

//  A table of text cells printed with aligned columns; numeric columns are
//  right-aligned.
typedef struct {
    size_t ncols;
    const bool *right;
    char **cells;
    size_t nrows, cap;
} s_table_t;

static void
s_table_row (s_table_t *table, ...)
{
    omni_array_reserve (table->cells, table->cap, (table->nrows + 1) * table->ncols);
    va_list args;
    va_start (args, table);
    for (size_t c = 0; c < table->ncols; c++) {
        const char *cell = va_arg (args, const char *);
        table->cells[table->nrows * table->ncols + c] = strdup (cell ? cell : "");
    }
    va_end (args);
    table->nrows++;
}

static void
s_table_free (s_table_t *table)
{
    for (size_t i = 0; i < table->nrows * table->ncols; i++)
        free (table->cells[i]);
    free (table->cells);
    table->cells = NULL;
    table->nrows = table->cap = 0;
}

static void
s_table_render (s_table_t *table, omni_buf_t *out)
{
    size_t width[16] = {0};
    assert (table->ncols <= 16);
    for (size_t r = 0; r < table->nrows; r++)
        for (size_t c = 0; c < table->ncols; c++) {
            size_t len = strlen (table->cells[r * table->ncols + c]);
            if (len > width[c])
                width[c] = len;
        }
    for (size_t r = 0; r < table->nrows; r++) {
        for (size_t c = 0; c < table->ncols; c++) {
            const char *cell = table->cells[r * table->ncols + c];
            bool last = c + 1 == table->ncols;
            if (table->right[c] && r > 0)
                omni_buf_printf (out, "%*s", (int) width[c], cell);
            else if (last)
                omni_buf_printf (out, "%s", cell);
            else
                omni_buf_printf (out, "%-*s", (int) width[c], cell);
            if (!last)
                omni_buf_printf (out, "  ");
        }
        //  Trailing blanks of the last column would wrap narrow terminals.
        while (out->size && out->data[out->size - 1] == ' ')
            omni_buf_truncate (out, out->size - 1);
        omni_buf_printf (out, "\n");
    }
    s_table_free (table);
}

//  A count without a useless ".0", a rate with one decimal.
static void
s_number (char *out, size_t size, double value)
{
    if (isnan (value))
        snprintf (out, size, "-");
    else if (value == floor (value) && fabs (value) < 1e15)
        snprintf (out, size, "%.0f", value);
    else
        snprintf (out, size, "%.1f", value);
}

//  ---------------------------------------------------------------------------

status_t *
status_new (const char *const *targets, int64_t timeout_ms, char *error, size_t error_size)
{
    status_t *self = calloc (1, sizeof *self);
    assert (self);
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    for (const char *const *t = targets; t && *t; t++)
        self->ntargets++;
    if (self->ntargets == 0) {
        snprintf (error, error_size, "omnictl.targets: no target (expected NAME=HOST:PORT,...)");
        free (self);
        return NULL;
    }
    self->targets = calloc (self->ntargets, sizeof (target_t *));
    assert (self->targets);
    for (size_t i = 0; i < self->ntargets; i++) {
        self->targets[i] = target_new (targets[i], error, error_size);
        if (!self->targets[i]) {
            status_destroy (&self);
            return NULL;
        }
    }
    return self;
}

void
status_destroy (status_t **self_p)
{
    status_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->ntargets; i++)
        target_destroy (&self->targets[i]);
    free (self->targets);
    free (self);
    *self_p = NULL;
}

void
status_sample (status_t *self)
{
    target_scrape_all (self->targets, self->ntargets, self->timeout_ms);
    self->sampled = true;
}

bool
status_ok (status_t *self)
{
    for (size_t i = 0; i < self->ntargets; i++)
        if (!target_healthy (self->targets[i]))
            return false;
    return self->sampled;
}

//  The daemon kind of a target ("ingestd"), from its metric names.
static const char *
s_kind (target_t *target)
{
    promtext_t *page = target_metrics (target);
    return page ? promtext_daemon (page) : "";
}

//  The writer name ingestd knows a writer daemon by, into `out`; false when
//  the target is not a writer.
static bool
s_writer_name (target_t *target, char *out, size_t size)
{
    const char *kind = s_kind (target);
    for (size_t i = 0; s_writer_roles[i].daemon; i++)
        if (strcmp (kind, s_writer_roles[i].daemon) == 0) {
            snprintf (out, size, "%s", s_writer_roles[i].writer);
            return true;
        }
    //  A writer of another kind says its name in its healthy /health text.
    const char *found = strstr (target_health (target), "writer=");
    if (found) {
        found += 7;
        size_t len = strcspn (found, " ");
        if (len > 0 && len < size) {
            snprintf (out, size, "%.*s", (int) len, found);
            return true;
        }
    }
    return false;
}

//  A cell's metrics page; "-" in the cell until it says more, and for good
//  when there is no page (NULL).
static promtext_t *
s_cell_page (target_t *target, char *out, size_t size)
{
    snprintf (out, size, "-");
    return target_metrics (target);
}

static void
s_rate_cell (target_t *target, char *out, size_t size)
{
    promtext_t *page = s_cell_page (target, out, size);
    if (!page)
        return;
    for (size_t i = 0; s_rate_counters[i]; i++) {
        char name[160];
        snprintf (name, sizeof name, "omni_%s_%s", promtext_daemon (page), s_rate_counters[i]);
        double sum, rate;
        if (promtext_sum (page, name, &sum) == 0)
            continue;
        if (target_rate (target, name, NULL, NULL, &rate))
            snprintf (out, size, "%.1f", rate);
        return;
    }
}

static void
s_lag_cell (status_t *self, target_t *target, char *out, size_t size)
{
    promtext_t *page = s_cell_page (target, out, size);
    if (!page)
        return;
    char name[160], writer[64];
    double value;
    if (strcmp (promtext_daemon (page), "ingestd") == 0) {
        snprintf (name, sizeof name, "omni_ingestd_journal_records");
        if (promtext_get (page, name, NULL, NULL, &value)) {
            char number[32];
            s_number (number, sizeof number, value);
            snprintf (out, size, "journal %s", number);
        }
        return;
    }
    if (!s_writer_name (target, writer, sizeof writer))
        return;
    double records = 0, seconds = 0;
    bool found = false;
    for (size_t i = 0; i < self->ntargets; i++) {
        promtext_t *ingest = target_metrics (self->targets[i]);
        if (!ingest || strcmp (promtext_daemon (ingest), "ingestd") != 0)
            continue;
        if (promtext_get (ingest, "omni_ingestd_writer_lag_records", "writer", writer, &value)) {
            found = true;
            records += value;
            if (promtext_get (ingest, "omni_ingestd_writer_lag_seconds", "writer", writer,
                              &value) &&
                value > seconds)
                seconds = value;
        }
    }
    if (found) {
        char number[32];
        s_number (number, sizeof number, records);
        snprintf (out, size, "%s (%.1fs)", number, seconds);
    } else
        snprintf (out, size, "?");
}

static void
s_errors_cell (target_t *target, char *out, size_t size)
{
    promtext_t *page = s_cell_page (target, out, size);
    if (!page)
        return;
    char prefix[96];
    snprintf (prefix, sizeof prefix, "omni_%s_", promtext_daemon (page));
    size_t prefix_len = strlen (prefix);
    omni_buf_t text = {0};
    //  Sum each error counter over its labels, in page order, once per name.
    for (size_t i = 0; i < promtext_size (page); i++) {
        const char *name = promtext_name (page, i);
        size_t len = strlen (name);
        if (strncmp (name, prefix, prefix_len) != 0 || len < prefix_len + 6 ||
            strcmp (name + len - 6, "_total") != 0)
            continue;
        bool first = true;
        for (size_t j = 0; j < i && first; j++)
            first = strcmp (promtext_name (page, j), name) != 0;
        bool error = false;
        for (size_t w = 0; s_error_words[w] && !error; w++)
            error = strstr (name + prefix_len, s_error_words[w]) != NULL;
        double sum;
        if (!first || !error || (promtext_sum (page, name, &sum), sum == 0))
            continue;
        char number[32];
        s_number (number, sizeof number, sum);
        omni_buf_printf (&text, "%s%.*s=%s", text.size ? " " : "", (int) (len - prefix_len - 6),
                         name + prefix_len, number);
    }
    double value;
    char name[160];
    snprintf (name, sizeof name, "%sstore_up", prefix);
    if (promtext_get (page, name, NULL, NULL, &value) && value == 0)
        omni_buf_printf (&text, "%sstore_down", text.size ? " " : "");
    snprintf (name, sizeof name, "%sintake_paused", prefix);
    if (promtext_get (page, name, NULL, NULL, &value) && value == 1)
        omni_buf_printf (&text, "%sintake_paused", text.size ? " " : "");
    snprintf (out, size, "%s", text.size ? text.data : "0");
    omni_buf_release (&text);
}

//  The instance holding `writer`, from ingestd's /health line
//  "writer=NAME holder=INSTANCE ...", into `out`; "-" when not there.
static void
s_holder (target_t *target, const char *writer, char *out, size_t size)
{
    snprintf (out, size, "-");
    char key[96];
    snprintf (key, sizeof key, "\nwriter=%s holder=", writer);
    const char *found = strstr (target_health_text (target), key);
    if (found) {
        found += strlen (key);
        snprintf (out, size, "%.*s", (int) strcspn (found, " \r\n"), found);
    }
}

//  Per ingestd: every writer it delivers to, from its labelled gauges.
static void
s_render_writers (target_t *target, omni_buf_t *out)
{
    //  journal: jetstream: the writers take their records from their
    //  consumers, not from this ingestd: the stream and the consumers as its
    //  /health says them (the last lines) stand for the table
    const char *stream = strstr (target_health_text (target), "\nstream ");
    if (stream) {
        omni_buf_printf (out, "\njetstream journal of %s (%s)\n%s\n", target_name (target),
                         target_address (target), stream + 1);
        return;
    }
    promtext_t *page = target_metrics (target);
    static const bool right[] = {false, false, true, true, true, false};
    s_table_t table = {6, right, NULL, 0, 0};
    s_table_row (&table, "WRITER", "CONNECTED", "ACKED/S", "LAG RECORDS", "LAG SECONDS",
                 "INSTANCE");
    for (size_t i = 0; i < promtext_size (page); i++) {
        if (strcmp (promtext_name (page, i), "omni_ingestd_writer_lag_records") != 0)
            continue;
        const char *writer = promtext_label (page, i, "writer");
        if (!writer)
            continue;
        double connected = 0, seconds = 0, rate;
        promtext_get (page, "omni_ingestd_writer_connected", "writer", writer, &connected);
        promtext_get (page, "omni_ingestd_writer_lag_seconds", "writer", writer, &seconds);
        char rate_text[32], lag[32], age[32], holder[160];
        s_holder (target, writer, holder, sizeof holder);
        if (target_rate (target, "omni_ingestd_records_acked_total", "writer", writer, &rate))
            snprintf (rate_text, sizeof rate_text, "%.1f", rate);
        else
            snprintf (rate_text, sizeof rate_text, "-");
        s_number (lag, sizeof lag, promtext_value (page, i));
        snprintf (age, sizeof age, "%.1f", seconds);
        s_table_row (&table, writer, connected == 1 ? "yes" : "no", rate_text, lag, age, holder);
    }
    if (table.nrows > 1) {
        omni_buf_printf (out, "\nwriters of %s (%s)\n", target_name (target),
                         target_address (target));
        s_table_render (&table, out);
    } else
        s_table_free (&table);
    //  A writer added to a journal with history: its store misses what came
    //  before, and only a replay from the archive fills it.
    for (const char *line = strstr (target_health_text (target), "\nwriter="); line;
         line = strstr (line + 1, "\nwriter=")) {
        size_t len = strcspn (line + 1, "\n");
        const char *empty = strstr (line, " starts_empty=");
        const char *fill = strstr (line, " fill=\"");
        if (!empty || !fill || empty > line + 1 + len || fill > line + 1 + len)
            continue;
        int name_len = (int) strcspn (line + 8, " \n");
        bool seen = strstr (line, " replay=seen") && strstr (line, " replay=seen") < fill;
        fill += 7;
        omni_buf_printf (
            out,
            "note: writer %.*s was added to a journal that already had records: its store "
            "starts empty from offset %.*s%s; fill it from the archive:\n  %.*s\n",
            name_len, line + 8, (int) strcspn (empty + 14, " \n"), empty + 14,
            seen ? " (a replay to it was seen)" : "", (int) strcspn (fill, "\"\n"), fill);
    }
}

char *
status_render (status_t *self)
{
    omni_buf_t out = {0};
    static const bool right[STATUS_COLUMNS] = {false, false, false, true, false, false, false};
    s_table_t table = {STATUS_COLUMNS, right, NULL, 0, 0};
    s_table_row (&table, "DAEMON", "ADDRESS", "STATE", "RECORDS/S", "LAG", "ERRORS", "HEALTH");
    size_t up = 0;
    for (size_t i = 0; i < self->ntargets; i++) {
        target_t *target = self->targets[i];
        const char *state = !target_reached (target)   ? "down"
                            : !target_healthy (target) ? "unhealthy"
                                                       : "up";
        up += target_healthy (target);
        char rate[32], lag[64], errors[512];
        s_rate_cell (target, rate, sizeof rate);
        s_lag_cell (self, target, lag, sizeof lag);
        s_errors_cell (target, errors, sizeof errors);
        s_table_row (&table, target_name (target), target_address (target), state, rate, lag,
                     errors, target_health (target));
    }
    s_table_render (&table, &out);
    for (size_t i = 0; i < self->ntargets; i++)
        if (strcmp (s_kind (self->targets[i]), "ingestd") == 0)
            s_render_writers (self->targets[i], &out);
    omni_buf_printf (&out, "\n%zu of %zu daemons up and healthy\n", up, self->ntargets);
    return out.data;
}

//  ---------------------------------------------------------------------------
//  Self-test: a fake ingestd and a fake archiverd, each a real httpd with
//  the metric names the daemons export, and a target where nothing listens.

static bool
s_test_health (void *arg, char *text, size_t size)
{
    bool *ok = arg;
    snprintf (text, size, *ok ? "ok writer=archive acked_upto=5" : "store down: disk full");
    return *ok;
}

static bool
s_test_ingestd_health (void *arg, char *text, size_t size)
{
    (void) arg;
    snprintf (text, size,
              "ok received=12 accepted=10\nwriter=archive holder=h1:42@2026-01-01T00:00:00Z "
              "heard=0.2s\nwriter=relational holder=none starts_empty=7 replay=none "
              "fill=\"omnictl replay --archive-dir=ARCHIVE_DIR --intake=tcp://x:1 "
              "--writer=relational\"");
    return true;
}

void
status_test (bool verbose)
{
    if (!verbose)
        omni_log_init ("status-test", "error", "kv");
    curl_global_init (CURL_GLOBAL_DEFAULT);
    char error[256];
    const char *none[] = {NULL};
    assert (status_new (none, 1000, error, sizeof error) == NULL);
    const char *bad[] = {"ingestd=127.0.0.1:1", "oops", NULL};
    assert (status_new (bad, 1000, error, sizeof error) == NULL && strstr (error, "oops"));

    omni_metrics_t *im = omni_metrics_new ("omni_ingestd_");
    omni_metric_t *accepted = omni_metrics_counter (im, "records_accepted_total", "", NULL);
    omni_metric_t *rejected =
        omni_metrics_counter (im, "records_rejected_total", "", "reason=\"bad_body\"");
    omni_metrics_counter (im, "records_rejected_total", "", "reason=\"not_msgpack\"");
    omni_metric_set (omni_metrics_gauge (im, "journal_records", "", NULL), 40);
    omni_metric_set (omni_metrics_gauge (im, "writer_lag_records", "", "writer=\"archive\""), 40);
    omni_metric_set (omni_metrics_gauge (im, "writer_lag_seconds", "", "writer=\"archive\""), 2.5);
    omni_metric_set (omni_metrics_gauge (im, "writer_connected", "", "writer=\"archive\""), 1);
    omni_metric_set (omni_metrics_gauge (im, "writer_lag_records", "", "writer=\"relational\""), 0);
    omni_metric_t *acked =
        omni_metrics_counter (im, "records_acked_total", "", "writer=\"archive\"");
    omni_httpd_t *ingestd = omni_httpd_new ("127.0.0.1:0", im, s_test_ingestd_health, NULL);
    omni_metrics_t *am = omni_metrics_new ("omni_archiverd_");
    omni_metric_t *stored = omni_metrics_counter (am, "records_stored_total", "", NULL);
    omni_metric_t *retries = omni_metrics_counter (am, "store_retries_total", "", NULL);
    omni_metric_t *store_up = omni_metrics_gauge (am, "store_up", "", NULL);
    omni_metric_set (store_up, 1);
    bool archive_ok = true;
    omni_httpd_t *archiverd = omni_httpd_new ("127.0.0.1:0", am, s_test_health, &archive_ok);
    omni_httpd_t *gone = omni_httpd_new ("127.0.0.1:0", NULL, NULL, NULL);
    assert (ingestd && archiverd && gone);
    char specs[3][64];
    snprintf (specs[0], sizeof specs[0], "ingestd=127.0.0.1:%d", omni_httpd_port (ingestd));
    snprintf (specs[1], sizeof specs[1], "arch-1=127.0.0.1:%d", omni_httpd_port (archiverd));
    snprintf (specs[2], sizeof specs[2], "documentd=127.0.0.1:%d", omni_httpd_port (gone));
    omni_httpd_destroy (&gone);
    const char *targets[] = {specs[0], specs[1], specs[2], NULL};
    status_t *self = status_new (targets, 2000, error, sizeof error);
    assert (self);
    assert (!status_ok (self));

    omni_metric_add (accepted, 10);
    omni_metric_add (stored, 5);
    status_sample (self);
    usleep (200 * 1000);
    omni_metric_add (accepted, 100);
    omni_metric_add (stored, 100);
    omni_metric_add (acked, 100);
    omni_metric_add (rejected, 2);
    omni_metric_add (retries, 3);
    status_sample (self);
    assert (!status_ok (self));
    char *text = status_render (self);
    if (verbose)
        printf ("%s", text);
    //  Header, three daemons, the writers of ingestd, the summary.
    assert (strstr (text, "DAEMON"));
    char *line = strstr (text, "\ningestd ");
    assert (line && strstr (line, " up "));
    assert (strstr (line, "journal 40") && strstr (line, "records_rejected=2"));
    assert (strstr (line, "ok received=12 accepted=10"));
    line = strstr (text, "\narch-1 ");
    assert (line && strstr (line, " up "));
    assert (strstr (line, "40 (2.5s)") && strstr (line, "store_retries=3"));
    line = strstr (text, "\ndocumentd ");
    assert (line && strstr (line, " down ") && strstr (line, "unreachable"));
    assert (strstr (text, "writers of ingestd"));
    line = strstr (text, "\narchive ");
    assert (line && strstr (line, " yes "));
    //  Which instance holds the writer name, from ingestd's /health.
    assert (strstr (line, " h1:42@2026-01-01T00:00:00Z\n"));
    line = strstr (text, "\nrelational ");
    assert (line && strstr (line, " no "));
    assert (strstr (text, "2 of 3 daemons up and healthy"));
    assert (strstr (text, "note: writer relational was added to a journal that already had "
                          "records: its store starts empty from offset 7; fill it"));
    assert (strstr (text, "\n  omnictl replay --archive-dir=ARCHIVE_DIR --intake=tcp://x:1 "
                          "--writer=relational\n"));
    free (text);

    //  The writer's store goes down: unhealthy, store_down in its errors.
    archive_ok = false;
    omni_metric_set (store_up, 0);
    status_sample (self);
    text = status_render (self);
    line = strstr (text, "\narch-1 ");
    assert (line && strstr (line, " unhealthy ") && strstr (line, "store_down"));
    assert (strstr (line, "store down: disk full"));
    free (text);

    status_destroy (&self);
    const char *two[] = {specs[0], specs[1], NULL};
    self = status_new (two, 2000, error, sizeof error);
    archive_ok = true;
    status_sample (self);
    assert (status_ok (self));
    status_destroy (&self);
    assert (self == NULL);

    omni_httpd_destroy (&ingestd);
    omni_httpd_destroy (&archiverd);
    omni_metrics_destroy (&im);
    omni_metrics_destroy (&am);
    curl_global_cleanup ();
}
