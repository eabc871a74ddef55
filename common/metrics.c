/*  metrics: Prometheus counters, gauges and histograms, updated from any
    thread without locks (C11 atomics) and rendered in the text exposition
    format for /metrics.

    Series are grouped in families (one name, help and type) so that the
    # HELP and # TYPE lines appear once per name even when labelled series are
    created later, interleaved with other metrics. Registration and rendering
    take the registry mutex; updates never do. Series are never freed before
    omni_metrics_destroy, so a omni_metric_t pointer stays valid for the registry's life. */
#include "common/metrics.h"
#include "common/buf.h"
#include "common/log.h"

#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type_t;

static const char *s_type_names[] = {"counter", "gauge", "histogram"};

typedef struct _family_t family_t;

struct _omni_metric_t {
    omni_metric_t *next; //  next series of the same family
    family_t *family;
    char *labels;           //  never NULL, "" when unlabelled
    _Atomic uint64_t value; //  counter count, or gauge double bits
    double *bounds;         //  histogram only
    size_t nbounds;
    _Atomic uint64_t *buckets; //  nbounds + 1, not cumulative, last is +Inf
    _Atomic uint64_t sum;      //  histogram sum, double bits
};

struct _family_t {
    family_t *next;
    char *name;
    char *help;
    metric_type_t type;
    omni_metric_t *series, *last;
};

struct _omni_metrics_t {
    char *prefix;
    pthread_mutex_t lock;
    family_t *families, *last;
};

const double omni_metrics_latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                              1,      2.5,     5,      10,    30,     60};
const size_t omni_metrics_latency_nbounds =
    sizeof omni_metrics_latency_bounds / sizeof omni_metrics_latency_bounds[0];

static uint64_t
s_bits (double value)
{
    uint64_t bits;
    memcpy (&bits, &value, sizeof bits);
    return bits;
}

static double
s_double (uint64_t bits)
{
    double value;
    memcpy (&value, &bits, sizeof value);
    return value;
}

//  Adds to a double held as bits in an atomic word; the CAS loop retries
//  when another thread changed it in between.
static void
s_atomic_add_double (_Atomic uint64_t *word, double delta)
{
    uint64_t old = atomic_load_explicit (word, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit (word, &old, s_bits (s_double (old) + delta),
                                                   memory_order_relaxed, memory_order_relaxed))
        ;
}

static bool
s_valid_name (const char *name)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':';
        bool digit = *p >= '0' && *p <= '9';
        if (!alpha && !(digit && p > name))
            return false;
    }
    return true;
}

