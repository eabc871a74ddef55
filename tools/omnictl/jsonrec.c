/*  jsonrec: archive line -> msgpack record (see jsonrec.h).

    Replay and export read every line of an archive, so the line is read
    by a scanner of its own that writes the msgpack while it checks the
    JSON, in one pass without a tree (jansson built one, a malloc per value,
    and was 97 % of export's time). Map and array headers are written when
    their count is known, in msgpack-c's smallest form, so the bytes are
    the record's own. jansson still builds the tree that the YAML and CSV
    writers walk, after the scanner has accepted the line.                  */
#include "tools/omnictl/jsonrec.h"
#include "common/buf.h"
#include "proto/mpjson.h"
#include "proto/record.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _jsonrec_t {
    json_t *root;
    msgpack_sbuffer buf;
    msgpack_packer pk;
    uint8_t *bin;
    size_t bin_cap;
    char *text; //  a string's decoded text, when it had escapes
    size_t text_cap;
    //  The envelope of the last line
    char *kind, *src;
    size_t kind_cap, src_cap;
    bool has_kind, has_src, has_ts;
    int64_t ts;
};

jsonrec_t *
jsonrec_new (void)
{
    jsonrec_t *self = calloc (1, sizeof *self);
    assert (self);
    msgpack_sbuffer_init (&self->buf);
    msgpack_packer_init (&self->pk, &self->buf, msgpack_sbuffer_write);
    return self;
}

void
jsonrec_destroy (jsonrec_t **self_p)
{
    jsonrec_t *self = *self_p;
    if (!self)
        return;
    json_decref (self->root);
    msgpack_sbuffer_destroy (&self->buf);
    free (self->bin);
    free (self->text);
    free (self->kind);
    free (self->src);
    free (self);
    *self_p = NULL;
}

static int
s_b64_value (char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

//  Standard base64 with padding, as mpjson writes it; -1 on anything else.
static long
s_unbase64 (jsonrec_t *self, const char *text, size_t len)
{
    if (len % 4)
        return -1;
    omni_array_reserve (self->bin, self->bin_cap, len / 4 * 3);
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            if (text[i + j] == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (pad || (v[j] = s_b64_value (text[i + j])) < 0)
                return -1;
        }
        uint32_t word =
            (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 | (uint32_t) v[2] << 6 | (uint32_t) v[3];
        self->bin[n++] = (uint8_t) (word >> 16);
        if (pad < 2)
            self->bin[n++] = (uint8_t) (word >> 8);
        if (pad < 1)
            self->bin[n++] = (uint8_t) word;
    }
    return (long) n;
}

//  ---------------------------------------------------------------------------
//  The scanner: one pass over the line's bytes, writing msgpack as it goes.
//  No tree, no allocation per value (jansson allocated every value and key
//  and spent ~45,000 instructions on a 275-byte metric line; this takes a
//  small fraction of that). It accepts what jansson accepts (RFC 8259,
//  UTF-8 checked, \u0000 allowed in values, not in keys) and refuses the
//  rest, so a damaged line is refused by replay and export alike.

#define S_MAX_DEPTH 2048 //  jansson's limit

typedef struct {
    jsonrec_t *self;
    const char *line, *p, *end;
    char *error;
    size_t error_size;
    bool pack_id; //  the envelope's "id" becomes the 16-byte binary id
    int depth;
} s_scan_t;

static int
s_fail (s_scan_t *sc, const char *why)
{
    snprintf (sc->error, sc->error_size, "not JSON: %s (column %d)", why,
              (int) (sc->p - sc->line) + 1);
    return -1;
}

static void
s_ws (s_scan_t *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r'))
        sc->p++;
}

static void
s_emit (jsonrec_t *self, const void *data, size_t len)
{
    msgpack_sbuffer_write (&self->buf, data, len);
}

//  A container's header, once its count is known: one byte was kept for
//  it at `at`; a count of 16 or more needs 2 or 4 more (msgpack-c's
//  smallest form, so the bytes are the ones the record was made of).
static void
s_header (jsonrec_t *self, size_t at, size_t n, uint8_t fix, uint8_t c16, uint8_t c32)
{
    if (n < 16) {
        self->buf.data[at] = (char) (fix | n);
        return;
    }
    size_t extra = n < 65536 ? 2 : 4;
    size_t tail = self->buf.size - at - 1;
    s_emit (self, "\0\0\0\0", extra);
    uint8_t *h = (uint8_t *) self->buf.data + at;
    memmove (h + 1 + extra, h + 1, tail);
    if (extra == 2) {
        h[0] = c16;
        h[1] = (uint8_t) (n >> 8);
        h[2] = (uint8_t) n;
    } else {
        h[0] = c32;
        h[1] = (uint8_t) (n >> 24);
        h[2] = (uint8_t) (n >> 16);
        h[3] = (uint8_t) (n >> 8);
        h[4] = (uint8_t) n;
    }
}

static int
s_hex4 (const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

static size_t
s_put_utf8 (char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char) (0xc0 | cp >> 6);
        out[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char) (0xe0 | cp >> 12);
        out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char) (0xf0 | cp >> 18);
    out[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char) (0x80 | (cp & 0x3f));
    return 4;
}

