/*  junit_parse: JUnit XML reports into neutral results, with libxml2's
    streaming xmlTextReader.

    Why two readings: libxml2 parses ahead of what it delivers and reports a
    cut-off file only at its end ("Extra content at the end of the
    document"), so results read before an error cannot be told complete.
    junit_parse_check reads the file through once without giving anything;
    only a report that parses whole is read again for its results, and the
    bytes of both readings are hashed so that a file rewritten in between is
    caught. Memory stays bounded by the nesting and the failures held for a
    rerun, not by the size of the report.

    Why a scanner of our own for errors: at the end of a file libxml2 names
    no element, so a small tokenizer (tags, comments, CDATA, declarations)
    runs over a malformed file to say where it ends ("file ends inside
    <testcase name="b"> opened at line 4", "unclosed CDATA section").       */
#include "collectord/junit_parse.h"
#include "common/buf.h"
#include "collectord/builds.h"
#include "common/log.h"
#include "testsupport/selftest.h"
#include "common/util.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/xmlreader.h>
#include <openssl/evp.h>

//  Failed cases held back per report, waiting for a rerun; past this they
//  are given at once (a later rerun is then a result of its own).
#define S_PENDING_MAX 10000

static const char *s_status_names[JUNIT_STATUSES] = {"passed", "skipped", "disabled", "failed",
                                                     "error"};

const char *
junit_status_name (junit_status_t status)
{
    return status < JUNIT_STATUSES ? s_status_names[status] : "passed";
}

//  ---------------------------------------------------------------------------
//  Small helpers

//  Seconds from a time attribute: "0.25", "1,234.5" (grouping), "0,25"
//  (decimal comma). -1 when missing or not a number.
static double
s_seconds_or (const char *text, double otherwise)
{
    if (!text)
        return otherwise;
    char buf[64];
    size_t n = 0;
    bool dot = strchr (text, '.') != NULL;
    const char *comma = strrchr (text, ',');
    //  A lone comma followed by exactly three digits groups thousands
    bool grouping = dot || (comma && strlen (comma + 1) == 3);
    for (const char *p = text; *p && n + 1 < sizeof buf; p++) {
        if (*p == ',') {
            if (!grouping)
                buf[n++] = '.';
        } else if (!isspace ((unsigned char) *p))
            buf[n++] = *p;
    }
    buf[n] = 0;
    char *end;
    double v = strtod (buf, &end);
    if (end == buf || *end || !isfinite (v) || v < 0)
        return otherwise;
    return v;
}

static double
s_seconds (const char *text)
{
    return s_seconds_or (text, 0);
}

static char *
s_attr (xmlTextReaderPtr reader, const char *name)
{
    xmlChar *v = xmlTextReaderGetAttribute (reader, BAD_CAST name);
    if (!v)
        return NULL;
    char *copy = strdup ((const char *) v);
    xmlFree (v);
    return copy;
}

//  A message attribute that says nothing ("Failed", Go's reports; ctest)
static bool
s_generic (const char *message)
{
    if (!message || !*message)
        return true;
    static const char *words[] = {"Failed", "failed", "Error", "error", "Skipped", "skipped", NULL};
    for (size_t i = 0; words[i]; i++)
        if (strcmp (message, words[i]) == 0)
            return true;
    return false;
}

static char *
s_trimmed_dup (const char *s, size_t len, size_t max)
{
    while (len && isspace ((unsigned char) *s))
        s++, len--;
    while (len && isspace ((unsigned char) s[len - 1]))
        len--;
    len = omni_util_utf8_cut (s, len, max);
    char *out = malloc (len + 1);
    assert (out);
    memcpy (out, s, len);
    out[len] = 0;
    return out;
}

//  ---------------------------------------------------------------------------
//  Occurrences: results seen per suite, class and name. Keys are 64-bit
//  hashes in an open-addressing table (16 bytes a key: 100,000 distinct
//  cases cost 2-4 MiB); two keys sharing a hash only make an index skip a
//  number, ids stay distinct and stable.

typedef struct {
    uint64_t *keys; //  0 = free
    uint32_t *counts;
    size_t size, used;
} s_counts_t;

static uint64_t
s_hash (const char *suite, const char *class_name, const char *name)
{
    uint64_t h = UINT64_C (14695981039346656037);
    const char *parts[] = {suite, class_name ? class_name : "", name};
    for (size_t i = 0; i < 3; i++) {
        for (const unsigned char *p = (const unsigned char *) parts[i]; *p; p++)
            h = (h ^ *p) * UINT64_C (1099511628211);
        h = (h ^ 0x1f) * UINT64_C (1099511628211);
    }
    return h ? h : 1;
}

//  The key's count so far, then one more
static uint32_t
s_counts_next (s_counts_t *self, uint64_t key)
{
    if (self->used * 2 >= self->size) {
        s_counts_t bigger = {NULL, NULL, self->size ? self->size * 2 : 1024, 0};
        bigger.keys = calloc (bigger.size, sizeof (uint64_t));
        bigger.counts = calloc (bigger.size, sizeof (uint32_t));
        assert (bigger.keys && bigger.counts);
        for (size_t i = 0; i < self->size; i++)
            if (self->keys[i]) {
                size_t j = self->keys[i] & (bigger.size - 1);
                while (bigger.keys[j])
                    j = (j + 1) & (bigger.size - 1);
                bigger.keys[j] = self->keys[i];
                bigger.counts[j] = self->counts[i];
                bigger.used++;
            }
        free (self->keys);
        free (self->counts);
        *self = bigger;
    }
    size_t j = key & (self->size - 1);
    while (self->keys[j] && self->keys[j] != key)
        j = (j + 1) & (self->size - 1);
    if (!self->keys[j]) {
        self->keys[j] = key;
        self->used++;
    }
    return self->counts[j]++;
}

//  ---------------------------------------------------------------------------
//  What a malformed file's end leaves open, in words

typedef struct {
    char name[64];
    char label[128]; //  its name attribute, if any
    int line;
} s_open_t;

#define S_OPEN_MAX 256

typedef enum { Z_TEXT, Z_TAG, Z_COMMENT, Z_CDATA, Z_PI, Z_DECL } s_zone_t;

