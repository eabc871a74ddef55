/*  log: one line per event on stderr, key=value (default) or JSON, with the
    daemon name, so that logs of many daemons can be merged and parsed.       */
#ifndef OMNI_LOG_H
#define OMNI_LOG_H

#include <stdbool.h>
#include <stdint.h>

//  LOGL_: syslog.h (pulled in by czmq.h) owns the LOG_ names.
typedef enum { LOGL_DEBUG = 0, LOGL_INFO, LOGL_WARN, LOGL_ERROR } omni_log_level_t;

//  Sets the daemon name, the minimum level ("debug", "info", "warn", "error")
//  and the format ("kv" or "json"). Returns -1 on an unknown level or format.
int omni_log_init (const char *daemon, const char *level, const char *format);

//  Logs one event. `fields` is printf-style text of space-separated key=value
//  pairs; a value with spaces is written in double quotes: `path="a b" n=3`.
//  In JSON mode the pairs become members of the JSON object.
//  Every %s value (after `key=`, or inside quotes the format opened) is
//  escaped here: quotes and backslashes, control characters and bytes that
//  are not UTF-8 (as \xNN), cut past 2 KiB with a marker; a bare value that
//  is not a plain word is quoted. So `writer=%s` is safe for any string a
//  peer sent. A %s elsewhere is a fragment of fields the caller built from
//  its own keys and is written as is: never put a foreign value there.
//  %s stops at a NUL: log binary values in hex.
void omni_log_event (omni_log_level_t level, const char *event, const char *fields, ...)
    __attribute__ ((format (printf, 3, 4)));

bool omni_log_enabled (omni_log_level_t level);

//  Whether a line for (event, key) may be logged now: the first at once,
//  then at most one per `interval_ms`. `*suppressed` (may be NULL) gets the
//  number held back since the last one, for that line to say so. For lines
//  that would repeat as long as a condition lasts (a peer that retries every
//  second, a store that is away): the operator needs the first and a
//  reminder, not one per attempt. A bounded table: a key pushed out of it
//  is logged again at once.
bool omni_log_allow (const char *event, const char *key, int64_t interval_ms, uint64_t *suppressed);

#define log_debug(...) omni_log_event (LOGL_DEBUG, __VA_ARGS__)
#define log_info(...)  omni_log_event (LOGL_INFO, __VA_ARGS__)
#define log_warn(...)  omni_log_event (LOGL_WARN, __VA_ARGS__)
#define log_error(...) omni_log_event (LOGL_ERROR, __VA_ARGS__)

void omni_log_test (bool verbose);

#endif