//  A string at sc->p ('"'): its text, in the line itself when it has no
//  escapes (the usual case), else decoded into self->text (valid until the
//  next string).
static int
s_string (s_scan_t *sc, const char **text, size_t *len)
{
    const char *start = ++sc->p;
    bool escaped = false;
    for (;;) {
        //  The common bytes first, in a tight loop
        while (sc->p < sc->end && (uint8_t) *sc->p >= 0x20 && (uint8_t) *sc->p < 0x80 &&
               *sc->p != '"' && *sc->p != '\\')
            sc->p++;
        if (sc->p >= sc->end)
            return s_fail (sc, "premature end of input in a string");
        uint8_t c = (uint8_t) *sc->p;
        if (c == '"')
            break;
        if (c < 0x20)
            return s_fail (sc, "control character in a string");
        if (c >= 0x80) {
            size_t n =
                omni_util_utf8_len ((const uint8_t *) sc->p, (size_t) (sc->end - sc->p), NULL);
            if (!n)
                return s_fail (sc, "invalid UTF-8 in a string");
            sc->p += n;
            continue;
        }
        //  An escape
        escaped = true;
        if (sc->end - sc->p < 2)
            return s_fail (sc, "premature end of input in an escape");
        char e = sc->p[1];
        if (e == 'u') {
            int v = sc->end - sc->p >= 6 ? s_hex4 (sc->p + 2) : -1;
            if (v < 0)
                return s_fail (sc, "invalid \\u escape");
            if (v >= 0xdc00 && v <= 0xdfff)
                return s_fail (sc, "invalid Unicode: a lone low surrogate");
            if (v >= 0xd800 && v <= 0xdbff) {
                int low = sc->end - sc->p >= 12 && sc->p[6] == '\\' && sc->p[7] == 'u'
                              ? s_hex4 (sc->p + 8)
                              : -1;
                if (low < 0xdc00 || low > 0xdfff)
                    return s_fail (sc, "invalid Unicode: a high surrogate without its low one");
                sc->p += 6;
            }
            sc->p += 6;
        } else if (strchr ("\"\\/bfnrt", e) && e)
            sc->p += 2;
        else
            return s_fail (sc, "invalid escape");
    }
    size_t raw = (size_t) (sc->p - start);
    sc->p++;
    if (!escaped) {
        *text = start;
        *len = raw;
        return 0;
    }
    //  Decoded text is never longer than its escaped form
    jsonrec_t *self = sc->self;
    omni_array_reserve (self->text, self->text_cap, raw);
    char *out = self->text;
    for (const char *p = start; p < start + raw;) {
        if (*p != '\\') {
            *out++ = *p++;
            continue;
        }
        char e = p[1];
        if (e == 'u') {
            uint32_t cp = (uint32_t) s_hex4 (p + 2);
            p += 6;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t) s_hex4 (p + 2) - 0xdc00);
                p += 6;
            }
            out += s_put_utf8 (out, cp);
            continue;
        }
        *out++ = e == 'b'   ? '\b'
                 : e == 'f' ? '\f'
                 : e == 'n' ? '\n'
                 : e == 'r' ? '\r'
                 : e == 't' ? '\t'
                            : e;
        p += 2;
    }
    *text = self->text;
    *len = (size_t) (out - self->text);
    return 0;
}

