/*  archive: JSON Lines files, exactly once per record id.

    Why a state store. ingestd delivers at least once: a batch whose ACK was
    lost (archiverd killed after writing, ingestd restarted before reading
    the ACK) comes again, and collectors re-collect what they sent before.
    An append-only file cannot tell whether a line is already in it without
    reading it, so the ids already archived live in LMDB, next to the
    length each file had when its last batch committed.

    Why the ids live in two levels ("recent" and a tree, in the same LMDB
    state): archive_ids.c.

    Why this order: write, fsync the files (and their directory when a file
    is new), then ONE LMDB transaction with the new ids and the new lengths,
    then return 0 so that the writer loop acknowledges. The transaction is
    the commit point of the whole batch: until it is durable, nothing says
    the records are archived and ingestd still holds them. A kill -9
    anywhere before it leaves bytes past a file's committed length (or a file
    the state does not know): their records were never acknowledged, will be
    delivered again, and would be archived twice if those bytes stayed. So at
    start-up every file is cut back to its committed length and unknown files
    are removed, before anything is read from ingestd. A kill -9 after the
    commit and before the ACK only makes ingestd deliver records whose ids
    are already in the set: they are skipped. Hence no line lost, none twice.
    A failed batch takes its ids back out of the memory set.

    Why pwrite at the committed length and rewrite everything on a retry: a
    failed batch (ENOSPC, EIO) may leave part of its bytes in a file, and
    after a failed fsync Linux may drop the dirty pages and report success
    to the next fsync. Writing the whole batch again from the committed
    length (after cutting the file back) re-dirties every byte the next
    fsync must cover, so a retry never trusts a failed attempt.

    Why two keys for a record of an immutable kind: its id, and its
    content key (omni_record_content_hash: the id and the body). An id found
    with its content key is the same record again, skipped; an id found
    without it is other content under an id already archived: a conflict,
    kept out of the archive and handed to the writer loop, which files it
    (the first stays). Keys are hashes, so both live in the same id set and
    tree at the cost of one more key a record. Custom kinds are keyed on
    their whole body, so their id says all: one key. A state from before
    format 3 holds ids without content keys: there, an id found without one
    gets it (the first content seen since is the one compared with).

    Why the store refuses an archive with .jsonl files and no state: the
    recovery deletes what the state does not know, and a lost or misplaced
    .state would otherwise make it delete the whole archive.                 */
#include "common/buf.h"
#include "archiverd/archive.h"
#include "archiverd/archive_ids.h"
#include "archiverd/coldfile.h"
#include "common/config.h"
#include "common/dirlock.h"

#include <openssl/evp.h>
#include "common/log.h"
#include "proto/mpjson.h"
#include "common/util.h"

#include <assert.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <lmdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATE_DIR          ".state"
#define STATE_FORMAT       3   //  1: ids in the tree only; 2: and "recent"; 3: and content keys
#define FD_CACHE_MAX       64  //  open files kept; the least recently used is closed
#define KIND_DIR_MAX       120 //  longer kinds are cut and get a hash suffix
#define BUF_KEEP_MAX       (8u << 20) //  a larger batch buffer is freed after the batch
#define NS_PER_DAY         (86400LL * 1000000000LL)
#define MAP_RETRIES        8
#define PARALLEL_MIN_LINES 1024 //  smaller batches are encoded by one thread

//  First LMDB map size; it doubles whenever a transaction fills it.
//  A variable so that the self-test can make the map fill quickly.
static size_t s_initial_map_size = 1ULL << 30;

typedef struct {
    char *path;         //  relative to the archive: "<kind dir>/<date>.jsonl"
    uint64_t committed; //  length recorded in the state store
    bool in_state;      //  the state store knows the file, so it exists on disk
    bool dirty;         //  may hold bytes past `committed` from a failed batch
    int fd;             //  -1 while closed
    uint64_t used;      //  LRU tick
    //  The batch being written
    size_t first, last;          //  record index + 1 of its first / last line (0 = none)
    size_t first_line, end_line; //  its lines in the batch's line order
    uint64_t pending;            //  bytes written past `committed`
    bool unsynced;               //  written and not yet fsynced
} s_file_t;

struct _archive_t {
    char *dir;
    omni_dirlock_t *lock; //  one process per archive
    MDB_env *env;
    MDB_dbi files, meta;
    size_t map_size;
    archive_ids_t *ids; //  "ids" and "recent"
    bool legacy_ids;    //  ids from before content keys (format < 3) may be in the set
    zhashx_t *by_path;  //  path -> s_file_t, every file of the archive
    s_file_t *open[FD_CACHE_MAX];
    size_t nopen;
    uint64_t tick;
    //  Batch scratch, reused
    s_file_t **touched;
    size_t ntouched, touched_cap;
    size_t *next;     //  per record: index + 1 of the next line of the same file
    bool *skip;       //  per record: already archived, or a conflict
    size_t *order;    //  record index of each line, files one after the other
    size_t *line_end; //  end of each line in the buffer of its half
    omni_buf_t head_buf;
    size_t next_cap;
    omni_buf_t buf;
    omni_metric_t *m_archived, *m_skipped, *m_bytes, *m_files, *m_learned;
    //  Cold storage and retention (archive_set_policy), by a thread of
    //  their own; `mutex` keeps them and a batch apart
    pthread_mutex_t mutex;
    int64_t compress_after_ns; //  <= 0: never
    int compress_level;
    zhashx_t *retain; //  kind directory ("*": any other) -> int64_t ns, absent: forever
    pthread_t maintainer;
    bool maintaining, stopping;
    int64_t interval_ms;
    pthread_mutex_t wake_mutex;
    pthread_cond_t wake;
    omni_metric_t *m_compressed, *m_compressed_in, *m_compressed_out, *m_dropped, *m_dropped_bytes;
};

static void
s_add (omni_metric_t *metric, uint64_t n)
{
    if (metric && n)
        omni_metric_add (metric, n);
}

static void
s_file_destroy (void **item_p)
{
    s_file_t *file = *item_p;
    if (file) {
        if (file->fd >= 0)
            close (file->fd);
        free (file->path);
        free (file);
        *item_p = NULL;
    }
}

static s_file_t *
s_file_new (archive_t *self, const char *path, uint64_t committed, bool in_state)
{
    s_file_t *file = calloc (1, sizeof *file);
    assert (file);
    file->path = strdup (path);
    file->committed = committed;
    file->in_state = in_state;
    file->fd = -1;
    zhashx_insert (self->by_path, path, file);
    if (self->m_files)
        omni_metric_set (self->m_files, (double) zhashx_size (self->by_path));
    return file;
}

