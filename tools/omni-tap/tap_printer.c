/*  tap_printer: the text omni-tap prints for each tap message.

    Record frames were validated by ingestd, but the reject frames carry
    whatever a collector sent: the detail text may quote cut-off bytes of the
    input, so every text of a reject goes through a UTF-8-checking escaper
    that replaces invalid bytes with U+FFFD rather than printing a line that
    no JSON reader accepts.                                                   */
#include "tools/omni-tap/tap_printer.h"
#include "proto/mpjson.h"
#include "proto/record.h"
#include "common/util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct _tap_printer_t {
    tap_format_t format;
    bool show_rejects;
    msgpack_zone zone;
    omni_buf_t out;     //  the text returned
    omni_buf_t scratch; //  compact JSON before indenting
    size_t printed, bad;
};

//  Records on the tap passed ingestd's limits, whatever they were set to;
//  only refuse what omni_record_decode cannot represent at all.
static const omni_record_limits_t s_tap_limits = {SIZE_MAX, 64};

int
tap_format_parse (const char *name, tap_format_t *format)
{
    if (name && strcmp (name, "json") == 0)
        *format = TAP_FORMAT_JSON;
    else if (name && strcmp (name, "pretty") == 0)
        *format = TAP_FORMAT_PRETTY;
    else
        return -1;
    return 0;
}

const char **
tap_topics (const char *const *kinds, bool rejects, bool *show_rejects)
{
    size_t nkinds = 0;
    while (kinds && kinds[nkinds])
        nkinds++;
    const char **topics = calloc (nkinds + 2, sizeof *topics);
    assert (topics);
    size_t n = 0;
    //  A prefix that covers "!reject" (e.g. "!") asks for rejects as much as
    //  --rejects does; "" (all kinds) does not.
    bool covered = false;
    for (size_t i = 0; i < nkinds; i++) {
        topics[n++] = kinds[i];
        size_t len = strlen (kinds[i]);
        if (len && strncmp (kinds[i], TAP_REJECT_TOPIC, len) == 0 &&
            len <= strlen (TAP_REJECT_TOPIC))
            covered = true;
    }
    if (rejects && !covered)
        topics[n++] = TAP_REJECT_TOPIC;
    else if (nkinds == 0 && !rejects)
        topics[n++] = "";
    topics[n] = NULL;
    *show_rejects = rejects || covered;
    return topics;
}

tap_printer_t *
tap_printer_new (tap_format_t format, bool show_rejects)
{
    tap_printer_t *self = calloc (1, sizeof *self);
    assert (self);
    self->format = format;
    self->show_rejects = show_rejects;
    msgpack_zone_init (&self->zone, 4096);
    return self;
}

void
tap_printer_destroy (tap_printer_t **self_p)
{
    tap_printer_t *self = *self_p;
    if (!self)
        return;
    msgpack_zone_destroy (&self->zone);
    omni_buf_release (&self->out);
    omni_buf_release (&self->scratch);
    free (self);
    *self_p = NULL;
}

static void
s_json_text (omni_buf_t *buf, const void *data, size_t len)
{
    omni_buf_append (buf, "\"", 1);
    omni_mpjson_escaped (buf, data, len, true);
    omni_buf_append (buf, "\"", 1);
}

static void
s_hex (omni_buf_t *buf, const void *data, size_t len)
{
    char hex[2 * TAP_RAW_HEX_MAX + 1];
    if (len > TAP_RAW_HEX_MAX)
        len = TAP_RAW_HEX_MAX;
    omni_util_hex (data, len, hex);
    omni_buf_append (buf, hex, 2 * len);
}

//  ISO 8601 UTC with nanoseconds: 2023-11-14T22:13:20.000000001Z.
static void
s_iso_time (omni_buf_t *buf, int64_t ts)
{
    int64_t sec = ts / 1000000000, nsec = ts % 1000000000;
    if (nsec < 0) {
        sec -= 1;
        nsec += 1000000000;
    }
    time_t t = (time_t) sec;
    struct tm tm;
    char text[64];
    if (!gmtime_r (&t, &tm) || !strftime (text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm)) {
        snprintf (text, sizeof text, "@%" PRId64, ts);
        omni_buf_append (buf, text, strlen (text));
        return;
    }
    omni_buf_append (buf, text, strlen (text));
    omni_buf_append (buf, text, (size_t) snprintf (text, sizeof text, ".%09" PRId64 "Z", nsec));
}