typedef enum { S_OTHER, S_STRING, S_INTEGER } s_kind_t;

//  A number at sc->p: JSON's grammar, then an integer (no '.' or exponent)
//  within int64, or a finite double.
static int
s_number (s_scan_t *sc, s_kind_t *type, int64_t *integer)
{
    const char *start = sc->p, *p = sc->p, *end = sc->end;
    bool negative = p < end && *p == '-';
    if (negative)
        p++;
    if (p >= end || *p < '0' || *p > '9') {
        sc->p = p;
        return s_fail (sc, "invalid token");
    }
    uint64_t magnitude = 0;
    bool overflow = false;
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9') {
            sc->p = p;
            return s_fail (sc, "invalid token: a number with a leading zero");
        }
    } else
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            unsigned d = (unsigned) (*p - '0');
            if (magnitude > (UINT64_MAX - d) / 10)
                overflow = true;
            magnitude = magnitude * 10 + d;
        }
    bool real = false;
    if (p < end && *p == '.') {
        real = true;
        if (++p >= end || *p < '0' || *p > '9') {
            sc->p = p;
            return s_fail (sc, "invalid token: a digit expected after '.'");
        }
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = true;
        if (++p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9') {
            sc->p = p;
            return s_fail (sc, "invalid token: a digit expected in the exponent");
        }
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    jsonrec_t *self = sc->self;
    if (!real) {
        if (overflow || magnitude > (negative ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX))
            return s_fail (sc, negative ? "too big negative integer" : "too big integer");
        sc->p = p;
        *type = S_INTEGER;
        //  msgpack-c packs a non-negative int64 as the same bytes as a uint64
        if (negative) {
            *integer = magnitude == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) magnitude;
            msgpack_pack_int64 (&self->pk, *integer);
        } else {
            *integer = (int64_t) magnitude;
            msgpack_pack_uint64 (&self->pk, magnitude);
        }
        return 0;
    }
    //  strtod wants a terminated string; the line is not one
    size_t n = (size_t) (p - start);
    char small[64];
    char *copy = n < sizeof small ? small : malloc (n + 1);
    assert (copy);
    memcpy (copy, start, n);
    copy[n] = 0;
    errno = 0;
    double value = strtod (copy, NULL);
    bool huge = errno == ERANGE && (value == HUGE_VAL || value == -HUGE_VAL);
    if (copy != small)
        free (copy);
    if (huge)
        return s_fail (sc, "real number overflow");
    sc->p = p;
    *type = S_OTHER;
    msgpack_pack_double (&self->pk, value);
    return 0;
}

static int s_value (s_scan_t *sc, s_kind_t *type, int64_t *integer);

//  After an array's item or an object's member: 1 after a ',' (another
//  follows), 0 after the closing bracket, -1 on anything else.
static int
s_after_item (s_scan_t *sc, char close)
{
    s_ws (sc);
    if (sc->p < sc->end && (*sc->p == ',' || *sc->p == close))
        return *sc->p++ == ',';
    return s_fail (sc, close == ']' ? "']' expected" : "'}' expected");
}

static int
s_array (s_scan_t *sc)
{
    jsonrec_t *self = sc->self;
    size_t at = self->buf.size, n = 0;
    s_emit (self, "", 1);
    sc->p++;
    s_ws (sc);
    if (sc->p < sc->end && *sc->p == ']')
        sc->p++;
    else
        for (;;) {
            s_kind_t type;
            int64_t integer;
            if (s_value (sc, &type, &integer))
                return -1;
            n++;
            int more = s_after_item (sc, ']');
            if (more < 0)
                return -1;
            if (!more)
                break;
        }
    s_header (self, at, n, 0x90, 0xdc, 0xdd);
    return 0;
}

