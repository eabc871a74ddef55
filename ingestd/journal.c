/*  journal: ingestd's durable store on LMDB.

    Three databases: "rec" (offset -> received_ns, writers mask, record),
    "dead" (sequence -> reason, detail, first bytes of the input) and "meta"
    (journal id, next offset, counters, bytes held, one cursor per writer).
    Keys are big-endian so LMDB's byte order is offset order and appends can
    use MDB_APPEND. Counters and cursors change in the same transaction as
    the records they count, so after a crash they agree with the records.   */
#include "journal.h"
#include "log.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define REC_HEADER 9     //  received_ns (8) + writers mask (1)
#define TRIM_CHUNK 65536 //  records removed per transaction, to keep them short

struct _journal_t {
    MDB_env *env;
    MDB_dbi rec, dead, meta;
    MDB_txn *txn;       //  the open write transaction of an intake round
    MDB_cursor *append; //  on "rec" in txn: one cursor for the round, not one per record
    uint8_t id[JOURNAL_ID_SIZE];
    uint64_t max_bytes, dead_max;
    //  Committed state, and the state of the open round.
    uint64_t next_offset, first_offset, bytes, dead_seq, dead_first;
    journal_counters_t counters;
    uint64_t r_next_offset, r_bytes, r_dead_seq, r_dead_first;
    journal_counters_t r_counters;
    size_t nwriters;
    char **writer_names;
    uint64_t *cursors, *synced_cursors;
    bool *added; //  per writer: new to a journal that had records (journal_writer_added)
};

static int
s_meta_get (journal_t *self, MDB_txn *txn, const char *key, uint64_t *value)
{
    MDB_val k = {strlen (key), (void *) key}, v;
    int rc = mdb_get (txn, self->meta, &k, &v);
    if (rc == 0 && v.mv_size == 8)
        *value = util_get_be (v.mv_data, 8);
    return rc;
}

static int
s_meta_put (journal_t *self, MDB_txn *txn, const char *key, uint64_t value)
{
    uint8_t buf[8];
    util_put_be (buf, value, 8);
    MDB_val k = {strlen (key), (void *) key}, v = {8, buf};
    return mdb_put (txn, self->meta, &k, &v, 0);
}

static int
s_put_state (journal_t *self, MDB_txn *txn, uint64_t next_offset, uint64_t bytes, uint64_t dead_seq,
             uint64_t dead_first, const journal_counters_t *c)
{
    int rc = 0;
    rc = rc ? rc : s_meta_put (self, txn, "next_offset", next_offset);
    rc = rc ? rc : s_meta_put (self, txn, "bytes", bytes);
    rc = rc ? rc : s_meta_put (self, txn, "dead_seq", dead_seq);
    rc = rc ? rc : s_meta_put (self, txn, "dead_first", dead_first);
    rc = rc ? rc : s_meta_put (self, txn, "received", c->received);
    rc = rc ? rc : s_meta_put (self, txn, "accepted", c->accepted);
    rc = rc ? rc : s_meta_put (self, txn, "rejected", c->rejected);
    rc = rc ? rc : s_meta_put (self, txn, "trimmed", c->trimmed);
    return rc;
}

//  The oldest record held, or next_offset when there is none.
static uint64_t
s_first_offset (journal_t *self, MDB_txn *txn)
{
    MDB_cursor *cursor;
    MDB_val k, v;
    uint64_t first = self->next_offset;
    if (mdb_cursor_open (txn, self->rec, &cursor) == 0) {
        if (mdb_cursor_get (cursor, &k, &v, MDB_FIRST) == 0)
            first = util_get_be (k.mv_data, 8);
        mdb_cursor_close (cursor);
    }
    return first;
}

