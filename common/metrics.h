/*  metrics: Prometheus counters, gauges and histograms, updated from any
    thread without locks (C11 atomics) and rendered in the text exposition
    format for /metrics. Every metric is registered once at start-up; labelled
    series (e.g. rejects by reason) are created on first use.                 */
#ifndef OMNI_METRICS_H
#define OMNI_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

typedef struct _omni_metrics_t omni_metrics_t;
typedef struct _omni_metric_t omni_metric_t;

//  `prefix` is prepended to every name, e.g. "omni_ingestd_".
omni_metrics_t *omni_metrics_new (const char *prefix);
void omni_metrics_destroy (omni_metrics_t **self_p);

//  `labels` is the Prometheus label text without braces, e.g.
//  "writer=\"archive\"", or NULL. Registering the same name and labels twice
//  returns the same series.
omni_metric_t *omni_metrics_counter (omni_metrics_t *self, const char *name, const char *help,
                                     const char *labels);
omni_metric_t *omni_metrics_gauge (omni_metrics_t *self, const char *name, const char *help,
                                   const char *labels);
//  Bucket upper bounds in ascending order (seconds for latencies); +Inf is implied.
omni_metric_t *omni_metrics_histogram (omni_metrics_t *self, const char *name, const char *help,
                                       const char *labels, const double *bounds, size_t nbounds);

void omni_metric_add (omni_metric_t *counter, uint64_t n);
void omni_metric_set (omni_metric_t *gauge, double value);
void omni_metric_observe (omni_metric_t *histogram, double value);
//  Current value of a counter or gauge (histograms: the count).
double omni_metric_value (omni_metric_t *metric);

//  The text exposition of all series; caller frees.
char *omni_metrics_render (omni_metrics_t *self);

//  Latency buckets in seconds shared by all daemons: 100us .. 60s.
extern const double omni_metrics_latency_bounds[];
extern const size_t omni_metrics_latency_nbounds;

void omni_metrics_test (bool verbose);

#endif