//  Describes how `path` ends when it ends inside something; false when it
//  ends with everything closed (the error is elsewhere: libxml2's words).
static bool
s_explain_end (const char *path, char *out, size_t size, int *end_line)
{
    FILE *f = fopen (path, "rb");
    if (!f)
        return false;
    s_open_t *stack = calloc (S_OPEN_MAX, sizeof *stack);
    assert (stack);
    size_t depth = 0, deep = 0; //  deep: levels beyond S_OPEN_MAX
    s_zone_t zone = Z_TEXT;
    char tag[512];
    size_t tag_len = 0;
    int line = 1, zone_line = 1, quote = 0, brackets = 0;
    bool any = false, rooted = false;
    char tail[3] = {0, 0, 0}; //  the last bytes, for "-->", "]]>", "?>"
    int c, last = 0;
    while ((c = fgetc (f)) != EOF) {
        last = c;
        if (c == '\n')
            line++;
        if (!isspace (c))
            any = true;
        tail[0] = tail[1];
        tail[1] = tail[2];
        tail[2] = (char) c;
        switch (zone) {
        case Z_TEXT:
            if (c == '<') {
                zone = Z_TAG;
                zone_line = line;
                tag_len = 0;
                quote = 0;
            }
            break;
        case Z_TAG:
            if (tag_len < sizeof tag - 1)
                tag[tag_len++] = (char) c;
            tag[tag_len] = 0;
            if (tag_len == 3 && strncmp (tag, "!--", 3) == 0)
                zone = Z_COMMENT;
            else if (tag_len == 8 && strncmp (tag, "![CDATA[", 8) == 0)
                zone = Z_CDATA;
            else if (tag_len == 1 && c == '?')
                zone = Z_PI;
            else if (tag_len == 2 && tag[0] == '!' && c != '-' && c != '[')
                zone = Z_DECL, brackets = 0;
            else if (quote) {
                if (c == quote)
                    quote = 0;
            } else if (c == '"' || c == '\'')
                quote = c;
            else if (c == '>') {
                zone = Z_TEXT;
                if (tag[0] == '/') {
                    if (deep)
                        deep--;
                    else if (depth)
                        depth--;
                } else if (tag_len < 2 || tag[tag_len - 2] != '/') {
                    rooted = true;
                    if (depth == S_OPEN_MAX) {
                        deep++;
                        break;
                    }
                    s_open_t *o = &stack[depth++];
                    size_t n = strcspn (tag, " \t\r\n/>");
                    snprintf (o->name, sizeof o->name, "%.*s", (int) (n < 63 ? n : 63), tag);
                    o->line = zone_line;
                    o->label[0] = 0;
                    for (char *a = tag; (a = strstr (a, "name=")); a += 5)
                        if (a > tag && isspace ((unsigned char) a[-1]) &&
                            (a[5] == '"' || a[5] == '\'')) {
                            size_t len = strcspn (a + 6, a[5] == '"' ? "\"" : "'");
                            snprintf (o->label, sizeof o->label, " name=\"%.*s\"",
                                      (int) (len < 100 ? len : 100), a + 6);
                            break;
                        }
                } else
                    rooted = true;
            }
            break;
        case Z_COMMENT:
            if (tail[0] == '-' && tail[1] == '-' && tail[2] == '>')
                zone = Z_TEXT;
            break;
        case Z_CDATA:
            if (tail[0] == ']' && tail[1] == ']' && tail[2] == '>')
                zone = Z_TEXT;
            break;
        case Z_PI:
            if (tail[1] == '?' && tail[2] == '>')
                zone = Z_TEXT;
            break;
        case Z_DECL:
            if (c == '[')
                brackets++;
            else if (c == ']' && brackets)
                brackets--;
            else if (c == '>' && !brackets)
                zone = Z_TEXT;
            break;
        }
    }
    fclose (f);
    bool explained = true;
    const s_open_t *top = depth ? &stack[depth - 1] : NULL;
    //  The innermost open <testcase> says most to the reader
    const s_open_t *tc = NULL;
    for (size_t i = depth; i-- > 0 && !tc;)
        if (strcmp (stack[i].name, "testcase") == 0)
            tc = &stack[i];
    char where[200] = "";
    if (tc && tc != top)
        snprintf (where, sizeof where, " of <testcase%s> opened at line %d", tc->label, tc->line);
    if (!any)
        snprintf (out, size, "file is empty");
    else if (zone == Z_CDATA)
        snprintf (out, size, "unclosed CDATA section opened at line %d%s", zone_line, where);
    else if (zone == Z_COMMENT)
        snprintf (out, size, "unclosed comment opened at line %d%s", zone_line, where);
    else if (zone == Z_TAG || zone == Z_PI || zone == Z_DECL)
        snprintf (out, size, "file ends inside a tag opened at line %d", zone_line);
    else if (top)
        snprintf (out, size, "file ends inside <%s%s> opened at line %d%s", top->name, top->label,
                  top->line, where);
    else if (!rooted)
        snprintf (out, size, "no root element");
    else
        explained = false;
    if (explained && (zone == Z_TAG || zone == Z_PI || zone == Z_DECL) && top) {
        size_t len = strlen (out);
        snprintf (out + len, size - len, ", inside <%s%s> opened at line %d", top->name, top->label,
                  top->line);
    }
    free (stack);
    //  A file ends on its last line, not on the empty one after its newline
    if (explained)
        *end_line = last == '\n' && line > 1 ? line - 1 : line;
    return explained;
}

//  ---------------------------------------------------------------------------
//  The report reader

typedef struct {
    char *name;
    int64_t ts;
    double time;
    int depth;
} s_frame_t;

typedef struct {
    char *suite, *class_name, *name, *type, *message;
    junit_status_t status;
    double duration;
    bool flaky, retried;
    uint32_t occurrence;
    int64_t ts;
    //  A failure waiting for a rerun: the first failure of its attempts
    char *first_type, *first_message;
    bool done;
} s_case_t;

//  Text being gathered for a message
typedef struct {
    bool on;
    int depth; //  of the element whose text it is
    char *buf;
    size_t len;
    char *attr_message; //  kept in case the text is empty
    bool flaky;         //  it belongs to a flakyFailure/flakyError
} s_text_t;

//  The bytes libxml2 reads, hashed on their way
typedef struct {
    int fd;
    EVP_MD_CTX *md;
    int error; //  errno of a failed read
} s_io_t;

struct _junit_parse_t {
    s_counts_t counts;
    //  One report
    junit_case_fn *fn; //  NULL: checking
    void *arg;
    junit_report_t *report;
    const char *path;
    char *basename; //  file name without extension: the suite of last resort
    s_frame_t *frames;
    size_t nframes, frames_cap;
    bool in_case;
    int case_depth;
    s_case_t cur;
    char *flaky_type, *flaky_message;
    s_text_t text;
    bool root_timed;      //  the root declared its time
    double children_time; //  else its suites' declared times
    bool children_timed;
    //  Failed cases waiting for a rerun: order kept in `pending`, found by key
    s_case_t *pending;
    size_t npending, pending_cap;
    zhashx_t *pending_index; //  key -> index + 1
    bool stopped;
    //  The first error the parser reported
    bool errored;
    int error_line;
    char error[512];
};

junit_parse_t *
junit_parse_new (void)
{
    xmlInitParser ();
    junit_parse_t *self = calloc (1, sizeof *self);
    assert (self);
    self->text.buf = malloc (JUNIT_MESSAGE_MAX + 8);
    assert (self->text.buf);
    self->pending_index = zhashx_new ();
    return self;
}

static void
s_case_free (s_case_t *c)
{
    free (c->suite);
    free (c->class_name);
    free (c->name);
    free (c->type);
    free (c->message);
    free (c->first_type);
    free (c->first_message);
    memset (c, 0, sizeof *c);
}