journal_t *
journal_new (const char *dir, uint64_t max_bytes, uint64_t dead_max, const char *const *writers,
             char *error, size_t error_size)
{
    journal_t *self = calloc (1, sizeof *self);
    assert (self);
    self->max_bytes = max_bytes;
    self->dead_max = dead_max ? dead_max : 100000;
    MDB_txn *txn = NULL;
    int rc;
    const char *step = "mkdir";
    if (util_mkdirs (dir)) {
        rc = errno;
        goto failed;
    }
    step = "mdb_env_create";
    if ((rc = mdb_env_create (&self->env)))
        goto failed;
    mdb_env_set_maxdbs (self->env, 4);
    //  The map is address space, not disk: leave room for copy-on-write
    //  pages and for the round that crosses the limit.
    mdb_env_set_mapsize (self->env, (size_t) (max_bytes * 2 + (1ULL << 30)));
    step = "mdb_env_open";
    if ((rc = mdb_env_open (self->env, dir, MDB_NORDAHEAD, 0644)))
        goto failed;
    step = "open databases";
    if ((rc = mdb_txn_begin (self->env, NULL, 0, &txn)))
        goto failed;
    if ((rc = mdb_dbi_open (txn, "rec", MDB_CREATE, &self->rec)) ||
        (rc = mdb_dbi_open (txn, "dead", MDB_CREATE, &self->dead)) ||
        (rc = mdb_dbi_open (txn, "meta", MDB_CREATE, &self->meta)))
        goto failed;
    MDB_val k = {2, "id"}, v;
    if (mdb_get (txn, self->meta, &k, &v) == 0 && v.mv_size == JOURNAL_ID_SIZE)
        memcpy (self->id, v.mv_data, JOURNAL_ID_SIZE);
    else {
        if (getrandom (self->id, JOURNAL_ID_SIZE, 0) != JOURNAL_ID_SIZE) {
            rc = errno;
            step = "getrandom";
            goto failed;
        }
        v.mv_size = JOURNAL_ID_SIZE;
        v.mv_data = self->id;
        if ((rc = mdb_put (txn, self->meta, &k, &v, 0)))
            goto failed;
    }
    self->next_offset = 1;
    self->dead_seq = 1;
    self->dead_first = 1;
    s_meta_get (self, txn, "next_offset", &self->next_offset);
    s_meta_get (self, txn, "bytes", &self->bytes);
    s_meta_get (self, txn, "dead_seq", &self->dead_seq);
    s_meta_get (self, txn, "dead_first", &self->dead_first);
    s_meta_get (self, txn, "received", &self->counters.received);
    s_meta_get (self, txn, "accepted", &self->counters.accepted);
    s_meta_get (self, txn, "rejected", &self->counters.rejected);
    s_meta_get (self, txn, "trimmed", &self->counters.trimmed);
    self->first_offset = s_first_offset (self, txn);

    for (const char *const *w = writers; w && *w; w++)
        self->nwriters++;
    self->writer_names = calloc (self->nwriters + 1, sizeof (char *));
    self->cursors = calloc (self->nwriters + 1, sizeof (uint64_t));
    self->synced_cursors = calloc (self->nwriters + 1, sizeof (uint64_t));
    self->added = calloc (self->nwriters + 1, sizeof (bool));
    for (size_t i = 0; i < self->nwriters; i++) {
        self->writer_names[i] = strdup (writers[i]);
        char key[128];
        snprintf (key, sizeof key, "cursor:%s", writers[i]);
        uint64_t cursor = self->first_offset;
        if (s_meta_get (self, txn, key, &cursor) == MDB_NOTFOUND) {
            if ((rc = s_meta_put (self, txn, key, cursor)))
                goto failed;
            log_info ("journal.writer_added", "writer=%s cursor=%" PRIu64, writers[i], cursor);
            //  Records the journal no longer holds never reach it
            self->added[i] = self->counters.accepted > 0;
        }
        self->cursors[i] = self->synced_cursors[i] = cursor;
    }
    step = "commit";
    rc = mdb_txn_commit (txn);
    txn = NULL;
    if (rc)
        goto failed;
    char hex[2 * JOURNAL_ID_SIZE + 1];
    util_hex (self->id, JOURNAL_ID_SIZE, hex);
    log_info ("journal.open",
              "path=%s id=%s first=%" PRIu64 " next=%" PRIu64 " bytes=%" PRIu64
              " max_bytes=%" PRIu64,
              dir, hex, self->first_offset, self->next_offset, self->bytes, max_bytes);
    return self;

failed:
    snprintf (error, error_size, "journal %s: %s: %s", dir, step, mdb_strerror (rc));
    if (txn)
        mdb_txn_abort (txn);
    journal_destroy (&self);
    return NULL;
}

void
journal_destroy (journal_t **self_p)
{
    journal_t *self = *self_p;
    if (!self)
        return;
    if (self->txn)
        mdb_txn_abort (self->txn);
    if (self->env)
        mdb_env_close (self->env);
    for (size_t i = 0; i < self->nwriters; i++)
        free (self->writer_names[i]);
    free (self->writer_names);
    free (self->cursors);
    free (self->synced_cursors);
    free (self->added);
    free (self);
    *self_p = NULL;
}