//  snprintf for paths, which must never be used cut short. archive_new
//  refuses a directory so long that a file's path would not fit.
static void s_path (char *out, size_t size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_path (char *out, size_t size, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int n = vsnprintf (out, size, format, args);
    va_end (args);
    assert (n >= 0 && (size_t) n < size);
}

static void
s_full_path (archive_t *self, const char *path, char *out, size_t size)
{
    s_path (out, size, "%s/%s", self->dir, path);
}

//  Error text "<what> <path>: <strerror>" into `error`; returns -1.
static int
s_fail (char *error, size_t error_size, const char *what, const char *path, int err)
{
    if (error && error_size)
        snprintf (error, error_size, "%s %s: %s", what, path, strerror (err));
    return -1;
}

static int
s_mdb_fail (char *error, size_t error_size, const char *what, int rc)
{
    if (error && error_size)
        snprintf (error, error_size, "state %s: %s", what, mdb_strerror (rc));
    return -1;
}

//  ---------------------------------------------------------------------------
//  Names

size_t
archive_kind_dir (const char *kind, size_t len, char *out, size_t size)
{
    assert (size > 0);
    size_t limit = size - 1 < KIND_DIR_MAX ? size - 1 : KIND_DIR_MAX;
    bool cut = len > limit;
    //  A cut name keeps room for "-" and 16 hex digits, so that two long
    //  kinds with the same beginning stay apart.
    size_t keep = cut ? (limit > 17 ? limit - 17 : 0) : len;
    size_t n = 0;
    for (size_t i = 0; i < keep; i++) {
        char c = kind[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')
            out[n++] = c;
        else if (c >= 'A' && c <= 'Z')
            out[n++] = (char) (c - 'A' + 'a');
        else
            out[n++] = '_';
    }
    if (cut && limit > 17) {
        uint64_t hash = 14695981039346656037ULL; //  FNV-1a
        for (size_t i = 0; i < len; i++)
            hash = (hash ^ (uint8_t) kind[i]) * 1099511628211ULL;
        uint8_t bytes[8];
        omni_util_put_be (bytes, hash, 8);
        out[n++] = '-';
        omni_util_hex (bytes, 8, out + n);
        n += 16;
    }
    //  "", ".", ".." and hidden names (the state lives in ".state") never.
    if (n == 0 && size > 1)
        out[n++] = '_';
    else if (out[0] == '.')
        out[0] = '_';
    out[n] = 0;
    return n;
}

//  Days since 1970-01-01 (floor, for times before the epoch too).
static int64_t
s_day (int64_t ts_ns)
{
    int64_t day = ts_ns / NS_PER_DAY;
    return ts_ns % NS_PER_DAY < 0 ? day - 1 : day;
}

void
archive_date (int64_t ts_ns, char out[11])
{
    int64_t z = s_day (ts_ns);
    //  Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    //  int64 ns span the years 1677..2262: always four digits.
    out[0] = (char) ('0' + y / 1000 % 10);
    out[1] = (char) ('0' + y / 100 % 10);
    out[2] = (char) ('0' + y / 10 % 10);
    out[3] = (char) ('0' + y % 10);
    out[4] = '-';
    out[5] = (char) ('0' + m / 10);
    out[6] = (char) ('0' + m % 10);
    out[7] = '-';
    out[8] = (char) ('0' + d / 10);
    out[9] = (char) ('0' + d % 10);
    out[10] = 0;
}

static void
s_record_path (const omni_record_t *record, char *out, size_t size)
{
    char kind[KIND_DIR_MAX + 1], date[11];
    archive_kind_dir (record->kind.ptr, record->kind.len, kind, sizeof kind);
    archive_date (record->ts, date);
    s_path (out, size, "%s/%s.jsonl", kind, date);
}

//  ---------------------------------------------------------------------------
//  Open files

static int
s_sync (s_file_t *file, char *error, size_t error_size)
{
    if (file->unsynced) {
        if (fdatasync (file->fd))
            return s_fail (error, error_size, "fsync", file->path, errno);
        file->unsynced = false;
    }
    return 0;
}

static void
s_forget_fd (archive_t *self, s_file_t *file)
{
    close (file->fd);
    file->fd = -1;
    for (size_t i = 0; i < self->nopen; i++)
        if (self->open[i] == file) {
            self->open[i] = self->open[--self->nopen];
            break;
        }
}

static int
s_close (archive_t *self, s_file_t *file, char *error, size_t error_size)
{
    //  Closing never loses the fsync a written file still owes.
    int rc = s_sync (file, error, error_size);
    if (rc == 0)
        s_forget_fd (self, file);
    return rc;
}

//  Opens a file for this batch, cut back to its committed length if a
//  failed batch may have left bytes behind.
static int
s_open (archive_t *self, s_file_t *file, char *error, size_t error_size)
{
    file->used = ++self->tick;
    struct stat st;
    if (file->fd >= 0 && (fstat (file->fd, &st) || st.st_nlink == 0)) {
        //  Unlinked while open (retention?): lines written to it would be
        //  lost with it, so open it again by name.
        s_forget_fd (self, file);
    }
    if (file->fd < 0) {
        if (self->nopen == FD_CACHE_MAX) {
            s_file_t *lru = self->open[0];
            for (size_t i = 1; i < self->nopen; i++)
                if (self->open[i]->used < lru->used)
                    lru = self->open[i];
            if (s_close (self, lru, error, error_size))
                return -1;
        }
        char full[PATH_MAX];
        s_full_path (self, file->path, full, sizeof full);
        int fd = open (full, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno == ENOENT) {
            if (file->in_state) {
                //  Removed behind our back (retention?): what it held is gone
                //  and its records stay archived; start the file again.
                log_error ("archive.file_vanished", "path=%s committed=%" PRIu64, file->path,
                           file->committed);
                file->in_state = false;
                file->committed = 0;
            }
            char *slash = strrchr (full, '/');
            *slash = 0;
            int rc = omni_util_mkdirs (full);
            *slash = '/';
            if (rc)
                return s_fail (error, error_size, "mkdir for", file->path, errno);
            fd = open (full, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        }
        if (fd < 0)
            return s_fail (error, error_size, "open", file->path, errno);
        file->fd = fd;
        self->open[self->nopen++] = file;
    }
    //  A file the state does not know yet may only hold a failed batch.
    if (file->dirty || !file->in_state) {
        if (ftruncate (file->fd, (off_t) file->committed))
            return s_fail (error, error_size, "truncate", file->path, errno);
        file->dirty = false;
    }
    return 0;
}

static int
s_pwrite_all (int fd, const char *data, size_t size, uint64_t offset)
{
    while (size > 0) {
        ssize_t n = pwrite (fd, data, size, (off_t) offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        size -= (size_t) n;
        offset += (uint64_t) n;
    }
    return 0;
}

static int
s_fsync_dir_of (archive_t *self, const char *path, char *error, size_t error_size)
{
    char full[PATH_MAX];
    s_full_path (self, path, full, sizeof full);
    *strrchr (full, '/') = 0;
    if (omni_util_fsync_dir (full))
        return s_fail (error, error_size, "fsync directory of", path, errno);
    //  The kind directory may be new as well.
    if (omni_util_fsync_dir (self->dir))
        return s_fail (error, error_size, "fsync directory", self->dir, errno);
    return 0;
}

//  ---------------------------------------------------------------------------
//  The batch

static s_file_t *
s_file_for (archive_t *self, const omni_record_t *record)
{
    char path[KIND_DIR_MAX + 32];
    s_record_path (record, path, sizeof path);
    s_file_t *file = zhashx_lookup (self->by_path, path);
    return file ? file : s_file_new (self, path, 0, false);
}

//  Ends the batch; on failure, files go back to their committed length
//  now if they can, else before their next write.
static void
s_end_batch (archive_t *self, bool committed)
{
    for (size_t t = 0; t < self->ntouched; t++) {
        s_file_t *file = self->touched[t];
        if (committed) {
            file->committed += file->pending;
            file->in_state = true;
        } else if (file->fd >= 0 && ftruncate (file->fd, (off_t) file->committed) == 0)
            file->dirty = false;
        else
            file->dirty = true;
        file->first = file->last = 0;
        file->pending = 0;
    }
    self->ntouched = 0;
    if (self->buf.capacity > BUF_KEEP_MAX)
        omni_buf_release (&self->buf);
    if (self->head_buf.capacity > BUF_KEEP_MAX)
        omni_buf_release (&self->head_buf);
}

//  Id order, and batch order among equal ids: the first occurrence wins.
//  The archive is a history: for kinds whose state changes (a branch that
//  moves, a build that finishes) every distinct state is a line of its own,
//  so their dedup key is a hash of the id and the body; a state seen again
//  (re-collection, redelivery) is still skipped.
static void
s_archive_key (const omni_record_t *record, uint8_t key[RECORD_ID_SIZE])
{
    if (!record->spec || !record->spec->mutable_state)
        memcpy (key, record->id, RECORD_ID_SIZE);
    else
        omni_record_content_hash (record, key);
}

//  Whether the content of a record of this kind is checked against what an
//  id already archived holds: immutable kinds with a natural key.
static bool
s_checks_content (const omni_record_t *record)
{
    return record->spec && !record->spec->mutable_state && record->spec->key[0];
}

//  Lines [begin, end) of a batch as JSON into `buf`, each line's end
//  offset into line_end. A thread's work: it touches nothing shared.
typedef struct {
    const omni_record_t *records;
    const size_t *order;
    size_t *line_end;
    size_t begin, end;
    omni_buf_t *buf;
} s_encode_t;

static void *
s_encode (void *arg)
{
    s_encode_t *job = arg;
    omni_buf_reset (job->buf);
    for (size_t line = job->begin; line < job->end; line++) {
        omni_mpjson_record (job->buf, &job->records[job->order[line]]);
        omni_buf_append (job->buf, "\n", 1);
        job->line_end[line] = job->buf->size;
    }
    return NULL;
}

//  One attempt at a batch. Sets *map_full when LMDB needs a bigger map.
static int
s_write_batch (archive_t *self, const omni_record_t *records, size_t count, uint8_t *conflicts,
               bool *map_full, char *error, size_t error_size)
{
    *map_full = false;
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc)
        return s_mdb_fail (error, error_size, "begin", rc);
    if (omni_array_grow_cap (&self->next_cap, count)) {
        omni_array_resize (self->next, self->next_cap);
        omni_array_resize (self->skip, self->next_cap);
        omni_array_resize (self->order, self->next_cap);
        omni_array_resize (self->line_end, self->next_cap);
    }
    //  Ids go into the memory set as they are seen, so that a duplicate
    //  inside the batch is skipped too; a failure takes them out again.
    uint64_t skipped = 0, archived = 0, bytes = 0, learned = 0;
    int64_t t0 = zclock_usecs (), t1, t2, t3;
    //  Two keys a record at most: id and content key
    archive_ids_begin (self->ids, 2 * count);
    for (size_t i = 0; i < count; i++) {
        uint8_t key[RECORD_ID_SIZE], content[RECORD_ID_SIZE];
        s_archive_key (&records[i], key);
        bool found;
        if ((rc = archive_ids_find (self->ids, txn, key, &found)))
            goto mdb_failed;
        self->skip[i] = found;
        if (!s_checks_content (&records[i])) {
            if (found)
                skipped++;
            else
                archive_ids_add (self->ids, key);
            continue;
        }
        omni_record_content_hash (&records[i], content);
        bool same = false;
        if (found && (rc = archive_ids_find (self->ids, txn, content, &same)))
            goto mdb_failed;
        if (!found) { //  a new record: its id and its content key
            archive_ids_add (self->ids, key);
            archive_ids_add (self->ids, content);
        } else if (same)
            skipped++;
        else if (self->legacy_ids) { //  archived before content keys: learn it
            archive_ids_add (self->ids, content);
            learned++;
        } else if (conflicts)
            conflicts[i] = 1;
    }
    s_file_t *file = NULL;
    const omni_record_t *previous = NULL;
    for (size_t i = 0; i < count; i++) {
        const omni_record_t *record = &records[i];
        if (self->skip[i])
            continue;
        //  Batches are mostly of one kind and day: reuse the last lookup.
        if (!previous || previous->kind.len != record->kind.len ||
            memcmp (previous->kind.ptr, record->kind.ptr, record->kind.len) != 0 ||
            s_day (previous->ts) != s_day (record->ts))
            file = s_file_for (self, record);
        previous = record;
        if (file->first == 0) {
            *omni_array_push (self->touched, self->ntouched, self->touched_cap) = file;
            file->first = i + 1;
        } else
            self->next[file->last - 1] = i + 1;
        file->last = i + 1;
        self->next[i] = 0;
        archived++;
    }
    t1 = zclock_usecs ();
    //  Lines in file order, then encoded, in two halves at once when the
    //  batch is large: JSON is most of the archive's work.
    size_t nlines = 0;
    for (size_t t = 0; t < self->ntouched; t++) {
        file = self->touched[t];
        file->first_line = nlines;
        for (size_t i = file->first; i; i = self->next[i - 1])
            self->order[nlines++] = i - 1;
        file->end_line = nlines;
    }
    s_encode_t head = {records, self->order, self->line_end, 0, 0, &self->head_buf};
    s_encode_t tail = {records, self->order, self->line_end, 0, nlines, &self->buf};
    pthread_t worker;
    bool parallel = nlines >= PARALLEL_MIN_LINES;
    if (parallel) {
        head.end = tail.begin = nlines / 2;
        parallel = pthread_create (&worker, NULL, s_encode, &head) == 0;
        if (!parallel)
            tail.begin = 0;
    }
    s_encode (&tail);
    if (parallel)
        pthread_join (worker, NULL);
    //  One write per file, then one fsync per file: the kernel can write
    //  back one file while we fill the next.
    for (size_t t = 0; t < self->ntouched; t++) {
        file = self->touched[t];
        if (s_open (self, file, error, error_size))
            goto failed;
        file->pending = 0;
        const s_encode_t *halves[] = {&head, &tail};
        for (int h = 0; h < 2; h++) {
            const s_encode_t *half = halves[h];
            size_t from = file->first_line > half->begin ? file->first_line : half->begin;
            size_t to = file->end_line < half->end ? file->end_line : half->end;
            if (from >= to)
                continue;
            size_t start = from == half->begin ? 0 : self->line_end[from - 1];
            size_t length = self->line_end[to - 1] - start;
            if (s_pwrite_all (file->fd, half->buf->data + start, length,
                              file->committed + file->pending)) {
                s_fail (error, error_size, "write", file->path, errno);
                goto failed;
            }
            file->pending += length;
        }
        file->unsynced = true;
        bytes += file->pending;
    }
    t2 = zclock_usecs ();
    for (size_t t = 0; t < self->ntouched; t++) {
        file = self->touched[t];
        if (file->fd >= 0 && s_sync (file, error, error_size))
            goto failed;
        //  A file new to the state may have been created by this batch or by
        //  a failed one: either way its name is made durable now.
        if (!file->in_state && s_fsync_dir_of (self, file->path, error, error_size))
            goto failed;
        uint8_t length[8];
        omni_util_put_be (length, file->committed + file->pending, 8);
        MDB_val k = {strlen (file->path), file->path}, v = {8, length};
        if ((rc = mdb_put (txn, self->files, &k, &v, 0)))
            goto mdb_failed;
    }
    if ((rc = archive_ids_put (self->ids, txn)))
        goto mdb_failed;
    t3 = zclock_usecs ();
    rc = mdb_txn_commit (txn);
    txn = NULL;
    if (rc)
        goto mdb_failed;
    archive_ids_commit (self->ids);
    if (omni_log_enabled (LOGL_DEBUG))
        log_debug ("archive.batch",
                   "records=%zu archived=%" PRIu64 " skipped=%" PRIu64 " files=%zu bytes=%" PRIu64
                   " ids_us=%" PRId64 " write_us=%" PRId64 " sync_us=%" PRId64
                   " commit_us=%" PRId64,
                   count, archived, skipped, self->ntouched, bytes, t1 - t0, t2 - t1, t3 - t2,
                   zclock_usecs () - t3);
    s_end_batch (self, true);
    s_add (self->m_archived, archived);
    s_add (self->m_skipped, skipped);
    s_add (self->m_learned, learned);
    s_add (self->m_bytes, bytes);
    return 0;

mdb_failed:
    *map_full = rc == MDB_MAP_FULL;
    s_mdb_fail (error, error_size, "write", rc);
failed:
    if (txn)
        mdb_txn_abort (txn);
    archive_ids_abort (self->ids);
    s_end_batch (self, false);
    return -1;
}

//  The map is address space, not disk: doubling it is cheap.
static int
s_grow_map (archive_t *self, char *error, size_t error_size)
{
    size_t size = self->map_size * 2;
    int rc = mdb_env_set_mapsize (self->env, size);
    if (rc)
        return s_mdb_fail (error, error_size, "grow map", rc);
    log_info ("archive.map_grown", "from=%zu to=%zu", self->map_size, size);
    self->map_size = size;
    return 0;
}

//  For a merge (archive_ids), which fills the same map
static int
s_grow_ids_map (void *self)
{
    return s_grow_map (self, NULL, 0);
}

int
archive_write (void *self_, const omni_record_t *records, size_t count, uint8_t *conflicts,
               char *error, size_t error_size)
{
    archive_t *self = self_;
    if (count == 0)
        return 0;
    pthread_mutex_lock (&self->mutex);
    for (int attempt = 0;; attempt++) {
        bool map_full;
        if (conflicts)
            memset (conflicts, 0, count);
        if (s_write_batch (self, records, count, conflicts, &map_full, error, error_size) == 0)
            break;
        if (!map_full || attempt == MAP_RETRIES || s_grow_map (self, error, error_size)) {
            pthread_mutex_unlock (&self->mutex);
            return -1;
        }
    }
    archive_ids_maintain (self->ids);
    pthread_mutex_unlock (&self->mutex);
    return 0;
}

uint64_t
archive_id_count (archive_t *self)
{
    return archive_ids_count (self->ids);
}

uint64_t
archive_recent_id_count (archive_t *self)
{
    return archive_ids_recent_count (self->ids);
}

//  ---------------------------------------------------------------------------
//  Start-up recovery

static bool
s_ends_with (const char *text, const char *suffix)
{
    size_t n = strlen (text), m = strlen (suffix);
    return n >= m && strcmp (text + n - m, suffix) == 0;
}

//  Calls `visit` for every <dir>/<kind>/<name><suffix> regular file, with
//  its relative path and size. Hidden directories (the state) are skipped.
typedef int (s_visit_fn) (archive_t *self, const char *path, uint64_t size, void *arg);

static int
s_walk_suffix (archive_t *self, const char *suffix, s_visit_fn *visit, void *arg, char *error,
               size_t error_size)
{
    DIR *top = opendir (self->dir);
    if (!top)
        return s_fail (error, error_size, "open directory", self->dir, errno);
    int rc = 0;
    struct dirent *kind;
    while (rc == 0 && (kind = readdir (top))) {
        if (kind->d_name[0] == '.')
            continue;
        char sub[PATH_MAX];
        s_path (sub, sizeof sub, "%s/%s", self->dir, kind->d_name);
        struct stat st;
        if (stat (sub, &st) || !S_ISDIR (st.st_mode))
            continue;
        DIR *dir = opendir (sub);
        if (!dir) {
            rc = s_fail (error, error_size, "open directory", sub, errno);
            break;
        }
        struct dirent *entry;
        while (rc == 0 && (entry = readdir (dir))) {
            if (entry->d_name[0] == '.' || !s_ends_with (entry->d_name, suffix))
                continue;
            char path[PATH_MAX], full[PATH_MAX];
            if (strlen (kind->d_name) + strlen (entry->d_name) + 2 > sizeof path)
                continue;
            s_path (path, sizeof path, "%s/%s", kind->d_name, entry->d_name);
            s_full_path (self, path, full, sizeof full);
            if (lstat (full, &st) || !S_ISREG (st.st_mode))
                continue;
            rc = visit (self, path, (uint64_t) st.st_size, arg);
        }
        closedir (dir);
    }
    closedir (top);
    return rc;
}

static int
s_walk (archive_t *self, s_visit_fn *visit, void *arg, char *error, size_t error_size)
{
    return s_walk_suffix (self, ".jsonl", visit, arg, error, error_size);
}

typedef struct {
    size_t files, nonempty;
    char first[PATH_MAX];
} s_strays_t;

static int
s_count_stray (archive_t *self, const char *path, uint64_t size, void *arg)
{
    s_strays_t *strays = arg;
    if (!zhashx_lookup (self->by_path, path)) {
        if (strays->files++ == 0)
            snprintf (strays->first, sizeof strays->first, "%s", path);
        if (size > 0)
            strays->nonempty++;
    }
    return 0;
}

static int
s_remove_stray (archive_t *self, const char *path, uint64_t size, void *arg)
{
    (void) arg;
    if (zhashx_lookup (self->by_path, path))
        return 0;
    char full[PATH_MAX];
    s_full_path (self, path, full, sizeof full);
    if (unlink (full) && errno != ENOENT) {
        log_error ("archive.remove_failed", "path=%s error=\"%s\"", path, strerror (errno));
        return -1;
    }
    *strrchr (full, '/') = 0;
    omni_util_fsync_dir (full);
    log_info ("archive.removed_uncommitted", "path=%s bytes=%" PRIu64, path, size);
    return 0;
}

//  Offset just past the last '\n' before `size`, 0 if there is none.
static uint64_t
s_last_line_end (int fd, uint64_t size)
{
    char chunk[65536];
    uint64_t end = size;
    while (end > 0) {
        size_t n = end < sizeof chunk ? (size_t) end : sizeof chunk;
        if (pread (fd, chunk, n, (off_t) (end - n)) != (ssize_t) n)
            return 0;
        for (size_t i = n; i > 0; i--)
            if (chunk[i - 1] == '\n')
                return end - n + i;
        end -= n;
    }
    return 0;
}

//  Cuts one file of the state back to its committed length.
static int
s_recover_file (archive_t *self, MDB_txn *txn, s_file_t *file, uint64_t *truncated, char *error,
                size_t error_size)
{
    char full[PATH_MAX];
    s_full_path (self, file->path, full, sizeof full);
    int fd = open (full, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    MDB_val k = {strlen (file->path), file->path};
    if (fd < 0 && errno == ENOENT) {
        //  Removed by an operator (retention): its records stay archived.
        log_warn ("archive.file_missing", "path=%s committed=%" PRIu64, file->path,
                  file->committed);
        int rc = mdb_del (txn, self->files, &k, NULL);
        if (rc)
            return s_mdb_fail (error, error_size, "forget missing file", rc);
        zhashx_delete (self->by_path, file->path);
        return 0;
    }
    if (fd < 0)
        return s_fail (error, error_size, "open", full, errno);
    struct stat st;
    if (fstat (fd, &st)) {
        close (fd);
        return s_fail (error, error_size, "stat", full, errno);
    }
    uint64_t size = (uint64_t) st.st_size, keep = file->committed;
    if (size < keep) {
        //  Not a crash of ours: the file lost committed bytes. Keep whole
        //  lines so that the next line starts on a line of its own.
        keep = s_last_line_end (fd, size);
        log_error ("archive.file_short",
                   "path=%s committed=%" PRIu64 " size=%" PRIu64 " kept=%" PRIu64, file->path,
                   file->committed, size, keep);
        uint8_t length[8];
        omni_util_put_be (length, keep, 8);
        MDB_val v = {8, length};
        int rc = mdb_put (txn, self->files, &k, &v, 0);
        if (rc) {
            close (fd);
            return s_mdb_fail (error, error_size, "fix short file", rc);
        }
        file->committed = keep;
    }
    if (size != keep) {
        if (ftruncate (fd, (off_t) keep) || fdatasync (fd)) {
            int err = errno;
            close (fd);
            return s_fail (error, error_size, "truncate", full, err);
        }
        if (size > keep) {
            log_info ("archive.truncated", "path=%s committed=%" PRIu64 " dropped_bytes=%" PRIu64,
                      file->path, keep, size - keep);
            (*truncated)++;
        }
    }
    close (fd);
    return 0;
}

//  Segment number of a compressed file name: "<date>.jsonl.zst" 0,
//  "<date>.N.jsonl.zst" N; -1 for anything else.
static long
s_segment (const char *name)
{
    if (strlen (name) < 11 || name[10] != '.')
        return -1;
    const char *rest = name + 11;
    if (strcmp (rest, "jsonl.zst") == 0)
        return 0;
    char *end;
    long n = strtol (rest, &end, 10);
    return end != rest && n >= 1 && strcmp (end, ".jsonl.zst") == 0 ? n : -1;
}

//  The highest segment of `date` in a kind directory; -1 when it has none.
static long
s_last_segment (archive_t *self, const char *kind_dir, const char *date)
{
    char full[PATH_MAX];
    s_path (full, sizeof full, "%s/%s", self->dir, kind_dir);
    DIR *dir = opendir (full);
    if (!dir)
        return -1;
    long last = -1;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (strncmp (entry->d_name, date, 10) == 0) {
            long n = s_segment (entry->d_name);
            if (n > last)
                last = n;
        }
    closedir (dir);
    return last;
}

//  "<kind dir>/<date>.jsonl" into its two parts; false for other names.
static bool
s_split_path (const char *path, char *kind_dir, size_t size, char date[11])
{
    const char *slash = strchr (path, '/');
    if (!slash || (size_t) (slash - path) >= size || strlen (slash + 1) < 11)
        return false;
    memcpy (kind_dir, path, (size_t) (slash - path));
    kind_dir[slash - path] = 0;
    memcpy (date, slash + 1, 10);
    date[10] = 0;
    return true;
}

//  Whether the newest compressed segment of a plain file's date holds
//  exactly its committed bytes: then a compression had renamed its .zst
//  into place and was killed before it removed the plain file.
static bool
s_compressed_already (archive_t *self, s_file_t *file)
{
    char kind_dir[PATH_MAX], date[11], zst[PATH_MAX], plain[PATH_MAX];
    if (!s_split_path (file->path, kind_dir, sizeof kind_dir, date))
        return false;
    long last = s_last_segment (self, kind_dir, date);
    if (last < 0)
        return false;
    if (last == 0)
        s_path (zst, sizeof zst, "%s/%s/%s.jsonl.zst", self->dir, kind_dir, date);
    else
        s_path (zst, sizeof zst, "%s/%s/%s.%ld.jsonl.zst", self->dir, kind_dir, date, last);
    s_full_path (self, file->path, plain, sizeof plain);
    return coldfile_same (zst, plain, file->committed) == 1;
}

//  A compression killed before its rename leaves <name>.zst.tmp: its plain
//  file is whole and still in the state.
static int
s_remove_partial (archive_t *self, const char *path, uint64_t size, void *arg)
{
    (void) arg;
    char full[PATH_MAX];
    s_full_path (self, path, full, sizeof full);
    if (unlink (full) && errno != ENOENT)
        return s_fail (NULL, 0, "remove", path, errno);
    log_info ("archive.removed_partial_compression", "path=%s bytes=%" PRIu64, path, size);
    return 0;
}

static int
s_recover (archive_t *self, char *error, size_t error_size)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc)
        return s_mdb_fail (error, error_size, "begin", rc);
    if ((rc = mdb_dbi_open (txn, "files", MDB_CREATE, &self->files)) ||
        (rc = mdb_dbi_open (txn, "meta", MDB_CREATE, &self->meta))) {
        mdb_txn_abort (txn);
        return s_mdb_fail (error, error_size, "open databases", rc);
    }
    MDB_val k = {6, "format"}, v;
    bool fresh = mdb_get (txn, self->meta, &k, &v) == MDB_NOTFOUND;
    uint64_t format = fresh || v.mv_size != 8 ? 0 : omni_util_get_be (v.mv_data, 8);
    if (!fresh && (format < 1 || format > STATE_FORMAT)) {
        mdb_txn_abort (txn);
        snprintf (error, error_size, "state %s/" STATE_DIR ": unknown format", self->dir);
        return -1;
    }
    //  Load the committed length of every file.
    MDB_cursor *cursor;
    if ((rc = mdb_cursor_open (txn, self->files, &cursor))) {
        mdb_txn_abort (txn);
        return s_mdb_fail (error, error_size, "cursor", rc);
    }
    while ((rc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT)) == 0) {
        char path[PATH_MAX];
        if (k.mv_size >= sizeof path || v.mv_size != 8)
            continue;
        memcpy (path, k.mv_data, k.mv_size);
        path[k.mv_size] = 0;
        s_file_new (self, path, omni_util_get_be (v.mv_data, 8), true);
    }
    mdb_cursor_close (cursor);
    //  The ids, recent ones back into memory, and the tree's filter.
    if ((rc = archive_ids_open (self->ids, txn))) {
        mdb_txn_abort (txn);
        return s_mdb_fail (error, error_size, "read ids", rc);
    }

    s_strays_t strays = {0, 0, ""};
    if (s_walk (self, s_count_stray, &strays, error, error_size)) {
        mdb_txn_abort (txn);
        return -1;
    }
    if (fresh && strays.nonempty > 0) {
        mdb_txn_abort (txn);
        snprintf (error, error_size,
                  "%s holds %zu .jsonl files (e.g. %s) but no state in %s/" STATE_DIR
                  ": refusing to start, since recovery would delete them; move them "
                  "away or restore the state",
                  self->dir, strays.nonempty, strays.first, self->dir);
        return -1;
    }
    if (s_walk_suffix (self, ".jsonl.zst.tmp", s_remove_partial, NULL, error, error_size)) {
        mdb_txn_abort (txn);
        return -1;
    }
    uint64_t truncated = 0;
    zlistx_t *paths = zhashx_keys (self->by_path);
    for (const char *path = zlistx_first (paths); path; path = zlistx_next (paths)) {
        s_file_t *file = zhashx_lookup (self->by_path, path);
        if (s_compressed_already (self, file)) {
            //  Finish it: the state forgets the plain file, the strays'
            //  removal below deletes it
            MDB_val key = {strlen (path), (void *) path};
            if ((rc = mdb_del (txn, self->files, &key, NULL))) {
                zlistx_destroy (&paths);
                mdb_txn_abort (txn);
                return s_mdb_fail (error, error_size, "forget compressed file", rc);
            }
            log_info ("archive.compression_finished", "path=%s", path);
            zhashx_delete (self->by_path, path);
            strays.files++;
            continue;
        }
        if (s_recover_file (self, txn, file, &truncated, error, error_size)) {
            zlistx_destroy (&paths);
            mdb_txn_abort (txn);
            return -1;
        }
    }
    zlistx_destroy (&paths);
    if (strays.files && s_walk (self, s_remove_stray, NULL, error, error_size)) {
        snprintf (error, error_size, "cannot remove uncommitted files in %s", self->dir);
        mdb_txn_abort (txn);
        return -1;
    }
    //  Ids archived before content keys stay so for good
    k = (MDB_val){6, "legacy"};
    self->legacy_ids = (!fresh && format < 3) || mdb_get (txn, self->meta, &k, &v) == 0;
    if (format != STATE_FORMAT) {
        //  Format 1 is format 2 with "recent" empty, and 2 is 3 without
        //  content keys: marking it 3 keeps an older archiverd, which would
        //  not look for them, away from it.
        uint8_t bytes[8];
        omni_util_put_be (bytes, STATE_FORMAT, 8);
        k = (MDB_val){6, "format"};
        v = (MDB_val){8, bytes};
        if ((rc = mdb_put (txn, self->meta, &k, &v, 0)) ||
            (self->legacy_ids &&
             (rc = mdb_put (txn, self->meta, &(MDB_val){6, "legacy"}, &(MDB_val){1, "1"}, 0)))) {
            mdb_txn_abort (txn);
            return s_mdb_fail (error, error_size, "write format", rc);
        }
    }
    if ((rc = mdb_txn_commit (txn)))
        return s_mdb_fail (error, error_size, "commit", rc);
    log_info ("archive.open",
              "dir=%s files=%zu ids=%" PRIu64 " recent_ids=%zu truncated=%" PRIu64
              " removed=%zu new=%s",
              self->dir, zhashx_size (self->by_path), archive_ids_tree_count (self->ids),
              archive_ids_recent_count (self->ids), truncated, strays.files, fresh ? "yes" : "no");
    return 0;
}

//  ---------------------------------------------------------------------------
//  Cold storage and retention
//
//  Why this order for a compression: the .zst is written whole under a
//  name of its own (.tmp) and fsynced, renamed into place, its directory
//  fsynced; then the state forgets the plain file, which is removed last.
//  A kill -9 at any point leaves one whole copy at least: before the
//  rename, a .tmp that start-up removes; after it, a .zst and a plain file
//  the state still has, with the same bytes, which start-up sees (content
//  size, then every byte) and finishes; after the state's commit, a plain
//  file the state does not know, which start-up removes as ever. The ids
//  do not depend on files or offsets: nothing else changes. A record that
//  comes late for a compressed date starts a new plain <date>.jsonl, which
//  is compressed in its turn as the next segment, <date>.N.jsonl.zst.

static int s_kill_after = 0; //  test hook: SIGKILL after step N of a compression

static void
s_kill_point (int step)
{
    if (s_kill_after == step)
        raise (SIGKILL);
}

//  Days since the epoch of the "YYYY-MM-DD" a file name begins with.
static bool
s_name_day (const char *name, int64_t *day)
{
    if (strlen (name) < 11 || name[4] != '-' || name[7] != '-' || name[10] != '.')
        return false;
    char date[11];
    memcpy (date, name, 10);
    date[10] = 0;
    struct tm tm = {0};
    const char *end = strptime (date, "%Y-%m-%d", &tm);
    if (!end || *end)
        return false;
    *day = (int64_t) timegm (&tm) / 86400;
    return true;
}

static void
s_fsync_parent (archive_t *self, const char *path)
{
    char full[PATH_MAX];
    s_full_path (self, path, full, sizeof full);
    *strrchr (full, '/') = 0;
    omni_util_fsync_dir (full);
}

static void
s_compress (archive_t *self, const char *path)
{
    int64_t t0 = zclock_usecs ();
    char kind_dir[PATH_MAX], date[11], target[PATH_MAX], tmp[PATH_MAX + 8], full[PATH_MAX],
        full_target[PATH_MAX], full_tmp[PATH_MAX + 8], error[PATH_MAX + 256];
    if (!s_split_path (path, kind_dir, sizeof kind_dir, date))
        return;
    pthread_mutex_lock (&self->mutex);
    s_file_t *file = zhashx_lookup (self->by_path, path);
    uint64_t length = file && file->in_state && !file->dirty ? file->committed : 0;
    pthread_mutex_unlock (&self->mutex);
    if (!file || length == 0)
        return; //  not in the state: a stray start-up removes, or in its first batch
    long segment = s_last_segment (self, kind_dir, date) + 1;
    if (segment == 0)
        s_path (target, sizeof target, "%s/%s.jsonl.zst", kind_dir, date);
    else
        s_path (target, sizeof target, "%s/%s.%ld.jsonl.zst", kind_dir, date, segment);
    s_path (tmp, sizeof tmp, "%s.tmp", target);
    s_full_path (self, path, full, sizeof full);
    s_full_path (self, target, full_target, sizeof full_target);
    s_full_path (self, tmp, full_tmp, sizeof full_tmp);
    uint64_t packed;
    if (coldfile_compress (full, length, full_tmp, self->compress_level, &packed, error,
                           sizeof error)) {
        log_error ("archive.compress_failed", "path=%s error=\"%s\"", path, error);
        return;
    }
    s_kill_point (1);
    pthread_mutex_lock (&self->mutex);
    file = zhashx_lookup (self->by_path, path);
    if (!file || file->committed != length || file->dirty) {
        //  A late record was appended meanwhile: next time
        unlink (full_tmp);
        pthread_mutex_unlock (&self->mutex);
        log_info ("archive.compress_deferred", "path=%s reason=written_meanwhile", path);
        return;
    }
    if (rename (full_tmp, full_target)) {
        log_error ("archive.compress_failed", "path=%s error=\"rename %s: %s\"", path, tmp,
                   strerror (errno));
        unlink (full_tmp);
        pthread_mutex_unlock (&self->mutex);
        return;
    }
    s_fsync_parent (self, target);
    s_kill_point (2);
    MDB_txn *txn;
    MDB_val key = {strlen (path), (void *) path};
    int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_del (txn, self->files, &key, NULL);
        rc = rc ? (mdb_txn_abort (txn), rc) : mdb_txn_commit (txn);
    }
    if (rc) {
        //  The plain file stays the archive's: the copy goes
        log_error ("archive.compress_failed", "path=%s error=\"state: %s\"", path,
                   mdb_strerror (rc));
        unlink (full_target);
        s_fsync_parent (self, target);
        pthread_mutex_unlock (&self->mutex);
        return;
    }
    s_kill_point (3);
    if (file->fd >= 0)
        s_forget_fd (self, file);
    zhashx_delete (self->by_path, path);
    if (self->m_files)
        omni_metric_set (self->m_files, (double) zhashx_size (self->by_path));
    if (unlink (full) && errno != ENOENT)
        log_error ("archive.remove_failed", "path=%s error=\"%s\"", path, strerror (errno));
    s_fsync_parent (self, path);
    pthread_mutex_unlock (&self->mutex);
    s_add (self->m_compressed, 1);
    s_add (self->m_compressed_in, length);
    s_add (self->m_compressed_out, packed);
    log_info ("archive.compressed",
              "path=%s to=%s bytes=%" PRIu64 " compressed=%" PRIu64 " ratio=%.2f ms=%" PRId64, path,
              target, length, packed, packed ? (double) length / (double) packed : 0.0,
              (zclock_usecs () - t0) / 1000);
}

