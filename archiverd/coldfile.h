/*  coldfile: a closed archive file to zstd and back, for the archive's cold
    storage. One zstd frame with the content size in its header and a
    checksum of the content (zstd -t and every reader check it), written
    whole to its own name and fsynced before the caller renames it.        */
#ifndef OMNI_ARCHIVERD_COLDFILE_H
#define OMNI_ARCHIVERD_COLDFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Compresses the first `length` bytes of `src` into `dst` (created, must
//  not exist), fsyncs it. 0 and *dst_size, or -1 with `error` (dst removed).
int coldfile_compress (const char *src, uint64_t length, const char *dst, int level,
                       uint64_t *dst_size, char *error, size_t error_size);

//  Whether `zst` holds exactly the first `length` bytes of `plain`: 1 yes,
//  0 no (other content, damaged, cut short), -1 a file could not be read.
int coldfile_same (const char *zst, const char *plain, uint64_t length);

void coldfile_test (bool verbose);

#endif
