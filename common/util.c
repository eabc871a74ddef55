/*  util: the few small helpers every daemon needs.                           */
#include "common/util.h"

#include <assert.h>
#include <ctype.h>
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
omni_util_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
omni_util_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
omni_util_put_be (uint8_t *out, uint64_t value, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t) (value >> (8 * (n - 1 - i)));
}

uint64_t
omni_util_get_be (const void *in, size_t n)
{
    const uint8_t *p = in;
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++)
        value = value << 8 | p[i];
    return value;
}

void
omni_util_hex (const uint8_t *bytes, size_t size, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < size; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * size] = 0;
}

//  Inlined into the loops below (validation runs on every string ingestd
//  receives); omni_util_utf8_len is its exported form.
static inline size_t
s_utf8_len (const uint8_t *p, size_t left, size_t *bad)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    //  Table 3-7: the second byte's range depends on the lead byte, every
    //  later one is 80..BF
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : lo; //  overlong
        hi = c == 0xED ? 0x9F : hi; //  surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : lo; //  overlong
        hi = c == 0xF4 ? 0x8F : hi; //  past U+10FFFF
    } else
        n = 0;
    size_t i = 1;
    if (n && left >= 2 && p[1] >= lo && p[1] <= hi)
        for (i = 2; i < n && i < left && p[i] >= 0x80 && p[i] <= 0xBF; i++)
            ;
    if (n && i == n)
        return n;
    if (bad)
        *bad = i;
    return 0;
}

size_t
omni_util_utf8_len (const uint8_t *p, size_t left, size_t *bad)
{
    return s_utf8_len (p, left, bad);
}

bool
omni_util_utf8_valid (const void *text, size_t len)
{
    const uint8_t *s = text;
    size_t i = 0;
    while (i < len) {
        //  Most strings are ASCII: eight bytes at a time while they are
        uint64_t word;
        if (len - i >= 8 && (memcpy (&word, s + i, 8), !(word & 0x8080808080808080ULL))) {
            i += 8;
            continue;
        }
        size_t n = s_utf8_len (s + i, len - i, NULL);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

//  Whether any of 8 bytes is a control character, '"' or '\\' (the classic
//  "has zero byte" tricks): strings are scanned a word at a time, since
//  most of an archive's bytes are text that needs no escape.
static bool
s_word_needs_escape (uint64_t word)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t quote = word ^ (ones * '"'), backslash = word ^ (ones * '\\');
    uint64_t control = (word - ones * 0x20) & ~word;
    uint64_t zero_quote = (quote - ones) & ~quote, zero_backslash = (backslash - ones) & ~backslash;
    return ((control | zero_quote | zero_backslash) & highs) != 0;
}

//  omni_util_json_escape, made once for each value of `untrusted` (inlined
//  with it constant)
__attribute__ ((always_inline)) static inline size_t
s_json_escape (char *out, const void *text, size_t len, bool untrusted)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = text;
    char *start = out;
    size_t run = 0; //  start of the pending run that needs no escaping
    for (size_t i = 0; i < len;) {
        uint64_t word;
        while (!untrusted && i + 8 <= len &&
               (memcpy (&word, p + i, 8), !s_word_needs_escape (word)))
            i += 8;
        if (i == len)
            break;
        uint8_t c = p[i];
        size_t n = 1;
        if (untrusted && c >= 0x80 && (n = s_utf8_len (p + i, len - i, NULL)) > 0) {
            i += n;
            continue;
        }
        if (n && c >= 0x20 && c != '"' && c != '\\' && !(untrusted && c == 0x7F)) {
            i++;
            continue;
        }
        memcpy (out, p + run, i - run);
        out += i - run;
        run = ++i;
        *out++ = '\\';
        switch (n ? c : 0x100) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\n': *out++ = 'n'; break;
        case '\r': *out++ = 'r'; break;
        case '\t': *out++ = 't'; break;
        case '\b': *out++ = 'b'; break;
        case '\f': *out++ = 'f'; break;
        case 0x100: //  not UTF-8
            memcpy (out, "ufffd", 5);
            out += 5;
            break;
        default:
            memcpy (out, "u00", 3);
            out[3] = digits[c >> 4];
            out[4] = digits[c & 15];
            out += 5;
        }
    }
    memcpy (out, p + run, len - run);
    out += len - run;
    return (size_t) (out - start);
}