//  A file past its kind's retention: gone, plain or compressed. Its
//  records' ids stay archived, so that a re-collection does not bring
//  them back one by one.
static void
s_drop (archive_t *self, const char *path, int64_t age_ns, int64_t retain_ns)
{
    char full[PATH_MAX];
    s_full_path (self, path, full, sizeof full);
    pthread_mutex_lock (&self->mutex);
    s_file_t *file = zhashx_lookup (self->by_path, path);
    if (file) {
        MDB_txn *txn;
        MDB_val key = {strlen (path), (void *) path};
        int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
        if (rc == 0) {
            rc = mdb_del (txn, self->files, &key, NULL);
            rc = rc == MDB_NOTFOUND ? (mdb_txn_abort (txn), 0)
                 : rc               ? (mdb_txn_abort (txn), rc)
                                    : mdb_txn_commit (txn);
        }
        if (rc) {
            pthread_mutex_unlock (&self->mutex);
            log_error ("archive.drop_failed", "path=%s error=\"state: %s\"", path,
                       mdb_strerror (rc));
            return;
        }
        if (file->fd >= 0)
            s_forget_fd (self, file);
        zhashx_delete (self->by_path, path);
        if (self->m_files)
            omni_metric_set (self->m_files, (double) zhashx_size (self->by_path));
    }
    struct stat st;
    uint64_t bytes = stat (full, &st) == 0 ? (uint64_t) st.st_size : 0;
    int rc = unlink (full);
    int err = errno;
    s_fsync_parent (self, path);
    pthread_mutex_unlock (&self->mutex);
    if (rc && err != ENOENT) {
        log_error ("archive.drop_failed", "path=%s error=\"%s\"", path, strerror (err));
        return;
    }
    s_add (self->m_dropped, 1);
    s_add (self->m_dropped_bytes, bytes);
    log_info ("archive.dropped",
              "path=%s bytes=%" PRIu64 " age_days=%" PRId64 " retain_days=%" PRId64, path, bytes,
              (int64_t) (age_ns / NS_PER_DAY), (int64_t) (retain_ns / NS_PER_DAY));
}

