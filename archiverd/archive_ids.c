/*  archive_ids: the two-level id index of the archive.

    Why two levels. Ids are hashes: in one B-tree every new id lands on a
    random page, so a batch of N ids copies and writes about N pages of
    4 KiB, and the commit of the id set cost more than the whole rest of
    the archive. So a batch only writes its new ids packed, one value per
    sixteenth of the key range ("slice") in the "recent" table, and keeps
    them in memory (idset) for lookups. While the recent ids are over a
    threshold that grows with the archive, each batch merges one slice,
    sorted, into the "ids" B-tree, in one transaction that also deletes the
    slice from "recent": each page of the tree is written once for many ids,
    and a merge is a sixteenth of the pause a whole one would be. A lookup
    asks the memory set, then a Bloom filter of the tree, then the tree.

    Why it writes into the caller's transaction: the archive's commit point
    is ONE LMDB transaction with a batch's new ids and its files' new
    lengths (archive.c says why); the index only adds its keys to it.      */
#include "archiverd/archive_ids.h"
#include "archiverd/bloom.h"
#include "common/buf.h"
#include "common/idset.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAP_RETRIES 8
#define FILTER_MIN  (1u << 21) //  ids the tree's filter has room for at least
#define SLICE_BITS  4
#define SLICES      (1 << SLICE_BITS) //  the recent ids merge a key range at a time

typedef uint8_t s_id_t[RECORD_ID_SIZE];

//  The recent ids are merged into the tree when they pass a quarter of the
//  tree, within these bounds. The tree is rewritten once per that many new
//  ids, so each page a merge rewrites (~100-150 ids a page) takes a quarter
//  as many new ids; past s_merge_max, fewer, and memory stays bounded
//  instead: the set costs at most 32 bytes an id (128 MiB at s_merge_max),
//  and a merge sorts a copy of one slice (16 bytes an id).
//  Variables so that the self-tests can make merges happen.
static size_t s_merge_min = 1u << 20;
static size_t s_merge_max = 4u << 20;

struct _archive_ids_t {
    MDB_env *env;
    MDB_dbi ids, recent;
    omni_idset_t *recent_ids; //  every id in "recent", for lookups
    uint64_t tree_ids;        //  entries in "ids"
    bloom_t *tree_filter;     //  every id in "ids", so that new ids rarely ask the tree
    uint64_t next_chunk;      //  batch number in the next keys of "recent"
    int next_slice;           //  the slice the next merge takes
    size_t merge_retry_at;    //  after a failed merge, the size to try again at
    archive_ids_grow_fn *grow;
    void *grow_arg;
    //  The batch
    s_id_t *new_ids;    //  keys this batch adds, in "recent" when it commits
    s_id_t *sliced_ids; //  the same, slice after slice
    size_t nnew, cap;
    omni_metric_t *m_recent, *m_merges;
};

static void
s_show_recent (archive_ids_t *self)
{
    if (self->m_recent)
        omni_metric_set (self->m_recent, (double) omni_idset_size (self->recent_ids));
}

archive_ids_t *
archive_ids_new (omni_metrics_t *metrics, archive_ids_grow_fn *grow, void *grow_arg)
{
    archive_ids_t *self = calloc (1, sizeof *self);
    assert (self);
    self->recent_ids = omni_idset_new ();
    self->grow = grow;
    self->grow_arg = grow_arg;
    if (metrics) {
        self->m_recent =
            omni_metrics_gauge (metrics, "archive_recent_ids",
                                "Archived ids held in memory until the next merge", NULL);
        self->m_merges = omni_metrics_counter (metrics, "archive_id_merges_total",
                                               "Merges of the recent ids into the id tree", NULL);
    }
    return self;
}

void
archive_ids_destroy (archive_ids_t **self_p)
{
    archive_ids_t *self = *self_p;
    if (!self)
        return;
    free (self->new_ids);
    free (self->sliced_ids);
    omni_idset_destroy (&self->recent_ids);
    bloom_destroy (&self->tree_filter);
    free (self);
    *self_p = NULL;
}

typedef struct {
    s_id_t *keys;
    size_t n, cap;
} s_keys_t;

//  "state <what>: <LMDB's message>" into `error`; returns -1.
static int
s_fail (char *error, size_t error_size, const char *what, int rc)
{
    if (error && error_size)
        snprintf (error, error_size, "state %s: %s", what, mdb_strerror (rc));
    return -1;
}

