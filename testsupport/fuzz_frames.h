/*  fuzz_frames: what the fuzz targets share. How they cut one input into message frames: a
    2-byte big-endian length before each frame, the rest as the last one.
    A length that does not fit is taken as part of the last frame, so every
    input is some message and the mutator can grow and shrink frames.     */
#ifndef OMNI_FUZZ_FRAMES_H
#define OMNI_FUZZ_FRAMES_H

#include "common/log.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  What both targets do first: czmq set up without its log, ours at error.
static inline void
fuzz_init (const char *name)
{
    zsys_init ();
    zsys_set_logstream (NULL);
    omni_log_init (name, "error", "kv");
}

//  Appends the next frame of `*data` to `msg`; false when nothing is left.
static inline bool
fuzz_next_frame (const uint8_t **data, size_t *size, zmsg_t *msg)
{
    if (*size == 0)
        return false;
    size_t len = *size;
    if (*size >= 2) {
        size_t want = (size_t) (*data)[0] << 8 | (*data)[1];
        if (want <= *size - 2) {
            *data += 2;
            *size -= 2;
            len = want;
        }
    }
    zmsg_addmem (msg, *data, len);
    *data += len;
    *size -= len;
    return true;
}

#endif