int
archive_set_policy (archive_t *self, const archive_policy_t *policy, char *error, size_t error_size)
{
    zhashx_t *retain = zhashx_new ();
    zhashx_set_destructor (retain, (zhashx_destructor_fn *) zstr_free);
    for (const char *const *spec = policy->retain; spec && *spec; spec++) {
        const char *equals = strrchr (*spec, '=');
        int64_t ms = 0;
        bool forever = equals && strcmp (equals + 1, "forever") == 0;
        if (!equals || equals == *spec ||
            (!forever && (!omni_config_parse_duration (equals + 1, &ms) || ms <= 0))) {
            snprintf (error, error_size,
                      "retain: \"%s\": expected KIND=DURATION or KIND=forever (metric=90d, "
                      "git.commit=forever, *=365d for every other kind)",
                      *spec);
            zhashx_destroy (&retain);
            return -1;
        }
        char dir[KIND_DIR_MAX + 1];
        size_t len = (size_t) (equals - *spec);
        if (len == 1 && **spec == '*')
            strcpy (dir, "*");
        else
            archive_kind_dir (*spec, len, dir, sizeof dir);
        if (!forever) {
            //  ns as text: zhashx's values are pointers; a string frees itself
            char text[32];
            snprintf (text, sizeof text, "%" PRId64, ms * 1000000);
            zhashx_update (retain, dir, strdup (text));
        } else
            zhashx_update (retain, dir, strdup ("-1"));
    }
    pthread_mutex_lock (&self->mutex);
    zhashx_destroy (&self->retain);
    self->retain = retain;
    self->compress_after_ns = policy->compress_after_ms * 1000000;
    self->compress_level = policy->compress_level ? policy->compress_level : 3;
    pthread_mutex_unlock (&self->mutex);
    return 0;
}

