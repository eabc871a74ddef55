/*  archread: an archive's lines, plain and zstd (see archread.h).          */
#include "tools/omnictl/archread.h"
#include "common/buf.h"
#include "archiverd/archive.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#define READ_CHUNK (1 << 20)

typedef struct {
    char *path; //  "<kind dir>/<file>"
    char date[11];
    long segment; //  0.. for .zst segments, LONG_MAX for the live .jsonl
    bool zst;
    uint64_t size;
} s_file_t;

struct _archread_t {
    char *dir;
    s_file_t *files;
    size_t nfiles, cap, current; //  current: index + 1 of the file being read
    FILE *in;
    ZSTD_DStream *zds;
    bool zst_mid_frame; //  the last decompression left a frame unfinished
    uint8_t *raw;       //  bytes read from the file
    size_t raw_size, raw_at;
    char *text; //  decompressed (or plain) bytes not yet split
    size_t text_size, text_at, text_cap;
    char *line; //  a line that crossed a chunk boundary
    size_t line_size, line_cap;
    uint64_t line_no, skip_to; //  skip_to: first line to return in the current file
    uint64_t total, consumed, bad;
    bool eof;
    bool quiet;
};

static int
s_file_cmp (const void *a_, const void *b_)
{
    const s_file_t *a = a_, *b = b_;
    const char *sa = strchr (a->path, '/'), *sb = strchr (b->path, '/');
    int c = strncmp (a->path, b->path,
                     (size_t) (sa - a->path) > (size_t) (sb - b->path) ? (size_t) (sa - a->path)
                                                                       : (size_t) (sb - b->path));
    if (c)
        return c;
    c = strcmp (a->date, b->date);
    if (c)
        return c;
    return a->segment < b->segment ? -1 : a->segment > b->segment;
}

//  "<date>.jsonl", "<date>.jsonl.zst", "<date>.<N>.jsonl.zst"; else false.
static bool
s_parse_name (const char *name, s_file_t *file)
{
    if (strlen (name) < 16 || name[4] != '-' || name[7] != '-' || name[10] != '.')
        return false;
    memcpy (file->date, name, 10);
    file->date[10] = 0;
    const char *rest = name + 11;
    if (strcmp (rest, "jsonl") == 0) {
        file->segment = LONG_MAX;
        file->zst = false;
        return true;
    }
    file->zst = true;
    if (strcmp (rest, "jsonl.zst") == 0) {
        file->segment = 0;
        return true;
    }
    char *end;
    long n = strtol (rest, &end, 10);
    if (end == rest || n < 1 || strcmp (end, ".jsonl.zst") != 0)
        return false;
    file->segment = n;
    return true;
}

static bool
s_kind_wanted (const char *dirname, const archread_filter_t *filter)
{
    if (!filter || !filter->kinds || !filter->kinds[0])
        return true;
    for (const char *const *k = filter->kinds; *k; k++) {
        char dir[PATH_MAX];
        archive_kind_dir (*k, strlen (*k), dir, sizeof dir);
        if (strcmp (dir, dirname) == 0)
            return true;
    }
    return false;
}

//  An archive file `name` of the kind directory `sub`, whose name in the
//  archive is `kind` (its first `kind_len` bytes) / `name`: its size and
//  that path into `file`. False when it is not a regular file.
static bool
s_file_found (s_file_t *file, const char *sub, const char *kind, int kind_len, const char *name)
{
    char full[PATH_MAX * 3];
    snprintf (full, sizeof full, "%s/%s", sub, name);
    struct stat st;
    if (stat (full, &st) || !S_ISREG (st.st_mode))
        return false;
    file->size = (uint64_t) st.st_size;
    size_t len = (size_t) kind_len + strlen (name) + 2;
    file->path = malloc (len);
    assert (file->path);
    snprintf (file->path, len, "%.*s/%s", kind_len, kind, name);
    return true;
}

