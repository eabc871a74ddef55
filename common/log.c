/*  log: one line per event on stderr, key=value (default) or JSON, with the
    daemon name, so that logs of many daemons can be merged and parsed.

    Each line is built in memory and written with a single write(2) under a
    mutex, so that lines from different threads (and, for lines up to
    PIPE_BUF on a pipe, from different processes) never interleave.
    It needs nothing of libomni but common/util and common/buf.               */
#include "common/log.h"
#include "common/buf.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef enum { FORMAT_KV, FORMAT_JSON } format_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static char s_daemon[64] = "";
static atomic_int s_level = LOGL_INFO;
static atomic_int s_format = FORMAT_KV;

static const char *s_level_names[] = {"debug", "info", "warn", "error"};

//  A line buffer on the stack, on the heap past 1 KiB; on allocation failure
//  it stays truncated rather than losing the event altogether.
typedef struct {
    omni_buf_t b;
    char fixed[1024];
} s_buf_t;

static void
s_buf_init (s_buf_t *buf)
{
    omni_buf_init_fixed (&buf->b, buf->fixed, sizeof buf->fixed);
}

static void
s_buf_putn (s_buf_t *buf, const char *text, size_t len)
{
    if (omni_buf_try_reserve (&buf->b, len) == 0)
        omni_buf_append (&buf->b, text, len);
}

static void
s_buf_puts (s_buf_t *buf, const char *text)
{
    s_buf_putn (buf, text, strlen (text));
}

static void
s_buf_putc (s_buf_t *buf, char c)
{
    s_buf_putn (buf, &c, 1);
}

//  Writes `len` bytes as the body of a JSON string, escaped so that the
//  line always parses (omni_util_json_escape, for untrusted text).
static void
s_json_escape (s_buf_t *buf, const char *text, size_t len)
{
    if (omni_buf_try_reserve (&buf->b, 6 * len) == 0) {
        char *at = omni_buf_reserve (&buf->b, 6 * len);
        omni_buf_advance (&buf->b, omni_util_json_escape (at, text, len, true));
    }
}

static void
s_json_string (s_buf_t *buf, const char *text, size_t len)
{
    s_buf_putc (buf, '"');
    s_json_escape (buf, text, len);
    s_buf_putc (buf, '"');
}

//  True when `text` is plainly a number: -?digits with an optional fraction,
//  no leading zeros and no exponent, so that "007", "1." and a hex id such
//  as "1e5" stay strings instead of changing meaning.
static bool
s_is_number (const char *text, size_t len)
{
    size_t i = 0;
    if (i < len && text[i] == '-')
        i++;
    if (i >= len || text[i] < '0' || text[i] > '9')
        return false;
    if (text[i] == '0' && i + 1 < len && text[i + 1] >= '0' && text[i + 1] <= '9')
        return false;
    //  Integers beyond 2^53 lose precision in most JSON readers
    size_t digits = 0;
    while (i < len && text[i] >= '0' && text[i] <= '9') {
        i++;
        digits++;
    }
    if (digits > 15)
        return false;
    if (i < len && text[i] == '.') {
        i++;
        if (i >= len || text[i] < '0' || text[i] > '9')
            return false;
        while (i < len && text[i] >= '0' && text[i] <= '9')
            i++;
    }
    return i == len;
}

static bool
s_is_space (char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

//  Turns `key=value key2="a b"` into JSON members. A quoted value may
//  contain \" and \\; a word without '=' becomes a member with an empty
//  value rather than being dropped.
static void
s_fields_to_json (s_buf_t *buf, const char *fields)
{
    const char *p = fields;
    s_buf_t value;
    while (true) {
        while (s_is_space (*p))
            p++;
        if (!*p)
            break;
        const char *key = p;
        while (*p && *p != '=' && !s_is_space (*p))
            p++;
        size_t key_len = (size_t) (p - key);
        s_buf_puts (buf, ",");
        s_json_string (buf, key, key_len);
        s_buf_putc (buf, ':');
        if (*p != '=') {
            s_buf_puts (buf, "\"\"");
            continue;
        }
        p++;
        if (*p == '"') {
            //  Unescape into a scratch buffer, then escape for JSON
            s_buf_init (&value);
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                    p++;
                s_buf_putc (&value, *p++);
            }
            if (*p == '"')
                p++;
            s_json_string (buf, value.b.data, value.b.size);
            omni_buf_release (&value.b);
        } else {
            const char *start = p;
            while (*p && !s_is_space (*p))
                p++;
            size_t len = (size_t) (p - start);
            if (s_is_number (start, len))
                s_buf_putn (buf, start, len);
            else
                s_json_string (buf, start, len);
        }
    }
}