static int
s_key_cmp (const void *a, const void *b)
{
    return memcmp (a, b, RECORD_ID_SIZE);
}

//  A filter of every id in the tree (`entries` of them), with room for as
//  many again.
static int
s_build_filter (archive_ids_t *self, MDB_txn *txn, uint64_t entries)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn, self->ids, &cursor);
    if (rc)
        return rc;
    size_t capacity = (size_t) entries * 2;
    bloom_t *filter = bloom_new (capacity > FILTER_MIN ? capacity : FILTER_MIN);
    MDB_val k, v;
    while ((rc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT)) == 0)
        if (k.mv_size == RECORD_ID_SIZE)
            bloom_add (filter, k.mv_data);
    mdb_cursor_close (cursor);
    if (rc != MDB_NOTFOUND) {
        bloom_destroy (&filter);
        return rc;
    }
    bloom_destroy (&self->tree_filter);
    self->tree_filter = filter;
    return 0;
}

//  Takes the values of "recent" that belong to `slice` (their ids into
//  `ids`) and deletes them.
static int
s_take_slice (archive_ids_t *self, MDB_txn *txn, int slice, s_keys_t *ids)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn, self->recent, &cursor);
    if (rc)
        return rc;
    uint8_t first = (uint8_t) slice;
    MDB_val k = {1, &first}, v;
    //  After mdb_cursor_del the cursor stands on the next entry, which
    //  MDB_NEXT then returns.
    for (rc = mdb_cursor_get (cursor, &k, &v, MDB_SET_RANGE);
         rc == 0 && k.mv_size > 0 && ((uint8_t *) k.mv_data)[0] == first;
         rc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT)) {
        size_t n = v.mv_size / RECORD_ID_SIZE;
        omni_array_reserve (ids->keys, ids->cap, ids->n + n);
        memcpy (ids->keys[ids->n], v.mv_data, n * RECORD_ID_SIZE);
        ids->n += n;
        if ((rc = mdb_cursor_del (cursor, 0)))
            break;
    }
    mdb_cursor_close (cursor);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

//  Moves the recent ids of one slice (a sixteenth of the key range) into
//  the tree, in key order, in one transaction: a crash leaves either level
//  whole, and a merge holds the writer up for a sixteenth of the time one
//  of every recent id would.
int
archive_ids_merge (archive_ids_t *self, char *error, size_t error_size)
{
    int64_t t0 = zclock_usecs ();
    int slice = self->next_slice;
    s_keys_t ids = {NULL, 0, 0};
    int rc;
    for (int attempt = 0;; attempt++) {
        MDB_txn *txn;
        ids.n = 0;
        if ((rc = mdb_txn_begin (self->env, NULL, 0, &txn)))
            break;
        rc = s_take_slice (self, txn, slice, &ids);
        if (rc == 0 && ids.n > 1)
            qsort (ids.keys, ids.n, RECORD_ID_SIZE, s_key_cmp);
        for (size_t i = 0; rc == 0 && i < ids.n; i++) {
            MDB_val k = {RECORD_ID_SIZE, ids.keys[i]}, v = {0, NULL};
            rc = mdb_put (txn, self->ids, &k, &v, MDB_NOOVERWRITE);
            if (rc == MDB_KEYEXIST)
                rc = 0; //  never: the levels are disjoint; harmless if not
        }
        //  The filter takes the ids before the commit makes them the tree's
        //  alone: if the commit fails, it only errs on "maybe" for them.
        MDB_stat stat;
        if (rc == 0 && (rc = mdb_stat (txn, self->ids, &stat)) == 0) {
            if (stat.ms_entries > bloom_capacity (self->tree_filter))
                rc = s_build_filter (self, txn, stat.ms_entries);
            else
                for (size_t i = 0; i < ids.n; i++)
                    bloom_add (self->tree_filter, ids.keys[i]);
        }
        if (rc == 0) {
            rc = mdb_txn_commit (txn);
            txn = NULL;
            if (rc == 0)
                self->tree_ids = stat.ms_entries;
        }
        if (txn)
            mdb_txn_abort (txn);
        if (rc != MDB_MAP_FULL || attempt == MAP_RETRIES || !self->grow ||
            self->grow (self->grow_arg))
            break;
    }
    if (rc == 0)
        for (size_t i = 0; i < ids.n; i++)
            omni_idset_remove (self->recent_ids, ids.keys[i]);
    free (ids.keys);
    if (rc) //  nothing moved: the ids stay in "recent" and in memory
        return s_fail (error, error_size, "merge ids", rc);
    self->next_slice = (slice + 1) % SLICES;
    if (self->m_merges)
        omni_metric_add (self->m_merges, 1);
    s_show_recent (self);
    log_info ("archive.ids_merged",
              "slice=%d ids=%zu recent=%zu tree=%" PRIu64 " filter_bytes=%zu ms=%" PRId64, slice,
              ids.n, omni_idset_size (self->recent_ids), self->tree_ids,
              bloom_memory (self->tree_filter), (zclock_usecs () - t0) / 1000);
    return 0;
}

