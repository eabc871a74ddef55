/*  status: the one-table view of a deployment that `omnictl status` prints:
    per daemon whether it is up and healthy, its record rate, its lag and its
    error counters, then per ingestd the writers it delivers to.             */
#ifndef OMNICTL_STATUS_H
#define OMNICTL_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _status_t status_t;

//  `targets` is a NULL-terminated list of target specs (see target.h).
//  Returns NULL with `error` filled when one does not parse.
status_t *status_new (const char *const *targets, int64_t timeout_ms, char *error,
                      size_t error_size);
void status_destroy (status_t **self_p);

//  Scrapes every daemon once; rates need two samples.
void status_sample (status_t *self);

//  The table for the last sample; caller frees.
char *status_render (status_t *self);

//  Every daemon answered /health with 200 at the last sample.
bool status_ok (status_t *self);

void status_test (bool verbose);

#endif
