/*  util: the few small helpers every daemon needs.                           */
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t
util_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
util_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
util_hex (const uint8_t *bytes, size_t size, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < size; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * size] = 0;
}

static int
s_hexval (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
util_unhex (const char *hex, uint8_t *bytes, size_t size)
{
    if (strlen (hex) != 2 * size)
        return -1;
    for (size_t i = 0; i < size; i++) {
        int hi = s_hexval (hex[2 * i]), lo = s_hexval (hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        bytes[i] = (uint8_t) (hi << 4 | lo);
    }
    return 0;
}

int
util_mkdirs (const char *path)
{
    char buf[PATH_MAX];
    if (strlen (path) >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy (buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir (buf, 0755) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir (buf, 0755) && errno != EEXIST)
        return -1;
    return 0;
}

int
util_fsync_dir (const char *path)
{
    int fd = open (path, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync (fd);
    close (fd);
    return rc;
}

void
util_test (bool verbose)
{
    (void) verbose;
    uint8_t in[4] = {0x00, 0xab, 0x10, 0xff}, out[4];
    char hex[9];
    util_hex (in, 4, hex);
    assert (strcmp (hex, "00ab10ff") == 0);
    assert (util_unhex (hex, out, 4) == 0 && memcmp (in, out, 4) == 0);
    assert (util_unhex ("00ab10f", out, 4) == -1);
    assert (util_unhex ("00ab10fg", out, 4) == -1);
    int64_t a = util_mono_ms ();
    assert (util_mono_ms () >= a);
    assert (util_now_ns () > 1500000000LL * 1000000000LL);
    char dir[] = "/tmp/omni-util-XXXXXX";
    assert (mkdtemp (dir));
    char deep[PATH_MAX];
    snprintf (deep, sizeof deep, "%s/a/b/c", dir);
    assert (util_mkdirs (deep) == 0);
    assert (util_mkdirs (deep) == 0);
    assert (util_fsync_dir (deep) == 0);
    struct stat st;
    assert (stat (deep, &st) == 0 && S_ISDIR (st.st_mode));
    char cmd[PATH_MAX + 16];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert (system (cmd) == 0);
}