static size_t
s_merge_threshold (archive_ids_t *self)
{
    size_t quarter = (size_t) (self->tree_ids / 4);
    size_t threshold = quarter < s_merge_min   ? s_merge_min
                       : quarter > s_merge_max ? s_merge_max
                                               : quarter;
    return threshold > self->merge_retry_at ? threshold : self->merge_retry_at;
}

int
archive_ids_open (archive_ids_t *self, MDB_txn *txn)
{
    self->env = mdb_txn_env (txn);
    int rc;
    if ((rc = mdb_dbi_open (txn, "ids", MDB_CREATE, &self->ids)) ||
        (rc = mdb_dbi_open (txn, "recent", MDB_CREATE, &self->recent)))
        return rc;
    //  The recent ids, back into memory.
    MDB_cursor *cursor;
    if ((rc = mdb_cursor_open (txn, self->recent, &cursor)))
        return rc;
    MDB_val k, v;
    while ((rc = mdb_cursor_get (cursor, &k, &v, MDB_NEXT)) == 0) {
        if (k.mv_size == 9 && omni_util_get_be ((uint8_t *) k.mv_data + 1, 8) >= self->next_chunk)
            self->next_chunk = omni_util_get_be ((uint8_t *) k.mv_data + 1, 8) + 1;
        for (size_t at = 0; at + RECORD_ID_SIZE <= v.mv_size; at += RECORD_ID_SIZE)
            omni_idset_insert (self->recent_ids, (const uint8_t *) v.mv_data + at);
    }
    mdb_cursor_close (cursor);
    MDB_stat stat;
    self->tree_ids = mdb_stat (txn, self->ids, &stat) == 0 ? stat.ms_entries : 0;
    if ((rc = s_build_filter (self, txn, self->tree_ids)))
        return rc;
    s_show_recent (self);
    return 0;
}

void
archive_ids_begin (archive_ids_t *self, size_t max_new)
{
    if (omni_array_grow_cap (&self->cap, max_new)) {
        omni_array_resize (self->new_ids, self->cap);
        omni_array_resize (self->sliced_ids, self->cap);
    }
    self->nnew = 0;
}

