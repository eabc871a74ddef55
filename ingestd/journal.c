/*  journal: ingestd's durable store on LMDB.

    Three databases: "rec" (offset -> received_ns, writers mask, record),
    "dead" (sequence -> reason, detail, first bytes of the input) and "meta"
    (journal id, next offset, counters, bytes held, one cursor per writer).
    Keys are big-endian so LMDB's byte order is offset order and appends can
    use MDB_APPEND. Counters and cursors change in the same transaction as
    the records they count, so after a crash they agree with the records.   */
#include "ingestd/journal.h"
#include "common/log.h"
#include "common/util.h"

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
#include <sys/statvfs.h>
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
    char *dir;
    uint64_t map_size;  //  0: from max_bytes
    int error;          //  of the last failed write, 0 after a commit
    uint64_t reopens;   //  of a fatal environment
    uint64_t map_extra; //  reserve granted to full maps, on top of map_size
    bool grow_map;      //  the map filled up: grant the reserve before the next write
    bool reserve_used;  //  granted during this fault (cleared by an intake commit)
    bool *added;        //  per writer: new to a journal that had records (journal_writer_added)
};

static int
s_meta_get (journal_t *self, MDB_txn *txn, const char *key, uint64_t *value)
{
    MDB_val k = {strlen (key), (void *) key}, v;
    int rc = mdb_get (txn, self->meta, &k, &v);
    if (rc == 0 && v.mv_size == 8)
        *value = omni_util_get_be (v.mv_data, 8);
    return rc;
}

static int
s_meta_put (journal_t *self, MDB_txn *txn, const char *key, uint64_t value)
{
    uint8_t buf[8];
    omni_util_put_be (buf, value, 8);
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
            first = omni_util_get_be (k.mv_data, 8);
        mdb_cursor_close (cursor);
    }
    return first;
}

//  The map size: address space, not disk. By default it leaves room for
//  copy-on-write pages and for the round that crosses the limit.
static size_t
s_map_size (journal_t *self)
{
    return (size_t) (self->map_size ? self->map_size : self->max_bytes * 2 + (1ULL << 30)) +
           self->map_extra;
}

//  Opens LMDB's environment and its databases (created when `create`).
//  Returns 0 or an error code, with `step` naming what failed.
static int
s_open_env (journal_t *self, bool create, const char **step)
{
    MDB_txn *txn = NULL;
    int rc;
    *step = "mdb_env_create";
    if ((rc = mdb_env_create (&self->env)))
        return rc;
    mdb_env_set_maxdbs (self->env, 4);
    mdb_env_set_mapsize (self->env, s_map_size (self));
    *step = "mdb_env_open";
    if ((rc = mdb_env_open (self->env, self->dir, MDB_NORDAHEAD, 0644)))
        goto failed;
    //  Opening existing databases needs no write: a read transaction, so a
    //  reopen works on a full disk.
    *step = "open databases";
    unsigned flags = create ? MDB_CREATE : 0;
    if ((rc = mdb_txn_begin (self->env, NULL, create ? 0 : MDB_RDONLY, &txn)))
        goto failed;
    if ((rc = mdb_dbi_open (txn, "rec", flags, &self->rec)) ||
        (rc = mdb_dbi_open (txn, "dead", flags, &self->dead)) ||
        (rc = mdb_dbi_open (txn, "meta", flags, &self->meta)))
        goto failed;
    rc = mdb_txn_commit (txn);
    txn = NULL;
    if (rc)
        goto failed;
    return 0;
failed:
    if (txn)
        mdb_txn_abort (txn);
    mdb_env_close (self->env);
    self->env = NULL;
    return rc;
}