//  Appends `text` keeping the line a single line: control characters that
//  would break it are written as escapes.
static void
s_kv_append (s_buf_t *buf, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            s_buf_puts (buf, "\\n");
        else if (*p == '\r')
            s_buf_puts (buf, "\\r");
        else
            s_buf_putc (buf, *p);
    }
}

static void
s_timestamp (char *out, size_t size)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r (&ts.tv_sec, &tm);
    size_t len = strftime (out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (out + len, size - len, ".%03dZ", (int) (ts.tv_nsec / 1000000) % 1000);
}

int
omni_log_init (const char *daemon, const char *level, const char *format)
{
    int new_level = LOGL_INFO;
    if (level) {
        new_level = -1;
        for (int i = LOGL_DEBUG; i <= LOGL_ERROR; i++)
            if (strcmp (level, s_level_names[i]) == 0)
                new_level = i;
        //  "warning" is what people type
        if (strcmp (level, "warning") == 0)
            new_level = LOGL_WARN;
        if (new_level < 0)
            return -1;
    }
    int new_format = FORMAT_KV;
    if (format) {
        if (strcmp (format, "json") == 0)
            new_format = FORMAT_JSON;
        else if (strcmp (format, "kv") != 0)
            return -1;
    }
    pthread_mutex_lock (&s_lock);
    snprintf (s_daemon, sizeof s_daemon, "%s", daemon ? daemon : "");
    atomic_store (&s_level, new_level);
    atomic_store (&s_format, new_format);
    pthread_mutex_unlock (&s_lock);
    return 0;
}

bool
omni_log_enabled (omni_log_level_t level)
{
    return (int) level >= atomic_load_explicit (&s_level, memory_order_relaxed);
}

//  Values longer than this are cut, with a marker saying how long they were:
//  a peer that sends a 10 KB name gets one short line, not 10 KB of it.
#define S_VALUE_MAX 2048