//  The retention of a kind directory in ns; -1 forever.
static int64_t
s_retain_ns (archive_t *self, const char *kind_dir)
{
    const char *text = self->retain ? zhashx_lookup (self->retain, kind_dir) : NULL;
    if (!text && self->retain)
        text = zhashx_lookup (self->retain, "*");
    return text ? strtoll (text, NULL, 10) : -1;
}

void
archive_maintain (archive_t *self, int64_t now_ns)
{
    DIR *top = opendir (self->dir);
    if (!top)
        return;
    //  Names first: the passes rename and remove in these directories
    zlistx_t *paths = zlistx_new ();
    zlistx_set_destructor (paths, (zlistx_destructor_fn *) zstr_free);
    struct dirent *kind;
    while ((kind = readdir (top))) {
        if (kind->d_name[0] == '.')
            continue;
        char sub[PATH_MAX];
        s_path (sub, sizeof sub, "%s/%s", self->dir, kind->d_name);
        DIR *dir = opendir (sub);
        if (!dir)
            continue;
        struct dirent *entry;
        while ((entry = readdir (dir))) {
            int64_t day;
            if (entry->d_name[0] == '.' || !s_name_day (entry->d_name, &day) ||
                (strcmp (entry->d_name + 10, ".jsonl") != 0 && s_segment (entry->d_name) < 0))
                continue;
            char path[PATH_MAX];
            if (strlen (kind->d_name) + strlen (entry->d_name) + 2 > sizeof path)
                continue;
            s_path (path, sizeof path, "%s/%s", kind->d_name, entry->d_name);
            zlistx_add_end (paths, strdup (path));
        }
        closedir (dir);
    }
    closedir (top);
    for (char *path = zlistx_first (paths); path && !self->stopping; path = zlistx_next (paths)) {
        char kind_dir[PATH_MAX], date[11];
        int64_t day;
        if (!s_split_path (path, kind_dir, sizeof kind_dir, date) ||
            !s_name_day (strchr (path, '/') + 1, &day))
            continue;
        //  Ages count from the end of the event date: a day is closed then
        int64_t age = now_ns - (day + 1) * NS_PER_DAY;
        int64_t retain = s_retain_ns (self, kind_dir);
        if (retain >= 0 && age > retain)
            s_drop (self, path, age, retain);
        else if (s_ends_with (path, ".jsonl") && self->compress_after_ns > 0 &&
                 age >= self->compress_after_ns)
            s_compress (self, path);
    }
    zlistx_destroy (&paths);
}