const uint8_t *
journal_id (journal_t *self)
{
    return self->id;
}

int
journal_begin (journal_t *self)
{
    assert (!self->txn);
    int rc = mdb_txn_begin (self->env, NULL, 0, &self->txn);
    if (rc) {
        log_error ("journal.begin", "error=\"%s\"", mdb_strerror (rc));
        self->txn = NULL;
        return -1;
    }
    rc = mdb_cursor_open (self->txn, self->rec, &self->append);
    if (rc) {
        log_error ("journal.begin", "error=\"%s\"", mdb_strerror (rc));
        mdb_txn_abort (self->txn);
        self->txn = NULL;
        return -1;
    }
    self->r_next_offset = self->next_offset;
    self->r_bytes = self->bytes;
    self->r_dead_seq = self->dead_seq;
    self->r_dead_first = self->dead_first;
    self->r_counters = self->counters;
    return 0;
}

uint64_t
journal_append (journal_t *self, const void *record, size_t size, uint8_t writers,
                int64_t received_ns)
{
    assert (self->txn);
    uint8_t key[8];
    uint64_t offset = self->r_next_offset;
    util_put_be (key, offset, 8);
    MDB_val k = {8, key}, v = {REC_HEADER + size, NULL};
    //  MDB_RESERVE: LMDB hands out the space and we copy once into it.
    int rc = mdb_cursor_put (self->append, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc) {
        log_error ("journal.append", "offset=%" PRIu64 " error=\"%s\"", offset, mdb_strerror (rc));
        return 0;
    }
    uint8_t *out = v.mv_data;
    util_put_be (out, (uint64_t) received_ns, 8);
    out[8] = writers;
    memcpy (out + REC_HEADER, record, size);
    self->r_next_offset++;
    self->r_bytes += size;
    self->r_counters.accepted++;
    return offset;
}

int
journal_reject (journal_t *self, const char *reason, const char *detail, const void *raw,
                size_t size, int64_t received_ns)
{
    assert (self->txn);
    size_t reason_len = strlen (reason), detail_len = strlen (detail);
    size_t keep = size < JOURNAL_DEAD_RAW_MAX ? size : JOURNAL_DEAD_RAW_MAX;
    //  reason NUL detail NUL received_ns(8) original_size(8) raw
    size_t total = reason_len + 1 + detail_len + 1 + 16 + keep;
    uint8_t key[8];
    util_put_be (key, self->r_dead_seq, 8);
    MDB_val k = {8, key}, v = {total, NULL};
    int rc = mdb_put (self->txn, self->dead, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc) {
        log_error ("journal.reject", "error=\"%s\"", mdb_strerror (rc));
        return -1;
    }
    uint8_t *out = v.mv_data;
    memcpy (out, reason, reason_len + 1);
    out += reason_len + 1;
    memcpy (out, detail, detail_len + 1);
    out += detail_len + 1;
    util_put_be (out, (uint64_t) received_ns, 8);
    util_put_be (out + 8, size, 8);
    if (keep)
        memcpy (out + 16, raw, keep);
    self->r_dead_seq++;
    self->r_counters.rejected++;
    //  The dead-letter area keeps the newest dead_max entries.
    while (self->r_dead_seq - self->r_dead_first > self->dead_max) {
        util_put_be (key, self->r_dead_first, 8);
        MDB_val old = {8, key};
        mdb_del (self->txn, self->dead, &old, NULL);
        self->r_dead_first++;
    }
    return 0;
}

void
journal_count_received (journal_t *self, uint64_t inputs)
{
    assert (self->txn);
    self->r_counters.received += inputs;
}

int
journal_commit (journal_t *self)
{
    assert (self->txn);
    int rc = s_put_state (self, self->txn, self->r_next_offset, self->r_bytes, self->r_dead_seq,
                          self->r_dead_first, &self->r_counters);
    if (rc) {
        mdb_txn_abort (self->txn);
        self->txn = NULL;
        self->append = NULL;
        log_error ("journal.commit", "error=\"%s\"", mdb_strerror (rc));
        return -1;
    }
    mdb_cursor_close (self->append);
    self->append = NULL;
    rc = mdb_txn_commit (self->txn);
    self->txn = NULL;
    if (rc) {
        log_error ("journal.commit", "error=\"%s\"", mdb_strerror (rc));
        return -1;
    }
    self->next_offset = self->r_next_offset;
    self->bytes = self->r_bytes;
    self->dead_seq = self->r_dead_seq;
    self->dead_first = self->r_dead_first;
    self->counters = self->r_counters;
    return 0;
}