//  Committed state from the meta database. Cursors are taken from disk
//  unless the ones in memory are further (ACKs not yet persisted).
static void
s_load_state (journal_t *self, MDB_txn *txn)
{
    self->next_offset = 1;
    self->bytes = 0;
    self->dead_seq = 1;
    self->dead_first = 1;
    self->counters = (journal_counters_t){0};
    s_meta_get (self, txn, "next_offset", &self->next_offset);
    s_meta_get (self, txn, "bytes", &self->bytes);
    s_meta_get (self, txn, "dead_seq", &self->dead_seq);
    s_meta_get (self, txn, "dead_first", &self->dead_first);
    s_meta_get (self, txn, "received", &self->counters.received);
    s_meta_get (self, txn, "accepted", &self->counters.accepted);
    s_meta_get (self, txn, "rejected", &self->counters.rejected);
    s_meta_get (self, txn, "trimmed", &self->counters.trimmed);
    self->first_offset = s_first_offset (self, txn);
}

//  LMDB marks its environment fatal when a commit's meta page write fails
//  (mdb_env_write_meta): every later transaction, read or write, answers
//  MDB_PANIC. The data on disk is consistent (the old meta page still
//  points at the last committed state; copy-on-write never touched it), so
//  closing and opening the environment again is a full recovery.
static int
s_reopen (journal_t *self)
{
    if (self->env) {
        mdb_env_close (self->env);
        self->env = NULL;
    }
    const char *step;
    int rc = s_open_env (self, false, &step);
    MDB_txn *txn = NULL;
    if (rc == 0 && (rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn)) == 0) {
        s_load_state (self, txn);
        for (size_t i = 0; i < self->nwriters; i++) {
            char key[128];
            snprintf (key, sizeof key, "cursor:%s", self->writer_names[i]);
            uint64_t cursor = self->first_offset;
            s_meta_get (self, txn, key, &cursor);
            self->synced_cursors[i] = cursor;
            if (self->cursors[i] < cursor || self->cursors[i] > self->next_offset)
                self->cursors[i] = cursor;
        }
        mdb_txn_abort (txn);
    }
    if (rc) {
        if (self->env) {
            mdb_env_close (self->env);
            self->env = NULL;
        }
        log_debug ("journal.reopen_failed", "path=%s step=%s error=\"%s\"", self->dir, step,
                   mdb_strerror (rc));
        return rc;
    }
    self->reopens++;
    log_warn ("journal.reopened",
              "path=%s reason=\"LMDB environment fatal after a failed commit\" first=%" PRIu64
              " next=%" PRIu64,
              self->dir, self->first_offset, self->next_offset);
    return 0;
}

//  A write failed: keep its error, and if LMDB's environment became fatal
//  (a failed meta write), reopen it now, before any reader trips on it.
//  A full map cannot drain by itself: LMDB reuses only pages freed before
//  the last commit, so once a round took them all, even the transaction
//  that trims acknowledged records finds no page to copy on write into.
//  The first time a fault hits the map, it grows by this reserve, which
//  lets trims and probes commit; intake resumes only when a round fits.
#define MAP_RESERVE (1ULL << 20)

static void
s_failed (journal_t *self, int rc)
{
    if (rc == MDB_MAP_FULL && !self->reserve_used) {
        self->grow_map = true;
        self->reserve_used = true;
    }
    //  A panic or a poisoned transaction is the consequence: keep the cause.
    if (!((rc == MDB_PANIC || rc == MDB_BAD_TXN) && self->error))
        self->error = rc;
    MDB_txn *txn;
    if (!self->env)
        s_reopen (self);
    else if ((rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn)) == MDB_PANIC)
        s_reopen (self);
    else if (rc == 0)
        mdb_txn_abort (txn);
}

//  Begins a write transaction; reopens a fatal environment first.
static int
s_write_begin (journal_t *self, MDB_txn **txn)
{
    *txn = NULL;
    if (self->grow_map && self->env) {
        //  No transaction is open in this process here (the caller holds the
        //  journal's only writer, and readers are serialized with it).
        self->map_extra += MAP_RESERVE;
        int rc = mdb_env_set_mapsize (self->env, s_map_size (self));
        if (rc)
            self->map_extra -= MAP_RESERVE;
        else
            log_info ("journal.map_reserve", "path=%s map_size=%zu reserve=%llu", self->dir,
                      s_map_size (self), MAP_RESERVE);
        self->grow_map = false;
    }
    int rc = self->env ? mdb_txn_begin (self->env, NULL, 0, txn) : MDB_PANIC;
    if (rc == MDB_PANIC && s_reopen (self) == 0)
        rc = mdb_txn_begin (self->env, NULL, 0, txn);
    if (rc) {
        *txn = NULL;
        s_failed (self, rc);
    }
    return rc;
}

