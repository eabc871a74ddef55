/*  junit: JUnit XML test reports into ci.test and ci.build records, read
    with libxml2's streaming xmlTextReader.                                 */
#include "junit.h"
#include "srcname.h"
#include "record.h"
#include "builds.h"
#include "testpeer.h"
#include "log.h"
#include "selftest.h"
#include "state.h"
#include "util.h"
#include "utf8.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/xmlreader.h>

#define S_NO_TIME INT64_MIN
//  Failed cases held back per report, waiting for a passing rerun; past
//  this they are sent at once (a rerun then gives a second record).
#define S_PENDING_MAX 10000

//  ---------------------------------------------------------------------------
//  Small helpers

size_t
junit_utf8_cut (const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t cut = max;
    //  Back to the first byte of the character that would be cut
    while (cut > 0 && ((unsigned char) s[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

//  Seconds from a time attribute: "0.25", "1,234.5" (grouping), "0,25"
//  (decimal comma). 0 when missing or not a number.
static double
s_seconds (const char *text)
{
    if (!text)
        return 0;
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
        return 0;
    return v;
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
    len = junit_utf8_cut (s, len, max);
    char *out = malloc (len + 1);
    assert (out);
    memcpy (out, s, len);
    out[len] = 0;
    return out;
}

//  ---------------------------------------------------------------------------
//  The report reader

typedef enum { S_PASSED = 0, S_SKIPPED, S_FAILED, S_ERROR } s_status_t;

static const char *s_status_names[] = {"passed", "skipped", "failed", "error"};

typedef struct {
    char *name;
    int64_t ts;
    double time;
    int depth;
} s_frame_t;

typedef struct {
    char *suite, *class_name, *name, *type, *message;
    s_status_t status;
    double duration;
    bool flaky;
    int64_t ts;
    bool done; //  pending: sent already
} s_case_t;

//  Text being gathered for a message
typedef struct {
    bool on;
    int depth; //  of the element whose text it is
    char *buf;
    size_t len;
    bool use;           //  the text is the message (the attribute said nothing)
    char *attr_message; //  kept in case the text is empty
    bool flaky;         //  it belongs to a flakyFailure/flakyError
} s_text_t;

struct _junit_t {
    junit_case_fn *fn;
    void *arg;
    junit_totals_t totals;
    //  One report
    const char *path;
    char *basename; //  file name without extension: the suite of last resort
    int64_t mtime;
    s_frame_t *frames;
    size_t nframes, frames_cap;
    bool in_case;
    int case_depth;
    s_case_t cur;
    char *flaky_type, *flaky_message;
    s_text_t text;
    //  Failed cases waiting for a rerun: order kept in `pending`, found by key
    s_case_t *pending;
    size_t npending, pending_cap;
    zhashx_t *pending_index; //  key -> index + 1
    int64_t count;
    bool stopped;
    //  The first error the parser reported
    bool errored;
    int error_line;
    char error[512];
};

junit_t *
junit_new (junit_case_fn *fn, void *arg)
{
    xmlInitParser ();
    junit_t *self = calloc (1, sizeof *self);
    assert (self);
    self->fn = fn;
    self->arg = arg;
    self->totals.started = self->totals.finished = S_NO_TIME;
    self->totals.newest_file = S_NO_TIME;
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
    memset (c, 0, sizeof *c);
}

static void
s_reset_file (junit_t *self)
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
}

void
junit_destroy (junit_t **self_p)
{
    junit_t *self = *self_p;
    if (!self)
        return;
    s_reset_file (self);
    free (self->frames);
    free (self->pending);
    free (self->text.buf);
    zhashx_destroy (&self->pending_index);
    free (self);
    *self_p = NULL;
}

const junit_totals_t *
junit_totals (junit_t *self)
{
    return &self->totals;
}

#if LIBXML_VERSION >= 21200
static void
s_on_error (void *arg, const xmlError *err)
#else
static void
s_on_error (void *arg, xmlErrorPtr err)
#endif
{
    junit_t *self = (junit_t *) arg;
    if (self->errored || !err || err->level < XML_ERR_ERROR)
        return;
    self->errored = true;
    self->error_line = err->line;
    snprintf (self->error, sizeof self->error, "%s", err->message ? err->message : "malformed");
    size_t len = strlen (self->error);
    while (len && isspace ((unsigned char) self->error[len - 1]))
        self->error[--len] = 0;
}

//  Sends a finished case to the callback and counts it.
static void
s_emit (junit_t *self, const s_case_t *c)
{
    if (self->stopped)
        return;
    junit_case_t tc = {self->path,  c->suite, c->class_name, c->name,  s_status_names[c->status],
                       c->duration, c->type,  c->message,    c->flaky, c->ts};
    junit_totals_t *t = &self->totals;
    t->total++;
    t->passed += c->status == S_PASSED;
    t->failed += c->status == S_FAILED;
    t->error += c->status == S_ERROR;
    t->skipped += c->status == S_SKIPPED;
    t->flaky += c->flaky;
    t->duration += c->duration;
    self->count++;
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

//  The case just read: a rerun of a pending failure settles it, a failure
//  waits for a possible rerun, anything else goes out now.
static void
s_case_done (junit_t *self)
{
    s_case_t *c = &self->cur;
    if (c->status == S_PASSED && !c->message && (self->flaky_type || self->flaky_message)) {
        c->flaky = true;
        c->type = self->flaky_type;
        c->message = self->flaky_message;
        self->flaky_type = self->flaky_message = NULL;
    }
    char *key = s_key (c);
    size_t index = (size_t) (uintptr_t) zhashx_lookup (self->pending_index, key);
    if (index) {
        s_case_t *p = &self->pending[index - 1];
        if (c->status == S_PASSED) {
            //  Failed, then passed on a rerun: flaky, with the failure retried
            p->status = S_PASSED;
            p->flaky = true;
            p->duration = c->duration;
            p->done = true;
            s_emit (self, p);
            zhashx_delete (self->pending_index, key);
        }
        //  A rerun that failed again adds nothing to the first failure
        s_case_free (c);
    } else if ((c->status == S_FAILED || c->status == S_ERROR) && self->npending < S_PENDING_MAX) {
        if (self->npending == self->pending_cap) {
            self->pending_cap = self->pending_cap ? self->pending_cap * 2 : 64;
            self->pending = realloc (self->pending, self->pending_cap * sizeof *self->pending);
            assert (self->pending);
        }
        self->pending[self->npending++] = *c;
        memset (c, 0, sizeof *c);
        zhashx_insert (self->pending_index, key, (void *) (uintptr_t) self->npending);
    } else {
        s_emit (self, c);
        s_case_free (c);
    }
    free (key);
    free (self->flaky_type);
    free (self->flaky_message);
    self->flaky_type = self->flaky_message = NULL;
    self->in_case = false;
}

static void
s_flush_pending (junit_t *self)
{
    for (size_t i = 0; i < self->npending; i++)
        if (!self->pending[i].done)
            s_emit (self, &self->pending[i]);
}

static void
s_push_frame (junit_t *self, xmlTextReaderPtr reader, int depth)
{
    if (self->nframes == self->frames_cap) {
        self->frames_cap = self->frames_cap ? self->frames_cap * 2 : 8;
        self->frames = realloc (self->frames, self->frames_cap * sizeof *self->frames);
        assert (self->frames);
    }
    s_frame_t *f = &self->frames[self->nframes++];
    f->name = s_attr (reader, "name");
    if (f->name && !*f->name) {
        free (f->name);
        f->name = NULL;
    }
    char *stamp = s_attr (reader, "timestamp");
    f->ts = S_NO_TIME;
    if (stamp && builds_parse_time (stamp, &f->ts))
        f->ts = S_NO_TIME;
    free (stamp);
    char *time = s_attr (reader, "time");
    f->time = s_seconds (time);
    free (time);
    f->depth = depth;
    if (f->ts != S_NO_TIME) {
        junit_totals_t *t = &self->totals;
        if (t->started == S_NO_TIME || f->ts < t->started)
            t->started = f->ts;
        int64_t end = f->ts + (int64_t) (f->time * 1e9);
        if (t->finished == S_NO_TIME || end > t->finished)
            t->finished = end;
    }
}

static void
s_pop_frame (junit_t *self)
{
    if (self->nframes) {
        self->nframes--;
        free (self->frames[self->nframes].name);
    }
}

static void
s_start_case (junit_t *self, xmlTextReaderPtr reader, int depth)
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
    c->ts = self->mtime;
    const char *suite = NULL;
    for (size_t i = self->nframes; i-- > 0;) {
        if (!suite && self->frames[i].name)
            suite = self->frames[i].name;
        if (c->ts == self->mtime && self->frames[i].ts != S_NO_TIME)
            c->ts = self->frames[i].ts;
    }
    c->suite = strdup (suite ? suite : self->basename);
    self->in_case = true;
    self->case_depth = depth;
}

//  <failure>, <error>, <skipped>, <flakyFailure>... inside a test case
static void
s_outcome (junit_t *self, xmlTextReaderPtr reader, const char *name, int depth, bool empty)
{
    s_case_t *c = &self->cur;
    s_status_t status;
    bool flaky = false;
    if (strcmp (name, "failure") == 0)
        status = S_FAILED;
    else if (strcmp (name, "error") == 0)
        status = S_ERROR;
    else if (strcmp (name, "skipped") == 0)
        status = S_SKIPPED;
    else if (strcmp (name, "flakyFailure") == 0 || strcmp (name, "flakyError") == 0) {
        status = S_PASSED;
        flaky = true;
    } else
        return; //  rerunFailure, rerunError: the <failure> beside them says it
    char *type = s_attr (reader, "type");
    if (type && !*type) {
        free (type);
        type = NULL;
    }
    char *message = s_attr (reader, "message");
    if (flaky) {
        if (self->flaky_type || self->flaky_message) {
            //  The first retried failure is the one reported
            free (type);
            free (message);
            return;
        }
        self->flaky_type = type;
    } else {
        //  The first outcome decides; a skip never hides a failure
        if (c->status != S_PASSED || (c->message && status == S_SKIPPED)) {
            free (type);
            free (message);
            return;
        }
        c->status = status;
        free (c->type);
        c->type = type;
    }
    bool use_text = s_generic (message);
    char **target = flaky ? &self->flaky_message : &c->message;
    free (*target);
    *target = NULL;
    if (!use_text) {
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
    t->use = true;
    t->flaky = flaky;
    free (t->attr_message);
    t->attr_message = message;
}

static void
s_text_append (junit_t *self, const char *s)
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
s_text_end (junit_t *self)
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

int64_t
junit_read_file (junit_t *self, const char *path, char *error, size_t error_size)
{
    struct stat st;
    if (stat (path, &st) != 0) {
        snprintf (error, error_size, "%s: %s", path, strerror (errno));
        return -1;
    }
    self->path = path;
    self->mtime = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    if (self->totals.newest_file == S_NO_TIME || self->mtime > self->totals.newest_file)
        self->totals.newest_file = self->mtime;
    const char *base = strrchr (path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr (base, '.');
    self->basename = strndup (base, dot && dot > base ? (size_t) (dot - base) : strlen (base));
    self->count = 0;
    self->stopped = false;
    self->errored = false;
    self->error[0] = 0;
    //  No network, no entity expansion (no XXE); huge text nodes (a long
    //  system-out) are read, then skipped
    xmlTextReaderPtr reader = xmlReaderForFile (path, NULL, XML_PARSE_NONET | XML_PARSE_HUGE);
    if (!reader) {
        snprintf (error, error_size, "%s: cannot open", path);
        s_reset_file (self);
        return -1;
    }
    xmlTextReaderSetStructuredErrorHandler (reader, s_on_error, self);
    bool root_seen = false, junit = true;
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
                if (!suite) {
                    junit = false;
                    break;
                }
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
            }
            if (!self->text.on &&
                (strcmp (name, "system-out") == 0 || strcmp (name, "system-err") == 0 ||
                 strcmp (name, "properties") == 0))
                skip = true;
        } else if (type == XML_READER_TYPE_END_ELEMENT) {
            if (self->text.on && depth == self->text.depth)
                s_text_end (self);
            else if (self->in_case && depth == self->case_depth)
                s_case_done (self);
            else if (self->nframes && depth == self->frames[self->nframes - 1].depth)
                s_pop_frame (self);
        } else if ((type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_CDATA) && self->text.on)
            s_text_append (self, (const char *) xmlTextReaderConstValue (reader));
        ret = skip ? xmlTextReaderNext (reader) : xmlTextReaderRead (reader);
    }
    xmlFreeTextReader (reader);
    int64_t rc = self->count;
    if (self->stopped)
        rc = -2;
    else if (ret == -1 || self->errored) {
        //  What was read before the error still counts
        s_flush_pending (self);
        snprintf (error, error_size, "%s:%d: %s", path, self->error_line,
                  self->errored ? self->error : "malformed XML");
        rc = self->stopped ? -2 : -1;
    } else if (!junit)
        rc = 0;
    else {
        s_flush_pending (self);
        rc = self->stopped ? -2 : self->count;
    }
    s_reset_file (self);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Finding the reports

typedef struct {
    char **items;
    size_t count, cap;
} s_list_t;

static void
s_list_add (s_list_t *list, char *item)
{
    if (list->count + 1 >= list->cap) {
        list->cap = list->cap ? list->cap * 2 : 32;
        list->items = realloc (list->items, list->cap * sizeof (char *));
        assert (list->items);
    }
    list->items[list->count++] = item;
    list->items[list->count] = NULL;
}

static bool
s_has_glob (const char *s)
{
    return strpbrk (s, "*?[") != NULL;
}

//  Path segments against pattern segments; "**" is any number of them.
static bool
s_match_segments (char **pat, size_t np, char **seg, size_t ns)
{
    if (np == 0)
        return ns == 0;
    if (strcmp (pat[0], "**") == 0) {
        for (size_t k = 0; k <= ns; k++)
            if (s_match_segments (pat + 1, np - 1, seg + k, ns - k))
                return true;
        return false;
    }
    if (ns == 0 || fnmatch (pat[0], seg[0], FNM_PERIOD) != 0)
        return false;
    return s_match_segments (pat + 1, np - 1, seg + 1, ns - 1);
}

static size_t
s_split (char *s, char **out, size_t max)
{
    size_t n = 0;
    for (char *tok = strtok (s, "/"); tok && n < max; tok = strtok (NULL, "/"))
        out[n++] = tok;
    return n;
}

#define S_MAX_SEGMENTS 64

typedef struct {
    s_list_t *out;
    char *const *patterns;     //  directory mode: names to take
    char *pat[S_MAX_SEGMENTS]; //  glob mode: segments after the root
    size_t npat;
    bool glob;
    size_t max_depth;
} s_walk_t;

static void
s_walk (s_walk_t *w, const char *dir, const char *rel, size_t depth)
{
    DIR *d = opendir (dir);
    if (!d) {
        log_warn ("junit.unreadable", "path=\"%s\" error=\"%s\"", dir, strerror (errno));
        return;
    }
    struct dirent *e;
    while ((e = readdir (d))) {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        char *path, *sub;
        assert (asprintf (&path, "%s/%s", dir, e->d_name) > 0);
        assert (asprintf (&sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name) > 0);
        struct stat st;
        bool is_dir = false, is_file = false;
        if (lstat (path, &st) == 0) {
            is_dir = S_ISDIR (st.st_mode);
            //  Symbolic links to files are followed, to directories not (loops)
            is_file = S_ISREG (st.st_mode) ||
                      (S_ISLNK (st.st_mode) && stat (path, &st) == 0 && S_ISREG (st.st_mode));
        }
        if (is_dir && depth + 1 < w->max_depth)
            s_walk (w, path, sub, depth + 1);
        else if (is_file) {
            bool take = false;
            if (w->glob) {
                char *copy = strdup (sub), *seg[S_MAX_SEGMENTS];
                size_t ns = s_split (copy, seg, S_MAX_SEGMENTS);
                take = s_match_segments (w->pat, w->npat, seg, ns);
                free (copy);
            } else
                for (size_t i = 0; w->patterns && w->patterns[i] && !take; i++)
                    take = fnmatch (w->patterns[i], e->d_name, 0) == 0;
            if (take) {
                s_list_add (w->out, path);
                path = NULL;
            }
        }
        free (path);
        free (sub);
    }
    closedir (d);
}

static int
s_strcmp (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

char **
junit_find_files (const char *const *args, size_t nargs, char *const *patterns)
{
    s_list_t list = {0};
    s_list_add (&list, NULL);
    list.count = 0;
    for (size_t i = 0; i < nargs; i++) {
        const char *arg = args[i];
        size_t before = list.count;
        struct stat st;
        if (stat (arg, &st) == 0 && S_ISREG (st.st_mode))
            s_list_add (&list, strdup (arg));
        else if (stat (arg, &st) == 0 && S_ISDIR (st.st_mode)) {
            s_walk_t w = {&list, patterns, {0}, 0, false, SIZE_MAX};
            char *dir = strdup (arg);
            size_t len = strlen (dir);
            while (len > 1 && dir[len - 1] == '/')
                dir[--len] = 0;
            s_walk (&w, dir, "", 0);
            free (dir);
        } else if (s_has_glob (arg)) {
            //  The root: the leading segments without wildcards
            char *copy = strdup (arg), *seg[S_MAX_SEGMENTS];
            size_t ns = s_split (copy, seg, S_MAX_SEGMENTS), k = 0;
            while (k < ns && !s_has_glob (seg[k]))
                k++;
            char root[PATH_MAX] = "";
            size_t used = 0;
            if (arg[0] == '/')
                used = (size_t) snprintf (root, sizeof root, "/");
            for (size_t j = 0; j < k && used < sizeof root; j++)
                used += (size_t) snprintf (root + used, sizeof root - used, "%s%s", seg[j],
                                           j + 1 < k ? "/" : "");
            if (!*root)
                snprintf (root, sizeof root, ".");
            s_walk_t w = {&list, NULL, {0}, 0, true, SIZE_MAX};
            bool deep = false;
            for (size_t j = k; j < ns; j++) {
                w.pat[w.npat++] = seg[j];
                deep |= strcmp (seg[j], "**") == 0;
            }
            if (!deep)
                w.max_depth = w.npat;
            if (w.npat)
                s_walk (&w, root, "", 0);
            //  "./x" from a relative glob reads better as "x"
            for (size_t j = before; arg[0] != '.' && strcmp (root, ".") == 0 && j < list.count; j++)
                if (strncmp (list.items[j], "./", 2) == 0)
                    memmove (list.items[j], list.items[j] + 2, strlen (list.items[j]) - 1);
            free (copy);
        }
        if (list.count == before)
            log_warn ("junit.no_reports", "path=\"%s\" reason=\"%s\"", arg,
                      stat (arg, &st) == 0 || s_has_glob (arg) ? "no report file in it"
                                                               : strerror (errno));
    }
    qsort (list.items, list.count, sizeof (char *), s_strcmp);
    size_t n = 0;
    for (size_t i = 0; i < list.count; i++) {
        if (n && strcmp (list.items[n - 1], list.items[i]) == 0)
            free (list.items[i]);
        else
            list.items[n++] = list.items[i];
    }
    list.items[n] = NULL;
    return list.items;
}

//  ---------------------------------------------------------------------------
//  The collector

static struct {
    char *pipeline;
    char *build_id;
    char **branch;
    char *sha;
    char *source;
    char **report_pattern;
} s_settings;

static const config_option_t s_options[] = {
    {"pipeline", CONFIG_STRING, NULL,
     "junit: the pipeline (workflow, job) of the build the reports belong to; default from "
     "the CI's environment",
     &s_settings.pipeline},
    {"build_id", CONFIG_STRING, NULL,
     "junit: the CI's id of that build; with a pipeline, a ci.build summary is sent",
     &s_settings.build_id},
    {"branch", CONFIG_LIST, NULL,
     "junit: the branch that build ran on (one; git: the branches to collect)", &s_settings.branch},
    {"sha", CONFIG_STRING, NULL, "junit: the commit that build ran on", &s_settings.sha},
    {"source", CONFIG_STRING, NULL,
     "the records' src; junit default: the CI project, else the first PATH", &s_settings.source},
    {"report_pattern", CONFIG_LIST, "*.xml",
     "junit: names of report files in the directories given", &s_settings.report_pattern},
    {NULL}};

//  Build metadata from the CI's environment (GitHub Actions, GitLab CI,
//  Jenkins), or NULLs.
typedef struct {
    const char *system, *pipeline, *build_id, *branch, *sha, *trigger;
    char project[512];
} s_ci_t;

typedef const char *(s_getenv_fn) (const char *name);

static const char *
s_env (s_getenv_fn *get, const char *name)
{
    const char *v = get (name);
    return v && *v ? v : NULL;
}

//  A project URL as the git collector names the repository (srcname_t)
static void
s_strip_scheme (const char *url, char *out, size_t size)
{
    if (!srcname_from_url (url, out, size))
        out[0] = 0;
}

static const char *
s_ci_trigger (const char *word)
{
    if (!word)
        return NULL;
    if (strcmp (word, "workflow_dispatch") == 0 || strcmp (word, "web") == 0)
        return "manual";
    if (strcmp (word, "pull_request_target") == 0 || strcmp (word, "merge_request_event") == 0)
        return "pull_request";
    return word;
}

static void
s_ci_detect (s_getenv_fn *get, s_ci_t *ci)
{
    memset (ci, 0, sizeof *ci);
    if (s_env (get, "GITHUB_ACTIONS") || s_env (get, "GITHUB_RUN_ID")) {
        ci->system = "github";
        ci->pipeline = s_env (get, "GITHUB_WORKFLOW");
        ci->build_id = s_env (get, "GITHUB_RUN_ID");
        ci->branch = s_env (get, "GITHUB_HEAD_REF");
        if (!ci->branch)
            ci->branch = s_env (get, "GITHUB_REF_NAME");
        ci->sha = s_env (get, "GITHUB_SHA");
        ci->trigger = s_ci_trigger (s_env (get, "GITHUB_EVENT_NAME"));
        const char *repo = s_env (get, "GITHUB_REPOSITORY");
        if (repo) {
            char server[256];
            s_strip_scheme (s_env (get, "GITHUB_SERVER_URL") ? s_env (get, "GITHUB_SERVER_URL")
                                                             : "https://github.com",
                            server, sizeof server);
            char url[sizeof ci->project];
            snprintf (url, sizeof url, "%s/%s", server, repo);
            s_strip_scheme (url, ci->project, sizeof ci->project);
        }
    } else if (s_env (get, "GITLAB_CI") || s_env (get, "CI_PIPELINE_ID")) {
        ci->system = "gitlab";
        ci->pipeline = s_env (get, "CI_PIPELINE_NAME");
        if (!ci->pipeline)
            ci->pipeline = s_env (get, "CI_PROJECT_PATH");
        ci->build_id = s_env (get, "CI_PIPELINE_ID");
        ci->branch = s_env (get, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME");
        if (!ci->branch)
            ci->branch = s_env (get, "CI_COMMIT_REF_NAME");
        ci->sha = s_env (get, "CI_COMMIT_SHA");
        ci->trigger = s_ci_trigger (s_env (get, "CI_PIPELINE_SOURCE"));
        if (s_env (get, "CI_PROJECT_URL"))
            s_strip_scheme (s_env (get, "CI_PROJECT_URL"), ci->project, sizeof ci->project);
    } else if (s_env (get, "JENKINS_URL") ||
               (s_env (get, "JOB_NAME") &&
                (s_env (get, "BUILD_NUMBER") || s_env (get, "BUILD_ID")))) {
        ci->system = "jenkins";
        ci->pipeline = s_env (get, "JOB_NAME");
        ci->build_id = s_env (get, "BUILD_NUMBER");
        if (!ci->build_id)
            ci->build_id = s_env (get, "BUILD_ID");
        ci->branch = s_env (get, "BRANCH_NAME");
        if (!ci->branch && (ci->branch = s_env (get, "GIT_BRANCH")) &&
            strncmp (ci->branch, "origin/", 7) == 0)
            ci->branch += 7;
        ci->sha = s_env (get, "GIT_COMMIT");
        //  The git plugin's repository names the project as its commits do
        if (s_env (get, "GIT_URL"))
            s_strip_scheme (s_env (get, "GIT_URL"), ci->project, sizeof ci->project);
        else if (s_env (get, "JOB_URL"))
            s_strip_scheme (s_env (get, "JOB_URL"), ci->project, sizeof ci->project);
    }
}

typedef struct {
    char **args;
    size_t nargs;
    char **patterns;
    char *target, *src;
    char *system, *pipeline, *build_id, *branch, *sha, *trigger;
    char *state_dir;
    //  "<size> <mtime ns> <path>" of every report read (or skipped as read
    //  before) in this run: the state once it is acknowledged
    char **read;
    size_t nread, read_cap;
} s_junit_t;

static char *
s_dup (const char *s)
{
    return s ? strdup (s) : NULL;
}

static void s_close (void **self_p);

static void *
s_open_env (const collector_env_t *env, s_getenv_fn *get, char *error, size_t size)
{
    if (env->nargs == 0) {
        snprintf (error, size, "no PATH: name report files, directories or globs");
        return NULL;
    }
    size_t nbranches = 0;
    while (s_settings.branch && s_settings.branch[nbranches])
        nbranches++;
    if (nbranches > 1) {
        snprintf (error, size, "collectord.branch: one branch, please (junit)");
        return NULL;
    }
    for (size_t i = 0; i < env->nargs; i++) {
        struct stat st;
        if (stat (env->args[i], &st) != 0 && !s_has_glob (env->args[i])) {
            snprintf (error, size, "cannot read %s: %s", env->args[i], strerror (errno));
            return NULL;
        }
    }
    s_junit_t *self = calloc (1, sizeof *self);
    assert (self);
    self->state_dir = strdup (env->state_dir ? env->state_dir : "");
    self->args = calloc (env->nargs + 1, sizeof (char *));
    for (size_t i = 0; i < env->nargs; i++)
        self->args[self->nargs++] = strdup (env->args[i]);
    size_t npatterns = 0;
    while (s_settings.report_pattern && s_settings.report_pattern[npatterns])
        npatterns++;
    self->patterns = calloc (npatterns + 2, sizeof (char *));
    for (size_t i = 0; i < npatterns; i++)
        self->patterns[i] = strdup (s_settings.report_pattern[i]);
    if (npatterns == 0)
        self->patterns[0] = strdup ("*.xml");

    s_ci_t ci;
    s_ci_detect (get, &ci);
    //  Flags win over the environment
    const char *pipeline =
        s_settings.pipeline && *s_settings.pipeline ? s_settings.pipeline : ci.pipeline;
    const char *build_id =
        s_settings.build_id && *s_settings.build_id ? s_settings.build_id : ci.build_id;
    if ((pipeline != NULL) != (build_id != NULL) &&
        ((s_settings.pipeline && *s_settings.pipeline) ||
         (s_settings.build_id && *s_settings.build_id))) {
        snprintf (error, size, "collectord.%s: needed with --%s (a build is named by both)",
                  pipeline ? "build_id" : "pipeline", pipeline ? "pipeline" : "build-id");
        s_close ((void **) &self);
        return NULL;
    }
    if (pipeline && build_id) {
        self->pipeline = strdup (pipeline);
        self->build_id = strdup (build_id);
        bool from_flags = s_settings.pipeline && *s_settings.pipeline && s_settings.build_id &&
                          *s_settings.build_id;
        self->system = strdup (ci.system && !from_flags ? ci.system : "junit");
        self->trigger = from_flags ? NULL : s_dup (ci.trigger);
    }
    self->branch = s_dup (nbranches ? s_settings.branch[0] : ci.branch);
    self->sha = s_dup (s_settings.sha && *s_settings.sha ? s_settings.sha : ci.sha);

    //  target: the first PATH (the root of a glob)
    char *first = strdup (self->args[0]);
    if (s_has_glob (first)) {
        char *wild = strpbrk (first, "*?[");
        *wild = 0;
        char *slash = strrchr (first, '/');
        if (slash)
            slash[slash == first ? 1 : 0] = 0;
        else
            snprintf (first, strlen (first) + 1, "%s", "");
        if (!*first) {
            free (first);
            first = strdup (".");
        }
    }
    self->target = realpath (first, NULL);
    if (!self->target)
        self->target = strdup (first);
    free (first);
    if (s_settings.source && *s_settings.source)
        self->src = strdup (s_settings.source);
    else if (*ci.project)
        self->src = strdup (ci.project);
    else
        self->src = strdup (self->target);
    return self;
}

static void *
s_open (const collector_env_t *env, char *error, size_t size)
{
    return s_open_env (env, (s_getenv_fn *) getenv, error, size);
}

static void
s_close (void **self_p)
{
    s_junit_t *self = (s_junit_t *) *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nargs; i++)
        free (self->args[i]);
    free (self->args);
    for (size_t i = 0; self->patterns && self->patterns[i]; i++)
        free (self->patterns[i]);
    free (self->patterns);
    free (self->target);
    free (self->src);
    free (self->system);
    free (self->pipeline);
    free (self->build_id);
    free (self->branch);
    free (self->sha);
    free (self->trigger);
    free (self->state_dir);
    for (size_t i = 0; i < self->nread; i++)
        free (self->read[i]);
    free (self->read);
    free (self);
    *self_p = NULL;
}

static const char *
s_source (void *handle)
{
    return ((s_junit_t *) handle)->src;
}

static const char *
s_target (void *handle)
{
    return ((s_junit_t *) handle)->target;
}

static void
s_pack_kv (msgpack_packer *pk, const char *key, const char *value)
{
    record_pack_str (pk, key);
    record_pack_str (pk, value);
}

static void
s_pack_config (void *handle, msgpack_packer *pk)
{
    s_junit_t *self = (s_junit_t *) handle;
    msgpack_pack_map (pk, 2 + (self->pipeline != NULL) * 3 + (self->branch != NULL) +
                              (self->sha != NULL));
    record_pack_str (pk, "paths");
    msgpack_pack_array (pk, self->nargs);
    for (size_t i = 0; i < self->nargs; i++)
        record_pack_str (pk, self->args[i]);
    record_pack_str (pk, "report_pattern");
    size_t n = 0;
    while (self->patterns[n])
        n++;
    msgpack_pack_array (pk, n);
    for (size_t i = 0; i < n; i++)
        record_pack_str (pk, self->patterns[i]);
    if (self->pipeline) {
        s_pack_kv (pk, "pipeline", self->pipeline);
        s_pack_kv (pk, "build_id", self->build_id);
        s_pack_kv (pk, "system", self->system);
    }
    if (self->branch)
        s_pack_kv (pk, "branch", self->branch);
    if (self->sha)
        s_pack_kv (pk, "sha", self->sha);
}

typedef struct {
    s_junit_t *self;
    session_t *session;
    uint64_t sent, invalid;
    bool broken;
} s_send_t;

static int
s_send_case (void *arg, const junit_case_t *tc)
{
    s_send_t *ctx = (s_send_t *) arg;
    s_junit_t *self = ctx->self;
    msgpack_packer *pk = session_record (ctx->session, "ci.test", tc->ts);
    size_t n = 6 + (tc->class_name != NULL) + (self->pipeline != NULL) * 2 +
               (tc->failure_type != NULL) + (tc->failure_message != NULL);
    msgpack_pack_map (pk, n);
    s_pack_kv (pk, "suite", tc->suite);
    if (tc->class_name)
        s_pack_kv (pk, "class", tc->class_name);
    s_pack_kv (pk, "name", tc->name);
    s_pack_kv (pk, "status", tc->status);
    record_pack_str (pk, "duration");
    msgpack_pack_double (pk, tc->duration);
    if (self->pipeline) {
        s_pack_kv (pk, "pipeline", self->pipeline);
        s_pack_kv (pk, "build_id", self->build_id);
    }
    s_pack_kv (pk, "file", tc->file);
    if (tc->failure_type)
        s_pack_kv (pk, "failure_type", tc->failure_type);
    if (tc->failure_message)
        s_pack_kv (pk, "failure_message", tc->failure_message);
    record_pack_str (pk, "flaky");
    if (tc->flaky)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    int rc = session_send (ctx->session);
    if (rc > 0) {
        log_error ("junit.unsendable", "file=\"%s\" name=\"%s\" reason=\"%s\"", tc->file, tc->name,
                   session_detail (ctx->session));
        ctx->invalid++;
        return 0;
    }
    if (rc < 0) {
        ctx->broken = true;
        return -1;
    }
    ctx->sent++;
    return 0;
}

//  A report's identity for the state: what changes when it is rewritten
static char *
s_report_key (const char *path)
{
    struct stat st;
    if (stat (path, &st) != 0)
        return NULL;
    char *key;
    assert (asprintf (&key, "%lld %lld %s", (long long) st.st_size,
                      (long long) st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec, path) > 0);
    return key;
}

static void
s_remember (s_junit_t *self, char *key)
{
    if (self->nread == self->read_cap) {
        self->read_cap = self->read_cap ? self->read_cap * 2 : 64;
        self->read = realloc (self->read, self->read_cap * sizeof (char *));
        assert (self->read);
    }
    self->read[self->nread++] = key;
}

//  The reports the last acknowledged run read, as a set of keys.
static zhashx_t *
s_load_state (s_junit_t *self)
{
    zhashx_t *done = zhashx_new ();
    state_t *state = state_new (self->state_dir, "junit", self->src);
    char error[512];
    if (state_load (state, error, sizeof error))
        log_warn ("junit.state_unreadable", "error=\"%s\" effect=\"every report read\"", error);
    else
        for (size_t i = 0; i < state_size (state); i++)
            zhashx_insert (done, state_entry (state, i), (void *) 1);
    state_destroy (&state);
    return done;
}

static int
s_collect (void *handle, session_t *session, char *error, size_t size)
{
    s_junit_t *self = (s_junit_t *) handle;
    for (size_t i = 0; i < self->nread; i++)
        free (self->read[i]);
    self->nread = 0;
    char **files = junit_find_files ((const char *const *) self->args, self->nargs, self->patterns);
    size_t nfiles = 0;
    while (files[nfiles])
        nfiles++;
    zhashx_t *done = s_load_state (self);
    s_send_t ctx = {self, session, 0, 0, false};
    junit_t *reader = junit_new (s_send_case, &ctx);
    progress_t *progress = session_progress (session);
    progress_start (progress, "report files", nfiles);
    size_t failed = 0, reports = 0, unchanged = 0;
    char first_error[600] = "";
    for (size_t i = 0; i < nfiles && !ctx.broken; i++) {
        char err[600];
        char *key = s_report_key (files[i]);
        if (key && zhashx_lookup (done, key)) {
            //  Read by an earlier run, unchanged since
            unchanged++;
            s_remember (self, key);
            progress_update (progress, i + 1);
            continue;
        }
        int64_t n = junit_read_file (reader, files[i], err, sizeof err);
        if (n == -1) {
            log_error ("junit.file_failed", "error=\"%s\"", err);
            if (!failed++)
                snprintf (first_error, sizeof first_error, "%s", err);
        } else if (n == 0)
            log_debug ("junit.not_a_report", "path=\"%s\"", files[i]);
        else if (n > 0)
            reports++;
        //  Malformed reports are read again next time: they may be complete by then
        if (n >= 0 && key) {
            s_remember (self, key);
            key = NULL;
        }
        free (key);
        progress_update (progress, i + 1);
    }
    progress_finish (progress);
    zhashx_destroy (&done);
    const junit_totals_t *t = junit_totals (reader);
    int rc = 0;
    if (ctx.broken) {
        snprintf (error, size, "%s",
                  session_interrupted (session) ? "interrupted"
                                                : "ingestd did not acknowledge (give_up)");
        rc = -1;
    } else if (self->pipeline && (reports || failed)) {
        //  The summary of the build the reports belong to
        builds_tests_t tests = {t->total, t->passed, t->failed, t->error, t->skipped};
        builds_build_t b = {self->system,
                            self->pipeline,
                            self->build_id,
                            t->failed || t->error ? "failure"
                            : t->total            ? "success"
                                                  : "other",
                            self->branch,
                            self->sha,
                            self->trigger,
                            t->started,
                            t->finished,
                            -1,
                            &tests,
                            S_NO_TIME,
                            NULL};
        if (t->started != S_NO_TIME && t->finished != S_NO_TIME)
            b.duration = (double) (t->finished - t->started) / 1e9;
        else
            b.duration = t->duration;
        //  The time of the reports: the CI's own record of the build (builds
        //  collector), written when it ended, is the later state
        b.ts = t->finished != S_NO_TIME      ? t->finished
               : t->newest_file != S_NO_TIME ? t->newest_file
                                             : util_now_ns ();
        builds_pack (session_record (session, "ci.build", b.ts), &b);
        int send_rc = session_send (session);
        if (send_rc > 0)
            log_error ("junit.unsendable", "kind=ci.build reason=\"%s\"", session_detail (session));
        else if (send_rc < 0) {
            snprintf (error, size, "%s",
                      session_interrupted (session) ? "interrupted"
                                                    : "ingestd did not acknowledge (give_up)");
            rc = -1;
        }
    }
    log_info ("junit.collected",
              "files=%zu reports=%zu unchanged=%zu failed_files=%zu"
              " tests=%" PRIu64 " passed=%" PRIu64 " failed=%" PRIu64 " error=%" PRIu64
              " skipped=%" PRIu64 " flaky=%" PRIu64 " invalid=%" PRIu64,
              nfiles, reports, unchanged, failed, t->total, t->passed, t->failed, t->error,
              t->skipped, t->flaky, ctx.invalid);
    if (rc == 0 && failed) {
        snprintf (error, size, "%zu of %zu report files unreadable, first: %s", failed, nfiles,
                  first_error);
        rc = -1;
    } else if (rc == 0 && nfiles == 0)
        //  A folder watched with --interval may be empty for a while
        log_warn ("junit.no_reports", "paths=%zu reason=\"no report file found\"", self->nargs);
    junit_destroy (&reader);
    for (size_t i = 0; files[i]; i++)
        free (files[i]);
    free (files);
    return rc;
}

//  After every record was acknowledged: the reports read need not be read
//  again while they stay as they are.
static int
s_commit (void *handle, char *error, size_t size)
{
    s_junit_t *self = (s_junit_t *) handle;
    state_t *state = state_new (self->state_dir, "junit", self->src);
    for (size_t i = 0; i < self->nread; i++)
        state_add (state, self->read[i]);
    int rc = state_save (state, error, size);
    state_destroy (&state);
    return rc;
}

const collector_t junit_collector = {
    .name = "junit",
    .usage = "PATH...",
    .summary = "test reports in JUnit XML (Surefire, Gradle, pytest, Go, Jest, ctest ...)",
    .options = s_options,
    .open = s_open,
    .close = s_close,
    .source = s_source,
    .target = s_target,
    .pack_config = s_pack_config,
    .collect = s_collect,
    .commit = s_commit,
    .keeps_state = true,
};

//  ---------------------------------------------------------------------------
//  Self-test

#define S_KEEP 16

typedef struct {
    size_t count;
    struct {
        char suite[64], class_name[64], name[64], status[16], type[64], message[256];
        double duration;
        bool flaky;
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
        snprintf (seen->c[i].status, sizeof seen->c[i].status, "%s", tc->status);
        snprintf (seen->c[i].type, sizeof seen->c[i].type, "%s",
                  tc->failure_type ? tc->failure_type : "(null)");
        snprintf (seen->c[i].message, sizeof seen->c[i].message, "%s",
                  tc->failure_message ? tc->failure_message : "(null)");
        seen->c[i].duration = tc->duration;
        seen->c[i].flaky = tc->flaky;
        seen->c[i].ts = tc->ts;
    }
    seen->count++;
    return 0;
}

//  Reads one fixture with a fresh reader; checks the totals.
static void
s_expect (const char *name, s_seen_t *seen, uint64_t passed, uint64_t failed, uint64_t error,
          uint64_t skipped, uint64_t flaky, double duration)
{
    memset (seen, 0, sizeof *seen);
    junit_t *reader = junit_new (s_keep, seen);
    char *path = selftest_fixture (name), err[600];
    int64_t n = junit_read_file (reader, path, err, sizeof err);
    if (n < 0)
        fprintf (stderr, "%s\n", err);
    const junit_totals_t *t = junit_totals (reader);
    if (t->passed != passed || t->failed != failed || t->error != error || t->skipped != skipped ||
        t->flaky != flaky || fabs (t->duration - duration) > 1e-9)
        fprintf (stderr,
                 "%s: passed %" PRIu64 " failed %" PRIu64 " error %" PRIu64 " skipped %" PRIu64
                 " flaky %" PRIu64 " duration %.9f\n",
                 name, t->passed, t->failed, t->error, t->skipped, t->flaky, t->duration);
    assert (n == (int64_t) (passed + failed + error + skipped));
    assert (t->total == (uint64_t) n && seen->count == (size_t) n);
    assert (t->passed == passed && t->failed == failed && t->error == error);
    assert (t->skipped == skipped && t->flaky == flaky);
    assert (fabs (t->duration - duration) < 1e-9);
    junit_destroy (&reader);
    free (path);
}

static size_t
s_find (s_seen_t *seen, const char *name)
{
    for (size_t i = 0; i < seen->count && i < S_KEEP; i++)
        if (strcmp (seen->c[i].name, name) == 0)
            return i;
    fprintf (stderr, "no test case %s\n", name);
    assert (false);
    return 0;
}

static const char *s_fake_env[][2] = {{"GITHUB_ACTIONS", "true"},
                                      {"GITHUB_WORKFLOW", "CI"},
                                      {"GITHUB_RUN_ID", "7001"},
                                      {"GITHUB_REF_NAME", "main"},
                                      {"GITHUB_SHA", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
                                      {"GITHUB_EVENT_NAME", "push"},
                                      {"GITHUB_REPOSITORY", "acme/widget"},
                                      {"GITHUB_SERVER_URL", "https://github.com"},
                                      {NULL, NULL}};

static const char *
s_fake_getenv (const char *name)
{
    for (size_t i = 0; s_fake_env[i][0]; i++)
        if (strcmp (s_fake_env[i][0], name) == 0)
            return s_fake_env[i][1];
    return NULL;
}

static const char *
s_no_env (const char *name)
{
    (void) name;
    return NULL;
}

static const char *s_jenkins_env[][2] = {{"JENKINS_URL", "https://ci.example.com/"},
                                         {"JOB_NAME", "team/widget"},
                                         {"BUILD_NUMBER", "42"},
                                         {"GIT_BRANCH", "origin/dev"},
                                         {"JOB_URL", "https://ci.example.com/job/team/job/widget/"},
                                         {NULL, NULL}};

static const char *
s_jenkins_getenv (const char *name)
{
    for (size_t i = 0; s_jenkins_env[i][0]; i++)
        if (strcmp (s_jenkins_env[i][0], name) == 0)
            return s_jenkins_env[i][1];
    return NULL;
}

void
junit_test (bool verbose)
{
    (void) verbose;
    //  Cuts on character boundaries: "é" is 2 bytes, "€" 3
    assert (junit_utf8_cut ("abc", 3, 4096) == 3);
    assert (junit_utf8_cut ("a\xC3\xA9", 3, 2) == 1);
    assert (junit_utf8_cut ("a\xC3\xA9", 3, 3) == 3);
    assert (junit_utf8_cut ("\xE2\x82\xAC\xE2\x82\xAC", 6, 5) == 3);
    assert (junit_utf8_cut ("\xE2\x82\xAC\xE2\x82\xAC", 6, 2) == 0);
    assert (s_seconds ("0.25") == 0.25 && s_seconds ("1,234.5") == 1234.5);
    assert (s_seconds ("0,5") == 0.5 && s_seconds ("1,234") == 1234);
    assert (s_seconds (NULL) == 0 && s_seconds ("fast") == 0 && s_seconds ("-1") == 0);
    assert (s_seconds ("nan") == 0 && s_seconds ("") == 0);

    s_seen_t *seen = calloc (1, sizeof *seen);
    assert (seen);
    size_t i;

    //  Maven Surefire: flakyFailure passes, rerunFailure beside a failure fails
    s_expect ("junit/surefire/TEST-com.acme.CalcTest.xml", seen, 4, 1, 1, 1, 1, 1235.106);
    i = s_find (seen, "testFlaky");
    assert (strcmp (seen->c[i].status, "passed") == 0 && seen->c[i].flaky);
    assert (strcmp (seen->c[i].type, "org.opentest4j.AssertionFailedError") == 0);
    assert (strcmp (seen->c[i].message, "expected: <1> but was: <2>") == 0);
    i = s_find (seen, "testMul");
    assert (strcmp (seen->c[i].status, "failed") == 0 && !seen->c[i].flaky);
    assert (strcmp (seen->c[i].message, "expected: <6> but was: <5>") == 0);
    assert (strcmp (seen->c[i].suite, "com.acme.CalcTest") == 0);
    assert (strcmp (seen->c[i].class_name, "com.acme.CalcTest") == 0);
    assert (seen->c[i].duration == 0.2);
    i = s_find (seen, "testDiv");
    assert (strcmp (seen->c[i].status, "error") == 0);
    assert (strcmp (seen->c[i].type, "java.lang.ArithmeticException") == 0);
    assert (strcmp (seen->c[i].message, "/ by zero") == 0);
    i = s_find (seen, "testSkip");
    assert (strcmp (seen->c[i].status, "skipped") == 0);
    assert (strcmp (seen->c[i].message, "not ready") == 0);
    i = s_find (seen, "testSlow");
    assert (seen->c[i].duration == 1234.5);
    i = s_find (seen, "testOut");
    assert (strcmp (seen->c[i].status, "passed") == 0 && !seen->c[i].flaky);
    assert (strcmp (seen->c[i].message, "(null)") == 0);
    //  No timestamp in Surefire reports: the file's time
    char *path = selftest_fixture ("junit/surefire/TEST-com.acme.CalcTest.xml");
    struct stat st;
    assert (stat (path, &st) == 0);
    assert (seen->c[i].ts == (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec);
    free (path);
    s_expect ("junit/surefire/TEST-com.acme.DbIT.xml", seen, 1, 1, 0, 0, 0, 3.5);
    assert (strcmp (seen->c[1].message, "relation \"users\" does not exist") == 0);

    //  Gradle
    s_expect ("junit/gradle/TEST-com.acme.GradleTest.xml", seen, 2, 1, 0, 1, 0, 0.75);
    i = s_find (seen, "rejects()");
    assert (strcmp (seen->c[i].message, "java.lang.IllegalStateException: nope") == 0);
    assert (seen->c[i].ts == INT64_C (1709294400) * 1000000000); //  2024-03-01T12:00:00
    i = s_find (seen, "later()");
    assert (strcmp (seen->c[i].status, "skipped") == 0 &&
            strcmp (seen->c[i].message, "(null)") == 0);

    //  pytest --junitxml: xfail is a skip, testcase properties skipped over
    s_expect ("junit/pytest/junit.xml", seen, 2, 1, 1, 2, 0, 1.5);
    i = s_find (seen, "test_sub");
    assert (strcmp (seen->c[i].message, "assert 1 == 2\n +  where 1 = sub(3, 2)") == 0);
    assert (strcmp (seen->c[i].suite, "pytest") == 0);
    assert (strcmp (seen->c[i].class_name, "tests.test_calc") == 0);
    assert (seen->c[i].ts == INT64_C (1709287200) * 1000000000 + 250000000);
    i = s_find (seen, "test_query");
    assert (strcmp (seen->c[i].status, "error") == 0);
    assert (strcmp (seen->c[i].class_name, "tests.test_calc.TestDb") == 0);
    i = s_find (seen, "test_skip");
    assert (strcmp (seen->c[i].type, "pytest.skip") == 0);
    assert (strcmp (seen->c[i].message, "no database") == 0);
    i = s_find (seen, "test_xfail");
    assert (strcmp (seen->c[i].status, "skipped") == 0);
    assert (strcmp (seen->c[i].type, "pytest.xfail") == 0);
    assert (strcmp (seen->c[i].message, "(null)") == 0);

    //  go-junit-report: "Failed" says nothing, the text does
    s_expect ("junit/go/go-junit-report.xml", seen, 2, 1, 0, 1, 0, 1.53);
    i = s_find (seen, "TestB");
    assert (strcmp (seen->c[i].message, "a_test.go:12: boom\n    a_test.go:13: got 2, want 3") ==
            0);
    assert (strcmp (seen->c[i].suite, "example.com/widget/a") == 0);
    i = s_find (seen, "TestC");
    assert (strcmp (seen->c[i].message, "a_test.go:20: later") == 0);
    i = s_find (seen, "TestD/sub_case");
    assert (strcmp (seen->c[i].suite, "example.com/widget/b") == 0);
    assert (seen->c[i].ts == INT64_C (1709366401) * 1000000000);

    //  gotestsum --rerun-fails: failed then passed is one flaky pass
    s_expect ("junit/go/gotestsum.xml", seen, 2, 1, 0, 1, 1, 0.7);
    i = s_find (seen, "TestFlaky");
    assert (strcmp (seen->c[i].status, "passed") == 0 && seen->c[i].flaky);
    assert (seen->c[i].duration == 0.3);
    assert (strcmp (seen->c[i].message,
                    "=== RUN   TestFlaky\n    c_test.go:9: timing\n--- FAIL: TestFlaky (0.20s)") ==
            0);
    i = s_find (seen, "TestBroken");
    assert (strcmp (seen->c[i].status, "failed") == 0 && !seen->c[i].flaky);
    i = s_find (seen, "TestSkip");
    assert (strstr (seen->c[i].message, "needs network"));
    assert (seen->c[i].ts == INT64_C (1709452800) * 1000000000); //  09:00+01:00

    //  jest-junit: the message is the failure's text
    s_expect ("junit/jest/junit.xml", seen, 3, 1, 0, 1, 0, 1.26);
    i = s_find (seen, "Calculator divides");
    assert (strcmp (seen->c[i].type, "(null)") == 0);
    assert (strncmp (seen->c[i].message, "Error: expect(received).toBe(expected) // Object.is",
                     51) == 0);
    assert (strcmp (seen->c[i].suite, "Calculator") == 0);
    i = s_find (seen, "Parser parses");
    assert (strcmp (seen->c[i].suite, "Parser") == 0);

    //  ctest --output-junit
    s_expect ("junit/ctest/ctest.xml", seen, 1, 1, 0, 2, 0, 0.75);
    i = s_find (seen, "fails");
    assert (strcmp (seen->c[i].message, "Assertion `x == 3' failed.") == 0);
    i = s_find (seen, "notrun");
    assert (strcmp (seen->c[i].message, "Unable to find executable: /build/notrun") == 0);

    //  Nested suites: the innermost named one; none: the file's name
    s_expect ("junit/nested/phpunit.xml", seen, 4, 0, 0, 0, 0, 0.6);
    assert (strcmp (seen->c[s_find (seen, "testOne")].suite, "Acme\\MathTest") == 0);
    assert (strcmp (seen->c[s_find (seen, "topLevel")].suite, "All") == 0);
    i = s_find (seen, "orphan");
    assert (strcmp (seen->c[i].suite, "phpunit") == 0);
    assert (strcmp (seen->c[i].class_name, "(null)") == 0);

    //  Malformed: file and line; the case before the error was read
    memset (seen, 0, sizeof *seen);
    junit_t *reader = junit_new (s_keep, seen);
    char err[600];
    path = selftest_fixture ("junit/bad/malformed.xml");
    assert (junit_read_file (reader, path, err, sizeof err) == -1);
    assert (strstr (err, "malformed.xml:5: "));
    //  (libxml2 parses ahead of what it delivers: in so small a file the
    //  error comes before the first case is delivered)
    assert (seen->count <= 1);
    free (path);
    //  Not a report: nothing, no error
    path = selftest_fixture ("junit/bad/pom.xml");
    assert (junit_read_file (reader, path, err, sizeof err) == 0);
    free (path);
    assert (junit_read_file (reader, "/nonexistent/r.xml", err, sizeof err) == -1);
    assert (strstr (err, "/nonexistent/r.xml"));
    junit_destroy (&reader);

    //  A message over the limit is cut on a character boundary
    char *dir = selftest_tmpdir ("junit");
    char *big;
    assert (asprintf (&big, "%s/big.xml", dir) > 0);
    FILE *f = fopen (big, "w");
    assert (f);
    fprintf (f, "<testsuite name=\"s\"><testcase name=\"t\"><failure>x");
    for (int k = 0; k < 3000; k++)
        fputs ("\xC3\xA9", f); //  é, 2 bytes: 6001 bytes of text
    fprintf (f, "</failure></testcase></testsuite>");
    fclose (f);
    memset (seen, 0, sizeof *seen);
    reader = junit_new (s_keep, seen);
    assert (junit_read_file (reader, big, err, sizeof err) == 1);
    junit_destroy (&reader);
    assert (strcmp (seen->c[0].status, "failed") == 0);
    //  (the kept copy is short; the length is checked through the collector below)

    //  Finding files: a directory (recursive, by pattern), a glob with **
    char *dirs_root = selftest_fixture ("junit");
    const char *args1[] = {dirs_root};
    char *xml[] = {"*.xml", NULL};
    char **files = junit_find_files (args1, 1, xml);
    size_t n = 0;
    while (files[n])
        n++;
    assert (n == 12);
    for (size_t k = 0; k + 1 < n; k++)
        assert (strcmp (files[k], files[k + 1]) < 0);
    for (size_t k = 0; k < n; k++)
        free (files[k]);
    free (files);
    char *glob;
    assert (asprintf (&glob, "%s/**/TEST-*.xml", dirs_root) > 0);
    const char *args2[] = {glob, dirs_root, "/nonexistent/omni"};
    files = junit_find_files (args2, 3, xml);
    n = 0;
    while (files[n])
        n++;
    assert (n == 12); //  no duplicates
    for (size_t k = 0; k < n; k++)
        free (files[k]);
    free (files);
    files = junit_find_files (args2, 1, xml);
    n = 0;
    while (files[n]) {
        assert (strstr (files[n], "/TEST-"));
        free (files[n++]);
    }
    free (files);
    assert (n == 3);
    free (glob);
    assert (asprintf (&glob, "%s/go/*.xml", dirs_root) > 0);
    args2[0] = glob;
    files = junit_find_files (args2, 1, xml);
    assert (files[0] && files[1] && !files[2]);
    for (size_t k = 0; files[k]; k++)
        free (files[k]);
    free (files);
    free (glob);

    //  Build metadata from the environment: GitHub, Jenkins; flags win
    s_settings.pipeline = s_settings.build_id = s_settings.sha = s_settings.source = NULL;
    s_settings.branch = NULL;
    static char *patterns[] = {"*.xml", NULL};
    s_settings.report_pattern = patterns;
    const char *args3[] = {dirs_root, big};
    collector_env_t env = {
        .args = args3, .nargs = 2, .state_dir = "/nonexistent", .instance = "test"};
    s_junit_t *handle = (s_junit_t *) s_open_env (&env, s_fake_getenv, err, sizeof err);
    assert (handle);
    assert (strcmp (handle->src, "github.com/acme/widget") == 0);
    assert (strcmp (handle->pipeline, "CI") == 0 && strcmp (handle->build_id, "7001") == 0);
    assert (strcmp (handle->system, "github") == 0 && strcmp (handle->trigger, "push") == 0);
    assert (strcmp (handle->branch, "main") == 0);
    s_close ((void **) &handle);
    handle = (s_junit_t *) s_open_env (&env, s_jenkins_getenv, err, sizeof err);
    assert (handle && strcmp (handle->src, "ci.example.com/job/team/job/widget") == 0);
    assert (strcmp (handle->pipeline, "team/widget") == 0);
    assert (strcmp (handle->build_id, "42") == 0 && strcmp (handle->branch, "dev") == 0);
    s_close ((void **) &handle);
    handle = (s_junit_t *) s_open_env (&env, s_no_env, err, sizeof err);
    assert (handle && !handle->pipeline && strcmp (handle->src, handle->target) == 0);
    s_close ((void **) &handle);
    s_settings.pipeline = "release";
    assert (s_open_env (&env, s_no_env, err, sizeof err) == NULL);
    assert (strstr (err, "build_id"));
    s_settings.build_id = "r-9";
    static char *branch[] = {"rel", NULL};
    s_settings.branch = branch;
    s_settings.source = "acme/widget";
    handle = (s_junit_t *) s_open_env (&env, s_fake_getenv, err, sizeof err);
    assert (handle && strcmp (handle->pipeline, "release") == 0);
    assert (strcmp (handle->system, "junit") == 0 && !handle->trigger);
    assert (strcmp (handle->branch, "rel") == 0 && strcmp (handle->src, "acme/widget") == 0);
    const char *missing[] = {"/nonexistent/reports"};
    env.args = missing;
    env.nargs = 1;
    assert (s_open_env (&env, s_no_env, err, sizeof err) == NULL);
    assert (strstr (err, "/nonexistent/reports"));

    //  The collector against the fake ingestd: every report under the
    //  fixtures plus the big one; the malformed file fails the run, the rest
    //  is sent, and one ci.build sums it up
    testpeer_t *fake = testpeer_new ();
    session_config_t config = {
        "junit",      "test", {testpeer_endpoint (fake), 7, 0, 4, 5000, 10000, NULL},
        PROGRESS_OFF, 1000,   NULL};
    session_t *session = session_new (&config);
    assert (session_begin (session, s_source (handle), s_target (handle), s_pack_config, handle) ==
            0);
    assert (s_collect (handle, session, err, sizeof err) == -1);
    assert (strstr (err, "1 of 13 report files unreadable") && strstr (err, "malformed.xml:5:"));
    assert (session_end (session, "failed", err) == 0);
    //  7 + 2 + 4 + 6 + 4 + 4 + 5 + 4 + 4 + 1 (big)
    size_t expect = 7 + 2 + 4 + 6 + 4 + 4 + 5 + 4 + 4 + 1;
    assert (testpeer_count_kind (fake, "ci.test") == expect);
    assert (testpeer_count_kind (fake, "ci.build") == 1);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1 << 16);
    bool saw_big = false, saw_build = false;
    for (size_t k = 0; k < testpeer_count (fake); k++) {
        record_t rec;
        testpeer_record (fake, k, &rec, &zone);
        record_str_t s;
        if (record_str_eq (rec.kind, "ci.build")) {
            saw_build = true;
            assert (record_field_str (rec.body, "pipeline", &s) && record_str_eq (s, "release"));
            assert (record_field_str (rec.body, "build_id", &s) && record_str_eq (s, "r-9"));
            assert (record_field_str (rec.body, "status", &s) && record_str_eq (s, "failure"));
            assert (record_field_str (rec.body, "branch", &s) && record_str_eq (s, "rel"));
            const msgpack_object *tests = record_field (rec.body, "tests");
            int64_t v;
            assert (tests && record_field_int (tests, "total", &v) && v == (int64_t) expect);
            //  Per report, as in the order of the counts above
            assert (record_field_int (tests, "passed", &v) &&
                    v == 4 + 1 + 2 + 2 + 2 + 2 + 3 + 1 + 4);
            assert (record_field_int (tests, "failed", &v) &&
                    v == 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1);
            assert (record_field_int (tests, "error", &v) && v == 1 + 1);
            assert (record_field_int (tests, "skipped", &v) && v == 1 + 1 + 2 + 1 + 1 + 1 + 2);
            continue;
        }
        assert (record_str_eq (rec.kind, "ci.test") || strncmp (rec.kind.ptr, "run.", 4) == 0);
        if (!record_str_eq (rec.kind, "ci.test"))
            continue;
        assert (record_str_eq (rec.src, "acme/widget"));
        assert (record_field_str (rec.body, "build_id", &s) && record_str_eq (s, "r-9"));
        bool flaky;
        assert (record_field_bool (rec.body, "flaky", &flaky));
        if (record_field_str (rec.body, "suite", &s) && record_str_eq (s, "s")) {
            saw_big = true;
            assert (record_field_str (rec.body, "failure_message", &s));
            //  "x" + 2047 whole "é" = 4095 bytes: the 2048th would pass 4096
            assert (s.len == 4095 && s.ptr[0] == 'x');
            assert (utf8_valid (s.ptr, s.len));
        }
    }
    assert (saw_big && saw_build);
    s_close ((void **) &handle);

    //  Incremental: a second run reads only what changed since the first
    char *gradle;
    assert (asprintf (&gradle, "%s/gradle", dirs_root) > 0);
    const char *args4[] = {gradle, big};
    collector_env_t env4 = {.args = args4, .nargs = 2, .state_dir = dir, .instance = "test"};
    handle = (s_junit_t *) s_open_env (&env4, s_no_env, err, sizeof err);
    assert (handle);
    for (int round = 0; round < 3; round++) {
        if (round == 2) {
            //  The report rewritten: read again
            f = fopen (big, "w");
            assert (f);
            fprintf (f, "<testsuite name=\"s\"><testcase name=\"t2\"/></testsuite>");
            fclose (f);
        }
        testpeer_clear (fake);
        assert (session_begin (session, s_source (handle), s_target (handle), s_pack_config,
                               handle) == 0);
        assert (s_collect (handle, session, err, sizeof err) == 0);
        assert (session_end (session, "ok", NULL) == 0);
        assert (s_commit (handle, err, sizeof err) == 0);
        size_t want = round == 0 ? 4 + 1 : round == 1 ? 0 : 1;
        assert (testpeer_count_kind (fake, "ci.test") == want);
        assert (testpeer_count_kind (fake, "ci.build") == (round == 1 ? 0 : 1));
    }
    s_close ((void **) &handle);
    free (gradle);
    msgpack_zone_destroy (&zone);
    session_destroy (&session);
    testpeer_destroy (&fake);
    free (dirs_root);
    free (big);
    selftest_rmtree (dir);
    free (dir);
    free (seen);
    s_settings.pipeline = s_settings.build_id = s_settings.source = NULL;
    s_settings.branch = NULL;
}