//  Writes one value of a %s conversion. Values come from peers, files and
//  servers: they are escaped here, once, so that no caller can forget and no
//  value can add a field, end the line or end its quotes. Inside a quoted
//  value quotes and backslashes are escaped; elsewhere a value that is not a
//  plain word is quoted. Control characters and bytes that are not UTF-8
//  become \n, \r, \t or \xNN.
static void
s_put_value (s_buf_t *buf, const char *value, size_t len, bool quoted)
{
    const unsigned char *p = (const unsigned char *) value;
    bool plain = true;
    for (size_t i = 0; i < len && plain; i++)
        plain = p[i] > 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\';
    if (plain && len <= S_VALUE_MAX) {
        s_buf_putn (buf, value, len);
        return;
    }
    if (!quoted)
        s_buf_putc (buf, '"');
    size_t shown = len <= S_VALUE_MAX ? len : S_VALUE_MAX;
    for (size_t i = 0; i < shown;) {
        unsigned char c = p[i];
        size_t n = c >= 0x80 ? omni_util_utf8_len (p + i, shown - i, NULL) : 1;
        //  C1 controls (U+0080..U+009F) are as unprintable as C0 ones
        if (n == 2 && c == 0xC2 && p[i + 1] < 0xA0)
            n = 0;
        char esc[8];
        if (c == '"' || c == '\\') {
            s_buf_putc (buf, '\\');
            s_buf_putc (buf, (char) c);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            s_buf_puts (buf, c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t");
        } else if (c < 0x20 || c == 0x7f || n == 0) {
            snprintf (esc, sizeof esc, "\\x%02x", c);
            s_buf_puts (buf, esc);
            n = 1;
        } else {
            s_buf_putn (buf, value + i, n);
            i += n;
            continue;
        }
        i++;
    }
    if (shown < len) {
        char marker[64];
        snprintf (marker, sizeof marker, "...(cut, %zu bytes)", len);
        s_buf_puts (buf, marker);
    }
    if (!quoted)
        s_buf_putc (buf, '"');
}

//  printf for log fields: numbers as vsnprintf writes them, strings through
//  s_put_value. The format is the caller's (trusted) text: it says where a
//  value sits, after `key=` or inside quotes it opened. A %s anywhere else
//  is a fragment of fields the caller built from its own keys (" a=1 b=2")
//  and is written as it is.
//  Each conversion goes to snprintf with a format built from the caller's
//  own (checked at its call, omni_log_event's format attribute): not a literal
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void
s_format_fields (s_buf_t *buf, const char *format, va_list *args)
{
    bool quoted = false, after_eq = false;
    for (const char *f = format; *f;) {
        if (*f != '%') {
            if (*f == '\\' && quoted && f[1]) {
                s_buf_putn (buf, f, 2);
                f += 2;
                continue;
            }
            if (*f == '"')
                quoted = !quoted;
            after_eq = *f == '=';
            s_buf_putc (buf, *f++);
            continue;
        }
        bool value_pos = quoted || after_eq;
        after_eq = false;
        //  A conversion: flags, width, precision, length, type. `*` takes
        //  an int argument, written into the spec for snprintf.
        char spec[48];
        size_t n = 0;
        spec[n++] = *f++;
        int precision = -1;
        while (*f && strchr ("-+ #0", *f) && n < 8)
            spec[n++] = *f++;
        if (*f == '*') {
            n += (size_t) snprintf (spec + n, sizeof spec - n, "%d", va_arg (*args, int));
            f++;
        } else
            while (*f >= '0' && *f <= '9' && n < 16)
                spec[n++] = *f++;
        if (*f == '.') {
            spec[n++] = *f++;
            if (*f == '*') {
                precision = va_arg (*args, int);
                f++;
            } else {
                precision = 0;
                while (*f >= '0' && *f <= '9') {
                    precision = precision * 10 + (*f - '0');
                    f++;
                }
            }
            n += (size_t) snprintf (spec + n, sizeof spec - n, "%d", precision < 0 ? 0 : precision);
        }
        char length[3] = "";
        for (size_t l = 0; l < 2 && *f && strchr ("hlzjtL", *f); l++)
            length[l] = *f++;
        char type = *f ? *f++ : 0;
        if (type == '%') {
            s_buf_putc (buf, '%');
            continue;
        }
        if (type == 's') {
            const char *value = va_arg (*args, const char *);
            if (!value)
                value = "(null)";
            size_t len = precision >= 0 ? strnlen (value, (size_t) precision) : strlen (value);
            if (value_pos)
                s_put_value (buf, value, len, quoted);
            else
                s_buf_putn (buf, value, len);
            continue;
        }
        if (!type || !strchr ("diouxXcpfFeEgGaA", type))
            break; //  not a conversion this formatter knows: stop rather than misread
        n += (size_t) snprintf (spec + n, sizeof spec - n, "%s%c", length, type);
        char out[128];
        bool ll = strcmp (length, "ll") == 0, l = strcmp (length, "l") == 0;
        bool z = *length == 'z', j = *length == 'j', t = *length == 't';
        if (strchr ("di", type))
            snprintf (out, sizeof out, spec,
                      ll  ? va_arg (*args, long long)
                      : l ? va_arg (*args, long)
                      : z ? (long long) va_arg (*args, ssize_t)
                      : j ? (long long) va_arg (*args, intmax_t)
                      : t ? (long long) va_arg (*args, ptrdiff_t)
                          : va_arg (*args, int));
        else if (strchr ("ouxX", type))
            snprintf (out, sizeof out, spec,
                      ll  ? va_arg (*args, unsigned long long)
                      : l ? va_arg (*args, unsigned long)
                      : z ? (unsigned long long) va_arg (*args, size_t)
                      : j ? (unsigned long long) va_arg (*args, uintmax_t)
                      : t ? (unsigned long long) va_arg (*args, ptrdiff_t)
                          : va_arg (*args, unsigned));
        else if (type == 'c') {
            char c = (char) va_arg (*args, int);
            s_put_value (buf, &c, 1, quoted);
            continue;
        } else if (type == 'p')
            snprintf (out, sizeof out, "%p", va_arg (*args, void *));
        else if (*length == 'L')
            snprintf (out, sizeof out, spec, va_arg (*args, long double));
        else
            snprintf (out, sizeof out, spec, va_arg (*args, double));
        s_buf_puts (buf, out);
    }
}
#pragma GCC diagnostic pop

void
omni_log_event (omni_log_level_t level, const char *event, const char *fields, ...)
{
    if (!omni_log_enabled (level))
        return;
    if ((int) level < LOGL_DEBUG || level > LOGL_ERROR)
        level = LOGL_ERROR;

    //  Format the caller's fields first, outside the lock
    s_buf_t fields_buf;
    s_buf_init (&fields_buf);
    s_buf_putn (&fields_buf, "", 0);
    if (fields) {
        va_list args;
        va_start (args, fields);
        s_format_fields (&fields_buf, fields, &args);
        va_end (args);
    }
    const char *text = fields_buf.b.data;

    char ts[40];
    s_timestamp (ts, sizeof ts);
    char daemon[sizeof s_daemon];
    pthread_mutex_lock (&s_lock);
    memcpy (daemon, s_daemon, sizeof daemon);
    int format = atomic_load (&s_format);
    pthread_mutex_unlock (&s_lock);
    if (!*daemon) {
        //  Before omni_log_init: better the program name than nothing
        snprintf (daemon, sizeof daemon, "%s", program_invocation_short_name);
    }
    if (!event)
        event = "";

    s_buf_t line;
    s_buf_init (&line);
    if (format == FORMAT_JSON) {
        s_buf_puts (&line, "{\"ts\":\"");
        s_buf_puts (&line, ts);
        s_buf_puts (&line, "\",\"level\":\"");
        s_buf_puts (&line, s_level_names[level]);
        s_buf_puts (&line, "\",\"daemon\":");
        s_json_string (&line, daemon, strlen (daemon));
        s_buf_puts (&line, ",\"event\":");
        s_json_string (&line, event, strlen (event));
        s_fields_to_json (&line, text);
        s_buf_puts (&line, "}\n");
    } else {
        s_buf_puts (&line, ts);
        s_buf_puts (&line, " level=");
        s_buf_puts (&line, s_level_names[level]);
        s_buf_puts (&line, " daemon=");
        s_kv_append (&line, daemon);
        s_buf_puts (&line, " event=");
        s_kv_append (&line, event);
        if (*text) {
            s_buf_putc (&line, ' ');
            s_kv_append (&line, text);
        }
        s_buf_putc (&line, '\n');
    }
    omni_buf_release (&fields_buf.b);

    //  If the line was truncated by a failed allocation, still end it
    if (line.b.size == 0 || line.b.data[line.b.size - 1] != '\n')
        line.b.data[line.b.size ? line.b.size - 1 : 0] = '\n';

    //  The lock makes partial writes (signals, full pipes) safe too: the rest
    //  of a line is written before any other thread's line starts
    int saved_errno = errno;
    pthread_mutex_lock (&s_lock);
    const char *p = line.b.data;
    size_t left = line.b.size;
    while (left) {
        ssize_t n = write (STDERR_FILENO, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        left -= (size_t) n;
    }
    pthread_mutex_unlock (&s_lock);
    omni_buf_release (&line.b);
    errno = saved_errno;
}

#define S_ALLOW_SLOTS 64

typedef struct {
    uint64_t hash;
    int64_t last_ms; //  0: free
    uint64_t suppressed;
} s_allow_t;

static s_allow_t s_allow[S_ALLOW_SLOTS];

static int64_t
s_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
omni_log_allow (const char *event, const char *key, int64_t interval_ms, uint64_t *suppressed)
{
    //  FNV-1a over event, a separator and key
    uint64_t hash = 1469598103934665603ULL;
    for (const char *p = event ? event : ""; *p; p++)
        hash = (hash ^ (uint8_t) *p) * 1099511628211ULL;
    hash = (hash ^ 0xff) * 1099511628211ULL;
    for (const char *p = key ? key : ""; *p; p++)
        hash = (hash ^ (uint8_t) *p) * 1099511628211ULL;
    int64_t now = s_mono_ms () + 1; //  never 0
    pthread_mutex_lock (&s_lock);
    s_allow_t *slot = NULL, *oldest = &s_allow[0];
    for (size_t i = 0; i < S_ALLOW_SLOTS && !slot; i++) {
        if (s_allow[i].last_ms && s_allow[i].hash == hash)
            slot = &s_allow[i];
        else if (s_allow[i].last_ms < oldest->last_ms)
            oldest = &s_allow[i];
    }
    bool allow;
    if (!slot) {
        *oldest = (s_allow_t){hash, now, 0};
        allow = true;
        if (suppressed)
            *suppressed = 0;
    } else if (now - slot->last_ms >= interval_ms) {
        if (suppressed)
            *suppressed = slot->suppressed;
        slot->last_ms = now;
        slot->suppressed = 0;
        allow = true;
    } else {
        slot->suppressed++;
        allow = false;
    }
    pthread_mutex_unlock (&s_lock);
    return allow;
}

//  --------------------------------------------------------------------------
//  Self test

#define LOG_TEST_THREADS 4
#define LOG_TEST_LINES   500

//  Captures stderr into a temporary file while `fn` runs; returns its text.
static char *
s_capture (void (*fn) (void *), void *arg)
{
    FILE *file = tmpfile ();
    assert (file);
    fflush (stderr);
    int saved = dup (STDERR_FILENO);
    assert (saved >= 0);
    assert (dup2 (fileno (file), STDERR_FILENO) >= 0);
    fn (arg);
    assert (dup2 (saved, STDERR_FILENO) >= 0);
    close (saved);
    long size = lseek (fileno (file), 0, SEEK_END);
    assert (size >= 0);
    char *text = malloc ((size_t) size + 1);
    assert (text);
    assert (pread (fileno (file), text, (size_t) size, 0) == size);
    text[size] = 0;
    fclose (file);
    return text;
}

static void
s_check_ts (const char *ts)
{
    //  2026-11-29T01:02:03.123Z
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] == 'd')
            assert (ts[i] >= '0' && ts[i] <= '9');
        else
            assert (ts[i] == shape[i]);
    }
}

