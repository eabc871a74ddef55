/*  coldfile: zstd files of the archive (see coldfile.h).                   */
#include "archiverd/coldfile.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define CHUNK (1 << 20)

static int
s_write_all (int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size > 0) {
        ssize_t n = write (fd, p, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        size -= (size_t) n;
    }
    return 0;
}

int
coldfile_compress (const char *src, uint64_t length, const char *dst, int level, uint64_t *dst_size,
                   char *error, size_t error_size)
{
    int in = open (src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        snprintf (error, error_size, "open %s: %s", src, strerror (errno));
        return -1;
    }
    int out = open (dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        snprintf (error, error_size, "create %s: %s", dst, strerror (errno));
        close (in);
        return -1;
    }
    ZSTD_CCtx *cctx = ZSTD_createCCtx ();
    ZSTD_CCtx_setParameter (cctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter (cctx, ZSTD_c_checksumFlag, 1);
    //  The content size in the frame header: start-up compares it with a
    //  plain file's length before reading both
    ZSTD_CCtx_setPledgedSrcSize (cctx, length);
    size_t out_cap = ZSTD_CStreamOutSize ();
    char *raw = malloc (CHUNK), *packed = malloc (out_cap);
    assert (raw && packed);
    uint64_t done = 0, written = 0;
    int rc = 0;
    const char *what = "";
    while (rc == 0) {
        size_t want = length - done < CHUNK ? (size_t) (length - done) : CHUNK;
        ssize_t n = want ? pread (in, raw, want, (off_t) done) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (want && n == 0)) {
            //  Shorter than its committed length: not ours to guess
            what = n < 0 ? strerror (errno) : "shorter than its committed length";
            rc = -1;
            break;
        }
        done += (uint64_t) n;
        bool last = done == length;
        ZSTD_inBuffer input = {raw, (size_t) n, 0};
        size_t remaining;
        do {
            ZSTD_outBuffer output = {packed, out_cap, 0};
            remaining =
                ZSTD_compressStream2 (cctx, &output, &input, last ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError (remaining)) {
                what = ZSTD_getErrorName (remaining);
                rc = -1;
                break;
            }
            if (s_write_all (out, packed, output.pos)) {
                what = strerror (errno);
                rc = -1;
                break;
            }
            written += output.pos;
        } while (rc == 0 && (last ? remaining != 0 : input.pos < input.size));
        if (last)
            break;
    }
    if (rc == 0 && fsync (out)) {
        what = strerror (errno);
        rc = -1;
    }
    free (raw);
    free (packed);
    ZSTD_freeCCtx (cctx);
    close (in);
    if (close (out) && rc == 0) {
        what = strerror (errno);
        rc = -1;
    }
    if (rc) {
        snprintf (error, error_size, "compress %s to %s: %s", src, dst, what);
        unlink (dst);
        return -1;
    }
    *dst_size = written;
    return 0;
}

int
coldfile_same (const char *zst, const char *plain, uint64_t length)
{
    FILE *z = fopen (zst, "rb");
    if (!z)
        return -1;
    uint8_t head[32]; //  ZSTD_FRAMEHEADERSIZE_MAX is 18 (static API only)
    size_t got = fread (head, 1, sizeof head, z);
    unsigned long long size = ZSTD_getFrameContentSize (head, got);
    if (size != length) {
        fclose (z);
        return 0;
    }
    FILE *p = fopen (plain, "rb");
    if (!p) {
        fclose (z);
        return -1;
    }
    rewind (z);
    ZSTD_DStream *zds = ZSTD_createDStream ();
    ZSTD_initDStream (zds);
    size_t in_cap = ZSTD_DStreamInSize (), out_cap = ZSTD_DStreamOutSize ();
    char *in = malloc (in_cap), *out = malloc (out_cap), *cmp = malloc (out_cap);
    assert (in && out && cmp);
    uint64_t compared = 0;
    size_t rc = 1;
    int same = 1;
    while (same) {
        size_t n = fread (in, 1, in_cap, z);
        if (n == 0)
            break;
        ZSTD_inBuffer input = {in, n, 0};
        while (same && input.pos < input.size) {
            ZSTD_outBuffer output = {out, out_cap, 0};
            rc = ZSTD_decompressStream (zds, &output, &input);
            if (ZSTD_isError (rc) || compared + output.pos > length ||
                fread (cmp, 1, output.pos, p) != output.pos || memcmp (cmp, out, output.pos))
                same = 0;
            compared += output.pos;
        }
    }
    //  rc == 0: the frame ended and its checksum matched
    if (same && (rc != 0 || compared != length))
        same = 0;
    ZSTD_freeDStream (zds);
    free (in);
    free (out);
    free (cmp);
    fclose (z);
    fclose (p);
    return same;
}

//  ---------------------------------------------------------------------------

#include "testsupport/selftest.h"

void
coldfile_test (bool verbose)
{
    (void) verbose;
    char *tmp = selftest_tmpdir ("coldfile-test");
    char plain[4096], zst[4096], error[512];
    snprintf (plain, sizeof plain, "%s/a.jsonl", tmp);
    snprintf (zst, sizeof zst, "%s/a.jsonl.zst", tmp);
    FILE *f = fopen (plain, "wb");
    for (int i = 0; i < 100000; i++)
        fprintf (f, "{\"n\":%d,\"text\":\"line %d\"}\n", i, i * 7);
    long size = ftell (f);
    fclose (f);
    //  All but the last bytes: a committed prefix
    uint64_t length = (uint64_t) size - 10, packed;
    assert (coldfile_compress (plain, length, zst, 3, &packed, error, sizeof error) == 0);
    assert (packed > 0 && packed < length / 4);
    assert (coldfile_same (zst, plain, length) == 1);
    assert (coldfile_same (zst, plain, length - 1) == 0);
    //  The name is taken: refused, the file left alone
    assert (coldfile_compress (plain, length, zst, 3, &packed, error, sizeof error) == -1);
    assert (strstr (error, "File exists") && coldfile_same (zst, plain, length) == 1);
    //  A damaged copy is not the same
    f = fopen (zst, "r+b");
    fseek (f, (long) packed / 2, SEEK_SET);
    fputc ('x', f);
    fclose (f);
    assert (coldfile_same (zst, plain, length) == 0);
    unlink (zst);
    //  More than the file holds: refused, nothing left behind
    assert (coldfile_compress (plain, (uint64_t) size + 1, zst, 3, &packed, error, sizeof error) ==
            -1);
    assert (strstr (error, "shorter") && access (zst, F_OK) == -1);
    //  Empty
    assert (coldfile_compress (plain, 0, zst, 3, &packed, error, sizeof error) == 0);
    assert (coldfile_same (zst, plain, 0) == 1);
    selftest_rmtree (tmp);
    free (tmp);
}