archread_t *
archread_new (const char *dir, const archread_filter_t *filter, char *error, size_t error_size)
{
    DIR *top = opendir (dir);
    if (!top) {
        snprintf (error, error_size, "archive %s: %s", dir, strerror (errno));
        return NULL;
    }
    archread_t *self = calloc (1, sizeof *self);
    assert (self);
    self->dir = strdup (dir);
    char since[11] = "0000-00-00", until[11] = "9999-99-99";
    if (filter && filter->since_ns != INT64_MIN)
        archive_date (filter->since_ns, since);
    if (filter && filter->until_ns != INT64_MAX)
        archive_date (filter->until_ns, until);
    struct dirent *kind;
    while ((kind = readdir (top))) {
        if (kind->d_name[0] == '.' || !s_kind_wanted (kind->d_name, filter))
            continue;
        char sub[PATH_MAX];
        snprintf (sub, sizeof sub, "%s/%s", dir, kind->d_name);
        DIR *d = opendir (sub);
        if (!d)
            continue; //  not a directory
        struct dirent *entry;
        while ((entry = readdir (d))) {
            s_file_t file = {0};
            if (entry->d_name[0] == '.' || !s_parse_name (entry->d_name, &file))
                continue;
            if (strcmp (file.date, since) < 0 || strcmp (file.date, until) > 0)
                continue;
            if (!s_file_found (&file, sub, kind->d_name, (int) strlen (kind->d_name),
                               entry->d_name))
                continue;
            *omni_array_push (self->files, self->nfiles, self->cap) = file;
            self->total += file.size;
        }
        closedir (d);
    }
    closedir (top);
    if (self->nfiles)
        qsort (self->files, self->nfiles, sizeof *self->files, s_file_cmp);
    self->raw = malloc (READ_CHUNK);
    self->text_cap = ZSTD_DStreamOutSize () > READ_CHUNK ? ZSTD_DStreamOutSize () : READ_CHUNK;
    self->text = malloc (self->text_cap);
    self->zds = ZSTD_createDStream ();
    assert (self->raw && self->text && self->zds);
    return self;
}