//  The envelope's fields as the filters read them
static void
s_keep (char **field, size_t *cap, const char *text, size_t len)
{
    omni_array_reserve (*field, *cap, len + 1);
    memcpy (*field, text, len);
    (*field)[len] = 0;
}

//  An object. `top`: the record itself (its envelope is read on the way).
//  {"$bin": "<base64>"} and nothing else is binary (mpjson's one rule).
static int
s_object (s_scan_t *sc, bool top)
{
    jsonrec_t *self = sc->self;
    size_t at = self->buf.size, n = 0;
    s_emit (self, "", 1);
    sc->p++;
    s_ws (sc);
    if (sc->p < sc->end && *sc->p == '}') {
        sc->p++;
        s_header (self, at, 0, 0x80, 0xde, 0xdf);
        return 0;
    }
    for (;;) {
        if (sc->p >= sc->end || *sc->p != '"')
            return s_fail (sc, "string or '}' expected");
        const char *key;
        size_t key_len;
        if (s_string (sc, &key, &key_len))
            return -1;
        if (memchr (key, 0, key_len))
            return s_fail (sc, "NUL byte in object key not supported");
        msgpack_pack_str_with_body (&self->pk, key, key_len);
        //  The key as the checks below need it (self->text is reused)
        enum { K_OTHER, K_ID, K_KIND, K_SRC, K_TS, K_BIN } which = K_OTHER;
        if (top && key_len == 2 && memcmp (key, "id", 2) == 0)
            which = K_ID;
        else if (top && key_len == 4 && memcmp (key, "kind", 4) == 0)
            which = K_KIND;
        else if (top && key_len == 3 && memcmp (key, "src", 3) == 0)
            which = K_SRC;
        else if (top && key_len == 2 && memcmp (key, "ts", 2) == 0)
            which = K_TS;
        else if (!top && n == 0 && key_len == 4 && memcmp (key, "$bin", 4) == 0)
            which = K_BIN;
        s_ws (sc);
        if (sc->p >= sc->end || *sc->p != ':')
            return s_fail (sc, "':' expected");
        sc->p++;
        s_ws (sc);
        if ((which == K_ID && sc->pack_id) || which == K_KIND || which == K_SRC || which == K_BIN) {
            const char *text = NULL;
            size_t len = 0;
            bool is_string = sc->p < sc->end && *sc->p == '"';
            if (is_string && s_string (sc, &text, &len))
                return -1;
            if (which == K_ID) {
                uint8_t id[RECORD_ID_SIZE];
                char hex[2 * RECORD_ID_SIZE + 1] = ""; //  omni_util_unhex reads a C string
                if (is_string && len == 2 * RECORD_ID_SIZE)
                    memcpy (hex, text, len);
                if (!*hex || omni_util_unhex (hex, id, RECORD_ID_SIZE)) {
                    snprintf (sc->error, sc->error_size, "\"id\" is not %d hex digits",
                              2 * RECORD_ID_SIZE);
                    return -1;
                }
                msgpack_pack_bin_with_body (&self->pk, id, RECORD_ID_SIZE);
            } else if (!is_string) {
                s_kind_t type;
                int64_t integer;
                if (s_value (sc, &type, &integer))
                    return -1;
                if (which == K_KIND)
                    self->has_kind = false;
                else if (which == K_SRC)
                    self->has_src = false;
            } else if (which == K_BIN && (s_ws (sc), sc->p < sc->end && *sc->p == '}')) {
                long bytes = s_unbase64 (self, text, len);
                if (bytes < 0) {
                    snprintf (sc->error, sc->error_size, "\"$bin\" is not base64");
                    return -1;
                }
                sc->p++;
                self->buf.size = at;
                msgpack_pack_bin_with_body (&self->pk, self->bin, (size_t) bytes);
                return 0;
            } else {
                if (which == K_KIND) {
                    s_keep (&self->kind, &self->kind_cap, text, len);
                    self->has_kind = true;
                } else if (which == K_SRC) {
                    s_keep (&self->src, &self->src_cap, text, len);
                    self->has_src = true;
                }
                msgpack_pack_str_with_body (&self->pk, text, len);
            }
        } else {
            s_kind_t type;
            int64_t integer;
            if (s_value (sc, &type, &integer))
                return -1;
            if (which == K_TS) {
                self->has_ts = type == S_INTEGER;
                self->ts = type == S_INTEGER ? integer : 0;
            }
        }
        n++;
        int more = s_after_item (sc, '}');
        if (more < 0)
            return -1;
        if (!more)
            break;
        s_ws (sc);
    }
    s_header (self, at, n, 0x80, 0xde, 0xdf);
    return 0;
}

