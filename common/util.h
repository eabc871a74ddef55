/*  util: the few small helpers every daemon needs.                           */
#ifndef OMNI_UTIL_H
#define OMNI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Wall-clock time in ns since the epoch (event times).
int64_t util_now_ns (void);
//  Monotonic time in ms (timeouts, intervals).
int64_t util_mono_ms (void);

//  Lower-case hex of `size` bytes into `out` (2*size+1 bytes, NUL-terminated).
void util_hex (const uint8_t *bytes, size_t size, char *out);
//  Parses exactly 2*size hex digits; returns -1 on any other input.
int util_unhex (const char *hex, uint8_t *bytes, size_t size);

//  mkdir -p; returns -1 with errno set.
int util_mkdirs (const char *path);
//  fsync the directory holding entries just created or renamed.
int util_fsync_dir (const char *path);

void util_test (bool verbose);

#endif