//  Whether `key` is archived: in memory, else in the tree.
int
archive_ids_find (archive_ids_t *self, MDB_txn *txn, const uint8_t key[RECORD_ID_SIZE], bool *found)
{
    *found = omni_idset_contains (self->recent_ids, key);
    if (*found || self->tree_ids == 0 || !bloom_may_contain (self->tree_filter, key))
        return 0;
    MDB_val k = {RECORD_ID_SIZE, (void *) key}, v;
    int rc = mdb_get (txn, self->ids, &k, &v);
    *found = rc == 0;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

void
archive_ids_add (archive_ids_t *self, const uint8_t key[RECORD_ID_SIZE])
{
    assert (self->nnew < self->cap);
    memcpy (self->new_ids[self->nnew++], key, RECORD_ID_SIZE);
    omni_idset_insert (self->recent_ids, key);
}

//  Takes the ids of a batch that did not commit back out of memory.
void
archive_ids_abort (archive_ids_t *self)
{
    for (size_t i = 0; i < self->nnew; i++)
        omni_idset_remove (self->recent_ids, self->new_ids[i]);
    self->nnew = 0;
}

static int
s_slice (const uint8_t *key)
{
    return key[0] >> (8 - SLICE_BITS);
}

//  The batch's new ids into "recent", one value a slice, under the key
//  <slice><batch number>: a slice can be merged on its own.
int
archive_ids_put (archive_ids_t *self, MDB_txn *txn)
{
    if (self->nnew == 0)
        return 0;
    size_t start[SLICES + 1] = {0};
    for (size_t i = 0; i < self->nnew; i++)
        start[s_slice (self->new_ids[i]) + 1]++;
    for (int s = 0; s < SLICES; s++)
        start[s + 1] += start[s];
    size_t at[SLICES];
    memcpy (at, start, sizeof at);
    for (size_t i = 0; i < self->nnew; i++) {
        const uint8_t *key = self->new_ids[i];
        memcpy (self->sliced_ids[at[s_slice (key)]++], key, RECORD_ID_SIZE);
    }
    for (int s = 0; s < SLICES; s++) {
        if (start[s + 1] == start[s])
            continue;
        uint8_t chunk[1 + 8];
        chunk[0] = (uint8_t) s;
        omni_util_put_be (chunk + 1, self->next_chunk, 8);
        MDB_val k = {sizeof chunk, chunk};
        MDB_val v = {(start[s + 1] - start[s]) * RECORD_ID_SIZE, self->sliced_ids[start[s]]};
        int rc = mdb_put (txn, self->recent, &k, &v, 0);
        if (rc)
            return rc;
    }
    return 0;
}

void
archive_ids_commit (archive_ids_t *self)
{
    if (self->nnew)
        self->next_chunk++;
    self->nnew = 0;
    s_show_recent (self);
}

void
archive_ids_maintain (archive_ids_t *self)
{
    //  The batch is durable whatever the merge does: a failed merge leaves
    //  the ids in "recent", and is tried again when they have doubled. One
    //  slice a batch: the next batches take the next slices while the
    //  recent ids stay over the threshold.
    if (omni_idset_size (self->recent_ids) >= s_merge_threshold (self)) {
        char merge_error[256];
        if (archive_ids_merge (self, merge_error, sizeof merge_error)) {
            self->merge_retry_at = 2 * omni_idset_size (self->recent_ids);
            log_error ("archive.merge_failed", "recent=%zu error=\"%s\"",
                       omni_idset_size (self->recent_ids), merge_error);
        } else
            self->merge_retry_at = 0;
    }
}

uint64_t
archive_ids_count (archive_ids_t *self)
{
    return self->tree_ids + omni_idset_size (self->recent_ids);
}

uint64_t
archive_ids_recent_count (archive_ids_t *self)
{
    return omni_idset_size (self->recent_ids);
}

uint64_t
archive_ids_tree_count (archive_ids_t *self)
{
    return self->tree_ids;
}

void
archive_ids_set_merge_bounds (size_t min, size_t max)
{
    s_merge_min = min;
    s_merge_max = max;
}

//  ---------------------------------------------------------------------------
//  Self-test, on an LMDB environment of its own

#include "testsupport/selftest.h"

//  A key whose first byte (its slice) is `slice`, the rest from `n`
static void
s_test_key (uint8_t key[RECORD_ID_SIZE], int slice, uint32_t n)
{
    memset (key, 0, RECORD_ID_SIZE);
    key[0] = (uint8_t) (slice << (8 - SLICE_BITS));
    omni_util_put_be (key + 8, n, 4);
    key[15] = 1; //  never the all-zero key, which the memory set cannot hold
}

//  One batch of `count` keys from `first` in `slice`, committed (or not)
static void
s_test_batch (archive_ids_t *ids, MDB_env *env, int slice, uint32_t first, uint32_t count,
              bool commit)
{
    MDB_txn *txn;
    assert (mdb_txn_begin (env, NULL, 0, &txn) == 0);
    archive_ids_begin (ids, count);
    for (uint32_t n = first; n < first + count; n++) {
        uint8_t key[RECORD_ID_SIZE];
        s_test_key (key, slice, n);
        bool found;
        assert (archive_ids_find (ids, txn, key, &found) == 0 && !found);
        archive_ids_add (ids, key);
        assert (archive_ids_find (ids, txn, key, &found) == 0 && found);
    }
    assert (archive_ids_put (ids, txn) == 0);
    if (commit) {
        assert (mdb_txn_commit (txn) == 0);
        archive_ids_commit (ids);
    } else {
        mdb_txn_abort (txn);
        archive_ids_abort (ids);
    }
}

static bool
s_test_has (archive_ids_t *ids, MDB_env *env, int slice, uint32_t n)
{
    MDB_txn *txn;
    assert (mdb_txn_begin (env, NULL, MDB_RDONLY, &txn) == 0);
    uint8_t key[RECORD_ID_SIZE];
    s_test_key (key, slice, n);
    bool found;
    assert (archive_ids_find (ids, txn, key, &found) == 0);
    mdb_txn_abort (txn);
    return found;
}

static archive_ids_t *
s_test_open (MDB_env *env)
{
    archive_ids_t *ids = archive_ids_new (NULL, NULL, NULL);
    MDB_txn *txn;
    assert (mdb_txn_begin (env, NULL, 0, &txn) == 0);
    assert (archive_ids_open (ids, txn) == 0);
    assert (mdb_txn_commit (txn) == 0);
    return ids;
}

void
archive_ids_test (bool verbose)
{
    if (!verbose)
        omni_log_init ("archive-ids-test", "error", "kv");
    char *dir = selftest_tmpdir ("archive-ids");
    MDB_env *env;
    assert (mdb_env_create (&env) == 0);
    mdb_env_set_maxdbs (env, 4);
    mdb_env_set_mapsize (env, 64u << 20);
    assert (mdb_env_open (env, dir, 0, 0644) == 0);

    //  New ids are found at once, in "recent"; an aborted batch's are not
    archive_ids_t *ids = s_test_open (env);
    assert (archive_ids_count (ids) == 0);
    s_test_batch (ids, env, 0, 0, 100, true);
    s_test_batch (ids, env, 3, 0, 50, true);
    s_test_batch (ids, env, 5, 0, 10, false);
    assert (archive_ids_count (ids) == 150 && archive_ids_recent_count (ids) == 150);
    assert (s_test_has (ids, env, 0, 99) && s_test_has (ids, env, 3, 49));
    assert (!s_test_has (ids, env, 5, 0) && !s_test_has (ids, env, 0, 100));

    //  A merge takes one slice, in order: slice 0, then 1 (empty), ...
    assert (archive_ids_merge (ids, NULL, 0) == 0);
    assert (archive_ids_tree_count (ids) == 100 && archive_ids_recent_count (ids) == 50);
    assert (s_test_has (ids, env, 0, 0) && s_test_has (ids, env, 0, 99));
    assert (archive_ids_merge (ids, NULL, 0) == 0 && archive_ids_merge (ids, NULL, 0) == 0);
    assert (archive_ids_tree_count (ids) == 100);
    assert (archive_ids_merge (ids, NULL, 0) == 0); //  slice 3
    assert (archive_ids_tree_count (ids) == 150 && archive_ids_recent_count (ids) == 0);
    s_test_batch (ids, env, 3, 50, 20, true);

    //  Reopened: the tree and the recent ids are back
    archive_ids_destroy (&ids);
    assert (ids == NULL);
    ids = s_test_open (env);
    assert (archive_ids_tree_count (ids) == 150 && archive_ids_recent_count (ids) == 20);
    assert (s_test_has (ids, env, 3, 69) && s_test_has (ids, env, 0, 42));
    assert (!s_test_has (ids, env, 3, 70));

    //  Over the threshold, maintain merges a slice a call until under it
    archive_ids_set_merge_bounds (10, 10);
    s_test_batch (ids, env, 7, 0, 30, true);
    archive_ids_maintain (ids); //  slice 0: nothing recent there
    archive_ids_maintain (ids); //  1
    archive_ids_maintain (ids); //  2
    archive_ids_maintain (ids); //  3: its 20
    assert (archive_ids_tree_count (ids) == 170 && archive_ids_recent_count (ids) == 30);
    for (int i = 0; i < 4; i++)
        archive_ids_maintain (ids);
    assert (archive_ids_tree_count (ids) == 200 && archive_ids_recent_count (ids) == 0);
    archive_ids_maintain (ids); //  under the threshold: nothing to do
    assert (archive_ids_count (ids) == 200);
    assert (s_test_has (ids, env, 7, 29));
    archive_ids_set_merge_bounds (1u << 20, 4u << 20);

    archive_ids_destroy (&ids);
    mdb_env_close (env);
    selftest_rmtree (dir);
    free (dir);
}