static void
s_indent (omni_buf_t *buf, int level)
{
    omni_buf_append (buf, "\n", 1);
    for (int i = 0; i < level; i++)
        omni_buf_append (buf, "  ", 2);
}

//  Re-indents compact JSON (as mpjson writes it: no whitespace outside
//  strings), two spaces a level, starting at `level`; empty {} and [] stay.
static void
s_pretty_json (omni_buf_t *buf, const char *json, size_t len, int level)
{
    bool in_string = false;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        char c = json[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
            continue;
        }
        if (c != '{' && c != '[' && c != '}' && c != ']' && c != ',' && c != ':')
            continue;
        omni_buf_append (buf, json + run, i - run);
        run = i + 1;
        if ((c == '{' || c == '[') && i + 1 < len && (json[i + 1] == '}' || json[i + 1] == ']')) {
            omni_buf_append (buf, json + i, 2);
            run = ++i + 1;
        } else if (c == '{' || c == '[') {
            omni_buf_append (buf, &c, 1);
            s_indent (buf, ++level);
        } else if (c == '}' || c == ']') {
            s_indent (buf, --level);
            omni_buf_append (buf, &c, 1);
        } else if (c == ',') {
            omni_buf_append (buf, ",", 1);
            s_indent (buf, level);
        } else
            omni_buf_append (buf, ": ", 2);
    }
    omni_buf_append (buf, json + run, len - run);
}

static void
s_field (omni_buf_t *buf, const char *name, omni_record_str_t value)
{
    omni_buf_append (buf, " ", 1);
    omni_buf_append (buf, name, strlen (name));
    omni_buf_append (buf, "=", 1);
    //  Escaped: a control character in a source name must not reach the terminal.
    omni_mpjson_escaped (buf, value.ptr, value.len, true);
}

static void
s_record_pretty (tap_printer_t *self, const omni_record_t *record)
{
    omni_buf_t *out = &self->out;
    char hex[2 * RECORD_ID_SIZE + 1];
    omni_mpjson_escaped (out, record->kind.ptr, record->kind.len, true);
    omni_buf_append (out, " ", 1);
    s_field (out, "src", record->src);
    omni_util_hex (record->id, RECORD_ID_SIZE, hex);
    omni_buf_append (out, " id=", 4);
    omni_buf_append (out, hex, strlen (hex));
    omni_buf_append (out, " ts=", 4);
    s_iso_time (out, record->ts);
    s_field (out, "col", record->col);
    s_field (out, "run", record->run);
    if (record->tags) {
        omni_buf_reset (&self->scratch);
        omni_mpjson_value (&self->scratch, record->tags);
        omni_buf_append (out, "\n  tags ", 8);
        omni_buf_append (out, self->scratch.data, self->scratch.size);
    }
    omni_buf_reset (&self->scratch);
    omni_mpjson_value (&self->scratch, record->body);
    omni_buf_append (out, "\n  ", 3);
    s_pretty_json (out, self->scratch.data, self->scratch.size, 1);
    omni_buf_append (out, "\n", 1);
}

static tap_result_t
s_bad (tap_printer_t *self, const char *text, size_t *size)
{
    omni_buf_reset (&self->out);
    omni_buf_append (&self->out, text, strlen (text));
    *size = self->out.size;
    self->bad++;
    return TAP_BAD;
}

