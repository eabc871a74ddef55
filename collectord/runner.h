/*  runner: what collectord does with a collector once main has wired it:
    one run (run.start, the collection, run.end, every ACK, then the state)
    or a run every interval until the first signal, counted in the run
    metrics (runs_total, records_sent_total, last_run_*) that /health reads. */
#ifndef COLLECTORD_RUNNER_H
#define COLLECTORD_RUNNER_H

#include "collectord/collector.h"
#include "collectord/session.h"
#include "common/metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _runner_t runner_t;

//  `collector`'s open handle, the session and the registry outlive it.
runner_t *runner_new (const collector_t *collector, void *handle, session_t *session,
                      omni_metrics_t *metrics);
void runner_destroy (runner_t **self_p);

//  One run, or (interval > 0, not once, a collector that does not pace
//  itself) a run every interval after the previous one started, a failed
//  run tried again at the next, until a signal. Returns the exit code: 0
//  (also after a signal, once what was collected drained), 1 a single run
//  failed.
int runner_loop (runner_t *self, bool once, int64_t interval_ms);

//  /health (a health_fn): "ok runs=N last_run=ok failovers=N", failing
//  after a failed run.
bool runner_health (void *self, char *text, size_t size);

void runner_test (bool verbose);

#endif