void
journal_abort (journal_t *self)
{
    if (self->txn)
        mdb_txn_abort (self->txn); //  frees the append cursor too
    self->txn = NULL;
    self->append = NULL;
}

int
journal_scan (journal_t *self, uint64_t from, journal_visit_fn *visit, void *arg)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return -1;
    MDB_cursor *cursor;
    if ((rc = mdb_cursor_open (txn, self->rec, &cursor))) {
        mdb_txn_abort (txn);
        return -1;
    }
    uint8_t key[8];
    util_put_be (key, from, 8);
    MDB_val k = {8, key}, v;
    rc = mdb_cursor_get (cursor, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        const uint8_t *p = v.mv_data;
        if (v.mv_size < REC_HEADER ||
            !visit (arg, util_get_be (k.mv_data, 8), p + REC_HEADER, v.mv_size - REC_HEADER, p[8],
                    (int64_t) util_get_be (p, 8)))
            break;
        rc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close (cursor);
    mdb_txn_abort (txn);
    return 0;
}

int64_t
journal_received_ns (journal_t *self, uint64_t offset)
{
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return 0;
    uint8_t key[8];
    util_put_be (key, offset, 8);
    MDB_val k = {8, key}, v;
    int64_t received = 0;
    if (mdb_get (txn, self->rec, &k, &v) == 0 && v.mv_size >= REC_HEADER)
        received = (int64_t) util_get_be (v.mv_data, 8);
    mdb_txn_abort (txn);
    return received;
}

uint64_t
journal_cursor (journal_t *self, size_t writer)
{
    return writer < self->nwriters ? self->cursors[writer] : 0;
}

bool
journal_writer_added (journal_t *self, size_t writer)
{
    return writer < self->nwriters && self->added[writer];
}

size_t
journal_writer_count (journal_t *self)
{
    return self->nwriters;
}

const char *
journal_writer_name (journal_t *self, size_t writer)
{
    return writer < self->nwriters ? self->writer_names[writer] : NULL;
}

void
journal_set_cursor (journal_t *self, size_t writer, uint64_t cursor)
{
    if (writer < self->nwriters && cursor > self->cursors[writer] && cursor <= self->next_offset)
        self->cursors[writer] = cursor;
}

int
journal_sync_cursors (journal_t *self)
{
    bool moved = false;
    uint64_t low = self->next_offset;
    for (size_t i = 0; i < self->nwriters; i++) {
        moved |= self->cursors[i] != self->synced_cursors[i];
        if (self->cursors[i] < low)
            low = self->cursors[i];
    }
    if (!moved && self->first_offset >= low)
        return 0;
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc)
        goto failed;
    for (size_t i = 0; i < self->nwriters; i++) {
        if (self->cursors[i] == self->synced_cursors[i])
            continue;
        char key[128];
        snprintf (key, sizeof key, "cursor:%s", self->writer_names[i]);
        if ((rc = s_meta_put (self, txn, key, self->cursors[i])))
            goto failed;
    }
    //  Trim what every writer is past: from the oldest record up to `low`.
    uint64_t bytes = self->bytes, trimmed = 0, first = self->first_offset;
    MDB_cursor *cursor;
    if ((rc = mdb_cursor_open (txn, self->rec, &cursor)))
        goto failed;
    MDB_val k, v;
    int get;
    while ((get = mdb_cursor_get (cursor, &k, &v, MDB_FIRST)) == 0 && trimmed < TRIM_CHUNK &&
           util_get_be (k.mv_data, 8) < low) {
        bytes -= v.mv_size - REC_HEADER;
        if ((rc = mdb_cursor_del (cursor, 0))) {
            mdb_cursor_close (cursor);
            goto failed;
        }
        trimmed++;
    }
    first = get == 0 ? util_get_be (k.mv_data, 8) : self->next_offset;
    mdb_cursor_close (cursor);
    journal_counters_t counters = self->counters;
    counters.trimmed += trimmed;
    if ((rc = s_put_state (self, txn, self->next_offset, bytes, self->dead_seq, self->dead_first,
                           &counters)))
        goto failed;
    if ((rc = mdb_txn_commit (txn))) {
        txn = NULL;
        goto failed;
    }
    memcpy (self->synced_cursors, self->cursors, self->nwriters * sizeof (uint64_t));
    self->bytes = bytes;
    self->counters = counters;
    self->first_offset = first;
    return 0;