tap_result_t
tap_printer_format (tap_printer_t *self, const void *const *frames, const size_t *sizes,
                    size_t count, const char **text, size_t *size)
{
    omni_buf_reset (&self->out);
    omni_buf_append (&self->out, "", 0); //  text is never NULL
    *text = self->out.data;
    *size = 0;
    const size_t topic_len = strlen (TAP_REJECT_TOPIC);
    if (count >= 1 && sizes[0] == topic_len &&
        memcmp (frames[0], TAP_REJECT_TOPIC, topic_len) == 0) {
        if (count != 4 && count != 5)
            return s_bad (self, "reject message without 4 or 5 frames", size);
        if (!self->show_rejects)
            return TAP_SKIPPED;
        //  The fifth frame, the input's whole size, came with the raw bytes
        //  being cut at 4 KiB; without it the raw bytes are the whole input.
        uint64_t whole = sizes[3];
        if (count == 5 && sizes[4] == 8)
            whole = omni_util_get_be (frames[4], 8);
        omni_buf_t *out = &self->out;
        char number[32];
        if (self->format == TAP_FORMAT_JSON) {
            omni_buf_append (out, "{\"reject\":", 10);
            s_json_text (out, frames[1], sizes[1]);
            omni_buf_append (out, ",\"detail\":", 10);
            s_json_text (out, frames[2], sizes[2]);
            omni_buf_append (
                out, number,
                (size_t) snprintf (number, sizeof number, ",\"size\":%" PRIu64, whole));
            omni_buf_append (out, ",\"raw_hex\":\"", 12);
            s_hex (out, frames[3], sizes[3]);
            omni_buf_append (out, "\"}\n", 3);
        } else {
            omni_buf_append (out, "!reject  ", 9);
            omni_mpjson_escaped (out, frames[1], sizes[1], true);
            omni_buf_append (out, number,
                             (size_t) snprintf (number, sizeof number, "  size=%" PRIu64, whole));
            omni_buf_append (out, "\n  detail ", 10);
            s_json_text (out, frames[2], sizes[2]);
            omni_buf_append (out, "\n  raw ", 7);
            s_hex (out, frames[3], sizes[3]);
            if (sizes[3] > TAP_RAW_HEX_MAX)
                omni_buf_append (out, "...", 3);
            omni_buf_append (out, "\n", 1);
        }
        *text = out->data;
        *size = out->size;
        self->printed++;
        return TAP_PRINTED;
    }
    if (count != 2)
        return s_bad (self, "record message without 2 frames", size);
    omni_record_t record;
    char detail[256];
    msgpack_zone_clear (&self->zone);
    omni_record_reject_t reason = omni_record_decode (&record, &self->zone, frames[1], sizes[1],
                                                      &s_tap_limits, detail, sizeof detail);
    if (reason != REJECT_NONE) {
        char why[320];
        snprintf (why, sizeof why, "record refused: %s: %s", omni_record_reject_name (reason),
                  detail);
        return s_bad (self, why, size);
    }
    if (self->format == TAP_FORMAT_JSON) {
        omni_mpjson_record (&self->out, &record);
        omni_buf_append (&self->out, "\n", 1);
    } else
        s_record_pretty (self, &record);
    *text = self->out.data;
    *size = self->out.size;
    self->printed++;
    return TAP_PRINTED;
}

size_t
tap_printer_printed (tap_printer_t *self)
{
    return self->printed;
}

size_t
tap_printer_bad (tap_printer_t *self)
{
    return self->bad;
}

//  ---------------------------------------------------------------------------

static tap_result_t
s_format2 (tap_printer_t *self, const char *topic, const void *data, size_t data_size,
           const char **text, size_t *size)
{
    const void *frames[2] = {topic, data};
    size_t sizes[2] = {strlen (topic), data_size};
    return tap_printer_format (self, frames, sizes, 2, text, size);
}

static bool
s_topics_are (const char *const *kinds, bool rejects, bool expect_show, ...)
{
    bool show;
    const char **topics = tap_topics (kinds, rejects, &show);
    va_list args;
    va_start (args, expect_show);
    bool same = show == expect_show;
    size_t i = 0;
    for (const char *want; (want = va_arg (args, const char *)); i++)
        same = same && topics[i] && strcmp (topics[i], want) == 0;
    same = same && topics[i] == NULL;
    va_end (args);
    free (topics);
    return same;
}

//  The text printed is the text expected (both shown when not, or verbose).
static void
s_expect (const char *text, const char *expected, bool verbose)
{
    if (verbose || strcmp (text, expected))
        printf ("%s%s", text, expected);
    assert (strcmp (text, expected) == 0);
}