static int
s_literal (s_scan_t *sc, const char *word, uint8_t byte)
{
    size_t n = strlen (word);
    if ((size_t) (sc->end - sc->p) < n || memcmp (sc->p, word, n))
        return s_fail (sc, "invalid token");
    sc->p += n;
    s_emit (sc->self, &byte, 1);
    return 0;
}

static int
s_value (s_scan_t *sc, s_kind_t *type, int64_t *integer)
{
    *type = S_OTHER;
    if (sc->p >= sc->end)
        return s_fail (sc, "premature end of input");
    switch (*sc->p) {
    case '{':
    case '[': {
        if (++sc->depth > S_MAX_DEPTH)
            return s_fail (sc, "maximum parsing depth reached");
        int rc = *sc->p == '{' ? s_object (sc, false) : s_array (sc);
        sc->depth--;
        return rc;
    }
    case '"': {
        const char *text;
        size_t len;
        if (s_string (sc, &text, &len))
            return -1;
        msgpack_pack_str_with_body (&sc->self->pk, text, len);
        *type = S_STRING;
        return 0;
    }
    case 't': return s_literal (sc, "true", 0xc3);
    case 'f': return s_literal (sc, "false", 0xc2);
    case 'n': return s_literal (sc, "null", 0xc0);
    default: return s_number (sc, type, integer);
    }
}

//  The whole line: one object with a string kind and an integer ts, and
//  nothing after it.
static int
s_scan (jsonrec_t *self, const char *line, size_t len, bool pack_id, char *error, size_t error_size)
{
    s_scan_t sc = {self, line, line, line + len, error, error_size, pack_id, 0};
    json_decref (self->root);
    self->root = NULL;
    self->has_kind = self->has_src = self->has_ts = false;
    self->ts = 0;
    msgpack_sbuffer_clear (&self->buf);
    s_ws (&sc);
    bool object = sc.p < sc.end && *sc.p == '{';
    s_kind_t type;
    int64_t integer;
    int rc = object ? s_object (&sc, true) : s_value (&sc, &type, &integer);
    if (rc == 0) {
        s_ws (&sc);
        if (sc.p != sc.end)
            rc = s_fail (&sc, "end of file expected");
    }
    if (rc == 0 && (!object || !self->has_kind || !self->has_ts)) {
        snprintf (error, error_size, "not an archived record (an object with kind and ts)");
        rc = -1;
    }
    if (rc)
        self->has_kind = self->has_src = self->has_ts = false;
    return rc;
}

int
jsonrec_check (jsonrec_t *self, const char *line, size_t len, char *error, size_t error_size)
{
    return s_scan (self, line, len, false, error, error_size);
}

json_t *
jsonrec_parse (jsonrec_t *self, const char *line, size_t len, char *error, size_t error_size)
{
    //  The scanner checks the line and reads its envelope; jansson builds
    //  the tree the YAML and CSV writers walk
    if (s_scan (self, line, len, false, error, error_size))
        return NULL;
    json_error_t jerr;
    self->root = json_loadb (line, len, JSON_ALLOW_NUL, &jerr);
    if (!self->root) {
        snprintf (error, error_size, "not JSON: %s (column %d)", jerr.text, jerr.column);
        self->has_kind = self->has_src = self->has_ts = false;
        return NULL;
    }
    return self->root;
}

