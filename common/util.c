/*  util: the few small helpers every daemon needs.                           */
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
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
util_put_be (uint8_t *out, uint64_t value, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t) (value >> (8 * (n - 1 - i)));
}

uint64_t
util_get_be (const void *in, size_t n)
{
    const uint8_t *p = in;
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++)
        value = value << 8 | p[i];
    return value;
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

static volatile sig_atomic_t s_stop_requested = 0;

static void
s_on_stop_signal (int signum)
{
    (void) signum;
    s_stop_requested = 1;
}

void
util_catch_stop_signals (void)
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_stop_signal;
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
}

bool
util_stop_requested (void)
{
    return s_stop_requested != 0;
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
    uint8_t be[8];
    util_put_be (be, 0x0102030405060708ULL, 8);
    assert (be[0] == 1 && be[7] == 8 && util_get_be (be, 8) == 0x0102030405060708ULL);
    util_put_be (be, 0xA1B2C3D4, 4);
    assert (be[0] == 0xA1 && be[3] == 0xD4 && util_get_be (be, 4) == 0xA1B2C3D4);
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
