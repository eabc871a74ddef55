/*  derive: the one table that says which time-series points metricsd makes
    of which records. A `metric` record is one point as it is; `git.commit`,
    `ci.build` and `ci.test` records give points derived from their bodies
    (commits, insertions, build success, test durations...). Each point is
    (time, series name, value, source, tags), the row of the points table.

    The table is in derive.c and documented in docs/metricsd.md; nothing
    else in metricsd knows about kinds.                                       */
#ifndef OMNI_METRICSD_DERIVE_H
#define OMNI_METRICSD_DERIVE_H

#include "proto/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  A point is refused when its key cannot fit a PostgreSQL index entry
//  (2704 bytes): these bounds keep name + source + tags well below it.
#define DERIVE_MAX_NAME   256
#define DERIVE_MAX_SOURCE 512
#define DERIVE_MAX_TAGS   1024 //  bytes of the tags' JSON text

typedef struct {
    int64_t time_ns;  //  event time, ns since the epoch
    const char *name; //  series name, not NUL-terminated
    size_t name_len;
    double value;
    const char *source; //  the record's src
    size_t source_len;
    const char *tags; //  a JSON object, e.g. {"host":"a"}; no \u0000 in it
    size_t tags_len;
} derive_point_t;

//  Why a point that a rule would make was not made (counted, not fatal).
typedef enum {
    DERIVE_SKIP_TIME_RANGE, //  the event time does not fit int64 ns (1677..2262)
    DERIVE_SKIP_TOO_LARGE,  //  name, source or tags over the bounds above
    DERIVE_SKIP_NOT_FINITE, //  NaN or infinite value
    DERIVE_SKIP_COUNT
} derive_skip_t;

typedef struct _derive_t derive_t;

//  Called once per point; the point's text is valid during the call only.
typedef void (derive_point_fn) (void *arg, const derive_point_t *point);

derive_t *derive_new (void);
void derive_destroy (derive_t **self_p);

//  Makes the points of one record (none for a kind without rules, or when
//  the optional fields a rule needs are absent). Returns how many.
size_t derive_record (derive_t *self, const omni_record_t *record, derive_point_fn *emit,
                      void *arg);

//  Points not made, by reason, since creation.
uint64_t derive_skipped (derive_t *self, derive_skip_t reason);
const char *derive_skip_name (derive_skip_t reason);

//  Whether a kind has rules.
bool derive_wants (const omni_kind_spec_t *spec);

void derive_test (bool verbose);

#endif
