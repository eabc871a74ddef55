/*  promtext: a parsed /metrics page (Prometheus text exposition format).

    Parsed by hand rather than with a library: the format is one sample per
    line, `name{label="value",...} value [timestamp]`, with `#` comments, and
    no well-kept C parser for it exists. Lines that do not parse are skipped
    and counted, so one odd line never hides the rest of a page.             */
#ifndef OMNICTL_PROMTEXT_H
#define OMNICTL_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct _promtext_t promtext_t;

//  Parses `text` (copied); never fails on content.
promtext_t *promtext_new (const char *text);
void promtext_destroy (promtext_t **self_p);

//  Samples parsed, and lines skipped because they did not parse.
size_t promtext_size (promtext_t *self);
size_t promtext_skipped (promtext_t *self);

//  The sample at `index`: metric name, value, and the value of one of its
//  labels (NULL when it has no such label; unescaped, valid until destroy).
const char *promtext_name (promtext_t *self, size_t index);
double promtext_value (promtext_t *self, size_t index);
const char *promtext_label (promtext_t *self, size_t index, const char *label);

//  The value of sample `name` whose label `label` equals `value` (both NULL:
//  the sample without labels, or the first one). False when there is none.
bool promtext_get (promtext_t *self, const char *name, const char *label, const char *value,
                   double *result);

//  The sum over every sample of `name`, whatever its labels; returns how
//  many samples there were (0: the metric is absent, *sum = 0).
size_t promtext_sum (promtext_t *self, const char *name, double *sum);

//  The daemon part of the first "omni_<daemon>_..." name, e.g. "ingestd",
//  or "" when the page has none.
const char *promtext_daemon (promtext_t *self);

void promtext_test (bool verbose);

#endif