omni_metrics_t *
omni_metrics_new (const char *prefix)
{
    omni_metrics_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->prefix = strdup (prefix ? prefix : "");
    if (!self->prefix) {
        free (self);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    return self;
}

void
omni_metrics_destroy (omni_metrics_t **self_p)
{
    assert (self_p);
    omni_metrics_t *self = *self_p;
    if (!self)
        return;
    family_t *family = self->families;
    while (family) {
        family_t *next_family = family->next;
        omni_metric_t *series = family->series;
        while (series) {
            omni_metric_t *next = series->next;
            free (series->labels);
            free (series->bounds);
            free ((void *) series->buckets);
            free (series);
            series = next;
        }
        free (family->name);
        free (family->help);
        free (family);
        family = next_family;
    }
    pthread_mutex_destroy (&self->lock);
    free (self->prefix);
    free (self);
    *self_p = NULL;
}

static omni_metric_t *
s_register (omni_metrics_t *self, metric_type_t type, const char *name, const char *help,
            const char *labels, const double *bounds, size_t nbounds)
{
    assert (self);
    if (!s_valid_name (name)) {
        log_error ("metrics.register", "name=\"%s\" error=\"invalid metric name\"",
                   name ? name : "");
        return NULL;
    }
    if (!labels)
        labels = "";
    for (size_t i = 1; i < nbounds; i++)
        if (!(bounds[i] > bounds[i - 1])) {
            log_error ("metrics.register", "name=%s error=\"bounds not ascending\"", name);
            return NULL;
        }

    pthread_mutex_lock (&self->lock);
    omni_metric_t *series = NULL;
    family_t *family = self->families;
    while (family && strcmp (family->name, name) != 0)
        family = family->next;
    if (family && family->type != type) {
        pthread_mutex_unlock (&self->lock);
        log_error ("metrics.register", "name=%s error=\"registered as %s, not %s\"", name,
                   s_type_names[family->type], s_type_names[type]);
        return NULL;
    }
    if (family)
        for (series = family->series; series; series = series->next)
            if (strcmp (series->labels, labels) == 0) {
                pthread_mutex_unlock (&self->lock);
                return series;
            }
    bool new_family = !family;
    if (new_family) {
        family = calloc (1, sizeof *family);
        if (!family)
            goto failed;
        family->name = strdup (name);
        family->help = strdup (help ? help : "");
        family->type = type;
        if (!family->name || !family->help)
            goto failed;
    }
    series = calloc (1, sizeof *series);
    if (!series)
        goto failed;
    series->family = family;
    series->labels = strdup (labels);
    if (!series->labels)
        goto failed;
    atomic_init (&series->value, type == METRIC_GAUGE ? s_bits (0.0) : 0);
    atomic_init (&series->sum, s_bits (0.0));
    if (type == METRIC_HISTOGRAM) {
        series->nbounds = nbounds;
        series->bounds = malloc ((nbounds ? nbounds : 1) * sizeof (double));
        series->buckets = calloc (nbounds + 1, sizeof (_Atomic uint64_t));
        if (!series->bounds || !series->buckets)
            goto failed;
        if (nbounds)
            memcpy (series->bounds, bounds, nbounds * sizeof (double));
        for (size_t i = 0; i <= nbounds; i++)
            atomic_init (&series->buckets[i], 0);
    }
    if (family->last)
        family->last->next = series;
    else
        family->series = series;
    family->last = series;
    if (new_family) {
        if (self->last)
            self->last->next = family;
        else
            self->families = family;
        self->last = family;
    }
    pthread_mutex_unlock (&self->lock);
    return series;

failed:
    if (series) {
        free (series->labels);
        free (series->bounds);
        free ((void *) series->buckets);
        free (series);
    }
    if (new_family && family) {
        free (family->name);
        free (family->help);
        free (family);
    }
    pthread_mutex_unlock (&self->lock);
    log_error ("metrics.register", "name=%s error=\"out of memory\"", name);
    return NULL;
}

omni_metric_t *
omni_metrics_counter (omni_metrics_t *self, const char *name, const char *help, const char *labels)
{
    return s_register (self, METRIC_COUNTER, name, help, labels, NULL, 0);
}

omni_metric_t *
omni_metrics_gauge (omni_metrics_t *self, const char *name, const char *help, const char *labels)
{
    return s_register (self, METRIC_GAUGE, name, help, labels, NULL, 0);
}

omni_metric_t *
omni_metrics_histogram (omni_metrics_t *self, const char *name, const char *help,
                        const char *labels, const double *bounds, size_t nbounds)
{
    assert (bounds || nbounds == 0);
    return s_register (self, METRIC_HISTOGRAM, name, help, labels, bounds, nbounds);
}

//  Updates accept NULL so that a metric whose registration failed (logged
//  then) does not take the daemon down on its hot path.
void
omni_metric_add (omni_metric_t *self, uint64_t n)
{
    if (!self)
        return;
    if (self->family->type == METRIC_COUNTER)
        atomic_fetch_add_explicit (&self->value, n, memory_order_relaxed);
    else if (self->family->type == METRIC_GAUGE)
        s_atomic_add_double (&self->value, (double) n);
}

void
omni_metric_set (omni_metric_t *self, double value)
{
    if (!self)
        return;
    if (self->family->type == METRIC_GAUGE)
        atomic_store_explicit (&self->value, s_bits (value), memory_order_relaxed);
    else if (self->family->type == METRIC_COUNTER)
        //  For counters mirrored from elsewhere (e.g. totals kept on disk)
        atomic_store_explicit (&self->value,
                               value > 0 && value < 18446744073709551616.0 ? (uint64_t) value : 0,
                               memory_order_relaxed);
}

void
omni_metric_observe (omni_metric_t *self, double value)
{
    if (!self || self->family->type != METRIC_HISTOGRAM)
        return;
    //  Bounds are few (about 20): a linear scan beats a binary search here
    size_t i = 0;
    while (i < self->nbounds && !(value <= self->bounds[i]))
        i++;
    atomic_fetch_add_explicit (&self->buckets[i], 1, memory_order_relaxed);
    s_atomic_add_double (&self->sum, value);
}

double
omni_metric_value (omni_metric_t *self)
{
    if (!self)
        return 0;
    if (self->family->type == METRIC_COUNTER)
        return (double) atomic_load_explicit (&self->value, memory_order_relaxed);
    if (self->family->type == METRIC_GAUGE)
        return s_double (atomic_load_explicit (&self->value, memory_order_relaxed));
    uint64_t count = 0;
    for (size_t i = 0; i <= self->nbounds; i++)
        count += atomic_load_explicit (&self->buckets[i], memory_order_relaxed);
    return (double) count;
}

//  --------------------------------------------------------------------------
//  Rendering

//  The exposition text; on allocation failure the scrape fails (NULL), the
//  daemon carries on.
typedef struct {
    omni_buf_t buf;
    bool failed;
} s_text_t;

static void s_printf (s_text_t *text, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_printf (s_text_t *text, const char *format, ...)
{
    if (text->failed)
        return;
    va_list args;
    va_start (args, format);
    if (omni_buf_try_vprintf (&text->buf, format, args))
        text->failed = true;
    va_end (args);
}

//  Shortest text that reads back as the same double, in Prometheus spelling
//  for the special values.
static void
s_format_double (double value, char *out, size_t size)
{
    if (isnan (value))
        snprintf (out, size, "NaN");
    else if (isinf (value))
        snprintf (out, size, value > 0 ? "+Inf" : "-Inf");
    else {
        snprintf (out, size, "%.15g", value);
        if (strtod (out, NULL) != value)
            snprintf (out, size, "%.17g", value);
    }
}

//  HELP text escapes only backslash and newline, per the exposition format.
static void
s_print_help (s_text_t *text, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            s_printf (text, "\\\\");
        else if (*p == '\n')
            s_printf (text, "\\n");
        else
            s_printf (text, "%c", *p);
    }
}

static void
s_render_series (s_text_t *text, const char *prefix, family_t *family, omni_metric_t *series)
{
    const char *labels = series->labels;
    const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
    char number[64];
    if (family->type == METRIC_COUNTER)
        s_printf (text, "%s%s%s%s%s %" PRIu64 "\n", prefix, family->name, open, labels, close,
                  atomic_load_explicit (&series->value, memory_order_relaxed));
    else if (family->type == METRIC_GAUGE) {
        s_format_double (s_double (atomic_load_explicit (&series->value, memory_order_relaxed)),
                         number, sizeof number);
        s_printf (text, "%s%s%s%s%s %s\n", prefix, family->name, open, labels, close, number);
    } else {
        //  _count is the +Inf bucket as rendered, so the two always agree
        //  even while other threads observe
        uint64_t cumulative = 0;
        for (size_t i = 0; i <= series->nbounds; i++) {
            cumulative += atomic_load_explicit (&series->buckets[i], memory_order_relaxed);
            if (i < series->nbounds)
                s_format_double (series->bounds[i], number, sizeof number);
            else
                strcpy (number, "+Inf");
            s_printf (text, "%s%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", prefix, family->name,
                      labels, *labels ? "," : "", number, cumulative);
        }
        s_format_double (s_double (atomic_load_explicit (&series->sum, memory_order_relaxed)),
                         number, sizeof number);
        s_printf (text, "%s%s_sum%s%s%s %s\n", prefix, family->name, open, labels, close, number);
        s_printf (text, "%s%s_count%s%s%s %" PRIu64 "\n", prefix, family->name, open, labels, close,
                  cumulative);
    }
}

char *
omni_metrics_render (omni_metrics_t *self)
{
    assert (self);
    s_text_t text = {{0}, false};
    if (omni_buf_try_reserve (&text.buf, 4096))
        return NULL;
    pthread_mutex_lock (&self->lock);
    for (family_t *family = self->families; family; family = family->next) {
        s_printf (&text, "# HELP %s%s ", self->prefix, family->name);
        s_print_help (&text, family->help);
        s_printf (&text, "\n# TYPE %s%s %s\n", self->prefix, family->name,
                  s_type_names[family->type]);
        for (omni_metric_t *series = family->series; series; series = series->next)
            s_render_series (&text, self->prefix, family, series);
    }
    pthread_mutex_unlock (&self->lock);
    if (text.failed) {
        omni_buf_release (&text.buf);
        return NULL;
    }
    return text.buf.data;
}

//  --------------------------------------------------------------------------
//  Self test

#define METRICS_TEST_THREADS 4
#define METRICS_TEST_LOOPS   100000

typedef struct {
    omni_metric_t *counter, *gauge, *histogram;
} s_test_args_t;

static void *
s_test_thread (void *arg)
{
    s_test_args_t *args = arg;
    for (int i = 0; i < METRICS_TEST_LOOPS; i++) {
        omni_metric_add (args->counter, 1);
        omni_metric_add (args->gauge, 1);
        omni_metric_observe (args->histogram, 0.5);
    }
    return NULL;
}

void
omni_metrics_test (bool verbose)
{
    assert (omni_metrics_latency_nbounds == 18);
    assert (omni_metrics_latency_bounds[0] == 0.0001 && omni_metrics_latency_bounds[17] == 60);

    omni_metrics_t *metrics = omni_metrics_new ("omni_test_");
    assert (metrics);
    char *text = omni_metrics_render (metrics);
    assert (text && strcmp (text, "") == 0);
    free (text);

    omni_metric_t *records = omni_metrics_counter (metrics, "records_total", "Records read.", NULL);
    assert (records);
    assert (omni_metrics_counter (metrics, "records_total", "Records read.", NULL) == records);
    omni_metric_t *archive =
        omni_metrics_counter (metrics, "writes_total", "Writes by writer.", "writer=\"archive\"");
    omni_metric_t *lag =
        omni_metrics_gauge (metrics, "lag_seconds", "Lag behind the journal.", NULL);
    omni_metric_t *latency = omni_metrics_histogram (metrics, "write_seconds", "Write latency.",
                                                     NULL, (const double[]){0.1, 1, 2.5}, 3);
    //  A labelled series created later still renders under its family
    omni_metric_t *index =
        omni_metrics_counter (metrics, "writes_total", "Writes by writer.", "writer=\"index\"");
    assert (archive && lag && latency && index && archive != index);
    omni_metric_t *by_kind =
        omni_metrics_histogram (metrics, "batch_seconds", "Batch latency\nin s \\.", "kind=\"a\"",
                                omni_metrics_latency_bounds, omni_metrics_latency_nbounds);
    assert (by_kind);

    //  Misuse is refused (and logged: quiet unless verbose), and updates of
    //  a NULL metric are harmless
    int saved = dup (STDERR_FILENO);
    if (!verbose) {
        int null = open ("/dev/null", O_WRONLY);
        dup2 (null, STDERR_FILENO);
        close (null);
    }
    assert (omni_metrics_gauge (metrics, "records_total", "x", NULL) == NULL);
    assert (omni_metrics_counter (metrics, "bad name", "x", NULL) == NULL);
    assert (omni_metrics_counter (metrics, "9lives", "x", NULL) == NULL);
    assert (omni_metrics_histogram (metrics, "h", "x", NULL, (const double[]){2, 1}, 2) == NULL);
    omni_metric_add (NULL, 1);
    omni_metric_set (NULL, 1);
    omni_metric_observe (NULL, 1);
    assert (omni_metric_value (NULL) == 0);
    dup2 (saved, STDERR_FILENO);
    close (saved);

    omni_metric_add (records, 3);
    omni_metric_add (records, 2);
    assert (omni_metric_value (records) == 5);
    omni_metric_add (archive, 7);
    omni_metric_set (lag, 1.5);
    assert (omni_metric_value (lag) == 1.5);
    omni_metric_set (lag, -0.25);
    omni_metric_add (lag, 1);
    assert (omni_metric_value (lag) == 0.75);
    omni_metric_observe (latency, 0.05);
    omni_metric_observe (latency, 0.1); //  le is inclusive
    omni_metric_observe (latency, 2);
    omni_metric_observe (latency, 100);
    assert (omni_metric_value (latency) == 4);
    omni_metric_observe (by_kind, 0.003);

    text = omni_metrics_render (metrics);
    assert (text);
    if (verbose)
        printf ("%s", text);
    const char *expected = "# HELP omni_test_records_total Records read.\n"
                           "# TYPE omni_test_records_total counter\n"
                           "omni_test_records_total 5\n"
                           "# HELP omni_test_writes_total Writes by writer.\n"
                           "# TYPE omni_test_writes_total counter\n"
                           "omni_test_writes_total{writer=\"archive\"} 7\n"
                           "omni_test_writes_total{writer=\"index\"} 0\n"
                           "# HELP omni_test_lag_seconds Lag behind the journal.\n"
                           "# TYPE omni_test_lag_seconds gauge\n"
                           "omni_test_lag_seconds 0.75\n"
                           "# HELP omni_test_write_seconds Write latency.\n"
                           "# TYPE omni_test_write_seconds histogram\n"
                           "omni_test_write_seconds_bucket{le=\"0.1\"} 2\n"
                           "omni_test_write_seconds_bucket{le=\"1\"} 2\n"
                           "omni_test_write_seconds_bucket{le=\"2.5\"} 3\n"
                           "omni_test_write_seconds_bucket{le=\"+Inf\"} 4\n"
                           "omni_test_write_seconds_sum 102.15\n"
                           "omni_test_write_seconds_count 4\n"
                           "# HELP omni_test_batch_seconds Batch latency\\nin s \\\\.\n"
                           "# TYPE omni_test_batch_seconds histogram\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"0.0001\"} 0\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"0.00025\"} 0\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"0.0005\"} 0\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"0.001\"} 0\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"0.0025\"} 0\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"0.005\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"0.01\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"0.025\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"0.05\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"0.1\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"0.25\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"0.5\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"1\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"2.5\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"5\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"10\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"30\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"60\"} 1\n"
                           "omni_test_batch_seconds_bucket{kind=\"a\",le=\"+Inf\"} 1\n"
                           "omni_test_batch_seconds_sum{kind=\"a\"} 0.003\n"
                           "omni_test_batch_seconds_count{kind=\"a\"} 1\n";
    if (strcmp (text, expected) != 0)
        fprintf (stderr, "omni_metrics_test: rendered\n%s", text);
    assert (strcmp (text, expected) == 0);
    free (text);

    //  Special gauge values in Prometheus spelling
    omni_metric_set (lag, INFINITY);
    text = omni_metrics_render (metrics);
    assert (strstr (text, "\nomni_test_lag_seconds +Inf\n"));
    free (text);
    omni_metric_set (lag, NAN);
    text = omni_metrics_render (metrics);
    assert (strstr (text, "\nomni_test_lag_seconds NaN\n"));
    free (text);
    omni_metric_set (lag, 0.1);
    text = omni_metrics_render (metrics);
    assert (strstr (text, "\nomni_test_lag_seconds 0.1\n"));
    free (text);
    omni_metric_set (records, 42);
    assert (omni_metric_value (records) == 42);

    //  Concurrent updates lose nothing
    omni_metric_t *shared = omni_metrics_counter (metrics, "shared_total", "", NULL);
    omni_metric_t *level = omni_metrics_gauge (metrics, "shared_level", "", NULL);
    omni_metric_t *spread =
        omni_metrics_histogram (metrics, "shared_seconds", "", NULL, omni_metrics_latency_bounds,
                                omni_metrics_latency_nbounds);
    s_test_args_t args = {shared, level, spread};
    pthread_t threads[METRICS_TEST_THREADS];
    for (int i = 0; i < METRICS_TEST_THREADS; i++)
        assert (pthread_create (&threads[i], NULL, s_test_thread, &args) == 0);
    //  Render while the threads run, as the HTTP thread would
    for (int i = 0; i < 10; i++) {
        text = omni_metrics_render (metrics);
        assert (text);
        free (text);
    }
    for (int i = 0; i < METRICS_TEST_THREADS; i++)
        pthread_join (threads[i], NULL);
    double total = (double) METRICS_TEST_THREADS * METRICS_TEST_LOOPS;
    assert (omni_metric_value (shared) == total);
    assert (omni_metric_value (level) == total);
    assert (omni_metric_value (spread) == total);
    text = omni_metrics_render (metrics);
    char line[128];
    snprintf (line, sizeof line, "\nomni_test_shared_seconds_sum %.15g\n", total * 0.5);
    assert (strstr (text, line));
    snprintf (line, sizeof line,
              "\nomni_test_shared_seconds_bucket{le=\"0.25\"} 0\n"
              "omni_test_shared_seconds_bucket{le=\"0.5\"} %.0f\n",
              total);
    assert (strstr (text, line));
    free (text);

    omni_metrics_destroy (&metrics);
    assert (metrics == NULL);
    omni_metrics_destroy (&metrics);
}