static void *
s_maintainer (void *arg)
{
    archive_t *self = arg;
    pthread_mutex_lock (&self->wake_mutex);
    while (!self->stopping) {
        pthread_mutex_unlock (&self->wake_mutex);
        archive_maintain (self, omni_util_now_ns ());
        pthread_mutex_lock (&self->wake_mutex);
        if (self->stopping)
            break;
        struct timespec deadline;
        clock_gettime (CLOCK_REALTIME, &deadline);
        deadline.tv_sec += self->interval_ms / 1000;
        deadline.tv_nsec += (self->interval_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait (&self->wake, &self->wake_mutex, &deadline);
    }
    pthread_mutex_unlock (&self->wake_mutex);
    return NULL;
}

int
archive_start_maintenance (archive_t *self, int64_t interval_ms)
{
    assert (!self->maintaining && interval_ms > 0);
    self->interval_ms = interval_ms;
    if (pthread_create (&self->maintainer, NULL, s_maintainer, self))
        return -1;
    self->maintaining = true;
    return 0;
}

//  ---------------------------------------------------------------------------

archive_t *
archive_new (const char *dir, omni_metrics_t *metrics, char *error, size_t error_size)
{
    archive_t *self = calloc (1, sizeof *self);
    assert (self);
    self->dir = strdup (dir);
    size_t len = strlen (self->dir);
    while (len > 1 && self->dir[len - 1] == '/')
        self->dir[--len] = 0;
    self->by_path = zhashx_new ();
    pthread_mutex_init (&self->mutex, NULL);
    pthread_mutex_init (&self->wake_mutex, NULL);
    pthread_cond_init (&self->wake, NULL);
    self->compress_level = 3;
    const char *kill_after = getenv ("OMNI_ARCHIVE_TEST_KILL_COMPRESS");
    if (kill_after)
        s_kill_after = atoi (kill_after);
    zhashx_set_destructor (self->by_path, s_file_destroy);
    if (metrics) {
        self->m_archived = omni_metrics_counter (metrics, "records_archived_total",
                                                 "Records appended to the archive", NULL);
        self->m_skipped = omni_metrics_counter (
            metrics, "records_skipped_duplicate_total",
            "Records not appended because their id was already archived", NULL);
        self->m_bytes = omni_metrics_counter (metrics, "bytes_written_total",
                                              "Bytes of JSON lines committed to the archive", NULL);
        self->m_files = omni_metrics_gauge (metrics, "archive_files", "Files in the archive", NULL);
    }
    //  Its metrics in their place among the archive's
    self->ids = archive_ids_new (metrics, s_grow_ids_map, self);
    if (metrics) {
        self->m_learned = omni_metrics_counter (
            metrics, "archive_content_keys_learned_total",
            "Content keys added for ids archived before content keys (state format < 3)", NULL);
        self->m_compressed = omni_metrics_counter (metrics, "archive_files_compressed_total",
                                                   "Closed files compressed to zstd", NULL);
        self->m_compressed_in = omni_metrics_counter (metrics, "archive_compressed_bytes_in_total",
                                                      "Plain bytes compressed", NULL);
        self->m_compressed_out = omni_metrics_counter (
            metrics, "archive_compressed_bytes_out_total", "Bytes of zstd they became", NULL);
        self->m_dropped = omni_metrics_counter (metrics, "archive_files_dropped_total",
                                                "Files removed by retention", NULL);
        self->m_dropped_bytes = omni_metrics_counter (metrics, "archive_dropped_bytes_total",
                                                      "Bytes removed by retention", NULL);
    }
    char state[PATH_MAX];
    int rc;
    if (len > PATH_MAX - 512) {
        s_fail (error, error_size, "archive directory", self->dir, ENAMETOOLONG);
        goto failed;
    }
    s_path (state, sizeof state, "%s/" STATE_DIR, self->dir);
    //  Two processes recovering and appending to the same files would each
    //  cut away the other's lines.
    char lock_error[PATH_MAX + 128];
    if (!(self->lock = omni_dirlock_new (state, "lock", lock_error, sizeof lock_error))) {
        snprintf (error, error_size, "archive %s: %s", self->dir, lock_error);
        goto failed;
    }
    if ((rc = mdb_env_create (&self->env))) {
        s_mdb_fail (error, error_size, "create", rc);
        goto failed;
    }
    mdb_env_set_maxdbs (self->env, 4);
    mdb_env_set_mapsize (self->env, s_initial_map_size);
    if ((rc = mdb_env_open (self->env, state, MDB_NORDAHEAD, 0644))) {
        snprintf (error, error_size, "state %s: %s", state, mdb_strerror (rc));
        goto failed;
    }
    MDB_envinfo info;
    mdb_env_info (self->env, &info);
    self->map_size = info.me_mapsize;
    if (s_recover (self, error, error_size))
        goto failed;
    return self;

failed:
    archive_destroy (&self);
    return NULL;
}

void
archive_destroy (archive_t **self_p)
{
    archive_t *self = *self_p;
    if (!self)
        return;
    if (self->maintaining) {
        pthread_mutex_lock (&self->wake_mutex);
        self->stopping = true;
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->wake_mutex);
        pthread_join (self->maintainer, NULL);
    }
    zhashx_destroy (&self->retain);
    pthread_mutex_destroy (&self->mutex);
    pthread_mutex_destroy (&self->wake_mutex);
    pthread_cond_destroy (&self->wake);
    zhashx_destroy (&self->by_path);
    if (self->env)
        mdb_env_close (self->env);
    omni_dirlock_destroy (&self->lock);
    free (self->touched);
    free (self->next);
    free (self->skip);
    free (self->order);
    free (self->line_end);
    omni_buf_release (&self->head_buf);
    archive_ids_destroy (&self->ids);
    omni_buf_release (&self->buf);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------------
//  Self-test

#include "testsupport/selftest.h"

#define TEST_MAX 5000
#define TEST_D1  1700000000000000000LL  //  2023-11-14T22:13:20Z
#define TEST_D2  (TEST_D1 + NS_PER_DAY) //  2023-11-15

typedef struct {
    omni_record_encoder_t *encoder;
    msgpack_zone zone;
    omni_record_t *records;
    void **data;
    size_t count;
} s_test_batch_t;

static void
s_test_batch_init (s_test_batch_t *batch)
{
    batch->encoder = omni_record_encoder_new ();
    msgpack_zone_init (&batch->zone, 4096);
    batch->records = calloc (TEST_MAX, sizeof *batch->records);
    batch->data = calloc (TEST_MAX, sizeof *batch->data);
    batch->count = 0;
}

static void
s_test_batch_clear (s_test_batch_t *batch)
{
    for (size_t i = 0; i < batch->count; i++)
        free (batch->data[i]);
    batch->count = 0;
    msgpack_zone_clear (&batch->zone);
}

static void
s_test_batch_destroy (s_test_batch_t *batch)
{
    s_test_batch_clear (batch);
    msgpack_zone_destroy (&batch->zone);
    omni_record_encoder_destroy (&batch->encoder);
    free (batch->records);
    free (batch->data);
}

//  Adds a record (metric, or any body for a custom kind) decoded as the
//  writer loop would hand it over.
static void
s_test_add (s_test_batch_t *batch, const char *kind, int64_t ts, const char *name, double value)
{
    assert (batch->count < TEST_MAX);
    omni_record_encoder_begin (batch->encoder, kind, "host-1", "test", "run-1", ts);
    msgpack_packer *pk = omni_record_encoder_body (batch->encoder);
    msgpack_pack_map (pk, 2);
    msgpack_pack_str_with_body (pk, "name", 4);
    msgpack_pack_str_with_body (pk, name, strlen (name));
    msgpack_pack_str_with_body (pk, "value", 5);
    msgpack_pack_double (pk, value);
    const void *data;
    size_t size;
    char detail[256];
    int rc = omni_record_encoder_end (batch->encoder, &data, &size, detail, sizeof detail);
    assert (rc == 0);
    void *copy = malloc (size);
    memcpy (copy, data, size);
    batch->data[batch->count] = copy;
    omni_record_reject_t reason = omni_record_decode (&batch->records[batch->count], &batch->zone,
                                                      copy, size, NULL, detail, sizeof detail);
    assert (reason == REJECT_NONE);
    batch->count++;
}

//  The lines records[from..to) must appear as, appended to `expected`.
static void
s_test_expect (omni_buf_t *expected, s_test_batch_t *batch, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        omni_mpjson_record (expected, &batch->records[i]);
        omni_buf_append (expected, "\n", 1);
    }
}

static char *
s_test_read (const char *root, const char *path, size_t *size)
{
    char full[PATH_MAX];
    s_path (full, sizeof full, "%s/%s", root, path);
    FILE *f = fopen (full, "rb");
    if (!f)
        return NULL;
    fseek (f, 0, SEEK_END);
    long n = ftell (f);
    fseek (f, 0, SEEK_SET);
    char *data = malloc ((size_t) n + 1);
    assert (fread (data, 1, (size_t) n, f) == (size_t) n);
    data[n] = 0;
    fclose (f);
    *size = (size_t) n;
    return data;
}

static bool
s_test_file_is (const char *root, const char *path, const omni_buf_t *expected)
{
    size_t size;
    char *data = s_test_read (root, path, &size);
    bool same = data && size == expected->size && memcmp (data, expected->data, size) == 0;
    free (data);
    return same;
}

static bool
s_test_exists (const char *root, const char *path)
{
    char full[PATH_MAX];
    s_path (full, sizeof full, "%s/%s", root, path);
    return access (full, F_OK) == 0;
}

static void
s_test_append (const char *root, const char *path, const char *text)
{
    char full[PATH_MAX];
    s_path (full, sizeof full, "%s/%s", root, path);
    char dir[PATH_MAX];
    s_path (dir, sizeof dir, "%s", full);
    *strrchr (dir, '/') = 0;
    assert (omni_util_mkdirs (dir) == 0);
    FILE *f = fopen (full, "ab");
    assert (f);
    fputs (text, f);
    fclose (f);
}