static void
s_log_basic (void *arg)
{
    (void) arg;
    log_info ("journal.open", "path=%s records=%d", "/x", 3);
    log_debug ("hidden", "n=1");
    log_warn ("with.spaces", "path=\"%s\" n=%d", "a b", -7);
    log_error ("bare", NULL);
    log_info ("newline", "msg=\"two\nlines\"");
}

static void
s_log_json (void *arg)
{
    (void) arg;
    log_info ("journal.open", "path=%s records=%d", "/x", 3);
    log_warn ("quoted",
              "path=\"a b\" say=\"he said \\\"hi\\\"\" bs=\"c:\\\\d\" n=007 f=2.5 neg=-1");
    log_info ("ctl", "tab=\"a\tb\" bad=%s flag", "\xff\xfe");
    log_info ("big", "n=1234567890123456789 hex=1e5 dot=1. exp=1e+5");
    log_debug ("shown", "level=debug");
}

static void *
s_log_thread (void *arg)
{
    int id = *(int *) arg;
    for (int i = 0; i < LOG_TEST_LINES; i++)
        log_info ("thread.line", "thread=%d i=%d pad=%s", id, i,
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    return NULL;
}

static void
s_log_threads (void *arg)
{
    (void) arg;
    pthread_t threads[LOG_TEST_THREADS];
    int ids[LOG_TEST_THREADS];
    for (int i = 0; i < LOG_TEST_THREADS; i++) {
        ids[i] = i;
        assert (pthread_create (&threads[i], NULL, s_log_thread, &ids[i]) == 0);
    }
    for (int i = 0; i < LOG_TEST_THREADS; i++)
        pthread_join (threads[i], NULL);
}

static void
s_log_long (void *arg)
{
    (void) arg;
    char *big = malloc (10001);
    assert (big);
    memset (big, 'y', 10000);
    big[10000] = 0;
    log_info ("long", "v=%s end=1", big);
    free (big);
}

static void
s_log_hostile (void *arg)
{
    (void) arg;
    log_warn ("inject", "writer=%s n=%d", "x level=error event=ingestd.stop", 3);
    log_info ("quoted", "name=\"%s\" empty=%s cut=%.*s", "a\"b\\c\x01\n\xff\xc3\xa9\xc2\x85", "", 3,
              "abcdef");
    log_info ("numbers", "a=%5.1f b=%-2d|c=%" PRIu64 " d=%x e=%% f=%c g=%lld%s", 2.5, -3,
              UINT64_MAX, 255u, 'x', 12345678901LL, " own=1 k=2");
}

void
omni_log_test (bool verbose)
{
    //  omni_log_allow: the first line, then one per interval with the count held back
    uint64_t held = 99;
    assert (omni_log_allow ("test.allow", "a", 60000, &held) && held == 0);
    assert (!omni_log_allow ("test.allow", "a", 60000, &held));
    assert (!omni_log_allow ("test.allow", "a", 60000, NULL));
    assert (omni_log_allow ("test.allow", "b", 60000, &held) && held == 0);
    assert (omni_log_allow ("test.other", "a", 60000, &held));
    struct timespec pause = {0, 20 * 1000000};
    nanosleep (&pause, NULL);
    assert (omni_log_allow ("test.allow", "a", 10, &held) && held == 2);
    assert (!omni_log_allow ("test.allow", "a", 60000, &held));

    assert (omni_log_init ("ingestd", "loud", "kv") == -1);
    assert (omni_log_init ("ingestd", "info", "xml") == -1);
    assert (omni_log_init ("ingestd", "info", "kv") == 0);
    assert (omni_log_enabled (LOGL_INFO) && omni_log_enabled (LOGL_ERROR) &&
            !omni_log_enabled (LOGL_DEBUG));

    //  kv format
    char *out = s_capture (s_log_basic, NULL);
    if (verbose)
        printf ("%s", out);
    char *line = strtok (out, "\n");
    assert (line && strlen (line) > 24);
    s_check_ts (line);
    assert (strcmp (line + 24, " level=info daemon=ingestd event=journal.open path=/x records=3") ==
            0);
    line = strtok (NULL, "\n");
    assert (line);
    s_check_ts (line);
    assert (strcmp (line + 24, " level=warn daemon=ingestd event=with.spaces path=\"a b\" n=-7") ==
            0);
    line = strtok (NULL, "\n");
    assert (line && strcmp (line + 24, " level=error daemon=ingestd event=bare") == 0);
    line = strtok (NULL, "\n");
    assert (line && strcmp (line + 24,
                            " level=info daemon=ingestd event=newline msg=\"two\\nlines\"") == 0);
    assert (strtok (NULL, "\n") == NULL);
    free (out);

    //  JSON format, with numbers, escapes and invalid UTF-8
    assert (omni_log_init ("ingestd", "debug", "json") == 0);
    assert (omni_log_enabled (LOGL_DEBUG));
    out = s_capture (s_log_json, NULL);
    if (verbose)
        printf ("%s", out);
    line = strtok (out, "\n");
    assert (line && strncmp (line, "{\"ts\":\"", 7) == 0);
    s_check_ts (line + 7);
    assert (strcmp (line + 31, "\",\"level\":\"info\",\"daemon\":\"ingestd\","
                               "\"event\":\"journal.open\",\"path\":\"/x\",\"records\":3}") == 0);
    line = strtok (NULL, "\n");
    assert (line);
    assert (strcmp (line + 31, "\",\"level\":\"warn\",\"daemon\":\"ingestd\",\"event\":\"quoted\","
                               "\"path\":\"a b\",\"say\":\"he said \\\"hi\\\"\","
                               "\"bs\":\"c:\\\\d\",\"n\":\"007\",\"f\":2.5,\"neg\":-1}") == 0);
    line = strtok (NULL, "\n");
    assert (line);
    assert (strcmp (line + 31, "\",\"level\":\"info\",\"daemon\":\"ingestd\",\"event\":\"ctl\","
                               "\"tab\":\"a\\tb\",\"bad\":\"\\\\xff\\\\xfe\",\"flag\":\"\"}") == 0);
    line = strtok (NULL, "\n");
    assert (line);
    assert (strcmp (line + 31, "\",\"level\":\"info\",\"daemon\":\"ingestd\",\"event\":\"big\","
                               "\"n\":\"1234567890123456789\",\"hex\":\"1e5\",\"dot\":\"1.\","
                               "\"exp\":\"1e+5\"}") == 0);
    line = strtok (NULL, "\n");
    assert (line && strstr (line, "\"level\":\"debug\"") && strstr (line, "\"event\":\"shown\""));
    assert (strtok (NULL, "\n") == NULL);
    free (out);

    //  Lines longer than the stack buffers are complete
    assert (omni_log_init ("ingestd", "info", "kv") == 0);
    //  Lines longer than the stack buffers are complete; a value longer
    //  than S_VALUE_MAX is cut, saying so
    out = s_capture (s_log_long, NULL);
    assert (strlen (out) == 24 + strlen (" level=info daemon=ingestd event=long v=\"\" end=1\n") +
                                S_VALUE_MAX + strlen ("...(cut, 10000 bytes)"));
    assert (strstr (out, "yyyy...(cut, 10000 bytes)\" end=1\n"));
    free (out);

    //  Values cannot add fields, end quotes or the line, whatever they hold
    out = s_capture (s_log_hostile, NULL);
    if (verbose)
        printf ("%s", out);
    line = strtok (out, "\n");
    assert (line && strcmp (line + 24, " level=warn daemon=ingestd event=inject "
                                       "writer=\"x level=error event=ingestd.stop\" n=3") == 0);
    line = strtok (NULL, "\n");
    assert (line && strcmp (line + 24, " level=info daemon=ingestd event=quoted "
                                       "name=\"a\\\"b\\\\c\\x01\\n\\xff\xc3\xa9\\xc2\\x85\" empty= "
                                       "cut=abc") == 0);
    line = strtok (NULL, "\n");
    assert (line && strcmp (line + 24, " level=info daemon=ingestd event=numbers "
                                       "a=  2.5 b=-3|c=18446744073709551615 d=ff e=% f=x "
                                       "g=12345678901 own=1 k=2") == 0);
    assert (strtok (NULL, "\n") == NULL);
    free (out);

    //  Threads: every line whole, none lost
    assert (omni_log_init ("collectord", "info", "json") == 0);
    out = s_capture (s_log_threads, NULL);
    size_t lines = 0;
    int seen[LOG_TEST_THREADS] = {0};
    for (line = strtok (out, "\n"); line; line = strtok (NULL, "\n")) {
        lines++;
        assert (line[0] == '{' && line[strlen (line) - 1] == '}');
        int thread, i;
        const char *member = strstr (line, "\"thread\":");
        assert (member && sscanf (member, "\"thread\":%d,\"i\":%d", &thread, &i) == 2);
        assert (thread >= 0 && thread < LOG_TEST_THREADS);
        //  Lines of one thread stay in order
        assert (i == seen[thread]);
        seen[thread]++;
    }
    assert (lines == LOG_TEST_THREADS * LOG_TEST_LINES);
    free (out);

    //  Filtering by level
    assert (omni_log_init ("ingestd", "error", NULL) == 0);
    assert (!omni_log_enabled (LOGL_WARN) && omni_log_enabled (LOGL_ERROR));
    assert (omni_log_init ("ingestd", "warning", "kv") == 0);
    assert (omni_log_enabled (LOGL_WARN) && !omni_log_enabled (LOGL_INFO));
    assert (omni_log_init ("ingestd", NULL, NULL) == 0);
    assert (omni_log_enabled (LOGL_INFO));
}