void
tap_printer_test (bool verbose)
{
    //  Topics
    const char *none[] = {NULL};
    const char *git[] = {"git.", "metric", NULL};
    const char *bang[] = {"!", NULL};
    assert (s_topics_are (none, false, false, "", NULL));
    assert (s_topics_are (NULL, false, false, "", NULL));
    assert (s_topics_are (none, true, true, "!reject", NULL));
    assert (s_topics_are (git, false, false, "git.", "metric", NULL));
    assert (s_topics_are (git, true, true, "git.", "metric", "!reject", NULL));
    assert (s_topics_are (bang, false, true, "!", NULL));
    assert (s_topics_are (bang, true, true, "!", NULL));

    tap_format_t format;
    assert (tap_format_parse ("json", &format) == 0 && format == TAP_FORMAT_JSON);
    assert (tap_format_parse ("pretty", &format) == 0 && format == TAP_FORMAT_PRETTY);
    assert (tap_format_parse ("yaml", &format) == -1);
    assert (tap_format_parse (NULL, &format) == -1);

    //  A known record, formatted exactly.
    omni_record_encoder_t *enc = omni_record_encoder_new ();
    omni_record_encoder_begin (enc, "git.branch", "repo-a", "col-1", "run-1",
                               1700000000000000001LL);
    msgpack_packer *pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 3);
    msgpack_pack_str_with_body (pk, "name", 4);
    msgpack_pack_str_with_body (pk, "main", 4);
    msgpack_pack_str_with_body (pk, "target", 6);
    msgpack_pack_str_with_body (pk, "abc", 3);
    msgpack_pack_str_with_body (pk, "head", 4);
    msgpack_pack_true (pk);
    omni_record_encoder_tag (enc, "env", "prod");
    const void *data;
    size_t data_size;
    char detail[256];
    assert (omni_record_encoder_end (enc, &data, &data_size, detail, sizeof detail) == 0);
    char id[2 * RECORD_ID_SIZE + 1];
    omni_util_hex (omni_record_encoder_id (enc), RECORD_ID_SIZE, id);

    tap_printer_t *json = tap_printer_new (TAP_FORMAT_JSON, false);
    const char *text;
    size_t size;
    assert (s_format2 (json, "git.branch", data, data_size, &text, &size) == TAP_PRINTED);
    char expected[1024];
    snprintf (expected, sizeof expected,
              "{\"v\":1,\"id\":\"%s\",\"kind\":\"git.branch\",\"src\":\"repo-a\",\"col\":"
              "\"col-1\",\"run\":\"run-1\",\"ts\":1700000000000000001,\"body\":{\"name\":"
              "\"main\",\"target\":\"abc\",\"head\":true},\"tags\":{\"env\":\"prod\"}}\n",
              id);
    s_expect (text, expected, verbose);
    assert (size == strlen (expected));

    tap_printer_t *pretty = tap_printer_new (TAP_FORMAT_PRETTY, false);
    assert (s_format2 (pretty, "git.branch", data, data_size, &text, &size) == TAP_PRINTED);
    snprintf (expected, sizeof expected,
              "git.branch  src=repo-a id=%s ts=2023-11-14T22:13:20.000000001Z col=col-1 "
              "run=run-1\n"
              "  tags {\"env\":\"prod\"}\n"
              "  {\n"
              "    \"name\": \"main\",\n"
              "    \"target\": \"abc\",\n"
              "    \"head\": true\n"
              "  }\n",
              id);
    s_expect (text, expected, verbose);

    //  Nested bodies, empty containers, strings holding JSON punctuation
    //  and escapes, a time before the epoch.
    omni_record_encoder_begin (enc, "x.test", "s", "c", "r", -1);
    pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 3);
    msgpack_pack_str_with_body (pk, "a", 1);
    msgpack_pack_array (pk, 2);
    msgpack_pack_int (pk, 1);
    msgpack_pack_map (pk, 0);
    msgpack_pack_str_with_body (pk, "b", 1);
    msgpack_pack_str_with_body (pk, "{x,\"y\":[]}", 10);
    msgpack_pack_str_with_body (pk, "c", 1);
    msgpack_pack_array (pk, 0);
    assert (omni_record_encoder_end (enc, &data, &data_size, detail, sizeof detail) == 0);
    omni_util_hex (omni_record_encoder_id (enc), RECORD_ID_SIZE, id);
    assert (s_format2 (pretty, "x.test", data, data_size, &text, &size) == TAP_PRINTED);
    snprintf (expected, sizeof expected,
              "x.test  src=s id=%s ts=1969-12-31T23:59:59.999999999Z col=c run=r\n"
              "  {\n"
              "    \"a\": [\n"
              "      1,\n"
              "      {}\n"
              "    ],\n"
              "    \"b\": \"{x,\\\"y\\\":[]}\",\n"
              "    \"c\": []\n"
              "  }\n",
              id);
    s_expect (text, expected, verbose);

    //  Rejects: skipped unless asked for; shown as one JSON line with the
    //  first 64 bytes in hex; invalid UTF-8 in the detail is replaced.
    uint8_t raw[100];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t) i;
    const void *frames[4] = {"!reject", "bad_body", "body.x: \"q\"\n\xc3", raw};
    size_t sizes[4] = {7, 8, 13, sizeof raw};
    assert (tap_printer_format (json, frames, sizes, 4, &text, &size) == TAP_SKIPPED);
    tap_printer_t *rejects = tap_printer_new (TAP_FORMAT_JSON, true);
    assert (tap_printer_format (rejects, frames, sizes, 4, &text, &size) == TAP_PRINTED);
    const char *want = "{\"reject\":\"bad_body\",\"detail\":\"body.x: \\\"q\\\"\\n\\ufffd\","
                       "\"size\":100,\"raw_hex\":\"000102030405060708090a0b0c0d0e0f10111213141516"
                       "1718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a"
                       "3b3c3d3e3f\"}\n";
    if (verbose || strcmp (text, want))
        printf ("%s%s", text, want);
    assert (strcmp (text, want) == 0);
    //  Valid multi-byte UTF-8 passes unchanged, a lone byte in the middle too is replaced.
    frames[2] = "\xc3\xa9t\xe9\xf0\x9f\x98\x80";
    sizes[2] = 8;
    sizes[3] = 2;
    assert (tap_printer_format (rejects, frames, sizes, 4, &text, &size) == TAP_PRINTED);
    want = "{\"reject\":\"bad_body\",\"detail\":\"\xc3\xa9t\\ufffd\xf0\x9f\x98\x80\",\"size\":2,"
           "\"raw_hex\":\"0001\"}\n";
    if (verbose || strcmp (text, want))
        printf ("%s%s", text, want);
    assert (strcmp (text, want) == 0);
    tap_printer_t *pretty_rejects = tap_printer_new (TAP_FORMAT_PRETTY, true);
    assert (tap_printer_format (pretty_rejects, frames, sizes, 4, &text, &size) == TAP_PRINTED);
    want = "!reject  bad_body  size=2\n  detail \"\xc3\xa9t\\ufffd\xf0\x9f\x98\x80\"\n  raw 0001\n";
    if (verbose || strcmp (text, want))
        printf ("%s%s", text, want);
    assert (strcmp (text, want) == 0);

    //  The whole size of an input cut to its first bytes, from the fifth frame.
    const void *cut[5] = {"!reject", "too_large", "104857600 bytes", raw,
                          "\x00\x00\x00\x00\x06\x40\x00\x00"};
    size_t cut_sizes[5] = {7, 9, 15, 2, 8};
    assert (tap_printer_format (pretty_rejects, cut, cut_sizes, 5, &text, &size) == TAP_PRINTED);
    want = "!reject  too_large  size=104857600\n  detail \"104857600 bytes\"\n  raw 0001\n";
    if (verbose || strcmp (text, want))
        printf ("%s%s", text, want);
    assert (strcmp (text, want) == 0);

    //  Not tap messages: counted, never a crash.
    assert (tap_printer_format (rejects, frames, sizes, 3, &text, &size) == TAP_BAD);
    assert (tap_printer_format (json, frames, sizes, 1, &text, &size) == TAP_BAD);
    assert (s_format2 (json, "metric", "\x81\xa1v\x02", 4, &text, &size) == TAP_BAD);
    assert (strstr (text, "bad_version"));
    assert (tap_printer_format (json, frames, sizes, 0, &text, &size) == TAP_BAD);
    assert (tap_printer_bad (json) == 3 && tap_printer_printed (json) == 1);
    assert (tap_printer_printed (rejects) == 2);

    tap_printer_destroy (&json);
    tap_printer_destroy (&pretty);
    tap_printer_destroy (&rejects);
    tap_printer_destroy (&pretty_rejects);
    assert (json == NULL);
    omni_record_encoder_destroy (&enc);
}