static int
s_test_count_file (archive_t *self, const char *path, uint64_t size, void *arg)
{
    (void) self;
    (void) path;
    (void) size;
    (*(size_t *) arg)++;
    return 0;
}

static size_t
s_test_file_count (archive_t *self)
{
    size_t count = 0;
    s_walk (self, s_test_count_file, &count, NULL, 0);
    return count;
}

static size_t
s_test_entries (const char *dir)
{
    DIR *d = opendir (dir);
    assert (d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir (d)))
        if (strcmp (e->d_name, ".") && strcmp (e->d_name, ".."))
            n++;
    closedir (d);
    return n;
}

void
archive_test (bool verbose)
{
    (void) verbose;
    char error[512], out[KIND_DIR_MAX + 1];

    //  Names
    archive_date (0, out);
    assert (streq (out, "1970-01-01"));
    archive_date (-1, out);
    assert (streq (out, "1969-12-31"));
    archive_date (TEST_D1, out);
    assert (streq (out, "2023-11-14"));
    archive_date (951782400LL * 1000000000LL, out);
    assert (streq (out, "2000-02-29"));
    archive_date (INT64_MAX, out);
    assert (streq (out, "2262-04-11"));
    archive_date (INT64_MIN, out);
    assert (streq (out, "1677-09-21"));
    assert (archive_kind_dir ("git.commit", 10, out, sizeof out) == 10);
    assert (streq (out, "git.commit"));
    archive_kind_dir ("x.Deploy Prod/../..", 19, out, sizeof out);
    assert (streq (out, "x.deploy_prod_.._.."));
    archive_kind_dir ("..", 2, out, sizeof out);
    assert (streq (out, "_."));
    archive_kind_dir (".state", 6, out, sizeof out);
    assert (streq (out, "_state"));
    archive_kind_dir ("", 0, out, sizeof out);
    assert (streq (out, "_"));
    archive_kind_dir ("x.\xc3\xa9", 4, out, sizeof out);
    assert (streq (out, "x.__"));
    char longer[300], other[KIND_DIR_MAX + 1];
    memset (longer, 'a', sizeof longer);
    assert (archive_kind_dir (longer, sizeof longer, out, sizeof out) == KIND_DIR_MAX);
    longer[299] = 'b';
    archive_kind_dir (longer, sizeof longer, other, sizeof other);
    assert (strlen (other) == KIND_DIR_MAX && !streq (out, other));
    assert (strncmp (out, other, KIND_DIR_MAX - 17) == 0);

    char *tmp = selftest_tmpdir ("archive-test");
    assert (tmp);
    char root[PATH_MAX];
    s_path (root, sizeof root, "%s/archive", tmp);
    omni_metrics_t *metrics = omni_metrics_new ("omni_archiverd_");
    archive_t *archive = archive_new (root, metrics, error, sizeof error);
    assert (archive);

    //  A batch: its lines, byte for byte, in batch order.
    s_test_batch_t batch;
    s_test_batch_init (&batch);
    omni_buf_t d1 = {0}, x1 = {0};
    for (int i = 0; i < 3; i++)
        s_test_add (&batch, "metric", TEST_D1 + i, "cpu.user", i * 1.5);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    s_test_expect (&d1, &batch, 0, 3);
    const char *f_d1 = "metric/2023-11-14.jsonl";
    assert (s_test_file_is (root, f_d1, &d1));
    assert (strncmp (d1.data, "{\"v\":1,\"id\":\"", 13) == 0);
    assert (omni_metric_value (archive->m_archived) == 3);
    assert (omni_metric_value (archive->m_bytes) == (double) d1.size);

    //  The same batch again (a redelivery): nothing new.
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    assert (s_test_file_is (root, f_d1, &d1));
    assert (omni_metric_value (archive->m_skipped) == 3);
    assert (archive_id_count (archive) == 6); //  id and content key a metric

    //  Duplicates inside a batch, and an old record among new ones.
    s_test_batch_clear (&batch);
    s_test_add (&batch, "metric", TEST_D1 + 10, "cpu.sys", 1);
    s_test_add (&batch, "metric", TEST_D1 + 10, "cpu.sys", 1);
    s_test_add (&batch, "metric", TEST_D1 + 1, "cpu.user", 1.5);
    s_test_add (&batch, "metric", TEST_D1 + 11, "cpu.sys", 2);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    s_test_expect (&d1, &batch, 0, 1);
    s_test_expect (&d1, &batch, 3, 4);
    assert (s_test_file_is (root, f_d1, &d1));
    assert (archive_id_count (archive) == 10);

    //  Other content under an archived id, and under an id new in the
    //  batch: conflicts, flagged and not archived; the first stays.
    s_test_batch_clear (&batch);
    s_test_add (&batch, "metric", TEST_D1 + 1, "cpu.user", 99);
    s_test_add (&batch, "metric", TEST_D1 + 12, "cpu.sys", 3);
    s_test_add (&batch, "metric", TEST_D1 + 12, "cpu.sys", 4);
    uint8_t flags[3] = {1, 1, 1};
    assert (archive_write (archive, batch.records, batch.count, flags, error, sizeof error) == 0);
    assert (flags[0] == 1 && flags[1] == 0 && flags[2] == 1);
    s_test_expect (&d1, &batch, 1, 2);
    assert (s_test_file_is (root, f_d1, &d1));
    assert (archive_id_count (archive) == 12);
    //  The same again: the same records flagged, nothing written
    memset (flags, 0, sizeof flags);
    assert (archive_write (archive, batch.records, batch.count, flags, error, sizeof error) == 0);
    assert (flags[0] == 1 && flags[1] == 0 && flags[2] == 1);
    assert (s_test_file_is (root, f_d1, &d1));

    //  Two kinds and two dates, mixed in one batch: four files.
    s_test_batch_clear (&batch);
    s_test_add (&batch, "x.deploy", TEST_D1, "api", 1);
    s_test_add (&batch, "metric", TEST_D2, "cpu.user", 7);
    s_test_add (&batch, "metric", TEST_D1 + 20, "cpu.user", 8);
    s_test_add (&batch, "x.deploy", TEST_D2, "api", 2);
    s_test_add (&batch, "x.deploy", TEST_D1 + 5, "web", 3);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    assert (s_test_file_count (archive) == 4);
    s_test_expect (&d1, &batch, 2, 3);
    assert (s_test_file_is (root, f_d1, &d1));
    s_test_expect (&x1, &batch, 0, 1);
    s_test_expect (&x1, &batch, 4, 5);
    assert (s_test_file_is (root, "x.deploy/2023-11-14.jsonl", &x1));
    omni_buf_t one = {0};
    s_test_expect (&one, &batch, 1, 2);
    assert (s_test_file_is (root, "metric/2023-11-15.jsonl", &one));
    omni_buf_reset (&one);
    s_test_expect (&one, &batch, 3, 4);
    assert (s_test_file_is (root, "x.deploy/2023-11-15.jsonl", &one));

    //  A custom kind made to climb out stays inside the archive, and its
    //  line keeps the kind as it was sent.
    s_test_batch_clear (&batch);
    s_test_add (&batch, "x./../../escape", TEST_D1, "evil", 1);
    s_test_add (&batch, "x.a/b", TEST_D1, "slash", 1);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    assert (s_test_exists (root, "x._.._.._escape/2023-11-14.jsonl"));
    assert (s_test_exists (root, "x.a_b/2023-11-14.jsonl"));
    assert (s_test_entries (tmp) == 1);
    size_t size;
    char *text = s_test_read (root, "x.a_b/2023-11-14.jsonl", &size);
    assert (text && strstr (text, "\"kind\":\"x.a/b\""));
    free (text);
    assert (s_test_file_count (archive) == 6);

    //  Another process cannot open the archive while it is in use.
    archive_t *second = archive_new (root, NULL, error, sizeof error);
    assert (!second && strstr (error, "in use"));

    //  A crash after a write and before its commit: bytes past the committed
    //  length, files the state does not know. Re-opening cuts them away.
    archive_destroy (&archive);
    s_test_append (root, f_d1, "{\"v\":1,\"id\":\"half a line");
    s_test_append (root, "metric/2099-01-01.jsonl", "{\"uncommitted\":1}\n");
    s_test_append (root, "x.new/2023-11-14.jsonl", "{\"uncommitted\":2}\n");
    s_test_append (root, "README", "not an archive file, left alone\n");
    archive = archive_new (root, metrics, error, sizeof error);
    assert (archive);
    assert (s_test_file_is (root, f_d1, &d1));
    assert (!s_test_exists (root, "metric/2099-01-01.jsonl"));
    assert (!s_test_exists (root, "x.new/2023-11-14.jsonl"));
    assert (s_test_exists (root, "README"));
    assert (s_test_file_count (archive) == 6);
    assert (archive_id_count (archive) == 21); //  one key a custom kind
    //  ...and what is written next follows the last committed line.
    s_test_batch_clear (&batch);
    s_test_add (&batch, "metric", TEST_D1 + 30, "cpu.user", 9);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    s_test_expect (&d1, &batch, 0, 1);
    assert (s_test_file_is (root, f_d1, &d1));

    //  A failed write (the file size limit stands in for a full disk): -1,
    //  nothing committed, the file as it was; the retry then succeeds once.
    signal (SIGXFSZ, SIG_IGN);
    struct rlimit saved, limit;
    assert (getrlimit (RLIMIT_FSIZE, &saved) == 0);
    limit = saved;
    limit.rlim_cur = d1.size + 10;
    assert (setrlimit (RLIMIT_FSIZE, &limit) == 0);
    s_test_batch_clear (&batch);
    for (int i = 0; i < 50; i++)
        s_test_add (&batch, "metric", TEST_D1 + 100 + i, "disk.used", i);
    error[0] = 0;
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == -1);
    assert (strstr (error, f_d1) && strstr (error, "too large"));
    assert (s_test_file_is (root, f_d1, &d1));
    assert (archive_id_count (archive) == 23);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == -1);
    assert (setrlimit (RLIMIT_FSIZE, &saved) == 0);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    s_test_expect (&d1, &batch, 0, batch.count);
    assert (s_test_file_is (root, f_d1, &d1));
    assert (archive_id_count (archive) == 123);

    //  More files in one batch than open descriptors are kept.
    s_test_batch_clear (&batch);
    for (int i = 0; i < 3 * FD_CACHE_MAX; i++)
        s_test_add (&batch, "metric", TEST_D1 - (i + 1) * NS_PER_DAY, "daily", i);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    assert (archive->nopen <= FD_CACHE_MAX);
    assert (s_test_file_count (archive) == 6 + 3 * FD_CACHE_MAX);
    for (int i = 0; i < 3 * FD_CACHE_MAX; i++) {
        char path[64], date[11];
        archive_date (batch.records[i].ts, date);
        snprintf (path, sizeof path, "metric/%s.jsonl", date);
        omni_buf_reset (&one);
        s_test_expect (&one, &batch, (size_t) i, (size_t) i + 1);
        assert (s_test_file_is (root, path, &one));
    }

    //  A file unlinked while open is written again under its name, not
    //  into the unlinked inode.
    s_test_batch_clear (&batch);
    s_test_add (&batch, "x.deploy", TEST_D1 + 40, "db", 4);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    char full[PATH_MAX];
    s_path (full, sizeof full, "%s/x.deploy/2023-11-14.jsonl", root);
    assert (unlink (full) == 0);
    s_test_batch_clear (&batch);
    s_test_add (&batch, "x.deploy", TEST_D1 + 41, "db", 5);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    omni_buf_reset (&one);
    s_test_expect (&one, &batch, 0, 1);
    assert (s_test_file_is (root, "x.deploy/2023-11-14.jsonl", &one));

    //  A file removed by an operator (retention) is forgotten; its records
    //  stay archived.
    archive_destroy (&archive);
    s_path (full, sizeof full, "%s/x.deploy/2023-11-15.jsonl", root);
    assert (unlink (full) == 0);
    archive = archive_new (root, NULL, error, sizeof error);
    assert (archive);
    s_test_batch_clear (&batch);
    s_test_add (&batch, "x.deploy", TEST_D2, "api", 2);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    assert (!s_test_exists (root, "x.deploy/2023-11-15.jsonl"));
    archive_destroy (&archive);

    //  Files without a state are never deleted on a guess.
    char state[PATH_MAX];
    s_path (state, sizeof state, "%s/" STATE_DIR, root);
    selftest_rmtree (state);
    archive = archive_new (root, NULL, error, sizeof error);
    assert (!archive && strstr (error, "no state"));
    assert (s_test_file_is (root, f_d1, &d1));

    //  The LMDB map grows when the set of ids fills it.
    s_path (root, sizeof root, "%s/small", tmp);
    s_initial_map_size = 64 * 1024;
    archive = archive_new (root, NULL, error, sizeof error);
    assert (archive);
    for (int round = 0; round < 5; round++) {
        s_test_batch_clear (&batch);
        for (int i = 0; i < 1000; i++)
            s_test_add (&batch, "metric", TEST_D1 + round * 1000 + i, "load", i);
        assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) ==
                0);
    }
    assert (archive->map_size > 64 * 1024);
    assert (archive_id_count (archive) == 10000);
    archive_destroy (&archive);
    assert (archive == NULL);

    //  Recent ids merge into the tree; a record is skipped wherever its id
    //  is, before and after a restart, and a format 1 state opens as 2.
    s_path (root, sizeof root, "%s/merge", tmp);
    archive_ids_set_merge_bounds (5000, 5000); //  two keys a record
    archive = archive_new (root, NULL, error, sizeof error);
    assert (archive);
    for (int round = 0; round < 4; round++) {
        s_test_batch_clear (&batch);
        for (int i = 0; i < 1000; i++)
            s_test_add (&batch, "metric", TEST_D1 + round * 1000 + i, "load", i);
        assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) ==
                0);
    }
    //  Over the threshold after the third batch: one slice merged a batch.
    uint64_t tree_before = archive_ids_tree_count (archive->ids);
    size_t recent_before = archive_ids_recent_count (archive->ids);
    assert (tree_before > 0 && recent_before > 0);
    assert (archive_id_count (archive) == 8000);
    archive_destroy (&archive);
    {
        //  What an archiverd of format 1 left: no "recent" ids yet.
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi meta;
        uint8_t one_be[8];
        omni_util_put_be (one_be, 1, 8);
        MDB_val k = {6, "format"}, v = {8, one_be};
        s_path (state, sizeof state, "%s/" STATE_DIR, root);
        assert (mdb_env_create (&env) == 0);
        mdb_env_set_maxdbs (env, 4);
        assert (mdb_env_open (env, state, 0, 0644) == 0);
        assert (mdb_txn_begin (env, NULL, 0, &txn) == 0);
        assert (mdb_dbi_open (txn, "meta", 0, &meta) == 0);
        assert (mdb_put (txn, meta, &k, &v, 0) == 0);
        assert (mdb_txn_commit (txn) == 0);
        mdb_env_close (env);
    }
    archive = archive_new (root, NULL, error, sizeof error);
    assert (archive);
    assert (archive_ids_tree_count (archive->ids) == tree_before &&
            archive_ids_recent_count (archive->ids) == recent_before);
    //  Every record again, and 500 new ones in the middle of them.
    s_test_batch_clear (&batch);
    for (int i = 0; i < 4500; i++)
        s_test_add (&batch, "metric", TEST_D1 + i, "load", i % 1000);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    assert (archive_id_count (archive) == 9000);
    assert (archive_ids_tree_count (archive->ids) > tree_before);
    //  Merged slice after slice, the tree ends up with every id.
    while (archive_ids_recent_count (archive->ids) > 0)
        assert (archive_ids_merge (archive->ids, error, sizeof error) == 0);
    assert (archive_ids_tree_count (archive->ids) == 9000);
    archive_destroy (&archive);
    archive = archive_new (root, NULL, error, sizeof error);
    assert (archive && archive_id_count (archive) == 9000);
    {
        MDB_txn *txn;
        MDB_val k = {6, "format"}, v;
        assert (mdb_txn_begin (archive->env, NULL, MDB_RDONLY, &txn) == 0);
        assert (mdb_get (txn, archive->meta, &k, &v) == 0);
        assert (v.mv_size == 8 && omni_util_get_be (v.mv_data, 8) == STATE_FORMAT);
        mdb_txn_abort (txn);
    }
    size_t lines = 0, merged_size;
    char *merged = s_test_read (root, "metric/2023-11-14.jsonl", &merged_size);
    for (size_t i = 0; i < merged_size; i++)
        lines += merged[i] == '\n';
    free (merged);
    assert (lines == 4500);

    //  A batch large enough to be encoded in two halves, whose lines
    //  alternate between three files: each file gets its lines, in order.
    s_test_batch_clear (&batch);
    omni_buf_t days[3] = {{0}};
    for (int i = 0; i < 3000; i++)
        s_test_add (&batch, "metric", TEST_D2 + (i % 3) * NS_PER_DAY + i, "split", i);
    for (size_t i = 0; i < batch.count; i++)
        s_test_expect (&days[i % 3], &batch, i, i + 1);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    assert (s_test_file_is (root, "metric/2023-11-15.jsonl", &days[0]));
    assert (s_test_file_is (root, "metric/2023-11-16.jsonl", &days[1]));
    assert (s_test_file_is (root, "metric/2023-11-17.jsonl", &days[2]));
    for (int d = 0; d < 3; d++)
        omni_buf_release (&days[d]);
    archive_destroy (&archive);
    archive_ids_set_merge_bounds (1u << 20, 4u << 20);

    //  Cold storage: a closed date is compressed; a late record for it
    //  starts a plain file again, which becomes the next segment; retention
    //  then drops both. The ids stay: the records are not archived again.
    s_path (root, sizeof root, "%s/cold", tmp);
    archive = archive_new (root, NULL, error, sizeof error);
    assert (archive);
    s_test_batch_clear (&batch);
    for (int i = 0; i < 100; i++)
        s_test_add (&batch, "metric", TEST_D1 + i, "cold", i);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    const char *retain[] = {"metric=30d", "*=forever", NULL};
    archive_policy_t policy = {7 * 86400000LL, 0, retain};
    assert (archive_set_policy (archive, &policy, error, sizeof error) == 0);
    archive_maintain (archive, TEST_D1 + 2 * NS_PER_DAY);
    assert (s_test_exists (root, f_d1) && !s_test_exists (root, "metric/2023-11-14.jsonl.zst"));
    archive_maintain (archive, TEST_D1 + 9 * NS_PER_DAY);
    assert (!s_test_exists (root, f_d1) && s_test_exists (root, "metric/2023-11-14.jsonl.zst"));
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    assert (!s_test_exists (root, f_d1));
    s_test_batch_clear (&batch);
    s_test_add (&batch, "metric", TEST_D1 + 500, "late", 1);
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    omni_buf_reset (&one);
    s_test_expect (&one, &batch, 0, 1);
    assert (s_test_file_is (root, f_d1, &one));
    archive_maintain (archive, TEST_D1 + 9 * NS_PER_DAY);
    assert (!s_test_exists (root, f_d1) && s_test_exists (root, "metric/2023-11-14.1.jsonl.zst"));
    archive_maintain (archive, TEST_D1 + 40 * NS_PER_DAY);
    assert (!s_test_exists (root, "metric/2023-11-14.jsonl.zst") &&
            !s_test_exists (root, "metric/2023-11-14.1.jsonl.zst"));
    assert (archive_write (archive, batch.records, batch.count, NULL, error, sizeof error) == 0);
    assert (!s_test_exists (root, f_d1));
    const char *bad[] = {"metric=soon", NULL};
    policy.retain = bad;
    assert (archive_set_policy (archive, &policy, error, sizeof error) == -1);
    assert (strstr (error, "metric=soon"));
    archive_destroy (&archive);

    omni_buf_release (&d1);
    omni_buf_release (&x1);
    omni_buf_release (&one);
    s_test_batch_destroy (&batch);
    omni_metrics_destroy (&metrics);
    selftest_rmtree (tmp);
    free (tmp);
}
