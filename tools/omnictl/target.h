/*  target: one daemon of a deployment as omnictl sees it, through its
    /metrics and /health over HTTP (libcurl). Keeps the last two /metrics
    pages, so counters turn into rates.                                       */
#ifndef OMNICTL_TARGET_H
#define OMNICTL_TARGET_H

#include "tools/omnictl/promtext.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _target_t target_t;

//  `spec` is "NAME=HOST:PORT", "HOST:PORT" (named after the address) or
//  "NAME=http://HOST:PORT". Returns NULL with `error` filled when it is not.
target_t *target_new (const char *spec, char *error, size_t error_size);
void target_destroy (target_t **self_p);

const char *target_name (target_t *self);
//  "HOST:PORT", or the base URL as given.
const char *target_address (target_t *self);

//  Fetches /metrics and /health of every target at once, each request
//  bounded by `timeout_ms`, so one dead host costs one timeout, not one per
//  target. The previous /metrics page is kept for target_rate.
void target_scrape_all (target_t **targets, size_t count, int64_t timeout_ms);

//  /health answered (any status) at the last scrape.
bool target_reached (target_t *self);
//  /health answered 200 at the last scrape.
bool target_healthy (target_t *self);
//  The first line of /health, or why the daemon could not be reached.
const char *target_health (target_t *self);
//  The whole /health answer ("" when none): ingestd adds a line per writer.
const char *target_health_text (target_t *self);
//  The last /metrics page, NULL when it could not be fetched.
promtext_t *target_metrics (target_t *self);

//  Per-second rate of a counter between the last two scrapes: the sum over
//  its samples, or the sample whose `label` equals `value`. False when it
//  cannot be computed (first scrape, metric absent, counter reset).
bool target_rate (target_t *self, const char *name, const char *label, const char *value,
                  double *rate);

void target_test (bool verbose);

#endif