size_t
omni_util_utf8_cut (const void *text, size_t len, size_t max)
{
    if (len <= max)
        return len;
    //  Back to the first byte of the character that would be cut
    const uint8_t *p = text;
    size_t cut = max;
    while (cut > 0 && (p[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

size_t
omni_util_json_escape (char *out, const void *text, size_t len, bool untrusted)
{
    return untrusted ? s_json_escape (out, text, len, true) : s_json_escape (out, text, len, false);
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
omni_util_unhex (const char *hex, uint8_t *bytes, size_t size)
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
omni_util_digits (const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (!isdigit ((unsigned char) **p))
            return -1;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return 0;
}

int
omni_util_iso_time (const char **p, bool lenient, omni_util_time_t *out)
{
    omni_util_time_t t = {0};
    const char *s = *p;
    if (omni_util_digits (&s, 4, &t.year) || *s++ != '-' || omni_util_digits (&s, 2, &t.mon) ||
        *s++ != '-' || omni_util_digits (&s, 2, &t.day))
        return -1;
    if (*s == 'T' || *s == ' ' || (lenient && *s == 't')) {
        s++;
        if (omni_util_digits (&s, 2, &t.hour) || *s++ != ':' || omni_util_digits (&s, 2, &t.min))
            return -1;
        if (*s == ':') {
            s++;
            if (omni_util_digits (&s, 2, &t.sec))
                return -1;
            if (lenient && (*s == '.' || *s == ',')) {
                s++;
                int64_t scale = 100000000;
                if (!isdigit ((unsigned char) *s))
                    return -1;
                for (; isdigit ((unsigned char) *s); s++) {
                    t.frac_ns += (*s - '0') * scale;
                    scale /= 10;
                }
            }
        }
    }
    if (*s == 'Z' || (lenient && *s == 'z'))
        s++;
    else if (*s == '+' || *s == '-') {
        int sign = *s++ == '-' ? -1 : 1, oh, om = 0;
        if (omni_util_digits (&s, 2, &oh))
            return -1;
        if (*s == ':')
            s++;
        if ((!lenient || isdigit ((unsigned char) *s)) && omni_util_digits (&s, 2, &om))
            return -1;
        t.offset_min = sign * (oh * 60 + om);
    }
    if (t.mon < 1 || t.mon > 12 || t.day < 1 || t.day > 31 || t.hour > 23 || t.min > 59 ||
        t.sec > 60)
        return -1;
    struct tm tm = {0};
    tm.tm_year = t.year - 1900;
    tm.tm_mon = t.mon - 1;
    tm.tm_mday = t.day;
    tm.tm_hour = t.hour;
    tm.tm_min = t.min;
    tm.tm_sec = t.sec;
    t.secs = (int64_t) timegm (&tm) - (int64_t) t.offset_min * 60;
    *out = t;
    *p = s;
    return 0;
}

int
omni_util_mkdirs (const char *path)
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
omni_util_fsync_dir (const char *path)
{
    int fd = open (path, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync (fd);
    close (fd);
    return rc;
}

static void
s_json_check (const char *in, size_t len, bool untrusted, const char *expected)
{
    char out[64];
    size_t n = omni_util_json_escape (out, in, len, untrusted);
    assert (n <= 6 * len && n == strlen (expected) && memcmp (out, expected, n) == 0);
}

void
omni_util_test (bool verbose)
{
    (void) verbose;
    //  Digits: exactly n, the pointer moved past them
    const char *text = "2024-0x";
    int value = 0;
    assert (omni_util_digits (&text, 4, &value) == 0 && value == 2024 && *text == '-');
    text++;
    assert (omni_util_digits (&text, 2, &value) == -1);

    //  ISO 8601 times, strict and lenient
    omni_util_time_t t;
    text = "2024-01-31T12:30:15+02:00 rest";
    assert (omni_util_iso_time (&text, false, &t) == 0 && strcmp (text, " rest") == 0);
    assert (t.secs == 1706697015 && t.offset_min == 120 && t.frac_ns == 0);
    text = "2024-01-31";
    assert (omni_util_iso_time (&text, false, &t) == 0 && *text == 0 && t.secs == 1706659200);
    text = "2024-01-31 12:30Z";
    assert (omni_util_iso_time (&text, false, &t) == 0 && *text == 0 && t.secs == 1706704200);
    const char *strict_only_lenient[] = {"2024-01-31t12:30:15Z", "2024-01-31T12:30:15.25Z",
                                         "2024-01-31T12:30:15z", "2024-01-31T12:30:15+02"};
    for (size_t i = 0; i < sizeof strict_only_lenient / sizeof *strict_only_lenient; i++) {
        text = strict_only_lenient[i];
        assert (omni_util_iso_time (&text, true, &t) == 0 && *text == 0);
        text = strict_only_lenient[i];
        assert (omni_util_iso_time (&text, false, &t) == -1 || *text != 0);
    }
    text = "2024-01-31T12:30:15,5-01:30";
    assert (omni_util_iso_time (&text, true, &t) == 0 && *text == 0);
    assert (t.frac_ns == 500000000 && t.offset_min == -90 && t.secs == 1706709615);
    const char *bad_times[] = {
        "2024-13-01",    "2024-01-32", "2024-01-31T24:00", "2024-1-31", "2024-01-31T12:30:15.Z",
        "2024-01-31T12", "x"};
    for (size_t i = 0; i < sizeof bad_times / sizeof *bad_times; i++) {
        text = bad_times[i];
        assert (omni_util_iso_time (&text, true, &t) == -1);
    }

    //  UTF-8, strict
    assert (omni_util_utf8_valid ("h\xc3\xa9llo, a longer line of ASCII", 30));
    assert (omni_util_utf8_valid ("\xf0\x9f\x98\x80", 4));  //  emoji
    assert (!omni_util_utf8_valid ("\xc0\xaf", 2));         //  overlong
    assert (!omni_util_utf8_valid ("\xe0\x9f\xbf", 3));     //  overlong
    assert (!omni_util_utf8_valid ("\xed\xa0\x80", 3));     //  surrogate
    assert (!omni_util_utf8_valid ("\xf4\x90\x80\x80", 4)); //  past U+10FFFF
    assert (!omni_util_utf8_valid ("\xe2\x82", 2));         //  cut short
    assert (!omni_util_utf8_valid ("12345678\xff", 9));
    assert (omni_util_utf8_cut ("abc", 3, 4096) == 3);
    assert (omni_util_utf8_cut ("a\xC3\xA9", 3, 2) == 1);
    assert (omni_util_utf8_cut ("a\xC3\xA9", 3, 3) == 3);
    assert (omni_util_utf8_cut ("\xE2\x82\xAC\xE2\x82\xAC", 6, 5) == 3);
    assert (omni_util_utf8_cut ("\xE2\x82\xAC\xE2\x82\xAC", 6, 2) == 0);
    size_t bad = 0;
    assert (omni_util_utf8_len ((const uint8_t *) "\xe2\x82\xac", 3, &bad) == 3);
    assert (omni_util_utf8_len ((const uint8_t *) "\xe2\x82x", 3, &bad) == 0 && bad == 2);
    assert (omni_util_utf8_len ((const uint8_t *) "\xed\xa0\x80", 3, &bad) == 0 && bad == 1);
    assert (omni_util_utf8_len ((const uint8_t *) "\x80", 1, &bad) == 0 && bad == 1);
    //  JSON string bodies
    s_json_check ("plain text, long enough", 23, false, "plain text, long enough");
    s_json_check ("a\"b\\c\n\t\x01\x7f\xc3\xa9", 11, false, "a\\\"b\\\\c\\n\\t\\u0001\x7f\xc3\xa9");
    s_json_check ("\xff\xc3\xa9\x7f\b", 5, true, "\\ufffd\xc3\xa9\\u007f\\b");
    uint8_t in[4] = {0x00, 0xab, 0x10, 0xff}, out[4];
    char hex[9];
    omni_util_hex (in, 4, hex);
    assert (strcmp (hex, "00ab10ff") == 0);
    assert (omni_util_unhex (hex, out, 4) == 0 && memcmp (in, out, 4) == 0);
    assert (omni_util_unhex ("00ab10f", out, 4) == -1);
    uint8_t be[8];
    omni_util_put_be (be, 0x0102030405060708ULL, 8);
    assert (be[0] == 1 && be[7] == 8 && omni_util_get_be (be, 8) == 0x0102030405060708ULL);
    omni_util_put_be (be, 0xA1B2C3D4, 4);
    assert (be[0] == 0xA1 && be[3] == 0xD4 && omni_util_get_be (be, 4) == 0xA1B2C3D4);
    assert (omni_util_unhex ("00ab10fg", out, 4) == -1);
    int64_t a = omni_util_mono_ms ();
    assert (omni_util_mono_ms () >= a);
    assert (omni_util_now_ns () > 1500000000LL * 1000000000LL);
    char dir[] = "/tmp/omni-util-XXXXXX";
    assert (mkdtemp (dir));
    char deep[PATH_MAX];
    snprintf (deep, sizeof deep, "%s/a/b/c", dir);
    assert (omni_util_mkdirs (deep) == 0);
    assert (omni_util_mkdirs (deep) == 0);
    assert (omni_util_fsync_dir (deep) == 0);
    struct stat st;
    assert (stat (deep, &st) == 0 && S_ISDIR (st.st_mode));
    char cmd[PATH_MAX + 16];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert (system (cmd) == 0);
}
