/*  progress: how far a long collection run is, on stderr. On a terminal a
    bar redrawn in place (done/total, rate, ETA), at most ten times a second;
    otherwise one log line every `interval_ms`, so that logs stay readable.  */
#ifndef OMNI_COLLECTORD_PROGRESS_H
#define OMNI_COLLECTORD_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    PROGRESS_AUTO, //  bar when stderr is a terminal, else log lines
    PROGRESS_BAR,
    PROGRESS_LOG,
    PROGRESS_OFF
} progress_mode_t;

typedef struct _progress_t progress_t;

//  Parses "auto", "bar", "log" or "off"; returns -1 for anything else.
int progress_parse_mode (const char *text, progress_mode_t *mode);

progress_t *progress_new (progress_mode_t mode, int64_t interval_ms);
void progress_destroy (progress_t **self_p);

//  Starts a phase: `what` names it ("git commits"), `total` 0 = unknown.
void progress_start (progress_t *self, const char *what, uint64_t total);
//  Cheap enough to call for every item.
void progress_update (progress_t *self, uint64_t done);
//  Ends the phase: the bar gets its final state and a newline.
void progress_finish (progress_t *self);

//  The current line as it would be drawn, for tests.
const char *progress_line (progress_t *self);

void progress_test (bool verbose);

#endif