static void
s_reset_file (junit_parse_t *self)
{
    for (size_t i = 0; i < self->nframes; i++)
        free (self->frames[i].name);
    self->nframes = 0;
    s_case_free (&self->cur);
    self->in_case = false;
    free (self->flaky_type);
    free (self->flaky_message);
    self->flaky_type = self->flaky_message = NULL;
    free (self->text.attr_message);
    self->text.attr_message = NULL;
    self->text.on = false;
    for (size_t i = 0; i < self->npending; i++)
        s_case_free (&self->pending[i]);
    self->npending = 0;
    zhashx_purge (self->pending_index);
    free (self->basename);
    self->basename = NULL;
    self->root_timed = self->children_timed = false;
    self->children_time = 0;
}

void
junit_parse_destroy (junit_parse_t **self_p)
{
    junit_parse_t *self = *self_p;
    if (!self)
        return;
    s_reset_file (self);
    free (self->frames);
    free (self->pending);
    free (self->text.buf);
    free (self->counts.keys);
    free (self->counts.counts);
    zhashx_destroy (&self->pending_index);
    free (self);
    *self_p = NULL;
}

#if LIBXML_VERSION >= 21200
static void
s_on_error (void *arg, const xmlError *err)
#else
static void
s_on_error (void *arg, xmlErrorPtr err)
#endif
{
    junit_parse_t *self = (junit_parse_t *) arg;
    if (self->errored || !err || err->level < XML_ERR_ERROR)
        return;
    self->errored = true;
    self->error_line = err->line;
    snprintf (self->error, sizeof self->error, "%s", err->message ? err->message : "malformed");
    size_t len = strlen (self->error);
    while (len && isspace ((unsigned char) self->error[len - 1]))
        self->error[--len] = 0;
}

//  A finished result to the callback (or, checking, only counted)
static void
s_emit (junit_parse_t *self, const s_case_t *c)
{
    if (self->stopped)
        return;
    self->report->cases++;
    self->report->case_time += c->duration;
    if (!self->fn)
        return;
    junit_case_t tc = {self->path, c->suite,    c->class_name, c->name,
                       c->status,  c->duration, c->type,       c->message,
                       c->flaky,   c->retried,  c->occurrence, c->ts};
    if (self->fn (self->arg, &tc))
        self->stopped = true;
}

static char *
s_key (const s_case_t *c)
{
    char *key;
    assert (asprintf (&key, "%s\x1f%s\x1f%s", c->suite, c->class_name ? c->class_name : "",
                      c->name) > 0);
    return key;
}

static bool
s_failing (junit_status_t status)
{
    return status == JUNIT_FAILED || status == JUNIT_ERROR;
}

//  Holds a failing case until the report shows whether it ran again
static void
s_hold (junit_parse_t *self, s_case_t *c, const char *key)
{
    if (self->npending == S_PENDING_MAX) {
        s_emit (self, c);
        s_case_free (c);
        return;
    }
    if (!c->first_type && !c->first_message) {
        c->first_type = c->type ? strdup (c->type) : NULL;
        c->first_message = c->message ? strdup (c->message) : NULL;
    }
    *omni_array_push (self->pending, self->npending, self->pending_cap) = *c;
    memset (c, 0, sizeof *c);
    zhashx_update (self->pending_index, key, (void *) (uintptr_t) self->npending);
}

//  The case just read: a rerun of a held failure settles it, a failure
//  waits for a possible rerun, anything else is given now.
static void
s_case_done (junit_parse_t *self)
{
    s_case_t *c = &self->cur;
    self->in_case = false;
    if (c->status == JUNIT_PASSED && !c->message && (self->flaky_type || self->flaky_message)) {
        c->flaky = true;
        c->type = self->flaky_type;
        c->message = self->flaky_message;
        self->flaky_type = self->flaky_message = NULL;
    }
    free (self->flaky_type);
    free (self->flaky_message);
    self->flaky_type = self->flaky_message = NULL;
    if (!self->fn) {
        //  Checking: the count is all that matters
        s_emit (self, c);
        s_case_free (c);
        return;
    }
    c->occurrence = s_counts_next (&self->counts, s_hash (c->suite, c->class_name, c->name));
    char *key = s_key (c);
    size_t index = (size_t) (uintptr_t) zhashx_lookup (self->pending_index, key);
    s_case_t *p = index ? &self->pending[index - 1] : NULL;
    if (p && (c->status == JUNIT_PASSED || c->status == p->status)) {
        //  Run again: the held attempt was retried, this one says how it ended
        p->retried = true;
        s_emit (self, p);
        p->done = true;
        zhashx_delete (self->pending_index, key);
        if (c->status == JUNIT_PASSED) {
            c->flaky = true;
            if (!c->type && !c->message) {
                c->type = p->first_type;
                c->message = p->first_message;
                p->first_type = p->first_message = NULL;
            }
            s_emit (self, c);
            s_case_free (c);
        } else {
            c->first_type = p->first_type;
            c->first_message = p->first_message;
            p->first_type = p->first_message = NULL;
            s_hold (self, c, key);
        }
    } else {
        if (p) {
            //  Another outcome (a teardown error after a failed call): both count
            s_emit (self, p);
            p->done = true;
            zhashx_delete (self->pending_index, key);
        }
        if (s_failing (c->status))
            s_hold (self, c, key);
        else {
            s_emit (self, c);
            s_case_free (c);
        }
    }
    free (key);
}

static void
s_flush_pending (junit_parse_t *self)
{
    for (size_t i = 0; i < self->npending; i++)
        if (!self->pending[i].done)
            s_emit (self, &self->pending[i]);
}

//  A suite timestamp: refused with a warning outside 1970-2200
static int64_t
s_timestamp (junit_parse_t *self, xmlTextReaderPtr reader)
{
    char *stamp = s_attr (reader, "timestamp");
    int64_t ts = JUNIT_NO_TIME;
    int rc = stamp ? builds_parse_time (stamp, &ts) : -1;
    if (rc == -2) {
        //  Said once per report (the second reading says nothing)
        if (self->report->bad_time++ == 0 && !self->fn)
            log_warn ("junit.timestamp_refused",
                      "file=\"%s\" line=%d timestamp=\"%s\" reason=\"before 1970 or after 2200\""
                      " effect=\"the report file's time is used\"",
                      self->path, xmlTextReaderGetParserLineNumber (reader), stamp);
    }
    free (stamp);
    return rc == 0 ? ts : JUNIT_NO_TIME;
}

static void
s_push_frame (junit_parse_t *self, xmlTextReaderPtr reader, int depth)
{
    s_frame_t *f = omni_array_push (self->frames, self->nframes, self->frames_cap);
    f->name = s_attr (reader, "name");
    if (f->name && !*f->name) {
        free (f->name);
        f->name = NULL;
    }
    f->ts = s_timestamp (self, reader);
    char *time = s_attr (reader, "time");
    double declared = s_seconds_or (time, -1);
    free (time);
    f->time = declared < 0 ? 0 : declared;
    f->depth = depth;
    junit_report_t *r = self->report;
    if (declared >= 0 && depth == 0) {
        self->root_timed = true;
        r->root_time = declared;
    } else if (declared >= 0 && depth == 1) {
        self->children_timed = true;
        self->children_time += declared;
    }
    if (f->ts != JUNIT_NO_TIME) {
        if (r->started == JUNIT_NO_TIME || f->ts < r->started)
            r->started = f->ts;
        int64_t end = f->ts + (int64_t) (f->time * 1e9);
        if (r->finished == JUNIT_NO_TIME || end > r->finished)
            r->finished = end;
    }
}