failed:
    if (txn)
        mdb_txn_abort (txn);
    log_error ("journal.sync_cursors", "error=\"%s\"", mdb_strerror (rc));
    return -1;
}

uint64_t
journal_next_offset (journal_t *self)
{
    return self->next_offset;
}

uint64_t
journal_first_offset (journal_t *self)
{
    return self->first_offset;
}

uint64_t
journal_bytes (journal_t *self)
{
    return self->bytes;
}

uint64_t
journal_records (journal_t *self)
{
    return self->counters.accepted - self->counters.trimmed;
}

bool
journal_full (journal_t *self)
{
    return self->max_bytes && self->bytes >= self->max_bytes;
}

journal_counters_t
journal_counters (journal_t *self)
{
    return self->counters;
}

uint64_t
journal_stat_records (journal_t *self)
{
    MDB_txn *txn;
    MDB_stat stat;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return 0;
    uint64_t entries = mdb_stat (txn, self->rec, &stat) == 0 ? stat.ms_entries : 0;
    mdb_txn_abort (txn);
    return entries;
}

uint64_t
journal_dead_count (journal_t *self)
{
    return self->dead_seq - self->dead_first;
}

//  Dead letters are in sequence order, which is the order they were
//  received in: the expired ones are the first ones, up to the first that
//  is not.
uint64_t
journal_expire_dead (journal_t *self, int64_t older_than_ns)
{
    assert (!self->txn);
    if (self->dead_first == self->dead_seq)
        return 0;
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, 0, &txn))
        return 0;
    uint64_t first = self->dead_first;
    while (first < self->dead_seq) {
        uint8_t key[8];
        util_put_be (key, first, 8);
        MDB_val k = {8, key}, v;
        int rc = mdb_get (txn, self->dead, &k, &v);
        if (rc == 0) {
            //  reason NUL detail NUL received_ns(8) ...
            const uint8_t *p = v.mv_data, *end = p + v.mv_size;
            const uint8_t *reason_end = memchr (p, 0, v.mv_size);
            const uint8_t *detail_end =
                reason_end ? memchr (reason_end + 1, 0, (size_t) (end - reason_end - 1)) : NULL;
            if (detail_end && end - detail_end - 1 >= 8 &&
                (int64_t) util_get_be (detail_end + 1, 8) >= older_than_ns)
                break;
            if (mdb_del (txn, self->dead, &k, NULL)) {
                mdb_txn_abort (txn);
                return 0;
            }
        } else if (rc != MDB_NOTFOUND) {
            mdb_txn_abort (txn);
            return 0;
        }
        first++;
    }
    if (first == self->dead_first || s_meta_put (self, txn, "dead_first", first)) {
        mdb_txn_abort (txn);
        return 0;
    }
    if (mdb_txn_commit (txn))
        return 0;
    uint64_t expired = first - self->dead_first;
    self->dead_first = first;
    return expired;
}

//  ---------------------------------------------------------------------------

typedef struct {
    uint64_t offsets[16];
    size_t count;
    uint8_t mask;
} s_scan_t;

static bool
s_collect (void *arg, uint64_t offset, const void *record, size_t size, uint8_t writers,
           int64_t received_ns)
{
    s_scan_t *scan = arg;
    (void) record;
    (void) received_ns;
    assert (size == 3);
    if (writers & scan->mask)
        scan->offsets[scan->count++] = offset;
    return scan->count < 16;
}