void
archread_destroy (archread_t **self_p)
{
    archread_t *self = *self_p;
    if (!self)
        return;
    if (self->in)
        fclose (self->in);
    for (size_t i = 0; i < self->nfiles; i++)
        free (self->files[i].path);
    free (self->files);
    ZSTD_freeDStream (self->zds);
    free (self->raw);
    free (self->text);
    free (self->line);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

static void
s_report (archread_t *self, uint64_t line, const char *why)
{
    if (!self->quiet)
        fprintf (stderr, "%s/%s:%" PRIu64 ": %s\n", self->dir, archread_path (self), line, why);
    self->bad++;
}

static void
s_close_file (archread_t *self)
{
    if (self->in) {
        fclose (self->in);
        self->in = NULL;
    }
}

//  The live file at `at` was compressed after the listing: archiverd made
//  it the date's newest segment, which the listing does not have. Those
//  segments are inserted next, so that its lines are read all the same.
static void
s_add_new_segments (archread_t *self, size_t at)
{
    const s_file_t *gone = &self->files[at];
    const char *slash = strchr (gone->path, '/');
    long last = -1;
    for (size_t i = 0; i < self->nfiles; i++)
        if (self->files[i].zst && strcmp (self->files[i].date, gone->date) == 0 &&
            strncmp (self->files[i].path, gone->path, (size_t) (slash - gone->path) + 1) == 0 &&
            self->files[i].segment > last)
            last = self->files[i].segment;
    char sub[PATH_MAX * 2];
    snprintf (sub, sizeof sub, "%s/%.*s", self->dir, (int) (slash - gone->path), gone->path);
    DIR *d = opendir (sub);
    if (!d)
        return;
    struct dirent *entry;
    while ((entry = readdir (d))) {
        s_file_t file = {0};
        if (!s_parse_name (entry->d_name, &file) || !file.zst || file.segment <= last ||
            strcmp (file.date, self->files[at].date) != 0)
            continue;
        if (!s_file_found (&file, sub, self->files[at].path, (int) (slash - self->files[at].path),
                           entry->d_name))
            continue;
        omni_array_reserve (self->files, self->cap, self->nfiles + 1);
        //  In segment order, right after the file that is gone
        size_t i = at + 1;
        while (i < self->nfiles && self->files[i].zst &&
               strcmp (self->files[i].date, file.date) == 0 &&
               self->files[i].segment < file.segment && s_file_cmp (&self->files[i], &file) < 0)
            i++;
        memmove (self->files + i + 1, self->files + i, (self->nfiles - i) * sizeof *self->files);
        self->files[i] = file;
        self->nfiles++;
        self->total += file.size;
    }
    closedir (d);
}

//  Opens the next file; false at the end of the archive.
static bool
s_open_next (archread_t *self)
{
    s_close_file (self);
    while (self->current < self->nfiles) {
        s_file_t *file = &self->files[self->current++];
        char full[PATH_MAX * 2];
        snprintf (full, sizeof full, "%s/%s", self->dir, file->path);
        self->in = fopen (full, "rb");
        self->line_no = 0;
        self->line_size = 0;
        self->raw_size = self->raw_at = 0;
        self->text_size = self->text_at = 0;
        self->eof = false;
        self->zst_mid_frame = false;
        if (file->zst)
            ZSTD_initDStream (self->zds);
        if (self->in)
            return true;
        int err = errno;
        self->consumed += file->size;
        if (err == ENOENT && !file->zst)
            s_add_new_segments (self, self->current - 1);
        else if (err != ENOENT) //  dropped since the listing: gone
            s_report (self, 0, strerror (err));
    }
    return false;
}

//  Refills `text` from the file; false at the end of the file (or on damage,
//  reported, the rest of the file skipped).
static bool
s_fill (archread_t *self)
{
    s_file_t *file = &self->files[self->current - 1];
    self->text_size = self->text_at = 0;
    while (self->text_size == 0) {
        if (self->raw_at == self->raw_size) {
            if (self->eof)
                break;
            self->raw_size = fread (self->raw, 1, READ_CHUNK, self->in);
            self->raw_at = 0;
            self->consumed += self->raw_size;
            if (self->raw_size < READ_CHUNK)
                self->eof = true;
            if (self->raw_size == 0)
                break;
        }
        if (!file->zst) {
            memcpy (self->text, self->raw, self->raw_size);
            self->text_size = self->raw_size;
            self->raw_at = self->raw_size;
            break;
        }
        ZSTD_inBuffer in = {self->raw, self->raw_size, self->raw_at};
        ZSTD_outBuffer out = {self->text, self->text_cap, 0};
        size_t rc = ZSTD_decompressStream (self->zds, &out, &in);
        self->raw_at = in.pos;
        self->text_size = out.pos;
        if (ZSTD_isError (rc)) {
            char why[160];
            snprintf (why, sizeof why,
                      "zstd data damaged after this line (%s): rest of the file skipped",
                      ZSTD_getErrorName (rc));
            self->text_size = 0;
            s_report (self, self->line_no, why);
            self->zst_mid_frame = false;
            self->eof = true;
            self->raw_at = self->raw_size;
            return false;
        }
        self->zst_mid_frame = rc != 0;
    }
    if (self->text_size == 0 && file->zst && self->zst_mid_frame) {
        s_report (self, self->line_no,
                  "zstd data cut short after this line: rest of the file lost");
        self->zst_mid_frame = false;
    }
    return self->text_size > 0;
}

static void
s_line_append (archread_t *self, const char *data, size_t len)
{
    //  An array of bytes, not an omni_buf: the line is handed out and its
    //  size reset while the caller reads it, which a NUL would overwrite
    omni_array_reserve (self->line, self->line_cap, self->line_size + len);
    memcpy (self->line + self->line_size, data, len);
    self->line_size += len;
}

int
archread_next (archread_t *self, const char **line, size_t *len)
{
    while (true) {
        if (!self->in && !s_open_next (self))
            return 0;
        if (self->text_at == self->text_size && !s_fill (self)) {
            if (self->line_size) {
                self->line_no++;
                s_report (self, self->line_no, "last line cut short (no newline): skipped");
                self->line_size = 0;
            }
            s_close_file (self);
            self->skip_to = 0;
            continue;
        }
        const char *start = self->text + self->text_at;
        size_t avail = self->text_size - self->text_at;
        const char *nl = memchr (start, '\n', avail);
        if (!nl) {
            s_line_append (self, start, avail);
            self->text_at = self->text_size;
            continue;
        }
        size_t n = (size_t) (nl - start);
        self->text_at += n + 1;
        self->line_no++;
        if (self->line_no < self->skip_to) {
            self->line_size = 0;
            continue;
        }
        if (self->line_size) {
            s_line_append (self, start, n);
            *line = self->line;
            *len = self->line_size;
            self->line_size = 0;
        } else {
            *line = start;
            *len = n;
        }
        if (*len == 0) {
            s_report (self, self->line_no, "empty line: skipped");
            continue;
        }
        return 1;
    }
}

const char *
archread_path (archread_t *self)
{
    return self->current ? self->files[self->current - 1].path : "";
}

uint64_t
archread_line (archread_t *self)
{
    return self->line_no;
}

void
archread_seek (archread_t *self, const char *path, uint64_t line)
{
    s_close_file (self);
    s_file_t key = {0};
    key.path = (char *) path;
    const char *slash = strrchr (path, '/');
    if (!slash || !s_parse_name (slash + 1, &key)) {
        self->current = 0;
        return;
    }
    size_t i = 0;
    while (i < self->nfiles && s_file_cmp (&self->files[i], &key) < 0)
        self->consumed += self->files[i++].size;
    self->current = i;
    self->skip_to = i < self->nfiles && strcmp (self->files[i].path, path) == 0 ? line : 0;
    const s_file_t *before = i > 0 ? &self->files[i - 1] : NULL;
    size_t kind_len = (size_t) (slash - path) + 1;
    if (!self->skip_to && key.segment == LONG_MAX && before && before->zst &&
        strcmp (before->date, key.date) == 0 && strncmp (before->path, path, kind_len) == 0) {
        //  The live file was compressed since: archiverd made it the date's
        //  newest segment, the same lines in the same order
        self->current = i - 1;
        self->consumed -= before->size;
        self->skip_to = line;
    }
}

void
archread_bad (archread_t *self, const char *why)
{
    s_report (self, self->line_no, why);
}

uint64_t
archread_bad_count (archread_t *self)
{
    return self->bad;
}

void
archread_quiet (archread_t *self, bool quiet)
{
    self->quiet = quiet;
}

uint64_t
archread_total_bytes (archread_t *self)
{
    return self->total;
}

uint64_t
archread_read_bytes (archread_t *self)
{
    return self->consumed;
}

size_t
archread_files (archread_t *self)
{
    return self->nfiles;
}

static bool
s_listed (const char *const *list, const char *value)
{
    if (!list || !list[0])
        return true;
    for (; *list; list++)
        if (value && strcmp (*list, value) == 0)
            return true;
    return false;
}

bool
archread_match (const archread_filter_t *filter, const char *kind, const char *src, int64_t ts)
{
    return !filter || (s_listed (filter->kinds, kind) && s_listed (filter->sources, src) &&
                       ts >= filter->since_ns && ts < filter->until_ns);
}

int
archread_parse_time (const char *text, int64_t *ns)
{
    struct tm tm = {0};
    const char *end = strptime (text, "%Y-%m-%d", &tm);
    if (end && *end == 'T')
        end = strptime (end + 1, "%H:%M:%S", &tm);
    if (end && *end == 'Z')
        end++;
    if (!end || *end)
        return -1;
    time_t t = timegm (&tm);
    *ns = (int64_t) t * 1000000000LL;
    return 0;
}

//  ---------------------------------------------------------------------------

#include "testsupport/selftest.h"

static void
s_test_write (const char *root, const char *path, const void *data, size_t size, bool zst)
{
    char full[PATH_MAX];
    snprintf (full, sizeof full, "%s/%s", root, path);
    char *slash = strrchr (full, '/');
    *slash = 0;
    mkdir (full, 0755);
    *slash = '/';
    FILE *f = fopen (full, "wb");
    assert (f);
    if (zst) {
        size_t cap = ZSTD_compressBound (size);
        void *out = malloc (cap);
        ZSTD_CCtx *cctx = ZSTD_createCCtx ();
        ZSTD_CCtx_setParameter (cctx, ZSTD_c_checksumFlag, 1);
        size_t n = ZSTD_compress2 (cctx, out, cap, data, size);
        ZSTD_freeCCtx (cctx);
        assert (!ZSTD_isError (n));
        fwrite (out, 1, n, f);
        free (out);
    } else
        fwrite (data, 1, size, f);
    fclose (f);
}

static size_t
s_test_all (archread_t *r, char *out, size_t size)
{
    const char *line;
    size_t len, n = 0, used = 0;
    while (archread_next (r, &line, &len) == 1) {
        used += (size_t) snprintf (out + used, size - used, "%s:%" PRIu64 ":%.*s|",
                                   archread_path (r), archread_line (r), (int) len, line);
        n++;
    }
    return n;
}

void
archread_test (bool verbose)
{
    (void) verbose;
    char *tmp = selftest_tmpdir ("archread-test");
    char error[256], out[4096];
    s_test_write (tmp, "metric/2023-11-14.jsonl", "a\nb\n", 4, false);
    s_test_write (tmp, "metric/2023-11-13.jsonl.zst", "z1\nz2\n", 6, true);
    s_test_write (tmp, "metric/2023-11-14.jsonl.zst", "y\n", 2, true);
    s_test_write (tmp, "metric/2023-11-14.2.jsonl.zst", "w\n", 2, true);
    s_test_write (tmp, "git.commit/2023-11-15.jsonl", "c\ncut", 5, false);
    s_test_write (tmp, "git.commit/2023-11-16.jsonl.tmp", "no\n", 3, false);
    //  A zstd file cut in the middle, and one damaged.
    //  Over one zstd block (128 KiB), hard to compress: several blocks.
    size_t big_size = 400000;
    char *big = malloc (big_size);
    uint32_t seed = 7;
    for (size_t i = 0; i < big_size; i++) {
        seed = seed * 1103515245 + 12345;
        big[i] = i % 50 == 49 ? '\n' : (char) ('a' + (seed >> 16) % 26);
    }
    s_test_write (tmp, "x.a/2023-01-01.jsonl.zst", big, big_size, true);
    char full[PATH_MAX];
    snprintf (full, sizeof full, "%s/x.a/2023-01-01.jsonl.zst", tmp);
    struct stat st;
    assert (stat (full, &st) == 0);
    assert (truncate (full, st.st_size - 8) == 0);

    archread_t *r = archread_new (tmp, NULL, error, sizeof error);
    assert (r && archread_files (r) == 6);
    static char all[1 << 20];
    size_t n = s_test_all (r, all, sizeof all);
    //  Order: kind, date, segments before the live file.
    const char *expect = "git.commit/2023-11-15.jsonl:1:c|"
                         "metric/2023-11-13.jsonl.zst:1:z1|metric/2023-11-13.jsonl.zst:2:z2|"
                         "metric/2023-11-14.jsonl.zst:1:y|metric/2023-11-14.2.jsonl.zst:1:w|"
                         "metric/2023-11-14.jsonl:1:a|metric/2023-11-14.jsonl:2:b|";
    if (strncmp (all, expect, strlen (expect)))
        fprintf (stderr, "%.400s\n", all);
    assert (strncmp (all, expect, strlen (expect)) == 0);
    //  The cut zstd file: its whole lines, then a report of the cut and of
    //  the line it cut (and one for the cut plain file).
    assert (n > 1000 && n < 8000 + 7 && archread_bad_count (r) == 3);
    assert (archread_read_bytes (r) == archread_total_bytes (r));
    archread_destroy (&r);

    //  Filters by kind and date; a seek into the middle of a file.
    const char *kinds[] = {"metric", NULL};
    archread_filter_t filter = {kinds, NULL, 1699920000LL * 1000000000LL, INT64_MAX};
    int64_t ns;
    assert (archread_parse_time ("2023-11-14", &ns) == 0 && ns == filter.since_ns);
    assert (archread_parse_time ("2023-11-14T00:00:01Z", &ns) == 0 &&
            ns == filter.since_ns + 1000000000LL);
    assert (archread_parse_time ("yesterday", &ns) == -1);
    assert (archread_match (&filter, "metric", "s", filter.since_ns));
    assert (!archread_match (&filter, "metric", "s", filter.since_ns - 1));
    assert (!archread_match (&filter, "git.commit", "s", filter.since_ns));
    r = archread_new (tmp, &filter, error, sizeof error);
    assert (r && archread_files (r) == 3);
    archread_seek (r, "metric/2023-11-14.jsonl", 2);
    s_test_all (r, out, sizeof out);
    assert (strcmp (out, "metric/2023-11-14.jsonl:2:b|") == 0);
    //  A segment gone since: the next one, whole.
    archread_destroy (&r);
    r = archread_new (tmp, &filter, error, sizeof error);
    archread_seek (r, "metric/2023-11-14.1.jsonl.zst", 5);
    s_test_all (r, out, sizeof out);
    assert (strcmp (out, "metric/2023-11-14.2.jsonl.zst:1:w|metric/2023-11-14.jsonl:1:a|"
                         "metric/2023-11-14.jsonl:2:b|") == 0);
    archread_destroy (&r);

    //  The live file compressed after the listing (archiverd's next
    //  segment): its lines are read from the segment.
    r = archread_new (tmp, &filter, error, sizeof error);
    s_test_write (tmp, "metric/2023-11-14.3.jsonl.zst", "a\nb\n", 4, true);
    snprintf (full, sizeof full, "%s/metric/2023-11-14.jsonl", tmp);
    assert (unlink (full) == 0);
    s_test_all (r, out, sizeof out);
    assert (strcmp (out,
                    "metric/2023-11-14.jsonl.zst:1:y|metric/2023-11-14.2.jsonl.zst:1:w|"
                    "metric/2023-11-14.3.jsonl.zst:1:a|metric/2023-11-14.3.jsonl.zst:2:b|") == 0);
    archread_destroy (&r);
    //  A resume point in a live file compressed since: the same line of the
    //  segment it became.
    r = archread_new (tmp, &filter, error, sizeof error);
    archread_seek (r, "metric/2023-11-14.jsonl", 2);
    s_test_all (r, out, sizeof out);
    assert (strcmp (out, "metric/2023-11-14.3.jsonl.zst:2:b|") == 0);
    archread_destroy (&r);
    snprintf (full, sizeof full, "%s/x.a/2023-01-01.jsonl.zst", tmp);

    //  Corrupt bytes inside a zstd frame: reported, the rest of the file skipped.
    s_test_write (tmp, "x.a/2023-01-01.jsonl.zst", big, big_size, true);
    free (big);
    FILE *f = fopen (full, "r+b");
    assert (f);
    fseek (f, 20, SEEK_SET);
    fwrite ("\xff\xff\xff\xff\xff\xff", 1, 6, f);
    fclose (f);
    const char *only[] = {"x.a", NULL};
    archread_filter_t x = {only, NULL, INT64_MIN, INT64_MAX};
    r = archread_new (tmp, &x, error, sizeof error);
    s_test_all (r, all, sizeof all);
    assert (archread_bad_count (r) >= 1);
    archread_destroy (&r);

    assert (archread_new ("/nonexistent-archive", NULL, error, sizeof error) == NULL);
    assert (strstr (error, "/nonexistent-archive"));
    selftest_rmtree (tmp);
    free (tmp);
}