int
jsonrec_pack (jsonrec_t *self, const char *line, size_t len, const void **data, size_t *size,
              char *error, size_t error_size)
{
    if (s_scan (self, line, len, true, error, error_size))
        return -1;
    *data = self->buf.data;
    *size = self->buf.size;
    return 0;
}

const char *
jsonrec_kind (jsonrec_t *self)
{
    return self->has_kind ? self->kind : NULL;
}

const char *
jsonrec_src (jsonrec_t *self)
{
    return self->has_src ? self->src : NULL;
}

long long
jsonrec_ts (jsonrec_t *self)
{
    return self->has_ts ? self->ts : 0;
}

//  Encodes a record, writes its archive line, reads the line back: the
//  bytes must be the encoder's.
static void
s_test_round_trip (jsonrec_t *self, omni_record_encoder_t *enc)
{
    const void *data, *back;
    size_t size, back_size;
    char detail[256];
    assert (omni_record_encoder_end (enc, &data, &size, detail, sizeof detail) == 0);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    omni_record_t record;
    assert (omni_record_decode (&record, &zone, data, size, NULL, detail, sizeof detail) ==
            REJECT_NONE);
    omni_buf_t line = {0};
    omni_mpjson_record (&line, &record);
    int rc = jsonrec_pack (self, line.data, line.size, &back, &back_size, detail, sizeof detail);
    if (rc || back_size != size || memcmp (back, data, size))
        fprintf (stderr, "round trip differs: %s (%s)\n", line.data, rc ? detail : "bytes");
    assert (rc == 0 && back_size == size && memcmp (back, data, size) == 0);
    omni_buf_release (&line);
    msgpack_zone_destroy (&zone);
}