static void
s_pop_frame (junit_parse_t *self)
{
    if (self->nframes) {
        self->nframes--;
        free (self->frames[self->nframes].name);
    }
}

//  The innermost named suite, or the file's name
static const char *
s_suite_name (junit_parse_t *self)
{
    for (size_t i = self->nframes; i-- > 0;)
        if (self->frames[i].name)
            return self->frames[i].name;
    return self->basename;
}

static int64_t
s_case_time (junit_parse_t *self)
{
    for (size_t i = self->nframes; i-- > 0;)
        if (self->frames[i].ts != JUNIT_NO_TIME)
            return self->frames[i].ts;
    return self->report->mtime;
}

static void
s_start_case (junit_parse_t *self, xmlTextReaderPtr reader, int depth)
{
    s_case_free (&self->cur);
    s_case_t *c = &self->cur;
    c->name = s_attr (reader, "name");
    if (!c->name)
        c->name = strdup ("");
    c->class_name = s_attr (reader, "classname");
    if (c->class_name && !*c->class_name) {
        free (c->class_name);
        c->class_name = NULL;
    }
    char *time = s_attr (reader, "time");
    c->duration = s_seconds (time);
    free (time);
    char *status = s_attr (reader, "status");
    if (status && strcasecmp (status, "disabled") == 0)
        c->status = JUNIT_DISABLED;
    free (status);
    c->ts = s_case_time (self);
    c->suite = strdup (s_suite_name (self));
    self->in_case = true;
    self->case_depth = depth;
}

//  <error> or <failure> directly in a suite: the suite could not run (a
//  class that failed to load); Jenkins shows it as a case "<init>"
static void
s_start_suite_error (junit_parse_t *self, int depth)
{
    s_case_free (&self->cur);
    s_case_t *c = &self->cur;
    c->name = strdup ("<init>");
    c->suite = strdup (s_suite_name (self));
    c->class_name = strdup (c->suite);
    c->ts = s_case_time (self);
    self->in_case = true;
    self->case_depth = depth;
}

//  <failure>, <error>, <skipped>, <flakyFailure>... of a test case
static void
s_outcome (junit_parse_t *self, xmlTextReaderPtr reader, const char *name, int depth, bool empty)
{
    s_case_t *c = &self->cur;
    junit_status_t status;
    bool flaky = false;
    if (strcmp (name, "failure") == 0)
        status = JUNIT_FAILED;
    else if (strcmp (name, "error") == 0)
        status = JUNIT_ERROR;
    else if (strcmp (name, "skipped") == 0)
        status = JUNIT_SKIPPED;
    else if (strcmp (name, "flakyFailure") == 0 || strcmp (name, "flakyError") == 0) {
        status = JUNIT_PASSED;
        flaky = true;
    } else
        return; //  rerunFailure, rerunError: the <failure> beside them says it
    if (flaky ? (self->flaky_type || self->flaky_message) : status <= c->status)
        //  The first retried failure is the one reported; a lower outcome
        //  (a skip beside a failure, whichever comes first) says nothing
        return;
    char *type = s_attr (reader, "type");
    if (type && !*type) {
        free (type);
        type = NULL;
    }
    char *message = s_attr (reader, "message");
    char **target = flaky ? &self->flaky_message : &c->message;
    if (flaky) {
        self->flaky_type = type;
    } else {
        c->status = status;
        free (c->type);
        c->type = type;
    }
    free (*target);
    *target = NULL;
    if (!s_generic (message)) {
        *target = s_trimmed_dup (message, strlen (message), JUNIT_MESSAGE_MAX);
        free (message);
        return;
    }
    if (empty) {
        if (message && *message)
            *target = s_trimmed_dup (message, strlen (message), JUNIT_MESSAGE_MAX);
        free (message);
        return;
    }
    //  Gather the element's text; decided at its end
    s_text_t *t = &self->text;
    t->on = true;
    t->depth = depth;
    t->len = 0;
    t->flaky = flaky;
    free (t->attr_message);
    t->attr_message = message;
}

static void
s_text_append (junit_parse_t *self, const char *s)
{
    s_text_t *t = &self->text;
    size_t room = JUNIT_MESSAGE_MAX + 4 - t->len;
    if (!s || room == 0)
        return;
    if (t->len == 0)
        while (isspace ((unsigned char) *s))
            s++;
    size_t len = strlen (s);
    if (len > room)
        len = room;
    memcpy (t->buf + t->len, s, len);
    t->len += len;
}

static void
s_text_end (junit_parse_t *self)
{
    s_text_t *t = &self->text;
    t->on = false;
    char **target = t->flaky ? &self->flaky_message : &self->cur.message;
    char *text = s_trimmed_dup (t->buf, t->len, JUNIT_MESSAGE_MAX);
    free (*target);
    if (*text) {
        *target = text;
    } else {
        free (text);
        *target = t->attr_message && *t->attr_message
                      ? s_trimmed_dup (t->attr_message, strlen (t->attr_message), JUNIT_MESSAGE_MAX)
                      : NULL;
    }
    free (t->attr_message);
    t->attr_message = NULL;
}

static int
s_io_read (void *arg, char *buffer, int len)
{
    s_io_t *io = (s_io_t *) arg;
    ssize_t n;
    do
        n = read (io->fd, buffer, (size_t) len);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        io->error = errno;
        return -1;
    }
    EVP_DigestUpdate (io->md, buffer, (size_t) n);
    return (int) n;
}

static int
s_io_close (void *arg)
{
    (void) arg; //  the fd is closed by its opener
    return 0;
}

