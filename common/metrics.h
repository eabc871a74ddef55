/*  metrics: Prometheus counters, gauges and histograms, updated from any
    thread without locks (C11 atomics) and rendered in the text exposition
    format for /metrics. Every metric is registered once at start-up; labelled
    series (e.g. rejects by reason) are created on first use.                 */
#ifndef OMNI_METRICS_H
#define OMNI_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

typedef struct _metrics_t metrics_t;
typedef struct _metric_t metric_t;

//  `prefix` is prepended to every name, e.g. "omni_ingestd_".
metrics_t *metrics_new (const char *prefix);
void metrics_destroy (metrics_t **self_p);

//  `labels` is the Prometheus label text without braces, e.g.
//  "writer=\"archive\"", or NULL. Registering the same name and labels twice
//  returns the same series.
metric_t *metrics_counter (metrics_t *self, const char *name, const char *help, const char *labels);
metric_t *metrics_gauge (metrics_t *self, const char *name, const char *help, const char *labels);
//  Bucket upper bounds in ascending order (seconds for latencies); +Inf is implied.
metric_t *metrics_histogram (metrics_t *self, const char *name, const char *help,
                             const char *labels, const double *bounds, size_t nbounds);

void metric_add (metric_t *counter, uint64_t n);
void metric_set (metric_t *gauge, double value);
void metric_observe (metric_t *histogram, double value);
//  Current value of a counter or gauge (histograms: the count).
double metric_value (metric_t *metric);

//  The text exposition of all series; caller frees.
char *metrics_render (metrics_t *self);

//  Latency buckets in seconds shared by all daemons: 100us .. 60s.
extern const double metrics_latency_bounds[];
extern const size_t metrics_latency_nbounds;

void metrics_test (bool verbose);

#endif