void
journal_test (bool verbose)
{
    (void) verbose;
    char dir[] = "/tmp/omni-journal-XXXXXX";
    assert (mkdtemp (dir));
    const char *writers[] = {"archive", "metrics", NULL};
    char error[256];
    journal_t *journal = journal_new (dir, 100, 2, writers, error, sizeof error);
    assert (journal);
    assert (journal_first_offset (journal) == 1 && journal_next_offset (journal) == 1);

    //  A round: three records and a reject, all or nothing.
    assert (journal_begin (journal) == 0);
    journal_count_received (journal, 4);
    assert (journal_append (journal, "abc", 3, 1, 10) == 1);
    assert (journal_append (journal, "def", 3, 3, 11) == 2);
    assert (journal_reject (journal, "not_msgpack", "truncated", "\xff", 1, 12) == 0);
    assert (journal_append (journal, "ghi", 3, 2, 13) == 3);
    assert (journal_commit (journal) == 0);
    //  An aborted round leaves no trace.
    assert (journal_begin (journal) == 0);
    assert (journal_append (journal, "zzz", 3, 1, 14) == 4);
    journal_abort (journal);
    assert (journal_next_offset (journal) == 4);
    journal_counters_t c = journal_counters (journal);
    assert (c.received == 4 && c.accepted == 3 && c.rejected == 1 && c.trimmed == 0);
    assert (journal_records (journal) == 3 && journal_stat_records (journal) == 3);
    assert (journal_bytes (journal) == 9 && !journal_full (journal));
    assert (journal_received_ns (journal, 2) == 11);

    s_scan_t scan = {{0}, 0, 2};
    journal_scan (journal, 1, s_collect, &scan);
    assert (scan.count == 2 && scan.offsets[0] == 2 && scan.offsets[1] == 3);

    //  Trimming waits for the slowest writer.
    journal_set_cursor (journal, 0, 4);
    assert (journal_sync_cursors (journal) == 0);
    assert (journal_first_offset (journal) == 1 && journal_records (journal) == 3);
    journal_set_cursor (journal, 1, 3);
    assert (journal_sync_cursors (journal) == 0);
    assert (journal_first_offset (journal) == 3 && journal_records (journal) == 1);
    assert (journal_stat_records (journal) == 1 && journal_bytes (journal) == 3);
    journal_set_cursor (journal, 1, 2); //  never backwards
    assert (journal_cursor (journal, 1) == 3);

    //  Over the limit: full.
    assert (journal_begin (journal) == 0);
    char big[120] = {0};
    assert (journal_append (journal, big, sizeof big, 1, 20) == 4);
    assert (journal_commit (journal) == 0);
    assert (journal_full (journal));

    //  Dead letters keep only the newest dead_max.
    assert (journal_begin (journal) == 0);
    for (int i = 0; i < 3; i++)
        assert (journal_reject (journal, "bad_body", "x", "y", 1, 30) == 0);
    assert (journal_commit (journal) == 0);
    assert (journal_dead_count (journal) == 2);

    //  Reopen: same id, offsets, cursors and counters; a new writer starts
    //  at the oldest record held.
    uint8_t id[JOURNAL_ID_SIZE];
    memcpy (id, journal_id (journal), JOURNAL_ID_SIZE);
    journal_destroy (&journal);
    assert (journal == NULL);
    const char *more[] = {"archive", "metrics", "document", NULL};
    journal = journal_new (dir, 100, 2, more, error, sizeof error);
    assert (journal);
    assert (memcmp (id, journal_id (journal), JOURNAL_ID_SIZE) == 0);
    assert (journal_next_offset (journal) == 5 && journal_first_offset (journal) == 3);
    assert (journal_cursor (journal, 0) == 4 && journal_cursor (journal, 1) == 3);
    assert (journal_cursor (journal, 2) == 3);
    c = journal_counters (journal);
    assert (c.accepted == 4 && c.trimmed == 2 && c.rejected == 4 && c.received == 4);

    //  Dead letters by age: those received before the cut go, newer ones
    //  stay, and the count holds across a reopening.
    assert (journal_dead_count (journal) == 2);
    assert (journal_begin (journal) == 0);
    assert (journal_reject (journal, "bad_body", "x", "y", 1, 40) == 0);
    assert (journal_commit (journal) == 0);
    assert (journal_expire_dead (journal, 30) == 0);
    assert (journal_expire_dead (journal, 31) == 1);
    assert (journal_dead_count (journal) == 1 && journal_expire_dead (journal, 31) == 0);
    journal_destroy (&journal);
    journal = journal_new (dir, 100, 2, more, error, sizeof error);
    assert (journal && journal_dead_count (journal) == 1);
    assert (journal_expire_dead (journal, 41) == 1 && journal_dead_count (journal) == 0);
    journal_destroy (&journal);
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert (system (cmd) == 0);
}