void
jsonrec_test (bool verbose)
{
    (void) verbose;
    jsonrec_t *self = jsonrec_new ();
    omni_record_encoder_t *enc = omni_record_encoder_new ();

    //  A commit: strings with escapes and non-ASCII, ints of every width,
    //  negative ones, an array of maps, a binary field.
    omni_record_encoder_begin (enc, "git.commit", "git@example.com:a/b.git", "col-1", "run-1",
                               1700000000123456789LL);
    msgpack_packer *pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 17);
    omni_record_pack_str (pk, "sha");
    omni_record_pack_str (pk, "0123456789abcdef0123456789abcdef01234567");
    omni_record_pack_str (pk, "parents");
    msgpack_pack_array (pk, 0);
    omni_record_pack_str (pk, "author_name");
    omni_record_pack_str (pk, "J\xc3\xa9r\xc3\xb4me \"q\"\t\\");
    omni_record_pack_str (pk, "author_email");
    omni_record_pack_str (pk, "");
    omni_record_pack_str (pk, "author_time");
    msgpack_pack_int64 (pk, 4294967296LL);
    omni_record_pack_str (pk, "author_tz");
    msgpack_pack_int64 (pk, -300);
    omni_record_pack_str (pk, "committer_name");
    omni_record_pack_str (pk, "x");
    omni_record_pack_str (pk, "committer_email");
    omni_record_pack_str (pk, "x@y");
    omni_record_pack_str (pk, "committer_time");
    msgpack_pack_int64 (pk, 200);
    omni_record_pack_str (pk, "committer_tz");
    msgpack_pack_int64 (pk, -40000);
    omni_record_pack_str (pk, "message");
    omni_record_pack_str (pk, "line\n\x01 ctl");
    omni_record_pack_str (pk, "files_changed");
    msgpack_pack_int64 (pk, 65536);
    omni_record_pack_str (pk, "insertions");
    msgpack_pack_int64 (pk, 0);
    omni_record_pack_str (pk, "deletions");
    msgpack_pack_int64 (pk, -2147483649LL);
    omni_record_pack_str (pk, "files");
    msgpack_pack_array (pk, 1);
    msgpack_pack_map (pk, 2);
    omni_record_pack_str (pk, "path");
    omni_record_pack_str (pk, "a.c");
    omni_record_pack_str (pk, "binary");
    msgpack_pack_false (pk);
    omni_record_pack_str (pk, "raw");
    msgpack_pack_map (pk, 2);
    omni_record_pack_str (pk, "author_name");
    msgpack_pack_bin_with_body (pk, "\xff\x00\x01", 3);
    omni_record_pack_str (pk, "one");
    msgpack_pack_bin_with_body (pk, "\xfe", 1);
    omni_record_pack_str (pk, "author_name_mailmap");
    msgpack_pack_nil (pk);
    s_test_round_trip (self, enc);

    //  A metric: floats whole and not, negative zero, tags; ts before 1970.
    const double values[] = {0.0, -0.0, 3.0, 0.1, 1e300, -2.5e-7, 9007199254740993.0};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        omni_record_encoder_begin (enc, "metric", "host-1", "c", "r", -5 - (int64_t) i);
        pk = omni_record_encoder_body (enc);
        msgpack_pack_map (pk, 2);
        omni_record_pack_str (pk, "name");
        omni_record_pack_str (pk, "cpu.user");
        omni_record_pack_str (pk, "value");
        msgpack_pack_double (pk, values[i]);
        omni_record_encoder_tag (enc, "host", "web-1");
        omni_record_encoder_tag (enc, "az", "");
        s_test_round_trip (self, enc);
    }

    //  A custom kind with nested maps and an empty binary.
    omni_record_encoder_begin (enc, "x.deploy", "s", "c", "r", 0);
    pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 3);
    omni_record_pack_str (pk, "nested");
    msgpack_pack_map (pk, 1);
    omni_record_pack_str (pk, "deeper");
    msgpack_pack_array (pk, 3);
    msgpack_pack_true (pk);
    msgpack_pack_int64 (pk, 127);
    msgpack_pack_int64 (pk, 128);
    omni_record_pack_str (pk, "empty");
    msgpack_pack_bin_with_body (pk, "", 0);
    omni_record_pack_str (pk, "u64");
    msgpack_pack_uint64 (pk, INT64_MAX);
    s_test_round_trip (self, enc);

    //  Containers past the one-byte headers (16 and 65,536 entries), a map
    //  that only looks like a binary: the header is patched in place.
    omni_record_encoder_begin (enc, "x.big", "s", "c", "r", 1);
    pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 4);
    omni_record_pack_str (pk, "wide");
    msgpack_pack_map (pk, 20);
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf (key, sizeof key, "k%d", i);
        omni_record_pack_str (pk, key);
        msgpack_pack_array (pk, (size_t) i);
        for (int j = 0; j < i; j++)
            msgpack_pack_int64 (pk, -j * 1000);
    }
    omni_record_pack_str (pk, "long");
    msgpack_pack_array (pk, 70000);
    for (int i = 0; i < 70000; i++)
        msgpack_pack_int64 (pk, i % 300 - 150);
    omni_record_pack_str (pk, "not_bin");
    msgpack_pack_map (pk, 2);
    omni_record_pack_str (pk, "$bin");
    omni_record_pack_str (pk, "AAAA");
    omni_record_pack_str (pk, "x");
    msgpack_pack_nil (pk);
    omni_record_pack_str (pk, "extremes");
    msgpack_pack_array (pk, 4);
    msgpack_pack_int64 (pk, INT64_MIN);
    msgpack_pack_uint64 (pk, INT64_MAX);
    msgpack_pack_double (pk, 5e-324);
    msgpack_pack_double (pk, -1.7976931348623157e308);
    s_test_round_trip (self, enc);

    //  Escapes the archive may hold, decoded: the record has the bytes.
    const char *escaped =
        "{\"kind\":\"x\\/y\",\"ts\":-1,\"s\":\"\\u0000\\ud83d\\ude00\\u00e9\\b\"}";
    const void *data;
    size_t size;
    char error[256];
    assert (jsonrec_pack (self, escaped, strlen (escaped), &data, &size, error, sizeof error) == 0);
    const char expected[] = "\x83\xa4kind\xa3x/y\xa2ts\xff\xa1s\xa8\x00\xf0\x9f\x98\x80\xc3\xa9\b";
    assert (size == sizeof expected - 1 && memcmp (data, expected, size) == 0);
    assert (strcmp (jsonrec_kind (self), "x/y") == 0 && jsonrec_ts (self) == -1 &&
            !jsonrec_src (self));

    //  The scanner accepts exactly what jansson accepts (the JSON the
    //  YAML and CSV exports parse), on lines good and bad.
    const char *lines[] = {
        "{\"kind\":\"k\",\"ts\":0}",
        " {\"kind\" : \"k\" ,\t\"ts\":0 }\r",
        "{\"kind\":\"k\",\"ts\":0,\"a\":[1,-0,0.5,1e3,-2E-2,true,false,null,{},[]]}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":01}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":1.}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":.5}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":1e}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":-}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":+1}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":1e400}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":9223372036854775808}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":-9223372036854775809}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":18446744073709551616}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":\"\\ud800\"}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":\"\\udc00\"}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":\"\\ud800\\u0041\"}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":\"\\x\"}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":\"\\u12g4\"}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":\"tab\there\"}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":\"\xc3\"}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":\"\xc0\xaf\"}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":\"\xed\xa0\x80\"}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}",
        "{\"kind\":\"k\",\"ts\":0,\"\\u0000\":1}",
        "{\"kind\":\"k\",\"ts\":0,}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":[1,]}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":[1 2]}",
        "{\"kind\":\"k\",\"ts\":0 \"a\":1}",
        "{\"kind\":\"k\",\"ts\":0}x",
        "{\"kind\":\"k\",\"ts\":0}{}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":tru}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":nul}",
        "{\"kind\":\"k\",\"ts\":0,\"a\":\"open}",
        "{\"kind\":\"k\",\"ts\":0,\"a\"",
        "{\"kind\":\"k\",\"ts\":0,1:2}",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        json_error_t jerr;
        json_t *tree = json_loadb (lines[i], strlen (lines[i]), JSON_ALLOW_NUL, &jerr);
        int rc = jsonrec_check (self, lines[i], strlen (lines[i]), error, sizeof error);
        if ((rc == 0) != (tree != NULL))
            fprintf (stderr, "%s: scanner %d (%s), jansson %s\n", lines[i], rc, rc ? error : "",
                     tree ? "accepts" : jerr.text);
        assert ((rc == 0) == (tree != NULL));
        assert (rc == 0 || strstr (error, "not JSON"));
        json_decref (tree);
    }
    //  Nesting past jansson's depth is refused, not a stack overflow
    size_t deep = 3000;
    char *nest = malloc (2 * deep + 32);
    assert (nest);
    size_t used = (size_t) sprintf (nest, "{\"kind\":\"k\",\"ts\":0,\"a\":");
    memset (nest + used, '[', deep);
    memset (nest + used + deep, ']', deep);
    strcpy (nest + used + 2 * deep, "}");
    assert (jsonrec_check (self, nest, strlen (nest), error, sizeof error) == -1);
    assert (strstr (error, "depth"));
    free (nest);

    //  Bad lines say why.
    const char *bad[] = {"{\"v\":1,\"kind\":\"metric\",\"ts\":1,\"id\":\"00\"}",
                         "{\"v\":1,\"kind\":\"metric\",\"ts\":1,\"body\":{\"$bin\":\"###\"}}",
                         "{\"v\":1,\"kind\":\"metric\",\"ts\":1,\"body\":{\"x\":nan}}",
                         "{\"v\":1,\"kind\":\"met",
                         "[1,2]",
                         ""};
    const char *why[] = {"hex", "base64", "not JSON", "not JSON", "not an archived", "not JSON"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        error[0] = 0;
        assert (jsonrec_pack (self, bad[i], strlen (bad[i]), &data, &size, error, sizeof error) ==
                -1);
        if (!strstr (error, why[i]))
            fprintf (stderr, "%s: %s\n", bad[i], error);
        assert (strstr (error, why[i]));
    }
    omni_record_encoder_destroy (&enc);
    jsonrec_destroy (&self);
    assert (self == NULL);
}