journal_t *
journal_new (const char *dir, uint64_t max_bytes, uint64_t dead_max, uint64_t map_size,
             const char *const *writers, char *error, size_t error_size)
{
    journal_t *self = calloc (1, sizeof *self);
    assert (self);
    self->max_bytes = max_bytes;
    self->map_size = map_size;
    self->dead_max = dead_max ? dead_max : 100000;
    self->dir = strdup (dir);
    MDB_txn *txn = NULL;
    int rc;
    const char *step = "mkdir";
    if (omni_util_mkdirs (dir)) {
        rc = errno;
        goto failed;
    }
    if ((rc = s_open_env (self, true, &step)))
        goto failed;
    step = "read state";
    if ((rc = mdb_txn_begin (self->env, NULL, 0, &txn)))
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
    s_load_state (self, txn);

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
    omni_util_hex (self->id, JOURNAL_ID_SIZE, hex);
    log_info ("journal.open",
              "path=%s id=%s first=%" PRIu64 " next=%" PRIu64 " bytes=%" PRIu64
              " max_bytes=%" PRIu64 " map_size=%zu",
              dir, hex, self->first_offset, self->next_offset, self->bytes, max_bytes,
              s_map_size (self));
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
    free (self->dir);
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
    int rc = s_write_begin (self, &self->txn);
    if (rc) {
        log_debug ("journal.begin", "error=\"%s\"", mdb_strerror (rc));
        return -1;
    }
    rc = mdb_cursor_open (self->txn, self->rec, &self->append);
    if (rc) {
        log_debug ("journal.begin", "error=\"%s\"", mdb_strerror (rc));
        mdb_txn_abort (self->txn);
        self->txn = NULL;
        s_failed (self, rc);
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
    omni_util_put_be (key, offset, 8);
    MDB_val k = {8, key}, v = {REC_HEADER + size, NULL};
    //  MDB_RESERVE: LMDB hands out the space and we copy once into it.
    int rc = mdb_cursor_put (self->append, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc) {
        //  ingestd logs the fault once; the round aborts
        log_debug ("journal.append", "offset=%" PRIu64 " error=\"%s\"", offset, mdb_strerror (rc));
        s_failed (self, rc);
        return 0;
    }
    uint8_t *out = v.mv_data;
    omni_util_put_be (out, (uint64_t) received_ns, 8);
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
    omni_util_put_be (key, self->r_dead_seq, 8);
    MDB_val k = {8, key}, v = {total, NULL};
    int rc = mdb_put (self->txn, self->dead, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc) {
        log_debug ("journal.reject", "error=\"%s\"", mdb_strerror (rc));
        s_failed (self, rc);
        return -1;
    }
    uint8_t *out = v.mv_data;
    memcpy (out, reason, reason_len + 1);
    out += reason_len + 1;
    memcpy (out, detail, detail_len + 1);
    out += detail_len + 1;
    omni_util_put_be (out, (uint64_t) received_ns, 8);
    omni_util_put_be (out + 8, size, 8);
    if (keep)
        memcpy (out + 16, raw, keep);
    self->r_dead_seq++;
    self->r_counters.rejected++;
    //  The dead-letter area keeps the newest dead_max entries.
    while (self->r_dead_seq - self->r_dead_first > self->dead_max) {
        omni_util_put_be (key, self->r_dead_first, 8);
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

void
journal_count_forwarded (journal_t *self, uint64_t records)
{
    assert (self->txn);
    self->r_counters.accepted += records;
    self->r_counters.trimmed += records;
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
        log_debug ("journal.commit", "error=\"%s\"", mdb_strerror (rc));
        s_failed (self, rc);
        return -1;
    }
    mdb_cursor_close (self->append);
    self->append = NULL;
    //  A failed commit is aborted by LMDB itself: nothing of the round is
    //  kept, and (unless the meta write failed) the environment goes on.
    rc = mdb_txn_commit (self->txn);
    self->txn = NULL;
    if (rc) {
        log_debug ("journal.commit", "error=\"%s\"", mdb_strerror (rc));
        s_failed (self, rc);
        return -1;
    }
    self->error = 0;
    self->reserve_used = false;
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
    int rc = self->env ? mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn) : MDB_PANIC;
    if (rc)
        return -1;
    MDB_cursor *cursor;
    if ((rc = mdb_cursor_open (txn, self->rec, &cursor))) {
        mdb_txn_abort (txn);
        return -1;
    }
    uint8_t key[8];
    omni_util_put_be (key, from, 8);
    MDB_val k = {8, key}, v;
    rc = mdb_cursor_get (cursor, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        const uint8_t *p = v.mv_data;
        if (v.mv_size < REC_HEADER ||
            !visit (arg, omni_util_get_be (k.mv_data, 8), p + REC_HEADER, v.mv_size - REC_HEADER,
                    p[8], (int64_t) omni_util_get_be (p, 8)))
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
    if (!self->env || mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return 0;
    uint8_t key[8];
    omni_util_put_be (key, offset, 8);
    MDB_val k = {8, key}, v;
    int64_t received = 0;
    if (mdb_get (txn, self->rec, &k, &v) == 0 && v.mv_size >= REC_HEADER)
        received = (int64_t) omni_util_get_be (v.mv_data, 8);
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
    int rc = s_write_begin (self, &txn);
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
    //  One descent, then along the leaves: a deleted record's cursor rests on
    //  its successor, which MDB_NEXT returns (LMDB's C_DEL), where MDB_FIRST
    //  per record searched the tree from its root each time.
    MDB_val k, v;
    int get = mdb_cursor_get (cursor, &k, &v, MDB_FIRST);
    while (get == 0 && trimmed < TRIM_CHUNK && omni_util_get_be (k.mv_data, 8) < low) {
        bytes -= v.mv_size - REC_HEADER;
        if ((rc = mdb_cursor_del (cursor, 0))) {
            mdb_cursor_close (cursor);
            goto failed;
        }
        trimmed++;
        get = mdb_cursor_get (cursor, &k, &v, MDB_NEXT);
    }
    first = get == 0 ? omni_util_get_be (k.mv_data, 8) : self->next_offset;
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
    self->error = 0;
    return 0;

failed:
    if (txn)
        mdb_txn_abort (txn);
    //  The cursors stay moved in memory and are persisted by a later sync;
    //  ingestd logs the fault once.
    log_debug ("journal.sync_cursors", "error=\"%s\"", mdb_strerror (rc));
    s_failed (self, rc);
    return -1;
}

bool
journal_cursors_pending (journal_t *self)
{
    for (size_t i = 0; i < self->nwriters; i++)
        if (self->cursors[i] != self->synced_cursors[i])
            return true;
    return false;
}

#define PROBE_VALUE 1024 //  bytes per scratch entry: small like records, no overflow pages

//  One transaction of the probe: a marker write, then `count` scratch
//  entries put (`put`) or deleted, if any.
static int
s_probe_txn (journal_t *self, size_t count, bool put)
{
    uint8_t key[9] = {'~'}; //  scratch keys of "meta", apart from its names
    MDB_txn *txn;
    int rc = s_write_begin (self, &txn);
    if (rc)
        return rc;
    MDB_val k = {1, key}, v = {8, &self->reopens};
    rc = mdb_put (txn, self->meta, &k, &v, 0);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        omni_util_put_be (key + 1, i, 8);
        k = (MDB_val){sizeof key, key};
        v = (MDB_val){PROBE_VALUE, NULL};
        if (!put)
            rc = mdb_del (txn, self->meta, &k, NULL);
        else if ((rc = mdb_put (txn, self->meta, &k, &v, MDB_RESERVE)) == 0)
            memset (v.mv_data, 0, PROBE_VALUE);
    }
    if (rc) {
        mdb_txn_abort (txn);
        return rc;
    }
    return mdb_txn_commit (txn);
}

//  LMDB reuses a page only once the commit that freed it is older than the
//  last one (the other meta page may still point at it). So: a marker
//  commit (pages a trim just freed become usable), the scratch entries, their
//  removal, and a marker commit again (their pages become usable for the
//  next round, which then needs no new space).
int
journal_probe (journal_t *self, size_t size)
{
    assert (!self->txn);
    size_t count = size / PROBE_VALUE + 1;
    int rc = s_probe_txn (self, 0, true);
    rc = rc ? rc : s_probe_txn (self, count, true);
    rc = rc ? rc : s_probe_txn (self, count, false);
    rc = rc ? rc : s_probe_txn (self, 0, true);
    if (rc) {
        log_debug ("journal.probe", "bytes=%zu error=\"%s\"", size, mdb_strerror (rc));
        s_failed (self, rc);
        return -1;
    }
    self->error = 0;
    return 0;
}

int
journal_error (journal_t *self)
{
    return self->error;
}

uint64_t
journal_free_bytes (journal_t *self)
{
    struct statvfs st;
    if (statvfs (self->dir, &st))
        return 0;
    //  root may also use the blocks reserved for it
    return (uint64_t) (geteuid () == 0 ? st.f_bfree : st.f_bavail) * st.f_frsize;
}

//  LMDB reports a short write (the file system filled up during it) as
//  EIO; with this little left, that is what an EIO most likely was.
#define SHORT_WRITE_FREE (8ULL << 20)

journal_fault_t
journal_classify (int error, uint64_t free_bytes)
{
    switch (error) {
    case 0: return JOURNAL_OK;
    case ENOSPC: return JOURNAL_NO_SPACE;
    case EDQUOT: return JOURNAL_QUOTA;
    case MDB_MAP_FULL: return JOURNAL_MAP_FULL;
    case EIO: return free_bytes < SHORT_WRITE_FREE ? JOURNAL_NO_SPACE : JOURNAL_IO_ERROR;
    default: return JOURNAL_ERROR;
    }
}

journal_fault_t
journal_fault (journal_t *self)
{
    if (!self->error)
        return JOURNAL_OK;
    return journal_classify (self->error, self->error == EIO ? journal_free_bytes (self) : 0);
}

const char *
journal_fault_name (journal_fault_t fault)
{
    static const char *names[JOURNAL_FAULT_COUNT] = {"none",     "no_space", "quota", "map_full",
                                                     "io_error", "error",    "stream"};
    return fault < JOURNAL_FAULT_COUNT ? names[fault] : "error";
}

void
journal_fault_text (journal_t *self, journal_fault_t fault, char *text, size_t size)
{
    const char *error = mdb_strerror (self->error);
    uint64_t free_bytes = journal_free_bytes (self);
    switch (fault) {
    case JOURNAL_OK: snprintf (text, size, "journal: ok"); break;
    case JOURNAL_NO_SPACE:
        snprintf (text, size,
                  "journal: no space left on device under %s (%s, %" PRIu64
                  " bytes free): intake paused; free space on that file system or move "
                  "journal_dir; records writers acknowledge are trimmed and their pages "
                  "reused; ingestd retries every second and resumes by itself",
                  self->dir, error, free_bytes);
        break;
    case JOURNAL_QUOTA:
        snprintf (text, size,
                  "journal: disk quota exceeded under %s (%s): intake paused; raise the "
                  "quota of ingestd's user or free space it owns; ingestd retries every "
                  "second and resumes by itself",
                  self->dir, error);
        break;
    case JOURNAL_MAP_FULL:
        snprintf (text, size,
                  "journal map full under %s (LMDB map %zu bytes, %" PRIu64
                  " bytes of records held): intake paused; records writers acknowledge "
                  "are trimmed and their pages reused; if it persists, raise journal_max "
                  "(the map is 2 x journal_max + 1 GiB, or journal_map_size) and restart "
                  "ingestd",
                  self->dir, s_map_size (self), self->bytes);
        break;
    case JOURNAL_IO_ERROR:
        snprintf (text, size,
                  "journal: I/O error under %s (%s, %" PRIu64
                  " bytes free): intake paused; check the device (kernel log); ingestd "
                  "retries every second and resumes by itself if the device recovers",
                  self->dir, error, free_bytes);
        break;
    default:
        snprintf (text, size,
                  "journal: write failed under %s (%s): intake paused; ingestd retries "
                  "every second and resumes by itself once the journal takes writes",
                  self->dir, error);
        break;
    }
}

const char *
journal_dir (journal_t *self)
{
    return self->dir;
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
    if (!self->env || mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
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
        omni_util_put_be (key, first, 8);
        MDB_val k = {8, key}, v;
        int rc = mdb_get (txn, self->dead, &k, &v);
        if (rc == 0) {
            //  reason NUL detail NUL received_ns(8) ...
            const uint8_t *p = v.mv_data, *end = p + v.mv_size;
            const uint8_t *reason_end = memchr (p, 0, v.mv_size);
            const uint8_t *detail_end =
                reason_end ? memchr (reason_end + 1, 0, (size_t) (end - reason_end - 1)) : NULL;
            if (detail_end && end - detail_end - 1 >= 8 &&
                (int64_t) omni_util_get_be (detail_end + 1, 8) >= older_than_ns)
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

//  LMDB writes meta pages through a descriptor of its own, opened
//  write-only with O_DSYNC. Swapping it for a read-only one makes the next
//  meta write fail (EBADF) the way a failing disk does.
static int
s_break_meta_fd (const char *dir)
{
    char data[512];
    snprintf (data, sizeof data, "%s/data.mdb", dir);
    for (int fd = 3; fd < 1024; fd++) {
        char link[64], target[512];
        snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink (link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        int flags = fcntl (fd, F_GETFL);
        if (strcmp (target, data) == 0 && flags >= 0 && (flags & O_ACCMODE) == O_WRONLY) {
            int readonly = open (data, O_RDONLY | O_CLOEXEC);
            assert (readonly >= 0);
            assert (dup2 (readonly, fd) == fd);
            close (readonly);
            return fd;
        }
    }
    return -1;
}

static void
s_test_faults (const char *dir)
{
    //  Classification: LMDB reports a short write as EIO.
    assert (journal_classify (0, 0) == JOURNAL_OK);
    assert (journal_classify (ENOSPC, 1ULL << 40) == JOURNAL_NO_SPACE);
    assert (journal_classify (EDQUOT, 1ULL << 40) == JOURNAL_QUOTA);
    assert (journal_classify (MDB_MAP_FULL, 1ULL << 40) == JOURNAL_MAP_FULL);
    assert (journal_classify (EIO, 4096) == JOURNAL_NO_SPACE);
    assert (journal_classify (EIO, 1ULL << 40) == JOURNAL_IO_ERROR);
    assert (journal_classify (EROFS, 0) == JOURNAL_ERROR);
    assert (strcmp (journal_fault_name (JOURNAL_NO_SPACE), "no_space") == 0);
    assert (strcmp (journal_fault_name (JOURNAL_MAP_FULL), "map_full") == 0);

    //  A real full map: 64 pages. The round that does not fit fails and
    //  leaves no trace; what was committed stays.
    const char *writers[] = {"archive", NULL};
    char error[256];
    journal_t *journal = journal_new (dir, 1 << 30, 10, 256 << 10, writers, error, sizeof error);
    assert (journal);
    char record[1000];
    memset (record, 'r', sizeof record);
    int rc = 0;
    uint64_t committed = 0;
    while (rc == 0) {
        assert (journal_begin (journal) == 0);
        for (int i = 0; i < 10 && rc == 0; i++)
            if (!journal_append (journal, record, sizeof record, 1, 1))
                rc = -1;
        journal_count_received (journal, 10);
        if (rc == 0)
            rc = journal_commit (journal);
        else
            journal_abort (journal);
        committed += rc == 0 ? 10 : 0;
        assert (committed < 1000);
    }
    assert (journal_error (journal) == MDB_MAP_FULL);
    assert (journal_fault (journal) == JOURNAL_MAP_FULL);
    char text[512];
    journal_fault_text (journal, JOURNAL_MAP_FULL, text, sizeof text);
    assert (strstr (text, "journal map full under ") && strstr (text, "journal_max"));
    assert (journal_next_offset (journal) == committed + 1);
    assert (journal_stat_records (journal) == committed);
    //  The map grows by its reserve once in a fault, not at every failure.
    assert (journal_probe (journal, 4 << 20) == -1);
    assert (journal_probe (journal, 4 << 20) == -1);
    assert (journal->map_extra == MAP_RESERVE);
    assert (journal_fault (journal) == JOURNAL_MAP_FULL);
    //  The writer acknowledges half, then all: trimming walks the leaves from
    //  the first record (pages of 1000-byte records, so across many of them)
    //  and stops at the cursor; it frees pages, the probe fits again.
    uint64_t half = committed / 2 + 1;
    journal_set_cursor (journal, 0, half);
    assert (journal_sync_cursors (journal) == 0);
    assert (journal_first_offset (journal) == half);
    assert (journal_stat_records (journal) == committed + 1 - half);
    journal_set_cursor (journal, 0, committed + 1);
    assert (journal_cursors_pending (journal));
    assert (journal_sync_cursors (journal) == 0);
    assert (!journal_cursors_pending (journal));
    assert (journal_stat_records (journal) == 0);
    assert (journal_probe (journal, 64 << 10) == 0);
    assert (journal_error (journal) == 0 && journal_fault (journal) == JOURNAL_OK);
    assert (journal_begin (journal) == 0);
    assert (journal_append (journal, record, sizeof record, 1, 2) == committed + 1);
    journal_count_received (journal, 1);
    assert (journal_commit (journal) == 0);

    //  A failed meta write leaves LMDB's environment fatal (MDB_PANIC for
    //  every later transaction): the journal reopens it at once and goes on
    //  from the last commit.
    assert (s_break_meta_fd (dir) >= 0);
    assert (journal_begin (journal) == 0);
    assert (journal_append (journal, record, sizeof record, 1, 3) == committed + 2);
    journal_count_received (journal, 1);
    assert (journal_commit (journal) == -1);
    assert (journal_error (journal) == EBADF && journal_fault (journal) == JOURNAL_ERROR);
    assert (journal->reopens == 1);
    assert (journal_next_offset (journal) == committed + 2);
    assert (journal_stat_records (journal) == 1 &&
            journal_received_ns (journal, committed + 1) == 2);
    assert (journal_begin (journal) == 0);
    assert (journal_append (journal, record, sizeof record, 1, 4) == committed + 2);
    journal_count_received (journal, 1);
    assert (journal_commit (journal) == 0);
    assert (journal_stat_records (journal) == 2 && journal_error (journal) == 0);
    journal_counters_t c = journal_counters (journal);
    assert (c.accepted == committed + 2 && c.trimmed == committed && c.received == c.accepted);
    journal_destroy (&journal);
}

void
journal_test (bool verbose)
{
    (void) verbose;
    char dir[] = "/tmp/omni-journal-XXXXXX";
    assert (mkdtemp (dir));
    const char *writers[] = {"archive", "metrics", NULL};
    char error[256];
    journal_t *journal = journal_new (dir, 100, 2, 0, writers, error, sizeof error);
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
    journal = journal_new (dir, 100, 2, 0, more, error, sizeof error);
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
    journal = journal_new (dir, 100, 2, 0, more, error, sizeof error);
    assert (journal && journal_dead_count (journal) == 1);
    assert (journal_expire_dead (journal, 41) == 1 && journal_dead_count (journal) == 0);
    journal_destroy (&journal);

    char faults[sizeof dir + 16];
    snprintf (faults, sizeof faults, "%s/faults", dir);
    s_test_faults (faults);
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert (system (cmd) == 0);
}