//  One reading of a report; fn NULL checks it
static int
s_parse (junit_parse_t *self, const char *path, junit_report_t *report, junit_case_fn *fn,
         void *arg, char *error, size_t error_size)
{
    memset (report, 0, sizeof *report);
    report->root_time = -1;
    report->started = report->finished = JUNIT_NO_TIME;
    s_io_t io = {open (path, O_RDONLY | O_CLOEXEC), NULL, 0};
    struct stat st;
    if (io.fd < 0 || fstat (io.fd, &st) != 0) {
        snprintf (error, error_size, "%s: %s", path, strerror (errno));
        if (io.fd >= 0)
            close (io.fd);
        return -1;
    }
    if (!S_ISREG (st.st_mode)) {
        snprintf (error, error_size, "%s: not a regular file", path);
        close (io.fd);
        return -1;
    }
    self->fn = fn;
    self->arg = arg;
    self->report = report;
    self->path = path;
    report->mtime = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    const char *base = strrchr (path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr (base, '.');
    self->basename = strndup (base, dot && dot > base ? (size_t) (dot - base) : strlen (base));
    self->stopped = false;
    self->errored = false;
    self->error[0] = 0;
    io.md = EVP_MD_CTX_new ();
    assert (io.md && EVP_DigestInit_ex (io.md, EVP_sha256 (), NULL));
    //  No network, no entity expansion (no XXE); huge text nodes (a long
    //  system-out) are read, then skipped
    xmlTextReaderPtr reader =
        xmlReaderForIO (s_io_read, s_io_close, &io, path, NULL, XML_PARSE_NONET | XML_PARSE_HUGE);
    if (!reader) {
        snprintf (error, error_size, "%s: cannot open", path);
        EVP_MD_CTX_free (io.md);
        close (io.fd);
        s_reset_file (self);
        return -1;
    }
    xmlTextReaderSetStructuredErrorHandler (reader, s_on_error, self);
    bool root_seen = false;
    int ret = xmlTextReaderRead (reader);
    while (ret == 1 && !self->stopped) {
        int type = xmlTextReaderNodeType (reader);
        int depth = xmlTextReaderDepth (reader);
        const char *name = (const char *) xmlTextReaderConstLocalName (reader);
        bool skip = false;
        if (type == XML_READER_TYPE_ELEMENT) {
            bool empty = xmlTextReaderIsEmptyElement (reader) == 1;
            bool suite = strcmp (name, "testsuite") == 0 || strcmp (name, "testsuites") == 0;
            if (!root_seen) {
                root_seen = true;
                snprintf (report->root, sizeof report->root, "%s", name);
                report->junit = suite;
                if (!suite)
                    break;
            }
            if (self->in_case && depth == self->case_depth + 1 && !self->text.on)
                s_outcome (self, reader, name, depth, empty);
            else if (suite && !self->in_case) {
                s_push_frame (self, reader, depth);
                if (empty)
                    s_pop_frame (self);
            } else if (strcmp (name, "testcase") == 0 && !self->in_case) {
                s_start_case (self, reader, depth);
                if (empty)
                    s_case_done (self);
            } else if (!self->in_case && self->nframes &&
                       depth == self->frames[self->nframes - 1].depth + 1 &&
                       (strcmp (name, "error") == 0 || strcmp (name, "failure") == 0)) {
                s_start_suite_error (self, depth);
                s_outcome (self, reader, name, depth, empty);
                if (empty)
                    s_case_done (self);
            }
            if (!self->text.on &&
                (strcmp (name, "system-out") == 0 || strcmp (name, "system-err") == 0 ||
                 strcmp (name, "properties") == 0))
                skip = true;
        } else if (type == XML_READER_TYPE_END_ELEMENT) {
            bool text_ended = self->text.on && depth == self->text.depth;
            if (text_ended)
                s_text_end (self);
            if (self->in_case && depth == self->case_depth)
                s_case_done (self);
            else if (!text_ended && self->nframes && depth == self->frames[self->nframes - 1].depth)
                s_pop_frame (self);
        } else if ((type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_CDATA) && self->text.on)
            s_text_append (self, (const char *) xmlTextReaderConstValue (reader));
        ret = skip ? xmlTextReaderNext (reader) : xmlTextReaderRead (reader);
    }
    xmlFreeTextReader (reader);
    unsigned int digest_len = 0;
    EVP_DigestFinal_ex (io.md, report->digest, &digest_len);
    EVP_MD_CTX_free (io.md);
    close (io.fd);
    int rc = 0;
    if (self->stopped)
        rc = -2;
    else if (io.error) {
        snprintf (error, error_size, "%s: %s", path, strerror (io.error));
        rc = -1;
    } else if (ret == -1 || self->errored) {
        char words[600];
        int line = self->error_line;
        if (!s_explain_end (path, words, sizeof words, &line))
            snprintf (words, sizeof words, "%s", self->errored ? self->error : "malformed XML");
        snprintf (error, error_size, "%s:%d: %s", path, line, words);
        rc = -1;
    } else if (!root_seen) {
        snprintf (error, error_size, "%s:1: file is empty", path);
        rc = -1;
    } else if (report->junit) {
        s_flush_pending (self);
        rc = self->stopped ? -2 : 0;
        if (!self->root_timed && self->children_timed)
            report->root_time = self->children_time;
    }
    s_reset_file (self);
    return rc;
}

int
junit_parse_check (junit_parse_t *self, const char *path, junit_report_t *report, char *error,
                   size_t error_size)
{
    return s_parse (self, path, report, NULL, NULL, error, error_size);
}

int
junit_parse_file (junit_parse_t *self, const char *path, const junit_report_t *expect,
                  junit_case_fn *fn, void *arg, char *error, size_t error_size)
{
    junit_report_t report;
    int rc = s_parse (self, path, &report, fn, arg, error, error_size);
    if (rc == 0 && expect && memcmp (report.digest, expect->digest, sizeof report.digest) != 0) {
        snprintf (error, error_size, "%s: changed while it was read (still being written?)", path);
        rc = -1;
    }
    return rc;
}

//  ---------------------------------------------------------------------------
//  Self-test

#define S_KEEP 24

typedef struct {
    size_t count;
    struct {
        char suite[64], class_name[64], name[64], status[16], type[64], message[256];
        size_t message_len;
        double duration;
        bool flaky, retried;
        uint32_t occurrence;
        int64_t ts;
    } c[S_KEEP];
} s_seen_t;

static int
s_keep (void *arg, const junit_case_t *tc)
{
    s_seen_t *seen = (s_seen_t *) arg;
    if (seen->count < S_KEEP) {
        size_t i = seen->count;
        snprintf (seen->c[i].suite, sizeof seen->c[i].suite, "%s", tc->suite);
        snprintf (seen->c[i].class_name, sizeof seen->c[i].class_name, "%s",
                  tc->class_name ? tc->class_name : "(null)");
        snprintf (seen->c[i].name, sizeof seen->c[i].name, "%s", tc->name);
        snprintf (seen->c[i].status, sizeof seen->c[i].status, "%s",
                  junit_status_name (tc->status));
        snprintf (seen->c[i].type, sizeof seen->c[i].type, "%s",
                  tc->failure_type ? tc->failure_type : "(null)");
        snprintf (seen->c[i].message, sizeof seen->c[i].message, "%s",
                  tc->failure_message ? tc->failure_message : "(null)");
        seen->c[i].message_len = tc->failure_message ? strlen (tc->failure_message) : 0;
        seen->c[i].duration = tc->duration;
        seen->c[i].flaky = tc->flaky;
        seen->c[i].retried = tc->retried;
        seen->c[i].occurrence = tc->occurrence;
        seen->c[i].ts = tc->ts;
    }
    seen->count++;
    return 0;
}

//  Counts per status (flaky, retried) of what was seen
static void
s_expect_counts (const char *name, s_seen_t *seen, const int want[JUNIT_STATUSES], int flaky,
                 int retried, double duration)
{
    int got[JUNIT_STATUSES] = {0}, got_flaky = 0, got_retried = 0;
    double got_duration = 0;
    assert (seen->count <= S_KEEP);
    for (size_t i = 0; i < seen->count; i++) {
        for (int s = 0; s < JUNIT_STATUSES; s++)
            got[s] += strcmp (seen->c[i].status, s_status_names[s]) == 0;
        got_flaky += seen->c[i].flaky;
        got_retried += seen->c[i].retried;
        got_duration += seen->c[i].duration;
    }
    bool same =
        got_flaky == flaky && got_retried == retried && fabs (got_duration - duration) < 1e-9;
    for (int s = 0; s < JUNIT_STATUSES; s++)
        same &= got[s] == want[s];
    if (!same)
        fprintf (stderr,
                 "%s: passed %d skipped %d disabled %d failed %d error %d flaky %d retried %d "
                 "duration %.9f\n",
                 name, got[0], got[1], got[2], got[3], got[4], got_flaky, got_retried,
                 got_duration);
    assert (same);
}

//  Reads one fixture with a fresh parser (check, then results)
static void
s_expect (const char *name, s_seen_t *seen, int passed, int skipped, int disabled, int failed,
          int error, int flaky, int retried, double duration)
{
    memset (seen, 0, sizeof *seen);
    junit_parse_t *parser = junit_parse_new ();
    char *path = selftest_fixture (name), err[600];
    junit_report_t report;
    int rc = junit_parse_check (parser, path, &report, err, sizeof err);
    if (rc)
        fprintf (stderr, "%s\n", err);
    assert (rc == 0 && report.junit);
    rc = junit_parse_file (parser, path, &report, s_keep, seen, err, sizeof err);
    if (rc)
        fprintf (stderr, "%s\n", err);
    assert (rc == 0);
    assert (report.cases == seen->count);
    assert (fabs (report.case_time - duration) < 1e-9);
    int want[JUNIT_STATUSES] = {passed, skipped, disabled, failed, error};
    s_expect_counts (name, seen, want, flaky, retried, duration);
    junit_parse_destroy (&parser);
    free (path);
}

static size_t
s_find (s_seen_t *seen, const char *name, uint32_t occurrence)
{
    for (size_t i = 0; i < seen->count && i < S_KEEP; i++)
        if (strcmp (seen->c[i].name, name) == 0 && seen->c[i].occurrence == occurrence)
            return i;
    fprintf (stderr, "no test case %s #%u\n", name, occurrence);
    assert (false);
    return 0;
}

//  Reads an inline report; returns its check rc, `err` its error
static int
s_inline (const char *dir, const char *text, s_seen_t *seen, char *err, size_t size)
{
    memset (seen, 0, sizeof *seen);
    char *path = selftest_write (dir, "inline.xml", text);
    junit_parse_t *parser = junit_parse_new ();
    junit_report_t report;
    int rc = junit_parse_check (parser, path, &report, err, size);
    if (rc == 0) {
        assert (junit_parse_file (parser, path, &report, s_keep, seen, err, size) == 0);
        assert (report.cases == seen->count);
    }
    junit_parse_destroy (&parser);
    free (path);
    return rc;
}

void
junit_parse_test (bool verbose)
{
    (void) verbose;
    //  Cuts on character boundaries: "é" is 2 bytes, "€" 3
    assert (s_seconds ("0.25") == 0.25 && s_seconds ("1,234.5") == 1234.5);
    assert (s_seconds ("0,5") == 0.5 && s_seconds ("1,234") == 1234);
    assert (s_seconds (NULL) == 0 && s_seconds ("fast") == 0 && s_seconds ("-1") == 0);
    assert (s_seconds ("nan") == 0 && s_seconds ("") == 0);
    assert (s_seconds_or (NULL, -1) == -1 && s_seconds_or ("0", -1) == 0);
    assert (strcmp (junit_status_name (JUNIT_DISABLED), "disabled") == 0);

    s_seen_t *seen = calloc (1, sizeof *seen);
    assert (seen);
    size_t i;

    //  Maven Surefire: flakyFailure passes, rerunFailure beside a failure fails
    s_expect ("junit/surefire/TEST-com.acme.CalcTest.xml", seen, 4, 1, 0, 1, 1, 1, 0, 1235.106);
    i = s_find (seen, "testFlaky", 0);
    assert (strcmp (seen->c[i].status, "passed") == 0 && seen->c[i].flaky && !seen->c[i].retried);
    assert (strcmp (seen->c[i].type, "org.opentest4j.AssertionFailedError") == 0);
    assert (strcmp (seen->c[i].message, "expected: <1> but was: <2>") == 0);
    i = s_find (seen, "testSlow", 0);
    assert (seen->c[i].duration == 1234.5);
    i = s_find (seen, "testOut", 0);
    assert (strcmp (seen->c[i].status, "passed") == 0 && !seen->c[i].flaky);
    assert (strcmp (seen->c[i].message, "(null)") == 0);
    //  No timestamp in Surefire reports: the file's time
    char *path = selftest_fixture ("junit/surefire/TEST-com.acme.CalcTest.xml");
    struct stat st;
    assert (stat (path, &st) == 0);
    assert (seen->c[i].ts == (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec);
    free (path);
    s_expect ("junit/surefire/TEST-com.acme.DbIT.xml", seen, 1, 0, 0, 1, 0, 0, 0, 3.5);
    assert (strcmp (seen->c[1].message, "relation \"users\" does not exist") == 0);

    //  Gradle
    s_expect ("junit/gradle/TEST-com.acme.GradleTest.xml", seen, 2, 1, 0, 1, 0, 0, 0, 0.75);
    i = s_find (seen, "rejects()", 0);
    assert (strcmp (seen->c[i].message, "java.lang.IllegalStateException: nope") == 0);
    assert (seen->c[i].ts == INT64_C (1709294400) * 1000000000); //  2024-03-01T12:00:00
    i = s_find (seen, "later()", 0);
    assert (strcmp (seen->c[i].status, "skipped") == 0 &&
            strcmp (seen->c[i].message, "(null)") == 0);

    //  pytest --junitxml: xfail is a skip, testcase properties skipped over
    s_expect ("junit/pytest/junit.xml", seen, 2, 2, 0, 1, 1, 0, 0, 1.5);
    i = s_find (seen, "test_sub", 0);
    assert (strcmp (seen->c[i].message, "assert 1 == 2\n +  where 1 = sub(3, 2)") == 0);
    assert (strcmp (seen->c[i].suite, "pytest") == 0);
    assert (strcmp (seen->c[i].class_name, "tests.test_calc") == 0);
    assert (seen->c[i].ts == INT64_C (1709287200) * 1000000000 + 250000000);
    i = s_find (seen, "test_query", 0);
    assert (strcmp (seen->c[i].status, "error") == 0);
    assert (strcmp (seen->c[i].class_name, "tests.test_calc.TestDb") == 0);
    i = s_find (seen, "test_skip", 0);
    assert (strcmp (seen->c[i].type, "pytest.skip") == 0);
    assert (strcmp (seen->c[i].message, "no database") == 0);
    i = s_find (seen, "test_xfail", 0);
    assert (strcmp (seen->c[i].status, "skipped") == 0);
    assert (strcmp (seen->c[i].type, "pytest.xfail") == 0);
    assert (strcmp (seen->c[i].message, "(null)") == 0);

    //  go-junit-report: "Failed" says nothing, the text does
    s_expect ("junit/go/go-junit-report.xml", seen, 2, 1, 0, 1, 0, 0, 0, 1.53);
    i = s_find (seen, "TestB", 0);
    assert (strcmp (seen->c[i].message, "a_test.go:12: boom\n    a_test.go:13: got 2, want 3") ==
            0);
    assert (strcmp (seen->c[i].suite, "example.com/widget/a") == 0);
    i = s_find (seen, "TestC", 0);
    assert (strcmp (seen->c[i].message, "a_test.go:20: later") == 0);
    i = s_find (seen, "TestD/sub_case", 0);
    assert (strcmp (seen->c[i].suite, "example.com/widget/b") == 0);
    assert (seen->c[i].ts == INT64_C (1709366401) * 1000000000);

    //  gotestsum --rerun-fails: both attempts, the failed one retried, the
    //  pass flaky with the failure that was retried
    s_expect ("junit/go/gotestsum.xml", seen, 2, 1, 0, 2, 0, 1, 1, 0.9);
    i = s_find (seen, "TestFlaky", 0);
    assert (strcmp (seen->c[i].status, "failed") == 0 && seen->c[i].retried);
    assert (seen->c[i].duration == 0.2);
    i = s_find (seen, "TestFlaky", 1);
    assert (strcmp (seen->c[i].status, "passed") == 0 && seen->c[i].flaky && !seen->c[i].retried);
    assert (seen->c[i].duration == 0.3);
    assert (strcmp (seen->c[i].message,
                    "=== RUN   TestFlaky\n    c_test.go:9: timing\n--- FAIL: TestFlaky (0.20s)") ==
            0);
    i = s_find (seen, "TestBroken", 0);
    assert (strcmp (seen->c[i].status, "failed") == 0 && !seen->c[i].flaky);
    i = s_find (seen, "TestSkip", 0);
    assert (strstr (seen->c[i].message, "needs network"));
    assert (seen->c[i].ts == INT64_C (1709452800) * 1000000000); //  09:00+01:00

    //  jest-junit: the message is the failure's text
    s_expect ("junit/jest/junit.xml", seen, 3, 1, 0, 1, 0, 0, 0, 1.26);
    i = s_find (seen, "Calculator divides", 0);
    assert (strcmp (seen->c[i].type, "(null)") == 0);
    assert (strncmp (seen->c[i].message, "Error: expect(received).toBe(expected) // Object.is",
                     51) == 0);
    assert (strcmp (seen->c[i].suite, "Calculator") == 0);

    //  ctest --output-junit: status="disabled" is its own status
    s_expect ("junit/ctest/ctest.xml", seen, 1, 1, 1, 1, 0, 0, 0, 0.75);
    i = s_find (seen, "fails", 0);
    assert (strcmp (seen->c[i].message, "Assertion `x == 3' failed.") == 0);
    i = s_find (seen, "notrun", 0);
    assert (strcmp (seen->c[i].message, "Unable to find executable: /build/notrun") == 0);
    assert (strcmp (seen->c[s_find (seen, "disabled", 0)].status, "disabled") == 0);

    //  Nested suites: the innermost named one; none: the file's name
    s_expect ("junit/nested/phpunit.xml", seen, 4, 0, 0, 0, 0, 0, 0, 0.6);
    assert (strcmp (seen->c[s_find (seen, "testOne", 0)].suite, "Acme\\MathTest") == 0);
    assert (strcmp (seen->c[s_find (seen, "topLevel", 0)].suite, "All") == 0);
    i = s_find (seen, "orphan", 0);
    assert (strcmp (seen->c[i].suite, "phpunit") == 0);
    assert (strcmp (seen->c[i].class_name, "(null)") == 0);

    char *dir = selftest_tmpdir ("junit_parse");
    char err[600];
    //  Outcome precedence whatever the order: error > failure > skipped
    assert (s_inline (dir,
                      "<testsuite name=\"s\">"
                      "<testcase name=\"a\"><skipped/><failure message=\"f\"/>"
                      "<error message=\"e\" type=\"E\"/></testcase>"
                      "<testcase name=\"b\"><failure message=\"f\"/><skipped message=\"k\"/>"
                      "</testcase>"
                      "<testcase name=\"c\"><error message=\"e1\"/><failure message=\"f\"/>"
                      "<error message=\"e2\"/></testcase>"
                      "<testcase name=\"d\" status=\"disabled\"><skipped message=\"Disabled\"/>"
                      "</testcase>"
                      "<testcase name=\"e\" status=\"disabled\"><failure>boom</failure></testcase>"
                      "</testsuite>",
                      seen, err, sizeof err) == 0);
    assert (seen->count == 5);
    i = s_find (seen, "a", 0);
    assert (strcmp (seen->c[i].status, "error") == 0 && strcmp (seen->c[i].message, "e") == 0);
    assert (strcmp (seen->c[i].type, "E") == 0);
    i = s_find (seen, "b", 0);
    assert (strcmp (seen->c[i].status, "failed") == 0 && strcmp (seen->c[i].message, "f") == 0);
    i = s_find (seen, "c", 0);
    assert (strcmp (seen->c[i].status, "error") == 0 && strcmp (seen->c[i].message, "e1") == 0);
    assert (strcmp (seen->c[s_find (seen, "d", 0)].status, "disabled") == 0);
    i = s_find (seen, "e", 0);
    assert (strcmp (seen->c[i].status, "failed") == 0 && strcmp (seen->c[i].message, "boom") == 0);

    //  Repeated cases: each is a result, numbered; a teardown error after a
    //  failed call is a second result, not a rerun; failed twice then
    //  passed: two retried attempts
    assert (s_inline (dir,
                      "<testsuites><testsuite name=\"s\">"
                      "<testcase classname=\"m\" name=\"same\"/>"
                      "<testcase classname=\"m\" name=\"same\"/>"
                      "<testcase classname=\"t\" name=\"call\"><failure message=\"f\"/></testcase>"
                      "<testcase classname=\"t\" name=\"call\"><error message=\"teardown\"/>"
                      "</testcase>"
                      "<testcase classname=\"r\" name=\"x\"><failure message=\"f1\"/></testcase>"
                      "<testcase classname=\"r\" name=\"x\"><failure message=\"f2\"/></testcase>"
                      "<testcase classname=\"r\" name=\"x\" time=\"2\"/>"
                      "</testsuite><testsuite name=\"s\">"
                      "<testcase classname=\"m\" name=\"same\"/>"
                      "</testsuite></testsuites>",
                      seen, err, sizeof err) == 0);
    assert (seen->count == 8);
    for (uint32_t k = 0; k < 3; k++)
        assert (strcmp (seen->c[s_find (seen, "same", k)].status, "passed") == 0);
    assert (strcmp (seen->c[s_find (seen, "call", 0)].status, "failed") == 0);
    assert (strcmp (seen->c[s_find (seen, "call", 1)].status, "error") == 0);
    assert (!seen->c[s_find (seen, "call", 0)].retried &&
            !seen->c[s_find (seen, "call", 1)].retried);
    i = s_find (seen, "x", 0);
    assert (seen->c[i].retried && strcmp (seen->c[i].message, "f1") == 0);
    i = s_find (seen, "x", 1);
    assert (seen->c[i].retried && strcmp (seen->c[i].message, "f2") == 0);
    i = s_find (seen, "x", 2);
    assert (!seen->c[i].retried && seen->c[i].flaky && strcmp (seen->c[i].status, "passed") == 0);
    assert (strcmp (seen->c[i].message, "f1") == 0 && seen->c[i].duration == 2);

    //  A suite-level error: a failing case "<init>" of the suite's class
    assert (s_inline (dir,
                      "<testsuite name=\"com.acme.LoadTest\" time=\"4.5\">"
                      "<error message=\"java.lang.NoClassDefFoundError: X\" "
                      "type=\"java.lang.NoClassDefFoundError\">trace</error>"
                      "</testsuite>",
                      seen, err, sizeof err) == 0);
    assert (seen->count == 1);
    assert (strcmp (seen->c[0].name, "<init>") == 0 && strcmp (seen->c[0].status, "error") == 0);
    assert (strcmp (seen->c[0].class_name, "com.acme.LoadTest") == 0);
    assert (strcmp (seen->c[0].message, "java.lang.NoClassDefFoundError: X") == 0);

    //  The root's declared time; timestamps out of range are not used
    junit_parse_t *parser = junit_parse_new ();
    junit_report_t report;
    path = selftest_write (dir, "timed.xml",
                           "<testsuites time=\"4.5\"><testsuite name=\"s\" "
                           "timestamp=\"0001-01-01T00:00:00Z\"><testcase name=\"a\"/>"
                           "</testsuite></testsuites>");
    assert (junit_parse_check (parser, path, &report, err, sizeof err) == 0);
    assert (report.junit && report.cases == 1 && report.root_time == 4.5);
    assert (report.case_time == 0 && report.bad_time == 1 && report.started == JUNIT_NO_TIME);
    memset (seen, 0, sizeof *seen);
    assert (junit_parse_file (parser, path, &report, s_keep, seen, err, sizeof err) == 0);
    assert (seen->c[0].ts == report.mtime);
    free (path);
    path = selftest_write (dir, "children.xml",
                           "<testsuites><testsuite name=\"a\" time=\"1.5\"/>"
                           "<testsuite name=\"b\" time=\"2\"><testcase name=\"x\"/></testsuite>"
                           "</testsuites>");
    assert (junit_parse_check (parser, path, &report, err, sizeof err) == 0);
    assert (report.root_time == 3.5 && report.cases == 1);
    free (path);
    //  A root that is not JUnit; an empty report
    path = selftest_fixture ("junit/bad/pom.xml");
    assert (junit_parse_check (parser, path, &report, err, sizeof err) == 0);
    assert (!report.junit && strcmp (report.root, "project") == 0);
    free (path);
    path = selftest_write (dir, "none.xml", "<testsuites/>");
    assert (junit_parse_check (parser, path, &report, err, sizeof err) == 0);
    assert (report.junit && report.cases == 0);
    free (path);
    //  The same file changed between the readings
    path = selftest_write (dir, "moving.xml", "<testsuite><testcase name=\"a\"/></testsuite>");
    assert (junit_parse_check (parser, path, &report, err, sizeof err) == 0);
    free (selftest_write (dir, "moving.xml", "<testsuite><testcase name=\"b\"/></testsuite>"));
    assert (junit_parse_file (parser, path, &report, s_keep, seen, err, sizeof err) == -1);
    assert (strstr (err, "changed while it was read"));
    free (path);
    junit_parse_destroy (&parser);

    //  Malformed: file, line and what is wrong in words
    assert (s_inline (dir,
                      "<?xml version=\"1.0\"?>\n<testsuite name=\"s\">\n"
                      "<testcase name=\"a\"/>\n<testcase name=\"b\">\n<failure message=\"x\">boom",
                      seen, err, sizeof err) == -1);
    assert (strstr (err, "inline.xml:5: file ends inside <failure> opened at line 5 of "
                         "<testcase name=\"b\"> opened at line 4"));
    assert (s_inline (dir,
                      "<testsuite name=\"s\">\n<testcase name=\"a\"/>\n<testcase name=\"b\">"
                      "<failure><![CDATA[boom\n</failure></testcase></testsuite>\n",
                      seen, err, sizeof err) == -1);
    assert (strstr (err, "unclosed CDATA section opened at line 3"));
    assert (s_inline (dir, "<testsuite name=\"s\">\n<testcase name=\"b\" time=\"1\"", seen, err,
                      sizeof err) == -1);
    assert (strstr (err, "inline.xml:2: file ends inside a tag opened at line 2, inside "
                         "<testsuite name=\"s\"> opened at line 1"));
    assert (s_inline (dir, "", seen, err, sizeof err) == -1);
    assert (strstr (err, "inline.xml:1: file is empty"));
    assert (s_inline (dir, "<testsuites>\n<testsuite>\n<testcase/>\n</testsuite>\n", seen, err,
                      sizeof err) == -1);
    assert (strstr (err, "file ends inside <testsuites> opened at line 1"));
    path = selftest_fixture ("junit/bad/malformed.xml");
    parser = junit_parse_new ();
    assert (junit_parse_check (parser, path, &report, err, sizeof err) == -1);
    assert (strstr (err, "malformed.xml:5: ") && strstr (err, "mismatch"));
    free (path);
    assert (junit_parse_check (parser, "/nonexistent/r.xml", &report, err, sizeof err) == -1);
    assert (strstr (err, "/nonexistent/r.xml"));
    junit_parse_destroy (&parser);

    //  A message over the limit is cut on a character boundary
    FILE *f;
    char *big;
    assert (asprintf (&big, "%s/big.xml", dir) > 0);
    f = fopen (big, "w");
    assert (f);
    fprintf (f, "<testsuite name=\"s\"><testcase name=\"t\"><failure>x");
    for (int k = 0; k < 3000; k++)
        fputs ("\xC3\xA9", f); //  é, 2 bytes: 6001 bytes of text
    fprintf (f, "</failure></testcase></testsuite>");
    fclose (f);
    memset (seen, 0, sizeof *seen);
    parser = junit_parse_new ();
    assert (junit_parse_file (parser, big, NULL, s_keep, seen, err, sizeof err) == 0);
    junit_parse_destroy (&parser);
    assert (seen->count == 1 && strcmp (seen->c[0].status, "failed") == 0);
    //  "x" + 2047 whole "é" = 4095 bytes: the 2048th would pass 4096
    assert (seen->c[0].message_len == 4095 && seen->c[0].message[0] == 'x');
    free (big);

    //  Occurrence counting: two keys, many times, across a table resize
    s_counts_t counts = {0};
    for (uint32_t k = 0; k < 5000; k++) {
        assert (s_counts_next (&counts, s_hash ("s", NULL, "a")) == k);
        assert (s_counts_next (&counts, (uint64_t) k + 2) == 0);
    }
    assert (s_counts_next (&counts, s_hash ("s", "", "a")) == 5000);
    free (counts.keys);
    free (counts.counts);

    selftest_rmtree (dir);
    free (dir);
    free (seen);
}
